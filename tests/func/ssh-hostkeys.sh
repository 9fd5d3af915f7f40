#!/bin/sh
# Host keys against real sshd servers, as a new user meets them: every hint a
# refusal prints is run literally as printed (through a terminal, answering
# "y") and must fix what it names, for push with -c FILE and for a pull
# site.yml with a known_hosts file of its own; ~/.ssh/config's
# UserKnownHostsFile and StrictHostKeyChecking (yes, accept-new, no) are
# honoured; a changed key is refused loudly in every mode; a ProxyJump whose
# jump host is unknown names that host and its fingerprint, and the printed
# "distsync trust" records the jump host's key and the host's.
. "$top_srcdir/tests/func/lib.sh"
. "$top_srcdir/tests/func/lib-sshd.sh"
sshd_need
need_prog ssh-keygen script sha256sum

cd "$T_DIR" || exit 1
for s in a up b j; do
	sshd_start $s || { echo "not ok 1 - sshd $s starts"; echo "1..1"; exit 1; }
done
# Keep the tests away from the caller's keys, agent and ~/.ssh.
mkdir -p home/.ssh bin
HOME="$T_DIR/home"
unset SSH_AUTH_SOCK
# The hints say "distsync ...": that name runs the binary under test.
ln -s "$DISTSYNC" bin/distsync
PATH="$T_DIR/bin:$PATH"
export HOME PATH
me=$(id -un)
key=$SSHD_CLIENT_KEY
user_kh="$HOME/.ssh/known_hosts"

keep() { cp "$T_DIR/.last.out" "$T_DIR/out"; }
out_has() { grep -q -- "$1" "$T_DIR/out"; }
out_lacks() { ! grep -q -- "$1" "$T_DIR/out"; }
# The command a refusal tells the user to run, and the ssh-keygen it names.
hint() { sed -n "s/.* then run '\([^']*\)'.*/\1/p; s/.* and run '\([^']*\)'.*/\1/p" "$T_DIR/out" | head -n 1; }
keygen_hint() { sed -n 's/.*(\(ssh-keygen -R [^)]*\)).*/\1/p' "$T_DIR/out" | head -n 1; }
# run_on_tty ANSWERS CMD: runs the shell command CMD with a terminal for
# stdin that reads ANSWERS (one per line), as a user at a keyboard.
run_on_tty() {
	printf "$1" | script -qec "$2" /dev/null
}
# has_key FILE NAME: FILE records NAME's current host key.
has_key() { grep -q "$(cut -d' ' -f2 "$(sshd_dir "$2")/ssh_host_ed25519_key.pub")" "$1"; }
lacks_key() { ! has_key "$@"; }
host_entry() {
	printf '  %s:\n    address: %s\n    path: %s\n    remote_command: %s\n' "$1" "$2" "$3" "$DISTSYNC"
	printf '    identity: %s\n    connect_timeout: 10\n    retries: 0\n' "$key"
}

# 1. push with -c FILE: the unknown key's hint names that file and works.
mkdir -p repo/dist/openmrs_modules
head -c 50000 /dev/urandom > repo/dist/openmrs_modules/a-1.0.omod
{
	printf 'distribution: {name: test, source: dist}\nhosts:\n'
	host_entry site-a 127.0.0.1 "$T_DIR/site-a/distribution"
	printf '    port: %s\n    user: %s\n' "$(sshd_port a)" "$me"
	printf '  site-p: {path: %s}\n' "$T_DIR/site-pull/distribution"
} > repo/laptop.yml
R() { (cd repo && distsync -c laptop.yml "$@"); }
ok "release 1.0" R release --version 1.0
expect_exit 1 "push -c FILE to an unknown host: refused" R push site-a
keep
ok "the refusal shows the fingerprint" out_has "$(sshd_fingerprint a)"
ok "the refusal names ~/.ssh/known_hosts" out_has "is not in $user_kh"
ok "no --accept-new is suggested (push has none)" out_lacks "accept-new"
ok "the hint repeats -c laptop.yml (absolute)" test "$(hint)" = "distsync -c $T_DIR/repo/laptop.yml trust site-a"
cmd=$(hint)
expect_exit 0 "the hint, run as printed, records the key" \
	run_on_tty 'y\n' "cd '$T_DIR/repo' && $cmd"
keep
ok "trust said where it recorded" out_has "recorded in $user_kh"
ok "the key is in ~/.ssh/known_hosts" has_key "$user_kh" a
expect_exit 0 "push now succeeds" R push site-a
ok "release 1.0 applied" test "$(tree_digest site-a/distribution)" = "$(tree_digest repo/dist)"

# 2. pull with a site.yml whose upstream entry has a known_hosts of its own.
: > site-kh
cat > site.yml <<YML
distribution: {name: test}
hosts:
  central:
    address: 127.0.0.1
    port: $(sshd_port up)
    user: $me
    identity: $key
    known_hosts: $T_DIR/site-kh
    remote_command: $DISTSYNC
    path: $T_DIR/site-pull/distribution
    connect_timeout: 10
    retries: 0
