//! Kernel cache invalidations, sent from a thread of their own.
//!
//! A notification must never be written from a request handler: the kernel may be
//! holding the very directory lock the invalidation needs while it waits for that
//! handler's reply. Handlers queue [`Notice`]s instead, and this thread sends them.

use std::ffi::OsString;
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;

use fuser::{INodeNo, Notifier};

/// One invalidation for the kernel.
#[derive(Debug)]
pub(crate) enum Notice {
    /// A name disappeared without the kernel asking (eviction, staging reclaim).
    Delete {
        /// Directory inode.
        parent: u64,
        /// The chunk's inode.
        child: u64,
        /// The name it had.
        name: std::ffi::OsString,
    },
    /// A (possibly negatively cached) name changed meaning (a pool appeared or went).
    InvalEntry {
        /// Directory inode.
        parent: u64,
        /// The name.
        name: OsString,
    },
    /// Stop the thread.
    Stop,
}

/// Starts the notifier thread.
pub(crate) fn spawn(notifier: Notifier, rx: Receiver<Notice>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("maru-fs-notify".into())
        .spawn(move || {
            while let Ok(notice) = rx.recv() {
                let res = match &notice {
                    Notice::Delete {
                        parent,
                        child,
                        name,
                    } => notifier.delete(INodeNo(*parent), INodeNo(*child), name),
                    Notice::InvalEntry { parent, name } => {
                        notifier.inval_entry(INodeNo(*parent), name)
                    }
                    Notice::Stop => break,
                };
                if let Err(e) = res {
                    log::debug!("kernel invalidation {notice:?} not delivered: {e}");
                }
            }
        })
}
