//! The C ABI (`include/maru.h`): thin wrappers over the Rust API. Each
//! `extern "C"` function checks its arguments, makes one call into the Rust
//! API (`maru_prefix_contains` one of two: with or without views), and
//! converts the result; no behaviour lives here, so C and Rust callers get the
//! same guarantees (e.g. `maru_batch_contains` is one snapshot). The
//! header is checked against these signatures by `tests/header.rs`.
//!
//! Every `int` function returns 0 or a non-negative count on success and
//! `-errno` on failure, with the message in [`maru_last_error`]. Handles are
//! boxed Rust values; NULL handles are rejected with `-EINVAL`, and so are NULL
//! buffers and lengths no buffer can have (a key list whose lengths overflow).
//! Nothing here panics on any argument; should a bug panic anyway, the
//! `extern "C"` boundary aborts the process (Rust >= 1.81, the workspace's
//! minimum is 1.85): a panic never unwinds into C.

use crate::error::Error;
use crate::key::{self, KeyName, Unescaped};
use crate::{ChunkHandle, Pool, Publish, View};
use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;

/// Version of the C ABI (`MARU_ABI_VERSION` in maru.h).
pub const ABI_VERSION: u32 = 1;

/// An open pool (`maru_pool` in C).
pub struct MaruPool(Pool);
/// A staging chunk (`maru_chunk` in C).
pub struct MaruChunk(ChunkHandle);
/// A read-only view (`maru_view` in C).
pub struct MaruView(View);
/// A snapshot of a pool's keys (`maru_key_list` in C).
pub struct MaruKeyList(Vec<Vec<u8>>);

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records `msg` as the calling thread's last error.
fn set_error(msg: String) {
    let c = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// Records the error and returns its `-errno`.
fn fail(e: Error) -> c_int {
    set_error(e.to_string());
    -e.errno()
}

/// Records a message for an argument error and returns `-EINVAL`.
fn invalid(msg: &str) -> c_int {
    set_error(format!("invalid argument: {msg}"));
    -libc::EINVAL
}

/// Records "`op`: no key … in pool …" and returns `-ENOENT`.
fn no_key(op: &str, pool: &Pool, key: &[u8]) -> c_int {
    set_error(format!(
        "{op}: no key {} in pool {}",
        key::display_prefix(key),
        pool.path().display()
    ));
    -libc::ENOENT
}

/// Converts a count to the `int` return value (counts are bounded by the
/// caller's array sizes, far below `INT_MAX` in practice).
fn count(n: usize) -> c_int {
    c_int::try_from(n).unwrap_or(c_int::MAX)
}

/// A pointer + length argument (`what` names it in the error) as a slice;
/// NULL is refused, whatever the length.
///
/// # Safety
/// `ptr` must be NULL or point to `len` readable bytes.
unsafe fn bytes_arg<'a>(ptr: *const c_void, len: usize, what: &str) -> Result<&'a [u8], c_int> {
    if ptr.is_null() {
        return Err(invalid(&format!("{what} is NULL")));
    }
    if isize::try_from(len).is_err() {
        return Err(invalid(&format!(
            "{what} length {len} is larger than any buffer"
        )));
    }
    // SAFETY: per the caller's contract; len fits an allocation (checked).
    Ok(unsafe { std::slice::from_raw_parts(ptr.cast(), len) })
}

/// Packed keys (`keys` back to back, `lens[i]` each) as slices.
///
/// # Safety
/// `lens` must hold `n` lengths and `keys` their sum of readable bytes.
unsafe fn packed_keys<'a>(
    keys: *const u8,
    lens: *const usize,
    n: usize,
) -> Result<Vec<&'a [u8]>, c_int> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if keys.is_null() || lens.is_null() {
        return Err(invalid("keys or key_lens is NULL"));
    }
    if n > isize::MAX as usize / std::mem::size_of::<&[u8]>() {
        return Err(invalid(&format!("{n} keys: more than any array holds")));
    }
    // SAFETY: lens holds n entries per the caller's contract.
    let lens = unsafe { std::slice::from_raw_parts(lens, n) };
    let mut out = Vec::with_capacity(n);
    let mut off = 0usize;
    for (i, &l) in lens.iter().enumerate() {
        let end = off
            .checked_add(l)
            .filter(|&e| isize::try_from(e).is_ok())
            .ok_or_else(|| {
                invalid(&format!(
                    "key_lens[{i}] = {l}: the keys' total length overflows"
                ))
            })?;
        // SAFETY: the keys buffer holds sum(lens) bytes per the caller's
        // contract, and off..end lies inside that sum (no overflow, checked).
        out.push(unsafe { std::slice::from_raw_parts(keys.add(off), l) });
        off = end;
    }
    Ok(out)
}

/// Writes `v` through `p` when `p` is not NULL.
///
/// # Safety
/// `p` must be NULL or valid for a write of T.
unsafe fn put<T>(p: *mut T, v: T) {
    if !p.is_null() {
        // SAFETY: per the caller's contract.
        unsafe { p.write(v) };
    }
}

/// The value of an argument check, or returns its `-errno` from the calling
/// function.
macro_rules! or_return {
    ($checked:expr) => {
        match $checked {
            Ok(v) => v,
            Err(rc) => return rc,
        }
    };
}

macro_rules! handle {
    ($p:expr, $name:literal) => {
        // SAFETY: the caller passes a handle from this library (or NULL, refused).
        match unsafe { $p.as_ref() } {
            Some(h) => h,
            None => return invalid(concat!($name, " is NULL")),
        }
    };
}

macro_rules! handle_mut {
    ($p:expr, $name:literal) => {
        // SAFETY: the caller passes a handle from this library (or NULL, refused)
        // and does not use it from another thread meanwhile.
        match unsafe { $p.as_mut() } {
            Some(h) => h,
            None => return invalid(concat!($name, " is NULL")),
        }
    };
}

/// Returns [`ABI_VERSION`].
#[no_mangle]
pub extern "C" fn maru_abi_version() -> u32 {
    ABI_VERSION
}

/// The calling thread's last error message ("" if none).
#[no_mangle]
pub extern "C" fn maru_last_error() -> *const c_char {
    // The CString lives in the thread-local until the next failure replaces it.
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

mod chunk;
mod escape;
mod info;
mod key_list;
mod lookup;
mod pin;
mod pin_table;
mod pool;
mod view;

pub use info::{MaruInfo, INFO_CAPACITY, INFO_NODE, INFO_ONLINE, INFO_USED};
