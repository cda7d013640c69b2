//! A devdax pool: the daemon's mapping of its byte range, the extent allocator and
//! the on-device index, with chunk handles that behave like open files.

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

impl SharedPart {
    fn owns_record(&self, slot: u64) -> bool {
        self.arenas
            .of_record(slot)
            .is_some_and(|n| self.mine.contains(&n))
    }

    fn owns_extent(&self, off: u64, len: u64) -> bool {
        self.mine.iter().any(|&n| self.arenas.holds(n, off, len))
    }
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

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // A panic elsewhere must not take the pool down; the state stays consistent
    // because every update below completes before it returns.
    inner.lock().unwrap_or_else(|e| e.into_inner())
}

/// Shared hold on a chunk's bytes (a panic elsewhere leaves them as they were).
fn shared(data: &RwLock<()>) -> RwLockReadGuard<'_, ()> {
    data.read().unwrap_or_else(|e| e.into_inner())
}

/// Exclusive hold on a chunk's bytes.
fn exclusive(data: &RwLock<()>) -> RwLockWriteGuard<'_, ()> {
    data.write().unwrap_or_else(|e| e.into_inner())
}

/// What resizing a chunk leaves to do outside the pool's lock.
#[derive(Debug, Clone, Copy)]
enum Resize {
    /// Nothing: done under the lock (same extent, or a shrink).
    Done,
    /// The extent grew in place: zero the `len` new bytes at `at`, then commit
    /// extent `off`+`ext`.
    Zero {
        at: u64,
        len: u64,
        off: u64,
        ext: u64,
    },
    /// The chunk moves: copy its `size` bytes from `from` to the new extent
    /// `to`+`ext`, zero the rest of it, then free `from`+`old_ext`.
    Move {
        from: u64,
        old_ext: u64,
        to: u64,
        ext: u64,
        size: u64,
    },
}

/// Whether chunk `e`'s bytes and size may change: only a staging chunk's, before
/// it is sealed for publishing.
fn writable(e: &Entry) -> io::Result<()> {
    if e.rec.state == RecordState::Staging && e.sealed.is_none() {
        Ok(())
    } else {
        Err(errno(libc::EPERM))
    }
}

/// The device (or stand-in file) opened read-write, its geometry, and the pool's
/// byte range `(offset, len)` checked against it.
fn open_region(cfg: &DevdaxConfig) -> Result<(File, Geometry, u64), DevdaxError> {
    let geo = Geometry::of_device(&cfg.device, cfg.sysfs_dir.as_deref())?;
    let range = |problem: String| DevdaxError::Range {
        device: cfg.device.clone(),
        problem,
    };
    if cfg.offset % geo.align != 0 {
        return Err(range(format!(
            "offset {} is not a multiple of the device alignment {}",
            cfg.offset, geo.align
        )));
    }
    if cfg.offset >= geo.size {
        return Err(range(format!(
            "offset {} is past the end of the device ({} bytes)",
            cfg.offset, geo.size
        )));
    }
    let len = match cfg.len {
        Some(len) => {
            if len % geo.align != 0 {
                return Err(range(format!(
                    "length {len} is not a multiple of the device alignment {}",
                    geo.align
                )));
            }
            if cfg.offset.checked_add(len).is_none_or(|end| end > geo.size) {
                return Err(range(format!(
                    "offset {} + length {len} runs past the end of the device ({} bytes)",
                    cfg.offset, geo.size
                )));
            }
            len
        }
        None => (geo.size - cfg.offset) / geo.align * geo.align,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&cfg.device)
        .map_err(|source| DevdaxError::Io {
            what: "cannot open the device read-write".into(),
            path: cfg.device.clone(),
            source,
        })?;
    let meta = file.metadata().map_err(|source| DevdaxError::Io {
        what: "cannot stat the device".into(),
        path: cfg.device.clone(),
        source,
    })?;
    if meta.is_file() && meta.len() < cfg.offset + len {
        return Err(range(format!(
            "the stand-in file is {} bytes, shorter than the pool's range end {}",
            meta.len(),
            cfg.offset + len
        )));
    }
    Ok((file, geo, len))
}

