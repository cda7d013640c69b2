//! File names in a pool directory: which are keys, which are staging files,
//! and how long they (and the keys behind them) may be.
//!
//! A name starting with [`STAGING_MARK`] (`.`) is never a key: it is a chunk
//! being written (libmaru names them [`STAGING_PREFIX`]`<pid>-<n>`) or a file
//! the daemon keeps in the pool (the membership index). maru-fs hides such
//! names from listings and does not index them; libmaru escapes a key's
//! leading `.` so that no key ever gets such a name.

/// First byte of every non-key name in a pool.
pub const STAGING_MARK: u8 = b'.';

/// Prefix of the staging files libmaru creates (`.stage-<pid>-<n>`).
pub const STAGING_PREFIX: &str = ".stage-";

/// Longest file name in a pool (and longest pool name), in bytes: Linux's
/// `NAME_MAX`, which maru-fs enforces and libmaru's key escaping respects.
pub const NAME_MAX: usize = 255;

/// Longest key libmaru accepts, in bytes. A key whose escaped name exceeds
/// [`NAME_MAX`] is stored under a hashed name with the key in the
/// [`crate::xattr::KEY`] xattr, so the daemon must accept an xattr value this
/// long (see [`crate::xattr::USER_XATTR_LIMIT`]).
pub const KEY_MAX: usize = 4000;

/// Whether `name` is a staging (non-key) name: it starts with [`STAGING_MARK`].
/// The empty name is not.
pub const fn is_staging(name: &[u8]) -> bool {
    matches!(name.first(), Some(&STAGING_MARK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_names_start_with_a_dot() {
        assert!(is_staging(b".stage-1-2"));
        assert!(is_staging(b".maru-index"));
        assert!(is_staging(STAGING_PREFIX.as_bytes()));
        assert!(is_staging(crate::index::INDEX_NAME.as_bytes()));
        assert!(!is_staging(b"model@1@0@abc"));
        assert!(!is_staging(b"%2Ehidden"));
        assert!(!is_staging(b""));
    }
}
