//! maru-fs-probe: a small client used by maru-fs's tests (and handy for checking a
//! live mount by hand). Each command does one thing a real client does, through
//! plain system calls, and prints `key=value` lines; errors are printed as
//! `error=<ERRNO>` with exit status 2, so a caller can check the exact errno.
//!
//! ```text
//! maru-fs-probe publish <pool-dir> <staging-name> <key> <size> <seed> [hold]
//! maru-fs-probe map <chunk-path> [hold]
//! maru-fs-probe race <pool-dir> <key-prefix> <rounds> <id> <size>
//! maru-fs-probe stall <pool-dir> <staging-name> <size>
//! maru-fs-probe sealed <chunk-path>
//! maru-fs-probe pin <pool-dir> <staging-name> <size>
//! maru-fs-probe mapmany <pool-dir> <key-prefix> <count>
//! maru-fs-probe grow <pool-dir> <staging-name> <bytes> [<key>]
//! maru-fs-probe lend <socket> <pool> <name>... [hold]
//! ```
//! `lend` asks the lending socket for the named chunks in one request and prints
//! `status=` (0 or the errno of the whole request) and per name `entry.<i>=<errno>
//! <size> <ino>`; for each chunk lent, `sum.<i>=` (the byte sum through a read-only
//! mapping of the descriptor) and `write.<i>=` (what `write(2)` to it returns:
//! an errno name, it must be refused). `hold` keeps the mappings (descriptors
//! closed) until a line arrives on stdin, after printing `ready`.
//! `grow` creates a staging chunk *without* sizing it and writes `<bytes>` with
//! write(2) in 1 MiB pieces (printing `written=` and the first `write_error=`);
//! with `<key>` it then publishes and writes one more 1 MiB piece past the end
//! through the descriptor it kept (`late_write=`); then prints `ready` and holds
//! the descriptor until killed or a line arrives on stdin.
//! `mapmany` maps `<key-prefix>-0` .. `<key-prefix>-<count - 1>`, closes every
//! descriptor (the mappings stay), prints `ready` and sleeps until killed.
//! `hold` keeps the chunk mapped until a line arrives on stdin (after printing
//! `addr=` and `len=`), so another process can inspect `/proc/<pid>/pagemap`.

// Mapping files and registering buffers are unsafe calls: they live in `sys`.
#![deny(unsafe_code)]

#[allow(unsafe_code)]
mod sys;

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use memmap2::MmapMut;

use maru_fs::pattern;

fn errno_name(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => format!("{:?}", nix::errno::Errno::from_raw(code)),
        None => e.to_string(),
    }
}

/// An io::Error that the caller wants reported as `error=<ERRNO>`.
#[derive(Debug)]
struct Refused(io::Error);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", errno_name(&self.0))
    }
}

impl std::error::Error for Refused {}

fn refused(e: io::Error) -> anyhow::Error {
    Refused(e).into()
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> Result<T> {
    args.get(i)
        .with_context(|| format!("missing argument {i}: {what}"))?
        .parse()
        .map_err(|_| anyhow::anyhow!("argument {i} ({what}) is not valid"))
}

fn hold() -> Result<()> {
    io::stdout().flush()?;
    let mut line = String::new();
    io::stdin().lock().read_line(&mut line)?;
    Ok(())
}

/// Creates a staging chunk, sizes it and maps it writable.
fn create_mapped(dir: &Path, staging: &str, size: usize) -> Result<(File, MmapMut)> {
    let path = dir.join(staging);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&path)
        .map_err(refused)?;
    file.set_len(size as u64).map_err(refused)?;
    let map = sys::map_staging(&file, size).map_err(refused)?;
    Ok((file, map))
}

fn rename_noreplace(dir: &Path, from: &str, to: &str) -> io::Result<()> {
    nix::fcntl::renameat2(
        nix::fcntl::AT_FDCWD,
        &dir.join(from),
        nix::fcntl::AT_FDCWD,
        &dir.join(to),
        nix::fcntl::RenameFlags::RENAME_NOREPLACE,
    )
    .map_err(io::Error::from)
}

/// Writes a chunk through its mapping and publishes it; returns whether we won.
fn publish_one(
    dir: &Path,
    staging: &str,
    key: &str,
    size: usize,
    seed: u64,
) -> Result<(bool, File, MmapMut)> {
    let (file, mut map) = create_mapped(dir, staging, size)?;
    pattern::fill(&mut map, seed);
    match rename_noreplace(dir, staging, key) {
        Ok(()) => Ok((true, file, map)),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            std::fs::remove_file(dir.join(staging)).map_err(refused)?;
            Ok((false, file, map))
        }
        Err(e) => Err(refused(e)),
    }
}

