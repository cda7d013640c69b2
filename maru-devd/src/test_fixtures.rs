//! The captured sysfs snapshots (`shared/fixtures/sysfs`, or `$MARU_SHARED_DIR/fixtures/sysfs`)
//! for unit tests.

use std::path::{Path, PathBuf};

/// Extracts snapshot `name` (`profile/snapshot`, without `.tar.gz`) into a fresh temporary
/// directory; the tree standing for `/sys` is its `root/sys`.
pub fn extract(name: &str) -> tempfile::TempDir {
    let shared = std::env::var_os("MARU_SHARED_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
        PathBuf::from,
    );
    let tarball = shared.join(format!("fixtures/sysfs/{name}.tar.gz"));
    assert!(
        tarball.exists(),
        "sysfs fixture {} missing (set MARU_SHARED_DIR to shared/)",
        tarball.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let ok = std::process::Command::new("tar")
        .arg("xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(tmp.path())
        .status()
        .unwrap();
    assert!(ok.success(), "cannot extract {}", tarball.display());
    tmp
}
