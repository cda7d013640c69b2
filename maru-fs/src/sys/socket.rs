//! Unix socket queries nix has no safe call for: the peer's supplementary
//! groups (`SO_PEERGROUPS`) and the bytes a socket sent that its peer has not
//! read yet (`SIOCOUTQ`).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `SO_PEERGROUPS` (Linux 4.13; the same number on every architecture but
/// alpha, mips, parisc and sparc, where maru does not run).
const SO_PEERGROUPS: libc::c_int = 59;

/// The supplementary groups of the process at the other end of a connected
/// Unix socket, as the kernel recorded them at `connect(2)`.
pub(crate) fn peer_groups(fd: BorrowedFd<'_>) -> io::Result<Vec<u32>> {
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = libc::socklen_t::try_from(groups.len() * size_of::<libc::gid_t>())
            .map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?;
        // SAFETY: `groups` is a live buffer of `len` bytes; the kernel writes at
        // most `len` bytes into it and stores the length it needs or wrote in `len`.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let n = len as usize / size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(n);
            return Ok(groups);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ERANGE) || n <= groups.len() {
            return Err(err);
        }
        groups.resize(n, 0);
    }
}

/// Bytes sent on `fd` that the peer has not received yet (`SIOCOUTQ`; for a
/// Unix socket, the messages still queued at the receiver).
pub(crate) fn unsent_bytes(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (TIOCOUTQ) stores one int through the pointer, which
    // points at `n`, alive for the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Accepts a connection on the listening socket `listener`, non-blocking and
/// close-on-exec.
pub(crate) fn accept(listener: BorrowedFd<'_>) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let fd = nix::sys::socket::accept4(
        listener.as_raw_fd(),
        nix::sys::socket::SockFlag::SOCK_CLOEXEC | nix::sys::socket::SockFlag::SOCK_NONBLOCK,
    )?;
    // SAFETY: accept4 returned a new descriptor that nothing else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
    use std::os::fd::AsFd;

    #[test]
    fn unsent_bytes_counts_what_the_peer_has_not_read() {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::empty(),
        )
        .unwrap();
        assert_eq!(unsent_bytes(a.as_fd()).unwrap(), 0);
        nix::sys::socket::send(a.as_raw_fd(), b"hello", MsgFlags::empty()).unwrap();
        assert!(unsent_bytes(a.as_fd()).unwrap() > 0);
        let mut buf = [0u8; 16];
        nix::sys::socket::recv(b.as_raw_fd(), &mut buf, MsgFlags::empty()).unwrap();
        assert_eq!(unsent_bytes(a.as_fd()).unwrap(), 0);
    }
}
