//! maru-devd: the Maru daemon. Discovers CXL/DAX memory, carves it into pools,
//! serves them through the maru-fs FUSE mount.

// Raw system calls live in `sys` only.
#![deny(unsafe_code)]

mod check;
mod client;
mod cluster;
mod cluster_cli;
mod config;
mod daemon;
mod discover;
mod exit;
mod format;
#[cfg(test)]
mod fuzz;
mod host;
mod logging;
mod metrics;
mod mounts;
mod output;
mod plan;
mod reconfigure;
mod status;
#[allow(unsafe_code)] // the one system layer
mod sys;
mod tmpfs;
mod units;

use clap::{Parser, Subcommand};

/// Default runtime directory (control socket, pool tmpfs mounts); root-only.
pub const RUNTIME_DIR: &str = "/run/maru";

/// Command line of maru-devd.
#[derive(Debug, Parser)]
#[command(
    name = "maru-devd",
    version,
    about = "Maru's CXL memory daemon",
    long_about = "Maru's CXL memory daemon: finds CXL/DAX memory and NUMA nodes, carves them into \
named pools from a YAML file, and serves every pool as a directory of KV-cache chunk files under \
one FUSE mount (zero-copy through FUSE passthrough).",
    after_long_help = "\
Examples:
  maru-devd discover                        what CXL/DAX memory and NUMA nodes this host has
  maru-devd check-config /etc/maru/maru.yaml   validate a config, print the plan, touch nothing
  maru-devd run --config /etc/maru/maru.yaml   serve it (foreground, logs on stderr)
  maru-devd run                             serve the embedded default pool at /mnt/maru/default
  maru-devd status                          pools, usage, counters and capabilities of the daemon
  maru-devd reload                          re-read the config, print what changed
  maru-devd stop                            unmount and stop the daemon, wait until it exited
  maru-devd format-devdax -c FILE --pool P --yes   re-create a devdax pool (destroys its chunks)

Exit status: 0 ok, 1 internal error, 2 usage or config error, 3 environment error (privileges,
device, mount, no daemon), 4 another maru-devd already runs with this runtime directory.

Docs: docs/config.md (the YAML), docs/daemon.md (lifecycle, signals, hotplug, privileges)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What maru-devd is asked to do.
#[derive(Debug, Subcommand)]
enum Command {
    /// Show every CXL memdev, CXL region, DAX region/device and NUMA node.
    Discover(discover::DiscoverArgs),
    /// Run the daemon in the foreground: set up pools, mount, serve until SIGTERM.
    Run(daemon::RunArgs),
    /// Validate a config file and print the plan, touching nothing.
    CheckConfig(check::CheckArgs),
    /// Show the running daemon's pools, usage, counters and capabilities.
    Status(status::StatusArgs),
    /// Ask the running daemon to re-read its config; prints what changed or why not.
    Reload(client::ClientArgs),
    /// Ask the running daemon to unmount and exit; waits until it has.
    Stop(client::ClientArgs),
    /// Re-create a devdax pool on its device range, destroying its chunks.
    FormatDevdax(format::FormatArgs),
    /// Look at the cluster of shared pools, or forget a host that is gone.
    Cluster(cluster_cli::ClusterArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Discover(args) => discover::run(&args),
        Command::Run(args) => daemon::run(args),
        Command::CheckConfig(args) => check::run(&args),
        Command::Status(args) => status::run(&args),
        Command::Reload(args) => client::reload(&args),
        Command::Stop(args) => client::stop(&args),
        Command::FormatDevdax(args) => format::run(&args),
        Command::Cluster(args) => cluster_cli::run(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // `maru-devd ... | head -1`: the reader has what it wanted; exit quietly.
        Err(e) if output::is_closed_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The whole chain on one line ("what failed: why"), without a backtrace.
            output::stderr(&logging::error_line(&format!("{e:#}")));
            std::process::ExitCode::from(exit::code_of(&e).status())
        }
    }
}
