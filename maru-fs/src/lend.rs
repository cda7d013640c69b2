//! The lending socket: read-only descriptors of published chunks, handed out in
//! batches (protocol: `maru_proto::lend`).
//!
//! A FUSE open costs a round trip per chunk and the kernel cannot batch them, so
//! a client retrieving 256 cold chunks pays 256 round trips. For pools whose
//! chunks are files (tmpfs), one message here opens up to 253 chunks: the
//! thread checks each name against the caller's credentials exactly as the
//! kernel checks a path on the mount (`state::lend`), opens the chunk's backing
//! file read-only and passes the descriptors back with `SCM_RIGHTS`. A lent
//! descriptor is as good a pin as a FUSE open: eviction asks the kernel whether
//! a backing file is open or mapped anywhere (`crate::lease`), and the reaper
//! returns a removed chunk's space only when the last descriptor and mapping of
//! it are gone. Nothing is kept per connection.
//!
//! Hostile clients: a connection that sends a request while its previous reply
//! is still unread is dropped (so each holds at most one reply's descriptors in
//! flight), so is one that leaves a reply unread for [`UNREAD_TIMEOUT`], and one
//! that sends a malformed message. Descriptors sent and not yet received count
//! against the daemon's user in the kernel (`too_many_unix_fds`), so the
//! descriptors left unread are bounded overall and per uid: beyond
//! [`MAX_UNREAD`] / [`MAX_UNREAD_PER_UID`] a request is answered `EBUSY` (the
//! client opens through the mount this time). Connections are bounded in number,
//! overall and per uid, and one idle for [`IDLE_TIMEOUT`] is closed (libmaru
//! connects again when it next needs one).

use std::ffi::OsStr;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fuser::Errno;
use maru_proto::lend::{Entry, Reply, Request, MAX_REQUEST};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    self, AddressFamily, Backlog, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr,
};

use crate::fs::Shared;
use crate::ratelimit::RateLimited;
use crate::state::Lent;
use crate::sys;

/// Connections served at once.
const MAX_CONNECTIONS: usize = 1024;
/// Connections one uid may hold (root included).
const MAX_CONNECTIONS_PER_UID: usize = 128;
/// Descriptors sent and not yet received, over all connections (kept below the
/// usual 1024-file limit of processes of the daemon's user that pass
/// descriptors without `CAP_SYS_RESOURCE`).
const MAX_UNREAD: usize = 768;
/// Descriptors sent and not yet received by one uid's connections.
const MAX_UNREAD_PER_UID: usize = 256;
/// How long a reply may stay unread before its connection is dropped.
const UNREAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may stay without a request before it is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// How often connections are swept for the two timeouts.
const SWEEP: Duration = Duration::from_secs(1);
/// Names opened per hold of the state lock (bounds how long a batch keeps the
/// FUSE request threads waiting).
const NAMES_PER_LOCK: usize = 32;

/// Permission bit for reading a file.
pub(crate) const MAY_READ: u16 = 0o4;
/// Permission bit for searching a directory.
pub(crate) const MAY_EXEC: u16 = 0o1;

static REFUSED: RateLimited = RateLimited::new("lending refusals");

/// Who is asking: the credentials the kernel recorded for a connection's peer.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    /// Process id at connect time (for messages).
    pub pid: i32,
    /// Effective uid.
    pub uid: u32,
    /// Effective gid.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

