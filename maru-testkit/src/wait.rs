//! Polling for what happens asynchronously (a FUSE RELEASE after the last close,
//! a daemon answering its socket, a charge coming back). Polls return as soon as
//! the condition holds; the time-out only bounds a failure, and its message names
//! what was awaited.

use std::fmt;
use std::time::{Duration, Instant};

/// How long a test waits by default: generous for a loaded 2-core machine.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The first pause between two checks; it doubles up to [`MAX_INTERVAL`], so a quick
/// condition is seen at once and a slow one (a process spawned per check) costs little.
const FIRST_INTERVAL: Duration = Duration::from_millis(5);
/// The longest pause between two checks.
const MAX_INTERVAL: Duration = Duration::from_millis(50);

/// A condition that did not hold in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedOut {
    /// What was awaited.
    pub what: String,
    /// How long.
    pub after: Duration,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timed out after {} s waiting for {}",
            self.after.as_secs_f64(),
            self.what
        )
    }
}

impl std::error::Error for TimedOut {}

/// Calls `f` until it gives a value, for up to `timeout`.
pub fn poll<T>(
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> Result<T, TimedOut> {
    let deadline = Instant::now() + timeout;
    let mut interval = FIRST_INTERVAL;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(TimedOut {
                what: what.to_string(),
                after: timeout,
            });
        }
        std::thread::sleep(interval);
        interval = (interval * 2).min(MAX_INTERVAL);
    }
}

/// Waits until `cond` holds; panics naming `what` when it does not within `timeout`.
#[track_caller]
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    if let Err(e) = poll(timeout, what, || cond().then_some(())) {
        panic!("{e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_returns_the_first_value() {
        let mut n = 0;
        let got = poll(TIMEOUT, "the third call", || {
            n += 1;
            (n == 3).then_some(n)
        });
        assert_eq!(got, Ok(3));
    }

    #[test]
    fn a_time_out_names_what_was_awaited() {
        let err = poll::<()>(Duration::ZERO, "the moon", || None).unwrap_err();
        assert_eq!(err.to_string(), "timed out after 0 s waiting for the moon");
    }

    #[test]
    #[should_panic(expected = "waiting for a condition that never holds")]
    fn wait_until_panics_with_the_name() {
        wait_until(Duration::ZERO, "a condition that never holds", || false);
    }
}
