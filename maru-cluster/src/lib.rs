//! Multi-host coordination of shared Maru pools through etcd.
//!
//! Every host runs the same symmetric `maru-devd`; no host is special. This crate is
//! the daemon's whole view of etcd, behind a blocking API (a private tokio runtime
//! runs the etcd client): a host **session** (an etcd lease kept alive in the
//! background, the host's registration attached to it), and per shared pool its
//! identity, its arena grants, the first-writer-wins publish transaction, and a watch
//! of the pool's keys. The schema (all under `/maru/v1/`) is in `docs/multihost.md`:
//!
//! ```text
//! hosts/<host>                      "pid=..;started=.."   (attached to the host's lease)
//! pools/<pool>/uuid                 the pool header's UUID (hex), created once
//! pools/<pool>/arenas/<n>           owning host of data/index arena n, created once
//! pools/<pool>/keys/<hex key>       the published chunk (where it is, who wrote it)
//! members/<host>                    every host that joined and was not forgotten
//! pools/<pool>/removing/<writer>/<slot>-<seq>   hosts that must let go first
//! pools/<pool>/acks/<writer>/<slot>-<seq>/<host>  a host that let go
//! ```
//!
//! Nothing here is on a reader's path: lookups, opens and maps stay local.

mod error;
mod session;

pub use error::ClusterError;
pub use session::{
    ClusterConfig, KeyEvent, KeyValue, PoolLink, Publish, Removal, Session, Tls, UuidCheck,
};
