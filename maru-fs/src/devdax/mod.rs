//! The `devdax` memory source: a pool kept in a byte range of a device-dax
//! character device (`/dev/daxX.Y`), or, in tests, of a regular stand-in file.
//!
//! The daemon maps the range (`MAP_SHARED`, aligned to the device's alignment) and
//! keeps everything about the pool in it, so a restarted daemon, or another host
//! the device moves to, finds every published chunk again:
//!
//! * two header copies at the start (magic, version, generation, layout, CRC-32C),
//! * the owner lease: the one daemon on one host that may open the range, with a
//!   heartbeat (module `owner`),
//! * an index of fixed-size chunk records (key, extent, size, state
//!   staging/published, creator uid, mode, creation time, the writer's `user.*`
//!   xattrs, a CRC-32C of the record and one of the chunk's data),
//! * the data area, carved into extents aligned to the device alignment by a
//!   first-fit allocator whose free list coalesces.
//!
//! Opening a pool recovers it: published records come back as chunks, staging
//! records and damaged records are dropped, and (unless turned off) each published
//! chunk's data is checked against its checksum. A range without a valid header is
//! never formatted over unless it is blank and the configuration allows it
//! ([`FormatPolicy::IfBlank`]) or [`format`] is called explicitly. The layout is
//! described in `docs/devdax.md`.

mod alloc;
mod crc;
mod error;
#[cfg(test)]
mod fuzz;
mod geometry;
mod host_id;
mod layout;
mod mapping;
mod owner;
mod progress;
mod shared;
mod store;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use error::DevdaxError;
pub use geometry::{Geometry, DEFAULT_ALIGN};
pub use host_id::{HostIdentity, ENV_BOOT_ID, ENV_HOST_NAME, ENV_MACHINE_ID};
pub use layout::Extent;
pub use owner::OwnerPolicy;
pub use progress::{Progress, ProgressHook, Step, Work};
pub use shared::{Coordinator, KeyRef, Published, SharedLink};
pub use store::Recovery;
pub(crate) use store::{ChunkHandle, DevdaxStore, PendingPublish};

/// What to do when the pool's range holds no pool header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FormatPolicy {
    /// Refuse to open it.
    Never,
    /// Format it if both header copies are all zeros (a fresh device); refuse
    /// anything else (foreign data, a damaged header).
    #[default]
    IfBlank,
}

/// Whether the CPU caches of the hosts sharing a device are kept coherent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Coherence {
    /// Not known to be: a shared pool writes a chunk back from the CPU caches before
    /// publishing it, and invalidates another host's chunk before this host reads it
    /// (the safe default).
    #[default]
    None,
    /// The device (or switch) keeps every host's caches coherent: no flushes.
    Hardware,
}

/// Where a devdax pool lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevdaxConfig {
    /// The device node (`/dev/dax0.0`), or a regular stand-in file.
    pub device: PathBuf,
    /// Byte offset of the pool in the device (a multiple of the device alignment).
    pub offset: u64,
    /// Bytes of the device the pool uses (a multiple of the alignment); `None`:
    /// from `offset` to the end of the device.
    pub len: Option<u64>,
    /// Directory holding the device's `size` and `align` attributes; `None`:
    /// `/sys/dev/char/MAJ:MIN` of a character device, the file's length and
    /// [`DEFAULT_ALIGN`] for a regular file.
    pub sysfs_dir: Option<PathBuf>,
    /// What to do when the range holds no pool header.
    pub format: FormatPolicy,
    /// Check every published chunk's data checksum when the pool is opened (reads
    /// all of it once); chunks that fail are dropped.
    pub verify_data: bool,
    /// How the owner lease is taken (see `owner`): who else may hold the range.
    pub owner: OwnerPolicy,
    /// `Some` for a pool shared by several hosts through a cluster (see
    /// `shared`); `None`: one daemon on one host at a time (the owner lease).
    pub shared: Option<SharedLink>,
    /// Cache coherence between the hosts sharing the device (shared pools).
    pub coherence: Coherence,
    /// Where formatting and recovery (with verification) report their progress.
    pub progress: Option<ProgressHook>,
}

impl DevdaxConfig {
    /// The whole of `device`, formatted if blank, data verified at open.
    pub fn new(device: impl Into<PathBuf>) -> DevdaxConfig {
        DevdaxConfig {
            device: device.into(),
            offset: 0,
            len: None,
            sysfs_dir: None,
            format: FormatPolicy::IfBlank,
            verify_data: true,
            owner: OwnerPolicy::default(),
            shared: None,
            coherence: Coherence::None,
            progress: None,
        }
    }
}

/// Formats the pool range of `cfg` as a new, empty pool, destroying every chunk
/// and whatever else it held (the explicit `format-devdax`). Returns the bytes of
/// data the pool offers. Takes the pool's owner lease first (so it refuses a range
/// another daemon holds, as opening does) and releases it when done.
pub fn format(cfg: &DevdaxConfig) -> Result<u64, DevdaxError> {
    store::format(cfg)
}
