//! The system layer: every raw `libc` call of libmaru, behind safe functions
//! and types (file descriptors as `OwnedFd`/`BorrowedFd`, names as `&CStr`,
//! buffers as slices, mappings as [`mem::Region`], failures as `io::Error`).
//! The rest of the crate denies `unsafe_code`; each `unsafe` block here
//! carries its `SAFETY` argument. Only the C ABI ([`crate::ffi`]) has unsafe
//! code of its own (its callers hand it raw pointers), and the CUDA driver
//! and io_uring bindings live here too.
#![allow(unsafe_code)]

pub(crate) mod cuda;
pub(crate) mod fs;
pub(crate) mod mem;
pub(crate) mod pin_shm;
pub(crate) mod socket;
pub(crate) mod uring;
pub(crate) mod xattr;
