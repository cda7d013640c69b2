#!/usr/bin/env bash
# Installs what building and testing Maru needs on Debian 12 (run as root).
# Idempotent: skips what is already there. Used by scripts/run.sh and scripts/test.sh.
set -euo pipefail

need_pkgs=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in pkg-config libudev-dev fuse3 gcc make util-linux attr python3 python3-venv python3-pip; do
    have_pkg "$p" || need_pkgs+=("$p")
done
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing Debian packages: ${need_pkgs[*]}; run as root or: sudo apt-get install ${need_pkgs[*]}" >&2
        exit 1
    fi
    echo "setup: installing ${need_pkgs[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: no Rust toolchain found. Maru needs Rust >= 1.85 (install it with rustup: https://rustup.rs)." >&2
    exit 1
fi
rustv=$(rustc --version | awk '{print $2}')
if [ "$(printf '%s\n1.85.0\n' "$rustv" | sort -V | head -1)" != "1.85.0" ]; then
    echo "setup: rustc $rustv is too old; Maru needs Rust >= 1.85 (rustup update)." >&2
    exit 1
fi
if [ ! -e /dev/fuse ]; then
    modprobe fuse 2>/dev/null || true
    [ -e /dev/fuse ] || { echo "setup: /dev/fuse is missing (load the fuse module: modprobe fuse)" >&2; exit 1; }
fi
