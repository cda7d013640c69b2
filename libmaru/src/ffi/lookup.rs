//! C ABI: queries and removal by key: contains, remove, batch and prefix lookups.

use super::*;

/// 1 if the key is published, 0 if not, or -errno.
///
/// # Safety
/// `pool` live; `key` points to `key_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn maru_contains(
    pool: *mut MaruPool,
    key: *const c_void,
    key_len: usize,
) -> c_int {
    let pool = handle!(pool, "pool");
    // SAFETY: per the contract.
    let key = or_return!(unsafe { bytes_arg(key, key_len, "key") });
    match pool.0.contains(key) {
        Ok(b) => c_int::from(b),
        Err(e) => fail(e),
    }
}

/// Removes a key: 0, or -ENOENT if absent.
///
/// # Safety
/// `pool` live; `key` points to `key_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn maru_remove(
    pool: *mut MaruPool,
    key: *const c_void,
    key_len: usize,
) -> c_int {
    let pool = handle!(pool, "pool");
    // SAFETY: per the contract.
    let key = or_return!(unsafe { bytes_arg(key, key_len, "key") });
    match pool.0.remove(key) {
        Ok(true) => 0,
        Ok(false) => no_key("remove", &pool.0, key),
        Err(e) => fail(e),
    }
}

/// Presence of n packed keys; returns the number present.
///
/// # Safety
/// `pool` live; packed keys valid; `present` holds n bytes.
#[no_mangle]
pub unsafe extern "C" fn maru_batch_contains(
    pool: *mut MaruPool,
    keys: *const u8,
    key_lens: *const usize,
    n: usize,
    present: *mut u8,
) -> c_int {
    let pool = handle!(pool, "pool");
    // SAFETY: per the contract.
    let keys = or_return!(unsafe { packed_keys(keys, key_lens, n) });
    if n > 0 && present.is_null() {
        return invalid("present is NULL");
    }
    // One consistent snapshot of the membership index for the whole batch.
    let got = match pool.0.batch_contains(&keys) {
        Ok(g) => g,
        Err(e) => return fail(e),
    };
    let mut found = 0;
    for (i, b) in got.into_iter().enumerate() {
        found += usize::from(b);
        // SAFETY: present holds n bytes per the contract; i < got.len() = n.
        unsafe { present.add(i).write(u8::from(b)) };
    }
    count(found)
}

/// Gets n packed keys; returns the number of views obtained.
///
/// # Safety
/// `pool` live; packed keys valid; `views` holds n entries; `data`/`lens` NULL or n entries.
#[no_mangle]
pub unsafe extern "C" fn maru_batch_get(
    pool: *mut MaruPool,
    keys: *const u8,
    key_lens: *const usize,
    n: usize,
    views: *mut *mut MaruView,
    data: *mut *const c_void,
    lens: *mut usize,
) -> c_int {
    let pool = handle!(pool, "pool");
    // SAFETY: per the contract.
    let keys = or_return!(unsafe { packed_keys(keys, key_lens, n) });
    if n > 0 && views.is_null() {
        return invalid("views is NULL");
    }
    let got = match pool.0.batch_get(&keys) {
        Ok(g) => g,
        Err(e) => return fail(e),
    };
    let mut found = 0;
    for (i, v) in got.into_iter().enumerate() {
        let (h, p, l) = match v {
            Some(v) => {
                found += 1;
                let (p, l) = (v.as_ptr().cast(), v.len());
                (Box::into_raw(Box::new(MaruView(v))), p, l)
            }
            None => (std::ptr::null_mut(), std::ptr::null(), 0),
        };
        // SAFETY: arrays hold n entries (data/lens may be NULL); i < n.
        unsafe {
            views.add(i).write(h);
            if !data.is_null() {
                data.add(i).write(p);
            }
            if !lens.is_null() {
                lens.add(i).write(l);
            }
        }
    }
    count(found)
}

/// Length of the present prefix of n packed keys; pins it when `views` is not NULL.
///
/// # Safety
/// `pool` live; packed keys valid; `views` NULL or n entries.
#[no_mangle]
pub unsafe extern "C" fn maru_prefix_contains(
    pool: *mut MaruPool,
    keys: *const u8,
    key_lens: *const usize,
    n: usize,
    views: *mut *mut MaruView,
) -> c_int {
    let pool = handle!(pool, "pool");
    // SAFETY: per the contract.
    let keys = or_return!(unsafe { packed_keys(keys, key_lens, n) });
    if views.is_null() {
        return match pool.0.prefix_contains(&keys) {
            Ok(k) => count(k),
            Err(e) => fail(e),
        };
    }
    let got = match pool.0.prefix_get(&keys) {
        Ok(g) => g,
        Err(e) => return fail(e),
    };
    let k = got.len();
    for (i, v) in got.into_iter().enumerate() {
        // SAFETY: views holds n entries; i < k <= n.
        unsafe { views.add(i).write(Box::into_raw(Box::new(MaruView(v)))) };
    }
    for i in k..n {
        // SAFETY: views holds n entries.
        unsafe { views.add(i).write(std::ptr::null_mut()) };
    }
    count(k)
}
