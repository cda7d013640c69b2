//! Borrowing many chunks in one round trip: the client of the daemon's lending
//! socket (`maru_proto::lend`).
//!
//! Opening a chunk through the mount is one FUSE round trip per key. A pool
//! whose directory carries the [`maru_proto::xattr::LEND_SOCKET`] xattr also
//! answers batches: one message asks for up to 253 chunk names and one reply
//! brings a read-only descriptor of each present chunk, checked against this
//! process's credentials as an open on the mount would be. The descriptor maps
//! the same pages and pins the chunk the same way. Anything that goes wrong
//! here (no socket in this mount namespace, a daemon restarting, an old daemon)
//! only means the caller opens through the mount instead.

use crate::sys;
use crate::sys::socket::Identity;
use maru_proto::lend::{Reply, Request, MAX_KEYS, MAX_REPLY};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// After a failure, how long before connecting again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// What the daemon answered for one name.
pub(super) enum Lent {
    /// A read-only descriptor of the chunk, its size and its inode on the mount.
    Chunk { fd: OwnedFd, size: u64, ino: u64 },
    /// No published chunk of that name.
    Missing,
    /// Not lent for another reason (e.g. `EACCES`): open through the mount to
    /// get the kernel's own answer.
    Refused,
}

/// The connection, made on first use.
enum Conn {
    Unconnected,
    /// Connected by the process `by` was. The daemon checks the credentials
    /// taken at `connect(2)`, so the connection is not used once the process
    /// has changed its uid, gid or groups; nor by a child forked later, which
    /// would share one stream with its parent (each could read the other's
    /// reply and map the wrong chunks).
    Connected {
        fd: OwnedFd,
        by: Identity,
    },
    /// Failed at this time; not tried again before [`RETRY_AFTER`].
    Failed(Instant),
}

/// A pool's lending socket.
pub(super) struct Lender {
    socket: PathBuf,
    /// The pool's name (its directory under the mount).
    pool: Vec<u8>,
    conn: Mutex<Conn>,
}

impl Lender {
    /// A lender for pool `pool` on `socket` (connects on first use).
    pub(super) fn new(socket: PathBuf, pool: Vec<u8>) -> Self {
        Lender {
            socket,
            pool,
            conn: Mutex::new(Conn::Unconnected),
        }
    }

    fn conn(&self) -> MutexGuard<'_, Conn> {
        // A panic while holding this lock leaves at worst a connection to drop.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Borrows `names` (at most [`MAX_KEYS`]); `None` if the socket cannot be
    /// used now (then open through the mount).
    pub(super) fn borrow(&self, names: &[&[u8]]) -> Option<Vec<Lent>> {
        debug_assert!(names.len() <= MAX_KEYS);
        let request = Request::encode(&self.pool, names).ok()?;
        let mut conn = self.conn();
        if let Conn::Failed(at) = *conn {
            if at.elapsed() < RETRY_AFTER {
                return None;
            }
            *conn = Conn::Unconnected;
        }
        let me = Identity::current().ok()?;
        if matches!(&*conn, Conn::Connected { by, .. } if *by != me) {
            // Inherited through fork, or made with other credentials (a fork
            // closes this process's copy only).
            *conn = Conn::Unconnected;
        }
        // A connection made earlier may have been closed by the daemon (idle, or
        // restarted): one new connection and one more try.
        let mut fresh = false;
        loop {
            if let Conn::Unconnected = *conn {
                match sys::socket::connect_seqpacket(&self.socket) {
                    Ok(fd) => *conn = Conn::Connected { fd, by: me.clone() },
                    Err(_) => {
                        *conn = Conn::Failed(Instant::now());
                        return None;
                    }
                }
                fresh = true;
            }
            let Conn::Connected { fd, .. } = &*conn else {
                return None;
            };
            match exchange(fd, &request, names.len()) {
                Ok(lent) => return Some(lent),
                // Too many descriptors left unread by others: the mount this time.
                Err(Failure::Busy) => return None,
                Err(Failure::Closed) if !fresh => *conn = Conn::Unconnected,
                Err(_) => {
                    // A broken or confused connection is not reused.
                    *conn = Conn::Failed(Instant::now());
                    return None;
                }
            }
        }
    }
}

/// Why an exchange gave no answer.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    /// The daemon closed the connection (or is gone).
    Closed,
    /// The daemon answered `EBUSY`: too many descriptors in flight.
    Busy,
    /// Anything else: a refusal of the whole request, a reply that does not fit.
    Broken,
}

/// Sends `request` and reads its reply.
fn exchange(fd: &OwnedFd, request: &[u8], asked: usize) -> Result<Vec<Lent>, Failure> {
    let closed = |e: std::io::Error| match e.raw_os_error() {
        Some(libc::EPIPE | libc::ECONNRESET | libc::ENOTCONN) => Failure::Closed,
        _ => Failure::Broken,
    };
    sys::socket::send(fd.as_fd(), request).map_err(closed)?;
    let mut buf = vec![0u8; MAX_REPLY];
    let got = sys::socket::recv_with_fds(fd.as_fd(), &mut buf, MAX_KEYS).map_err(closed)?;
    if got.len == 0 {
        return Err(Failure::Closed);
    }
    if got.truncated {
        return Err(Failure::Broken);
    }
    let reply = Reply::parse(&buf[..got.len]).map_err(|_| Failure::Broken)?;
    if reply.status == libc::EBUSY {
        return Err(Failure::Busy);
    }
    if reply.status != 0 || reply.entries.len() != asked || reply.descriptors() != got.fds.len() {
        return Err(Failure::Broken);
    }
    let mut fds = got.fds.into_iter();
    let lent = reply
        .entries
        .iter()
        .map(|e| match e.errno {
            0 => match fds.next() {
                Some(fd) => Lent::Chunk {
                    fd,
                    size: e.size,
                    ino: e.ino,
                },
                None => Lent::Refused,
            },
            libc::ENOENT => Lent::Missing,
            _ => Lent::Refused,
        })
        .collect();
    Ok(lent)
}
