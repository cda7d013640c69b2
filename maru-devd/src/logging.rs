//! Logging through the `log` facade and `env_logger`: one line per record on stderr.
//!
//! * Filter: `--log-level` (or `-v`, which means `debug`) when given, else `RUST_LOG`
//!   (env_logger's syntax: `debug`, `maru_fs=debug,info`, ...), else `info`.
//! * Format: `maru-devd: LEVEL: message`, the level spelled `error`, `warning`, `info`,
//!   `debug` or `trace`. Under systemd (stderr is the journal stream named by
//!   `$JOURNAL_STREAM`) every line starts with its syslog priority `<N>` so journald files it
//!   at the right priority, and carries no timestamp (journald adds its own); elsewhere
//!   (terminal, log file) every line starts with a UTC timestamp `2025-01-31T12:00:00.123Z`.

use log::{Level, LevelFilter};
use std::io::Write;

/// The level names `--log-level` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warn,
    /// What the daemon does (the default).
    Info,
    /// Details for debugging.
    Debug,
    /// Everything.
    Trace,
}

impl From<LogLevel> for LevelFilter {
    fn from(l: LogLevel) -> LevelFilter {
        match l {
            LogLevel::Error => LevelFilter::Error,
            LogLevel::Warn => LevelFilter::Warn,
            LogLevel::Info => LevelFilter::Info,
            LogLevel::Debug => LevelFilter::Debug,
            LogLevel::Trace => LevelFilter::Trace,
        }
    }
}

/// How a line is framed, decided once at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// stderr is connected to journald: `<N>` priority prefix, no timestamp.
    Journal,
    /// Anything else: a timestamp first.
    Timestamped,
}

/// The word for `level` in a log line (`warning`, not `WARN`: the messages read as prose).
pub fn level_word(level: Level) -> &'static str {
    match level {
        Level::Error => "error",
        Level::Warn => "warning",
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
    }
}

/// The syslog priority journald files a record of `level` under (sd-daemon(3) prefixes).
pub fn journal_priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// Whether stderr is the journal stream systemd named in `$JOURNAL_STREAM` (`DEV:INODE` of
/// the socket it connected to stderr). Compared with stderr's own device and inode, so a
/// child whose stderr was redirected elsewhere does not inherit the journal style.
pub fn stderr_is_journal() -> bool {
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    match nix::sys::stat::fstat(std::io::stderr()) {
        Ok(st) => st.st_dev == dev && st.st_ino == ino,
        Err(_) => false,
    }
}

/// The style for this process's stderr.
pub fn style() -> Style {
    if stderr_is_journal() {
        Style::Journal
    } else {
        Style::Timestamped
    }
}

/// Installs the logger. `level` is `--log-level` (or `-v`) when given; without it `RUST_LOG`
/// decides, and without that `info`. Safe to call twice (the second call does nothing).
pub fn init(level: Option<LevelFilter>) {
    let mut b = env_logger::Builder::new();
    match level {
        Some(l) => {
            b.filter_level(l);
        }
        None => match std::env::var("RUST_LOG") {
            Ok(spec) if !spec.trim().is_empty() => {
                b.parse_filters(&spec);
            }
            _ => {
                b.filter_level(LevelFilter::Info);
            }
        },
    }
    let style = style();
    b.target(env_logger::Target::Stderr);
    b.format(move |buf, r| match style {
        Style::Journal => writeln!(
            buf,
            "<{}>maru-devd: {}: {}",
            journal_priority(r.level()),
            level_word(r.level()),
            r.args()
        ),
        Style::Timestamped => writeln!(
            buf,
            "{} maru-devd: {}: {}",
            buf.timestamp_millis(),
            level_word(r.level()),
            r.args()
        ),
    });
    // Err only if a logger is installed already: keep that one.
    let _ = b.try_init();
}

/// The line `main` prints for a command that failed (priority 3 under journald).
pub fn error_line(msg: &str) -> String {
    match style() {
        Style::Journal => format!("<3>maru-devd: error: {msg}\n"),
        Style::Timestamped => format!("maru-devd: error: {msg}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_follow_syslog() {
        assert_eq!(journal_priority(Level::Error), 3);
        assert_eq!(journal_priority(Level::Warn), 4);
        assert_eq!(journal_priority(Level::Info), 6);
        assert_eq!(journal_priority(Level::Debug), 7);
        assert_eq!(level_word(Level::Warn), "warning");
    }
}
