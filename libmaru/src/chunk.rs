//! A staging chunk: the writer's read-write mapping, published under a key once
//! written. Publishing consumes the [`Chunk`] and returns a [`Sealed`] handle
//! that only reads, so no `&mut [u8]` to a published chunk's pages survives
//! (readers map the same pages). [`ChunkHandle`] is the same life as one
//! value, for the C ABI, which cannot give a value up.

use crate::error::{Error, Result};
use crate::key::KeyName;
use crate::map::Mapping;
use crate::pool::{PoolDir, Publish};
use crate::sys::cuda::Registration;
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::sync::Arc;

/// Where a chunk stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkState {
    /// Being written under its staging name.
    Staging,
    /// Published under this key name.
    Published(String),
    /// Lost the race to publish (the key existed): its staging file is gone.
    Aborted,
}

/// A chunk created by this process and not published yet. Write into it, then
/// [`Chunk::publish`] it, which turns it into a read-only [`Sealed`] handle.
///
/// Dropping an unpublished chunk removes its staging file (the pool returns the
/// space).
pub struct Chunk {
    // Field order matters: the CUDA registration goes before the mapping.
    cuda: Option<Registration>,
    map: Mapping,
    /// The open staging file: with FUSE passthrough the mapping refers to the
    /// backing file, so this descriptor is what keeps the chunk alive in the pool
    /// (a staging file is reclaimed when its last descriptor closes).
    _fd: OwnedFd,
    dir: Arc<PoolDir>,
    staging: CString,
    state: ChunkState,
}

impl Chunk {
    pub(crate) fn new(dir: Arc<PoolDir>, staging: CString, map: Mapping, fd: OwnedFd) -> Self {
        Chunk {
            cuda: None,
            map,
            _fd: fd,
            dir,
            staging,
            state: ChunkState::Staging,
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Always false: chunks are never empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Start of the mapping.
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_ptr()
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        self.map.as_slice()
    }

    /// The bytes, writable (write only before publishing).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // Chunks are always mapped read-write.
        self.map.as_mut_slice().unwrap_or_default()
    }

    /// Copies `src` into the chunk at byte `offset` (write only before
    /// publishing); fails if the range is not inside the chunk.
    pub fn write(&mut self, offset: usize, src: &[u8]) -> Result<()> {
        let len = self.len();
        let Some(end) = offset.checked_add(src.len()).filter(|&e| e <= len) else {
            return Err(Error::InvalidArgument(format!(
                "writing {} bytes at offset {offset} into chunk {} of {len} bytes: \
                 the range must lie inside the chunk",
                src.len(),
                self.staging_name()
            )));
        };
        self.as_mut_slice()[offset..end].copy_from_slice(src);
        Ok(())
    }

    /// The staging file's name in the pool (e.g. `.stage-123-0`).
    pub fn staging_name(&self) -> String {
        self.staging.to_string_lossy().into_owned()
    }

    /// Publishes the chunk under `key`: atomic rename without replace. Returns
    /// the chunk as a read-only [`Sealed`] handle (its mapping stays valid
    /// until that is dropped), whose [`Sealed::outcome`] is
    /// [`Publish::AlreadyExists`] when the key existed (first writer wins; this
    /// chunk's staging file is removed at once). On failure the chunk comes
    /// back unpublished in the [`Unpublished`] error (`?` turns that into an
    /// [`Error`] and drops the chunk, removing its staging file).
    pub fn publish(mut self, key: &[u8]) -> std::result::Result<Sealed, Unpublished> {
        match self.publish_in_place(key) {
            Ok(_) => Ok(Sealed { chunk: self }),
            Err(error) => Err(Unpublished {
                chunk: Box::new(self),
                error,
            }),
        }
    }

    /// Fails with [`Error::NotStaging`] unless the chunk is still staging.
    pub(crate) fn check_staging(&self) -> Result<()> {
        let state = match self.state {
            ChunkState::Staging => return Ok(()),
            ChunkState::Published(_) => "published",
            ChunkState::Aborted => "aborted",
        };
        Err(Error::NotStaging {
            staging: self.staging_name(),
            state,
        })
    }

