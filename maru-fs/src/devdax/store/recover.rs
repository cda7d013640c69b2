//! Recovery: rebuilding the in-memory index from the on-device records at
//! open, and adding chunks other hosts of a shared pool published.

use super::*;
use crate::devdax::progress::{Reporter, Work};
use crate::devdax::ProgressHook;

impl Inner {
    /// Rebuilds the in-memory index and the free space from the on-device index.
    /// A shared pool recovers only the records of this host's arenas; a published
    /// one survives only if the cluster gives its key to this host and record
    /// (`claimed`). Reports its progress (records, bytes verified) to `progress`.
    pub(super) fn recover(
        &mut self,
        verify_data: bool,
        progress: Option<&ProgressHook>,
        claimed: &HashMap<Vec<u8>, KeyRef>,
    ) -> io::Result<Recovery> {
        let mut rec = Recovery::default();
        let uuid = self.header.uuid;
        let data_start = self.header.data_offset;
        let data_end = data_start + self.header.data_len;
        let mut buf = vec![0u8; RECORD_SIZE as usize];
        if self.shared.is_some() {
            self.map.flush(
                self.header.record_offset(0),
                self.header.record_count * RECORD_SIZE,
            )?;
        }
        let mut progress = Reporter::start(progress, Work::Recover, self.header.record_count);
        // Chunk data bytes checksummed so far.
        let mut verified = 0u64;
        for slot in 0..self.header.record_count {
            progress.update(slot, verified);
            if self.shared.as_ref().is_some_and(|sh| !sh.owns_record(slot)) {
                continue;
            }
            let at = self.header.record_offset(slot);
            self.map.read(at, &mut buf)?;
            let r = match Record::decode(&buf, &uuid) {
                Slot::Free => {
                    self.free_slots.insert(slot);
                    continue;
                }
                Slot::Bad(why) => {
                    log::warn!(
                        "devdax pool on {}: dropping index record {slot}: {why}",
                        self.device.display()
                    );
                    rec.damaged_dropped += 1;
                    self.map.zero(at, RECORD_SIZE)?;
                    self.free_slots.insert(slot);
                    continue;
                }
                Slot::Used(r) => r,
            };
            let in_arena = self
                .shared
                .as_ref()
                .is_none_or(|sh| r.extent_len == 0 || sh.owns_extent(r.extent_off, r.extent_len));
            if r.state == RecordState::Removing {
                // Removed while other hosts may map it: keep the extent out of use.
                if in_arena && r.extent_len > 0 && self.alloc.reserve(r.extent_off, r.extent_len) {
                    rec.quarantined += 1;
                    if let Some(sh) = self.shared.as_mut() {
                        sh.quarantine.insert(slot, (r.seq, r.extent()));
                    }
                    continue;
                }
                self.map.zero(at, RECORD_SIZE)?;
                self.free_slots.insert(slot);
                continue;
            }
            let unclaimed = r.state == RecordState::Published
                && self.shared.as_ref().is_some_and(|sh| {
                    claimed.get(&r.name)
                        != Some(&KeyRef {
                            host: sh.link.0.host().to_string(),
                            slot,
                        })
                });
            if r.state == RecordState::Staging || unclaimed {
                if unclaimed {
                    log::warn!(
                        "devdax pool on {}: dropping index record {slot} (key {:?}): the \
                         cluster does not record it as this host's (a publish that lost, or \
                         that crashed before the cluster took it)",
                        self.device.display(),
                        String::from_utf8_lossy(&r.name)
                    );
                }
                rec.staging_dropped += 1;
                self.map.zero(at, RECORD_SIZE)?;
                self.free_slots.insert(slot);
                continue;
            }
            let name = OsString::from_vec(r.name.clone());
            let sane = !name.is_empty()
                && in_arena
                && !self.names.contains_key(&name)
                && r.extent_len == self.alloc.round(r.size)
                && (r.extent_len == 0
                    || (r.extent_off >= data_start
                        && r.extent_off.saturating_add(r.extent_len) <= data_end));
            let reserved =
                sane && (r.extent_len == 0 || self.alloc.reserve(r.extent_off, r.extent_len));
            if !reserved {
                log::warn!(
                    "devdax pool on {}: dropping index record {slot} (key {:?}): its name or \
                     extent {}+{} clashes with another chunk or lies outside the data area",
                    self.device.display(),
                    name,
                    r.extent_off,
                    r.extent_len
                );
                rec.damaged_dropped += 1;
                self.map.zero(at, RECORD_SIZE)?;
                self.free_slots.insert(slot);
                continue;
            }
            let crc = if verify_data {
                verified += r.size;
                Some(self.map.crc(r.extent_off, r.size)?)
            } else {
                None
            };
            if crc.is_some_and(|crc| crc != r.data_crc) {
                log::warn!(
                    "devdax pool on {}: dropping chunk {:?}: its data no longer matches the \
                     checksum taken when it was published",
                    self.device.display(),
                    name
                );
                rec.data_mismatch += 1;
                self.alloc.free(r.extent_off, r.extent_len);
                self.map.zero(at, RECORD_SIZE)?;
                self.free_slots.insert(slot);
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            self.next_seq = self.next_seq.max(r.seq + 1);
            self.names.insert(name.clone(), id);
            self.entries.insert(id, Entry::published(slot, *r, None));
            rec.published += 1;
        }
        progress.finish(verified);
        fence(Ordering::SeqCst);
        Ok(rec)
    }

    /// Adds the chunks other hosts published (from the cluster's snapshot).
    pub(super) fn adopt_remote_keys(&mut self, claimed: &HashMap<Vec<u8>, KeyRef>) {
        let Some(me) = self.shared.as_ref().map(|sh| sh.link.0.host().to_string()) else {
            return;
        };
        for (key, at) in claimed {
            if at.host != me {
                self.adopt_remote(OsStr::from_bytes(key), at);
            }
        }
    }

    /// Adds another host's published chunk `name` from its record `at.slot`;
    /// returns its id, or `None` (logged) when the record does not hold it.
    pub(super) fn adopt_remote(&mut self, name: &OsStr, at: &KeyRef) -> Option<u64> {
        let sh = self.shared.as_ref()?;
        if at.host == sh.link.0.host() || self.names.contains_key(name) {
            return None;
        }
        if at.slot >= self.header.record_count || sh.owns_record(at.slot) {
            log::warn!(
                "devdax pool on {}: host {} published {:?} in record {}, which is not one of \
                 its records; ignoring it",
                self.device.display(),
                at.host,
                name,
                at.slot
            );
            return None;
        }
        let off = self.header.record_offset(at.slot);
        let mut buf = vec![0u8; RECORD_SIZE as usize];
        let read = self
            .map
            .flush(off, RECORD_SIZE)
            .and_then(|()| self.map.read(off, &mut buf));
        let r = match (read, Record::decode(&buf, &self.header.uuid)) {
            (Ok(()), Slot::Used(r))
                if r.state == RecordState::Published && r.name == name.as_bytes() =>
            {
                r
            }
            (read, slot) => {
                log::warn!(
                    "devdax pool on {}: host {} published {:?} in record {}, but the record \
                     says otherwise ({}); not serving it",
                    self.device.display(),
                    at.host,
                    name,
                    at.slot,
                    match (read, slot) {
                        (Err(e), _) => e.to_string(),
                        (_, Slot::Free) => "free".into(),
                        (_, Slot::Bad(why)) => why,
                        (_, Slot::Used(r)) =>
                            format!("{:?} {:?}", r.state, String::from_utf8_lossy(&r.name)),
                    }
                );
                return None;
            }
        };
        let data_end = self.header.data_offset + self.header.data_len;
        if r.extent_len != self.alloc.round(r.size)
            || (r.extent_len > 0
                && (r.extent_off < self.header.data_offset
                    || r.extent_off.saturating_add(r.extent_len) > data_end))
        {
            log::warn!(
                "devdax pool on {}: record {} of host {} has an extent outside the data area; \
                 not serving {:?}",
                self.device.display(),
                at.slot,
                at.host,
                name
            );
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.names.insert(name.to_os_string(), id);
        let (extent_off, extent_len) = (r.extent_off, r.extent_len);
        self.entries
            .insert(id, Entry::published(at.slot, *r, Some(at.host.clone())));
        if !self.coherent && extent_len > 0 {
            // This host may hold lines of the extent from before the other host
            // wrote it (an earlier chunk there): drop them now, once, so every
            // reader on this host — zero-copy mappings of the device node included —
            // reads what the writer wrote. The chunk is sealed: nothing re-dirties it.
            if let Err(e) = self.map.flush(extent_off, extent_len) {
                log::warn!(
                    "devdax pool on {}: cannot invalidate the cache lines of {:?}: {e}",
                    self.device.display(),
                    name
                );
            }
        }
        Some(id)
    }
}
