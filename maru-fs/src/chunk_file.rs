//! An open chunk's data, whatever the pool's memory source: a regular file on
//! tmpfs (the `numa` source, passed through to the kernel) or an extent of a
//! devdax pool (served through FUSE READ/WRITE from the daemon's mapping).

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::backing::allocate;
use crate::devdax::{ChunkHandle, Extent};
use crate::sys::xattr::{fremove_xattr, fset_xattr_flags};

/// An open chunk's data.
#[derive(Debug)]
pub(crate) enum ChunkFile {
    /// The chunk's backing file.
    File(File),
    /// The chunk's extent in a devdax pool.
    Devdax(ChunkHandle),
}

impl ChunkFile {
    /// The regular file to register for FUSE passthrough, if the chunk has one.
    pub fn as_file(&self) -> Option<&File> {
        match self {
            ChunkFile::File(f) => Some(f),
            ChunkFile::Devdax(_) => None,
        }
    }

    /// Size in bytes.
    pub fn len(&self) -> io::Result<u64> {
        match self {
            ChunkFile::File(f) => Ok(f.metadata()?.len()),
            ChunkFile::Devdax(h) => h.len(),
        }
    }

    /// Resizes the chunk.
    pub fn set_len(&self, size: u64) -> io::Result<()> {
        match self {
            ChunkFile::File(f) => f.set_len(size),
            ChunkFile::Devdax(h) => h.set_len(size),
        }
    }

    /// Reads at `offset`; short at the end.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        match self {
            ChunkFile::File(f) => f.read_at(buf, offset),
            ChunkFile::Devdax(h) => h.read_at(buf, offset),
        }
    }

    /// Writes all of `data` at `offset`, growing the chunk if needed.
    pub fn write_all_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        match self {
            ChunkFile::File(f) => f.write_all_at(data, offset),
            ChunkFile::Devdax(h) => h.write_all_at(data, offset),
        }
    }

    /// `fallocate(2)` of `offset..offset + length` (`mode` 0: allocate and extend;
    /// the caller has checked it and charged the growth). A devdax chunk's extent
    /// is allocated by growing the chunk; its bytes are zero already.
    pub fn allocate(&self, mode: i32, offset: u64, length: u64) -> io::Result<()> {
        match self {
            ChunkFile::File(f) => allocate(f, mode, offset, length),
            ChunkFile::Devdax(h) => {
                let end = offset
                    .checked_add(length)
                    .ok_or_else(|| io::Error::from_raw_os_error(libc::EFBIG))?;
                if mode != 0 {
                    return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
                }
                if end > h.len()? {
                    h.set_len(end)?;
                }
                Ok(())
            }
        }
    }

    /// Stores (or with `None` removes) one of the writer's `user.*` xattrs with the chunk.
    pub fn set_xattr(&self, name: &OsStr, value: Option<&[u8]>) -> io::Result<()> {
        match (self, value) {
            (ChunkFile::File(f), Some(v)) => fset_xattr_flags(f, name, v, 0),
            (ChunkFile::File(f), None) => fremove_xattr(f, name),
            (ChunkFile::Devdax(h), v) => h.set_xattr(name, v),
        }
    }

    /// Seals a devdax chunk ahead of publishing (its checksum is taken now, outside
    /// every lock; see [`ChunkHandle::seal`]); nothing to do for a file.
    pub fn seal(&self) -> io::Result<()> {
        match self {
            ChunkFile::File(_) => Ok(()),
            ChunkFile::Devdax(h) => h.seal(),
        }
    }

    /// Lifts [`ChunkFile::seal`] from a chunk that was not published after all.
    pub fn unseal(&self) {
        if let ChunkFile::Devdax(h) = self {
            h.unseal();
        }
    }

    /// `(device offset, length)` of a devdax chunk's extent.
    pub fn devdax_extent(&self) -> Option<Extent> {
        match self {
            ChunkFile::File(_) => None,
            ChunkFile::Devdax(h) => Some(h.extent()),
        }
    }
}
