//! libmaru: the Maru client library.
//!
//! Open a pool directory of the maru-fs mount, create chunks, publish them under
//! keys (first writer wins), map published chunks read-only (pinned while
//! mapped), look keys up singly, in batches or as a prefix, and pin mappings for
//! DMA (mlock, io_uring registration, CUDA registration with feature `cuda`).
//! A C ABI over the same calls is in [`ffi`] (header `include/maru.h`).
//!
//! Words: a *key* is the caller's byte string; its *key name* ([`key::KeyName`])
//! is the file name it is escaped to. The *membership index* is maru-fs's
//! per-pool table of hashed key names (`<pool>/.maru-index`, format in
//! `maru_proto::index`), mapped read-only by `membership_index` to answer
//! `contains` without a `stat`; it is unrelated to maru-fs's devdax record
//! table and to positions in a list (called positions here, `i` in the C ABI).
//!
//! ```no_run
//! let pool = maru::Pool::open("/mnt/maru/llama")?;
//! let mut chunk = pool.create(1 << 20)?;
//! chunk.as_mut_slice().fill(7);
//! let sealed = chunk.publish(b"model@1@0@abc/def")?; // read-only from here
//! assert_eq!(sealed.as_slice()[0], 7);
//! let view = pool.get(b"model@1@0@abc/def")?.expect("just published");
//! assert_eq!(view.as_slice()[0], 7);
//! # Ok::<(), maru::Error>(())
//! ```

// Raw system calls live in `sys` (and raw pointers from C in `ffi`) only.
#![deny(unsafe_code)]

mod chunk;
mod chunk_handle;
mod error;
#[allow(unsafe_code)] // the C ABI takes raw pointers
pub mod ffi;
pub mod key;
mod map;
mod membership_index;
mod pin_table;
mod pool;
mod sys;
mod view;

pub use chunk::{Chunk, ChunkState, Sealed, Unpublished};
pub use chunk_handle::ChunkHandle;
pub use error::{Error, Result};
pub use map::HUGE_PAGE;
pub use pin_table::{PinTable, Pinned, Removal, DEFAULT_SLOTS};
pub use pool::{NumaNode, Pool, PoolInfo, Publish};
pub use sys::cuda::available as cuda_available;
pub use sys::uring::{UringPin, UringPinner};
pub use view::View;

#[cfg(test)]
mod tests {
    /// Pools, chunks and views can be shared with and moved to other threads.
    #[test]
    fn handles_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<crate::Pool>();
        check::<crate::Chunk>();
        check::<crate::View>();
        check::<crate::Error>();
    }
}
