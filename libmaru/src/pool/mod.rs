//! A pool: one directory of the maru-fs mount, opened once; every chunk
//! operation is a `*at` system call relative to its directory fd.

use crate::chunk::Chunk;
use crate::error::{Error, Result};
use crate::key::{self, KeyName, Unescaped};
use crate::map::Access;
use crate::sys;
use crate::view::{Mapped, View, ViewCache};
use maru_proto::name::{is_staging, STAGING_PREFIX};
use maru_proto::xattr;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

mod dir;
mod info;
mod lend;
mod membership;

pub(crate) use dir::PoolDir;
pub use info::{NumaNode, PoolInfo};
use membership::MembershipSlot;

/// Process-wide counter for staging names ([`STAGING_PREFIX`]`<pid>-<n>`).
static STAGING_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Mode of new chunk files (before umask); access is governed by the pool directory.
const CHUNK_MODE: libc::c_uint = 0o644;

/// Outcome of publishing a chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Publish {
    /// The chunk is now visible under the key.
    Published,
    /// The key already existed (first writer wins); this chunk's staging file was removed.
    AlreadyExists,
}

/// An open pool directory. Cheap to clone (clones share the view cache);
/// chunks and views keep what they need alive.
#[derive(Clone)]
pub struct Pool {
    dir: Arc<PoolDir>,
    cache: Arc<Mutex<ViewCache>>,
    /// The pool's membership index (`.maru-index`), as far as this process knows it.
    membership: Arc<Mutex<MembershipSlot>>,
    /// Staging chunks created ahead of need (see [`Pool::reserve`]).
    reserve: Arc<Mutex<Vec<Chunk>>>,
    /// The daemon's lending socket for this pool, if it has one: batches of
    /// cold keys are opened in one round trip ([`Pool::batch_get`]).
    lender: Option<Arc<lend::Lender>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("path", &self.dir.path)
            .finish()
    }
}

