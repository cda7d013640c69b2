//! The control socket: a unix stream socket in the runtime directory, mode 0666. A client
//! sends one JSON request line and reads one JSON reply line (see docs/daemon.md). Who may
//! ask what is decided per connection from the peer's credentials (SO_PEERCRED): root may
//! send every request; anyone else only `status`, which then shows only the pools they may
//! use (see [`Peer::sees`]).

use super::events::{DeviceEvent, Event};
use crate::exit::{Code, WithCode};
use crate::status::StatusReport;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// File name of the socket inside the runtime directory.
pub const SOCKET: &str = "control.sock";

/// Where the control socket of a runtime directory is.
pub fn socket_path(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join(SOCKET)
}

/// A request to the daemon.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    /// Pools, counters, capabilities.
    Status,
    /// Re-read the config (what SIGHUP does).
    Reload,
    /// Unmount and exit (what SIGTERM does).
    Stop,
    /// Feed a device event through the hotplug path (only with `run --allow-inject`).
    Inject {
        /// The event.
        event: DeviceEvent,
    },
}

/// The daemon's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "kebab-case")]
pub enum Reply {
    /// The status report.
    Status(StatusReport),
    /// The request was carried out; what happened.
    Done {
        /// Messages for the operator.
        messages: Vec<String>,
        /// 0 when it worked; else the exit status the CLI reports (see [`crate::exit`]):
        /// a reload whose config was refused is 2, one the host refused is 3.
        #[serde(default)]
        exit_code: u8,
    },
    /// The request was refused or failed.
    Error {
        /// Why.
        message: String,
    },
}

/// Whether a daemon answers on the control socket of `runtime_dir`.
pub fn answers(runtime_dir: &Path) -> bool {
    UnixStream::connect(socket_path(runtime_dir)).is_ok()
}

/// Binds the socket with mode 0600, replacing a socket file a dead daemon left: the caller
/// holds the runtime directory's lock ([`super::lock`]), so no live daemon serves it.
pub fn bind(runtime_dir: &Path) -> anyhow::Result<UnixListener> {
    let path = socket_path(runtime_dir);
    match std::fs::remove_file(&path) {
        Ok(()) => log::info!("removed the stale control socket {}", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(anyhow::Error::new(e))
                .with_context(|| format!("cannot remove the stale socket {}", path.display()))
        }
    }
    let listener = UnixListener::bind(&path)
        .with_context(|| format!("cannot bind the control socket {}", path.display()))?;
    // Everyone may connect; what each may ask is decided from the peer's credentials.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))
        .with_context(|| format!("cannot set mode 0666 on {}", path.display()))?;
    Ok(listener)
}

/// Who is on the other end of a control connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its user id.
    pub uid: u32,
    /// Its primary and supplementary group ids.
    pub gids: Vec<u32>,
}

impl Peer {
    /// Root: may send every request and sees every pool.
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// Whether the peer may see a pool owned by `uid`:`gid` with permission bits `mode`:
    /// root, the pool's owner, a member of its group, or anyone when the pool grants
    /// others access (`mode & 0o007`, e.g. the default 1777).
    pub fn sees(&self, uid: u32, gid: u32, mode: u32) -> bool {
        self.is_root() || self.uid == uid || self.gids.contains(&gid) || mode & 0o007 != 0
    }

    /// The credentials of the process connected to `conn` (SO_PEERCRED), with its
    /// supplementary groups from /proc/PID/status (only the primary group if that is gone).
    pub fn of(conn: &UnixStream) -> anyhow::Result<Peer> {
        let cred = crate::sys::peer_cred(conn)
            .context("cannot read the control client's credentials (SO_PEERCRED)")?;
        let mut gids = vec![cred.gid];
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", cred.pid)) {
            if let Some(line) = status.lines().find(|l| l.starts_with("Groups:")) {
                gids.extend(
                    line.split_whitespace()
                        .skip(1)
                        .filter_map(|g| g.parse::<u32>().ok()),
                );
            }
        }
        Ok(Peer {
            uid: cred.uid,
            gids,
        })
    }
}

