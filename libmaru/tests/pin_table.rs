//! The pool-wide pin table through the public API, on a plain directory pool:
//! prefix pins checked against the pool, counts shared by two handles of one
//! table file, removal refused while pinned, a full table. (Several processes:
//! python/tests/test_pin_table.py.)

use maru::{PinTable, Pool, Removal};

#[test]
fn two_handles_share_counts_and_removal_waits_for_the_last_pin() {
    let dir = tempfile::tempdir().unwrap();
    let pins = tempfile::tempdir().unwrap();
    let pool = Pool::open(dir.path()).unwrap();
    for k in [&b"a"[..], b"b", b"d"] {
        pool.store(k, b"x").unwrap();
    }
    let path = pins.path().join("table");
    let t1 = PinTable::open(&path, 100).unwrap();
    let t2 = PinTable::open(&path, 8).unwrap();
    assert_eq!(
        (t1.slots(), t2.slots()),
        (128, 128),
        "the creator's size, a power of two"
    );

    let p = t1
        .pin_prefix(&pool, &[&b"a"[..], b"b", b"c", b"d"])
        .unwrap();
    assert_eq!(
        (p.before, p.full),
        (vec![0, 0], false),
        "stops at the missing key"
    );
    let p = t2.pin_prefix(&pool, &[&b"a"[..]]).unwrap();
    assert_eq!(
        p.before,
        vec![1],
        "one process: both handles count as this process"
    );
    assert_eq!(
        t2.counts(&[&b"a"[..], b"b", b"c", b"d"]).unwrap(),
        vec![(2, 2), (1, 1), (0, 0), (0, 0)]
    );
    assert_eq!(t2.remove_unpinned(&pool, b"a").unwrap(), Removal::Pinned(2));
    assert_eq!(t2.remove_unpinned(&pool, b"d").unwrap(), Removal::Removed);
    assert_eq!(t2.remove_unpinned(&pool, b"d").unwrap(), Removal::Absent);
    assert_eq!(
        t2.unpin(&[&b"a"[..], b"a", b"a", b"b"]).unwrap(),
        vec![(true, 1), (true, 0), (false, 0), (true, 0)]
    );
    assert_eq!(t1.remove_unpinned(&pool, b"a").unwrap(), Removal::Removed);
    assert!(!pool.contains(b"a").unwrap());
    assert_eq!(t1.holders().unwrap(), Vec::<u32>::new());
}

#[test]
fn a_full_table_stops_the_prefix_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let pins = tempfile::tempdir().unwrap();
    let pool = Pool::open(dir.path()).unwrap();
    let keys: Vec<Vec<u8>> = (0..5).map(|i| format!("k{i}").into_bytes()).collect();
    for k in &keys {
        pool.store(k, b"x").unwrap();
    }
    let t = PinTable::open(pins.path().join("table"), 4).unwrap();
    let p = t.pin_prefix(&pool, &keys).unwrap();
    assert_eq!((p.before.len(), p.full), (4, true));
    assert_eq!(t.holders().unwrap(), vec![std::process::id()]);
    assert_eq!(t.unpin(&keys[..1]).unwrap(), vec![(true, 0)]);
    let p = t.pin_prefix(&pool, &keys[4..]).unwrap();
    assert_eq!((p.before, p.full), (vec![0], false));
}

#[test]
fn a_file_that_is_not_a_table_is_refused() {
    let pins = tempfile::tempdir().unwrap();
    let path = pins.path().join("table");
    std::fs::write(&path, [0u8; 4096]).unwrap();
    let err = PinTable::open(&path, 8).err().expect("not a table");
    assert!(err.to_string().contains("not a pin table"), "{err}");
}
