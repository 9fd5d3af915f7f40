#!/bin/sh
# The SSH transport against a real OpenSSH sshd on loopback: a remote command
# through the transport, host keys (unknown, accept-new, trust, changed),
# authentication, a missing remote binary, refused and unresolvable hosts,
# ~/.ssh/config aliases, the idle timeout, a cut link; push over SSH with a
# link cut mid-transfer.
. "$top_srcdir/tests/func/lib.sh"
. "$top_srcdir/tests/func/lib-sshd.sh"
sshd_need
need_prog ssh-keygen sha256sum

DRIVER="$top_builddir/tests/unit/test-xport-ssh"
[ -x "$DRIVER" ] || skip_all "tests/unit/test-xport-ssh is not built (make check builds it)"

cd "$T_DIR" || exit 1
sshd_start a || { echo "not ok 1 - sshd starts"; echo "1..1"; exit 1; }
port=$(sshd_port a)
fp=$(sshd_fingerprint a)
# Keep the tests away from the caller's keys, agent and ~/.ssh/config.
mkdir -p home/.ssh
HOME="$T_DIR/home"
unset SSH_AUTH_SOCK
export HOME

# drv ARGS...: the transport driver against server a as the test user.
drv() {
	"$DRIVER" driver -N site-a -a 127.0.0.1 -p "$port" -l "$(id -un)" -c 10 "$@"
}
keep() { cp "$T_DIR/.last.out" "$T_DIR/out"; }
out_has() { grep -q -- "$1" "$T_DIR/out"; }
out_lacks() { ! grep -q -- "$1" "$T_DIR/out"; }
kh="$SSHD_KNOWN_HOSTS"
key="$SSHD_CLIENT_KEY"

# A remote command through the transport.
head -c 100000 /dev/urandom > payload
ok "bytes echo through cat unchanged" \
	sh -c "'$DRIVER' driver -N site-a -a 127.0.0.1 -p $port -l $(id -un) -i '$key' -k '$kh' -r cat \
	< payload > echoed && cmp payload echoed"
expect_exit 0 "arguments reach the remote shell quoted" \
	drv -i "$key" -k "$kh" -r printf -- '[%s]' 'two words' "it's" '$(id)' '*'
keep
ok "quoted arguments arrive intact" out_has "\[two words\]\[it's\]\[\$(id)\]\[\*\]"
expect_exit 3 "the remote exit status comes back" \
	drv -i "$key" -k "$kh" -r sh -- -c 'echo broken pipe dream >&2; exit 3'
keep
ok "remote stderr is logged with the host name" out_has "distsync: site-a: broken pipe dream"

# Unknown host: refused with the fingerprint and the command that accepts it.
: > kh-empty
expect_exit $((100 + 12)) "unknown host key refused (DS_ERR_HOSTKEY)" \
	drv -i "$key" -k "$T_DIR/kh-empty" -r true
keep
ok "refusal shows the SHA256 fingerprint" out_has "$fp"
ok "refusal names 'distsync trust site-a'" out_has "distsync trust site-a"
check "nothing recorded" "[ ! -s '$T_DIR/kh-empty' ]"

# accept-new records an unknown key, like OpenSSH's accept-new.
: > kh-new
expect_exit 0 "--accept-new connects to an unknown host" \
	drv -n -i "$key" -k "$T_DIR/kh-new" -r true
keep
ok "accept-new says what it recorded" out_has "recorded new host key.*$fp"
check "accept-new recorded the key" "ssh-keygen -F '[127.0.0.1]:$port' -f '$T_DIR/kh-new' | grep -q ssh-ed25519"
expect_exit 0 "next strict connection is accepted" drv -i "$key" -k "$T_DIR/kh-new" -r true

# distsync trust, through distsync.yml.
mkdir -p repo/dist && cd repo || exit 1
{
	printf 'distribution:\n  name: test\n  source: dist\nhosts:\n'
	sshd_host_yml a site-a "$T_DIR/site/distribution"
} > distsync.yml
sed -i "s|known_hosts: .*|known_hosts: $T_DIR/kh-trust|" distsync.yml
: > "$T_DIR/kh-trust"
expect_exit 1 "trust without a terminal and without --yes records nothing" \
	"$DISTSYNC" trust site-a < /dev/null
keep
ok "trust shows the fingerprint" out_has "$fp"
check "nothing recorded without --yes" "[ ! -s '$T_DIR/kh-trust' ]"
expect_exit 0 "trust --yes records the key" "$DISTSYNC" trust --yes site-a
keep
ok "trust says where" out_has "recorded in $T_DIR/kh-trust"
check "the recorded key is the server's" \
	"grep -q \"\$(cut -d' ' -f2 '$(sshd_dir a)/ssh_host_ed25519_key.pub')\" '$T_DIR/kh-trust'"
expect_exit 0 "trust again: already trusted" "$DISTSYNC" trust --yes site-a
keep
ok "already trusted is said" out_has "already trusted"
expect_exit 0 "trust --help" "$DISTSYNC" trust --help
expect_exit 2 "trust without HOST is a usage error" "$DISTSYNC" trust
cd "$T_DIR" || exit 1

