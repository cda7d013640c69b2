//! A read-only query: which chunks of a pool are still in use.

use super::State;

impl State {
    /// How many chunks of pool `name` are open through the mount or still mapped by some
    /// process after it closed its descriptor (seen with a lease probe, [`crate::lease`]);
    /// `None` if there is no such pool.
    pub fn busy_chunks(&self, name: &str) -> Option<u64> {
        let pool_ino = *self.pools.get(name)?;
        let pool = self.pool_nodes.get(&pool_ino)?;
        let busy = self
            .chunks
            .values()
            .filter(|c| c.pool == pool_ino)
            .filter(|c| c.opens > 0 || c.name.as_ref().is_some_and(|n| pool.store.in_use(n)))
            .count();
        Some(busy as u64)
    }
}
