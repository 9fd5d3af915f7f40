#!/bin/sh
# The docs, followed literally: the first block of EXAMPLES in distsync(1)
# is a first day with a repository (trust, release, plan, push, a second
# release, releases, rollback, verify after a hand edit, a changed host key).
# This script does not copy those commands: it reads them from the man page
# and runs each line as printed through sh -c, in a clean directory holding
# config-samples/rwandaemr.yml adapted to a loopback sshd as host kirehe
# (serve --site-config: config-samples/site.yml adapted, a restart command
# the test can see), and checks after each what its comment says it does.
# A line in parentheses is the test's cue to do that step by hand; a line
# "as printed" is run as the previous command's message printed it, after
# checking it matches. Every command of README's blocks must be one of
# EXAMPLES' (so README cannot drift either).
. "$top_srcdir/tests/func/lib.sh"
. "$top_srcdir/tests/func/lib-sshd.sh"
sshd_need
need_prog python3 sha256sum ssh-keygen

man_page=$top_srcdir/doc/distsync.1
cd "$T_DIR" || exit 1

# The blocks of EXAMPLES, one file each (the roff escapes undone), and
# README's command lines (indented, starting with distsync).
python3 - "$man_page" "$top_srcdir/README" "$T_DIR" <<'PY'
import re, sys
man, readme, out = sys.argv[1:]
text = open(man).read()
sec = text[text.index('.Sh EXAMPLES'):]
m = re.search(r'\n\.Sh ', sec[1:])
sec = sec[:m.start() + 1] if m else sec
blocks = re.findall(r'\.Bd -literal[^\n]*\n(.*?)\n\.Ed', sec, re.S)
def unroff(l):
    return l.replace('\\-', '-').replace('\\&', '').replace('\\e', '\\')
for i, b in enumerate(blocks):
    with open('%s/examples-%d' % (out, i + 1), 'w') as f:
        for l in b.split('\n'):
            f.write(unroff(l) + '\n')
with open(out + '/readme-commands', 'w') as f:
    for l in open(readme):
        if re.match(r'^ {4}distsync ', l):
            f.write(l.strip() + '\n')
PY
ok "distsync(1) has an EXAMPLES walkthrough" test -s examples-1
ok "README shows distsync commands" test -s readme-commands

# cmd_of LINE: the command without its comment (two spaces and # start one).
cmd_of() {
	printf '%s\n' "$1" | sed 's/  *#.*$//; s/^#.*$//; s/[[:space:]]*$//'
}
# Every README command is one of EXAMPLES' (either block), as printed.
cat examples-* | while IFS= read -r l; do cmd_of "$l"; done | grep . >examples-commands
while IFS= read -r l; do
	c=$(cmd_of "$l")
	ok "README's '$c' is in distsync(1)'s EXAMPLES" grep -qxF -- "$c" examples-commands
done <readme-commands
# The later block cannot run here (a fleet, a clinic): its commands and
# options must at least be what --help offers.
while IFS= read -r l; do
	c=$(cmd_of "$l")
	[ -n "$c" ] || continue
	set -- $c
	sub=$2
	shift 2
	"$DISTSYNC" "$sub" --help >help-out 2>&1
	for w in "$@"; do
		case $w in
		-*) ok "EXAMPLES: '$sub $w' is in its --help" grep -qe "$w\b" help-out ;;
		esac
	done
done <examples-2

# The loopback site: sshd as kirehe, the admin's HOME with the sample's
# identity (~/.ssh/id_ed25519), nothing of the caller's.
sshd_start kirehe || { echo "not ok 1 - sshd starts"; echo "1..1"; exit 1; }
port=$(sshd_port kirehe)
mkdir -p home/.ssh && cp "$SSHD_CLIENT_KEY" home/.ssh/id_ed25519 && chmod 0600 home/.ssh/id_ed25519
HOME="$T_DIR/home"
unset SSH_AUTH_SOCK
export HOME
mkdir -p bin && ln -s "$DISTSYNC" bin/distsync
PATH="$T_DIR/bin:$PATH"
export PATH
site=$T_DIR/site/distribution
restarts=$T_DIR/site/restarts.log
mkdir -p work
work=$T_DIR/work

# The cues: what a line in parentheses asks for.
# No signing keys, as the cue says (trust.sh covers signed releases).
cue_unsigned() {
	sed -i -e '/^  signing_key:/d; /^  signing_passphrase_file:/d; /^  timestamp_key:/d' \
	    "$work/distsync.yml" &&
	! grep -q 'signing_key\|timestamp_key' "$work/distsync.yml"
}

