//! The lending socket (`maru_proto::lend`): batches of published chunks opened in
//! one round trip, with the checks an open on the mount would have, pinning like
//! an open, and robust against clients that misbehave.

mod common;

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::*;
use maru_fs::{Eviction, PoolConfig};
use maru_proto::lend::{Reply, Request, MAX_REPLY};
use maru_proto::xattr;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr};
use tempfile::TempDir;

/// A mount lending its pools' chunks, and where its socket is (in a directory
/// everyone may reach, as maru-devd's runtime directory is).
struct Lending {
    fx: Fixture,
    socket: PathBuf,
    _socket_dir: TempDir,
}

fn lending(pools: &[(&str, u64, u32)], tweak: impl Fn(&mut PoolConfig)) -> Lending {
    lending_at(None, pools, tweak)
}

/// Like [`lending`], mounted at `mountpoint` (an empty directory) if given.
fn lending_at(
    mountpoint: Option<&Path>,
    pools: &[(&str, u64, u32)],
    tweak: impl Fn(&mut PoolConfig),
) -> Lending {
    let backing_root = tempfile::Builder::new()
        .prefix("maru-fs-test-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let cfgs = pools
        .iter()
        .map(|&(name, cap, mode)| {
            let dir = backing_root.path().join(name);
            std::fs::create_dir(&dir).unwrap();
            let mut cfg = pool(name, &dir, cap);
            cfg.mode = mode;
            tweak(&mut cfg);
            cfg
        })
        .collect();
    let socket_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(socket_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = socket_dir.path().join("lend.sock");
    let fx = Fixture::mount_with_options(backing_root, cfgs, |o| {
        o.lend_socket = Some(socket.clone());
        if let Some(m) = mountpoint {
            o.mountpoint = m.to_path_buf();
        }
    });
    Lending {
        fx,
        socket,
        _socket_dir: socket_dir,
    }
}

/// Publishes `key` in `dir`: `size` bytes of 0x5a, file mode `mode`.
fn put(dir: &Path, key: &str, size: usize, mode: u32) {
    let staging = dir.join(format!(".put-{key}"));
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&staging)
        .unwrap();
    f.set_len(size as u64).unwrap();
    f.write_all(&vec![0x5a; size]).unwrap();
    // Published while open: a staging chunk closed unpublished is reclaimed.
    std::fs::rename(&staging, dir.join(key)).unwrap();
}

fn lend_args<'a>(l: &'a Lending, pool: &'a str, names: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["lend", l.socket.to_str().unwrap(), pool];
    args.extend_from_slice(names);
    args
}

#[test]
fn published_chunks_are_lent_read_only_and_each_name_answered() {
    if skip_unless_root() {
        return;
    }
    let l = lending(&[("p", 64 * MIB, 0o755)], |_| {});
    let dir = l.fx.pool_dir("p");
    put(&dir, "k1", 4096, 0o644);
    put(&dir, "k2", 3 * 4096, 0o644);
    // A staging chunk exists under its name but is not lendable.
    let _staging = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dir.join(".stage-x"))
        .unwrap();
    assert_eq!(
        xattr_get(&dir, xattr::LEND_SOCKET).unwrap(),
        l.socket.as_os_str().as_encoded_bytes(),
        "the pool tells clients where to ask"
    );
    assert!(xattr_list(&dir).contains(&xattr::LEND_SOCKET.to_string()));

    let (code, kv) = run_probe(
        &lend_args(&l, "p", &["k1", "nope", ".stage-x", "k2"]),
        false,
    );
    assert_eq!(code, 0, "{kv:?}");
    assert_eq!(get(&kv, "status"), "0");
    assert_eq!(get(&kv, "fds"), "2");
    let ino = |k: &str| std::fs::metadata(dir.join(k)).unwrap().ino();
    assert_eq!(get(&kv, "entry.0"), format!("0 4096 {}", ino("k1")));
    assert_eq!(get(&kv, "entry.1"), format!("{} 0 0", libc::ENOENT));
    assert_eq!(get(&kv, "entry.2"), format!("{} 0 0", libc::ENOENT));
    assert_eq!(get(&kv, "entry.3"), format!("0 {} {}", 3 * 4096, ino("k2")));
    assert_eq!(get(&kv, "sum.0"), (0x5a * 4096).to_string());
    assert_eq!(get(&kv, "sum.3"), (0x5a * 3 * 4096).to_string());
    assert_eq!(get(&kv, "write.0"), "EBADF", "a lent chunk is read-only");

    let (_, kv) = run_probe(&lend_args(&l, "no-such-pool", &["k1"]), false);
    assert_eq!(get(&kv, "status"), libc::ENOENT.to_string());
    assert_eq!(get(&kv, "fds"), "0");
}

