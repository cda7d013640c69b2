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
REGION=${REGION:-region0}

# --- helpers for the daemon and chunk steps -------------------------------------------------------
MNT=/mnt/maru; NODE=1; DPID=""
# daemon_start CONFIG POOLDIR LOG: start maru-devd run; true once POOLDIR is served
daemon_start() {
    mkdir -p $MNT
    log "starting maru-devd run --config $1"
    maru-devd run --config "$1" >> "$3" 2>&1 &
    DPID=$!
    i=0; while [ $i -lt 240 ] && [ ! -d "$2" ] && kill -0 $DPID 2>/dev/null; do sleep 0.5; i=$((i+1)); done
    [ -d "$2" ] && grep -q " $MNT fuse" /proc/mounts
}
# daemon_stop TAG LOG: SIGTERM; the daemon must exit 0 and unmount
daemon_stop() {
    kill -TERM $DPID; i=0
    while [ $i -lt 60 ] && kill -0 $DPID 2>/dev/null; do sleep 0.5; i=$((i+1)); done
    if kill -0 $DPID 2>/dev/null; then
        fail $1-daemon-stop "maru-devd did not exit within 30 s of SIGTERM"; kill -KILL $DPID
    else
        wait $DPID; rc=$?
        if [ $rc = 0 ] && ! grep -q " $MNT fuse" /proc/mounts; then pass $1-daemon-stop "exit 0, $MNT unmounted"
        else fail $1-daemon-stop "exit status $rc, mount still there: $(grep " $MNT " /proc/mounts)"; fi
    fi
    echo "--- $2"; cat "$2"; echo "---"
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
# wait_line FILE PATTERN [PID]: wait (up to 60 s, or until process PID is gone) until FILE has a
# line matching PATTERN
wait_line() {
    i=0
    while [ $i -lt 120 ]; do
        grep -q "$2" "$1" 2>/dev/null && return 0
        [ -n "$3" ] && ! kill -0 "$3" 2>/dev/null && { grep -q "$2" "$1" 2>/dev/null; return; }
        sleep 0.5; i=$((i+1))
    done
    return 1
}
# in_region PFNMAP-OUTPUT: all PFNs inside the CXL region's host physical address range
in_region() {
    R=/sys/bus/cxl/devices/$REGION; base=$(cat $R/resource); size=$(cat $R/size)
    lo=$(kv "$1" min_pfn); hi=$(kv "$1" max_pfn)
    echo "$REGION [$base, +$size), pfns [$lo, $hi]"
    [ -n "$lo" ] && [ $((lo * 4096)) -ge $((base)) ] && [ $(((hi + 1) * 4096)) -le $((base + size)) ]
}
kv() { echo "$1" | sed -n "s/^$2=//p"; }
PFNSTOP=/usr/lib/pfnstop.so
stopped_addr() { sed -n "s/^pfnstop: pid=$2 addr=\([^ ]*\) .*/\1/p" "$1" | head -1; }
# chunk_checks TAG POOLDIR MAP-PREFIXES NODE: the libmaru example `producer` publishes a chunk,
# `consumer`, as uid 65534, maps it; both mappings must be the same physical pages, inside the
# CXL region, and (NODE not "-") on NODE. The examples map, use, unmap and exit on their own: the
# pfnstop.so shim stops each one right before it unmaps a mapping under MAP-PREFIXES, pfnmap
# reads that mapping from outside (as root), then SIGCONT lets the process finish.
# Returns 1 when it stopped early (sets A and B to the two pfnmap reports otherwise).
chunk_checks() {
    tag=$1; pool=$2; node=$4; A=""; B=""; CHUNK=""
    if [ ! -x /usr/bin/producer ] || [ ! -x /usr/bin/consumer ]; then
        fail $tag-chunk "NOT YET AVAILABLE: the libmaru examples producer/consumer are not in this build"; return 1
    fi
    export PFNSTOP_PREFIX=$3
    LD_PRELOAD=$PFNSTOP producer $pool e2e 1 8388608 > $OUT/$tag-producer.log 2>&1 &
    PP=$!
    wait_line $OUT/$tag-producer.log "^pfnstop: pid=$PP " $PP; cat $OUT/$tag-producer.log
    if grep -Eq "published (key )?e2e/0" $OUT/$tag-producer.log; then
        pass $tag-chunk-publish "producer (pid $PP) published e2e/0, 8 MiB"
    else
        fail $tag-chunk-publish "producer did not publish e2e/0: $(grep -v '^$' $OUT/$tag-producer.log | tail -3 | tr '\n' ' ')"
        kill -KILL $PP 2>/dev/null; return 1
    fi
    A=$(pfnmap pid $PP "$(stopped_addr $OUT/$tag-producer.log $PP)"); ra=$?
    echo "producer's mapping:"; echo "$A"
    CHUNK=""; for f in "$pool"/e2e*; do [ -f "$f" ] && CHUNK=${f##*/} && break; done
    echo "chunk file: $pool/$CHUNK"
    getfattr --absolute-names -d -m - "$pool/$CHUNK" 2>&1
    if [ "$node" != - ]; then
        XN=$(getfattr --absolute-names --only-values -n user.maru.node "$pool/$CHUNK" 2>&1)
        [ "$XN" = "$node" ] && pass $tag-chunk-xattr-node "user.maru.node=$XN" ||
            fail $tag-chunk-xattr-node "user.maru.node of $pool/$CHUNK is '$XN', expected $node"
    fi
    LD_PRELOAD=$PFNSTOP /usr/bin/setpriv --reuid=65534 --regid=65534 --clear-groups \
        consumer $pool e2e 1 > $OUT/$tag-consumer.log 2>&1 &
    CP=$!
    wait_line $OUT/$tag-consumer.log "^pfnstop: pid=$CP " $CP; cat $OUT/$tag-consumer.log
    if grep -Eq "e2e/0: 8388608 bytes .*verified" $OUT/$tag-consumer.log; then
        pass $tag-chunk-map "consumer (pid $CP, uid 65534) mapped e2e/0 and verified its bytes"
    else
        fail $tag-chunk-map "consumer (uid 65534) did not map and verify e2e/0: $(grep -v '^$' $OUT/$tag-consumer.log | tail -3 | tr '\n' ' ')"
        kill -KILL $PP $CP 2>/dev/null; return 1
    fi
    B=$(pfnmap pid $CP "$(stopped_addr $OUT/$tag-consumer.log $CP)"); rb=$?
    echo "consumer's mapping:"; echo "$B"
    grep "$CHUNK\|/dev/dax" /proc/$CP/numa_maps
    # pfnmap exits 1 when a page is absent or has no node; for devdax (ZONE_DEVICE) pages
    # move_pages reports no node, so only presence counts there
    [ "$node" = - ] && { [ "$(kv "$A" present)" = "$(kv "$A" pages)" ] && ra=0; [ "$(kv "$B" present)" = "$(kv "$B" pages)" ] && rb=0; }
    if [ $ra = 0 ] && [ $rb = 0 ] && [ -n "$(kv "$A" digest)" ] && [ "$(kv "$A" digest)" = "$(kv "$B" digest)" ] &&
        [ "$(kv "$A" pages)" = "$(kv "$B" pages)" ]; then
        pass $tag-chunk-pfn "same $(kv "$A" pages) physical pages in both processes (PFN digest $(kv "$A" digest))"
    else
        fail $tag-chunk-pfn "PFNs differ or pages missing: producer rc=$ra $(echo $A), consumer rc=$rb $(echo $B)"
    fi
    if [ "$node" != - ]; then
        [ "$(kv "$B" nodes)" = "$node:$(kv "$B" pages)" ] && pass $tag-chunk-node "all $(kv "$B" pages) pages on node $node (move_pages)" ||
            fail $tag-chunk-node "pages per node: '$(kv "$B" nodes)', expected all on node $node"
    fi
    if ir=$(in_region "$B"); then pass $tag-chunk-in-region "$ir"; else fail $tag-chunk-in-region "$ir"; fi
    kill -CONT $PP $CP
    wait $PP; rp=$?; wait $CP; rc=$?
    [ $rp = 0 ] && [ $rc = 0 ] && pass $tag-chunk-exit "producer and consumer exited 0" ||
        fail $tag-chunk-exit "producer exit $rp, consumer exit $rc"
    unset PFNSTOP_PREFIX
    return 0
}
# restart_check TAG CONFIG POOLDIR LOG: after a daemon restart the published chunk is still
# there and still reads back right
restart_check() {
    if daemon_start "$2" "$3" "$4"; then
        if consumer "$3" e2e 1 > $OUT/$1-consumer-restart.log 2>&1 &&
            grep -Eq "e2e/0: 8388608 bytes .*verified" $OUT/$1-consumer-restart.log; then
            pass $1-restart "after a daemon restart e2e/0 is found and verified"
        else
            fail $1-restart "after a daemon restart: $(tail -3 $OUT/$1-consumer-restart.log)"
        fi
        if type restart_extra_$1 >/dev/null 2>&1; then restart_extra_$1; fi
        daemon_stop $1-restart "$4"
    else
        fail $1-restart "the daemon did not serve $3 again after a restart: $(tail -5 "$4")"
        [ -n "$DPID" ] && kill $DPID 2>/dev/null
    fi
}

# --- 3. numa pool: the daemon turns dax0.0 into ZONE_NORMAL system RAM on node 1 ----------------
mkdir -p /etc/maru
cat > /etc/maru/numa.yaml <<YAML
mount: $MNT
pools:
  - name: cxl
    source: {numa: {node: $NODE, reconfigure_devdax: dax0.0}}
    size: 128MiB
YAML
POOL=$MNT/cxl; DLOG=$OUT/daemon-numa.log
if ! maru-devd run --help >/dev/null 2>&1; then
    fail numa-daemon "NOT YET AVAILABLE: this maru-devd has no 'run' subcommand"
else
    maru-devd check-config /etc/maru/numa.yaml > $OUT/check-numa.txt 2>&1 &&
        pass numa-check-config "the numa pool's plan is accepted" ||
        fail numa-check-config "maru-devd check-config refused the config: $(tail -5 $OUT/check-numa.txt)"
    cat $OUT/check-numa.txt
    if daemon_start /etc/maru/numa.yaml $POOL $DLOG; then
        pass numa-daemon-mounted "pool $POOL served by maru-devd (pid $DPID)"
        drv=$(basename "$(readlink /sys/bus/dax/devices/dax0.0/driver)")
        [ "$drv" = kmem ] && pass numa-reconfigure "dax0.0 bound to kmem (system RAM)" ||
            fail numa-reconfigure "dax0.0 is bound to '$drv', expected kmem"
        if zc=$(zone_check $NODE); then pass numa-zone-normal "$zc"; else fail numa-zone-normal "$zc"; fi
        grep -E "MemTotal|MemFree" /sys/devices/system/node/node$NODE/meminfo
        # the pool's private tmpfs, bound to the node (possibly in the daemon's own mount namespace)
        TM=$(grep " tmpfs " /proc/$DPID/mounts | grep "mpol=bind:$NODE" | head -1)
        [ -n "$TM" ] && pass numa-tmpfs-mpol "$TM" ||
            fail numa-tmpfs-mpol "no tmpfs with mpol=bind:$NODE among the daemon's mounts: $(grep ' tmpfs ' /proc/$DPID/mounts | tr '\n' ';')"
        if maru-devd discover --json > $OUT/discover-1.json 2>&1; then
            J=$OUT/discover-1.json
            jq -e '.dax_regions[].devices[] | select(.chardev == "dax0.0") | .mode == "system-ram" and .movable == false' $J >/dev/null &&
                pass numa-discover-system-ram "dax0.0 reported as system-ram, not movable" ||
                fail numa-discover-system-ram "dax0.0 as discovered: $(jq -c '.dax_regions[].devices[] | select(.chardev == "dax0.0")' $J)"
            jq -e ".nodes[] | select(.node == $NODE) | .cxl and (.zones | keys == [\"Normal\"])" $J >/dev/null &&
                pass numa-discover-node "node $NODE reported CXL-backed, all blocks in Normal" ||
                fail numa-discover-node "node $NODE as discovered: $(jq -c ".nodes[] | select(.node == $NODE)" $J)"
        else
            fail numa-discover-system-ram "maru-devd discover --json failed after reconfiguration"
        fi
        chunk_checks numa $POOL $POOL/ $NODE
        daemon_stop numa $DLOG
        restart_check numa /etc/maru/numa.yaml $POOL $DLOG
    else
        fail numa-daemon-mounted "the pool directory $POOL did not appear within 120 s: $(tail -5 $DLOG)"
        [ -n "$DPID" ] && kill $DPID 2>/dev/null
    fi
fi
log "numa pool done"
grep -E " (fuse|tmpfs) " /proc/mounts

# --- 4. devdax pool: the device back in devdax mode ----------------------------------------------
# (administrator step: offline node 1's memory and rebind dax0.0 to device_dax)
if [ "$(basename "$(readlink /sys/bus/dax/devices/dax0.0/driver)")" = kmem ]; then
    run daxctl reconfigure-device --mode=devdax --force dax0.0 >/dev/null
fi
if [ -c /dev/dax0.0 ]; then pass devdax-back "dax0.0 is a devdax character device again"
else fail devdax-back "dax0.0 could not be put back into devdax mode"; fi
# The numa pool's tmpfs outlives the daemon (that is how chunks survive a restart). Offlining
# node 1 above migrated its pages elsewhere; show where they are now, then drop it.
for f in /run/maru/pools/cxl/*; do
    [ -f "$f" ] && echo "info: leftover numa-pool file $f after the device went back to devdax: $(pfnmap map "$f" 2>/dev/null | grep '^nodes=')"
done
grep -q " /run/maru/pools/cxl " /proc/mounts && umount /run/maru/pools/cxl
cat > /etc/maru/devdax.yaml <<YAML
mount: $MNT
pools:
  - name: dax
    source: {devdax: {device: dax0.0}}
    size: 100%
    group: 65534
    mode: "0770"
YAML
POOL=$MNT/dax; DLOG=$OUT/daemon-devdax.log; DEV=/dev/dax0.0
# restart_extra_devdax: what must survive a restart of a devdax pool (called by restart_check)
restart_extra_devdax() {
    grep -q "recovered" $DLOG && pass devdax-restart-recovered "$(grep "recovered" $DLOG | tail -1)" ||
        fail devdax-restart-recovered "the daemon log says nothing about recovered chunks: $(tail -3 $DLOG)"
    [ "$(sha256sum < $POOL/blob)" = "$BLOBSUM" ] && pass devdax-restart-cp "blob reads back the same after a restart" ||
        fail devdax-restart-cp "blob differs after a restart"
    o=$(getfattr --absolute-names --only-values -n user.maru.devdax.offset $POOL/blob 2>&1)
    [ "$o" = "$BLOBOFF" ] && pass devdax-restart-extent "blob's extent unchanged (offset $o)" ||
        fail devdax-restart-extent "blob's offset was $BLOBOFF, is '$o' after a restart"
}
if ! maru-devd check-config /etc/maru/devdax.yaml > $OUT/check-devdax.txt 2>&1 &&
    grep -q "not supported" $OUT/check-devdax.txt; then
    skip devdax-pool "the devdax memory source (issue 7 items 1-2) is not implemented yet; check-config says: $(grep -v '^$' $OUT/check-devdax.txt | head -2 | tr '\n' ' ')"
else
    cat $OUT/check-devdax.txt
    grep -q "OK" $OUT/check-devdax.txt && pass devdax-check-config "the devdax pool's plan is accepted" ||
        fail devdax-check-config "maru-devd check-config refused the devdax config: $(tail -5 $OUT/check-devdax.txt)"
    # The device was system RAM a moment ago: its first bytes hold leftovers. The daemon must
    # refuse to mount over them (never format over data silently) and leave them as they are.
    if ! daxpoke $DEV blank 0 8192; then
        b1=$(daxpoke $DEV get 1); b2=$(daxpoke $DEV get 4097)
        maru-devd run --config /etc/maru/devdax.yaml > $OUT/daemon-devdax-refused.log 2>&1 &
        RP=$!; i=0
        while [ $i -lt 120 ] && kill -0 $RP 2>/dev/null && [ ! -d $POOL ]; do sleep 0.5; i=$((i+1)); done
        if kill -0 $RP 2>/dev/null; then
            fail devdax-foreign-refused "maru-devd is serving a devdax pool over leftover data: $(tail -3 $OUT/daemon-devdax-refused.log)"
            kill -TERM $RP; wait $RP
        else
            wait $RP; rc=$?
            [ $rc != 0 ] && [ "$(daxpoke $DEV get 1)" = "$b1" ] && [ "$(daxpoke $DEV get 4097)" = "$b2" ] &&
                pass devdax-foreign-refused "exit $rc, device untouched: $(grep -v '^$' $OUT/daemon-devdax-refused.log | tail -1)" ||
                fail devdax-foreign-refused "exit $rc (or the device bytes changed): $(tail -3 $OUT/daemon-devdax-refused.log)"
        fi
        # the administrator's way to reuse the device for a new pool
        if maru-devd format-devdax --help >/dev/null 2>&1; then
            maru-devd format-devdax --config /etc/maru/devdax.yaml --pool dax --yes > $OUT/format-devdax.txt 2>&1 &&
                pass devdax-format "$(tail -1 $OUT/format-devdax.txt)" ||
                fail devdax-format "maru-devd format-devdax failed: $(tail -3 $OUT/format-devdax.txt)"
        else
            echo "info: this maru-devd has no format-devdax subcommand: wiping the first 2 MiB of $DEV instead"
            daxpoke $DEV zero 0 0x200000
        fi
    fi
    if daemon_start /etc/maru/devdax.yaml $POOL $DLOG; then
        pass devdax-daemon-mounted "pool $POOL on $DEV served by maru-devd (pid $DPID)"
        xp=$(getfattr --absolute-names --only-values -n user.maru.devdax.path $POOL 2>&1)
        [ "$xp" = $DEV ] && pass devdax-pool-xattr "user.maru.devdax.path=$xp" ||
            fail devdax-pool-xattr "user.maru.devdax.path of $POOL is '$xp', expected $DEV"
        perm=$(stat -c '%u:%g %a' $DEV)
        [ "$perm" = "0:65534 660" ] && pass devdax-node-perms "$DEV is $perm (owner:group mode)" ||
            fail devdax-node-perms "$DEV is '$perm', expected 0:65534 660 from the pool's group and mode"
        # plain tools through the mount: the writer keeps fd 3 on the staging file until it is
        # published (a staging file whose last handle closes is reclaimed)
        dd if=/dev/urandom of=/tmp/blob bs=1M count=3 2>/dev/null; BLOBSUM=$(sha256sum < /tmp/blob)
        sh -c "exec 3>>$POOL/.s && cp /tmp/blob $POOL/.s && mv $POOL/.s $POOL/blob" 2>&1
        [ "$(sha256sum < $POOL/blob 2>&1)" = "$BLOBSUM" ] && pass devdax-cp "cp, mv and sha256sum through the mount" ||
            fail devdax-cp "$POOL/blob does not read back what cp wrote"
        [ "$(/usr/bin/setpriv --reuid=65534 --regid=65534 --clear-groups sh -c "sha256sum < $POOL/blob" 2>&1)" = "$BLOBSUM" ] &&
            pass devdax-cp-unprivileged "uid 65534 reads the same bytes" ||
            fail devdax-cp-unprivileged "uid 65534 cannot read $POOL/blob or reads other bytes"
        BLOBOFF=$(getfattr --absolute-names --only-values -n user.maru.devdax.offset $POOL/blob 2>&1)
        bl=$(getfattr --absolute-names --only-values -n user.maru.devdax.len $POOL/blob 2>&1)
        case "$BLOBOFF" in *[!0-9]*|"") al=1;; *) al=$((BLOBOFF % 2097152));; esac
        [ "$al" = 0 ] && [ "$bl" = 4194304 ] &&
            pass devdax-xattrs "blob at device offset $BLOBOFF, extent $bl bytes" ||
            fail devdax-xattrs "blob's extent: offset '$BLOBOFF', len '$bl' (expected a 2 MiB multiple and 4194304)"
        if chunk_checks devdax $POOL $DEV -; then
            # the consumer's mapping starts exactly at the chunk's extent in the device
            co=$(getfattr --absolute-names --only-values -n user.maru.devdax.offset "$POOL/$CHUNK" 2>&1)
            res=$(cat /sys/bus/dax/devices/dax0.0/resource 2>/dev/null)
            fp=$(kv "$B" first_pfn)
            case "$co$res$fp" in
                *[!0-9a-fx]*|"") fail devdax-chunk-extent "first PFN '$fp', dax0.0 at '$res', chunk offset '$co'";;
                *) [ $((fp * 4096)) = $((res + co)) ] &&
                    pass devdax-chunk-extent "first page at $res + $co, the chunk's extent" ||
                    fail devdax-chunk-extent "first PFN $fp, dax0.0 at $res, chunk offset $co";;
            esac
        fi
        daemon_stop devdax $DLOG
        restart_check devdax /etc/maru/devdax.yaml $POOL $DLOG
    else
        fail devdax-daemon-mounted "the pool directory $POOL did not appear within 120 s: $(tail -5 $DLOG)"
        [ -n "$DPID" ] && kill $DPID 2>/dev/null
    fi
fi

log "done"
summary
