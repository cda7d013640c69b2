//! maru-devd: the Maru daemon. Discovers CXL/DAX memory, carves it into pools,
//! serves them through the maru-fs FUSE mount.

fn main() -> anyhow::Result<()> {
    Ok(())
}
