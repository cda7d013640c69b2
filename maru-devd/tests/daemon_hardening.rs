//! Issue 11 ("Hardening"), each with the real daemon on a real mount: restart right after a
//! `kill -9` despite a cached stat, a control socket that serves each client on its own,
//! SIGHUP keeping a pool whose chunk is mapped after close, `df -i` figures, a bounded log
//! under an ioctl flood, the open files limit, and `mount:` paths refused at start.

mod devd_support;
mod fixtures;

use devd_support::{can_run_daemon, poll, pool, pool_status, python, World, WRITER};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long `maru-devd status` takes, asserting it succeeds.
fn timed_status(w: &World) -> Duration {
    let t = Instant::now();
    let out = w.devd(&["status", "--json"]);
    let took = t.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

#[test]
fn restart_right_after_kill_9_despite_a_cached_stat() {
    if !can_run_daemon() {
        return;
    }
    let w = World::new(&pool("kv", "16MiB"));
    let d = w.start();
    let dir = w.mnt.join("kv");
    python(WRITER, &[dir.to_str().unwrap(), "k", "4096"], None).unwrap();
    // df or monitoring stats the mount: the kernel caches its attributes
    std::fs::metadata(&w.mnt).unwrap();
    d.kill9();
    // ... and answers the next stat from that cache, though the server is dead
    let _ = std::fs::metadata(&w.mnt);
    let d = w.spawn(&[]);
    let d = d.serving(&w);
    let log = d.log_text();
    assert!(log.contains("stale FUSE mount"), "{log}");
    assert_eq!(pool_status(&w, "kv").unwrap()["published_chunks"], 1);
    // a second daemon on the same runtime dir is told who holds it
    let out = Command::new(fixtures::bin())
        .args(["run", "--config"])
        .arg(&w.config)
        .env("MARU_RUNTIME_DIR", &w.run)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "another maru-devd is running with runtime directory {} (pid {}",
            w.run.display(),
            d.pid()
        )),
        "{err}"
    );
    assert!(d.stop());
}