fn cmd_publish(args: &[String]) -> Result<()> {
    let dir = PathBuf::from(arg::<String>(args, 0, "pool dir")?);
    let staging: String = arg(args, 1, "staging name")?;
    let key: String = arg(args, 2, "key")?;
    let size: usize = arg(args, 3, "size")?;
    let seed: u64 = arg(args, 4, "seed")?;
    let (won, _file, map) = publish_one(&dir, &staging, &key, size, seed)?;
    println!("result={}", if won { "published" } else { "exists" });
    if args.get(5).map(String::as_str) == Some("hold") {
        println!("addr={:#x}", map.as_ptr() as usize);
        println!("len={}", map.len());
        hold()?;
    }
    Ok(())
}

fn cmd_map(args: &[String]) -> Result<()> {
    let path = PathBuf::from(arg::<String>(args, 0, "chunk path")?);
    let file = File::open(&path).map_err(refused)?;
    let len = file.metadata().map_err(refused)?.len() as usize;
    let map = sys::map_published(&file, Some(len)).map_err(refused)?;
    let sum: u64 = map.iter().map(|b| u64::from(*b)).sum();
    println!("len={len}");
    println!("sum={sum}");
    if args.get(1).map(String::as_str) == Some("hold") {
        println!("addr={:#x}", map.as_ptr() as usize);
        hold()?;
    }
    Ok(())
}

fn cmd_race(args: &[String]) -> Result<()> {
    let dir = PathBuf::from(arg::<String>(args, 0, "pool dir")?);
    let prefix: String = arg(args, 1, "key prefix")?;
    let rounds: usize = arg(args, 2, "rounds")?;
    let id: u64 = arg(args, 3, "id")?;
    let size: usize = arg(args, 4, "size")?;
    let mut wins = Vec::new();
    for r in 0..rounds {
        let staging = format!(".race-{id}-{r}");
        let key = format!("{prefix}-{r}");
        let (won, _file, _map) = publish_one(&dir, &staging, &key, size, id)?;
        if won {
            wins.push(r.to_string());
        }
    }
    println!("wins={}", wins.join(","));
    Ok(())
}

fn cmd_stall(args: &[String]) -> Result<()> {
    let dir = PathBuf::from(arg::<String>(args, 0, "pool dir")?);
    let staging: String = arg(args, 1, "staging name")?;
    let size: usize = arg(args, 2, "size")?;
    let (_file, mut map) = create_mapped(&dir, &staging, size)?;
    for b in map.iter_mut().take(size / 2) {
        *b = 0xab;
    }
    println!("ready");
    io::stdout().flush()?;
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

fn cmd_mapmany(args: &[String]) -> Result<()> {
    let dir = PathBuf::from(arg::<String>(args, 0, "pool dir")?);
    let prefix: String = arg(args, 1, "key prefix")?;
    let count: usize = arg(args, 2, "count")?;
    let mut maps = Vec::with_capacity(count);
    for i in 0..count {
        let file = File::open(dir.join(format!("{prefix}-{i}"))).map_err(refused)?;
        let map = sys::map_published(&file, None).map_err(refused)?;
        maps.push(map);
    }
    println!("mapped={}", maps.len());
    println!("ready");
    io::stdout().flush()?;
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

fn cmd_grow(args: &[String]) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let dir = PathBuf::from(arg::<String>(args, 0, "pool dir")?);
    let staging: String = arg(args, 1, "staging name")?;
    let bytes: u64 = arg(args, 2, "bytes")?;
    let key: Option<String> = args.get(3).cloned();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(dir.join(&staging))
        .map_err(refused)?;
    let piece = vec![0x6b_u8; 1 << 20];
    let mut written = 0u64;
    while written < bytes {
        let n = piece.len().min((bytes - written) as usize);
        match file.write_at(&piece[..n], written) {
            Ok(k) => written += k as u64,
            Err(e) => {
                println!("write_error={}", errno_name(&e));
                break;
            }
        }
    }
    println!("written={written}");
    if let Some(key) = key {
        println!(
            "publish={}",
            outcome(rename_noreplace(&dir, &staging, &key))
        );
        let late = file.write_at(&piece, written + (32 << 20)).map(drop);
        println!("late_write={}", outcome(late));
    }
    println!("ready");
    hold()?;
    drop(file);
    Ok(())
}

fn outcome(r: io::Result<()>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => errno_name(&e),
    }
}