fn map_region(cfg: &DevdaxConfig, file: &File, len: u64) -> Result<Arc<Mapping>, DevdaxError> {
    Mapping::new(file, cfg.offset, len)
        .map(Arc::new)
        .map_err(|source| DevdaxError::Io {
            what: format!("cannot map {len} bytes from offset {} of", cfg.offset),
            path: cfg.device.clone(),
            source,
        })
}

/// 16 random bytes (getrandom; time and pid if the kernel has no entropy yet).
pub(crate) fn random_uuid() -> [u8; 16] {
    let mut uuid = [0u8; 16];
    // SAFETY: `uuid` is a writable buffer of 16 bytes that outlives the call.
    let n = unsafe { libc::getrandom(uuid.as_mut_ptr().cast(), uuid.len(), 0) };
    if n != 16 {
        // No entropy source: time and pid still tell formats apart.
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        uuid.copy_from_slice(&(t ^ (u128::from(std::process::id()) << 64)).to_le_bytes());
    }
    uuid
}

fn mapping_io(cfg: &DevdaxConfig, what: &str, source: io::Error) -> DevdaxError {
    DevdaxError::Io {
        what: what.to_string(),
        path: cfg.device.clone(),
        source,
    }
}

/// Writes a fresh, empty pool on `map` (the whole configured range) and returns its header.
fn write_fresh(
    cfg: &DevdaxConfig,
    map: &Mapping,
    len: u64,
    align: u64,
    uuid: [u8; 16],
) -> Result<Header, DevdaxError> {
    let mut h = Header::fresh(len, align, uuid).map_err(|problem| DevdaxError::Range {
        device: cfg.device.clone(),
        problem,
    })?;
    let io = |e| mapping_io(cfg, "cannot write the pool header and index to", e);
    // Invalidate both header copies first, so a crash mid-format leaves a range
    // that is refused (not a half-old pool), then clear the index. The owner lease
    // between them is the caller's and stays.
    map.zero(0, LEASE_OFFSET).map_err(io)?;
    map.flush(0, LEASE_OFFSET).map_err(io)?;
    map.zero(INDEX_OFFSET, h.data_offset - INDEX_OFFSET)
        .map_err(io)?;
    map.flush(INDEX_OFFSET, h.data_offset - INDEX_OFFSET)
        .map_err(io)?;
    for generation in [1, 2] {
        h.generation = generation;
        let at = (generation % 2) * SLOT_SIZE;
        map.write(at, &h.encode()).map_err(io)?;
        map.flush(at, SLOT_SIZE).map_err(io)?;
    }
    Ok(h)
}

/// Formats the pool range of `cfg`, destroying whatever it held. Returns the
/// number of data bytes the new pool offers.
pub(crate) fn format(cfg: &DevdaxConfig) -> Result<u64, DevdaxError> {
    let (file, geo, len) = open_region(cfg)?;
    let map = map_region(cfg, &file, len)?;
    let owner = take_owner(cfg, &map)?;
    let h = write_fresh(cfg, &map, len, geo.align, random_uuid())?;
    drop(owner);
    log::info!(
        "formatted devdax pool on {} at byte {}: {} bytes of data, {} index records",
        cfg.device.display(),
        cfg.offset,
        h.data_len,
        h.record_count
    );
    Ok(h.data_len)
}

/// Where the pool of `cfg` is, for the owner lease's messages.
fn place(cfg: &DevdaxConfig) -> Place {
    Place {
        device: cfg.device.clone(),
        offset: cfg.offset,
    }
}

/// Takes the owner lease of the range mapped by `map`, as `cfg.owner` says.
fn take_owner(cfg: &DevdaxConfig, map: &Arc<Mapping>) -> Result<OwnerLease, DevdaxError> {
    OwnerLease::acquire(
        Arc::clone(map),
        place(cfg),
        &HostIdentity::current(),
        &cfg.owner,
    )
}

