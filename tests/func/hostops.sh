#!/bin/sh
# Commands that mean what they say (local hosts, no SSH): a group works
# wherever a host does (rollback, verify, releases), one row each; a name
# that is neither is exit 2 naming the config file; status without names is
# every host. A failure's reason reaches the text, --json, the table and
# last-push.json whole, and is printed once. verify --json carries verify's
# fields. SIGINT during a slow push: exit 130, what was interrupted and what
# the site holds, the site still on its release, last-push.json marks the
# host and --retry-failed completes it, resuming what was staged.
. "$top_srcdir/tests/func/lib.sh"
need_prog python3

cd "$T_DIR" || exit 1
mkdir -p repo/dist && cd repo || exit 1
cat > distsync.yml <<'YML'
distribution: {name: ops, source: dist, store: .distsync}
hosts:
  c1: {path: ../c1/distribution, groups: [clinics]}
  c2: {path: ../c2/distribution, groups: [clinics]}
  broken: {path: ../notadir/distribution, groups: [bad]}
  slow: {path: ../slow/distribution, groups: [slowgrp], bwlimit: 256k}
YML
: > ../notadir	# a file where the target's parent should be: the site refuses
D() { "$DISTSYNC" "$@"; }
keep() { cp "$T_DIR/.last.out" "$T_DIR/out"; }
out_has() { grep -q -- "$1" "$T_DIR/out"; }
# count_of TEXT FILE: how many lines of FILE hold TEXT.
count_of() { grep -c -F -- "$1" "$2"; }

echo "app 1" > dist/app.txt
ok "release A" D release --version A
echo "app 2" > dist/app.txt
ok "release B" D release --version B
expect_exit 0 "push A to the group" D push --release A clinics
keep
ok "each host's progress lines (not a terminal)" out_has '^c1: started$'
expect_exit 0 "push B to the group, -q" sh -c '"$1" push clinics -q 2>"$2"' - "$DISTSYNC" "$T_DIR/q.err"
ok "-q: nothing on stderr, no host's progress lines" test ! -s "$T_DIR/q.err"

# Groups wherever hosts.
expect_exit 0 "verify a group" D verify clinics
keep
ok "verify clinics: a line for c1" out_has "^c1: release B: no drift"
ok "verify clinics: a line for c2" out_has "^c2: release B: no drift"
ok "verify clinics: a count line" out_has "^2 hosts: 2 without drift, 0 drifted, 0 failed"
echo "changed by hand" > ../c2/distribution/app.txt
expect_exit 1 "verify a group with drift on one host: exit 1" D verify clinics
keep
ok "c2 drifted, app.txt named" out_has "^  drift   app.txt"
expect_exit 1 "verify --json of the group" D verify --json clinics
keep
ok "verify --json: verify's fields, no transfer counters" python3 -c "
import json
v = json.load(open('$T_DIR/out'))
assert [h['host'] for h in v] == ['c1', 'c2'], v
c1, c2 = v
assert c1['operation'] == 'verify' and c1['result'] == 'no drift' and c1['ok'], c1
assert c1['release'] == 'B' and c1['drifted'] == 0 and c1['drift'] == [], c1
assert c2['result'] == 'drifted' and c2['drifted'] == 1 and c2['drift'] == ['app.txt'], c2
assert c2['drift_complete'] is True and c2['error'] is None, c2
# last_apply as status gives it: the history line, split
la = c1['last_apply']
assert la['action'] == 'apply' and la['result'] == 'ok' and la['line'].startswith(la['time']), la
for k in ('bytes_sent', 'objects_sent', 'encodings', 'round_trips'):
    assert k not in c1, k
