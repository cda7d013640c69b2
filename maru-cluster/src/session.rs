//! The host's etcd session and the per-pool operations on it.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, Identity,
    PutOptions, TlsOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use tokio::runtime::Runtime;

use crate::ClusterError;

/// Where the cluster is and who this host is in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// etcd endpoints (`http://10.0.0.1:2379`).
    pub endpoints: Vec<String>,
    /// This host's name in the cluster (unique per host).
    pub host: String,
    /// TTL of the host's lease: a host that cannot renew it for this long is taken
    /// for gone by the others, and stops writing to shared pools itself before that.
    pub lease_ttl: Duration,
    /// User name and password, when the etcd cluster has authentication on.
    pub auth: Option<(String, String)>,
    /// Key prefix of everything Maru writes (default `/maru/v1`).
    pub prefix: String,
    /// TLS material, for `https://` endpoints.
    pub tls: Option<Tls>,
}

/// PEM material for TLS to etcd, read by the caller (the daemon reads it while it
/// still has the privileges to): the CA that signed the etcd servers' certificates,
/// and optionally this host's client certificate and key (`--client-cert-auth`).
#[derive(Clone, PartialEq, Eq)]
pub struct Tls {
    /// The CA certificate(s), PEM.
    pub ca: Vec<u8>,
    /// The client certificate chain and its private key, PEM.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Tls")
            .field("ca_bytes", &self.ca.len())
            .field("client_cert", &self.identity.is_some())
            .finish()
    }
}

impl ClusterConfig {
    /// Endpoints with defaults for the rest: 10 s lease, prefix `/maru/v1`.
    pub fn new(endpoints: Vec<String>, host: impl Into<String>) -> ClusterConfig {
        ClusterConfig {
            endpoints,
            host: host.into(),
            lease_ttl: Duration::from_secs(10),
            auth: None,
            prefix: "/maru/v1".into(),
            tls: None,
        }
    }
}

/// How long one etcd request may take before it counts as failed.
const OP_TIMEOUT: Duration = Duration::from_secs(3);

struct Inner {
    cfg: ClusterConfig,
    rt: Runtime,
    client: Client,
    lease: Mutex<i64>,
    /// Whether the lease was renewed recently enough to write.
    live: AtomicBool,
    stop: AtomicBool,
}

/// This host's session in the cluster: a lease kept alive in the background and the
/// host's registration attached to it. Dropping it revokes the lease.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("host", &self.inner.cfg.host)
            .field("endpoints", &self.inner.cfg.endpoints)
            .finish()
    }
}

/// The outcome of a publish transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publish {
    /// This host won: the key is now its.
    Won,
    /// The key was already published (by any host): first writer wins.
    Exists,
}

/// What etcd says about a pool's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UuidCheck {
    /// This host registered it (the first host to open the pool).
    Registered,
    /// It was registered before and matches.
    Matches,
    /// It was registered with another UUID (a device from another cluster, or the
    /// pool was re-formatted behind the cluster's back).
    Mismatch(String),
}

/// A pending removal of a shared pool's chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// The host that wrote the chunk (and frees its extent).
    pub writer: String,
    /// The chunk's identity on the device: `<record slot>-<publish sequence>`.
    pub id: String,
    /// The hosts that must acknowledge (members when the removal started).
    pub required: Vec<String>,
    /// The hosts that did.
    pub acked: Vec<String>,
}

/// A published key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// A change of a pool's published keys, from the watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyEvent {
    /// A key was published: its name and value.
    Put(Vec<u8>, Vec<u8>),
    /// A key was removed.
    Delete(Vec<u8>),
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &[u8]) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    text.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
        .collect()
}

impl Session {
    /// Connects to etcd, takes a lease for this host and registers it; a background
    /// task renews the lease every third of its TTL.
    pub fn connect(cfg: ClusterConfig) -> Result<Session, ClusterError> {
        Session::open(cfg, true)
    }

    /// Connects to etcd to look (and to forget hosts), without joining: no lease,
    /// no registration; writes to shared pools are refused.
    pub fn observe(cfg: ClusterConfig) -> Result<Session, ClusterError> {
        Session::open(cfg, false)
    }

