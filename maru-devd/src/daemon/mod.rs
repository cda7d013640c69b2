//! `maru-devd run`: set up the pools, mount maru-fs, drop privileges, then react to signals,
//! device events and control requests until SIGTERM/SIGINT.

pub mod control;
pub(crate) mod events;
mod hotplug;
mod limits;
pub mod lock;
mod notify;
mod privileges;
pub(crate) mod progress;
mod signals;

use crate::check;
use crate::config;
use crate::exit::{Code, WithCode};
use crate::host::Host;
use crate::mounts;
use crate::plan::{backing_dir, DevdaxPlan, Plan, PoolPlan};
use crate::reconfigure;
use crate::status::{PoolReport, StatusReport};
use crate::tmpfs;
use anyhow::Context;
use control::{Peer, Reply, Request};
use events::{Action, DeviceEvent, Event};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// How much more time systemd is asked for before each piece of start work that can take
/// long (reconfiguring devices, opening and verifying pools, adopting their chunks).
const START_EXTENSION: Duration = Duration::from_secs(120);
/// File name, in the runtime directory, of the socket that lends tmpfs pools' chunk
/// descriptors in batches (`maru_proto::lend`; advertised in each such pool's
/// `user.maru.lend.socket` xattr).
pub const LEND_SOCKET: &str = "lend.sock";

/// Arguments of `maru-devd run`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Examples:
  maru-devd run
      No config: one pool `default` on NUMA node 0, min(1 GiB, 10% of node 0), mode 1777,
      mounted at /mnt/maru. Try it: ls -l /mnt/maru/default
  maru-devd run --config /etc/maru/maru.yaml
      The pools of a config file (check it first: maru-devd check-config FILE).
  MARU_RUNTIME_DIR=/tmp/maru-run maru-devd run --config test.yaml
      A second, independent daemon (own socket and pool tmpfs mounts).

Runs in the foreground and logs to stderr (level: --log-level, else RUST_LOG, else info;
timestamped lines, or journald priorities under systemd). SIGTERM or SIGINT unmounts and exits (pool
contents stay in their tmpfs under <runtime-dir>/pools and are adopted by the next start);
SIGHUP re-reads the config. See `maru-devd status`.")]
pub struct RunArgs {
    /// YAML config file; without it the embedded default pool is served.
    #[arg(long, short, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Root-only directory for the control socket and the pools' tmpfs mounts.
    #[arg(long, env = "MARU_RUNTIME_DIR", default_value = crate::RUNTIME_DIR, value_name = "DIR")]
    pub runtime_dir: PathBuf,
    /// Directory standing for /sys (tests: a copied snapshot; reconfiguration writes go there).
    #[arg(long, value_name = "DIR")]
    pub sysfs_root: Option<PathBuf>,
    /// Accept `inject` requests on the control socket (fake device events, for tests).
    #[arg(long)]
    pub allow_inject: bool,
    /// Log debug messages too (same as `--log-level debug`).
    #[arg(long, short, conflicts_with = "log_level")]
    pub verbose: bool,
    /// Lowest level logged; overrides `RUST_LOG` (which also takes per-module filters such as
    /// `maru_fs=debug,info`). Default: `RUST_LOG`, else `info`.
    #[arg(long, value_enum, value_name = "LEVEL")]
    pub log_level: Option<crate::logging::LogLevel>,
    /// Take the owner lease of a devdax pool from another host whose heartbeat stood
    /// still for the pool's `lease_timeout` (say so only when that host is gone: powered
    /// off or its daemon stopped). A live holder is never taken over.
    #[arg(long)]
    pub takeover: bool,
}

/// A pool the daemon serves.
struct PoolState {
    plan: PoolPlan,
    backing: PathBuf,
    /// Watched devices that are currently gone.
    missing: BTreeSet<String>,
}

