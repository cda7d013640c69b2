//! Knowing when a removed chunk's memory is really gone.
//!
//! Under FUSE passthrough the kernel moves a chunk's mapping onto the backing
//! file, so a process may close its descriptor and keep the pages mapped without
//! the daemon seeing anything. When a chunk is unlinked, evicted or reclaimed, its
//! backing file is watched with inotify before it is removed: the kernel reports
//! `IN_IGNORED` once the last descriptor *and* the last mapping are gone and the
//! pages are freed. Only then is the chunk's size returned to the pool.
//!
//! Nothing waits for a request to look: a thread of its own ([`spawn`]) sleeps on
//! the inotify descriptor and returns each charge as soon as the kernel reports
//! the memory gone, so `statfs` (`df`) and the pool xattrs, which only read the
//! books, are right without anyone calling [`crate::Control::stats`].

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fuser::INodeNo;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use crate::fs::Shared;

/// Bytes a removed chunk still holds charged to its pool, returned when the
/// chunk's memory is freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Charge {
    /// The pool's directory inode.
    pub pool: INodeNo,
    /// Bytes to return.
    pub bytes: u64,
}

/// The inotify instance and the charges waiting on it.
#[derive(Debug)]
pub(crate) struct Reaper {
    fd: Option<Inotify>,
    /// Watch descriptor -> the charge to return.
    pending: HashMap<i32, Charge>,
    /// When the books were last reconciled with the kernel's watch list.
    last_reconcile: Instant,
}

impl Reaper {
    /// A reaper; without inotify, charges are returned at the last close instead.
    pub fn new() -> Reaper {
        let fd = match Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC) {
            Ok(fd) => Some(fd),
            Err(e) => {
                log::warn!(
                    "inotify unavailable ({}): space of removed chunks returns at their last \
                     close, even if a process still maps them",
                    io::Error::from(e)
                );
                None
            }
        };
        Reaper {
            fd,
            pending: HashMap::new(),
            last_reconcile: Instant::now(),
        }
    }

    /// Watches the backing file at `path` (which is about to be removed) and
    /// returns `bytes` to `pool` when its memory is freed. Returns false if it
    /// cannot watch, in which case the caller returns the charge itself.
    pub fn watch(&mut self, path: &Path, charge: Charge) -> bool {
        let Some(fd) = &self.fd else {
            return false;
        };
        let wd = match fd.add_watch(path, AddWatchFlags::IN_DELETE_SELF) {
            Ok(wd) => wd,
            // A path with a NUL byte cannot be watched (nor exist).
            Err(Errno::EINVAL) if path.as_os_str().as_encoded_bytes().contains(&0) => {
                return false;
            }
            Err(e) => {
                log::warn!(
                    "cannot watch {} ({}): its space returns now, even if it is still mapped",
                    path.display(),
                    io::Error::from(e)
                );
                return false;
            }
        };
        self.pending.insert(wd.as_raw(), charge);
        true
    }

    /// A second descriptor of the inotify instance, for the reaper thread to
    /// sleep on (`None` without inotify).
    pub fn wait_fd(&self) -> Option<OwnedFd> {
        let fd = self.fd.as_ref()?;
        match fd.as_fd().try_clone_to_owned() {
            Ok(fd) => Some(fd),
            Err(e) => {
                log::warn!(
                    "cannot duplicate the inotify descriptor ({e}): removed chunks' space \
                     returns only when the daemon next looks (stats, a full pool)"
                );
                None
            }
        }
    }

    /// Collects the charges whose backing memory has been freed.
    /// Always drains the queue, so a thread polling the descriptor does not spin
    /// on events for watches it no longer waits on.
    pub fn reap(&mut self) -> Vec<Charge> {
        let mut freed = Vec::new();
        let Some(fd) = &self.fd else {
            return freed;
        };
        let mut overflowed = false;
        // Until the queue is empty (EAGAIN) or reading fails.
        while let Ok(events) = fd.read_events() {
            if events.is_empty() {
                break;
            }
            for ev in events {
                let wd = ev.wd.as_raw();
                if wd == -1 && ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    // The queue was full (fs.inotify.max_queued_events): some
                    // IN_IGNORED were dropped. The kernel's watch list still knows.
                    overflowed = true;
                    continue;
                }
                // IN_IGNORED ends every watch (after IN_DELETE_SELF, or if the backing
                // filesystem goes away): the memory is gone either way.
                if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                    if let Some(charge) = self.pending.remove(&wd) {
                        freed.push(charge);
                    }
                }
            }
        }
        if overflowed {
            log::warn!(
                "inotify queue overflowed (fs.inotify.max_queued_events): reconciling {} \
                 removed chunk(s) with the kernel's watch list",
                self.pending.len()
            );
            freed.extend(self.reconcile());
        }
        freed
    }

    /// Charges waiting for their memory to be freed.
    pub fn pending(&self) -> impl Iterator<Item = Charge> + '_ {
        self.pending.values().copied()
    }

    /// Reconciles with the kernel if [`RECONCILE_EVERY`] has passed since the
    /// last time (see [`Reaper::reconcile`]).
    pub fn reconcile_due(&mut self) -> Vec<Charge> {
        if self.last_reconcile.elapsed() < RECONCILE_EVERY {
            return Vec::new();
        }
        self.reconcile()
    }

    /// Returns every charge whose watch the kernel no longer has, whatever
    /// happened to its events: a watch disappears from the inotify instance's
    /// list (`/proc/self/fdinfo/<fd>`) exactly when the inode is freed, so this
    /// is the ground truth a lost `IN_IGNORED` (queue overflow) cannot hide.
    /// Charges are removed from `pending` as they are returned, so an event that
    /// arrives later for the same watch returns nothing twice.
    pub fn reconcile(&mut self) -> Vec<Charge> {
        self.last_reconcile = Instant::now();
        let mut freed = Vec::new();
        if self.pending.is_empty() {
            return freed;
        }
        let Some(fd) = &self.fd else {
            return freed;
        };
        let live = match live_watches(fd) {
            Ok(live) => live,
            Err(e) => {
                log::warn!(
                    "cannot read the inotify watch list ({e}): charges whose events were \
                     lost stay charged"
                );
                return freed;
            }
        };
        self.pending.retain(|wd, charge| {
            let alive = live.contains(wd);
            if !alive {
                freed.push(*charge);
            }
            alive
        });
        freed
    }
}

