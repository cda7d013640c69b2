//! The membership index (`<pool>/.maru-index`): `contains`, `batch_contains` and
//! `prefix_contains` answered from it must agree with the pool's real contents
//! across publish, unlink, eviction, index growth and a daemon restart, with
//! writers and readers racing, and for an unprivileged reader.

mod common;

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{run_child, unhex, Fixture, Kind, CHILD_ENV};
use maru::key::KeyName;
use maru::{Pool, Publish};

fn put(pool: &Pool, key: &[u8]) -> Publish {
    let mut c = pool.create(4096).unwrap();
    c.as_mut_slice()[0] = 1;
    c.publish(key).unwrap().outcome()
}

/// The keys of `keys` whose file is in the backing directory (the daemon's truth:
/// it removes the backing file when a name goes).
fn truth(backing: &Path, keys: &[Vec<u8>]) -> Vec<bool> {
    keys.iter()
        .map(|k| {
            let name = KeyName::new(k).unwrap();
            let name = std::ffi::OsStr::from_bytes(name.as_bytes());
            backing.join(name).exists()
        })
        .collect()
}

fn keys(prefix: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{prefix}/{i}").into_bytes())
        .collect()
}

fn mount(
    mnt: &Path,
    backing: &Path,
    capacity: u64,
    eviction: maru_fs::Eviction,
) -> maru_fs::Mounted {
    let cfg = maru_fs::PoolConfig {
        eviction,
        ..maru_fs::PoolConfig::new(
            "pool",
            maru_fs::Backing::Dir(backing.to_path_buf()),
            capacity,
        )
    };
    maru_fs::mount(&maru_fs::MountOptions::new(mnt), vec![cfg]).unwrap()
}

struct Dirs {
    _tmp: tempfile::TempDir,
    mnt: PathBuf,
    backing: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::Builder::new()
        .prefix("libmaru-index-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let mnt = tmp.path().join("mnt");
    let backing = tmp.path().join("backing");
    std::fs::create_dir(&mnt).unwrap();
    std::fs::create_dir(&backing).unwrap();
    Dirs {
        _tmp: tmp,
        mnt,
        backing,
    }
}

#[test]
fn index_agrees_with_the_pool_across_publish_unlink_growth_and_restart() {
    if !common::root() {
        return;
    }
    let d = dirs();
    let m = mount(&d.mnt, &d.backing, 1 << 30, maru_fs::Eviction::None);
    let pool = Pool::open(d.mnt.join("pool")).unwrap();
    assert!(
        pool.uses_index(),
        "maru-fs with passthrough offers an index"
    );
    // 1500 keys: more than half of the first table's 1024 slots, so it grows
    // (new generation, the old file superseded) while this pool has it mapped.
    let all = keys("k", 1500);
    for k in &all {
        assert_eq!(put(&pool, k), Publish::Published);
    }
    assert_eq!(pool.batch_contains(&all).unwrap(), vec![true; all.len()]);
    let missing = keys("never", 300);
    assert_eq!(pool.batch_contains(&missing).unwrap(), vec![false; 300]);
    for k in all.iter().step_by(3) {
        assert!(pool.remove(k).unwrap());
    }
    let want = truth(&d.backing, &all);
    assert_eq!(want.iter().filter(|&&p| !p).count(), 500);
    assert_eq!(pool.batch_contains(&all).unwrap(), want);
    for (k, w) in all.iter().zip(&want) {
        assert_eq!(pool.contains(k).unwrap(), *w);
    }
    assert_eq!(pool.prefix_contains(&all).unwrap(), 0, "k/0 was removed");
    assert_eq!(pool.prefix_contains(&all[1..]).unwrap(), 2);
    assert!(pool.uses_index());

    // Restart (adoption): the new daemon's index holds the adopted keys. (That
    // it marks the old file superseded for clients still mapping it is checked
    // by maru-fs's own unit test; here the old daemon would keep serving its
    // lazily detached mount.)
    drop(pool);
    m.unmount().unwrap();
    let m = mount(&d.mnt, &d.backing, 1 << 30, maru_fs::Eviction::None);
    let fresh = Pool::open(d.mnt.join("pool")).unwrap();
    assert!(fresh.uses_index());
    assert_eq!(fresh.batch_contains(&all).unwrap(), want);
    assert!(fresh.remove(&all[1]).unwrap());
    assert!(!fresh.contains(&all[1]).unwrap());
    assert!(fresh.contains(&all[2]).unwrap());
    drop(m);
}

#[test]
fn index_follows_eviction() {
    if !common::root() {
        return;
    }
    let d = dirs();
    // Room for 40 chunks of 64 KiB: publishing 120 evicts the oldest.
    let _m = mount(&d.mnt, &d.backing, 40 << 16, maru_fs::Eviction::Lru);
    let pool = Pool::open(d.mnt.join("pool")).unwrap();
    let all = keys("e", 120);
    for k in &all {
        let mut c = pool.create(1 << 16).unwrap();
        c.as_mut_slice()[0] = 1;
        c.publish(k).unwrap();
    }
    let want = truth(&d.backing, &all);
    let present = want.iter().filter(|&&p| p).count();
    assert!(present > 0 && present < 120, "{present} of 120 present");
    assert_eq!(pool.batch_contains(&all).unwrap(), want);
}

#[test]
fn concurrent_writers_and_readers_never_see_removed_keys() {
    if !common::root() {
        return;
    }
    let d = dirs();
    let _m = mount(&d.mnt, &d.backing, 1 << 30, maru_fs::Eviction::None);
    let path = d.mnt.join("pool");
    let stable = keys("stable", 64);
    let pool = Pool::open(&path).unwrap();
    for k in &stable {
        put(&pool, k);
    }
    let gone = keys("gone", 64);
    for k in &gone {
        put(&pool, k);
        pool.remove(k).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..2 {
        let (path, stop) = (path.clone(), stop.clone());
        writers.push(std::thread::spawn(move || {
            let pool = Pool::open(&path).unwrap();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let k = format!("churn/{w}/{i}").into_bytes();
                put(&pool, &k);
                pool.remove(&k).unwrap();
                i += 1;
            }
            i
        }));
    }
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (path, stable, gone) = (path.clone(), stable.clone(), gone.clone());
            std::thread::spawn(move || {
                let pool = Pool::open(&path).unwrap();
                for _ in 0..300 {
                    assert_eq!(pool.batch_contains(&stable).unwrap(), vec![true; 64]);
                    assert_eq!(pool.batch_contains(&gone).unwrap(), vec![false; 64]);
                    assert_eq!(pool.prefix_contains(&stable).unwrap(), 64);
                }
                pool.uses_index()
            })
        })
        .collect();
    for r in readers {
        assert!(r.join().unwrap(), "readers used the index");
    }
    stop.store(true, Ordering::Relaxed);
    let churned: usize = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(churned > 0);
}

