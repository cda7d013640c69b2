//! `maru-devd format-devdax`: re-create a devdax pool on its device range (destroys its chunks).

use crate::check;
use crate::daemon::control;
use crate::host::Host;
use crate::reconfigure;
use crate::units::human;
use anyhow::Context;
use std::path::{Path, PathBuf};

/// Arguments of `maru-devd format-devdax`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Examples:
  maru-devd format-devdax --config /etc/maru/maru.yaml --pool shared
      Says what would be destroyed, and stops.
  maru-devd format-devdax --config /etc/maru/maru.yaml --pool shared --yes
      Writes a new, empty pool header and index on the pool's byte range.

A devdax pool keeps its header, chunk index and chunks on the device. `maru-devd run` formats a
blank range by itself (`format: if-blank`, the default) but refuses a range with a damaged header
or foreign data and leaves it untouched: this command is the only way to re-create the pool
there. It refuses while a maru-devd answers on the runtime directory or a process has the
device open or mapped. See docs/devdax.md.")]
pub struct FormatArgs {
    /// The YAML config file naming the pool.
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
    /// The devdax pool to re-create.
    #[arg(long, value_name = "NAME")]
    pub pool: String,
    /// Really destroy the pool's chunks.
    #[arg(long)]
    pub yes: bool,
    /// Directory standing for /sys (a captured tree), instead of this host's.
    #[arg(long, value_name = "DIR")]
    pub sysfs_root: Option<PathBuf>,
    /// Take the owner lease from another host whose heartbeat stood still for the pool's
    /// `lease_timeout` (only when that host is gone). A live holder is never taken over.
    #[arg(long)]
    pub takeover: bool,
    /// Runtime directory of the daemon that must not be running.
    #[arg(long, env = "MARU_RUNTIME_DIR", default_value = crate::RUNTIME_DIR, value_name = "DIR")]
    pub runtime_dir: PathBuf,
}

/// Runs the command.
pub fn run(args: &FormatArgs) -> anyhow::Result<()> {
    let host = Host::discover(args.sysfs_root.as_deref())?;
    let plan = check::load(&args.config, &host, &args.runtime_dir)?.map_err(anyhow::Error::new)?;
    let Some(pool) = plan.pools.iter().find(|p| p.name == args.pool) else {
        let names: Vec<&str> = plan.pools.iter().map(|p| p.name.as_str()).collect();
        anyhow::bail!(
            "{} has no pool named {} (pools: {})",
            args.config.display(),
            args.pool,
            names.join(", ")
        );
    };
    let Some(d) = &pool.devdax else {
        anyhow::bail!(
            "pool {} is a numa pool (a tmpfs): only devdax pools are formatted",
            pool.name
        );
    };
    let what = format!(
        "pool {} on {} {} ({})",
        pool.name,
        d.devnode.display(),
        d.bytes(),
        human(d.length)
    );
    if !args.yes {
        anyhow::bail!("formatting destroys every chunk of {what}; add --yes to do it");
    }
    if control::answers(&args.runtime_dir) {
        anyhow::bail!(
            "a maru-devd is running on {} and may be serving {what}; stop it first",
            args.runtime_dir.display()
        );
    }
    let users = reconfigure::users(Path::new("/proc"), &d.device);
    if !users.is_empty() {
        anyhow::bail!(
            "{} is open or mapped by {}; stop those processes first",
            d.devnode.display(),
            users.join(", ")
        );
    }
    let mut cfg = d.fs_config(args.takeover, None);
    cfg.progress = Some(crate::daemon::progress::hook(&pool.name));
    let data = maru_fs::devdax::format(&cfg).with_context(|| format!("cannot format {what}"))?;
    crate::output::stdout(&format!(
        "formatted {what}: a new, empty pool with {} for chunks\n",
        human(data)
    ))
}
