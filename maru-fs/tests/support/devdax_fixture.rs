//! The captured sysfs snapshot whose `dax0.0` the devdax stand-ins copy (QEMU 10,
//! Linux 6.12, a CXL RAM region in devdax mode): where to find it and what it
//! holds. Shared by the devdax unit tests (`src/devdax/tests.rs`) and the
//! integration tests (`tests/devdax.rs`), each through `#[path]`.

use std::path::{Path, PathBuf};

/// Size of the snapshot's `dax0.0` in bytes (256 MiB).
pub const FIXTURE_SIZE: u64 = 256 << 20;
/// Alignment of the snapshot's `dax0.0` in bytes (2 MiB).
pub const FIXTURE_ALIGN: u64 = 2 << 20;
/// `dax0.0`'s sysfs directory inside the extracted snapshot.
pub const FIXTURE_DAX_DIR: &str = "root/sys/bus/dax/devices/dax0.0";

/// Where the captured snapshot with the devdax `dax0.0` is: under
/// `$MARU_SHARED_DIR`, `shared/` beside the repository (as in CI), or `/work/shared`.
pub fn fixture_tarball() -> Option<PathBuf> {
    let rel = "fixtures/sysfs/qemu10.0-linux6.12-ram/2-ram-region-devdax.tar.gz";
    std::env::var_os("MARU_SHARED_DIR")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
            PathBuf::from("/work/shared"),
        ])
        .map(|dir| dir.join(rel))
        .find(|p| p.is_file())
}
