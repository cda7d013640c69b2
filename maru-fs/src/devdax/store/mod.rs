//! A devdax pool: the daemon's mapping of its byte range, the extent allocator and
//! the on-device index, with chunk handles that behave like open files.
//!
//! The types and the pool's own operations (create, open, rename/publish, remove)
//! live here; the rest by room: `open` (the range, header and owner lease),
//! `recover` (rebuilding the index at open), `handle` (an open chunk's bytes)
//! and `remote` (what a pool shared by several hosts adds).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::alloc::Allocator;
use super::geometry::Geometry;
use super::host_id::HostIdentity;
use super::layout::{
    now_secs, xattr_bytes, Extent, Header, Record, RecordState, Slot, SlotProblem, INDEX_OFFSET,
    LEASE_OFFSET, RECORD_SIZE, SLOT_SIZE, VERSION, XATTR_SPACE,
};
use super::mapping::Mapping;
use super::owner::{OwnerLease, Place};
use super::shared::{Arenas, KeyRef, SharedLink};
use super::{Coherence, DevdaxConfig, DevdaxError, FormatPolicy};
use crate::backing::{ChunkMeta, Found};

mod handle;
mod open;
mod recover;
mod remote;

pub(crate) use open::{format, random_uuid};

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// What recovery did when the pool was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Published chunks found again.
    pub published: u64,
    /// Staging records (chunks never published) dropped.
    pub staging_dropped: u64,
    /// Records dropped because their checksum or contents were bad.
    pub damaged_dropped: u64,
    /// Published chunks dropped because their data no longer matches its checksum.
    pub data_mismatch: u64,
    /// Extents of chunks removed from a shared pool, kept (never reused) because
    /// other hosts may still map them.
    pub quarantined: u64,
}

/// One chunk of the pool, named or (unlinked, still open) not.
#[derive(Debug)]
struct Entry {
    /// Index slot of its record; `None` once the record is cleared (removed).
    slot: Option<u64>,
    /// The chunk as its record describes it (the name empty once it is taken
    /// away): what [`Inner::write_record`] writes.
    rec: Record,
    /// Open [`ChunkHandle`]s.
    handles: u32,
    /// The chunk's bytes: held shared while they are read or written (outside the
    /// pool's lock), exclusively while the extent moves or the checksum is taken.
    data: Arc<RwLock<()>>,
    /// The data checksum taken by [`ChunkHandle::seal`] ahead of publishing: while
    /// set, the chunk's bytes and size cannot change.
    sealed: Option<u32>,
    /// `Some(host)` for a chunk another host of a shared pool published: read-only
    /// here, its record and extent are that host's (never written, never freed by
    /// this one).
    origin: Option<String>,
}

/// Everything behind the pool's lock.
#[derive(Debug)]
struct Inner {
    device: PathBuf,
    /// Byte offset of the pool in the device.
    region_offset: u64,
    map: Arc<Mapping>,
    /// This daemon's hold on the range; every operation checks it is still held.
    owner: OwnerLease,
    header: Header,
    alloc: Allocator,
    entries: HashMap<u64, Entry>,
    names: HashMap<OsString, u64>,
    /// Keys of a shared pool whose publish waits for the cluster's answer (outside
    /// every lock, see [`PendingPublish`]), with the chunk each names: taken (a
    /// create or rename to one is `EEXIST`) but not yet visible.
    publishing: HashMap<OsString, u64>,
    free_slots: BTreeSet<u64>,
    next_id: u64,
    next_seq: u64,
    /// The cluster side of a shared pool.
    shared: Option<SharedPart>,
    /// The hosts' CPU caches are kept coherent by the hardware (no write-back at
    /// publish, no invalidation of other hosts' chunks).
    coherent: bool,
}

/// What a shared pool adds to the store.
#[derive(Debug)]
struct SharedPart {
    link: SharedLink,
    arenas: Arenas,
    /// Arenas granted to this host.
    mine: BTreeSet<u32>,
    /// The cluster revision the pool's state was taken at (watch from the next).
    revision: i64,
    /// This host's removed chunks whose extents wait for every other host to let go:
    /// record slot -> (publish sequence, extent offset, extent length).
    quarantine: BTreeMap<u64, (u64, Extent)>,
}

/// An open devdax pool.
#[derive(Debug)]
pub(crate) struct DevdaxStore {
    inner: Arc<Mutex<Inner>>,
    device: PathBuf,
    /// Served by several hosts through a cluster (fixed at open).
    shared: bool,
}

