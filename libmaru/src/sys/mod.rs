//! The system layer: every raw `libc` call of libmaru, behind safe functions
//! and types (file descriptors as `OwnedFd`/`BorrowedFd`, names as `&CStr`,
//! buffers as slices, failures as `io::Error`). The rest of the crate is
//! `#![deny(unsafe_code)]`; each `unsafe` block here carries its `SAFETY`
//! argument. Only the C ABI ([`crate::ffi`]) has unsafe code of its own: its
//! callers hand it raw pointers.

pub(crate) mod xattr;
