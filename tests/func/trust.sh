#!/bin/sh
# Who can make a site do what, over a real sshd:
# - a hostile upstream (tests/unit/hostile-upstream) cannot make a pulling site
#   run a command, write while it does a dry run, or roll it back;
# - a push's YAML cannot make `serve` run a command; the site's own
#   --site-config can, also behind an authorized_keys forced command;
# - signed releases: a site that pins the root (trust_root) refuses, with
#   exit 3 and the tree unchanged, an unsigned release, a manifest or object
#   altered after signing, a release signed by an unknown key, a replayed
#   older release, and after a key rotation the old release key, while the
#   new one is taken with no site re-configured; status says which sites do
#   not verify.
. "$top_srcdir/tests/func/lib.sh"
. "$top_srcdir/tests/func/lib-sshd.sh"
need_prog sha256sum
sshd_need
sshd_start up || { echo "not ok 1 - sshd starts"; echo "1..1"; exit 1; }
HOSTILE=$top_builddir/tests/unit/hostile-upstream
[ -x "$HOSTILE" ] || skip_all "tests/unit/hostile-upstream is not built"

cd "$T_DIR" || exit 1
mkdir -p repo/dist/openmrs_modules site pushed
R() { (cd repo && "$DISTSYNC" "$@"); }
same_tree() { [ "$(tree_digest "$1")" = "$(tree_digest "$2")" ]; }
keep() { cp "$T_DIR/.last.out" "$T_DIR/$1"; }
has() { grep -q -- "$2" "$T_DIR/$1"; }
no_marks() { ! ls "$T_DIR"/mark* >/dev/null 2>&1; }

# --- A pulling site and a hostile upstream --------------------------------
site_yml() {	# REMOTE_COMMAND: a site.yml whose upstream runs that
	cat <<YML
distribution: {name: test}
hosts:
  central:
    address: 127.0.0.1
    port: $(sshd_port up)
    user: $(id -un)
    identity: $SSHD_CLIENT_KEY
    known_hosts: $SSHD_KNOWN_HOSTS
    remote_command: $1
    path: $T_DIR/site/distribution
    connect_timeout: 10
    retries: 0
site: {upstream: central, repository: $T_DIR/repo/distsync.yml, host: kirehe}
YML
}
site_yml "$HOSTILE $T_DIR/mark" > hostile.yml
site_yml "$HOSTILE $T_DIR/mark rollback" > hostile-rollback.yml
mkdir -p site/distribution && echo keep > site/distribution/keep.txt
before=$(tree_digest site/distribution)
expect_exit 1 "a hostile upstream during pull --dry-run --no-restart: refused" \
	"$DISTSYNC" -c hostile.yml pull --dry-run --no-restart
keep hostile-dry
ok "it ran no command (no restart, health check or run_once)" no_marks
ok "and wrote nothing into the target" test "$(tree_digest site/distribution)" = "$before"
ok "the site says why: an object during its dry run" has hostile-dry "during this site's dry run"
expect_exit 0 "a hostile upstream during a real pull: the object is applied (content is checked, not trusted)" \
	"$DISTSYNC" -c hostile.yml pull
ok "but its services, health check and run_once never ran" no_marks
ok "the file landed in the site's own target, not the upstream's path" test -f site/distribution/hostile.txt
check "nothing was written where the upstream's YAML pointed" "[ ! -e /tmp/hostile-elsewhere ]"
expect_exit 3 "a hostile upstream asking for a rollback: refused" "$DISTSYNC" -c hostile-rollback.yml pull
ok "no command ran" no_marks

# --- Pushes into serve ----------------------------------------------------
# The initiator's YAML names commands; serve runs them only from --site-config.
cat > repo/distsync.yml <<YML
distribution: {name: test, source: dist, store: .distsync}
services:
  app: {paths: ["**"], restart: command, command: [/bin/sh, -c, "touch $T_DIR/mark.push"]}
hosts:
YML
sshd_host_yml up plain "$T_DIR/pushed/plain" >> repo/distsync.yml
sshd_host_yml up own "$T_DIR/pushed/own" >> repo/distsync.yml
printf '    site_config: %s\n' "$T_DIR/own-site.yml" >> repo/distsync.yml
cat > own-site.yml <<YML
distribution: {name: test}
services:
  app: {paths: ["**"], restart: command, command: [/bin/sh, -c, "touch $T_DIR/site-own-ran"]}
hosts:
  own: {path: $T_DIR/pushed/own}
YML
head -c 20000 /dev/urandom > repo/dist/openmrs_modules/a-1.0.omod
ok "release 1 (unsigned)" R release --version 1
expect_exit 0 "push to a serve with no site config" R push plain
ok "the push's service command did not run there" no_marks
ok "the files were applied" same_tree pushed/plain repo/dist
expect_exit 0 "push to a serve with --site-config" R push own
ok "the site's own service command ran" test -e site-own-ran
ok "and not the push's" no_marks