site: {upstream: central, repository: $T_DIR/repo/laptop.yml, host: site-p}
YML
expect_exit 1 "pull from an unknown upstream: refused" distsync -c "$T_DIR/site.yml" pull
keep
ok "the refusal shows the upstream's fingerprint" out_has "$(sshd_fingerprint up)"
ok "the refusal names the site's known_hosts" out_has "is not in $T_DIR/site-kh"
ok "the hint names site.yml" test "$(hint)" = "distsync -c $T_DIR/site.yml trust central"
cmd=$(hint)
expect_exit 0 "the pull hint, run as printed, records the key" run_on_tty 'y\n' "$cmd"
ok "the key is in the site's known_hosts" has_key site-kh up
ok "and not in ~/.ssh/known_hosts" lacks_key "$user_kh" up
expect_exit 0 "pull now succeeds" distsync -c "$T_DIR/site.yml" pull
ok "the pulled tree is release 1.0" \
	test "$(tree_digest site-pull/distribution)" = "$(tree_digest repo/dist)"

# 3. ~/.ssh/config: UserKnownHostsFile and StrictHostKeyChecking, one alias
# per mode, all for server b.
bport=$(sshd_port b)
alias_block() {
	printf 'Host %s\n\tHostName 127.0.0.1\n\tPort %s\n\tUser %s\n\tIdentityFile %s\n' \
		"$1" "$bport" "$me" "$key"
	printf '\tUserKnownHostsFile %s\n' "$2"
	[ -n "${3:-}" ] && printf '\tStrictHostKeyChecking %s\n' "$3"
	return 0
}
{
	alias_block b-plain "$T_DIR/kh-plain"
	alias_block b-yes "$T_DIR/kh-yes" yes
	alias_block b-new "$T_DIR/kh-new" accept-new
	alias_block b-no "$T_DIR/kh-no" no
} > home/.ssh/config
: > kh-plain
: > kh-yes
{
	printf 'distribution: {name: test, source: dist}\nhosts:\n'
	for m in plain yes new no; do
		host_entry "b-$m" "b-$m" "$T_DIR/site-b-$m/distribution"
	done
} > repo/modes.yml
M() { (cd repo && distsync -c modes.yml "$@"); }


expect_exit 1 "UserKnownHostsFile, key unknown: refused" M push b-plain
keep
ok "the refusal names the UserKnownHostsFile" out_has "is not in $T_DIR/kh-plain (UserKnownHostsFile at $HOME/.ssh/config:"
ok "and not ~/.ssh/known_hosts" out_lacks "is not in $user_kh"
cmd=$(hint)
ok "the hint is trust with -c modes.yml" test "$cmd" = "distsync -c $T_DIR/repo/modes.yml trust b-plain"
expect_exit 0 "the hint records the key" run_on_tty 'y\n' "cd '$T_DIR/repo' && $cmd"
ok "recorded in the UserKnownHostsFile" has_key kh-plain b
ok "not in ~/.ssh/known_hosts" lacks_key "$user_kh" b
expect_exit 0 "ssh itself agrees: it connects with the same config" \
	ssh -F "$HOME/.ssh/config" -o BatchMode=yes b-plain true
expect_exit 0 "push honours the UserKnownHostsFile" M push b-plain

expect_exit 1 "StrictHostKeyChecking yes: an unknown key is refused" M push b-yes
keep
ok "refused with the trust hint" test "$(hint)" = "distsync -c $T_DIR/repo/modes.yml trust b-yes"
check "nothing recorded" "[ ! -s '$T_DIR/kh-yes' ]"

expect_exit 0 "StrictHostKeyChecking accept-new: recorded and connected" M push b-new
keep
ok "it says what it recorded and why" \
	out_has "recorded new host key for 127.0.0.1:$bport (ssh-ed25519 $(sshd_fingerprint b)) in $T_DIR/kh-new (StrictHostKeyChecking accept-new at $HOME/.ssh/config:"
ok "recorded in that alias's UserKnownHostsFile" has_key kh-new b

expect_exit 0 "StrictHostKeyChecking no: an unknown key is recorded, as ssh does" M push b-no
ok "recorded in kh-no" has_key kh-no b

# 4. A changed key is refused loudly in every mode, and its hints work.
for m in plain new no; do cp "kh-$m" "kh-$m.before"; done
sshd_rekey b || exit 1
newfp=$(sshd_fingerprint b)
for m in plain new no; do
	expect_exit 1 "changed key refused (mode $m)" M push "b-$m"
	keep
	ok "mode $m: HOST KEY CHANGED with the new fingerprint" out_has "HOST KEY CHANGED.*$newfp"
	ok "mode $m: names the file and line" out_has "recorded at $T_DIR/kh-$m:1"
	ok "mode $m: known_hosts untouched" cmp "kh-$m" "kh-$m.before"
