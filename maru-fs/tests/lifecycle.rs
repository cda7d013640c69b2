//! The chunk lifecycle contract (docs/architecture.md "Chunk lifecycle"), rule by rule,
//! on a real mount with real processes.

mod common;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use common::*;
use maru_fs::pattern::byte as pattern;
use maru_fs::Eviction;
use maru_proto::xattr;
use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};

fn errno(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// Creates a staging chunk of `size` bytes filled with `byte` through a mapping.
fn stage(dir: &Path, name: &str, size: u64, byte: u8) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(dir.join(name))?;
    f.set_len(size)?;
    if size > 0 {
        // SAFETY: the staging file was just created and sized by this test, which does not truncate
        // it while mapped.
        let mut m = unsafe { memmap2::MmapOptions::new().map_mut(&f) }?;
        m.fill(byte);
    }
    Ok(f)
}

fn publish(dir: &Path, from: &str, to: &str) -> nix::Result<()> {
    renameat2(
        AT_FDCWD,
        &dir.join(from),
        AT_FDCWD,
        &dir.join(to),
        RenameFlags::RENAME_NOREPLACE,
    )
}

/// Stages, publishes and closes a chunk.
fn put(dir: &Path, key: &str, size: u64, byte: u8) {
    let staging = format!(".put-{key}");
    let f = stage(dir, &staging, size, byte).expect("stage");
    publish(dir, &staging, key).expect("publish");
    drop(f);
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The chunk files of a backing directory (without the membership index file).
fn chunk_files(backing: &Path) -> Vec<String> {
    let mut v = listing(backing);
    v.retain(|n| n != maru_fs::index::INDEX_NAME);
    v
}

#[test]
fn racing_publishers_have_exactly_one_winner_per_key() {
    if skip_unless_root() {
        return;
    }
    const PROCS: usize = 8;
    const ROUNDS: usize = 200;
    let fx = Fixture::new(&[("p", 64 * MIB)], |_| {});
    let dir = fx.pool_dir("p");
    let children: Vec<_> = (0..PROCS)
        .map(|id| {
            std::process::Command::new(probe())
                .args([
                    "race",
                    dir.to_str().unwrap(),
                    "key",
                    &ROUNDS.to_string(),
                    &id.to_string(),
                    "4096",
                ])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("spawn racer")
        })
        .collect();
    let mut winners = vec![Vec::new(); ROUNDS];
    for (id, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().expect("racer");
        assert!(out.status.success(), "racer {id} failed");
        let text = String::from_utf8_lossy(&out.stdout);
        let wins = text
            .lines()
            .find_map(|l| l.strip_prefix("wins="))
            .expect("wins line");
        for r in wins.split(',').filter(|s| !s.is_empty()) {
            winners[r.parse::<usize>().unwrap()].push(id);
        }
    }
    for (r, w) in winners.iter().enumerate() {
        assert_eq!(w.len(), 1, "round {r} had winners {w:?}");
        // The key holds the winner's bytes.
        let data = std::fs::read(dir.join(format!("key-{r}"))).unwrap();
        assert_eq!(
            data,
            (0..4096)
                .map(|i| pattern(w[0] as u64, i))
                .collect::<Vec<u8>>()
        );
    }
    // Every loser's staging chunk is gone and its space returned.
    wait_until("losers' space returned", || {
        let s = fx.stats("p");
        s.staging_chunks == 0 && s.used_bytes == (ROUNDS * 4096) as u64
    });
    let st = fx.stats("p");
    assert_eq!(st.published_chunks, ROUNDS as u64);
    assert_eq!(st.publishes, ROUNDS as u64);
    assert_eq!(st.creates, (PROCS * ROUNDS) as u64);
    assert_eq!(listing(&dir).len(), ROUNDS);
}

#[test]
fn killed_writer_leaves_no_key_and_returns_space() {
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
            &(4 * MIB).to_string(),
        ],
        false,
        "ready",
    );
    assert_eq!(fx.stats("p").used_bytes, 4 * MIB);
    assert_eq!(fx.stats("p").staging_chunks, 1);
    w.child.kill().expect("SIGKILL writer");
    w.child.wait().expect("reap writer");
    wait_until("killed writer's staging chunk reclaimed", || {
        let s = fx.stats("p");
        s.used_bytes == 0 && s.staging_chunks == 0
    });
    assert!(listing(&dir).is_empty());
    assert!(chunk_files(&fx.backing_dir("p")).is_empty());
    // The kernel forgot the name too.
    wait_until("staging name gone", || !dir.join(".stage-killed").exists());
}