cue_config() {
	# rwandaemr.yml as an admin adapts it: kirehe is the loopback sshd, the
	# target under the test's directory, the site's own configuration beside
	# it; owner and group left to the user the test runs as.
	sed -e "s|^  user: openmrs|  user: $(id -un)|" \
	    -e "s|^  port: 22|  port: $port|" \
	    -e "s|^  path: /opt/openmrs/distribution|  path: $site|" \
	    -e "s|^  compose: /opt/openmrs|  compose: $T_DIR/site|" \
	    -e '/^  owner: openmrs/d; /^  group: openmrs/d' \
	    -e "s|^  site_config: .*|  site_config: $T_DIR/site.yml\\n  remote_command: $DISTSYNC|" \
	    -e 's|^    address: kirehe.example.org|    address: 127.0.0.1|' \
	    "$top_srcdir/config-samples/rwandaemr.yml" >"$work/distsync.yml" &&
	mkdir -p "$work/keys" "$T_DIR/site" &&
	# The site's own: its services restart by a command the test sees.
	sed -e "s|restart: compose|restart: command\\n    command: [sh, -c, \"echo \$DISTSYNC_HOST backend >> restarts.log\"]|" \
	    -e '/^    health:/d; /^    trust_root:/d' \
	    -e "s|/opt/openmrs/distribution|$site|; s|/opt/openmrs/.distribution.distsync|$T_DIR/site/.distribution.distsync|" \
	    -e "s|/opt/openmrs|$T_DIR/site|" \
	    "$top_srcdir/config-samples/site.yml" >"$T_DIR/site.yml"
}
cue_dist() {
	mkdir -p "$work/dist/openmrs_core" "$work/dist/openmrs_modules" \
	    "$work/dist/openmrs_config" "$work/dist/frontend" &&
	head -c 20000 /dev/urandom >"$work/dist/openmrs_core/openmrs.war" &&
	head -c 8000 /dev/urandom >"$work/dist/openmrs_modules/webservices.rest-2.40.0.omod" &&
	echo 'location=rwanda' >"$work/dist/openmrs_config/global.properties" &&
	echo '<html>emr</html>' >"$work/dist/frontend/index.html"
}
cue_module() {
	head -c 6000 /dev/urandom >"$work/dist/openmrs_modules/fhir2-2.2.0.omod"
}
edited=openmrs_config/global.properties
cue_edit() {
	echo 'location=edited' >"$site/$edited"
}
cue_rekey() {
	sshd_rekey kirehe
}

# trust_tty CMD: runs CMD on a terminal (as an admin does) and answers y to
# each key question only when the fingerprint asked about is the server's.
trust_tty() {
	python3 - "$1" "$(sshd_fingerprint kirehe)" <<'PY'
import os, pty, re, sys
cmd, want = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.execvp('sh', ['sh', '-c', cmd])
buf = b''
while True:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    buf += chunk
    if buf.rstrip().endswith(b'[y/N]'):
        asked = buf.decode(errors='replace').rsplit('\n', 1)[-1]
        os.write(fd, b'y\n' if want in asked else b'n\n')
        buf += b'\n'
sys.stdout.write(buf.decode(errors='replace'))
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
PY
}

D() { "$DISTSYNC" "$@"; }
# keep: saves the last command's output for out_has, and shows it in the log.
keep() { cp "$T_DIR/.last.out" "$T_DIR/out"; sed 's/^/#   /' "$T_DIR/out"; }
out_has() { grep -q -- "$1" "$T_DIR/out"; }
out_lacks() { ! grep -q -- "$1" "$T_DIR/out"; }
same_as_release() { [ "$(tree_digest "$site")" = "$(cat "$T_DIR/release-$1.digest")" ]; }
restart_count() { grep -c backend "$restarts" 2>/dev/null || echo 0; }

# run LINE: runs the command literally, in the work directory.
run() {
	(cd "$work" && sh -c "$1" </dev/null)
}

