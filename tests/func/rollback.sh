#!/bin/sh
# Rollback goes back, never forward: three releases pushed, each rollback
# undoes one more apply, and the first rollback's release is not what a
# second one returns to; 'distsync releases HOST' lists what a host keeps, in
# the order rollbacks reach it; 'rollback --release ID' picks any backup kept
# (forward too), and a rollback after it undoes it. The same over SSH, where
# the list comes through the protocol from the host's own state.
# A hand edit to a file the last apply left alone is kept by a rollback.
. "$top_srcdir/tests/func/lib.sh"
. "$top_srcdir/tests/func/lib-sshd.sh"
sshd_need

cd "$T_DIR" || exit 1
sshd_start a || { echo "not ok 1 - sshd starts"; echo "1..1"; exit 1; }
mkdir -p home/.ssh
HOME="$T_DIR/home"
unset SSH_AUTH_SOCK
export HOME
mkdir -p repo/dist && cd repo || exit 1
# What the remote site keeps is its own to say (serve --site-config).
printf 'distribution: {name: rb}\nhosts:\n  remote: {path: %s, keep_backups: 3}\n' \
	"$T_DIR/remote/distribution" > "$T_DIR/remote-site.yml"
{
	printf 'distribution:\n  name: rb\nhosts:\n'
	printf '  demo: {path: ../site/distribution, keep_backups: 3}\n'
	sshd_host_yml a remote "$T_DIR/remote/distribution"
	printf '    site_config: %s\n' "$T_DIR/remote-site.yml"
} > distsync.yml
D() { "$DISTSYNC" "$@"; }
keep() { cp "$T_DIR/.last.out" "$T_DIR/out"; }
out_has() { grep -q -- "$1" "$T_DIR/out"; }
content() { cat "$1/app.txt" 2>/dev/null || echo "(none)"; }

for v in 2026.12.0 2026.12.1 2026.12.2; do
	echo "app $v" > dist/app.txt
	ok "release $v" D release --version $v
done

for h in demo remote; do
	if [ $h = demo ]; then tree=../site/distribution; else tree=$T_DIR/remote/distribution; fi
	for v in 2026.12.0 2026.12.1 2026.12.2; do
		expect_exit 0 "$h: push $v" D push $h --release $v
	done
	expect_exit 0 "$h: releases lists what the host keeps" D releases $h
	keep
	ok "$h: current 2026.12.2" out_has "^$h: current 2026.12.2"
	ok "$h: the next rollback goes to 2026.12.1" out_has "rollback 1 (next) *2026.12.1"
	ok "$h: then to 2026.12.0" out_has "rollback 2 *2026.12.0"
	expect_exit 0 "$h: releases --json" D releases --json $h
	keep
	ok "$h: the JSON lists the kept backups in rollback order" python3 -c "
import json
h = json.load(open('$T_DIR/out'))[0]
assert h['current'] == '2026.12.2', h
steps = [(k['id'], k['rollback_step']) for k in h['kept']]
assert steps[:2] == [('2026.12.1', 1), ('2026.12.0', 2)], steps
"
	expect_exit 0 "$h: rollback" D rollback $h
	keep
	ok "$h: rollback 2026.12.2 -> 2026.12.1" out_has "rollback 2026.12.2 -> 2026.12.1"
	check "$h: the tree is 2026.12.1" "[ \"\$(cat $tree/app.txt)\" = 'app 2026.12.1' ]"
	expect_exit 0 "$h: rollback again" D rollback $h
	keep
	ok "$h: goes back to 2026.12.0, not forward" out_has "rollback 2026.12.1 -> 2026.12.0"
	check "$h: the tree is 2026.12.0" "[ \"\$(cat $tree/app.txt)\" = 'app 2026.12.0' ]"
	expect_exit 0 "$h: releases after two rollbacks" D releases $h
	keep
	ok "$h: 2026.12.2 is kept for --release" out_has "release only *2026.12.2"
	ok "$h: the empty target is the next rollback" out_has "rollback 1 (next) *(none)"
	expect_exit 0 "$h: rollback --release 2026.12.2" D rollback --release 2026.12.2 $h
	keep
	ok "$h: 2026.12.0 -> 2026.12.2" out_has "rollback 2026.12.0 -> 2026.12.2"
	check "$h: the tree is 2026.12.2" "[ \"\$(cat $tree/app.txt)\" = 'app 2026.12.2' ]"
	expect_exit 0 "$h: a rollback undoes the --release" D rollback $h
	keep
	ok "$h: back to 2026.12.0" out_has "rollback 2026.12.2 -> 2026.12.0"
	expect_exit 1 "$h: rollback --release of a state not kept fails" \
		D rollback --release 1999.1 $h
	keep
	ok "$h: and says no backup of it is kept" out_has "no backup of release 1999.1 is kept"
	ok "$h: its line names the release the host keeps" out_has "^$h: rollback 2026.12.0 -> 1999.1"
	check "$h: the tree is unchanged" "[ \"\$(cat $tree/app.txt)\" = 'app 2026.12.0' ]"
	expect_exit 2 "$h: --release takes a release id" D rollback --release ../x $h
done

# A hand edit to a file the last apply left alone: no backup holds its
# release content, so a rollback keeps it as it is, says so, and verify still
# reports it; a push of the release restores it.
echo "other" > dist/other.txt
echo "app 2026.12.3" > dist/app.txt
ok "release 2026.12.3 (other.txt added)" D release --version 2026.12.3
echo "app 2026.12.4" > dist/app.txt
ok "release 2026.12.4 (only app.txt changed)" D release --version 2026.12.4
expect_exit 0 "edit: push 2026.12.3" D push demo --release 2026.12.3
expect_exit 0 "edit: push 2026.12.4" D push demo --release 2026.12.4
echo "by hand" > ../site/distribution/other.txt
expect_exit 0 "edit: rollback over a hand edit the last apply did not make" D rollback demo
keep
ok "edit: rollback 2026.12.4 -> 2026.12.3" out_has "rollback 2026.12.4 -> 2026.12.3"
ok "edit: it names the kept file and why" out_has "'other.txt' was changed by hand since the last apply, which left it alone: kept as it is"
ok "edit: not reported as overwritten" sh -c "! grep -q 'drift.*overwritten' '$T_DIR/out'"
check "edit: app.txt is 2026.12.3's" "[ \"\$(cat ../site/distribution/app.txt)\" = 'app 2026.12.3' ]"
check "edit: other.txt kept as edited" "[ \"\$(cat ../site/distribution/other.txt)\" = 'by hand' ]"
expect_exit 1 "edit: verify still reports it" D verify demo
keep
ok "edit: verify names other.txt" out_has "drift *other.txt"
expect_exit 0 "edit: a push of the release restores it" D push demo --release 2026.12.3
check "edit: other.txt restored" "[ \"\$(cat ../site/distribution/other.txt)\" = 'other' ]"

done_testing
