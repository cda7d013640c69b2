//! Mounting, unmounting and the daemon's control handle.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use fuser::{BackgroundSession, Config, MountOption, Session, SessionACL};

use crate::fs::{MaruFs, Shared};
use crate::lend::{self, Lender};
use crate::reaper::{self, ReaperThread};
use crate::state::{self, State};
use crate::{notify, FsError, MountOptions, PoolCharges, PoolConfig, PoolStats};

/// A mounted maru-fs, served by background threads; unmounts on drop.
#[derive(Debug)]
pub struct Mounted {
    mountpoint: PathBuf,
    shared: Arc<Shared>,
    session: Option<BackgroundSession>,
    notifier: Option<JoinHandle<()>>,
    /// Returns removed chunks' charges as their memory is freed.
    reaper: ReaperThread,
    /// Lends chunk descriptors in batches (when [`MountOptions::lend_socket`] is set).
    lender: Option<Lender>,
}

/// The daemon's handle on a mounted filesystem: cheap to clone, `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Control {
    shared: Arc<Shared>,
}

/// Lazily detaches a dead FUSE mount left at `mountpoint` by a daemon that died
/// (stat fails with ENOTCONN), so a restarted daemon can mount again.
fn clear_stale_mount(mountpoint: &Path) {
    if let Err(e) = std::fs::metadata(mountpoint) {
        if e.raw_os_error() == Some(libc::ENOTCONN) {
            log::warn!(
                "{} is a dead FUSE mount (its daemon exited); detaching it",
                mountpoint.display()
            );
            if let Err(e) = nix::mount::umount2(mountpoint, nix::mount::MntFlags::MNT_DETACH) {
                log::warn!("cannot detach {}: {e}", mountpoint.display());
            }
        }
    }
}

/// Mounts maru-fs at `opts.mountpoint` (allow_other, default_permissions, FUSE
/// passthrough with max_stack_depth 1) and serves it in background threads.
///
/// Chunks already present in each pool's backing store are adopted: published
/// files re-appear under their keys with their owner, mode and xattrs, leftover
/// staging files are deleted. This is how chunks survive a daemon restart.
pub fn mount(opts: &MountOptions, pools: Vec<PoolConfig>) -> Result<Mounted, FsError> {
    let mut state = State::new();
    state.set_max_staging_per_uid(opts.max_staging_per_uid);
    state.set_lend_socket(opts.lend_socket.clone());
    for cfg in pools {
        state.add_pool(cfg)?;
    }
    state.take_notices();
    let wait_fd = state.reaper_wait_fd();
    let (tx, rx) = mpsc::channel();
    let shared = Arc::new(Shared::new(state, tx));

    clear_stale_mount(&opts.mountpoint);
    let mount_err = |source: io::Error| FsError::Mount {
        mountpoint: opts.mountpoint.clone(),
        source,
    };
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("maru".into()),
        // The kernel's own `subtype=` option: the mount then shows as type `fuse.maru`
        // (findmnt, /proc/self/mountinfo). fuser hands `MountOption::Subtype` only to
        // fusermount, never to mount(2), so it is passed as a raw kernel option.
        MountOption::CUSTOM("subtype=maru".into()),
        MountOption::DefaultPermissions,
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::NoExec,
    ];
    config.acl = SessionACL::All;
    config.n_threads = Some(opts.threads.max(1));
    config.clone_fd = true;
    let session =
        Session::new(MaruFs::new(shared.clone()), &opts.mountpoint, &config).map_err(mount_err)?;
    let notifier = notify::spawn(session.notifier(), rx).map_err(mount_err)?;
    let reaper = reaper::spawn(shared.clone(), wait_fd).map_err(mount_err)?;
    let session = session.spawn().map_err(mount_err)?;
    let lender = match &opts.lend_socket {
        Some(path) => match lend::spawn(shared.clone(), path, &opts.mountpoint) {
            Ok(l) => Some(l),
            Err(e) => {
                // Opens still work through FUSE, one round trip each.
                log::warn!(
                    "cannot listen on the lending socket {}: {e}; batch retrieves open each \
                     chunk through the mount instead",
                    path.display()
                );
                shared.with(|s| s.set_lend_socket(None));
                None
            }
        },
        None => None,
    };
    log::info!("maru-fs mounted on {}", opts.mountpoint.display());
    Ok(Mounted {
        mountpoint: opts.mountpoint.clone(),
        shared,
        session: Some(session),
        notifier: Some(notifier),
        reaper,
        lender,
    })
}

impl Mounted {
    /// A control handle for the daemon.
    pub fn control(&self) -> Control {
        Control {
            shared: self.shared.clone(),
        }
    }

    /// Where the filesystem is mounted.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Unmounts the filesystem and stops serving it. While processes still have
    /// chunks open or mapped the mount is detached lazily: their mappings keep
    /// working, and the kernel ends the session when the last one goes.
    pub fn unmount(mut self) -> Result<(), FsError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), FsError> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        if let Some(l) = self.lender.as_mut() {
            l.stop();
        }
        self.reaper.stop();
        self.shared.stop_notifier();
        if let Some(t) = self.notifier.take() {
            let _ = t.join();
        }
        match session.umount_and_join() {
            Ok(()) => {
                // Nothing can reach the pools any more: close them now, not when the
                // last control handle goes (a devdax pool holds its device's owner lease).
                self.shared.with(|s| s.close_all());
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                log::warn!(
                    "{} is busy (chunks still open or mapped): detaching it lazily",
                    self.mountpoint.display()
                );
                nix::mount::umount2(&self.mountpoint, nix::mount::MntFlags::MNT_DETACH).map_err(
                    |e| FsError::Unmount {
                        mountpoint: self.mountpoint.clone(),
                        source: e.into(),
                    },
                )
            }
            Err(source) => Err(FsError::Unmount {
                mountpoint: self.mountpoint.clone(),
                source,
            }),
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            log::warn!("{e}");
        }
    }
}

