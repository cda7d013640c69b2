//! Test fixtures: a pool on a real maru-fs mount, or on a plain tmpfs directory
//! (same POSIX contract minus the fs's own policies), and a way to run test code
//! in a child process (optionally as an unprivileged user). The plumbing every
//! crate shares (root gate, polling, pagemap) is `maru-testkit`'s.

#![allow(dead_code, unused_imports)] // each test binary uses a different part of this module

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use maru_testkit::user::NOBODY;
use maru_testkit::wait::TIMEOUT;

pub use maru_testkit::pagemap::pfn;

/// Calls `f` until it returns `Some`, for up to `maru_testkit::wait::TIMEOUT`
/// (what the kernel does asynchronously: FUSE RELEASE after the last close, a
/// backing file deleted after the last mapping).
pub fn poll<T>(f: impl FnMut() -> Option<T>) -> Option<T> {
    maru_testkit::wait::poll(TIMEOUT, "a condition", f).ok()
}

/// Whether the running test can run here: true as root with /dev/fuse (it mounts
/// maru-fs, reads pagemap or switches users); otherwise it fails unless
/// `MARU_TEST_SKIP_ROOT=1` asks to skip it (see `maru_testkit::need::root`).
pub fn root() -> bool {
    maru_testkit::need::root()
}

/// Which kind of pool a fixture gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory under /dev/shm.
    Shm,
    /// A pool of a maru-fs mount backed by a directory under /dev/shm.
    MaruFs,
}

/// A pool for one test; unmounted and deleted on drop.
pub struct Fixture {
    pub kind: Kind,
    /// The pool directory libmaru opens.
    pub pool: PathBuf,
    /// Where the chunk files really live (the backing directory for maru-fs).
    pub backing: PathBuf,
    mounted: Option<maru_fs::Mounted>,
    /// A copy of the test binary that uid 65534 can execute (see [`run_child`]).
    exe_copy: std::sync::OnceLock<PathBuf>,
    _tmp: tempfile::TempDir,
}

impl Fixture {
    /// The pool's hits (published chunks found by name: lookups through the
    /// mount and chunks lent by the lending socket) as maru-fs counts them;
    /// `None` for a plain directory.
    pub fn hits(&self) -> Option<u64> {
        let m = self.mounted.as_ref()?;
        m.control().stats().first().map(|s| s.hits)
    }

    /// The maru-fs mount's lending socket (`None` for a plain directory).
    pub fn lend_socket(&self) -> Option<PathBuf> {
        self.mounted.as_ref()?;
        Some(self._tmp.path().join("lend.sock"))
    }

    /// A pool whose directory has permission bits `mode`, owned by root.
    pub fn new(kind: Kind, mode: u32) -> Fixture {
        Self::with_limits(kind, mode, 1 << 30, None)
    }

    /// Like [`Fixture::new`], with a maru-fs pool of `capacity` bytes and an
    /// optional largest chunk size (ignored for plain directories).
    pub fn with_limits(kind: Kind, mode: u32, capacity: u64, max_chunk: Option<u64>) -> Fixture {
        let tmp = tempfile::Builder::new()
            .prefix("libmaru-test-")
            .tempdir_in("/dev/shm")
            .unwrap();
        // Let an unprivileged user reach the pool through the temp dir.
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        match kind {
            Kind::Shm => {
                let pool = tmp.path().join("pool");
                std::fs::create_dir(&pool).unwrap();
                std::fs::set_permissions(&pool, std::fs::Permissions::from_mode(mode)).unwrap();
                Fixture {
                    kind,
                    backing: pool.clone(),
                    pool,
                    mounted: None,
                    exe_copy: std::sync::OnceLock::new(),
                    _tmp: tmp,
                }
            }
            Kind::MaruFs => {
                let backing = tmp.path().join("backing");
                let mnt = tmp.path().join("mnt");
                std::fs::create_dir(&backing).unwrap();
                std::fs::create_dir(&mnt).unwrap();
                let cfg = maru_fs::PoolConfig {
                    max_chunk_size: max_chunk,
                    mode,
                    ..maru_fs::PoolConfig::new(
                        "pool",
                        maru_fs::Backing::Dir(backing.clone()),
                        capacity,
                    )
                };
                let opts = maru_fs::MountOptions {
                    lend_socket: Some(tmp.path().join("lend.sock")),
                    ..maru_fs::MountOptions::new(&mnt)
                };
                let mounted = maru_fs::mount(&opts, vec![cfg])
                    .unwrap_or_else(|e| panic!("mounting maru-fs on {}: {e}", mnt.display()));
                Fixture {
                    kind,
                    pool: mnt.join("pool"),
                    backing,
                    mounted: Some(mounted),
                    exe_copy: std::sync::OnceLock::new(),
                    _tmp: tmp,
                }
            }
        }
    }

