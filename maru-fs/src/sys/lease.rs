//! File leases (fcntl(2) `F_SETLEASE`).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Takes (`libc::F_RDLCK`/`F_WRLCK`) or drops (`libc::F_UNLCK`) a lease on `fd`.
pub(crate) fn set_lease(fd: BorrowedFd<'_>, kind: i32) -> io::Result<()> {
    // SAFETY: fcntl with an integer argument on a descriptor borrowed for the call.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETLEASE, kind) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
