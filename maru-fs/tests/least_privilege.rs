//! The daemon runs maru-fs with CAP_SYS_ADMIN as its only capability (maru-devd
//! drops the rest before mounting). Everything must still work, including a
//! restart that restores chunk owners and modes.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::mpsc;

use caps::{CapSet, Capability, CapsHashSet};
use common::*;

/// What the server thread tells the test thread after each mount.
struct Mounted {
    pool_dir: PathBuf,
    backing_dir: PathBuf,
    /// CapEff of every FUSE request thread.
    server_caps: Vec<String>,
    read_requests: u64,
    write_requests: u64,
}

#[test]
fn server_with_only_cap_sys_admin() {
    if skip_unless_root() {
        return;
    }
    // Copy the probe while this thread still has every capability.
    let _ = probe();
    let (to_test, from_server) = mpsc::channel::<Mounted>();
    let (to_server, from_test) = mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        // Capabilities are per thread: the threads mount() starts inherit this set.
        let only: CapsHashSet = [Capability::CAP_SYS_ADMIN].into_iter().collect();
        caps::set(None, CapSet::Effective, &only).expect("drop effective caps");
        caps::set(None, CapSet::Permitted, &only).expect("drop permitted caps");
        let mut fx = Fixture::new(&[("p", 16 * MIB)], |c| c.mode = 0o777);
        let report = |fx: &Fixture| {
            // fuser-bg and its two request threads start (and name themselves) soon after mount.
            wait_until("FUSE threads started", || fuser_thread_caps().len() >= 3);
            let st = fx.stats("p");
            Mounted {
                pool_dir: fx.pool_dir("p"),
                backing_dir: fx.backing_dir("p"),
                server_caps: fuser_thread_caps(),
                read_requests: st.read_requests,
                write_requests: st.write_requests,
            }
        };
        to_test.send(report(&fx)).unwrap();
        from_test.recv().unwrap();
        let backing = fx.unmount();
        let cfg = {
            let mut c = pool("p", &backing.path().join("p"), 16 * MIB);
            c.mode = 0o777;
            c
        };
        let fx2 = Fixture::mount_with(backing, vec![cfg]);
        to_test.send(report(&fx2)).unwrap();
        from_test.recv().unwrap();
        to_test.send(report(&fx2)).unwrap();
    });

    let m = from_server.recv().expect("server mounted");
    assert!(!m.server_caps.is_empty(), "no FUSE request threads found");
    for cap in &m.server_caps {
        // Bit 21 is CAP_SYS_ADMIN.
        assert_eq!(
            cap, "0000000000200000",
            "a FUSE thread has more than CAP_SYS_ADMIN"
        );
    }
    let d = m.pool_dir.to_str().unwrap().to_string();
    let (code, kv) = run_probe(&["publish", &d, ".n", "k", "65536", "5"], true);
    assert_eq!((code, get(&kv, "result")), (0, "published"), "{kv:?}");
    let meta = std::fs::metadata(m.pool_dir.join("k")).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (65534, 0o644));
    // The backing file itself stays the daemon's, mode 0600.
    let bmeta = std::fs::metadata(m.backing_dir.join("k")).unwrap();
    assert_eq!((bmeta.uid(), bmeta.mode() & 0o777), (0, 0o600));
    let (code, kv) = run_probe(&["map", &format!("{d}/k")], true);
    assert_eq!(
        (code, get(&kv, "sum")),
        (0, pattern_sum(5, 65536).to_string().as_str())
    );

    to_server.send(()).unwrap();
    let m = from_server.recv().expect("server remounted");
    let meta = std::fs::metadata(m.pool_dir.join("k")).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (65534, 0o644));
    let k = m.pool_dir.join("k");
    let (code, kv) = run_probe(&["map", k.to_str().unwrap()], true);
    assert_eq!(
        (code, get(&kv, "sum")),
        (0, pattern_sum(5, 65536).to_string().as_str())
    );
    to_server.send(()).unwrap();
    let m = from_server.recv().expect("final stats");
    assert_eq!((m.read_requests, m.write_requests), (0, 0));
    server.join().expect("server thread");
}

/// CapEff of this process's threads named `fuser-*` (fuser's request threads).
fn fuser_thread_caps() -> Vec<String> {
    let mut caps = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = task.unwrap().path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !comm.starts_with("fuser-") {
            continue;
        }
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        if let Some(v) = status.lines().find_map(|l| l.strip_prefix("CapEff:")) {
            caps.push(v.trim().to_string());
        }
    }
    caps
}