# The same behind a forced command: the key may only reach serve, with the
# site's own config, whatever the initiator asks.
forced_key=$T_DIR/forced_key
ssh-keygen -q -t ed25519 -N '' -f "$forced_key"
printf 'command="%s serve --root %s --site-config %s",no-pty %s\n' "$DISTSYNC" "$T_DIR/pushed" \
	"$T_DIR/own-site.yml" "$(cat "$forced_key.pub")" >> "$(sshd_dir up)/authorized_keys"
sed "s|identity: $SSHD_CLIENT_KEY|identity: $forced_key|" repo/distsync.yml > repo/forced.yml
rm -f site-own-ran
echo 2 > repo/dist/openmrs_modules/b.omod
ok "release 2" R release --version 2
expect_exit 0 "push through the forced command" R -c forced.yml push own
ok "the site's own command ran" test -e site-own-ran
ok "the push's did not" no_marks

# --- Signed releases ------------------------------------------------------
mkdir -p keys
ok "keygen root" R keygen --no-passphrase "$T_DIR/keys/root.key"
ok "keygen release" R keygen --no-passphrase "$T_DIR/keys/release.key"
ok "keygen stranger" R keygen --no-passphrase "$T_DIR/keys/stranger.key"
ok "keygen release2" R keygen --no-passphrase "$T_DIR/keys/release2.key"
expect_exit 2 "keygen with a passphrase file that is missing: a usage error" R keygen --passphrase-file "$T_DIR/keys/no-such-file" "$T_DIR/keys/never.key"
check "and no key was written" "[ ! -e $T_DIR/keys/never.key ]"
ok "keys init" R keys init --root "$T_DIR/keys/root.key" --release "$T_DIR/keys/release.key.pub"
keep keys.out
root_id=$(sed -n "s/^sites pin the root with:  trust_root: //p" "$T_DIR/keys.out")
check "keys prints the root key id to pin" "[ ${#root_id} -eq 64 ]"
# Sign from now on; a site that pins the root.
sed -i "s|store: .distsync}|store: .distsync, signing_key: $T_DIR/keys/release.key}|" repo/distsync.yml
cat > pin-site.yml <<YML
distribution: {name: test}
hosts:
  own: {path: $T_DIR/pushed/pinned, trust_root: [$root_id]}
YML
sshd_host_yml up pinned "$T_DIR/pushed/pinned" >> repo/distsync.yml
printf '    site_config: %s\n' "$T_DIR/pin-site.yml" >> repo/distsync.yml

expect_exit 3 "an unsigned release to a pinning site: refused (exit 3)" R push pinned --release 2
keep unsigned
ok "it says the release is not signed" has unsigned "not signed"
check "and nothing was applied" "[ ! -e pushed/pinned/openmrs_modules ]"
echo 3 > repo/dist/openmrs_modules/c.omod
ok "release 3 (signed)" R release --version 3
keep rel3
ok "release says it signed" has rel3 "signed: sequence 1"
expect_exit 0 "a signed release is applied" R push pinned
ok "the site is at release 3" same_tree pushed/pinned repo/dist
check "the site recorded the trust it walked" "[ -s pushed/.pinned.distsync/trust/marks ]"
expect_exit 0 "status of the pinned site" R status pinned plain
keep status
ok "status names the sites that do not verify" has status "releases not verified (no trust_root) on: plain"
ok "and not the pinned one" sh -c "! grep 'not verified.*pinned' '$T_DIR/status'"

