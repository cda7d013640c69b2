//! The error type of every libmaru call: what failed, on which object, the
//! errno the C ABI returns, and a hint on what to do.

use std::io;

/// Result alias used throughout libmaru.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in libmaru.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed on a pool, chunk or key.
    #[error("{op} failed on {object}: {source}{}", hint(source.raw_os_error()))]
    Os {
        /// The operation, e.g. "open pool", "publish", "map".
        op: &'static str,
        /// The object it acted on (pool path, key, staging file).
        object: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A key cannot be used (empty or too long).
    #[error("invalid key {key}: {reason}")]
    InvalidKey {
        /// The key, escaped for display.
        key: String,
        /// Why it is refused.
        reason: &'static str,
        /// The errno reported through the C ABI (EINVAL or ENAMETOOLONG).
        errno: i32,
    },
    /// A caller passed an argument libmaru cannot act on.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The chunk was already published (or aborted) and cannot be published again.
    #[error("chunk {staging} was already {state}; create a new chunk to publish another key")]
    NotStaging {
        /// The chunk's staging name.
        staging: String,
        /// "published" or "aborted".
        state: &'static str,
    },
    /// libmaru was built without the `cuda` cargo feature.
    #[error("CUDA registration is not available: libmaru was built without the `cuda` cargo feature (rebuild with `--features cuda`)")]
    CudaNotBuilt,
    /// No usable CUDA driver or device on this machine.
    #[error("CUDA registration is not available: {0}")]
    CudaUnavailable(String),
    /// The CUDA driver refused a call.
    #[error("CUDA {call} failed on {object}: {message}")]
    Cuda {
        /// The driver function, e.g. "cuMemHostRegister".
        call: &'static str,
        /// What it acted on.
        object: String,
        /// The driver's error name and description.
        message: String,
    },
}

impl Error {
    /// Builds an [`Error::Os`] from an `io::Error`.
    pub(crate) fn os(op: &'static str, object: impl Into<String>, source: io::Error) -> Self {
        Error::Os {
            op,
            object: object.into(),
            source,
        }
    }

    /// The positive errno value that describes this error (the C ABI returns its negation).
    pub fn errno(&self) -> i32 {
        match self {
            Error::Os { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
            Error::InvalidKey { errno, .. } => *errno,
            Error::InvalidArgument(_) | Error::NotStaging { .. } => libc::EINVAL,
            Error::CudaNotBuilt => libc::ENOTSUP,
            Error::CudaUnavailable(_) => libc::ENODEV,
            Error::Cuda { .. } => libc::EIO,
        }
    }

    /// Whether this is "no such key / file" (ENOENT).
    pub fn is_not_found(&self) -> bool {
        self.errno() == libc::ENOENT
    }
}

/// A short hint on what to do for the errno values a pool commonly returns.
fn hint(errno: Option<i32>) -> &'static str {
    match errno {
        Some(libc::EACCES) | Some(libc::EPERM) => {
            " (check the pool directory's owner, group and mode: the user needs to be in the pool's group)"
        }
        Some(libc::ENOSPC) => " (the pool is full: remove chunks, enable LRU eviction or enlarge the pool)",
        Some(libc::EFBIG) => " (the chunk is larger than the pool's max_chunk_size)",
        Some(libc::ENODEV) => " (the pool is offline: see `maru-devd status`)",
        Some(libc::ENOTCONN) => " (the maru-fs mount is gone: is maru-devd running?)",
        Some(libc::EMFILE) | Some(libc::ENFILE) => " (too many open files: raise RLIMIT_NOFILE)",
        Some(libc::ENOMEM) => " (out of memory, or RLIMIT_MEMLOCK too low for locking)",
        _ => "",
    }
}
