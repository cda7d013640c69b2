//! Membership queries of a pool (`contains`, `batch_contains`,
//! `prefix_contains`): answered from maru-fs's membership index where the pool
//! has one (`.maru-index`, mapped read-only), otherwise one `stat` per key.

use super::Pool;
use crate::error::Result;
use crate::key::KeyName;
use crate::membership_index::{MembershipIndex, Read};
use std::sync::Arc;

/// The pool's membership index, as far as this process knows it.
#[derive(Debug, Default)]
pub(super) enum MembershipSlot {
    /// Not opened yet: open `.maru-index` on next use.
    #[default]
    Unknown,
    /// The mapped index was superseded: open `.maru-index` again on next use.
    /// Until the kernel has dropped its cached name of the old file, that open
    /// may fail; this is not "no index".
    Reopen,
    /// The pool has no index (plain directory, devdax pool, older maru-fs).
    Absent,
    /// Mapped.
    Mapped(Arc<MembershipIndex>),
}

impl Pool {
    /// Whether `key` is published (no mapping, no pin). Answered from the
    /// pool's membership index where maru-fs offers one (a few memory loads),
    /// otherwise by one stat of the name, served from the kernel's caches.
    pub fn contains(&self, key: &[u8]) -> Result<bool> {
        let name = KeyName::new(key)?;
        if let Some(v) = self.read_membership(std::slice::from_ref(&name), false) {
            return Ok(v[0]);
        }
        Ok(self.stat_ino(&name)?.is_some())
    }

    /// Whether membership queries ([`Pool::contains`], [`Pool::batch_contains`],
    /// [`Pool::prefix_contains`]) are answered from maru-fs's membership index
    /// (`.maru-index`, mapped read-only) rather than one `stat` per key. Opens
    /// the index if that was not tried yet.
    pub fn uses_index(&self) -> bool {
        self.mapped_index().is_some()
    }

    /// The mapped index, opening it if not known yet; `None` if the pool has
    /// none (or it cannot be opened now).
    fn mapped_index(&self) -> Option<Arc<MembershipIndex>> {
        let mut slot = self.membership.lock().unwrap_or_else(|p| p.into_inner());
        match &*slot {
            MembershipSlot::Mapped(m) => return Some(m.clone()),
            MembershipSlot::Absent => return None,
            MembershipSlot::Unknown | MembershipSlot::Reopen => {}
        }
        match MembershipIndex::open(self.dir.fd()) {
            Ok(Some(m)) => {
                let m = Arc::new(m);
                *slot = MembershipSlot::Mapped(m.clone());
                Some(m)
            }
            Ok(None) => {
                if matches!(*slot, MembershipSlot::Unknown) {
                    *slot = MembershipSlot::Absent;
                }
                None
            }
            // Transient (e.g. EMFILE): stat this time, try again next time.
            Err(_) => None,
        }
    }

    /// Membership of `names` from the index (with `prefix`: up to and including
    /// the first absent one), or `None` to ask the filesystem instead.
    fn read_membership(&self, names: &[KeyName], prefix: bool) -> Option<Vec<bool>> {
        // A superseded index is replaced once; if the successor is not reachable
        // yet (the kernel's dentry invalidation is asynchronous), stat instead.
        for _ in 0..2 {
            let map = self.mapped_index()?;
            let hashes: Vec<u64> = names.iter().map(|n| map.hash(n.as_bytes())).collect();
            match map.read(&hashes, prefix) {
                Read::Done(v) => return Some(v),
                Read::Busy => return None,
                Read::Superseded => {
                    let mut slot = self.membership.lock().unwrap_or_else(|p| p.into_inner());
                    if matches!(&*slot, MembershipSlot::Mapped(m) if Arc::ptr_eq(m, &map)) {
                        *slot = MembershipSlot::Reopen;
                    }
                }
            }
        }
        None
    }

    /// [`Pool::contains`] for each key, in order (one consistent snapshot of
    /// the index where there is one).
    pub fn batch_contains<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<Vec<bool>> {
        let names = keys
            .iter()
            .map(|k| KeyName::new(k.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        if let Some(v) = self.read_membership(&names, false) {
            return Ok(v);
        }
        names
            .iter()
            .map(|n| Ok(self.stat_ino(n)?.is_some()))
            .collect()
    }

    /// How many of `keys` are present from the first one on (stops at the first
    /// absent key).
    pub fn prefix_contains<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<usize> {
        let names = keys
            .iter()
            .map(|k| KeyName::new(k.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        if let Some(v) = self.read_membership(&names, true) {
            return Ok(v.iter().take_while(|&&hit| hit).count());
        }
        for (i, n) in names.iter().enumerate() {
            if self.stat_ino(n)?.is_none() {
                return Ok(i);
            }
        }
        Ok(names.len())
    }
}
