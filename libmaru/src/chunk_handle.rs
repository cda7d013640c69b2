//! [`ChunkHandle`]: a chunk's whole life (staging, then sealed) as one value,
//! for the C ABI (`maru_chunk`): C cannot give a value up, so publishing there
//! is a state change of the handle, not a move. Rust code uses [`Chunk`] and
//! [`crate::Sealed`], where the type says what may still be written.

use crate::chunk::Chunk;
use crate::error::Result;
use crate::pool::Publish;

/// A chunk that is staging (writable) until published, then refuses writes
/// and a second publish with [`crate::Error::NotStaging`].
#[derive(Debug)]
pub struct ChunkHandle(Chunk);

impl From<Chunk> for ChunkHandle {
    fn from(c: Chunk) -> Self {
        ChunkHandle(c)
    }
}

impl ChunkHandle {
    /// [`Chunk::publish`], keeping the handle (now sealed).
    pub fn publish(&mut self, key: &[u8]) -> Result<Publish> {
        self.0.publish_in_place(key)
    }

    /// [`Chunk::write`]; refused once published.
    pub fn write(&mut self, offset: usize, src: &[u8]) -> Result<()> {
        self.0.check_staging()?;
        self.0.write(offset, src)
    }

    /// Start of the mapping (the C ABI's `maru_chunk_data`; writing through it
    /// after publishing breaks the readers' contract).
    pub fn as_ptr(&self) -> *mut u8 {
        self.0.as_ptr()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: chunks are never empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// [`Chunk::mlock`].
    pub fn mlock(&mut self) -> Result<()> {
        self.0.mlock()
    }

    /// [`Chunk::munlock`].
    pub fn munlock(&mut self) -> Result<()> {
        self.0.munlock()
    }

    /// [`Chunk::cuda_register`].
    pub fn cuda_register(&mut self) -> Result<()> {
        self.0.cuda_register()
    }

    /// [`Chunk::cuda_unregister`].
    pub fn cuda_unregister(&mut self) -> Result<()> {
        self.0.cuda_unregister()
    }
}