#[test]
fn published_chunks_are_sealed() {
    if skip_unless_root() {
        return;
    }
    let fx = Fixture::new(&[("p", 16 * MIB)], |_| {});
    let dir = fx.pool_dir("p");
    let writer = stage(&dir, ".s", 8192, 0x11).unwrap();
    publish(&dir, ".s", "sealed").unwrap();
    let (code, kv) = run_probe(&["sealed", dir.join("sealed").to_str().unwrap()], false);
    assert_eq!(code, 0, "{kv:?}");
    for k in [
        "open_rdwr",
        "open_wronly",
        "open_trunc",
        "truncate",
        "ftruncate_ro",
    ] {
        let want = if k == "ftruncate_ro" {
            ["EINVAL", "EBADF"].as_slice()
        } else {
            ["EPERM"].as_slice()
        };
        assert!(want.contains(&get(&kv, k)), "{k}: {}", get(&kv, k));
    }
    // Also for root in this process, and through the writer's own descriptor.
    let e = OpenOptions::new()
        .write(true)
        .open(dir.join("sealed"))
        .unwrap_err();
    assert_eq!(errno(e), libc::EPERM);
    assert_eq!(errno(writer.set_len(0).unwrap_err()), libc::EPERM);
    assert_eq!(
        nix::fcntl::fallocate(&writer, nix::fcntl::FallocateFlags::empty(), 0, 16384),
        Err(nix::errno::Errno::EPERM)
    );
    // The writer's existing mapping keeps working (it is trusted not to write).
    // SAFETY: nothing truncates this chunk file while it is mapped (maru-fs seals published chunks;
    // an unlinked or evicted one keeps its pages for the mapper).
    let m = unsafe { memmap2::MmapOptions::new().map(&writer) }.unwrap();
    assert_eq!(m[8191], 0x11);
    assert_eq!(std::fs::read(dir.join("sealed")).unwrap(), vec![0x11; 8192]);
    // Published chunks cannot be renamed either; keys are not created directly.
    assert_eq!(
        publish(&dir, "sealed", "other"),
        Err(nix::errno::Errno::EPERM)
    );
    let e = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dir.join("direct"))
        .unwrap_err();
    assert_eq!(errno(e), libc::EPERM);
}

#[test]
fn publish_conflicts_and_names() {
    if skip_unless_root() {
        return;
    }
    let fx = Fixture::new(&[("p", 16 * MIB)], |_| {});
    let dir = fx.pool_dir("p");
    put(&dir, "k", 4096, 1);
    let _a = stage(&dir, ".a", 4096, 2).unwrap();
    assert_eq!(publish(&dir, ".a", "k"), Err(nix::errno::Errno::EEXIST));
    // A plain rename onto an existing key is refused too.
    let e = std::fs::rename(dir.join(".a"), dir.join("k")).unwrap_err();
    assert_eq!(errno(e), libc::EEXIST);
    assert_eq!(std::fs::read(dir.join("k")).unwrap(), vec![1; 4096]);
    // Keys of 255 bytes work; 256 do not.
    let long = "x".repeat(255);
    publish(&dir, ".a", &long).unwrap();
    assert_eq!(std::fs::metadata(dir.join(&long)).unwrap().len(), 4096);
    let too_long = "y".repeat(256);
    let _b = stage(&dir, ".b", 10, 0).unwrap();
    assert_eq!(
        publish(&dir, ".b", &too_long),
        Err(nix::errno::Errno::ENAMETOOLONG)
    );
    // Pools are separate namespaces; no directories inside pools.
    assert_eq!(
        errno(std::fs::create_dir(dir.join("sub")).unwrap_err()),
        libc::EPERM
    );
    assert_eq!(
        errno(std::fs::create_dir(fx.mnt.path().join("newpool")).unwrap_err()),
        libc::EPERM
    );
}

