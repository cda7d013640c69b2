# Helpers sourced by the guest scripts (busybox sh). Adapted from shared/cxl-qemu/guest/lib.sh.
NPASS=0; NFAIL=0; NSKIP=0
t() { cut -d' ' -f1 /proc/uptime; }
log() { echo "E2E: [$(t)s] $*"; }
run() { echo "+ $*"; "$@"; rc=$?; [ $rc = 0 ] || echo "!! rc=$rc: $*"; return $rc; }
# check results: one line each, counted for the summary the host reads
pass() { NPASS=$((NPASS+1)); echo "E2E-CHECK PASS $1${2:+: $2}"; }
fail() { NFAIL=$((NFAIL+1)); echo "E2E-CHECK FAIL $1: $2"; }
skip() { NSKIP=$((NSKIP+1)); echo "E2E-CHECK SKIP $1: $2"; }
# expect NAME CMD...: pass if CMD succeeds, fail otherwise (its output is shown)
expect() { n=$1; shift; if out=$("$@" 2>&1); then pass "$n"; else fail "$n" "'$*' failed: $(echo "$out" | tail -5)"; fi; }
summary() {
    echo "E2E-SUMMARY: $NPASS passed, $NFAIL failed, $NSKIP skipped"
    if [ "$NFAIL" = 0 ] && [ "$NPASS" -gt 0 ]; then echo "E2E-RESULT: PASS"; else echo "E2E-RESULT: FAIL"; fi
}
loadmods() { for m in "$@"; do modprobe "$m" || echo "!! modprobe $m failed"; done; }
wait_for() { i=0; while [ $i -lt "${2:-40}" ]; do [ -e "$1" ] && return 0; sleep 0.5; i=$((i+1)); done; return 1; }
# mk_ram_region: create and commit a 1-way volatile region over all of mem0's ram capacity
# through sysfs (cxl-cli v76 has no 'ram' regions). This is the administrator's setup step on
# a real host (or the platform firmware's); the daemon starts from the region it finds.
mk_ram_region() {
    D=/sys/bus/cxl/devices; ED=""
    for d in $D/decoder*.*; do case "$(readlink -f "$d")" in */endpoint*) ED=$(basename "$d"); break;; esac; done
    SZ=$(cat $D/mem0/ram/size); R=$(cat $D/decoder0.0/create_ram_region)
    echo "mk_ram_region: $R endpoint-decoder=$ED size=$SZ"
    rc=0
    { echo "$R" > $D/decoder0.0/create_ram_region && echo 256 > $D/$R/interleave_granularity &&
      echo 1 > $D/$R/interleave_ways && echo ram > $D/$ED/mode && echo "$SZ" > $D/$ED/dpa_size &&
      echo "$SZ" > $D/$R/size && echo "$ED" > $D/$R/target0 && echo 1 > $D/$R/commit &&
      echo "$R" > /sys/bus/cxl/drivers/cxl_region/bind; } || rc=1
    sleep 1; return $rc
}
