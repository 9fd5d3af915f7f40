#!/bin/sh
# The fleet: 20 real sshd servers on loopback, one target each, all in group
# prod. Release A everywhere with -j 20; then B while one host's known_hosts
# entry holds another key: that host fails, the other 19 apply, exit 1 and the
# table names the reason; --retry-failed touches only that host; status lists
# all 20; a canary whose health check fails stops the rest, and so does
# --max-failures. Output without a terminal holds no control characters.
. "$top_srcdir/tests/func/lib.sh"
. "$top_srcdir/tests/func/lib-sshd.sh"
sshd_need
need_prog ssh-keygen sha256sum python3

N=20
DISTSYNC=$(cd "$(dirname "$DISTSYNC")" && pwd)/$(basename "$DISTSYNC")
cd "$T_DIR" || exit 1
# Keep the tests away from the caller's keys, agent and ~/.ssh/config.
mkdir -p home/.ssh
HOME="$T_DIR/home"
unset SSH_AUTH_SOCK
export HOME

names=""
i=1
while [ $i -le $N ]; do
	n=$(printf 'h%02d' $i)
	names="$names $n"
	sshd_start "$n" || { echo "not ok 1 - sshd $n starts"; echo "1..1"; exit 1; }
	i=$((i + 1))
done

# One repository: a release tree of a few dozen files, a service whose health
# check fails on a host whose target has a TARGET.fail-health file beside it.
mkdir -p repo/dist/openmrs_modules repo/dist/frontend repo/dist/openmrs_config
cd repo || exit 1
for m in 1 2 3 4 5 6; do head -c 200000 /dev/urandom > "dist/openmrs_modules/mod$m-1.0.omod"; done
for f in $(seq 1 30); do seq 1 $((f * 300)) > "dist/frontend/chunk$f.js"; done
seq 1 700000 > dist/frontend/vendor.js	# a few MB: its patch takes a while to make
echo '<config/>' > dist/openmrs_config/config.xml
services_yml() {
	printf 'services:\n  app:\n    paths: ["**"]\n    restart: command\n    command: [/bin/true]\n'
	printf '    health: {command: [/bin/sh, -c, '"'"'test ! -e "$DISTSYNC_TARGET.fail-health"'"'"'], timeout: 2}\n'
}
# Each site runs only the commands of its own configuration (serve --site-config).
for n in $names; do
	mkdir -p "$T_DIR/site-$n"
	{
		printf 'distribution: {name: fleet}\n'
		services_yml
		printf 'hosts:\n  %s: {path: %s}\n' "$n" "$T_DIR/site-$n/distribution"
	} > "$T_DIR/site-$n/site.yml"
done
{
	printf 'distribution:\n  name: fleet\n  source: dist\n'
	printf 'defaults: {parallel: 4}\n'
	printf 'hosts:\n'
	for n in $names; do
		sshd_host_yml "$n" "$n" "$T_DIR/site-$n/distribution"
		printf '    groups: [prod]\n'
		printf '    site_config: %s\n' "$T_DIR/site-$n/site.yml"
	done
} > distsync.yml

D() { "$DISTSYNC" "$@"; }
keep() { cp "$T_DIR/.last.out" "$T_DIR/$1"; }
has() { grep -q -- "$2" "$T_DIR/$1"; }
# no_control FILE: nothing below 0x20 but newline and tab, no DEL.
no_control() { ! LC_ALL=C grep -q "$(printf '[\001-\010\013-\037\177]')" "$1"; }
same_tree() { [ "$(tree_digest "$1")" = "$(tree_digest "$2")" ]; }
history_sums() {
	for n in $names; do
		[ "$n" = "$1" ] && continue
		sha256sum "$T_DIR/site-$n/.distribution.distsync/history.log"
	done
}

D release --version A > "$T_DIR/release.out" 2>&1 || { cat "$T_DIR/release.out"; exit 1; }
cp -a dist ../dist-A

