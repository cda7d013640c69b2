//! Least privilege: after its setup the daemon keeps only the capabilities the FUSE server
//! needs, in every capability set, and can never regain others (no_new_privs).

use anyhow::Context;
use caps::{CapSet, Capability, CapsHashSet};

/// Capabilities the running daemon keeps, with why:
/// * `CAP_SYS_ADMIN`: `FUSE_DEV_IOC_BACKING_OPEN` (passthrough) requires it in the initial
///   namespace; mounting a pool's tmpfs when SIGHUP adds a pool, unmounting the FUSE mount at
///   shutdown and `trusted.*` xattrs on backing files need it too.
///
/// Everything else is dropped: the daemon runs as uid 0 and owns its runtime directory and the
/// backing files, so it needs no DAC override; pool and chunk ownership is maru-fs metadata,
/// not chown(2).
pub const KEPT: &[Capability] = &[Capability::CAP_SYS_ADMIN];

/// Drops every capability but [`KEPT`] from the bounding, permitted, effective, inheritable and
/// ambient sets of the calling thread, and sets no_new_privs. Call it while the process has
/// one thread: threads started later inherit the reduced sets.
pub fn drop_privileges() -> anyhow::Result<()> {
    // Sets a flag on the calling thread (inherited by threads created afterwards).
    nix::sys::prctl::set_no_new_privs()
        .map_err(std::io::Error::from)
        .context("prctl(PR_SET_NO_NEW_PRIVS) failed")?;
    let keep: CapsHashSet = KEPT.iter().copied().collect();
    let bounding =
        caps::read(None, CapSet::Bounding).context("cannot read the bounding capability set")?;
    for cap in bounding.difference(&keep) {
        caps::drop(None, CapSet::Bounding, *cap)
            .with_context(|| format!("cannot drop {cap} from the bounding set (the daemon needs CAP_SETPCAP at start: run it as root)"))?;
    }
    caps::clear(None, CapSet::Ambient).context("cannot clear the ambient capability set")?;
    caps::clear(None, CapSet::Inheritable)
        .context("cannot clear the inheritable capability set")?;
    let permitted =
        caps::read(None, CapSet::Permitted).context("cannot read the permitted capability set")?;
    let missing: Vec<String> = keep.difference(&permitted).map(|c| c.to_string()).collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "maru-devd needs {} but does not have it; run it as root (or with that capability)",
            missing.join(", ")
        );
    }
    caps::set(None, CapSet::Effective, &keep)
        .context("cannot reduce the effective capability set")?;
    caps::set(None, CapSet::Permitted, &keep)
        .context("cannot reduce the permitted capability set")?;
    Ok(())
}

/// The calling thread's effective capabilities, sorted by name (for `status`).
pub fn effective() -> Vec<String> {
    let mut v: Vec<String> = caps::read(None, CapSet::Effective)
        .map(|s| s.into_iter().map(|c| c.to_string()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Whether no_new_privs is set on the calling thread.
pub fn no_new_privs() -> bool {
    nix::sys::prctl::get_no_new_privs().unwrap_or(false)
}
