//! A devdax pool through a real FUSE mount, on a stand-in for the device: a sparse
//! file on /dev/shm whose size and alignment are read from `dax0.0` of a captured
//! sysfs tree (QEMU 10, Linux 6.12, a CXL RAM region in devdax mode).

mod common;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{skip_unless_root, wait_until, xattr_get, Fixture, MIB};
use maru_fs::devdax::{DevdaxConfig, Geometry};
use maru_fs::{Backing, Eviction, FsError, MountOptions, PoolConfig};
use tempfile::TempDir;

use maru_proto::xattr;
use maru_testkit::devdax::{ALIGN as FIXTURE_ALIGN, SIZE as FIXTURE_SIZE};

/// A stand-in device in `root` (on /dev/shm) sized like the fixture's `dax0.0`,
/// whose extracted sysfs directory the pool reads its geometry from (when the
/// fixture cannot be found: a sysfs-like directory holding the same values).
fn stand_in(root: &Path) -> DevdaxConfig {
    let sysfs = maru_testkit::devdax::sysfs_in(root);
    let geo = Geometry::from_sysfs(&sysfs).expect("fixture geometry");
    assert_eq!((geo.size, geo.align), (FIXTURE_SIZE, FIXTURE_ALIGN));
    let device = root.join("dax0.0");
    File::create_new(&device)
        .and_then(|f| f.set_len(geo.size))
        .expect("stand-in device");
    let mut cfg = DevdaxConfig::new(device);
    cfg.sysfs_dir = Some(sysfs);
    cfg
}

fn dax_pool(name: &str, cfg: DevdaxConfig, capacity: u64) -> PoolConfig {
    PoolConfig {
        mode: 0o1777,
        ..PoolConfig::new(name, Backing::Devdax(cfg), capacity)
    }
}

/// A mounted devdax pool `dax` and its stand-in device.
fn mount_dax() -> (Fixture, DevdaxConfig) {
    let root = tempfile::Builder::new()
        .prefix("maru-dax-test-")
        .tempdir_in("/dev/shm")
        .expect("stand-in root on /dev/shm");
    let cfg = stand_in(root.path());
    let fx = Fixture::mount_with(root, vec![dax_pool("dax", cfg.clone(), 256 * MIB)]);
    (fx, cfg)
}

fn xattr_u64(path: &Path, name: &str) -> u64 {
    String::from_utf8(xattr_get(path, name).expect(name))
        .expect("utf8")
        .parse()
        .expect("number")
}

fn sha256(path: &Path, unprivileged: bool) -> String {
    let mut cmd = if unprivileged {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sha256sum",
        ]);
        c
    } else {
        Command::new("sha256sum")
    };
    let out = cmd.arg(path).output().expect("run sha256sum");
    assert!(
        out.status.success(),
        "sha256sum {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("digest")
        .to_string()
}

fn sh(script: &str, unprivileged: bool) {
    let mut cmd = if unprivileged {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
        ]);
        c
    } else {
        let mut c = Command::new("sh");
        c.arg("-c");
        c
    };
    let out = cmd.arg(script).output().expect("run sh");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Publishes `data` under `key` as a writer does: written into the staging file
/// `.stage-<key>`, which stays open until it is renamed to `key`.
fn publish(pool: &Path, key: &str, data: &[u8]) {
    let stage = pool.join(format!(".stage-{key}"));
    let mut f = File::create_new(&stage).unwrap_or_else(|e| panic!("creating {key}: {e}"));
    f.write_all(data)
        .unwrap_or_else(|e| panic!("writing {key}: {e}"));
    std::fs::rename(&stage, pool.join(key)).unwrap_or_else(|e| panic!("publishing {key}: {e}"));
    drop(f);
}

