//! Lending published chunks' descriptors ([`crate::lend`]): the checks a FUSE
//! open would have had (the kernel's, with `default_permissions`, and ours),
//! done here against the same attributes the kernel is given.

use super::*;
use crate::lend::{Peer, MAY_EXEC, MAY_READ};

/// One chunk lent: a read-only descriptor of its memory.
#[derive(Debug)]
pub(crate) struct Lent {
    /// The backing file, open read-only (a mapping of it is the pool's pages).
    pub file: File,
    /// The chunk's size in bytes.
    pub size: u64,
    /// The chunk's inode number on the mount.
    pub ino: u64,
}

/// Whether `peer` has every bit of `want` on a file with attributes `attr`
/// ([`Peer::may`]).
fn may(peer: &Peer, attr: &FileAttr, want: u16) -> bool {
    peer.may(attr.uid, attr.gid, attr.perm, want)
}

impl State {
    /// The chunk's pins as `user.maru.pins` shows them: its FUSE handles plus
    /// the descriptors lent since it was last unused. Lent descriptors close
    /// unseen, so their count is reset only when the kernel says nothing holds
    /// the backing file any more: 0 exactly when the chunk is not held, an
    /// over-count while some lent holders have let go and others have not.
    pub(super) fn pins_of(&mut self, ino: u64) -> u32 {
        let Some(c) = self.chunks.get(&ino) else {
            return 0;
        };
        if c.lent > 0 {
            let idle = match (self.pool_nodes.get(&c.pool), &c.name) {
                (Some(p), Some(name)) => !p.store.in_use(name),
                // Unlinked: its space returns when the reaper sees it freed.
                _ => false,
            };
            if idle {
                if let Some(c) = self.chunks.get_mut(&ino) {
                    c.lent = 0;
                }
            }
        }
        self.chunks
            .get(&ino)
            .map_or(0, |c| c.opens.saturating_add(c.lent))
    }

    /// The socket lending the chunks of pool `p`, if the mount has one and the
    /// pool's chunks are files (not a devdax pool's extents).
    pub(super) fn lend_socket_of(&self, p: &Pool) -> Option<&std::path::Path> {
        self.lend_socket
            .as_deref()
            .filter(|_| p.store.devdax_device().is_none())
    }

    /// Sets the socket advertised on the pools whose chunks can be lent.
    pub fn set_lend_socket(&mut self, path: Option<std::path::PathBuf>) {
        self.lend_socket = path;
    }

    /// The pool named `name` if `peer` may look up names in it (search
    /// permission on the mount's root and the pool's directory, as a path walk
    /// would need): `ENOENT` for no such pool, `EOPNOTSUPP` for one whose chunks
    /// cannot be lent, `ENODEV` while it is offline, `EACCES`.
    pub fn lend_pool(&self, name: &[u8], peer: &Peer) -> Result<INodeNo, Errno> {
        let name = std::str::from_utf8(name).map_err(|_| Errno::ENOENT)?;
        let ino = *self.pools.get(name).ok_or(Errno::ENOENT)?;
        let p = self.pool_nodes.get(&ino).ok_or(Errno::ENOENT)?;
        if self.lend_socket_of(p).is_none() {
            return Err(Errno::EOPNOTSUPP);
        }
        if !may(peer, &self.root_attr(), MAY_EXEC) || !may(peer, &self.pool_attr(p), MAY_EXEC) {
            return Err(Errno::EACCES);
        }
        if !p.online {
            return Err(Errno::ENODEV);
        }
        Ok(INodeNo(ino))
    }

    /// Opens the published chunk `name` of pool `pool` read-only for `peer`:
    /// `ENOENT` unless it is published there, `EACCES` unless `peer` may read
    /// it. Counts as a lookup hit and a use (LRU), like a FUSE open.
    pub fn lend(&mut self, pool: INodeNo, name: &OsStr, peer: &Peer) -> Result<Lent, Errno> {
        let tick = self.next_tick();
        let p = self.pool_nodes.get(&pool.0).ok_or(Errno::ENOENT)?;
        if is_staging_name(name) {
            return Err(Errno::ENOENT);
        }
        let ino = *p.entries.get(name).ok_or(Errno::ENOENT)?;
        let c = self.chunks.get(&ino).ok_or(Errno::ENOENT)?;
        if c.phase != Phase::Published || c.name.is_none() {
            return Err(Errno::ENOENT);
        }
        if !may(peer, &self.chunk_attr(ino, c), MAY_READ) {
            return Err(Errno::EACCES);
        }
        let file = p
            .store
            .open_chunk_readonly(name)
            .map_err(|e| backing_open_failed(p, name, " to lend it", &e))?;
        let size = c.size;
        if let Some(c) = self.chunks.get_mut(&ino) {
            c.last_used = tick;
            c.lent = c.lent.saturating_add(1);
        }
        if let Some(p) = self.pool_nodes.get_mut(&pool.0) {
            p.counters.lookups += 1;
            p.counters.hits += 1;
        }
        Ok(Lent { file, size, ino })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(uid: u32, gid: u32, perm: u16) -> FileAttr {
        let mut a = dir_attr(2, uid, gid, 0, SystemTime::UNIX_EPOCH);
        a.perm = perm;
        a
    }

    fn peer(uid: u32, gid: u32, groups: &[u32]) -> Peer {
        Peer {
            pid: 1,
            uid,
            gid,
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn permission_follows_owner_then_group_then_others() {
        let a = attr(1000, 100, 0o640);
        assert!(may(&peer(1000, 1, &[]), &a, MAY_READ), "owner reads");
        assert!(
            may(&peer(2000, 100, &[]), &a, MAY_READ),
            "primary group reads"
        );
        assert!(
            may(&peer(2000, 5, &[7, 100]), &a, MAY_READ),
            "supplementary group reads"
        );
        assert!(!may(&peer(2000, 5, &[7]), &a, MAY_READ), "others do not");
        assert!(may(&peer(0, 0, &[]), &a, MAY_READ), "root does");
        // The owner's bits decide for the owner, even when the group's allow more.
        let b = attr(1000, 100, 0o070);
        assert!(!may(&peer(1000, 100, &[]), &b, MAY_READ));
        let dir = attr(0, 0, 0o710);
        assert!(
            !may(&peer(1000, 1, &[]), &dir, MAY_EXEC),
            "no search for others"
        );
        assert!(may(&peer(1000, 0, &[]), &dir, MAY_EXEC), "group may search");
    }
}
