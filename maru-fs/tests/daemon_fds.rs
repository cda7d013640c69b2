//! Descriptors the daemon holds for chunks an unprivileged reader keeps open. With
//! FUSE passthrough the kernel holds each chunk's backing file through its backing
//! id; the daemon used to keep its own descriptor per open chunk as well, so one
//! reader holding ~1,000 chunks exhausted RLIMIT_NOFILE 1024 and every other
//! user's create failed with EMFILE. The daemon is this test process.

mod common;

use std::fs::OpenOptions;
use std::io::Read;

use common::*;

const KEYS: usize = 400;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn readers_holding_chunks_cost_the_daemon_no_descriptors() {
    if skip_unless_root() {
        return;
    }
    let fx = Fixture::new(&[("kv", 64 * MIB)], |c| c.mode = 0o1777);
    let pool = fx.pool_dir("kv");
    for i in 0..KEYS {
        let staging = pool.join(format!(".s{i}"));
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&staging)
            .unwrap();
        std::io::Write::write_all(&mut f, format!("chunk {i:05}").as_bytes()).unwrap();
        std::fs::rename(&staging, pool.join(format!("key-{i:05}"))).unwrap();
        drop(f);
    }
    let before = open_fds();
    let reader = Held::start(
        &["openkeys", pool.to_str().unwrap(), &KEYS.to_string()],
        true,
        "error",
    );
    assert_eq!(get(&reader.kv, "opened"), KEYS.to_string());
    assert_eq!(get(&reader.kv, "error"), "none");
    assert_eq!(get(&reader.kv, "read"), (KEYS * 11).to_string());
    let during = open_fds();
    assert!(
        during < before + 16,
        "a reader holding {KEYS} chunks made the daemon hold {} more descriptors",
        during.saturating_sub(before)
    );
    // Another open of a chunk the reader holds shares the registration and reads.
    let mut s = String::new();
    std::fs::File::open(pool.join("key-00007"))
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s, "chunk 00007");
    reader.finish();
    // The last handles' release drops the registrations; chunks open again.
    let mut s = String::new();
    std::fs::File::open(pool.join("key-00399"))
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s, "chunk 00399");
}
