//! C ABI: staging chunks: create, write, publish, store, free.

use super::*;

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
        Ok(c) => {
            // SAFETY: out/data/len valid or NULL per the contract.
            unsafe {
                put(data, c.as_ptr().cast());
                put(len, c.len());
                out.write(Box::into_raw(Box::new(MaruChunk(c.into()))));
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
    let data = or_return!(unsafe { bytes_arg(data, len, "data") });
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
    let key = or_return!(unsafe { bytes_arg(key, key_len, "key") });
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
    let key = or_return!(unsafe { bytes_arg(key, key_len, "key") });
    // SAFETY: per the contract.
    let data = or_return!(unsafe { bytes_arg(data, len, "data") });
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
