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

/// A free TCP port on loopback (for an etcd or a metrics endpoint of a test).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Lower-case hex of bytes.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Writes and publishes `bytes` as `key` in `pool` through the mount: Ok, or the
/// errno of the step that failed (the staging file is removed if the publish failed).
pub fn publish(pool: &Path, key: &str, bytes: &[u8]) -> Result<(), i32> {
    use std::io::Write;
    let errno = |e: std::io::Error| e.raw_os_error().unwrap_or(0);
    let stage = pool.join(format!(".stage-{key}-{}", std::process::id()));
    let mut f = std::fs::File::create_new(&stage).map_err(errno)?;
    f.write_all(bytes).map_err(errno)?;
    let r = std::fs::rename(&stage, pool.join(key)).map_err(errno);
    if r.is_err() {
        let _ = std::fs::remove_file(&stage);
    }
    r
}

/// `len` bytes that say which key and host wrote them.
pub fn data(key: &str, host: &str, len: usize) -> Vec<u8> {
    let seed = format!("{key}@{host};");
    seed.bytes().cycle().take(len).collect()
}
