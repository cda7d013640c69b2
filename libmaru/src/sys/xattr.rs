//! Extended attributes: `getxattr(2)`, `fgetxattr(2)`, `setxattr(2)`.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Converts a `*xattr` return value to the value's length.
fn len_of(n: isize) -> io::Result<usize> {
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// Reads xattr `name` of the file at `path` into `buf`: the value's length.
pub(crate) fn get(path: &CStr, name: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: NUL-terminated path and name; `buf` is writable for its length.
    let n = unsafe {
        libc::getxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    len_of(n)
}

/// Reads xattr `name` of the open file `fd` into `buf`: the value's length.
pub(crate) fn fget(fd: BorrowedFd<'_>, name: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: valid fd and NUL-terminated name; `buf` is writable for its length.
    let n = unsafe {
        libc::fgetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    len_of(n)
}

/// Sets xattr `name` of the file at `path` to `value` (create or replace).
pub(crate) fn set(path: &CStr, name: &CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: NUL-terminated path and name; pointer and length of `value`.
    let rc = unsafe {
        libc::setxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
