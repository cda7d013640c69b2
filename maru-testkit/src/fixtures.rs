//! Where the repository and its fixtures are, found relative to this crate: the
//! captured sysfs snapshots live in `shared/fixtures/sysfs`, where `shared/` is
//! the repository's sibling folder (`<repo>/../shared`, as in CI), or wherever
//! `MARU_SHARED_DIR` points.

use std::path::{Path, PathBuf};

/// The environment variable that names the `shared/` folder.
pub const SHARED_DIR_ENV: &str = "MARU_SHARED_DIR";

/// The repository's root (the workspace folder).
pub fn repo_root() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir
        .parent()
        .expect("maru-testkit lives in the workspace folder")
        .to_path_buf()
}

/// The `shared/` folder: `$MARU_SHARED_DIR`, else `shared/` beside the repository.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os(SHARED_DIR_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => repo_root().join("../shared"),
    }
}

/// The folder of the captured sysfs snapshots (`<profile>/<snapshot>.tar.gz`).
pub fn sysfs_dir() -> PathBuf {
    shared_dir().join("fixtures/sysfs")
}

/// The tarball of snapshot `name` (`profile/snapshot`, without `.tar.gz`), if it is there.
pub fn snapshot_tarball(name: &str) -> Option<PathBuf> {
    Some(sysfs_dir().join(format!("{name}.tar.gz"))).filter(|p| p.is_file())
}

/// The message for a fixture that is not where it should be.
pub fn missing(what: &Path) -> String {
    format!(
        "fixture {} not found: the tests need shared/ beside the repository ({}), \
         or {SHARED_DIR_ENV} pointing at the shared/ folder",
        what.display(),
        repo_root().join("../shared").display()
    )
}

/// Extracts `tarball` (with the system `tar`, symbolic links kept) into a fresh
/// temporary directory.
pub fn extract_tarball(tarball: &Path) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let ok = std::process::Command::new("tar")
        .arg("xzf")
        .arg(tarball)
        .arg("-C")
        .arg(tmp.path())
        .status()
        .expect("run tar");
    assert!(ok.success(), "cannot extract {}", tarball.display());
    tmp
}

/// Extracts snapshot `name` (`profile/snapshot`, without `.tar.gz`); the tree
/// standing for `/sys` is `root/sys` in the returned directory. Panics with where
/// it looked when the snapshot is missing.
pub fn extract_snapshot(name: &str) -> tempfile::TempDir {
    let tarball = sysfs_dir().join(format!("{name}.tar.gz"));
    assert!(tarball.is_file(), "{}", missing(&tarball));
    extract_tarball(&tarball)
}

/// Every `<profile>/<snapshot>.tar.gz` under [`sysfs_dir`], sorted; panics clearly
/// when there are none.
pub fn snapshots() -> Vec<PathBuf> {
    let dir = sysfs_dir();
    let profiles =
        std::fs::read_dir(&dir).unwrap_or_else(|err| panic!("{} ({err})", missing(&dir)));
    let mut tarballs = Vec::new();
    for profile in profiles {
        let profile = profile.expect("list the sysfs fixtures").path();
        if !profile.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(&profile).expect("list a fixture profile") {
            let path = entry.expect("list a fixture profile").path();
            if path.to_string_lossy().ends_with(".tar.gz") {
                tarballs.push(path);
            }
        }
    }
    tarballs.sort();
    assert!(
        !tarballs.is_empty(),
        "no snapshot tarball under {}",
        dir.display()
    );
    tarballs
}

/// `qemu10.0-linux6.12-ram/1-ram-region-kmem-online` for a tarball path.
pub fn snapshot_name(tarball: &Path) -> String {
    let file_name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let profile = tarball.parent().map(file_name).unwrap_or_default();
    let name = file_name(tarball);
    format!("{profile}/{}", name.trim_end_matches(".tar.gz"))
}

/// An extracted snapshot: `root` holds `sys/` and `cmd/`; removed on drop.
pub struct Snapshot {
    _dir: tempfile::TempDir,
    /// The snapshot's `root/` folder.
    pub root: PathBuf,
}

impl Snapshot {
    /// The folder that stands for `/sys`.
    pub fn sys(&self) -> PathBuf {
        self.root.join("sys")
    }
}

/// Extracts `tarball` into a fresh temporary directory.
pub fn extract(tarball: &Path) -> Snapshot {
    let dir = extract_tarball(tarball);
    let root = dir.path().join("root");
    assert!(
        root.join("sys").is_dir(),
        "{} has no root/sys",
        tarball.display()
    );
    Snapshot { _dir: dir, root }
}

/// Extracts the snapshot whose name ends with `suffix` (e.g. `1-ram-region-kmem-online`).
pub fn extract_named(suffix: &str) -> Snapshot {
    let tarball = snapshots()
        .into_iter()
        .find(|t| snapshot_name(t).ends_with(suffix))
        .unwrap_or_else(|| panic!("no snapshot named *{suffix} in the fixtures"));
    extract(&tarball)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_root_holds_the_workspace_manifest() {
        let manifest = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"), "{manifest}");
    }

    #[test]
    fn shared_is_the_repositorys_sibling() {
        if std::env::var_os(SHARED_DIR_ENV).is_none() {
            assert_eq!(shared_dir(), repo_root().join("../shared"));
        }
        assert!(sysfs_dir().ends_with("fixtures/sysfs"));
    }

    #[test]
    fn a_snapshot_is_named_by_profile_and_file() {
        let t = Path::new("/x/fixtures/sysfs/qemu10.0-linux6.12-ram/2-ram-region-devdax.tar.gz");
        assert_eq!(
            snapshot_name(t),
            "qemu10.0-linux6.12-ram/2-ram-region-devdax"
        );
    }
}
