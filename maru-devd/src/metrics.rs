//! The Prometheus endpoint (`metrics:` in the config): `GET /metrics` in the text
//! exposition format, over loopback TCP and/or a unix socket.
//!
//! A small HTTP/1.1 server on its own threads: one accept thread per listener, one thread
//! per connection, at most [`MAX_CONNECTIONS`] at once (more are answered 503 and closed),
//! a request must arrive within [`READ_TIMEOUT`] and the answer be taken within
//! [`WRITE_TIMEOUT`]. It reads the pools' counters through maru-fs's control handle, never
//! through the daemon's main loop, so a slow scraper cannot delay the daemon.

use crate::config::MetricsSpec;
use crate::exit::{Code, WithCode};
use anyhow::Context;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// At most this many scrapes are served at once.
pub const MAX_CONNECTIONS: usize = 8;
/// A client has this long to send its request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// A client that does not take its answer within this time is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest request head read.
const MAX_HEAD: usize = 8 << 10;

/// What the exposition is made from.
#[derive(Clone)]
pub struct Source {
    /// The pools' counters.
    pub control: maru_fs::Control,
    /// When the daemon started.
    pub started: Instant,
}

/// The bound listeners, before the filesystem (and so the [`Source`]) exists.
pub struct Listeners {
    tcp: Option<TcpListener>,
    unix: Option<(UnixListener, PathBuf)>,
}

/// Binds what `spec` asks for (before privileges are dropped: a port below 1024 needs
/// CAP_NET_BIND_SERVICE). A unix socket file left by an earlier daemon is replaced; any
/// other file there is an error.
pub fn bind(spec: &MetricsSpec) -> anyhow::Result<Listeners> {
    let tcp = match spec.listen {
        None => None,
        Some(addr) => Some(
            TcpListener::bind(addr)
                .with_context(|| format!("metrics: cannot listen on {addr}"))
                .code(Code::Environment)?,
        ),
    };
    let unix = match &spec.socket {
        None => None,
        Some(path) => {
            match std::fs::symlink_metadata(path) {
                Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)
                    .with_context(|| {
                        format!("metrics: cannot remove the old socket {}", path.display())
                    })
                    .code(Code::Environment)?,
                Ok(_) => {
                    return Err(anyhow::anyhow!(
                    "metrics: {} exists and is not a socket; choose another `metrics.socket` path",
                    path.display()
                ))
                    .code(Code::Usage)
                }
                Err(_) => {}
            }
            let l = UnixListener::bind(path)
                .with_context(|| format!("metrics: cannot bind {}", path.display()))
                .code(Code::Environment)?;
            // Anyone on the host may scrape: the numbers are not secret, and the
            // endpoint is read-only.
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
                .with_context(|| format!("metrics: cannot chmod {}", path.display()))
                .code(Code::Environment)?;
            Some((l, path.clone()))
        }
    };
    Ok(Listeners { tcp, unix })
}

impl Listeners {
    /// Where it listens, for the log.
    pub fn describe(&self) -> String {
        let mut v = Vec::new();
        if let Some(l) = &self.tcp {
            if let Ok(a) = l.local_addr() {
                v.push(format!("http://{a}/metrics"));
            }
        }
        if let Some((_, p)) = &self.unix {
            v.push(format!("unix:{}", p.display()));
        }
        v.join(" and ")
    }

    /// Starts the accept threads.
    pub fn serve(self, source: Source) -> anyhow::Result<()> {
        let active = Arc::new(AtomicUsize::new(0));
        if let Some(l) = self.tcp {
            let (source, active) = (source.clone(), active.clone());
            accept_thread(move || {
                let timeouts = |c: &TcpStream| {
                    let _ = c.set_read_timeout(Some(READ_TIMEOUT));
                    let _ = c.set_write_timeout(Some(WRITE_TIMEOUT));
                };
                accept_loop(l.incoming(), timeouts, &source, &active)
            })?;
        }
        if let Some((l, _)) = self.unix {
            accept_thread(move || {
                let timeouts = |c: &UnixStream| {
                    let _ = c.set_read_timeout(Some(READ_TIMEOUT));
                    let _ = c.set_write_timeout(Some(WRITE_TIMEOUT));
                };
                accept_loop(l.incoming(), timeouts, &source, &active)
            })?;
        }
        Ok(())
    }
}

