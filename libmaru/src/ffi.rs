//! The C ABI (`include/maru.h`): thin wrappers over the Rust API.
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
use crate::{Chunk, Pool, Publish, View};
use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;

/// Version of the C ABI (`MARU_ABI_VERSION` in maru.h).
pub const ABI_VERSION: u32 = 1;

/// An open pool (`maru_pool` in C).
pub struct MaruPool(Pool);
/// A staging chunk (`maru_chunk` in C).
pub struct MaruChunk(Chunk);
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

/// Creates a staging chunk.
///
/// # Safety
/// `pool` is a live handle; `out` valid for a write; `data`/`len` NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn maru_chunk_create(
    pool: *mut MaruPool,
    size: usize,
    out: *mut *mut MaruChunk,
    data: *mut *mut c_void,
    len: *mut usize,
) -> c_int {
    let pool = handle!(pool, "pool");
    if out.is_null() {
        return invalid("out is NULL");
    }
    match pool.0.create(size) {
        Ok(mut c) => {
            // SAFETY: out/data/len valid or NULL per the contract.
            unsafe {
                put(data, c.as_mut_slice().as_mut_ptr().cast());
                put(len, c.len());
                out.write(Box::into_raw(Box::new(MaruChunk(c))));
            }
            0
        }
        Err(e) => fail(e),
    }
}

/// Address of a chunk's mapping.
///
/// # Safety
/// `chunk` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn maru_chunk_data(chunk: *const MaruChunk) -> *mut c_void {
    // SAFETY: live handle or NULL.
    unsafe { chunk.as_ref() }.map_or(std::ptr::null_mut(), |c| c.0.as_ptr().cast())
}

/// Length of a chunk's mapping.
///
/// # Safety
/// `chunk` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn maru_chunk_len(chunk: *const MaruChunk) -> usize {
    // SAFETY: live handle or NULL.
    unsafe { chunk.as_ref() }.map_or(0, |c| c.0.len())
}

/// Copies `len` bytes into a chunk at `offset`.
///
/// # Safety
/// `chunk` is a live handle not used by another thread meanwhile; `data`
/// points to `len` bytes not inside the chunk.
#[no_mangle]
pub unsafe extern "C" fn maru_chunk_write(
    chunk: *mut MaruChunk,
    offset: usize,
    data: *const c_void,
    len: usize,
) -> c_int {
    let chunk = handle_mut!(chunk, "chunk");
    // SAFETY: per the contract.
    let data = match unsafe { bytes_arg(data, len, "data") } {
        Ok(d) => d,
        Err(rc) => return rc,
    };
    match chunk.0.write(offset, data) {
        Ok(()) => 0,
        Err(e) => fail(e),
    }
}

/// Publishes a chunk under a key: 0, or -EEXIST when the key existed.
///
/// # Safety
/// `chunk` is a live handle; `key` points to `key_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn maru_chunk_publish(
    chunk: *mut MaruChunk,
    key: *const c_void,
    key_len: usize,
) -> c_int {
    let chunk = handle_mut!(chunk, "chunk");
    // SAFETY: per the contract.
    let key = match unsafe { bytes_arg(key, key_len, "key") } {
        Ok(k) => k,
        Err(rc) => return rc,
    };
    match chunk.0.publish(key) {
        Ok(Publish::Published) => 0,
        Ok(Publish::AlreadyExists) => {
            set_error(format!(
                "publish: key {} already exists (first writer wins); this chunk's staging file was removed",
                key::display_prefix(key)
            ));
            -libc::EEXIST
        }
        Err(e) => fail(e),
    }
}

