//! `cargo bench -p maru-fs --bench contention`: how much one pool's slow work
//! stalls another pool's metadata. Needs root and /dev/fuse; prints a table.
//!
//! Pool A is a tmpfs directory; pool B a devdax pool on a stand-in file in
//! /dev/shm. The row times `stat` of a never-seen name in pool A (one FUSE LOOKUP
//! round trip each), first alone, then while a thread copies large chunks
//! through pool B: create, ftruncate 256 MiB (the daemon zeroes the extent),
//! pwrite 32 MiB, publish (the daemon checksums all 256 MiB), pread 32 MiB
//! back, unlink, pause 20 ms. Any of those done under a lock that pool A's lookups also
//! need holds them up. The mount has 4 request threads; on a machine with few
//! cores the copier also competes with the lookups for CPU time.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use maru_fs::devdax::DevdaxConfig;
use maru_fs::{Backing, Eviction, MountOptions, PoolConfig};

const MIB: u64 = 1 << 20;
/// Size of each chunk the copier sizes (the daemon zeroes it) and publishes (the
/// daemon checksums it).
const CHUNK: u64 = 256 * MIB;
/// Bytes of it the copier writes and reads back through the daemon.
const COPIED: u64 = 32 * MIB;
/// Lookups timed per row.
const LOOKUPS: usize = 10000;

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).expect("path without NUL")
}

fn stat(p: &CString) -> i32 {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `p` is NUL-terminated; `st` is a writable stat buffer.
    unsafe { libc::stat(p.as_ptr(), st.as_mut_ptr()) }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Microseconds of `LOOKUPS` stats of fresh names in `dir` (tagged `tag`).
fn lookups(dir: &Path, tag: &str) -> Vec<f64> {
    let names: Vec<CString> = (0..LOOKUPS)
        .map(|i| cstr(&dir.join(format!("never-{tag}-{i}"))))
        .collect();
    names
        .iter()
        .map(|n| {
            let t = Instant::now();
            assert_eq!(stat(n), -1);
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect()
}

/// One round of the copier in pool directory `dir`, adding the bytes it moves
/// to `moved` as it goes.
fn copy_round(dir: &Path, i: u64, buf: &mut [u8], moved: &AtomicU64) {
    let staging = dir.join(format!(".copy-{i}"));
    let key = dir.join(format!("copy-{i}"));
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&staging)
        .expect("create in pool B");
    f.set_len(CHUNK).expect("ftruncate in pool B");
    let mut off = 0;
    while off < COPIED {
        f.write_all_at(buf, off).expect("pwrite in pool B");
        off += buf.len() as u64;
        moved.fetch_add(buf.len() as u64, Ordering::Relaxed);
    }
    std::fs::rename(&staging, &key).expect("publish in pool B");
    let mut off = 0;
    while off < COPIED {
        f.read_exact_at(buf, off).expect("pread in pool B");
        off += buf.len() as u64;
        moved.fetch_add(buf.len() as u64, Ordering::Relaxed);
    }
    drop(f);
    std::fs::remove_file(&key).expect("unlink in pool B");
}

fn main() {
    if !nix::unistd::geteuid().is_root() || !Path::new("/dev/fuse").exists() {
        eprintln!("SKIP: the contention benchmark needs root and /dev/fuse");
        return;
    }
    let root = tempfile::Builder::new()
        .prefix("maru-fs-contention-")
        .tempdir_in("/dev/shm")
        .expect("bench dir");
    let mnt = tempfile::tempdir().expect("mount point");
    let dir_a = root.path().join("a");
    std::fs::create_dir(&dir_a).expect("pool A dir");
    let device = root.path().join("dax-b");
    File::create(&device)
        .and_then(|f| f.set_len(512 * MIB))
        .expect("devdax stand-in");
    let pools = vec![
        PoolConfig::new("a", Backing::Dir(dir_a), 256 * MIB),
        PoolConfig {
            eviction: Eviction::Lru,
            ..PoolConfig::new("b", Backing::Devdax(DevdaxConfig::new(&device)), 512 * MIB)
        },
    ];
    // Enough request threads that the copier's requests never occupy them all:
    // what is measured is the daemon's locking, not its thread pool.
    let opts = MountOptions {
        threads: 4,
        ..MountOptions::new(mnt.path())
    };
    let mounted = maru_fs::mount(&opts, pools).expect("mount");
    let (a, b) = (mnt.path().join("a"), mnt.path().join("b"));

    let alone = lookups(&a, "alone");
    let stop = Arc::new(AtomicBool::new(false));
    let moved = Arc::new(AtomicU64::new(0));
    let copier = {
        let (stop, moved, b) = (Arc::clone(&stop), Arc::clone(&moved), b.clone());
        std::thread::spawn(move || {
            let mut buf: Vec<u8> = (0..MIB).map(|i| (i * 7) as u8).collect();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                copy_round(&b, i, &mut buf, &moved);
                i += 1;
                // Leave the CPUs some room: what is measured is waiting for
                // locks, not for a core.
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        })
    };
    // Let the copier get going.
    while moved.load(Ordering::Relaxed) == 0 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let m0 = moved.load(Ordering::Relaxed);
    let t = Instant::now();
    let busy = lookups(&a, "busy");
    let secs = t.elapsed().as_secs_f64();
    let during = moved.load(Ordering::Relaxed) - m0;
    stop.store(true, Ordering::Relaxed);
    copier.join().expect("copier thread");

    println!("| stat/lookup on pool A | p50 µs | p99 µs | p99.9 µs | max µs |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (name, mut s) in [
        ("alone".to_string(), alone),
        (
            format!(
                "while pool B (devdax) sizes, fills and publishes 256 MiB chunks ({:.0} MiB/s through the daemon)",
                during as f64 / MIB as f64 / secs.max(1e-9)
            ),
            busy,
        ),
    ] {
        s.sort_by(f64::total_cmp);
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} |",
            pct(&s, 0.5),
            pct(&s, 0.99),
            pct(&s, 0.999),
            s[s.len() - 1]
        );
    }
    drop(mounted);
}
