//! maru-bench: measures libmaru's chunk operations (work in progress).

fn main() -> anyhow::Result<()> {
    anyhow::bail!("maru-bench is not implemented yet")
}