#[test]
fn lending_checks_the_callers_permissions_as_an_open_would() {
    if skip_unless_root() {
        return;
    }
    let l = lending(
        &[("open", 64 * MIB, 0o755), ("private", 64 * MIB, 0o700)],
        |_| {},
    );
    let dir = l.fx.pool_dir("open");
    put(&dir, "shared", 4096, 0o644);
    put(&dir, "mine", 4096, 0o600);
    put(&l.fx.pool_dir("private"), "k", 4096, 0o644);

    let (_, kv) = run_probe(&lend_args(&l, "open", &["shared", "mine"]), true);
    assert_eq!(get(&kv, "status"), "0", "{kv:?}");
    assert!(get(&kv, "entry.0").starts_with("0 4096 "), "{kv:?}");
    assert_eq!(
        get(&kv, "entry.1"),
        format!("{} 0 0", libc::EACCES),
        "another user's 0600 chunk"
    );
    assert_eq!(get(&kv, "fds"), "1");
    // What the kernel says for the same open through the mount.
    let (_, kv) = run_probe(&["map", dir.join("mine").to_str().unwrap()], true);
    assert_eq!(get(&kv, "error"), "EACCES");

    let (_, kv) = run_probe(&lend_args(&l, "private", &["k"]), true);
    assert_eq!(get(&kv, "status"), libc::EACCES.to_string(), "{kv:?}");
    assert_eq!(get(&kv, "fds"), "0");
    // Root may.
    let (_, kv) = run_probe(&lend_args(&l, "private", &["k"]), false);
    assert_eq!(get(&kv, "fds"), "1");
}

