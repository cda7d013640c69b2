# Maru end-to-end test inside the 6.12 guest with one emulated volatile CXL Type-3 expander
# (memdev serial 0x1234, 256 MiB). Every check prints one E2E-CHECK line; the host (run.sh)
# reads E2E-SUMMARY / E2E-RESULT from the console log. Run by the initramfs' /init.
. /scripts/lib.sh
OUT=/out; [ -w $OUT ] || OUT=/tmp/out; mkdir -p $OUT
SERIAL=4660   # 0x1234, the -device cxl-type3,sn= of run.sh
log "start: kernel $(uname -r), $(nproc) cpus, $(grep MemTotal /proc/meminfo)"

# --- 1. administrator setup: CXL stack up, a volatile region, its dax device in devdax mode ----
# kmem is loaded only after dax0.0 is in devdax mode: loaded earlier it would online the region
# as system RAM on its own, and the daemon's reconfiguration would have nothing to do.
loadmods cxl_acpi cxl_pci cxl_mem dax_cxl device_dax
wait_for /sys/bus/cxl/devices/mem0 || fail setup "no CXL memdev mem0 appeared"
run mk_ram_region || fail setup "could not create the volatile CXL region"
wait_for /sys/bus/dax/devices/dax0.0 || fail setup "no dax0.0 appeared for the region"
run daxctl reconfigure-device --mode=devdax dax0.0 >/dev/null
loadmods kmem
ls -l /dev/dax* 2>&1
log "setup done"

# --- 2. discovery: the expander, its region and dax0.0 ------------------------------------------
if maru-devd discover --json > $OUT/discover-0.json 2> $OUT/discover-0.err &&
    jq -e '.memdevs and .regions and .dax_regions and .nodes' $OUT/discover-0.json >/dev/null 2>&1; then
    pass discover-runs
    J=$OUT/discover-0.json
    MEMDEV=$(jq -r ".memdevs[] | select(.serial == $SERIAL) | .memdev" $J)
    [ -n "$MEMDEV" ] && pass discover-memdev "memdev $MEMDEV serial 0x1234" ||
        fail discover-memdev "no memdev with serial 0x1234 in: $(jq -c '[.memdevs[] | {memdev, serial}]' $J)"
    REGION=$(jq -r ".regions[] | select(.mode == \"ram\" and (.memdevs | index(\"$MEMDEV\"))) | .region" $J | head -1)
    [ -n "$REGION" ] && pass discover-region "ram region $REGION on $MEMDEV, size $(jq -r ".regions[] | select(.region==\"$REGION\") | .size" $J)" ||
        fail discover-region "no ram region over $MEMDEV in: $(jq -c '[.regions[] | {region, mode, memdevs}]' $J)"
    DAXMODE=$(jq -r ".dax_regions[] | select(.cxl_region == \"$REGION\") | .devices[] | select(.chardev == \"dax0.0\") | .mode" $J)
    [ "$DAXMODE" = devdax ] && pass discover-dax "dax0.0 of $REGION in devdax mode" ||
        fail discover-dax "dax0.0 of region '$REGION' has mode '$DAXMODE', expected devdax"
else
    fail discover-runs "maru-devd discover --json failed or printed no topology: $(tail -3 $OUT/discover-0.err; head -c 300 $OUT/discover-0.json)"
fi
maru-devd discover > $OUT/discover-0.txt 2>&1; cat $OUT/discover-0.txt

