//! The captured sysfs snapshots in `shared/fixtures/sysfs`, for the unit tests and (through
//! `#[path]` in `tests/fixtures/mod.rs`) the integration tests: one place that knows where
//! `shared/` is and how a snapshot is extracted.

use std::path::{Path, PathBuf};

/// The `shared/` folder: `$MARU_SHARED_DIR`, else the first of `shared/` beside the
/// repository, inside it, or `/work/shared` that holds `fixtures/sysfs` (else the first
/// of those, for the error messages).
pub fn shared_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MARU_SHARED_DIR") {
        return PathBuf::from(dir);
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let candidates = [
        repo.join("../shared"),
        repo.join("shared"),
        PathBuf::from("/work/shared"),
    ];
    candidates
        .iter()
        .find(|d| d.join("fixtures/sysfs").is_dir())
        .unwrap_or(&candidates[0])
        .clone()
}

/// Extracts `tarball` (with the system `tar`, symbolic links kept) into a fresh temporary
/// directory.
pub fn extract_tarball(tarball: &Path) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let ok = std::process::Command::new("tar")
        .arg("xzf")
        .arg(tarball)
        .arg("-C")
        .arg(tmp.path())
        .status()
        .unwrap();
    assert!(ok.success(), "cannot extract {}", tarball.display());
    tmp
}

/// Extracts snapshot `name` (`profile/snapshot`, without `.tar.gz`); the tree standing for
/// `/sys` is `root/sys` in the returned directory.
pub fn extract(name: &str) -> tempfile::TempDir {
    let tarball = shared_dir().join(format!("fixtures/sysfs/{name}.tar.gz"));
    assert!(
        tarball.exists(),
        "sysfs fixture {} missing (set MARU_SHARED_DIR to the shared/ folder)",
        tarball.display()
    );
    extract_tarball(&tarball)
}
