//! Rate-limited warnings for events any user of the mount can cause at will (an `ioctl`
//! on a chunk, a `link` into a pool): the first few of each kind in a minute are logged,
//! the rest only counted, and the count is logged with the next such event after that
//! minute. A tenant calling `ioctl` in a loop cannot make the daemon's log grow with it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Warnings of one kind logged per window.
pub(crate) const BURST: u32 = 5;
/// The window.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Window {
    start: Instant,
    logged: u32,
    suppressed: u64,
}

/// One kind of tenant-caused warning.
#[derive(Debug)]
pub(crate) struct RateLimited {
    what: &'static str,
    window: Mutex<Option<Window>>,
}

impl RateLimited {
    /// A limiter for warnings about `what` (e.g. `"ioctl requests"`).
    pub const fn new(what: &'static str) -> RateLimited {
        RateLimited {
            what,
            window: Mutex::new(None),
        }
    }

    /// Logs the warning `msg` builds, unless [`BURST`] of this kind were logged in the
    /// current [`WINDOW`]; returns whether it was logged.
    pub fn warn(&self, msg: impl FnOnce() -> String) -> bool {
        self.warn_at(Instant::now(), msg)
    }

    fn warn_at(&self, now: Instant, msg: impl FnOnce() -> String) -> bool {
        let mut guard = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let w = guard.get_or_insert(Window {
            start: now,
            logged: 0,
            suppressed: 0,
        });
        if now.saturating_duration_since(w.start) >= WINDOW {
            if w.suppressed > 0 {
                log::warn!(
                    "{} more {} in the last {} s were not logged",
                    w.suppressed,
                    self.what,
                    now.saturating_duration_since(w.start).as_secs()
                );
            }
            *w = Window {
                start: now,
                logged: 0,
                suppressed: 0,
            };
        }
        if w.logged >= BURST {
            w.suppressed += 1;
            return false;
        }
        w.logged += 1;
        if w.logged == BURST {
            log::warn!(
                "{} (further {} within {} s are counted, not logged)",
                msg(),
                self.what,
                WINDOW.as_secs()
            );
        } else {
            log::warn!("{}", msg());
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_a_burst_per_window_and_counts_the_rest() {
        let r = RateLimited::new("test events");
        let t0 = Instant::now();
        let logged = (0..1000)
            .filter(|_| r.warn_at(t0, || "event".into()))
            .count();
        assert_eq!(logged, BURST as usize);
        let later = t0 + WINDOW;
        assert!(
            r.warn_at(later, || "event".into()),
            "a new window logs again"
        );
        let w = r.window.lock().unwrap();
        let w = w.as_ref().unwrap();
        assert_eq!((w.logged, w.suppressed), (1, 0));
    }
}