/// After a failed accept (EMFILE...): do not spin.
fn pause(e: &std::io::Error) {
    log::warn!("metrics: accept failed ({e}); retrying in 100 ms");
    std::thread::sleep(Duration::from_millis(100));
}

/// Starts a named thread running one listener's accept loop.
fn accept_thread(run: impl FnOnce() + Send + 'static) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("maru-devd-metrics".into())
        .spawn(run)
        .context("cannot start the metrics thread")?;
    Ok(())
}

/// Accepts connections for ever: each gets its socket timeouts, then is dispatched;
/// a failed accept pauses (see [`pause`]).
fn accept_loop<S: Read + Write + Send + 'static>(
    conns: impl Iterator<Item = std::io::Result<S>>,
    timeouts: impl Fn(&S),
    source: &Source,
    active: &Arc<AtomicUsize>,
) {
    for conn in conns {
        match conn {
            Ok(c) => {
                timeouts(&c);
                dispatch(c, source, active);
            }
            Err(e) => pause(&e),
        }
    }
}

/// Serves one connection on its own thread, or answers 503 when too many are open.
fn dispatch<S: Read + Write + Send + 'static>(
    mut conn: S,
    source: &Source,
    active: &Arc<AtomicUsize>,
) {
    if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
        active.fetch_sub(1, Ordering::SeqCst);
        let _ = respond(
            &mut conn,
            503,
            "Service Unavailable",
            "text/plain",
            "busy\n",
        );
        return;
    }
    let (source, active2) = (source.clone(), active.clone());
    let spawned = std::thread::Builder::new()
        .name("maru-devd-scrape".into())
        .spawn(move || {
            handle(conn, &source);
            active2.fetch_sub(1, Ordering::SeqCst);
        });
    if spawned.is_err() {
        active.fetch_sub(1, Ordering::SeqCst);
    }
}

fn handle<S: Read + Write>(mut conn: S, source: &Source) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
        if head.len() > MAX_HEAD {
            let _ = respond(
                &mut conn,
                431,
                "Request Header Fields Too Large",
                "text/plain",
                "",
            );
            return;
        }
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let _ = match (method, path) {
        ("GET", "/metrics") => respond(
            &mut conn,
            200,
            "OK",
            "text/plain; version=0.0.4; charset=utf-8",
            &render(source),
        ),
        ("GET", _) => respond(&mut conn, 404, "Not Found", "text/plain", "try /metrics\n"),
        _ => respond(
            &mut conn,
            405,
            "Method Not Allowed",
            "text/plain",
            "GET only\n",
        ),
    };
}

fn respond<S: Write>(
    conn: &mut S,
    code: u16,
    reason: &str,
    ctype: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes())?;
    conn.write_all(body.as_bytes())?;
    conn.flush()
}

