//! The read-only xattrs maru-fs synthesises on chunks and pools (names and
//! word values: `maru_proto::xattr`).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::state::Phase;
use crate::PoolConfig;

// The names and word values are the contract's (maru-proto), shared with libmaru.
pub(crate) use maru_proto::xattr::{
    CAPACITY, CREATED, DEVDAX_EXTENT, DEVDAX_LEN, DEVDAX_OFFSET, DEVDAX_PATH, LEND_SOCKET, NODE,
    ONLINE, PINS, STATE, USED,
};
use maru_proto::xattr::{NODE_UNKNOWN, OFFLINE_VALUE, ONLINE_VALUE, PUBLISHED, STAGING};

/// Further synthesised names on a chunk of a devdax pool.
pub(crate) const DEVDAX_CHUNK_NAMES: &[&str] =
    &[DEVDAX_PATH, DEVDAX_OFFSET, DEVDAX_LEN, DEVDAX_EXTENT];
/// Further synthesised names on a devdax pool directory.
pub(crate) const DEVDAX_POOL_NAMES: &[&str] = &[DEVDAX_PATH];

/// Further synthesised names on a pool directory whose chunks are lent ([`crate::lend`]).
pub(crate) const LEND_POOL_NAMES: &[&str] = &[LEND_SOCKET];

/// Synthesised names on a chunk.
pub(crate) const CHUNK_NAMES: &[&str] = &[STATE, PINS, NODE, CREATED];
/// Synthesised names on a pool directory.
pub(crate) const POOL_NAMES: &[&str] = &[NODE, CAPACITY, USED, ONLINE];

/// Most bytes (names plus values) a writer may store in its own `user.*` xattrs.
pub(crate) use maru_proto::xattr::USER_XATTR_LIMIT;

/// Whether `name` is synthesised (and so cannot be set or removed).
pub(crate) fn is_reserved(name: &OsStr) -> bool {
    CHUNK_NAMES
        .iter()
        .chain(POOL_NAMES)
        .chain(DEVDAX_CHUNK_NAMES)
        .chain(LEND_POOL_NAMES)
        .any(|n| n.as_bytes() == name.as_bytes())
}

fn node_text(node: Option<u32>) -> Vec<u8> {
    node.map_or_else(|| NODE_UNKNOWN.into(), |n| n.to_string().into_bytes())
}

/// The value of a synthesised chunk xattr, if `name` is one.
pub(crate) fn chunk_value(
    name: &OsStr,
    phase: Phase,
    pins: u32,
    node: Option<u32>,
    created: SystemTime,
) -> Option<Vec<u8>> {
    let name = name.to_str()?;
    Some(match name {
        STATE => match phase {
            Phase::Staging => STAGING.into(),
            Phase::Published => PUBLISHED.into(),
        },
        PINS => pins.to_string().into_bytes(),
        NODE => node_text(node),
        CREATED => created
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            .to_string()
            .into_bytes(),
        _ => return None,
    })
}

/// The value of a devdax xattr, if `name` is one: the pool's `device`, and the
/// chunk's `extent` (its device offset and length) where there is a chunk.
pub(crate) fn devdax_value(
    name: &OsStr,
    device: &Path,
    extent: Option<crate::devdax::Extent>,
) -> Option<Vec<u8>> {
    match name.to_str()? {
        DEVDAX_PATH => Some(device.as_os_str().as_bytes().to_vec()),
        DEVDAX_OFFSET => Some(extent?.offset.to_string().into_bytes()),
        DEVDAX_LEN => Some(extent?.len.to_string().into_bytes()),
        DEVDAX_EXTENT => {
            let e = extent?;
            Some(format!("{} {}", e.offset, e.len).into_bytes())
        }
        _ => None,
    }
}

/// The value of a synthesised pool xattr, if `name` is one.
pub(crate) fn pool_value(
    name: &OsStr,
    cfg: &PoolConfig,
    used: u64,
    online: bool,
) -> Option<Vec<u8>> {
    let name = name.to_str()?;
    Some(match name {
        NODE => node_text(cfg.node),
        CAPACITY => cfg.capacity.to_string().into_bytes(),
        USED => used.to_string().into_bytes(),
        ONLINE => if online { ONLINE_VALUE } else { OFFLINE_VALUE }.into(),
        _ => return None,
    })
}

/// A listxattr buffer: each name followed by a NUL.
pub(crate) fn names<'a>(fixed: &[&str], extra: impl Iterator<Item = &'a OsStr>) -> Vec<u8> {
    let mut out = Vec::new();
    for n in fixed {
        out.extend_from_slice(n.as_bytes());
        out.push(0);
    }
    for n in extra {
        out.extend_from_slice(n.as_bytes());
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthesised_values() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_123);
        let v = |n: &str, p| chunk_value(OsStr::new(n), p, 3, Some(1), t).unwrap();
        assert_eq!(v(STATE, Phase::Staging), b"staging");
        assert_eq!(v(STATE, Phase::Published), b"published");
        assert_eq!(v(PINS, Phase::Published), b"3");
        assert_eq!(v(NODE, Phase::Published), b"1");
        assert_eq!(v(CREATED, Phase::Published), b"1700000123");
        assert_eq!(
            chunk_value(OsStr::new(NODE), Phase::Staging, 0, None, t).unwrap(),
            b"unknown"
        );
        assert!(chunk_value(
            OsStr::new(maru_proto::xattr::KEY),
            Phase::Staging,
            0,
            None,
            t
        )
        .is_none());
    }

    #[test]
    fn names_and_reserved() {
        let list = names(CHUNK_NAMES, [OsStr::new("user.x")].into_iter());
        let want = format!("{STATE}\0{PINS}\0{NODE}\0{CREATED}\0user.x\0");
        assert_eq!(list, want.as_bytes());
        assert!(is_reserved(OsStr::new(PINS)));
        assert!(is_reserved(OsStr::new(CAPACITY)));
        assert!(!is_reserved(OsStr::new(maru_proto::xattr::KEY)));
    }
}
