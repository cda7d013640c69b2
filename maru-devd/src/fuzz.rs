//! Bounded property tests ("fuzzing") of everything in the daemon that parses input it
//! does not control: the YAML config parser, the sysfs attribute readers and the
//! control-socket request parser. Run with a fixed seed and a small case budget in
//! `cargo test` (`fuzz_` in every name); `scripts/fuzz.sh` runs the same properties
//! with `PROPTEST_CASES` as large as you like.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use maru_testkit::fuzz::runner;
use proptest::prelude::*;

use crate::config::Source;
use crate::daemon::control::{self, Reply};
use crate::daemon::events::Event;
use crate::discover::{self, Source as SysfsSource};

fn good_configs() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/good");
    let mut v: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let text = text.strip_prefix('\u{feff}').unwrap_or(&text).to_string();
            (p.file_name().unwrap().to_string_lossy().into_owned(), text)
        })
        .collect();
    v.sort();
    assert!(v.len() >= 3, "tests/configs/good holds {} configs", v.len());
    v
}

/// Parses `text` as config file `file`: must not panic; every error must be
/// `FILE:LINE:COL: message` with LINE and COL 1-based and LINE inside the file.
fn check_config(file: &str, text: &str) -> Result<(), TestCaseError> {
    let src = Source {
        file: file.to_string(),
        text: text.to_string(),
    };
    let Err(errors) = src.parse() else {
        return Ok(());
    };
    prop_assert!(!errors.0.is_empty(), "an error result without errors");
    let lines = text.split('\n').count().max(1);
    for e in &errors.0 {
        prop_assert!(
            e.line >= 1 && e.col >= 1 && e.line <= lines + 1,
            "bad position {}:{} (file of {lines} lines): {e}",
            e.line,
            e.col
        );
        prop_assert!(!e.msg.trim().is_empty(), "empty message: {e}");
        let shown = e.to_string();
        let rest = shown.strip_prefix(&format!("{file}:")).unwrap_or("");
        let mut parts = rest.splitn(3, ':');
        let line_ok = parts.next().is_some_and(|l| l.parse::<usize>().is_ok());
        let col_ok = parts.next().is_some_and(|c| c.parse::<usize>().is_ok());
        let msg_ok = parts.next().is_some_and(|m| m.starts_with(' '));
        prop_assert!(
            line_ok && col_ok && msg_ok,
            "not FILE:LINE:COL: msg: {shown}"
        );
    }
    Ok(())
}

/// Text that looks like YAML: keys, indentation, flow collections, quotes, tabs,
/// anchors, document markers and the odd non-ASCII character.
fn yamlish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("pools:".to_string()),
        Just("  - name: kv".to_string()),
        Just("    source: {numa: {node: 0}}".to_string()),
        Just("    size: 1GiB".to_string()),
        Just("mount: /mnt/x".to_string()),
        Just("\n".to_string()),
        Just("  ".to_string()),
        Just("\t".to_string()),
        Just("- ".to_string()),
        Just(": ".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just("\"".to_string()),
        Just("'".to_string()),
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("<<: *a".to_string()),
        Just("---\n".to_string()),
        Just("...\n".to_string()),
        Just("#".to_string()),
        Just("é".to_string()),
        Just("\u{feff}".to_string()),
        Just("!!binary ".to_string()),
        "[a-z_]{1,12}",
        "[0-9]{1,25}",
        "[ -~]{0,8}",
        any::<char>().prop_map(|c| c.to_string()),
    ];
    proptest::collection::vec(token, 0..60).prop_map(|v| v.concat())
}

