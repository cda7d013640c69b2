#!/usr/bin/env bash
# The README's run command: set up, build, start maru-devd with its embedded default pool
# (/mnt/maru/default on NUMA node 0), and run a demo in which one process stores chunks and
# another maps them. The daemon is left running so you can keep using /mnt/maru; the last
# lines say how to stop it.
#
# Run it as yourself or as root. It builds as the caller (only what the demo needs, in
# release: maru-devd, libmaru.so and the two demo programs) and needs root only from the
# daemon's start on (it mounts filesystems): a user is asked through sudo then; root needs
# no sudo.
set -euo pipefail
me=run.sh
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$self")/.."
# shellcheck source=scripts/common.sh
. scripts/common.sh
target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac

if [ -z "${MARU_ELEVATED:-}" ]; then
    ./scripts/setup.sh
    maru_find_cargo
    echo "== build (release: maru-devd, libmaru.so, the demo programs)"
    if [ ! -x "$target/release/maru-devd" ]; then
        echo "   first build: about 2-3 minutes (2.5 measured on 2 cores); later runs take seconds"
    fi
    # --lib: libmaru.so for C and Python (target/release/libmaru.so).
    cargo build --release --locked -p maru-devd -p libmaru --bin maru-devd --lib --example producer --example consumer
fi
maru_reexec_as_root "starting maru-devd (it mounts filesystems)" "$@"

devd="$target/release/maru-devd"
log="$target/maru-devd.log"
mount=/mnt/maru
pool=$mount/default

if "$devd" status >/dev/null 2>&1; then
    echo "== maru-devd is already running; using it"
else
    echo "== start maru-devd (embedded default pool; log: $log)"
    # Its own session: it outlives this script and sudo's terminal (use_pty) alike.
    setsid "$devd" run </dev/null >"$log" 2>&1 &
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
sudo=
if [ -n "${MARU_ELEVATED:-}" ]; then sudo="sudo "; fi
cat <<MSG

maru-devd keeps running (pid ${pid:-?}): the pool is $pool, for every local user.
  status:  $sudo$devd status
  stop:    ${sudo}kill -TERM ${pid:-<pid>}    (unmounts $mount; chunks stay in /run/maru/pools
           and come back on the next start; umount /run/maru/pools/* frees that memory)
  C:       $target/release/libmaru.so (install: scripts/install-libmaru.sh, docs/libmaru.md)
  Python:  pip install ./python (bundles libmaru), or MARU_LIBRARY=$target/release/libmaru.so
MSG
