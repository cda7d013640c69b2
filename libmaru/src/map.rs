//! Memory mappings of chunk files: huge-page aligned, pre-faulted, unmapped on drop.

use crate::error::{Error, Result};
use crate::sys;
use maru_proto::xattr;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};

/// Size of a PMD (transparent huge page) on x86-64 and arm64 with 4 KiB pages.
pub const HUGE_PAGE: usize = 2 << 20;
/// Mappings at least this large are aligned to [`HUGE_PAGE`].
pub const ALIGN_THRESHOLD: usize = HUGE_PAGE;

/// Access a mapping is made for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `PROT_READ`: a published chunk.
    ReadOnly,
    /// `PROT_READ | PROT_WRITE`: a staging chunk.
    ReadWrite,
}

/// A shared mapping of a whole chunk: of the chunk file, or of the chunk's
/// extent of a devdax pool's device node ([`Mapping::new_devdax`]).
pub struct Mapping {
    ptr: NonNull<u8>,
    /// The chunk's bytes (what the slices show).
    len: usize,
    /// Bytes mapped (a devdax extent is whole alignment units, longer than the chunk).
    map_len: usize,
    access: Access,
    locked: AtomicBool,
}

// SAFETY: a Mapping is a plain address range owned by this value; the pages are
// shared file pages that any thread may access. Mutation goes through &mut self
// (Chunk) only, so Rust's aliasing rules are kept by the owners.
unsafe impl Send for Mapping {}
// SAFETY: shared access only reads the range (see above).
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd` from offset 0, MAP_SHARED, aligned to a huge page
    /// when `len >= ALIGN_THRESHOLD`. Read-write mappings are pre-faulted for
    /// writing (the pool allocates the pages now); read-only mappings fault
    /// lazily (see [`Mapping::populate`]).
    pub fn new(fd: BorrowedFd<'_>, len: usize, access: Access, object: &str) -> Result<Self> {
        if len == 0 {
            return Err(Error::InvalidArgument(format!(
                "cannot map {object}: it is empty (0 bytes)"
            )));
        }
        let prot = match access {
            Access::ReadOnly => libc::PROT_READ,
            Access::ReadWrite => libc::PROT_READ | libc::PROT_WRITE,
        };
        let addr = if len >= ALIGN_THRESHOLD {
            aligned_map(fd, len, prot).map_err(|e| Error::os("map", object, e))?
        } else {
            // SAFETY: a fresh mapping at an address the kernel picks; no existing
            // memory is affected. The result is checked against MAP_FAILED.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    prot,
                    libc::MAP_SHARED,
                    fd.as_raw_fd(),
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                return Err(Error::last_os("map", object));
            }
            p
        };
        let map = Mapping {
            // mmap never returns NULL on success for a non-fixed mapping.
            ptr: NonNull::new(addr.cast()).ok_or_else(|| {
                Error::os("map", object, io::Error::from_raw_os_error(libc::EFAULT))
            })?,
            len,
            map_len: len,
            access,
            locked: AtomicBool::new(false),
        };
        if access == Access::ReadWrite {
            map.populate()
                .map_err(|e| Error::os("pre-fault", object, e))?;
        }
        Ok(map)
    }

    /// Maps a chunk of a devdax pool zero-copy: the chunk's extent of the pool's
    /// device node `device`, at the offset and length the chunk file `fd` names in
    /// its [`xattr::DEVDAX_OFFSET`] / [`xattr::DEVDAX_LEN`] xattrs (maru-fs cannot hand a
    /// character device to the kernel, and refuses shared mappings of the file
    /// itself). The first `len` bytes are the chunk. The caller keeps `fd` open
    /// while the mapping lives: that open file is the chunk's pin.
    pub fn new_devdax(
        fd: BorrowedFd<'_>,
        device: &Path,
        len: usize,
        access: Access,
        object: &str,
    ) -> Result<Self> {
        if len == 0 {
            return Err(Error::InvalidArgument(format!(
                "cannot map {object}: it is empty (0 bytes)"
            )));
        }
        let offset = xattr_number(fd, xattr::DEVDAX_OFFSET_C, object)?;
        let map_len = xattr_number(fd, xattr::DEVDAX_LEN_C, object)?;
        let (Ok(off), Ok(map_len)) = (libc::off_t::try_from(offset), usize::try_from(map_len))
        else {
            return Err(Error::InvalidArgument(format!(
                "{object}: devdax extent {offset}+{map_len} is out of range"
            )));
        };
        if map_len < len {
            return Err(Error::InvalidArgument(format!(
                "{object}: its devdax extent ({map_len} bytes) is shorter than the chunk ({len} bytes)"
            )));
        }
        let dev_object = format!("device {} (for {object})", device.display());
        let (flags, prot) = match access {
            Access::ReadOnly => (libc::O_RDONLY, libc::PROT_READ),
            Access::ReadWrite => (libc::O_RDWR, libc::PROT_READ | libc::PROT_WRITE),
        };
        let c = CString::new(device.as_os_str().as_bytes())
            .map_err(|_| Error::InvalidArgument(format!("{dev_object}: the path contains NUL")))?;
        // SAFETY: NUL-terminated path; the result is checked and owned below.
        let dev = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
        if dev < 0 {
            let err = io::Error::last_os_error();
            let op = if err.raw_os_error() == Some(libc::EACCES) {
                "open (the pool's group and mode must let this user map its device; see docs/devdax.md)"
            } else {
                "open"
            };
            return Err(Error::os(op, dev_object, err));
        }
        // SAFETY: `dev` is a fresh descriptor we own; the mapping does not need it
        // once made, so it closes when this function returns.
        let dev = unsafe { OwnedFd::from_raw_fd(dev) };
        // SAFETY: a fresh mapping at an address the kernel picks (the device-dax
        // driver aligns it to the device alignment); no existing memory is affected.
        // The result is checked against MAP_FAILED.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                prot,
                libc::MAP_SHARED,
                dev.as_raw_fd(),
                off,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Error::last_os("map", dev_object));
        }
        let map = Mapping {
            // mmap never returns NULL on success for a non-fixed mapping.
            ptr: NonNull::new(p.cast()).ok_or_else(|| {
                Error::os("map", object, io::Error::from_raw_os_error(libc::EFAULT))
            })?,
            len,
            map_len,
            access,
            locked: AtomicBool::new(false),
        };
        map.populate()
            .map_err(|e| Error::os("pre-fault", object, e))?;
        Ok(map)
    }

    /// Faults every page in: MADV_POPULATE_WRITE/READ (Linux >= 5.14).
    pub fn populate(&self) -> io::Result<()> {
        let advice = match self.access {
            Access::ReadOnly => libc::MADV_POPULATE_READ,
            Access::ReadWrite => libc::MADV_POPULATE_WRITE,
        };
        // SAFETY: the range is exactly this mapping.
        let rc = unsafe { libc::madvise(self.ptr.as_ptr().cast(), self.len, advice) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EINVAL) {
            // Older kernel: touch one byte per page instead.
            self.touch_pages();
            return Ok(());
        }
        Err(err)
    }

    /// Reads one byte of every page (volatile, so it is not optimised away).
    pub fn touch_pages(&self) {
        let page = page_size();
        let mut off = 0;
        while off < self.len {
            // SAFETY: off < len, inside the mapping, which is readable.
            unsafe { std::ptr::read_volatile(self.ptr.as_ptr().add(off)) };
            off += page;
        }
    }

    /// Start address.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: mappings are never empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes, read-only.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the mapping is readable and lives as long as &self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes, writable; `None` for a read-only mapping.
    pub fn as_mut_slice(&mut self) -> Option<&mut [u8]> {
        match self.access {
            Access::ReadWrite => {
                // SAFETY: writable mapping of `len` bytes, exclusively borrowed
                // through &mut self for the slice's lifetime.
                Some(unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) })
            }
            Access::ReadOnly => None,
        }
    }

    /// Locks the pages in RAM (mlock). Idempotent.
    pub fn lock(&self, object: &str) -> Result<()> {
        if self.locked.load(Ordering::Acquire) {
            return Ok(());
        }
        // SAFETY: the range is exactly this mapping.
        if unsafe { libc::mlock(self.ptr.as_ptr().cast(), self.len) } != 0 {
            return Err(Error::last_os("mlock", object));
        }
        self.locked.store(true, Ordering::Release);
        Ok(())
    }

    /// Unlocks the pages (munlock). Idempotent.
    pub fn unlock(&self, object: &str) -> Result<()> {
        if !self.locked.load(Ordering::Acquire) {
            return Ok(());
        }
        // SAFETY: the range is exactly this mapping.
        if unsafe { libc::munlock(self.ptr.as_ptr().cast(), self.len) } != 0 {
            return Err(Error::last_os("munlock", object));
        }
        self.locked.store(false, Ordering::Release);
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: we own this range; nothing refers to it after drop (borrows of
        // the slices end with the owner). munmap also drops any mlock.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.map_len) };
    }
}

/// Maps the file at a HUGE_PAGE-aligned address: reserve len + HUGE_PAGE of
/// address space, map the file over the aligned part, give back the rest.
fn aligned_map(fd: BorrowedFd<'_>, len: usize, prot: i32) -> io::Result<*mut libc::c_void> {
    // No mapping that large could exist (callers pass file sizes <= i64::MAX).
    let span = len
        .checked_add(HUGE_PAGE)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
    // SAFETY: fresh anonymous reservation at a kernel-chosen address, checked.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            span,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let base_addr = base as usize;
    let aligned = (base_addr + HUGE_PAGE - 1) & !(HUGE_PAGE - 1);
    // SAFETY: [aligned, aligned + len) lies inside our own reservation, so
    // MAP_FIXED replaces only memory this function owns.
    let p = unsafe {
        libc::mmap(
            aligned as *mut libc::c_void,
            len,
            prot,
            libc::MAP_SHARED | libc::MAP_FIXED,
            fd.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        let err = io::Error::last_os_error();
        // SAFETY: releasing our own reservation.
        unsafe { libc::munmap(base, span) };
        return Err(err);
    }
    let head = aligned - base_addr;
    let page = page_size();
    let tail_start = aligned + len.div_ceil(page) * page;
    let tail = base_addr + span - tail_start;
    // SAFETY: head and tail are the unused parts of our own reservation.
    unsafe {
        if head > 0 {
            libc::munmap(base, head);
        }
        if tail > 0 {
            libc::munmap(tail_start as *mut libc::c_void, tail);
        }
        // Ask for huge pages where the pool's filesystem only gives them on advice.
        libc::madvise(p, len, libc::MADV_HUGEPAGE);
    }
    Ok(p)
}

/// The decimal number in xattr `name` of the file `fd`.
fn xattr_number(fd: BorrowedFd<'_>, name: &CStr, object: &str) -> Result<u64> {
    let mut buf = [0u8; 32];
    let n = sys::xattr::fget(fd, name, &mut buf).map_err(|e| {
        Error::os(
            "read xattr",
            format!("{} of {object}", name.to_string_lossy()),
            e,
        )
    })?;
    std::str::from_utf8(&buf[..n])
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{object}: xattr {} is not a number",
                name.to_string_lossy()
            ))
        })
}

/// The system page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}
