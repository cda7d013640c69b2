//! Backing stores: where a pool's chunk pages live.
//!
//! [`Store::Dir`] is the `numa` source: one regular file per chunk on a tmpfs,
//! handed to the kernel for FUSE passthrough. [`Store::Devdax`] is the `devdax`
//! source: chunk extents in a device-dax range (see [`crate::devdax`]), whose data
//! is served through FUSE READ/WRITE; callers ask [`Store::passthrough`] which data
//! path applies. An open chunk of either is a [`ChunkFile`].

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::fcntl::{openat, renameat2, OFlag, RenameFlags};
use nix::sys::stat::{fstat, Mode};
use nix::unistd::{unlinkat, UnlinkatFlags};

use crate::chunk_file::ChunkFile;
use crate::devdax::{DevdaxError, DevdaxStore, Extent, PendingPublish};
use crate::sys::xattr::{fget_xattr, flist_xattr, fset_xattr_flags};
use crate::Backing;

/// Name of the xattr on a backing file that records the chunk's owner, mode and
/// creation time. Backing files themselves stay owned by the daemon with mode 0600
/// (the daemon keeps only CAP_SYS_ADMIN: no CAP_CHOWN, CAP_FOWNER or
/// CAP_DAC_OVERRIDE); `trusted.*` xattrs need only CAP_SYS_ADMIN and work on every
/// tmpfs.
const META_XATTR: &str = "trusted.maru.meta";

/// What maru-fs remembers about a chunk across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkMeta {
    /// The creator's uid.
    pub uid: u32,
    /// Permission bits.
    pub mode: u16,
    /// Creation time.
    pub created: SystemTime,
}

impl ChunkMeta {
    fn encode(&self) -> String {
        let secs = self
            .created
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        format!("v1 uid={} mode={:o} created={secs}", self.uid, self.mode)
    }

    fn decode(text: &[u8]) -> Option<ChunkMeta> {
        let text = std::str::from_utf8(text).ok()?;
        let mut fields = text.split(' ');
        if fields.next()? != "v1" {
            return None;
        }
        let (mut uid, mut mode, mut created) = (None, None, None);
        for f in fields {
            match f.split_once('=')? {
                ("uid", v) => uid = v.parse().ok(),
                ("mode", v) => mode = u16::from_str_radix(v, 8).ok(),
                ("created", v) => created = v.parse::<u64>().ok(),
                _ => {}
            }
        }
        Some(ChunkMeta {
            uid: uid?,
            mode: mode? & 0o7777,
            created: UNIX_EPOCH + Duration::from_secs(created?),
        })
    }
}

/// A published chunk found in a backing store: when a pool is mounted (restart
/// adoption), or published by another host of a shared pool.
#[derive(Debug)]
pub(crate) struct Found {
    /// The key (the backing file's name).
    pub name: OsString,
    /// Its size in bytes.
    pub size: u64,
    /// Owner, mode and creation time (from [`META_XATTR`], else from the file).
    pub meta: ChunkMeta,
    /// The writer's own `user.*` xattrs.
    pub xattrs: Vec<(OsString, Vec<u8>)>,
}

/// A pool's backing store.
#[derive(Debug)]
pub(crate) enum Store {
    /// A directory on tmpfs/shmem, one regular file per chunk.
    Dir(DirStore),
    /// A devdax pool: extents of a device-dax range, with the index on the device.
    Devdax(DevdaxStore),
}

/// Why a backing store cannot be opened.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// The backing directory.
    Io(io::Error),
    /// The devdax device or the pool on it.
    Devdax(DevdaxError),
}

impl Store {
    /// Opens the store described by `backing` (a devdax pool is recovered here).
    pub fn open(backing: &Backing) -> Result<Store, OpenError> {
        match backing {
            Backing::Dir(path) => Ok(Store::Dir(DirStore::open(path).map_err(OpenError::Io)?)),
            Backing::Devdax(cfg) => {
                // Recovery's findings are in the log; the pool just uses what it found.
                let (store, _recovery) = DevdaxStore::open(cfg).map_err(OpenError::Devdax)?;
                Ok(Store::Devdax(store))
            }
        }
    }

    /// Where the store lives (for messages).
    pub fn path(&self) -> &Path {
        match self {
            Store::Dir(d) => &d.path,
            Store::Devdax(d) => d.device(),
        }
    }

    /// Whether chunk files are handed to the kernel for FUSE passthrough.
    pub fn passthrough(&self) -> bool {
        match self {
            Store::Dir(_) => true,
            Store::Devdax(_) => false,
        }
    }

