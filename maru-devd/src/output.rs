//! Writing the CLI's reports without panicking: `print!` panics when stdout is a pipe whose
//! reader has gone (`maru-devd check-config FILE | head -1`). Every report goes through
//! [`stdout`]; a closed pipe becomes [`ClosedPipe`], which `main` turns into a quiet exit.

use std::io::{ErrorKind, Write};

/// The reader of stdout went away (EPIPE): nobody wants the rest of the output.
#[derive(Debug, thiserror::Error)]
#[error("stdout was closed by its reader")]
pub struct ClosedPipe;

/// Writes `text` to stdout and flushes it; a closed pipe is [`ClosedPipe`].
pub fn stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Err(ClosedPipe.into()),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to stdout")),
    }
}

/// Writes `text` to stderr, ignoring failures: there is nowhere left to report them.
pub fn stderr(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Whether `e` (anywhere in its chain) is a closed stdout.
pub fn is_closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<ClosedPipe>())
}
