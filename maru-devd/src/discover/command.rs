//! `maru-devd discover`: the administrator's first command on a new host.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use super::{discover, print, Source};

/// Options of `maru-devd discover`.
#[derive(Debug, clap::Args)]
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
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .context("cannot write the discovery report to stdout")?;
    Ok(())
}
