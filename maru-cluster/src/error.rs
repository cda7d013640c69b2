//! Why a cluster operation failed.

/// What went wrong talking to etcd. Every message names the endpoints or the key.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No endpoint answered, or a request failed on the way.
    #[error("etcd at {endpoints}: {what}: {source}")]
    Etcd {
        /// The configured endpoints, comma-separated.
        endpoints: String,
        /// What was being done.
        what: String,
        /// The client's error.
        #[source]
        source: etcd_client::Error,
    },
    /// The first exchange with etcd failed: nothing answered, or TLS was refused
    /// (then the message says which side did not trust the other).
    #[error("etcd at {endpoints}: {what}: {}{source}", tls_hint(endpoints, source))]
    Connect {
        /// The configured endpoints, comma-separated.
        endpoints: String,
        /// What was being done.
        what: String,
        /// The client's error.
        #[source]
        source: etcd_client::Error,
    },
    /// The host's session is gone (its lease could not be renewed in time): the
    /// host must not write to shared pools until it is back.
    #[error("this host's etcd session has expired or cannot be renewed (etcd at {endpoints} unreachable?); shared pools refuse writes until it is back")]
    NoSession {
        /// The configured endpoints.
        endpoints: String,
    },
    /// Another daemon already registered this host name.
    #[error("host name `{host}` is already registered in the cluster by a live daemon ({holder}); give every host its own `cluster.host`")]
    HostTaken {
        /// The host name.
        host: String,
        /// What the registration says.
        holder: String,
    },
    /// A host asked to be forgotten is still registered (its daemon is running).
    #[error("host `{host}` is live (its daemon holds a session): stop maru-devd there first, or let its lease expire")]
    HostLive {
        /// The host name.
        host: String,
    },
    /// The runtime for the client could not be started.
    #[error("cannot start the etcd client runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// What a TLS failure means, for the message (empty when it is not one): rustls and
/// etcd put the reason in the status text, so the text is what there is to look at.
fn tls_hint(endpoints: &str, source: &etcd_client::Error) -> &'static str {
    if !endpoints.contains("https://") {
        return "";
    }
    let text = format!("{source:?}");
    let has = |s: &str| text.contains(s);
    if has("UnknownIssuer") || has("BadSignature") {
        "the etcd server's certificate was not trusted: it is not signed by the CA in `cluster.tls.ca`: "
    } else if has("NotValidForName") {
        "the etcd server's certificate was not trusted: it does not name this endpoint's host or IP (its subjectAltName): "
    } else if has("Expired") || has("NotValidYet") {
        "the etcd server's certificate was not trusted: it has expired or is not valid yet: "
    } else if has("invalid peer certificate") {
        "the etcd server's certificate was not trusted: "
    } else if [
        "fatal alert",
        "connection closed",
        "broken pipe",
        "reset by peer",
    ]
    .iter()
    .any(|s| text.to_lowercase().contains(s))
    {
        "etcd closed the TLS connection: if it runs with `--client-cert-auth`, this host needs a client certificate signed by a CA etcd trusts (`cluster.tls.cert` and `cluster.tls.key`): "
    } else {
        ""
    }
}