/// An open chunk: reads, writes and sizes go to the pool's mapping. The chunk's
/// extent stays allocated while any handle is alive, even after its name is
/// removed (like an unlinked, still open file).
#[derive(Debug)]
pub(crate) struct ChunkHandle {
    inner: Arc<Mutex<Inner>>,
    /// The pool's mapping, for copies made without the pool's lock.
    map: Arc<Mapping>,
    /// The chunk's data lock (see [`Entry::data`]).
    data: Arc<RwLock<()>>,
    id: u64,
}

/// A publish of a shared pool's chunk between [`DevdaxStore::rename_begin`], which
/// checked, reserved the key and wrote the record as published, and
/// [`PendingPublish::end`], which makes the key visible or undoes the record. The
/// cluster transaction in between ([`PendingPublish::claim`], a network round trip)
/// holds no lock.
#[derive(Debug)]
pub(crate) struct PendingPublish {
    inner: Arc<Mutex<Inner>>,
    link: SharedLink,
    id: u64,
    slot: u64,
    from: OsString,
    to: OsString,
    /// The record's name, state, sequence and checksum before, restored if the
    /// cluster refuses.
    old: (Vec<u8>, RecordState, u64, u32),
}

impl PendingPublish {
    /// Asks the cluster for the key (first writer wins: `EEXIST` if another host has
    /// it; `EIO` if the cluster cannot be reached). Blocks; call it without locks.
    pub fn claim(&self) -> io::Result<()> {
        self.link.0.publish(self.to.as_bytes(), self.slot)
    }

    /// Ends the publish with the cluster's answer `claimed`: the key becomes the
    /// chunk's name, or (on an error, returned) the record is what it was.
    pub fn end(self, claimed: io::Result<()>) -> io::Result<()> {
        let mut inner = lock(&self.inner);
        inner.publishing.remove(&self.to);
        match claimed {
            Ok(()) => {
                inner.names.remove(&self.from);
                inner.names.insert(self.to, self.id);
                Ok(())
            }
            Err(err) => {
                inner.restore_record(self.id, self.old, &self.from);
                Err(err)
            }
        }
    }
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // A panic elsewhere must not take the pool down; the state stays consistent
    // because every update below completes before it returns.
    inner.lock().unwrap_or_else(|e| e.into_inner())
}

impl DevdaxStore {
    /// Whether the pool is served by several hosts through a cluster.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// The device node (or stand-in file) clients map.
    pub fn device(&self) -> &Path {
        &self.device
    }

    /// Bytes in the data area.
    pub fn data_len(&self) -> u64 {
        lock(&self.inner).header.data_len
    }

    /// Length of the extent a chunk of `size` bytes takes (0 for an empty chunk).
    pub fn extent_len(&self, size: u64) -> u64 {
        lock(&self.inner).alloc.round(size)
    }

    /// Creates an empty staging chunk `name` and opens it.
    pub fn create(&self, name: &OsStr, uid: u32, mode: u16) -> io::Result<ChunkHandle> {
        let mut inner = lock(&self.inner);
        inner.owner.check()?;
        if let Some(sh) = &inner.shared {
            sh.link.0.writable()?;
        }
        if inner.names.contains_key(name) || inner.publishing.contains_key(name) {
            return Err(errno(libc::EEXIST));
        }
        if inner.free_slots.is_empty() {
            inner.claim_arena();
        }
        let slot = inner.free_slots.pop_first().ok_or_else(|| {
            log::warn!(
                "devdax pool on {}: all {} index records are in use",
                inner.device.display(),
                inner.header.record_count
            );
            errno(libc::ENOSPC)
        })?;
        let id = inner.next_id;
        inner.next_id += 1;
        let data = Arc::new(RwLock::new(()));
        let entry = Entry {
            slot: Some(slot),
            rec: Record {
                state: RecordState::Staging,
                seq: 0,
                extent_off: 0,
                extent_len: 0,
                size: 0,
                data_crc: 0,
                uid,
                mode: u32::from(mode),
                created: now_secs(),
                name: name.as_bytes().to_vec(),
                xattrs: Vec::new(),
            },
            handles: 1,
            data: Arc::clone(&data),
            sealed: None,
            origin: None,
        };
        inner.entries.insert(id, entry);
        if let Err(e) = inner.write_record(id) {
            inner.entries.remove(&id);
            inner.free_slots.insert(slot);
            return Err(e);
        }
        inner.names.insert(name.to_os_string(), id);
        Ok(ChunkHandle {
            inner: Arc::clone(&self.inner),
            map: Arc::clone(&inner.map),
            data,
            id,
        })
    }