    fn open(cfg: ClusterConfig, join: bool) -> Result<Session, ClusterError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("maru-etcd")
            .enable_all()
            .build()
            .map_err(ClusterError::Runtime)?;
        let endpoints = cfg.endpoints.join(",");
        let err = |what: &str| {
            let endpoints = endpoints.clone();
            let what = what.to_string();
            move |source| ClusterError::Connect {
                endpoints,
                what,
                source,
            }
        };
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(OP_TIMEOUT)
            .with_timeout(OP_TIMEOUT)
            .with_keep_alive(Duration::from_secs(2), OP_TIMEOUT)
            .with_keep_alive_while_idle(true);
        if let Some((user, password)) = &cfg.auth {
            opts = opts.with_user(user.clone(), password.clone());
        }
        if let Some(tls) = &cfg.tls {
            let mut t = TlsOptions::new().ca_certificate(Certificate::from_pem(&tls.ca));
            if let Some((cert, key)) = &tls.identity {
                t = t.identity(Identity::from_pem(cert, key));
            }
            opts = opts.with_tls(t);
        }
        let client = rt
            .block_on(Client::connect(cfg.endpoints.clone(), Some(opts)))
            .map_err(err("cannot connect"))?;
        let ttl = cfg.lease_ttl.as_secs().max(2) as i64;
        let mut c = client.clone();
        let lease = if join {
            rt.block_on(c.lease_grant(ttl, None))
                .map_err(err("cannot take a lease"))?
                .id()
        } else {
            // One request, so that a refused connection (TLS) shows here, explained.
            rt.block_on(c.get(cfg.prefix.clone(), None))
                .map_err(err("cannot read from etcd"))?;
            0
        };
        let inner = Arc::new(Inner {
            cfg,
            rt,
            client,
            lease: Mutex::new(lease),
            live: AtomicBool::new(join),
            stop: AtomicBool::new(false),
        });
        let session = Session { inner };
        if !join {
            return Ok(session);
        }
        session.register()?;
        let keeper = Arc::downgrade(&session.inner);
        session.inner.rt.spawn(keep_alive(keeper));
        Ok(session)
    }

    fn endpoints(&self) -> String {
        self.inner.cfg.endpoints.join(",")
    }

    fn etcd(&self, what: impl Into<String>) -> impl FnOnce(etcd_client::Error) -> ClusterError {
        let endpoints = self.endpoints();
        let what = what.into();
        move |source| ClusterError::Etcd {
            endpoints,
            what,
            source,
        }
    }

    /// Runs one request with the operation timeout.
    fn run<T>(
        &self,
        what: &str,
        f: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, ClusterError> {
        let timed = async { tokio::time::timeout(OP_TIMEOUT, f).await };
        match self.inner.rt.block_on(timed) {
            Ok(r) => r.map_err(self.etcd(what)),
            Err(_) => Err(self.etcd(what)(etcd_client::Error::InvalidArgs(format!(
                "no answer within {OP_TIMEOUT:?}"
            )))),
        }
    }

    /// Registers `hosts/<host>` on the current lease; refused if a live daemon
    /// keeps that name. A daemon of this host that crashed leaves its registration
    /// until its lease expires: wait for that (up to the TTL and a bit) before
    /// giving up.
    fn register(&self) -> Result<(), ClusterError> {
        let deadline = Instant::now() + self.inner.cfg.lease_ttl + Duration::from_secs(2);
        loop {
            match self.try_register() {
                Err(ClusterError::HostTaken { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(250));
                }
                other => return other,
            }
        }
    }

    /// Ends this host's session now (revokes its lease: other hosts see it leave at
    /// once instead of after the TTL).
    pub fn leave(&self) {
        self.inner.stop.store(true, Ordering::Release);
        let lease = self.lease();
        let mut c = self.inner.client.clone();
        let _ = self.run("cannot revoke the lease", c.lease_revoke(lease));
    }

    fn try_register(&self) -> Result<(), ClusterError> {
        let key = format!("{}/hosts/{}", self.inner.cfg.prefix, self.inner.cfg.host);
        let value = format!("pid={};lease={:x}", std::process::id(), self.lease());
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.clone(),
                value,
                Some(PutOptions::new().with_lease(self.lease())),
            )])
            .or_else([TxnOp::get(key.clone(), None)]);
        let mut c = self.inner.client.clone();
        let resp = self.run("cannot register this host", c.txn(txn))?;
        if resp.succeeded() {
            // Membership outlives the lease: a host that went away may still map
            // chunks (partitioned, not dead) until it comes back or is forgotten.
            let member = format!("{}/members/{}", self.inner.cfg.prefix, self.inner.cfg.host);
            let mut c = self.inner.client.clone();
            self.run(
                "cannot record this host as a member",
                c.put(member, format!("pid={}", std::process::id()), None),
            )?;
            return Ok(());
        }
        let holder = resp
            .op_responses()
            .into_iter()
            .find_map(|r| match r {
                TxnOpResponse::Get(g) => g
                    .kvs()
                    .first()
                    .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()),
                _ => None,
            })
            .unwrap_or_default();
        Err(ClusterError::HostTaken {
            host: self.inner.cfg.host.clone(),
            holder,
        })
    }

    fn lease(&self) -> i64 {
        *self.inner.lease.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This host's name.
    pub fn host(&self) -> &str {
        &self.inner.cfg.host
    }

    /// `Ok` while the lease was renewed recently enough for this host to write to
    /// shared pools; the error says why not.
    pub fn check_live(&self) -> Result<(), ClusterError> {
        if self.inner.live.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(ClusterError::NoSession {
                endpoints: self.endpoints(),
            })
        }
    }

    /// The hosts registered now (their leases alive), by name.
    pub fn hosts(&self) -> Result<Vec<String>, ClusterError> {
        self.names_under("hosts", "cannot list the hosts")
    }

    /// Every host that ever joined and was not forgotten (live or not).
    pub fn members(&self) -> Result<Vec<String>, ClusterError> {
        self.names_under("members", "cannot list the members")
    }

    /// The last path components of the keys under `<prefix>/<dir>/`.
    fn names_under(&self, dir: &str, what: &str) -> Result<Vec<String>, ClusterError> {
        let prefix = format!("{}/{dir}/", self.inner.cfg.prefix);
        let mut c = self.inner.client.clone();
        let resp = self.run(
            what,
            c.get(prefix.clone(), Some(GetOptions::new().with_prefix())),
        )?;
        Ok(resp
            .kvs()
            .iter()
            .map(|kv| String::from_utf8_lossy(&kv.key()[prefix.len()..]).into_owned())
            .collect())
    }

    /// Declares host `host` gone for good: it no longer holds up the reuse of
    /// removed chunks' extents. Refused while it is live (registered).
    pub fn forget(&self, host: &str) -> Result<bool, ClusterError> {
        if self.hosts()?.iter().any(|h| h == host) {
            return Err(ClusterError::HostLive {
                host: host.to_string(),
            });
        }
        let key = format!("{}/members/{host}", self.inner.cfg.prefix);
        let mut c = self.inner.client.clone();
        let resp = self.run("cannot forget the host", c.delete(key, None))?;
        Ok(resp.deleted() > 0)
    }

    /// The operations on shared pool `pool`.
    pub fn pool(&self, pool: &str) -> PoolLink {
        PoolLink {
            session: self.clone(),
            base: format!("{}/pools/{pool}", self.inner.cfg.prefix),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let lease = *self.lease.lock().unwrap_or_else(|e| e.into_inner());
        if lease == 0 {
            return;
        }
        let mut c = self.client.clone();
        // A clean stop frees the host's name at once instead of after the TTL.
        let _ = self.rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(1), c.lease_revoke(lease)).await
        });
    }
}

