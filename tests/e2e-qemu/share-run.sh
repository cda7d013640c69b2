#!/bin/bash
# Maru multi-host end-to-end test in real kernels: two QEMU guests (Debian's Linux 6.12, QEMU 10,
# TCG) whose CXL Type-3 expanders are backed by ONE memory file, so both see the same device
# bytes, like two hosts on a multi-headed CXL device. Each runs the release maru-devd with a
# `shared: true` devdax pool, coordinated through an etcd this script starts on the host's
# loopback; the guests reach it as 10.0.2.2 through QEMU's user-mode networking (slirp turns
# their connections into loopback connections on the host: no packet leaves the machine).
# The guests run guest/share.sh; halfway through, this script kills guest B's QEMU (SIGKILL, a
# host dying) and boots it again. See docs/e2e-qemu.md.
#
#   usage (root, Debian 12):  tests/e2e-qemu/share-run.sh
#   env: E2E_TIMEOUT (s for the whole guest part, default 1500)  E2E_MEM (RAM per guest, 1G)
#        E2E_SMP (vCPUs per guest, default 2)  E2E_SKIP_INSTALL=1  CARGO_TARGET_DIR
# Artifacts: tests/e2e-qemu/out/share/ (a/, b1/, b2/: console.log and the guest's outputs;
#            sync/: the guests' markers; etcd.log, checks.txt, timing.txt)
# Exit status: 0 every check passed, 1 a check failed or a guest did not finish, 2 setup error.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=$HERE/.cache
KVER=6.12.95+deb12-amd64
T0=$(date +%s.%N)
elapsed() { echo "$(date +%s.%N) - $1" | bc | xargs printf '%.1f'; }
say() { echo "share-e2e: $*" >&2; }
die() { say "$*"; exit 2; }
[ "$(id -u)" = 0 ] || die "run as root (as run.sh: apt-get, depmod into the cache, pagemap in the guests)"
command -v etcd >/dev/null || die "etcd is not installed (Debian: apt-get install etcd-server)"

# 1+2. install, download, build: run.sh's first two phases (same packages, same downloads)
PT=$(date +%s.%N)
E2E_PREPARE_ONLY=1 "$HERE/run.sh" || exit $?
T_PREP=$(elapsed "$PT")
OUT=$HERE/out/share; SYNC=$OUT/sync
rm -rf "$OUT"; mkdir -p "$OUT"/{a,b1,b2} "$SYNC"
QEMU=$CACHE/qemu-root/usr/bin/qemu-system-x86_64
export QEMU_MODULE_DIR=$CACHE/qemu-root/usr/lib/x86_64-linux-gnu/qemu

TMP=$(mktemp -d /tmp/maru-share-e2e.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 3. etcd on the host's loopback, its data in a temp dir
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port); PEER=$(free_port)
etcd --name share-e2e --data-dir "$TMP/etcd" \
    --listen-client-urls "http://127.0.0.1:$PORT" --advertise-client-urls "http://127.0.0.1:$PORT" \
    --listen-peer-urls "http://127.0.0.1:$PEER" --initial-advertise-peer-urls "http://127.0.0.1:$PEER" \
    --initial-cluster "share-e2e=http://127.0.0.1:$PEER" > "$OUT/etcd.log" 2>&1 &