#[test]
fn staging_files_are_hidden_from_readdir() {
    if skip_unless_root() {
        return;
    }
    let fx = Fixture::new(&[("p", 16 * MIB), ("q", 16 * MIB)], |_| {});
    assert_eq!(listing(fx.mnt.path()), ["p", "q"]);
    let dir = fx.pool_dir("p");
    let f = stage(&dir, ".hidden", 4096, 9).unwrap();
    assert!(listing(&dir).is_empty());
    // The writer can still reach its staging file by name.
    assert_eq!(std::fs::metadata(dir.join(".hidden")).unwrap().len(), 4096);
    publish(&dir, ".hidden", "visible").unwrap();
    assert_eq!(listing(&dir), ["visible"]);
    drop(f);
    assert_eq!(fx.stats("p").published_chunks, 1);
}

#[test]
fn lru_evicts_unpinned_chunks_only() {
    if skip_unless_root() {
        return;
    }
    let fx = Fixture::new(&[("p", 4 * MIB)], |c| c.eviction = Eviction::Lru);
    let dir = fx.pool_dir("p");
    put(&dir, "a", MIB, 0xa);
    put(&dir, "b", MIB, 0xb);
    put(&dir, "c", MIB, 0xc);
    // a stays open and mapped (pinned); b is opened after c was published, so c is
    // the least recently used.
    let a = File::open(dir.join("a")).unwrap();
    // SAFETY: nothing truncates this chunk file while it is mapped (maru-fs seals published chunks;
    // an unlinked or evicted one keeps its pages for the mapper).
    let a_map = unsafe { memmap2::MmapOptions::new().map(&a) }.unwrap();
    drop(File::open(dir.join("b")).unwrap());
    // Make sure the kernel's release of b reached the daemon.
    wait_until("b unpinned", || fx.stats("p").pinned_bytes == MIB);
    // 1 MiB free; 2 MiB wanted: c (LRU) goes, a (pinned) and b stay.
    put(&dir, "d", 2 * MIB, 0xd);
    let st = fx.stats("p");
    assert_eq!(st.evictions, 1);
    assert_eq!(st.used_bytes, 4 * MIB);
    assert_eq!(listing(&dir), ["a", "b", "d"]);
    // The kernel was told: the cached name of c is gone.
    wait_until("evicted name invalidated", || !dir.join("c").exists());
    assert!(a_map.iter().all(|&x| x == 0xa));
    // 4 MiB would need a too, but a is pinned: nothing is evicted.
    let big = stage(&dir, ".big", 0, 0).unwrap();
    let e = big.set_len(4 * MIB).unwrap_err();
    assert_eq!(errno(e), libc::ENOSPC);
    assert_eq!(
        fx.stats("p").evictions,
        1,
        "nothing may be evicted when it cannot help"
    );
    // Once a is closed and unmapped, it can go.
    drop(a_map);
    drop(a);
    wait_until("a unpinned", || fx.stats("p").pinned_bytes == 0);
    big.set_len(4 * MIB).unwrap();
    assert_eq!(fx.stats("p").evictions, 4);
    assert!(listing(&dir).is_empty());
}

