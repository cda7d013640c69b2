//! Devdax pool tests on a stand-in for the device: a sparse file on tmpfs
//! (`/dev/shm`) sized from the `dax0.0` of a captured sysfs tree (QEMU 10, Linux
//! 6.12, a CXL RAM region in devdax mode), mapped and used exactly like the device.

use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, OnceLock};

use super::layout::{INDEX_OFFSET, LEASE_OFFSET, RECORD_SIZE, SLOT_SIZE};
use super::*;

const MIB: u64 = 1 << 20;

use maru_testkit::devdax::{
    tarball as fixture_tarball, ALIGN as FIXTURE_ALIGN, DAX_DIR as FIXTURE_DAX_DIR,
    SIZE as FIXTURE_SIZE,
};

/// What that snapshot's `dax0.0` says (checked by the test below when it is there).
const FIXTURE_GEOMETRY: Geometry = Geometry {
    size: FIXTURE_SIZE,
    align: FIXTURE_ALIGN,
};

/// Size and alignment of `dax0.0` read through [`Geometry::from_sysfs`] from the
/// extracted snapshot.
fn read_fixture(tarball: &Path) -> Geometry {
    let dir = tempfile::tempdir().unwrap();
    let st = Command::new("tar")
        .arg("xzf")
        .arg(tarball)
        .arg("-C")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(st.success(), "tar could not extract {}", tarball.display());
    Geometry::from_sysfs(&dir.path().join(FIXTURE_DAX_DIR)).unwrap()
}

/// The geometry the stand-ins get: read from the snapshot, or (when it cannot be
/// found) the values it holds, with a note.
fn fixture_geometry() -> Geometry {
    static GEO: OnceLock<Geometry> = OnceLock::new();
    *GEO.get_or_init(|| match fixture_tarball() {
        Some(t) => read_fixture(&t),
        None => {
            eprintln!(
                "NOTE: sysfs fixture not found (set MARU_SHARED_DIR to shared/); the stand-in \
                 uses its known dax0.0 geometry"
            );
            FIXTURE_GEOMETRY
        }
    })
}

/// A stand-in device: a sparse file on tmpfs with the sysfs attributes beside it.
struct Dev {
    _dir: tempfile::TempDir,
    cfg: DevdaxConfig,
}

impl Dev {
    /// A blank stand-in of `geo`'s size, its `size`/`align` in a sysfs-like directory.
    fn new(geo: Geometry) -> Dev {
        let dir = tempfile::tempdir_in("/dev/shm").unwrap();
        let device = dir.path().join("dax0.0");
        OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&device)
            .unwrap()
            .set_len(geo.size)
            .unwrap();
        let sysfs = dir.path().join("sysfs");
        std::fs::create_dir(&sysfs).unwrap();
        std::fs::write(sysfs.join("size"), format!("{}\n", geo.size)).unwrap();
        std::fs::write(sysfs.join("align"), format!("{}\n", geo.align)).unwrap();
        let mut cfg = DevdaxConfig::new(device);
        cfg.sysfs_dir = Some(sysfs);
        Dev { _dir: dir, cfg }
    }

    /// The fixture's dax0.0.
    fn fixture() -> Dev {
        Dev::new(fixture_geometry())
    }

    /// A small device (16 MiB at 2 MiB alignment: 7 data extents).
    fn small() -> Dev {
        Dev::new(Geometry {
            size: 16 * MIB,
            align: 2 * MIB,
        })
    }

    fn open(&self) -> Result<DevdaxStore, DevdaxError> {
        DevdaxStore::open(&self.cfg).map(|(store, _)| store)
    }

    fn open_recovering(&self) -> (DevdaxStore, Recovery) {
        DevdaxStore::open(&self.cfg).unwrap()
    }

    fn poke(&self, at: u64, bytes: &[u8]) {
        let f = OpenOptions::new()
            .write(true)
            .open(&self.cfg.device)
            .unwrap();
        f.write_all_at(bytes, at).unwrap();
    }

    fn peek(&self, at: u64, n: usize) -> Vec<u8> {
        let f = std::fs::File::open(&self.cfg.device).unwrap();
        let mut buf = vec![0; n];
        f.read_exact_at(&mut buf, at).unwrap();
        buf
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap()
}