impl Pool {
    /// Opens the pool directory at `path` (e.g. `/mnt/maru/llama`).
    ///
    /// Every chunk and view keeps one file descriptor open (that open file is
    /// the pool's pin), so the first call raises the process's soft
    /// `RLIMIT_NOFILE` to its hard limit.
    pub fn open(path: impl AsRef<Path>) -> Result<Pool> {
        static RAISE_NOFILE: std::sync::Once = std::sync::Once::new();
        RAISE_NOFILE.call_once(sys::fs::raise_nofile_limit);
        let path = path.as_ref();
        let object = format!("pool {}", path.display());
        let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| {
            Error::InvalidArgument(format!("{object}: the path contains a NUL byte"))
        })?;
        let dir = sys::fs::open(&c, libc::O_RDONLY | libc::O_DIRECTORY)
            .map_err(|e| Error::os("open", object.clone(), e))?;
        let devdax = dir::devdax_device(dir.as_fd(), &object)?;
        let lender = match devdax {
            Some(_) => None,
            None => lender_for(dir.as_fd(), path, &object)?,
        };
        Ok(Pool {
            dir: Arc::new(PoolDir {
                dir,
                path: path.to_path_buf(),
                devdax,
            }),
            cache: Arc::new(Mutex::new(ViewCache::new(0))),
            membership: Arc::new(Mutex::new(MembershipSlot::Unknown)),
            reserve: Arc::new(Mutex::new(Vec::new())),
            lender,
        })
    }

    fn cache(&self) -> MutexGuard<'_, ViewCache> {
        // The cache stays consistent even if a holder panicked.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps up to `max_views` released views mapped (LRU), so getting the same
    /// key again costs one stat and returns the same, already CUDA-registered
    /// mapping. Chunks are immutable once published, and the chunk's inode
    /// number is checked on every hit, so a removed and republished key is never
    /// served stale. Cached mappings keep their chunks pinned (not evictable);
    /// removing a key through this pool drops its entry. 0 (the default)
    /// disables the cache and drops what it holds.
    pub fn set_view_cache(&self, max_views: usize) {
        self.cache().set_capacity(max_views);
    }

    /// Number of mappings the view cache holds now.
    pub fn cached_views(&self) -> usize {
        self.cache().len()
    }

    /// The pool directory's path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn reserve_lock(&self) -> MutexGuard<'_, Vec<Chunk>> {
        self.reserve.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates staging chunks of `size` bytes ahead of need until this pool
    /// (and its clones) hold `count` of that size; returns how many it holds.
    /// [`Pool::create`] and [`Pool::store`] of that size then take one instead
    /// of creating a file: storing costs the copy and one publish. Reserved
    /// chunks are charged to the pool like any staging chunk; they are removed
    /// by [`Pool::clear_reserve`] or when the last clone of the pool is dropped.
    pub fn reserve(&self, size: usize, count: usize) -> Result<usize> {
        let have = self.reserved(size);
        for _ in have..count {
            let c = self.create_new(size)?;
            self.reserve_lock().push(c);
        }
        Ok(self.reserved(size))
    }

    /// Number of reserved chunks of `size` bytes.
    pub fn reserved(&self, size: usize) -> usize {
        self.reserve_lock()
            .iter()
            .filter(|c| c.len() == size)
            .count()
    }

    /// Removes every reserved chunk (their space returns to the pool).
    pub fn clear_reserve(&self) {
        let taken = std::mem::take(&mut *self.reserve_lock());
        drop(taken);
    }

    /// A reserved chunk of exactly `size` bytes, if any.
    fn take_reserved(&self, size: usize) -> Option<Chunk> {
        let mut r = self.reserve_lock();
        let i = r.iter().rposition(|c| c.len() == size)?;
        Some(r.swap_remove(i))
    }

    /// Creates a staging chunk of `size` bytes: hidden staging file, sized (the
    /// pool charges it now), mapped read-write and pre-faulted. Takes a reserved
    /// chunk of that size if there is one (see [`Pool::reserve`]).
    pub fn create(&self, size: usize) -> Result<Chunk> {
        match self.take_reserved(size) {
            Some(c) => Ok(c),
            None => self.create_new(size),
        }
    }

    fn create_new(&self, size: usize) -> Result<Chunk> {
        let (fd, staging) = self.create_staging(size, true)?;
        let object = self.dir.child(staging.as_bytes()).display().to_string();
        let abort = |e: Error| {
            let _ = self.dir.unlink(&staging);
            e
        };
        let map = self
            .dir
            .map(fd.as_fd(), size, Access::ReadWrite, &object)
            .map_err(abort)?;
        Ok(Chunk::new(self.dir.clone(), staging, map, fd))
    }

    /// Copies `data` into a new chunk with write(2) and publishes it under `key`
    /// in one call: no mapping is made, which is the cheapest way to store bytes
    /// that are not already in a chunk (no page-table work for the writer). With
    /// a reserved chunk of `data.len()` bytes (see [`Pool::reserve`]) the bytes
    /// are copied into it instead ([`Chunk::write`]) and only the publish reaches
    /// the filesystem. [`Publish::AlreadyExists`] when the key existed (first
    /// writer wins).
    pub fn store(&self, key: &[u8], data: &[u8]) -> Result<Publish> {
        let name = KeyName::new(key)?;
        if let Some(mut c) = self.take_reserved(data.len()) {
            c.write(0, data)?;
            return Ok(c.publish(key)?.outcome());
        }
        let (fd, staging) = self.create_staging(data.len(), false)?;
        let abort = |e: Error| {
            let _ = self.dir.unlink(&staging);
            e
        };
        let mut off = 0usize;
        while off < data.len() {
            let n = match sys::fs::pwrite(fd.as_fd(), &data[off..], off as libc::off_t) {
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    let object = self.dir.child(staging.as_bytes()).display().to_string();
                    return Err(abort(Error::os("write chunk", object, err)));
                }
            };
            if n == 0 {
                let object = self.dir.child(staging.as_bytes()).display().to_string();
                let err = io::Error::from_raw_os_error(libc::EIO);
                return Err(abort(Error::os("write chunk (no progress)", object, err)));
            }
            off += n;
        }
        self.dir.publish(&staging, key, &name).map_err(abort)
    }

    /// Creates and sizes a staging file: `(fd, name)`. With `allocate` the size
    /// is set by `fallocate(2)`, which also allocates the pages now, in as large
    /// folios as the pool gives (tmpfs `huge=`: one large folio per chunk, mapped
    /// at once) and charges the pool in the same round trip; a pool without
    /// fallocate gets `ftruncate(2)`. Without `allocate`, `ftruncate(2)` (the
    /// pages are allocated by the writes that follow).
    fn create_staging(&self, size: usize, allocate: bool) -> Result<(OwnedFd, CString)> {
        if size == 0 {
            return Err(Error::InvalidArgument(format!(
                "cannot create an empty chunk in pool {}: size must be > 0",
                self.path().display()
            )));
        }
        let len = libc::off_t::try_from(size)
            .map_err(|_| Error::InvalidArgument(format!("chunk size {size} is too large")))?;
        let pid = std::process::id();
        let (fd, staging) = loop {
            let n = STAGING_COUNTER.fetch_add(1, Ordering::Relaxed);
            let name = CString::new(format!("{STAGING_PREFIX}{pid}-{n}"))
                .map_err(|_| Error::InvalidArgument("staging name".into()))?;
            let flags = libc::O_CREAT | libc::O_EXCL | libc::O_RDWR;
            let err = match sys::fs::openat(self.dir.fd(), &name, flags, CHUNK_MODE) {
                Ok(fd) => break (fd, name),
                Err(err) => err,
            };
            // A leftover name of a dead process with our pid: try the next number.
            if err.raw_os_error() != Some(libc::EEXIST) {
                return Err(Error::os(
                    "create staging chunk",
                    format!("pool {}", self.path().display()),
                    err,
                ));
            }
        };
        let fail = |op, err| {
            let object = self.dir.child(staging.as_bytes()).display().to_string();
            let _ = self.dir.unlink(&staging);
            Error::os(op, object, err)
        };
        if allocate {
            match sys::fs::fallocate(fd.as_fd(), len) {
                Ok(()) => return Ok((fd, staging)),
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS)
                    ) => {}
                Err(e) => return Err(fail("size (fallocate)", e)),
            }
        }
        sys::fs::ftruncate(fd.as_fd(), len).map_err(|e| fail("size (ftruncate)", e))?;
        Ok((fd, staging))
    }

    /// Maps the chunk published under `key` read-only; `None` if there is no such key.
    /// The chunk is pinned while the view lives.
    pub fn get(&self, key: &[u8]) -> Result<Option<View>> {
        let name = KeyName::new(key)?;
        self.get_name(key, &name)
    }

    fn get_name(&self, key: &[u8], name: &KeyName) -> Result<Option<View>> {
        match self.cached(name)? {
            Some(answer) => Ok(answer),
            None => self.open_view(key, name),
        }
    }

    /// What the view cache answers for `name` after one cached stat: the view
    /// (a hit), `Some(None)` (no such key), or `None` (not cached, or no cache).
    fn cached(&self, name: &KeyName) -> Result<Option<Option<View>>> {
        if !self.cache().enabled() {
            return Ok(None);
        }
        let Some(ino) = self.stat_ino(name)? else {
            self.cache().remove(name.as_bytes());
            return Ok(Some(None));
        };
        Ok(self
            .cache()
            .get(name.as_bytes(), ino)
            .map(|m| Some(View::new(m))))
    }

    /// Opens and maps the chunk named `name` through the mount (not from the
    /// view cache); `None` if there is no such key.
    fn open_view(&self, key: &[u8], name: &KeyName) -> Result<Option<View>> {
        let fd = match sys::fs::openat(self.dir.fd(), name.as_cstr(), libc::O_RDONLY, 0) {
            Ok(fd) => fd,
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(err) => return Err(Error::os("open chunk", self.key_object(name), err)),
        };
        if name.is_hashed() && !self.xattr_key_matches(fd.as_fd(), key)? {
            return Ok(None);
        }
        // Size and inode from the kernel's cached attributes (AT_STATX_DONT_SYNC:
        // no round trip to the filesystem; published chunks never change size).
        let (size, ino) = sys::fs::size_and_ino(fd.as_fd())
            .map_err(|e| Error::os("stat chunk", self.key_object(name), e))?;
        self.map_view(name, fd, size, ino).map(Some)
    }

    /// Maps the chunk of `name` open as `fd` (`size` bytes, inode `ino` on the
    /// mount) read-only and keeps the mapping in the view cache.
    fn map_view(&self, name: &KeyName, fd: OwnedFd, size: u64, ino: u64) -> Result<View> {
        let object = self.key_object(name);
        let size = usize::try_from(size).unwrap_or(0);
        let map = self.dir.map(fd.as_fd(), size, Access::ReadOnly, &object)?;
        let mapped = Arc::new(Mapped::new(map, fd, ino, object));
        self.cache().insert(name.as_bytes(), mapped.clone());
        Ok(View::new(mapped))
    }

    /// The inode number `name` refers to, or `None` if absent (one cached stat).
    fn stat_ino(&self, name: &KeyName) -> Result<Option<u64>> {
        match sys::fs::ino_at(self.dir.fd(), name.as_cstr()) {
            Ok(ino) => Ok(Some(ino)),
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(err) => Err(Error::os("look up", self.key_object(name), err)),
        }
    }

    /// Whether the file named for a long key really holds `key` (its xattr).
    fn xattr_key_matches(&self, fd: BorrowedFd<'_>, key: &[u8]) -> Result<bool> {
        let mut buf = vec![0u8; key::KEY_MAX + 1];
        match sys::xattr::fget(fd, key::KEY_XATTR, &mut buf) {
            Ok(n) => Ok(&buf[..n] == key),
            Err(err) if err.raw_os_error() == Some(libc::ENODATA) => Ok(false),
            Err(err) => Err(Error::os(
                "read xattr",
                format!("{} of key {}", xattr::KEY, key::display_prefix(key)),
                err,
            )),
        }
    }

    /// Removes `key` from the pool. Returns false if there was no such key.
    /// Processes that map the chunk keep their mapping.
    pub fn remove(&self, key: &[u8]) -> Result<bool> {
        let name = KeyName::new(key)?;
        self.cache().remove(name.as_bytes());
        match self.dir.unlink(name.as_cstr()) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(Error::os("remove", self.key_object(&name), e)),
        }
    }

    /// [`Pool::get`] for each key, in order (`None` for absent keys). On any
    /// other failure no view is kept.
    ///
    /// Keys not in the view cache are opened together: where the daemon lends
    /// the pool's chunks (tmpfs pools under `maru-devd`), one round trip per 253
    /// keys instead of one FUSE open per key; otherwise (or for whatever the
    /// lending socket does not answer) one open each, as [`Pool::get`].
    pub fn batch_get<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<Vec<Option<View>>> {
        let names = keys
            .iter()
            .map(|k| KeyName::new(k.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        // `None`: not answered yet (the cache was asked once per key here).
        let mut found = names
            .iter()
            .map(|n| self.cached(n))
            .collect::<Result<Vec<_>>>()?;
        self.borrow_cold(&names, &mut found)?;
        keys.iter()
            .zip(&names)
            .zip(found)
            .map(|((key, name), slot)| match slot {
                Some(view) => Ok(view),
                None => self.open_view(key.as_ref(), name),
            })
            .collect()
    }

    /// Answers the unanswered keys of `found` through the lending socket, if the
    /// pool has one and at least two keys are cold; leaves alone what it does
    /// not answer (long keys, whose file must be checked for its key xattr,
    /// and whatever the daemon refuses).
    fn borrow_cold(&self, names: &[KeyName], found: &mut [Option<Option<View>>]) -> Result<()> {
        let Some(lender) = &self.lender else {
            return Ok(());
        };
        let cold: Vec<usize> = (0..names.len())
            .filter(|&i| found[i].is_none() && !names[i].is_hashed())
            .collect();
        if cold.len() < 2 {
            return Ok(());
        }
        for group in cold.chunks(maru_proto::lend::MAX_KEYS) {
            let asked: Vec<&[u8]> = group.iter().map(|&i| names[i].as_bytes()).collect();
            let Some(lent) = lender.borrow(&asked) else {
                return Ok(());
            };
            for (&i, answer) in group.iter().zip(lent) {
                if let Some(view) = self.take_lent(&names[i], answer)? {
                    found[i] = Some(view);
                }
            }
        }
        Ok(())
    }

    /// Maps (and caches) what the lending socket answered for `name`: the view,
    /// `Some(None)` for an absent key, `None` for no answer.
    fn take_lent(&self, name: &KeyName, answer: lend::Lent) -> Result<Option<Option<View>>> {
        match answer {
            lend::Lent::Chunk { fd, size, ino } => {
                self.map_view(name, fd, size, ino).map(|v| Some(Some(v)))
            }
            lend::Lent::Missing => Ok(Some(None)),
            lend::Lent::Refused => Ok(None),
        }
    }

    /// Like [`Pool::prefix_contains`], but maps and pins the present prefix:
    /// returns one view per key of the prefix. A key removed meanwhile ends
    /// the prefix there.
    pub fn prefix_get<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<Vec<View>> {
        let present = self.prefix_contains(keys)?;
        let views = self.batch_get(&keys[..present])?;
        Ok(views.into_iter().map_while(|v| v).collect())
    }

    /// The keys published in the pool (a snapshot; staging files and names
    /// libmaru did not make are skipped).
    pub fn list_keys(&self) -> Result<Vec<Vec<u8>>> {
        let object = format!("pool {}", self.path().display());
        let names: Vec<Vec<u8>> = sys::fs::list(self.dir.fd())
            .map_err(|e| Error::os("list", object, e))?
            .into_iter()
            .map(|n| n.into_bytes())
            .filter(|n| !is_staging(n))
            .collect();
        let mut keys = Vec::with_capacity(names.len());
        for name in names {
            match key::unescape(&name) {
                Ok(Unescaped::Key(k)) => keys.push(k),
                Ok(Unescaped::Hashed) => {
                    if let Some(k) = self.read_key_xattr(&name)? {
                        keys.push(k);
                    }
                }
                Err(_) => {} // not a name libmaru made
            }
        }
        Ok(keys)
    }

    /// The full key stored with a hashed name; `None` if the chunk is gone or has none.
    fn read_key_xattr(&self, name: &[u8]) -> Result<Option<Vec<u8>>> {
        let path = self.dir.child(name);
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| Error::InvalidArgument("path with NUL".into()))?;
        let mut buf = vec![0u8; key::KEY_MAX + 1];
        match sys::xattr::get(&c, key::KEY_XATTR, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                Ok(Some(buf))
            }
            Err(err) => match err.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::ENODATA) => Ok(None),
                _ => Err(Error::os(
                    "read xattr",
                    format!("{} of {}", xattr::KEY, path.display()),
                    err,
                )),
            },
        }
    }

    /// "key <name> in pool <path>" for messages.
    fn key_object(&self, name: &KeyName) -> String {
        format!("key {} in pool {}", name.display(), self.path().display())
    }
}

/// The lender of the pool at `path` if its directory `dir` names a lending
/// socket. The daemon knows the pool by its directory's name under the mount,
/// so the path is resolved (symbolic links, `..`) to find it. A pool directory
/// that is the root of a mount of its own (a bind mount of the pool alone, as a
/// container's volume) may be named anything here, even another pool's name:
/// it is not lent (it opens through the mount).
fn lender_for(dir: BorrowedFd<'_>, path: &Path, object: &str) -> Result<Option<Arc<lend::Lender>>> {
    let Some(socket) = dir::lend_socket(dir, object)? else {
        return Ok(None);
    };
    let own = sys::fs::mount_id_at(dir, c"", libc::AT_EMPTY_PATH);
    let parent = sys::fs::mount_id_at(dir, c"..", 0);
    match (own, parent) {
        (Ok(Some(own)), Ok(Some(parent))) if own == parent => {}
        _ => return Ok(None),
    }
    let name = std::fs::canonicalize(path)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.as_bytes().to_vec()));
    Ok(name.map(|n| Arc::new(lend::Lender::new(socket, n))))
}
