#!/bin/sh
# A recovered apply finishes the whole job: an apply killed after its commit
# point (its journal written) or after its files (before its run_once and
# restarts) leaves that work owed; status, verify and releases only report
# it and change nothing; the next push runs the run_once files and restarts
# the service once, and history says so. A rollback over owed work restarts
# the service but runs no run_once of the release it leaves.
#
# The service is a `restart: command` writing a marker line per restart, the
# run_once hook appends each file it is fed on stdin: what a dockerd restart
# and a database would see, counted exactly.
#
# Needs a build configured with --enable-fault-injection (DISTSYNC pointing
# at it); a normal build skips, as crash.sh does (CRASH_REQUIRED=1 under
# CI=true makes that a failure).
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/func/lib.sh"

: "${APPLY_DRIVER:=$(dirname "$DISTSYNC")/../tests/unit/apply-driver}"
[ -x "$APPLY_DRIVER" ] || skip_all "no apply-driver at $APPLY_DRIVER"
if ! "$APPLY_DRIVER" --fault; then
	[ "${CRASH_REQUIRED:-0}" = 1 ] && skip_all "not a fault-injection build"
	echo "1..0 # SKIP not a fault-injection build (configure --enable-fault-injection and point DISTSYNC at it)"
	exit 0
fi

cd "$T_DIR" || exit 1
mkdir -p repo/dist/app repo/dist/sql
M="$T_DIR/markers"
mkdir -p "$M"
cat > repo/distsync.yml <<YML
distribution:
  name: recover
