#!/usr/bin/env bash
# The README's run command: set up, build, start maru-devd with its embedded default pool
# (/mnt/maru/default on NUMA node 0), and run a demo in which one process stores chunks and
# another maps them. The daemon is left running so you can keep using /mnt/maru; the last
# lines say how to stop it. Run as root: the daemon mounts filesystems.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

if [ "$(id -u)" -ne 0 ]; then
    echo "run.sh: maru-devd mounts filesystems; run this as root (sudo ./scripts/run.sh)" >&2
    exit 1
fi

echo "== build (release)"
cargo build --release --locked -p maru-devd
cargo build --release --locked -p libmaru --examples
target=${CARGO_TARGET_DIR:-target}
devd="$target/release/maru-devd"
log="$target/maru-devd.log"
mount=/mnt/maru
pool=$mount/default

if "$devd" status >/dev/null 2>&1; then
    echo "== maru-devd is already running; using it"
else
    echo "== start maru-devd (embedded default pool; log: $log)"
    "$devd" run >"$log" 2>&1 &
    pid=$!
    for _ in $(seq 1 300); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "run.sh: maru-devd exited during start; its log ($log):" >&2
            tail -n 30 "$log" >&2
            exit 1
        fi
        if "$devd" status >/dev/null 2>&1 && [ -d "$pool" ]; then
            break
        fi
        sleep 0.1
    done
    "$devd" status >/dev/null 2>&1 || { echo "run.sh: maru-devd did not come up in 30 s; see $log" >&2; exit 1; }
fi
tail -n 20 "$log" 2>/dev/null | sed 's/^/  /' || true

echo "== demo: one process stores chunks, another maps them"
prefix="demo-$(date +%s)"
"$target/release/examples/producer" "$pool" "$prefix" 4 $((2 << 20))
# The consumer runs as an unprivileged user (nobody) when it can reach the binary.
if command -v setpriv >/dev/null && setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$target/release/examples/consumer" 2>/dev/null; then
    echo "(consumer runs as user nobody)"
    setpriv --reuid=65534 --regid=65534 --clear-groups "$target/release/examples/consumer" "$pool" "$prefix" 4
else
    echo "(consumer runs as root: user nobody cannot reach $target)"
    "$target/release/examples/consumer" "$pool" "$prefix" 4
fi
echo "== the pool as any shell user sees it"
ls -la "$pool" | head -n 8
df -h "$pool"

echo "== maru-devd status"
"$devd" status

pid=$("$devd" status --json | sed -n 's/^  "pid": \([0-9]*\),$/\1/p')
cat <<MSG

maru-devd keeps running (pid ${pid:-?}): the pool is $pool, for every local user.
  status:  sudo $devd status
  stop:    sudo kill -TERM ${pid:-<pid>}    (unmounts $mount; chunks stay in /run/maru/pools
           and come back on the next start; umount /run/maru/pools/* frees that memory)
MSG