#[test]
fn lending_needs_search_permission_above_the_mount_too() {
    if skip_unless_root() {
        return;
    }
    // The mount point is inside a directory only root may search: nobody
    // cannot reach the pools through the mount at all.
    let fence = tempfile::tempdir().unwrap();
    std::fs::set_permissions(fence.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let mnt = fence.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let l = lending_at(Some(&mnt), &[("p", 64 * MIB, 0o755)], |_| {});
    let dir = mnt.join("p");
    put(&dir, "k", 4096, 0o644);
    let (_, kv) = run_probe(&["map", dir.join("k").to_str().unwrap()], true);
    assert_eq!(get(&kv, "error"), "EACCES", "{kv:?}");

    let (_, kv) = run_probe(&lend_args(&l, "p", &["k"]), true);
    assert_eq!(get(&kv, "status"), libc::EACCES.to_string(), "{kv:?}");
    assert_eq!(get(&kv, "fds"), "0");
    let (_, kv) = run_probe(&lend_args(&l, "p", &["k"]), false);
    assert_eq!(get(&kv, "fds"), "1", "root may");

    // Search permission is enough, as for a path walk.
    std::fs::set_permissions(fence.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let (_, kv) = run_probe(&lend_args(&l, "p", &["k"]), true);
    assert_eq!(get(&kv, "fds"), "1", "{kv:?}");
}

#[test]
fn a_lent_chunk_is_pinned_until_its_last_mapping_goes() {
    if skip_unless_root() {
        return;
    }
    let l = lending(&[("p", 4 * MIB, 0o755)], |c| c.eviction = Eviction::Lru);
    let dir = l.fx.pool_dir("p");
    put(&dir, "held", MIB as usize, 0o644);
    put(&dir, "free", MIB as usize, 0o644);
    // The holder maps both chunks and closes its descriptors; the mappings stay.
    let holder = Held::start(
        &lend_args(&l, "p", &["held", "free", "hold"]),
        true,
        "ready",
    );
    assert_eq!(get(&holder.kv, "fds"), "2");
    assert_eq!(xattr_get(&dir.join("held"), xattr::PINS).unwrap(), b"1");
    // 2 MiB free, 4 MiB wanted: every chunk would have to go, but the lent ones are held.
    put(&dir, "a", MIB as usize, 0o644);
    put(&dir, "b", MIB as usize, 0o644);
    let big = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dir.join(".big"))
        .unwrap();
    let err = big.set_len(3 * MIB).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
    assert!(dir.join("held").exists() && dir.join("free").exists());
    holder.finish();
    wait_until("the lent chunks unpinned", || {
        xattr_get(&dir.join("held"), xattr::PINS).unwrap() == b"0"
    });
    big.set_len(3 * MIB).unwrap();
    // The kernel forgets the evicted name when the daemon's invalidation
    // reaches it (asynchronously): until then a lookup may still find it.
    wait_until("evicted once unmapped", || !dir.join("held").exists());
}

#[test]
fn a_removed_chunk_held_only_through_a_lent_descriptor_stays_charged() {
    if skip_unless_root() {
        return;
    }
    let l = lending(&[("p", 64 * MIB, 0o755)], |_| {});
    let dir = l.fx.pool_dir("p");
    put(&dir, "k", MIB as usize, 0o644);
    // Mapped through a lent descriptor only (the holder closed it; no FUSE open).
    let holder = Held::start(&lend_args(&l, "p", &["k", "hold"]), true, "ready");
    assert_eq!(get(&holder.kv, "fds"), "1");
    std::fs::remove_file(dir.join("k")).unwrap();
    assert!(!dir.join("k").exists());
    assert_eq!(
        xattr_get(&dir, xattr::USED).unwrap(),
        MIB.to_string().as_bytes(),
        "its memory is still mapped, so still charged"
    );
    holder.finish();
    wait_until("the charge returned once unmapped", || {
        xattr_get(&dir, xattr::USED).unwrap() == b"0"
    });
}

#[test]
fn a_lent_descriptor_cannot_be_turned_into_write_access() {
    if skip_unless_root() {
        return;
    }
    let l = lending(&[("p", 64 * MIB, 0o777)], |_| {});
    let dir = l.fx.pool_dir("p");
    // Even a chunk whose own mode lets everyone write (published: sealed).
    put(&dir, "k", 4096, 0o666);
    let request = Request::encode(b"p", &[b"k"]).unwrap();
    // SAFETY: the child only makes system calls (and small allocations) and
    // leaves with _exit, panic or not; an alarm ends it if it hangs.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: see above. The child needs none of the descriptors it shares
        // with the parent (other tests' chunks among them, which it would pin).
        unsafe {
            libc::alarm(30);
            libc::close_range(3, u32::MAX, 0);
        }
        let code =
            std::panic::catch_unwind(|| try_to_write_as_nobody(&l.socket, &request)).unwrap_or(101);
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above; `status` outlives the call.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status),
        "child killed by {}",
        libc::WTERMSIG(status)
    );
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "the way that gave write access (1 reopen O_RDWR, 2 fchmod, 3 ftruncate, \
         4 fallocate, 5 mmap shared writable, 6 mprotect writable, 7 lease, \
         8 fsetxattr, 9 write, 10 futimens, 11 fchown; 100+: setup failed)"
    );
    assert_eq!(std::fs::read(dir.join("k")).unwrap(), vec![0x5a; 4096]);
}