    /// Opens the chunk named `name`.
    pub fn open_chunk(&self, name: &OsStr) -> io::Result<ChunkHandle> {
        let mut inner = lock(&self.inner);
        inner.owner.check()?;
        let id = *inner.names.get(name).ok_or_else(|| errno(libc::ENOENT))?;
        let map = Arc::clone(&inner.map);
        let e = inner.entry_mut(id)?;
        e.handles += 1;
        Ok(ChunkHandle {
            inner: Arc::clone(&self.inner),
            map,
            data: Arc::clone(&e.data),
            id,
        })
    }

    /// Renames `from` to `to` (`EEXIST` if `to` exists). Renaming a staging chunk
    /// to a name not starting with `.` publishes it: its data checksum is taken
    /// (unless [`ChunkHandle::seal`] took it already, outside the pool's lock) and
    /// its record marked published. (The filesystem uses [`DevdaxStore::rename_begin`],
    /// to ask the cluster without the pool's lock.)
    #[cfg(test)]
    pub fn rename_noreplace(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        match self.rename_begin(from, to)? {
            None => Ok(()),
            Some(pending) => {
                let claimed = pending.claim();
                pending.end(claimed)
            }
        }
    }

    /// [`DevdaxStore::rename_noreplace`] up to the cluster: a rename that needs
    /// none is done (`None`); a publish on a shared pool has its record written as
    /// published and its key reserved, and the caller then runs
    /// [`PendingPublish::claim`] without locks and [`PendingPublish::end`].
    pub fn rename_begin(&self, from: &OsStr, to: &OsStr) -> io::Result<Option<PendingPublish>> {
        let mut inner = lock(&self.inner);
        inner.owner.check()?;
        if inner.names.contains_key(to) || inner.publishing.contains_key(to) {
            return Err(errno(libc::EEXIST));
        }
        if to.len() > maru_proto::name::NAME_MAX {
            return Err(errno(libc::ENAMETOOLONG));
        }
        let id = *inner.names.get(from).ok_or_else(|| errno(libc::ENOENT))?;
        if inner.publishing.values().any(|&p| p == id) {
            return Err(errno(libc::EBUSY));
        }
        let publish = !maru_proto::name::is_staging(to.as_bytes());
        let seq = inner.next_seq;
        let (extent_off, size, sealed) = {
            let e = inner.entries.get(&id).ok_or_else(|| errno(libc::ENOENT))?;
            (e.rec.extent_off, e.rec.size, e.sealed)
        };
        if publish {
            if let Some(sh) = &inner.shared {
                sh.link.0.writable()?;
                // The writer wrote through its own mapping: write its lines back (any
                // mapping's clflush reaches this host's caches), so a host without
                // cache coherence reads the bytes from the device. A sealed chunk's
                // were written back when it was sealed.
                if !inner.coherent && sealed.is_none() {
                    inner.map.flush(extent_off, size)?;
                }
            }
        }
        let data_crc = match (publish, sealed) {
            (false, _) => None,
            (true, Some(crc)) => Some(crc),
            (true, None) => Some(inner.map.crc(extent_off, size)?),
        };
        let slot = inner.entry(id)?.slot;
        if publish && inner.shared.is_some() && slot.is_none() {
            // A named chunk always has a record.
            return Err(errno(libc::EIO));
        }
        let old = {
            let e = inner
                .entries
                .get_mut(&id)
                .ok_or_else(|| errno(libc::ENOENT))?;
            let old = (
                std::mem::replace(&mut e.rec.name, to.as_bytes().to_vec()),
                e.rec.state,
                e.rec.seq,
                e.rec.data_crc,
            );
            if let Some(crc) = data_crc {
                e.rec.state = RecordState::Published;
                e.rec.seq = seq;
                e.rec.data_crc = crc;
            }
            old
        };
        if let Err(err) = inner.write_record(id) {
            inner.restore_record(id, old, from);
            return Err(err);
        }
        if publish {
            inner.next_seq += 1;
        }
        if let (Some(sh), Some(slot)) = (inner.shared.as_ref().filter(|_| publish), slot) {
            // First writer wins across hosts: the record says published only once
            // the cluster gave this host the key (a crash in between is undone by
            // recovery, which keeps a published record only if the cluster agrees).
            // The key is reserved meanwhile, and the chunk is sealed.
            let link = sh.link.clone();
            inner.publishing.insert(to.to_os_string(), id);
            return Ok(Some(PendingPublish {
                inner: Arc::clone(&self.inner),
                link,
                id,
                slot,
                from: from.to_os_string(),
                to: to.to_os_string(),
                old,
            }));
        }
        inner.names.remove(from);
        inner.names.insert(to.to_os_string(), id);
        Ok(None)
    }

