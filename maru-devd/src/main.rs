//! maru-devd: the Maru daemon. Discovers CXL/DAX memory, carves it into pools,
//! serves them through the maru-fs FUSE mount.

mod discover;

use clap::{Parser, Subcommand};

/// Command line of maru-devd.
#[derive(Debug, Parser)]
#[command(name = "maru-devd", version, about = "Maru's CXL memory daemon")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What maru-devd is asked to do.
#[derive(Debug, Subcommand)]
enum Command {
    /// Show every CXL memdev, CXL region, DAX region/device and NUMA node.
    Discover(discover::DiscoverArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Command::Discover(args) => discover::run(args),
    }
}
