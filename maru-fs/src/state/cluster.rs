//! The cluster round trips of a shared pool's FUSE requests (a publish's etcd
//! transaction, an unlink's etcd delete) run without the state lock: the request
//! decides and reserves under it, the caller ([`crate::fs`]) makes the round trip,
//! then ends it under the lock again. A cluster that is slow or unreachable then
//! holds up that request only, never another pool's (or the same pool's lookups,
//! reads and opens).

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;

use fuser::Errno;

use super::{errno_of, State};
use crate::devdax::{PendingPublish, SharedLink};

/// A key of a shared pool whose publish waits for the cluster's answer.
#[derive(Debug)]
pub(super) struct Publishing {
    /// The chunk being published.
    ino: u64,
    /// The cluster's watch said the key was removed meanwhile (by another host,
    /// after this host's transaction won): it goes as soon as it is published.
    removed: bool,
}

/// A publish whose cluster transaction is left to run outside the state lock.
#[derive(Debug)]
pub(crate) struct PublishTicket {
    parent: u64,
    ino: u64,
    name: OsString,
    newname: OsString,
    pending: PendingPublish,
}

impl PublishTicket {
    /// The cluster transaction (blocks); call it without the state lock.
    pub fn claim(&self) -> io::Result<()> {
        self.pending.claim()
    }
}

/// An unlink of a published key of a shared pool whose cluster delete is left to
/// run outside the state lock.
#[derive(Debug)]
pub(crate) struct RemoveTicket {
    parent: u64,
    ino: u64,
    name: OsString,
    link: SharedLink,
}

impl RemoveTicket {
    /// Deletes the key from the cluster (blocks); call it without the state lock.
    pub fn claim(&self) -> io::Result<()> {
        self.link.0.remove(self.name.as_bytes())
    }
}

impl State {
    /// Whether chunk `ino` is being published (its cluster transaction in flight):
    /// its name cannot be taken away until the publish ends.
    pub(super) fn is_publishing(&self, ino: u64) -> bool {
        self.publishing.values().any(|p| p.ino == ino)
    }

    /// Whether key `name` of pool `parent` is being published.
    pub(super) fn key_publishing(&self, parent: u64, name: &OsStr) -> bool {
        self.publishing.contains_key(&(parent, name.to_os_string()))
    }

    /// Reserves key `newname` of pool `parent` for chunk `ino` (named `name`) while
    /// `pending` asks the cluster for it.
    pub(super) fn publish_reserved(
        &mut self,
        parent: u64,
        ino: u64,
        name: &OsStr,
        newname: &OsStr,
        pending: PendingPublish,
    ) -> PublishTicket {
        self.publishing.insert(
            (parent, newname.to_os_string()),
            Publishing {
                ino,
                removed: false,
            },
        );
        PublishTicket {
            parent,
            ino,
            name: name.to_os_string(),
            newname: newname.to_os_string(),
            pending,
        }
    }

    /// Ends the publish of `t` with the cluster's answer `claimed`: the chunk is
    /// published under its key, or stays staging (and goes if its writer left
    /// meanwhile).
    pub fn publish_end(&mut self, t: PublishTicket, claimed: io::Result<()>) -> Result<(), Errno> {
        let key = (t.parent, t.newname);
        let removed = self.publishing.remove(&key).is_some_and(|p| p.removed);
        let newname = key.1;
        if let Err(e) = t.pending.end(claimed) {
            // Its writer let go meanwhile: what `release` left to this.
            let left = self.chunks.get(&t.ino).is_some_and(|c| c.opens == 0);
            if left {
                self.unname(t.ino, true);
            }
            return Err(errno_of(&e));
        }
        self.renamed(t.parent, t.ino, &t.name, &newname, true);
        if removed {
            let pool = self.pool_nodes.get(&t.parent).map(|p| p.cfg.name.clone());
            if let Some(pool) = pool {
                self.remote_removed(&pool, &newname);
            }
        }
        Ok(())
    }

    /// The cluster delete an unlink of `name` (chunk `ino`) in pool `parent` needs
    /// first, if any: a published key of a shared pool.
    pub(super) fn remove_needs_cluster(
        &self,
        parent: u64,
        ino: u64,
        name: &OsStr,
    ) -> Option<RemoveTicket> {
        let pool = self.pool_nodes.get(&parent)?;
        let link = pool.store.shared_devdax()?.cluster_key(name)?;
        Some(RemoveTicket {
            parent,
            ino,
            name: name.to_os_string(),
            link,
        })
    }

    /// Ends the unlink of `t` with the cluster's answer `removed`: on success the
    /// key goes here too (unless the cluster's watch took it away already).
    pub fn unlink_end(&mut self, t: RemoveTicket, removed: io::Result<()>) -> Result<(), Errno> {
        // If the cluster cannot be reached the unlink fails (EIO) and nothing changes.
        removed.map_err(|e| errno_of(&e))?;
        let pool = self.pool_mut(t.parent)?;
        if pool.entries.get(&t.name) == Some(&t.ino) {
            if let Some(d) = pool.store.shared_devdax() {
                d.remote_removed(&t.name).map_err(|e| errno_of(&e))?;
            }
            // The kernel drops its own dentry for an unlink it sent.
            self.unname(t.ino, false);
        }
        if let Ok(pool) = self.pool_mut(t.parent) {
            pool.counters.removals += 1;
        }
        Ok(())
    }

    /// The cluster's watch says key `key` of pool `pool_ino` was removed while it is
    /// being published here: it goes once published. `false` if it is not.
    pub(super) fn removed_while_publishing(&mut self, pool_ino: u64, key: &OsStr) -> bool {
        match self.publishing.get_mut(&(pool_ino, key.to_os_string())) {
            Some(p) => {
                p.removed = true;
                true
            }
            None => false,
        }
    }
}
