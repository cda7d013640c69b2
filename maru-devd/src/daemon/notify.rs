//! systemd's notification protocol (sd_notify(3)): one datagram per state change to
//! `$NOTIFY_SOCKET`, without libsystemd. Outside systemd (no `NOTIFY_SOCKET`) every call
//! does nothing.
//!
//! What the daemon sends: `EXTEND_TIMEOUT_USEC=` before start work that can take long
//! (opening and verifying pools), `READY=1` + `STATUS=` when serving, `RELOADING=1` +
//! `MONOTONIC_USEC=` when a reload starts and `READY=1` + `STATUS=` (its outcome) when it
//! ends (what `Type=notify-reload` waits for), `WATCHDOG=1` every half `WATCHDOG_USEC` from
//! the main loop, and `STOPPING=1` at shutdown.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Sends `state` (one or more `KEY=VALUE` lines) to systemd; does nothing outside systemd.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let path = path.to_string_lossy().into_owned();
    let addr = match path.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        None => SocketAddr::from_pathname(&path),
    };
    let sent = addr.and_then(|addr| {
        let sock = UnixDatagram::unbound()?;
        sock.send_to_addr(state.as_bytes(), &addr)
    });
    if let Err(e) = sent {
        log::warn!("cannot notify systemd through {path}: {e}");
    }
}

/// A `STATUS=` value on one line (newlines would end the field).
pub fn status_line(text: &str) -> String {
    text.replace('\n', " ")
}

/// `CLOCK_MONOTONIC` in microseconds, for `MONOTONIC_USEC=`.
pub fn monotonic_usec() -> u64 {
    use nix::time::{clock_gettime, ClockId};
    let Ok(ts) = clock_gettime(ClockId::CLOCK_MONOTONIC) else {
        return 0;
    };
    u64::try_from(ts.tv_sec()).unwrap_or(0) * 1_000_000
        + u64::try_from(ts.tv_nsec()).unwrap_or(0) / 1000
}

/// Tells systemd a reload starts (`RELOADING=1` with the time, as `Type=notify-reload`
/// requires).
pub fn reloading() {
    notify(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
}

/// Asks systemd for `extra` more time for the start (or stop) in progress.
pub fn extend_timeout(extra: Duration) {
    notify(&format!("EXTEND_TIMEOUT_USEC={}", extra.as_micros()));
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, when it is set and meant for
/// this process (`$WATCHDOG_PID` absent or ours).
pub fn watchdog_interval() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID") {
        if pid.to_str().and_then(|p| p.parse::<u32>().ok()) != Some(std::process::id()) {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}
