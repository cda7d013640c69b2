//! A minimal logger for the `log` crate: one line per record on stderr, with the level.

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Stderr;

impl Log for Stderr {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &Record) {
        if self.enabled(r.metadata()) {
            let level = match r.level() {
                Level::Error => "error",
                Level::Warn => "warning",
                Level::Info => "info",
                Level::Debug => "debug",
                Level::Trace => "trace",
            };
            // Not eprintln!: a log line must never panic the daemon (stderr a closed pipe).
            crate::output::stderr(&format!("maru-devd: {level}: {}\n", r.args()));
        }
    }
    fn flush(&self) {}
}

static LOGGER: Stderr = Stderr;

/// Sends log records at `info` and above (`debug` with `verbose`) to stderr.
pub fn init(verbose: bool) {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(if verbose {
            LevelFilter::Debug
        } else {
            LevelFilter::Info
        });
    }
}
