#!/bin/sh
# plan over SSH: 'distsync plan HOST' for a remote host prints what the local
# plan prints -- every added, updated and deleted path, the basis of a renamed
# artifact, the bytes to send -- and the services that would restart and why,
# as the SITE's own configuration (serve --site-config) says, never the
# initiator's. --json carries the same. The plan changes nothing on the site:
# the tree and its state directory are byte for byte as before (no lock file,
# no staging). push --dry-run's JSON names the services too. plan GROUP plans
# every host of the group; a host never synced gets no directory.
. "$top_srcdir/tests/func/lib.sh"
. "$top_srcdir/tests/func/lib-sshd.sh"
sshd_need
need_prog python3 sha256sum

cd "$T_DIR" || exit 1
sshd_start a || { echo "not ok 1 - sshd starts"; echo "1..1"; exit 1; }
mkdir -p home/.ssh
HOME="$T_DIR/home"
unset SSH_AUTH_SOCK
export HOME
SITE=$T_DIR/remote/distribution
STATE=$T_DIR/remote/.distribution.distsync

# The site's own configuration: what restarts there, and the SQL it runs once.
cat > site.yml <<YML
distribution: {name: pr}
services:
  backend:
    paths: [openmrs_modules/**]
    restart: command
    command: [/bin/sh, -c, "echo backend >> $T_DIR/mark"]
  frontend:
    paths: [frontend/**]
    restart: none
    reload_on: [frontend/index.html]
    command: [/bin/sh, -c, "echo frontend >> $T_DIR/mark"]
run_once:
  - paths: [trusted_sql/*.sql]
    command: [/bin/sh, -c, "echo sql >> $T_DIR/mark"]
hosts:
  remote: {path: $SITE}
YML
# The initiator's configuration names other services: none of them may show.
mkdir -p repo/dist && cd repo || exit 1
{
	cat <<YML
distribution: {name: pr}
services:
  initiator_only: {paths: ["**"], restart: command, command: [/bin/sh, -c, "echo no >> $T_DIR/mark"]}
hosts:
YML
	sshd_host_yml a remote "$SITE"
	printf '    groups: [fleet]\n'
	printf '    site_config: %s\n' "$T_DIR/site.yml"
	sshd_host_yml a plain "$T_DIR/plain/distribution"
	printf '    groups: [fleet]\n'
	sshd_host_yml a never "$T_DIR/never/here/distribution"
	sshd_host_yml a noconf "$T_DIR/noconf/distribution"
	printf '    retries: 3\n'
	printf '    site_config: %s\n' "$T_DIR/no-such-site.yml"
} > distsync.yml
D() { "$DISTSYNC" "$@"; }
keep() { cp "$T_DIR/.last.out" "$T_DIR/out"; }
out_has() { grep -q -- "$1" "$T_DIR/out"; }
# The site tree and its state directory, every byte, mode and name.
site_digest() { { tree_digest "$SITE"; echo state; tree_digest "$STATE"; } }

mkdir -p dist/openmrs_modules dist/frontend dist/config dist/old dist/trusted_sql
head -c 60000 /dev/urandom > dist/openmrs_modules/htmlformentry-1.0.omod
echo "console.log(1)" > dist/frontend/main.js
echo "<h1>index</h1>" > dist/frontend/index.html
echo "a = 1" > dist/config/a.properties
echo "old" > dist/old/gone.txt
echo "create table a (x int);" > dist/trusted_sql/001.sql
ok "release 1" D release --version 1
expect_exit 0 "push 1 to the site" D push remote
expect_exit 0 "push 1 to the plain site" D push plain
rm -f "$T_DIR/mark"

# Release 2: the module renamed (1.0 -> 1.1, nearly the same bytes), one file
# updated, one deleted, one added, frontend's main.js (restart: none), new SQL.
mv dist/openmrs_modules/htmlformentry-1.0.omod dist/openmrs_modules/htmlformentry-1.1.omod
printf 'tail' >> dist/openmrs_modules/htmlformentry-1.1.omod
echo "a = 2" > dist/config/a.properties
rm -r dist/old
echo "added" > dist/config/b.properties
echo "console.log(2)" > dist/frontend/main.js
echo "insert into a values (1);" > dist/trusted_sql/002.sql
ok "release 2" D release --version 2
# No lock file, no staging: a plan must make neither.
rm -rf "$STATE/lock" "$STATE/staging"
site_digest > "$T_DIR/before"

expect_exit 0 "plan remote" D plan remote
keep
ok "it names the host, where, and 1 -> 2" out_has "^plan for remote (127.0.0.1:$SITE): 1 -> 2"
ok "the counts" out_has "^  3 added, 2 updated, 3 deleted, 0 mode only, 6 unchanged"
ok "the module is added" out_has "^  added   openmrs_modules/htmlformentry-1.1.omod "
ok "with the renamed artifact as its basis" \
	out_has "^  added   openmrs_modules/htmlformentry-1.1.omod (.*)  basis openmrs_modules/htmlformentry-1.0.omod \[artifact identity\]"
ok "the updated file" out_has "^  updated config/a.properties (6 B)"
ok "the added file" out_has "^  added   config/b.properties (6 B)"
ok "the deleted file" out_has "^  deleted old/gone.txt$"
ok "and its directory" out_has "^  deleted old/$"
ok "the old module is deleted" out_has "^  deleted openmrs_modules/htmlformentry-1.0.omod$"
ok "the bytes to send" out_has "^  [0-9]* objects to send (.* of content, .* encoded)"
ok "the site's service restarts, and why" \
	out_has "^  restart backend: openmrs_modules/htmlformentry-1.0.omod changed$"
ok "restart: none is listed as not restarted" \
	out_has "^  not restarted frontend (restart: none): frontend/main.js changed$"
ok "the run_once run it owes" out_has "^  run_once\[0\] trusted_sql/002.sql$"
ok "not the SQL already run" sh -c "! grep -q 'run_once.* trusted_sql/001.sql' '$T_DIR/out'"
ok "never the initiator's services" sh -c "! grep -q initiator_only '$T_DIR/out'"
site_digest > "$T_DIR/after"
ok "the plan changed nothing on the site (tree and state, byte for byte)" \
	cmp "$T_DIR/before" "$T_DIR/after"
check "no lock file, no staging made" "[ ! -e $STATE/lock ] && [ ! -e $STATE/staging ]"
check "nothing ran" "[ ! -e $T_DIR/mark ]"

expect_exit 0 "plan remote --json" D plan remote --json
keep
ok "the JSON carries the same" python3 -c "
import json
j = json.load(open('$T_DIR/out'))
assert j['host'] == 'remote' and j['from'] == '1' and j['release'] == '2', j
assert (j['added'], j['updated'], j['deleted']) == (3, 2, 3), j
ch = {c['path']: c for c in j['changes']}
m = ch['openmrs_modules/htmlformentry-1.1.omod']
assert m['change'] == 'added' and m['send'], m
assert m['basis'] == 'openmrs_modules/htmlformentry-1.0.omod', m
assert m['basis_kind'] == 'artifact identity', m
assert ch['old/gone.txt']['change'] == 'deleted' and ch['old']['change'] == 'deleted', ch
assert ch['config/a.properties']['change'] == 'updated', ch
assert j['wire']['objects'] >= 3 and j['wire']['encoded_bytes'] > 0, j['wire']
s = {x['name']: x for x in j['services']}
assert set(s) == {'backend', 'frontend'}, s
assert s['backend']['restart'] and not s['backend']['reload'], s
assert s['backend']['why'] == 'openmrs_modules/htmlformentry-1.0.omod', s
assert not s['frontend']['restart'] and s['frontend']['why'] == 'frontend/main.js', s
assert j['run_once'] == ['run_once[0] trusted_sql/002.sql'], j['run_once']
"
site_digest > "$T_DIR/after"
ok "--json changed nothing either" cmp "$T_DIR/before" "$T_DIR/after"

expect_exit 0 "push --dry-run --json" D push remote --dry-run --json
keep
ok "its JSON names the service that would restart" python3 -c "
import json
j = json.load(open('$T_DIR/out'))
j = j[0] if isinstance(j, list) else j
assert j['dry_run'] and j['services'] == ['backend'], j
"
expect_exit 0 "push --dry-run" D push remote --dry-run
keep
ok "it says which service would restart" out_has "^  would restart: backend "
site_digest > "$T_DIR/after"
ok "the dry run changed nothing" cmp "$T_DIR/before" "$T_DIR/after"
check "no lock file, no staging made" "[ ! -e $STATE/lock ] && [ ! -e $STATE/staging ]"
check "nothing ran" "[ ! -e $T_DIR/mark ]"

# A reload_on file: frontend restarts for it.
echo "<h1>index 2</h1>" > dist/frontend/index.html
ok "release 3" D release --version 3
expect_exit 0 "plan remote for release 3" D plan remote
keep
ok "frontend restarts for its reload_on file" \
	out_has "^  reload frontend (reload_on): frontend/index.html changed$"

# A group: one plan per host. The plain site has no configuration of its own:
# nothing restarts there, whatever the initiator's says.
expect_exit 0 "plan fleet (a group)" D plan fleet --release 2
keep
ok "a plan for remote" out_has "^plan for remote (127.0.0.1:$SITE): 1 -> 2"
ok "and one for plain" out_has "^plan for plain (127.0.0.1:$T_DIR/plain/distribution): 1 -> 2"
ok "plain restarts nothing, and says why" sh -c "grep -A30 '^plan for plain' '$T_DIR/out' | grep -q '^  no service restarts (plain names no site_config: a site runs only the commands of its own configuration)'"
ok "remote, which has one, does not say it" sh -c "! grep -q 'remote names no site_config' '$T_DIR/out'"
ok "never the initiator's services" sh -c "! grep -q initiator_only '$T_DIR/out'"

# A host never synced, whose path does not exist: everything is added, nothing is made.
expect_exit 0 "plan never" D plan never
keep
ok "never: (never synced) -> 3, everything added" out_has "^plan for never (.*): (never synced) -> 3"
check "never: no directory was made" "[ ! -e $T_DIR/never ]"

site_digest > "$T_DIR/after"
ok "the site is still release 1, untouched" cmp "$T_DIR/before" "$T_DIR/after"
check "nothing ran on any site" "[ ! -e $T_DIR/mark ]"

# An interrupted apply (a journal, as a crash after its commit point leaves
# it): the plan reports it as pending and completes nothing.
printf 'distsync-journal 1\nfrom 1\nto 1\nkeep 2\nS backend\nend\n' > "$STATE/journal"
site_digest > "$T_DIR/before"
expect_exit 0 "plan remote with an interrupted apply" D plan remote --release 2
keep
ok "it says what is pending" \
	out_has "pending: apply of 1 (from 1) was interrupted; the next push or pull completes it, then: restart backend"
site_digest > "$T_DIR/after"
ok "and completed nothing (journal kept, no lock, no staging)" cmp "$T_DIR/before" "$T_DIR/after"
check "the journal is still there" "[ -f $STATE/journal ] && [ ! -e $STATE/lock ] && [ ! -e $STATE/staging ]"
check "nothing ran" "[ ! -e $T_DIR/mark ]"
rm -f "$STATE/journal"

# A site whose distsync predates PROTO_CAP_SITEPLAN: the files, and services
# unknown. Only with an older build at hand (DISTSYNC_OLD=path/to/distsync):
# this tree cannot honestly pretend to be one.
if [ -n "${DISTSYNC_OLD:-}" ] && [ -x "$DISTSYNC_OLD" ]; then
	sed "s|  remote: {path: .*}|  old: {path: $T_DIR/old/distribution}|" "$T_DIR/site.yml" \
		> "$T_DIR/old-site.yml"
	sshd_host_yml a old "$T_DIR/old/distribution" "$DISTSYNC_OLD" >> distsync.yml
	printf '    site_config: %s\n' "$T_DIR/old-site.yml" >> distsync.yml
	expect_exit 0 "old: push 1" D push old --release 1
	expect_exit 0 "old: plan" D plan old --release 2
	keep
	ok "old: the files" out_has "^  added   openmrs_modules/htmlformentry-1.1.omod "
	ok "old: services unknown" out_has "^  unknown: the site's distsync is too old"
	expect_exit 0 "old: plan --json" D plan old --release 2 --json
	keep
	ok "old: services is null" python3 -c "
import json
j = json.load(open('$T_DIR/out'))
assert j['services'] is None and j['run_once'] is None and j['added'] == 3, j
"
else
	echo "# an older site's fallback is not checked: DISTSYNC_OLD names no older build"
fi

# A site whose own config does not load says so at once: an error from the
# site, not a dropped link the initiator retries.
expect_exit 2 "a site whose site_config is missing: plan fails, a configuration error" D plan noconf
keep
ok "the message names the missing file" out_has "no-such-site.yml"
ok "in one attempt, not retried as a lost link" sh -c "! grep -q 'attempt\|retrying' '$T_DIR/out'"

# The site's stderr comes back with each line's level marked: its info lines
# are the initiator's info (silenced by -q), never shown as errors.
expect_exit 0 "push -q 2: the site restarts backend" D -q push remote --release 2
keep
check "the site ran the restart" "grep -q backend $T_DIR/mark"
ok "-q: the site's info line is not shown" sh -c "! grep -q 'service backend restarted' '$T_DIR/out'"
ok "-q: only the summary, no log line" sh -c "! grep -q '^distsync:' '$T_DIR/out'"
ok "-q: the summary says what restarted" out_has "^  restarted: backend"
expect_exit 0 "rollback: the site restarts backend again" D rollback remote
keep
ok "without -q the site's info line is shown, naming the host once" \
	out_has "^distsync: host remote: service backend restarted"
ok "without the level word serve marked it with" sh -c "! grep -q 'info: ' '$T_DIR/out'"

done_testing