fn cmd_sealed(args: &[String]) -> Result<()> {
    let path = PathBuf::from(arg::<String>(args, 0, "chunk path")?);
    let open = |o: &mut OpenOptions| o.open(&path).map(drop);
    println!(
        "open_rdwr={}",
        outcome(open(OpenOptions::new().read(true).write(true)))
    );
    println!(
        "open_wronly={}",
        outcome(open(OpenOptions::new().write(true)))
    );
    println!(
        "open_trunc={}",
        outcome(open(OpenOptions::new().write(true).truncate(true)))
    );
    println!(
        "truncate={}",
        outcome(nix::unistd::truncate(&path, 0).map_err(io::Error::from))
    );
    let ro = File::open(&path).map_err(refused)?;
    println!("ftruncate_ro={}", outcome(ro.set_len(0)));
    Ok(())
}

fn vm_pin_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix("VmPin:") {
            let kib = rest.trim().trim_end_matches("kB").trim();
            return Ok(kib.parse()?);
        }
    }
    bail!("no VmPin line in /proc/self/status")
}

fn cmd_pin(args: &[String]) -> Result<()> {
    let dir = PathBuf::from(arg::<String>(args, 0, "pool dir")?);
    let staging: String = arg(args, 1, "staging name")?;
    let size: usize = arg(args, 2, "size")?;
    let (_file, mut map) = create_mapped(&dir, &staging, size)?;
    map.fill(0x5a);
    let before = vm_pin_kib()?;
    let ring = match io_uring::IoUring::new(4) {
        Ok(r) => r,
        Err(e) => {
            println!("uring=unavailable:{}", errno_name(&e));
            return Ok(());
        }
    };
    let (registered, res) = sys::register_buffer(ring, map);
    let map = registered.map();
    let after = vm_pin_kib()?;
    println!("register={}", outcome(res));
    println!("vmpin_before_kib={before}");
    println!("vmpin_after_kib={after}");
    println!("addr={:#x}", map.as_ptr() as usize);
    println!("len={}", map.len());
    hold()?;
    drop(registered);
    Ok(())
}

/// `opendirs DIR N`: opens directory DIR up to N times (the soft descriptor limit
/// raised to the hard one first), prints `opened=K` and `error=ERRNO` of the open
/// that failed (`error=none` when all did), then holds them until stdin has a line.
fn cmd_opendirs(args: &[String]) -> Result<()> {
    let dir = PathBuf::from(arg::<String>(args, 0, "dir")?);
    let n: usize = arg(args, 1, "count")?;
    {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
    let mut held = Vec::with_capacity(n);
    let mut error = "none".to_string();
    for _ in 0..n {
        match std::fs::File::open(&dir) {
            Ok(f) => held.push(f),
            Err(e) => {
                error = errno_name(&e);
                break;
            }
        }
    }
    println!("opened={}", held.len());
    println!("error={error}");
    hold()?;
    drop(held);
    Ok(())
}

/// `openkeys DIR N`: opens up to N chunks of DIR read-only and reads each one's
/// first bytes, prints `opened=K`, `read=BYTES` and `error=ERRNO` (`none`), then
/// holds them until stdin has a line.
fn cmd_openkeys(args: &[String]) -> Result<()> {
    let dir = PathBuf::from(arg::<String>(args, 0, "dir")?);
    let n: usize = arg(args, 1, "count")?;
    let mut held = Vec::with_capacity(n);
    let mut error = "none".to_string();
    let mut read = 0usize;
    for entry in std::fs::read_dir(&dir)?.take(n) {
        let path = entry?.path();
        match File::open(&path) {
            Ok(mut f) => {
                let mut buf = [0u8; 16];
                read += f.read(&mut buf)?;
                held.push(f);
            }
            Err(e) => {
                error = errno_name(&e);
                break;
            }
        }
    }
    println!("opened={}", held.len());
    println!("read={read}");
    println!("error={error}");
    hold()?;
    drop(held);
    Ok(())
}

/// `stagings DIR N [publish]`: creates up to N staging chunks `.stg-PID-I` in DIR
/// and holds them open, prints `created=K` and `error=ERRNO` of the create that
/// failed (`error=none` when all did), then waits for a line on stdin; with
/// `publish` each is then published as `stg-PID-I` before it is closed.
fn cmd_stagings(args: &[String]) -> Result<()> {
    let dir = PathBuf::from(arg::<String>(args, 0, "dir")?);
    let n: usize = arg(args, 1, "count")?;
    let publish = args.get(2).is_some_and(|a| a == "publish");
    let pid = std::process::id();
    let mut held = Vec::with_capacity(n);
    let mut error = "none".to_string();
    for i in 0..n {
        let path = dir.join(format!(".stg-{pid}-{i}"));
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => held.push((path, f)),
            Err(e) => {
                error = errno_name(&e);
                break;
            }
        }
    }
    println!("created={}", held.len());
    println!("error={error}");
    hold()?;
    for (i, (path, f)) in held.into_iter().enumerate() {
        if publish {
            std::fs::rename(&path, dir.join(format!("stg-{pid}-{i}")))?;
        }
        drop(f);
    }
    Ok(())
}

