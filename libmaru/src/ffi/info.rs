//! C ABI: what maru-fs shows about a pool and its chunks (capacity, use,
//! state, node, pin counts).

use super::*;
use crate::{NumaNode, PoolInfo};

/// `maru_info.fields`: `capacity` is set.
pub const INFO_CAPACITY: u32 = 1;
/// `maru_info.fields`: `used` is set.
pub const INFO_USED: u32 = 2;
/// `maru_info.fields`: `online` is set.
pub const INFO_ONLINE: u32 = 4;
/// `maru_info.fields`: `node` is set.
pub const INFO_NODE: u32 = 8;

/// A pool's capacity, use, state and node (`maru_info` in C); `fields` says
/// which members the pool shows ([`INFO_CAPACITY`], ...).
#[repr(C)]
#[derive(Debug, Default)]
pub struct MaruInfo {
    /// Capacity in bytes.
    pub capacity: u64,
    /// Bytes charged to the pool.
    pub used: u64,
    /// Which members are set (bit mask of the `INFO_*` constants).
    pub fields: u32,
    /// 1 online, 0 offline.
    pub online: i32,
    /// NUMA node, or -1 when maru-fs does not know it.
    pub node: i32,
}

impl From<PoolInfo> for MaruInfo {
    fn from(i: PoolInfo) -> Self {
        let mut out = MaruInfo::default();
        if let Some(c) = i.capacity {
            out.capacity = c;
            out.fields |= INFO_CAPACITY;
        }
        if let Some(u) = i.used {
            out.used = u;
            out.fields |= INFO_USED;
        }
        if let Some(o) = i.online {
            out.online = i32::from(o);
            out.fields |= INFO_ONLINE;
        }
        if let Some(n) = i.node {
            out.node = match n {
                NumaNode::Node(n) => i32::try_from(n).unwrap_or(i32::MAX),
                NumaNode::Unknown => -1,
            };
            out.fields |= INFO_NODE;
        }
        out
    }
}

/// Fills `out` with the pool's capacity, use, state and node.
///
/// # Safety
/// `pool` is a live handle; `out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn maru_pool_info(pool: *mut MaruPool, out: *mut MaruInfo) -> c_int {
    let pool = handle!(pool, "pool");
    if out.is_null() {
        return invalid("out is NULL");
    }
    match pool.0.info() {
        Ok(i) => {
            // SAFETY: out is valid per the contract.
            unsafe { out.write(i.into()) };
            0
        }
        Err(e) => fail(e),
    }
}

/// The pin count of the chunk published under a key; -ENOENT if absent.
///
/// # Safety
/// `pool` live; `key` points to `key_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn maru_pins(
    pool: *mut MaruPool,
    key: *const c_void,
    key_len: usize,
) -> c_int {
    let pool = handle!(pool, "pool");
    // SAFETY: per the contract.
    let key = or_return!(unsafe { bytes_arg(key, key_len, "key") });
    match pool.0.pins(key) {
        Ok(Some(n)) => c_int::try_from(n).unwrap_or(c_int::MAX),
        Ok(None) => no_key("pins", &pool.0, key),
        Err(e) => fail(e),
    }
}
