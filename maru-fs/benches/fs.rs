//! `cargo bench -p maru-fs`: metadata and publish latencies on a real mount, with
//! a memcpy baseline from the same run. Needs root and /dev/fuse; prints a table.
//!
//! Each row times one client operation from this process against a maru-fs
//! mounted by this process (the FUSE request threads are separate threads, so each
//! request is a real kernel round trip). Backing stores: /dev/shm (4 KiB pages),
//! and a private tmpfs mounted with `huge=within_size` (large folios) when possible.
//! "NATIVE" rows run the same publish directly on the backing tmpfs, without FUSE.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Instant;

use maru_fs::{Backing, Eviction, MountOptions, PoolConfig};

const MIB: usize = 1 << 20;

struct Row {
    name: String,
    samples: Vec<f64>,
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn time_n(n: usize, mut f: impl FnMut(usize)) -> Vec<f64> {
    // Warm up.
    for i in 0..n.min(20) {
        f(usize::MAX - i);
    }
    (0..n)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect()
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).expect("path without NUL")
}

fn stat(p: &CString) -> i32 {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `p` is NUL-terminated; `st` is a writable stat buffer.
    unsafe { libc::stat(p.as_ptr(), st.as_mut_ptr()) }
}

/// open O_RDONLY + mmap PROT_READ of a chunk; returns (fd, addr, len).
fn open_map(p: &CString, len: usize, populate: bool) -> (OwnedFd, *mut libc::c_void) {
    // SAFETY: `p` is NUL-terminated.
    let fd = unsafe { libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    assert!(fd >= 0, "open: {}", std::io::Error::last_os_error());
    // SAFETY: fd is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let flags = libc::MAP_SHARED | if populate { libc::MAP_POPULATE } else { 0 };
    // SAFETY: mapping a file we opened; the result is checked.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            flags,
            fd.as_raw_fd(),
            0,
        )
    };
    assert_ne!(
        addr,
        libc::MAP_FAILED,
        "mmap: {}",
        std::io::Error::last_os_error()
    );
    (fd, addr)
}

/// How a writer sizes and maps its staging chunk.
#[derive(Clone, Copy, PartialEq)]
enum Sizing {
    /// ftruncate, then fault pages in while copying.
    Truncate,
    /// ftruncate, then mmap with MAP_POPULATE.
    TruncatePopulate,
    /// fallocate (charges and commits the memory in the daemon), then MAP_POPULATE.
    FallocatePopulate,
}

impl Sizing {
    fn label(self) -> &'static str {
        match self {
            Sizing::Truncate => "ftruncate",
            Sizing::TruncatePopulate => "ftruncate+MAP_POPULATE",
            Sizing::FallocatePopulate => "fallocate+MAP_POPULATE",
        }
    }
}

/// Picks one step's time out of [`Steps`].
type StepOf = fn(&Steps) -> f64;

/// Microseconds spent in each step of one publish.
#[derive(Default, Clone, Copy)]
struct Steps {
    create: f64,
    size: f64,
    map: f64,
    copy: f64,
    unmap: f64,
    rename: f64,
}

impl Steps {
    /// The whole publish, in microseconds.
    fn total(&self) -> f64 {
        self.create + self.size + self.map + self.copy + self.unmap + self.rename
    }
}

fn us(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e6
}

