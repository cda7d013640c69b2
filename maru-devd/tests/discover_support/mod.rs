//! Helpers shared by the discovery tests: finding the captured sysfs snapshots,
//! extracting them, running the real `maru-devd discover`.

// Each test binary includes this module and uses a different subset of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// `shared/` (beside the repository in CI), or `$MARU_SHARED_DIR`.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("MARU_SHARED_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
    }
}

/// Every `fixtures/sysfs/<profile>/<snapshot>.tar.gz`, sorted; fails clearly when there are none.
pub fn snapshots() -> Vec<PathBuf> {
    let dir = shared_dir().join("fixtures/sysfs");
    let profiles = std::fs::read_dir(&dir).unwrap_or_else(|err| {
        panic!(
            "sysfs fixtures not found at {} ({err}): the discovery acceptance tests need \
             shared/fixtures/sysfs beside the repository, or MARU_SHARED_DIR pointing at shared/",
            dir.display()
        )
    });
    let mut tarballs = Vec::new();
    for profile in profiles {
        let profile = profile.unwrap().path();
        if !profile.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(&profile).unwrap() {
            let path = entry.unwrap().path();
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
    let profile = tarball
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy();
    let name = tarball.file_name().unwrap().to_string_lossy();
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

/// Extracts `tarball` (with the system `tar`, symlinks kept) into a fresh temporary directory.
pub fn extract(tarball: &Path) -> Snapshot {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(tarball)
        .arg("-C")
        .arg(dir.path())
        .status()
        .expect("running tar");
    assert!(status.success(), "tar -xzf {} failed", tarball.display());
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

/// Runs the real binary.
pub fn maru_devd(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_maru-devd"))
        .args(args)
        .output()
        .expect("running maru-devd")
}

/// `maru-devd discover [--json] --sysfs-root <sys>`: asserts exit 0, returns stdout.
pub fn discover_ok(sys: &Path, json: bool) -> String {
    let mut args: Vec<&std::ffi::OsStr> = vec!["discover".as_ref()];
    if json {
        args.push("--json".as_ref());
    }
    args.push("--sysfs-root".as_ref());
    args.push(sys.as_os_str());
    let out = maru_devd(&args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "maru-devd discover --sysfs-root {} exited {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        sys.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The JSON model for the tree at `sys`.
pub fn discover_json(sys: &Path) -> Value {
    let stdout = discover_ok(sys, true);
    serde_json::from_str(&stdout)
        .unwrap_or_else(|err| panic!("discover --json printed invalid JSON ({err}):\n{stdout}"))
}

/// The warnings of a model as `path: problem` lines.
pub fn warnings(model: &Value) -> Vec<String> {
    model["warnings"]
        .as_array()
        .expect("warnings is a list")
        .iter()
        .map(|w| {
            format!(
                "{}: {}",
                w["path"].as_str().unwrap(),
                w["problem"].as_str().unwrap()
            )
        })
        .collect()
}
