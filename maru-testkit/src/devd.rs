//! A `maru-devd` daemon in a private world for the daemon tests: config, runtime
//! dir and mount point under one temporary directory; starting, signalling and
//! stopping the daemon; the chunk writer and reader scripts.

use std::ffi::OsStr;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::wait::{poll, TIMEOUT};

/// The `maru-devd` binary a test crate runs: only that crate knows its path
/// (`env!("CARGO_BIN_EXE_maru-devd")`), so it names it once through this trait.
pub trait Binary {
    /// The path of the binary.
    const PATH: &'static str;
}

/// A test's private world: config, runtime dir and mount point under one temp dir.
pub struct World<B: Binary> {
    /// Holds everything; removed on drop (after the mounts are gone).
    pub tmp: tempfile::TempDir,
    /// The config file.
    pub config: PathBuf,
    /// The runtime dir (control socket, pool tmpfs mounts).
    pub run: PathBuf,
    /// The mount point.
    pub mnt: PathBuf,
    binary: PhantomData<B>,
}

impl<B: Binary> World<B> {
    /// A world whose config is `pools_yaml` (the `pools:` list) with the mount in the temp dir.
    pub fn new(pools_yaml: &str) -> World<B> {
        let tmp = tempfile::Builder::new()
            .prefix("maru-devd-test")
            .tempdir()
            .expect("a temporary directory");
        // The unprivileged test user must be able to reach the mount point.
        std::fs::set_permissions(
            tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod the world's directory");
        let mnt = tmp.path().join("mnt");
        let run = tmp.path().join("run");
        let config = tmp.path().join("maru.yaml");
        std::fs::write(
            &config,
            format!("mount: {}\npools:\n{pools_yaml}", mnt.display()),
        )
        .expect("write the config");
        World {
            tmp,
            config,
            run,
            mnt,
            binary: PhantomData,
        }
    }

    /// Rewrites the config's pools.
    pub fn set_pools(&self, pools_yaml: &str) {
        std::fs::write(
            &self.config,
            format!("mount: {}\npools:\n{pools_yaml}", self.mnt.display()),
        )
        .expect("rewrite the config");
    }

    /// Starts `maru-devd run` on the config and waits until it answers status.
    pub fn start(&self) -> Daemon {
        self.spawn(&[]).serving(self)
    }

    /// Starts `maru-devd run --allow-inject --config <config>` with `extra` arguments, and
    /// does not wait: see [`Daemon::serving`] and [`Daemon::exit`].
    pub fn spawn(&self, extra: &[&OsStr]) -> Daemon {
        self.spawn_with(&[], extra, &[])
    }

    /// [`World::spawn`] with extra environment variables (e.g. another host identity).
    pub fn spawn_env(&self, extra: &[&OsStr], env: &[(&str, &str)]) -> Daemon {
        self.spawn_with(&[], extra, env)
    }

    /// As [`World::spawn`], run through the command `wrapper` (e.g. `prlimit --nofile=...
    /// --`), which must exec maru-devd in its own process.
    pub fn spawn_under(&self, wrapper: &[&str], extra: &[&OsStr]) -> Daemon {
        self.spawn_with(wrapper, extra, &[])
    }

    /// Starts maru-devd through `wrapper` (may be empty) with `extra` arguments and `env`.
    pub fn spawn_with(&self, wrapper: &[&str], extra: &[&OsStr], env: &[(&str, &str)]) -> Daemon {
        let log = self.tmp.path().join(format!(
            "daemon-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("the clock is past 1970")
                .as_nanos()
        ));
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(B::PATH);
                c
            }
            None => Command::new(B::PATH),
        };
        let child = cmd
            .args(["run", "--allow-inject", "--config"])
            .arg(&self.config)
            .args(extra)
            .env("MARU_RUNTIME_DIR", &self.run)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create the daemon log"))
            .spawn()
            .expect("start maru-devd");
        Daemon { child, log }
    }

    /// `maru-devd status --json` as JSON, if the daemon answers.
    pub fn status_json(&self) -> Option<serde_json::Value> {
        let out = self.devd(&["status", "--json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).expect("status --json prints JSON"))
    }

    /// Runs a maru-devd command against this world's runtime dir.
    pub fn devd(&self, args: &[&str]) -> Output {
        Command::new(B::PATH)
            .args(args)
            .env("MARU_RUNTIME_DIR", &self.run)
            .output()
            .expect("run maru-devd")
    }

    /// Sends one raw JSON request line to the control socket and returns the reply.
    pub fn request(&self, json: &str) -> serde_json::Value {
        use std::io::{BufRead, BufReader, Write};
        let sock = self.run.join("control.sock");
        let mut s = std::os::unix::net::UnixStream::connect(&sock)
            .unwrap_or_else(|e| panic!("connect {}: {e}", sock.display()));
        s.write_all(json.as_bytes()).expect("send the request");
        s.write_all(b"\n").expect("send the request");
        let mut line = String::new();
        BufReader::new(&s)
            .read_line(&mut line)
            .expect("read the reply");
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the reply is not JSON ({e}): {line}"))
    }

    /// Whether something is mounted at the mount point.
    pub fn mounted(&self) -> bool {
        is_mountpoint(&self.mnt)
    }
}

impl<B: Binary> Drop for World<B> {
    fn drop(&mut self) {
        // Tests leave the pool tmpfs mounts behind on purpose (restart adoption); free them.
        for dir in [self.mnt.clone()].into_iter().chain(
            std::fs::read_dir(self.run.join("pools"))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path()),
        ) {
            while is_mountpoint(&dir) {
                if nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH).is_err() {
                    break;
                }
            }
        }
    }
}