#[test]
fn an_idle_or_trickling_client_does_not_delay_status() {
    if !can_run_daemon() {
        return;
    }
    let w = World::new(&pool("kv", "16MiB"));
    let d = w.start();
    let sock = w.run.join("control.sock");
    // one client connects and says nothing
    let idle = UnixStream::connect(&sock).unwrap();
    // another sends a byte every 200 ms, never a whole line
    let trickle = UnixStream::connect(&sock).unwrap();
    let t2 = trickle.try_clone().unwrap();
    let trickler = std::thread::spawn(move || {
        let mut t2 = t2;
        for _ in 0..50 {
            if t2.write_all(b" ").is_err() {
                return true; // the daemon dropped us
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    });
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        let took = timed_status(&w);
        assert!(took < Duration::from_secs(1), "status took {took:?}");
    }
    // the trickling client is cut off at the request deadline with an error reply
    let mut reply = String::new();
    trickle
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let t = Instant::now();
    BufReader::new(&trickle).read_line(&mut reply).unwrap();
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    assert!(reply.contains("no complete request line"), "{reply}");
    let _ = trickler.join();
    // an oversized request is refused, not buffered without end
    let mut big = UnixStream::connect(&sock).unwrap();
    let _ = big.write_all(&vec![b'x'; 200 << 10]);
    let mut answer = String::new();
    let _ = big.read_to_string(&mut answer);
    assert!(answer.contains("longer than"), "{answer}");
    drop(idle);
    assert!(timed_status(&w) < Duration::from_secs(1));
    assert!(d.stop());
}

/// Maps `path` read-only with libc's mmap (Python's mmap module keeps a duplicate
/// descriptor), closes the descriptor, prints `mapped` and holds the mapping until stdin
/// closes.
const MAP_AND_CLOSE: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
fd = os.open(sys.argv[1], os.O_RDONLY)
n = os.fstat(fd).st_size
addr = libc.mmap(None, n, 1, 1, fd, 0)
assert addr not in (None, ctypes.c_void_p(-1).value), ctypes.get_errno()
os.close(fd)
assert ctypes.string_at(addr, 1) == sys.argv[2].encode()[:1]
assert not any(os.readlink("/proc/self/fd/" + f).endswith(sys.argv[1].rsplit("/", 1)[1]) for f in os.listdir("/proc/self/fd") if os.path.islink("/proc/self/fd/" + f))
print("mapped", flush=True)
sys.stdin.read()
"#;

#[test]
fn sighup_keeps_a_removed_pool_whose_chunk_is_mapped_after_close() {
    if !can_run_daemon() {
        return;
    }
    let w = World::new(&format!("{}{}", pool("a", "16MiB"), pool("b", "16MiB")));
    let d = w.start();
    let b = w.mnt.join("b");
    python(WRITER, &[b.to_str().unwrap(), "key", "65536"], None).unwrap();
    let key = b.join("key");
    let mut holder = Command::new("/usr/bin/python3")
        .args(["-c", MAP_AND_CLOSE, key.to_str().unwrap(), "k"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "mapped");
    // the descriptor is closed: give the kernel's RELEASE time to reach the daemon
    poll("the chunk's pins to drop", || {
        (pool_status(&w, "b")?["pinned_bytes"] == 0).then_some(())
    })
    .unwrap();

    w.set_pools(&pool("a", "16MiB"));
    let reply = w.request(r#"{"cmd":"reload"}"#);
    assert!(
        reply
            .to_string()
            .contains("pool b was removed from the config but is kept: pool b is busy: 1 chunk(s) are still open or mapped"),
        "{reply}"
    );
    assert!(pool_status(&w, "b").is_some());
    assert!(w.run.join("pools/b").exists());

    drop(holder.stdin.take());
    holder.wait().unwrap();
    let mut reply = serde_json::Value::Null;
    let removed = poll("pool b to be removed once unmapped", || {
        reply = w.request(r#"{"cmd":"reload"}"#);
        reply.to_string().contains("pool b removed").then_some(())
    });
    assert!(removed.is_ok(), "{reply}");
    assert!(d.stop());
}

#[test]
fn df_i_counts_the_chunks_as_used_inodes() {
    if !can_run_daemon() {
        return;
    }
    let w = World::new(&pool("kv", "16MiB"));
    let d = w.start();
    let dir = w.mnt.join("kv");
    for k in ["a", "b"] {
        python(WRITER, &[dir.to_str().unwrap(), k, "4096"], None).unwrap();
    }
    // statvfs: the used inodes (files - ffree) are the chunks, never negative
    for p in [w.mnt.clone(), dir.clone()] {
        let st = nix::sys::statvfs::statvfs(&p).unwrap();
        let (files, ffree) = (st.files(), st.files_free());
        assert!(
            files >= ffree,
            "{}: f_files {files} < f_ffree {ffree}",
            p.display()
        );
        assert_eq!(files - ffree, 2, "{}: IUsed", p.display());
    }
    let df = Command::new("df").arg("-i").arg(&dir).output().unwrap();
    let df = String::from_utf8_lossy(&df.stdout);
    let iused = df.lines().nth(1).and_then(|l| l.split_whitespace().nth(2));
    assert_eq!(iused, Some("2"), "df -i IUsed:\n{df}");
    assert!(d.stop());
}

#[test]
fn an_ioctl_flood_keeps_the_log_bounded() {
    if !can_run_daemon() {
        return;
    }
    let w = World::new(&pool("kv", "16MiB"));
    let d = w.start();
    let dir = w.mnt.join("kv");
    python(WRITER, &[dir.to_str().unwrap(), "a", "4096"], None).unwrap();

    // any user may call ioctl on a chunk as often as it likes: the log stays bounded
    let before = std::fs::metadata(&d.log).unwrap().len();
    let flood = r#"
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
errs = set()
for i in range(10000):
    try:
        fcntl.ioctl(fd, 0x12345678 & 0xffff)
    except OSError as e:
        errs.add(e.errno)
print(sorted(errs))
"#;
    let key = dir.join("a");
    let errs = python(flood, &[key.to_str().unwrap()], Some(65534)).unwrap();
    assert_eq!(
        errs,
        format!("[{}]", libc::ENOTTY),
        "ioctl must fail with ENOTTY"
    );
    let log = d.log_text();
    let grown = std::fs::metadata(&d.log).unwrap().len() - before;
    let lines = log.lines().filter(|l| l.contains("ioctl")).count();
    assert!(
        lines <= 5,
        "{lines} ioctl lines logged:\n{}",
        &log[..log.len().min(4000)]
    );
    assert!(grown < 4096, "10000 ioctls grew the log by {grown} bytes");
    assert!(
        log.contains("further ioctl requests within 60 s are counted"),
        "{log}"
    );
    assert!(d.stop());
}

#[test]
fn the_open_files_limit_is_raised_to_the_hard_limit() {
    if !can_run_daemon() {
        return;
    }
    let w = World::new(&pool("kv", "16MiB"));
    let d = w
        .spawn_under(&["prlimit", "--nofile=256:8192", "--"], &[])
        .serving(&w);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", d.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let nums: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(nums, ["8192", "8192"], "{line}");
    assert!(
        d.log_text()
            .contains("open files limit (RLIMIT_NOFILE): raised from 256 to the hard limit 8192"),
        "{}",
        d.log_text()
    );
    assert!(d.stop());
}

#[test]
fn run_refuses_a_mount_over_a_file_or_the_runtime_dir() {
    if !can_run_daemon() {
        return;
    }
    let w = World::new(&pool("kv", "16MiB"));
    let cases = [
        (
            w.tmp.path().join("file"),
            "is not a directory (it is a regular file)",
        ),
        (w.run.clone(), "is the runtime directory"),
        (
            w.tmp.path().join("full"),
            "is a directory that is not empty",
        ),
    ];
    std::fs::write(&cases[0].0, "x").unwrap();
    std::fs::create_dir_all(&w.run).unwrap();
    std::fs::create_dir_all(&cases[2].0).unwrap();
    std::fs::write(cases[2].0.join("data"), "x").unwrap();
    for (mount, want) in &cases {
        std::fs::write(
            &w.config,
            format!(
                "mount: {}\npools:\n{}",
                mount.display(),
                pool("kv", "16MiB")
            ),
        )
        .unwrap();
        let (ok, log) = w.spawn(&[]).exit();
        assert!(!ok, "{log}");
        assert!(log.contains(want), "{}: {log}", mount.display());
        assert!(
            log.contains(":1:8:"),
            "the message points at `mount:`: {log}"
        );
        assert!(
            !devd_support::is_mountpoint(mount),
            "{} was mounted",
            mount.display()
        );
        let out = w.devd(&["check-config", w.config.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains(want));
    }
}