/// As nobody: borrows `request`'s one chunk from `socket` and tries each way
/// to write through the descriptor; returns the number of the first that
/// worked (see the test above), 0 if none did, 100+ when it could not get
/// that far.
fn try_to_write_as_nobody(socket: &Path, request: &[u8]) -> i32 {
    // SAFETY: credential changes of this (single-threaded) child.
    let dropped = unsafe {
        libc::setgroups(0, std::ptr::null()) == 0
            && libc::setgid(65534) == 0
            && libc::setuid(65534) == 0
    };
    if !dropped {
        return 100;
    }
    let c = connect(socket);
    if send(&c, request).is_err() {
        return 102;
    }
    let mut buf = vec![0u8; MAX_REPLY];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let Ok(m) = socket::recvmsg::<()>(c.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::empty())
    else {
        return 103;
    };
    let Some(fd) = m.cmsgs().ok().and_then(|mut cs| {
        cs.find_map(|c| match c {
            socket::ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
            _ => None,
        })
    }) else {
        return 104;
    };
    let proc_path = std::ffi::CString::new(format!("/proc/self/fd/{fd}")).unwrap_or_default();
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let map = |prot| {
        // SAFETY: a new mapping of the descriptor; never touched.
        unsafe { libc::mmap(std::ptr::null_mut(), 4096, prot, libc::MAP_SHARED, fd, 0) }
    };
    let ways: [&dyn Fn() -> bool; 11] = [
        // SAFETY: a NUL-terminated path; a descriptor it returns is left open.
        &|| unsafe { libc::open(proc_path.as_ptr(), libc::O_RDWR) } >= 0,
        // SAFETY: plain values.
        &|| unsafe { libc::fchmod(fd, 0o666) } == 0,
        // SAFETY: plain values.
        &|| unsafe { libc::ftruncate(fd, 0) } == 0,
        // SAFETY: plain values.
        &|| unsafe { libc::fallocate(fd, 0, 0, 8192) } == 0,
        &|| map(rw) != libc::MAP_FAILED,
        &|| {
            let ro = map(libc::PROT_READ);
            // SAFETY: changes only the protection of the mapping just made.
            ro != libc::MAP_FAILED && unsafe { libc::mprotect(ro, 4096, rw) } == 0
        },
        // SAFETY: plain values.
        &|| unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) } == 0,
        // SAFETY: a NUL-terminated name and a 1-byte value, both static.
        &|| unsafe { libc::fsetxattr(fd, c"user.x".as_ptr(), b"1".as_ptr().cast(), 1, 0) } == 0,
        // SAFETY: a static 1-byte buffer.
        &|| unsafe { libc::write(fd, b"x".as_ptr().cast(), 1) } == 1,
        // SAFETY: a null `times` means now.
        &|| unsafe { libc::futimens(fd, std::ptr::null()) } == 0,
        // SAFETY: plain values.
        &|| unsafe { libc::fchown(fd, 65534, 65534) } == 0,
    ];
    ways.iter()
        .position(|way| way())
        .map_or(0, |i| i as i32 + 1)
}

fn connect(path: &Path) -> OwnedFd {
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    socket::connect(fd.as_raw_fd(), &UnixAddr::new(path).unwrap()).unwrap();
    let timeout = nix::sys::time::TimeVal::new(10, 0);
    socket::setsockopt(&fd, socket::sockopt::ReceiveTimeout, &timeout).unwrap();
    fd
}

/// The next message on `fd` (its descriptors are dropped), or `None` once closed.
fn recv(fd: &OwnedFd) -> Option<Reply> {
    let mut buf = vec![0u8; MAX_REPLY];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 253]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let n = match socket::recvmsg::<()>(
        fd.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    ) {
        Ok(m) => {
            for c in m.cmsgs().unwrap() {
                if let socket::ControlMessageOwned::ScmRights(fds) = c {
                    for fd in fds {
                        let _ = nix::unistd::close(fd);
                    }
                }
            }
            m.bytes
        }
        Err(nix::errno::Errno::ECONNRESET) => 0,
        Err(e) => panic!("recvmsg: {e}"),
    };
    (n > 0).then(|| Reply::parse(&buf[..n]).unwrap())
}

