//! `maru-devd reload` and `maru-devd stop`: ask the running daemon over its control socket
//! and report the outcome (root only: the daemon refuses both to anyone else).

use crate::daemon::control::{request, Reply, Request};
use crate::exit::{coded, Code};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Arguments of `maru-devd reload` and `maru-devd stop`.
#[derive(Debug, clap::Args)]
pub struct ClientArgs {
    /// Runtime directory of the daemon to ask.
    #[arg(long, env = "MARU_RUNTIME_DIR", default_value = crate::RUNTIME_DIR, value_name = "DIR")]
    pub runtime_dir: PathBuf,
}

/// How long `stop` waits for the daemon to exit (systemd's TimeoutStopSec in the unit).
pub const STOP_WAIT: Duration = Duration::from_secs(30);

fn refused(message: String) -> anyhow::Error {
    let code = if message.starts_with("permission denied") {
        Code::Environment
    } else {
        Code::Internal
    };
    coded(code, anyhow::anyhow!("maru-devd refused: {message}"))
}

/// `reload`: prints what the reload changed; a failed reload exits 2 (config refused) or 3
/// (the host refused a change), with the running configuration kept.
pub fn reload(args: &ClientArgs) -> anyhow::Result<()> {
    match request(&args.runtime_dir, &Request::Reload)? {
        Reply::Done {
            messages,
            exit_code: 0,
        } => {
            let mut out = String::new();
            for m in &messages {
                out.push_str(&format!("reload: {m}\n"));
            }
            crate::output::stdout(&out)
        }
        Reply::Done {
            messages,
            exit_code,
        } => {
            let code = match exit_code {
                2 => Code::Usage,
                3 => Code::Environment,
                _ => Code::Internal,
            };
            Err(coded(code, anyhow::anyhow!("{}", messages.join("; "))))
        }
        Reply::Error { message } => Err(refused(message)),
        Reply::Status(_) => Err(anyhow::anyhow!(
            "maru-devd gave an unexpected answer to reload"
        )),
    }
}

/// `stop`: asks the daemon to unmount and exit, then waits (at most [`STOP_WAIT`]) until
/// its lock is free, i.e. the process has ended.
pub fn stop(args: &ClientArgs) -> anyhow::Result<()> {
    let pid = match request(&args.runtime_dir, &Request::Status)? {
        Reply::Status(r) => r.pid,
        Reply::Error { message } => return Err(refused(message)),
        Reply::Done { .. } => anyhow::bail!("maru-devd gave an unexpected answer to status"),
    };
    match request(&args.runtime_dir, &Request::Stop)? {
        Reply::Done { .. } => {}
        Reply::Error { message } => return Err(refused(message)),
        Reply::Status(_) => anyhow::bail!("maru-devd gave an unexpected answer to stop"),
    }
    let deadline = Instant::now() + STOP_WAIT;
    while lock_held(&args.runtime_dir) {
        if Instant::now() >= deadline {
            return Err(coded(
                Code::Environment,
                anyhow::anyhow!(
                    "maru-devd (pid {pid}) was asked to stop but still runs after {} s (chunks still open? see its log)",
                    STOP_WAIT.as_secs()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    crate::output::stdout(&format!("maru-devd (pid {pid}) stopped\n"))
}

/// Whether a daemon still holds the runtime directory's lock (see `daemon::lock`).
fn lock_held(runtime_dir: &Path) -> bool {
    let Ok(file) = std::fs::File::open(runtime_dir.join(crate::daemon::lock::LOCK_FILE)) else {
        return false;
    };
    crate::sys::try_flock(&file, false).is_err()
}
