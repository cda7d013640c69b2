//! Helpers for the daemon tests: `maru_testkit::devd` (a daemon in a temp dir: config,
//! runtime dir, mount point; signals, status; the chunk writer/reader scripts) bound to this
//! package's `maru-devd`, the root gate and polling. Needs `mod fixtures;` beside it.

// Each test binary includes this module and uses a different subset of it.
#![allow(dead_code, unused_imports)]

use maru_testkit::wait::TIMEOUT;
use std::path::Path;
use std::process::Command;

pub use maru_testkit::devd::{is_mountpoint, python, Daemon, READER, WRITER};

/// This package's `maru-devd` binary, for `maru_testkit::devd::World`.
pub struct MaruDevd;

impl maru_testkit::devd::Binary for MaruDevd {
    const PATH: &'static str = env!("CARGO_BIN_EXE_maru-devd");
}

/// A test's private world running this package's `maru-devd`.
pub type World = maru_testkit::devd::World<MaruDevd>;

/// Polls `f` until it gives a value, for up to `maru_testkit::wait::TIMEOUT` (generous for
/// a loaded 2-core machine), with an error naming `what` was awaited.
pub fn poll<T>(what: &str, f: impl FnMut() -> Option<T>) -> Result<T, String> {
    maru_testkit::wait::poll(TIMEOUT, what, f).map_err(|e| e.to_string())
}

/// Whether the running daemon test can run here (it mounts tmpfs and FUSE): as root with
/// /dev/fuse; otherwise it fails unless `MARU_TEST_SKIP_ROOT=1` asks to skip it (see
/// `maru_testkit::need::root`).
pub fn can_run_daemon() -> bool {
    maru_testkit::need::root()
}

/// A `pools:` list item: a numa pool on node 0 of `size`, mode 1777.
pub fn pool(name: &str, size: &str) -> String {
    format!("  - name: {name}\n    source: {{numa: {{node: 0}}}}\n    size: {size}\n    mode: \"1777\"\n")
}

/// Pool `name`'s entry in `maru-devd status --json` (None: status failed or no such pool).
pub fn pool_status(w: &World, name: &str) -> Option<serde_json::Value> {
    let st = w.status_json()?;
    st["pools"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
}

/// `maru-devd cluster ARGS --config CONFIG`: whether it succeeded, and its output
/// (stdout then stderr).
pub fn cluster_cmd(config: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(<MaruDevd as maru_testkit::devd::Binary>::PATH)
        .arg("cluster")
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run maru-devd cluster");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