impl Peer {
    /// Whether the peer is in group `gid` (primary or supplementary).
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }

    /// Whether the peer has every bit of `want` on a file of owner `uid`, group
    /// `gid` and permission bits `perm`, as the kernel's `generic_permission`
    /// decides: the owner's bits for the owner, the group's for a member, the
    /// others' for everyone else; root may read and search anything
    /// (`CAP_DAC_READ_SEARCH`).
    pub fn may(&self, uid: u32, gid: u32, perm: u16, want: u16) -> bool {
        if self.uid == 0 {
            return true;
        }
        let bits = if uid == self.uid {
            perm >> 6
        } else if self.in_group(gid) {
            perm >> 3
        } else {
            perm
        };
        bits & want == want
    }

    /// Whether the peer may search every directory of `dirs` (and their
    /// ancestors), as a path walk to the mount point needs: a mount inside a
    /// directory only some may enter is out of the others' reach. Mode bits only
    /// (an ACL is not consulted); a directory that cannot be read is a no.
    fn may_reach(&self, dirs: Option<&Path>) -> bool {
        dirs.into_iter().flat_map(Path::ancestors).all(|d| {
            std::fs::metadata(d)
                .is_ok_and(|m| self.may(m.uid(), m.gid(), (m.mode() & 0o7777) as u16, MAY_EXEC))
        })
    }

    /// The credentials of the process connected on `fd`.
    fn of(fd: &OwnedFd) -> io::Result<Peer> {
        let cred = socket::getsockopt(fd, socket::sockopt::PeerCredentials)?;
        Ok(Peer {
            pid: cred.pid(),
            uid: cred.uid(),
            gid: cred.gid(),
            groups: sys::socket::peer_groups(fd.as_fd())?,
        })
    }
}

/// The lending thread; stops (and removes its socket) on [`Lender::stop`] or drop.
#[derive(Debug)]
pub(crate) struct Lender {
    stop: Option<OwnedFd>,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
}

