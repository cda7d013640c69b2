//! Shared fixture for maru-fs's integration tests: a real FUSE mount backed by
//! directories on /dev/shm, plus helpers to run the `maru-fs-probe` client. The
//! plumbing every crate shares (root gate, polling, pagemap) is `maru-testkit`'s.
#![allow(dead_code, unused_imports)] // each test binary uses a different part

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

pub mod books;
pub use maru_testkit::pagemap;

use maru_fs::{Backing, Control, MountOptions, Mounted, PoolConfig, PoolStats};
use maru_testkit::user::NOBODY;
use tempfile::TempDir;

pub const MIB: u64 = 1 << 20;

/// A mounted maru-fs with its own mount point and backing directories.
pub struct Fixture {
    pub mounted: Option<Mounted>,
    pub control: Control,
    pub mnt: TempDir,
    pub backing_root: TempDir,
}

/// True when the running test is skipped (they mount a real FUSE filesystem):
/// not root and `MARU_TEST_SKIP_ROOT=1`; without root it fails unless skipping
/// was asked for (see `maru_testkit::need::root`).
pub fn skip_unless_root() -> bool {
    !maru_testkit::need::root()
}

/// A pool config with sane test defaults, backed by `dir`.
pub fn pool(name: &str, dir: &Path, capacity: u64) -> PoolConfig {
    PoolConfig {
        node: Some(0),
        ..PoolConfig::new(name, Backing::Dir(dir.to_path_buf()), capacity)
    }
}

impl Fixture {
    /// Mounts pools built by `make` (given each pool's fresh backing dir).
    pub fn new(pools: &[(&str, u64)], tweak: impl Fn(&mut PoolConfig)) -> Fixture {
        let backing_root = tempfile::Builder::new()
            .prefix("maru-fs-test-")
            .tempdir_in("/dev/shm")
            .expect("backing root on /dev/shm");
        let cfgs = pools
            .iter()
            .map(|(name, cap)| {
                let dir = backing_root.path().join(name);
                std::fs::create_dir(&dir).expect("backing dir");
                let mut cfg = pool(name, &dir, *cap);
                tweak(&mut cfg);
                cfg
            })
            .collect();
        Self::mount_with(backing_root, cfgs)
    }

    /// Mounts the given pool configs, taking ownership of their backing root.
    pub fn mount_with(backing_root: TempDir, cfgs: Vec<PoolConfig>) -> Fixture {
        Self::mount_with_options(backing_root, cfgs, |_| {})
    }

    /// Like [`Fixture::mount_with`], with the mount options changed by `tweak`.
    pub fn mount_with_options(
        backing_root: TempDir,
        cfgs: Vec<PoolConfig>,
        tweak: impl FnOnce(&mut MountOptions),
    ) -> Fixture {
        let mnt = tempfile::Builder::new()
            .prefix("maru-fs-mnt-")
            .tempdir()
            .expect("mount point");
        let mut opts = MountOptions::new(mnt.path());
        tweak(&mut opts);
        let mounted = maru_fs::mount(&opts, cfgs).expect("mount maru-fs");
        let control = mounted.control();
        Fixture {
            mounted: Some(mounted),
            control,
            mnt,
            backing_root,
        }
    }

    pub fn pool_dir(&self, pool: &str) -> PathBuf {
        self.mnt.path().join(pool)
    }

    pub fn backing_dir(&self, pool: &str) -> PathBuf {
        self.backing_root.path().join(pool)
    }

    pub fn stats(&self, pool: &str) -> PoolStats {
        self.control
            .stats()
            .into_iter()
            .find(|s| s.name == pool)
            .expect("pool stats")
    }

    /// Unmounts, keeping the backing directories.
    pub fn unmount(&mut self) -> TempDir {
        if let Some(m) = self.mounted.take() {
            m.unmount().expect("unmount");
        }
        std::mem::replace(
            &mut self.backing_root,
            tempfile::tempdir_in("/dev/shm").expect("placeholder dir"),
        )
    }
}

/// Polls `cond` until it holds (FUSE releases arrive asynchronously after close).
#[track_caller]
pub fn wait_until(what: &str, cond: impl FnMut() -> bool) {
    maru_testkit::wait::wait_until(maru_testkit::wait::TIMEOUT, what, cond);
}

