# Maru multi-host end-to-end test, one guest's side (busybox sh). Two guests (A and B) boot at
# once with their CXL Type-3 expanders backed by ONE memory file on the host, so both see the
# same bytes behind their dax0.0; each runs maru-devd with a `shared: true` devdax pool and a
# `cluster:` section pointing at the etcd that share-run.sh started on the host's loopback
# (reached as 10.0.2.2 through QEMU's user-mode networking). The guests step through the test
# together through marker files in a 9p folder shared by both (/sync); every check prints one
# E2E-CHECK line, which the host counts.
#
# Kernel command line: e2erole=a|b  e2eboot=1|2 (B's second boot, after its QEMU was killed)
#                      e2eetcd=http://10.0.2.2:PORT
. /scripts/lib.sh
OUT=/out; [ -w $OUT ] || OUT=/tmp/out; mkdir -p $OUT
arg() { sed -n "s/.*[ ]$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
ME=$(arg e2erole); BOOT=$(arg e2eboot); ETCD=$(arg e2eetcd)
case "$ME" in a) OTHER=b;; *) ME=b; OTHER=a;; esac
NAME=guest-$ME
C=$ME; [ "${BOOT:-1}" = 1 ] || C=$ME$BOOT    # check-name prefix: a, b, b2
MNT=/mnt/maru; POOL=$MNT/shared; DEV=/dev/dax0.0; DLOG=$OUT/daemon.log; DPID=""
RACE_KEYS=16; RACE_SIZE=65536
log "start: $NAME boot ${BOOT:-1}, kernel $(uname -r), $(nproc) cpus, etcd $ETCD"

# --- sync with the other guest (and the host) through /sync ---------------------------------------
mkdir -p /sync
mount -t 9p -o trans=virtio,version=9p2000.L,cache=none hostsync /sync ||
    { fail $C-sync "cannot mount the shared 9p folder hostsync"; summary; exit 1; }
# mark NAME [TEXT]: tell the others this guest reached NAME (atomically: written, then renamed)
mark() { printf '%s\n' "${2:-}" > /sync/.$1.$ME.tmp && mv /sync/.$1.$ME.tmp /sync/$1.$ME; }
# await NAME [WHO] [SECONDS]: wait for WHO's (default: the other guest's) mark NAME
await() {
    w=${2:-$OTHER}; i=0; n=$((${3:-900} * 5))
    while [ ! -e /sync/$1.$w ]; do sleep 0.2; i=$((i+1)); [ $i -ge $n ] && return 1; done
    return 0
}
finish() {
    if [ -n "$DPID" ] && kill -0 $DPID 2>/dev/null; then daemon_stop; fi
    log "done"; summary; exit 0
}
# barrier NAME: both guests reached NAME (gives up after 15 minutes: the test fails there)
barrier() {
    mark $1
    await $1 || { fail $C-sync-$1 "guest $OTHER did not reach '$1' within 15 minutes"; finish; }
}