/// At most this many clients are served at once; more are answered with an error at once.
pub const MAX_CLIENTS: usize = 32;
/// A client has this long, in total, to send its request line.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(3);
/// The longest request line accepted.
pub const MAX_REQUEST: usize = 64 << 10;
/// A client that does not read its reply within this time is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves the socket: each connection gets its own thread (at most [`MAX_CLIENTS`] at once),
/// so an idle or slow client never delays another; its request becomes an
/// [`Event::Request`] and the reply comes back from the main loop.
pub fn serve(listener: UnixListener, events: Sender<Event>) {
    let active = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let conn = match conn {
            Ok(conn) => conn,
            Err(e) => {
                // EMFILE and the like: do not spin; the next accept may succeed.
                log::warn!("control socket: accept failed ({e}); retrying in 100 ms");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
            active.fetch_sub(1, Ordering::SeqCst);
            let reply = Reply::Error {
                message: format!(
                    "too many control connections at once (at most {MAX_CLIENTS}); try again"
                ),
            };
            let _ = conn.set_write_timeout(Some(Duration::from_millis(100)));
            let _ = send(&conn, &reply);
            continue;
        }
        let slot = Slot(active.clone());
        let events = events.clone();
        let spawned = std::thread::Builder::new()
            .name("maru-devd-client".into())
            .spawn(move || {
                let _slot = slot;
                if let Err(e) = handle(conn, &events) {
                    log::debug!("control socket: {e:#}");
                }
            });
        if let Err(e) = spawned {
            // The closure (and its slot) is dropped with the error.
            log::warn!("control socket: cannot start a client thread ({e}); dropping the client");
        }
    }
}

/// One client's place among the [`MAX_CLIENTS`]; freed on drop.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Reads one request line: at most [`MAX_REQUEST`] bytes, all within [`REQUEST_DEADLINE`]
/// (a client trickling a byte now and then does not get more time).
fn read_request(mut conn: &UnixStream) -> anyhow::Result<String> {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            anyhow::bail!(
                "client sent no complete request line within {} s; dropped",
                REQUEST_DEADLINE.as_secs()
            );
        }
        conn.set_read_timeout(Some(left))?;
        let n = match conn.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) => return Err(e.into()),
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.iter().position(|&b| b == b'\n') {
            buf.truncate(end);
            break;
        }
        if buf.len() > MAX_REQUEST {
            anyhow::bail!("request longer than {MAX_REQUEST} bytes; dropped");
        }
    }
    String::from_utf8(buf).context("the request is not UTF-8")
}

fn send(mut conn: &UnixStream, reply: &Reply) -> anyhow::Result<()> {
    let mut out = serde_json::to_string(reply)?;
    out.push('\n');
    conn.write_all(out.as_bytes())?;
    Ok(())
}

pub(crate) fn handle(conn: UnixStream, events: &Sender<Event>) -> anyhow::Result<()> {
    conn.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let peer = Peer::of(&conn)?;
    let reply = match read_request(&conn) {
        Err(e) => Reply::Error {
            message: format!("{e:#}"),
        },
        Ok(line) => match serde_json::from_str::<Request>(&line) {
            Ok(req) if !peer.is_root() && !matches!(req, Request::Status) => Reply::Error {
                message: format!(
                    "permission denied: this request needs root (uid {} may ask for `status` only, which shows the pools it may use)",
                    peer.uid
                ),
            },
            Ok(req) => {
                let (tx, rx) = channel();
                events
                    .send(Event::Request(req, peer, tx))
                    .context("daemon is shutting down")?;
                rx.recv().context("daemon is shutting down")?
            }
            Err(e) => Reply::Error {
                message: format!("bad request `{}`: {e}", line.trim()),
            },
        },
    };
    send(&conn, &reply)
}

/// Sends one request to the daemon of `runtime_dir` and returns its reply.
pub fn request(runtime_dir: &Path, req: &Request) -> anyhow::Result<Reply> {
    let path = socket_path(runtime_dir);
    let conn = UnixStream::connect(&path)
        .with_context(|| {
            format!(
                "no maru-devd answers on {} (is it running? start it with `maru-devd run`; is --runtime-dir right?)",
                path.display()
            )
        })
        .code(Code::Environment)?;
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut line = serde_json::to_string(req)?;
    line.push('\n');
    (&conn).write_all(line.as_bytes())?;
    let mut answer = String::new();
    BufReader::new(&conn).read_line(&mut answer)?;
    serde_json::from_str(&answer)
        .with_context(|| format!("bad reply from maru-devd: {}", answer.trim()))
}