/// Publishes the file `src` under `key` with cp(1) and mv(1), as root or as
/// nobody: fd 3 holds the staging file `.stage-<key>` open from creation to
/// publish (a staging file whose last handle goes is reclaimed); cp writes it
/// through the mount.
fn cp_publish(pool: &Path, src: &Path, key: &str, unprivileged: bool) {
    sh(
        &format!(
            "exec 3>>{pool}/.stage-{key} && cp {src} {pool}/.stage-{key} \
             && mv {pool}/.stage-{key} {pool}/{key}",
            src = src.display(),
            pool = pool.display()
        ),
        unprivileged,
    );
}

/// A source file of `len` pseudo-random bytes that every user may read.
fn source_file(dir: &TempDir, len: usize, seed: u32) -> (PathBuf, Vec<u8>) {
    let mut x = seed | 1;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let path = dir.path().join(format!("src-{seed}"));
    std::fs::write(&path, &data).expect("write source");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    (path, data)
}

/// Maps `len` bytes of `device` at `offset` the way libmaru maps a devdax chunk.
fn map_device(device: &Path, offset: u64, len: u64) -> Vec<u8> {
    let f = File::open(device).expect("open device");
    // SAFETY: a fresh read-only shared mapping at a kernel-chosen address, checked.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len as usize,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            offset as libc::off_t,
        )
    };
    assert_ne!(
        p,
        libc::MAP_FAILED,
        "mmap {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `p` maps `len` readable bytes until the munmap below.
    let bytes = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len as usize) }.to_vec();
    // SAFETY: unmapping exactly the mapping made above; `bytes` is a copy.
    unsafe { libc::munmap(p, len as usize) };
    bytes
}

#[test]
fn cp_sha256sum_xattrs_and_device_mapping_agree() {
    if skip_unless_root() {
        return;
    }
    let (fx, cfg) = mount_dax();
    let pool = fx.pool_dir("dax");
    let src_dir = tempfile::tempdir().expect("src dir");
    let (src, data) = source_file(&src_dir, 5 * MIB as usize + 123, 7);
    cp_publish(&pool, &src, "blob", false);
    let key = pool.join("blob");
    assert_eq!(sha256(&key, false), sha256(&src, false));
    assert_eq!(
        std::fs::metadata(&key).expect("stat").len(),
        data.len() as u64
    );
    assert_eq!(xattr_get(&key, xattr::STATE).unwrap(), b"published");
    assert_eq!(
        xattr_get(&key, xattr::DEVDAX_PATH).unwrap(),
        cfg.device.as_os_str().as_bytes()
    );
    assert_eq!(
        xattr_get(&pool, xattr::DEVDAX_PATH).unwrap(),
        cfg.device.as_os_str().as_bytes()
    );
    let offset = xattr_u64(&key, xattr::DEVDAX_OFFSET);
    let len = xattr_u64(&key, xattr::DEVDAX_LEN);
    assert_eq!(offset % (2 * MIB), 0);
    assert_eq!(len, 6 * MIB);
    // The device node mapped at the extent holds exactly the file's bytes.
    let mapped = map_device(&cfg.device, offset, len);
    assert_eq!(&mapped[..data.len()], &data[..]);
    assert!(mapped[data.len()..].iter().all(|&b| b == 0));
    // A shared mapping of the chunk file itself is refused: map the device instead.
    let f = File::open(&key).expect("open key");
    // SAFETY: asking for a fresh shared mapping; the result is checked and unmapped.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    let err = std::io::Error::last_os_error();
    if p != libc::MAP_FAILED {
        // SAFETY: unmapping the mapping just made.
        unsafe { libc::munmap(p, 4096) };
    }
    assert_eq!(
        p,
        libc::MAP_FAILED,
        "MAP_SHARED of a devdax chunk file must fail"
    );
    assert_eq!(err.raw_os_error(), Some(libc::ENODEV));
    let st = fx.stats("dax");
    assert_eq!(st.published_chunks, 1);
    assert_eq!(st.used_bytes, 6 * MIB, "charged whole extents");
    assert!(st.read_requests > 0 && st.write_requests > 0);
}

