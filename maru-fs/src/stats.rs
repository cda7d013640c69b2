//! Per-pool statistics, read by the daemon through [`crate::Control::stats`], and
//! the books behind `used_bytes` ([`crate::Control::charges`]).

use std::collections::BTreeMap;
use std::ffi::OsString;

/// A snapshot of one pool's counters and occupancy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default)
)]
pub struct PoolStats {
    /// Pool name.
    pub name: String,
    /// Whether new chunks may be created.
    pub online: bool,
    /// Why the pool is offline, if it is and a reason was given.
    pub offline_reason: Option<String>,
    /// Configured capacity in bytes.
    pub capacity: u64,
    /// Bytes charged to chunks (staging, published, and unlinked-but-open).
    pub used_bytes: u64,
    /// Bytes of chunks that are open or mapped by some process.
    pub pinned_bytes: u64,
    /// Chunks visible under a key.
    pub published_chunks: u64,
    /// Staging chunks (created, not yet published).
    pub staging_chunks: u64,
    /// Staging chunks created since mount.
    pub creates: u64,
    /// Successful publishes since mount.
    pub publishes: u64,
    /// Key lookups that reached the server (the kernel caches the rest).
    pub lookups: u64,
    /// Key lookups that found a published chunk.
    pub hits: u64,
    /// Chunks evicted to make room.
    pub evictions: u64,
    /// Chunks removed by a client (unlink through the mount) since mount.
    pub removals: u64,
    /// READ requests served by the daemon (0 while passthrough works).
    pub read_requests: u64,
    /// WRITE requests served by the daemon (0 while passthrough works).
    pub write_requests: u64,
    /// Requests on the pool or its chunks the daemon answered with an error since mount,
    /// by errno name (`ENOSPC`, `EEXIST`, ...; a number for an errno without a name).
    pub errors: BTreeMap<String, u64>,
}

/// One pool's books: what `used_bytes` is made of. `used_bytes` always equals the
/// sum of the chunks' `charged` plus `removed_bytes`; tests check that, and that
/// every named chunk's backing file holds no byte more than it is charged for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolCharges {
    /// Pool name.
    pub name: String,
    /// Configured capacity in bytes.
    pub capacity: u64,
    /// Bytes charged to the pool (what `stats`, `statfs` and xattr [`maru_proto::xattr::USED`] show).
    pub used_bytes: u64,
    /// Every chunk the daemon still knows (named, or unlinked with a handle open).
    pub chunks: Vec<ChunkCharge>,
    /// Bytes of removed chunks whose memory is still held (a descriptor or a
    /// mapping remains): returned by the reaper when the kernel frees it.
    pub removed_bytes: u64,
}

/// One chunk's entry in [`PoolCharges`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkCharge {
    /// Its name (a key or a `.` staging name), `None` once removed.
    pub name: Option<OsString>,
    /// Whether it is published.
    pub published: bool,
    /// Its size as the daemon knows it.
    pub size: u64,
    /// Bytes charged to the pool for it.
    pub charged: u64,
}
