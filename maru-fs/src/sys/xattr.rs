//! Extended attributes of open files (f*xattr(2)).

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// `name` as a C string (`EINVAL` if it holds a NUL).
fn c_name(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Sets xattr `name` on `file` (flags as for setxattr(2): 0, XATTR_CREATE, XATTR_REPLACE).
pub(crate) fn fset_xattr_flags(
    file: &File,
    name: &OsStr,
    value: &[u8],
    flags: i32,
) -> io::Result<()> {
    let cname = c_name(name)?;
    // SAFETY: `cname` is a NUL-terminated string and `value` a valid buffer of
    // `value.len()` bytes, both alive for the call; the fd is owned by `file`.
    let rc = unsafe {
        libc::fsetxattr(
            file.as_fd().as_raw_fd(),
            cname.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Removes xattr `name` from `file`.
pub(crate) fn fremove_xattr(file: &File, name: &OsStr) -> io::Result<()> {
    let cname = c_name(name)?;
    // SAFETY: `cname` is NUL-terminated and alive for the call; the fd is owned by `file`.
    let rc = unsafe { libc::fremovexattr(file.as_fd().as_raw_fd(), cname.as_ptr()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The value of xattr `name` of `file` (at most 64 KiB, the kernel's limit).
pub(crate) fn fget_xattr(file: &File, name: &OsStr) -> io::Result<Vec<u8>> {
    let cname = c_name(name)?;
    let mut buf = vec![0u8; 65536];
    // SAFETY: `cname` is NUL-terminated; `buf` is a writable buffer of `buf.len()`
    // bytes; both outlive the call; the fd is owned by `file`.
    let n = unsafe {
        libc::fgetxattr(
            file.as_fd().as_raw_fd(),
            cname.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// The names of `file`'s xattrs.
pub(crate) fn flist_xattr(file: &File) -> io::Result<Vec<OsString>> {
    let mut buf = vec![0u8; 65536];
    // SAFETY: `buf` is a writable buffer of `buf.len()` bytes that outlives the call;
    // the fd is owned by `file`.
    let n =
        unsafe { libc::flistxattr(file.as_fd().as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| OsString::from_vec(s.to_vec()))
        .collect())
}
