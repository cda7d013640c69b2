//! C ABI: pinning: mlock, prefault, CUDA registration.

use super::*;

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
