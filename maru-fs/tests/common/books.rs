//! The capacity invariant every test can assert: the pool's used bytes, as
//! `statvfs` (`df`), `user.maru.used` and `Control::stats` report them, equal the
//! sum of the daemon's charges, and no backing file holds a byte it is not
//! charged for.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use maru_testkit::wait::{poll, TIMEOUT};

use super::Fixture;
use maru_proto::xattr;

/// Publishes `key` in `dir` with `size` bytes written through write(2) after
/// ftruncate (the path whose growth the daemon must charge without seeing it).
pub fn put_written(dir: &Path, key: &str, size: u64) {
    let staging = format!(".put-{key}");
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(dir.join(&staging))
        .expect("create staging");
    f.set_len(size).expect("size staging");
    f.write_all(&vec![0x5a; size as usize])
        .expect("write staging");
    nix::fcntl::renameat2(
        nix::fcntl::AT_FDCWD,
        &dir.join(&staging),
        nix::fcntl::AT_FDCWD,
        &dir.join(key),
        nix::fcntl::RenameFlags::RENAME_NOREPLACE,
    )
    .expect("publish");
}

/// The pool's used bytes as `statvfs` shows them (whole 4 KiB blocks).
pub fn statfs_used(path: &std::path::Path) -> u64 {
    let st = nix::sys::statvfs::statvfs(path).expect("statvfs");
    (st.blocks() - st.blocks_free()) * st.fragment_size()
}

/// Checks the books of pool `pool` once; `Err` says what does not add up.
pub fn books_balance(fx: &Fixture, pool: &str) -> Result<(), String> {
    let books = fx
        .control
        .charges()
        .into_iter()
        .find(|b| b.name == pool)
        .ok_or("no such pool")?;
    let charged: u64 = books.chunks.iter().map(|c| c.charged).sum();
    if books.used_bytes != charged + books.removed_bytes {
        return Err(format!(
            "used {} != chunk charges {charged} + removed {}",
            books.used_bytes, books.removed_bytes
        ));
    }
    // statfs reports whole blocks of what is charged (clamped to capacity).
    let block = 4096;
    let used = books.used_bytes.min(books.capacity);
    let want = (books.capacity / block - (books.capacity - used) / block) * block;
    let dir = fx.pool_dir(pool);
    let df = statfs_used(&dir);
    if df != want {
        return Err(format!("statfs used {df} != charged {want}"));
    }
    let xattr = super::xattr_get(&dir, xattr::USED).map_err(|e| e.to_string())?;
    if xattr != books.used_bytes.to_string().into_bytes() {
        return Err(format!(
            "{} {:?} != {}",
            xattr::USED,
            String::from_utf8_lossy(&xattr),
            books.used_bytes
        ));
    }
    // Every backing file belongs to a named chunk and is no bigger than its charge.
    let backing = fx.backing_dir(pool);
    let mut named = std::collections::HashMap::new();
    for c in &books.chunks {
        if let Some(n) = &c.name {
            named.insert(n.clone(), c);
        }
    }
    for e in std::fs::read_dir(&backing).map_err(|e| e.to_string())? {
        let e = e.map_err(|e| e.to_string())?;
        let name = e.file_name();
        if name == maru_fs::index::INDEX_NAME {
            continue;
        }
        let Some(c) = named.remove(&name) else {
            return Err(format!("backing file {name:?} belongs to no named chunk"));
        };
        let size = e.metadata().map_err(|e| e.to_string())?.size();
        if size > c.charged {
            return Err(format!(
                "backing file {name:?} holds {size} bytes, charged {}",
                c.charged
            ));
        }
        if c.published && size != c.size {
            return Err(format!(
                "published {name:?} is {size} bytes in the backing store, {} to readers",
                c.size
            ));
        }
    }
    if let Some(name) = named.keys().next() {
        return Err(format!("chunk {name:?} has no backing file"));
    }
    Ok(())
}

/// Asserts [`books_balance`] (polling a while: charges return asynchronously).
pub fn assert_books_balance(fx: &Fixture, pool: &str) {
    let mut why = String::new();
    let balanced = poll(TIMEOUT, "the books to balance", || {
        books_balance(fx, pool).map_err(|e| why = e).ok()
    });
    if balanced.is_err() {
        panic!("pool {pool}: books do not balance: {why}");
    }
}
