//! Shared devdax pools: one pool on a device that several hosts attach to, each
//! host serving it through its own daemon, coordinated through a [`Coordinator`]
//! (maru-devd's is etcd; see `docs/multihost.md`).
//!
//! The on-device format is the same as a single-host pool's. What sharing adds:
//! * **arenas**: the data area and the index are cut into [`Arenas::count`] equal
//!   arenas; a host allocates extents and writes records only in arenas granted to it
//!   by the coordinator, so hosts never contend on the device;
//! * **publish** is a coordinator transaction (first writer wins across hosts; the
//!   loser gets `EEXIST`); the chunk's bytes are written back from the CPU caches
//!   before it, so another host without cache coherence reads what was written;
//! * **visibility**: the coordinator tells every host about keys published
//!   elsewhere; a host adopts them read-only from their records (`Origin::Remote`);
//! * **removal** of a key is a coordinator delete (from any host); its writer's host
//!   marks the record *removing* and keeps the extent: it is never reused until the
//!   other hosts say they let go (not yet: such extents stay quarantined until the
//!   pool is re-created — safety over space).

use std::fmt;
use std::io;
use std::sync::Arc;

/// What a shared pool needs from the cluster. Calls block (network round trips);
/// none is made on a reader's path (lookups, opens, reads and maps stay local).
pub trait Coordinator: Send + Sync {
    /// This host's name in the cluster (recorded with every key it publishes).
    fn host(&self) -> &str;
    /// Registers the pool header's `uuid` if the cluster has none, else compares:
    /// `Ok(None)` when it is (now) the cluster's, `Ok(Some(other))` when the cluster
    /// knows the pool under another UUID.
    fn check_identity(&self, uuid: &[u8; 16]) -> io::Result<Option<[u8; 16]>>;
    /// The arenas granted to this host, out of `count`; claims a free one when it
    /// holds none (and returns an empty list when none is free).
    fn arenas(&self, count: u32) -> io::Result<Vec<u32>>;
    /// Claims one more free arena, out of `count`; `None` when none is free.
    fn claim_arena(&self, count: u32) -> io::Result<Option<u32>>;
    /// `Ok` while this host may create and publish (its cluster session is live);
    /// an error (EIO) while it cannot renew it.
    fn writable(&self) -> io::Result<()>;
    /// Publishes `key` (the chunk is in index record `slot`): `EEXIST` if any host
    /// published it first.
    fn publish(&self, key: &[u8], slot: u64) -> io::Result<()>;
    /// Removes `key` from the cluster (any host may; its writer's host frees it).
    fn remove(&self, key: &[u8]) -> io::Result<()>;
    /// Every published key with where it is, and the revision to watch from.
    fn snapshot(&self) -> io::Result<(Vec<Published>, i64)>;
}

/// A published key and where it lives.
pub type Published = (Vec<u8>, KeyRef);

/// Where a published key lives: the host that wrote it and its index record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRef {
    /// The writer's host.
    pub host: String,
    /// The index record (slot) of the chunk.
    pub slot: u64,
}

impl KeyRef {
    /// The value stored with a key in the cluster: `host=NAME;slot=N`.
    pub fn encode(&self) -> Vec<u8> {
        format!("host={};slot={}", self.host, self.slot).into_bytes()
    }

    /// Parses [`KeyRef::encode`]'s form.
    pub fn decode(v: &[u8]) -> Option<KeyRef> {
        let text = std::str::from_utf8(v).ok()?;
        let (mut host, mut slot) = (None, None);
        for field in text.split(';') {
            match field.split_once('=')? {
                ("host", h) => host = Some(h.to_string()),
                ("slot", s) => slot = s.parse().ok(),
                _ => {}
            }
        }
        Some(KeyRef {
            host: host?,
            slot: slot?,
        })
    }
}

/// A shared pool's link to its cluster.
#[derive(Clone)]
pub struct SharedLink(pub Arc<dyn Coordinator>);

impl fmt::Debug for SharedLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedLink(host {})", self.0.host())
    }
}

impl PartialEq for SharedLink {
    fn eq(&self, other: &SharedLink) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SharedLink {}

/// How a pool's data area and index are cut into arenas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Arenas {
    /// Number of arenas.
    pub count: u32,
    /// First byte of the data area.
    data_offset: u64,
    /// Bytes per arena (a multiple of the alignment).
    data_len: u64,
    /// Records per arena.
    records: u64,
}

/// Most arenas a pool is cut into.
const MAX_ARENAS: u64 = 64;
/// Fewest extents (alignment units) an arena holds.
const MIN_EXTENTS: u64 = 4;

impl Arenas {
    /// The arenas of a pool whose data area is `data_len` bytes from `data_offset`,
    /// at alignment `align`, with `record_count` index records. Every host computes
    /// the same from the header.
    pub fn of(data_offset: u64, data_len: u64, align: u64, record_count: u64) -> Arenas {
        let units = data_len / align;
        let count = (units / MIN_EXTENTS)
            .clamp(1, MAX_ARENAS)
            .min(record_count.max(1));
        Arenas {
            count: count as u32,
            data_offset,
            data_len: units / count * align,
            records: record_count / count,
        }
    }

    /// The data bytes `(offset, len)` of arena `n`.
    pub fn data(&self, n: u32) -> (u64, u64) {
        (
            self.data_offset + u64::from(n) * self.data_len,
            self.data_len,
        )
    }

    /// The index records of arena `n`.
    pub fn records(&self, n: u32) -> std::ops::Range<u64> {
        let start = u64::from(n) * self.records;
        start..start + self.records
    }

    /// The arena that index record `slot` belongs to.
    pub fn of_record(&self, slot: u64) -> Option<u32> {
        let n = slot / self.records.max(1);
        (n < u64::from(self.count)).then_some(n as u32)
    }

    /// Whether `[off, off + len)` lies inside arena `n`.
    pub fn holds(&self, n: u32, off: u64, len: u64) -> bool {
        let (start, alen) = self.data(n);
        off >= start && off.saturating_add(len) <= start + alen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn arenas_cut_the_data_area_and_index_evenly() {
        let a = Arenas::of(2 * MIB, 254 * MIB, 2 * MIB, 128);
        assert_eq!(a.count, 31);
        assert_eq!(a.data(0), (2 * MIB, 8 * MIB));
        assert_eq!(a.data(30), (2 * MIB + 30 * 8 * MIB, 8 * MIB));
        assert!(a.data(30).0 + a.data(30).1 <= 2 * MIB + 254 * MIB);
        assert_eq!(a.records(1), 4..8);
        assert_eq!(a.of_record(5), Some(1));
        assert_eq!(a.of_record(124), None);
        assert!(a.holds(1, 10 * MIB, 2 * MIB));
        assert!(!a.holds(1, 16 * MIB, 4 * MIB));
        // A tiny pool is one arena.
        assert_eq!(Arenas::of(2 * MIB, 6 * MIB, 2 * MIB, 16).count, 1);
    }

    #[test]
    fn key_refs_round_trip() {
        let r = KeyRef {
            host: "node-a".into(),
            slot: 17,
        };
        assert_eq!(KeyRef::decode(&r.encode()), Some(r));
        assert_eq!(KeyRef::decode(b"host=x"), None);
        assert_eq!(KeyRef::decode(b"\xff"), None);
    }
}