struct Daemon {
    /// This host's cluster session (shared pools); its lease lives as long as this.
    cluster: Option<maru_cluster::Session>,
    /// The `cluster:` section and its TLS material as read at start (a change waits
    /// for a restart).
    cluster_settings: (Option<config::ClusterSpec>, Option<maru_cluster::Tls>),
    args: RunArgs,
    mount: PathBuf,
    control: maru_fs::Control,
    pools: Vec<PoolState>,
    started: Instant,
    last_reload: Vec<String>,
    thp: &'static str,
}

fn fs_pool(
    p: &PoolPlan,
    backing: &Path,
    takeover: bool,
    cluster: Option<&maru_cluster::Session>,
) -> maru_fs::PoolConfig {
    maru_fs::PoolConfig {
        name: p.name.clone(),
        backing: match &p.devdax {
            None => maru_fs::Backing::Dir(backing.to_path_buf()),
            Some(d) => {
                let mut cfg = d.fs_config(
                    takeover,
                    cluster
                        .filter(|_| d.shared)
                        .map(|s| crate::cluster::link(s, &p.name)),
                );
                cfg.progress = Some(progress::hook(&p.name));
                maru_fs::Backing::Devdax(cfg)
            }
        },
        capacity: p.size,
        eviction: p.eviction,
        max_chunk_size: p.max_chunk_size,
        uid: p.uid,
        gid: p.gid,
        mode: p.mode,
        node: match &p.devdax {
            None => Some(p.node),
            Some(d) => d.target_node,
        },
    }
}

/// The plan for `args`: the config file's, or the embedded default's.
fn load_plan(args: &RunArgs, host: &Host) -> anyhow::Result<Plan> {
    match &args.config {
        Some(file) => check::load(file, host, &args.runtime_dir)?.map_err(anyhow::Error::new),
        None => {
            let mem = host.node(0).and_then(|n| n.mem_total).context(
                "the embedded default pool lives on NUMA node 0, but node 0's memory size cannot be read; pass --config",
            )?;
            let cfg = config::embedded(mem);
            if let Some(msg) = mounts::check_mount_point(&cfg.mount, &args.runtime_dir) {
                anyhow::bail!("the embedded default config: {msg}; or pass --config");
            }
            config::validate(&cfg, host).map_err(|d| {
                let msgs: Vec<String> = d.into_iter().map(|d| d.msg).collect();
                anyhow::anyhow!("embedded default config: {}", msgs.join("; "))
            })
        }
    }
}

/// Sets up a pool's tmpfs (mounting or adopting it) and returns its backing directory; for a
/// devdax pool, gives its device node the pool's group and mode and returns the node.
fn setup_backing(runtime_dir: &Path, p: &PoolPlan, thp: &str) -> anyhow::Result<PathBuf> {
    if let Some(d) = &p.devdax {
        setup_devnode(p, d)?;
        return Ok(d.devnode.clone());
    }
    let dir = backing_dir(runtime_dir, &p.name);
    match tmpfs::setup(&dir, &p.name, p.size, p.node, thp)? {
        tmpfs::Setup::Mounted => log::info!(
            "pool {}: tmpfs at {} (size={}, mpol=bind:{}, huge={thp})",
            p.name,
            dir.display(),
            tmpfs::mount_size(p.size),
            p.node
        ),
        tmpfs::Setup::Adopted => log::info!(
            "pool {}: adopted the existing tmpfs at {} (its chunks are kept)",
            p.name,
            dir.display()
        ),
    }
    Ok(dir)
}

/// Gives a devdax pool's device node owner root, the pool's group and mode
/// `0600 | (pool mode & 0060)` (see [`DevdaxPlan::node_mode`]); needs CAP_CHOWN and
/// CAP_FOWNER, so it runs before the privileges are dropped.
fn setup_devnode(p: &PoolPlan, d: &DevdaxPlan) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = DevdaxPlan::node_mode(p.mode);
    std::os::unix::fs::chown(&d.devnode, Some(0), Some(p.gid)).with_context(|| {
        format!(
            "pool {}: cannot give device node {} group {}",
            p.name,
            d.devnode.display(),
            p.gid
        )
    })?;
    std::fs::set_permissions(&d.devnode, std::fs::Permissions::from_mode(mode)).with_context(
        || {
            format!(
                "pool {}: cannot set mode {mode:04o} on device node {}",
                p.name,
                d.devnode.display()
            )
        },
    )?;
    log::info!(
        "pool {}: devdax {} {}; device node {} is uid 0 gid {} mode {mode:04o}",
        p.name,
        d.device,
        d.bytes(),
        d.devnode.display(),
        p.gid
    );
    Ok(())
}

