//! `Pool::info` and `Pool::pins`: what maru-fs shows about a pool and its
//! chunks, read by libmaru so that no client spells an xattr name.

mod common;

use common::{poll, Fixture, Kind};
use maru::{NumaNode, Pool, PoolInfo};

const MIB: usize = 1 << 20;

#[test]
fn info_shows_capacity_use_state_and_node_of_a_maru_fs_pool() {
    let fx = Fixture::with_limits(Kind::MaruFs, 0o777, 64 << 20, None);
    let pool = Pool::open(&fx.pool).unwrap();
    let before = pool.info().unwrap();
    assert_eq!(before.capacity, Some(64 << 20));
    assert_eq!(before.online, Some(true));
    // The fixture's pool has no NUMA node configured.
    assert_eq!(before.node, Some(NumaNode::Unknown));
    let used = before.used.expect("maru-fs shows the bytes used");
    pool.store(b"k", &vec![1u8; MIB]).unwrap();
    let after = pool.info().unwrap().used.unwrap();
    assert!(after >= used + MIB as u64, "{used} -> {after}");
}

#[test]
fn a_plain_directory_shows_no_info_and_counts_no_pins() {
    let fx = Fixture::new(Kind::Shm, 0o777);
    let pool = Pool::open(&fx.pool).unwrap();
    assert_eq!(pool.info().unwrap(), PoolInfo::default());
    pool.store(b"k", b"x").unwrap();
    let err = pool.pins(b"k").unwrap_err();
    assert!(
        matches!(err.errno(), libc::ENODATA | libc::EOPNOTSUPP),
        "{err}"
    );
    assert_eq!(pool.pins(b"absent").unwrap(), None);
}

#[test]
fn info_of_a_removed_pool_directory_fails() {
    let fx = Fixture::new(Kind::Shm, 0o777);
    let pool = Pool::open(&fx.pool).unwrap();
    std::fs::remove_dir(&fx.pool).unwrap();
    assert_eq!(pool.info().unwrap_err().errno(), libc::ENOENT);
}

#[test]
fn pins_counts_the_open_descriptors_of_a_chunk() {
    let fx = Fixture::new(Kind::MaruFs, 0o777);
    let pool = Pool::open(&fx.pool).unwrap();
    let long = vec![b'/'; 300];
    for key in [&b"p"[..], &long] {
        pool.store(key, &[7u8; 4096]).unwrap();
        let wait = |want: u64| {
            poll(|| (pool.pins(key).unwrap() == Some(want)).then_some(()));
            assert_eq!(pool.pins(key).unwrap(), Some(want));
        };
        wait(0);
        let a = pool.get(key).unwrap().unwrap();
        let b = pool.get(key).unwrap().unwrap();
        assert_eq!(pool.pins(key).unwrap(), Some(2), "asking does not pin");
        drop(a);
        wait(1);
        drop(b);
        wait(0);
    }
    assert_eq!(pool.pins(b"absent").unwrap(), None);
    // A long key's name is checked against its xattr: another long key with
    // the same prefix is not it.
    let mut other = long.clone();
    other.push(b'!');
    assert_eq!(pool.pins(&other).unwrap(), None);
}
