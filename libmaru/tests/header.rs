//! `include/maru.h` cannot drift from the Rust exports: this test reads every
//! `extern "C" fn` of `src/ffi/`, writes its C prototype (types mapped one to
//! one), and has the C compiler check the header against them: a redeclaration
//! with other parameter or return types is a hard error ("conflicting types").
//! It also checks the header's constants and `maru_info`'s layout against the
//! Rust values. Names alone are checked by `tests/c/check-header.sh` (the
//! exported symbols against the declared ones); together they pin the ABI.
//!
//! Why this and not cbindgen: no new build dependency or tool, the header
//! keeps its hand-written documentation, and the check runs with every
//! `cargo test -p libmaru` (it needs only `cc`, which the C ABI tests need too).

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// The C spelling of a Rust FFI type (`*const T` as `T const *`, which C
/// treats as `const T *`).
fn c_type(t: &str) -> String {
    let t = t.trim();
    if let Some(inner) = t.strip_prefix("*const ") {
        return format!("{} const *", c_type(inner));
    }
    if let Some(inner) = t.strip_prefix("*mut ") {
        return format!("{} *", c_type(inner));
    }
    match t {
        "c_int" => "int",
        "u32" => "uint32_t",
        "u64" => "uint64_t",
        "usize" => "size_t",
        "u8" => "uint8_t",
        "c_char" => "char",
        "c_void" => "void",
        "MaruPool" => "maru_pool",
        "MaruChunk" => "maru_chunk",
        "MaruView" => "maru_view",
        "MaruKeyList" => "maru_key_list",
        "MaruInfo" => "maru_info",
        "MaruPinTable" => "maru_pin_table",
        other => panic!("tests/header.rs: no C spelling for Rust type `{other}`; add it"),
    }
    .to_string()
}

/// `(name, C prototype)` of every `extern "C" fn` in `src`.
fn prototypes(src: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(at) = rest.find("extern \"C\" fn ") {
        rest = &rest[at + "extern \"C\" fn ".len()..];
        let open = rest.find('(').expect("( after an extern fn name");
        let name = rest[..open].trim().to_string();
        let close = open + rest[open..].find(')').expect(") closing the parameters");
        let params: Vec<String> = rest[open + 1..close]
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (_, ty) = p.split_once(':').expect("parameter `name: type`");
                c_type(ty)
            })
            .collect();
        let body = close + rest[close..].find('{').expect("{ opening the body");
        let ret = rest[close + 1..body].trim();
        let ret = match ret.strip_prefix("->") {
            Some(t) => c_type(t),
            None => "void".to_string(),
        };
        let params = if params.is_empty() {
            "void".to_string()
        } else {
            params.join(", ")
        };
        out.push((name.clone(), format!("{ret} {name}({params});")));
        rest = &rest[body..];
    }
    out
}

#[test]
fn header_declares_every_export_with_its_rust_signature() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut protos = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(root.join("src/ffi"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        protos.extend(prototypes(&std::fs::read_to_string(&f).unwrap()));
    }
    assert!(protos.len() >= 40, "found only {} exports", protos.len());

    use maru::ffi::{MaruInfo, INFO_CAPACITY, INFO_NODE, INFO_ONLINE, INFO_USED};
    use std::mem::{offset_of, size_of};
    let mut c = String::from("#include <stddef.h>\n#include \"maru.h\"\n");
    for (_, p) in &protos {
        writeln!(c, "{p}").unwrap();
    }
    let checks = [
        ("MARU_ABI_VERSION", maru::ffi::ABI_VERSION as usize),
        ("MARU_KEY_MAX", maru::key::KEY_MAX),
        ("MARU_NAME_MAX", maru::key::NAME_MAX),
        ("MARU_INFO_CAPACITY", INFO_CAPACITY as usize),
        ("MARU_INFO_USED", INFO_USED as usize),
        ("MARU_INFO_ONLINE", INFO_ONLINE as usize),
        ("MARU_INFO_NODE", INFO_NODE as usize),
        ("sizeof(maru_info)", size_of::<MaruInfo>()),
        (
            "offsetof(maru_info, capacity)",
            offset_of!(MaruInfo, capacity),
        ),
        ("offsetof(maru_info, used)", offset_of!(MaruInfo, used)),
        ("offsetof(maru_info, fields)", offset_of!(MaruInfo, fields)),
        ("offsetof(maru_info, online)", offset_of!(MaruInfo, online)),
        ("offsetof(maru_info, node)", offset_of!(MaruInfo, node)),
    ];
    for (expr, want) in checks {
        writeln!(
            c,
            "_Static_assert({expr} == {want}, \"maru.h: {expr} differs from libmaru ({want})\");"
        )
        .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("signatures.c");
    std::fs::write(&file, &c).unwrap();
    let out = Command::new("cc")
        .args(["-std=c11", "-fsyntax-only", "-Wall", "-Werror", "-I"])
        .arg(root.join("include"))
        .arg(&file)
        .output()
        .expect("running cc (the C compiler) to check include/maru.h");
    assert!(
        out.status.success(),
        "include/maru.h disagrees with libmaru/src/ffi (fix the header's declaration to match the \
         Rust signature):\n{}\n--- generated from src/ffi ---\n{c}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn prototypes_map_rust_types_to_c() {
    let src = r#"
        pub unsafe extern "C" fn maru_x(pool: *mut MaruPool, out: *mut *const c_void, n: usize) -> *const u8 {
        }
        pub extern "C" fn maru_y() {}
    "#;
    assert_eq!(
        prototypes(src),
        [
            (
                "maru_x".to_string(),
                "uint8_t const * maru_x(maru_pool *, void const * *, size_t);".to_string()
            ),
            ("maru_y".to_string(), "void maru_y(void);".to_string()),
        ]
    );
}
