//! The filesystem's in-memory state: pools, chunks, open handles, capacity and
//! eviction. Everything here runs under one mutex held by [`crate::fs`]; nothing
//! here talks to the kernel except through the backing stores and the notices it
//! queues for the notifier thread (see [`crate::notify`]).

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::SystemTime;

use fuser::{BackingId, Errno, FileAttr, FileType, INodeNo};

use crate::backing::{ChunkMeta, OpenError, Store};
use crate::chunk_file::ChunkFile;
use crate::notify::Notice;
use crate::reaper::Reaper;
use crate::xattr;
use crate::{Eviction, FsError, PoolConfig, PoolStats};

/// Inode number of the mount's root directory.
pub(crate) const ROOT: u64 = 1;
/// Longest file name (bytes) the filesystem accepts.
pub(crate) const NAME_MAX: usize = 255;
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
    read_requests: u64,
    write_requests: u64,
}

/// One pool: a directory of chunks with a capacity.
#[derive(Debug)]
pub(crate) struct Pool {
    ino: u64,
    cfg: PoolConfig,
    store: Store,
    /// Every named chunk (staging and published), by name.
    entries: BTreeMap<OsString, u64>,
    /// Bytes charged to chunks of this pool.
    used: u64,
    online: bool,
    offline_reason: Option<String>,
    counters: Counters,
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
}

/// One entry of a directory listing snapshot.
#[derive(Debug, Clone)]
pub(crate) struct DirEntry {
    pub ino: u64,
    pub kind: FileType,
    pub name: OsString,
}

/// What an open or create hands back to the FUSE layer.
pub(crate) struct Opened {
    pub fh: u64,
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
    pool_nodes: HashMap<u64, Pool>,
    chunks: HashMap<u64, Chunk>,
    /// Open file handle -> chunk inode.
    handles: HashMap<u64, u64>,
    /// Open directory handle -> listing snapshot.
    dirs: HashMap<u64, Vec<DirEntry>>,
    /// Kernel cache invalidations to send once the lock is dropped.
    notices: Vec<Notice>,
    /// Returns the space of removed chunks once their memory is freed.
    reaper: Reaper,
}

fn is_staging_name(name: &OsStr) -> bool {
    name.as_bytes().first() == Some(&b'.')
}

