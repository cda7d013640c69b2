//! The daemon's side of shared pools: the etcd session (maru-cluster), the
//! [`Coordinator`] maru-fs asks for identity, arenas, publishes and removals, and the
//! watch that shows other hosts' keys on this host's mount. See docs/multihost.md.

use crate::config::ClusterSpec;
use anyhow::Context;
use maru_cluster::{ClusterConfig, KeyEvent, PoolLink, Publish, Session, UuidCheck};
use maru_fs::devdax::{Coordinator, KeyRef, SharedLink};
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// This host's name in the cluster: `cluster.host`, else the kernel's host name.
pub fn host_name(spec: &ClusterSpec) -> String {
    spec.host.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into())
    })
}

/// The client's settings for `spec`: the password file is read here; the TLS
/// material (`tls`) was read with the config, before privileges were dropped.
pub fn client_config(
    spec: &ClusterSpec,
    tls: Option<&maru_cluster::Tls>,
) -> anyhow::Result<ClusterConfig> {
    let mut cfg = ClusterConfig::new(spec.etcd.clone(), host_name(spec));
    cfg.lease_ttl = Duration::from_secs(spec.lease_ttl_s);
    if let Some(user) = &spec.user {
        let password = match &spec.password_file {
            Some(f) => std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the etcd password file {}", f.display()))?
                .trim_end()
                .to_string(),
            None => anyhow::bail!("cluster.user is set but cluster.password_file is not"),
        };
        cfg.auth = Some((user.clone(), password));
    }
    cfg.tls = tls.cloned();
    Ok(cfg)
}

/// Connects this host to the cluster of `spec`, with the TLS material `tls`.
pub fn connect(spec: &ClusterSpec, tls: Option<&maru_cluster::Tls>) -> anyhow::Result<Session> {
    let cfg = client_config(spec, tls)?;
    let host = cfg.host.clone();
    let session = Session::connect(cfg).with_context(|| {
        format!(
            "cannot join the cluster as host {host} (shared pools need etcd at {})",
            spec.etcd.join(", ")
        )
    })?;
    log::info!(
        "joined the cluster as host {host} (etcd at {})",
        spec.etcd.join(", ")
    );
    Ok(session)
}

/// A shared pool's link for maru-fs.
pub fn link(session: &Session, pool: &str) -> SharedLink {
    SharedLink(Arc::new(EtcdCoordinator {
        link: session.pool(pool),
    }))
}

/// Shows keys published on other hosts (and hides removed ones) on this host's
/// mount, from the pool's state at `revision` on.
pub fn watch(
    session: &Session,
    control: maru_fs::Control,
    pool: &str,
    revision: i64,
) -> anyhow::Result<()> {
    let name = pool.to_string();
    let watched = session
        .pool(pool)
        .watch_keys(revision + 1, move |ev| match ev {
            KeyEvent::Put(key, value) => match KeyRef::decode(&value) {
                Some(at) => {
                    if control.adopt_remote(&name, &key, &at) {
                        log::debug!(
                            "pool {name}: host {} published {:?}",
                            at.host,
                            String::from_utf8_lossy(&key)
                        );
                    }
                }
                None => log::warn!(
                    "pool {name}: ignoring key {:?} with an unreadable value in etcd",
                    String::from_utf8_lossy(&key)
                ),
            },
            KeyEvent::Delete(key) => {
                control.remote_removed(&name, &key);
            }
        });
    watched.with_context(|| format!("cannot start the cluster watch of pool {pool}"))
}

/// maru-fs's [`Coordinator`] over etcd.
struct EtcdCoordinator {
    link: PoolLink,
}

/// A cluster error as the errno the filesystem returns (EIO). A lost session is
/// logged once by the session itself (not per refused call: tenants could flood the
/// log); other failures are logged here.
fn eio(e: maru_cluster::ClusterError) -> io::Error {
    match e {
        maru_cluster::ClusterError::NoSession { .. } => log::debug!("{e}"),
        e => log::error!("{e}"),
    }
    io::Error::from_raw_os_error(libc::EIO)
}

