//! C ABI: snapshots of a pool's keys.

use super::*;

/// Snapshot of a pool's keys; returns their number.
///
/// # Safety
/// `pool` live; `out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn maru_list_keys(pool: *mut MaruPool, out: *mut *mut MaruKeyList) -> c_int {
    let pool = handle!(pool, "pool");
    if out.is_null() {
        return invalid("out is NULL");
    }
    match pool.0.list_keys() {
        Ok(keys) => {
            let n = keys.len();
            // SAFETY: out valid per the contract.
            unsafe { out.write(Box::into_raw(Box::new(MaruKeyList(keys)))) };
            count(n)
        }
        Err(e) => fail(e),
    }
}

/// Number of keys in a list.
///
/// # Safety
/// `list` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn maru_key_list_count(list: *const MaruKeyList) -> usize {
    // SAFETY: live handle or NULL.
    unsafe { list.as_ref() }.map_or(0, |l| l.0.len())
}

/// The i-th key of a list.
///
/// # Safety
/// `list` is NULL or a live handle; `len` NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn maru_key_list_key(
    list: *const MaruKeyList,
    i: usize,
    len: *mut usize,
) -> *const u8 {
    // SAFETY: live handle or NULL.
    let key = unsafe { list.as_ref() }.and_then(|l| l.0.get(i));
    // SAFETY: len NULL or valid.
    unsafe { put(len, key.map_or(0, |k| k.len())) };
    key.map_or(std::ptr::null(), |k| k.as_ptr())
}

/// Frees a key list.
///
/// # Safety
/// `list` is NULL or a handle from maru_list_keys, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn maru_key_list_free(list: *mut MaruKeyList) {
    if !list.is_null() {
        // SAFETY: created by Box::into_raw in maru_list_keys; freed once.
        drop(unsafe { Box::from_raw(list) });
    }
}
