//! A read-only mapping of a published chunk, and the pool's cache of them.

use crate::error::{Error, Result};
use crate::map::Mapping;
use crate::sys::cuda::Registration;
use std::collections::{BTreeMap, HashMap};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};

/// One mapping of a published chunk, shared by the views (and the pool's view
/// cache) that use it. Published chunks are immutable, so sharing is safe.
pub(crate) struct Mapped {
    // Field order matters: the CUDA registration goes before the mapping, and
    // the mapping before the descriptor.
    cuda: Mutex<Option<Registration>>,
    map: Mapping,
    /// The open file: with FUSE passthrough the mapping refers to the backing
    /// file, so this descriptor is what the pool counts as the pin.
    _fd: OwnedFd,
    /// Inode number of the chunk file (tells a republished key from the old one).
    ino: u64,
    /// "key <name> in pool <path>", for messages.
    object: String,
}

impl Mapped {
    pub(crate) fn new(map: Mapping, fd: OwnedFd, ino: u64, object: String) -> Self {
        Mapped {
            cuda: Mutex::new(None),
            map,
            _fd: fd,
            ino,
            object,
        }
    }

    fn cuda(&self) -> MutexGuard<'_, Option<Registration>> {
        // A panic while holding this lock cannot leave the Option inconsistent.
        self.cuda.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A published chunk mapped read-only. The chunk stays pinned (never evicted)
/// while the view lives; every process's view maps the same pages. Cloning a
/// view shares its mapping, pin and CUDA registration.
#[derive(Clone)]
pub struct View {
    inner: Arc<Mapped>,
}

impl View {
    pub(crate) fn new(inner: Arc<Mapped>) -> Self {
        View { inner }
    }

    /// What this view maps ("key <name> in pool <path>").
    pub fn describe(&self) -> &str {
        &self.inner.object
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.inner.map.len()
    }

    /// Always false: published chunks are never empty.
    pub fn is_empty(&self) -> bool {
        self.inner.map.is_empty()
    }

    /// Start of the mapping.
    pub fn as_ptr(&self) -> *const u8 {
        self.inner.map.as_ptr()
    }

    /// The chunk's bytes (no copy).
    pub fn as_slice(&self) -> &[u8] {
        self.inner.map.as_slice()
    }

    /// Faults every page in now (MADV_POPULATE_READ), so later reads take no
    /// page fault. Views are mapped lazily: without this, the first read of
    /// each page (or 2 MiB huge page) faults it in.
    pub fn prefault(&self) -> Result<()> {
        self.inner
            .map
            .populate()
            .map_err(|e| Error::os("pre-fault", self.inner.object.clone(), e))
    }

    /// Locks the pages in RAM (shared by every view of the same mapping).
    pub fn mlock(&self) -> Result<()> {
        self.inner.map.lock(&self.inner.object)
    }

    /// Unlocks the pages.
    pub fn munlock(&self) -> Result<()> {
        self.inner.map.unlock(&self.inner.object)
    }

    /// Registers the mapping with CUDA (READ_ONLY | PORTABLE). Idempotent and
    /// shared: views of the same cached mapping register it once, and a view
    /// taken again from the pool's view cache is already registered.
    pub fn cuda_register(&self) -> Result<()> {
        let mut reg = self.inner.cuda();
        if reg.is_none() {
            *reg = Some(Registration::new(
                self.inner.map.as_ptr(),
                self.inner.map.len(),
                true,
                &self.inner.object,
            )?);
        }
        Ok(())
    }

    /// Whether the mapping is registered with CUDA.
    pub fn is_cuda_registered(&self) -> bool {
        self.inner.cuda().is_some()
    }

    /// Unregisters the mapping from CUDA (no-op if not registered). Refused
    /// with EBUSY while other views or the pool's view cache share the mapping
    /// (it is unregistered when the last of them goes).
    pub fn cuda_unregister(&self) -> Result<()> {
        let others = Arc::strong_count(&self.inner) - 1;
        let mut reg = self.inner.cuda();
        if reg.is_none() {
            return Ok(());
        }
        if others > 0 {
            return Err(Error::os(
                "unregister from CUDA",
                format!(
                    "{} (mapping shared with {others} other view(s) or the pool's view cache; \
                     it is unregistered when the last one is released)",
                    self.inner.object
                ),
                std::io::Error::from_raw_os_error(libc::EBUSY),
            ));
        }
        match reg.take() {
            Some(r) => r.unregister(),
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View")
            .field("object", &self.inner.object)
            .field("ptr", &self.inner.map.as_ptr())
            .field("len", &self.inner.map.len())
            .finish()
    }
}

/// Recently released views kept mapped (and registered) per key name, so a
/// repeated get of an immutable chunk costs one stat instead of an open, a
/// mapping and a CUDA registration. Cached mappings keep their chunk pinned.
pub(crate) struct ViewCache {
    cap: usize,
    tick: u64,
    /// name -> (last use, mapping)
    entries: HashMap<Vec<u8>, (u64, Arc<Mapped>)>,
    /// last use -> name, oldest first (LRU order)
    order: BTreeMap<u64, Vec<u8>>,
}

impl ViewCache {
    /// An empty cache holding at most `cap` mappings (0 = disabled).
    pub(crate) fn new(cap: usize) -> Self {
        ViewCache {
            cap,
            tick: 0,
            entries: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.cap > 0
    }

    /// Sets the bound, dropping the least recently used entries above it.
    pub(crate) fn set_capacity(&mut self, cap: usize) {
        self.cap = cap;
        self.trim();
    }

    /// The cached mapping of `name` if it maps inode `ino` (a stale entry for
    /// another inode is dropped).
    pub(crate) fn get(&mut self, name: &[u8], ino: u64) -> Option<Arc<Mapped>> {
        let (used, m) = self.entries.get(name)?;
        if m.ino != ino {
            self.remove(name);
            return None;
        }
        let (old, m) = (*used, m.clone());
        self.tick += 1;
        if let Some(n) = self.order.remove(&old) {
            self.order.insert(self.tick, n);
        }
        if let Some(e) = self.entries.get_mut(name) {
            e.0 = self.tick;
        }
        Some(m)
    }

    /// Caches `m` under `name` as the most recently used entry.
    pub(crate) fn insert(&mut self, name: &[u8], m: Arc<Mapped>) {
        if self.cap == 0 {
            return;
        }
        self.remove(name);
        self.tick += 1;
        self.entries.insert(name.to_vec(), (self.tick, m));
        self.order.insert(self.tick, name.to_vec());
        self.trim();
    }

    /// Forgets `name` (removed or gone).
    pub(crate) fn remove(&mut self, name: &[u8]) {
        if let Some((used, _)) = self.entries.remove(name) {
            self.order.remove(&used);
        }
    }

    /// Number of cached mappings.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Drops least recently used entries until at most `cap` are left.
    fn trim(&mut self) {
        while self.entries.len() > self.cap {
            match self.order.pop_first() {
                Some((_, name)) => {
                    self.entries.remove(&name);
                }
                None => break,
            }
        }
    }
}
