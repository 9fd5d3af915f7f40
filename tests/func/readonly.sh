#!/bin/sh
# status, verify, plan and releases change nothing on a site: on a host whose
# path does not exist they make no directory (locally and over SSH), and on a
# site with an interrupted apply they make no lock file, recover nothing and
# run nothing, but report what is pending; the next push completes it.
. "$top_srcdir/tests/func/lib.sh"
. "$top_srcdir/tests/func/lib-sshd.sh"
sshd_need

cd "$T_DIR" || exit 1
sshd_start a || { echo "not ok 1 - sshd starts"; echo "1..1"; exit 1; }
mkdir -p home/.ssh
HOME="$T_DIR/home"
unset SSH_AUTH_SOCK
export HOME
M="$T_DIR/markers"
mkdir -p "$M" repo/dist/app
cd repo || exit 1
{
	cat <<YML
distribution:
  name: ro
services:
  app:
    paths: [app/**]
    restart: command
    command: [sh, -c, "echo restart >> $M/app"]
hosts:
  missing: {path: ../nothing/here/distribution}
  demo: {path: ../site/distribution}
YML
	sshd_host_yml a remote-missing "$T_DIR/remote-nothing/here/distribution"
} > distsync.yml
D() { "$DISTSYNC" "$@"; }
keep() { cp "$T_DIR/.last.out" "$T_DIR/out"; }
out_has() { grep -q -- "$1" "$T_DIR/out"; }
echo app-1 > dist/app/a.txt
ok "release 1" D release --version 1

# A host whose path does not exist, here and over SSH.
for h in missing remote-missing; do
	if [ $h = missing ]; then top=../nothing; else top=$T_DIR/remote-nothing; fi
	expect_exit 0 "$h: status" D status $h
	keep
	ok "$h: status says nothing is applied" out_has "^$h  *yes  *(none)"
	expect_exit 0 "$h: verify" D verify $h
	keep
	ok "$h: verify: no release, no drift" out_has "release (none): no drift"
	expect_exit 0 "$h: releases" D releases $h
	keep
	ok "$h: releases: nothing applied, nothing kept" out_has "nothing applied"
	check "$h: no directory was made" "[ ! -e $top ]"
done
expect_exit 0 "missing: plan" D plan missing
check "missing: plan made no directory either" "[ ! -e ../nothing ]"

# A site with an interrupted apply: a journal (a drift repair of release 1
# that owes a restart of app) as a crash after its commit point leaves it.
expect_exit 0 "push release 1" D push demo --no-restart
state=../site/.distribution.distsync
rm -f "$state/lock"
printf 'distsync-journal 1\nfrom 1\nto 1\nkeep 2\nS app\nend\n' > "$state/journal"
snapshot() { (cd ../site && find . -printf '%p %s %m %T@\n' | sort; cat .distribution.distsync/* 2>/dev/null) > "$1"; }
snapshot "$T_DIR/before"
for cmd in status verify plan releases; do
	expect_exit 0 "demo: $cmd of the interrupted site" D $cmd demo
	keep
	ok "demo: $cmd reports the interrupted apply" \
		out_has "apply of 1 (from 1) was interrupted; the next push or pull completes it, then: restart app"
done
snapshot "$T_DIR/after"
ok "none of them changed the site (no lock file, no recovery)" cmp "$T_DIR/before" "$T_DIR/after"
check "the journal is still there, no lock file" "[ -f $state/journal ] && [ ! -e $state/lock ]"
check "nothing restarted" "[ ! -e $M/app ]"
expect_exit 0 "the next push completes it" D push demo
keep
ok "and restarts what it owed" out_has "restarted: app"
check "once" "[ \$(wc -l < $M/app) -eq 1 ]"
check "no journal, nothing pending" "[ ! -e $state/journal ] && [ ! -e $state/pending ]"
expect_exit 0 "status afterwards" D status demo
keep
ok "nothing pending any more" sh -c "! grep -q pending '$T_DIR/out'"

done_testing
