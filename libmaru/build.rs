//! Gives libmaru.so its SONAME, `libmaru.so.0`.
//!
//! Programs linked with `-lmaru` record the SONAME (not the file name) as what they
//! need, so an installed `libmaru.so.0 -> libmaru.so.0.1.0` can be upgraded in place
//! and an incompatible ABI (a new `MARU_ABI_VERSION` in maru.h) gets a new major
//! number beside the old one. `scripts/install-libmaru.sh` names the installed
//! files after the SONAME it reads from the built library.

/// The SONAME's major number: bump it together with `MARU_ABI_VERSION` in maru.h
/// on any incompatible change of the C ABI.
const SONAME_MAJOR: u32 = 0;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // ELF targets only (the GNU/LLVM linker flag); the rlib is unaffected.
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if matches!(
        os.as_str(),
        "linux" | "android" | "freebsd" | "netbsd" | "openbsd" | "dragonfly"
    ) {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libmaru.so.{SONAME_MAJOR}");
    }
}