# --- 3. the daemon: dax0.0 -> system RAM, ZONE_NORMAL, node 1, a numa pool there --------------
MNT=/mnt/maru; POOL=$MNT/cxl; NODE=1; DPID=""
daemon_start() {
    mkdir -p /etc/maru $MNT
    cat > /etc/maru/maru.yaml <<YAML
mount: $MNT
pools:
  - name: cxl
    source: {numa: {node: $NODE, reconfigure_devdax: dax0.0}}
    size: 128MiB
YAML
    maru-devd check-config /etc/maru/maru.yaml > $OUT/check-config.txt 2>&1 &&
        pass check-config "the numa pool's plan is accepted" ||
        fail check-config "maru-devd check-config refused the config: $(tail -5 $OUT/check-config.txt)"
    cat $OUT/check-config.txt
    log "starting maru-devd run"
    maru-devd run --config /etc/maru/maru.yaml > $OUT/daemon.log 2>&1 &
    DPID=$!
    i=0; while [ $i -lt 240 ] && [ ! -d $POOL ] && kill -0 $DPID 2>/dev/null; do sleep 0.5; i=$((i+1)); done
    [ -d $POOL ] && grep -q " $MNT fuse" /proc/mounts
}
# zone_check NODE: every memory block of NODE online and in ZONE_NORMAL (read from sysfs directly,
# independently of the daemon's own discovery)
zone_check() {
    n=0; bad=""
    for b in /sys/devices/system/node/node$1/memory*; do
        [ -e "$b/state" ] || continue; n=$((n+1))
        st=$(cat $b/state); z=$(cat $b/valid_zones)
        [ "$st" = online ] && [ "$z" = Normal ] || bad="$bad $(basename $b):$st/$z"
    done
    echo "node$1: $n memory blocks${bad:+, not online-Normal:$bad}"
    [ $n -gt 0 ] && [ -z "$bad" ]
}
daemon_stop() {
    kill -TERM $DPID; i=0
    while [ $i -lt 60 ] && kill -0 $DPID 2>/dev/null; do sleep 0.5; i=$((i+1)); done
    if kill -0 $DPID 2>/dev/null; then
        fail daemon-stop "maru-devd did not exit within 30 s of SIGTERM"; kill -KILL $DPID
    else
        wait $DPID; rc=$?
        if [ $rc = 0 ] && ! grep -q " $MNT fuse" /proc/mounts; then pass daemon-stop "exit 0, $MNT unmounted"
        else fail daemon-stop "exit status $rc, mount still there: $(grep " $MNT " /proc/mounts)"; fi
    fi
    echo "--- daemon log"; cat $OUT/daemon.log; echo "---"
}
# wait_line FILE PATTERN: wait (up to 60 s) until FILE has a line matching PATTERN
wait_line() { i=0; while [ $i -lt 120 ]; do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.5; i=$((i+1)); done; return 1; }
# in_region PFNMAP-OUTPUT: all PFNs inside the CXL region's host physical address range
in_region() {
    R=/sys/bus/cxl/devices/region0; base=$(cat $R/resource); size=$(cat $R/size)
    lo=$(echo "$1" | sed -n 's/^min_pfn=//p'); hi=$(echo "$1" | sed -n 's/^max_pfn=//p')
    echo "region0 [$base, +$size), pfns [$lo, $hi]"
    [ $((lo * 4096)) -ge $((base)) ] && [ $(((hi + 1) * 4096)) -le $((base + size)) ]
}
kv() { echo "$1" | sed -n "s/^$2=//p"; }
# chunk_checks: one process publishes a chunk, another (unprivileged) maps it; both mappings
# must be the same physical pages, on node $NODE, inside the CXL region. The libmaru examples
# unmap and exit on their own: the pfnstop.so shim stops each one right before it unmaps the
# chunk, pfnmap reads the mapping from outside (as root), then SIGCONT lets it finish.
PFNSTOP=/usr/lib/pfnstop.so
stopped_addr() { sed -n "s/^pfnstop: pid=$2 addr=\([^ ]*\) .*/\1/p" "$1" | head -1; }
chunk_checks() {
    if [ ! -x /usr/bin/producer ] || [ ! -x /usr/bin/consumer ]; then
        fail chunk-pfn "NOT YET AVAILABLE: the libmaru examples producer/consumer are not in this build"; return
    fi
    export PFNSTOP_PREFIX=$POOL/
    LD_PRELOAD=$PFNSTOP producer $POOL e2e 1 8388608 > $OUT/producer.log 2>&1 &
    PP=$!
    wait_line $OUT/producer.log "^pfnstop: pid=$PP "; cat $OUT/producer.log
    if grep -q "^published e2e/0 (8388608 bytes)" $OUT/producer.log; then
        pass chunk-publish "producer (pid $PP) published e2e/0, 8 MiB"
    else
        fail chunk-publish "producer did not publish e2e/0: $(tail -3 $OUT/producer.log)"; kill -KILL $PP; return
    fi
    A=$(pfnmap pid $PP "$(stopped_addr $OUT/producer.log $PP)"); ra=$?
    echo "producer's mapping:"; echo "$A"
    CHUNK=$(ls $POOL | head -1); echo "chunk file: $POOL/$CHUNK"
    XN=$(getfattr --absolute-names --only-values -n user.maru.node "$POOL/$CHUNK" 2>&1)
    [ "$XN" = "$NODE" ] && pass chunk-xattr-node "user.maru.node=$XN" ||
        fail chunk-xattr-node "user.maru.node of $POOL/$CHUNK is '$XN', expected $NODE"
    LD_PRELOAD=$PFNSTOP /usr/bin/setpriv --reuid=65534 --regid=65534 --clear-groups \
        consumer $POOL e2e 1 > $OUT/consumer.log 2>&1 &
    CP=$!
    wait_line $OUT/consumer.log "^pfnstop: pid=$CP "; cat $OUT/consumer.log
    if grep -q "^e2e/0: 8388608 bytes at .*, verified" $OUT/consumer.log; then
        pass chunk-map "consumer (pid $CP, uid 65534) mapped e2e/0 and verified its bytes"
    else
        fail chunk-map "consumer (uid 65534) did not map and verify e2e/0: $(tail -3 $OUT/consumer.log)"
        kill -KILL $PP $CP; return
    fi
    B=$(pfnmap pid $CP "$(stopped_addr $OUT/consumer.log $CP)"); rb=$?
    echo "consumer's mapping:"; echo "$B"
    grep "$CHUNK" /proc/$CP/numa_maps
    if [ $ra = 0 ] && [ $rb = 0 ] && [ "$(kv "$A" digest)" = "$(kv "$B" digest)" ] &&
        [ "$(kv "$A" pages)" = "$(kv "$B" pages)" ]; then
        pass chunk-pfn "same $(kv "$A" pages) physical pages in both processes (PFN digest $(kv "$A" digest))"
    else
        fail chunk-pfn "PFNs differ or pages missing: producer rc=$ra $(echo $A), consumer rc=$rb $(echo $B)"
    fi
    [ "$(kv "$B" nodes)" = "$NODE:$(kv "$B" pages)" ] && pass chunk-node "all $(kv "$B" pages) pages on node $NODE (move_pages)" ||
        fail chunk-node "pages per node: '$(kv "$B" nodes)', expected all on node $NODE"
    if ir=$(in_region "$B"); then pass chunk-in-region "$ir"; else fail chunk-in-region "$ir"; fi
    kill -CONT $PP $CP
    wait $PP; rp=$?; wait $CP; rc=$?
    [ $rp = 0 ] && [ $rc = 0 ] && pass chunk-exit "producer and consumer exited 0" ||
        fail chunk-exit "producer exit $rp, consumer exit $rc"
    unset PFNSTOP_PREFIX
}
if ! maru-devd run --help >/dev/null 2>&1; then
    fail daemon "NOT YET AVAILABLE: this maru-devd has no 'run' subcommand"
