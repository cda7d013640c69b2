//! The `user.maru.*` extended attributes: their names (as `&str` for the
//! daemon, as `&CStr` for the `*xattr(2)` calls of the client) and the values
//! that are words rather than numbers.
//!
//! maru-fs synthesises (read-only): on a chunk [`STATE`], [`PINS`], [`NODE`],
//! [`CREATED`]; on a pool directory [`NODE`], [`CAPACITY`], [`USED`],
//! [`ONLINE`]; in a devdax pool also [`DEVDAX_PATH`] (pool and chunks) and
//! [`DEVDAX_OFFSET`], [`DEVDAX_LEN`], [`DEVDAX_EXTENT`] (chunks); on a pool whose chunks the
//! daemon lends ([`crate::lend`]) [`LEND_SOCKET`]. libmaru writes [`KEY`] on the
//! staging file of a long key before publishing it.

use core::ffi::CStr;

/// Declares an xattr name as `&str` (`$name`) and as `&CStr` (`$cname`), both
/// from one literal.
macro_rules! names {
    ($($(#[$doc:meta])* $name:ident, $cname:ident = $value:literal;)*) => {$(
        $(#[$doc])*
        pub const $name: &str = $value;
        #[doc = concat!("[`", stringify!($name), "`] as a C string (`", $value, "`).")]
        pub const $cname: &CStr = match CStr::from_bytes_with_nul(concat!($value, "\0").as_bytes()) {
            Ok(c) => c,
            Err(_) => panic!("an xattr name contains NUL"),
        };
    )*};
}

/// Prefix of every name below.
pub const PREFIX: &str = "user.maru.";

names! {
    /// Chunk: [`STAGING`] or [`PUBLISHED`].
    STATE, STATE_C = "user.maru.state";
    /// Chunk: decimal count of open descriptors (pins) of the chunk, all
    /// processes (lent ones counted until nothing holds the chunk; see [`crate::lend`]).
    PINS, PINS_C = "user.maru.pins";
    /// Chunk and pool: NUMA node of the pool's pages (decimal), or [`NODE_UNKNOWN`].
    NODE, NODE_C = "user.maru.node";
    /// Chunk: creation time in unix seconds.
    CREATED, CREATED_C = "user.maru.created";
    /// Pool: capacity in bytes.
    CAPACITY, CAPACITY_C = "user.maru.capacity";
    /// Pool: bytes charged.
    USED, USED_C = "user.maru.used";
    /// Pool: [`ONLINE_VALUE`] or [`OFFLINE_VALUE`].
    ONLINE, ONLINE_C = "user.maru.online";
    /// Chunk with a hashed (long-key) name: the full key, written by libmaru.
    KEY, KEY_C = "user.maru.key";
    /// Devdax pool and its chunks: the device node chunks are mapped from.
    DEVDAX_PATH, DEVDAX_PATH_C = "user.maru.devdax.path";
    /// Devdax chunk: byte offset of its extent in the device (decimal).
    DEVDAX_OFFSET, DEVDAX_OFFSET_C = "user.maru.devdax.offset";
    /// Devdax chunk: length of its extent (decimal; whole alignment units).
    DEVDAX_LEN, DEVDAX_LEN_C = "user.maru.devdax.len";
    /// Devdax chunk: [`DEVDAX_OFFSET`] and [`DEVDAX_LEN`] in one value (`<offset>
    /// <len>`, decimal, one space): one round trip to the daemon instead of two.
    DEVDAX_EXTENT, DEVDAX_EXTENT_C = "user.maru.devdax.extent";
    /// Pool whose published chunks the daemon lends in batches: the path of its
    /// lending socket ([`crate::lend`]).
    LEND_SOCKET, LEND_SOCKET_C = "user.maru.lend.socket";
}

/// [`STATE`] of a chunk being written.
pub const STAGING: &str = "staging";
/// [`STATE`] of a published chunk.
pub const PUBLISHED: &str = "published";
/// [`NODE`] when the node is not known.
pub const NODE_UNKNOWN: &str = "unknown";
/// [`ONLINE`] of a pool that serves chunks.
pub const ONLINE_VALUE: &str = "online";
/// [`ONLINE`] of a pool that does not (its device is gone).
pub const OFFLINE_VALUE: &str = "offline";

/// Most bytes (names plus values) a writer may store in a chunk's own
/// `user.*` xattrs; maru-fs enforces it.
pub const USER_XATTR_LIMIT: usize = 4096;

// The longest key fits, with its name, under the limit.
const _: () = assert!(KEY.len() + crate::name::KEY_MAX <= USER_XATTR_LIMIT);

/// Every name maru-fs synthesises or libmaru writes.
pub const ALL: &[&str] = &[
    STATE,
    PINS,
    NODE,
    CREATED,
    CAPACITY,
    USED,
    ONLINE,
    KEY,
    DEVDAX_PATH,
    DEVDAX_OFFSET,
    DEVDAX_LEN,
    DEVDAX_EXTENT,
    LEND_SOCKET,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_names_match_and_share_the_prefix() {
        let pairs = [
            (STATE, STATE_C),
            (PINS, PINS_C),
            (NODE, NODE_C),
            (CREATED, CREATED_C),
            (CAPACITY, CAPACITY_C),
            (USED, USED_C),
            (ONLINE, ONLINE_C),
            (KEY, KEY_C),
            (DEVDAX_PATH, DEVDAX_PATH_C),
            (DEVDAX_OFFSET, DEVDAX_OFFSET_C),
            (DEVDAX_LEN, DEVDAX_LEN_C),
            (DEVDAX_EXTENT, DEVDAX_EXTENT_C),
            (LEND_SOCKET, LEND_SOCKET_C),
        ];
        assert_eq!(pairs.len(), ALL.len());
        for (s, c) in pairs {
            assert_eq!(c.to_bytes(), s.as_bytes());
            assert!(s.starts_with(PREFIX), "{s}");
            assert!(ALL.contains(&s), "{s}");
        }
    }
}
