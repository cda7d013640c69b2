//! Stand-ins for a CXL device-dax device: a sparse file on tmpfs (`/dev/shm`),
//! mapped exactly like `/dev/daxX.Y`, with the geometry of `dax0.0` in the captured
//! sysfs snapshot (QEMU 10, Linux 6.12, a CXL RAM region in devdax mode).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::fixtures;

/// The snapshot whose `dax0.0` the stand-ins copy.
pub const SNAPSHOT: &str = "qemu10.0-linux6.12-ram/2-ram-region-devdax";
/// Size of the snapshot's `dax0.0` in bytes (256 MiB).
pub const SIZE: u64 = 256 << 20;
/// Alignment of the snapshot's `dax0.0` in bytes (2 MiB).
pub const ALIGN: u64 = 2 << 20;
/// `dax0.0`'s sysfs directory inside the extracted snapshot.
pub const DAX_DIR: &str = "root/sys/bus/dax/devices/dax0.0";

/// The snapshot's tarball, if `shared/` holds it.
pub fn tarball() -> Option<PathBuf> {
    fixtures::snapshot_tarball(SNAPSHOT)
}

/// The `dax0.0` sysfs directory for a stand-in in `root`: the snapshot's, extracted
/// into `root`; when the snapshot cannot be found, a sysfs-like directory in `root`
/// holding the same `size` and `align` (said on stderr, past the harness's capture).
pub fn sysfs_in(root: &Path) -> PathBuf {
    if let Some(tarball) = tarball() {
        let st = std::process::Command::new("tar")
            .arg("xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(root)
            .status()
            .expect("run tar");
        assert!(st.success(), "tar could not extract {}", tarball.display());
        return root.join(DAX_DIR);
    }
    let _ = writeln!(
        std::io::stderr(),
        "NOTE: {}; the stand-in uses its known dax0.0 geometry",
        fixtures::missing(&fixtures::sysfs_dir().join(SNAPSHOT))
    );
    let dir = root.join("sysfs-dax0.0");
    std::fs::create_dir(&dir).expect("sysfs dir");
    std::fs::write(dir.join("size"), format!("{SIZE}\n")).expect("size");
    std::fs::write(dir.join("align"), format!("{ALIGN}\n")).expect("align");
    dir
}

/// A blank stand-in device for daemons ("hosts") to open, with the snapshot
/// standing for `/sys`; both removed on drop.
pub struct StandIn {
    _shm: tempfile::TempDir,
    /// The stand-in file (a pool's `device:`).
    pub path: PathBuf,
    /// The directory standing for `/sys` (`--sysfs-root`).
    pub sys: PathBuf,
    _snap: tempfile::TempDir,
}

impl StandIn {
    /// A blank stand-in of the snapshot's size; panics when the snapshot is missing.
    pub fn new() -> StandIn {
        let snap = fixtures::extract_snapshot(SNAPSHOT);
        let shm = tempfile::Builder::new()
            .prefix("maru-standin")
            .tempdir_in("/dev/shm")
            .expect("a directory on /dev/shm");
        let path = shm.path().join("dax0.0");
        std::fs::File::create_new(&path)
            .and_then(|f| f.set_len(SIZE))
            .expect("the stand-in file");
        StandIn {
            sys: snap.path().join("root/sys"),
            _snap: snap,
            _shm: shm,
            path,
        }
    }
}

impl Default for StandIn {
    fn default() -> Self {
        Self::new()
    }
}
