//! Chunks of a shared pool published or removed by other hosts (the cluster's
//! watch tells the daemon, which tells the filesystem through [`crate::Control`]).

use std::ffi::OsStr;
use std::io;

use super::{is_staging_name, Chunk, State};
use crate::devdax::KeyRef;
use crate::notify::Notice;

impl State {
    /// Shows chunk `key` of shared pool `pool`, published by another host in the
    /// record `at` names. Charged nothing here (its extent is that host's). `false`
    /// if it was already known, is this host's own, or its record does not hold it.
    pub fn adopt_remote(&mut self, pool: &str, key: &OsStr, at: &KeyRef) -> bool {
        let Some(&pool_ino) = self.pools.get(pool) else {
            return false;
        };
        let found = self
            .pool_nodes
            .get(&pool_ino)
            .and_then(|p| p.store.shared_devdax())
            .and_then(|d| d.adopt_remote(key, at));
        let Some(found) = found else {
            return false;
        };
        let ino = self.alloc_ino();
        let tick = self.next_tick();
        let Some(p) = self.pool_nodes.get_mut(&pool_ino) else {
            return false;
        };
        p.entries.insert(key.to_os_string(), ino);
        p.set_listed(ino, !is_staging_name(key));
        self.chunks
            .insert(ino, Chunk::adopted(pool_ino, found, 0, tick));
        // A lookup of the key before it existed left a negative entry in the
        // kernel's cache: drop it, so the key is visible at once.
        self.notices.push(Notice::InvalEntry {
            parent: pool_ino,
            name: key.to_os_string(),
        });
        true
    }

    /// Hides chunk `key` of shared pool `pool`, removed from the cluster (by any
    /// host). Its handles stay valid; a chunk of this host's keeps its extent
    /// quarantined. `false` if the pool had no such key.
    pub fn remote_removed(&mut self, pool: &str, key: &OsStr) -> bool {
        let Some(&pool_ino) = self.pools.get(pool) else {
            return false;
        };
        let Some(p) = self.pool_nodes.get(&pool_ino) else {
            return false;
        };
        let Some(&ino) = p.entries.get(key) else {
            return self.removed_while_publishing(pool_ino, key);
        };
        let dropped = p.store.shared_devdax().map(|d| d.remote_removed(key));
        match dropped {
            Some(Ok(true)) => {
                self.unname(ino, true);
                true
            }
            Some(Err(e)) => {
                log::warn!("pool {pool}: cannot drop {key:?}, removed by the cluster: {e}");
                false
            }
            _ => false,
        }
    }

    /// The shared devdax store of pool `pool`.
    fn shared_store(&self, pool: &str) -> Option<&crate::devdax::DevdaxStore> {
        self.pool_nodes
            .get(self.pools.get(pool)?)?
            .store
            .shared_devdax()
    }

    /// This host's removed chunks of shared pool `pool` whose extents wait for the
    /// other hosts: `(record slot, publish sequence)` each.
    pub fn quarantined(&self, pool: &str) -> Vec<(u64, u64)> {
        self.shared_store(pool)
            .map_or_else(Vec::new, |d| d.quarantined())
    }

    /// Bytes of this host's quarantined extents in shared pool `pool`.
    pub fn quarantined_bytes(&self, pool: &str) -> u64 {
        self.shared_store(pool).map_or(0, |d| d.quarantined_bytes())
    }

    /// Whether this host still has the chunk `writer` published in record `slot`
    /// with sequence `seq` (named, or open by a process).
    pub fn holds_remote(&self, pool: &str, writer: &str, slot: u64, seq: u64) -> bool {
        self.shared_store(pool)
            .is_some_and(|d| d.holds_remote(writer, slot, seq))
    }

    /// Whether `key` is this host's published chunk in record `slot` of shared pool
    /// `pool`.
    pub fn owns_published(&self, pool: &str, key: &OsStr, slot: u64) -> bool {
        self.shared_store(pool)
            .is_some_and(|d| d.owns_published(key, slot))
    }

    /// Frees the quarantined extent of record `slot` (sequence `seq`): every other
    /// host let go of it.
    pub fn release_quarantined(&self, pool: &str, slot: u64, seq: u64) -> io::Result<bool> {
        match self.shared_store(pool) {
            Some(d) => d.release_quarantined(slot, seq),
            None => Ok(false),
        }
    }

    /// The cluster revision shared pool `pool` was read at.
    pub fn cluster_revision(&self, pool: &str) -> Option<i64> {
        let p = self.pool_nodes.get(self.pools.get(pool)?)?;
        p.store.shared_devdax()?.revision()
    }
}