fn cluster_err(cfg: &DevdaxConfig, e: io::Error) -> DevdaxError {
    DevdaxError::Cluster {
        device: cfg.device.clone(),
        offset: cfg.offset,
        detail: format!("the cluster cannot be asked: {e}"),
    }
}

fn uuid_hex(uuid: &[u8; 16]) -> String {
    uuid.iter().map(|b| format!("{b:02x}")).collect()
}

/// The header of a shared pool: the one on the device if the cluster records the
/// same identity (registered now if it records none); for a blank range, the host
/// that registers a fresh identity formats it and the others wait for its header.
fn shared_header(
    cfg: &DevdaxConfig,
    map: &Mapping,
    len: u64,
    align: u64,
    found: Option<Header>,
    link: &SharedLink,
) -> Result<Header, DevdaxError> {
    let mismatch = |ours: &[u8; 16], theirs: &[u8; 16]| DevdaxError::Cluster {
        device: cfg.device.clone(),
        offset: cfg.offset,
        detail: format!(
            "the pool header's identity {} is not the cluster's record for this pool ({}): the \
             range holds another pool, or it was re-created behind the cluster's back. Refusing \
             it; point the pool at the right device or byte range",
            uuid_hex(ours),
            uuid_hex(theirs)
        ),
    };
    if let Some(h) = found {
        return match link
            .0
            .check_identity(&h.uuid)
            .map_err(|e| cluster_err(cfg, e))?
        {
            None => Ok(h),
            Some(theirs) => Err(mismatch(&h.uuid, &theirs)),
        };
    }
    let uuid = random_uuid();
    let theirs = match link
        .0
        .check_identity(&uuid)
        .map_err(|e| cluster_err(cfg, e))?
    {
        None => {
            log::info!(
                "shared devdax pool on {} at byte {}: blank range, formatting a new pool for the \
                 cluster (identity {})",
                cfg.device.display(),
                cfg.offset,
                uuid_hex(&uuid)
            );
            return write_fresh(cfg, map, len, align, uuid);
        }
        Some(theirs) => theirs,
    };
    // Another host registered the pool: it is formatting it (or did, on a device
    // this host does not see yet).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if let Some(h) = read_header(cfg, map, len, align)? {
            return if h.uuid == theirs {
                Ok(h)
            } else {
                Err(mismatch(&h.uuid, &theirs))
            };
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(DevdaxError::Cluster {
        device: cfg.device.clone(),
        offset: cfg.offset,
        detail: format!(
            "the cluster records this pool as {} but the range is still blank after 30 s: is this \
             the device the other hosts use? If the device was replaced, delete the cluster's \
             record of the pool (its `uuid` key) and start again",
            uuid_hex(&theirs)
        ),
    })
}

/// The arenas of a shared pool this host holds (one is claimed if it holds none),
/// with every other arena taken out of `alloc`.
fn shared_part(
    cfg: &DevdaxConfig,
    header: &Header,
    link: &SharedLink,
    alloc: &mut Allocator,
) -> Result<SharedPart, DevdaxError> {
    let arenas = Arenas::of(
        header.data_offset,
        header.data_len,
        header.align,
        header.record_count,
    );
    let mine: BTreeSet<u32> = link
        .0
        .arenas(arenas.count)
        .map_err(|e| cluster_err(cfg, e))?
        .into_iter()
        .collect();
    if mine.is_empty() {
        return Err(DevdaxError::Cluster {
            device: cfg.device.clone(),
            offset: cfg.offset,
            detail: format!(
                "all {} arenas of the pool are held by other hosts: this host has no room to \
                 write. Forget hosts that are gone (`maru-devd cluster forget HOST`) or give the \
                 pool a bigger range",
                arenas.count
            ),
        });
    }
    for n in 0..arenas.count {
        if !mine.contains(&n) {
            let (off, len) = arenas.data(n);
            alloc.reserve(off, len);
        }
    }
    let (last, last_len) = arenas.data(arenas.count - 1);
    let tail = last + last_len;
    let end = header.data_offset + header.data_len;
    if tail < end {
        alloc.reserve(tail, end - tail);
    }
    log::info!(
        "shared devdax pool on {}: host {} holds arena(s) {:?} of {}",
        cfg.device.display(),
        link.0.host(),
        mine,
        arenas.count
    );
    Ok(SharedPart {
        link: link.clone(),
        arenas,
        mine,
        revision: 0,
        quarantine: BTreeMap::new(),
    })
}

