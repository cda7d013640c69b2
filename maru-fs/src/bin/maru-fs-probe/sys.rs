//! The probe's unsafe calls: mapping chunk files and registering a mapping
//! with io_uring.

use std::fs::File;
use std::io;

use memmap2::{Mmap, MmapMut, MmapOptions};

/// Maps the first `size` bytes of a staging chunk read-write.
pub fn map_staging(file: &File, size: usize) -> io::Result<MmapMut> {
    // SAFETY: the chunk is a file only this process writes while it is staging.
    unsafe { MmapOptions::new().len(size).map_mut(file) }
}

/// Maps a published chunk read-only (its first `len` bytes, or all of it),
/// pages populated.
pub fn map_published(file: &File, len: Option<usize>) -> io::Result<Mmap> {
    let mut opts = MmapOptions::new();
    if let Some(len) = len {
        opts.len(len);
    }
    // SAFETY: published chunks are sealed; nobody writes them while we read.
    unsafe { opts.populate().map(file) }
}

/// A ring with a mapping registered as its fixed buffer; dropping it
/// drops the ring first, then unmaps.
pub struct Registered {
    /// Held (not read) so the registration lives as long as the mapping.
    _ring: io_uring::IoUring,
    map: MmapMut,
}

impl Registered {
    /// The registered mapping.
    pub fn map(&self) -> &MmapMut {
        &self.map
    }
}

/// Registers `map` as `ring`'s one fixed buffer (the result of the
/// registration comes back next to the pair).
pub fn register_buffer(ring: io_uring::IoUring, mut map: MmapMut) -> (Registered, io::Result<()>) {
    let iov = libc::iovec {
        iov_base: map.as_mut_ptr().cast(),
        iov_len: map.len(),
    };
    // SAFETY: the buffer stays mapped while the ring lives: both move into
    // `Registered`, whose fields drop in order (the ring, then the mapping),
    // and which lends the mapping out only shared.
    let res = unsafe { ring.submitter().register_buffers(&[iov]) };
    (Registered { _ring: ring, map }, res)
}

/// Receives one message with up to 253 descriptors (SCM_RIGHTS) on `fd`:
/// the bytes, the descriptors (owned), and whether anything was truncated.
pub fn recv_with_fds(
    fd: std::os::fd::BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<(usize, Vec<std::os::fd::OwnedFd>, bool)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 253]);
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        fd.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: descriptors just received with SCM_RIGHTS are new and ours.
            fds.extend(raw.into_iter().map(|r| unsafe { OwnedFd::from_raw_fd(r) }));
        }
    }
    let truncated = msg
        .flags
        .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
    Ok((msg.bytes, fds, truncated))
}