#[test]
fn an_unprivileged_reader_uses_the_index() {
    if !common::root() {
        return;
    }
    let fx = Fixture::new(Kind::MaruFs, 0o755);
    let pool = Pool::open(&fx.pool).unwrap();
    put(&pool, b"for/nobody");
    let out = run_child("index", &fx, b"for/nobody", true);
    assert_eq!(out, "index=true present=true missing=false");
    // A plain directory has no index: the same answers come from stat.
    let shm = Fixture::new(Kind::Shm, 0o755);
    let pool = Pool::open(&shm.pool).unwrap();
    put(&pool, b"for/nobody");
    let out = run_child("index", &shm, b"for/nobody", true);
    assert_eq!(out, "index=false present=true missing=false");
}

#[test]
fn the_index_file_is_read_only_and_cannot_be_replaced() {
    if !common::root() {
        return;
    }
    let fx = Fixture::new(Kind::MaruFs, 0o777);
    let idx = fx.pool.join(".maru-index");
    assert!(std::fs::metadata(&idx).unwrap().len() >= 4096);
    let err = |r: std::io::Result<()>| r.unwrap_err().raw_os_error();
    assert_eq!(
        err(std::fs::OpenOptions::new().write(true).open(&idx).map(drop)),
        Some(libc::EPERM)
    );
    assert_eq!(err(std::fs::remove_file(&idx)), Some(libc::EPERM));
    let listed: Vec<_> = std::fs::read_dir(&fx.pool).unwrap().collect();
    assert!(listed.is_empty(), "hidden from readdir");
}

/// Entry point of the child processes (does nothing as an ordinary test).
#[test]
fn child() {
    let Ok(action) = std::env::var(CHILD_ENV) else {
        return;
    };
    assert_eq!(action, "index");
    let pool = Pool::open(std::env::var("LIBMARU_TEST_POOL").unwrap()).unwrap();
    let key = unhex(&std::env::var("LIBMARU_TEST_KEY").unwrap());
    println!(
        "RESULT index={} present={} missing={}",
        pool.uses_index(),
        pool.contains(&key).unwrap(),
        pool.contains(b"not/there").unwrap()
    );
}
