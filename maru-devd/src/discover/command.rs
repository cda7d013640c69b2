//! `maru-devd discover`: the administrator's first command on a new host.

use std::path::PathBuf;

use anyhow::Context;

use super::{discover, print, Source};

/// Options of `maru-devd discover`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Examples:
  maru-devd discover
      Tables of this host's CXL memdevs, CXL regions, DAX regions and devices (mode, size,
      target node, memory blocks online and their zone) and NUMA nodes.
  maru-devd discover --json
      The same as JSON, sizes in bytes, field names as `daxctl list` / `cxl list` use them.
  maru-devd discover --sysfs-root snapshot/root/sys
      Read a captured sysfs tree instead of this host (as the tests do).

Anything that cannot be read is listed under Warnings with its path; the exit status is 0
unless the tree itself cannot be read. Next step: carve pools in a config file
(examples/maru.yaml, docs/config.md) and check it with `maru-devd check-config FILE`.")]
pub struct DiscoverArgs {
    /// Print the model as JSON (sizes in bytes, field names as daxctl/cxl list use them).
    #[arg(long)]
    pub json: bool,
    /// Read this directory as if it were /sys (a captured tree) instead of the live system.
    #[arg(long, value_name = "DIR")]
    pub sysfs_root: Option<PathBuf>,
}

/// Discovers and prints; problems inside the tree are warnings, not failures.
pub fn run(args: &DiscoverArgs) -> anyhow::Result<()> {
    let source = match &args.sysfs_root {
        Some(root) => Source::SysfsRoot(root.clone()),
        None => Source::Live,
    };
    let topology = discover(&source).context("device discovery failed")?;
    let text = if args.json {
        let mut json = serde_json::to_string_pretty(&topology)
            .context("cannot serialize the discovered topology as JSON")?;
        json.push('\n');
        json
    } else {
        print::render(&topology)
    };
    crate::output::stdout(&text).context("cannot write the discovery report")
}
