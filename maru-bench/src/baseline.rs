//! Baselines measured in the same run: memcpy and loopback TCP.

use crate::stats::Samples;
use crate::Row;
use anyhow::{Context, Result};
use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

fn row(op: &str, size: usize, s: Samples, note: &str) -> Row {
    Row {
        backend: "baseline".into(),
        op: op.into(),
        size,
        stats: s.summary(),
        note: note.into(),
    }
}

/// memcpy into a warm buffer and into fresh pages; TCP over 127.0.0.1.
pub fn run(sizes: &[usize], n: usize) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for &size in sizes {
        let src: Vec<u8> = (0..size).map(|i| (i as u8).wrapping_mul(31)).collect();
        let mut dst = vec![1u8; size];
        let mut warm = Samples::with_capacity(n);
        for _ in 0..n {
            warm.time(|| dst.copy_from_slice(black_box(&src)));
            black_box(&dst);
        }
        rows.push(row("memcpy", size, warm, "into an already-faulted buffer"));

        let mut fresh = Samples::with_capacity(n);
        for _ in 0..n {
            let v = fresh.time(|| {
                let mut v = Vec::<u8>::with_capacity(size);
                v.extend_from_slice(black_box(&src));
                v
            });
            black_box(v);
        }
        rows.push(row(
            "memcpy (fresh pages)",
            size,
            fresh,
            "malloc + copy (page faults included)",
        ));

        rows.push(row(
            "tcp loopback",
            size,
            tcp(size, n, &src)?,
            "send size bytes to 127.0.0.1, 1-byte ack",
        ));
    }
    Ok(rows)
}

/// Time to send `size` bytes to a receiver thread on 127.0.0.1 and get its ack.
fn tcp(size: usize, n: usize, src: &[u8]) -> Result<Samples> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1")?;
    let addr = listener.local_addr()?;
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut buf = vec![0u8; size];
        for _ in 0..n {
            s.read_exact(&mut buf)?;
            s.write_all(&[1])?;
        }
        Ok(())
    });
    let mut c = TcpStream::connect(addr).context("connecting to 127.0.0.1")?;
    c.set_nodelay(true)?;
    let mut samples = Samples::with_capacity(n);
    let mut ack = [0u8; 1];
    for _ in 0..n {
        samples.time(|| -> std::io::Result<()> {
            c.write_all(src)?;
            c.read_exact(&mut ack)
        })?;
    }
    server
        .join()
        .map_err(|_| anyhow::anyhow!("the TCP receiver thread panicked"))?
        .context("TCP receiver")?;
    Ok(samples)
}