/// Copies bytes into a new chunk and publishes it: 0, or -EEXIST.
///
/// # Safety
/// `pool` live; `key` points to `key_len` bytes; `data` to `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn maru_store(
    pool: *mut MaruPool,
    key: *const c_void,
    key_len: usize,
    data: *const c_void,
    len: usize,
) -> c_int {
    let pool = handle!(pool, "pool");
    // SAFETY: per the contract.
    let (key, data) =
        match unsafe { (bytes_arg(key, key_len, "key"), bytes_arg(data, len, "data")) } {
            (Ok(k), Ok(d)) => (k, d),
            (Err(rc), _) | (_, Err(rc)) => return rc,
        };
    match pool.0.store(key, data) {
        Ok(Publish::Published) => 0,
        Ok(Publish::AlreadyExists) => {
            set_error(format!(
                "store: key {} already exists (first writer wins); nothing was stored",
                key::display_prefix(key)
            ));
            -libc::EEXIST
        }
        Err(e) => fail(e),
    }
}

/// Unmaps and frees a chunk (aborting it if unpublished).
///
/// # Safety
/// `chunk` is NULL or a handle from maru_chunk_create, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn maru_chunk_free(chunk: *mut MaruChunk) {
    if !chunk.is_null() {
        // SAFETY: created by Box::into_raw in maru_chunk_create; freed once.
        drop(unsafe { Box::from_raw(chunk) });
    }
}

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
    let key = match unsafe { bytes_arg(key, key_len, "key") } {
        Ok(k) => k,
        Err(rc) => return rc,
    };
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
        Ok(None) => {
            set_error(format!(
                "get: no key {} in pool {}",
                key::display_prefix(key),
                pool.0.path().display()
            ));
            -libc::ENOENT
        }
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
    let key = match unsafe { bytes_arg(key, key_len, "key") } {
        Ok(k) => k,
        Err(rc) => return rc,
    };
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
    let key = match unsafe { bytes_arg(key, key_len, "key") } {
        Ok(k) => k,
        Err(rc) => return rc,
    };
    match pool.0.remove(key) {
        Ok(true) => 0,
        Ok(false) => {
            set_error(format!(
                "remove: no key {} in pool {}",
                key::display_prefix(key),
                pool.0.path().display()
            ));
            -libc::ENOENT
        }
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
    let keys = match unsafe { packed_keys(keys, key_lens, n) } {
        Ok(k) => k,
        Err(rc) => return rc,
    };
    if n > 0 && present.is_null() {
        return invalid("present is NULL");
    }
    let mut found = 0;
    for (i, k) in keys.iter().enumerate() {
        match pool.0.contains(k) {
            Ok(b) => {
                found += usize::from(b);
                // SAFETY: present holds n bytes per the contract; i < n.
                unsafe { present.add(i).write(u8::from(b)) };
            }
            Err(e) => return fail(e),
        }
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
    let keys = match unsafe { packed_keys(keys, key_lens, n) } {
        Ok(k) => k,
        Err(rc) => return rc,
    };
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
    let keys = match unsafe { packed_keys(keys, key_lens, n) } {
        Ok(k) => k,
        Err(rc) => return rc,
    };
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

/// Escapes a key into its file name; returns the name's length.
///
/// # Safety
/// `key` points to `key_len` bytes; `out` NULL (with out_cap 0) or `out_cap` bytes.
#[no_mangle]
pub unsafe extern "C" fn maru_key_escape(
    key: *const c_void,
    key_len: usize,
    out: *mut c_char,
    out_cap: usize,
) -> c_int {
    // SAFETY: per the contract.
    let key = match unsafe { bytes_arg(key, key_len, "key") } {
        Ok(k) => k,
        Err(rc) => return rc,
    };
    let name = match KeyName::new(key) {
        Ok(n) => n,
        Err(e) => return fail(e),
    };
    let bytes = name.as_bytes();
    if !out.is_null() && out_cap > bytes.len() {
        // SAFETY: out holds out_cap > len bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.cast(), bytes.len());
            out.add(bytes.len()).write(0);
        }
    }
    count(bytes.len())
}

/// Reverses maru_key_escape; returns the key's length.
///
/// # Safety
/// `name` points to `name_len` bytes; `out` NULL (with out_cap 0) or `out_cap` bytes.
#[no_mangle]
pub unsafe extern "C" fn maru_key_unescape(
    name: *const c_char,
    name_len: usize,
    out: *mut u8,
    out_cap: usize,
) -> c_int {
    // SAFETY: per the contract.
    let name = match unsafe { bytes_arg(name.cast(), name_len, "name") } {
        Ok(k) => k,
        Err(rc) => return rc,
    };
    match key::unescape(name) {
        Ok(Unescaped::Key(k)) => {
            if !out.is_null() {
                let n = k.len().min(out_cap);
                // SAFETY: out holds out_cap >= n bytes.
                unsafe { std::ptr::copy_nonoverlapping(k.as_ptr(), out, n) };
            }
            count(k.len())
        }
        Ok(Unescaped::Hashed) => {
            set_error(format!(
                "{} is the hashed name of a long key: the key is in the xattr user.maru.key (maru_list_keys resolves it)",
                String::from_utf8_lossy(name)
            ));
            -libc::ENODATA
        }
        Err(e) => fail(e),
    }
}

/// Locks a view's pages.
///
/// # Safety
/// `view` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn maru_view_mlock(view: *mut MaruView) -> c_int {
    let v = handle_mut!(view, "view");
    v.0.mlock().map_or_else(fail, |_| 0)
}