fn cmd_lend(args: &[String]) -> Result<()> {
    use maru_proto::lend::{Reply, Request, MAX_REPLY};
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    use std::os::fd::{AsFd, AsRawFd};
    let socket_path = PathBuf::from(arg::<String>(args, 0, "socket")?);
    let pool: String = arg(args, 1, "pool")?;
    let hold_after = args.last().map(String::as_str) == Some("hold");
    let names: Vec<&[u8]> = args[2..args.len() - usize::from(hold_after)]
        .iter()
        .map(|n| n.as_bytes())
        .collect();
    let request = Request::encode(pool.as_bytes(), &names)
        .map_err(|e| anyhow::anyhow!("cannot encode the request: {e}"))?;
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    connect(fd.as_raw_fd(), &UnixAddr::new(&socket_path)?).map_err(|e| refused(e.into()))?;
    nix::sys::socket::send(
        fd.as_raw_fd(),
        &request,
        nix::sys::socket::MsgFlags::empty(),
    )?;
    let mut buf = vec![0u8; MAX_REPLY];
    let (len, fds, truncated) = sys::recv_with_fds(fd.as_fd(), &mut buf)?;
    if len == 0 {
        println!("closed=1");
        return Ok(());
    }
    let reply = Reply::parse(&buf[..len]).map_err(|e| anyhow::anyhow!("bad reply: {e}"))?;
    println!("status={}", reply.status);
    println!("fds={}", fds.len());
    println!("truncated={}", u8::from(truncated));
    let mut maps = Vec::new();
    let mut fds = fds.into_iter();
    for (i, e) in reply.entries.iter().enumerate() {
        println!("entry.{i}={} {} {}", e.errno, e.size, e.ino);
        if e.errno != 0 {
            continue;
        }
        let Some(fd) = fds.next() else {
            bail!("entry {i} has no descriptor");
        };
        let file = File::from(fd);
        let map = sys::map_published(&file, Some(e.size as usize))?;
        let sum: u64 = map.iter().map(|b| u64::from(*b)).sum();
        println!("sum.{i}={sum}");
        let write = match nix::unistd::write(&file, b"x") {
            Ok(_) => "accepted".to_string(),
            Err(e) => format!("{e:?}"),
        };
        println!("write.{i}={write}");
        maps.push(map);
    }
    if hold_after {
        println!("ready=1");
        hold()?;
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprintln!(
            "usage: maru-fs-probe publish|map|race|stall|sealed|pin|mapmany|grow|opendirs|openkeys|stagings|lend ARGS (see the source)"
        );
        std::process::exit(1);
    };
    let rest = &args[1..];
    let res = match cmd.as_str() {
        "publish" => cmd_publish(rest),
        "map" => cmd_map(rest),
        "stagings" => cmd_stagings(rest),
        "race" => cmd_race(rest),
        "stall" => cmd_stall(rest),
        "sealed" => cmd_sealed(rest),
        "pin" => cmd_pin(rest),
        "mapmany" => cmd_mapmany(rest),
        "grow" => cmd_grow(rest),
        "opendirs" => cmd_opendirs(rest),
        "openkeys" => cmd_openkeys(rest),
        "lend" => cmd_lend(rest),
        other => Err(anyhow::anyhow!("unknown command {other}")),
    };
    if let Err(e) = res {
        if let Some(r) = e.downcast_ref::<Refused>() {
            println!("error={r}");
            std::process::exit(2);
        }
        eprintln!("maru-fs-probe {cmd}: {e:#}");
        std::process::exit(1);
    }
}