# --- daemon helpers ------------------------------------------------------------------------------
daemon_start() {
    mkdir -p $MNT
    log "starting maru-devd run --config /etc/maru/share.yaml"
    maru-devd run --config /etc/maru/share.yaml >> $DLOG 2>&1 &
    DPID=$!
    i=0; while [ $i -lt 360 ] && [ ! -d $POOL ] && kill -0 $DPID 2>/dev/null; do sleep 0.5; i=$((i+1)); done
    [ -d $POOL ] && grep -q " $MNT fuse" /proc/mounts
}
daemon_stop() {
    kill -TERM $DPID; i=0
    while [ $i -lt 60 ] && kill -0 $DPID 2>/dev/null; do sleep 0.5; i=$((i+1)); done
    if kill -0 $DPID 2>/dev/null; then
        fail $C-daemon-stop "maru-devd did not exit within 30 s of SIGTERM"; kill -KILL $DPID
    else
        wait $DPID; rc=$?
        if [ $rc = 0 ] && ! grep -q " $MNT fuse" /proc/mounts; then pass $C-daemon-stop "exit 0, $MNT unmounted"
        else fail $C-daemon-stop "exit status $rc, mount: $(grep " $MNT " /proc/mounts)"; fi
    fi
    DPID=""
    echo "--- $DLOG"; cat $DLOG; echo "---"
}
# publish SRC KEY: write SRC into a staging file and rename it to KEY; the writer keeps fd 3 on
# the staging file until the rename (a staging file whose last handle closes is reclaimed).
# Prints "won", "lost" (EEXIST: the other guest published KEY first) or "error: ...".
publish() {
    st=$POOL/.stage-$2-$ME
    err=$(sh -c "exec 3>$st && cat $1 >&3 && mv $st $POOL/$2" 2>&1)
    if [ -z "$err" ]; then echo won
    else rm -f $st; case "$err" in *"exists"*) echo lost;; *) echo "error: $err" | tr '\n' ' '; echo;; esac; fi
}
sum() { sha256sum < "$1" 2>/dev/null | cut -d' ' -f1; }
xa() { getfattr --absolute-names --only-values -n user.maru.devdax.$2 "$1" 2>/dev/null; }
# wait_key KEY [SECONDS]: until KEY is listed in the pool (the watch of etcd adopted it)
wait_key() { i=0; n=$((${2:-30} * 10)); while [ ! -e $POOL/$1 ]; do sleep 0.1; i=$((i+1)); [ $i -ge $n ] && return 1; done; return 0; }
# race_data K WRITER: the bytes WRITER (a host name) publishes as race key K
race_data() { yes "race$1@$2;" | head -c $RACE_SIZE; }
kv() { echo "$1" | sed -n "s/^$2=//p"; }
PFNSTOP=/usr/lib/pfnstop.so
# consumer_check TAG PREFIX WRITER-SUM: libmaru's example consumer, run as uid 65534, looks up
# PREFIX/0, maps the device node at the chunk's extent and verifies the producer's pattern; the
# pfnstop shim stops it before it unmaps, and pfnmap reads its first PFN: it must be dax0.0's
# physical start + the chunk's user.maru.devdax.offset
consumer_check() {
    f=$POOL/$2%2F0
    export PFNSTOP_PREFIX=$DEV
    LD_PRELOAD=$PFNSTOP /usr/bin/setpriv --reuid=65534 --regid=65534 --clear-groups \
        consumer $POOL $2 1 > $OUT/$1-consumer.log 2>&1 &
    CP=$!
    i=0; while [ $i -lt 240 ] && kill -0 $CP 2>/dev/null && ! grep -q "^pfnstop: pid=$CP " $OUT/$1-consumer.log; do
        sleep 0.25; i=$((i+1)); done
    cat $OUT/$1-consumer.log
    unset PFNSTOP_PREFIX
    if grep -Eq "$2/0: [0-9]+ bytes .*verified" $OUT/$1-consumer.log; then
        pass $1-consumer "uid 65534 mapped $2/0 through $DEV and verified the producer's pattern"
    else
        fail $1-consumer "consumer did not map and verify $2/0: $(grep -v '^$' $OUT/$1-consumer.log | tail -3 | tr '\n' ' ')"
        kill -KILL $CP 2>/dev/null; wait $CP 2>/dev/null; return 1
    fi
    addr=$(sed -n "s/^pfnstop: pid=$CP addr=\([^ ]*\) .*/\1/p" $OUT/$1-consumer.log | head -1)
    M=$(pfnmap pid $CP "$addr" 2>&1); echo "$M"
    kill -CONT $CP; wait $CP
    co=$(xa $f offset); res=$(cat /sys/bus/dax/devices/dax0.0/resource 2>/dev/null); fp=$(kv "$M" first_pfn)
    case "$co$res$fp" in
        *[!0-9a-fx]*|"") fail $1-consumer-extent "first PFN '$fp', dax0.0 at '$res', chunk offset '$co'";;
        *) [ $((fp * 4096)) = $((res + co)) ] &&
            pass $1-consumer-extent "its mapping starts at dax0.0 $res + the chunk's offset $co" ||
            fail $1-consumer-extent "first PFN $fp, dax0.0 at $res, chunk offset $co";;
    esac
}
# read_other TAG KEY SUM OFF LEN: KEY, written in the other guest, is listed here, reads SUM
# through the mount, has the same extent here, and the device node mapped at that extent holds
# the same bytes
read_other() {
    t0=$(t)
    if wait_key $2 30; then
        pass $1-listed "$2 listed (waited $(echo "$(t) - $t0" | bc) s after the writer's mark)"
    else
        fail $1-listed "$2 did not appear in $POOL within 30 s: $(ls $POOL | tr '\n' ' ')"; return 1
    fi
    s=$(sum $POOL/$2)
    [ "$s" = "$3" ] && pass $1-read "$2 reads byte-exact through the mount (sha256 ${s%${s#????????}}...)" ||
        fail $1-read "$2 reads sha256 '$s', the writer wrote $3"
    o=$(xa $POOL/$2 offset); l=$(xa $POOL/$2 len)
    [ "$o $l" = "$4 $5" ] && pass $1-extent "same extent in both guests: offset $o, len $l" ||
        fail $1-extent "extent here: offset '$o' len '$l'; in the writer's guest: $4 $5"
    size=$(stat -c %s $POOL/$2)
    d=$(daxpoke $DEV dump $o $size | sha256sum | cut -d' ' -f1)
    [ "$d" = "$3" ] && pass $1-devmap "a process mapping $DEV at offset $o reads the writer's $size bytes" ||
        fail $1-devmap "$DEV at offset $o, $size bytes: sha256 '$d', the writer wrote $3"
}
# race_verify TAG: every race key has exactly one winner (from both guests' reports) and reads
# the winner's bytes here
race_verify() {
    one=0; bad=""; wa=0; wb=0; rd=0; rbad=""
    k=0; while [ $k -lt $RACE_KEYS ]; do
        ra=$(sed -n "s/^race$k //p" /sync/race.a); rb=$(sed -n "s/^race$k //p" /sync/race.b)
        W=""
        if [ "$ra" = won ] && [ "$rb" = lost ]; then W=guest-a; wa=$((wa+1))
        elif [ "$ra" = lost ] && [ "$rb" = won ]; then W=guest-b; wb=$((wb+1))
        else bad="$bad race$k:a=$ra,b=$rb"; fi
        if [ -n "$W" ]; then
            one=$((one+1))
            if wait_key race$k 30 && [ "$(sum $POOL/race$k)" = "$(race_data $k $W | sha256sum | cut -d' ' -f1)" ]; then rd=$((rd+1))
            else rbad="$rbad race$k(winner $W)"; fi
        fi
        k=$((k+1))
    done
    [ $one = $RACE_KEYS ] && pass $1-race-one-winner "$RACE_KEYS keys published by both guests at once: one winner each (guest-a $wa, guest-b $wb), the loser got EEXIST" ||
        fail $1-race-one-winner "not exactly one winner:$bad"
    [ $rd = $one ] && [ $one -gt 0 ] && pass $1-race-bytes "all $rd keys read the winner's bytes here" ||
        fail $1-race-bytes "keys not reading the winner's bytes:$rbad"
}