# An object altered in the store after signing: the site's content check refuses it.
echo 4 > repo/dist/openmrs_modules/d.omod
ok "release 4" R release --version 4
before=$(tree_digest pushed/pinned)
obj=$(sha256sum repo/dist/openmrs_modules/d.omod | cut -d' ' -f1)
objfile=repo/.distsync/objects/$(echo "$obj" | cut -c1-2)/$(echo "$obj" | cut -c3-)
chmod u+w "$objfile" && echo tampered > "$objfile"
expect_exit 1 "an object altered in the store: refused" R push pinned
ok "the tree is unchanged" test "$(tree_digest pushed/pinned)" = "$before"
echo 4 > "$objfile"
# A manifest altered after signing (a hostile repository adds a file).
cp repo/.distsync/releases/4.manifest saved.manifest
head -c 100 /dev/urandom > evil.bin
evil_hash=$(sha256sum evil.bin | cut -d' ' -f1)
evil_dir=repo/.distsync/objects/$(echo "$evil_hash" | cut -c1-2)
mkdir -p "$evil_dir" && cp evil.bin "$evil_dir/$(echo "$evil_hash" | cut -c3-)"
python3 - "$evil_hash" <<'PY'
import sys
p = 'repo/.distsync/releases/4.manifest'
lines = [l for l in open(p).read().split('\n') if l]
body = lines[1:] + ['f 0755 100 %s openmrs_modules/evil.sh' % sys.argv[1]]
body.sort(key=lambda l: l.split(' ', 4)[4].encode())
open(p, 'w').write('\n'.join([lines[0]] + body) + '\n')
PY
expect_exit 3 "a manifest altered after signing: refused (exit 3)" R push pinned
keep altered
ok "it says the signature does not cover it" has altered "altered after signing"
ok "the tree is unchanged" test "$(tree_digest pushed/pinned)" = "$before"
cp saved.manifest repo/.distsync/releases/4.manifest
# A release signed by a key the site does not know.
cp repo/.distsync/releases/4.release saved.release
sed -i "s|signing_key: $T_DIR/keys/release.key|signing_key: $T_DIR/keys/stranger.key|" repo/distsync.yml
expect_exit 2 "release refuses to sign with a key outside the keys document" R release --version 5
sed -i "s|signing_key: $T_DIR/keys/stranger.key|signing_key: $T_DIR/keys/release.key|" repo/distsync.yml
python3 - "$T_DIR" <<'PY'
# Re-sign release 4's document with the stranger key, as a hostile repository would.
import subprocess, sys, re
t = sys.argv[1]
doc = open('repo/.distsync/releases/4.release').read()
body = doc[:doc.index('signature ')]
open(t + '/body', 'w').write(body)
key = open(t + '/keys/stranger.key.pub').read().split()[1]
subprocess.check_call(['openssl', 'pkeyutl', '-sign', '-rawin', '-inkey', t + '/keys/stranger.key',
    '-in', t + '/body', '-out', t + '/sig'])
import hashlib
kid = hashlib.sha256(bytes.fromhex(key)).hexdigest()
sig = open(t + '/sig', 'rb').read().hex()
open('repo/.distsync/releases/4.release', 'w').write(body + 'signature %s %s\n' % (kid, sig))
PY
expect_exit 3 "a release signed by an unknown key: refused (exit 3)" R push pinned
keep stranger
ok "it names an unknown or revoked key" has stranger "unknown or revoked"
ok "the tree is unchanged" test "$(tree_digest pushed/pinned)" = "$before"
cp saved.release repo/.distsync/releases/4.release
expect_exit 0 "release 4 as signed is applied" R push pinned
# A replayed older release (signed, but older than what the site applied).
before=$(tree_digest pushed/pinned)
expect_exit 3 "a replayed older release (3 after 4): refused (exit 3)" R push pinned --release 3
keep replay
ok "it says anti-rollback" has replay "anti-rollback"
ok "its line names the release the site keeps" has replay "pinned: push 4 -> 3"
ok "the tree is unchanged" test "$(tree_digest pushed/pinned)" = "$before"

# Rotation: version 2 of the keys document drops the release key for a new one.
release_id=$(R keys | sed -n 's/^  release *\([0-9a-f]*\).*/\1/p')
ok "keys update: the new release key in, the old one out" \
	R keys update --sign "$T_DIR/keys/root.key" --add "release:$T_DIR/keys/release2.key.pub" --remove "$release_id"
sed -i "s|signing_key: $T_DIR/keys/release.key|signing_key: $T_DIR/keys/release2.key|" repo/distsync.yml
echo 6 > repo/dist/openmrs_modules/e.omod
ok "release 6, signed with the new key" R release --version 6
expect_exit 0 "after the rotation the new key is taken, no site re-configured" R push pinned
ok "the site is at release 6" same_tree pushed/pinned repo/dist
# The way back for a signed distribution: release 4's tree cut again as 7.
ok "release 7 = release 4's tree, cut again" R release --version 7 --from-release 4
expect_exit 0 "it is applied: a new sequence" R push pinned
ok "the site holds release 4's files again" sh -c "[ ! -e pushed/pinned/openmrs_modules/e.omod ] && [ -e pushed/pinned/openmrs_modules/d.omod ]"
# The old key, still held by someone, signs a newer release: refused.
python3 - "$T_DIR" <<'PY'
import subprocess, sys, hashlib
t = sys.argv[1]
doc = open('repo/.distsync/releases/6.release').read()
body = doc[:doc.index('signature ')].replace('sequence ', 'sequence 9', 1)
open(t + '/body', 'w').write(body)
subprocess.check_call(['openssl', 'pkeyutl', '-sign', '-rawin', '-inkey', t + '/keys/release.key',
    '-in', t + '/body', '-out', t + '/sig'])
key = open(t + '/keys/release.key.pub').read().split()[1]
kid = hashlib.sha256(bytes.fromhex(key)).hexdigest()
open('repo/.distsync/releases/6.release', 'w').write(body + 'signature %s %s\n' % (kid, open(t + '/sig', 'rb').read().hex()))
PY
expect_exit 3 "a release signed by the revoked key: refused (exit 3)" R push pinned --release 6
keep revoked
ok "it names an unknown or revoked key" has revoked "unknown or revoked"
done_testing
