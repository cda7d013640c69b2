//! The system layer: the raw system calls and mapped memory of maru-fs, each
//! behind a safe function or type that states why its `unsafe` block is sound.
//! The rest of the crate denies `unsafe_code` (see `lib.rs`); inotify, poll and
//! the other plain calls go through `nix`'s safe API instead.
//!
//! * [`mem`]: the devdax pool's shared mapping (bounds-checked copies, cache-line
//!   flushes) and the membership index's atomic words;
//! * [`lease`], [`random`], [`xattr`]: fcntl leases, getrandom, xattr calls;
//! * [`socket`]: a Unix socket peer's groups and unread bytes (the lending socket).

pub(crate) mod lease;
pub(crate) mod mem;
pub(crate) mod random;
pub(crate) mod socket;
pub(crate) mod xattr;
