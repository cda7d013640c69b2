//! C ABI: the pool-wide pin table (`maru_pin_table_*`), one call per batch.

use super::*;
use crate::pin_table::{PinTable, Removal};

/// A pool's pin table (`maru_pin_table` in C).
pub struct MaruPinTable(PinTable);

/// Writes `v` at index `i` of the out array `p` (NULL: nothing).
///
/// # Safety
/// `p` is NULL or holds more than `i` elements.
unsafe fn put_at<T>(p: *mut T, i: usize, v: T) {
    if !p.is_null() {
        // SAFETY: per the caller's contract.
        unsafe { p.add(i).write(v) };
    }
}

/// Opens the pin table file at `path`, creating it with `slots` slots (0: the
/// default, 65536) when absent.
///
/// # Safety
/// `path` is NUL-terminated; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn maru_pin_table_open(
    path: *const c_char,
    slots: usize,
    out: *mut *mut MaruPinTable,
) -> c_int {
    if path.is_null() || out.is_null() {
        return invalid("path or out is NULL");
    }
    // SAFETY: NUL-terminated per the contract.
    let path = OsStr::from_bytes(unsafe { CStr::from_ptr(path) }.to_bytes());
    let slots = if slots == 0 {
        crate::pin_table::DEFAULT_SLOTS
    } else {
        slots
    };
    match PinTable::open(path, slots) {
        Ok(t) => {
            // SAFETY: out is valid per the contract.
            unsafe { out.write(Box::into_raw(Box::new(MaruPinTable(t)))) };
            0
        }
        Err(e) => fail(e),
    }
}

/// Unmaps a pin table handle (the pins stay). NULL is ignored.
///
/// # Safety
/// `pins` is NULL or a handle from maru_pin_table_open, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn maru_pin_table_close(pins: *mut MaruPinTable) {
    if !pins.is_null() {
        // SAFETY: created by Box::into_raw in maru_pin_table_open; freed once.
        drop(unsafe { Box::from_raw(pins) });
    }
}

/// Number of slots of the table (0 if `pins` is NULL).
///
/// # Safety
/// `pins` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn maru_pin_table_slots(pins: *const MaruPinTable) -> usize {
    // SAFETY: per the contract.
    unsafe { pins.as_ref() }.map_or(0, |p| p.0.slots())
}

/// Pins the present prefix of n packed keys (one pin each), stopping at the
/// first key `pool` does not hold or when the table is full (`*full` = 1).
/// Returns how many were pinned; `before[i]` (NULL: not wanted) is this
/// process's pin count of key i before the call.
///
/// # Safety
/// Live handles; packed keys valid; `before` NULL or n elements; `full` NULL
/// or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn maru_pin_table_pin(
    pins: *mut MaruPinTable,
    pool: *mut MaruPool,
    keys: *const u8,
    key_lens: *const usize,
    n: usize,
    before: *mut u32,
    full: *mut c_int,
) -> c_int {
    let pins = handle!(pins, "pins");
    let pool = handle!(pool, "pool");
    // SAFETY: per the contract.
    let keys = or_return!(unsafe { packed_keys(keys, key_lens, n) });
    match pins.0.pin_prefix(&pool.0, &keys) {
        Ok(p) => {
            for (i, &b) in p.before.iter().enumerate() {
                // SAFETY: i < n per the contract.
                unsafe { put_at(before, i, b) };
            }
            // SAFETY: per the contract.
            unsafe { put(full, c_int::from(p.full)) };
            count(p.before.len())
        }
        Err(e) => fail(e),
    }
}

/// Drops one pin of each of n packed keys (this process's own first, else
/// another process's). `released[i]`: 1 if key i had a pin; `mine[i]`: this
/// process's count afterwards (either NULL: not wanted). Returns how many
/// pins were dropped.
///
/// # Safety
/// Live handle; packed keys valid; out arrays NULL or n elements.
#[no_mangle]
pub unsafe extern "C" fn maru_pin_table_unpin(
    pins: *mut MaruPinTable,
    keys: *const u8,
    key_lens: *const usize,
    n: usize,
    released: *mut u8,
    mine: *mut u32,
) -> c_int {
    let pins = handle!(pins, "pins");
    // SAFETY: per the contract.
    let keys = or_return!(unsafe { packed_keys(keys, key_lens, n) });
    match pins.0.unpin(&keys) {
        Ok(r) => {
            for (i, &(rel, left)) in r.iter().enumerate() {
                // SAFETY: i < n per the contract.
                unsafe {
                    put_at(released, i, u8::from(rel));
                    put_at(mine, i, left);
                }
            }
            count(r.iter().filter(|r| r.0).count())
        }
        Err(e) => fail(e),
    }
}

/// Pool-wide pin counts (`total[i]`) and this process's (`mine[i]`) of n
/// packed keys (either NULL: not wanted). Returns 0.
///
/// # Safety
/// Live handle; packed keys valid; out arrays NULL or n elements.
#[no_mangle]
pub unsafe extern "C" fn maru_pin_table_counts(
    pins: *mut MaruPinTable,
    keys: *const u8,
    key_lens: *const usize,
    n: usize,
    total: *mut u64,
    mine: *mut u32,
) -> c_int {
    let pins = handle!(pins, "pins");
    // SAFETY: per the contract.
    let keys = or_return!(unsafe { packed_keys(keys, key_lens, n) });
    match pins.0.counts(&keys) {
        Ok(r) => {
            for (i, &(t, m)) in r.iter().enumerate() {
                // SAFETY: i < n per the contract.
                unsafe {
                    put_at(total, i, t);
                    put_at(mine, i, m);
                }
            }
            0
        }
        Err(e) => fail(e),
    }
}

/// Removes a key from `pool` unless it is pinned: 0 removed, -ENOENT absent,
/// -EBUSY pinned (checked and removed under the table's lock).
///
/// # Safety
/// Live handles; `key` points to `key_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn maru_pin_table_remove(
    pins: *mut MaruPinTable,
    pool: *mut MaruPool,
    key: *const c_void,
    key_len: usize,
) -> c_int {
    let pins = handle!(pins, "pins");
    let pool = handle!(pool, "pool");
    // SAFETY: per the contract.
    let key = or_return!(unsafe { bytes_arg(key, key_len, "key") });
    let what = || key::display_prefix(key);
    match pins.0.remove_unpinned(&pool.0, key) {
        Ok(Removal::Removed) => 0,
        Ok(Removal::Absent) => {
            set_error(format!("remove: no key {}", what()));
            -libc::ENOENT
        }
        Ok(Removal::Pinned(n)) => {
            set_error(format!("remove: key {} has {n} pins", what()));
            -libc::EBUSY
        }
        Err(e) => fail(e),
    }
}

/// Pids of the live processes holding pins: writes up to `cap` of them to
/// `pids` and returns how many there are.
///
/// # Safety
/// Live handle; `pids` NULL or `cap` elements.
#[no_mangle]
pub unsafe extern "C" fn maru_pin_table_holders(
    pins: *mut MaruPinTable,
    pids: *mut u32,
    cap: usize,
) -> c_int {
    let pins = handle!(pins, "pins");
    match pins.0.holders() {
        Ok(h) => {
            for (i, &p) in h.iter().take(cap).enumerate() {
                // SAFETY: i < cap per the contract.
                unsafe { put_at(pids, i, p) };
            }
            count(h.len())
        }
        Err(e) => fail(e),
    }
}