/// How often the pending charges are reconciled with the kernel's watch list
/// even when no overflow was reported (belt and braces: a reconciliation is one
/// read of `/proc/self/fdinfo`).
const RECONCILE_EVERY: Duration = Duration::from_secs(5);

/// The watch descriptors the kernel still holds on inotify instance `fd`, read
/// from the `inotify wd:<hex> ...` lines of `/proc/self/fdinfo/<fd>`.
fn live_watches(fd: &Inotify) -> io::Result<HashSet<i32>> {
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_fd().as_raw_fd()))?;
    let mut live = HashSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("inotify wd:") else {
            continue;
        };
        let hex = rest.split(' ').next().unwrap_or("");
        match i32::from_str_radix(hex, 16) {
            Ok(wd) => {
                live.insert(wd);
            }
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unexpected fdinfo line {line:?}"),
                ))
            }
        }
    }
    Ok(live)
}

/// How often the reaper thread looks at the books even without events (the
/// growth scan runs every tick; reconciliation every [`RECONCILE_EVERY`]).
const TICK: Duration = Duration::from_millis(250);

/// The thread returning removed chunks' charges; stops when dropped.
#[derive(Debug)]
pub(crate) struct ReaperThread {
    /// Dropping the write end of the pipe wakes the thread and ends it.
    stop: Option<OwnedFd>,
    handle: Option<JoinHandle<()>>,
}

