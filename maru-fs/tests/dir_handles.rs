//! Directory handles an unprivileged user controls: a handle must not cost the
//! daemon memory proportional to the listing (it used to snapshot the whole
//! listing per opendir: ~588 KiB per handle at 5,000 keys), readdir must still
//! list every key exactly once, and one uid may hold at most 1,024 handles
//! (EMFILE beyond). The daemon is this test process (the mount is served here),
//! so its VmRSS is the daemon's memory.

mod common;

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::process::Command;

use common::*;

const KEYS: usize = 5000;
const PER_UID: usize = 1024;

fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// `ls -f` of `dir` as uid 65534 (many readdir requests, each resuming at the
/// offset the kernel kept), without `.` and `..`.
fn list_unprivileged(dir: &std::path::Path) -> Vec<String> {
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "ls",
            "-f",
            "-1",
        ])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| *l != "." && *l != "..")
        .map(str::to_string)
        .collect()
}

#[test]
fn directory_handles_cost_no_listing_and_are_bounded_per_uid() {
    if skip_unless_root() {
        return;
    }
    let fx = Fixture::new(&[("kv", 64 * MIB)], |c| c.mode = 0o1777);
    let pool = fx.pool_dir("kv");
    let keys: Vec<String> = (0..KEYS)
        .map(|i| format!("key-{i:05}-{}", "x".repeat(40)))
        .collect();
    for (i, key) in keys.iter().enumerate() {
        let staging = pool.join(format!(".s{i}"));
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&staging)
            .unwrap();
        std::fs::rename(&staging, pool.join(key)).unwrap();
        drop(f);
    }
    let want: HashSet<String> = keys.iter().cloned().collect();

    // Every key exactly once.
    let listed = list_unprivileged(&pool);
    assert_eq!(listed.len(), KEYS, "listed {} names", listed.len());
    assert_eq!(listed.iter().cloned().collect::<HashSet<_>>(), want);

    // 600 handles held by uid 65534: the daemon's memory barely moves (with a
    // listing per handle it grew by ~600 × 588 KiB ≈ 345 MiB).
    let before = vm_rss_kib();
    let holder = Held::start(&["opendirs", pool.to_str().unwrap(), "600"], true, "error");
    assert_eq!(get(&holder.kv, "opened"), "600");
    assert_eq!(get(&holder.kv, "error"), "none");
    let after = vm_rss_kib();
    let growth = after.saturating_sub(before);
    assert!(
        growth < 16 * 1024,
        "600 open directory handles grew the daemon by {growth} KiB ({before} -> {after})"
    );

    // Still every key exactly once, with 600 handles open.
    let listed = list_unprivileged(&pool);
    assert_eq!(listed.len(), KEYS);
    assert_eq!(listed.into_iter().collect::<HashSet<_>>(), want);

    // The same uid gets 1,024 handles in all, then EMFILE (the root directory
    // counts too: the bound is per uid, not per directory).
    let root = fx.mnt.path().to_str().unwrap().to_string();
    let more = Held::start(&["opendirs", &root, "1000"], true, "error");
    assert_eq!(get(&more.kv, "opened"), (PER_UID - 600).to_string());
    assert_eq!(get(&more.kv, "error"), "EMFILE");
    // Another uid is not affected.
    let root_holder = Held::start(&["opendirs", &root, "50"], false, "error");
    assert_eq!(get(&root_holder.kv, "opened"), "50");
    root_holder.finish();
    holder.finish();
    more.finish();
    // Handles closed by the processes' exit are given back (releasedir arrives
    // asynchronously): the uid can open 1,024 again.
    wait_until("uid 65534's directory handles released", || {
        let h = Held::start(&["opendirs", &root, &PER_UID.to_string()], true, "error");
        let ok = get(&h.kv, "opened") == PER_UID.to_string();
        h.finish();
        ok
    });
}
