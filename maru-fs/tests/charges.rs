//! Every byte charged, every charge returned: capacity accounting against real
//! processes that die, map, and grow chunks behind the daemon's back.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;

use common::books::{assert_books_balance, put_written as put, statfs_used};
use common::*;
use maru_proto::xattr;

/// Sets a sysctl for as long as it lives, restoring the old value on drop.
struct Sysctl {
    path: &'static str,
    old: String,
}

impl Sysctl {
    fn set(path: &'static str, value: &str) -> Sysctl {
        let old = std::fs::read_to_string(path).expect("read sysctl");
        std::fs::write(path, value).expect("write sysctl");
        Sysctl { path, old }
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(self.path, self.old.trim()) {
            eprintln!("cannot restore {}: {e}", self.path);
        }
    }
}

#[test]
fn killed_mapped_writer_returns_its_charge() {
    if skip_unless_root() {
        return;
    }
    let fx = Fixture::new(&[("p", 64 * MIB)], |_| {});
    let dir = fx.pool_dir("p");
    let mut w = Held::start(
        &[
            "stall",
            dir.to_str().unwrap(),
            ".stage-killed",
            &(2 * MIB).to_string(),
        ],
        false,
        "ready",
    );
    assert_eq!(statfs_used(&dir), 2 * MIB);
    assert_eq!(
        xattr_get(&dir, xattr::USED).expect("used xattr"),
        b"2097152"
    );
    w.child.kill().expect("SIGKILL writer");
    w.child.wait().expect("reap writer");
    wait_until("name gone", || !dir.join(".stage-killed").exists());
    // Nothing asks the daemon for stats here: df alone must see the space return.
    wait_until("statfs used back to 0", || statfs_used(&dir) == 0);
    assert_eq!(xattr_get(&dir, xattr::USED).expect("used xattr"), b"0");
    assert_eq!(fx.stats("p").used_bytes, 0);
    assert_books_balance(&fx, "p");
}

#[test]
fn reaper_overflow_still_returns_every_charge() {
    if skip_unless_root() {
        return;
    }
    const N: u64 = 1500;
    const SIZE: u64 = 4096;
    // The daemon's inotify queue gets room for 16 events (the limit is read when
    // the instance is created): N chunks freed at once overflow it for sure.
    let fx = {
        let _small = Sysctl::set("/proc/sys/fs/inotify/max_queued_events", "16");
        Fixture::new(&[("p", 64 * MIB)], |_| {})
    };
    let dir = fx.pool_dir("p");
    for i in 0..N {
        put(&dir, &format!("k-{i}"), SIZE);
    }
    let mut mapper = Held::start(
        &["mapmany", dir.to_str().unwrap(), "k", &N.to_string()],
        false,
        "ready",
    );
    assert_eq!(get(&mapper.kv, "mapped"), N.to_string());
    for i in 0..N {
        std::fs::remove_file(dir.join(format!("k-{i}"))).expect("unlink");
    }
    // Every chunk is still mapped: all of it stays charged.
    assert_eq!(statfs_used(&dir), N * SIZE);
    mapper.child.kill().expect("SIGKILL mapper");
    mapper.child.wait().expect("reap mapper");
    wait_until("every mapped chunk's charge returned", || {
        statfs_used(&dir) == 0
    });
    assert_eq!(fx.stats("p").used_bytes, 0);
    assert_books_balance(&fx, "p");
}

#[test]
fn books_balance_through_the_lifecycle_and_catch_strays() {
    if skip_unless_root() {
        return;
    }
    let fx = Fixture::new(&[("p", 16 * MIB)], |_| {});
    let dir = fx.pool_dir("p");
    put(&dir, "a", 3 * 4096 + 17);
    put(&dir, "b", MIB);
    assert_books_balance(&fx, "p");
    // Unlinked while mapped: still charged (as removed bytes), then returned.
    let f = std::fs::File::open(dir.join("b")).expect("open b");
    // SAFETY: published chunks are sealed; nothing truncates b while mapped.
    let m = unsafe { memmap2::MmapOptions::new().map(&f) }.expect("map b");
    drop(f);
    std::fs::remove_file(dir.join("b")).expect("unlink b");
    let books = fx.control.charges().remove(0);
    assert_eq!(books.removed_bytes, MIB);
    assert_books_balance(&fx, "p");
    drop(m);
    wait_until("b's charge returned", || {
        fx.control.charges()[0].removed_bytes == 0
    });
    assert_books_balance(&fx, "p");
    // A byte in the backing store that nobody is charged for is caught.
    std::fs::write(fx.backing_dir("p").join("stray"), b"x").expect("stray file");
    let err = common::books::books_balance(&fx, "p").expect_err("stray file not caught");
    assert!(err.contains("stray"), "{err}");
}