services:
  app:
    paths: [app/**]
    restart: command
    command: [sh, -c, "echo restart >> $M/app"]
    health: {command: [test, -f, $M/app], timeout: 5}
run_once:
  - paths: [sql/*.sql]
    command: [sh, -c, "echo \"\$DISTSYNC_RUN_ONCE_FILE \$(cat)\" >> $M/sql"]
    input: stdin
hosts:
  demo: {path: ../site/distribution, retries: 0}
YML
cd repo || exit 1
D() { "$DISTSYNC" "$@"; }
site=../site/distribution
state=../site/.distribution.distsync
keep() { cp "$T_DIR/.last.out" "$T_DIR/out"; }
out_has() { grep -q -- "$1" "$T_DIR/out"; }
count() { if [ -f "$M/$1" ]; then wc -l < "$M/$1"; else echo 0; fi; }
snapshot() { (cd ../site && find . -printf '%p %s %m\n' | sort; cat .distribution.distsync/* 2>/dev/null) > "$1"; }

echo app-1 > dist/app/a.txt
echo "create table t" > dist/sql/001.sql
ok "release 1" D release --version 1
expect_exit 0 "push release 1" D push demo
check "the service restarted once" "[ $(count app) -eq 1 ]"
check "run_once ran 001.sql" "grep -qx 'sql/001.sql create table t' $M/sql"

# point NAME RELEASE: the fault point NAME's number in a push of RELEASE, found
# on a copy of the site (the point numbers of one push are deterministic).
point() {
	rm -rf ../site.copy "$T_DIR/trace"
	cp -a ../site ../site.copy
	cp -a "$M" "$M.copy"
	DISTSYNC_FAULT_TRACE="$T_DIR/trace" D push demo >/dev/null 2>&1
	rm -rf ../site "$M"
	mv ../site.copy ../site
	mv "$M.copy" "$M"
	grep " $1\$" "$T_DIR/trace" | head -n 1 | cut -d' ' -f1
}

# 1. Killed right after the commit point: the journal is there, the tree is 1.
echo app-2 > dist/app/a.txt
echo "insert 2" > dist/sql/002.sql
ok "release 2" D release --version 2
n=$(point journal-committed 2)
check "the push reaches journal-committed ($n)" "[ -n '$n' ]"
expect_exit 1 "push 2 killed after its commit point" env DISTSYNC_FAULT="$n" "$DISTSYNC" push demo
check "the journal is left" "[ -f $state/journal ]"
check "nothing restarted, nothing ran" "[ $(count app) -eq 1 ] && ! grep -q 002 $M/sql"
snapshot "$T_DIR/before"
expect_exit 0 "status of the interrupted site" D status demo
keep
ok "status reports the interrupted apply and what it owes" \
	out_has "pending: apply of 2 (from 1) was interrupted; the next push or pull completes it, then: run_once on sql/002.sql; restart app"
expect_exit 0 "verify of the interrupted site" D verify demo
keep
ok "verify reports it too" out_has "pending: apply of 2 (from 1) was interrupted"
expect_exit 0 "releases of the interrupted site" D releases demo
keep
ok "releases reports it too" out_has "pending: apply of 2"
snapshot "$T_DIR/after"
ok "status, verify and releases changed nothing on the site" cmp "$T_DIR/before" "$T_DIR/after"
check "and ran nothing" "[ $(count app) -eq 1 ] && ! grep -q 002 $M/sql"
expect_exit 0 "the next push completes the apply" D push demo
keep
ok "it runs 002.sql" out_has "run_once: run_once\[0\] sql/002.sql: ran"
ok "it restarts app" out_has "restarted: app (health: ok)"
check "the service restarted once more" "[ $(count app) -eq 2 ]"
check "002.sql ran once, 001.sql not again" \
	"[ \$(grep -c 002 $M/sql) -eq 1 ] && [ \$(grep -c 001 $M/sql) -eq 1 ]"
check "no journal, nothing pending" "[ ! -e $state/journal ] && [ ! -e $state/pending ]"
check "history: the completing push restarted app, result ok" \
	"tail -n 1 $state/history.log | grep -q 'to=2 .*restarted=app result=ok'"
check "the tree is release 2" "[ \"\$(cat $site/app/a.txt)\" = app-2 ]"

# 2. Killed after the files, before run_once and the restart: STATE/pending.
echo app-3 > dist/app/a.txt
echo "insert 3" > dist/sql/003.sql
ok "release 3" D release --version 3
n=$(point finish-owed-start 3)
check "the push reaches finish-owed-start ($n)" "[ -n '$n' ]"
expect_exit 1 "push 3 killed before its restarts" env DISTSYNC_FAULT="$n" "$DISTSYNC" push demo
check "the tree is release 3, its work pending" \
	"[ \"\$(cat $site/app/a.txt)\" = app-3 ] && [ -f $state/pending ] && [ ! -e $state/journal ]"
check "nothing restarted, nothing ran" "[ $(count app) -eq 2 ] && ! grep -q 003 $M/sql"
snapshot "$T_DIR/before"
expect_exit 0 "status of the site with work pending" D status demo --json
keep
ok "status --json carries it" \
	out_has '"pending":"owed by the apply of 3: run_once on sql/003.sql; restart app (the next push or pull runs it)"'
expect_exit 0 "verify" D verify demo
snapshot "$T_DIR/after"
ok "status and verify changed nothing" cmp "$T_DIR/before" "$T_DIR/after"
expect_exit 0 "the next push runs what was owed" D push demo
keep
ok "003.sql ran" out_has "run_once: run_once\[0\] sql/003.sql: ran"
ok "app restarted" out_has "restarted: app"
check "once each" "[ $(count app) -eq 3 ] && [ \$(grep -c 003 $M/sql) -eq 1 ]"
check "nothing pending" "[ ! -e $state/pending ]"

# 3. A newer release over owed work: its own restarts include the owed ones.
echo app-4 > dist/app/a.txt
echo "insert 4" > dist/sql/004.sql
ok "release 4" D release --version 4
n=$(point finish-owed-start 4)
expect_exit 1 "push 4 killed before its restarts" env DISTSYNC_FAULT="$n" "$DISTSYNC" push demo
echo "insert 5" > dist/sql/005.sql
ok "release 5 (only SQL changes)" D release --version 5
expect_exit 0 "push 5 over the pending work of 4" D push demo
keep
ok "app, owed by 4, restarts with 5" out_has "restarted: app"
check "004 and 005 ran once each, in order" \
	"[ \"\$(tail -n 2 $M/sql | cut -d' ' -f1)\" = \"sql/004.sql
sql/005.sql\" ]"
check "app restarted once for both" "[ $(count app) -eq 4 ]"

# 4. A rollback over owed work: the service restarts, no run_once of the release left.
echo app-6 > dist/app/a.txt
echo "insert 6" > dist/sql/006.sql
ok "release 6" D release --version 6
n=$(point finish-owed-start 6)
expect_exit 1 "push 6 killed before its restarts" env DISTSYNC_FAULT="$n" "$DISTSYNC" push demo
expect_exit 0 "rollback" D rollback demo
keep
ok "rollback 6 -> 5" out_has "rollback 6 -> 5"
check "app restarted on the files of 5" \
	"[ $(count app) -eq 5 ] && [ \"\$(cat $site/app/a.txt)\" = app-4 ]"
check "006.sql did not run" "! grep -q 006 $M/sql"
check "nothing pending" "[ ! -e $state/pending ]"

done_testing