fn errno_of(e: &io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
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
    if cfg.name.starts_with('.') || cfg.name.contains('/') || cfg.name.contains('\0') {
        return Err(bad(
            "the name must not start with '.' nor contain '/' or NUL; pick a plain directory name",
        ));
    }
    if cfg.max_chunk_size == Some(0) {
        return Err(bad("max_chunk_size must be more than 0 bytes (or unset)"));
    }
    Ok(())
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
            pool_nodes: HashMap::new(),
            chunks: HashMap::new(),
            handles: HashMap::new(),
            dirs: HashMap::new(),
            notices: Vec::new(),
            reaper: Reaper::new(),
        }
    }

    /// Returns to their pools the charges of removed chunks whose memory is gone.
    fn reap(&mut self) {
        for (pool, bytes) in self.reaper.reap() {
            if let Some(p) = self.pool_nodes.get_mut(&pool) {
                p.used = p.used.saturating_sub(bytes);
            }
        }
    }

    /// Records whether the kernel accepted FUSE passthrough.
    pub fn set_passthrough(&mut self, on: bool) {
        self.passthrough = on;
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

    // ---------------------------------------------------------------- pools

    /// Adds a pool, adopting the chunks already in its backing store.
    pub fn add_pool(&mut self, cfg: PoolConfig) -> Result<(), FsError> {
        validate_pool(&cfg)?;
        if self.pools.contains_key(&cfg.name) {
            return Err(FsError::PoolExists(cfg.name));
        }
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
        let pool_ino = self.alloc_ino();
        let mut pool = Pool {
            ino: pool_ino,
            cfg,
            store,
            entries: BTreeMap::new(),
            used: 0,
            online: true,
            offline_reason: None,
            counters: Counters::default(),
        };
        for f in found {
            let ino = self.alloc_ino();
            let tick = self.next_tick();
            let charged = pool.store.charge_for(f.size);
            pool.used += charged;
            pool.entries.insert(f.name.clone(), ino);
            self.chunks.insert(
                ino,
                Chunk {
                    pool: pool_ino,
                    name: Some(f.name),
                    phase: Phase::Published,
                    size: f.size,
                    charged,
                    uid: f.meta.uid,
                    mode: f.meta.mode,
                    created: f.meta.created,
                    opens: 0,
                    file: None,
                    backing: None,
                    nlookup: 0,
                    last_used: tick,
                    xattrs: f.xattrs,
                },
            );
        }
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
                read_requests: p.counters.read_requests,
                write_requests: p.counters.write_requests,
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

    // ---------------------------------------------------------------- attributes

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
    pub fn attr(&self, ino: u64) -> Result<FileAttr, Errno> {
        if ino == ROOT {
            return Ok(self.root_attr());
        }
        if let Some(p) = self.pool_nodes.get(&ino) {
            return Ok(self.pool_attr(p));
        }
        match self.chunks.get(&ino) {
            Some(c) => Ok(self.chunk_attr(ino, c)),
            None => Err(Errno::ENOENT),
        }
    }

    fn pool_mut(&mut self, ino: u64) -> Result<&mut Pool, Errno> {
        if ino == ROOT {
            return Err(Errno::EPERM);
        }
        self.pool_nodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    // ---------------------------------------------------------------- names

    /// Looks `name` up in directory `parent`; `Ok(None)` means "no such entry"
    /// (cacheable by the kernel as a negative entry).
    pub fn lookup(&mut self, parent: u64, name: &OsStr) -> Result<Option<FileAttr>, Errno> {
        if parent == ROOT {
            let Some(&ino) = name.to_str().and_then(|n| self.pools.get(n)) else {
                return Ok(None);
            };
            return self.attr(ino).map(Some);
        }
        let pool = self.pool_nodes.get_mut(&parent).ok_or(Errno::ENOENT)?;
        let is_key = !is_staging_name(name);
        if is_key {
            pool.counters.lookups += 1;
        }
        let Some(&ino) = pool.entries.get(name) else {
            return Ok(None);
        };
        let Some(c) = self.chunks.get_mut(&ino) else {
            return Ok(None);
        };
        if is_key && c.phase == Phase::Published {
            pool.counters.hits += 1;
        }
        c.nlookup += 1;
        self.attr(ino).map(Some)
    }

    /// The kernel dropped `n` references to `ino`.
    pub fn forget(&mut self, ino: u64, n: u64) {
        if let Some(c) = self.chunks.get_mut(&ino) {
            c.nlookup = c.nlookup.saturating_sub(n);
            self.drop_if_orphan(ino);
        }
    }

    /// Forgets a chunk nobody can reach any more (no name, no handle, no kernel ref).
    fn drop_if_orphan(&mut self, ino: u64) {
        if let Some(c) = self.chunks.get(&ino) {
            if c.name.is_none() && c.opens == 0 && c.nlookup == 0 {
                self.chunks.remove(&ino);
            }
        }
    }

    /// Removes chunk `ino`'s name and backing file; its charge goes when the last
    /// handle does. Queues a kernel dentry invalidation if `notify`.
    fn unname(&mut self, ino: u64, notify: bool) {
        let Some(c) = self.chunks.get_mut(&ino) else {
            return;
        };
        let Some(name) = c.name.take() else {
            return;
        };
        if let Some(pool) = self.pool_nodes.get_mut(&c.pool) {
            pool.entries.remove(&name);
            // Until its memory is freed (last descriptor and last mapping gone),
            // the chunk stays charged; the reaper returns the charge then.
            let watched = pool
                .store
                .file_path(&name)
                .is_some_and(|path| self.reaper.watch(&path, pool.ino, c.charged));
            if watched {
                c.charged = 0;
            } else if c.opens == 0 {
                pool.used = pool.used.saturating_sub(c.charged);
                c.charged = 0;
            }
            if let Err(e) = pool.store.remove(&name) {
                log::warn!(
                    "pool {}: cannot remove backing file {:?} of chunk {:?}: {e}",
                    pool.cfg.name,
                    pool.store.path().join(&name),
                    name
                );
            }
            if notify {
                self.notices.push(Notice::Delete {
                    parent: pool.ino,
                    child: ino,
                    name,
                });
            }
        }
        self.drop_if_orphan(ino);
        self.reap();
    }

    /// Creates and opens a staging chunk `name` in pool `parent`.
    pub fn create(
        &mut self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        uid: u32,
        open_backing: OpenBacking<'_>,
    ) -> Result<Opened, Errno> {
        let passthrough = self.passthrough;
        let pool = self.pool_mut(parent)?;
        if !is_staging_name(name) {
            // Keys only come into being by publishing a staging chunk.
            return Err(Errno::EPERM);
        }
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        if !pool.online {
            return Err(Errno::ENODEV);
        }
        if pool.entries.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let meta = ChunkMeta {
            uid,
            mode: (mode & 0o777) as u16,
            created: SystemTime::now(),
        };
        let file = pool.store.create(name, &meta).map_err(|e| {
            log::warn!(
                "pool {}: cannot create backing file {:?}: {e}",
                pool.cfg.name,
                pool.store.path().join(name)
            );
            errno_of(&e)
        })?;
        let direct_io = !pool.store.passthrough();
        let backing = if passthrough && pool.store.passthrough() {
            let opened = match file.as_file() {
                Some(f) => open_backing(f),
                None => Err(io::Error::from_raw_os_error(libc::EIO)),
            };
            match opened {
                Ok(id) => Some(Arc::new(id)),
                Err(e) => {
                    log::error!(
                        "pool {}: cannot register {:?} for passthrough: {e}",
                        pool.cfg.name,
                        pool.store.path().join(name)
                    );
                    let _ = pool.store.remove(name);
                    return Err(errno_of(&e));
                }
            }
        } else {
            None
        };
        pool.counters.creates += 1;
        let pool_ino = pool.ino;
        let ino = self.alloc_ino();
        let fh = self.alloc_fh();
        let tick = self.next_tick();
        if let Some(pool) = self.pool_nodes.get_mut(&pool_ino) {
            pool.entries.insert(name.to_os_string(), ino);
        }
        let chunk = Chunk {
            pool: pool_ino,
            name: Some(name.to_os_string()),
            phase: Phase::Staging,
            size: 0,
            charged: 0,
            uid,
            mode: meta.mode,
            created: meta.created,
            opens: 1,
            file: Some(Arc::new(file)),
            backing: backing.clone(),
            nlookup: 1,
            last_used: tick,
            xattrs: Vec::new(),
        };
        let attr = self.chunk_attr(ino, &chunk);
        self.chunks.insert(ino, chunk);
        self.handles.insert(fh, ino);
        Ok(Opened {
            fh,
            attr,
            backing,
            direct_io,
        })
    }

    /// Opens chunk `ino`; `write` is whether the open asks for write access.
    pub fn open(
        &mut self,
        ino: u64,
        write: bool,
        open_backing: OpenBacking<'_>,
    ) -> Result<Opened, Errno> {
        let passthrough = self.passthrough;
        let tick = self.next_tick();
        let c = self.chunks.get_mut(&ino).ok_or(Errno::ENOENT)?;
        if write && c.phase == Phase::Published {
            // Published chunks are sealed.
            return Err(Errno::EPERM);
        }
        let pool = self.pool_nodes.get(&c.pool).ok_or(Errno::ENOENT)?;
        if c.file.is_none() {
            let Some(name) = &c.name else {
                // Unlinked or evicted and no handle keeps it alive.
                return Err(Errno::ENOENT);
            };
            let file = pool.store.open_chunk(name).map_err(|e| {
                log::warn!(
                    "pool {}: cannot open backing file {:?}: {e}",
                    pool.cfg.name,
                    pool.store.path().join(name)
                );
                errno_of(&e)
            })?;
            c.file = Some(Arc::new(file));
        }
        let direct_io = !pool.store.passthrough();
        if c.backing.is_none() && passthrough && pool.store.passthrough() {
            let opened = match c.file.as_deref().and_then(ChunkFile::as_file) {
                Some(f) => open_backing(f),
                None => Err(io::Error::from_raw_os_error(libc::EIO)),
            };
            match opened {
                Ok(id) => c.backing = Some(Arc::new(id)),
                Err(e) => {
                    log::error!(
                        "pool {}: cannot register chunk {:?} for passthrough: {e}",
                        pool.cfg.name,
                        c.name
                    );
                    if c.opens == 0 {
                        c.file = None;
                    }
                    return Err(errno_of(&e));
                }
            }
        }
        c.opens += 1;
        c.last_used = tick;
        let backing = c.backing.clone();
        let attr = self.attr(ino)?;
        let fh = self.alloc_fh();
        self.handles.insert(fh, ino);
        Ok(Opened {
            fh,
            attr,
            backing,
            direct_io,
        })
    }

    /// Releases handle `fh`. The last handle of a staging chunk reclaims it; the
    /// last handle of an unlinked chunk returns its space.
    pub fn release(&mut self, fh: u64) {
        let Some(ino) = self.handles.remove(&fh) else {
            return;
        };
        let Some(c) = self.chunks.get_mut(&ino) else {
            return;
        };
        c.opens = c.opens.saturating_sub(1);
        if c.opens > 0 {
            return;
        }
        c.backing = None;
        c.file = None;
        if c.name.is_none() {
            if let Some(pool) = self.pool_nodes.get_mut(&c.pool) {
                pool.used = pool.used.saturating_sub(c.charged);
            }
            c.charged = 0;
            self.drop_if_orphan(ino);
            self.reap();
        } else if c.phase == Phase::Staging {
            // The writer let go without publishing.
            self.unname(ino, true);
        }
    }

    /// Unlinks `name` from pool `parent`.
    pub fn unlink(&mut self, parent: u64, name: &OsStr) -> Result<(), Errno> {
        let pool = self.pool_mut(parent)?;
        let ino = *pool.entries.get(name).ok_or(Errno::ENOENT)?;
        // The kernel drops its own dentry for an unlink it sent.
        self.unname(ino, false);
        Ok(())
    }

    /// Renames within a pool; publishing is `staging name -> key`.
    pub fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
    ) -> Result<(), Errno> {
        if parent == ROOT || newparent == ROOT {
            return Err(Errno::EPERM);
        }
        if parent != newparent {
            return Err(Errno::EXDEV);
        }
        if flags & !libc::RENAME_NOREPLACE != 0 {
            return Err(Errno::EINVAL);
        }
        if newname.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let pool = self.pool_nodes.get(&parent).ok_or(Errno::ENOENT)?;
        let ino = *pool.entries.get(name).ok_or(Errno::ENOENT)?;
        if name == newname {
            return Ok(());
        }
        if pool.entries.contains_key(newname) {
            // First writer wins, with or without RENAME_NOREPLACE.
            return Err(Errno::EEXIST);
        }
        let c = self.chunks.get(&ino).ok_or(Errno::ENOENT)?;
        let publish = !is_staging_name(newname);
        if c.phase == Phase::Published {
            return Err(Errno::EPERM);
        }
        if publish {
            // write(2) past the ftruncate size never reached us: charge it now.
            let actual = match &c.file {
                Some(f) => f.len().unwrap_or(c.size),
                None => c.size,
            };
            if actual > c.size {
                self.charge(ino, actual)?;
            }
        }
        let pool = self.pool_nodes.get_mut(&parent).ok_or(Errno::ENOENT)?;
        pool.store
            .rename_noreplace(name, newname)
            .map_err(|e| errno_of(&e))?;
        pool.entries.remove(name);
        pool.entries.insert(newname.to_os_string(), ino);
        if publish {
            pool.counters.publishes += 1;
        }
        let tick = self.next_tick();
        if let Some(c) = self.chunks.get_mut(&ino) {
            c.name = Some(newname.to_os_string());
            if publish {
                c.phase = Phase::Published;
                c.last_used = tick;
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- capacity

    /// Bytes still free in pool `pool_ino`.
    fn free(&self, pool_ino: u64) -> u64 {
        self.pool_nodes
            .get(&pool_ino)
            .map_or(0, |p| p.cfg.capacity.saturating_sub(p.used))
    }

    /// Charges chunk `ino` for `new_size` bytes (evicting if the policy allows).
    fn charge(&mut self, ino: u64, new_size: u64) -> Result<(), Errno> {
        let c = self.chunks.get(&ino).ok_or(Errno::ENOENT)?;
        let pool_ino = c.pool;
        let pool = self.pool_nodes.get(&pool_ino).ok_or(Errno::ENOENT)?;
        // What the store really takes for each size (a devdax extent is whole
        // alignment units), so the pool is full when its memory is.
        let (old, new) = (
            pool.store.charge_for(c.size),
            pool.store.charge_for(new_size),
        );
        if new_size > c.size {
            if pool.cfg.max_chunk_size.is_some_and(|max| new_size > max) {
                return Err(Errno::EFBIG);
            }
            if !pool.online {
                return Err(Errno::ENODEV);
            }
        }
        if new > old {
            let delta = new - old;
            let eviction = pool.cfg.eviction;
            if delta > self.free(pool_ino) {
                self.reap();
            }
            if delta > self.free(pool_ino) {
                if eviction == Eviction::None {
                    return Err(Errno::ENOSPC);
                }
                self.make_room(pool_ino, delta)?;
            }
        }
        let c = self.chunks.get_mut(&ino).ok_or(Errno::ENOENT)?;
        let pool = self.pool_nodes.get_mut(&pool_ino).ok_or(Errno::ENOENT)?;
        if new >= old {
            let d = new - old;
            pool.used = pool.used.saturating_add(d);
            c.charged = c.charged.saturating_add(d);
        } else {
            let d = (old - new).min(c.charged);
            pool.used = pool.used.saturating_sub(d);
            c.charged -= d;
        }
        c.size = new_size;
        Ok(())
    }

    /// Evicts least recently used unpinned published chunks of a pool until
    /// `delta` bytes are free; evicts nothing and fails with `ENOSPC` if even
    /// evicting every candidate could not make that much room.
    ///
    /// A chunk with no open handle may still be mapped by a process that closed
    /// its descriptor (under passthrough the daemon does not see that mapping):
    /// the store is asked, and such a chunk counts as pinned.
    fn make_room(&mut self, pool_ino: u64, delta: u64) -> Result<(), Errno> {
        let pool = self.pool_nodes.get(&pool_ino).ok_or(Errno::ENOENT)?;
        let mut candidates: Vec<(u64, u64, u64)> = pool
            .entries
            .values()
            .filter_map(|ino| {
                let c = self.chunks.get(ino)?;
                (c.phase == Phase::Published && c.opens == 0).then_some((
                    c.last_used,
                    *ino,
                    c.charged,
                ))
            })
            .collect();
        candidates.sort_unstable();
        let need = delta.saturating_sub(self.free(pool_ino));
        let mut victims = Vec::new();
        let mut freed = 0u64;
        for (_, ino, charged) in candidates {
            if freed >= need {
                break;
            }
            let mapped = self
                .chunks
                .get(&ino)
                .and_then(|c| c.name.as_ref())
                .is_some_and(|name| pool.store.in_use(name));
            if !mapped {
                victims.push(ino);
                freed = freed.saturating_add(charged);
            }
        }
        if freed < need {
            return Err(Errno::ENOSPC);
        }
        for ino in victims {
            self.unname(ino, true);
            if let Some(pool) = self.pool_nodes.get_mut(&pool_ino) {
                pool.counters.evictions += 1;
            }
        }
        if self.free(pool_ino) >= delta {
            Ok(())
        } else {
            Err(Errno::ENOSPC)
        }
    }

    /// Changes size and/or permission bits of `ino`.
    pub fn setattr(
        &mut self,
        ino: u64,
        size: Option<u64>,
        mode: Option<u32>,
        owner_change: bool,
    ) -> Result<FileAttr, Errno> {
        let c = self.chunks.get(&ino).ok_or_else(|| {
            if ino == ROOT || self.pool_nodes.contains_key(&ino) {
                Errno::EPERM
            } else {
                Errno::ENOENT
            }
        })?;
        if owner_change || ((size.is_some() || mode.is_some()) && c.phase == Phase::Published) {
            return Err(Errno::EPERM);
        }
        if let Some(new_size) = size {
            if c.file.is_none() {
                return Err(Errno::ENOENT);
            }
            let old = c.size;
            self.charge(ino, new_size)?;
            let res = self
                .chunks
                .get(&ino)
                .and_then(|c| c.file.as_ref())
                .map_or(Ok(()), |f| f.set_len(new_size));
            if let Err(e) = res {
                // Undo the charge; evictions already made stay made.
                let _ = self.charge(ino, old);
                return Err(errno_of(&e));
            }
        }
        if let Some(mode) = mode {
            let perm = (mode & 0o777) as u16;
            if let Some(c) = self.chunks.get_mut(&ino) {
                if let (Some(f), Some(pool)) = (&c.file, self.pool_nodes.get(&c.pool)) {
                    let meta = ChunkMeta {
                        uid: c.uid,
                        mode: perm,
                        created: c.created,
                    };
                    if let Err(e) = pool.store.set_meta(f, &meta) {
                        log::warn!(
                            "pool {}: cannot record mode of {:?}: {e}",
                            pool.cfg.name,
                            c.name
                        );
                    }
                }
                c.mode = perm;
            }
        }
        self.attr(ino)
    }

    /// First half of `fallocate` on a staging chunk: checks the request and
    /// charges any growth like `ftruncate` does. The caller then allocates with
    /// [`crate::backing::allocate`] on the returned file *without* holding the state
    /// lock (zeroing memory takes time), and calls [`State::undo_growth`] with the
    /// returned old size if that fails.
    ///
    /// A writer that calls `fallocate(fd, 0, 0, size)` instead of `ftruncate` gets
    /// its size charged and its memory committed in one request: its page faults are
    /// then cheap, and a full backing tmpfs fails here (ENOSPC) instead of with
    /// SIGBUS at a page fault.
    pub fn fallocate_begin(
        &mut self,
        ino: u64,
        offset: u64,
        length: u64,
        mode: i32,
    ) -> Result<(Arc<ChunkFile>, Option<u64>), Errno> {
        let c = self.chunks.get(&ino).ok_or(Errno::ENOENT)?;
        if c.phase == Phase::Published {
            return Err(Errno::EPERM);
        }
        let keep_size = match mode {
            0 => false,
            libc::FALLOC_FL_KEEP_SIZE => true,
            _ => return Err(Errno::EOPNOTSUPP),
        };
        let file = c.file.clone().ok_or(Errno::EBADF)?;
        let end = offset.checked_add(length).ok_or(Errno::EFBIG)?;
        let old = c.size;
        if end <= old {
            return Ok((file, None));
        }
        if keep_size {
            // Memory past the end would be used without being charged.
            return Err(Errno::EOPNOTSUPP);
        }
        self.charge(ino, end)?;
        Ok((file, Some(old)))
    }

    /// Returns the charge taken by a `fallocate` that then failed.
    pub fn undo_growth(&mut self, ino: u64, old: u64) {
        let _ = self.charge(ino, old);
    }

    // ---------------------------------------------------------------- data (non-passthrough)

    /// Reads through the daemon (only when passthrough is unavailable).
    pub fn read(&mut self, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let c = self.chunks.get(&ino).ok_or(Errno::ENOENT)?;
        if let Some(p) = self.pool_nodes.get_mut(&c.pool) {
            p.counters.read_requests += 1;
        }
        let f = c.file.as_ref().ok_or(Errno::EBADF)?;
        let mut buf = vec![0u8; size as usize];
        let n = f.read_at(&mut buf, offset).map_err(|e| errno_of(&e))?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Writes through the daemon (only when passthrough is unavailable).
    pub fn write(&mut self, ino: u64, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        let c = self.chunks.get(&ino).ok_or(Errno::ENOENT)?;
        if let Some(p) = self.pool_nodes.get_mut(&c.pool) {
            p.counters.write_requests += 1;
        }
        if c.phase == Phase::Published {
            return Err(Errno::EPERM);
        }
        let end = offset.saturating_add(data.len() as u64);
        if end > c.size {
            self.charge(ino, end)?;
        }
        let c = self.chunks.get(&ino).ok_or(Errno::ENOENT)?;
        let f = c.file.as_ref().ok_or(Errno::EBADF)?;
        f.write_all_at(data, offset).map_err(|e| errno_of(&e))?;
        Ok(data.len() as u32)
    }

    // ---------------------------------------------------------------- directories

    /// Snapshots a directory listing and returns its handle.
    pub fn opendir(&mut self, ino: u64) -> Result<u64, Errno> {
        let mut list = vec![
            DirEntry {
                ino,
                kind: FileType::Directory,
                name: ".".into(),
            },
            DirEntry {
                ino: ROOT,
                kind: FileType::Directory,
                name: "..".into(),
            },
        ];
        if ino == ROOT {
            for (name, &pino) in &self.pools {
                list.push(DirEntry {
                    ino: pino,
                    kind: FileType::Directory,
                    name: name.into(),
                });
            }
        } else {
            let pool = self.pool_nodes.get(&ino).ok_or(Errno::ENOTDIR)?;
            for (name, &cino) in &pool.entries {
                let published = self
                    .chunks
                    .get(&cino)
                    .is_some_and(|c| c.phase == Phase::Published);
                if published && !is_staging_name(name) {
                    list.push(DirEntry {
                        ino: cino,
                        kind: FileType::RegularFile,
                        name: name.clone(),
                    });
                }
            }
        }
        let fh = self.alloc_fh();
        self.dirs.insert(fh, list);
        Ok(fh)
    }

    /// The entries of directory handle `fh` from index `offset` on.
    pub fn readdir(&self, fh: u64, offset: u64) -> Result<&[DirEntry], Errno> {
        let list = self.dirs.get(&fh).ok_or(Errno::EBADF)?;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(list.len());
        Ok(&list[start..])
    }

    /// Drops a directory listing snapshot.
    pub fn releasedir(&mut self, fh: u64) {
        self.dirs.remove(&fh);
    }

    /// statfs figures for the pool holding `ino` (or all pools for the root):
    /// (blocks, free blocks, files).
    pub fn statfs(&self, ino: u64) -> (u64, u64, u64) {
        let pool_ino = if self.pool_nodes.contains_key(&ino) {
            Some(ino)
        } else {
            self.chunks.get(&ino).map(|c| c.pool)
        };
        let (mut cap, mut used, mut files) = (0u64, 0u64, 0u64);
        for p in self.pool_nodes.values() {
            if pool_ino.is_none_or(|pi| pi == p.ino) {
                cap = cap.saturating_add(p.cfg.capacity);
                used = used.saturating_add(p.used.min(p.cfg.capacity));
                files += p.entries.len() as u64;
            }
        }
        (cap / BLOCK, (cap - used) / BLOCK, files)
    }

    // ---------------------------------------------------------------- xattrs

    /// Value of xattr `name` on `ino`.
    pub fn getxattr(&self, ino: u64, name: &OsStr) -> Result<Vec<u8>, Errno> {
        if let Some(p) = self.pool_nodes.get(&ino) {
            if let Some(v) = p
                .store
                .devdax_device()
                .and_then(|dev| xattr::devdax_value(name, dev, None))
            {
                return Ok(v);
            }
            return xattr::pool_value(name, &p.cfg, p.used, p.online).ok_or(Errno::ENODATA);
        }
        let c = self.chunks.get(&ino).ok_or(Errno::ENODATA)?;
        let pool = self.pool_nodes.get(&c.pool);
        let node = pool.and_then(|p| p.cfg.node);
        if let Some(v) = xattr::chunk_value(name, c.phase, c.opens, node, c.created) {
            return Ok(v);
        }
        if let Some((p, dev)) = pool.and_then(|p| Some((p, p.store.devdax_device()?))) {
            // The open chunk's own extent, else (closed) the one its name has.
            let extent = c
                .file
                .as_deref()
                .and_then(ChunkFile::devdax_extent)
                .or_else(|| p.store.devdax_extent(c.name.as_deref()?));
            if let Some(v) = xattr::devdax_value(name, dev, extent) {
                return Ok(v);
            }
        }
        c.xattrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or(Errno::ENODATA)
    }

    /// NUL-separated xattr names of `ino`.
    pub fn listxattr(&self, ino: u64) -> Vec<u8> {
        let devdax = |pool: u64| {
            self.pool_nodes
                .get(&pool)
                .is_some_and(|p| p.store.devdax_device().is_some())
        };
        if self.pool_nodes.contains_key(&ino) {
            let extra: &[&str] = if devdax(ino) {
                xattr::DEVDAX_POOL_NAMES
            } else {
                &[]
            };
            return xattr::names(xattr::POOL_NAMES, extra.iter().map(OsStr::new));
        }
        match self.chunks.get(&ino) {
            Some(c) => {
                let extra: &[&str] = if devdax(c.pool) {
                    xattr::DEVDAX_CHUNK_NAMES
                } else {
                    &[]
                };
                xattr::names(
                    xattr::CHUNK_NAMES,
                    extra
                        .iter()
                        .map(OsStr::new)
                        .chain(c.xattrs.iter().map(|(n, _)| n.as_os_str())),
                )
            }
            None => Vec::new(),
        }
    }

    /// Sets (or with `value == None` removes) a writer's `user.*` xattr on a staging chunk.
    pub fn setxattr(
        &mut self,
        ino: u64,
        name: &OsStr,
        value: Option<&[u8]>,
        flags: i32,
    ) -> Result<(), Errno> {
        let Some(c) = self.chunks.get_mut(&ino) else {
            return Err(if self.pool_nodes.contains_key(&ino) || ino == ROOT {
                Errno::EPERM
            } else {
                Errno::ENOENT
            });
        };
        if !name.as_bytes().starts_with(b"user.") {
            return Err(Errno::ENOTSUP);
        }
        if xattr::is_reserved(name) || c.phase == Phase::Published {
            return Err(Errno::EPERM);
        }
        let pos = c.xattrs.iter().position(|(n, _)| n == name);
        match value {
            None => {
                let pos = pos.ok_or(Errno::ENODATA)?;
                if let Some(f) = &c.file {
                    f.set_xattr(name, None).map_err(|e| errno_of(&e))?;
                }
                c.xattrs.remove(pos);
            }
            Some(value) => {
                if flags & libc::XATTR_CREATE != 0 && pos.is_some() {
                    return Err(Errno::EEXIST);
                }
                if flags & libc::XATTR_REPLACE != 0 && pos.is_none() {
                    return Err(Errno::ENODATA);
                }
                let others: usize = c
                    .xattrs
                    .iter()
                    .filter(|(n, _)| n != name)
                    .map(|(n, v)| n.len() + v.len())
                    .sum();
                if others + name.len() + value.len() > xattr::USER_XATTR_LIMIT {
                    return Err(Errno::ENOSPC);
                }
                if let Some(f) = &c.file {
                    f.set_xattr(name, Some(value)).map_err(|e| errno_of(&e))?;
                }
                match pos {
                    Some(i) => c.xattrs[i].1 = value.to_vec(),
                    None => c.xattrs.push((name.to_os_string(), value.to_vec())),
                }
            }
        }
        Ok(())
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