/// Under passthrough a mapping does not keep the FUSE file open, so the daemon sees
/// no handle on a chunk whose descriptor was closed after mmap; eviction still
/// finds out (file lease on the backing file) and leaves it alone until unmapped.
#[test]
fn mapped_after_close_is_still_pinned() {
    if skip_unless_root() {
        return;
    }
    let fx = Fixture::new(&[("p", 2 * MIB)], |c| c.eviction = Eviction::Lru);
    let dir = fx.pool_dir("p");
    put(&dir, "old", MIB, 0x77);
    let f = File::open(dir.join("old")).unwrap();
    // SAFETY: nothing truncates this chunk file while it is mapped (maru-fs seals published chunks;
    // an unlinked or evicted one keeps its pages for the mapper).
    let m = unsafe { memmap2::MmapOptions::new().map(&f) }.unwrap();
    drop(f);
    wait_until("old released", || fx.stats("p").pinned_bytes == 0);
    // Needs 2 MiB, which only evicting the mapped chunk could give: refused.
    let s = stage(&dir, ".new", 0, 0).unwrap();
    assert_eq!(errno(s.set_len(2 * MIB).unwrap_err()), libc::ENOSPC);
    assert_eq!(fx.stats("p").evictions, 0, "a mapped chunk was evicted");
    assert!(dir.join("old").exists());
    assert!(m.iter().all(|&b| b == 0x77));
    drop(m);
    s.set_len(2 * MIB).unwrap();
    assert_eq!(fx.stats("p").evictions, 1);
    wait_until("evicted name invalidated", || !dir.join("old").exists());
    assert_eq!(fx.stats("p").used_bytes, 2 * MIB);
}

#[test]
fn enospc_without_eviction_and_limits() {
    if skip_unless_root() {
        return;
    }
    let fx = Fixture::new(&[("p", MIB)], |c| c.max_chunk_size = Some(768 * 1024));
    let dir = fx.pool_dir("p");
    put(&dir, "old", 512 * 1024, 1);
    let f = stage(&dir, ".s", 0, 0).unwrap();
    assert_eq!(errno(f.set_len(800 * 1024).unwrap_err()), libc::EFBIG);
    assert_eq!(errno(f.set_len(600 * 1024).unwrap_err()), libc::ENOSPC);
    f.set_len(512 * 1024).unwrap();
    assert_eq!(fx.stats("p").used_bytes, MIB);
    // Shrinking gives space back.
    f.set_len(4096).unwrap();
    assert_eq!(fx.stats("p").used_bytes, 512 * 1024 + 4096);
    // fallocate charges like ftruncate (and commits the memory).
    use nix::fcntl::{fallocate, FallocateFlags};
    assert_eq!(
        fallocate(&f, FallocateFlags::empty(), 0, 600 * 1024),
        Err(nix::errno::Errno::ENOSPC)
    );
    fallocate(&f, FallocateFlags::empty(), 0, 256 * 1024).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 256 * 1024);
    assert_eq!(fx.stats("p").used_bytes, 768 * 1024);
    assert_eq!(
        fallocate(&f, FallocateFlags::FALLOC_FL_KEEP_SIZE, 0, 512 * 1024),
        Err(nix::errno::Errno::EOPNOTSUPP)
    );
    f.set_len(4096).unwrap();
    assert_eq!(fx.stats("p").used_bytes, 512 * 1024 + 4096);
    assert_eq!(fx.stats("p").evictions, 0);
    assert!(dir.join("old").exists());
    // df shows the pool.
    let vfs = nix::sys::statvfs::statvfs(&dir).unwrap();
    assert_eq!(vfs.blocks() * vfs.fragment_size(), MIB);
    assert_eq!(
        vfs.blocks_free() * vfs.fragment_size(),
        MIB - 512 * 1024 - 4096
    );
}