#[test]
fn writes_through_the_device_are_what_readers_of_the_file_see() {
    if skip_unless_root() {
        return;
    }
    let (fx, cfg) = mount_dax();
    let pool = fx.pool_dir("dax");
    let stage = pool.join(".stage-dev");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&stage)
        .expect("create staging");
    f.set_len(3 * MIB).expect("ftruncate");
    let offset = xattr_u64(&stage, xattr::DEVDAX_OFFSET);
    // The writer writes through its own view of the device (here: pwrite on the
    // stand-in, the same bytes a mapping of the node would change).
    let dev = OpenOptions::new()
        .write(true)
        .open(&cfg.device)
        .expect("device");
    dev.write_all_at(b"written through the device", offset + MIB)
        .expect("device write");
    std::fs::rename(&stage, pool.join("via-device")).expect("publish");
    let mut buf = vec![0u8; 26];
    File::open(pool.join("via-device"))
        .expect("open")
        .read_exact_at(&mut buf, MIB)
        .expect("read");
    assert_eq!(&buf, b"written through the device");
    drop(f);
}

#[test]
fn unprivileged_users_write_and_read_through_the_mount() {
    if skip_unless_root() {
        return;
    }
    let (fx, _cfg) = mount_dax();
    let pool = fx.pool_dir("dax");
    let src_dir = tempfile::tempdir().expect("src dir");
    let (src, _) = source_file(&src_dir, 3 * MIB as usize, 11);
    cp_publish(&pool, &src, "nobody-key", true);
    let key = pool.join("nobody-key");
    assert_eq!(std::fs::metadata(&key).expect("stat").uid(), 65534);
    assert_eq!(sha256(&key, true), sha256(&src, false));
    // Published chunks are sealed for their writer too.
    let err = OpenOptions::new().write(true).open(&key).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPERM));
}

#[test]
fn restart_recovers_chunks_and_a_corrupt_header_is_refused() {
    if skip_unless_root() {
        return;
    }
    let (mut fx, cfg) = mount_dax();
    let pool = fx.pool_dir("dax");
    let src_dir = tempfile::tempdir().expect("src dir");
    let (_, data) = source_file(&src_dir, 2 * MIB as usize + 1, 3);
    publish(&pool, "a", &data);
    let offset = xattr_u64(&pool.join("a"), xattr::DEVDAX_OFFSET);
    // A staging chunk open at shutdown is not published: gone after the restart.
    let mut staging = File::create_new(pool.join(".stage-b")).expect("staging");
    staging.write_all(b"unfinished").expect("write");
    drop(staging);
    wait_until("staging reclaimed", || fx.stats("dax").staging_chunks == 0);
    let root = fx.unmount();

    // Restart: the chunk is found again on the device, at the same extent.
    let fx2 = Fixture::mount_with(root, vec![dax_pool("dax", cfg.clone(), 256 * MIB)]);
    let key = fx2.pool_dir("dax").join("a");
    assert_eq!(std::fs::read(&key).expect("read a after restart"), data);
    assert_eq!(xattr_u64(&key, xattr::DEVDAX_OFFSET), offset);
    let names: Vec<_> = std::fs::read_dir(fx2.pool_dir("dax"))
        .expect("readdir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["a"]);
    let mut fx2 = fx2;
    let root = fx2.unmount();

    // Damage both header copies: the pool is refused, with a message saying why
    // and what to do, and the device is left as it was.
    let dev = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&cfg.device)
        .expect("device");
    for at in [40u64, 4096 + 40] {
        let mut b = [0u8; 1];
        dev.read_exact_at(&mut b, at).expect("read header");
        dev.write_all_at(&[b[0] ^ 0x10], at).expect("damage header");
    }
    let mut before = vec![0u8; 64 << 10];
    dev.read_exact_at(&mut before, 0).expect("read");
    let mnt = tempfile::tempdir().expect("mount point");
    let err = maru_fs::mount(
        &MountOptions::new(mnt.path()),
        vec![dax_pool("dax", cfg.clone(), 256 * MIB)],
    )
    .map(|_| ())
    .unwrap_err();
    assert!(matches!(err, FsError::Devdax { .. }), "{err}");
    // The whole chain, as the daemon prints it.
    let msg = format!(
        "{err}: {}",
        std::error::Error::source(&err).expect("the devdax error")
    );
    assert!(msg.contains("pool dax"), "{msg}");
    assert!(msg.contains("corrupt"), "{msg}");
    assert!(msg.contains("refusing to mount"), "{msg}");
    assert!(msg.contains("format-devdax"), "{msg}");
    let mut after = vec![0u8; before.len()];
    dev.read_exact_at(&mut after, 0).expect("read");
    assert!(before == after, "a refused pool must not be written to");
    drop(root);
}

