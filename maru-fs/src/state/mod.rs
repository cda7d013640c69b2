//! The filesystem's in-memory state: pools, chunks, open handles, capacity and
//! eviction. Everything here runs under one mutex held by [`crate::fs`], and only
//! for bookkeeping: whatever takes time with a pool's memory (copying chunk data,
//! zeroing or moving a devdax extent, a publish's checksum, opening, recovering
//! and verifying a store) and a shared pool's cluster round trips (`cluster`) is
//! decided here and done by the caller after the lock is dropped
//! (`*_begin`/`*_prepare`, the tickets and [`open_pool`]), so one pool's slow work
//! never holds up another pool's requests. Nothing here talks to the kernel
//! except through the backing stores and the notices it queues for the notifier
//! thread (see [`crate::notify`]).
//!
//! The types and pool management live here; the operations are split by concern:
//! `names` (lookup, create, open, release, unlink, rename/publish), `capacity`
//! (charging, eviction, setattr, fallocate), `data` (READ/WRITE when the daemon
//! serves data), `dirs` (listings, statfs), `xattrs` and `cluster` (the cluster
//! round trips of a shared pool's publish and unlink).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::SystemTime;

use fuser::{BackingId, Errno, FileAttr, FileHandle, FileType, INodeNo};

use crate::backing::{ChunkMeta, Found, OpenError, Store};
use crate::chunk_file::ChunkFile;
use crate::notify::Notice;
use crate::reaper::{Charge, Reaper};
use crate::xattr;
use crate::{Eviction, FsError, PoolConfig, PoolStats};
pub(crate) use cluster::{PublishTicket, RemoveTicket};
pub(crate) use lend::Lent;

mod busy;
mod capacity;
mod cluster;
mod data;
mod dirs;
mod index;
mod lend;
mod names;
mod remote;
mod xattrs;

/// Inode number of the mount's root directory.
pub(crate) const ROOT: u64 = 1;
/// Longest file name (bytes) the filesystem accepts.
pub(crate) use maru_proto::name::NAME_MAX;
/// Block size reported by stat and statfs.
pub(crate) const BLOCK: u64 = 4096;

/// Where a chunk is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Created under a `.` name, being written, not visible to readers.
    Staging,
    /// Published under a key; sealed against writing and truncation.
    Published,
}

/// Counters kept per pool since mount.
#[derive(Debug, Default)]
struct Counters {
    creates: u64,
    publishes: u64,
    lookups: u64,
    hits: u64,
    evictions: u64,
    removals: u64,
    read_requests: u64,
    write_requests: u64,
    /// Failed operations on the pool or its chunks, by errno (see [`State::count_error`]).
    errors: BTreeMap<i32, u64>,
}

/// One pool: a directory of chunks with a capacity.
#[derive(Debug)]
pub(crate) struct Pool {
    ino: u64,
    cfg: PoolConfig,
    store: Store,
    /// Every named chunk (staging and published), by name.
    entries: BTreeMap<OsString, u64>,
    /// The inodes of the published chunks in `entries`: what `readdir` lists, in
    /// inode order (an inode never changes while its chunk is listed, so it is a
    /// stable resume point for a listing; see `dirs`).
    listed: BTreeSet<u64>,
    /// Bytes charged to chunks of this pool.
    used: u64,
    online: bool,
    offline_reason: Option<String>,
    counters: Counters,
    /// The membership index clients map (`None` for devdax pools).
    index: Option<index::PoolIndex>,
}

