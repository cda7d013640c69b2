//! Memory mappings of chunk files: huge-page aligned, pre-faulted, unmapped on drop.

use crate::error::{Error, Result};
use crate::sys::{self, mem::Region};
use maru_proto::xattr;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
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
    region: Region,
    /// The chunk's bytes (what the slices show; a devdax extent is whole
    /// alignment units, longer than the chunk).
    len: usize,
    locked: AtomicBool,
}

/// "cannot map an empty chunk" for `len == 0`.
fn refuse_empty(len: usize, object: &str) -> Result<()> {
    if len == 0 {
        return Err(Error::InvalidArgument(format!(
            "cannot map {object}: it is empty (0 bytes)"
        )));
    }
    Ok(())
}

impl Mapping {
    /// Maps `len` bytes of `fd` from offset 0, MAP_SHARED, aligned to a huge page
    /// when `len >= ALIGN_THRESHOLD`. Read-write mappings are pre-faulted for
    /// writing (the pool allocates the pages now); read-only mappings fault
    /// lazily (see [`Mapping::populate`]).
    pub fn new(fd: BorrowedFd<'_>, len: usize, access: Access, object: &str) -> Result<Self> {
        refuse_empty(len, object)?;
        let writable = access == Access::ReadWrite;
        let region = if len >= ALIGN_THRESHOLD {
            Region::map_aligned(fd, len, HUGE_PAGE, writable)
        } else {
            Region::map(fd, len, 0, writable)
        }
        .map_err(|e| Error::os("map", object, e))?;
        let map = Mapping {
            region,
            len,
            locked: AtomicBool::new(false),
        };
        if writable {
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
        refuse_empty(len, object)?;
        let (offset, map_len) = devdax_extent(fd, object)?;
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
        let writable = access == Access::ReadWrite;
        let flags = if writable {
            libc::O_RDWR
        } else {
            libc::O_RDONLY
        };
        let c = CString::new(device.as_os_str().as_bytes())
            .map_err(|_| Error::InvalidArgument(format!("{dev_object}: the path contains NUL")))?;
        // The mapping does not need the device fd once made: it closes on return.
        let dev = sys::fs::open(&c, flags).map_err(|err| {
            let op = if err.raw_os_error() == Some(libc::EACCES) {
                "open (the pool's group and mode must let this user map its device; see docs/devdax.md)"
            } else {
                "open"
            };
            Error::os(op, dev_object.clone(), err)
        })?;
        // The device-dax driver aligns the address to the device alignment.
        let region = Region::map(dev.as_fd(), map_len, off, writable)
            .map_err(|e| Error::os("map", dev_object, e))?;
        let map = Mapping {
            region,
            len,
            locked: AtomicBool::new(false),
        };
        map.populate()
            .map_err(|e| Error::os("pre-fault", object, e))?;
        Ok(map)
    }

    /// Faults every page in: MADV_POPULATE_WRITE/READ (Linux >= 5.14), or one
    /// read per page on older kernels.
    pub fn populate(&self) -> io::Result<()> {
        self.region.populate(self.len)
    }

    /// Start address.
    pub fn as_ptr(&self) -> *mut u8 {
        self.region.as_ptr()
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
        self.region.bytes(self.len)
    }

    /// The bytes, writable; `None` for a read-only mapping.
    pub fn as_mut_slice(&mut self) -> Option<&mut [u8]> {
        self.region.bytes_mut(self.len)
    }

    /// Locks the pages in RAM (mlock). Idempotent.
    pub fn lock(&self, object: &str) -> Result<()> {
        if self.locked.load(Ordering::Acquire) {
            return Ok(());
        }
        self.region
            .lock(self.len, true)
            .map_err(|e| Error::os("mlock", object, e))?;
        self.locked.store(true, Ordering::Release);
        Ok(())
    }

    /// Unlocks the pages (munlock). Idempotent.
    pub fn unlock(&self, object: &str) -> Result<()> {
        if !self.locked.load(Ordering::Acquire) {
            return Ok(());
        }
        self.region
            .lock(self.len, false)
            .map_err(|e| Error::os("munlock", object, e))?;
        self.locked.store(false, Ordering::Release);
        Ok(())
    }
}

/// The decimal number in xattr `name` of the file `fd`.
/// The chunk's `(device offset, extent length)`: one [`xattr::DEVDAX_EXTENT`]
/// read, or with a daemon that predates it [`xattr::DEVDAX_OFFSET`] and
/// [`xattr::DEVDAX_LEN`].
fn devdax_extent(fd: BorrowedFd<'_>, object: &str) -> Result<(u64, u64)> {
    let mut buf = [0u8; 48];
    match sys::xattr::fget(fd, xattr::DEVDAX_EXTENT_C, &mut buf) {
        Ok(n) => std::str::from_utf8(&buf[..n])
            .ok()
            .and_then(|t| t.split_once(' '))
            .and_then(|(o, l)| Some((o.parse().ok()?, l.parse().ok()?)))
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{object}: xattr {} is not \"<offset> <len>\"",
                    xattr::DEVDAX_EXTENT
                ))
            }),
        Err(e) if e.raw_os_error() == Some(libc::ENODATA) => Ok((
            xattr_number(fd, xattr::DEVDAX_OFFSET_C, object)?,
            xattr_number(fd, xattr::DEVDAX_LEN_C, object)?,
        )),
        Err(e) => Err(Error::os(
            "read xattr",
            format!("{} of {object}", xattr::DEVDAX_EXTENT),
            e,
        )),
    }
}

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