#[derive(Debug, Clone)]
enum Mutation {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    ReplaceValue(usize, String),
    Insert(usize, String),
    Indent(usize, usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let value = prop_oneof![
        Just(String::new()),
        Just("-1".to_string()),
        Just("18446744073709551616".to_string()),
        Just("99999999999999999999TiB".to_string()),
        Just("0x".to_string()),
        Just("101%".to_string()),
        Just("{}".to_string()),
        Just("[]".to_string()),
        Just("~".to_string()),
        Just("\"\\u0000\"".to_string()),
        Just("{numa: {node: auto}}".to_string()),
        Just("{devdax: {device: dax0.0}}".to_string()),
        "[ -~]{0,20}",
    ];
    prop_oneof![
        any::<usize>().prop_map(Mutation::DeleteLine),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (any::<usize>(), value).prop_map(|(l, v)| Mutation::ReplaceValue(l, v)),
        (any::<usize>(), yamlish()).prop_map(|(at, s)| Mutation::Insert(at, s)),
        (any::<usize>(), 0usize..9).prop_map(|(l, n)| Mutation::Indent(l, n)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(text: &str, muts: &[Mutation]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for m in muts {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let n = lines.len();
        match m {
            Mutation::DeleteLine(i) => {
                lines.remove(i % n);
            }
            Mutation::DuplicateLine(i) => {
                let l = lines[i % n].clone();
                lines.insert(i % n, l);
            }
            Mutation::SwapLines(a, b) => lines.swap(a % n, b % n),
            Mutation::ReplaceValue(i, v) => {
                let l = &mut lines[i % n];
                if let Some(at) = l.find(": ") {
                    l.truncate(at + 2);
                    l.push_str(v);
                } else {
                    l.push_str(v);
                }
            }
            Mutation::Insert(at, s) => {
                let l = &mut lines[at % n];
                let mut cut = at % (l.len() + 1);
                while !l.is_char_boundary(cut) {
                    cut -= 1;
                }
                l.insert_str(cut, s);
            }
            Mutation::Indent(i, k) => {
                let l = &mut lines[i % n];
                let body = l.trim_start().to_string();
                *l = format!("{}{body}", " ".repeat(*k));
            }
            Mutation::Truncate(i) => lines.truncate(i % (n + 1)),
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

#[test]
fn fuzz_config_arbitrary_text_never_panics_and_errors_are_positioned() {
    runner(600)
        .run(&yamlish(), |text| check_config("fuzz.yaml", &text))
        .unwrap();
}

#[test]
fn fuzz_config_arbitrary_bytes_never_panic() {
    runner(300)
        .run(&proptest::collection::vec(any::<u8>(), 0..400), |bytes| {
            check_config("bytes.yaml", &String::from_utf8_lossy(&bytes))
        })
        .unwrap();
}

#[test]
fn fuzz_config_mutated_good_configs_never_panic_and_errors_are_positioned() {
    let good = good_configs();
    for (file, text) in &good {
        check_config(file, text).unwrap();
        assert!(
            Source {
                file: file.clone(),
                text: text.clone(),
            }
            .parse()
            .is_ok(),
            "{file} must parse"
        );
    }
    let strat = (0..good.len(), proptest::collection::vec(mutation(), 1..6));
    runner(600)
        .run(&strat, |(which, muts)| {
            let (file, text) = &good[which];
            check_config(file, &mutate(text, &muts))
        })
        .unwrap();
}

/// Every regular file under `dir` (symbolic links not followed).
fn attribute_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            attribute_files(&e.path(), out);
        } else if ft.is_file() {
            out.push(e.path());
        }
    }
}

/// Contents a sysfs attribute might have, and some it should not.
fn attribute_text() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"".to_vec()),
        Just(b"-1\n".to_vec()),
        Just(b"0x\n".to_vec()),
        Just(b"0xffffffffffffffffff\n".to_vec()),
        Just(b"18446744073709551616\n".to_vec()),
        Just(b"4294967296\n".to_vec()),
        Just(b"-9223372036854775809\n".to_vec()),
        Just(b"0-3,5,7-\n".to_vec()),
        Just(b"online\n".to_vec()),
        Just(b"offline\n".to_vec()),
        Just(b"MemTotal: 99999999999999999999 kB\n".to_vec()),
        Just(b"Node 0 MemTotal:\n".to_vec()),
        Just(b"\xff\xfe\x00".to_vec()),
        "[0-9a-fx -]{0,24}\n?".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..64),
    ]
}

#[test]
fn fuzz_discovery_readers_never_panic_on_attribute_contents() {
    let snap =
        maru_testkit::fixtures::extract_snapshot("qemu10.0-linux6.12-ram/1-ram-region-kmem-online");
    let sys = snap.path().join("root/sys");
    let mut files = Vec::new();
    attribute_files(&sys, &mut files);
    files.sort();
    assert!(
        files.len() > 20,
        "the snapshot holds {} attributes",
        files.len()
    );
    let before = discover::discover(&SysfsSource::SysfsRoot(sys.clone())).unwrap();
    let originals: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let strat =
        proptest::collection::vec((any::<proptest::sample::Index>(), attribute_text()), 1..8);
    runner(150)
        .run(&strat, |changes| {
            let touched: Vec<usize> = changes
                .iter()
                .map(|(at, text)| {
                    let i = at.index(files.len());
                    std::fs::write(&files[i], text).unwrap();
                    i
                })
                .collect();
            let got = discover::discover(&SysfsSource::SysfsRoot(sys.clone()));
            // The printer reads every field the readers filled in.
            let printed = got.as_ref().map(discover::print::render);
            for i in touched {
                std::fs::write(&files[i], &originals[i]).unwrap();
            }
            prop_assert!(printed.is_ok(), "discovery of the root failed: {got:?}");
            Ok(())
        })
        .unwrap();
    // Restored: the same topology as before.
    let after = discover::discover(&SysfsSource::SysfsRoot(sys)).unwrap();
    assert_eq!(
        discover::print::render(&before),
        discover::print::render(&after)
    );
}

