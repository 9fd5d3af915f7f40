#!/bin/sh
# Crash safety of the apply: SIGKILL at every fault-injection point of an
# apply (and of a rollback, and of a recovery), and at random moments; after
# recovery the target must be release A or release B byte for byte, and a
# successful run must leave no staging or prep debris.
#
# Needs a build configured with --enable-fault-injection. Point DISTSYNC at
# that build's src/distsync (its tests/unit/apply-driver is used), or set
# APPLY_DRIVER to the driver directly. A normal build skips (even under CI).
# CRASH_REQUIRED=1 turns the skip of a normal build into a failure under
# CI=true. CRASH_RANDOM=N sets the number of random-moment kills (default 30).
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/func/lib.sh"

: "${APPLY_DRIVER:=$(dirname "$DISTSYNC")/../tests/unit/apply-driver}"
[ -x "$APPLY_DRIVER" ] || skip_all "no apply-driver at $APPLY_DRIVER"
if ! "$APPLY_DRIVER" --fault; then
	# The normal build cannot crash on demand; CI runs this script again
	# against a fault-injection build (CRASH_REQUIRED=1 makes this a failure).
	[ "${CRASH_REQUIRED:-0}" = 1 ] && skip_all "not a fault-injection build"
	echo "1..0 # SKIP not a fault-injection build (configure --enable-fault-injection and point DISTSYNC at it)"
	exit 0
fi
need_prog sha256sum

D=$T_DIR
drv() { "$APPLY_DRIVER" --quiet --keep 2 "$@"; }

# Release A and B differ in every way an apply handles: content, mode,
# deletion, addition, moved and duplicated content, symlinks, and type
# changes file<->dir<->symlink, nested directories appearing and going.
mkdir -p "$D/A/keep" "$D/A/gone/deep" "$D/A/todir" "$D/A/mods"
for i in 1 2 3 4 5; do echo "keep $i" > "$D/A/keep/f$i"; done
echo "old content" > "$D/A/changed"
echo "moves" > "$D/A/gone/deep/moved"
echo "gone" > "$D/A/gone/x"
echo "file becomes dir" > "$D/A/fileto"
echo "in dir" > "$D/A/todir/y"
echo "mode" > "$D/A/mods/m"
chmod 644 "$D/A/mods/m"
ln -s keep/f1 "$D/A/lnk"
echo "becomes link" > "$D/A/tolink"
head -c 300000 /dev/urandom > "$D/A/big"

mkdir -p "$D/B/keep" "$D/B/fileto/sub" "$D/B/mods" "$D/B/new/deeper"
for i in 1 2 3 4 5; do echo "keep $i" > "$D/B/keep/f$i"; done
echo "new content" > "$D/B/changed"
echo "moves" > "$D/B/new/deeper/moved"
echo "moves" > "$D/B/new/dup"
echo "now a dir" > "$D/B/fileto/sub/z"
echo "dir became file" > "$D/B/todir"
echo "mode" > "$D/B/mods/m"
chmod 755 "$D/B/mods/m"
ln -s keep/f2 "$D/B/lnk"
ln -s changed "$D/B/tolink"
head -c 200000 /dev/urandom > "$D/B/big"
cp "$D/B/big" "$D/B/big.copy"
chmod 600 "$D/B/big.copy"

tree_digest "$D/A" > "$D/A.digest"
tree_digest "$D/B" > "$D/B.digest"

# A pristine site at release A (target + state), copied for every trial.
drv "$D/base/t" "$D/A" A >/dev/null || { echo "Bail out! cannot apply release A"; exit 1; }
ok "release A applied" cmp "$D/A.digest" "$(tree_digest "$D/base/t" > "$D/x.digest"; echo "$D/x.digest")"

reset_site() {
	rm -rf "$D/site"
	cp -a "$D/base" "$D/site"
}

# is_a_or_b: the recovered tree is exactly A or exactly B.
is_a_or_b() {
	tree_digest "$D/site/t" > "$D/got.digest"
	cmp -s "$D/got.digest" "$D/A.digest" || cmp -s "$D/got.digest" "$D/B.digest"
}

no_debris() {
	s="$D/site/.t.distsync"
	[ ! -e "$s/journal" ] && [ ! -e "$s/prep" ] && [ -z "$(ls -A "$s/staging")" ]
}

