//! libmaru: the Maru client library.
//!
//! Open a pool directory of the maru-fs mount, create chunks, publish them under
//! keys (first writer wins), map published chunks read-only (pinned while
//! mapped), look keys up singly, in batches or as a prefix, and pin mappings for
//! DMA (mlock, io_uring registration, CUDA registration with feature `cuda`).
//! A C ABI over the same calls is in [`ffi`] (header `include/maru.h`).
//!
//! ```no_run
//! let pool = maru::Pool::open("/mnt/maru/llama")?;
//! let mut chunk = pool.create(1 << 20)?;
//! chunk.as_mut_slice().fill(7);
//! chunk.publish(b"model@1@0@abc/def")?;
//! let view = pool.get(b"model@1@0@abc/def")?.expect("just published");
//! assert_eq!(view.as_slice()[0], 7);
//! # Ok::<(), maru::Error>(())
//! ```

#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

mod chunk;
mod cuda;
mod error;
pub mod ffi;
mod index;
pub mod key;
mod map;
mod pin_table;
mod pool;
mod uring;
mod view;

pub use chunk::{Chunk, ChunkState};
pub use cuda::available as cuda_available;
pub use error::{Error, Result};
pub use map::HUGE_PAGE;
pub use pin_table::{PinTable, Pinned, Removal, DEFAULT_SLOTS};
pub use pool::{Pool, Publish};
pub use uring::{UringPin, UringPinner};
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
