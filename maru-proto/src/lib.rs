//! Maru's cross-process contract: every name, number and format that two
//! programs (the daemon `maru-fs`/`maru-devd`, the client library `libmaru`,
//! and through libmaru's C ABI the Python package) must agree on, in one
//! place, so that changing one side without the other breaks the build (or
//! this crate's wire test), not production.
//!
//! * [`index`]: the per-pool membership index file (`.maru-index`).
//! * [`xattr`]: the `user.maru.*` extended attributes and their values.
//! * [`lend`]: the lending socket's messages (published chunks' descriptors
//!   handed out in batches).
//! * [`name`]: file names in a pool: the staging rule, [`name::NAME_MAX`],
//!   [`name::KEY_MAX`].
//!
//! `tests/wire.rs` spells every value out literally: a rename here fails that
//! test first.

#![no_std]

extern crate alloc;

pub mod index;
pub mod lend;
pub mod name;
pub mod xattr;