/// Unlocks a view's pages.
///
/// # Safety
/// `view` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn maru_view_munlock(view: *mut MaruView) -> c_int {
    let v = handle_mut!(view, "view");
    v.0.munlock().map_or_else(fail, |_| 0)
}

/// Locks a chunk's pages.
///
/// # Safety
/// `chunk` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn maru_chunk_mlock(chunk: *mut MaruChunk) -> c_int {
    let c = handle_mut!(chunk, "chunk");
    c.0.mlock().map_or_else(fail, |_| 0)
}

/// Unlocks a chunk's pages.
///
/// # Safety
/// `chunk` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn maru_chunk_munlock(chunk: *mut MaruChunk) -> c_int {
    let c = handle_mut!(chunk, "chunk");
    c.0.munlock().map_or_else(fail, |_| 0)
}

/// Faults a view's pages in.
///
/// # Safety
/// `view` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn maru_view_prefault(view: *mut MaruView) -> c_int {
    let v = handle!(view, "view");
    v.0.prefault().map_or_else(fail, |_| 0)
}

/// 1 if CUDA registration can be used here, else 0 (reason in maru_last_error).
#[no_mangle]
pub extern "C" fn maru_cuda_available() -> c_int {
    match crate::cuda_available() {
        Ok(()) => 1,
        Err(e) => {
            set_error(e.to_string());
            0
        }
    }
}

/// Registers a view with CUDA (READ_ONLY | PORTABLE).
///
/// # Safety
/// `view` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn maru_view_cuda_register(view: *mut MaruView) -> c_int {
    let v = handle_mut!(view, "view");
    v.0.cuda_register().map_or_else(fail, |_| 0)
}

/// Unregisters a view from CUDA.
///
/// # Safety
/// `view` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn maru_view_cuda_unregister(view: *mut MaruView) -> c_int {
    let v = handle_mut!(view, "view");
    v.0.cuda_unregister().map_or_else(fail, |_| 0)
}

/// Registers a chunk with CUDA (PORTABLE | DEVICEMAP).
///
/// # Safety
/// `chunk` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn maru_chunk_cuda_register(chunk: *mut MaruChunk) -> c_int {
    let c = handle_mut!(chunk, "chunk");
    c.0.cuda_register().map_or_else(fail, |_| 0)
}

/// Unregisters a chunk from CUDA.
///
/// # Safety
/// `chunk` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn maru_chunk_cuda_unregister(chunk: *mut MaruChunk) -> c_int {
    let c = handle_mut!(chunk, "chunk");
    c.0.cuda_unregister().map_or_else(fail, |_| 0)
}
