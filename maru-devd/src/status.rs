//! `maru-devd status`: asks the running daemon over its control socket and prints the answer.

use crate::daemon::control::{request, Reply, Request};
use crate::units::human;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Arguments of `maru-devd status`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Examples:
  maru-devd status            pools, state, capacity, usage, counters, capabilities
  maru-devd status --json     the same as one JSON object (for scripts and monitoring)

It talks to the daemon through <runtime-dir>/control.sock (default /run/maru/control.sock).
Root sees every pool; anyone else sees the pools they own, whose group they are in, or
that grant others access (mode o+...).")]
pub struct StatusArgs {
    /// Print the daemon's JSON report instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Runtime directory of the daemon to ask.
    #[arg(long, env = "MARU_RUNTIME_DIR", default_value = crate::RUNTIME_DIR, value_name = "DIR")]
    pub runtime_dir: PathBuf,
}

/// What the daemon reports about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    /// Daemon process id.
    pub pid: u32,
    /// Mount point.
    pub mount: PathBuf,
    /// Runtime directory.
    pub runtime_dir: PathBuf,
    /// Config file, or `None` for the embedded default.
    pub config: Option<PathBuf>,
    /// Seconds since the daemon started.
    pub uptime_s: u64,
    /// Effective capabilities of the daemon.
    pub capabilities: Vec<String>,
    /// Whether no_new_privs is set.
    pub no_new_privs: bool,
    /// What the last reload did.
    pub last_reload: Vec<String>,
    /// One entry per pool.
    pub pools: Vec<PoolReport>,
}

/// One pool in the status report: maru-fs's statistics of the pool (flattened into the
/// JSON object: `name`, `capacity`, `used_bytes`, counters, `errors`...) and what the
/// daemon knows about it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PoolReport {
    /// The pool's occupancy and counters since the mount.
    #[serde(flatten)]
    pub stats: maru_fs::PoolStats,
    /// NUMA node of its pages.
    pub node: u32,
    /// Backing tmpfs directory.
    pub backing: PathBuf,
    /// `online`, or `offline` (the same as `online`, in words).
    pub state: String,
    /// Devices whose removal takes the pool offline.
    pub devices: Vec<String>,
    /// What the plan warned about: `node: auto` fell back to node 0, memory in ZONE_MOVABLE.
    pub warnings: Vec<String>,
    /// For a shared pool: its cluster state as this host sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<PoolCluster>,
}

/// A shared pool's cluster state in the status report.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PoolCluster {
    /// This host's name in the cluster.
    pub host: String,
    /// Hosts whose daemons hold a live session (`None`: etcd did not answer).
    pub live_hosts: Option<Vec<String>>,
    /// Members (joined, not forgotten) that are not live.
    pub members_down: Option<Vec<String>>,
    /// Bytes of this host's removed chunks waiting for other hosts to let go.
    pub quarantined_bytes: u64,
    /// This host's removed chunks waiting for other hosts.
    pub removals_waiting: u64,
}

/// Runs the command.
pub fn run(args: &StatusArgs) -> anyhow::Result<()> {
    let report = match request(&args.runtime_dir, &Request::Status)? {
        Reply::Status(r) => r,
        Reply::Error { message } => {
            return Err(crate::exit::coded(
                crate::exit::Code::Environment,
                anyhow::anyhow!("maru-devd refused: {message}"),
            ))
        }
        Reply::Done { .. } => anyhow::bail!("maru-devd gave an unexpected answer to status"),
    };
    if args.json {
        crate::output::stdout(&format!("{}\n", serde_json::to_string_pretty(&report)?))
    } else {
        crate::output::stdout(&render(&report))
    }
}

fn render(r: &StatusReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let config = r.config.as_ref().map_or_else(
        || "embedded default".to_string(),
        |p| p.display().to_string(),
    );
    let _ = writeln!(
        s,
        "maru-devd pid {} up {}s, mount {}, config {config}",
        r.pid,
        r.uptime_s,
        r.mount.display()
    );
    let _ = writeln!(
        s,
        "capabilities: {} (no_new_privs: {})",
        if r.capabilities.is_empty() {
            "none".to_string()
        } else {
            r.capabilities.join(", ")
        },
        if r.no_new_privs { "yes" } else { "no" }
    );
    for p in &r.pools {
        let st = &p.stats;
        let state = match &st.offline_reason {
            Some(why) => format!("{} ({why})", p.state),
            None => p.state.clone(),
        };
        let _ = writeln!(
            s,
            "pool {} [{state}] node {}, backing {}",
            st.name,
            p.node,
            p.backing.display()
        );
        let _ = writeln!(s, "  capacity {}", human(st.capacity));
        let _ = writeln!(s, "  used     {}", human(st.used_bytes));
        let _ = writeln!(s, "  pinned   {}", human(st.pinned_bytes));
        let _ = writeln!(
            s,
            "  chunks   {} published, {} staging; creates {}, publishes {}, lookups {}, hits {}, evictions {}",
            st.published_chunks, st.staging_chunks, st.creates, st.publishes, st.lookups, st.hits, st.evictions
        );
        let _ = writeln!(
            s,
            "  daemon data requests: {} read, {} write (0 = zero-copy passthrough)",
            st.read_requests, st.write_requests
        );
        if !st.errors.is_empty() {
            let errors: Vec<String> = st.errors.iter().map(|(e, n)| format!("{e} {n}")).collect();
            let _ = writeln!(s, "  errors   {}", errors.join(", "));
        }
        if let Some(c) = &p.cluster {
            let list = |v: &Option<Vec<String>>| match v {
                None => "(etcd did not answer)".to_string(),
                Some(v) if v.is_empty() => "none".to_string(),
                Some(v) => v.join(", "),
            };
            let _ = writeln!(
                s,
                "  shared as host {}: hosts live {}; members down {}; {} removal(s) waiting, {} quarantined",
                c.host,
                list(&c.live_hosts),
                list(&c.members_down),
                c.removals_waiting,
                human(c.quarantined_bytes)
            );
        }
        for w in &p.warnings {
            let _ = writeln!(s, "  warning: {w}");
        }
    }
    for m in &r.last_reload {
        let _ = writeln!(s, "last reload: {m}");
    }
    s
}
