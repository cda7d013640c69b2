#!/bin/bash
# Download (not install) the Debian bookworm-backports kernel 6.12 and QEMU 10 packages and
# unpack them under $CACHE (kroot/, qemu-root/). Idempotent: does nothing when both are there.
# The archive address is taken from this machine's own apt sources, so nothing is hard-coded.
# Adapted from the team's recipe in shared/cxl-qemu/fetch-bpo.sh.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${CACHE:-$HERE/.cache}
KVER=${KVER:-6.12.95+deb12-amd64}
if [ -f "$CACHE/kroot/boot/vmlinuz-$KVER" ] && [ -x "$CACHE/qemu-root/usr/bin/qemu-system-x86_64" ]; then
    exit 0
fi
uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$uri" ] || uri=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$uri" ] || { echo "fetch: no Debian archive address found in /etc/apt sources" >&2; exit 1; }
A=$CACHE/apt-bpo; mkdir -p "$A/lists/partial" "$A/cache/archives/partial"
echo "deb $uri bookworm-backports main" > "$A/sources.list"
# APT::Sandbox::User=root: the downloads land in our own cache (not readable by _apt), and apt
# then needs no world-writable /tmp for its signature check either
O=(-o "Dir::Etc::SourceList=$A/sources.list" -o Dir::Etc::SourceParts=/dev/null -o APT::Sandbox::User=root
   -o "Dir::State::Lists=$A/lists" -o "Dir::Cache=$A/cache")
echo "fetch: apt-get update (bookworm-backports, private lists under $A)" >&2
apt-get "${O[@]}" update -qq
mkdir -p "$CACHE/debs"; cd "$CACHE/debs"
echo "fetch: downloading linux-image-$KVER and qemu-system-x86 (bookworm-backports)" >&2
apt-get "${O[@]}" download -qq "linux-image-$KVER" qemu-system-x86/bookworm-backports \
    qemu-system-common/bookworm-backports qemu-system-data/bookworm-backports
rm -rf "$CACHE/kroot" "$CACHE/qemu-root"; mkdir -p "$CACHE/kroot" "$CACHE/qemu-root"
dpkg -x "linux-image-${KVER}"_*.deb "$CACHE/kroot"
for d in qemu-system-*.deb; do dpkg -x "$d" "$CACHE/qemu-root"; done
echo "fetch: kernel $CACHE/kroot/boot/vmlinuz-$KVER, qemu $CACHE/qemu-root/usr/bin/qemu-system-x86_64" >&2