/// Writes, publishes and returns the data of chunk `key` (`len` bytes).
fn publish(store: &DevdaxStore, key: &str, len: usize, seed: u8) -> Vec<u8> {
    let stage = format!(".stage-{key}");
    let h = store.create(OsStr::new(&stage), 1000, 0o640).unwrap();
    h.set_len(len as u64).unwrap();
    let data = pattern(len, seed);
    h.write_all_at(&data, 0).unwrap();
    store
        .rename_noreplace(OsStr::new(&stage), OsStr::new(key))
        .unwrap();
    data
}

fn read_all(store: &DevdaxStore, key: &str) -> Vec<u8> {
    let h = store.open_chunk(OsStr::new(key)).unwrap();
    let mut buf = vec![0; h.len().unwrap() as usize];
    assert_eq!(h.read_at(&mut buf, 0).unwrap(), buf.len());
    buf
}

#[test]
fn fixture_geometry_is_the_captured_dax_device() {
    let Some(tarball) = fixture_tarball() else {
        let missing = maru_testkit::fixtures::missing(&maru_testkit::fixtures::sysfs_dir());
        maru_testkit::need::skip("no fixture", &missing);
        return;
    };
    assert_eq!(read_fixture(&tarball), FIXTURE_GEOMETRY);
}

#[test]
fn blank_range_is_formatted_only_when_allowed() {
    let mut dev = Dev::fixture();
    dev.cfg.format = FormatPolicy::Never;
    let err = dev.open().unwrap_err();
    assert!(matches!(err, DevdaxError::Blank { .. }), "{err}");
    assert!(err.to_string().contains("format"), "{err}");
    dev.cfg.format = FormatPolicy::IfBlank;
    let (store, recovery) = dev.open_recovering();
    assert_eq!(store.data_len(), 254 * MIB);
    assert_eq!(recovery, Recovery::default());
    assert_eq!(&dev.peek(0, 8), b"MARUDAX\0");
}

#[test]
fn restart_recovers_published_chunks_and_drops_staging() {
    let dev = Dev::fixture();
    let (a, b, extent_b, xattr);
    {
        let store = dev.open().unwrap();
        a = publish(&store, "a", 3 * MIB as usize + 17, 1);
        b = publish(&store, "b", 4096, 2);
        extent_b = store.extent_of(OsStr::new("b")).unwrap();
        // A writer's xattr on a staging chunk survives with it.
        let h = store.create(OsStr::new(".stage-c"), 7, 0o600).unwrap();
        h.set_len(MIB).unwrap();
        h.set_xattr(OsStr::new(maru_proto::xattr::KEY), Some(b"c/long key"))
            .unwrap();
        store
            .rename_noreplace(OsStr::new(".stage-c"), OsStr::new("c"))
            .unwrap();
        xattr = b"c/long key".to_vec();
        // Left staging (its record stays, as after a crash): must be dropped at
        // restart, its extent freed.
        let s = store.create(OsStr::new(".stage-x"), 1000, 0o600).unwrap();
        s.set_len(8 * MIB).unwrap();
        drop(s);
    }
    let (store, recovery) = dev.open_recovering();
    assert_eq!(
        recovery,
        Recovery {
            published: 3,
            staging_dropped: 1,
            damaged_dropped: 0,
            data_mismatch: 0,
            quarantined: 0,
        }
    );
    let found = store.published();
    let names: Vec<_> = found.iter().map(|f| f.name.to_str().unwrap()).collect();
    assert_eq!(names, ["a", "b", "c"], "in publish order");
    assert_eq!(found[0].meta.uid, 1000);
    assert_eq!(found[0].meta.mode, 0o640);
    assert_eq!(found[0].size, a.len() as u64);
    assert_eq!(
        found[2].xattrs,
        vec![(maru_proto::xattr::KEY.into(), xattr)]
    );
    assert_eq!(read_all(&store, "a"), a);
    assert_eq!(read_all(&store, "b"), b);
    assert_eq!(store.extent_of(OsStr::new("b")), Some(extent_b));
    assert!(store.open_chunk(OsStr::new(".stage-x")).is_err());
    // Everything but a (2 extents), b and c (1 each) is free again: 254 - 8 MiB.
    let h = store.create(OsStr::new(".big"), 0, 0o600).unwrap();
    h.set_len(246 * MIB).unwrap();
    assert_eq!(
        errno_of(&h.set_len(246 * MIB + 1).unwrap_err()),
        libc::ENOSPC
    );
}