impl ReaperThread {
    /// Stops the thread and waits for it.
    pub fn stop(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for ReaperThread {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the reaper thread for `shared` (whose state's reaper `inotify` is a
/// descriptor of): it returns charges as soon as inotify reports freed memory,
/// and calls [`crate::state::State::reap_tick`] every [`TICK`].
pub(crate) fn spawn(shared: Arc<Shared>, inotify: Option<OwnedFd>) -> io::Result<ReaperThread> {
    let (stop_rx, stop_tx) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let handle = std::thread::Builder::new()
        .name("maru-fs-reaper".into())
        .spawn(move || run(&shared, inotify.as_ref(), &stop_rx))?;
    Ok(ReaperThread {
        stop: Some(stop_tx),
        handle: Some(handle),
    })
}

fn run(shared: &Shared, inotify: Option<&OwnedFd>, stop: &OwnedFd) {
    let mut last_tick = Instant::now();
    loop {
        // The stop pipe first, then the inotify descriptor (if there is one).
        let mut fds: Vec<PollFd<'_>> = [Some(stop.as_fd()), inotify.map(AsFd::as_fd)]
            .into_iter()
            .flatten()
            .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
            .collect();
        let timeout = TICK.saturating_sub(last_tick.elapsed());
        let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        if let Err(e) = nix::poll::poll(&mut fds, timeout) {
            if e != Errno::EINTR {
                log::warn!(
                    "reaper: poll failed ({}); retrying in a second",
                    io::Error::from(e)
                );
                std::thread::sleep(TICK);
            }
            continue;
        }
        let ready = |i: usize| {
            fds.get(i)
                .and_then(PollFd::revents)
                .is_some_and(|r| !r.is_empty())
        };
        if ready(0) {
            // The pipe's write end is gone: unmounting.
            return;
        }
        let tick = last_tick.elapsed() >= TICK;
        if tick {
            last_tick = Instant::now();
        }
        if ready(1) || tick {
            shared.with(|s| s.reap_tick(tick));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charge(pool: u64, bytes: u64) -> Charge {
        Charge {
            pool: INodeNo(pool),
            bytes,
        }
    }

    #[test]
    fn charge_returns_only_after_last_mapping_goes() {
        let (_dir, path, file) = crate::test_file::shm_chunk(8192);
        let map = crate::sys::mem::map_for_test(&file).unwrap();
        drop(file);

        let mut reaper = Reaper::new();
        assert!(reaper.watch(&path, charge(7, 8192)), "inotify watch");
        std::fs::remove_file(&path).unwrap();
        assert!(reaper.reap().is_empty(), "freed while still mapped");
        drop(map);
        assert_eq!(reaper.reap(), vec![charge(7, 8192)]);
        assert!(reaper.reap().is_empty(), "returned twice");
    }

    #[test]
    fn reconcile_returns_freed_charges_without_their_events() {
        let (_dir, path, file) = crate::test_file::shm_chunk(4096);
        let map = crate::sys::mem::map_for_test(&file).unwrap();
        drop(file);
        let (_dir2, path2, file2) = crate::test_file::shm_chunk(1);
        drop(file2);

        let mut reaper = Reaper::new();
        assert!(reaper.watch(&path, charge(3, 4096)));
        assert!(reaper.watch(&path2, charge(3, 1)));
        std::fs::remove_file(&path).unwrap();
        std::fs::remove_file(&path2).unwrap();
        // Reconcile without reading the queue, as after an overflow.
        assert_eq!(
            reaper.reconcile(),
            vec![charge(3, 1)],
            "only the unmapped one is gone"
        );
        drop(map);
        assert_eq!(reaper.reconcile(), vec![charge(3, 4096)]);
        assert!(
            reaper.reap().is_empty(),
            "queued events returned a charge twice"
        );
        assert!(reaper.pending.is_empty());
    }

    #[test]
    fn unmapped_file_is_reaped_at_unlink() {
        let (_dir, path, file) = crate::test_file::shm_chunk(1);
        drop(file);
        let mut reaper = Reaper::new();
        assert!(reaper.watch(&path, charge(1, 1)));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(reaper.reap(), vec![charge(1, 1)]);
    }
}