/// Renews the lease every third of its TTL. `live` turns false when no renewal
/// succeeded for two thirds of the TTL (before the server lets the lease expire),
/// and true again after a renewal; an expired lease is replaced by a new one and
/// the host registered again.
async fn keep_alive(weak: std::sync::Weak<Inner>) {
    let Some(inner) = weak.upgrade() else { return };
    let ttl = inner.cfg.lease_ttl.max(Duration::from_secs(2));
    drop(inner);
    let period = ttl / 3;
    let mut last_ok = Instant::now();
    let mut last_err: Option<String> = None;
    loop {
        tokio::time::sleep(period).await;
        let Some(inner) = weak.upgrade() else { return };
        if inner.stop.load(Ordering::Acquire) {
            return;
        }
        let lease = *inner.lease.lock().unwrap_or_else(|e| e.into_inner());
        let mut c = inner.client.clone();
        let renewed = tokio::time::timeout(OP_TIMEOUT, async {
            let (mut keeper, mut stream) = c.lease_keep_alive(lease).await?;
            keeper.keep_alive().await?;
            Ok::<_, etcd_client::Error>(stream.message().await?.map(|r| r.ttl()))
        })
        .await;
        // An expired lease shows as a 0 TTL or as "lease not found".
        let renewed = match renewed {
            Ok(Err(e)) if e.to_string().contains("lease not found") => Ok(Ok(Some(0))),
            other => other,
        };
        match renewed {
            Ok(Ok(Some(t))) if t > 0 => {
                last_ok = Instant::now();
                last_err = None;
                if !inner.live.swap(true, Ordering::AcqRel) {
                    log::info!(
                        "etcd session of host {} renewed: shared pools accept writes again",
                        inner.cfg.host
                    );
                }
            }
            Ok(Ok(_)) => {
                // The lease expired on the server: take a new one and register again.
                log::warn!(
                    "etcd lease of host {} expired; taking a new one",
                    inner.cfg.host
                );
                let mut c = inner.client.clone();
                let ttl_s = ttl.as_secs() as i64;
                if let Ok(Ok(g)) =
                    tokio::time::timeout(OP_TIMEOUT, c.lease_grant(ttl_s, None)).await
                {
                    *inner.lease.lock().unwrap_or_else(|e| e.into_inner()) = g.id();
                    let key = format!("{}/hosts/{}", inner.cfg.prefix, inner.cfg.host);
                    let value = format!("pid={};lease={:x}", std::process::id(), g.id());
                    let put = c.put(key, value, Some(PutOptions::new().with_lease(g.id())));
                    if matches!(tokio::time::timeout(OP_TIMEOUT, put).await, Ok(Ok(_))) {
                        last_ok = Instant::now();
                        inner.live.store(true, Ordering::Release);
                        log::info!("host {} registered again in etcd", inner.cfg.host);
                    }
                }
            }
            Ok(Err(e)) => {
                let e = e.to_string();
                if last_err.as_deref() != Some(e.as_str()) {
                    log::warn!("etcd lease renewal of host {} failed: {e}", inner.cfg.host);
                    last_err = Some(e);
                }
            }
            Err(_) => {
                if last_err.as_deref() != Some("timeout") {
                    log::warn!(
                        "etcd lease renewal of host {} got no answer within {OP_TIMEOUT:?}",
                        inner.cfg.host
                    );
                    last_err = Some("timeout".into());
                }
            }
        }
        if last_ok.elapsed() > ttl * 2 / 3 && inner.live.swap(false, Ordering::AcqRel) {
            log::error!(
                "host {} cannot renew its etcd lease (etcd at {} unreachable for {:?}): shared \
                 pools refuse creates and publishes until it can",
                inner.cfg.host,
                inner.cfg.endpoints.join(","),
                last_ok.elapsed()
            );
        }
    }
}

