//! libmaru on a devdax pool: a maru-fs mount whose pool lives in a stand-in for
//! a device-dax device (a file on /dev/shm, mapped exactly like `/dev/daxX.Y`).
//! Chunks are mapped from the device at their extents, not through the FUSE file.

mod common;

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use common::{check, fill, pfn};
use maru::{Pool, Publish};
use maru_proto::xattr;

const MIB: usize = 1 << 20;

/// A mounted devdax pool on a 64 MiB stand-in device.
struct DaxPool {
    pool: PathBuf,
    device: PathBuf,
    _mounted: maru_fs::Mounted,
    _tmp: tempfile::TempDir,
}

fn dax_pool() -> DaxPool {
    let tmp = tempfile::Builder::new()
        .prefix("libmaru-dax-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let device = tmp.path().join("dax0.0");
    File::create_new(&device)
        .and_then(|f| f.set_len(64 * MIB as u64))
        .unwrap();
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let cfg = maru_fs::PoolConfig::new(
        "dax",
        maru_fs::Backing::Devdax(maru_fs::devdax::DevdaxConfig::new(&device)),
        64 * MIB as u64,
    );
    let mounted = maru_fs::mount(&maru_fs::MountOptions::new(&mnt), vec![cfg])
        .unwrap_or_else(|e| panic!("mounting maru-fs on {}: {e}", mnt.display()));
    DaxPool {
        pool: mnt.join("dax"),
        device,
        _mounted: mounted,
        _tmp: tmp,
    }
}

fn xattr_u64(path: &Path, name: &str) -> u64 {
    xattr_text(path, name).parse().unwrap()
}

fn xattr_text(path: &Path, name: &str) -> String {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = [0u8; 64];
    // SAFETY: NUL-terminated path and name; `buf` is writable for its length.
    let r = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(r > 0, "{name} of {}", path.display());
    std::str::from_utf8(&buf[..r as usize]).unwrap().to_string()
}

/// PFN of the device's page at byte `offset` (maps it, reads pagemap, unmaps).
fn device_pfn(device: &Path, offset: u64) -> u64 {
    let f = File::open(device).unwrap();
    // SAFETY: a fresh read-only shared mapping of one page, checked, unmapped below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            f.as_raw_fd(),
            offset as libc::off_t,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    let n = pfn(p.cast());
    // SAFETY: unmapping the page mapped above.
    unsafe { libc::munmap(p, 4096) };
    n
}

#[test]
fn chunks_map_the_device_at_their_extent() {
    if !common::root() {
        return;
    }
    let dp = dax_pool();
    let pool = Pool::open(&dp.pool).unwrap();
    let size = 3 * MIB + 5;
    let mut c = pool.create(size).unwrap();
    assert_eq!(c.len(), size);
    assert!(
        c.as_slice().iter().all(|&b| b == 0),
        "fresh chunk is zeroed"
    );
    fill(c.as_mut_slice(), 42);
    let c = c.publish(b"dax-key").unwrap();
    assert_eq!(c.outcome(), Publish::Published);

    let v = pool.get(b"dax-key").unwrap().expect("published key");
    assert_eq!(v.len(), size);
    assert!(check(v.as_slice(), 42));
    // What read(2) through the mount returns is what the mapping shows.
    let key = dp.pool.join("dax-key");
    let read = std::fs::read(&key).unwrap();
    assert_eq!(read.len(), size);
    assert!(check(&read, 42));
    // Zero copy: writer, reader and the device itself share the physical pages,
    // at the extent the xattrs name.
    let offset = xattr_u64(&key, xattr::DEVDAX_OFFSET);
    assert_eq!(xattr_u64(&key, xattr::DEVDAX_LEN), 4 * MIB as u64);
    // The extent in one value (what libmaru reads: one round trip, not two).
    assert_eq!(
        xattr_text(&key, xattr::DEVDAX_EXTENT),
        format!("{offset} {}", 4 * MIB)
    );
    for page in [0usize, 1, 2 * MIB / 4096, (size - 1) / 4096] {
        let at = page * 4096;
        // SAFETY: `at` < size: inside both mappings.
        let (w, r) = unsafe { (pfn(c.as_ptr().add(at)), pfn(v.as_ptr().add(at))) };
        let d = device_pfn(&dp.device, offset + at as u64);
        assert!(
            w != 0 && w == r && r == d,
            "page {page}: writer {w:#x} reader {r:#x} device {d:#x}"
        );
    }
}

#[test]
fn store_and_get_round_trip_and_keys_survive_in_the_device() {
    if !common::root() {
        return;
    }
    let dp = dax_pool();
    let pool = Pool::open(&dp.pool).unwrap();
    let data: Vec<u8> = (0..MIB + 77).map(|i| (i % 251) as u8).collect();
    assert_eq!(pool.store(b"stored", &data).unwrap(), Publish::Published);
    assert_eq!(
        pool.store(b"stored", &data).unwrap(),
        Publish::AlreadyExists
    );
    let v = pool.get(b"stored").unwrap().expect("stored key");
    assert_eq!(v.as_slice(), &data[..]);
    let offset = xattr_u64(&dp.pool.join("stored"), xattr::DEVDAX_OFFSET);
    let mut on_device = vec![0u8; data.len()];
    std::os::unix::fs::FileExt::read_exact_at(
        &File::open(&dp.device).unwrap(),
        &mut on_device,
        offset,
    )
    .unwrap();
    assert_eq!(on_device, data);
}

/// A plain directory dressed as a devdax pool of an older daemon: the pool names
/// its device, each chunk its extent in the two separate xattrs only.
#[test]
fn an_extent_in_two_xattrs_from_an_older_daemon_still_maps() {
    let tmp = tempfile::Builder::new()
        .prefix("libmaru-olddax-")
        .tempdir_in("/dev/shm")
        .unwrap();
    let device = tmp.path().join("dax0.0");
    let mut bytes = vec![0u8; 4 * MIB];
    fill(&mut bytes[2 * MIB..2 * MIB + 8192], 9);
    std::fs::write(&device, &bytes).unwrap();
    let dir = tmp.path().join("pool");
    std::fs::create_dir(&dir).unwrap();
    let set = |path: &Path, name: &str, value: &[u8]| {
        let p = CString::new(path.as_os_str().as_bytes()).unwrap();
        let n = CString::new(name).unwrap();
        // SAFETY: NUL-terminated path and name; `value` is a live buffer of its length.
        let rc = unsafe {
            libc::setxattr(
                p.as_ptr(),
                n.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        assert_eq!(
            rc,
            0,
            "setxattr {name}: {}",
            std::io::Error::last_os_error()
        );
    };
    set(&dir, xattr::DEVDAX_PATH, device.as_os_str().as_bytes());
    let chunk = dir.join("old");
    std::fs::write(&chunk, vec![0u8; 8192]).unwrap();
    set(
        &chunk,
        xattr::DEVDAX_OFFSET,
        (2 * MIB).to_string().as_bytes(),
    );
    set(&chunk, xattr::DEVDAX_LEN, (2 * MIB).to_string().as_bytes());
    let pool = Pool::open(&dir).unwrap();
    let v = pool.get(b"old").unwrap().expect("present");
    assert_eq!(v.len(), 8192);
    assert!(
        check(v.as_slice(), 9),
        "mapped at the offset the xattrs name"
    );
    drop(v);
    // A malformed combined value is refused with what is wrong.
    set(&chunk, xattr::DEVDAX_EXTENT, b"2097152");
    let err = pool.get(b"old").unwrap_err();
    assert_eq!(err.errno(), libc::EINVAL);
    assert!(err.to_string().contains(xattr::DEVDAX_EXTENT), "{err}");
}
