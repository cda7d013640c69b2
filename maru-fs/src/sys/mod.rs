//! The system calls maru-fs makes through libc itself, each behind a safe
//! function that states why its `unsafe` block is sound. The logic modules deny
//! `unsafe_code` (see `lib.rs`); what still has unsafe code outside this module:
//! the devdax mapping and CRC-32C (`devdax::mapping`, `devdax::crc`), the
//! membership index's shared atomics (`index`) and the reaper's inotify loop.

pub(crate) mod lease;
pub(crate) mod random;
pub(crate) mod xattr;
