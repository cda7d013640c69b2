//! Files and directories: `open`, the `*at` calls on a pool directory fd,
//! `statx`, sizing and writing, listing, and the open-files limit.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `-1` → the thread's errno, anything else → `Ok`.
fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Takes ownership of a descriptor a successful call returned.
fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    let fd = check(fd)?;
    // SAFETY: `fd` is a fresh descriptor the kernel just handed to us; nothing
    // else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `open(path, flags | O_CLOEXEC)`.
pub(crate) fn open(path: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: NUL-terminated path; the result is checked and owned.
    owned(unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) })
}

/// `openat(dir, name, flags | O_CLOEXEC, mode)`.
pub(crate) fn openat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mode: libc::c_uint,
) -> io::Result<OwnedFd> {
    // SAFETY: valid dir fd and NUL-terminated name; the result is checked and owned.
    owned(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode,
        )
    })
}

/// `unlinkat(dir, name, 0)`.
pub(crate) fn unlinkat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: valid dir fd and NUL-terminated name.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) }).map(drop)
}

/// `renameat2(dir, from, dir, to, RENAME_NOREPLACE)`: EEXIST if `to` exists.
pub(crate) fn rename_noreplace(dir: BorrowedFd<'_>, from: &CStr, to: &CStr) -> io::Result<()> {
    // SAFETY: valid dir fd twice and NUL-terminated names.
    let rc = unsafe {
        libc::renameat2(
            dir.as_raw_fd(),
            from.as_ptr(),
            dir.as_raw_fd(),
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    check(rc).map(drop)
}

/// `statx` of `name` in `dir` (or of `dir` itself with an empty name and
/// `AT_EMPTY_PATH`) from the kernel's cached attributes (`AT_STATX_DONT_SYNC`).
fn statx(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mask: libc::c_uint,
) -> io::Result<libc::statx> {
    // SAFETY: an all-zero statx is a valid value; statx fills it.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd, NUL-terminated name and an out pointer to `stx`.
    let rc = unsafe {
        libc::statx(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags | libc::AT_STATX_DONT_SYNC,
            mask,
            &mut stx,
        )
    };
    check(rc).map(|_| stx)
}

/// The inode number of `name` in `dir` (not following a symlink).
pub(crate) fn ino_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<u64> {
    statx(dir, name, libc::AT_SYMLINK_NOFOLLOW, libc::STATX_INO).map(|s| s.stx_ino)
}

/// The id of the mount that `name` in `dir` is on (`STATX_MNT_ID`; `dir`
/// itself with an empty name and `AT_EMPTY_PATH`), or `None` if the kernel
/// does not say.
pub(crate) fn mount_id_at(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
) -> io::Result<Option<u64>> {
    let s = statx(dir, name, flags, libc::STATX_MNT_ID)?;
    Ok((s.stx_mask & libc::STATX_MNT_ID != 0).then_some(s.stx_mnt_id))
}

/// `(size, inode number)` of the open file `fd`.
pub(crate) fn size_and_ino(fd: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    statx(
        fd,
        c"",
        libc::AT_EMPTY_PATH,
        libc::STATX_SIZE | libc::STATX_INO,
    )
    .map(|s| (s.stx_size, s.stx_ino))
}

/// `(is a regular file, size)` of the open file `fd` (`fstat`).
pub(crate) fn regular_size(fd: BorrowedFd<'_>) -> io::Result<(bool, u64)> {
    // SAFETY: an all-zero stat is a valid value; fstat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and an out pointer to `st`.
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    let size = u64::try_from(st.st_size).unwrap_or(0);
    Ok((st.st_mode & libc::S_IFMT == libc::S_IFREG, size))
}

/// `pwrite(fd, buf, offset)`: bytes written.
pub(crate) fn pwrite(fd: BorrowedFd<'_>, buf: &[u8], offset: libc::off_t) -> io::Result<usize> {
    // SAFETY: valid fd; pointer and length of `buf`.
    let n = unsafe { libc::pwrite(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), offset) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// `fallocate(fd, 0, 0, len)`: allocates `[0, len)` and sets the size.
pub(crate) fn fallocate(fd: BorrowedFd<'_>, len: libc::off_t) -> io::Result<()> {
    // SAFETY: valid fd; mode 0 has no memory-safety preconditions.
    check(unsafe { libc::fallocate(fd.as_raw_fd(), 0, 0, len) }).map(drop)
}

/// `ftruncate(fd, len)`.
pub(crate) fn ftruncate(fd: BorrowedFd<'_>, len: libc::off_t) -> io::Result<()> {
    // SAFETY: valid fd.
    check(unsafe { libc::ftruncate(fd.as_raw_fd(), len) }).map(drop)
}

/// Every name in the directory `dir` except `.` and `..` (a fresh open of
/// it, so the caller's descriptor offset is untouched).
pub(crate) fn list(dir: BorrowedFd<'_>) -> io::Result<Vec<CString>> {
    let fd = openat(dir, c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let raw = fd.as_raw_fd();
    // SAFETY: `raw` is a valid directory fd; on success fdopendir owns it.
    let d = unsafe { libc::fdopendir(raw) };
    if d.is_null() {
        return Err(io::Error::last_os_error()); // `fd` still owns and closes it
    }
    std::mem::forget(fd); // now owned by `d`, closed by closedir below
    let mut names = Vec::new();
    let result = loop {
        // SAFETY: `d` is a valid DIR*; errno is reset to tell the end from an error.
        let ent = unsafe {
            *libc::__errno_location() = 0;
            libc::readdir64(d)
        };
        if ent.is_null() {
            let err = io::Error::last_os_error();
            break match err.raw_os_error() {
                Some(0) | None => Ok(()),
                _ => Err(err),
            };
        }
        // SAFETY: d_name of a valid dirent is NUL-terminated and lives until
        // the next readdir; it is copied at once.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    };
    // SAFETY: valid DIR*, closed once (this also closes its fd).
    unsafe { libc::closedir(d) };
    result.map(|()| names)
}

/// Raises the soft limit on open files to the hard limit (best effort).
pub(crate) fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out pointer / in pointer to a plain struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