/// The cluster operations on one shared pool.
#[derive(Clone, Debug)]
pub struct PoolLink {
    session: Session,
    base: String,
}

impl PoolLink {
    /// The host session this link uses.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Registers the pool's header UUID if the cluster has none yet, else compares.
    pub fn check_uuid(&self, uuid_hex: &str) -> Result<UuidCheck, ClusterError> {
        let key = format!("{}/uuid", self.base);
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.clone(), uuid_hex, None)])
            .or_else([TxnOp::get(key.clone(), None)]);
        let mut c = self.session.inner.client.clone();
        let resp = self
            .session
            .run("cannot register the pool identity", c.txn(txn))?;
        if resp.succeeded() {
            return Ok(UuidCheck::Registered);
        }
        let have = resp
            .op_responses()
            .into_iter()
            .find_map(|r| match r {
                TxnOpResponse::Get(g) => g
                    .kvs()
                    .first()
                    .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()),
                _ => None,
            })
            .unwrap_or_default();
        Ok(if have == uuid_hex {
            UuidCheck::Matches
        } else {
            UuidCheck::Mismatch(have)
        })
    }

    /// The UUID the cluster records for the pool, if any.
    pub fn uuid(&self) -> Result<Option<String>, ClusterError> {
        let mut c = self.session.inner.client.clone();
        let resp = self.session.run(
            "cannot read the pool identity",
            c.get(format!("{}/uuid", self.base), None),
        )?;
        Ok(resp
            .kvs()
            .first()
            .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()))
    }

    /// Every arena grant: `(arena, host)`.
    pub fn arenas(&self) -> Result<Vec<(u32, String)>, ClusterError> {
        let prefix = format!("{}/arenas/", self.base);
        let mut c = self.session.inner.client.clone();
        let resp = self.session.run(
            "cannot list the arena grants",
            c.get(prefix.clone(), Some(GetOptions::new().with_prefix())),
        )?;
        Ok(resp
            .kvs()
            .iter()
            .filter_map(|kv| {
                let n = std::str::from_utf8(&kv.key()[prefix.len()..])
                    .ok()?
                    .parse()
                    .ok()?;
                Some((n, String::from_utf8_lossy(kv.value()).into_owned()))
            })
            .collect())
    }

    /// Claims arena `n` for this host; false if another host has it.
    pub fn claim_arena(&self, n: u32) -> Result<bool, ClusterError> {
        self.session.check_live()?;
        let key = format!("{}/arenas/{n}", self.base);
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, self.session.host(), None)]);
        let mut c = self.session.inner.client.clone();
        Ok(self
            .session
            .run("cannot claim an arena", c.txn(txn))?
            .succeeded())
    }

    /// Publishes `key` with `value` unless any host published it first.
    pub fn publish(&self, key: &[u8], value: &[u8]) -> Result<Publish, ClusterError> {
        self.session.check_live()?;
        let k = format!("{}/keys/{}", self.base, hex(key));
        let txn = Txn::new()
            .when([Compare::create_revision(k.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(k, value, None)]);
        let mut c = self.session.inner.client.clone();
        let won = self.session.run("cannot publish", c.txn(txn))?.succeeded();
        Ok(if won { Publish::Won } else { Publish::Exists })
    }

    /// The value of published `key`, if any.
    pub fn key(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ClusterError> {
        let k = format!("{}/keys/{}", self.base, hex(key));
        let mut c = self.session.inner.client.clone();
        let resp = self.session.run("cannot read a key", c.get(k, None))?;
        Ok(resp.kvs().first().map(|kv| kv.value().to_vec()))
    }

    /// Removes a published key (its writer's host does this).
    pub fn remove(&self, key: &[u8]) -> Result<(), ClusterError> {
        let k = format!("{}/keys/{}", self.base, hex(key));
        let mut c = self.session.inner.client.clone();
        self.session.run("cannot remove a key", c.delete(k, None))?;
        Ok(())
    }

    /// Starts the removal of this host's chunk `id` (its record and sequence): the
    /// hosts in `required` must acknowledge before its extent is reused.
    pub fn start_removal(&self, id: &str, required: &[String]) -> Result<(), ClusterError> {
        let key = format!("{}/removing/{}/{id}", self.base, self.session.host());
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, required.join(","), None)]);
        let mut c = self.session.inner.client.clone();
        self.session.run("cannot record a removal", c.txn(txn))?;
        Ok(())
    }

    /// Every pending removal: `(writer host, id, hosts required, hosts that acked)`.
    pub fn removals(&self) -> Result<Vec<Removal>, ClusterError> {
        let list = |what: &str, prefix: String| {
            let mut c = self.session.inner.client.clone();
            self.session
                .run(
                    what,
                    c.get(prefix.clone(), Some(GetOptions::new().with_prefix())),
                )
                .map(|r| {
                    r.kvs()
                        .iter()
                        .map(|kv| {
                            (
                                String::from_utf8_lossy(&kv.key()[prefix.len()..]).into_owned(),
                                String::from_utf8_lossy(kv.value()).into_owned(),
                            )
                        })
                        .collect::<Vec<_>>()
                })
        };
        let pending = list("cannot list removals", format!("{}/removing/", self.base))?;
        let acks = list(
            "cannot list acknowledgements",
            format!("{}/acks/", self.base),
        )?;
        Ok(pending
            .into_iter()
            .filter_map(|(path, required)| {
                let (writer, id) = path.split_once('/')?;
                let mine = format!("{writer}/{id}/");
                Some(Removal {
                    writer: writer.to_string(),
                    id: id.to_string(),
                    required: required
                        .split(',')
                        .filter(|h| !h.is_empty())
                        .map(str::to_string)
                        .collect(),
                    acked: acks
                        .iter()
                        .filter_map(|(k, _)| k.strip_prefix(&mine).map(str::to_string))
                        .collect(),
                })
            })
            .collect())
    }

    /// Acknowledges that this host let go of `writer`'s removed chunk `id`.
    pub fn ack(&self, writer: &str, id: &str) -> Result<(), ClusterError> {
        let key = format!("{}/acks/{writer}/{id}/{}", self.base, self.session.host());
        let mut c = self.session.inner.client.clone();
        self.session
            .run("cannot acknowledge a removal", c.put(key, "", None))?;
        Ok(())
    }

    /// Ends this host's removal `id` (its extent was freed).
    pub fn finish_removal(&self, id: &str) -> Result<(), ClusterError> {
        let me = self.session.host();
        let mut c = self.session.inner.client.clone();
        self.session.run(
            "cannot end a removal",
            c.delete(format!("{}/removing/{me}/{id}", self.base), None),
        )?;
        let mut c = self.session.inner.client.clone();
        self.session.run(
            "cannot clear acknowledgements",
            c.delete(
                format!("{}/acks/{me}/{id}/", self.base),
                Some(etcd_client::DeleteOptions::new().with_prefix()),
            ),
        )?;
        Ok(())
    }

    /// Every published key with its value, and the revision to watch from.
    pub fn keys(&self) -> Result<(Vec<KeyValue>, i64), ClusterError> {
        let prefix = format!("{}/keys/", self.base);
        let mut c = self.session.inner.client.clone();
        let resp = self.session.run(
            "cannot list the published keys",
            c.get(prefix.clone(), Some(GetOptions::new().with_prefix())),
        )?;
        let rev = resp.header().map_or(0, |h| h.revision());
        let keys = resp
            .kvs()
            .iter()
            .filter_map(|kv| Some((unhex(&kv.key()[prefix.len()..])?, kv.value().to_vec())))
            .collect();
        Ok((keys, rev))
    }

    /// Watches the pool's keys from revision `from` and calls `on_event` for every
    /// change, in order, until the session is dropped. A broken watch is
    /// re-established (from the last revision seen). `on_event` runs on a thread of
    /// its own, never on the client's runtime: it may block (take the filesystem's
    /// lock) while a filesystem thread holding that lock waits for etcd.
    pub fn watch_keys(
        &self,
        from: i64,
        on_event: impl Fn(KeyEvent) + Send + 'static,
    ) -> std::io::Result<()> {
        let (tx, rx) = std::sync::mpsc::channel::<KeyEvent>();
        std::thread::Builder::new()
            .name("maru-etcd-watch".into())
            .spawn(move || {
                while let Ok(ev) = rx.recv() {
                    on_event(ev);
                }
            })?;
        let prefix = format!("{}/keys/", self.base);
        let inner = Arc::clone(&self.session.inner);
        let weak = Arc::downgrade(&inner);
        drop(inner);
        let rt = self.session.inner.rt.handle().clone();
        rt.spawn(async move {
            let mut next = from;
            loop {
                let Some(inner) = weak.upgrade() else { return };
                if inner.stop.load(Ordering::Acquire) {
                    return;
                }
                let mut c = inner.client.clone();
                drop(inner);
                let opts = WatchOptions::new().with_prefix().with_start_revision(next);
                let Ok(mut stream) = c.watch(prefix.clone(), Some(opts)).await else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                while let Ok(Some(resp)) = stream.message().await {
                    for ev in resp.events() {
                        let Some(kv) = ev.kv() else { continue };
                        next = next.max(kv.mod_revision() + 1);
                        let Some(key) = unhex(&kv.key()[prefix.len()..]) else {
                            continue;
                        };
                        let ev = match ev.event_type() {
                            EventType::Put => KeyEvent::Put(key, kv.value().to_vec()),
                            EventType::Delete => KeyEvent::Delete(key),
                        };
                        if tx.send(ev).is_err() {
                            return;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_hex_in_etcd_and_come_back() {
        let key = b"a/b\x00\xffc".to_vec();
        assert_eq!(unhex(hex(&key).as_bytes()), Some(key));
        assert_eq!(unhex(b"abc"), None);
        assert_eq!(unhex(b"zz"), None);
    }
}
