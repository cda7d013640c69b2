//! Long-term pinning through io_uring fixed-buffer registration.
//!
//! Registering a buffer with io_uring takes a long-term pin on its pages
//! (`pin_user_pages(FOLL_LONGTERM)`), the same kernel operation
//! `cuMemHostRegister` performs, so it measures and tests long-term pinning of a
//! chunk without a GPU. The kernel registers buffers for writing, so only
//! writable mappings (staging chunks) can be pinned this way; a read-only view
//! is refused with EFAULT.

use crate::error::{Error, Result};
use io_uring::IoUring;
use std::marker::PhantomData;

/// An io_uring instance used only to register buffers. Reuse it: creating a
/// ring costs more than a registration.
pub struct UringPinner {
    ring: IoUring,
}

/// A registered buffer: its pages are long-term pinned until this is dropped.
pub struct UringPin<'a> {
    pinner: &'a mut UringPinner,
    _buf: PhantomData<&'a [u8]>,
}

impl UringPinner {
    /// Creates a one-entry ring.
    pub fn new() -> Result<Self> {
        let ring = IoUring::new(1).map_err(|e| Error::os("create io_uring", "pinner", e))?;
        Ok(UringPinner { ring })
    }

    /// Registers `buf` as the ring's fixed buffer, pinning its pages while the
    /// returned guard lives.
    pub fn pin<'a>(&'a mut self, buf: &'a [u8]) -> Result<UringPin<'a>> {
        let iov = libc::iovec {
            iov_base: buf.as_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: the buffer outlives the registration: the guard borrows it for
        // 'a and unregisters on drop.
        unsafe { self.ring.submitter().register_buffers(&[iov]) }.map_err(|e| {
            Error::os(
                "register io_uring buffer (long-term pin)",
                format!("{} bytes at {:p}", buf.len(), buf.as_ptr()),
                e,
            )
        })?;
        Ok(UringPin {
            pinner: self,
            _buf: PhantomData,
        })
    }
}

impl UringPin<'_> {
    /// Unregisters now, reporting a failure (drop ignores it).
    pub fn unpin(self) -> Result<()> {
        let r = self.pinner.ring.submitter().unregister_buffers();
        std::mem::forget(self);
        r.map_err(|e| Error::os("unregister io_uring buffer", "pinner", e))
    }
}

impl Drop for UringPin<'_> {
    fn drop(&mut self) {
        // Nothing to report to in drop; closing the ring would release it too.
        let _ = self.pinner.ring.submitter().unregister_buffers();
    }
}
