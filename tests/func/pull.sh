#!/bin/sh
# pull over a real sshd: the site fetches and applies the repository's
# release; --quiet is silent on a no-op; a held lock is exit 3 with a message;
# an unknown upstream host key is refused; a dry run changes nothing; a
# missing site: section is a config error.
. "$top_srcdir/tests/func/lib.sh"
. "$top_srcdir/tests/func/lib-sshd.sh"
need_prog sha256sum flock
sshd_need
sshd_start up || { echo "not ok 1 - sshd starts"; echo "1..1"; exit 1; }

cd "$T_DIR" || exit 1
mkdir -p repo/dist/openmrs_modules repo/dist/frontend site
cat > repo/distsync.yml <<YML
distribution: {name: test, source: dist, store: .distsync}
hosts:
  kirehe: {path: $T_DIR/site/distribution}
YML
echo '<html>1</html>' > repo/dist/frontend/index.html
head -c 300000 /dev/urandom > repo/dist/openmrs_modules/a-1.0.omod
seq 1 20000 > repo/dist/frontend/big.txt

# The site's own config: the upstream link, this site's target, site:.
site_yml() {
	cat <<YML
distribution: {name: test}
services:
  web:
    paths: ["frontend/**"]
    restart: command
    command: [/bin/sh, -c, 'echo "\$DISTSYNC_HOST" > $T_DIR/host-seen']
hosts:
  central:
    address: 127.0.0.1
    port: $(sshd_port up)
    user: $(id -un)
    identity: $SSHD_CLIENT_KEY
    known_hosts: $1
    remote_command: $DISTSYNC
    path: $T_DIR/site/distribution
    connect_timeout: 10
    retries: 1
    retry_max_wait: 2
site: {upstream: central, repository: $T_DIR/repo/distsync.yml, host: kirehe}
YML
}
site_yml "$SSHD_KNOWN_HOSTS" > site.yml
: > empty_known_hosts
site_yml "$T_DIR/empty_known_hosts" > site-unknown.yml
R() { (cd repo && "$DISTSYNC" "$@"); }
P() { "$DISTSYNC" -c "$T_DIR/site.yml" pull "$@"; }
keep() { cp "$T_DIR/.last.out" "$T_DIR/out"; }
out_has() { grep -q -- "$1" "$T_DIR/out"; }
state=$T_DIR/site/.distribution.distsync

ok "release 1" R release --version 1.0
cp -a repo/dist dist-r1
expect_exit 0 "first pull applies release 1" P
keep
ok "site equals release 1" test "$(tree_digest site/distribution)" = "$(tree_digest repo/dist)"
ok "summary names the release" out_has "kirehe: pull (none) -> 1.0: [0-9]* added"
check "current.manifest written" "[ -f $state/current.manifest ]"

expect_exit 0 "pull --quiet when nothing changed" P --quiet
ok "--quiet no-op prints nothing" test ! -s "$T_DIR/.last.out"

echo '<html>2</html>' > repo/dist/frontend/index.html
rm repo/dist/frontend/big.txt
ok "release 2" R release --version 2.0
before=$(tree_digest site/distribution)
expect_exit 0 "dry run" P --dry-run
keep
ok "dry run changes nothing" test "$(tree_digest site/distribution)" = "$before"
ok "dry run says so" out_has "dry run"
expect_exit 0 "pull --quiet applies release 2" P --quiet
keep
ok "--quiet still reports a change" out_has "1.0 -> 2.0: 0 added, 1 updated, 1 deleted"
ok "the site's restart command saw its own name, not its upstream's" \
	sh -c "[ \"\$(cat '$T_DIR/host-seen')\" = kirehe ]"
ok "site equals release 2" test "$(tree_digest site/distribution)" = "$(tree_digest repo/dist)"
check "history records the pull" "grep -q 2.0 $state/history.log"

# Locks: another pull (pull.lock), then a push/apply (the target's lock).
hold_lock "$state/pull.lock"
expect_exit 3 "pull while another pull runs: exit 3" P --quiet
keep
ok "the message says another pull is running" out_has "another distsync pull is running"
kill $HOLD_PID; wait $HOLD_PID 2>/dev/null
hold_lock "$state/lock"
expect_exit 3 "pull while the target is locked: exit 3" P
keep
ok "the message names the lock" out_has "locked by"
kill $HOLD_PID; wait $HOLD_PID 2>/dev/null

# An unknown host key is refused with its fingerprint; nothing is pulled.
echo '<html>3</html>' > repo/dist/frontend/index.html
ok "release 3" R release --version 3.0
before=$(tree_digest site/distribution)
expect_exit 1 "unknown upstream host key: refused" "$DISTSYNC" -c "$T_DIR/site-unknown.yml" pull
keep
ok "the refusal shows the fingerprint" out_has "$(sshd_fingerprint up)"
ok "nothing changed" test "$(tree_digest site/distribution)" = "$before"
check "the key was not recorded" "[ ! -s $T_DIR/empty_known_hosts ]"

