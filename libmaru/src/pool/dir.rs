//! The pool directory that a pool's chunks and views share: its fd (every
//! chunk operation is a `*at` call relative to it) and path, publishing and
//! unlinking names in it.

use super::Publish;
use crate::error::{Error, Result};
use crate::key::{self, KeyName};
use crate::map::{Access, Mapping};
use crate::sys;
use maru_proto::xattr;
use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What a pool's chunks and views share: the directory fd and its path.
pub(crate) struct PoolDir {
    pub(super) dir: OwnedFd,
    pub(super) path: PathBuf,
    /// The device node of a devdax pool (its [`xattr::DEVDAX_PATH`] xattr):
    /// chunks are mapped from it at their extents instead of through their files.
    pub(super) devdax: Option<PathBuf>,
}

/// The device node a devdax pool's chunks are mapped from (the pool directory's
/// [`xattr::DEVDAX_PATH`] xattr), or `None` for any other pool.
pub(super) fn devdax_device(dir: BorrowedFd<'_>, object: &str) -> Result<Option<PathBuf>> {
    path_xattr(dir, xattr::DEVDAX_PATH_C, xattr::DEVDAX_PATH, object)
}

/// The socket the daemon lends this pool's chunks through (the pool
/// directory's [`xattr::LEND_SOCKET`] xattr), or `None` if it lends none.
pub(super) fn lend_socket(dir: BorrowedFd<'_>, object: &str) -> Result<Option<PathBuf>> {
    path_xattr(dir, xattr::LEND_SOCKET_C, xattr::LEND_SOCKET, object)
}

/// The path in the directory's xattr `cname` (`name`), or `None` if it has none.
fn path_xattr(
    dir: BorrowedFd<'_>,
    cname: &CStr,
    name: &str,
    object: &str,
) -> Result<Option<PathBuf>> {
    let mut buf = vec![0u8; 4096];
    let n = match sys::xattr::fget(dir, cname, &mut buf) {
        Ok(n) => n,
        Err(err) => {
            return match err.raw_os_error() {
                // Not such a pool (or not maru-fs at all: a plain directory).
                Some(libc::ENODATA) | Some(libc::ENOTSUP) => Ok(None),
                _ => Err(Error::os("read xattr", format!("{name} of {object}"), err)),
            };
        }
    };
    buf.truncate(n);
    Ok(Some(PathBuf::from(OsStr::from_bytes(&buf))))
}

impl PoolDir {
    /// The directory fd all `*at` calls are relative to.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    /// The pool directory's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Maps `len` bytes of the chunk open as `fd`: its file, or in a devdax pool
    /// its extent of the pool's device node.
    pub(crate) fn map(
        &self,
        fd: BorrowedFd<'_>,
        len: usize,
        access: Access,
        object: &str,
    ) -> Result<Mapping> {
        match &self.devdax {
            Some(device) => Mapping::new_devdax(fd, device, len, access, object),
            None => Mapping::new(fd, len, access, object),
        }
    }

    /// `<pool>/<name>` for messages and path-based calls (xattrs).
    pub(crate) fn child(&self, name: &[u8]) -> PathBuf {
        self.path.join(OsStr::from_bytes(name))
    }

    /// Publishes the staging file under `name` (rename without replace); stores
    /// the full key in its xattr first when the name is hashed. On EEXIST the
    /// staging file is removed and [`Publish::AlreadyExists`] returned.
    pub(crate) fn publish(&self, staging: &CStr, key: &[u8], name: &KeyName) -> Result<Publish> {
        let object = || format!("key {} in pool {}", name.display(), self.path.display());
        if name.is_hashed() {
            self.set_key_xattr(staging, key)?;
        }
        match sys::fs::rename_noreplace(self.fd(), staging, name.as_cstr()) {
            Ok(()) => return Ok(Publish::Published),
            Err(err) if err.raw_os_error() == Some(libc::EEXIST) => {}
            Err(err) => return Err(Error::os("publish", object(), err)),
        }
        if let Err(e) = self.unlink(staging) {
            // The pool reclaims it anyway when the last handle goes; report only oddities.
            if e.raw_os_error() != Some(libc::ENOENT) {
                return Err(Error::os("remove losing staging file", object(), e));
            }
        }
        Ok(Publish::AlreadyExists)
    }

    /// Stores the full key in the staging file's xattr (long keys only).
    fn set_key_xattr(&self, staging: &CStr, key: &[u8]) -> Result<()> {
        let path = self.child(staging.to_bytes());
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| Error::InvalidArgument("pool path contains NUL".into()))?;
        sys::xattr::set(&c, key::KEY_XATTR, key).map_err(|e| {
            Error::os(
                "store long key in xattr",
                format!("{} of {}", xattr::KEY, path.display()),
                e,
            )
        })
    }

    /// Removes a name from the pool directory.
    pub(crate) fn unlink(&self, name: &CStr) -> io::Result<()> {
        sys::fs::unlinkat(self.fd(), name)
    }
}
