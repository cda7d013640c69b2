//! The membership index as a file of the pool: `<pool>/.maru-index`, read-only,
//! served by passthrough from the daemon's index file (see [`crate::index`]).
//! Every generation of the file is its own inode (a passthrough inode keeps one
//! backing file while it is open), so a client that finds its mapping
//! superseded opens the name again and gets the new one.

use std::collections::HashMap;

use super::*;
use crate::index::{IndexFile, MemberIndex, INDEX_NAME};

/// Open state of one generation of the index file.
#[derive(Debug, Default)]
struct Opens {
    count: u32,
    backing: Option<Arc<BackingId>>,
}

/// A pool's index and the inodes its files are served as.
#[derive(Debug)]
pub(crate) struct PoolIndex {
    members: MemberIndex,
    /// Inode of the current file.
    ino: u64,
    opens: Opens,
    /// Superseded files that clients still have open, by inode.
    retired: HashMap<u64, (IndexFile, Opens)>,
}

impl PoolIndex {
    /// Serves `members` as inode `ino`.
    pub fn new(members: MemberIndex, ino: u64) -> PoolIndex {
        PoolIndex {
            members,
            ino,
            opens: Opens::default(),
            retired: HashMap::new(),
        }
    }

    fn file_of(&mut self, ino: u64) -> Option<(&IndexFile, &mut Opens)> {
        if ino == self.ino {
            return Some((self.members.current(), &mut self.opens));
        }
        self.retired.get_mut(&ino).map(|(f, o)| (&*f, o))
    }

    fn file(&self, ino: u64) -> Option<&IndexFile> {
        if ino == self.ino {
            return Some(self.members.current());
        }
        self.retired.get(&ino).map(|(f, _)| f)
    }
}

/// Whether `name` is the index's name.
pub(super) fn is_index_name(name: &OsStr) -> bool {
    name.as_bytes() == INDEX_NAME.as_bytes()
}

impl State {
    /// The index of pool `pool` (inode), created now for a directory store;
    /// `None` for stores without files (devdax) or when the file cannot be made.
    pub(super) fn make_index(&mut self, pool: &Pool) -> Option<PoolIndex> {
        let path = pool.store.file_path(OsStr::new(INDEX_NAME))?;
        let names = pool
            .entries
            .iter()
            .filter(|(_, ino)| {
                self.chunks
                    .get(ino)
                    .is_some_and(|c| c.phase == Phase::Published)
            })
            .map(|(n, _)| n.as_os_str());
        match MemberIndex::create(path.clone(), names) {
            Ok(m) => Some(PoolIndex::new(m, self.alloc_ino())),
            Err(e) => {
                log::warn!(
                    "pool {}: cannot create the membership index {path:?} ({e}); \
                     clients will stat every key instead",
                    pool.cfg.name
                );
                None
            }
        }
    }

    /// Records that `name` was published in pool `pool`.
    pub(super) fn index_insert(&mut self, pool: u64, name: &OsStr) {
        let new_ino = self.next_ino;
        let Some(p) = self.pool_nodes.get_mut(&pool) else {
            return;
        };
        let Some(idx) = p.index.as_mut() else {
            return;
        };
        match idx.members.insert(name) {
            Ok(None) => {}
            Ok(Some(old)) => {
                // A new generation: a new inode; the old one lives while open.
                self.next_ino += 1;
                let old_ino = std::mem::replace(&mut idx.ino, new_ino);
                let opens = std::mem::take(&mut idx.opens);
                if opens.count > 0 {
                    idx.retired.insert(old_ino, (old, opens));
                }
                self.notices.push(Notice::InvalEntry {
                    parent: pool,
                    name: OsString::from(INDEX_NAME),
                });
            }
            Err(e) => {
                // Clients must not trust an index that misses a key: drop it.
                log::warn!(
                    "pool {}: cannot grow the membership index ({e}); \
                     clients will stat every key instead",
                    p.cfg.name
                );
                p.index = None;
                self.notices.push(Notice::InvalEntry {
                    parent: pool,
                    name: OsString::from(INDEX_NAME),
                });
            }
        }
    }

    /// Records that `name` is no longer published in pool `pool`.
    pub(super) fn index_remove(&mut self, pool: u64, name: &OsStr) {
        if let Some(idx) = self
            .pool_nodes
            .get_mut(&pool)
            .and_then(|p| p.index.as_mut())
        {
            idx.members.remove(name);
        }
    }

    /// The file of index inode `ino` and its open state.
    fn index_file(&mut self, ino: u64) -> Option<(&IndexFile, &mut Opens)> {
        self.pool_nodes
            .values_mut()
            .find_map(|p| p.index.as_mut().and_then(|i| i.file_of(ino)))
    }

    /// Attributes of index inode `ino`: read-only for everybody, owned by root.
    pub(super) fn index_attr(&self, ino: u64) -> Option<FileAttr> {
        let (gid, size) = self.pool_nodes.values().find_map(|p| {
            let f = p.index.as_ref()?.file(ino)?;
            Some((p.cfg.gid, f.len()))
        })?;
        let mounted = self.mounted_at;
        Some(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: mounted,
            mtime: mounted,
            ctime: mounted,
            crtime: mounted,
            kind: FileType::RegularFile,
            perm: 0o444,
            nlink: 1,
            uid: 0,
            gid,
            rdev: 0,
            blksize: BLOCK as u32,
            flags: 0,
        })
    }

    /// Looks up `.maru-index` in pool `pool`: present only where passthrough
    /// works (clients map it).
    pub(super) fn index_lookup(&mut self, pool: u64) -> Option<FileAttr> {
        if !self.passthrough {
            return None;
        }
        let ino = self.pool_nodes.get(&pool)?.index.as_ref()?.ino;
        self.index_attr(ino)
    }

    /// Opens index inode `ino` read-only (passthrough); `None` if `ino` is no index.
    pub(super) fn index_open(
        &mut self,
        ino: u64,
        write: bool,
        open_backing: OpenBacking<'_>,
    ) -> Option<Result<Opened, Errno>> {
        let attr = self.index_attr(ino)?;
        if write {
            return Some(Err(Errno::EPERM));
        }
        let (f, opens) = self.index_file(ino)?;
        if opens.backing.is_none() {
            match open_backing(f.file()) {
                Ok(id) => opens.backing = Some(Arc::new(id)),
                Err(e) => {
                    log::error!("cannot register the membership index for passthrough: {e}");
                    return Some(Err(errno_of(&e)));
                }
            }
        }
        opens.count += 1;
        let backing = opens.backing.clone();
        let fh = self.alloc_fh();
        self.handles.insert(fh, ino);
        Some(Ok(Opened {
            fh: FileHandle(fh),
            attr,
            backing,
            direct_io: false,
        }))
    }

    /// Releases a handle of index inode `ino`.
    pub(super) fn index_release(&mut self, ino: u64) {
        for p in self.pool_nodes.values_mut() {
            let Some(idx) = p.index.as_mut() else {
                continue;
            };
            let Some((_, opens)) = idx.file_of(ino) else {
                continue;
            };
            opens.count = opens.count.saturating_sub(1);
            if opens.count == 0 {
                opens.backing = None;
                idx.retired.remove(&ino);
            }
            return;
        }
    }
}