# A specific release, then back to the latest.
expect_exit 0 "pull --release 1.0" P --release 1.0
ok "site equals release 1 again" test "$(tree_digest site/distribution)" = "$(tree_digest dist-r1)"
expect_exit 0 "pull the latest" P --quiet
ok "site equals release 3" test "$(tree_digest site/distribution)" = "$(tree_digest repo/dist)"

# --timeout bounds the whole run: a pull capped at 8 KiB/s of a 300 KB update
# (37 s) stops after 2 s, the site keeps its release, and the next run
# resumes. The bound is far below the update's 37 s, with room for a busy
# machine's slow start and stop.
head -c 300000 /dev/urandom > repo/dist/openmrs_modules/b-1.0.omod
ok "release 4" R release --version 4.0
before=$(tree_digest site/distribution)
t0=$(date +%s)
expect_exit 1 "--timeout 2 on a slow pull: exit 1" P --bwlimit 8k --timeout 2
keep
t1=$(date +%s)
ok "it stopped long before the update could finish ($((t1 - t0)) s)" test $((t1 - t0)) -le 20
ok "the message names the time limit" out_has "total time limit"
ok "the site kept release 3" test "$(tree_digest site/distribution)" = "$before"
expect_exit 0 "the next pull completes" P --quiet
ok "site equals release 4" test "$(tree_digest site/distribution)" = "$(tree_digest repo/dist)"

# Config and usage errors are exit 2.
cat > nosite.yml <<YML
distribution: {name: test}
hosts:
  central: {address: 127.0.0.1, path: $T_DIR/site/distribution}
YML
expect_exit 2 "no site: section: exit 2" "$DISTSYNC" -c "$T_DIR/nosite.yml" pull
keep
ok "the message asks for site:" out_has "no site: section"
expect_exit 2 "bad --bwlimit: exit 2" P --bwlimit fast
expect_exit 2 "unknown host on the upstream: exit 2" sh -c \
    "sed 's/host: kirehe/host: nosuch/' '$T_DIR/site.yml' > '$T_DIR/s2.yml' && '$DISTSYNC' -c '$T_DIR/s2.yml' pull"
keep
ok "the upstream's reason is shown" out_has "no host 'nosuch'"

# A key pinned to this site by an authorized_keys forced command: the site's
# own options (its --release) still apply; another host, a push or anything
# but a pull request is refused.
printf '  butaro: {path: %s/site-b/distribution}\n' "$T_DIR" >> repo/distsync.yml
up_keys=$(sshd_dir up)/authorized_keys
cp "$up_keys" "$T_DIR/authorized_keys.open"
printf 'command="%s -c %s serve --send --only-host kirehe",no-pty,no-port-forwarding %s\n' \
    "$DISTSYNC" "$T_DIR/repo/distsync.yml" "$(cat "$SSHD_CLIENT_KEY.pub")" > "$up_keys"
expect_exit 0 "forced command: pull --release 1.0" P --release 1.0
ok "the site's --release came through the forced command" \
    test "$(tree_digest site/distribution)" = "$(tree_digest dist-r1)"
expect_exit 0 "forced command: pull the latest" P --quiet
ok "site equals the latest release" test "$(tree_digest site/distribution)" = "$(tree_digest repo/dist)"
sed 's/host: kirehe/host: butaro/' site.yml > s3.yml
expect_exit 2 "forced command: pulling another host is refused (exit 2)" \
    "$DISTSYNC" -c "$T_DIR/s3.yml" pull
keep
ok "the refusal names the allowed host" out_has "may pull only kirehe"
ok "nothing of butaro was made" test ! -e "$T_DIR/site-b"
S() { SSH_ORIGINAL_COMMAND="$1" "$DISTSYNC" -c "$T_DIR/repo/distsync.yml" serve --send \
    --only-host kirehe < /dev/null; }
expect_exit 2 "forced command: a push request (serve --root) is refused" S "distsync serve --root /"
keep
ok "the refusal says the key may only pull" out_has "may only pull"
expect_exit 2 "forced command: a request with shell syntax is refused" \
    S "distsync serve --send --host kirehe; touch $T_DIR/pwned"
ok "nothing ran" test ! -e "$T_DIR/pwned"
expect_exit 2 "forced command: an option a pull does not send is refused" \
    S "distsync serve --send --host kirehe --root /"

# A release the forced command pins holds: a site asking for another one is
# refused, and a pull that names none gets the pinned one, not the latest.
printf 'command="%s -c %s serve --send --only-host kirehe --release 1.0",no-pty,no-port-forwarding %s\n' \
    "$DISTSYNC" "$T_DIR/repo/distsync.yml" "$(cat "$SSHD_CLIENT_KEY.pub")" > "$up_keys"