"
expect_exit 1 "verify --json of one host" D verify --json c2
keep
ok "verify --json HOST: one object" python3 -c "
import json
v = json.load(open('$T_DIR/out'))
assert v['host'] == 'c2' and v['result'] == 'drifted' and 'bytes_sent' not in v, v
"
echo "app 2" > ../c2/distribution/app.txt
expect_exit 0 "releases of a group" D releases clinics
keep
ok "releases: c1 listed" out_has "^c1: current B"
ok "releases: c2 listed" out_has "^c2: current B"
expect_exit 0 "rollback a group" D rollback clinics
keep
ok "rollback: one row each, B -> A" sh -c "grep -q '^c1 *B -> A .* ok' $T_DIR/out &&
	grep -q '^c2 *B -> A .* ok' $T_DIR/out"
ok "rollback: the count line" out_has "^2 hosts: 2 ok, 0 failed, 0 not started"
check "c1 holds A again" "[ \"\$(cat ../c1/distribution/app.txt)\" = 'app 1' ]"
check "c2 holds A again" "[ \"\$(cat ../c2/distribution/app.txt)\" = 'app 1' ]"
expect_exit 0 "rollback --json of a group" D rollback --json --release B clinics
keep
ok "rollback --json: an array, one object a host" python3 -c "
import json
v = json.load(open('$T_DIR/out'))
assert [(h['host'], h['operation'], h['from'], h['to'], h['ok']) for h in v] == \
    [('c1', 'rollback', 'A', 'B', True), ('c2', 'rollback', 'A', 'B', True)], v
"

# Unknown names.
for cmd in push verify rollback releases status plan; do
	expect_exit 2 "$cmd of a name that is neither host nor group: exit 2" D $cmd clinic
	keep
	ok "$cmd: the message names the config file and suggests the group" \
		out_has "distsync.yml: 'clinic' is neither a host nor a group (did you mean 'clinics'?)"
done

# status without names: every host.
expect_exit 1 "status without names (broken fails: exit 1)" D status
keep
for h in c1 c2 broken slow; do
	ok "status lists $h" out_has "^$h "
done
ok "status: four hosts counted" out_has "^4 hosts:"

# A failure's reason, whole and once.
expect_exit 1 "push to a site that refuses" D push broken
keep
ok "the text gives the site's reason, not 'peer reported an error'" \
	out_has "^broken: push failed: .*notadir/distribution: cannot create the target directory"
ok "the reason is printed once" [ "$(count_of 'cannot create the target directory' "$T_DIR/out")" -eq 1 ]
ok "no 'peer reported an error'" sh -c "! grep -q 'peer reported an error' $T_DIR/out"
D push --json broken > "$T_DIR/json.out" 2>"$T_DIR/json.err"
ok "--json: the error is the site's reason" python3 -c "
import json
v = json.load(open('$T_DIR/json.out'))[0]
assert 'cannot create the target directory' in v['error'], v
"
ok "--json: stderr does not repeat it" sh -c "! grep -q 'cannot create' $T_DIR/json.err"
expect_exit 1 "push the group bad and clinics" D push bad clinics
keep
ok "the table's reason is the site's" out_has "^broken .*FAILED .*cannot create the target directory: Not a directory"
ok "the table's reason is printed once" [ "$(count_of 'cannot create the target directory' "$T_DIR/out")" -eq 1 ]
ok "last-push.json keeps it whole" python3 -c "
import json
v = json.load(open('.distsync/reports/last-push.json'))
b = [h for h in v if h['host'] == 'broken'][0]
assert b['ok'] is False and b['error'].endswith('cannot create the target directory: Not a directory'), b
assert '/notadir/distribution' in b['error'], b
"
rm -f ../notadir