/// Reads the header of an existing pool: `None` when both copies are blank (a
/// fresh range); an error for anything that is not a pool of this range.
/// Reads only.
fn read_header(
    cfg: &DevdaxConfig,
    map: &Mapping,
    len: u64,
    align: u64,
) -> Result<Option<Header>, DevdaxError> {
    let mut slots = Vec::with_capacity(2);
    map.flush(0, 2 * SLOT_SIZE)
        .map_err(|e| mapping_io(cfg, "cannot read the pool header of", e))?;
    for i in 0..2u64 {
        let mut buf = vec![0u8; SLOT_SIZE as usize];
        map.read(i * SLOT_SIZE, &mut buf)
            .map_err(|e| mapping_io(cfg, "cannot read the pool header of", e))?;
        slots.push(Header::decode(&buf));
    }
    let best = slots
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.as_ref().ok().map(|h| (i, h)))
        .max_by_key(|(_, h)| h.generation);
    if let Some((i, h)) = best {
        let other = &slots[1 - i];
        if let Err(p) = other {
            log::warn!(
                "devdax pool on {} at byte {}: header copy {} is unusable ({p:?}); using copy {i} \
                 (generation {}); the unusable copy is rewritten now (a crash during an earlier \
                 header update leaves exactly this)",
                cfg.device.display(),
                cfg.offset,
                1 - i,
                h.generation
            );
        }
        let h = h.clone();
        if h.region_len != len || h.align != align {
            return Err(DevdaxError::Mismatch {
                device: cfg.device.clone(),
                offset: cfg.offset,
                detail: format!(
                    "the pool header describes {} bytes at alignment {}, the configuration {} bytes at alignment {}",
                    h.region_len, h.align, len, align
                ),
            });
        }
        return Ok(Some(h));
    }
    let problems: Vec<&SlotProblem> = slots.iter().filter_map(|s| s.as_ref().err()).collect();
    if problems.iter().all(|p| **p == SlotProblem::Blank) {
        return match cfg.format {
            FormatPolicy::IfBlank => Ok(None),
            FormatPolicy::Never => Err(DevdaxError::Blank {
                device: cfg.device.clone(),
                offset: cfg.offset,
            }),
        };
    }
    if let Some(found) = problems.iter().find_map(|p| match p {
        SlotProblem::Version(v) => Some(*v),
        _ => None,
    }) {
        return Err(DevdaxError::Version {
            device: cfg.device.clone(),
            offset: cfg.offset,
            found,
            supported: VERSION,
        });
    }
    let damaged = problems.iter().any(|p| {
        matches!(
            p,
            SlotProblem::BadChecksum { .. } | SlotProblem::Inconsistent(_)
        )
    });
    if !damaged {
        return Err(DevdaxError::NotAPool {
            device: cfg.device.clone(),
            offset: cfg.offset,
        });
    }
    let detail = problems
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let what = match p {
                SlotProblem::Blank => "blank".to_string(),
                SlotProblem::NoMagic => "no magic".to_string(),
                SlotProblem::BadChecksum { stored, computed } => {
                    format!("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")
                }
                SlotProblem::Version(v) => format!("version {v}"),
                SlotProblem::Inconsistent(s) => format!("inconsistent fields: {s}"),
            };
            format!("copy {i}: {what}")
        })
        .collect::<Vec<_>>()
        .join("; ");
    Err(DevdaxError::Corrupt {
        device: cfg.device.clone(),
        offset: cfg.offset,
        detail,
    })
}

