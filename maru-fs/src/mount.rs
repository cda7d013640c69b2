//! Mounting, unmounting and the daemon's control handle.

use std::path::PathBuf;

use crate::{FsError, MountOptions, PoolConfig, PoolStats};

/// A mounted maru-fs; unmounts on drop.
#[derive(Debug)]
pub struct Mounted {
    mountpoint: PathBuf,
}

/// The daemon's handle on a mounted filesystem: cheap to clone, `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Control {
    mountpoint: PathBuf,
}

/// Mounts maru-fs (allow_other, default_permissions, passthrough) and serves it in
/// background threads, adopting chunks already present in each pool's backing store.
pub fn mount(opts: &MountOptions, pools: Vec<PoolConfig>) -> Result<Mounted, FsError> {
    let _ = pools;
    Err(FsError::NotMounted(opts.mountpoint.clone()))
}

impl Mounted {
    /// A control handle for the daemon.
    pub fn control(&self) -> Control {
        Control {
            mountpoint: self.mountpoint.clone(),
        }
    }

    /// Unmounts the filesystem and stops serving it.
    pub fn unmount(self) -> Result<(), FsError> {
        Ok(())
    }
}

impl Control {
    /// Adds a pool: its directory appears under the mount point.
    pub fn add_pool(&self, cfg: PoolConfig) -> Result<(), FsError> {
        Err(FsError::NoSuchPool(cfg.name))
    }

    /// Removes a pool; refused with [`FsError::PoolBusy`] while chunks are pinned.
    pub fn remove_pool(&self, name: &str) -> Result<(), FsError> {
        Err(FsError::NoSuchPool(name.to_string()))
    }

    /// Takes a pool on- or offline; offline pools refuse new creates with `ENODEV`
    /// while existing chunks stay readable and mapped.
    pub fn set_online(
        &self,
        name: &str,
        online: bool,
        reason: Option<String>,
    ) -> Result<(), FsError> {
        let _ = (online, reason);
        Err(FsError::NoSuchPool(name.to_string()))
    }

    /// One [`PoolStats`] per pool.
    pub fn stats(&self) -> Vec<PoolStats> {
        let _ = &self.mountpoint;
        Vec::new()
    }
}
