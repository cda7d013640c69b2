//! Helpers for the daemon tests: `maru_testkit::devd` (a daemon in a temp dir: config,
//! runtime dir, mount point; signals, status; the chunk writer/reader scripts) bound to this
//! package's `maru-devd`, the root gate and polling. Needs `mod fixtures;` beside it.

// Each test binary includes this module and uses a different subset of it.
#![allow(dead_code, unused_imports)]

use maru_testkit::wait::TIMEOUT;

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