# --- 1. setup: a host of the cluster ---------------------------------------------------------------
# Each guest is its own host: its own name and machine-id (systemd writes one at first boot).
hostname $NAME
case $ME in a) echo aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa;; *) echo bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb;; esac > /etc/machine-id
# The administrator's (or firmware's) step on each host: a volatile region over the expander,
# its dax0.0 in devdax mode; kmem is never loaded (it would online the shared memory as RAM).
loadmods cxl_acpi cxl_pci cxl_mem dax_cxl device_dax virtio_net
wait_for /sys/bus/cxl/devices/mem0 || fail $C-setup "no CXL memdev mem0 appeared"
run mk_ram_region || fail $C-setup "could not create the volatile CXL region"
wait_for /sys/bus/dax/devices/dax0.0 || fail $C-setup "no dax0.0 appeared for the region"
run daxctl reconfigure-device --mode=devdax dax0.0 >/dev/null
[ -c $DEV ] && pass $C-setup "$DEV: $(cat /sys/bus/dax/devices/dax0.0/size) bytes at $(cat /sys/bus/dax/devices/dax0.0/resource)" ||
    { fail $C-setup "no $DEV"; finish; }
# user-mode networking: QEMU's slirp is the 10.0.2.0/24 network, 10.0.2.2 the host's loopback
ip link set lo up; ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0
# etcd's /health over plain HTTP (busybox nc: the static busybox's wget crashes in its resolver)
hp=${ETCD#http://}; i=0; h=""
while [ $i -lt 20 ]; do
    h=$(printf 'GET /health HTTP/1.0\r\nHost: %s\r\n\r\n' "$hp" | nc -w 5 ${hp%:*} ${hp#*:} 2>&1 | tail -1)
    echo "$h" | grep -q '"health":"true"' && break
    sleep 1; i=$((i+1))
done
if echo "$h" | grep -q '"health":"true"'; then
    pass $C-etcd "etcd on the host answers at $ETCD: $h"
else
    fail $C-etcd "no answer from etcd at $ETCD: '$h' $(ip addr show eth0 | grep inet)"; finish
fi
mkdir -p /etc/maru
cat > /etc/maru/share.yaml <<YAML
mount: $MNT
cluster:
  etcd: [$ETCD]
  host: $NAME
  lease_ttl: 5s
pools:
  - name: shared
    source: {devdax: {device: dax0.0}}
    size: 100%
    group: 65534
    mode: "0770"
    shared: true
YAML
if maru-devd check-config /etc/maru/share.yaml > $OUT/check-config.txt 2>&1; then
    pass $C-check-config "$(grep -E '^cluster:|^ +shared:' $OUT/check-config.txt | cut -c1-90 | tr -s ' ' | tr '\n' ';')"
else
    fail $C-check-config "$(tail -5 $OUT/check-config.txt)"
fi
cat $OUT/check-config.txt

# --- 2. both daemons start at once: exactly one formats the blank device --------------------------
[ "${BOOT:-1}" = 1 ] && barrier start
if daemon_start; then
    pass $C-mounted "$POOL served by maru-devd (pid $DPID) as $NAME"
else
    fail $C-mounted "$POOL did not appear within 180 s: $(tail -5 $DLOG)"; finish
fi
F=no; grep -q "formatting a new pool for the cluster" $DLOG && F=yes
xp=$(getfattr --absolute-names --only-values -n user.maru.devdax.path $POOL 2>&1)
[ "$xp" = $DEV ] && pass $C-pool-xattr "user.maru.devdax.path=$xp" || fail $C-pool-xattr "user.maru.devdax.path is '$xp'"

if [ "${BOOT:-1}" = 1 ]; then
    mark formatted $F
    barrier up
    other=$(cat /sync/formatted.$OTHER)
    if [ "$ME" = a ]; then
        case "$F$other" in
            yesno) pass format-once "guest-a formatted the pool, guest-b opened it";;
            noyes) pass format-once "guest-b formatted the pool, guest-a opened it";;
            *) fail format-once "formatted: guest-$ME=$F, guest-$OTHER=$other (exactly one must)";;
        esac
    fi

    # --- 3. each guest publishes; the other lists it, reads it, maps it --------------------------
    dd if=/dev/urandom of=/tmp/from bs=1M count=3 2>/dev/null; S=$(sum /tmp/from)
    r=$(publish /tmp/from from-$ME)
    [ "$r" = won ] && [ "$(sum $POOL/from-$ME)" = "$S" ] && pass $C-publish "cp + mv published from-$ME (3 MiB)" ||
        fail $C-publish "publishing from-$ME: $r"
    mark sum "$S $(xa $POOL/from-$ME offset) $(xa $POOL/from-$ME len)"
    producer $POOL p-$ME 1 4194304 > $OUT/producer.log 2>&1; rc=$?; cat $OUT/producer.log
    [ $rc = 0 ] && grep -Eq "published (key )?p-$ME/0" $OUT/producer.log &&
        pass $C-producer "libmaru's producer published p-$ME/0 (4 MiB) on the shared pool" ||
        fail $C-producer "producer exit $rc: $(tail -2 $OUT/producer.log | tr '\n' ' ')"
    barrier published
    read_other $C-other from-$OTHER $(cat /sync/sum.$OTHER)
    consumer_check $C-other p-$OTHER

    # --- 4. same-key race: both publish race0..race15 at once --------------------------------------
    k=0; while [ $k -lt $RACE_KEYS ]; do race_data $k $NAME > /tmp/race$k; k=$((k+1)); done
    barrier race
    log "racing on $RACE_KEYS keys"
    : > /tmp/race.txt
    k=0; while [ $k -lt $RACE_KEYS ]; do echo "race$k $(publish /tmp/race$k race$k)" >> /tmp/race.txt; k=$((k+1)); done
    log "race done: $(grep -c ' won' /tmp/race.txt) won, $(grep -c ' lost' /tmp/race.txt) lost"
    cat /tmp/race.txt
    cp /tmp/race.txt /sync/.race.$ME.tmp && mv /sync/.race.$ME.tmp /sync/race.$ME
    barrier raced
    race_verify $C
    barrier verified

    # --- 5. B's QEMU is killed (no clean stop); A keeps serving; B boots again ------------------------
    if [ $ME = b ]; then
        log "asking the host to kill this guest's QEMU"
        mark killme
        sleep 100000
    fi
    await killed host 900 || { fail a-kill "the host did not kill guest-b"; finish; }
    log "guest-b was killed; waiting past its lease (5 s)"
    sleep 8
    dd if=/dev/urandom of=/tmp/after bs=1M count=2 2>/dev/null; SA=$(sum /tmp/after)
    r=$(publish /tmp/after after-kill-a)
    [ "$r" = won ] && [ "$(sum $POOL/after-kill-a)" = "$SA" ] &&
        pass a-serves-after-kill "guest-a publishes and reads after-kill-a with guest-b gone" ||
        fail a-serves-after-kill "publishing after-kill-a with guest-b gone: $r $(tail -3 $DLOG)"
    mark sum-after "$SA"
    set -- $(cat /sync/sum.b)
    [ "$(sum $POOL/from-b)" = "$1" ] && pass a-b-chunk-after-kill "guest-b's from-b still reads byte-exact" ||
        fail a-b-chunk-after-kill "from-b: $(ls -l $POOL/from-b 2>&1)"
    d=$(daxpoke $DEV dump "$(xa $POOL/from-b offset)" "$(stat -c %s $POOL/from-b)" | sha256sum | cut -d' ' -f1)
    [ "$d" = "$1" ] && pass a-b-devmap-after-kill "and through $DEV at its extent" ||
        fail a-b-devmap-after-kill "$DEV at from-b's extent: sha256 $d, expected $1"
    consumer_check a-b-after-kill p-b
    race_verify a-after-kill
    mark after-kill
    # B's second boot checks everything, publishes after-reboot-b, and waits for A to read it
    if await b2-published b 900; then
        S2=$(cat /sync/b2-published.b)
        if wait_key after-reboot-b 30 && [ "$(sum $POOL/after-reboot-b)" = "$S2" ]; then
            pass a-sees-rebooted-b "after-reboot-b, published by guest-b after its reboot, reads byte-exact here"
        else fail a-sees-rebooted-b "after-reboot-b: $(ls -l $POOL/after-reboot-b 2>&1)"; fi
    else
        fail a-sees-rebooted-b "guest-b did not come back within 15 minutes"
    fi
    mark done
    daemon_stop
    finish