impl Lender {
    /// Stops serving and removes the socket.
    pub fn stop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for Lender {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Listens on `path` (replacing a stale socket there; anything else is an
/// error) and serves it from a thread of its own, for the mount at
/// `mountpoint` (whose parent directories a peer must be able to search).
pub(crate) fn spawn(shared: Arc<Shared>, path: &Path, mountpoint: &Path) -> io::Result<Lender> {
    let above = mountpoint
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(std::fs::canonicalize)
        .transpose()?;
    let listener = listen(path)?;
    let (stop_rx, stop_tx) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let thread = std::thread::Builder::new()
        .name("maru-lend".into())
        .spawn(move || run(&shared, above.as_deref(), &listener, &stop_rx))?;
    Ok(Lender {
        stop: Some(stop_tx),
        thread: Some(thread),
        path: path.to_path_buf(),
    })
}

fn listen(path: &Path) -> io::Result<OwnedFd> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    socket::bind(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    // Anyone may ask; each name is checked against the asker's credentials.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    socket::listen(&fd, Backlog::new(128)?)?;
    Ok(fd)
}

/// One client connection.
struct Conn {
    fd: OwnedFd,
    peer: Peer,
    /// Descriptors in the last reply, while it may still be unread.
    unread: usize,
    /// When the last reply was sent.
    sent_at: Instant,
    /// When the last request came (or the connection was made).
    last_request: Instant,
}

impl Conn {
    /// Whether the last reply is still unread (forgets it once read).
    fn reply_unread(&mut self) -> bool {
        if self.unread > 0 && sys::socket::unsent_bytes(self.fd.as_fd()).is_ok_and(|n| n == 0) {
            self.unread = 0;
        }
        self.unread > 0
    }

    /// Whether the connection outstayed a timeout (and is to be closed).
    fn expired(&mut self) -> bool {
        if self.reply_unread() {
            if self.sent_at.elapsed() > UNREAD_TIMEOUT {
                REFUSED.warn(|| {
                    format!(
                        "lending socket: pid {} (uid {}) left {} descriptors unread for {} s; \
                         connection closed",
                        self.peer.pid,
                        self.peer.uid,
                        self.unread,
                        UNREAD_TIMEOUT.as_secs()
                    )
                });
                return true;
            }
            return false;
        }
        self.last_request.elapsed() > IDLE_TIMEOUT
    }
}

/// Descriptors left unread: over all connections, and those of `uid`.
fn unread(conns: &mut [Conn], uid: u32) -> (usize, usize) {
    conns.iter_mut().fold((0, 0), |(all, mine), c| {
        if c.reply_unread() {
            let n = c.unread;
            (all + n, mine + if c.peer.uid == uid { n } else { 0 })
        } else {
            (all, mine)
        }
    })
}

fn run(shared: &Shared, above: Option<&Path>, listener: &OwnedFd, stop: &OwnedFd) {
    let mut conns: Vec<Conn> = Vec::new();
    let mut buf = vec![0u8; MAX_REQUEST + 1];
    let mut last_sweep = Instant::now();
    loop {
        let mut fds: Vec<PollFd<'_>> = vec![
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
        ];
        fds.extend(
            conns
                .iter()
                .map(|c| PollFd::new(c.fd.as_fd(), PollFlags::POLLIN)),
        );
        let timeout = if conns.is_empty() {
            PollTimeout::NONE
        } else {
            PollTimeout::try_from(SWEEP).unwrap_or(PollTimeout::MAX)
        };
        match nix::poll::poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                log::error!("lending socket: poll failed ({e}); chunks are no longer lent");
                return;
            }
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        if ready[0] {
            return;
        }
        // Connections first (by index, from the back, so removal keeps indices).
        for i in (0..conns.len()).rev() {
            if !ready[i + 2] {
                continue;
            }
            let uid = conns[i].peer.uid;
            let budget = unread(&mut conns, uid);
            if !serve_one(shared, above, &mut conns[i], budget, &mut buf) {
                conns.swap_remove(i);
            }
        }
        if last_sweep.elapsed() >= SWEEP {
            last_sweep = Instant::now();
            conns.retain_mut(|c| !c.expired());
        }
        if ready[1] {
            accept_all(listener, &mut conns);
        }
    }
}

fn accept_all(listener: &OwnedFd, conns: &mut Vec<Conn>) {
    loop {
        let fd = match sys::socket::accept(listener.as_fd()) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) => {
                REFUSED.warn(|| format!("lending socket: accept failed: {e}"));
                return;
            }
        };
        let peer = match Peer::of(&fd) {
            Ok(p) => p,
            Err(e) => {
                REFUSED.warn(|| format!("lending socket: cannot read the peer's credentials: {e}"));
                continue;
            }
        };
        let per_uid = conns.iter().filter(|c| c.peer.uid == peer.uid).count();
        if conns.len() >= MAX_CONNECTIONS || per_uid >= MAX_CONNECTIONS_PER_UID {
            REFUSED.warn(|| {
                format!(
                    "lending socket: connection from pid {} (uid {}) refused: {} open ({} of \
                     that uid; at most {MAX_CONNECTIONS}, {MAX_CONNECTIONS_PER_UID} per uid)",
                    peer.pid,
                    peer.uid,
                    conns.len(),
                    per_uid
                )
            });
            continue;
        }
        let now = Instant::now();
        conns.push(Conn {
            fd,
            peer,
            unread: 0,
            sent_at: now,
            last_request: now,
        });
    }
}