/// Whether `path` is a mount point (per /proc/self/mountinfo).
pub fn is_mountpoint(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("read /proc/self/mountinfo");
    let want = path.to_string_lossy();
    info.lines().any(|l| l.split(' ').nth(4) == Some(&*want))
}

/// A running daemon.
pub struct Daemon {
    /// The process.
    pub child: Child,
    /// Its stderr.
    pub log: PathBuf,
}

impl Daemon {
    /// Its pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// What it logged.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig)
            .unwrap_or_else(|e| panic!("send {sig} to maru-devd: {e}"));
    }

    /// Waits until the daemon of `w` answers status; panics with its log if it exits first.
    pub fn serving<B: Binary>(mut self, w: &World<B>) -> Daemon {
        let answered = poll(TIMEOUT, "maru-devd to answer status", || {
            if let Some(st) = self.child.try_wait().expect("wait for maru-devd") {
                return Some(Err(st));
            }
            w.status_json().map(|_| Ok(()))
        });
        match answered {
            Ok(Ok(())) => self,
            Ok(Err(st)) => panic!("maru-devd exited ({st}) during start:\n{}", self.log_text()),
            Err(e) => panic!("{e}:\n{}", self.log_text()),
        }
    }

    /// Waits for an exit that must come by itself (a refused start): whether it exited
    /// with 0, and its log.
    pub fn exit(mut self) -> (bool, String) {
        let ok = self.wait();
        (ok, self.log_text())
    }

    /// Waits for the process to exit (at most 30 s) and returns whether it exited with 0.
    pub fn wait(&mut self) -> bool {
        let exited = poll(TIMEOUT, "maru-devd to exit", || {
            self.child.try_wait().expect("wait for maru-devd")
        });
        match exited {
            Ok(st) => st.success(),
            Err(e) => panic!("{e}:\n{}", self.log_text()),
        }
    }

    /// SIGTERM and wait; true when it exited cleanly.
    pub fn stop(mut self) -> bool {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let ok = self.wait();
        std::mem::forget(self);
        ok
    }

    /// SIGKILL and reap.
    pub fn kill9(mut self) {
        self.signal(nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
        std::mem::forget(self);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Python script that writes a chunk of `n` bytes (a pattern derived from the key) through
/// mmap, publishes it under `key` and prints its sha256.
pub const WRITER: &str = r#"
import hashlib, mmap, os, sys
d, key, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
st = os.path.join(d, ".stage-%d" % os.getpid())
fd = os.open(st, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
os.ftruncate(fd, n)
m = mmap.mmap(fd, n)
data = (key.encode() * (n // len(key) + 1))[:n]
m[:] = data
# publish while the staging file is still open: a staging file whose last handle goes
# unpublished is reclaimed
os.rename(st, os.path.join(d, key))
m.close()
os.close(fd)
print(hashlib.sha256(data).hexdigest())
"#;

/// Python script that maps a chunk read-only and prints its sha256.
pub const READER: &str = r#"
import hashlib, mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
m = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
print(hashlib.sha256(m[:]).hexdigest())
"#;

/// Runs a python script (as `user` uid:gid when given), returning trimmed stdout,
/// or stderr when it fails.
pub fn python(script: &str, args: &[&str], user: Option<u32>) -> Result<String, String> {
    let out = crate::user::command_as("/usr/bin/python3", user)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run /usr/bin/python3");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