    /// The cluster link to delete `name` with before it is removed here: `Some` for
    /// a published key of a shared pool (this host's or another's).
    pub fn cluster_key(&self, name: &OsStr) -> Option<SharedLink> {
        let inner = lock(&self.inner);
        let id = inner.names.get(name)?;
        let published = inner.entries.get(id)?.rec.state == RecordState::Published;
        inner
            .shared
            .as_ref()
            .filter(|_| published)
            .map(|sh| sh.link.clone())
    }

    /// Removes the name `name` and clears its record; the extent returns to the
    /// free space when the last handle on the chunk closes.
    pub fn remove(&self, name: &OsStr) -> io::Result<()> {
        let mut inner = lock(&self.inner);
        inner.owner.check()?;
        let Some(&id) = inner.names.get(name) else {
            return Ok(());
        };
        let published = inner.entry(id)?.rec.state == RecordState::Published;
        if let Some(sh) = inner.shared.as_ref().filter(|_| published) {
            // A key of a shared pool goes from the cluster first (from any host);
            // every host, the writer's included, then drops it (`remote_removed`).
            sh.link.0.remove(name.as_bytes())?;
        }
        inner.unname(id)
    }

    /// The published chunks (what a restart adopts).
    pub fn published(&self) -> Vec<Found> {
        let inner = lock(&self.inner);
        let mut found: Vec<(u64, Found)> = inner
            .entries
            .values()
            .filter(|e| e.rec.state == RecordState::Published)
            .filter_map(|e| Some((e.rec.seq, e.found()?)))
            .collect();
        found.sort_by_key(|(seq, _)| *seq);
        found.into_iter().map(|(_, f)| f).collect()
    }

    /// `(device offset, length)` of the extent of the chunk named `name`.
    pub fn extent_of(&self, name: &OsStr) -> Option<Extent> {
        let inner = lock(&self.inner);
        let id = inner.names.get(name)?;
        inner.extent(*id)
    }
}

impl Entry {
    /// The published chunk of record `r` in index slot `slot`, with no handle;
    /// `origin`: the host that wrote it, for another host's chunk (read-only here).
    fn published(slot: u64, mut r: Record, origin: Option<String>) -> Entry {
        r.state = RecordState::Published;
        r.mode &= 0o7777;
        Entry {
            slot: Some(slot),
            rec: r,
            handles: 0,
            data: Arc::new(RwLock::new(())),
            sealed: None,
            origin,
        }
    }

    /// Its name; `None` once taken away.
    fn name(&self) -> Option<OsString> {
        (!self.rec.name.is_empty()).then(|| OsString::from_vec(self.rec.name.clone()))
    }

    /// Whether another host published it.
    fn is_remote(&self) -> bool {
        self.origin.is_some()
    }

    /// The chunk as the filesystem adopts it; `None` without a name.
    fn found(&self) -> Option<Found> {
        Some(Found {
            name: self.name()?,
            size: self.rec.size,
            meta: ChunkMeta {
                uid: self.rec.uid,
                mode: (self.rec.mode & 0o7777) as u16,
                created: UNIX_EPOCH + Duration::from_secs(self.rec.created),
            },
            xattrs: self
                .rec
                .xattrs
                .iter()
                .map(|(n, v)| (OsString::from_vec(n.clone()), v.clone()))
                .collect(),
        })
    }
}

impl Inner {
    /// Puts back the name, state, sequence and checksum chunk `id`'s record had
    /// before a rename that failed (`from`: its name, for the log).
    fn restore_record(&mut self, id: u64, old: (Vec<u8>, RecordState, u64, u32), from: &OsStr) {
        if let Some(e) = self.entries.get_mut(&id) {
            (e.rec.name, e.rec.state, e.rec.seq, e.rec.data_crc) = old;
        }
        if let Err(undo) = self.write_record(id) {
            log::warn!(
                "devdax pool on {}: cannot rewrite the record of {:?} after a failed \
                 publish: {undo}",
                self.device.display(),
                from
            );
        }
    }