t0=$(date +%s)
expect_exit 0 "release A to 20 hosts with -j 20" D push prod -j 20
keep push-a.out
t1=$(date +%s)
echo "# push A to $N hosts: $((t1 - t0)) s"
ok "the table lists 20 hosts ok" has push-a.out "20 hosts: 20 ok, 0 failed"
all_a=0
for n in $names; do same_tree "$T_DIR/site-$n/distribution" dist || all_a=1; done
check "every target holds release A" "[ $all_a -eq 0 ]"

# Release B: a module bump and an edited file.
rm dist/openmrs_modules/mod3-1.0.omod
head -c 200000 /dev/urandom > dist/openmrs_modules/mod3-1.1.omod
echo "// B" >> dist/frontend/chunk7.js
sed -i 's/^350000$/350000 B/' dist/frontend/vendor.js
D release --version B >> "$T_DIR/release.out" 2>&1
cp -a dist ../dist-B

# h07's known_hosts entry now holds another server's key.
bad=h07
port=$(sshd_port $bad)
other=$(sshd_host_pub h08)
sed -i "s|^\[127.0.0.1\]:$port .*|[127.0.0.1]:$port $other|" "$SSHD_KNOWN_HOSTS"
"$DISTSYNC" push prod -j 20 > "$T_DIR/push-b.out" 2> "$T_DIR/push-b.err"
st=$?
check "push B with a wrong host key exits 1" "[ $st -eq 1 ]"
ok "the table names the host key as h07's reason" \
	sh -c "grep '^h07 ' '$T_DIR/push-b.out' | grep -qi 'FAILED.*host key'"
ok "19 hosts ok, 1 failed" has push-b.out "20 hosts: 19 ok, 1 failed, 0 not started"
ok "table has from -> to for the others" sh -c "grep '^h01 ' '$T_DIR/push-b.out' | grep -q 'A -> B.*ok'"
ok "non-terminal progress: one line per event" has push-b.err "h01: started"
ok "no control characters on stdout" no_control "$T_DIR/push-b.out"
ok "no control characters on stderr" no_control "$T_DIR/push-b.err"
all_b=0
for n in $names; do
	[ "$n" = $bad ] && continue
	same_tree "$T_DIR/site-$n/distribution" dist || all_b=1
done
check "the 19 other targets hold release B" "[ $all_b -eq 0 ]"
ok "h07 still holds release A" same_tree "$T_DIR/site-$bad/distribution" ../dist-A
ok "the report is kept in the store" python3 -c "
import json; r = json.load(open('.distsync/reports/last-push.json'))
assert len(r) == 20 and [h['host'] for h in r if not h['ok']] == ['h07'], r"
# All 19 started at once from an empty delta cache: each encoding was made by
# one of them, the others waited for it and read it from the cache.
ok "each encoding was made once for the fleet" python3 -c "
import json; r = [h for h in json.load(open('.distsync/reports/last-push.json')) if h['ok']]
enc = set(h['encoded'] for h in r)
made = sum(h['encoded'] - h['cache_hits'] for h in r)
assert len(r) == 19 and len(enc) == 1 and min(enc) >= 2 and made == min(enc), (enc, made, r)"
ok "no encoding lock is left behind" sh -c "! ls .distsync/deltas | grep -q '[.]lock$'"

"$DISTSYNC" push prod -j 20 --dry-run --json > "$T_DIR/dry.json" 2> "$T_DIR/dry.err"
st=$?
check "--json dry run with the wrong key exits 1" "[ $st -eq 1 ]"
ok "the JSON parses with 20 hosts" python3 -c "
import json; r = json.load(open('$T_DIR/dry.json')); assert len(r) == 20, r
assert all(h['dry_run'] for h in r if h['ok'])
assert [h['host'] for h in r if not h['ok']] == ['h07'], r"

