#!/usr/bin/env bash
# Installs what building and testing Maru needs on Debian 12. Idempotent: skips what is
# already there. Used by scripts/run.sh and scripts/test.sh. Needs root only to install
# missing packages (or load the fuse module): as root it runs apt-get itself, as a user
# it asks through sudo.
set -euo pipefail
me=setup
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
# shellcheck source=scripts/common.sh
. "$(dirname "$self")/common.sh"

need_pkgs=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
if command -v dpkg-query >/dev/null 2>&1; then
    # etcd-server and etcd-client: the multi-host tests start a real etcd (docs/multihost.md);
    # protobuf-compiler: the etcd client crate compiles etcd's protocol at build time;
    # systemd: systemd-analyze checks the shipped unit offline (maru-devd/tests/unit_file.rs).
    for p in pkg-config libudev-dev fuse3 gcc make util-linux attr binutils python3 python3-venv python3-pip \
        etcd-server etcd-client protobuf-compiler systemd; do
        have_pkg "$p" || need_pkgs+=("$p")
    done
else
    echo "setup: not a Debian system (no dpkg-query): install by hand pkg-config, libudev (dev files), fuse3, gcc, binutils, python3 with venv and pip, etcd (server and etcdctl), protoc" >&2
fi
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    echo "setup: installing ${need_pkgs[*]}" >&2
    maru_sudo "installing Debian packages" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    maru_sudo "installing Debian packages" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

maru_find_cargo
if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: no Rust toolchain found. Maru needs Rust >= 1.89 (install it with rustup: https://rustup.rs)." >&2
    exit 1
fi
rustv=$(rustc --version | awk '{print $2}')
if [ "$(printf '%s\n1.89.0\n' "$rustv" | sort -V | head -1)" != "1.89.0" ]; then
    echo "setup: rustc $rustv is too old; Maru needs Rust >= 1.89 (rustup update)." >&2
    exit 1
fi
if [ ! -e /dev/fuse ]; then
    maru_sudo "loading the fuse module" modprobe fuse 2>/dev/null || true
    [ -e /dev/fuse ] || { echo "setup: /dev/fuse is missing (load the fuse module: modprobe fuse)" >&2; exit 1; }
fi

# cargo-deny (deny.toml: licences, duplicate crates, sources) is opt-in: `cargo install
# --locked cargo-deny` compiles 141 crates (48 min measured on the shared 2-core development
# machine, load ~16), far more than the rest of the setup. scripts/test.sh runs it when present.
if [ -n "${MARU_INSTALL_CARGO_DENY:-}" ] && ! cargo deny --version >/dev/null 2>&1; then
    echo "setup: installing cargo-deny (cargo install --locked cargo-deny: tens of minutes on 2 cores)" >&2
    cargo install --locked cargo-deny
fi
