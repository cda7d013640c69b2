//! A stand-in for a CXL device-dax device that several daemons ("hosts") open: a
//! 256 MiB sparse file on /dev/shm, with the captured sysfs snapshot (QEMU 10, Linux
//! 6.12, dax0.0 of a CXL RAM region in devdax mode) giving it dax0.0's geometry.

use super::fixtures::{extract_named, Snapshot};
use std::path::PathBuf;

const SNAPSHOT: &str = "qemu10.0-linux6.12-ram/2-ram-region-devdax";

/// One stand-in device and the snapshot standing for /sys.
pub struct Device {
    _shm: tempfile::TempDir,
    /// The stand-in file (the pool's `device:`).
    pub path: PathBuf,
    /// The directory standing for /sys (`--sysfs-root`).
    pub sys: PathBuf,
    _snap: Snapshot,
}

impl Device {
    /// A blank 256 MiB stand-in.
    pub fn new() -> Device {
        let snap = extract_named(SNAPSHOT);
        let shm = tempfile::Builder::new()
            .prefix("maru-standin")
            .tempdir_in("/dev/shm")
            .unwrap();
        let path = shm.path().join("dax0.0");
        std::fs::File::create_new(&path)
            .and_then(|f| f.set_len(256 << 20))
            .unwrap();
        Device {
            sys: snap.sys(),
            _snap: snap,
            _shm: shm,
            path,
        }
    }
}