/// A label value with `\`, `"` and newlines escaped, as the format asks.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition text for the daemon as it is now.
pub fn render(source: &Source) -> String {
    let stats = source.control.stats();
    let mut out = String::new();
    let family = |out: &mut String, name: &str, kind: &str, help: &str, rows: &[(String, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, v) in rows {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let per_pool = |f: &dyn Fn(&maru_fs::PoolStats) -> u64| -> Vec<(String, u64)> {
        stats
            .iter()
            .map(|s| (format!("{{pool=\"{}\"}}", label(&s.name)), f(s)))
            .collect()
    };
    family(
        &mut out,
        "maru_pool_capacity_bytes",
        "gauge",
        "Configured capacity of the pool.",
        &per_pool(&|s| s.capacity),
    );
    family(
        &mut out,
        "maru_pool_used_bytes",
        "gauge",
        "Bytes charged to the pool's chunks (staging, published, and removed but still open).",
        &per_pool(&|s| s.used_bytes),
    );
    family(
        &mut out,
        "maru_pool_pinned_bytes",
        "gauge",
        "Bytes of the pool's chunks that some process has open or mapped (not evictable).",
        &per_pool(&|s| s.pinned_bytes),
    );
    let chunks: Vec<(String, u64)> = stats
        .iter()
        .flat_map(|s| {
            [
                (
                    format!("{{pool=\"{}\",state=\"published\"}}", label(&s.name)),
                    s.published_chunks,
                ),
                (
                    format!("{{pool=\"{}\",state=\"staging\"}}", label(&s.name)),
                    s.staging_chunks,
                ),
            ]
        })
        .collect();
    family(&mut out, "maru_pool_chunks", "gauge", "Chunks in the pool, by state: published (visible under a key) or staging (created, not yet published).", &chunks);
    family(
        &mut out,
        "maru_pool_online",
        "gauge",
        "1 while new chunks may be created in the pool, 0 while it is offline (a device is gone).",
        &per_pool(&|s| u64::from(s.online)),
    );
    family(
        &mut out,
        "maru_pool_creates_total",
        "counter",
        "Staging chunks created in the pool since the mount.",
        &per_pool(&|s| s.creates),
    );
    family(
        &mut out,
        "maru_pool_publishes_total",
        "counter",
        "Chunks published (renamed from staging to a key) since the mount.",
        &per_pool(&|s| s.publishes),
    );
    family(
        &mut out,
        "maru_pool_evictions_total",
        "counter",
        "Published chunks evicted to make room since the mount.",
        &per_pool(&|s| s.evictions),
    );
    family(
        &mut out,
        "maru_pool_removals_total",
        "counter",
        "Chunks removed by clients (unlink through the mount) since the mount.",
        &per_pool(&|s| s.removals),
    );
    let errors: Vec<(String, u64)> = stats
        .iter()
        .flat_map(|s| {
            s.errors.iter().map(|(errno, n)| {
                (
                    format!("{{pool=\"{}\",errno=\"{}\"}}", label(&s.name), label(errno)),
                    *n,
                )
            })
        })
        .collect();
    family(&mut out, "maru_pool_errors_total", "counter", "Requests on the pool or its chunks that maru-fs answered with an error since the mount, by errno (ENOSPC: full with nothing evictable; EEXIST: the key is already published; ...). A series appears with its errno's first error.", &errors);
    family(
        &mut out,
        "maru_pool_quarantined_bytes",
        "gauge",
        "Bytes of this host's removed chunks of a shared pool whose extents wait for the other hosts to let go (0 for other pools).",
        &per_pool(&|s| source.control.quarantined_bytes(&s.name)),
    );
    family(
        &mut out,
        "maru_pool_removals_waiting",
        "gauge",
        "This host's removed chunks of a shared pool waiting for other hosts to let go.",
        &per_pool(&|s| source.control.quarantined(&s.name).len() as u64),
    );
    family(&mut out, "maru_fuse_lookups_total", "counter", "FUSE LOOKUP requests for a name in the pool that reached the daemon; the kernel answers repeated lookups from its own cache, so this is not every lookup clients make.", &per_pool(&|s| s.lookups));
    family(
        &mut out,
        "maru_fuse_lookup_hits_total",
        "counter",
        "FUSE LOOKUP requests that reached the daemon and found a published chunk.",
        &per_pool(&|s| s.hits),
    );
    family(&mut out, "maru_fuse_read_requests_total", "counter", "FUSE READ requests the daemon served for the pool's chunks (0 while zero-copy passthrough works).", &per_pool(&|s| s.read_requests));
    family(&mut out, "maru_fuse_write_requests_total", "counter", "FUSE WRITE requests the daemon served for the pool's chunks (0 while zero-copy passthrough works).", &per_pool(&|s| s.write_requests));
    family(
        &mut out,
        "maru_daemon_uptime_seconds",
        "gauge",
        "Seconds since maru-devd started.",
        &[(String::new(), source.started.elapsed().as_secs())],
    );
    if let Some(n) = open_fds() {
        family(
            &mut out,
            "process_open_fds",
            "gauge",
            "Open file descriptors of maru-devd.",
            &[(String::new(), n)],
        );
    }
    if let Some(n) = rss_bytes() {
        family(
            &mut out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory of maru-devd in bytes.",
            &[(String::new(), n)],
        );
    }
    out
}

/// Entries of /proc/self/fd (the directory's own descriptor included, as the Prometheus
/// client libraries count it).
fn open_fds() -> Option<u64> {
    std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64)
}

/// `VmRSS` of /proc/self/status, in bytes.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