# A changed host key: refused loudly, whatever the flags.
cp "$kh" kh-before
sshd_rekey a || exit 1
newfp=$(sshd_fingerprint a)
expect_exit $((100 + 12)) "changed host key refused" drv -i "$key" -k "$kh" -r true
keep
ok "changed key: loud message" out_has "HOST KEY CHANGED"
ok "changed key: names the new fingerprint" out_has "$newfp"
ok "changed key: names known_hosts file and line" out_has "$kh:[0-9]"
expect_exit $((100 + 12)) "changed host key refused even with --accept-new" \
	drv -n -i "$key" -k "$kh" -r true
ok "known_hosts untouched" cmp "$kh" kh-before
(cd repo && sed -i "s|known_hosts: .*|known_hosts: $kh|" distsync.yml)
expect_exit 1 "trust --yes refuses a changed key" sh -c "cd repo && '$DISTSYNC' trust --yes site-a"
keep
ok "trust names the file and line" out_has "$kh:[0-9]"
ok "known_hosts still untouched" cmp "$kh" kh-before
# The server's new key becomes the known one for the rest of the script.
ssh-keygen -q -R "[127.0.0.1]:$port" -f "$kh" >/dev/null 2>&1
sshd_known_hosts_add a
fp=$newfp

# Authentication failure with a key the server does not know.
ssh-keygen -q -t ed25519 -N '' -f wrong-key
expect_exit $((100 + 13)) "wrong key: authentication failed (DS_ERR_AUTH)" \
	drv -i "$T_DIR/wrong-key" -k "$kh" -r true
keep
ok "auth failure names user, host and key" out_has "authentication failed for $(id -un)@127.0.0.1:$port.*wrong-key"
expect_exit $((100 + 13)) "missing identity file: authentication failed" \
	drv -i "$T_DIR/no-such-key" -k "$kh" -r true
keep
ok "missing identity is named" out_has "no-such-key"

# A missing remote binary.
expect_exit $((100 + 5)) "missing remote binary" \
	drv -i "$key" -k "$kh" -r "$T_DIR/not-installed/distsync" -- serve --root /x
keep
ok "missing binary: the documented message" \
	out_has "distsync not found on site-a: install it there or set remote_command"

# Refused, unresolvable.
closed=$(free_port)
expect_exit $((100 + 11)) "connection refused (DS_ERR_CONNECT)" \
	"$DRIVER" driver -N site-b -a 127.0.0.1 -p "$closed" -i "$key" -k "$kh" -r true
keep
ok "refused: clear message naming the host" out_has "site-b: connection to 127.0.0.1:$closed refused"
expect_exit $((100 + 11)) "unresolvable host name (DS_ERR_CONNECT)" \
	timeout 60 "$DRIVER" driver -N site-c -a no-such-host.invalid -i "$key" -k "$kh" -r true
keep
ok "DNS failure: clear message naming the host" out_has "site-c: cannot resolve the host name of no-such-host.invalid"

# ~/.ssh/config: an alias with HostName, Port, User and IdentityFile.
cat > home/.ssh/config <<EOF
Host sitealias
	HostName 127.0.0.1
	Port $port
	User $(id -un)
	IdentityFile $key
EOF
expect_exit 0 "an alias from ~/.ssh/config works unchanged" \
	sh -c "echo via-alias | '$DRIVER' driver -N site-d -a sitealias -k '$kh' -r cat"
keep
ok "output through the alias" out_has "via-alias"
expect_exit 0 "config values override ~/.ssh/config (port)" \
	sh -c "'$DRIVER' driver -N site-d -a sitealias -p $port -k '$kh' -r true"
expect_exit $((100 + 11)) "an explicit port wins over the alias's Port" \
	"$DRIVER" driver -N site-d -a sitealias -p "$closed" -k "$kh" -r true
expect_exit 0 "trust through the alias" "$DISTSYNC" trust --yes --known-hosts "$T_DIR/kh-alias" sitealias
check "alias recorded under the real host and port" \
	"ssh-keygen -F '[127.0.0.1]:$port' -f '$T_DIR/kh-alias' | grep -q ssh-ed25519"
# ProxyCommand from ~/.ssh/config (what libssh 0.10 turns ProxyJump into, too):
# hop through the same server with OpenSSH's ssh -W.
cat > home/.ssh/config <<EOF
Host viaproxy
	HostName 127.0.0.1
	Port $port
	User $(id -un)
	IdentityFile $key
	ProxyCommand ssh -i $key -o UserKnownHostsFile=$kh -o StrictHostKeyChecking=yes -o BatchMode=yes -p $port -W %h:%p $(id -un)@127.0.0.1
EOF
expect_exit 0 "ProxyCommand from ~/.ssh/config is honoured" \
	sh -c "echo via-proxy | '$DRIVER' driver -N site-e -a viaproxy -k '$kh' -r cat"
keep
ok "output through the proxy" out_has "via-proxy"
rm -f home/.ssh/config

