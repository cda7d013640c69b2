//! `maru-devd cluster status | forget`: look at the cluster shared pools are
//! coordinated through, and declare a host gone for good.

use crate::config::{Source, SourceSpec};
use crate::output;
use anyhow::Context;
use maru_cluster::Session;
use std::path::PathBuf;

/// Arguments of `maru-devd cluster`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Examples:
  maru-devd cluster status -c /etc/maru/maru.yaml
      Live hosts, members, and per shared pool: identity, arenas per host, keys,
      removals waiting for hosts to let go.
  maru-devd cluster forget node-c -c /etc/maru/maru.yaml
      node-c is gone for good (powered off, replaced): removed chunks no longer wait
      for it. Refused while node-c's daemon is live.

Reads the `cluster:` section of the config; connects to etcd without joining. See
docs/multihost.md.")]
pub struct ClusterArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ClusterCommand,
}

/// The cluster verbs.
#[derive(Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// Show live hosts, members and each shared pool's cluster state.
    Status {
        /// The YAML config file with the `cluster:` section.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Declare HOST gone for good, so removed chunks stop waiting for it.
    Forget {
        /// The host's name in the cluster.
        host: String,
        /// The YAML config file with the `cluster:` section.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
}

fn observe(config: &std::path::Path) -> anyhow::Result<(Session, Vec<String>)> {
    let cfg = Source::read(config)?.parse().map_err(anyhow::Error::new)?;
    let Some(spec) = cfg.cluster else {
        anyhow::bail!(
            "{} has no `cluster:` section: there is no cluster to look at",
            config.display()
        );
    };
    let shared = cfg
        .pools
        .iter()
        .filter(|p| p.shared && matches!(p.source, SourceSpec::Devdax(_)))
        .map(|p| p.name.clone())
        .collect();
    let tls = match &spec.tls {
        Some(t) => Some(crate::config::tls::load(t).map_err(|diags| {
            let msgs: Vec<String> = diags.into_iter().map(|d| d.msg).collect();
            anyhow::anyhow!("{}: cluster.tls: {}", config.display(), msgs.join("; "))
        })?),
        None => None,
    };
    let session = Session::observe(crate::cluster::client_config(&spec, tls.as_ref())?)
        .with_context(|| format!("cannot reach etcd at {}", spec.etcd.join(", ")))?;
    Ok((session, shared))
}

/// Runs the command.
pub fn run(args: &ClusterArgs) -> anyhow::Result<()> {
    match &args.command {
        ClusterCommand::Status { config } => {
            let (session, pools) = observe(config)?;
            let mut s = String::new();
            let live = session.hosts()?;
            let members = session.members()?;
            s.push_str(&format!("hosts live:   {}\n", live.join(", ")));
            let down: Vec<&String> = members.iter().filter(|m| !live.contains(m)).collect();
            s.push_str(&format!(
                "members down: {}\n",
                if down.is_empty() {
                    "none".to_string()
                } else {
                    down.iter()
                        .map(|h| h.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ));
            for pool in pools {
                let link = session.pool(&pool);
                let (keys, _) = link.keys()?;
                let arenas = link.arenas()?;
                let removals = link.removals()?;
                s.push_str(&format!(
                    "pool {pool}:\n  identity: {}\n  keys:     {}\n",
                    link.uuid()?
                        .unwrap_or_else(|| "(not registered yet)".into()),
                    keys.len()
                ));
                let mut by_host: std::collections::BTreeMap<&str, Vec<u32>> = Default::default();
                for (n, h) in &arenas {
                    by_host.entry(h).or_default().push(*n);
                }
                for (h, ns) in by_host {
                    s.push_str(&format!("  arenas of {h}: {ns:?}\n"));
                }
                s.push_str(&format!("  removals waiting: {}\n", removals.len()));
                for r in removals {
                    let waiting: Vec<&String> = r
                        .required
                        .iter()
                        .filter(|h| members.contains(h) && !r.acked.contains(h))
                        .collect();
                    s.push_str(&format!(
                        "    {} of {}: waiting for {:?}\n",
                        r.id, r.writer, waiting
                    ));
                }
            }
            output::stdout(&s)
        }
        ClusterCommand::Forget { host, config } => {
            let (session, _) = observe(config)?;
            let forgotten = session.forget(host)?;
            output::stdout(&if forgotten {
                format!("forgot host {host}: removed chunks no longer wait for it\n")
            } else {
                format!("host {host} was not a member (nothing to do)\n")
            })
        }
    }
}
