#!/bin/sh
# A target on a filesystem too small for the release: exit 3 with the
# figures, the tree unchanged. Covers both refusals: before objects are
# staged (the release does not fit) and before the commit (the staged
# objects fit but the copies the tree needs do not).
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/func/lib.sh"

: "${APPLY_DRIVER:=$(dirname "$DISTSYNC")/../tests/unit/apply-driver}"
[ -x "$APPLY_DRIVER" ] || skip_all "no apply-driver at $APPLY_DRIVER"
need_root
need_prog mount umount sha256sum

D=$T_DIR
mkdir -p "$D/mnt"
mount -t tmpfs -o size=8m,mode=0755 distsync-nospace "$D/mnt" || skip_all "cannot mount a tmpfs"
at_exit "umount '$D/mnt'"

mkdir -p "$D/A/sub" "$D/B" "$D/C"
head -c 1000000 /dev/urandom > "$D/A/sub/one"
echo small > "$D/A/small"
# B: 12 MB of new content, more than the filesystem holds.
head -c 12000000 /dev/urandom > "$D/B/big"
# C: one 1 MB object used by six paths: staging fits, the five copies do not.
head -c 1000000 /dev/urandom > "$D/C/o1"
for i in 2 3 4 5 6; do cp "$D/C/o1" "$D/C/o$i"; done
tree_digest "$D/A" > "$D/A.digest"

drv() { "$APPLY_DRIVER" "$@"; }
expect_exit 0 "release A fits" drv "$D/mnt/t" "$D/A" A
tree_digest "$D/mnt/t" > "$D/got"
ok "tree is A" cmp "$D/got" "$D/A.digest"

expect_exit 3 "a 12 MB release on an 8 MB filesystem: exit 3" drv "$D/mnt/t" "$D/B" B
last_output > "$D/out"
check "the message gives the figures" "grep -q 'bytes needed.*available' '$D/out'"
tree_digest "$D/mnt/t" > "$D/got"
ok "tree unchanged" cmp "$D/got" "$D/A.digest"

expect_exit 3 "staged content fits, its copies do not: exit 3" drv "$D/mnt/t" "$D/C" C
tree_digest "$D/mnt/t" > "$D/got"
ok "tree unchanged" cmp "$D/got" "$D/A.digest"
check "no journal or prep left" "[ ! -e '$D/mnt/.t.distsync/journal' ] && [ ! -e '$D/mnt/.t.distsync/prep' ]"
check "current release is still A" "[ \"\$(cat '$D/mnt/.t.distsync/current.id')\" = A ]"

done_testing