/// Sends `line` (and a newline) to the control-socket handler; returns its reply.
fn control_reply(line: &[u8]) -> Reply {
    let (client, server) = UnixStream::pair().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Event>();
    // Stands in for the daemon's event loop: answers every request it is given.
    let daemon = std::thread::spawn(move || {
        let mut requests = 0;
        while let Ok(ev) = rx.recv() {
            if let Event::Request(_, _, reply) = ev {
                requests += 1;
                let _ = reply.send(Reply::Done {
                    messages: vec!["ok".into()],
                    exit_code: 0,
                });
            }
        }
        requests
    });
    let mut c = &client;
    c.write_all(line).unwrap();
    c.write_all(b"\n").unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let handled = control::handle(server, &tx);
    drop(tx);
    let requests = daemon.join().unwrap();
    assert!(handled.is_ok(), "{handled:?}");
    let mut out = String::new();
    (&client).read_to_string(&mut out).unwrap();
    assert!(
        out.ends_with('\n') && out.matches('\n').count() == 1,
        "{out:?}"
    );
    let reply: Reply = serde_json::from_str(out.trim_end()).unwrap();
    assert_eq!(requests, usize::from(matches!(reply, Reply::Done { .. })));
    reply
}

fn request_line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(br#"{"cmd":"status"}"#.to_vec()),
        Just(br#"{"cmd":"reload"}"#.to_vec()),
        Just(br#"{"cmd":"inject"}"#.to_vec()),
        Just(br#"{"cmd":"inject","event":{}}"#.to_vec()),
        Just(br#"{"cmd":"status","cmd":"reload"}"#.to_vec()),
        Just(br#"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["#.to_vec()),
        Just(b"\xff\xfe".to_vec()),
        r#"\{"cmd":"[a-z-]{0,10}"(,"event":\{[ -~]{0,40}\})?\}"#.prop_map(String::into_bytes),
        "[ -~]{0,80}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..120),
    ]
}

#[test]
fn fuzz_control_request_lines_get_one_reply_and_bad_ones_an_error() {
    // Only root may send every request; another user's reload is refused.
    if !maru_testkit::need::root() {
        return;
    }
    runner(300)
        .run(&request_line(), |line| {
            let reply = control_reply(&line);
            let valid = std::str::from_utf8(&line)
                .ok()
                .and_then(|l| serde_json::from_str::<control::Request>(l).ok())
                .is_some();
            prop_assert_eq!(valid, matches!(reply, Reply::Done { .. }), "{:?}", reply);
            if !valid {
                let is_error = matches!(reply, Reply::Error { .. });
                prop_assert!(is_error, "{:?}", reply);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn fuzz_control_deep_nesting_and_long_lines_are_refused() {
    // serde_json's recursion limit turns deep nesting into an error, not a stack overflow.
    let deep = "[".repeat(60_000);
    assert!(matches!(
        control_reply(deep.as_bytes()),
        Reply::Error { .. }
    ));
    // A line over MAX_REQUEST: refused without reading the rest. The reply is
    // sent, but closing with unread bytes queued may reset the connection
    // before the client reads it (ECONNRESET): either is a refusal.
    let (client, server) = UnixStream::pair().unwrap();
    let (tx, _rx) = std::sync::mpsc::channel::<Event>();
    let writer = std::thread::spawn(move || {
        let long = vec![b'x'; control::MAX_REQUEST + 10];
        let _ = (&client).write_all(&long);
        let mut out = String::new();
        match (&client).read_to_string(&mut out) {
            Ok(_) => {
                let reply: Reply = serde_json::from_str(out.trim_end()).unwrap();
                assert!(matches!(reply, Reply::Error { .. }), "{reply:?}");
            }
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
        }
    });
    let _ = control::handle(server, &tx);
    writer.join().unwrap();
}
