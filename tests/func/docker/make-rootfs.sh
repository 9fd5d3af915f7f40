#!/bin/sh
# make-rootfs.sh TARFILE: a root filesystem of /bin/busybox (static) and
# symlinks for its applets, as a tar for "docker import". No registry is
# reachable from the test machines, so this is the only base image.
set -eu
[ $# -eq 1 ] || { echo "usage: make-rootfs.sh TARFILE" >&2; exit 2; }
if ldd /bin/busybox >/dev/null 2>&1; then
	echo "make-rootfs.sh: /bin/busybox is not static (install busybox-static)" >&2
	exit 1
fi
root=$(mktemp -d "${TMPDIR:-/tmp}/ds-rootfs-XXXXXX")
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/www" "$root/proc" "$root/sys" "$root/dev"
chmod 1777 "$root/tmp"
cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
	[ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
echo 'root:x:0:0:root:/:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"
tar -C "$root" -cf "$1" .
