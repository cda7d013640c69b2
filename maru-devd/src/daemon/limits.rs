//! Resource limits the daemon raises for itself at start.

/// What [`raise_nofile`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nofile {
    /// The soft limit the daemon was started with.
    pub before: u64,
    /// The soft limit it runs with now (the hard limit, unless raising failed).
    pub now: u64,
    /// The hard limit.
    pub hard: u64,
}

/// Raises the soft RLIMIT_NOFILE to the hard limit: every open chunk holds a backing file
/// descriptor in the daemon, so the default soft limit (1024 on most hosts) would cap the
/// chunks open at once far below what a pool holds.
pub fn raise_nofile() -> std::io::Result<Nofile> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (before, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if before < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(Nofile {
        before,
        now: hard,
        hard,
    })
}

/// Logs what [`raise_nofile`] did (or why it could not).
pub fn raise_nofile_and_log() {
    match raise_nofile() {
        Ok(n) if n.before == n.now => log::info!(
            "open files limit (RLIMIT_NOFILE): {} (already the hard limit)",
            n.now
        ),
        Ok(n) => log::info!(
            "open files limit (RLIMIT_NOFILE): raised from {} to the hard limit {}",
            n.before,
            n.now
        ),
        Err(e) => log::warn!(
            "cannot raise the open files limit (RLIMIT_NOFILE) to its hard limit: {e}; opens of chunks beyond it fail with EMFILE"
        ),
    }
}