/// One chunk.
#[derive(Debug)]
pub(crate) struct Chunk {
    pool: u64,
    /// Current name; `None` once unlinked, evicted or reclaimed.
    name: Option<OsString>,
    phase: Phase,
    /// Size in bytes (given by `ftruncate`, or found at publish).
    size: u64,
    /// Bytes this chunk holds charged to its pool (0 once the charge has moved to
    /// the reaper, which returns it when the memory is really freed).
    charged: u64,
    uid: u32,
    mode: u16,
    created: SystemTime,
    /// Open FUSE handles: the pins.
    opens: u32,
    /// Descriptors lent through the lending socket ([`crate::lend`]) since the
    /// chunk was last seen unused: the daemon cannot see them close, so this
    /// counts up, and drops to 0 when the kernel says nothing holds the chunk.
    lent: u32,
    /// Open handles with write access: while there are any, `write(2)` through
    /// passthrough can grow the backing file without the daemon seeing it, so
    /// the growth scan ([`State::scan_growth`]) looks at this chunk.
    writers: u32,
    /// The chunk's data (backing file or devdax extent), open while any handle is.
    file: Option<Arc<ChunkFile>>,
    /// The passthrough registration shared by every open handle of this chunk.
    backing: Option<Arc<BackingId>>,
    /// References the kernel holds on this inode (lookups minus forgets).
    nlookup: u64,
    /// LRU clock value of the last open or publish.
    last_used: u64,
    /// The writer's own `user.*` xattrs.
    xattrs: Vec<(OsString, Vec<u8>)>,
    /// The uid whose staging slot this chunk holds (see
    /// [`State::staging_per_uid`]); `None` once published with no writer left,
    /// or closed, and for root's and adopted chunks.
    slot: Option<u32>,
}

impl Chunk {
    /// A published chunk found in pool `pool`'s store (at restart, or published by
    /// another host of a shared pool), charged `charged` bytes, last used at `tick`.
    fn adopted(pool: u64, f: Found, charged: u64, tick: u64) -> Chunk {
        Chunk {
            pool,
            name: Some(f.name),
            phase: Phase::Published,
            size: f.size,
            charged,
            uid: f.meta.uid,
            mode: f.meta.mode,
            created: f.meta.created,
            opens: 0,
            lent: 0,
            writers: 0,
            file: None,
            backing: None,
            nlookup: 0,
            last_used: tick,
            xattrs: f.xattrs,
            slot: None,
        }
    }
}

/// What an open or create hands back to the FUSE layer.
pub(crate) struct Opened {
    pub fh: FileHandle,
    pub attr: FileAttr,
    /// Passthrough registration to reply with; `None` means the daemon serves I/O.
    pub backing: Option<Arc<BackingId>>,
    /// Open with `FOPEN_DIRECT_IO` (devdax chunks: no page cache, so no shared
    /// mapping of the file either; clients map the device node instead).
    pub direct_io: bool,
}

/// Opens a passthrough registration for a backing file (wraps the reply's
/// `open_backing`, so it can be called under the state lock).
pub(crate) type OpenBacking<'a> = &'a dyn Fn(&File) -> io::Result<BackingId>;

/// All filesystem state.
#[derive(Debug)]
pub(crate) struct State {
    next_ino: u64,
    next_fh: u64,
    tick: u64,
    mounted_at: SystemTime,
    /// Whether the kernel accepted FUSE passthrough at init.
    passthrough: bool,
    pools: BTreeMap<String, u64>,
    /// Names of pools being opened (outside the lock) by [`State::reserve_pool`].
    opening: BTreeSet<String>,
    pool_nodes: HashMap<u64, Pool>,
    chunks: HashMap<u64, Chunk>,
    /// Open file handle -> chunk inode.
    handles: HashMap<u64, u64>,
    /// The handles in `handles` opened for writing.
    writable: std::collections::HashSet<u64>,
    /// Open directory handles: which directory, and whose (no listing is kept).
    dirs: HashMap<u64, dirs::DirHandle>,
    /// Open directory handles per uid (bounded by [`dirs::MAX_DIR_HANDLES_PER_UID`]).
    dirs_per_uid: HashMap<u32, u32>,
    /// Staging chunks each non-root uid holds (a descriptor of the daemon's
    /// each), bounded by `max_staging_per_uid`: `create` beyond it is EMFILE.
    staging_per_uid: HashMap<u32, u32>,
    max_staging_per_uid: u32,
    /// The socket lending chunk descriptors, advertised on pools that allow it
    /// (see [`crate::lend`]).
    lend_socket: Option<std::path::PathBuf>,
    /// Keys of shared pools (pool inode, key) whose publish waits for the
    /// cluster, outside the lock (see `cluster`).
    publishing: HashMap<(u64, OsString), cluster::Publishing>,
    /// Kernel cache invalidations to send once the lock is dropped.
    notices: Vec<Notice>,
    /// Returns the space of removed chunks once their memory is freed.
    reaper: Reaper,
}

