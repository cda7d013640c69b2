//! Unit-test helper: a sized scratch file on /dev/shm (a shmem file, like a
//! pool's backing files).

use std::fs::File;
use std::path::PathBuf;

/// A fresh directory on /dev/shm holding `chunk`, `size` bytes, open read-write.
pub(crate) fn shm_chunk(size: u64) -> (tempfile::TempDir, PathBuf, File) {
    let dir = tempfile::tempdir_in("/dev/shm").expect("dir on /dev/shm");
    let path = dir.path().join("chunk");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .expect("create the scratch chunk");
    file.set_len(size).expect("size the scratch chunk");
    (dir, path, file)
}
