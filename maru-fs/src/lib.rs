//! maru-fs: the FUSE filesystem that shows each pool as a directory and each KV
//! chunk as a file whose pages are the pool's own (FUSE passthrough).
//!
//! The daemon calls [`mount`] with one [`PoolConfig`] per pool and keeps the
//! returned [`Mounted`]; [`Control`] adds and removes pools, takes them on- and
//! offline and reads their [`PoolStats`]. Clients use plain file calls on
//! `<mount>/<pool>/<key>`; the namespace, errno contract and xattrs are described in
//! `docs/maru-fs.md`.

// Raw system calls and mapped memory live in `sys` only.
#![deny(unsafe_code)]

mod backing;
mod chunk_file;
mod config;
pub mod devdax;
mod error;
mod fs;
pub mod index;
mod lease;
mod lend;
mod mount;
mod notify;
pub mod pattern;
mod ratelimit;
mod reaper;
mod state;
mod stats;
#[allow(unsafe_code)] // the one system layer
mod sys;
#[cfg(test)]
mod test_file;
mod xattr;

pub use config::{Backing, Eviction, MountOptions, PoolConfig, DEFAULT_MAX_STAGING_PER_UID};
pub use error::FsError;
pub use mount::{mount, Control, Mounted};
pub use stats::{ChunkCharge, PoolCharges, PoolStats};