/// Path of the probe client, copied somewhere every user can execute it.
pub fn probe() -> PathBuf {
    static PROBE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PROBE
        .get_or_init(|| {
            // The build directory may not be reachable for uid 65534: use a shared,
            // world-readable copy (replaced atomically, so parallel test binaries agree).
            let dir = std::env::temp_dir().join("maru-fs-probe");
            std::fs::create_dir_all(&dir).expect("probe dir");
            let meta = std::fs::symlink_metadata(&dir).expect("probe dir");
            assert!(
                meta.is_dir() && std::os::unix::fs::MetadataExt::uid(&meta) == 0,
                "{} must be a directory owned by root; remove it and rerun",
                dir.display()
            );
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            let tmp = dir.join(format!(".maru-fs-probe-{}", std::process::id()));
            std::fs::copy(env!("CARGO_BIN_EXE_maru-fs-probe"), &tmp).expect("copy probe");
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            let dst = dir.join("maru-fs-probe");
            std::fs::rename(&tmp, &dst).expect("install probe");
            dst
        })
        .clone()
}

/// Runs the probe to completion; returns (exit code, `key=value` pairs).
pub fn run_probe(args: &[&str], unprivileged: bool) -> (i32, Vec<(String, String)>) {
    let out = probe_command(args, unprivileged)
        .stdin(Stdio::null())
        .output()
        .expect("run probe");
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.stderr.is_empty() {
        eprintln!(
            "probe {args:?} stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (out.status.code().unwrap_or(-1), parse(&text))
}

fn probe_command(args: &[&str], unprivileged: bool) -> Command {
    probe_command_as(args, unprivileged.then_some(NOBODY))
}

/// The probe with `args`, run as `uid` (and gid `uid`, no groups), or as root.
fn probe_command_as(args: &[&str], uid: Option<u32>) -> Command {
    let mut cmd = maru_testkit::user::command_as(probe(), uid);
    cmd.args(args);
    cmd
}

fn parse(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn get<'a>(kv: &'a [(String, String)], key: &str) -> &'a str {
    kv.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("probe printed no {key}=: {kv:?}"))
}

/// A probe that keeps running (`hold` / `stall`); read lines until `until` appears.
pub struct Held {
    pub child: Child,
    stdin: Option<ChildStdin>,
    pub kv: Vec<(String, String)>,
}

impl Held {
    pub fn start(args: &[&str], unprivileged: bool, until: &str) -> Held {
        Self::start_as(args, unprivileged.then_some(NOBODY), until)
    }

    /// Like [`Held::start`], run as `uid` (`None`: as root).
    pub fn start_as(args: &[&str], uid: Option<u32>, until: &str) -> Held {
        let mut child = probe_command_as(args, uid)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn probe");
        let stdin = child.stdin.take();
        let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
        let mut kv = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader.read_line(&mut line).expect("read probe output");
            assert!(n > 0, "probe {args:?} exited early; output so far: {kv:?}");
            let l = line.trim_end();
            if let Some((k, v)) = l.split_once('=') {
                kv.push((k.to_string(), v.to_string()));
                if k == until {
                    break;
                }
            } else if l == until {
                break;
            }
        }
        Held { child, stdin, kv }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lets the probe finish and waits for it.
    pub fn finish(mut self) {
        if let Some(mut s) = self.stdin.take() {
            let _ = s.write_all(b"\n");
        }
        let status = self.child.wait().expect("wait probe");
        assert!(status.success(), "probe failed: {status}");
    }
}

/// The sum of the first `len` bytes of a chunk the probe wrote with `seed`.
pub fn pattern_sum(seed: u64, len: usize) -> u64 {
    maru_fs::pattern::sum(seed, len)
}

pub fn xattr_get(path: &Path, name: &str) -> std::io::Result<Vec<u8>> {
    let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 4096];
    // SAFETY: NUL-terminated path and name, a buffer of `buf.len()` bytes; the result is checked.
    let r = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(r as usize);
    Ok(buf)
}

pub fn xattr_set(path: &Path, name: &str, value: &[u8]) -> std::io::Result<()> {
    let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    // SAFETY: NUL-terminated path and name, `value` is `value.len()` readable bytes; the result is
    // checked.
    let r = unsafe {
        libc::setxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

pub fn xattr_list(path: &Path) -> Vec<String> {
    let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let mut buf = vec![0u8; 4096];
    // SAFETY: NUL-terminated path, a buffer of `buf.len()` bytes; the result is checked.
    let r = unsafe { libc::listxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(r >= 0, "listxattr: {}", std::io::Error::last_os_error());
    buf.truncate(r as usize);
    buf.split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}
