#!/bin/sh
# distsync config check: every shipped sample passes; a bad config exits 2
# with FILE:LINE:COLUMN: KEY and touches nothing.
. "$top_srcdir/tests/func/lib.sh"

for f in "$top_srcdir"/config-samples/*.yml; do
	ok "sample $(basename "$f") passes config check" "$DISTSYNC" config check "$f"
done

# A site's own config (site:) prints what a site uses, no repository key.
"$DISTSYNC" config check "$top_srcdir/config-samples/site.yml" > "$T_DIR/site.out" 2>&1
for key in source store keep_releases publish_deltas publish_expires level defaults parallel \
    groups site_config signing_key; do
	check "site.yml: config check does not print $key" "! grep -q '^ *$key:' '$T_DIR/site.out'"
done
for key in 'name: rwandaemr' 'channel: stable' 'path: /opt/openmrs/distribution' \
    'compose: /opt/openmrs' 'upstream: central' 'host: kirehe' 'restart: compose'; do
	check "site.yml: config check prints $key" "grep -q '^ *$key\$' '$T_DIR/site.out'"
done
check "site.yml: what it prints loads again" \
	"'$DISTSYNC' config check '$T_DIR/site.out' > '$T_DIR/site2.out' && cmp -s '$T_DIR/site.out' '$T_DIR/site2.out'"
"$DISTSYNC" config check "$top_srcdir/config-samples/rwandaemr.yml" > "$T_DIR/repo.out" 2>&1
for key in source store keep_releases publish_deltas level parallel groups; do
	check "a repository's config check still prints $key" "grep -q '^ *$key:' '$T_DIR/repo.out'"
done

cd "$T_DIR" || exit 1
printf 'distribution: {name: x}\nhosts:\n  a:\n    path: /t\n    prot: 22\n' > bad.yml
expect_exit 2 "unknown key exits 2" "$DISTSYNC" config check bad.yml
last_output > bad.err
check "error names file, line, column and key" \
	"grep -q 'bad.yml:5:5: hosts.a.prot: unknown key (did you mean .port.?)' bad.err"
check "nothing printed on stdout for a bad config" \
	"'$DISTSYNC' config check bad.yml 2>/dev/null | wc -c | grep -qx 0"

printf 'distribution: {name: demo}\nhosts:\n  demo: {path: site/distribution}\n' > distsync.yml
ok "defaults to ./distsync.yml" "$DISTSYNC" config check
check "prints the default state directory" \
	"'$DISTSYNC' config check | grep -q 'state: .*/site/.distribution.distsync'"
ok "-c FILE is the default for check" "$DISTSYNC" -c distsync.yml config check
expect_exit 2 "-c naming a bad file exits 2" "$DISTSYNC" -c bad.yml config check
check "nothing was created by checking" "test ! -e site && test ! -e .distsync"

expect_exit 2 "missing file exits 2" "$DISTSYNC" config check no-such.yml
expect_exit 2 "no subcommand exits 2" "$DISTSYNC" config
expect_exit 2 "unknown subcommand exits 2" "$DISTSYNC" config chek
expect_exit 2 "unknown option exits 2" "$DISTSYNC" config check --frobnicate
expect_exit 0 "--help exits 0" "$DISTSYNC" config --help
check "--help shows usage" "'$DISTSYNC' config --help 2>&1 | grep -q 'usage: distsync config check'"

done_testing
