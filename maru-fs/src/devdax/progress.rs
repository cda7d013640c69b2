//! Progress of long devdax work: formatting a range, and recovering a pool at open
//! (reading every index record and, with `verify_data`, checksumming every
//! published chunk: seconds per GiB). The daemon shows it (log lines, a bar on a
//! terminal) and keeps systemd's start timeout from running out meanwhile.

use std::fmt;
use std::sync::Arc;

/// Which long work a [`Step`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Writing a fresh pool: `done`/`total` are bytes of the index cleared.
    Format,
    /// Opening a pool: `done`/`total` are index records examined; `bytes` the
    /// chunk data checksummed so far (0 without `verify_data`).
    Recover,
}

/// How far one piece of long work got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The work.
    pub work: Work,
    /// Units finished (see [`Work`]); never goes back.
    pub done: u64,
    /// Units in all; the last step of a piece of work has `done == total`.
    pub total: u64,
    /// Chunk data bytes read so far (what sets the pace of a verifying recovery).
    pub bytes: u64,
}

/// Where long devdax work reports its [`Step`]s: once with `done == 0` when it
/// starts, as it goes, and once with `done == total` when it ends. Called from the
/// thread doing the work, so it must be quick (throttle anything slow).
pub trait Progress: Send + Sync {
    /// `step` is how far the work got.
    fn report(&self, step: Step);
}

/// A [`Progress`] in a [`super::DevdaxConfig`]. Two hooks compare equal: a
/// configuration is compared for what it describes, not who watches it.
#[derive(Clone)]
pub struct ProgressHook(pub Arc<dyn Progress>);

impl ProgressHook {
    /// Reports `step`.
    pub fn report(&self, step: Step) {
        self.0.report(step);
    }
}

impl fmt::Debug for ProgressHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProgressHook")
    }
}

impl PartialEq for ProgressHook {
    fn eq(&self, _: &ProgressHook) -> bool {
        true
    }
}

impl Eq for ProgressHook {}

/// Reports [`Step`]s of one piece of work to an optional hook, often enough to
/// show progress and no more (every 1/256 of the way, and the ends).
#[derive(Debug)]
pub(crate) struct Reporter<'a> {
    hook: Option<&'a ProgressHook>,
    work: Work,
    total: u64,
    /// The `done` of the last report.
    last: u64,
}

impl<'a> Reporter<'a> {
    /// Starts reporting `work` of `total` units (reports 0 of `total`).
    pub fn start(hook: Option<&'a ProgressHook>, work: Work, total: u64) -> Reporter<'a> {
        let r = Reporter {
            hook,
            work,
            total,
            last: 0,
        };
        r.send(0, 0);
        r
    }

    fn send(&self, done: u64, bytes: u64) {
        if let Some(h) = self.hook {
            h.report(Step {
                work: self.work,
                done,
                total: self.total,
                bytes,
            });
        }
    }

    /// `done` units (capped at the total) and `bytes` of data are finished.
    pub fn update(&mut self, done: u64, bytes: u64) {
        let done = done.min(self.total);
        let every = (self.total / 256).max(1);
        if done > self.last && (done - self.last >= every || done == self.total) {
            self.last = done;
            self.send(done, bytes);
        }
    }

    /// The work is over: reports `total` of `total` (unless already reported).
    pub fn finish(mut self, bytes: u64) {
        if self.last < self.total || self.total == 0 {
            self.last = self.total;
            self.send(self.total, bytes);
        }
    }
}