/// The publish path of a writer: create, size, map, copy, unmap, rename. Returns
/// the staging descriptor (kept open until published, as the contract requires).
fn publish(staging: &CString, key: &CString, src: &[u8], sizing: Sizing) -> (OwnedFd, Steps) {
    let mut st = Steps::default();
    let t = Instant::now();
    // SAFETY: NUL-terminated path; result checked.
    let fd = unsafe {
        libc::open(
            staging.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC,
            0o644,
        )
    };
    assert!(fd >= 0, "create: {}", std::io::Error::last_os_error());
    // SAFETY: fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    st.create = us(t);
    let len = src.len();
    // SAFETY: plain syscalls on our descriptor and our own mapping; results checked.
    unsafe {
        let t = Instant::now();
        let rc = if sizing == Sizing::FallocatePopulate {
            libc::fallocate(fd.as_raw_fd(), 0, 0, len as i64)
        } else {
            libc::ftruncate(fd.as_raw_fd(), len as i64)
        };
        assert_eq!(rc, 0, "size: {}", std::io::Error::last_os_error());
        st.size = us(t);
        let t = Instant::now();
        let populate = if sizing == Sizing::Truncate {
            0
        } else {
            libc::MAP_POPULATE
        };
        let addr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | populate,
            fd.as_raw_fd(),
            0,
        );
        assert_ne!(addr, libc::MAP_FAILED, "mmap");
        st.map = us(t);
        let t = Instant::now();
        std::ptr::copy_nonoverlapping(src.as_ptr(), addr.cast::<u8>(), len);
        st.copy = us(t);
        let t = Instant::now();
        libc::munmap(addr, len);
        st.unmap = us(t);
        let t = Instant::now();
        let rc = libc::renameat2(
            libc::AT_FDCWD,
            staging.as_ptr(),
            libc::AT_FDCWD,
            key.as_ptr(),
            libc::RENAME_NOREPLACE,
        );
        assert_eq!(rc, 0, "rename: {}", std::io::Error::last_os_error());
        st.rename = us(t);
    }
    (fd, st)
}

/// Times `n` publishes of `size` bytes (after a warm-up), cleaning up untimed.
/// With `after_miss`, the key is first looked up (untimed), as a cache does before
/// it computes what it then publishes: the kernel keeps that negative entry.
fn publish_series(
    dir: &Path,
    size: usize,
    n: usize,
    sizing: Sizing,
    after_miss: bool,
    src: &[u8],
) -> Vec<Steps> {
    let mut out = Vec::with_capacity(n);
    let mut done: Vec<(OwnedFd, CString)> = Vec::new();
    for i in 0..n + 10 {
        let tag = format!("{size}-{}-{after_miss}-{i}", sizing.label());
        let staging = cstr(&dir.join(format!(".s-{tag}")));
        let key = cstr(&dir.join(format!("k-{tag}")));
        if after_miss {
            assert_eq!(stat(&key), -1);
        }
        let (fd, steps) = publish(&staging, &key, &src[..size], sizing);
        if i >= 10 {
            out.push(steps);
        }
        done.push((fd, key));
        if done.len() >= 16 {
            for (fd, key) in done.drain(..) {
                drop(fd);
                // SAFETY: NUL-terminated path.
                unsafe { libc::unlink(key.as_ptr()) };
            }
        }
    }
    for (fd, key) in done.drain(..) {
        drop(fd);
        // SAFETY: NUL-terminated path.
        unsafe { libc::unlink(key.as_ptr()) };
    }
    out
}

fn mount_huge_tmpfs(dir: &Path) -> bool {
    let opts = "size=1g,huge=within_size,mode=0755";
    nix::mount::mount(
        Some("maru-bench"),
        dir,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some(opts),
    )
    .is_ok()
}

struct Bench {
    rows: Vec<Row>,
}

impl Bench {
    fn add(&mut self, name: impl Into<String>, samples: Vec<f64>) {
        self.rows.push(Row {
            name: name.into(),
            samples,
        });
    }
}