done
ok "with StrictHostKeyChecking no, the message says it does not apply" \
	out_has "no option overrides this, not StrictHostKeyChecking no at $HOME/.ssh/config:[0-9]* either"
expect_exit 1 "trust --yes refuses a changed key too" M trust --yes b-plain
ok "known_hosts still untouched" cmp kh-plain kh-plain.before
# The two commands the message prints, literally: remove, then trust.
expect_exit 1 "changed key, once more for its hints" M push b-no
keep
kg=$(keygen_hint)
cmd=$(hint)
ok "the hint removes from kh-no" test "$kg" = "ssh-keygen -R '[127.0.0.1]:$bport' -f $T_DIR/kh-no"
expect_exit 0 "ssh-keygen -R as printed" sh -c "$kg"
expect_exit 0 "then the trust hint as printed" run_on_tty 'y\n' "cd '$T_DIR/repo' && $cmd"
ok "kh-no now holds the new key" has_key kh-no b
expect_exit 0 "push works again" M push b-no

# 5. ProxyJump: the jump host's key unknown, then changed.
jport=$(sshd_port j)
{
	printf 'Host bastion\n\tHostName 127.0.0.1\n\tPort %s\n\tUser %s\n\tIdentityFile %s\n' \
		"$jport" "$me" "$key"
	printf 'Host behind\n\tHostName 127.0.0.1\n\tPort %s\n\tUser %s\n\tIdentityFile %s\n' \
		"$(sshd_port a)" "$me" "$key"
	printf '\tProxyJump bastion\n'
} >> home/.ssh/config
: > kh-jump
{
	printf 'distribution: {name: test, source: dist}\nhosts:\n'
	host_entry site-j behind "$T_DIR/site-j/distribution"
	printf '    known_hosts: %s\n' "$T_DIR/kh-jump"
} > repo/jump.yml
J() { (cd repo && distsync -c jump.yml "$@"); }

expect_exit 1 "push through an unknown jump host: refused" J push site-j
keep
ok "names the jump host" out_has "site-j: jump host bastion: unknown host key for 127.0.0.1:$jport"
ok "shows the jump host's fingerprint" out_has "$(sshd_fingerprint j)"
ok "no bare socket error" out_lacks "Connection reset by peer"
ok "the hint is trust of the host, with -c" test "$(hint)" = "distsync -c $T_DIR/repo/jump.yml trust site-j"
cmd=$(hint)
expect_exit 0 "the hint records the jump host's key, then the host's" \
	run_on_tty 'y\ny\n' "cd '$T_DIR/repo' && $cmd"
keep
ok "trust showed the jump host's key" out_has "site-j: jump host bastion (127.0.0.1:$jport): ssh-ed25519 key $(sshd_fingerprint j)"
ok "trust showed the host's key" out_has "site-j (127.0.0.1:$(sshd_port a)): ssh-ed25519 key $(sshd_fingerprint a)"
ok "the jump host's key is in the host's known_hosts" has_key kh-jump j
ok "the host's key too" has_key kh-jump a
ok "~/.ssh/known_hosts did not get the jump host's key" lacks_key "$user_kh" j
logins=$(grep -c "Accepted publickey" "$(sshd_dir j)/log")
expect_exit 0 "push through the jump host" J push site-j
ok "release applied through the jump" \
	test "$(tree_digest site-j/distribution)" = "$(tree_digest repo/dist)"
check "the jump host saw the push" "[ \$(grep -c 'Accepted publickey' '$(sshd_dir j)/log') -gt $logins ]"
# A bigger release both ways through the tunnel (a delta needs the site's
# signature), so the tunnel's buffering is exercised.
head -c 3000000 /dev/urandom > repo/dist/openmrs_modules/b-1.0.omod
ok "release 2.0" J release --version 2.0
expect_exit 0 "push 3 MB through the jump host" J push site-j
ok "release 2.0 applied through the jump" \
	test "$(tree_digest site-j/distribution)" = "$(tree_digest repo/dist)"

cp kh-jump kh-jump.before
sshd_rekey j || exit 1
expect_exit 1 "a changed jump host key: refused" J push site-j
keep
ok "names the jump host, loudly" out_has "site-j: jump host bastion: HOST KEY CHANGED for 127.0.0.1:$jport"
ok "with its new fingerprint" out_has "$(sshd_fingerprint j)"
ok "and where the old one is" out_has "recorded at $T_DIR/kh-jump:[0-9]"
ok "kh-jump untouched" cmp kh-jump kh-jump.before
kg=$(keygen_hint)
cmd=$(hint)
expect_exit 0 "ssh-keygen -R as printed" sh -c "$kg"
expect_exit 0 "the trust hint as printed" run_on_tty 'y\n' "cd '$T_DIR/repo' && $cmd"
keep
ok "the host's key was already trusted" out_has "site-j: already trusted in $T_DIR/kh-jump"
expect_exit 0 "push through the re-keyed jump host" J push site-j

done_testing