    /// The test binary, copied into this fixture's world-readable temporary
    /// directory: the build directory may not be reachable by uid 65534.
    fn exe_for_nobody(&self) -> PathBuf {
        self.exe_copy
            .get_or_init(|| {
                let dst = self._tmp.path().join("test-exe");
                std::fs::copy(std::env::current_exe().unwrap(), &dst).unwrap();
                std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).unwrap();
                dst
            })
            .clone()
    }

    /// Waits (up to `maru_testkit::wait::TIMEOUT`) until the backing directory's names satisfy `ok`,
    /// and returns them (the last listing if they never do): maru-fs deletes a
    /// backing file only once its last descriptor and mapping are gone, which
    /// the kernel reports asynchronously.
    pub fn wait_backing(&self, ok: impl Fn(&[String]) -> bool) -> Vec<String> {
        poll(|| Some(self.backing_names()).filter(|n| ok(n)))
            .unwrap_or_else(|| self.backing_names())
    }

    /// Names in the backing directory (staging files included; maru-fs's
    /// membership index file excluded).
    pub fn backing_names(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.backing)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != maru_fs::index::INDEX_NAME)
            .collect();
        v.sort();
        v
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(m) = self.mounted.take() {
            let _ = m.unmount();
        }
    }
}

/// Every kind of pool the tests run against; `LIBMARU_TEST_ONLY=shm` or
/// `=maru-fs` narrows it down while debugging one side. Both need root (a mount,
/// pagemap): none when the running test is skipped (see [`root`]).
pub fn kinds() -> Vec<Kind> {
    if !root() {
        return Vec::new();
    }
    match std::env::var("LIBMARU_TEST_ONLY").as_deref() {
        Ok("shm") => vec![Kind::Shm],
        Ok("maru-fs") => vec![Kind::MaruFs],
        _ => vec![Kind::Shm, Kind::MaruFs],
    }
}

/// Environment variable naming the child action (see [`run_child`]).
pub const CHILD_ENV: &str = "LIBMARU_TEST_CHILD";

/// Runs the test binary's `child` test in a new process on the fixture's pool
/// with `action` and `key` in its environment, optionally as uid/gid 65534
/// (nobody) through setpriv. Returns the child's `RESULT ...` line (without the
/// prefix).
pub fn run_child(action: &str, fx: &Fixture, key: &[u8], unprivileged: bool) -> String {
    let pool = &fx.pool;
    let mut cmd = if unprivileged {
        maru_testkit::user::command_as(fx.exe_for_nobody(), Some(NOBODY))
    } else {
        maru_testkit::user::command_as(std::env::current_exe().unwrap(), None)
    };
    cmd.args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, action)
        .env("LIBMARU_TEST_POOL", pool)
        .env("LIBMARU_TEST_KEY", hex(key));
    let out = cmd.output().expect("spawning the child test process");
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.split_once("RESULT ").map(|(_, r)| r))
        .map(str::to_string)
        .unwrap_or_else(|| {
            panic!(
                "child {action} printed no RESULT line; status {}, stdout:\n{stdout}\nstderr:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

/// Lower-case hex of bytes.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Bytes from lower-case hex.
pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Fills a chunk with the deterministic pattern of `seed` (`maru_fs::pattern`,
/// the bytes maru-fs-probe writes).
pub fn fill(buf: &mut [u8], seed: u8) {
    maru_fs::pattern::fill(buf, seed.into());
}

/// Checks a buffer holds the pattern of `seed`.
pub fn check(buf: &[u8], seed: u8) -> bool {
    maru_fs::pattern::check(buf, seed.into())
}
