//! C ABI: opening and closing pools, the view cache and the chunk reserve.

use super::*;

/// Opens a pool directory.
///
/// # Safety
/// `path` is a NUL-terminated string; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn maru_pool_open(path: *const c_char, out: *mut *mut MaruPool) -> c_int {
    if path.is_null() || out.is_null() {
        return invalid("path or out is NULL");
    }
    // SAFETY: NUL-terminated per the contract.
    let path = OsStr::from_bytes(unsafe { CStr::from_ptr(path) }.to_bytes());
    match Pool::open(path) {
        Ok(p) => {
            // SAFETY: out is valid per the contract.
            unsafe { out.write(Box::into_raw(Box::new(MaruPool(p)))) };
            0
        }
        Err(e) => fail(e),
    }
}

/// Releases a pool handle.
///
/// # Safety
/// `pool` is NULL or a handle from maru_pool_open, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn maru_pool_close(pool: *mut MaruPool) {
    if !pool.is_null() {
        // SAFETY: created by Box::into_raw in maru_pool_open; freed once.
        drop(unsafe { Box::from_raw(pool) });
    }
}

/// Sets the pool's view cache bound (0 disables it).
///
/// # Safety
/// `pool` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn maru_pool_set_view_cache(pool: *mut MaruPool, max_views: usize) -> c_int {
    let pool = handle!(pool, "pool");
    pool.0.set_view_cache(max_views);
    0
}

/// Reserves staging chunks of `size` bytes: returns how many the pool holds.
///
/// # Safety
/// `pool` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn maru_pool_reserve(
    pool: *mut MaruPool,
    size: usize,
    count: usize,
) -> c_int {
    let pool = handle!(pool, "pool");
    match pool.0.reserve(size, count) {
        Ok(n) => c_int::try_from(n).unwrap_or(c_int::MAX),
        Err(e) => fail(e),
    }
}

/// Removes the pool's reserved chunks.
///
/// # Safety
/// `pool` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn maru_pool_clear_reserve(pool: *mut MaruPool) -> c_int {
    let pool = handle!(pool, "pool");
    pool.0.clear_reserve();
    0
}