#[test]
fn unsized_staging_chunk_grown_by_write_is_charged_or_cut_back() {
    if skip_unless_root() {
        return;
    }
    let fx = Fixture::new(&[("p", 64 * MIB)], |c| {
        c.max_chunk_size = Some(16 * MIB);
        c.mode = 0o777;
    });
    let dir = fx.pool_dir("p");
    // Within the limits: the growth is charged while the writer still writes.
    let mut ok = Held::start(
        &["grow", dir.to_str().unwrap(), ".ok", &(8 * MIB).to_string()],
        false,
        "ready",
    );
    assert_eq!(get(&ok.kv, "written"), (8 * MIB).to_string());
    wait_until("write(2) growth charged", || statfs_used(&dir) == 8 * MIB);
    assert_books_balance(&fx, "p");
    // 80 MiB into a 64 MiB pool whose chunks may have 16: never charged (EFBIG),
    // so cut back to what is charged, and df does not lie meanwhile for long.
    let mut big = Held::start(
        &[
            "grow",
            dir.to_str().unwrap(),
            ".big",
            &(80 * MIB).to_string(),
        ],
        true,
        "ready",
    );
    assert_books_balance(&fx, "p");
    let big_len = std::fs::metadata(fx.backing_dir("p").join(".big"))
        .expect("backing file of .big")
        .len();
    assert_eq!(big_len, 0, "uncharged bytes left in the backing file");
    assert_eq!(statfs_used(&dir), 8 * MIB);
    // Another user's fallocated chunk gets the room df promises.
    let other = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(dir.join(".other"))
        .expect("create .other");
    nix::fcntl::fallocate(
        &other,
        nix::fcntl::FallocateFlags::empty(),
        0,
        (16 * MIB) as i64,
    )
    .expect("fallocate the free room");
    assert_books_balance(&fx, "p");
    drop(other);
    for w in [&mut ok, &mut big] {
        w.child.kill().expect("SIGKILL writer");
        w.child.wait().expect("reap writer");
    }
    wait_until("writers' charges returned", || statfs_used(&dir) == 0);
    assert_books_balance(&fx, "p");
}

#[test]
fn pwrite_after_publish_is_cut_back() {
    if skip_unless_root() {
        return;
    }
    let fx = Fixture::new(&[("p", 64 * MIB)], |_| {});
    let dir = fx.pool_dir("p");
    let w = Held::start(
        &["grow", dir.to_str().unwrap(), ".w", "4096", "sealed-key"],
        false,
        "ready",
    );
    assert_eq!(get(&w.kv, "publish"), "ok");
    // Passthrough lets the write through the kept descriptor happen...
    assert_eq!(get(&w.kv, "late_write"), "ok");
    // ...but the backing file goes back to the published 4 KiB, uncharged bytes gone.
    assert_books_balance(&fx, "p");
    let backing = fx.backing_dir("p").join("sealed-key");
    assert_eq!(std::fs::metadata(&backing).expect("backing").len(), 4096);
    assert_eq!(
        std::fs::metadata(dir.join("sealed-key"))
            .expect("key")
            .len(),
        4096
    );
    assert_eq!(
        std::fs::read(dir.join("sealed-key")).expect("read key"),
        vec![0x6b; 4096]
    );
    assert_eq!(statfs_used(&dir), 4096);
    w.finish();
    assert_books_balance(&fx, "p");
    assert_eq!(statfs_used(&dir), 4096);
}