elif daemon_start; then
    pass daemon-mounted "pool $POOL served by maru-devd (pid $DPID)"
    drv=$(basename "$(readlink /sys/bus/dax/devices/dax0.0/driver)")
    [ "$drv" = kmem ] && pass daemon-reconfigure "dax0.0 bound to kmem (system RAM)" ||
        fail daemon-reconfigure "dax0.0 is bound to '$drv', expected kmem"
    if zc=$(zone_check $NODE); then pass node-zone-normal "$zc"; else fail node-zone-normal "$zc"; fi
    grep -E "MemTotal|MemFree" /sys/devices/system/node/node$NODE/meminfo
    # the pool's private tmpfs, bound to the node (possibly in the daemon's own mount namespace)
    TM=$(grep " tmpfs " /proc/$DPID/mounts | grep "mpol=bind:$NODE" | head -1)
    [ -n "$TM" ] && pass pool-tmpfs-mpol "$TM" ||
        fail pool-tmpfs-mpol "no tmpfs with mpol=bind:$NODE among the daemon's mounts: $(grep ' tmpfs ' /proc/$DPID/mounts | tr '\n' ';')"
    if maru-devd discover --json > $OUT/discover-1.json 2>&1; then
        J=$OUT/discover-1.json
        jq -e '.dax_regions[].devices[] | select(.chardev == "dax0.0") | .mode == "system-ram" and .movable == false' $J >/dev/null &&
            pass discover-system-ram "dax0.0 reported as system-ram, not movable" ||
            fail discover-system-ram "dax0.0 as discovered: $(jq -c '.dax_regions[].devices[] | select(.chardev == "dax0.0")' $J)"
        jq -e ".nodes[] | select(.node == $NODE) | .cxl and (.zones | keys == [\"Normal\"])" $J >/dev/null &&
            pass discover-node "node $NODE reported CXL-backed, all blocks in Normal" ||
            fail discover-node "node $NODE as discovered: $(jq -c ".nodes[] | select(.node == $NODE)" $J)"
    else
        fail discover-system-ram "maru-devd discover --json failed after reconfiguration"
    fi
    chunk_checks
    daemon_stop
else
    fail daemon-mounted "the pool directory $POOL did not appear within 120 s: $(tail -5 $OUT/daemon.log)"
    [ -n "$DPID" ] && kill $DPID 2>/dev/null
fi

# --- 4. devdax memory source: the device back in devdax mode -------------------------------------
# (administrator step: offline node 1's memory and rebind dax0.0 to device_dax)
if [ "$(basename "$(readlink /sys/bus/dax/devices/dax0.0/driver)")" = kmem ]; then
    run daxctl reconfigure-device --mode=devdax --force dax0.0 >/dev/null
fi
if [ -c /dev/dax0.0 ]; then pass devdax-back "dax0.0 is a devdax character device again"
else fail devdax-back "dax0.0 could not be put back into devdax mode"; fi
cat > /etc/maru/devdax.yaml <<YAML
mount: $MNT
pools:
  - name: dax
    source: {devdax: {device: dax0.0}}
    size: 128MiB
YAML
if maru-devd check-config /etc/maru/devdax.yaml > $OUT/check-devdax.txt 2>&1; then
    fail devdax-pool "maru-devd accepts the devdax source now, but this test's devdax step is not written yet (tests/e2e-qemu/guest/e2e.sh)"
else
    skip devdax-pool "the devdax memory source (issue 7 items 1-2) is not implemented yet; check-config says: $(grep -v '^$' $OUT/check-devdax.txt | head -2 | tr '\n' ' ')"
fi

log "done"
summary