/// Reads and answers one request on `c` (for a mount below the directory
/// `above`); false when the connection is done (closed by the peer,
/// misbehaving, or broken).
/// `(all, mine)`: descriptors left unread by all connections and by this one's uid.
fn serve_one(
    shared: &Shared,
    above: Option<&Path>,
    c: &mut Conn,
    (all, mine): (usize, usize),
    buf: &mut [u8],
) -> bool {
    // The previous reply must have been read: a client that queues requests
    // without reading would pile descriptors up in flight.
    match sys::socket::unsent_bytes(c.fd.as_fd()) {
        Ok(0) => {}
        Ok(_) | Err(_) => {
            REFUSED.warn(|| {
                format!(
                    "lending socket: pid {} (uid {}) sent a request before reading its last \
                     reply; connection closed",
                    c.peer.pid, c.peer.uid
                )
            });
            return false;
        }
    }
    let (len, truncated) = {
        let mut iov = [IoSliceMut::new(buf)];
        // No control buffer: descriptors a client sends us are discarded by the kernel.
        match socket::recvmsg::<()>(c.fd.as_raw_fd(), &mut iov, None, MsgFlags::MSG_DONTWAIT) {
            Ok(m) => (m.bytes, m.flags.contains(MsgFlags::MSG_TRUNC)),
            Err(nix::errno::Errno::EAGAIN) => return true,
            Err(_) => return false,
        }
    };
    if len == 0 {
        return false; // end of stream: the client closed
    }
    c.last_request = Instant::now();
    let parsed = Request::parse(&buf[..len]).ok().filter(|_| !truncated);
    let keep = parsed.is_some();
    let (reply, files) = match parsed {
        Some(req)
            if all + req.names.len() > MAX_UNREAD
                || mine + req.names.len() > MAX_UNREAD_PER_UID =>
        {
            REFUSED.warn(|| {
                format!(
                    "lending socket: {all} descriptors unread ({mine} of uid {}); a request of \
                     pid {} answered EBUSY (it opens through the mount)",
                    c.peer.uid, c.peer.pid
                )
            });
            (
                Reply::encode(libc::EBUSY, &[]).unwrap_or_default(),
                Vec::new(),
            )
        }
        Some(req) => answer(shared, above, &req, &c.peer),
        None => {
            REFUSED.warn(|| {
                format!(
                    "lending socket: malformed request from pid {} (uid {}); connection closed",
                    c.peer.pid, c.peer.uid
                )
            });
            (
                Reply::encode(libc::EPROTO, &[]).unwrap_or_default(),
                Vec::new(),
            )
        }
    };
    let raw: Vec<i32> = files.iter().map(|f| f.file.as_raw_fd()).collect();
    let cmsgs = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &cmsgs };
    let sent = socket::sendmsg::<()>(
        c.fd.as_raw_fd(),
        &[IoSlice::new(&reply)],
        cmsgs,
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        None,
    );
    if sent.is_ok() {
        c.unread = files.len();
        c.sent_at = Instant::now();
    }
    // Our copies of the descriptors close here (the client holds its own).
    drop(files);
    sent.is_ok() && keep
}

/// The reply to `req` and the chunks lent, in order.
fn answer(
    shared: &Shared,
    above: Option<&Path>,
    req: &Request<'_>,
    peer: &Peer,
) -> (Vec<u8>, Vec<Lent>) {
    if !peer.may_reach(above) {
        return (
            Reply::encode(libc::EACCES, &[]).unwrap_or_default(),
            Vec::new(),
        );
    }
    let pool = match shared.with(|s| s.lend_pool(req.pool, peer)) {
        Ok(p) => p,
        Err(e) => return (Reply::encode(e.code(), &[]).unwrap_or_default(), Vec::new()),
    };
    let mut entries = Vec::with_capacity(req.names.len());
    let mut lent = Vec::with_capacity(req.names.len());
    for names in req.names.chunks(NAMES_PER_LOCK) {
        let results: Vec<Result<Lent, Errno>> = shared.with(|s| {
            names
                .iter()
                .map(|n| s.lend(pool, OsStr::from_bytes(n), peer))
                .collect()
        });
        for r in results {
            match r {
                Ok(l) => {
                    entries.push(Entry {
                        errno: 0,
                        size: l.size,
                        ino: l.ino,
                    });
                    lent.push(l);
                }
                Err(e) => entries.push(Entry {
                    errno: e.code(),
                    size: 0,
                    ino: 0,
                }),
            }
        }
    }
    match Reply::encode(0, &entries) {
        Ok(r) => (r, lent),
        Err(_) => (
            Reply::encode(libc::EPROTO, &[]).unwrap_or_default(),
            Vec::new(),
        ),
    }
}
