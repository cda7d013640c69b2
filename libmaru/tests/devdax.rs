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
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = [0u8; 64];
    // SAFETY: NUL-terminated path and name; `buf` is writable for its length.
    let r = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(r > 0, "{name} of {}", path.display());
    std::str::from_utf8(&buf[..r as usize])
        .unwrap()
        .parse()
        .unwrap()
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