    /// Takes chunk `id`'s name away: its record is cleared (on a shared pool a
    /// published one is marked removing and its extent quarantined, since other
    /// hosts may map it); the extent goes when the last handle does.
    fn unname(&mut self, id: u64) -> io::Result<()> {
        let (name, remote, published) = {
            let e = self.entry(id)?;
            (
                e.name(),
                e.is_remote(),
                e.rec.state == RecordState::Published,
            )
        };
        if !remote {
            if self.shared.is_some() && published {
                self.entry_mut(id)?.rec.state = RecordState::Removing;
                self.write_record(id)?;
            } else {
                self.clear_record(id)?;
            }
        }
        if let Some(name) = name {
            self.names.remove(&name);
        }
        self.entry_mut(id)?.rec.name.clear();
        self.drop_if_unused(id);
        Ok(())
    }

    /// Claims one more arena from the cluster (a shared pool whose arenas are full);
    /// false when none is free or the cluster cannot be reached.
    fn claim_arena(&mut self) -> bool {
        let Some(sh) = self.shared.as_mut() else {
            return false;
        };
        match sh.link.0.claim_arena(sh.arenas.count) {
            Ok(Some(n)) => {
                sh.mine.insert(n);
                let (off, len) = sh.arenas.data(n);
                let records = sh.arenas.records(n);
                log::info!(
                    "devdax pool on {}: this host now also holds arena {n} (bytes {off}+{len}, \
                     records {records:?})",
                    self.device.display()
                );
                self.alloc.free(off, len);
                self.free_slots.extend(records);
                true
            }
            Ok(None) => false,
            Err(e) => {
                log::warn!(
                    "devdax pool on {}: cannot claim another arena: {e}",
                    self.device.display()
                );
                false
            }
        }
    }

    fn entry(&self, id: u64) -> io::Result<&Entry> {
        self.entries.get(&id).ok_or_else(|| errno(libc::EBADF))
    }

    fn entry_mut(&mut self, id: u64) -> io::Result<&mut Entry> {
        self.entries.get_mut(&id).ok_or_else(|| errno(libc::EBADF))
    }

    /// `(device offset, length)` of chunk `id`'s extent.
    fn extent(&self, id: u64) -> Option<Extent> {
        let e = self.entries.get(&id)?;
        Some(if e.rec.extent_len == 0 {
            Extent::default()
        } else {
            Extent {
                offset: self.region_offset + e.rec.extent_off,
                len: e.rec.extent_len,
            }
        })
    }

    /// Writes chunk `id`'s record to its index slot (if it still has one).
    fn write_record(&self, id: u64) -> io::Result<()> {
        let e = self.entry(id)?;
        let Some(slot) = e.slot.filter(|_| !e.is_remote()) else {
            return Ok(());
        };
        let img = e
            .rec
            .encode(&self.header.uuid)
            .ok_or_else(|| errno(libc::ENOSPC))?;
        // Everything the record describes (the data) must be in place first.
        fence(Ordering::SeqCst);
        self.map.write(self.header.record_offset(slot), &img)?;
        fence(Ordering::SeqCst);
        Ok(())
    }

    /// Clears chunk `id`'s record and gives its index slot back.
    fn clear_record(&mut self, id: u64) -> io::Result<()> {
        let Some(slot) = self.entry_mut(id)?.slot.take() else {
            return Ok(());
        };
        self.map
            .zero(self.header.record_offset(slot), RECORD_SIZE)?;
        fence(Ordering::SeqCst);
        self.free_slots.insert(slot);
        Ok(())
    }

    /// Frees chunk `id` once it has neither a name nor a handle.
    fn drop_if_unused(&mut self, id: u64) {
        let unused = self
            .entries
            .get(&id)
            .is_some_and(|e| e.rec.name.is_empty() && e.handles == 0);
        if unused {
            if let Some(e) = self.entries.remove(&id) {
                // Another host's extent is not ours to free; a removed chunk of a
                // shared pool stays quarantined (its record says removing) until
                // every other host let go of it (`release_quarantined`).
                if e.rec.state == RecordState::Removing && !e.is_remote() {
                    if let (Some(sh), Some(slot)) = (self.shared.as_mut(), e.slot) {
                        sh.quarantine.insert(slot, (e.rec.seq, e.rec.extent()));
                    }
                } else if !e.is_remote() {
                    self.alloc.free(e.rec.extent_off, e.rec.extent_len);
                }
            }
        }
    }
}