    /// The device node of a devdax pool (what zero-copy clients map).
    pub fn devdax_device(&self) -> Option<&Path> {
        match self {
            Store::Dir(_) => None,
            Store::Devdax(d) => Some(d.device()),
        }
    }

    /// `(device offset, length)` of the extent of the devdax chunk named `name`.
    pub fn devdax_extent(&self, name: &OsStr) -> Option<Extent> {
        match self {
            Store::Dir(_) => None,
            Store::Devdax(d) => d.extent_of(name),
        }
    }

    /// Bytes the store can hold at most, where it knows (the devdax data area).
    pub fn limit(&self) -> Option<u64> {
        match self {
            Store::Dir(_) => None,
            Store::Devdax(d) => Some(d.data_len()),
        }
    }

    /// Bytes a chunk of `size` bytes takes from the store: the size itself for a
    /// file (the tmpfs allocates pages, which the pool's headroom covers), whole
    /// extents for a devdax chunk.
    pub fn charge_for(&self, size: u64) -> u64 {
        match self {
            Store::Dir(_) => size,
            Store::Devdax(d) => d.extent_len(size),
        }
    }

    /// Creates a new, empty chunk and records `meta` with it.
    pub fn create(&self, name: &OsStr, meta: &ChunkMeta) -> io::Result<ChunkFile> {
        match self {
            Store::Dir(d) => d.create(name, meta).map(ChunkFile::File),
            Store::Devdax(d) => d.create(name, meta.uid, meta.mode).map(ChunkFile::Devdax),
        }
    }

    /// Records changed metadata of an open chunk.
    pub fn set_meta(&self, file: &ChunkFile, meta: &ChunkMeta) -> io::Result<()> {
        match file {
            ChunkFile::File(f) => {
                fset_xattr_flags(f, OsStr::new(META_XATTR), meta.encode().as_bytes(), 0)
            }
            ChunkFile::Devdax(h) => h.set_mode(meta.mode),
        }
    }

    /// Opens an existing chunk for reading and writing.
    pub fn open_chunk(&self, name: &OsStr) -> io::Result<ChunkFile> {
        match self {
            Store::Dir(d) => d.open_chunk(name).map(ChunkFile::File),
            Store::Devdax(d) => d.open_chunk(name).map(ChunkFile::Devdax),
        }
    }

    /// A read-only descriptor of the published chunk `name`'s memory, to lend to
    /// a client ([`crate::lend`]); `EOPNOTSUPP` for a devdax pool (its chunks are
    /// extents of the device, not files).
    pub fn open_chunk_readonly(&self, name: &OsStr) -> io::Result<File> {
        match self {
            Store::Dir(d) => d.open_file(name, OFlag::O_RDONLY),
            Store::Devdax(_) => Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP)),
        }
    }

    /// Renames a chunk, failing with `EEXIST` if `to` exists (a devdax chunk
    /// renamed to a key is published on the device). A publish on a shared devdax
    /// pool comes back pending: the caller ends it (see [`DevdaxStore::rename_begin`]).
    pub fn rename_begin(&self, from: &OsStr, to: &OsStr) -> io::Result<Option<PendingPublish>> {
        match self {
            Store::Dir(d) => d.rename_noreplace(from, to).map(|()| None),
            Store::Devdax(d) => d.rename_begin(from, to),
        }
    }

    /// Whether some process still has the chunk's backing file open or mapped
    /// (see [`crate::lease`]); devdax extents are never mapped through FUSE.
    pub fn in_use(&self, name: &OsStr) -> bool {
        match self {
            Store::Dir(d) => crate::lease::in_use(&d.dir, name),
            Store::Devdax(_) => false,
        }
    }

    /// The path of a chunk's backing file, where there is one.
    pub fn file_path(&self, name: &OsStr) -> Option<PathBuf> {
        match self {
            Store::Dir(d) => Some(d.path.join(name)),
            Store::Devdax(_) => None,
        }
    }

    /// Removes a chunk (its memory goes when the last open handle on it closes).
    pub fn remove(&self, name: &OsStr) -> io::Result<()> {
        match self {
            Store::Dir(d) => d.remove(name),
            Store::Devdax(d) => d.remove(name),
        }
    }

    /// The shared devdax pool's store, if this is one.
    pub fn shared_devdax(&self) -> Option<&DevdaxStore> {
        match self {
            Store::Devdax(d) if d.is_shared() => Some(d),
            _ => None,
        }
    }

    /// Lists the published chunks in the store and deletes leftover staging files
    /// (a devdax pool dropped its staging records when it was opened).
    pub fn adopt(&self) -> io::Result<Vec<Found>> {
        match self {
            Store::Dir(d) => d.adopt(),
            Store::Devdax(d) => Ok(d.published()),
        }
    }
}

