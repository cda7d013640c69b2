//! C ABI: read-only views of published chunks: get, address, length, release.

use super::*;

/// Maps a published chunk read-only; -ENOENT if absent.
///
/// # Safety
/// `pool` live; `key` points to `key_len` bytes; `out` valid; `data`/`len` NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn maru_get(
    pool: *mut MaruPool,
    key: *const c_void,
    key_len: usize,
    out: *mut *mut MaruView,
    data: *mut *const c_void,
    len: *mut usize,
) -> c_int {
    let pool = handle!(pool, "pool");
    if out.is_null() {
        return invalid("out is NULL");
    }
    // SAFETY: per the contract.
    let key = or_return!(unsafe { bytes_arg(key, key_len, "key") });
    match pool.0.get(key) {
        Ok(Some(v)) => {
            // SAFETY: out/data/len valid or NULL per the contract.
            unsafe {
                put(data, v.as_ptr().cast());
                put(len, v.len());
                out.write(Box::into_raw(Box::new(MaruView(v))));
            }
            0
        }
        Ok(None) => no_key("get", &pool.0, key),
        Err(e) => fail(e),
    }
}

/// Address of a view's mapping.
///
/// # Safety
/// `view` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn maru_view_data(view: *const MaruView) -> *const c_void {
    // SAFETY: live handle or NULL.
    unsafe { view.as_ref() }.map_or(std::ptr::null(), |v| v.0.as_ptr().cast())
}

/// Length of a view's mapping.
///
/// # Safety
/// `view` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn maru_view_len(view: *const MaruView) -> usize {
    // SAFETY: live handle or NULL.
    unsafe { view.as_ref() }.map_or(0, |v| v.0.len())
}

/// Unmaps a view and drops its pin.
///
/// # Safety
/// `view` is NULL or a handle from this library, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn maru_view_release(view: *mut MaruView) {
    if !view.is_null() {
        // SAFETY: created by Box::into_raw in this module; freed once.
        drop(unsafe { Box::from_raw(view) });
    }
}
