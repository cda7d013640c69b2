//! The system calls behind store and retrieve, timed one by one, to show where
//! the time goes (the pool's filesystem or the memory work).

use crate::stats::Samples;
use crate::Row;
use anyhow::{bail, Result};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Fails with the OS error of the last call if `ok` is false.
fn check(ok: bool, what: &str) -> Result<()> {
    if !ok {
        bail!("{what}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// Times each step of store (openat O_CREAT, fallocate, ftruncate, mmap +
/// populate, memcpy, renameat2) and of retrieve (openat, fstat, mmap), then the
/// untimed cleanup, `n` times at `size` bytes.
pub fn run(backend: &str, pool: &Path, size: usize, n: usize) -> Result<Vec<Row>> {
    let dir_c = CString::new(pool.as_os_str().as_bytes())?;
    // SAFETY: NUL-terminated path; fd checked and closed at the end.
    let dir = unsafe { libc::open(dir_c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
    check(dir >= 0, "opening the pool")?;
    let src: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let names = [
        "openat(O_CREAT)",
        "fallocate (size + allocate)",
        "ftruncate (copy-in path, instead)",
        "mmap+populate",
        "memcpy",
        "renameat2",
        "openat(O_RDONLY)",
        "fstat",
        "mmap (read-only)",
        "close (reader)",
        "unlinkat",
    ];
    let mut s: Vec<Samples> = names.iter().map(|_| Samples::with_capacity(n)).collect();
    let result = (|| -> Result<()> {
        for i in 0..n {
            let stage = CString::new(format!(".stage-bd-{}-{i}", std::process::id()))?;
            let key = CString::new(format!("breakdown-{size}-{i}"))?;
            // SAFETY: libc calls on this function's own fds, NUL-terminated names
            // and mappings, each result checked before use; the one copy writes
            // `size` bytes from `src` (`size` long) into a fresh `size`-byte mapping.
            unsafe {
                let fd = s[0].time(|| {
                    libc::openat(
                        dir,
                        stage.as_ptr(),
                        libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC,
                        0o644,
                    )
                });
                check(fd >= 0, "openat O_CREAT")?;
                // As Pool::create: fallocate sizes (charges) and allocates.
                let rc = s[1].time(|| libc::fallocate(fd, 0, 0, size as i64));
                check(rc == 0, "fallocate")?;
                // What Pool::store does instead (timed here on the sized file).
                check(
                    s[2].time(|| libc::ftruncate(fd, size as i64)) == 0,
                    "ftruncate",
                )?;
                let p = s[3].time(|| {
                    let p = libc::mmap(
                        std::ptr::null_mut(),
                        size,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_SHARED,
                        fd,
                        0,
                    );
                    if p != libc::MAP_FAILED {
                        libc::madvise(p, size, libc::MADV_POPULATE_WRITE);
                    }
                    p
                });
                check(p != libc::MAP_FAILED, "mmap")?;
                s[4].time(|| std::ptr::copy_nonoverlapping(src.as_ptr(), p.cast(), size));
                let rc = s[5].time(|| {
                    libc::renameat2(
                        dir,
                        stage.as_ptr(),
                        dir,
                        key.as_ptr(),
                        libc::RENAME_NOREPLACE,
                    )
                });
                check(rc == 0, "renameat2")?;
                libc::munmap(p, size);
                libc::close(fd);

                let rfd =
                    s[6].time(|| libc::openat(dir, key.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC));
                check(rfd >= 0, "openat O_RDONLY")?;
                let mut st: libc::stat = std::mem::zeroed();
                check(s[7].time(|| libc::fstat(rfd, &mut st)) == 0, "fstat")?;
                let q = s[8].time(|| {
                    libc::mmap(
                        std::ptr::null_mut(),
                        size,
                        libc::PROT_READ,
                        libc::MAP_SHARED,
                        rfd,
                        0,
                    )
                });
                check(q != libc::MAP_FAILED, "mmap read-only")?;
                libc::munmap(q, size);
                s[9].time(|| libc::close(rfd));
                check(
                    s[10].time(|| libc::unlinkat(dir, key.as_ptr(), 0)) == 0,
                    "unlinkat",
                )?;
            }
        }
        Ok(())
    })();
    // SAFETY: closing our own directory fd once.
    unsafe { libc::close(dir) };
    result?;
    Ok(names
        .iter()
        .zip(s)
        .map(|(name, s)| Row {
            backend: backend.to_string(),
            op: format!("syscall: {name}"),
            size,
            stats: s.summary(),
            note: "one step of store/retrieve, raw system call".into(),
        })
        .collect())
}
