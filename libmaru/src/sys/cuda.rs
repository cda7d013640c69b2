//! CUDA host registration of chunk mappings (cargo feature `cuda`).
//!
//! The driver (`libcuda.so`) is loaded at run time through cudarc, so libmaru
//! builds and runs without CUDA; without a driver or a device every call returns
//! [`Error::CudaUnavailable`], and without the feature [`Error::CudaNotBuilt`].

use crate::error::{Error, Result};

/// A registered host range; unregistered on drop.
pub struct Registration {
    ptr: usize,
}

impl Registration {
    /// Registers `[ptr, ptr + len)`: READ_ONLY | PORTABLE for read-only
    /// mappings, PORTABLE | DEVICEMAP for writable ones.
    pub(crate) fn new(ptr: *mut u8, len: usize, read_only: bool, object: &str) -> Result<Self> {
        imp::register(ptr, len, read_only, object)?;
        Ok(Registration { ptr: ptr as usize })
    }

    /// Unregisters now, reporting a failure (drop ignores it).
    pub(crate) fn unregister(self) -> Result<()> {
        let ptr = self.ptr;
        std::mem::forget(self);
        imp::unregister(ptr)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // Nothing to report to in drop; the range is unmapped right after.
        let _ = imp::unregister(self.ptr);
    }
}

/// Ok if registration can be used here (feature built in, driver loaded, a device
/// present); the error says why not.
pub fn available() -> Result<()> {
    imp::available()
}

#[cfg(not(feature = "cuda"))]
mod imp {
    use super::*;

    pub(super) fn available() -> Result<()> {
        Err(Error::CudaNotBuilt)
    }

    pub(super) fn register(_: *mut u8, _: usize, _: bool, _: &str) -> Result<()> {
        Err(Error::CudaNotBuilt)
    }

    pub(super) fn unregister(_: usize) -> Result<()> {
        Err(Error::CudaNotBuilt)
    }
}

#[cfg(feature = "cuda")]
mod imp {
    use super::*;
    use cudarc::driver::sys;
    use std::sync::OnceLock;

    /// The primary context of device 0, retained for the life of the process.
    struct Driver {
        ctx: usize,
    }

    static DRIVER: OnceLock<std::result::Result<Driver, String>> = OnceLock::new();

    /// Loads and initialises the driver once. cudarc panics when the library or
    /// one of its symbols is missing: that panic is caught and reported.
    fn driver() -> Result<&'static Driver> {
        DRIVER
            .get_or_init(|| {
                let loaded = std::panic::catch_unwind(|| {
                    // SAFETY: loads libcuda and resolves symbols; no other precondition.
                    unsafe { sys::is_culib_present() }
                });
                match loaded {
                    Ok(true) => {}
                    _ => return Err("no CUDA driver library (libcuda.so) could be loaded; install the NVIDIA driver or run on a GPU machine".to_string()),
                }
                // SAFETY: plain driver calls with valid out pointers, after loading.
                unsafe {
                    check(sys::cuInit(0), "cuInit")?;
                    let mut count = 0;
                    check(sys::cuDeviceGetCount(&mut count), "cuDeviceGetCount")?;
                    if count < 1 {
                        return Err("the CUDA driver reports no device".to_string());
                    }
                    let mut dev = 0;
                    check(sys::cuDeviceGet(&mut dev, 0), "cuDeviceGet")?;
                    let mut ctx = std::ptr::null_mut();
                    check(
                        sys::cuDevicePrimaryCtxRetain(&mut ctx, dev),
                        "cuDevicePrimaryCtxRetain",
                    )?;
                    Ok(Driver { ctx: ctx as usize })
                }
            })
            .as_ref()
            .map_err(|m| Error::CudaUnavailable(m.clone()))
    }

    /// Makes the primary context current on this thread.
    fn bind(d: &Driver) -> std::result::Result<(), String> {
        // SAFETY: ctx is a retained primary context.
        unsafe {
            check(
                sys::cuCtxSetCurrent(d.ctx as sys::CUcontext),
                "cuCtxSetCurrent",
            )
        }
    }

    fn check(r: sys::CUresult, call: &str) -> std::result::Result<(), String> {
        if r == sys::CUresult::CUDA_SUCCESS {
            return Ok(());
        }
        let mut s: *const std::ffi::c_char = std::ptr::null();
        // SAFETY: valid out pointer; the driver returns a static string or leaves NULL.
        unsafe { sys::cuGetErrorString(r, &mut s) };
        let msg = if s.is_null() {
            String::new()
        } else {
            // SAFETY: NUL-terminated static string from the driver.
            unsafe { std::ffi::CStr::from_ptr(s) }
                .to_string_lossy()
                .into_owned()
        };
        Err(format!("{call}: {r:?} {msg}"))
    }

    pub(super) fn available() -> Result<()> {
        driver().map(|_| ())
    }

    pub(super) fn register(ptr: *mut u8, len: usize, read_only: bool, object: &str) -> Result<()> {
        let d = driver()?;
        let fail = |message| Error::Cuda {
            call: "cuMemHostRegister",
            object: object.to_string(),
            message,
        };
        bind(d).map_err(fail)?;
        let flags = if read_only {
            sys::CU_MEMHOSTREGISTER_READ_ONLY | sys::CU_MEMHOSTREGISTER_PORTABLE
        } else {
            sys::CU_MEMHOSTREGISTER_PORTABLE | sys::CU_MEMHOSTREGISTER_DEVICEMAP
        };
        // SAFETY: [ptr, ptr + len) is a live mapping owned by the caller, which
        // unregisters it (Registration's drop) before unmapping.
        let r = unsafe { sys::cuMemHostRegister_v2(ptr.cast(), len, flags) };
        check(r, "cuMemHostRegister").map_err(fail)
    }

    pub(super) fn unregister(ptr: usize) -> Result<()> {
        let d = driver()?;
        let fail = |message| Error::Cuda {
            call: "cuMemHostUnregister",
            object: format!("range at {ptr:#x}"),
            message,
        };
        bind(d).map_err(fail)?;
        // SAFETY: ptr was registered by `register` and is still mapped.
        let r = unsafe { sys::cuMemHostUnregister(ptr as *mut std::ffi::c_void) };
        check(r, "cuMemHostUnregister").map_err(fail)
    }
}