fn send(fd: &OwnedFd, msg: &[u8]) -> nix::Result<usize> {
    socket::send(fd.as_raw_fd(), msg, MsgFlags::MSG_NOSIGNAL)
}

#[test]
fn misbehaving_clients_are_dropped_and_others_still_served() {
    if skip_unless_root() {
        return;
    }
    let l = lending(&[("p", 64 * MIB, 0o755)], |_| {});
    put(&l.fx.pool_dir("p"), "k", 4096, 0o644);
    let ok = Request::encode(b"p", &[b"k"]).unwrap();

    // Garbage: refused with EPROTO, then the connection is closed.
    let c = connect(&l.socket);
    send(&c, b"GET / HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(recv(&c).unwrap().status, libc::EPROTO);
    assert!(recv(&c).is_none(), "closed after a malformed request");

    // A second request while the first reply waits unread: the connection is
    // dropped (at most one reply's descriptors in flight per connection). The
    // client reads nothing until the daemon has hung up.
    let c = connect(&l.socket);
    send(&c, &ok).unwrap();
    let wait = |events: PollFlags| {
        let mut pfd = [PollFd::new(c.as_fd(), events)];
        poll(&mut pfd, PollTimeout::from(10_000u16)).unwrap();
        pfd[0].revents().unwrap_or(PollFlags::empty())
    };
    assert!(
        wait(PollFlags::POLLIN).contains(PollFlags::POLLIN),
        "first reply"
    );
    send(&c, &ok).unwrap();
    assert!(
        wait(PollFlags::empty()).contains(PollFlags::POLLHUP),
        "not dropped: a request was served while a reply was unread"
    );

    // Connections of one uid are bounded; the rest are closed at once.
    let many: Vec<OwnedFd> = (0..140).map(|_| connect(&l.socket)).collect();
    let served = many
        .iter()
        .filter(|c| send(c, &ok).is_ok() && recv(c).is_some_and(|r| r.descriptors() == 1))
        .count();
    assert_eq!(served, 128, "at most 128 connections per uid");
    drop(many);

    // The server is still there for a well-behaved client (after the drops reach it).
    wait_until("a fresh connection served", || {
        let c = connect(&l.socket);
        send(&c, &ok).is_ok() && recv(&c).is_some_and(|r| r.descriptors() == 1)
    });
    let (_, kv) = run_probe(&lend_args(&l, "p", &["k"]), true);
    assert_eq!(get(&kv, "fds"), "1");
}

#[test]
fn descriptors_left_unread_are_bounded_per_uid() {
    if skip_unless_root() {
        return;
    }
    let l = lending(&[("p", 64 * MIB, 0o755)], |_| {});
    let dir = l.fx.pool_dir("p");
    let names: Vec<String> = (0..253).map(|i| format!("k{i}")).collect();
    for n in &names {
        put(&dir, n, 4096, 0o644);
    }
    let all: Vec<&[u8]> = names.iter().map(|n| n.as_bytes()).collect();
    let big = Request::encode(b"p", &all).unwrap();
    let small = Request::encode(b"p", &all[..4]).unwrap();
    // A leaves 253 descriptors unread (it waits for the reply, reads nothing).
    let a = connect(&l.socket);
    send(&a, &big).unwrap();
    let mut pfd = [PollFd::new(a.as_fd(), PollFlags::POLLIN)];
    poll(&mut pfd, PollTimeout::from(10_000u16)).unwrap();
    // The same uid asking for 4 more would pass 256 unread: EBUSY, no descriptors.
    let b = connect(&l.socket);
    send(&b, &small).unwrap();
    let busy = recv(&b).unwrap();
    assert_eq!((busy.status, busy.descriptors()), (libc::EBUSY, 0));
    // Once A has read its reply, B is served on the same connection.
    assert_eq!(recv(&a).unwrap().descriptors(), 253);
    send(&b, &small).unwrap();
    assert_eq!(recv(&b).unwrap().descriptors(), 4);
}