released=""     # the releases cut, in order
hand_edit=0     # a file on kirehe was edited since the last apply
rekeyed=0       # kirehe has a new key the admin has not trusted yet
printed=""      # the commands the last refusal printed
step=0
while IFS= read -r line <&3; do
	step=$((step + 1))
	c=$(cmd_of "$line")
	case $line in
	"# ("*)
		case $line in
		*"copy rwandaemr.yml"*) ok "cue: $line" cue_config ;;
		*"unsigned: delete signing_key"*) ok "cue: $line" cue_unsigned ;;
		*"release's files in dist/"*) ok "cue: $line" cue_dist ;;
		*"add a module"*) ok "cue: $line" cue_module ;;
		*"edits a file on kirehe by hand"*) ok "cue: $line" cue_edit; hand_edit=1 ;;
		*"new host key"*) ok "cue: $line" cue_rekey; rekeyed=1 ;;
		*) ok "a cue this test knows: $line" false ;;
		esac
		continue ;;
	"") continue ;;
	esac
	case $line in
	*"# as printed"*)
		# The message printed a command starting as this line does: run that one.
		set -- $c
		ran=$(printf '%s\n' "$printed" | grep -F -- "$1 $2" | head -n 1)
		ok "'$c' is what the refusal printed ('$ran')" test -n "$ran"
		[ "$1" = distsync ] && ok "'$c' is printed as it is written" test "$ran" = "$c"
		c=$ran ;;
	esac
	label="step $step: $c"
	case $c in
	"distsync config check")
		expect_exit 0 "$label" run "$c"
		keep
		ok "config check: kirehe's address and port" out_has "$port" ;;
	"distsync trust "*)
		before=$(ssh-keygen -F "[127.0.0.1]:$port" -f "$work/keys/known_hosts" 2>/dev/null | grep -c ssh-ed25519)
		expect_exit 0 "$label (on a terminal, the fingerprint checked)" trust_tty "cd '$work' && $c"
		keep
		ok "trust shows the server's fingerprint" out_has "$(sshd_fingerprint kirehe)"
		ok "trust records the key in keys/known_hosts" \
		    grep -qF "$(sshd_host_pub kirehe | cut -d' ' -f2)" "$work/keys/known_hosts"
		rekeyed=0 ;;
	"distsync release --version "*)
		v=${c##* }
		expect_exit 0 "$label" run "$c"
		tree_digest "$work/dist" >"$T_DIR/release-$v.digest"
		released="$released $v"
		expect_exit 0 "the store lists $v" D -c "$work/distsync.yml" releases
		keep
		ok "  $v among the releases" out_has "$v" ;;
	"distsync plan kirehe")
		# Plan over SSH (issue 13 depends on remoteplan here).
		new=$(cd "$work/dist" && find . -type f | sed 's|^\./||' | sort)
		if [ -d "$site" ]; then
			new=$(cd "$work/dist" && find . -type f | sed 's|^\./||' | sort |
			    while read -r f; do [ -e "$site/$f" ] || echo "$f"; done)
		fi
		tree_before=$(tree_digest "$T_DIR/site" 2>/dev/null)
		expect_exit 0 "$label (over SSH)" run "$c"
		keep
		for f in $new; do
			ok "plan: added $f" out_has "added *$f"
		done
		ok "plan: backend restarts" out_has "backend"
		ok "plan changed nothing on the site" test "$(tree_digest "$T_DIR/site" 2>/dev/null)" = "$tree_before" ;;
	"distsync push kirehe")
		latest=${released##* }
		if [ $rekeyed = 1 ]; then
			tree_before=$(tree_digest "$site")
			expect_exit 1 "$label (a changed host key)" run "$c"
			keep
			ok "refused: HOST KEY CHANGED" out_has "HOST KEY CHANGED"
			ok "refused: nothing was sent" out_has "Nothing was sent"
			ok "refused: the new fingerprint shown" out_has "$(sshd_fingerprint kirehe)"
			ok "refused: the site is as it was" test "$(tree_digest "$site")" = "$tree_before"
			# The commands it says to run: in parentheses, and in quotes.
			printed=$(sed -n "s/.*(\(ssh-keygen -R [^)]*\)).*/\1/p" "$T_DIR/out"
			    sed -n "s/.* and run '\([^']*\)'.*/\1/p" "$T_DIR/out")
			continue
		fi
		n=$(restart_count)
		was_current=0
		same_as_release "$latest" 2>/dev/null && was_current=1
		expect_exit 0 "$label" run "$c"
		keep
		ok "push: kirehe holds release $latest, byte for byte" same_as_release "$latest"
		ok "push: names the release" out_has "$latest"
		if [ $hand_edit = 1 ]; then
			ok "push: says the hand edit is overwritten" out_has "drift *$edited.*overwritten"
			hand_edit=0
		fi
		if [ $was_current = 1 ]; then
			ok "push: nothing to change" out_has "0 added, 0 updated, 0 deleted"
			ok "push: no restart" test "$(restart_count)" = "$n"
		else
			ok "push: kirehe restarted backend (its site.yml's command)" test "$(restart_count)" -gt "$n"
		fi ;;
	"distsync releases kirehe")
		expect_exit 0 "$label" run "$c"
		keep
		set -- $released
		ok "releases: current $2" out_has "current $2"
		ok "releases: the next rollback goes to $1" out_has "rollback 1 (next) *$1" ;;
	"distsync rollback kirehe")
		set -- $released
		expect_exit 0 "$label" run "$c"
		keep
		ok "rollback: $2 -> $1" out_has "rollback $2 -> $1"
		ok "rollback: kirehe holds release $1, byte for byte" same_as_release "$1" ;;
	"distsync verify kirehe")
		expect_exit 1 "$label (after a hand edit: exit 1)" run "$c"
		keep
		ok "verify names the edited file" out_has "$edited"
		ok "verify changed nothing" grep -q edited "$site/$edited" ;;
	"ssh-keygen -R "*)
		expect_exit 0 "$label" run "$c"
		ok "the old key is gone from keys/known_hosts" \
		    sh -c "! ssh-keygen -F '[127.0.0.1]:$port' -f '$work/keys/known_hosts' | grep -q ssh-ed25519" ;;
	*)
		ok "a command this test knows: $c" false ;;
	esac
done 3<examples-1

done_testing
