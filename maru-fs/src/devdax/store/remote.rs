//! What a shared pool adds: this host's arenas and quarantined extents, and the
//! cluster's news of keys other hosts published or removed.

use super::*;

impl SharedPart {
    pub(super) fn owns_record(&self, slot: u64) -> bool {
        self.arenas
            .of_record(slot)
            .is_some_and(|n| self.mine.contains(&n))
    }

    pub(super) fn owns_extent(&self, off: u64, len: u64) -> bool {
        self.mine.iter().any(|&n| self.arenas.holds(n, off, len))
    }
}

impl DevdaxStore {
    /// Another host removed `name` from the shared pool (or this host did, and the
    /// cluster says so): drops the name here. `true` if there was one.
    pub fn remote_removed(&self, name: &OsStr) -> io::Result<bool> {
        let mut inner = lock(&self.inner);
        let Some(&id) = inner.names.get(name) else {
            return Ok(false);
        };
        if inner.entry(id)?.rec.state != RecordState::Published {
            return Ok(false);
        }
        inner.unname(id)?;
        Ok(true)
    }

    /// Another host published `name` in the shared pool, in record `at.slot`:
    /// reads the record from the device and adds the chunk here (read-only).
    /// `None` if it is this host's own key, already known, or the record does not
    /// (yet) say so.
    pub fn adopt_remote(&self, name: &OsStr, at: &KeyRef) -> Option<Found> {
        let mut inner = lock(&self.inner);
        let id = inner.adopt_remote(name, at)?;
        inner.entries.get(&id)?.found()
    }

    /// This host's removed chunks of a shared pool whose extents are quarantined:
    /// `(record slot, publish sequence)` each.
    pub fn quarantined(&self) -> Vec<(u64, u64)> {
        let inner = lock(&self.inner);
        inner.shared.as_ref().map_or_else(Vec::new, |sh| {
            sh.quarantine
                .iter()
                .map(|(slot, (seq, _))| (*slot, *seq))
                .collect()
        })
    }

    /// Bytes of quarantined extents (this host's removed chunks waiting for others).
    pub fn quarantined_bytes(&self) -> u64 {
        let inner = lock(&self.inner);
        inner
            .shared
            .as_ref()
            .map_or(0, |sh| sh.quarantine.values().map(|(_, ext)| ext.len).sum())
    }

    /// Whether `name` is this host's published chunk in index record `slot`.
    pub fn owns_published(&self, name: &OsStr, slot: u64) -> bool {
        let inner = lock(&self.inner);
        // A key whose publish waits for the cluster's answer is owned too: the
        // cluster may have applied it already.
        inner
            .names
            .get(name)
            .or_else(|| inner.publishing.get(name))
            .and_then(|id| inner.entries.get(id))
            .is_some_and(|e| {
                !e.is_remote() && e.slot == Some(slot) && e.rec.state == RecordState::Published
            })
    }

    /// Whether this host still has (named or open) the chunk host `writer` published
    /// in record `slot` with sequence `seq`.
    pub fn holds_remote(&self, writer: &str, slot: u64, seq: u64) -> bool {
        let inner = lock(&self.inner);
        inner.entries.values().any(|e| {
            e.slot == Some(slot) && e.rec.seq == seq && e.origin.as_deref() == Some(writer)
        })
    }

    /// Every other host let go of this host's removed chunk in record `slot` (with
    /// sequence `seq`): its extent and record are free again. `false` if it was not
    /// quarantined (any more).
    pub fn release_quarantined(&self, slot: u64, seq: u64) -> io::Result<bool> {
        let mut inner = lock(&self.inner);
        let Some(sh) = inner.shared.as_mut() else {
            return Ok(false);
        };
        match sh.quarantine.get(&slot) {
            Some((s, _)) if *s == seq => {}
            _ => return Ok(false),
        }
        let Some((_, ext)) = sh.quarantine.remove(&slot) else {
            return Ok(false);
        };
        let at = inner.header.record_offset(slot);
        inner.map.zero(at, RECORD_SIZE)?;
        inner.map.flush(at, RECORD_SIZE)?;
        inner.alloc.free(ext.offset, ext.len);
        inner.free_slots.insert(slot);
        Ok(true)
    }

    /// The cluster revision a shared pool's state was read at; watch from the next.
    pub fn revision(&self) -> Option<i64> {
        lock(&self.inner).shared.as_ref().map(|sh| sh.revision)
    }
}