impl DevdaxStore {
    /// Opens (recovering, or formatting a blank range if allowed) the pool of
    /// `cfg`; also says what recovery found and dropped (it is logged as well).
    pub fn open(cfg: &DevdaxConfig) -> Result<(DevdaxStore, Recovery), DevdaxError> {
        let (file, geo, len) = open_region(cfg)?;
        let map = map_region(cfg, &file, len)?;
        // Look before writing anything: a range that is not a pool is refused untouched.
        read_header(cfg, &map, len, geo.align)?;
        // Recovery rewrites the index: only the owner of the range may run it (for
        // a shared pool: only in this host's arenas).
        let owner = match &cfg.shared {
            None => take_owner(cfg, &map)?,
            Some(_) => OwnerLease::share(
                Arc::clone(&map),
                place(cfg),
                &HostIdentity::current(),
                &cfg.owner,
            )?,
        };
        // Read again: the previous owner may have changed it until it let go.
        let found = read_header(cfg, &map, len, geo.align)?;
        let mut header = match (&cfg.shared, found) {
            (None, Some(h)) => h,
            (None, None) => {
                log::info!(
                    "devdax pool on {} at byte {}: blank range, formatting a new pool",
                    cfg.device.display(),
                    cfg.offset
                );
                write_fresh(cfg, &map, len, geo.align, random_uuid())?
            }
            (Some(link), found) => shared_header(cfg, &map, len, geo.align, found, link)?,
        };
        let mut alloc = Allocator::new(header.data_offset, header.data_len, header.align);
        let shared = match &cfg.shared {
            None => None,
            Some(link) => Some(shared_part(cfg, &header, link, &mut alloc)?),
        };
        let mut inner = Inner {
            device: cfg.device.clone(),
            region_offset: cfg.offset,
            map,
            owner,
            header: header.clone(),
            alloc,
            entries: HashMap::new(),
            names: HashMap::new(),
            free_slots: BTreeSet::new(),
            next_id: 1,
            next_seq: 1,
            shared,
            coherent: cfg.coherence == Coherence::Hardware,
        };
        let claimed = match &inner.shared {
            None => HashMap::new(),
            Some(sh) => {
                let (keys, revision) = sh.link.0.snapshot().map_err(|e| cluster_err(cfg, e))?;
                if let Some(sh) = inner.shared.as_mut() {
                    sh.revision = revision;
                }
                keys.into_iter().collect()
            }
        };
        let recovery = inner
            .recover(cfg.verify_data, &claimed)
            .map_err(|e| mapping_io(cfg, "cannot read the pool index of", e))?;
        inner.adopt_remote_keys(&claimed);
        // Record this open: the next generation goes to the other header copy. Not
        // on a shared pool: the header is the cluster's, and two hosts opening at
        // once would write the same copy at the same moment.
        if inner.shared.is_none() {
            header.generation += 1;
            header.opened_at = now_secs();
            let slot_at = (header.generation % 2) * SLOT_SIZE;
            let update = |e| mapping_io(cfg, "cannot update the pool header of", e);
            inner.map.write(slot_at, &header.encode()).map_err(update)?;
            inner.map.flush(slot_at, SLOT_SIZE).map_err(update)?;
        }
        inner.header = header;
        log::info!(
            "devdax pool on {} at byte {}: {} published chunk(s) recovered, {} staging and {} \
             damaged record(s) dropped, {} chunk(s) dropped for a data checksum mismatch; {} of \
             {} data bytes free",
            cfg.device.display(),
            cfg.offset,
            recovery.published,
            recovery.staging_dropped,
            recovery.damaged_dropped,
            recovery.data_mismatch,
            inner.alloc.free_bytes(),
            inner.header.data_len
        );
        let store = DevdaxStore {
            inner: Arc::new(Mutex::new(inner)),
            device: cfg.device.clone(),
            shared: cfg.shared.is_some(),
        };
        Ok((store, recovery))
    }

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
        if inner.names.contains_key(name) {
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
    /// its record marked published.
    pub fn rename_noreplace(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        let mut inner = lock(&self.inner);
        inner.owner.check()?;
        if inner.names.contains_key(to) {
            return Err(errno(libc::EEXIST));
        }
        if to.len() > super::layout::KEY_MAX {
            return Err(errno(libc::ENAMETOOLONG));
        }
        let id = *inner.names.get(from).ok_or_else(|| errno(libc::ENOENT))?;
        let publish = to.as_bytes().first() != Some(&b'.');
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
        let claimed = inner.write_record(id).and_then(|()| {
            let Some(sh) = inner.shared.as_ref().filter(|_| publish) else {
                return Ok(());
            };
            let slot = inner.entry(id)?.slot.ok_or_else(|| errno(libc::EIO))?;
            // First writer wins across hosts: the record says published only once
            // the cluster gave this host the key (a crash in between is undone by
            // recovery, which keeps a published record only if the cluster agrees).
            sh.link.0.publish(to.as_bytes(), slot)
        });
        if let Err(err) = claimed {
            if let Some(e) = inner.entries.get_mut(&id) {
                (e.rec.name, e.rec.state, e.rec.seq, e.rec.data_crc) = old;
            }
            if let Err(undo) = inner.write_record(id) {
                log::warn!(
                    "devdax pool on {}: cannot rewrite the record of {:?} after a failed \
                     publish: {undo}",
                    inner.device.display(),
                    from
                );
            }
            return Err(err);
        }
        if publish {
            inner.next_seq += 1;
        }
        inner.names.remove(from);
        inner.names.insert(to.to_os_string(), id);
        Ok(())
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
        inner
            .names
            .get(name)
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
    /// Rebuilds the in-memory index and the free space from the on-device index.
    /// A shared pool recovers only the records of this host's arenas; a published
    /// one survives only if the cluster gives its key to this host and record
    /// (`claimed`).
    fn recover(
        &mut self,
        verify_data: bool,
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
        for slot in 0..self.header.record_count {
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
            if verify_data && self.map.crc(r.extent_off, r.size)? != r.data_crc {
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
        fence(Ordering::SeqCst);
        Ok(rec)
    }

    /// Adds the chunks other hosts published (from the cluster's snapshot).
    fn adopt_remote_keys(&mut self, claimed: &HashMap<Vec<u8>, KeyRef>) {
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
    fn adopt_remote(&mut self, name: &OsStr, at: &KeyRef) -> Option<u64> {
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

    /// Starts setting chunk `id`'s size to `new`: decides the extent (reserving
    /// any new one), and does what is quick here. Bytes of the extent past the size
    /// are kept zero, so a grown chunk reads zeros there and never another chunk's
    /// old data. The caller finishes a returned [`Resize`] with [`Resize::copy`]
    /// outside the lock, then [`Inner::end_len`] (or [`Inner::abort_len`]).
    fn begin_len(&mut self, id: u64, new: u64) -> io::Result<Resize> {
        let (off, ext, size) = {
            let e = self.entry(id)?;
            writable(e)?;
            (e.rec.extent_off, e.rec.extent_len, e.rec.size)
        };
        if new == size {
            return Ok(Resize::Done);
        }
        let new_ext = self.alloc.round(new);
        if new_ext > self.header.data_len {
            return Err(errno(libc::ENOSPC));
        }
        if new_ext == ext {
            if new < size {
                self.map.zero(off + new, size - new)?;
            }
            self.set_extent(id, off, ext, new)?;
            return Ok(Resize::Done);
        }
        if new_ext < ext {
            // At most one alignment unit to zero: quick enough to do here.
            self.map.zero(off + new, new_ext - new)?;
            self.alloc.free(off + new_ext, ext - new_ext);
            let new_off = if new_ext == 0 { 0 } else { off };
            self.set_extent(id, new_off, new_ext, new)?;
            return Ok(Resize::Done);
        }
        if ext > 0 && self.alloc.grow_in_place(off, ext, new_ext) {
            return Ok(Resize::Zero {
                at: off + ext,
                len: new_ext - ext,
                off,
                ext: new_ext,
            });
        }
        let to = match self.alloc.alloc(new_ext) {
            Some(to) => to,
            None if self.claim_arena() => self
                .alloc
                .alloc(new_ext)
                .ok_or_else(|| errno(libc::ENOSPC))?,
            None => return Err(errno(libc::ENOSPC)),
        };
        Ok(Resize::Move {
            from: off,
            old_ext: ext,
            to,
            ext: new_ext,
            size,
        })
    }

    /// Commits a resize of chunk `id` to `new` bytes whose copy is done.
    fn end_len(&mut self, id: u64, new: u64, plan: Resize) -> io::Result<()> {
        match plan {
            Resize::Done => Ok(()),
            Resize::Zero { off, ext, .. } => self.set_extent(id, off, ext, new),
            Resize::Move {
                from,
                old_ext,
                to,
                ext,
                ..
            } => {
                self.alloc.free(from, old_ext);
                self.set_extent(id, to, ext, new)
            }
        }
    }

    /// Gives back the extent a resize reserved (its copy failed).
    fn abort_len(&mut self, plan: Resize) {
        match plan {
            Resize::Done => {}
            Resize::Zero { at, len, .. } => self.alloc.free(at, len),
            Resize::Move { to, ext, .. } => self.alloc.free(to, ext),
        }
    }

    /// Records chunk `id`'s extent and size, and writes its record.
    fn set_extent(&mut self, id: u64, off: u64, ext: u64, size: u64) -> io::Result<()> {
        {
            let e = self.entry_mut(id)?;
            e.rec.extent_off = off;
            e.rec.extent_len = ext;
            e.rec.size = size;
        }
        self.write_record(id)
    }
}

impl Resize {
    /// The slow part of a resize, done without the pool's lock (the caller holds
    /// the chunk's bytes exclusively).
    fn copy(&self, map: &Mapping) -> io::Result<()> {
        match *self {
            Resize::Done => Ok(()),
            Resize::Zero { at, len, .. } => map.zero(at, len),
            Resize::Move {
                from,
                to,
                ext,
                size,
                ..
            } => {
                map.copy_within(from, to, size)?;
                map.zero(to + size, ext - size)
            }
        }
    }
}

impl ChunkHandle {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// The chunk's size in bytes.
    pub fn len(&self) -> io::Result<u64> {
        Ok(self.lock().entry(self.id)?.rec.size)
    }

    /// Resizes the chunk (allocating, growing or shrinking its extent); `ENOSPC`
    /// when the data area has no free extent that long, `EPERM` once it is sealed
    /// or published. Zeroing and moving bytes happen outside the pool's lock.
    pub fn set_len(&self, size: u64) -> io::Result<()> {
        let _bytes = exclusive(&self.data);
        self.resize(size)
    }

    /// [`ChunkHandle::set_len`] for a caller holding the chunk's bytes exclusively.
    fn resize(&self, size: u64) -> io::Result<()> {
        let plan = {
            let mut inner = self.lock();
            inner.owner.check()?;
            inner.begin_len(self.id, size)?
        };
        if let Err(e) = plan.copy(&self.map) {
            self.lock().abort_len(plan);
            return Err(e);
        }
        self.lock().end_len(self.id, size, plan)
    }

    /// Reads from `offset`; returns fewer bytes (0 at or past the end) at the end.
    /// The copy is made outside the pool's lock.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let _bytes = shared(&self.data);
        let (at, n) = {
            let inner = self.lock();
            inner.owner.check()?;
            let e = inner.entry(self.id)?;
            if offset >= e.rec.size {
                return Ok(0);
            }
            (
                e.rec.extent_off + offset,
                (e.rec.size - offset).min(buf.len() as u64) as usize,
            )
        };
        self.map.read(at, &mut buf[..n])?;
        Ok(n)
    }

    /// Writes `data` at `offset`, growing the chunk if it ends past the size
    /// (`EPERM` once it is sealed or published). The copy is made outside the
    /// pool's lock.
    pub fn write_all_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| errno(libc::EFBIG))?;
        {
            let _bytes = shared(&self.data);
            let at = {
                let inner = self.lock();
                inner.owner.check()?;
                let e = inner.entry(self.id)?;
                writable(e)?;
                (end <= e.rec.size).then_some(e.rec.extent_off)
            };
            if let Some(at) = at {
                return self.map.write(at + offset, data);
            }
        }
        // The chunk grows: its extent may move, so nothing else touches its bytes.
        let _bytes = exclusive(&self.data);
        if end > self.len()? {
            self.resize(end)?;
        }
        let at = {
            let inner = self.lock();
            inner.owner.check()?;
            let e = inner.entry(self.id)?;
            writable(e)?;
            e.rec.extent_off
        };
        self.map.write(at + offset, data)
    }

    /// Seals the staging chunk ahead of publishing: waits for its reads and
    /// writes in flight, writes its bytes back from the CPU caches (a shared pool
    /// without cache coherence) and takes its data checksum, all outside the
    /// pool's lock; from then on its bytes and size cannot change (`EPERM`) until
    /// [`ChunkHandle::unseal`]. Publishing then takes this checksum.
    pub fn seal(&self) -> io::Result<()> {
        let _bytes = exclusive(&self.data);
        let (at, size, write_back) = {
            let inner = self.lock();
            inner.owner.check()?;
            let e = inner.entry(self.id)?;
            writable(e)?;
            (
                e.rec.extent_off,
                e.rec.size,
                inner.shared.is_some() && !inner.coherent,
            )
        };
        if write_back {
            self.map.flush(at, size)?;
        }
        let crc = self.map.crc(at, size)?;
        self.lock().entry_mut(self.id)?.sealed = Some(crc);
        Ok(())
    }

    /// Lifts [`ChunkHandle::seal`] from a chunk that was not published after all.
    pub fn unseal(&self) {
        let mut inner = self.lock();
        if let Ok(e) = inner.entry_mut(self.id) {
            if e.rec.state == RecordState::Staging {
                e.sealed = None;
            }
        }
    }

    /// Sets the permission bits recorded for the chunk.
    pub fn set_mode(&self, mode: u16) -> io::Result<()> {
        let mut inner = self.lock();
        inner.entry_mut(self.id)?.rec.mode = u32::from(mode);
        inner.write_record(self.id)
    }

    /// Sets (or with `None` removes) one of the writer's `user.*` xattrs; `ENOSPC`
    /// when the record has no room for it.
    pub fn set_xattr(&self, name: &OsStr, value: Option<&[u8]>) -> io::Result<()> {
        let mut inner = self.lock();
        let e = inner.entry_mut(self.id)?;
        let mut xattrs = e.rec.xattrs.clone();
        xattrs.retain(|(n, _)| n != name.as_bytes());
        if let Some(v) = value {
            xattrs.push((name.as_bytes().to_vec(), v.to_vec()));
        }
        if xattr_bytes(xattrs.iter().map(|(n, v)| (&n[..], &v[..]))) > XATTR_SPACE {
            return Err(errno(libc::ENOSPC));
        }
        let old = std::mem::replace(&mut e.rec.xattrs, xattrs);
        if let Err(err) = inner.write_record(self.id) {
            if let Ok(e) = inner.entry_mut(self.id) {
                e.rec.xattrs = old;
            }
            return Err(err);
        }
        Ok(())
    }

    /// `(device offset, length)` of the chunk's extent (`(0, 0)` while it has none).
    pub fn extent(&self) -> Extent {
        self.lock().extent(self.id).unwrap_or_default()
    }
}

impl Drop for ChunkHandle {
    fn drop(&mut self) {
        let mut inner = self.lock();
        if let Some(e) = inner.entries.get_mut(&self.id) {
            e.handles = e.handles.saturating_sub(1);
        }
        inner.drop_if_unused(self.id);
    }
}
