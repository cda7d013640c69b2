//! Random bytes from the kernel (getrandom(2)).

use std::io;

/// Fills `buf` with random bytes; an error if the kernel gave fewer (no entropy
/// source yet, or a signal).
pub(crate) fn fill(buf: &mut [u8]) -> io::Result<()> {
    // SAFETY: `buf` is a writable buffer of `buf.len()` bytes that outlives the call.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != buf.len() {
        return Err(io::Error::from_raw_os_error(libc::EAGAIN));
    }
    Ok(())
}
