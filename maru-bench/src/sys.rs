//! The system layer: the benchmark's unsafe code (a shared mapping it times
//! `mmap` and `memcpy` on, and reading a byte slice as words), each behind a
//! safe function or type. The rest of the crate denies `unsafe_code` (see
//! `main.rs`); the other system calls go through `nix`'s safe API.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// A `MAP_SHARED` mapping of a file, owned by this value (unmapped on drop).
#[derive(Debug)]
pub struct Map {
    ptr: *mut libc::c_void,
    len: usize,
    writable: bool,
}

impl Map {
    /// Maps the first `len` bytes of `fd` (read-write if `writable`).
    pub fn new(fd: BorrowedFd<'_>, len: usize, writable: bool) -> io::Result<Map> {
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: a fresh mapping at an address the kernel picks, of a
        // descriptor borrowed for the call; no existing memory is affected, and
        // the result is checked against MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Map { ptr, len, writable })
    }

    /// Faults every page in for writing (`MADV_POPULATE_WRITE`); a failure is
    /// ignored (the pages then fault in at the copy).
    pub fn populate_write(&self) {
        // SAFETY: the range is exactly this mapping; the advice changes no contents.
        unsafe { libc::madvise(self.ptr, self.len, libc::MADV_POPULATE_WRITE) };
    }

    /// Copies `src` (at most the mapping's length) to the start of the
    /// mapping; does nothing on a read-only mapping.
    pub fn copy_in(&mut self, src: &[u8]) {
        if !self.writable {
            return;
        }
        // SAFETY: at most `len` bytes into a writable mapping of `len` bytes,
        // borrowed exclusively through &mut self; `src` is not part of it.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.cast(), src.len().min(self.len))
        };
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: we own this range and nothing refers to it after drop.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

/// `bytes` split into an unaligned head, the aligned middle as `u64` words and
/// an unaligned tail.
pub fn as_words(bytes: &[u8]) -> (&[u8], &[u64], &[u8]) {
    // SAFETY: u64 has no invalid bit patterns; align_to splits correctly.
    unsafe { bytes.align_to::<u64>() }
}