#[test]
fn unlink_while_mapped_frees_at_last_unmap() {
    if skip_unless_root() {
        return;
    }
    let fx = Fixture::new(&[("p", 16 * MIB)], |_| {});
    let dir = fx.pool_dir("p");
    put(&dir, "gone", 2 * MIB, 0x42);
    let f = File::open(dir.join("gone")).unwrap();
    // SAFETY: nothing truncates this chunk file while it is mapped (maru-fs seals published chunks;
    // an unlinked or evicted one keeps its pages for the mapper).
    let m = unsafe { memmap2::MmapOptions::new().map(&f) }.unwrap();
    drop(f);
    std::fs::remove_file(dir.join("gone")).unwrap();
    assert_eq!(
        errno(std::fs::metadata(dir.join("gone")).unwrap_err()),
        libc::ENOENT
    );
    assert!(listing(&dir).is_empty());
    assert_eq!(
        fx.stats("p").used_bytes,
        2 * MIB,
        "space must stay charged while mapped"
    );
    assert!(m.iter().all(|&b| b == 0x42));
    drop(m);
    wait_until("space returned at last unmap", || {
        fx.stats("p").used_bytes == 0
    });
    // The same key can be published again.
    put(&dir, "gone", 4096, 1);
    assert_eq!(std::fs::read(dir.join("gone")).unwrap(), vec![1; 4096]);
}

#[test]
fn attributes_xattrs_and_offline() {
    if skip_unless_root() {
        return;
    }
    let fx = Fixture::new(&[("p", 16 * MIB)], |c| {
        c.gid = 4242;
        c.mode = 0o2775;
        c.node = Some(3);
    });
    let dir = fx.pool_dir("p");
    let pmeta = std::fs::metadata(&dir).unwrap();
    assert_eq!((pmeta.gid(), pmeta.mode() & 0o7777), (4242, 0o2775));
    let f = stage(&dir, ".x", 4096, 5).unwrap();
    xattr_set(&dir.join(".x"), xattr::KEY, b"a/long/original/key").unwrap();
    assert_eq!(
        xattr_get(&dir.join(".x"), xattr::STATE).unwrap(),
        b"staging"
    );
    assert_eq!(
        xattr_set(&dir.join(".x"), xattr::STATE, b"x").map_err(errno),
        Err(libc::EPERM)
    );
    publish(&dir, ".x", "k").unwrap();
    let k = dir.join("k");
    let meta = std::fs::metadata(&k).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o777, meta.len()),
        (0, 4242, 0o644, 4096)
    );
    assert_eq!(xattr_get(&k, xattr::STATE).unwrap(), b"published");
    assert_eq!(xattr_get(&k, xattr::PINS).unwrap(), b"1");
    assert_eq!(xattr_get(&k, xattr::NODE).unwrap(), b"3");
    assert_eq!(xattr_get(&k, xattr::KEY).unwrap(), b"a/long/original/key");
    let created: u64 = String::from_utf8(xattr_get(&k, xattr::CREATED).unwrap())
        .unwrap()
        .parse()
        .unwrap();
    assert!(created > 1_700_000_000);
    let names = xattr_list(&k);
    for n in [
        xattr::STATE,
        xattr::PINS,
        xattr::NODE,
        xattr::CREATED,
        xattr::KEY,
    ] {
        assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
    }
    // After publish, the writer's xattrs are read-only.
    assert_eq!(
        xattr_set(&k, xattr::KEY, b"other").map_err(errno),
        Err(libc::EPERM)
    );
    drop(f);
    wait_until("pin dropped", || {
        xattr_get(&k, xattr::PINS).unwrap() == b"0"
    });

    // Lookups that reach the daemon are counted; the kernel caches the answer, a
    // negative one included, so asking again costs nothing.
    let before = fx.stats("p");
    assert!(!dir.join("nope").exists());
    assert!(!dir.join("nope").exists());
    let after = fx.stats("p");
    assert_eq!(
        after.lookups,
        before.lookups + 1,
        "negative entry not cached"
    );
    assert_eq!(after.hits, before.hits);

    // Offline: no new chunks, existing ones stay readable.
    fx.control
        .set_online("p", false, Some("device removed".into()))
        .unwrap();
    let e = stage(&dir, ".y", 0, 0).unwrap_err();
    assert_eq!(errno(e), libc::ENODEV);
    assert_eq!(std::fs::read(&k).unwrap(), vec![5; 4096]);
    let st = fx.stats("p");
    assert!(!st.online);
    assert_eq!(st.offline_reason.as_deref(), Some("device removed"));
    fx.control.set_online("p", true, None).unwrap();
    drop(stage(&dir, ".y", 0, 0).unwrap());
}

