//! Errors returned to the daemon by [`crate::mount`] and [`crate::Control`].

use std::io;
use std::path::PathBuf;

/// What went wrong while mounting, unmounting or reconfiguring the filesystem.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The FUSE mount itself failed.
    #[error("cannot mount maru-fs on {mountpoint}: {source} (run as root with /dev/fuse present, and make sure the directory exists and is not in use)")]
    Mount {
        /// Where the mount was attempted.
        mountpoint: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Unmounting failed.
    #[error("cannot unmount maru-fs from {mountpoint}: {source}")]
    Unmount {
        /// The mount point.
        mountpoint: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A pool's backing store could not be opened or scanned.
    #[error("pool {pool}: backing directory {path}: {source} (it must be an existing directory on tmpfs/shmem)")]
    Backing {
        /// The pool.
        pool: String,
        /// The backing path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A devdax pool could not be opened (corrupt or foreign header, bad byte
    /// range, device error); the pool's device is left untouched.
    #[error("pool {pool}: cannot use its devdax device range")]
    Devdax {
        /// The pool.
        pool: String,
        /// What is wrong with the device or the pool on it.
        #[source]
        source: crate::devdax::DevdaxError,
    },
    /// A pool configuration is not usable.
    #[error("pool {pool}: {reason}")]
    InvalidPool {
        /// The pool.
        pool: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A pool of that name is already mounted.
    #[error("pool {0} already exists; remove it first or pick another name")]
    PoolExists(String),
    /// No pool of that name is mounted.
    #[error("no pool named {0} is mounted")]
    NoSuchPool(String),
    /// The pool still has chunks open or mapped, so it cannot be removed.
    #[error("pool {pool} is busy: {pinned_chunks} chunk(s) are still open or mapped; close them (or stop the processes using them) and retry")]
    PoolBusy {
        /// The pool.
        pool: String,
        /// How many chunks are pinned.
        pinned_chunks: u64,
    },
    /// The filesystem is no longer being served.
    #[error("maru-fs on {0} is no longer mounted")]
    NotMounted(PathBuf),
}
