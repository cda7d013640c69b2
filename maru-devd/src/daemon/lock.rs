//! The daemon's lock: an exclusive `flock` on `<runtime-dir>/maru-devd.pid`, held for the
//! daemon's whole life and released by the kernel when the process dies, however it dies.
//! Taking it proves that no other daemon serves this runtime directory — unlike asking the
//! FUSE mount, whose attributes the kernel may answer from its cache after a `kill -9`.

use crate::exit::WithCode;
use anyhow::Context;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// File name of the lock (and pid) file inside the runtime directory.
pub const LOCK_FILE: &str = "maru-devd.pid";

/// The held lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct DaemonLock {
    _file: File,
    path: PathBuf,
}

impl DaemonLock {
    /// Where the lock file is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Takes the lock of `runtime_dir` and writes this process's pid into it. Fails, naming the
/// holder's pid, while another daemon holds it.
pub fn acquire(runtime_dir: &Path) -> anyhow::Result<DaemonLock> {
    let path = runtime_dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(&path)
        .with_context(|| format!("cannot open the daemon lock file {}", path.display()))
        .code(crate::exit::Code::Environment)?;
    if let Err(err) = crate::sys::try_flock(&file, true) {
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(anyhow::Error::new(err))
                .with_context(|| format!("cannot lock {}", path.display()))
                .code(crate::exit::Code::Environment);
        }
        let mut pid = String::new();
        let _ = file.read_to_string(&mut pid);
        let pid = pid.trim();
        return Err(crate::exit::coded(crate::exit::Code::AlreadyRunning, anyhow::anyhow!(
            "another maru-devd is running with runtime directory {} (pid {}, it holds the lock {}); stop it first (kill -TERM {}), or give this one its own --runtime-dir",
            runtime_dir.display(),
            if pid.is_empty() { "unknown" } else { pid },
            path.display(),
            if pid.is_empty() { "<pid>" } else { pid },
        )));
    }
    let pid = format!("{}\n", std::process::id());
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(pid.as_bytes()))
        .with_context(|| format!("cannot write the pid into {}", path.display()))?;
    Ok(DaemonLock { _file: file, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let dir = tempfile::tempdir().unwrap();
        let held = acquire(dir.path()).unwrap();
        let text = std::fs::read_to_string(held.path()).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        // flock locks belong to the open file description: a second open conflicts
        let err = acquire(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(held);
        acquire(dir.path()).unwrap();
    }
}