/// Carries out the pools' opt-in `reconfigure_devdax`; true if any pool asked for it (the
/// host then has changed and must be discovered again).
fn reconfigure_devices(plan: &Plan, host: &Host) -> anyhow::Result<bool> {
    let mut any = false;
    for p in &plan.pools {
        let Some(dev) = &p.reconfigure_devdax else {
            continue;
        };
        any = true;
        let out = reconfigure::to_system_ram(host, Path::new("/proc"), dev)
            .with_context(|| format!("pool {}: reconfigure_devdax {dev}", p.name))?;
        log::info!(
            "pool {}: {dev} is system RAM on node {} (rebound: {}, onlined as ZONE_NORMAL: {})",
            p.name,
            p.node,
            out.rebound,
            if out.onlined.is_empty() {
                "none needed".to_string()
            } else {
                out.onlined.join(" ")
            }
        );
    }
    Ok(any)
}

/// Runs the daemon until SIGTERM/SIGINT.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    crate::logging::init(match (args.log_level, args.verbose) {
        (Some(l), _) => Some(l.into()),
        (None, true) => Some(log::LevelFilter::Debug),
        (None, false) => None,
    });
    if !nix::unistd::geteuid().is_root() {
        return Err(anyhow::anyhow!(
            "maru-devd run must run as root: it mounts the pools' tmpfs and the FUSE filesystem and keeps CAP_SYS_ADMIN for FUSE passthrough (try: sudo maru-devd run)"
        ))
        .code(Code::Environment);
    }
    signals::block()?;
    limits::raise_nofile_and_log();
    let mut host = Host::discover(args.sysfs_root.as_deref()).code(Code::Environment)?;
    let mut plan = load_plan(&args, &host).code(Code::Usage)?;
    // Before changing anything: refuse if another daemon serves this runtime directory.
    tmpfs::private_dir(&args.runtime_dir).code(Code::Environment)?;
    // Held until the process exits (the kernel releases it however the daemon dies).
    let lock = lock::acquire(&args.runtime_dir)?;
    log::debug!("holding the daemon lock {}", lock.path().display());
    // Others may reach the control socket (status of their pools) but list nothing.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&args.runtime_dir, std::fs::Permissions::from_mode(0o711))
            .with_context(|| format!("cannot set mode 0711 on {}", args.runtime_dir.display()))
            .code(Code::Environment)?;
    }
    tmpfs::private_dir(&args.runtime_dir.join("pools")).code(Code::Environment)?;
    let listener = control::bind(&args.runtime_dir).code(Code::Environment)?;
    let metrics = match &plan.metrics {
        Some(spec) => Some(crate::metrics::bind(spec)?),
        None => None,
    };
    if plan.pools.iter().any(|p| p.reconfigure_devdax.is_some()) {
        notify::extend_timeout(START_EXTENSION);
    }
    if reconfigure_devices(&plan, &host).code(Code::Environment)? {
        // The devices are system RAM now: plan against the host as it has become (sizes of
        // the new nodes, zones onlined as ZONE_NORMAL).
        host = Host::discover(args.sysfs_root.as_deref()).code(Code::Environment)?;
        plan = load_plan(&args, &host).code(Code::Usage)?;
    }
    for w in plan.warnings() {
        log::warn!("{w}");
    }
    mounts::clean_stale(&plan.mount).code(Code::Environment)?;
    let thp = tmpfs::thp_mode(host.sysfs_root());
    let names: Vec<&str> = plan.pools.iter().map(|p| p.name.as_str()).collect();
    for dir in tmpfs::leftovers(&args.runtime_dir.join("pools"), &names)? {
        log::warn!(
            "{} is the tmpfs of a pool that is no longer configured; it keeps its chunks' memory until `umount {}` (or until a pool of that name is configured again)",
            dir.display(),
            dir.display()
        );
    }
    let mut pools = Vec::new();
    for p in &plan.pools {
        let backing = setup_backing(&args.runtime_dir, p, thp).code(Code::Environment)?;
        pools.push(PoolState {
            plan: p.clone(),
            backing,
            missing: BTreeSet::new(),
        });
    }
    privileges::drop_privileges().code(Code::Environment)?;
    log::info!(
        "privileges dropped: keeping {} only, no_new_privs set",
        privileges::effective().join(", ")
    );
    let any_shared = pools
        .iter()
        .any(|p| p.plan.devdax.as_ref().is_some_and(|d| d.shared));
    let session = match &plan.cluster {
        Some(spec) if any_shared => {
            Some(crate::cluster::connect(spec, plan.cluster_tls.as_ref()).code(Code::Environment)?)
        }
        _ => None,
    };
    let configs = pools
        .iter()
        .map(|p| fs_pool(&p.plan, &p.backing, args.takeover, session.as_ref()))
        .collect();
    // Opening the pools adopts their chunks; a devdax pool is recovered (and verified with
    // `verify_data`) from its device: ask systemd for the time that may take.
    notify::extend_timeout(START_EXTENSION);
    let mount_opts = maru_fs::MountOptions {
        lend_socket: Some(args.runtime_dir.join(LEND_SOCKET)),
        ..maru_fs::MountOptions::new(&plan.mount)
    };
    let mounted = maru_fs::mount(&mount_opts, configs)
        .with_context(|| format!("cannot serve maru-fs on {}", plan.mount.display()))
        .code(Code::Environment)?;
    if let Some(session) = &session {
        let control = mounted.control();
        let mut shared = Vec::new();
        for p in &pools {
            if let Some(rev) = control.cluster_revision(&p.plan.name) {
                crate::cluster::watch(session, control.clone(), &p.plan.name, rev)?;
                shared.push(p.plan.name.clone());
            }
        }
        crate::cluster::reclaim(session, control, shared)?;
    }
    let (tx, rx) = channel();
    spawn("signals", tx.clone(), signals::forward)?;
    spawn("control", tx.clone(), move |tx| {
        control::serve(listener, tx)
    })?;
    spawn("udev", tx.clone(), hotplug::forward)?;
    drop(tx);
    let started = Instant::now();
    if let Some(m) = metrics {
        let at = m.describe();
        m.serve(crate::metrics::Source {
            control: mounted.control(),
            started,
        })?;
        log::info!("metrics: serving {at}");
    }
    let mut d = Daemon {
        cluster: session,
        cluster_settings: (plan.cluster.clone(), plan.cluster_tls.clone()),
        control: mounted.control(),
        mount: plan.mount.clone(),
        pools,
        args,
        started,
        last_reload: Vec::new(),
        thp,
    };
    log::info!(
        "serving {} pool(s) on {}: {}",
        d.pools.len(),
        d.mount.display(),
        d.pools
            .iter()
            .map(|p| p.plan.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    notify::notify(&format!(
        "READY=1\nSTATUS={}",
        notify::status_line(&d.serving_line())
    ));
    // The watchdog is fed by the main loop itself: a stuck loop stops the pings.
    let watchdog = notify::watchdog_interval();
    let mut last_ping = Instant::now();
    if watchdog.is_some() {
        notify::notify("WATCHDOG=1");
    }
    let why = loop {
        let event = match watchdog {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(every) => rx.recv_timeout(every.saturating_sub(last_ping.elapsed())),
        };
        if let Some(every) = watchdog {
            if last_ping.elapsed() >= every {
                notify::notify("WATCHDOG=1");
                last_ping = Instant::now();
            }
        }
        match event {
            Ok(Event::Stop(sig)) => break sig,
            Ok(Event::Reload) => {
                d.reload();
            }
            Ok(Event::Device(ev)) => {
                d.device(&ev);
            }
            Ok(Event::Request(Request::Stop, peer, reply)) => {
                let _ = reply.send(Reply::Done {
                    messages: vec![format!("stopping (pid {})", std::process::id())],
                    exit_code: 0,
                });
                log::info!("stop requested by uid {} on the control socket", peer.uid);
                break "stop requested";
            }
            Ok(Event::Request(req, peer, reply)) => {
                let answer = d.request(req, &peer);
                let _ = reply.send(answer);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break "all event sources closed",
        }
    };
    log::info!("{why}: unmounting {}", d.mount.display());
    notify::notify("STOPPING=1");
    let _ = std::fs::remove_file(control::socket_path(&d.args.runtime_dir));
    if let Err(e) = mounted.unmount() {
        log::warn!("{e}; detaching the mount lazily");
        nix::mount::umount2(&d.mount, nix::mount::MntFlags::MNT_DETACH)
            .with_context(|| format!("cannot unmount {}", d.mount.display()))?;
    }
    if let Some(session) = &d.cluster {
        session.leave();
        log::info!("left the cluster (host {})", session.host());
    }
    log::info!(
        "stopped; pool contents stay in {} for the next start",
        d.args.runtime_dir.join("pools").display()
    );
    Ok(())
}

fn spawn(
    name: &str,
    tx: Sender<Event>,
    f: impl FnOnce(Sender<Event>) + Send + 'static,
) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name(format!("maru-devd-{name}"))
        .spawn(move || f(tx))
        .with_context(|| format!("cannot start the {name} thread"))?;
    Ok(())
}

impl Daemon {
    /// The one-line summary for `STATUS=` and the log.
    fn serving_line(&self) -> String {
        format!(
            "serving {} pool(s) on {}: {}",
            self.pools.len(),
            self.mount.display(),
            self.pools
                .iter()
                .map(|p| p.plan.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    fn request(&mut self, req: Request, peer: &Peer) -> Reply {
        match req {
            Request::Status => Reply::Status(self.status(peer)),
            Request::Reload => {
                let (messages, code) = self.reload();
                Reply::Done {
                    messages,
                    exit_code: code.map_or(0, Code::status),
                }
            }
            // Answered by the main loop, which then stops.
            Request::Stop => Reply::Error {
                message: "stop is handled by the main loop".into(),
            },
            Request::Inject { event } if self.args.allow_inject => {
                let messages = self.device(&event);
                Reply::Done {
                    messages,
                    exit_code: 0,
                }
            }
            Request::Inject { .. } => Reply::Error {
                message: "inject is disabled; start the daemon with --allow-inject (tests only)"
                    .into(),
            },
        }
    }

    /// The status report as `peer` may see it: root everything, anyone else only the pools
    /// [`Peer::sees`] and no reload messages (they may name other pools).
    fn status(&self, peer: &Peer) -> StatusReport {
        let stats = self.control.stats();
        let pools = self
            .pools
            .iter()
            .filter(|p| peer.sees(p.plan.uid, p.plan.gid, p.plan.mode))
            .map(|p| {
                let stats = stats
                    .iter()
                    .find(|s| s.name == p.plan.name)
                    .cloned()
                    .unwrap_or_else(|| maru_fs::PoolStats {
                        name: p.plan.name.clone(),
                        ..Default::default()
                    });
                PoolReport {
                    node: p.plan.node,
                    backing: p.backing.clone(),
                    state: if stats.online { "online" } else { "offline" }.into(),
                    stats,
                    devices: p.plan.devices.clone(),
                    warnings: p.plan.warnings.clone(),
                    cluster: self
                        .cluster
                        .as_ref()
                        .filter(|_| p.plan.devdax.as_ref().is_some_and(|d| d.shared))
                        .map(|session| {
                            let live = session.hosts().ok();
                            let members_down = session.members().ok().map(|m| {
                                m.into_iter()
                                    .filter(|h| live.as_ref().is_some_and(|l| !l.contains(h)))
                                    .collect()
                            });
                            crate::status::PoolCluster {
                                host: session.host().to_string(),
                                live_hosts: live,
                                members_down,
                                quarantined_bytes: self.control.quarantined_bytes(&p.plan.name),
                                removals_waiting: self.control.quarantined(&p.plan.name).len()
                                    as u64,
                            }
                        }),
                }
            })
            .collect();
        StatusReport {
            pid: std::process::id(),
            mount: self.mount.clone(),
            runtime_dir: self.args.runtime_dir.clone(),
            config: self.args.config.clone(),
            uptime_s: self.started.elapsed().as_secs(),
            capabilities: privileges::effective(),
            no_new_privs: privileges::no_new_privs(),
            last_reload: if peer.is_root() {
                self.last_reload.clone()
            } else {
                Vec::new()
            },
            pools,
        }
    }

    /// SIGHUP: new pools appear, removed pools go (unless chunks are pinned), changes to
    /// existing pools wait for a restart. A config with errors changes nothing.
    /// Returns the messages and, when it failed, the exit status that says why (2: the
    /// config was refused, 3: the host refused a change). systemd hears `RELOADING=1` first
    /// and `READY=1` with the outcome in `STATUS=` last.
    fn reload(&mut self) -> (Vec<String>, Option<Code>) {
        notify::reloading();
        let mut notes = Notes::new("reload: ");
        let failed = match self.try_reload(&mut notes) {
            Ok(()) => None,
            Err(e) => {
                notes.warn(format!(
                    "reload failed, the running configuration is kept: {e:#}"
                ));
                Some(crate::exit::code_of(&e))
            }
        };
        if notes.msgs.is_empty() {
            notes.info("no change".into());
        }
        self.last_reload.clone_from(&notes.msgs);
        let outcome = match failed {
            Some(_) => notes.msgs.last().cloned().unwrap_or_default(),
            None => format!(
                "reloaded: {}; {}",
                notes.msgs.join("; "),
                self.serving_line()
            ),
        };
        notify::notify(&format!(
            "READY=1\nSTATUS={}",
            notify::status_line(&outcome)
        ));
        (notes.msgs, failed)
    }

    fn try_reload(&mut self, notes: &mut Notes) -> anyhow::Result<()> {
        if self.args.config.is_none() {
            notes.info("running the embedded default: there is no config file to re-read".into());
            return Ok(());
        }
        let host = Host::discover(self.args.sysfs_root.as_deref()).code(Code::Environment)?;
        let plan = load_plan(&self.args, &host).code(Code::Usage)?;
        if plan.mount != self.mount {
            notes.warn(format!(
                "mount changed to {}: that takes effect after a restart",
                plan.mount.display()
            ));
        }
        if (&plan.cluster, &plan.cluster_tls)
            != (&self.cluster_settings.0, &self.cluster_settings.1)
        {
            notes.warn(
                "the cluster section or its TLS files changed: that takes effect after a restart (etcd's endpoints, credentials and certificates are read at start)".into(),
            );
        }
        let removed: Vec<String> = self
            .pools
            .iter()
            .filter(|p| !plan.pools.iter().any(|n| n.name == p.plan.name))
            .map(|p| p.plan.name.clone())
            .collect();
        for name in removed {
            match self.control.remove_pool(&name) {
                Ok(()) => {
                    let Some(i) = self.pools.iter().position(|p| p.plan.name == name) else {
                        continue;
                    };
                    let gone = self.pools.remove(i);
                    if gone.plan.devdax.is_some() {
                        notes.info(format!(
                            "pool {name} removed; its chunks stay on the device for the next time it is configured"
                        ));
                        continue;
                    }
                    match tmpfs::release(&gone.backing) {
                        Ok(()) => notes.info(format!("pool {name} removed; its memory is freed")),
                        Err(e) => {
                            notes.warn(format!("pool {name} removed from the mount, but {e:#}"))
                        }
                    }
                }
                Err(e) => notes.warn(format!(
                    "pool {name} was removed from the config but is kept: {e}"
                )),
            }
        }
        for p in &plan.pools {
            match self.pools.iter().find(|s| s.plan.name == p.name) {
                Some(cur) => {
                    let changes = cur.plan.changes_to(p);
                    if !changes.is_empty() {
                        notes.warn(format!(
                            "pool {}: changed settings take effect after a restart ({})",
                            p.name,
                            changes.join(", ")
                        ));
                    }
                }
                None => {
                    if p.reconfigure_devdax.is_some() {
                        notes.warn(format!(
                            "pool {} is new and asks for reconfigure_devdax: that needs a restart (the running daemon has dropped the privileges for it)",
                            p.name
                        ));
                        continue;
                    }
                    if p.devdax.is_some() {
                        notes.warn(format!(
                            "pool {} is a new devdax pool: that needs a restart (setting its device node's group and mode needs privileges the running daemon has dropped)",
                            p.name
                        ));
                        continue;
                    }
                    let backing = setup_backing(&self.args.runtime_dir, p, self.thp)
                        .code(Code::Environment)?;
                    self.control
                        .add_pool(fs_pool(p, &backing, false, None))
                        .with_context(|| format!("cannot add pool {}", p.name))
                        .code(Code::Environment)?;
                    notes.info(format!(
                        "pool {} added on node {} ({} bytes)",
                        p.name, p.node, p.size
                    ));
                    self.pools.push(PoolState {
                        plan: p.clone(),
                        backing,
                        missing: BTreeSet::new(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Hotplug: a pool whose device goes away turns offline, and back online when every one of
    /// its devices has returned.
    fn device(&mut self, ev: &DeviceEvent) -> Vec<String> {
        let mut notes = Notes::new("");
        for p in &mut self.pools {
            let watched = p.plan.devices.contains(&ev.sysname);
            // A devdax pool depends on its devices only, not on a node's memory.
            if !watched && (p.plan.devdax.is_some() || ev.node != Some(p.plan.node)) {
                continue;
            }
            let name = format!("{}/{}", ev.subsystem, ev.sysname);
            let changed = match ev.action {
                Action::Remove => p.missing.insert(name),
                Action::Add => p.missing.remove(&name),
                Action::Other => false,
            };
            if !changed {
                continue;
            }
            let (online, reason) = if p.missing.is_empty() {
                (true, None)
            } else {
                let list: Vec<&str> = p.missing.iter().map(String::as_str).collect();
                (false, Some(format!("device gone: {}", list.join(", "))))
            };
            match self
                .control
                .set_online(&p.plan.name, online, reason.clone())
            {
                Ok(()) if online => notes.info(format!("pool {} is online again", p.plan.name)),
                Ok(()) => notes.warn(format!(
                    "pool {} is offline: {}",
                    p.plan.name,
                    reason.unwrap_or_default()
                )),
                Err(e) => notes.warn(format!(
                    "pool {}: cannot change its state: {e}",
                    p.plan.name
                )),
            }
        }
        if notes.msgs.is_empty() {
            // Not logged: udev reports many devices no pool depends on.
            notes
                .msgs
                .push(format!("{}/{}: no pool affected", ev.subsystem, ev.sysname));
        }
        notes.msgs
    }
}

/// What a reload or a device event did: messages for the operator, each logged once as it
/// is recorded (`info` for what was done, `warning` for what was refused or went wrong) and
/// sent back to a control-socket client.
struct Notes {
    msgs: Vec<String>,
    prefix: &'static str,
}

impl Notes {
    /// No messages yet; each is logged with `prefix` (`"reload: "`).
    fn new(prefix: &'static str) -> Notes {
        Notes {
            msgs: Vec::new(),
            prefix,
        }
    }

    fn info(&mut self, msg: String) {
        log::info!("{}{msg}", self.prefix);
        self.msgs.push(msg);
    }

    fn warn(&mut self, msg: String) {
        log::warn!("{}{msg}", self.prefix);
        self.msgs.push(msg);
    }
}
