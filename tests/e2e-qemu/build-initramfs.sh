#!/bin/bash
# Build the guest's busybox initramfs: the 6.12 kernel's CXL/DAX/9p modules, the cxl/daxctl/
# ndctl/jq tools, Maru's binaries (dynamically linked: their shared libraries and the loader
# are copied in, found with ldd), the test's helpers (pfnmap, daxpoke, pfnstop.so) and the
# guest scripts.
# Adapted from the team's recipe in shared/cxl-qemu/build-initramfs.sh.
#   env: CACHE (download cache, has kroot/), KVER, OUT (initrd path), BINS (host binaries to
#        put in /usr/bin, space separated), PFNMAP (static helper), PFNSTOP (LD_PRELOAD shim)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${CACHE:-$HERE/.cache}
KVER=${KVER:-6.12.95+deb12-amd64}
KROOT=$CACHE/kroot
STAGE=$CACHE/initramfs-root
OUT=${OUT:-$CACHE/initrd.img}
BINS=${BINS:-}
PFNMAP=${PFNMAP:-$CACHE/pfnmap}
PFNSTOP=${PFNSTOP:-$CACHE/pfnstop.so}
[ -f "$KROOT/boot/vmlinuz-$KVER" ] || { echo "build-initramfs: no kernel in $KROOT (run fetch.sh)" >&2; exit 1; }
depmod -b "$KROOT" "$KVER"
rm -rf "$STAGE"
mkdir -p "$STAGE"/{bin,sbin,etc,proc,sys,dev,tmp,run,mnt,out,lib64,usr/bin,lib/x86_64-linux-gnu,lib/modules/$KVER,scripts}
cp /bin/busybox "$STAGE/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$STAGE/bin/$a"; done
rm -f "$STAGE"/bin/{modprobe,lsmod,insmod,rmmod,modinfo,depmod}

# copy_bin SRC: a binary into /usr/bin plus every shared library ldd names
copy_bin() {
    local src=$1 dst
    dst=$STAGE/usr/bin/$(basename "$1")
    cp -L "$src" "$dst"
    case "$(basename "$src")" in maru-*|producer|consumer|pfnmap) strip --strip-debug "$dst" 2>/dev/null || true;; esac
    ldd "$src" 2>/dev/null | grep -o '/[^ ]*' | while read -r l; do
        mkdir -p "$STAGE/$(dirname "$l")"; cp -L "$l" "$STAGE/$l"
    done
}
for b in /usr/bin/cxl /usr/bin/daxctl /usr/bin/ndctl /usr/bin/kmod /usr/bin/jq /usr/bin/setpriv /usr/bin/getfattr $BINS; do
    copy_bin "$b"
done
command -v fusermount3 >/dev/null && copy_bin "$(command -v fusermount3)"
cp -L /lib64/ld-linux-x86-64.so.2 "$STAGE/lib64/"
for t in modprobe lsmod insmod rmmod modinfo depmod; do ln -sf /usr/bin/kmod "$STAGE/sbin/$t"; done
cp "$PFNMAP" "$STAGE/usr/bin/pfnmap"
cp "$CACHE/daxpoke" "$STAGE/usr/bin/daxpoke"
mkdir -p "$STAGE/usr/lib"; cp "$PFNSTOP" "$STAGE/usr/lib/pfnstop.so"
echo "root:x:0:0:root:/:/bin/sh" > "$STAGE/etc/passwd"
echo "nogroup:x:65534:" > "$STAGE/etc/group"; echo "root:x:0:" >> "$STAGE/etc/group"
echo "nobody:x:65534:65534:nobody:/:/bin/false" >> "$STAGE/etc/passwd"

# kernel modules and their dependencies (virtio_net: the NIC of share-run.sh's user-mode network)
MODS="cxl_acpi cxl_pci cxl_mem cxl_pmem dax_cxl device_dax kmem 9p 9pnet_virtio virtio_pci virtio_net"
for m in $MODS; do
    modprobe -C /dev/null -d "$KROOT" -S "$KVER" --show-depends "$m" | awk '$1=="insmod"{print $2}'
done | sort -u | while read -r f; do
    rel=${f#"$KROOT"/}; mkdir -p "$STAGE/$(dirname "$rel")"; cp "$f" "$STAGE/$rel"
done
cp "$KROOT/lib/modules/$KVER"/modules.{order,builtin,builtin.modinfo} "$STAGE/lib/modules/$KVER/"
depmod -b "$STAGE" "$KVER"
cp "$HERE"/guest/*.sh "$STAGE/scripts/"

cat > "$STAGE/init" <<'INIT'
#!/bin/sh
export PATH=/sbin:/bin:/usr/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp; mount -t tmpfs tmpfs /run
echo "INIT: up $(cut -d' ' -f1 /proc/uptime)s kernel $(uname -r)"
for m in virtio_pci 9pnet_virtio 9p; do modprobe $m; done
if mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 hostout /out 2>/dev/null; then
    echo "INIT: 9p /out mounted"
fi
SCRIPT=$(sed -n 's/.*e2escript=\([^ ]*\).*/\1/p' /proc/cmdline); SCRIPT=${SCRIPT:-e2e.sh}
echo "INIT: running /scripts/$SCRIPT"
sh /scripts/$SCRIPT 2>&1
echo "INIT: script rc=$? at $(cut -d' ' -f1 /proc/uptime)s"
sync; echo "INIT: poweroff"; poweroff -f
INIT
chmod +x "$STAGE/init"
(cd "$STAGE" && find . | cpio -o -H newc --quiet | gzip -1) > "$OUT"
echo "build-initramfs: $OUT ($(du -h "$OUT" | cut -f1)), modules: $(find "$STAGE/lib/modules" -name '*.ko*' | wc -l)" >&2
