//! C ABI: key <-> file name escaping.

use super::*;

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
    let key = or_return!(unsafe { bytes_arg(key, key_len, "key") });
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
    let name = or_return!(unsafe { bytes_arg(name.cast(), name_len, "name") });
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
                "{} is the hashed name of a long key: the key is in the xattr {} (maru_list_keys resolves it)",
                String::from_utf8_lossy(name),
                maru_proto::xattr::KEY
            ));
            -libc::ENODATA
        }
        Err(e) => fail(e),
    }
}
