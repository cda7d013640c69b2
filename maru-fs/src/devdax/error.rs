//! Why a devdax pool cannot be opened or formatted.

use std::io;
use std::path::PathBuf;

/// What went wrong opening or formatting a devdax pool. Every message names the
/// device and byte offset, and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum DevdaxError {
    /// A system call on the device, its sysfs attributes or a stand-in file failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The device's size or alignment is unusable.
    #[error("device geometry from {path}: {problem}")]
    Geometry {
        /// Where it was read.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The configured byte range does not fit the device.
    #[error("devdax pool on {device}: {problem}")]
    Range {
        /// The device.
        device: PathBuf,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// The range is blank (all zeros where the header goes) and formatting is not allowed.
    #[error("devdax pool on {device} at byte {offset}: no pool header (the range is blank); set `format: if-blank` in the pool's source, or format it explicitly (`maru-devd format-devdax`)")]
    Blank {
        /// The device.
        device: PathBuf,
        /// Byte offset of the pool in the device.
        offset: u64,
    },
    /// The range holds something that is not a Maru pool.
    #[error("devdax pool on {device} at byte {offset}: the range holds data but no Maru pool header; refusing to mount or format over it. If its contents may be destroyed, format it explicitly (`maru-devd format-devdax`)")]
    NotAPool {
        /// The device.
        device: PathBuf,
        /// Byte offset of the pool in the device.
        offset: u64,
    },
    /// Both header copies are damaged.
    #[error("devdax pool on {device} at byte {offset}: the pool header is corrupt ({detail}); refusing to mount it and leaving it untouched. If the chunks on it may be discarded, re-create the pool explicitly (`maru-devd format-devdax`)")]
    Corrupt {
        /// The device.
        device: PathBuf,
        /// Byte offset of the pool in the device.
        offset: u64,
        /// What is wrong with each copy.
        detail: String,
    },
    /// The header was written by another format version.
    #[error("devdax pool on {device} at byte {offset}: format version {found} is not supported (this maru-fs reads version {supported}); {}", version_advice(*found, *supported))]
    Version {
        /// The device.
        device: PathBuf,
        /// Byte offset of the pool in the device.
        offset: u64,
        /// The version found.
        found: u32,
        /// The version this code reads.
        supported: u32,
    },
    /// The header describes another range or alignment than the configuration.
    #[error("devdax pool on {device} at byte {offset}: {detail}; fix the pool's byte range in the configuration (or re-create the pool explicitly with `maru-devd format-devdax`)")]
    Mismatch {
        /// The device.
        device: PathBuf,
        /// Byte offset of the pool in the device.
        offset: u64,
        /// What differs.
        detail: String,
    },
    /// A shared pool and its cluster disagree, or the cluster cannot be reached.
    #[error("shared devdax pool on {device} at byte {offset}: {detail}")]
    Cluster {
        /// The device.
        device: PathBuf,
        /// Byte offset of the pool in the device.
        offset: u64,
        /// What is wrong and what to do.
        detail: String,
    },
    /// Another daemon (on this host or another) holds the pool's owner lease.
    #[error("devdax pool on {device} at byte {offset}: refusing to open it: {detail}")]
    Owned {
        /// The device.
        device: PathBuf,
        /// Byte offset of the pool in the device.
        offset: u64,
        /// Who holds it and what to do.
        detail: String,
    },
}

/// What to do about a pool of another format version.
fn version_advice(found: u32, supported: u32) -> &'static str {
    if found < supported {
        "it was written by an older maru-devd, before the owner lease that keeps two hosts \
         apart; re-create it with `maru-devd format-devdax` (its chunks are dropped: KV cache \
         is recomputed), or keep running the release that wrote it"
    } else {
        "use the maru-devd release that wrote it"
    }
}