# The key is right again: --retry-failed pushes h07 alone.
history_sums $bad > "$T_DIR/history.before"
sed -i "s|^\[127.0.0.1\]:$port .*|[127.0.0.1]:$port $(sshd_host_pub $bad)|" "$SSHD_KNOWN_HOSTS"
expect_exit 0 "--retry-failed" D push --retry-failed
keep retry.out
ok "only h07 was pushed" sh -c "grep -c '^h[0-9][0-9] ' '$T_DIR/retry.out' | grep -qx 1 && grep -q '^h07 .*A -> B.*ok' '$T_DIR/retry.out'"
history_sums $bad > "$T_DIR/history.after"
ok "the other hosts' history.log is unchanged" cmp "$T_DIR/history.before" "$T_DIR/history.after"
ok "h07 now holds release B" same_tree "$T_DIR/site-$bad/distribution" dist
expect_exit 0 "--retry-failed again: nothing failed" D push --retry-failed
keep retry2.out
ok "nothing to retry" has retry2.out "nothing to retry"

# status: 20 hosts in parallel.
expect_exit 0 "status prod" D status prod -j 20
keep status.out
ok "status lists 20 hosts" sh -c "[ \$(grep -c '^h[0-9][0-9] .* yes .* B ' '$T_DIR/status.out') -eq 20 ]"
ok "status shows the last apply result" sh -c "grep '^h01 ' '$T_DIR/status.out' | grep -q ' ok$'"
ok "status: no control characters" no_control "$T_DIR/status.out"
echo tampered >> "$T_DIR/site-h03/distribution/openmrs_config/config.xml"
"$DISTSYNC" status --json prod > "$T_DIR/status.json" 2> "$T_DIR/status.err"
st=$?
check "status --json with a drifted host exits 1" "[ $st -eq 1 ]"
ok "status JSON: 20 hosts, h03 drifted" python3 -c "
import json; r = json.load(open('$T_DIR/status.json')); assert len(r) == 20, r
d = {h['host']: h for h in r}
assert d['h03']['drift'] == 1 and d['h01']['drift'] == 0, d['h03']
assert all(h['release'] == 'B' and h['reachable'] for h in r)
assert d['h01']['last_apply']['result'] == 'ok', d['h01']"
cp ../dist-A/openmrs_config/config.xml "$T_DIR/site-h03/distribution/openmrs_config/config.xml"

# A canary whose health check fails stops the rest: h01 (the first host)
# is the canary; it applies C, fails its health check and rolls back.
touch "$T_DIR/site-h01/distribution.fail-health"
echo "// C" >> dist/frontend/chunk9.js
D release --version C >> "$T_DIR/release.out" 2>&1
history_sums h01 > "$T_DIR/history.before"
"$DISTSYNC" push prod -j 20 --canary 1 > "$T_DIR/canary.out" 2> "$T_DIR/canary.err"
st=$?
check "a failing canary: exit 1" "[ $st -eq 1 ]"
ok "the canary failed its health check" \
	sh -c "grep '^h01 ' '$T_DIR/canary.out' | grep -q 'FAILED.*health'"
ok "the 19 others were not started" has canary.out "20 hosts: 0 ok, 1 failed, 19 not started"
ok "the table says why they were not started" \
	sh -c "grep '^h05 ' '$T_DIR/canary.out' | grep -q 'not started.*canary h01 failed'"
history_sums h01 > "$T_DIR/history.after"
ok "no other host was touched" cmp "$T_DIR/history.before" "$T_DIR/history.after"
ok "the canary is back at release B" same_tree "$T_DIR/site-h01/distribution" ../dist-B
ok "canary: no control characters on stderr" no_control "$T_DIR/canary.err"

"$DISTSYNC" push prod -j 1 --max-failures 1 > "$T_DIR/maxf.out" 2>&1
st=$?
check "--max-failures 1: exit 1" "[ $st -eq 1 ]"
ok "--max-failures 1 stops after the first failure" \
	has maxf.out "20 hosts: 0 ok, 1 failed, 19 not started"
history_sums h01 > "$T_DIR/history.after"
ok "--max-failures: no other host was touched" cmp "$T_DIR/history.before" "$T_DIR/history.after"

# With the canary healthy the whole fleet goes to C.
rm "$T_DIR/site-h01/distribution.fail-health"
expect_exit 0 "--canary 1 with a healthy canary pushes everyone" D push prod -j 20 --canary 1
keep canary-ok.out
ok "20 hosts at C" has canary-ok.out "20 hosts: 20 ok, 0 failed"

expect_exit 2 "-j 0 is a usage error" D push prod -j 0
done_testing
