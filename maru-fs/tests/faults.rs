//! The capacity fault suite: hostile and dying clients against a real mount,
//! each case followed by the books check (`tests/common/books.rs`: used bytes as
//! statfs, `user.maru.used` and stats report them == the sum of the charges, and
//! no backing byte uncharged). Prints `N passed, M failed`; exits 1 on a failure.

mod common;

use common::books::{assert_books_balance, put_written as put, statfs_used};
use common::*;

fn kill(mut w: Held) {
    w.child.kill().expect("SIGKILL");
    w.child.wait().expect("reap child");
}

/// 100 writers killed with SIGKILL, 10 at a time: half mapped their staging
/// chunk (`stall`), half grew it with write(2) and hold the descriptor.
fn killed_writers() {
    let fx = Fixture::new(&[("p", 256 * MIB)], |c| c.mode = 0o777);
    let dir = fx.pool_dir("p");
    let d = dir.to_str().expect("utf-8 mount path");
    for round in 0..10 {
        let mut held = Vec::new();
        for i in 0..10 {
            let name = format!(".w-{round}-{i}");
            let size = ((i as u64 % 4) + 1) * MIB;
            let w = if i % 2 == 0 {
                Held::start(&["stall", d, &name, &size.to_string()], i % 4 == 0, "ready")
            } else {
                Held::start(&["grow", d, &name, &size.to_string()], i % 4 == 1, "ready")
            };
            held.push(w);
        }
        wait_until("every writer charged", || {
            fx.stats("p").staging_chunks == 10 && common::books::books_balance(&fx, "p").is_ok()
        });
        for w in held {
            kill(w);
        }
        wait_until("killed writers' space back", || statfs_used(&dir) == 0);
        assert_books_balance(&fx, "p");
    }
    assert!(std::fs::read_dir(&dir).expect("list").next().is_none());
}

/// A process maps 4000 chunks, they are unlinked, and it is killed: 8000
/// inotify events at once into a queue lowered to 64.
fn reaper_overflow() {
    const N: u64 = 4000;
    let path = "/proc/sys/fs/inotify/max_queued_events";
    let old = std::fs::read_to_string(path).expect("read max_queued_events");
    std::fs::write(path, "64").expect("lower max_queued_events");
    let fx = std::panic::catch_unwind(|| Fixture::new(&[("p", 64 * MIB)], |_| {}));
    std::fs::write(path, old.trim()).expect("restore max_queued_events");
    let fx = fx.unwrap_or_else(|e| std::panic::resume_unwind(e));
    let dir = fx.pool_dir("p");
    for i in 0..N {
        put(&dir, &format!("k-{i}"), 4096);
    }
    let d = dir.to_str().expect("utf-8 mount path");
    let mapper = Held::start(&["mapmany", d, "k", &N.to_string()], false, "ready");
    for i in 0..N {
        std::fs::remove_file(dir.join(format!("k-{i}"))).expect("unlink");
    }
    assert_eq!(
        statfs_used(&dir),
        N * 4096,
        "mapped chunks must stay charged"
    );
    assert_books_balance(&fx, "p");
    kill(mapper);
    wait_until("every charge returned", || statfs_used(&dir) == 0);
    assert_books_balance(&fx, "p");
}

/// write(2) past EOF of an unsized staging chunk, beyond the pool and the chunk
/// limit, by an unprivileged writer.
fn write_past_eof() {
    let fx = Fixture::new(&[("p", 64 * MIB)], |c| {
        c.max_chunk_size = Some(16 * MIB);
        c.mode = 0o777;
    });
    let dir = fx.pool_dir("p");
    let d = dir.to_str().expect("utf-8 mount path");
    let w = Held::start(&["grow", d, ".big", &(80 * MIB).to_string()], true, "ready");
    assert_books_balance(&fx, "p");
    assert!(statfs_used(&dir) <= 16 * MIB);
    kill(w);
    wait_until("space back", || statfs_used(&dir) == 0);
    assert_books_balance(&fx, "p");
}

/// pwrite past the end of a published chunk through the writer's kept descriptor.
fn pwrite_after_publish() {
    let fx = Fixture::new(&[("p", 64 * MIB)], |c| c.mode = 0o777);
    let dir = fx.pool_dir("p");
    let d = dir.to_str().expect("utf-8 mount path");
    let w = Held::start(&["grow", d, ".s", "4096", "key"], true, "ready");
    assert_eq!(get(&w.kv, "publish"), "ok");
    assert_books_balance(&fx, "p");
    kill(w);
    assert_books_balance(&fx, "p");
    assert_eq!(statfs_used(&dir), 4096);
    assert_eq!(
        std::fs::read(dir.join("key")).expect("read key").len(),
        4096
    );
}

fn main() {
    maru_testkit::faults::run(
        "maru-fs capacity",
        &[
            ("killed_writers_x100", killed_writers),
            ("reaper_overflow", reaper_overflow),
            ("write_past_eof", write_past_eof),
            ("pwrite_after_publish", pwrite_after_publish),
        ],
    );
}