before=$(tree_digest site/distribution)
expect_exit 2 "forced --release 1.0: a pull of 2.0 is refused (exit 2)" P --release 2.0
keep
ok "the refusal names the pinned release" out_has "may pull only release 1.0"
ok "nothing changed" test "$(tree_digest site/distribution)" = "$before"
Sp() { SSH_ORIGINAL_COMMAND="$1" "$DISTSYNC" -c "$T_DIR/repo/distsync.yml" serve --send \
    --only-host kirehe --release 1.0 < /dev/null; }
expect_exit 2 "forced --release 1.0: the request's --release does not override it" \
    Sp "distsync serve --send --host kirehe --release 4.0"
expect_exit 0 "forced --release 1.0: a pull naming no release" P --quiet
ok "the site got the pinned release 1.0, not the latest" \
    test "$(tree_digest site/distribution)" = "$(tree_digest dist-r1)"
cp "$T_DIR/authorized_keys.open" "$up_keys"

# At the site, its own config acts on the site itself: status, releases,
# verify and rollback need no link (the upstream here is unreachable, so
# nothing went over SSH), and name the site, not the upstream.
sed 's/address: 127.0.0.1/address: 192.0.2.1/; s/connect_timeout: 10/connect_timeout: 1/' \
    site.yml > site-offline.yml
L() { "$DISTSYNC" -c "$T_DIR/site-offline.yml" "$@"; }
expect_exit 0 "site: status with no host" L status
keep
ok "site: status names the site and its release" out_has "^kirehe  *yes  *1.0"
expect_exit 0 "site: releases with no host lists the site's" L releases
keep
ok "site: releases says what it holds" out_has "^kirehe: current 1.0"
expect_exit 0 "site: verify kirehe" L verify kirehe
expect_exit 0 "site: rollback (no host)" L rollback --no-restart
keep
ok "site: rolled back on the site itself" out_has "^kirehe: rollback 1.0 -> "
expect_exit 2 "site: another host is refused" L verify elsewhere
keep
ok "site: it says the config acts only on the site" out_has "this is the config of site kirehe"

# A site.yml that names other hosts reaches none of them: every entry's
# remote_command here (on a live sshd) leaves a mark, and status, releases,
# verify and rollback either act on the site itself or refuse (exit 2).
marked_yml() {
	sed -e "s|remote_command: .*|remote_command: touch $T_DIR/reached-central; false|" \
	    -e "s/host: kirehe}/host: $1}/" -e '/^site:/d' site.yml
	printf '  other:\n    address: 127.0.0.1\n    port: %s\n    user: %s\n' \
	    "$(sshd_port up)" "$(id -un)"
	printf '    identity: %s\n    known_hosts: %s\n' "$SSHD_CLIENT_KEY" "$SSHD_KNOWN_HOSTS"
	printf '    remote_command: touch %s/reached-other; false\n' "$T_DIR"
	printf '    path: %s/other/distribution\n' "$T_DIR"
	sed -n "s/host: kirehe}/host: $1}/; /^site:/p" site.yml
}
no_mark() { [ ! -e "$T_DIR/reached-central" ] && [ ! -e "$T_DIR/reached-other" ]; }
marked_yml kirehe > site-marked.yml
M() { "$DISTSYNC" -c "$T_DIR/site-marked.yml" "$@"; }
expect_exit 0 "marked: status with no host acts here" M status
for op in status verify rollback releases; do
	expect_exit 2 "marked: $op of another host entry is refused" M $op other
done
expect_exit 2 "marked: status all is refused" M status all
expect_exit 2 "marked: verify of the site and another host is refused" M verify kirehe other
expect_exit 2 "marked: restore from another host entry is refused" \
	sh -c "cd '$T_DIR' && '$DISTSYNC' -c site-marked.yml restore other openmrs_config/x"
ok "marked: no host entry was reached over SSH" no_mark
# The site calls itself by another entry's name: that name is the site itself.
marked_yml other > site-named-other.yml
N() { "$DISTSYNC" -c "$T_DIR/site-named-other.yml" "$@"; }
expect_exit 0 "named other: status other acts on the site itself" N status other
keep
ok "named other: it shows the site's target" out_has "^other  *yes "
expect_exit 0 "named other: verify other acts on the site itself" N verify other
expect_exit 0 "named other: releases other lists the site's" N releases other
ok "named other: no host entry was reached over SSH" no_mark
check "named other: the other entry's target was never made" "[ ! -e '$T_DIR/other' ]"
# The control: a pull does reach the upstream, and its remote_command leaves the mark.
expect_exit 1 "marked: a pull reaches the upstream's remote_command (which fails)" M pull
check "marked: the mark a reach over SSH leaves is there" "[ -e '$T_DIR/reached-central' ]"

done_testing
