//! Pool and mount configuration handed to [`crate::mount`] by the daemon.

use std::path::PathBuf;

use crate::devdax::DevdaxConfig;

/// Where a pool's chunk pages live.
///
/// `Dir` is the `numa` memory source: a directory on a shmem filesystem (the daemon
/// mounts a tmpfs with `size=`, `mpol=bind:N`, `huge=`; tests may use a directory
/// under `/dev/shm` or their own tmpfs). Every chunk is one regular file in that
/// directory, and FUSE passthrough hands its pages straight to every process that
/// maps the chunk.
///
/// `Devdax` is the `devdax` memory source: a byte range of a device-dax character
/// device holding the pool's header, chunk index and chunk extents (see
/// [`crate::devdax`] and `docs/devdax.md`). Chunk data goes through FUSE READ/WRITE;
/// zero-copy clients map the device node at the extent named by the chunk's
/// `maru_proto::xattr::DEVDAX_*` xattrs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backing {
    /// A directory on tmpfs/shmem holding one backing file per chunk.
    Dir(PathBuf),
    /// A byte range of a device-dax device (or of a regular stand-in file).
    Devdax(DevdaxConfig),
}

/// What happens when a pool is full and a writer asks for more space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Eviction {
    /// Fail with `ENOSPC`.
    #[default]
    None,
    /// Evict unpinned published chunks, least recently opened first, then fail with
    /// `ENOSPC` if that is still not enough.
    Lru,
}

/// One pool: a directory under the mount point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Directory name under the mount (one path component, not starting with `.`).
    pub name: String,
    /// Where the chunk pages come from.
    pub backing: Backing,
    /// Bytes that chunks may be sized to in total (charged by `ftruncate`).
    pub capacity: u64,
    /// What to do when the pool is full.
    pub eviction: Eviction,
    /// Largest size one chunk may be given (`ftruncate` above it fails with `EFBIG`).
    pub max_chunk_size: Option<u64>,
    /// Owner of the pool directory.
    pub uid: u32,
    /// Group of the pool directory and of every chunk in it.
    pub gid: u32,
    /// Permission bits of the pool directory (e.g. `0o770`; type bits are ignored).
    pub mode: u32,
    /// NUMA node the pages come from, if known (shown as xattr [`maru_proto::xattr::NODE`]).
    pub node: Option<u32>,
}

impl PoolConfig {
    /// A pool `name` of `capacity` bytes on `backing`, with the defaults tests,
    /// benchmarks and examples start from: no eviction, no per-chunk size limit,
    /// owned by root with mode `0o755`, no NUMA node. Change a field with
    /// struct-update syntax: `PoolConfig { mode: 0o1777, ..PoolConfig::new(..) }`.
    pub fn new(name: impl Into<String>, backing: Backing, capacity: u64) -> Self {
        PoolConfig {
            name: name.into(),
            backing,
            capacity,
            eviction: Eviction::None,
            max_chunk_size: None,
            uid: 0,
            gid: 0,
            mode: 0o755,
            node: None,
        }
    }
}

/// How to mount the filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Existing empty directory to mount on.
    pub mountpoint: PathBuf,
    /// Number of FUSE request threads (2 to 4 is plenty: only metadata reaches them).
    pub threads: usize,
    /// Most staging chunks (created, not yet published, still held open) one
    /// non-root uid may have across all pools; `create` beyond it fails with
    /// `EMFILE` for that uid only. The daemon keeps a descriptor per such chunk,
    /// so this keeps one tenant from spending the daemon's `RLIMIT_NOFILE`.
    /// Root (uid 0) is not counted. Default [`DEFAULT_MAX_STAGING_PER_UID`].
    pub max_staging_per_uid: u32,
    /// Where to listen for batch opens of published chunks (the lending socket,
    /// `maru_proto::lend`), advertised on each tmpfs pool directory in the
    /// `user.maru.lend.socket` xattr. `None` (the default): no socket, every
    /// open goes through FUSE. The directory must let clients reach the socket.
    pub lend_socket: Option<PathBuf>,
}

/// Default of [`MountOptions::max_staging_per_uid`].
pub const DEFAULT_MAX_STAGING_PER_UID: u32 = 4096;

impl MountOptions {
    /// Options for `mountpoint` with the default number of request threads (2) and
    /// the default staging cap per uid ([`DEFAULT_MAX_STAGING_PER_UID`]).
    pub fn new(mountpoint: impl Into<PathBuf>) -> Self {
        MountOptions {
            mountpoint: mountpoint.into(),
            threads: 2,
            max_staging_per_uid: DEFAULT_MAX_STAGING_PER_UID,
            lend_socket: None,
        }
    }
}
