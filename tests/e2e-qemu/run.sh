#!/bin/bash
# Maru end-to-end test in a real kernel: boots Debian's Linux 6.12 under QEMU 10 (TCG) with an
# emulated volatile CXL Type-3 memory expander and runs guest/e2e.sh inside it against the
# release builds of maru-devd and the libmaru examples. See docs/e2e-qemu.md.
#
#   usage (root, Debian 12):  tests/e2e-qemu/run.sh
#   env: E2E_SCRIPT (guest script, default e2e.sh)  E2E_TIMEOUT (s, default 600)  E2E_MEM (guest RAM, default 1G)  E2E_SMP (default 2)
#        E2E_SKIP_INSTALL=1 (no apt-get)  CARGO_TARGET_DIR (default: the workspace's target/)
#        E2E_PREPARE_ONLY=1 (install, download and build, then stop: used by share-run.sh)
# Artifacts: tests/e2e-qemu/out/ (console.log, the guest's JSON/text outputs, timing.txt).
# Exit status: 0 every check passed, 1 a check failed or the guest did not finish, 2 setup error.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=$HERE/.cache
OUTDIR=$HERE/out
KVER=6.12.95+deb12-amd64
T0=$(date +%s.%N)
TIMING=()
elapsed() { echo "$(date +%s.%N) - $1" | bc | xargs printf '%.1f'; }
phase_start() { PHASE=$1; PT=$(date +%s.%N); echo "e2e: == $PHASE" >&2; }
phase_end() { local d; d=$(elapsed "$PT"); TIMING+=("$PHASE ${d}s"); echo "e2e: == $PHASE done in ${d}s" >&2; }
die() { echo "e2e: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "run as root (apt-get, depmod into the cache, /proc/PID/pagemap in the guest need it)"
rm -rf "$OUTDIR"; mkdir -p "$OUTDIR" "$CACHE"

# 1. host packages: busybox and the CXL tools for the guest, jq, cpio, and the shared libraries
#    the bookworm-backports QEMU 10 binary needs (read from its package's Depends once fetched)
phase_start install
if [ "${E2E_SKIP_INSTALL:-0}" != 1 ]; then
    pkgs="busybox-static ndctl daxctl jq cpio kmod bc gcc libc6-dev binutils seabios attr util-linux fuse3"
    missing=""
    for p in $pkgs; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"; done
    if [ -n "$missing" ]; then
        echo "e2e: apt-get install$missing" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq $missing >/dev/null || die "apt-get install$missing failed"
    fi
fi
"$HERE/fetch.sh" || die "downloading kernel $KVER / QEMU 10 from bookworm-backports failed (see above)"
QEMU=$CACHE/qemu-root/usr/bin/qemu-system-x86_64
if [ "${E2E_SKIP_INSTALL:-0}" != 1 ] && ldd "$QEMU" | grep -q 'not found'; then
    deps=$(dpkg-deb -f "$CACHE"/debs/qemu-system-x86_*.deb Depends | tr ',' '\n' |
        sed 's/(.*)//; s/|.*//; s/ //g' | grep -v '^qemu-system' | grep -v '^$')
    echo "e2e: installing QEMU 10's libraries:" $deps >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $deps >/dev/null || die "installing QEMU's libraries failed"
fi
if ldd "$QEMU" | grep 'not found' >&2; then die "QEMU 10 ($QEMU) misses the shared libraries above"; fi
phase_end

# 2. Maru binaries (glibc, release; their libraries are copied into the initramfs) and the test's
#    own helpers: pfnmap, daxpoke (static) and pfnstop.so
phase_start build
cd "$ROOT"
TD=${CARGO_TARGET_DIR:-$ROOT/target}
cargo build --release --locked -p maru-devd >&2 || die "cargo build -p maru-devd failed"
BINS="$TD/release/maru-devd"
if grep -q '^name = "producer"' "$ROOT/libmaru/Cargo.toml" && grep -q '^name = "consumer"' "$ROOT/libmaru/Cargo.toml"; then
    cargo build --release --locked -p libmaru --example producer --example consumer >&2 ||
        die "cargo build -p libmaru --example producer --example consumer failed"
    BINS="$BINS $TD/release/examples/producer $TD/release/examples/consumer"
else
    echo "e2e: libmaru has no producer/consumer examples yet: the guest reports them missing" >&2
fi
gcc -static -O2 -Wall -o "$CACHE/pfnmap" "$HERE/pfnmap.c" || die "gcc -static pfnmap.c failed"
gcc -shared -fPIC -O2 -Wall -o "$CACHE/pfnstop.so" "$HERE/pfnstop.c" -ldl || die "gcc pfnstop.c failed"
gcc -static -O2 -Wall -o "$CACHE/daxpoke" "$HERE/daxpoke.c" || die "gcc -static daxpoke.c failed"
export CACHE KVER BINS
PFNMAP=$CACHE/pfnmap PFNSTOP=$CACHE/pfnstop.so OUT=$CACHE/initrd.img "$HERE/build-initramfs.sh" ||
    die "building the initramfs failed"
phase_end
# share-run.sh uses the two phases above to prepare its guests, then boots them itself
if [ "${E2E_PREPARE_ONLY:-0}" = 1 ]; then echo "e2e: prepared: $CACHE/initrd.img, $QEMU" >&2; exit 0; fi

# 3. boot: q35 + CXL host bridge, one root port, one volatile Type-3 device (serial 0x1234)
#    under TCG (this project's machines have no usable KVM). -cpu ...,hypervisor=off: Linux >= 6.2
#    refuses to commit a CXL region under a hypervisor ("Failed to synchronize CPU cache state").
#    memhp_default_state=online_movable: hot-added memory comes online in ZONE_MOVABLE, the
#    common default on CXL hosts, so ZONE_NORMAL on node 1 can only be the daemon's doing.
phase_start boot
rm -f "$CACHE/cxl0.raw"; truncate -s 256M "$CACHE/cxl0.raw"
export QEMU_MODULE_DIR=$CACHE/qemu-root/usr/lib/x86_64-linux-gnu/qemu
set +e
timeout --foreground -k 10 "${E2E_TIMEOUT:-600}" "$QEMU" \
    -L "$CACHE/qemu-root/usr/share/qemu" -L /usr/share/seabios \
    -M q35,cxl=on -accel tcg,thread=multi -cpu max,hypervisor=off \
    -m "${E2E_MEM:-1G},maxmem=8G,slots=4" -smp "${E2E_SMP:-2}" \
    -nographic -no-reboot -net none \
    -kernel "$CACHE/kroot/boot/vmlinuz-$KVER" -initrd "$CACHE/initrd.img" \
    -append "console=ttyS0 loglevel=5 panic=-1 memhp_default_state=online_movable e2escript=${E2E_SCRIPT:-e2e.sh}" \
    -virtfs "local,path=$OUTDIR,mount_tag=hostout,security_model=none,id=ho" \
    -object "memory-backend-file,id=cxl-mem0,share=on,mem-path=$CACHE/cxl0.raw,size=256M" \
    -device pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1 \
    -device cxl-rp,port=0,bus=cxl.1,id=root_port13,chassis=0,slot=2 \
    -device cxl-type3,bus=root_port13,volatile-memdev=cxl-mem0,id=cxl-vmem0,sn=0x1234 \
    -M cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G \
    </dev/null 2>&1 | tee "$OUTDIR/console.log" | grep --line-buffered -E '^(E2E|INIT)|Kernel panic' >&2
QRC=${PIPESTATUS[0]}
set -e
rm -f "$CACHE/cxl0.raw"
phase_end

# 4. verdict
TOTAL=$(elapsed "$T0")
{ for l in "${TIMING[@]}"; do echo "$l"; done; echo "total ${TOTAL}s"; } > "$OUTDIR/timing.txt"
echo "e2e: timing: $(tr '\n' ' ' < "$OUTDIR/timing.txt")" >&2
echo "e2e: console log: $OUTDIR/console.log" >&2
SUMMARY=$(grep -a '^E2E-SUMMARY:' "$OUTDIR/console.log" | tail -1 | tr -d '\r' || true)
if [ "$QRC" = 124 ] || [ "$QRC" = 137 ]; then
    echo "e2e: FAIL: QEMU ran past ${E2E_TIMEOUT:-600}s and was killed" >&2; exit 1
fi
if [ -z "$SUMMARY" ]; then
    echo "e2e: FAIL: the guest did not finish its script (QEMU exit $QRC); see the console log" >&2; exit 1
fi
grep -a '^E2E-CHECK' "$OUTDIR/console.log" | tr -d '\r' >&2
echo "e2e: ${SUMMARY#E2E-SUMMARY: }" | sed 's/^e2e: /e2e: /' >&2
if grep -aq '^E2E-RESULT: PASS' "$OUTDIR/console.log"; then echo "e2e: PASS (${TOTAL}s)" >&2; exit 0; fi
echo "e2e: FAIL (${TOTAL}s)" >&2; exit 1
