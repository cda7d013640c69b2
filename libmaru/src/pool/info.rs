//! What maru-fs shows about a pool and its chunks through its synthesised
//! xattrs (names: [`maru_proto::xattr`]): [`Pool::info`] and [`Pool::pins`],
//! so that no client spells an xattr name.

use super::Pool;
use crate::error::{Error, Result};
use crate::key::KeyName;
use crate::sys;
use maru_proto::xattr;
use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The NUMA node a pool's pages come from, as maru-fs shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumaNode {
    /// This node.
    Node(u32),
    /// maru-fs does not know it ([`xattr::NODE_UNKNOWN`]).
    Unknown,
}

/// A pool's capacity, use, state and node, as maru-fs shows them; `None` for
/// what the pool does not show (a plain directory shows nothing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolInfo {
    /// Capacity in bytes.
    pub capacity: Option<u64>,
    /// Bytes charged to the pool.
    pub used: Option<u64>,
    /// Whether the pool serves chunks (false once its device is gone).
    pub online: Option<bool>,
    /// NUMA node of the pool's pages.
    pub node: Option<NumaNode>,
}

/// The value of xattr `name` of `path` as text; `None` where the file has no
/// such xattr or the filesystem has none at all.
fn read_text(path: &CStr, name: &CStr) -> io::Result<Option<String>> {
    let mut buf = [0u8; 64];
    match sys::xattr::get(path, name, &mut buf) {
        Ok(n) => Ok(Some(String::from_utf8_lossy(&buf[..n]).into_owned())),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENODATA) | Some(libc::EOPNOTSUPP)
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// `path` as a C string (`object` names it in the error).
fn c_path(path: &Path, object: &str) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::InvalidArgument(format!("{object}: the path contains a NUL byte")))
}

/// Parses a decimal xattr value (`what` names it in the error).
fn number<T: std::str::FromStr>(text: &str, what: &str) -> Result<T> {
    text.trim()
        .parse()
        .map_err(|_| Error::InvalidArgument(format!("{what} is {text:?}, not a number")))
}

impl Pool {
    /// Reads xattr `name` of `path` (`object` names the file in errors).
    fn xattr_text(&self, path: &CStr, name: &CStr, object: &str) -> Result<Option<String>> {
        read_text(path, name).map_err(|e| {
            Error::os(
                "read xattr",
                format!("{} of {object}", name.to_string_lossy()),
                e,
            )
        })
    }

    /// The pool's capacity, use, state and NUMA node, as maru-fs shows them
    /// now. Read through the pool directory's path (like `df`), so a pool
    /// removed since [`Pool::open`] fails (ENOENT) rather than answering for
    /// the old one. Fields the pool does not show are `None`.
    pub fn info(&self) -> Result<PoolInfo> {
        let object = format!("pool {}", self.path().display());
        let path = c_path(self.path(), &object)?;
        let read = |name: &CStr| self.xattr_text(&path, name, &object);
        let mut info = PoolInfo::default();
        if let Some(t) = read(xattr::CAPACITY_C)? {
            info.capacity = Some(number(&t, &format!("{} of {object}", xattr::CAPACITY))?);
        }
        if let Some(t) = read(xattr::USED_C)? {
            info.used = Some(number(&t, &format!("{} of {object}", xattr::USED))?);
        }
        info.online = read(xattr::ONLINE_C)?.map(|t| t == xattr::ONLINE_VALUE);
        if let Some(t) = read(xattr::NODE_C)? {
            info.node = Some(if t == xattr::NODE_UNKNOWN {
                NumaNode::Unknown
            } else {
                NumaNode::Node(number(&t, &format!("{} of {object}", xattr::NODE))?)
            });
        }
        Ok(info)
    }

    /// How many open descriptors (pins, all processes) the chunk published
    /// under `key` has, as maru-fs counts them (descriptors its lending socket
    /// handed to batches count from when they were lent until nothing holds the
    /// chunk: 0 exactly when it is not held); `None` if there is no such key. Reads the count without opening the chunk (which would pin it).
    /// A pool that does not count pins (not maru-fs) fails with ENODATA or
    /// EOPNOTSUPP.
    pub fn pins(&self, key: &[u8]) -> Result<Option<u64>> {
        let name = KeyName::new(key)?;
        let object = self.key_object(&name);
        let child = self.dir.child(name.as_bytes());
        let path = c_path(&child, &object)?;
        let mut buf = [0u8; 32];
        let n = match sys::xattr::get(&path, xattr::PINS_C, &mut buf) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => {
                return Err(Error::os(
                    "read xattr",
                    format!("{} of {object}", xattr::PINS),
                    e,
                ))
            }
        };
        if name.is_hashed() && self.read_key_xattr(name.as_bytes())?.as_deref() != Some(key) {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&buf[..n]);
        number(&text, &format!("{} of {object}", xattr::PINS)).map(Some)
    }
}
