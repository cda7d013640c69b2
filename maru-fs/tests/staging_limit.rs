//! Staging chunks an unprivileged user holds open: the daemon keeps a descriptor
//! per staging chunk, so one uid may hold at most `max_staging_per_uid` of them
//! (across processes and pools); `create` beyond it fails with EMFILE for that
//! uid only. Other uids and root still create; closing or publishing gives the
//! slots back.

mod common;

use common::*;

/// The cap the mount is given here (the default is 4,096).
const CAP: u32 = 64;

fn staged(fx: &Fixture) -> u64 {
    fx.stats("kv").staging_chunks + fx.stats("aux").staging_chunks
}

#[test]
fn staging_chunks_are_bounded_per_uid() {
    if skip_unless_root() {
        return;
    }
    let backing_root = tempfile::Builder::new()
        .prefix("maru-fs-test-")
        .tempdir_in("/dev/shm")
        .expect("backing root on /dev/shm");
    let cfgs = ["kv", "aux"]
        .iter()
        .map(|name| {
            let dir = backing_root.path().join(name);
            std::fs::create_dir(&dir).expect("backing dir");
            maru_fs::PoolConfig {
                mode: 0o1777,
                ..pool(name, &dir, 64 * MIB)
            }
        })
        .collect();
    let fx = Fixture::mount_with_options(backing_root, cfgs, |o| o.max_staging_per_uid = CAP);
    let kv = fx.pool_dir("kv");
    let aux = fx.pool_dir("aux");
    let (kv, aux) = (kv.to_str().unwrap(), aux.to_str().unwrap());

    // uid 65534 fills its cap from two processes and two pools.
    let first = Held::start(&["stagings", kv, "40", "publish"], true, "error");
    assert_eq!(get(&first.kv, "created"), "40");
    assert_eq!(get(&first.kv, "error"), "none");
    let second = Held::start(&["stagings", aux, "100"], true, "error");
    assert_eq!(get(&second.kv, "created"), (CAP - 40).to_string());
    assert_eq!(get(&second.kv, "error"), "EMFILE");

    // Another uid is not affected, and root is not counted at all.
    let other = Held::start_as(&["stagings", kv, "50"], Some(65533), "error");
    assert_eq!(get(&other.kv, "created"), "50");
    assert_eq!(get(&other.kv, "error"), "none");
    let root = Held::start_as(&["stagings", aux, "200"], None, "error");
    assert_eq!(get(&root.kv, "created"), "200");
    assert_eq!(get(&root.kv, "error"), "none");
    assert_eq!(staged(&fx), u64::from(CAP) + 50 + 200);

    // Still at the cap: a third process of uid 65534 gets nothing.
    let third = Held::start(&["stagings", kv, "1"], true, "error");
    assert_eq!(get(&third.kv, "created"), "0");
    assert_eq!(get(&third.kv, "error"), "EMFILE");
    third.finish();

    // The first process publishes its 40 and closes them, the second closes
    // without publishing: all of uid 65534's slots come back (the last release
    // arrives asynchronously after the processes exit).
    first.finish();
    second.finish();
    other.finish();
    root.finish();
    assert_eq!(fx.stats("kv").published_chunks, 40);
    wait_until("uid 65534's staging chunks released", || staged(&fx) == 0);
    let again = Held::start(&["stagings", aux, &CAP.to_string()], true, "error");
    assert_eq!(get(&again.kv, "created"), CAP.to_string());
    assert_eq!(get(&again.kv, "error"), "none");
    again.finish();
}