#[test]
fn control_adds_and_removes_pools() {
    if skip_unless_root() {
        return;
    }
    let fx = Fixture::new(&[("p", 16 * MIB)], |_| {});
    // A negative lookup is cached, then the pool appears anyway.
    assert!(!fx.mnt.path().join("late").exists());
    let late = fx.backing_root.path().join("late");
    std::fs::create_dir(&late).unwrap();
    fx.control.add_pool(pool("late", &late, 8 * MIB)).unwrap();
    wait_until("new pool visible", || fx.mnt.path().join("late").is_dir());
    assert!(matches!(
        fx.control.add_pool(pool("late", &late, 8 * MIB)),
        Err(maru_fs::FsError::PoolExists(_))
    ));
    let dir = fx.pool_dir("late");
    let f = stage(&dir, ".s", 4096, 1).unwrap();
    assert!(matches!(
        fx.control.remove_pool("late"),
        Err(maru_fs::FsError::PoolBusy {
            pinned_chunks: 1,
            ..
        })
    ));
    drop(f);
    wait_until("pool unpinned", || fx.control.remove_pool("late").is_ok());
    wait_until("pool gone", || !fx.mnt.path().join("late").exists());
    assert_eq!(fx.control.stats().len(), 1);
    assert!(matches!(
        fx.control.remove_pool("late"),
        Err(maru_fs::FsError::NoSuchPool(_))
    ));
}

/// Writers publishing concurrently into a small LRU pool while a reader opens
/// keys: constant eviction with kernel notifications in flight must neither
/// deadlock nor leak space.
#[test]
fn concurrent_publishing_under_eviction_pressure() {
    if skip_unless_root() {
        return;
    }
    const WRITERS: usize = 4;
    const ROUNDS: usize = 60;
    const SIZE: u64 = 512 * 1024;
    let fx = Fixture::new(&[("p", 8 * MIB)], |c| c.eviction = Eviction::Lru);
    let dir = fx.pool_dir("p");
    let children: Vec<_> = (0..WRITERS)
        .map(|id| {
            std::process::Command::new(probe())
                .args([
                    "race",
                    dir.to_str().unwrap(),
                    &format!("w{id}"),
                    &ROUNDS.to_string(),
                    &id.to_string(),
                    &SIZE.to_string(),
                ])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("spawn writer")
        })
        .collect();
    // Meanwhile, read whatever is there (it may be evicted under our feet).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let dir = dir.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut opened = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for id in 0..WRITERS {
                    for r in (0..ROUNDS).step_by(7) {
                        if let Ok(data) = std::fs::read(dir.join(format!("w{id}-{r}"))) {
                            assert_eq!(data.len() as u64, SIZE);
                            opened += 1;
                        }
                    }
                }
            }
            opened
        })
    };
    for (id, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().expect("writer");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "writer {id} failed: {text}");
        let wins = text.lines().find_map(|l| l.strip_prefix("wins=")).unwrap();
        assert_eq!(
            wins.split(',').count(),
            ROUNDS,
            "writer {id} lost a publish"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    reader.join().expect("reader");
    wait_until("all handles released", || {
        let s = fx.stats("p");
        s.pinned_bytes == 0 && s.staging_chunks == 0 && s.used_bytes == s.published_chunks * SIZE
    });
    let st = fx.stats("p");
    assert!(st.used_bytes <= st.capacity);
    assert_eq!(st.publishes, (WRITERS * ROUNDS) as u64);
    assert_eq!(st.published_chunks + st.evictions, st.publishes);
    assert!(st.evictions > 0);
    assert_eq!(listing(&dir).len() as u64, st.published_chunks);
    let backing = chunk_files(&fx.backing_dir("p")).len() as u64;
    assert_eq!(backing, st.published_chunks, "backing files leaked");
}