fn unhex16(text: &str) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    if text.len() != 32 {
        return None;
    }
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn hex16(id: &[u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

impl Coordinator for EtcdCoordinator {
    fn host(&self) -> &str {
        self.link.session().host()
    }

    fn check_identity(&self, uuid: &[u8; 16]) -> io::Result<Option<[u8; 16]>> {
        Ok(match self.link.check_uuid(&hex16(uuid)).map_err(eio)? {
            UuidCheck::Registered | UuidCheck::Matches => None,
            UuidCheck::Mismatch(theirs) => Some(unhex16(&theirs).unwrap_or([0xFF; 16])),
        })
    }

    fn arenas(&self, count: u32) -> io::Result<Vec<u32>> {
        let me = self.host().to_string();
        let grants = self.link.arenas().map_err(eio)?;
        let mine: Vec<u32> = grants
            .iter()
            .filter(|(n, h)| *h == me && *n < count)
            .map(|(n, _)| *n)
            .collect();
        if !mine.is_empty() {
            return Ok(mine);
        }
        Ok(self.claim_arena(count)?.into_iter().collect())
    }

    fn claim_arena(&self, count: u32) -> io::Result<Option<u32>> {
        let taken: std::collections::BTreeSet<u32> = self
            .link
            .arenas()
            .map_err(eio)?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        for n in (0..count).filter(|n| !taken.contains(n)) {
            if self.link.claim_arena(n).map_err(eio)? {
                return Ok(Some(n));
            }
        }
        Ok(None)
    }

    fn writable(&self) -> io::Result<()> {
        self.link.session().check_live().map_err(eio)
    }

    fn publish(&self, key: &[u8], slot: u64) -> io::Result<()> {
        let value = KeyRef {
            host: self.host().to_string(),
            slot,
        }
        .encode();
        match self.link.publish(key, &value) {
            Ok(Publish::Won) => Ok(()),
            Ok(Publish::Exists) => Err(io::Error::from_raw_os_error(libc::EEXIST)),
            // The answer may have been lost after etcd applied the transaction: ask.
            Err(e) => match self.link.key(key) {
                Ok(Some(v)) if v == value => Ok(()),
                _ => Err(eio(e)),
            },
        }
    }

    fn remove(&self, key: &[u8]) -> io::Result<()> {
        self.link.session().check_live().map_err(eio)?;
        self.link.remove(key).map_err(eio)
    }

    fn snapshot(&self) -> io::Result<(Vec<maru_fs::devdax::Published>, i64)> {
        let (keys, rev) = self.link.keys().map_err(eio)?;
        Ok((
            keys.into_iter()
                .filter_map(|(k, v)| Some((k, KeyRef::decode(&v)?)))
                .collect(),
            rev,
        ))
    }
}

/// How often the reclaimer looks at pending removals.
const RECLAIM_EVERY: Duration = Duration::from_millis(500);

/// Starts the thread that returns the extents of removed chunks of the shared
/// `pools` once every other host let go of them (the removal protocol of
/// docs/multihost.md): it records this host's quarantined chunks as pending
/// removals with the members that must acknowledge, acknowledges other hosts'
/// removals of chunks this host no longer has, and frees this host's extents whose
/// removals every member acknowledged (or was forgotten).
pub fn reclaim(
    session: &Session,
    control: maru_fs::Control,
    pools: Vec<String>,
) -> anyhow::Result<()> {
    let session = session.clone();
    std::thread::Builder::new()
        .name("maru-reclaim".into())
        .spawn(move || {
            let mut last_err = String::new();
            for round in 0u64.. {
                std::thread::sleep(RECLAIM_EVERY);
                if session.check_live().is_err() {
                    continue;
                }
                for pool in &pools {
                    let swept = if round % SWEEP_EVERY == SWEEP_EVERY - 1 {
                        sweep_orphans(&session, &control, pool)
                    } else {
                        Ok(())
                    };
                    match swept.and_then(|()| reclaim_pool(&session, &control, pool)) {
                        Ok(()) => last_err.clear(),
                        Err(e) => {
                            let e = format!("pool {pool}: removal protocol: {e}");
                            if e != last_err {
                                log::warn!("{e}");
                                last_err = e;
                            }
                        }
                    }
                }
            }
        })
        .context("cannot start the reclaimer thread")?;
    Ok(())
}

/// Every how many reclaim rounds (10 s) the orphan sweep runs.
const SWEEP_EVERY: u64 = 20;

/// Deletes keys the cluster gives to this host that no published chunk of this host
/// backs: a publish whose transaction was applied but whose answer was lost (and
/// could not be confirmed) was undone locally, and its key would otherwise keep
/// every host from publishing that key again. A record is published before its
/// transaction, so a key whose chunk is live is never taken for an orphan.
fn sweep_orphans(
    session: &Session,
    control: &maru_fs::Control,
    pool: &str,
) -> Result<(), maru_cluster::ClusterError> {
    let link = session.pool(pool);
    let (keys, _) = link.keys()?;
    for (key, value) in keys {
        let Some(at) = KeyRef::decode(&value) else {
            continue;
        };
        if at.host == session.host() && !control.owns_published(pool, &key, at.slot) {
            // Re-check after reading: a publish may have completed since the listing.
            if link.key(&key)?.as_deref() == Some(&value[..])
                && !control.owns_published(pool, &key, at.slot)
            {
                log::warn!(
                    "pool {pool}: removing key {:?} from the cluster: it names this host's \
                     record {} but no published chunk of this host is there (a publish undone \
                     after its answer was lost)",
                    String::from_utf8_lossy(&key),
                    at.slot
                );
                link.remove(&key)?;
            }
        }
    }
    Ok(())
}

fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (slot, seq) = id.split_once('-')?;
    Some((slot.parse().ok()?, seq.parse().ok()?))
}

fn reclaim_pool(
    session: &Session,
    control: &maru_fs::Control,
    pool: &str,
) -> Result<(), maru_cluster::ClusterError> {
    let link = session.pool(pool);
    let me = session.host().to_string();
    let removals = link.removals()?;
    let quarantined = control.quarantined(pool);
    if removals.is_empty() && quarantined.is_empty() {
        return Ok(());
    }
    let members = session.members()?;
    for (slot, seq) in &quarantined {
        let id = format!("{slot}-{seq}");
        if !removals.iter().any(|r| r.writer == me && r.id == id) {
            let required: Vec<String> = members.iter().filter(|m| **m != me).cloned().collect();
            link.start_removal(&id, &required)?;
        }
    }
    for r in &removals {
        let Some((slot, seq)) = parse_id(&r.id) else {
            continue;
        };
        if r.writer != me {
            let asked = r.required.contains(&me) && !r.acked.contains(&me);
            if asked && !control.holds_remote(pool, &r.writer, slot, seq) {
                link.ack(&r.writer, &r.id)?;
            }
            continue;
        }
        let waiting = r
            .required
            .iter()
            .any(|h| members.contains(h) && !r.acked.contains(h));
        if waiting {
            continue;
        }
        match control.release_quarantined(pool, slot, seq) {
            Ok(freed) => {
                if freed {
                    log::info!(
                        "pool {pool}: every host let go of removed chunk {} (record {slot}); its \
                         extent is free again",
                        r.id
                    );
                }
                link.finish_removal(&r.id)?;
            }
            Err(e) => log::warn!("pool {pool}: cannot free removed chunk {}: {e}", r.id),
        }
    }
    Ok(())
}
