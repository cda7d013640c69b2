//! `cluster.tls`: reading the PEM files, with every problem tied to its key.

use super::locate::Seg;
use super::{Diag, TlsSpec};
use std::path::Path;

/// What a file must hold: its role in messages, its key, the PEM label it must have.
struct Kind {
    role: &'static str,
    key: &'static str,
    label: &'static str,
}

const CA: Kind = Kind {
    role: "the CA certificate",
    key: "ca",
    label: "CERTIFICATE-----",
};
const CERT: Kind = Kind {
    role: "the client certificate",
    key: "cert",
    label: "CERTIFICATE-----",
};
const KEY: Kind = Kind {
    role: "the client certificate's key",
    key: "key",
    label: "PRIVATE KEY-----",
};

fn read(path: &Path, kind: &Kind, diags: &mut Vec<Diag>) -> Option<Vec<u8>> {
    let at = vec![
        Seg::Value("cluster".into()),
        Seg::Value("tls".into()),
        Seg::Value(kind.key.into()),
    ];
    let msg = match std::fs::read(path) {
        Ok(pem) if String::from_utf8_lossy(&pem).contains(kind.label) => return Some(pem),
        Ok(_) => format!(
            "{} is not a PEM file with a `-----BEGIN ...{}` block; `{}` must be {} in PEM",
            path.display(),
            kind.label,
            kind.key,
            kind.role
        ),
        Err(e) => format!(
            "cannot read {} ({}): {e}; maru-devd reads it at start, as root: fix the path, or put the file there (readable by root)",
            path.display(),
            kind.role
        ),
    };
    diags.push(Diag { path: at, msg });
    None
}

/// Reads the files of `spec`: the material for the etcd client, or every problem.
pub fn load(spec: &TlsSpec) -> Result<maru_cluster::Tls, Vec<Diag>> {
    let mut diags = Vec::new();
    let ca = read(&spec.ca, &CA, &mut diags);
    let identity = spec
        .client
        .as_ref()
        .map(|(cert, key)| (read(cert, &CERT, &mut diags), read(key, &KEY, &mut diags)));
    match (ca, identity) {
        (Some(ca), None) if diags.is_empty() => Ok(maru_cluster::Tls { ca, identity: None }),
        (Some(ca), Some((Some(cert), Some(key)))) if diags.is_empty() => Ok(maru_cluster::Tls {
            ca,
            identity: Some((cert, key)),
        }),
        _ => Err(diags),
    }
}
