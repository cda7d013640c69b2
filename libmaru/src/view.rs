//! A read-only mapping of a published chunk.

use crate::cuda::Registration;
use crate::error::{Error, Result};
use crate::map::Mapping;
use std::os::fd::OwnedFd;

/// A published chunk mapped read-only. The chunk stays pinned (never evicted)
/// while the view lives; every process's view maps the same pages.
pub struct View {
    // Field order matters: the CUDA registration goes before the mapping.
    cuda: Option<Registration>,
    map: Mapping,
    /// The open file: with FUSE passthrough the mapping refers to the backing
    /// file, so this descriptor is what the pool counts as the pin.
    _fd: OwnedFd,
    /// "key <name> in pool <path>", for messages.
    object: String,
}

impl View {
    pub(crate) fn new(map: Mapping, fd: OwnedFd, object: String) -> Self {
        View {
            cuda: None,
            map,
            _fd: fd,
            object,
        }
    }

    /// What this view maps ("key <name> in pool <path>").
    pub fn describe(&self) -> &str {
        &self.object
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Always false: published chunks are never empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Start of the mapping.
    pub fn as_ptr(&self) -> *const u8 {
        self.map.as_ptr()
    }

    /// The chunk's bytes (no copy).
    pub fn as_slice(&self) -> &[u8] {
        self.map.as_slice()
    }

    /// Faults every page in now (MADV_POPULATE_READ), so later reads take no
    /// page fault. Views are mapped lazily: without this, the first read of
    /// each page (or a 2 MiB huge page) faults it in.
    pub fn prefault(&self) -> Result<()> {
        self.map
            .populate()
            .map_err(|e| Error::os("pre-fault", self.object.clone(), e))
    }

    /// Locks the pages in RAM.
    pub fn mlock(&mut self) -> Result<()> {
        self.map.lock(&self.object)
    }

    /// Unlocks the pages.
    pub fn munlock(&mut self) -> Result<()> {
        self.map.unlock(&self.object)
    }

    /// Registers the mapping with CUDA (READ_ONLY | PORTABLE). Idempotent: a
    /// view registers once, later calls are free.
    pub fn cuda_register(&mut self) -> Result<()> {
        if self.cuda.is_none() {
            self.cuda = Some(Registration::new(
                self.map.as_ptr(),
                self.map.len(),
                true,
                &self.object,
            )?);
        }
        Ok(())
    }

    /// Whether the mapping is registered with CUDA.
    pub fn is_cuda_registered(&self) -> bool {
        self.cuda.is_some()
    }

    /// Unregisters the mapping from CUDA (no-op if not registered).
    pub fn cuda_unregister(&mut self) -> Result<()> {
        match self.cuda.take() {
            Some(reg) => reg.unregister(),
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View")
            .field("object", &self.object)
            .field("ptr", &self.map.as_ptr())
            .field("len", &self.map.len())
            .field("cuda", &self.cuda.is_some())
            .finish()
    }
}