    /// Publishes without giving the chunk up (for [`crate::ChunkHandle`]):
    /// the state changes to published or aborted; a chunk that is not
    /// staging any more is refused.
    pub(crate) fn publish_in_place(&mut self, key: &[u8]) -> Result<Publish> {
        self.check_staging()?;
        let name = KeyName::new(key)?;
        let outcome = self.dir.publish(&self.staging, key, &name)?;
        self.state = match outcome {
            Publish::Published => ChunkState::Published(name.display()),
            Publish::AlreadyExists => ChunkState::Aborted,
        };
        Ok(outcome)
    }

    /// Locks the pages in RAM.
    pub fn mlock(&mut self) -> Result<()> {
        let object = self.staging_name();
        self.map.lock(&object)
    }

    /// Unlocks the pages.
    pub fn munlock(&mut self) -> Result<()> {
        let object = self.staging_name();
        self.map.unlock(&object)
    }

    /// Registers the mapping with CUDA (PORTABLE | DEVICEMAP). Idempotent.
    pub fn cuda_register(&mut self) -> Result<()> {
        if self.cuda.is_none() {
            let object = self.staging_name();
            self.cuda = Some(Registration::new(
                self.map.as_ptr(),
                self.map.len(),
                false,
                &object,
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

/// A failed [`Chunk::publish`]: the chunk, still unpublished (publish it again
/// or drop it), and why.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct Unpublished {
    /// The chunk, unchanged (boxed: errors stay small).
    pub chunk: Box<Chunk>,
    /// Why it was not published.
    pub error: Error,
}

impl From<Unpublished> for Error {
    fn from(u: Unpublished) -> Error {
        u.error
    }
}

/// A chunk after [`Chunk::publish`]: read-only. Its mapping (and the pin of
/// its open file) lives until this is dropped.
#[derive(Debug)]
pub struct Sealed {
    chunk: Chunk,
}

impl Sealed {
    /// [`Publish::Published`], or [`Publish::AlreadyExists`] when the key
    /// existed (this chunk's staging file was removed).
    pub fn outcome(&self) -> Publish {
        match self.chunk.state {
            ChunkState::Published(_) => Publish::Published,
            _ => Publish::AlreadyExists,
        }
    }

    /// [`ChunkState::Published`] with the key's file name, or
    /// [`ChunkState::Aborted`].
    pub fn state(&self) -> &ChunkState {
        &self.chunk.state
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.chunk.len()
    }

    /// Always false: chunks are never empty.
    pub fn is_empty(&self) -> bool {
        self.chunk.is_empty()
    }

    /// Start of the mapping (read only).
    pub fn as_ptr(&self) -> *const u8 {
        self.chunk.as_ptr()
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        self.chunk.as_slice()
    }

    /// The name the chunk was written under (e.g. `.stage-123-0`).
    pub fn staging_name(&self) -> String {
        self.chunk.staging_name()
    }

    /// Locks the pages in RAM.
    pub fn mlock(&mut self) -> Result<()> {
        self.chunk.mlock()
    }

    /// Unlocks the pages.
    pub fn munlock(&mut self) -> Result<()> {
        self.chunk.munlock()
    }

    /// Registers the mapping with CUDA (PORTABLE | DEVICEMAP). Idempotent.
    pub fn cuda_register(&mut self) -> Result<()> {
        self.chunk.cuda_register()
    }

    /// Whether the mapping is registered with CUDA.
    pub fn is_cuda_registered(&self) -> bool {
        self.chunk.is_cuda_registered()
    }

    /// Unregisters the mapping from CUDA (no-op if not registered).
    pub fn cuda_unregister(&mut self) -> Result<()> {
        self.chunk.cuda_unregister()
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        if self.state == ChunkState::Staging {
            // Abort: the pool also reclaims it when the last handle goes, but a
            // plain directory needs the unlink. Nothing to report to in drop.
            let _ = self.dir.unlink(&self.staging);
        }
    }
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunk")
            .field("staging", &self.staging)
            .field("state", &self.state)
            .field("ptr", &self.map.as_ptr())
            .field("len", &self.map.len())
            .field("cuda", &self.cuda.is_some())
            .finish()
    }
}
