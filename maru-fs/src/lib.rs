//! maru-fs: the FUSE filesystem that shows each pool as a directory and each KV
//! chunk as a file whose pages are the pool's own (FUSE passthrough).
//!
//! The daemon calls [`mount`] with one [`PoolConfig`] per pool and keeps the
//! returned [`Mounted`]; [`Control`] adds and removes pools, takes them on- and
//! offline and reads their [`PoolStats`]. Clients use plain file calls on
//! `<mount>/<pool>/<key>`; the namespace, errno contract and xattrs are described in
//! `docs/maru-fs.md`.

#[deny(unsafe_code)]
mod backing;
#[deny(unsafe_code)]
mod chunk_file;
#[deny(unsafe_code)]
mod config;
pub mod devdax;
#[deny(unsafe_code)]
mod error;
#[deny(unsafe_code)]
mod fs;
pub mod index;
#[deny(unsafe_code)]
mod lease;
#[deny(unsafe_code)]
mod mount;
#[deny(unsafe_code)]
mod notify;
#[deny(unsafe_code)]
pub mod pattern;
#[deny(unsafe_code)]
mod ratelimit;
mod reaper;
#[deny(unsafe_code)]
mod state;
#[deny(unsafe_code)]
mod stats;
mod sys;
#[cfg(test)]
mod test_file;
#[deny(unsafe_code)]
mod xattr;

pub use config::{Backing, Eviction, MountOptions, PoolConfig, DEFAULT_MAX_STAGING_PER_UID};
pub use error::FsError;
pub use mount::{mount, Control, Mounted};
pub use stats::{ChunkCharge, PoolCharges, PoolStats};