# SIGINT during a slow push (the host's bwlimit: 256 KiB/s, 4 MB to send).
expect_exit 0 "push A to slow" D push --release A slow
head -c 4000000 /dev/urandom > dist/big.bin
ok "release C" D release --version C
# staged_at_least N: a staged object of the site holds N bytes or more.
staged_at_least() {
	find ../slow/.distribution.distsync/staging -name '*.part' -size +"$1"c 2>/dev/null | grep -q .
}
"$DISTSYNC" push slow > "$T_DIR/int.out" 2> "$T_DIR/int.err" &
pid=$!
at_exit "kill $pid"
ok "the push is sending (a staged object grows)" wait_for 120 staged_at_least 300000
kill -INT "$pid"
wait "$pid"
st=$?
ok "SIGINT: exit 130" [ "$st" -eq 130 ]
cat "$T_DIR/int.out" "$T_DIR/int.err" > "$T_DIR/out"
ok "it says what was interrupted and what the site holds" \
	out_has "^slow: push failed: interrupted (SIGINT) while sending objects: the site still holds release A, nothing applied; staged objects are kept for resume"
check "the site still holds release A" "[ \"\$(cat ../slow/distribution/app.txt)\" = 'app 1' ] && [ ! -e ../slow/distribution/big.bin ]"
ok "last-push.json marks slow failed, interrupted" python3 -c "
import json
v = json.load(open('.distsync/reports/last-push.json'))
assert len(v) == 1 and v[0]['host'] == 'slow' and v[0]['ok'] is False, v
assert v[0]['error'].startswith('interrupted'), v
"
ok "staged bytes are kept" staged_at_least 300000
# On a terminal (a pty), so the live progress line shows: it counts from
# what the site held staged, not from zero.
expect_exit 0 "push --retry-failed completes it (on a terminal)" python3 -c '
import os, pty, re, sys
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], [sys.argv[1], "push", "--retry-failed"])
out = b""
while True:
    try:
        d = os.read(fd, 65536)
    except OSError:
        break
    if not d:
        break
    out += d
_, st = os.waitpid(pid, 0)
text = out.decode("utf-8", "replace")
open(sys.argv[2], "w").write(text)
open(sys.argv[3], "w").write(re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text).replace("\r", ""))
sys.exit(os.waitstatus_to_exitcode(st))
' "$DISTSYNC" "$T_DIR/retry.tty" "$T_DIR/out"
ok "retry: the first progress shown counts the staged bytes (>= 5%)" python3 -c '
import re, sys
p = [int(x) for x in re.findall(r"slow +sending +([0-9]+)% of", open(sys.argv[1]).read())]
assert p, "no progress line"
assert p[0] >= 5, p[:5]
' "$T_DIR/retry.tty"
ok "retry: slow A -> C" out_has "^slow *A -> C .* ok"
ok "retry: resumed, not sent again" python3 -c "
import json
v = json.load(open('.distsync/reports/last-push.json'))[0]
assert v['ok'] and v['object_bytes'] < 4000000 - 300000 + 10, v
"
check "the site holds C" "cmp dist/big.bin ../slow/distribution/big.bin"

# SIGINT to a fleet: every session stops, exit 130.
head -c 4000000 /dev/urandom > dist/big.bin
ok "release D" D release --version D
cat >> distsync.yml <<'YML'
  slow2: {path: ../slow2/distribution, groups: [slowgrp], bwlimit: 256k}
YML
"$DISTSYNC" push -j 2 slowgrp > "$T_DIR/int.out" 2> "$T_DIR/int.err" &
pid=$!
at_exit "kill $pid"
ok "the fleet is sending" wait_for 120 staged_at_least 200000
kill -INT "$pid"
wait "$pid"
st=$?
ok "fleet SIGINT: exit 130" [ "$st" -eq 130 ]
cp "$T_DIR/int.out" "$T_DIR/out"
ok "the table says slow was interrupted" out_has "^slow .*FAILED *interrupted (SIGINT)"
ok "slow still holds C, not D" sh -c "! cmp -s dist/big.bin ../slow/distribution/big.bin"
ok "last-push.json marks both" python3 -c "
import json
v = json.load(open('.distsync/reports/last-push.json'))
assert sorted(h['host'] for h in v if not h['ok']) == ['slow', 'slow2'], v
"

done_testing