/// Whether `name` is a staging (non-key) name (the contract's rule).
fn is_staging_name(name: &OsStr) -> bool {
    maru_proto::name::is_staging(name.as_bytes())
}

/// The symbolic name of an errno (`ENOSPC`), or its number for one nix does not know.
fn errno_name(code: i32) -> String {
    match nix::errno::Errno::from_raw(code) {
        nix::errno::Errno::UnknownErrno => code.to_string(),
        e => format!("{e:?}"),
    }
}

fn errno_of(e: &io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Logs that pool `pool`'s backing file `name` could not be opened (`why`: what
/// for, e.g. "to lend it"; empty for a FUSE open) and returns its errno.
fn backing_open_failed(pool: &Pool, name: &OsStr, why: &str, e: &io::Error) -> Errno {
    log::warn!(
        "pool {}: cannot open backing file {:?}{why}: {e}",
        pool.cfg.name,
        pool.store.path().join(name)
    );
    errno_of(e)
}

/// Checks a pool name: one path component, not hidden, not too long.
fn validate_pool(cfg: &PoolConfig) -> Result<(), FsError> {
    let bad = |reason: &str| FsError::InvalidPool {
        pool: cfg.name.clone(),
        reason: reason.to_string(),
    };
    if cfg.name.is_empty() || cfg.name.len() > NAME_MAX {
        return Err(bad("the name must be 1 to 255 bytes long"));
    }
    if maru_proto::name::is_staging(cfg.name.as_bytes())
        || cfg.name.contains('/')
        || cfg.name.contains('\0')
    {
        return Err(bad(
            "the name must not start with '.' nor contain '/' or NUL; pick a plain directory name",
        ));
    }
    if cfg.max_chunk_size == Some(0) {
        return Err(bad("max_chunk_size must be more than 0 bytes (or unset)"));
    }
    Ok(())
}

/// A pool's backing store, opened (recovered, verified) and listed without the
/// state lock, ready for [`State::insert_pool`].
#[derive(Debug)]
pub(crate) struct OpenedPool {
    cfg: PoolConfig,
    store: Store,
    /// Its chunks, oldest first.
    found: Vec<Found>,
}

/// Opens pool `cfg`'s backing store and lists the chunks to adopt (a devdax pool
/// is recovered and its data verified here): the slow part of adding a pool,
/// done without the state lock so the other pools keep serving.
pub(crate) fn open_pool(cfg: PoolConfig) -> Result<OpenedPool, FsError> {
    let backing_err = |source: io::Error| FsError::Backing {
        pool: cfg.name.clone(),
        path: match &cfg.backing {
            crate::Backing::Dir(p) => p.clone(),
            crate::Backing::Devdax(d) => d.device.clone(),
        },
        source,
    };
    let store = Store::open(&cfg.backing).map_err(|e| match e {
        OpenError::Io(e) => backing_err(e),
        OpenError::Devdax(source) => FsError::Devdax {
            pool: cfg.name.clone(),
            source,
        },
    })?;
    let mut found = store.adopt().map_err(backing_err)?;
    let mut cfg = cfg;
    if let Some(limit) = store.limit().filter(|l| *l < cfg.capacity) {
        log::info!(
            "pool {}: capacity {} bytes is more than its device offers; using {limit} bytes",
            cfg.name,
            cfg.capacity
        );
        cfg.capacity = limit;
    }
    // Oldest first, so the LRU clock starts in creation order.
    found.sort_by_key(|f| f.meta.created);
    Ok(OpenedPool { cfg, store, found })
}

impl State {
    /// Empty state: only the root directory.
    pub fn new() -> State {
        State {
            next_ino: ROOT + 1,
            next_fh: 1,
            tick: 0,
            mounted_at: SystemTime::now(),
            passthrough: false,
            pools: BTreeMap::new(),
            opening: BTreeSet::new(),
            pool_nodes: HashMap::new(),
            chunks: HashMap::new(),
            handles: HashMap::new(),
            writable: std::collections::HashSet::new(),
            dirs: HashMap::new(),
            dirs_per_uid: HashMap::new(),
            staging_per_uid: HashMap::new(),
            max_staging_per_uid: crate::DEFAULT_MAX_STAGING_PER_UID,
            lend_socket: None,
            publishing: HashMap::new(),
            notices: Vec::new(),
            reaper: Reaper::new(),
        }
    }

    /// Returns to their pools the charges of removed chunks whose memory is gone.
    fn reap(&mut self) {
        let freed = self.reaper.reap();
        self.give_back(freed);
    }

    /// Returns freed charges to their pools.
    fn give_back(&mut self, freed: Vec<Charge>) {
        for c in freed {
            if let Some(p) = self.pool_nodes.get_mut(&c.pool.0) {
                p.used = p.used.saturating_sub(c.bytes);
            }
        }
    }

    /// Called by the reaper thread when inotify has news and every
    /// [`crate::reaper`] tick (`tick`): returns the charges of freed memory.
    pub fn reap_tick(&mut self, tick: bool) {
        self.reap();
        if tick {
            self.scan_growth();
            let freed = self.reaper.reconcile_due();
            self.give_back(freed);
        }
    }

    /// A descriptor the reaper thread can sleep on until removed chunks' memory
    /// is freed (`None` without inotify).
    pub fn reaper_wait_fd(&self) -> Option<std::os::fd::OwnedFd> {
        self.reaper.wait_fd()
    }

    /// Records whether the kernel accepted FUSE passthrough.
    pub fn set_passthrough(&mut self, on: bool) {
        self.passthrough = on;
    }

    /// Sets the most staging chunks one non-root uid may hold open.
    pub fn set_max_staging_per_uid(&mut self, max: u32) {
        self.max_staging_per_uid = max;
    }

    /// Takes the kernel notifications queued by the last operations.
    pub fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    fn alloc_ino(&mut self) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        ino
    }

    fn alloc_fh(&mut self) -> u64 {
        let fh = self.next_fh;
        self.next_fh += 1;
        fh
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// Adds a pool, adopting the chunks already in its backing store (all under
    /// the caller's hold on the state: for a mount not yet serving).
    pub fn add_pool(&mut self, cfg: PoolConfig) -> Result<(), FsError> {
        self.reserve_pool(&cfg)?;
        let name = cfg.name.clone();
        match open_pool(cfg) {
            Ok(opened) => self.insert_pool(opened),
            Err(e) => {
                self.unreserve_pool(&name);
                Err(e)
            }
        }
    }

    /// Checks pool `cfg` and holds its name while it is opened with [`open_pool`]
    /// (outside the state lock: recovery and verification take long); then
    /// [`State::insert_pool`], or [`State::unreserve_pool`] if opening failed.
    pub fn reserve_pool(&mut self, cfg: &PoolConfig) -> Result<(), FsError> {
        validate_pool(cfg)?;
        if self.pools.contains_key(&cfg.name) || !self.opening.insert(cfg.name.clone()) {
            return Err(FsError::PoolExists(cfg.name.clone()));
        }
        Ok(())
    }

    /// Lets go of a name [`State::reserve_pool`] held for a pool that did not open.
    pub fn unreserve_pool(&mut self, name: &str) {
        self.opening.remove(name);
    }

    /// Adds a pool opened by [`open_pool`] (its name reserved by
    /// [`State::reserve_pool`]).
    pub fn insert_pool(&mut self, opened: OpenedPool) -> Result<(), FsError> {
        let OpenedPool { cfg, store, found } = opened;
        self.opening.remove(&cfg.name);
        if self.pools.contains_key(&cfg.name) {
            return Err(FsError::PoolExists(cfg.name));
        }
        let pool_ino = self.alloc_ino();
        let mut pool = Pool {
            ino: pool_ino,
            cfg,
            store,
            entries: BTreeMap::new(),
            used: 0,
            online: true,
            offline_reason: None,
            listed: BTreeSet::new(),
            counters: Counters::default(),
            index: None,
        };
        for f in found {
            let ino = self.alloc_ino();
            let tick = self.next_tick();
            let charged = pool.store.charge_for(f.size);
            pool.used += charged;
            pool.entries.insert(f.name.clone(), ino);
            pool.set_listed(ino, !is_staging_name(&f.name));
            self.chunks
                .insert(ino, Chunk::adopted(pool_ino, f, charged, tick));
        }
        pool.index = self.make_index(&pool);
        if pool.used > pool.cfg.capacity {
            log::warn!(
                "pool {}: adopted chunks use {} bytes, more than its capacity of {} bytes; \
                 new chunks will need eviction or removals first",
                pool.cfg.name,
                pool.used,
                pool.cfg.capacity
            );
        }
        log::info!(
            "pool {}: {} chunk(s), {} bytes adopted from {}",
            pool.cfg.name,
            pool.entries.len(),
            pool.used,
            pool.store.path().display()
        );
        self.notices.push(Notice::InvalEntry {
            parent: ROOT,
            name: OsString::from(&pool.cfg.name),
        });
        self.pools.insert(pool.cfg.name.clone(), pool_ino);
        self.pool_nodes.insert(pool_ino, pool);
        Ok(())
    }

    /// Closes every pool, after the session ended: open chunk and directory
    /// handles go, and devdax pools release their devices (and owner leases), so
    /// the same ranges can be opened again in this process.
    pub fn close_all(&mut self) {
        self.handles.clear();
        self.dirs.clear();
        self.dirs_per_uid.clear();
        self.staging_per_uid.clear();
        self.chunks.clear();
        self.pool_nodes.clear();
        self.pools.clear();
    }

    /// Removes a pool unless some of its chunks are open.
    pub fn remove_pool(&mut self, name: &str) -> Result<(), FsError> {
        let Some(&pool_ino) = self.pools.get(name) else {
            return Err(FsError::NoSuchPool(name.to_string()));
        };
        let pinned = self
            .chunks
            .values()
            .filter(|c| c.pool == pool_ino && c.opens > 0)
            .count() as u64;
        if pinned > 0 {
            return Err(FsError::PoolBusy {
                pool: name.to_string(),
                pinned_chunks: pinned,
            });
        }
        self.pools.remove(name);
        self.pool_nodes.remove(&pool_ino);
        self.chunks.retain(|_, c| c.pool != pool_ino);
        self.notices.push(Notice::InvalEntry {
            parent: ROOT,
            name: OsString::from(name),
        });
        Ok(())
    }

    /// Takes a pool on- or offline.
    pub fn set_online(
        &mut self,
        name: &str,
        online: bool,
        reason: Option<String>,
    ) -> Result<(), FsError> {
        let pool = self
            .pools
            .get(name)
            .and_then(|ino| self.pool_nodes.get_mut(ino))
            .ok_or_else(|| FsError::NoSuchPool(name.to_string()))?;
        pool.online = online;
        pool.offline_reason = if online { None } else { reason };
        Ok(())
    }

    /// Counts a failed operation on `ino` (a pool directory or a chunk) against its pool,
    /// by errno. `ENODATA` is not counted: it is how a missing xattr is answered, not a
    /// failure. Errors on the mount's root or an unknown inode belong to no pool.
    pub fn count_error(&mut self, ino: u64, e: Errno) {
        let code = i32::from(e);
        if code == libc::ENODATA {
            return;
        }
        let pool = match self.chunks.get(&ino) {
            Some(c) => c.pool,
            None => ino,
        };
        if let Some(p) = self.pool_nodes.get_mut(&pool) {
            *p.counters.errors.entry(code).or_default() += 1;
        }
    }

    /// One stats snapshot per pool, in name order.
    pub fn stats(&mut self) -> Vec<PoolStats> {
        self.reap();
        let mut out = Vec::with_capacity(self.pools.len());
        for ino in self.pools.values() {
            let Some(p) = self.pool_nodes.get(ino) else {
                continue;
            };
            let mut s = PoolStats {
                name: p.cfg.name.clone(),
                online: p.online,
                offline_reason: p.offline_reason.clone(),
                capacity: p.cfg.capacity,
                used_bytes: p.used,
                creates: p.counters.creates,
                publishes: p.counters.publishes,
                lookups: p.counters.lookups,
                hits: p.counters.hits,
                evictions: p.counters.evictions,
                removals: p.counters.removals,
                read_requests: p.counters.read_requests,
                write_requests: p.counters.write_requests,
                errors: p
                    .counters
                    .errors
                    .iter()
                    .map(|(&code, &n)| (errno_name(code), n))
                    .collect(),
                ..PoolStats::default()
            };
            for c in self.chunks.values().filter(|c| c.pool == p.ino) {
                if c.opens > 0 {
                    s.pinned_bytes += c.size;
                }
                if c.name.is_some() {
                    match c.phase {
                        Phase::Staging => s.staging_chunks += 1,
                        Phase::Published => s.published_chunks += 1,
                    }
                }
            }
            out.push(s);
        }
        out
    }

    fn root_attr(&self) -> FileAttr {
        dir_attr(ROOT, 0, 0, 0o755, self.mounted_at)
    }

    fn pool_attr(&self, p: &Pool) -> FileAttr {
        dir_attr(p.ino, p.cfg.uid, p.cfg.gid, p.cfg.mode, self.mounted_at)
    }

    fn chunk_attr(&self, ino: u64, c: &Chunk) -> FileAttr {
        let gid = self.pool_nodes.get(&c.pool).map_or(0, |p| p.cfg.gid);
        // A staging chunk may have grown through write(2), which never reaches us.
        let size = match (c.phase, &c.file) {
            (Phase::Staging, Some(f)) => f.len().unwrap_or(c.size),
            _ => c.size,
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: c.created,
            mtime: c.created,
            ctime: c.created,
            crtime: c.created,
            kind: FileType::RegularFile,
            perm: c.mode,
            nlink: u32::from(c.name.is_some()),
            uid: c.uid,
            gid,
            rdev: 0,
            blksize: BLOCK as u32,
            flags: 0,
        }
    }

    /// Attributes of any inode.
    pub fn attr(&self, ino: INodeNo) -> Result<FileAttr, Errno> {
        self.attr_of(ino.0)
    }

    /// [`State::attr`] by raw inode number.
    fn attr_of(&self, ino: u64) -> Result<FileAttr, Errno> {
        if ino == ROOT {
            return Ok(self.root_attr());
        }
        if let Some(p) = self.pool_nodes.get(&ino) {
            return Ok(self.pool_attr(p));
        }
        match self.chunks.get(&ino) {
            Some(c) => Ok(self.chunk_attr(ino, c)),
            None => self.index_attr(ino).ok_or(Errno::ENOENT),
        }
    }

    fn pool_mut(&mut self, ino: u64) -> Result<&mut Pool, Errno> {
        if ino == ROOT {
            return Err(Errno::EPERM);
        }
        self.pool_nodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }
}

fn dir_attr(ino: u64, uid: u32, gid: u32, mode: u32, time: SystemTime) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: 0,
        blocks: 0,
        atime: time,
        mtime: time,
        ctime: time,
        crtime: time,
        kind: FileType::Directory,
        perm: (mode & 0o7777) as u16,
        nlink: 2,
        uid,
        gid,
        rdev: 0,
        blksize: BLOCK as u32,
        flags: 0,
    }
}