/// A backing directory, held open so renames and unlinks are relative to it.
#[derive(Debug)]
pub(crate) struct DirStore {
    path: PathBuf,
    dir: OwnedFd,
}

impl DirStore {
    fn open(path: &Path) -> io::Result<DirStore> {
        let dir = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(DirStore {
            path: path.to_path_buf(),
            dir,
        })
    }

    fn create(&self, name: &OsStr, meta: &ChunkMeta) -> io::Result<File> {
        let fd = openat(
            &self.dir,
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )?;
        let file = File::from(fd);
        if let Err(e) = fset_xattr_flags(&file, OsStr::new(META_XATTR), meta.encode().as_bytes(), 0)
        {
            // Only a restart would notice: its adoption would show the chunk as the
            // daemon's, mode 0600.
            log::warn!(
                "cannot record owner and mode of {:?} in xattr {META_XATTR} ({e}); \
                 the daemon needs CAP_SYS_ADMIN for them to survive a restart",
                self.path.join(name)
            );
        }
        Ok(file)
    }

    fn open_chunk(&self, name: &OsStr) -> io::Result<File> {
        self.open_file(name, OFlag::O_RDWR)
    }

    /// Opens the backing file `name` with `access` (`O_RDONLY`/`O_RDWR`),
    /// close-on-exec, never through a symbolic link.
    fn open_file(&self, name: &OsStr, access: OFlag) -> io::Result<File> {
        let fd = openat(
            &self.dir,
            name,
            access | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
            Mode::empty(),
        )?;
        Ok(File::from(fd))
    }

    fn rename_noreplace(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        renameat2(
            &self.dir,
            from,
            &self.dir,
            to,
            RenameFlags::RENAME_NOREPLACE,
        )?;
        Ok(())
    }

    fn remove(&self, name: &OsStr) -> io::Result<()> {
        match unlinkat(&self.dir, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn adopt(&self) -> io::Result<Vec<Found>> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.path)? {
            let entry = entry?;
            let name = entry.file_name();
            if !entry.file_type()?.is_file() {
                log::warn!(
                    "ignoring {:?} in backing directory: not a regular file",
                    entry.path()
                );
                continue;
            }
            if name.as_bytes() == crate::index::INDEX_NAME.as_bytes() {
                // The membership index: rebuilt by the pool, not a chunk.
                continue;
            }
            if maru_proto::name::is_staging(name.as_bytes()) {
                log::info!("deleting unpublished staging file {:?}", entry.path());
                self.remove(&name)?;
                continue;
            }
            let file = match self.open_chunk(&name) {
                Ok(f) => f,
                Err(e) => {
                    log::warn!("ignoring {:?}: cannot open it: {e}", entry.path());
                    continue;
                }
            };
            let st = fstat(&file)?;
            let meta = fget_xattr(&file, OsStr::new(META_XATTR))
                .ok()
                .and_then(|v| ChunkMeta::decode(&v))
                .unwrap_or_else(|| {
                    log::warn!(
                        "{:?} has no valid {META_XATTR}: adopting it with the file's own owner and mode",
                        entry.path()
                    );
                    ChunkMeta {
                        uid: st.st_uid,
                        mode: (st.st_mode & 0o7777) as u16,
                        created: UNIX_EPOCH
                            + Duration::from_secs(u64::try_from(st.st_mtime).unwrap_or(0)),
                    }
                });
            let mut xattrs = Vec::new();
            for xname in flist_xattr(&file).unwrap_or_default() {
                if xname.as_bytes().starts_with(b"user.") {
                    if let Ok(value) = fget_xattr(&file, &xname) {
                        xattrs.push((xname, value));
                    }
                }
            }
            found.push(Found {
                name,
                size: u64::try_from(st.st_size).unwrap_or(0),
                meta,
                xattrs,
            });
        }
        Ok(found)
    }
}

/// Allocates and zeroes the pages of `offset..offset + length` of a chunk file
/// (`mode` as for fallocate(2); the caller has checked it).
pub(crate) fn allocate(file: &File, mode: i32, offset: u64, length: u64) -> io::Result<()> {
    let too_big = || io::Error::from_raw_os_error(libc::EFBIG);
    nix::fcntl::fallocate(
        file,
        nix::fcntl::FallocateFlags::from_bits_truncate(mode),
        i64::try_from(offset).map_err(|_| too_big())?,
        i64::try_from(length).map_err(|_| too_big())?,
    )?;
    Ok(())
}
