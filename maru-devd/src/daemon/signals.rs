//! Signals become events: SIGTERM/SIGINT stop, SIGHUP reloads. They are blocked in every
//! thread and taken synchronously by one thread with sigwait.

use super::events::Event;
use anyhow::Context;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use std::sync::mpsc::Sender;

fn set() -> SigSet {
    let mut s = SigSet::empty();
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        s.add(sig);
    }
    s
}

/// Blocks the daemon's signals in the calling thread (and every thread it starts later).
pub fn block() -> anyhow::Result<()> {
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set()), None)
        .context("cannot block SIGTERM/SIGINT/SIGHUP")
}

/// Waits for signals forever on the current thread, turning them into events.
pub fn forward(events: Sender<Event>) {
    let set = set();
    loop {
        let ev = match set.wait() {
            Ok(Signal::SIGHUP) => Event::Reload,
            Ok(Signal::SIGINT) => Event::Stop("SIGINT"),
            Ok(_) => Event::Stop("SIGTERM"),
            Err(_) => continue,
        };
        if events.send(ev).is_err() {
            return;
        }
    }
}
