//! libmaru's side of the lending socket against a scripted daemon: a plain
//! directory whose `user.maru.lend.socket` xattr names a socket this test
//! serves, so each reply (and each hang-up) is chosen here.

use maru::Pool;
use maru_proto::lend::{Entry, Reply, Request, MAX_REQUEST};
use maru_proto::xattr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::mpsc;

/// What the scripted daemon does with one request.
#[derive(Clone, Copy)]
enum Answer {
    /// Every name `ENOENT`.
    Missing,
    /// The whole request `EBUSY`.
    Busy,
    /// Answer (every name `ENOENT`), then hang up.
    MissingThenHangUp,
}

fn check(rc: libc::c_int, what: &str) -> libc::c_int {
    assert!(rc >= 0, "{what}: {}", std::io::Error::last_os_error());
    rc
}

fn listen(path: &Path) -> OwnedFd {
    // SAFETY: plain socket(2); checked, then owned.
    let fd = check(
        unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) },
        "socket",
    );
    // SAFETY: a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_un is plain old data.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, &s) in addr
        .sun_path
        .iter_mut()
        .zip(path.as_os_str().as_encoded_bytes())
    {
        *d = s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: `addr` is an initialised sockaddr_un of `len` bytes.
    check(
        unsafe { libc::bind(fd.as_raw_fd(), std::ptr::from_ref(&addr).cast(), len) },
        "bind",
    );
    // SAFETY: a bound socket.
    check(unsafe { libc::listen(fd.as_raw_fd(), 8) }, "listen");
    fd
}

/// Serves `script` (one answer per request, a new connection accepted whenever
/// the last one was hung up); reports each request's name count.
fn serve(listener: OwnedFd, script: Vec<Answer>, seen: mpsc::Sender<usize>) {
    let mut conn: Option<OwnedFd> = None;
    let mut buf = vec![0u8; MAX_REQUEST];
    for answer in script {
        let c = conn.get_or_insert_with(|| {
            // SAFETY: accept on a listening socket; checked, then owned.
            let fd = check(
                unsafe {
                    libc::accept4(
                        listener.as_raw_fd(),
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                        libc::SOCK_CLOEXEC,
                    )
                },
                "accept",
            );
            // SAFETY: a fresh descriptor nothing else owns.
            unsafe { OwnedFd::from_raw_fd(fd) }
        });
        // SAFETY: `buf` is a live buffer of its length.
        let n = unsafe { libc::recv(c.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n <= 0 {
            return;
        }
        let req = Request::parse(&buf[..n as usize]).expect("a well-formed request");
        seen.send(req.names.len()).unwrap();
        let entries: Vec<Entry> = req
            .names
            .iter()
            .map(|_| Entry {
                errno: libc::ENOENT,
                size: 0,
                ino: 0,
            })
            .collect();
        let reply = match answer {
            Answer::Busy => Reply::encode(libc::EBUSY, &[]).unwrap(),
            _ => Reply::encode(0, &entries).unwrap(),
        };
        // SAFETY: `reply` is a live buffer of its length.
        let sent = unsafe {
            libc::send(
                c.as_raw_fd(),
                reply.as_ptr().cast(),
                reply.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        check(sent as libc::c_int, "send");
        if let Answer::MissingThenHangUp = answer {
            conn = None;
        }
    }
}

/// A plain directory pool whose lending socket is served by `script`.
fn scripted(script: Vec<Answer>) -> (tempfile::TempDir, Pool, mpsc::Receiver<usize>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pool");
    std::fs::create_dir(&dir).unwrap();
    let socket = tmp.path().join("lend.sock");
    let listener = listen(&socket);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || serve(listener, script, tx));
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let value = socket.as_os_str().as_encoded_bytes();
    // SAFETY: NUL-terminated path and name; `value` is a live buffer of its length.
    let rc = unsafe {
        libc::setxattr(
            c(&dir).as_ptr(),
            xattr::LEND_SOCKET_C.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    check(
        rc,
        "setxattr (user xattrs on the test's temporary directory)",
    );
    let pool = Pool::open(&dir).unwrap();
    (tmp, pool, rx)
}

#[test]
fn a_connection_the_daemon_closed_is_made_again_once() {
    let (_tmp, pool, seen) = scripted(vec![
        Answer::MissingThenHangUp,
        Answer::Missing,
        Answer::Missing,
    ]);
    let keys: [&[u8]; 3] = [b"x", b"y", b"z"];
    for round in 0..3 {
        let got = pool.batch_get(&keys).unwrap();
        assert!(got.iter().all(Option::is_none), "round {round}");
        assert_eq!(
            seen.recv_timeout(std::time::Duration::from_secs(10)),
            Ok(3),
            "round {round} was asked through the socket (a closed connection is remade)"
        );
    }
}

#[test]
fn a_busy_daemon_is_asked_again_next_time() {
    let (_tmp, pool, seen) = scripted(vec![Answer::Busy, Answer::Missing]);
    let keys: [&[u8]; 2] = [b"x", b"y"];
    // Busy: the keys are looked up in the directory instead (absent here).
    assert!(pool.batch_get(&keys).unwrap().iter().all(Option::is_none));
    assert_eq!(seen.recv_timeout(std::time::Duration::from_secs(10)), Ok(2));
    // Not taken for a failure: the next batch asks the socket again at once.
    assert!(pool.batch_get(&keys).unwrap().iter().all(Option::is_none));
    assert_eq!(
        seen.recv_timeout(std::time::Duration::from_secs(10)),
        Ok(2),
        "asked again after EBUSY"
    );
}