impl Control {
    /// Shows chunk `key` of shared pool `pool`, published by another host in the
    /// index record `at` names (from the cluster's watch); `false` if nothing changed.
    pub fn adopt_remote(&self, pool: &str, key: &[u8], at: &crate::devdax::KeyRef) -> bool {
        use std::os::unix::ffi::OsStrExt;
        self.shared
            .with(|s| s.adopt_remote(pool, std::ffi::OsStr::from_bytes(key), at))
    }

    /// Hides chunk `key` of shared pool `pool`, removed from the cluster; `false` if
    /// the pool had no such key.
    pub fn remote_removed(&self, pool: &str, key: &[u8]) -> bool {
        use std::os::unix::ffi::OsStrExt;
        self.shared
            .with(|s| s.remote_removed(pool, std::ffi::OsStr::from_bytes(key)))
    }

    /// The cluster revision shared pool `pool`'s state was read at (watch the
    /// cluster from the next one); `None` for a pool that is not shared.
    pub fn cluster_revision(&self, pool: &str) -> Option<i64> {
        self.shared.with(|s| s.cluster_revision(pool))
    }

    /// This host's removed chunks of shared pool `pool` whose extents wait for the
    /// other hosts to let go: `(record slot, publish sequence)` each.
    pub fn quarantined(&self, pool: &str) -> Vec<(u64, u64)> {
        self.shared.with(|s| s.quarantined(pool))
    }

    /// Bytes of this host's quarantined extents in shared pool `pool`.
    pub fn quarantined_bytes(&self, pool: &str) -> u64 {
        self.shared.with(|s| s.quarantined_bytes(pool))
    }

    /// Whether this host still has the chunk host `writer` published in record
    /// `slot` with sequence `seq` of shared pool `pool` (named, or open).
    pub fn holds_remote(&self, pool: &str, writer: &str, slot: u64, seq: u64) -> bool {
        self.shared
            .with(|s| s.holds_remote(pool, writer, slot, seq))
    }

    /// Whether `key` is this host's published chunk in record `slot` of shared pool
    /// `pool` (a cluster key naming this host and slot otherwise is an orphan).
    pub fn owns_published(&self, pool: &str, key: &[u8], slot: u64) -> bool {
        use std::os::unix::ffi::OsStrExt;
        self.shared
            .with(|s| s.owns_published(pool, std::ffi::OsStr::from_bytes(key), slot))
    }

    /// Frees this host's quarantined extent in record `slot` (sequence `seq`) of
    /// shared pool `pool`, once every other host let go of it.
    pub fn release_quarantined(&self, pool: &str, slot: u64, seq: u64) -> std::io::Result<bool> {
        self.shared.with(|s| s.release_quarantined(pool, slot, seq))
    }

    /// Adds a pool (adopting what its backing store holds): its directory appears
    /// under the mount point once it is open. The store is opened (a devdax pool
    /// recovered and verified) while the other pools keep serving.
    pub fn add_pool(&self, cfg: PoolConfig) -> Result<(), FsError> {
        self.shared.with(|s| s.reserve_pool(&cfg))?;
        let name = cfg.name.clone();
        match state::open_pool(cfg) {
            Ok(opened) => self.shared.with(|s| s.insert_pool(opened)),
            Err(e) => {
                self.shared.with(|s| s.unreserve_pool(&name));
                Err(e)
            }
        }
    }

    /// Removes a pool from the mount (its backing files are left alone); refused
    /// with [`FsError::PoolBusy`] while any of its chunks is open or mapped — a
    /// mapping whose descriptor was closed included (under passthrough the daemon
    /// sees no handle for it; a lease probe does). Checked and removed under one
    /// lock, so no open can slip in between.
    pub fn remove_pool(&self, name: &str) -> Result<(), FsError> {
        self.shared.with(|s| match s.busy_chunks(name) {
            Some(busy) if busy > 0 => Err(FsError::PoolBusy {
                pool: name.to_string(),
                pinned_chunks: busy,
            }),
            _ => s.remove_pool(name),
        })
    }

    /// Takes a pool on- or offline; offline pools refuse new creates and growth
    /// with `ENODEV` while existing chunks stay readable and mapped.
    pub fn set_online(
        &self,
        name: &str,
        online: bool,
        reason: Option<String>,
    ) -> Result<(), FsError> {
        self.shared.with(|s| s.set_online(name, online, reason))
    }

    /// One [`PoolStats`] per pool, in name order.
    pub fn stats(&self) -> Vec<PoolStats> {
        self.shared.with(|s| s.stats())
    }

    /// One [`PoolCharges`] per pool, in name order: the books behind
    /// `used_bytes`, for audits and tests (after returning freed charges).
    pub fn charges(&self) -> Vec<PoolCharges> {
        self.shared.with(|s| s.charges())
    }
}
