#!/usr/bin/env bash
# The multi-host benchmark (docs/multihost.md): a real etcd on loopback, two maru-devd
# "hosts" sharing a devdax pool on a stand-in device, plus a cache-coherent twin and a
# single-host pool. Prints cross-host publish latency, publish -> visible latency,
# the cache write-back cost, and the read path on shared vs single-host pools.
# Needs root (it mounts FUSE filesystems) and etcd (scripts/setup.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo test --release -p maru-fs --lib -- --ignored --nocapture bench_write_back
exec cargo test --release -p maru-devd --test multihost -- --ignored --nocapture bench_multihost