#[test]
fn restart_on_another_mapping_of_the_same_range_sees_the_same_bytes() {
    // A second pool at a byte offset of the same device: its own header and index.
    let mut dev = Dev::fixture();
    dev.cfg.offset = 128 * MIB;
    dev.cfg.len = Some(64 * MIB);
    let data = {
        let store = dev.open().unwrap();
        publish(&store, "k", 100_000, 9)
    };
    let Extent { offset: off, len } = {
        let store = dev.open().unwrap();
        assert_eq!(read_all(&store, "k"), data);
        store.extent_of(OsStr::new("k")).unwrap()
    };
    assert!(off >= 128 * MIB && off + len <= 192 * MIB);
    assert_eq!(off % (2 * MIB), 0);
    assert_eq!(len, 2 * MIB);
    // The device itself holds the chunk at the advertised extent.
    assert_eq!(dev.peek(off, data.len()), data);
    assert_eq!(
        dev.peek(0, 8),
        vec![0; 8],
        "the range before the pool is untouched"
    );
}

#[test]
fn corrupt_header_is_refused_and_left_untouched() {
    let dev = Dev::fixture();
    drop(dev.open().unwrap());
    // Damage both copies (one bit each): the checksums no longer match.
    for slot in 0..2 {
        let at = slot * SLOT_SIZE + 40;
        let mut b = dev.peek(at, 1);
        b[0] ^= 0x01;
        dev.poke(at, &b);
    }
    let before = dev.peek(0, (INDEX_OFFSET + RECORD_SIZE) as usize);
    let err = dev.open().unwrap_err();
    assert!(matches!(err, DevdaxError::Corrupt { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("corrupt"), "{msg}");
    assert!(msg.contains("refusing to mount"), "{msg}");
    assert!(msg.contains("checksum mismatch"), "{msg}");
    assert!(msg.contains(&dev.cfg.device.display().to_string()), "{msg}");
    assert_eq!(dev.peek(0, before.len()), before, "nothing was written");
    // The explicit format is the only way back.
    format(&dev.cfg).unwrap();
    let store = dev.open().unwrap();
    assert!(store.published().is_empty());
}

#[test]
fn foreign_data_is_not_formatted_over() {
    let dev = Dev::small();
    dev.poke(0, b"some other filesystem's superblock");
    let err = dev.open().unwrap_err();
    assert!(matches!(err, DevdaxError::NotAPool { .. }), "{err}");
    assert_eq!(&dev.peek(0, 4), b"some");
}

#[test]
fn one_torn_header_copy_falls_back_to_the_other() {
    let dev = Dev::small();
    let data = {
        let store = dev.open().unwrap();
        publish(&store, "k", 5000, 3)
    };
    // Which copy is newest: the open wrote generation 3 into copy 1.
    let newest = 1;
    dev.poke(newest * SLOT_SIZE + 100, &[0xFF; 8]);
    let store = dev.open().unwrap();
    assert_eq!(read_all(&store, "k"), data);
}

#[test]
fn config_that_disagrees_with_the_header_is_refused() {
    let mut dev = Dev::small();
    drop(dev.open().unwrap());
    dev.cfg.len = Some(8 * MIB);
    let err = dev.open().unwrap_err();
    assert!(matches!(err, DevdaxError::Mismatch { .. }), "{err}");
    dev.cfg.len = Some(3 * MIB);
    assert!(matches!(dev.open().unwrap_err(), DevdaxError::Range { .. }));
    dev.cfg.len = None;
    dev.cfg.offset = MIB;
    assert!(matches!(dev.open().unwrap_err(), DevdaxError::Range { .. }));
}

#[test]
fn data_checksum_catches_changed_chunks() {
    let mut dev = Dev::small();
    let Extent { offset: off, .. } = {
        let store = dev.open().unwrap();
        publish(&store, "good", 10_000, 1);
        publish(&store, "bad", 10_000, 2);
        store.extent_of(OsStr::new("bad")).unwrap()
    };
    dev.poke(off + 1234, b"X");
    dev.cfg.verify_data = false;
    assert_eq!(dev.open_recovering().1.published, 2);
    dev.cfg.verify_data = true;
    let (store, recovery) = dev.open_recovering();
    assert_eq!(recovery.published, 1);
    assert_eq!(recovery.data_mismatch, 1);
    assert_eq!(read_all(&store, "good"), pattern(10_000, 1));
    assert!(store.open_chunk(OsStr::new("bad")).is_err());
}

#[test]
fn damaged_record_is_dropped() {
    let dev = Dev::small();
    {
        let store = dev.open().unwrap();
        publish(&store, "a", 100, 1);
        publish(&store, "b", 100, 2);
    }
    // Record slots are taken in order: "b" is in slot 1 (its staging record was).
    dev.poke(INDEX_OFFSET + RECORD_SIZE + 200, b"torn");
    let (store, recovery) = dev.open_recovering();
    assert_eq!(recovery.published, 1);
    assert_eq!(recovery.damaged_dropped, 1);
    assert!(store.open_chunk(OsStr::new("a")).is_ok());
}

#[test]
fn space_runs_out_with_enospc_and_comes_back() {
    let dev = Dev::small();
    let store = dev.open().unwrap();
    assert_eq!(store.data_len(), 14 * MIB);
    let mut held = Vec::new();
    for i in 0..7 {
        let name = format!(".s{i}");
        let h = store.create(OsStr::new(&name), 0, 0o600).unwrap();
        h.set_len(2 * MIB).unwrap();
        held.push((name, h));
    }
    let h = store.create(OsStr::new(".one-more"), 0, 0o600).unwrap();
    assert_eq!(errno_of(&h.set_len(1).unwrap_err()), libc::ENOSPC);
    assert_eq!(
        errno_of(&h.write_all_at(b"x", 0).unwrap_err()),
        libc::ENOSPC
    );
    // Removing an open chunk keeps its extent until its last handle goes.
    let (name, victim) = held.pop().unwrap();
    store.remove(OsStr::new(&name)).unwrap();
    assert_eq!(errno_of(&h.set_len(1).unwrap_err()), libc::ENOSPC);
    drop(victim);
    h.set_len(1).unwrap();
}

#[test]
fn growing_keeps_data_and_reads_zeros_past_the_old_end() {
    let dev = Dev::small();
    let store = dev.open().unwrap();
    // Dirty an extent, free it, and make sure the next chunk there reads zeros.
    let d = store.create(OsStr::new(".dirty"), 0, 0o600).unwrap();
    d.write_all_at(&[0xEE; 4096], 0).unwrap();
    d.set_len(2 * MIB).unwrap();
    store.remove(OsStr::new(".dirty")).unwrap();
    drop(d);
    let a = store.create(OsStr::new(".a"), 0, 0o600).unwrap();
    let b = store.create(OsStr::new(".b"), 0, 0o600).unwrap();
    a.write_all_at(b"hello", 0).unwrap();
    b.set_len(MIB).unwrap(); // right after a: a cannot grow in place
    let a_off = a.extent().offset;
    a.set_len(5 * MIB).unwrap();
    let Extent {
        offset: a_off2,
        len: a_len2,
    } = a.extent();
    assert_ne!(a_off, a_off2, "a was moved");
    assert_eq!(a_len2, 6 * MIB);
    let mut buf = vec![1u8; 5 * MIB as usize];
    assert_eq!(a.read_at(&mut buf, 0).unwrap(), buf.len());
    assert_eq!(&buf[..5], b"hello");
    assert!(buf[5..].iter().all(|&x| x == 0));
    // Shrinking zeroes what was cut off, so growing again shows zeros.
    a.set_len(2).unwrap();
    a.set_len(5).unwrap();
    let mut small = [9u8; 8];
    assert_eq!(a.read_at(&mut small, 0).unwrap(), 5);
    assert_eq!(&small[..5], b"he\0\0\0");
    let mut buf = vec![1u8; 4096];
    b.read_at(&mut buf, 0).unwrap();
    assert!(buf.iter().all(|&x| x == 0), "b reads zeros, not old data");
}

#[test]
fn publish_is_first_writer_wins_and_names_are_unique() {
    let dev = Dev::small();
    let store = dev.open().unwrap();
    publish(&store, "k", 10, 1);
    let _h = store.create(OsStr::new(".late"), 0, 0o600).unwrap();
    let err = store
        .rename_noreplace(OsStr::new(".late"), OsStr::new("k"))
        .unwrap_err();
    assert_eq!(errno_of(&err), libc::EEXIST);
    assert_eq!(
        errno_of(&store.create(OsStr::new(".late"), 0, 0o600).unwrap_err()),
        libc::EEXIST
    );
}

#[test]
fn index_full_gives_enospc() {
    let dev = Dev::small();
    let store = dev.open().unwrap();
    // 16 records; empty chunks take a record but no extent.
    let held: Vec<_> = (0..16)
        .map(|i| {
            store
                .create(OsStr::new(&format!(".e{i}")), 0, 0o600)
                .unwrap()
        })
        .collect();
    let err = store.create(OsStr::new(".e16"), 0, 0o600).unwrap_err();
    assert_eq!(errno_of(&err), libc::ENOSPC);
    drop(held);
}

/// A short lease timeout, so the tests that watch a holder take a fraction of a second.
fn quick(dev: &mut Dev) {
    dev.cfg.owner.timeout = std::time::Duration::from_millis(400);
}

#[test]
fn a_second_daemon_on_this_host_is_refused_while_the_first_holds_the_pool() {
    let mut dev = Dev::small();
    quick(&mut dev);
    let first = dev.open().unwrap();
    publish(&first, "a", 100, 1);
    let err = dev.open().unwrap_err();
    assert!(matches!(err, DevdaxError::Owned { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("another daemon on this host"), "{msg}");
    assert!(
        msg.contains(&format!("pid {}", std::process::id())),
        "{msg}"
    );
    // Formatting is refused the same way, and touches nothing.
    let before = dev.peek(0, (INDEX_OFFSET + 2 * RECORD_SIZE) as usize);
    assert!(matches!(
        format(&dev.cfg).unwrap_err(),
        DevdaxError::Owned { .. }
    ));
    // The refused opens did not disturb the holder or its chunks.
    assert_eq!(
        dev.peek(0, LEASE_OFFSET as usize),
        before[..LEASE_OFFSET as usize]
    );
    assert_eq!(read_all(&first, "a"), pattern(100, 1));
    // A clean close releases the lease: the next open takes it at once.
    drop(first);
    let t = std::time::Instant::now();
    let again = dev.open().unwrap();
    assert!(t.elapsed() < dev.cfg.owner.timeout, "{:?}", t.elapsed());
    assert_eq!(read_all(&again, "a"), pattern(100, 1));
}

/// Plays another host holding the lease: rewrites its claim with an advancing
/// heartbeat every 50 ms until told to stop.
fn live_foreign_host(dev: &Dev) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let device = dev.cfg.device.clone();
    // The first claim is there before anyone looks (else an open could find the
    // record released, claim it, and lose the race instead).
    dev.poke(LEASE_OFFSET, &owner::foreign_claim("node-b", [0xBB; 16], 1));
    let t = std::thread::spawn(move || {
        let f = OpenOptions::new().write(true).open(&device).unwrap();
        for beat in 2.. {
            f.write_all_at(
                &owner::foreign_claim("node-b", [0xBB; 16], beat),
                LEASE_OFFSET,
            )
            .unwrap();
            if stopped
                .recv_timeout(std::time::Duration::from_millis(50))
                .is_ok()
            {
                return;
            }
        }
    });
    (stop, t)
}

#[test]
fn a_live_holder_on_another_host_is_refused_even_with_takeover() {
    let mut dev = Dev::small();
    quick(&mut dev);
    drop(dev.open().unwrap());
    let (stop, t) = live_foreign_host(&dev);
    for takeover in [false, true] {
        dev.cfg.owner.takeover = takeover;
        let err = dev.open().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("held by a live daemon"), "{msg}");
        assert!(msg.contains("node-b"), "{msg}");
        assert!(msg.contains("bbbbbbbb"), "{msg}");
    }
    stop.send(()).unwrap();
    t.join().unwrap();
}

#[test]
fn a_stalled_holder_on_another_host_needs_takeover() {
    let mut dev = Dev::small();
    quick(&mut dev);
    {
        let store = dev.open().unwrap();
        publish(&store, "kept", 5000, 3);
    }
    dev.poke(LEASE_OFFSET, &owner::foreign_claim("node-b", [0xBB; 16], 9));
    let err = dev.open().unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("node-b"), "{msg}");
    assert!(msg.contains("--takeover"), "{msg}");
    assert!(msg.contains("has not advanced"), "{msg}");
    dev.cfg.owner.takeover = true;
    let (store, recovery) = dev.open_recovering();
    assert_eq!(recovery.published, 1);
    assert_eq!(read_all(&store, "kept"), pattern(5000, 3));
    // The record is now this daemon's: it names this host and advances.
    let mine = dev.peek(LEASE_OFFSET, 128);
    assert_ne!(mine, owner::foreign_claim("node-b", [0xBB; 16], 9));
    std::thread::sleep(dev.cfg.owner.interval() * 3);
    assert_ne!(
        dev.peek(LEASE_OFFSET, 128),
        mine,
        "heartbeat did not advance"
    );
}

#[test]
fn a_daemon_whose_lease_was_taken_fails_every_operation_with_eio() {
    let mut dev = Dev::small();
    quick(&mut dev);
    let store = dev.open().unwrap();
    publish(&store, "a", 100, 1);
    let h = store.open_chunk(OsStr::new("a")).unwrap();
    // Another host took the pool over (it judged this daemon gone). Its claim is
    // kept to compare: it holds the time it was made.
    let theirs = owner::foreign_claim("node-b", [0xBB; 16], 1);
    dev.poke(LEASE_OFFSET, &theirs);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.open_chunk(OsStr::new("a")).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the loss was never noticed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let eio = |r: std::io::Result<()>| errno_of(&r.unwrap_err());
    assert_eq!(eio(store.open_chunk(OsStr::new("a")).map(drop)), libc::EIO);
    assert_eq!(
        eio(store.create(OsStr::new(".s"), 0, 0o600).map(drop)),
        libc::EIO
    );
    assert_eq!(eio(h.read_at(&mut [0; 10], 0).map(drop)), libc::EIO);
    assert_eq!(eio(h.write_all_at(b"x", 0)), libc::EIO);
    assert_eq!(eio(store.remove(OsStr::new("a"))), libc::EIO);
    // Closing does not release the other host's lease.
    drop(h);
    drop(store);
    assert_eq!(dev.peek(LEASE_OFFSET, 128), theirs);
}

#[test]
fn a_pool_of_format_version_1_is_refused_with_what_to_do() {
    let dev = Dev::small();
    drop(dev.open().unwrap());
    // Rewrite both header copies as version 1 with valid checksums.
    for slot in 0..2u64 {
        let mut b = dev.peek(slot * SLOT_SIZE, SLOT_SIZE as usize);
        b[8..12].copy_from_slice(&1u32.to_le_bytes());
        b[12..16].fill(0);
        let crc = super::crc::crc32c(&b);
        b[12..16].copy_from_slice(&crc.to_le_bytes());
        dev.poke(slot * SLOT_SIZE, &b);
    }
    let err = dev.open().unwrap_err();
    assert!(
        matches!(err, DevdaxError::Version { found: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("format-devdax"), "{err}");
}

/// The cache write-back cost of publishing on a shared pool with `coherence: none`
/// (run by scripts/bench-multihost.sh; ignored by `cargo test`): time to write back
/// and invalidate a freshly written 256 KiB / 1 MiB / 4 MiB extent, against writing it.
#[test]
#[ignore]
fn bench_write_back() {
    let dev = Dev::small();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&dev.cfg.device)
        .unwrap();
    let map = super::mapping::Mapping::new(&file, 0, 8 * MIB).unwrap();
    println!("\n| extent | write (memcpy) p50 µs | write-back p50 µs | ratio |\n| --- | --- | --- | --- |");
    for size in [256 * 1024u64, MIB, 4 * MIB] {
        let data = pattern(size as usize, 7);
        let (mut w, mut f) = (Vec::new(), Vec::new());
        for _ in 0..50 {
            let t = std::time::Instant::now();
            map.write(0, &data).unwrap();
            w.push(t.elapsed());
            let t = std::time::Instant::now();
            map.flush(0, size).unwrap();
            f.push(t.elapsed());
        }
        w.sort();
        f.sort();
        let (w, f) = (w[25].as_secs_f64() * 1e6, f[25].as_secs_f64() * 1e6);
        println!("| {} KiB | {w:.0} | {f:.0} | {:.2}x |", size / 1024, f / w);
    }
}

#[test]
fn a_sealed_chunk_refuses_changes_and_publishes_with_its_seal_checksum() {
    let dev = Dev::small();
    let store = dev.open().unwrap();
    let h = store.create(OsStr::new(".s"), 0, 0o600).unwrap();
    h.write_all_at(b"hello", 0).unwrap();
    h.seal().unwrap();
    assert_eq!(errno_of(&h.write_all_at(b"x", 0).unwrap_err()), libc::EPERM);
    assert_eq!(errno_of(&h.set_len(1).unwrap_err()), libc::EPERM);
    // A publish that did not happen lifts the seal.
    h.unseal();
    h.write_all_at(b"HELLO", 0).unwrap();
    h.seal().unwrap();
    store
        .rename_noreplace(OsStr::new(".s"), OsStr::new("k"))
        .unwrap();
    assert_eq!(errno_of(&h.write_all_at(b"x", 0).unwrap_err()), libc::EPERM);
    drop(h);
    drop(store);
    // The checksum the seal took is the data's: verification at open keeps the chunk.
    let (store, rec) = dev.open_recovering();
    assert_eq!((rec.published, rec.data_mismatch), (1, 0));
    let h = store.open_chunk(OsStr::new("k")).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(h.read_at(&mut buf, 0).unwrap(), 5);
    assert_eq!(&buf[..5], b"HELLO");
}

/// Every step a [`Progress`] hook was shown.
#[derive(Default)]
struct Steps(std::sync::Mutex<Vec<Step>>);

impl Progress for Steps {
    fn report(&self, step: Step) {
        self.0.lock().unwrap().push(step);
    }
}

impl Steps {
    /// The steps of `work`, checked: they start at 0, `done` never goes back and
    /// never passes the total, and the last is the total.
    fn of(&self, work: Work) -> Vec<Step> {
        let steps: Vec<Step> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.work == work)
            .copied()
            .collect();
        assert!(!steps.is_empty(), "no {work:?} progress");
        assert_eq!(steps[0].done, 0, "{work:?} does not start at 0");
        for w in steps.windows(2) {
            assert!(w[1].done >= w[0].done, "{work:?} went back: {w:?}");
            assert!(w[1].bytes >= w[0].bytes, "{work:?} bytes went back: {w:?}");
            assert_eq!(w[1].total, w[0].total);
        }
        let last = steps[steps.len() - 1];
        assert_eq!(last.done, last.total, "{work:?} did not end at its total");
        steps
    }
}

#[test]
fn format_and_recovery_report_progress_up_to_the_total() {
    let mut dev = Dev::fixture();
    let steps = Arc::new(Steps::default());
    dev.cfg.progress = Some(ProgressHook(steps.clone()));
    let sizes = [3 * MIB as usize + 17, 4096, 100_000];
    {
        // A blank device: opening it formats it.
        let store = dev.open().unwrap();
        let format = steps.of(Work::Format);
        assert!(format.len() > 2, "formatting reported only {format:?}");
        for (i, len) in sizes.iter().enumerate() {
            publish(&store, &format!("k{i}"), *len, i as u8);
        }
    }
    steps.0.lock().unwrap().clear();
    let (_store, rec) = dev.open_recovering();
    assert_eq!(rec.published, 3);
    let recover = steps.of(Work::Recover);
    assert!(recover.len() > 2, "recovery reported only {recover:?}");
    let last = recover[recover.len() - 1];
    assert_eq!(
        last.bytes,
        sizes.iter().map(|s| *s as u64).sum::<u64>(),
        "verification did not read every published byte"
    );
    assert!(steps
        .0
        .lock()
        .unwrap()
        .iter()
        .all(|s| s.work == Work::Recover));
}

/// A shared pool's publish whose cluster transaction runs outside the pool's lock
/// (`rename_begin` / `PendingPublish`), against a cluster in memory.
mod pending_publish {
    use super::*;
    use std::collections::BTreeMap;
    use std::io;
    use std::sync::Mutex;

    /// One host's view of a cluster kept in memory.
    #[derive(Default)]
    struct MemCluster {
        uuid: Mutex<Option<[u8; 16]>>,
        keys: Mutex<BTreeMap<Vec<u8>, KeyRef>>,
        arenas: Mutex<Vec<u32>>,
    }

    impl Coordinator for MemCluster {
        fn host(&self) -> &str {
            "node-a"
        }
        fn check_identity(&self, uuid: &[u8; 16]) -> io::Result<Option<[u8; 16]>> {
            let mut known = self.uuid.lock().unwrap();
            let theirs = *known.get_or_insert(*uuid);
            Ok((theirs != *uuid).then_some(theirs))
        }
        fn arenas(&self, count: u32) -> io::Result<Vec<u32>> {
            let mut mine = self.arenas.lock().unwrap();
            if mine.is_empty() && count > 0 {
                mine.push(0);
            }
            Ok(mine.clone())
        }
        fn claim_arena(&self, count: u32) -> io::Result<Option<u32>> {
            let mut mine = self.arenas.lock().unwrap();
            let next = (0..count).find(|n| !mine.contains(n));
            mine.extend(next);
            Ok(next)
        }
        fn writable(&self) -> io::Result<()> {
            Ok(())
        }
        fn publish(&self, key: &[u8], slot: u64) -> io::Result<()> {
            let mut keys = self.keys.lock().unwrap();
            if keys.contains_key(key) {
                return Err(io::Error::from_raw_os_error(libc::EEXIST));
            }
            let at = KeyRef {
                host: self.host().into(),
                slot,
            };
            keys.insert(key.to_vec(), at);
            Ok(())
        }
        fn remove(&self, key: &[u8]) -> io::Result<()> {
            self.keys.lock().unwrap().remove(key);
            Ok(())
        }
        fn snapshot(&self) -> io::Result<(Vec<Published>, i64)> {
            let keys = self.keys.lock().unwrap();
            Ok((
                keys.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                0,
            ))
        }
    }

    fn shared(dev: &mut Dev, cluster: &Arc<MemCluster>) -> DevdaxStore {
        let link: Arc<dyn Coordinator> = Arc::clone(cluster) as Arc<dyn Coordinator>;
        dev.cfg.shared = Some(SharedLink(link));
        dev.open().unwrap()
    }

    fn staged(store: &DevdaxStore, name: &str, data: &[u8]) -> ChunkHandle {
        let h = store.create(OsStr::new(name), 1000, 0o640).unwrap();
        h.set_len(data.len() as u64).unwrap();
        h.write_all_at(data, 0).unwrap();
        h
    }

    #[test]
    fn a_key_in_flight_is_taken_but_not_visible_and_a_refusal_undoes_it() {
        let mut dev = Dev::small();
        let cluster = Arc::new(MemCluster::default());
        let store = shared(&mut dev, &cluster);
        let data = pattern(4096, 7);
        let h = staged(&store, ".s", &data);
        let _other = staged(&store, ".t", b"other");
        let (s, t, k) = (OsStr::new(".s"), OsStr::new(".t"), OsStr::new("k"));

        let pending = store
            .rename_begin(s, k)
            .unwrap()
            .expect("a cluster publish");
        // While the cluster is asked: the key is taken, not visible, and the chunk
        // keeps its staging name and cannot be renamed again.
        assert_eq!(
            errno_of(&store.create(k, 0, 0o600).unwrap_err()),
            libc::EEXIST
        );
        assert_eq!(
            errno_of(&store.rename_begin(t, k).unwrap_err()),
            libc::EEXIST
        );
        assert_eq!(errno_of(&store.open_chunk(k).unwrap_err()), libc::ENOENT);
        assert_eq!(
            errno_of(&store.rename_begin(s, OsStr::new("k2")).unwrap_err()),
            libc::EBUSY
        );
        assert!(store.open_chunk(s).is_ok());
        // The reclaimer's orphan sweep must not take the key in flight for an orphan.
        let owned = |store: &DevdaxStore| (0..1024).any(|slot| store.owns_published(k, slot));
        assert!(owned(&store));

        // Another host won: EEXIST, and the chunk is staging as before.
        let lost = pending.end(Err(io::Error::from_raw_os_error(libc::EEXIST)));
        assert_eq!(errno_of(&lost.unwrap_err()), libc::EEXIST);
        assert!(store.open_chunk(s).is_ok());
        assert_eq!(errno_of(&store.open_chunk(k).unwrap_err()), libc::ENOENT);
        assert!(!owned(&store));

        // Asked again, the cluster says yes: published under the key.
        let pending = store
            .rename_begin(s, k)
            .unwrap()
            .expect("a cluster publish");
        let claimed = pending.claim();
        pending.end(claimed).unwrap();
        drop(h);
        assert_eq!(errno_of(&store.open_chunk(s).unwrap_err()), libc::ENOENT);
        assert_eq!(read_all(&store, "k"), data);
        assert!(cluster.keys.lock().unwrap().contains_key(&b"k"[..]));

        // A restart finds it (the cluster agrees), and not the refused attempt.
        drop(store);
        let store = dev.open().unwrap();
        assert_eq!(read_all(&store, "k"), data);
        assert_eq!(store.published().len(), 1);
    }
}