# Idle timeout: a silent peer is given up after idle_timeout seconds.
start=$(date +%s)
expect_exit $((100 + 14)) "idle timeout fires on a silent peer (DS_ERR_TIMEOUT)" \
	drv -t 2 -i "$key" -k "$kh" -r sh -- -c "echo \$\$ > '$T_DIR/idle.pid'; exec sleep 30"
keep
# sshd leaves a command that neither reads nor writes running: end it here.
at_exit "kill \$(cat '$T_DIR/idle.pid')"
took=$(( $(date +%s) - start ))
ok "idle timeout message names the host" out_has "site-a: no data from 127.0.0.1:$port for 2 s"
# Not before 2 s, and long before the command's 30 s (connecting on a busy machine takes a while).
check "gave up within 2..20 s (took ${took}s)" "[ $took -ge 2 ] && [ $took -le 20 ]"

# Keepalives while the peer is quiet (idle_timeout 10 s: one every 3.3 s) keep
# the session usable (the margin is for a loaded machine starting the command).
expect_exit 0 "a quiet peer under keepalives finishes" \
	drv -v -t 10 -i "$key" -k "$kh" -r sh -- -c 'sleep 4; echo after-quiet'
keep
ok "keepalives were sent" out_has "site-a: sending a keepalive"
ok "the output after the quiet spell arrived" out_has "after-quiet"

# A link cut under a running command: a clear connection error, promptly.
: > cut.out
(drv -i "$key" -k "$kh" -r sh -- -c "echo \$\$ > '$T_DIR/cut.pid'; exec sleep 60" > cut.out 2>&1
	echo "exit $?" >> cut.out) &
cut_job=$!
at_exit "kill $cut_job"
at_exit "kill \$(cat '$T_DIR/cut.pid')"
# Cut once the remote command runs (it wrote its pid).
wait_for 120 test -s "$T_DIR/cut.pid"
ok "cut the connection (kill the per-connection sshd)" sshd_cut a
wait_for 120 grep -q '^exit' cut.out
ok "the client ends with DS_ERR_CONNECT" grep -q "^exit $((100 + 11))" cut.out
ok "the cut is reported as a lost connection" grep -q "site-a: connection to 127.0.0.1:$port lost" cut.out
expect_exit 0 "the server takes the next connection" drv -i "$key" -k "$kh" -r true

# push over SSH: a full push, a no-op, then a link cut mid-transfer leaves the
# target at the old release and the next run completes.
cd repo || exit 1
sed -i "s|known_hosts: .*|known_hosts: $kh|" distsync.yml
mkdir -p dist/openmrs_modules dist/frontend
echo '<html>1</html>' > dist/frontend/index.html
head -c 300000 /dev/urandom > dist/openmrs_modules/a-1.0.omod
"$DISTSYNC" release --version 1.0 > "$T_DIR/release.out" 2>&1
expect_exit 0 "push over SSH" "$DISTSYNC" push site-a
site="$T_DIR/site/distribution"
same_tree() { [ "$(tree_digest "$1")" = "$(tree_digest "$2")" ]; }
ok "push over SSH applied release 1" same_tree "$site" dist
cp -a dist ../dist-r1
expect_exit 0 "no-op push over SSH" "$DISTSYNC" push site-a
# Release 2 big enough to cut mid-transfer at a capped bandwidth.
head -c 4000000 /dev/urandom > dist/openmrs_modules/b-1.0.omod
echo '<html>2</html>' > dist/frontend/index.html
"$DISTSYNC" release --version 2.0 >> "$T_DIR/release.out" 2>&1
# retries: 0 so the cut ends this run (retries across a cut are resume.sh's subject).
sed -i 's|^    connect_timeout: 60|    connect_timeout: 60\n    bwlimit: 500000\n    retries: 0|' distsync.yml
("$DISTSYNC" push site-a > "$T_DIR/push-cut.out" 2>&1; echo "exit $?" >> "$T_DIR/push-cut.out") &
push_job=$!
at_exit "kill $push_job"
# Mid-transfer: the big object is being staged (8 s at the cap).
staging="$T_DIR/site/.distribution.distsync/staging"
staging_part() { find "$staging" -name '*.part' -size +0 2>/dev/null | grep -q .; }
wait_for 300 staging_part
ok "cut the link mid-transfer" sshd_cut a
wait_for 300 grep -q '^exit' "$T_DIR/push-cut.out"
ok "the cut push fails" grep -q '^exit 1' "$T_DIR/push-cut.out"
ok "the failure is the lost connection" grep -q "site-a: connection to 127.0.0.1:$port lost" \
	"$T_DIR/push-cut.out"
ok "the target stays at release 1" same_tree "$site" ../dist-r1
sed -i '/bwlimit: 500000/d; /retries: 0/d' distsync.yml
# The receiver may still hold the lock a moment after the cut.
expect_exit 0 "the next push completes" "$DISTSYNC" push --lock-timeout 30 site-a
ok "the target is at release 2" same_tree "$site" dist
cd "$T_DIR" || exit 1

done_testing