fi

# --- B's second boot: the pool comes back with everything in it -----------------------------------
[ $F = no ] && pass b2-no-reformat "the pool was opened, not formatted again" ||
    fail b2-no-reformat "guest-b formatted the pool again: $(grep formatting $DLOG)"
grep -E "recovered|adopt" $DLOG | head -5
set -- $(cat /sync/sum.a); read_other b2-a from-a "$@"
set -- $(cat /sync/sum.b)
[ "$(sum $POOL/from-b)" = "$1" ] && [ "$(xa $POOL/from-b offset) $(xa $POOL/from-b len)" = "$2 $3" ] &&
    pass b2-own-chunk "its own from-b was recovered: same bytes, same extent" ||
    fail b2-own-chunk "from-b after the reboot: $(ls -l $POOL/from-b 2>&1) extent $(xa $POOL/from-b offset)"
consumer_check b2-a p-a
consumer_check b2-b p-b
race_verify b2
SA=$(cat /sync/sum-after.a)
wait_key after-kill-a 30 && [ "$(sum $POOL/after-kill-a)" = "$SA" ] &&
    pass b2-sees-published-while-down "after-kill-a, published while guest-b was down, reads byte-exact" ||
    fail b2-sees-published-while-down "after-kill-a: $(ls -l $POOL/after-kill-a 2>&1)"
dd if=/dev/urandom of=/tmp/after bs=1M count=1 2>/dev/null; S2=$(sum /tmp/after)
r=$(publish /tmp/after after-reboot-b)
[ "$r" = won ] && pass b2-publish "guest-b publishes again after its reboot" || fail b2-publish "after-reboot-b: $r"
mark b2-published "$S2"
await done a 300 || fail b2-sync-done "guest-a did not finish reading after-reboot-b"
daemon_stop
finish