#[test]
fn removed_chunk_keeps_its_extent_until_the_last_close() {
    if skip_unless_root() {
        return;
    }
    let (fx, _cfg) = mount_dax();
    let pool = fx.pool_dir("dax");
    publish(&pool, "r", &vec![0x5A; 4 * MIB as usize]);
    let reader = File::open(pool.join("r")).expect("open");
    std::fs::remove_file(pool.join("r")).expect("unlink");
    // The extent is still the reader's: nothing else is allocated over it.
    let f = File::create_new(pool.join(".stage-fill")).expect("create");
    f.set_len(250 * MIB)
        .expect("the rest of the data area fits");
    assert_eq!(
        f.set_len(252 * MIB).unwrap_err().raw_os_error(),
        Some(libc::ENOSPC)
    );
    let mut buf = vec![0u8; 4096];
    reader.read_exact_at(&mut buf, 3 * MIB).expect("read");
    assert!(buf.iter().all(|&b| b == 0x5A));
    drop(reader);
    wait_until("extent freed at the last close", || {
        fx.stats("dax").used_bytes == 250 * MIB
    });
    let g = File::create_new(pool.join(".stage-again")).expect("create");
    g.set_len(4 * MIB)
        .expect("the freed extent is usable again");
}

#[test]
fn lru_pool_is_full_when_its_extents_are() {
    if skip_unless_root() {
        return;
    }
    // A 32 MiB stand-in without sysfs attributes: 2 MiB alignment, 15 data extents.
    let root = tempfile::Builder::new()
        .prefix("maru-dax-test-")
        .tempdir_in("/dev/shm")
        .expect("stand-in root on /dev/shm");
    let device = root.path().join("dax1.0");
    File::create_new(&device)
        .and_then(|f| f.set_len(32 * MIB))
        .expect("stand-in device");
    let mut cfg = dax_pool("lru", DevdaxConfig::new(&device), 1 << 30);
    cfg.eviction = Eviction::Lru;
    let fx = Fixture::mount_with(root, vec![cfg]);
    let pool = fx.pool_dir("lru");
    assert_eq!(
        fx.stats("lru").capacity,
        30 * MIB,
        "clamped to the data area"
    );
    // 1 MiB chunks take a 2 MiB extent each, and are charged for it.
    for i in 0..16 {
        publish(&pool, &format!("k{i}"), &vec![i as u8; MIB as usize]);
    }
    let st = fx.stats("lru");
    assert_eq!(st.used_bytes, 30 * MIB);
    assert_eq!(st.evictions, 1, "the 16th chunk evicted the oldest");
    // The kernel's cached entry goes when the daemon's invalidation arrives (async).
    wait_until("the evicted k0 to disappear", || !pool.join("k0").exists());
    assert_eq!(
        std::fs::read(pool.join("k15")).expect("newest"),
        vec![15u8; MIB as usize]
    );
}
