//! The client end of the daemon's lending socket (`maru_proto::lend`): a Unix
//! `SOCK_SEQPACKET` connection, one message each way, descriptors received
//! with `SCM_RIGHTS`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Connects to the `SOCK_SEQPACKET` socket at `path` (close-on-exec).
pub(crate) fn connect_seqpacket(path: &Path) -> io::Result<OwnedFd> {
    // SAFETY: sockaddr_un is plain old data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, &src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = src as libc::c_char;
    }
    // SAFETY: plain socket(2); the result is checked before it is owned.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let len = (std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
    // SAFETY: `addr` is an initialised sockaddr_un and `len` does not exceed its size.
    let rc = unsafe { libc::connect(fd.as_raw_fd(), std::ptr::from_ref(&addr).cast(), len) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// What a Unix socket peer is told about this process at `connect(2)`
/// (`SO_PEERCRED`, `SO_PEERGROUPS`): its id, effective uid and gid, and
/// supplementary groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pid: u32,
    uid: u32,
    gid: u32,
    groups: Vec<libc::gid_t>,
}

impl Identity {
    /// The calling process's identity now.
    pub(crate) fn current() -> io::Result<Identity> {
        // SAFETY: geteuid and getegid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        Ok(Identity {
            pid: std::process::id(),
            uid,
            gid,
            groups: groups()?,
        })
    }
}

/// The calling process's supplementary groups.
fn groups() -> io::Result<Vec<libc::gid_t>> {
    loop {
        // SAFETY: with a size of 0, getgroups only returns the count.
        let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
        let len = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        let mut groups: Vec<libc::gid_t> = vec![0; len];
        // SAFETY: `groups` has room for `n` entries, the most the call writes.
        let got = unsafe { libc::getgroups(n, groups.as_mut_ptr()) };
        match usize::try_from(got) {
            Ok(got) => {
                groups.truncate(got);
                return Ok(groups);
            }
            // The groups grew between the two calls: ask again.
            Err(_) if io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) => {}
            Err(_) => return Err(io::Error::last_os_error()),
        }
    }
}

/// Sends `buf` as one message (no SIGPIPE if the peer is gone).
pub(crate) fn send(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<()> {
    // SAFETY: `buf` is a live slice of `buf.len()` bytes.
    let n = unsafe {
        libc::send(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != buf.len() {
        return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
    }
    Ok(())
}

/// One message received: its length and the descriptors that came with it.
pub(crate) struct Received {
    /// Bytes of the message in the caller's buffer.
    pub len: usize,
    /// The descriptors passed with it, in order (owned: closed when dropped).
    pub fds: Vec<OwnedFd>,
    /// The message or its descriptors did not fit (`MSG_TRUNC`/`MSG_CTRUNC`).
    pub truncated: bool,
}

/// Receives one message into `buf` with up to `max_fds` descriptors (marked
/// close-on-exec), blocking until it comes.
pub(crate) fn recv_with_fds(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    max_fds: usize,
) -> io::Result<Received> {
    let fd_bytes = u32::try_from(max_fds * size_of::<libc::c_int>())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(fd_bytes) } as usize;
    // u64 elements: the control buffer must be aligned for cmsghdr.
    let mut control = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain old data; all zeroes is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    let n = loop {
        // SAFETY: `msg` points at `iov` (over `buf`) and `control`, both alive
        // for the call and of the lengths given.
        let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    };
    let mut fds = Vec::new();
    // SAFETY: the CMSG_* walk stays within `msg_control`/`msg_controllen`,
    // which the kernel set; each SCM_RIGHTS payload is an array of ints whose
    // length the header gives, and each descriptor in it is new and ours.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c).cast::<libc::c_int>();
                let count = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                    / size_of::<libc::c_int>();
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok(Received {
        len: n,
        fds,
        truncated: msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0,
    })
}