EPID=$!; PIDS+=("$EPID")
ETCDCTL() { ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:$PORT" "$@"; }
i=0; until ETCDCTL endpoint health >/dev/null 2>&1; do
    i=$((i+1)); [ $i -lt 100 ] && kill -0 $EPID 2>/dev/null || die "etcd did not start: $(tail -3 "$OUT/etcd.log")"; sleep 0.2
done
say "etcd (pid $EPID) on 127.0.0.1:$PORT, data in $TMP/etcd; the guests use http://10.0.2.2:$PORT"

# 4. the guests: one memory file behind both expanders
RAW=$TMP/cxl-shared.raw; truncate -s 256M "$RAW"
DEADLINE=$(( $(date +%s) + ${E2E_TIMEOUT:-1500} ))
# boot NAME ROLE BOOT: start a guest in the background (its QEMU's pid in QPID)
boot() {
    "$QEMU" -L "$CACHE/qemu-root/usr/share/qemu" -L /usr/share/seabios \
        -M q35,cxl=on -accel tcg,thread=multi -cpu max,hypervisor=off \
        -m "${E2E_MEM:-1G},maxmem=8G,slots=4" -smp "${E2E_SMP:-2}" \
        -display none -serial stdio -monitor none -no-reboot \
        -netdev user,id=n0,ipv6=off -device virtio-net-pci,netdev=n0,romfile= \
        -kernel "$CACHE/kroot/boot/vmlinuz-$KVER" -initrd "$CACHE/initrd.img" \
        -append "console=ttyS0 loglevel=5 panic=-1 e2escript=share.sh e2erole=$2 e2eboot=$3 e2eetcd=http://10.0.2.2:$PORT" \
        -virtfs "local,path=$OUT/$1,mount_tag=hostout,security_model=none,id=ho" \
        -virtfs "local,path=$SYNC,mount_tag=hostsync,security_model=none,id=hs" \
        -object "memory-backend-file,id=cxl-mem0,share=on,mem-path=$RAW,size=256M" \
        -device pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1 \
        -device cxl-rp,port=0,bus=cxl.1,id=root_port13,chassis=0,slot=2 \
        -device cxl-type3,bus=root_port13,volatile-memdev=cxl-mem0,id=cxl-vmem0,sn=0x1234 \
        -M cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G \
        </dev/null > "$OUT/$1/console.log" 2>&1 &
    QPID=$!; PIDS+=("$QPID")
    # progress on stderr: the guest's check and INIT lines, prefixed with its name
    tail --pid="$QPID" -n +1 -F "$OUT/$1/console.log" 2>/dev/null | grep --line-buffered -aE '^(E2E|INIT)|Kernel panic' |
        sed -u "s/^/[$1] /" >&2 &
    PIDS+=("$!")
    say "booted guest $1 (QEMU pid $QPID)"
}
# wait_until WHAT CMD...: poll CMD until it succeeds; false at the deadline
wait_until() {
    local what=$1; shift
    until "$@"; do
        [ "$(date +%s)" -lt "$DEADLINE" ] || { say "timed out waiting for $what"; return 1; }
        sleep 0.5
    done
}
HOSTCHECKS=()
hcheck() { HOSTCHECKS+=("E2E-CHECK $1 $2${3:+: $3}"); echo "[host] E2E-CHECK $1 $2${3:+: $3}" >&2; }
alive() { kill -0 "$1" 2>/dev/null; }

PT=$(date +%s.%N)
boot a a 1; QA=$QPID
boot b1 b 1; QB=$QPID
OK=1
# B asks to be killed once the publish, read and race steps are done on both guests
if wait_until "guest b to finish its first part" sh -c "[ -e '$SYNC/killme.b' ] || ! kill -0 $QB 2>/dev/null || ! kill -0 $QA 2>/dev/null" &&
    [ -e "$SYNC/killme.b" ]; then
    T_KILL=$(elapsed "$PT")
    kill -KILL "$QB"; wait "$QB" 2>/dev/null || true
    say "killed guest b's QEMU (pid $QB) with SIGKILL after ${T_KILL}s"
    touch "$SYNC/killed.host"
    # its etcd lease (5 s) must run out: hosts/guest-b goes, its keys stay
    KT=$(date +%s.%N)
    if wait_until "guest-b's lease to expire" sh -c "! ETCDCTL_API=3 etcdctl --endpoints http://127.0.0.1:$PORT get --prefix --keys-only /maru/v1/hosts/ | grep -q guest-b"; then
        hcheck PASS host-b-lease-expired "etcd dropped hosts/guest-b $(elapsed "$KT") s after its QEMU was killed; live: $(ETCDCTL get --prefix --keys-only /maru/v1/hosts/ | grep -v '^$' | tr '\n' ' ')"
    else
        hcheck FAIL host-b-lease-expired "hosts/guest-b is still in etcd"
    fi
    nk=$(ETCDCTL get --prefix --keys-only /maru/v1/pools/shared/keys/ | grep -c . || true)
    [ "$nk" -ge 20 ] && hcheck PASS host-keys-kept "etcd still holds $nk published keys (guest-b's among them)" ||
        hcheck FAIL host-keys-kept "etcd holds $nk keys under pools/shared/keys/, expected at least 20"
    # A checks that it keeps serving, then B boots again
    if wait_until "guest a to check the pool without guest b" sh -c "[ -e '$SYNC/after-kill.a' ] || ! kill -0 $QA 2>/dev/null" &&
        [ -e "$SYNC/after-kill.a" ]; then
        boot b2 b 2; QB2=$QPID
        wait_until "both guests to finish" sh -c "! kill -0 $QA 2>/dev/null && ! kill -0 $QB2 2>/dev/null" || OK=0
    else
        OK=0
    fi
else
    OK=0
fi
for p in $QA ${QB2:-}; do
    if alive "$p"; then say "killing QEMU pid $p (still running)"; { kill -KILL "$p"; wait "$p"; } 2>/dev/null || true; fi
done
T_GUESTS=$(elapsed "$PT")
sleep 1   # let the progress tails print the last lines

# 5. verdict: every guest's check lines, and the host's
{
    for g in a b1 b2; do [ -f "$OUT/$g/console.log" ] && grep -a '^E2E-CHECK' "$OUT/$g/console.log" | tr -d '\r'; done
    for l in "${HOSTCHECKS[@]}"; do echo "$l"; done
} > "$OUT/checks.txt"
for g in a b2; do
    grep -aq '^E2E-SUMMARY' "$OUT/$g/console.log" 2>/dev/null ||
        echo "E2E-CHECK FAIL $g-finished: guest $g did not finish its script (see $OUT/$g/console.log)" >> "$OUT/checks.txt"
done
grep -aq '^E2E-CHECK PASS b-race-bytes' "$OUT/checks.txt" ||
    echo "E2E-CHECK FAIL b1-finished: guest b did not get through its first boot (see $OUT/b1/console.log)" >> "$OUT/checks.txt"
NP=$(grep -c '^E2E-CHECK PASS' "$OUT/checks.txt" || true); NF=$(grep -c '^E2E-CHECK FAIL' "$OUT/checks.txt" || true)
TOTAL=$(elapsed "$T0")
printf 'prepare %ss\nguests %ss\ntotal %ss\n' "$T_PREP" "$T_GUESTS" "$TOTAL" > "$OUT/timing.txt"
cat "$OUT/checks.txt" >&2
say "timing: prepare (install, download, build) ${T_PREP}s, guests ${T_GUESTS}s, total ${TOTAL}s"
say "logs: $OUT/{a,b1,b2}/console.log, daemon.log; etcd: $OUT/etcd.log"
say "$NP passed, $NF failed"
if [ "$NF" = 0 ] && [ "$NP" -gt 0 ] && [ $OK = 1 ]; then say "PASS (${TOTAL}s)"; exit 0; fi
say "FAIL (${TOTAL}s)"; exit 1