# Count the points one full apply A -> B reaches.
reset_site
rm -f "$D/trace"
DISTSYNC_FAULT_TRACE="$D/trace" drv "$D/site/t" "$D/B" B >/dev/null
total=$(wc -l < "$D/trace")
tree_digest "$D/site/t" > "$D/got.digest"
ok "apply A -> B without a fault gives B" cmp "$D/got.digest" "$D/B.digest"
ok "no staging or prep debris after a successful apply" no_debris
DISTSYNC_FAULT_TRACE="$D/trace" drv --rollback "$D/site/t" >/dev/null
tree_digest "$D/site/t" > "$D/got.digest"
ok "rollback B -> A gives A" cmp "$D/got.digest" "$D/A.digest"
distinct=$(awk '{print $2}' "$D/trace" | sort -u | wc -l)
check "at least 50 distinct fault points reached by apply + rollback ($distinct)" "[ $distinct -ge 50 ]"
echo "# apply A -> B reaches $total points"

# Kill at each point, recover (site_open), check, then finish the apply.
bad=0
bad_finish=0
killed=0
k=1
while [ "$k" -le "$total" ]; do
	reset_site
	DISTSYNC_FAULT=$k drv "$D/site/t" "$D/B" B >/dev/null 2>&1
	[ $? -eq 137 ] && killed=$((killed + 1))
	drv --verify "$D/site/t" >/dev/null 2>&1
	if ! is_a_or_b; then
		bad=$((bad + 1))
		echo "# point $k ($(sed -n "${k}p" "$D/trace")): tree is neither A nor B"
		diff "$D/A.digest" "$D/got.digest" | head -5 | sed 's/^/# /'
	fi
	drv "$D/site/t" "$D/B" B >/dev/null 2>&1
	tree_digest "$D/site/t" > "$D/got.digest"
	if ! cmp -s "$D/got.digest" "$D/B.digest" || ! no_debris; then
		bad_finish=$((bad_finish + 1))
		echo "# point $k: a second apply after recovery did not give a clean B"
	fi
	k=$((k + 1))
done
check "killed at each of $total points ($killed killed)" "[ $killed -eq $total ]"
check "after each kill and recovery the tree is A or B ($bad bad)" "[ $bad -eq 0 ]"
check "after each recovery a new apply gives B with no debris ($bad_finish bad)" "[ $bad_finish -eq 0 ]"

# Kill the rollback at each point.
reset_site
drv "$D/site/t" "$D/B" B >/dev/null
rm -rf "$D/baseB"
cp -a "$D/site" "$D/baseB"
rm -f "$D/trace"
DISTSYNC_FAULT_TRACE="$D/trace" drv --rollback "$D/site/t" >/dev/null
rtotal=$(wc -l < "$D/trace")
bad=0
k=1
while [ "$k" -le "$rtotal" ]; do
	rm -rf "$D/site"
	cp -a "$D/baseB" "$D/site"
	DISTSYNC_FAULT=$k drv --rollback "$D/site/t" >/dev/null 2>&1
	drv --verify "$D/site/t" >/dev/null 2>&1
	is_a_or_b || { bad=$((bad + 1)); echo "# rollback point $k: neither A nor B"; }
	k=$((k + 1))
done
check "rollback killed at each of $rtotal points: always A or B ($bad bad)" "[ $bad -eq 0 ]"

# Kill the recovery itself: crash the apply late, then crash its recovery.
bad=0
for k in $((total / 2)) $((total * 3 / 4)) $((total - 3)); do
	for j in 1 3 5 8 12; do
		reset_site
		DISTSYNC_FAULT=$k drv "$D/site/t" "$D/B" B >/dev/null 2>&1
		DISTSYNC_FAULT=$j drv --verify "$D/site/t" >/dev/null 2>&1
		drv --verify "$D/site/t" >/dev/null 2>&1
		is_a_or_b || { bad=$((bad + 1)); echo "# apply point $k, recovery point $j: neither A nor B"; }
	done
done
check "a crash during recovery is recovered too ($bad bad)" "[ $bad -eq 0 ]"

# Random moments: a bigger release, killed after a random delay.
mkdir -p "$D/C"
cp -a "$D/B/." "$D/C/"
i=0
while [ $i -lt 400 ]; do
	mkdir -p "$D/C/many/d$((i % 20))"
	echo "file $i $(date +%N)" > "$D/C/many/d$((i % 20))/f$i"
	i=$((i + 1))
done
tree_digest "$D/C" > "$D/B.digest"	# "B" is now C for is_a_or_b
bad=0
n=0
runs=${CRASH_RANDOM:-30}
while [ $n -lt "$runs" ]; do
	reset_site
	"$APPLY_DRIVER" --quiet --keep 2 "$D/site/t" "$D/C" C >/dev/null 2>&1 &
	pid=$!
	sleep "0.0$(awk -v s="$n$$" 'BEGIN { srand(s); printf "%02d", int(rand() * 99) }')"
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	drv --verify "$D/site/t" >/dev/null 2>&1
	is_a_or_b || { bad=$((bad + 1)); echo "# random kill $n: neither A nor C"; }
	n=$((n + 1))
done
check "$runs kills at random moments: always A or C ($bad bad)" "[ $bad -eq 0 ]"

done_testing
