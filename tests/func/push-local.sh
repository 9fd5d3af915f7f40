#!/bin/sh
# push to a local host (no SSH): the whole protocol through a forked receiver
# and through `distsync serve`, against releases made by `distsync release`.
. "$top_srcdir/tests/func/lib.sh"
need_prog sha256sum flock python3

cd "$T_DIR" || exit 1
mkdir -p repo/dist/openmrs_modules repo/dist/frontend repo/dist/openmrs_config
cd repo || exit 1
cat > distsync.yml <<'YML'
distribution:
  name: test
  source: dist
  store: .distsync
hosts:
  demo: {path: ../site/distribution}
  other: {path: ../site2/distribution, groups: [g]}
YML
echo '<html>1</html>' > dist/frontend/index.html
head -c 200000 /dev/urandom > dist/openmrs_modules/a-1.0.omod
seq 1 20000 > dist/openmrs_config/big.txt
ln -s frontend/index.html dist/link
chmod 0750 dist/openmrs_config
D() { "$DISTSYNC" "$@"; }
# same_tree A B: the two trees are equal byte for byte (types, modes, content).
same_tree() { [ "$(tree_digest "$1")" = "$(tree_digest "$2")" ]; }
# out_has REGEX: the last command's output (saved by keep) matches.
keep() { cp "$T_DIR/.last.out" "$T_DIR/out"; }
out_has() { grep -q -- "$1" "$T_DIR/out"; }
site=../site/distribution
state=../site/.distribution.distsync

r1=1.0 r2=2.0
ok "release 1" D release --version $r1
cp -a dist ../dist-r1
expect_exit 0 "push to an empty local site" D push demo
keep
ok "site equals release 1" same_tree $site dist
ok "summary names the release and counts" out_has "push (none) -> $r1: 7 added"
check "state directory beside the target" "[ -f $state/current.manifest ]"
check "no staging debris" "[ -z \"\$(ls $state/staging 2>/dev/null)\" ]"

expect_exit 0 "second push changes nothing" D push demo --json
keep
ok "no-op push sends no object" out_has '\"objects_sent\":0'
ok "no-op push: 2 round trips" out_has '\"round_trips\":2'
ok "json is valid" python3 -c "import json,sys; json.load(open('$T_DIR/out'))"

# Release 2: an update, an add, a delete, a mode change.
echo '<html>2</html>' > dist/frontend/index.html
echo new > dist/frontend/new.js
rm dist/openmrs_config/big.txt
chmod 0755 dist/openmrs_config
ok "release 2" D release --version $r2
before=$(tree_digest $site)
expect_exit 0 "dry run" D push demo --dry-run
keep
ok "dry run changes nothing" test "$(tree_digest $site)" = "$before"
ok "dry run says so" out_has 'dry run'
expect_exit 0 "push release 2" D push demo
keep
ok "site equals release 2" same_tree $site dist
ok "summary counts" out_has "$r1 -> $r2: 1 added, 2 updated, 1 deleted"
check "history.log has a line per apply" "[ \$(grep -c ' apply ' $state/history.log) -ge 3 ]"

# An older release can be pushed.
expect_exit 0 "push --release of the older release" D push demo --release "$r1"
keep
ok "site equals release 1 again" same_tree $site ../dist-r1
expect_exit 0 "back to release 2" D push demo
keep
expect_exit 2 "unknown release: a usage error, no host touched" D push demo --release nosuch
keep

# Drift: verify reports it, --fail-on-drift refuses, push overwrites and lists it.
echo tampered > $site/frontend/new.js
expect_exit 1 "verify finds drift" D verify demo
keep
ok "verify names the path" out_has 'drift   frontend/new.js'
expect_exit 3 "push --fail-on-drift refuses" D push demo --fail-on-drift
keep
check "refused push left the drift" "grep -q tampered $site/frontend/new.js"
expect_exit 0 "push overwrites drift" D push demo
keep
ok "summary lists the overwritten drift" out_has 'drift   frontend/new.js'
ok "drift repaired" same_tree $site dist
expect_exit 0 "verify after repair" D verify demo
keep

# Rollback returns to the release before the last apply.
expect_exit 0 "rollback" D rollback demo
keep
expect_exit 0 "verify after rollback" D verify demo
keep