fn bench_pool(b: &mut Bench, label: &str, dir: &Path, native: &Path, src: &[u8]) {
    let d = dir.to_path_buf();
    // A published 1 MiB chunk to stat and map (written the fast way, so on the thp
    // pool it sits in one large folio).
    let (fd, _) = publish(
        &cstr(&d.join(".setup")),
        &cstr(&d.join("hit")),
        &src[..MIB],
        Sizing::FallocatePopulate,
    );
    drop(fd);
    let hit = cstr(&d.join("hit"));
    let miss = cstr(&d.join("missing-key"));
    if label == "shm" {
        b.add(
            "stat, published key (kernel-cached)",
            time_n(20000, |_| {
                assert_eq!(stat(&hit), 0);
            }),
        );
        b.add(
            "stat, missing key (negative entry cached)",
            time_n(20000, |_| {
                assert_eq!(stat(&miss), -1);
            }),
        );
        let fresh: Vec<CString> = (0..2000)
            .map(|i| cstr(&d.join(format!("never-{i}"))))
            .collect();
        let mut next = 0;
        b.add(
            "stat, missing key, first time (FUSE LOOKUP round trip)",
            time_n(1900, |_| {
                assert_eq!(stat(&fresh[next]), -1);
                next += 1;
            }),
        );
    }
    for populate in [false, true] {
        let how = if populate {
            "open+mmap(MAP_POPULATE)"
        } else {
            "open+mmap"
        };
        let mut samples = Vec::new();
        for i in 0..3010 {
            let t = Instant::now();
            let (fd, addr) = open_map(&hit, MIB, populate);
            let dt = us(t);
            if i >= 10 {
                samples.push(dt);
            }
            // SAFETY: unmapping the mapping made just above.
            unsafe { libc::munmap(addr, MIB) };
            drop(fd);
        }
        b.add(format!("{how} 1 MiB chunk [{label}]"), samples);
    }
    for (size, n) in [(256 * 1024, 400), (MIB, 300), (4 * MIB, 100)] {
        for sizing in [
            Sizing::Truncate,
            Sizing::TruncatePopulate,
            Sizing::FallocatePopulate,
        ] {
            let steps = publish_series(&d, size, n, sizing, false, src);
            b.add(
                format!("publish {} KiB, {} [{label}]", size / 1024, sizing.label()),
                steps.iter().map(Steps::total).collect(),
            );
            if size == MIB && sizing != Sizing::TruncatePopulate {
                let parts: [(&str, StepOf); 6] = [
                    ("create", |s| s.create),
                    ("size", |s| s.size),
                    ("mmap", |s| s.map),
                    ("copy", |s| s.copy),
                    ("munmap", |s| s.unmap),
                    ("rename", |s| s.rename),
                ];
                for (name, f) in parts {
                    b.add(
                        format!("  of which {name} ({}) [{label}]", sizing.label()),
                        steps.iter().map(f).collect(),
                    );
                }
            }
        }
        // The same publish straight on the backing tmpfs, without FUSE.
        let sizing = Sizing::FallocatePopulate;
        if size == MIB {
            let steps = publish_series(dir, size, n, sizing, true, src);
            b.add(
                format!(
                    "publish {} KiB, {}, key looked up before (cache miss) [{label}]",
                    size / 1024,
                    sizing.label()
                ),
                steps.iter().map(Steps::total).collect(),
            );
        }
        let steps = publish_series(native, size, n, sizing, false, src);
        b.add(
            format!(
                "publish {} KiB, {}, NATIVE tmpfs, no FUSE [{label}]",
                size / 1024,
                sizing.label()
            ),
            steps.iter().map(Steps::total).collect(),
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--client") {
        client(&args[i + 1..]);
        return;
    }
    if !nix::unistd::geteuid().is_root() || !Path::new("/dev/fuse").exists() {
        eprintln!("SKIP: the maru-fs benchmark needs root and /dev/fuse");
        return;
    }
    let root = tempfile::Builder::new()
        .prefix("maru-fs-bench-")
        .tempdir_in("/dev/shm")
        .expect("bench dir");
    let mnt = tempfile::tempdir().expect("mount point");
    let shm = root.path().join("shm");
    std::fs::create_dir(&shm).expect("shm dir");
    let shm_native = root.path().join("native");
    std::fs::create_dir(&shm_native).expect("native dir");
    let huge_mnt = tempfile::tempdir().expect("huge tmpfs dir");
    let huge = huge_mnt.path().to_path_buf();
    let have_huge = mount_huge_tmpfs(&huge);
    let huge_pool = huge.join("pool");
    let huge_native = huge.join("native");
    if have_huge {
        std::fs::create_dir(&huge_pool).expect("thp pool dir");
        std::fs::create_dir(&huge_native).expect("thp native dir");
    } else {
        eprintln!("note: could not mount a huge=within_size tmpfs; THP rows skipped");
    }
    let mk = |name: &str, dir: PathBuf| PoolConfig {
        eviction: Eviction::Lru,
        ..PoolConfig::new(name, Backing::Dir(dir), 512 * MIB as u64)
    };
    let mut pools = vec![mk("shm", shm)];
    if have_huge {
        pools.push(mk("thp", huge_pool.clone()));
    }
    let mounted = maru_fs::mount(&MountOptions::new(mnt.path()), pools).expect("mount");

    // The client is another process, as real clients are: it must not share this
    // process's address space (mmap lock, TLB shootdowns) with the FUSE threads.
    let mut cmd = std::process::Command::new(std::env::current_exe().expect("own path"));
    cmd.arg("--client").arg(mnt.path()).arg(&shm_native);
    if have_huge {
        cmd.arg(&huge_native);
    }
    let status = cmd.status().expect("run the benchmark client");
    assert!(status.success(), "benchmark client failed: {status}");

    for s in mounted.control().stats() {
        println!(
            "\npool {}: read_requests={} write_requests={} creates={} publishes={} lookups={}",
            s.name, s.read_requests, s.write_requests, s.creates, s.publishes, s.lookups
        );
    }
    drop(mounted);
    if have_huge {
        let _ = nix::mount::umount2(&huge, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// The measuring side: `--client MOUNTPOINT SHM_NATIVE_DIR [THP_NATIVE_DIR]`.
fn client(args: &[String]) {
    let mnt = PathBuf::from(&args[0]);
    let shm_native = PathBuf::from(&args[1]);
    let huge_native = args.get(2).map(PathBuf::from);
    let mut b = Bench { rows: Vec::new() };
    let src: Vec<u8> = (0..4 * MIB).map(|i| (i * 7) as u8).collect();
    let mut dst = vec![0u8; 4 * MIB];
    for (size, n) in [(256 * 1024, 2000), (MIB, 1000), (4 * MIB, 200)] {
        b.add(
            format!("memcpy {} KiB (warm buffers, baseline)", size / 1024),
            time_n(n, |_| {
                dst[..size].copy_from_slice(&src[..size]);
                std::hint::black_box(&dst);
            }),
        );
    }
    bench_pool(&mut b, "shm", &mnt.join("shm"), &shm_native, &src);
    if let Some(native) = &huge_native {
        bench_pool(&mut b, "thp", &mnt.join("thp"), native, &src);
    }
    let base = |size_kib: usize| {
        b.rows
            .iter()
            .find(|r| r.name.starts_with(&format!("memcpy {size_kib} KiB")))
            .map(|r| {
                let mut s = r.samples.clone();
                s.sort_by(f64::total_cmp);
                pct(&s, 0.5)
            })
    };
    println!("| operation | p50 µs | p99 µs | p50 / memcpy p50 of same size |");
    println!("| --- | ---: | ---: | ---: |");
    for r in &b.rows {
        let mut s = r.samples.clone();
        s.sort_by(f64::total_cmp);
        let ratio = [256, 1024, 4096]
            .iter()
            .find(|k| r.name.starts_with(&format!("publish {k} KiB")))
            .and_then(|k| base(*k))
            .map(|m| format!("{:.1}x", pct(&s, 0.5) / m))
            .unwrap_or_default();
        println!(
            "| {} | {:.1} | {:.1} | {} |",
            r.name,
            pct(&s, 0.5),
            pct(&s, 0.99),
            ratio
        );
    }
}
