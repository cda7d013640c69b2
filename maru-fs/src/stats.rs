//! Per-pool statistics, read by the daemon through [`crate::Control::stats`].

/// A snapshot of one pool's counters and occupancy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    /// READ requests served by the daemon (0 while passthrough works).
    pub read_requests: u64,
    /// WRITE requests served by the daemon (0 while passthrough works).
    pub write_requests: u64,
}
