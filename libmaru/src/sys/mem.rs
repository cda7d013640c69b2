//! Memory mappings: a [`Region`] owns one `mmap` (unmapped on drop) and is
//! the only way the rest of libmaru touches mapped memory.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;

/// A shared mapping of a file or device, owned by this value.
#[derive(Debug)]
pub(crate) struct Region {
    ptr: NonNull<u8>,
    /// Bytes mapped.
    len: usize,
    writable: bool,
}

// SAFETY: a Region is a plain address range owned by this value; the pages are
// shared file pages that any thread may access. Writes go through &mut self
// only, so Rust's aliasing rules are kept by the owners.
unsafe impl Send for Region {}
// SAFETY: shared access only reads the range (see above).
unsafe impl Sync for Region {}

fn prot(writable: bool) -> libc::c_int {
    if writable {
        libc::PROT_READ | libc::PROT_WRITE
    } else {
        libc::PROT_READ
    }
}

/// The start of a successful `mmap` as a non-null pointer.
fn start(p: *mut libc::c_void) -> io::Result<NonNull<u8>> {
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // mmap never returns NULL on success for a non-fixed mapping.
    NonNull::new(p.cast()).ok_or_else(|| io::Error::from_raw_os_error(libc::EFAULT))
}

impl Region {
    /// Maps `len` bytes of `fd` from `offset`, MAP_SHARED, at an address the
    /// kernel picks.
    pub(crate) fn map(
        fd: BorrowedFd<'_>,
        len: usize,
        offset: libc::off_t,
        writable: bool,
    ) -> io::Result<Region> {
        // SAFETY: a fresh mapping at an address the kernel picks; no existing
        // memory is affected. The result is checked against MAP_FAILED.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot(writable),
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                offset,
            )
        };
        Ok(Region {
            ptr: start(p)?,
            len,
            writable,
        })
    }

    /// Maps `len` bytes of `fd` from offset 0, MAP_SHARED, at an `align`-aligned
    /// address (a power of two): reserve `len + align` of address space, map
    /// the file over the aligned part, give back the rest; then ask for huge
    /// pages (MADV_HUGEPAGE, where the filesystem gives them only on advice).
    pub(crate) fn map_aligned(
        fd: BorrowedFd<'_>,
        len: usize,
        align: usize,
        writable: bool,
    ) -> io::Result<Region> {
        // No mapping that large could exist (callers pass file sizes <= i64::MAX).
        let span = len
            .checked_add(align)
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
        let base = start(base)?.as_ptr() as usize;
        let aligned = (base + align - 1) & !(align - 1);
        // SAFETY: [aligned, aligned + len) lies inside our own reservation, so
        // MAP_FIXED replaces only memory this function owns.
        let p = unsafe {
            libc::mmap(
                aligned as *mut libc::c_void,
                len,
                prot(writable),
                libc::MAP_SHARED | libc::MAP_FIXED,
                fd.as_raw_fd(),
                0,
            )
        };
        let ptr = match start(p) {
            Ok(p) => p,
            Err(e) => {
                // SAFETY: releasing our own reservation.
                unsafe { libc::munmap(base as *mut libc::c_void, span) };
                return Err(e);
            }
        };
        let head = aligned - base;
        let tail_start = aligned + len.div_ceil(page_size()) * page_size();
        let tail = base + span - tail_start;
        // SAFETY: head and tail are the unused parts of our own reservation;
        // the advice covers exactly the new mapping.
        unsafe {
            if head > 0 {
                libc::munmap(base as *mut libc::c_void, head);
            }
            if tail > 0 {
                libc::munmap(tail_start as *mut libc::c_void, tail);
            }
            libc::madvise(p, len, libc::MADV_HUGEPAGE);
        }
        Ok(Region { ptr, len, writable })
    }

    /// Start address.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The first `n` bytes (at most the mapping), read-only.
    pub(crate) fn bytes(&self, n: usize) -> &[u8] {
        // SAFETY: the mapping is readable for `len >= n.min(len)` bytes and
        // lives as long as &self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), n.min(self.len)) }
    }

    /// The first `n` bytes (at most the mapping), writable; `None` for a
    /// read-only mapping.
    pub(crate) fn bytes_mut(&mut self, n: usize) -> Option<&mut [u8]> {
        if !self.writable {
            return None;
        }
        // SAFETY: writable mapping of `len >= n.min(len)` bytes, exclusively
        // borrowed through &mut self for the slice's lifetime.
        Some(unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), n.min(self.len)) })
    }

    /// Word `i` of the mapping as an atomic (for memory another process
    /// writes); `None` outside the mapping.
    pub(crate) fn word(&self, i: usize) -> Option<&AtomicU64> {
        let end = i.checked_add(1)?.checked_mul(8)?;
        if end > self.len || self.ptr.as_ptr() as usize % 8 != 0 {
            return None;
        }
        // SAFETY: the word lies inside the mapping (checked) and is aligned
        // (mappings are page aligned; checked), and the mapping lives as long
        // as &self. Atomics may alias memory other processes write.
        Some(unsafe { &*self.ptr.as_ptr().cast::<AtomicU64>().add(i) })
    }

    /// `madvise(advice)` on the first `n` bytes.
    fn advise(&self, n: usize, advice: libc::c_int) -> io::Result<()> {
        // SAFETY: the range lies inside this mapping.
        let rc = unsafe { libc::madvise(self.ptr.as_ptr().cast(), n.min(self.len), advice) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Faults the first `n` bytes in: MADV_POPULATE_WRITE (writable) or
    /// MADV_POPULATE_READ (Linux >= 5.14); on an older kernel (EINVAL) by
    /// reading one byte per page.
    pub(crate) fn populate(&self, n: usize) -> io::Result<()> {
        let advice = if self.writable {
            libc::MADV_POPULATE_WRITE
        } else {
            libc::MADV_POPULATE_READ
        };
        match self.advise(n, advice) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                self.touch_pages(n);
                Ok(())
            }
            other => other,
        }
    }

    /// Reads one byte of every page of the first `n` bytes (volatile, so it
    /// is not optimised away).
    fn touch_pages(&self, n: usize) {
        let n = n.min(self.len);
        let mut off = 0;
        while off < n {
            // SAFETY: off < n <= len, inside the mapping, which is readable.
            unsafe { std::ptr::read_volatile(self.ptr.as_ptr().add(off)) };
            off += page_size();
        }
    }

    /// Locks (`mlock`) or unlocks (`munlock`) the first `n` bytes.
    pub(crate) fn lock(&self, n: usize, lock: bool) -> io::Result<()> {
        let (p, n) = (self.ptr.as_ptr().cast(), n.min(self.len));
        // SAFETY: the range lies inside this mapping.
        let rc = unsafe {
            if lock {
                libc::mlock(p, n)
            } else {
                libc::munlock(p, n)
            }
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: we own this range; nothing refers to it after drop (borrows
        // of the slices end with the owner). munmap also drops any mlock.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The system page size.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}
