//! Whether a chunk's backing file is still mapped by some process.
//!
//! Under FUSE passthrough every FUSE open gets its own kernel-opened backing file
//! (with the client's open flags), and a mapping keeps that file referenced even
//! after the client closed its descriptor — invisibly to the daemon. A write lease
//! (`fcntl(F_SETLEASE, F_WRLCK)`) can only be taken when no other open file refers
//! to the inode (its write and read counts must be the lease taker's own), so
//! taking one on a fresh read-only descriptor and dropping it at once tells whether
//! any such mapping (or any other open) remains. Backing files are owned by the
//! daemon, so no CAP_LEASE is needed.

use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::fcntl::{openat, OFlag};

use crate::sys::lease::set_lease;
use nix::sys::stat::Mode;

/// Whether file `name` in directory `dir` is open anywhere (a mapping counts).
/// Answers false when it cannot tell (leases disabled), after one warning.
pub(crate) fn in_use(dir: impl AsFd, name: &OsStr) -> bool {
    let fd = match openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(_) => return false,
    };
    let err = match set_lease(fd.as_fd(), libc::F_WRLCK) {
        Ok(()) => {
            // Dropping the lease just taken.
            let _ = set_lease(fd.as_fd(), libc::F_UNLCK);
            return false;
        }
        Err(e) => e,
    };
    if err.raw_os_error() == Some(libc::EAGAIN) {
        return true;
    }
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        log::warn!(
            "cannot tell whether evicted chunks are still mapped (file lease: {err}); \
             enable fs.leases-enable, or chunks mapped after close may be evicted"
        );
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapping_after_close_is_seen() {
        let (dir, _path, file) = crate::test_file::shm_chunk(4096);
        let d = std::fs::File::open(dir.path()).unwrap();
        assert!(in_use(&d, OsStr::new("chunk")), "open descriptor not seen");
        let map = crate::sys::mem::map_for_test(&file).unwrap();
        drop(file);
        assert!(in_use(&d, OsStr::new("chunk")), "mapping not seen");
        drop(map);
        assert!(
            !in_use(&d, OsStr::new("chunk")),
            "unused file reported in use"
        );
        assert!(!in_use(&d, OsStr::new("missing")));
    }
}
