//! The system calls behind store and retrieve, timed one by one, to show where
//! the time goes (the pool's filesystem or the memory work).

use crate::stats::Samples;
use crate::sys::Map;
use crate::Row;
use anyhow::{bail, Result};
use nix::fcntl::{openat, renameat2, FallocateFlags, OFlag, RenameFlags};
use nix::sys::stat::{fstat, Mode};
use nix::unistd::{ftruncate, unlinkat, UnlinkatFlags};
use std::ffi::CString;
use std::os::fd::AsFd;
use std::path::Path;

/// The value of a call, or an error naming the step and the OS error.
fn check<T, E: Into<std::io::Error>>(r: Result<T, E>, what: &str) -> Result<T> {
    match r {
        Ok(v) => Ok(v),
        Err(e) => bail!("{what}: {}", e.into()),
    }
}

/// Times each step of store (openat O_CREAT, fallocate, ftruncate, mmap +
/// populate, memcpy, renameat2) and of retrieve (openat, fstat, mmap), then the
/// untimed cleanup, `n` times at `size` bytes.
pub fn run(backend: &str, pool: &Path, size: usize, n: usize) -> Result<Vec<Row>> {
    let dir = check(
        nix::fcntl::open(pool, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()),
        "opening the pool",
    )?;
    let dir = dir.as_fd();
    let len = i64::try_from(size)?;
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
    for i in 0..n {
        let stage = CString::new(format!(".stage-bd-{}-{i}", std::process::id()))?;
        let stage = stage.as_c_str();
        let key = CString::new(format!("breakdown-{size}-{i}"))?;
        let key = key.as_c_str();
        let fd = s[0].time(|| {
            openat(
                dir,
                stage,
                OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o644),
            )
        });
        let fd = check(fd, "openat O_CREAT")?;
        // As Pool::create: fallocate sizes (charges) and allocates.
        let rc = s[1].time(|| nix::fcntl::fallocate(&fd, FallocateFlags::empty(), 0, len));
        check(rc, "fallocate")?;
        // What Pool::store does instead (timed here on the sized file).
        check(s[2].time(|| ftruncate(&fd, len)), "ftruncate")?;
        let map = s[3].time(|| {
            let map = Map::new(fd.as_fd(), size, true);
            if let Ok(m) = &map {
                m.populate_write();
            }
            map
        });
        let mut map = check(map, "mmap")?;
        s[4].time(|| map.copy_in(&src));
        let rc = s[5].time(|| renameat2(dir, stage, dir, key, RenameFlags::RENAME_NOREPLACE));
        check(rc, "renameat2")?;
        drop(map);
        drop(fd);

        let rfd = s[6].time(|| openat(dir, key, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()));
        let rfd = check(rfd, "openat O_RDONLY")?;
        check(s[7].time(|| fstat(&rfd)), "fstat")?;
        let q = s[8].time(|| Map::new(rfd.as_fd(), size, false));
        let q = check(q, "mmap read-only")?;
        drop(q);
        s[9].time(|| drop(rfd));
        check(
            s[10].time(|| unlinkat(dir, key, UnlinkatFlags::NoRemoveDir)),
            "unlinkat",
        )?;
    }
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