# Lock held by someone else: wait, then exit 3 naming the holder.
hold_lock "$state/lock"
expect_exit 3 "locked target: exit 3" D push demo --lock-timeout 1
keep
ok "message says locked" out_has 'locked by pid'
kill $HOLD_PID 2>/dev/null
wait $HOLD_PID 2>/dev/null

# Through `distsync serve` (the remote code path, without SSH), groups too.
mkdir -p ../site2
expect_exit 0 "push through serve" env DISTSYNC_SERVE_ROOT="$(cd .. && pwd)/site2" "$DISTSYNC" push g
keep
ok "serve applied release 2" same_tree ../site2/distribution dist
expect_exit 3 "serve refuses a target outside --root" env DISTSYNC_SERVE_ROOT="$(pwd)/dist" "$DISTSYNC" push demo
keep
ok "refusal names --root, prefixed by the host" out_has '^demo: push failed: refusing target .* outside --root'
expect_exit 2 "serve needs --root" D serve
keep
expect_exit 0 "serve --help" D serve --help
keep

# Resume: a partial object in staging is continued from its offset.
head -c 3000000 /dev/urandom > dist/openmrs_modules/big-2.0.omod
ok "release 3" D release --version 3.0
hex=$(sha256sum dist/openmrs_modules/big-2.0.omod | cut -c1-64)
mkdir -p $state/staging
head -c 2000000 dist/openmrs_modules/big-2.0.omod > $state/staging/$hex.part
expect_exit 0 "push resumes the partial object" sh -c '"$DISTSYNC" push demo --json >"$1"' - "$T_DIR/json"
keep
ok "it says where it resumed" out_has "resuming at byte 2000000 of 3000000"
check "about a third of the object went over the wire" "python3 -c \"import json; r=json.load(open('$T_DIR/json'))[0]; assert r['bytes_sent'] < 1500000, r\""
ok "site equals release 3" same_tree $site dist

# Round trips do not grow with the file count.
mkdir -p dist/many
i=0; while [ $i -lt 1000 ]; do echo $i > dist/many/f$i; i=$((i + 1)); done
ok "release 4 (1000 more files)" D release --version 4.0
expect_exit 0 "push 1000 new files" D push demo --json
keep
ok "still 2 round trips" out_has '\"round_trips\":2'
ok "site equals release 4" same_tree $site dist
# One file of the 1000 changes: the release's manifest goes as a zstd frame
# against the one the site holds, not as its 85 KB of text.
echo "changed in 4.1" > dist/many/f500
ok "release 4.1 (one file of 1000 changed)" D release --version 4.1
expect_exit 0 "push it" sh -c '"$DISTSYNC" push demo --json >"$1"' - "$T_DIR/json"
check "under 4 KB on the wire, both ways" "python3 -c \"import json; r=json.load(open('$T_DIR/json'))[0]; assert r['bytes_sent'] + r['bytes_received'] < 4096, r\""
ok "site equals release 4.1" same_tree $site dist
expect_exit 0 "verify after it" D verify demo

# Global options after the command, as before it; a line names its host once.
echo changed > dist/many/f5
ok "release 5" D release --version 5.0
expect_exit 0 "push HOST -vv: -vv after the command" D push demo -vv
keep
ok "-vv after the command shows debug lines" out_has '^distsync: demo: sent many/f5 as '
ok "no line names the host twice" sh -c "! grep -E '(^|: )demo: (host )?demo: ' '$T_DIR/out'"
expect_exit 0 "status HOST -q -c FILE after the command" sh -c \
    'cd .. && "$DISTSYNC" status demo -q -c repo/distsync.yml'
keep
ok "-c after the command names the config" out_has '^demo .* 5[.]0 '
expect_exit 2 "-c at the end without its file" D status demo -c
keep
ok "it says -c needs a file" out_has 'status: -c needs a configuration file'
expect_exit 2 "a command's unknown option is still refused" D push demo --verbos
expect_exit 0 "after -- an argument is the command's: status -- demo" D status -- demo

for c in push rollback verify serve; do
	expect_exit 0 "$c --help" D $c --help
done
done_testing
