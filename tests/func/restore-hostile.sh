#!/bin/sh
# A hostile site answering the initiator (tests/unit/hostile-site, started
# over SSH as the host's remote_command where `distsync serve` would be):
# - restore: a path not asked for, one with ../ or /, content larger than
#   declared or not matching its SHA-256, more files than asked, a mode with
#   file type bits, a size larger than the free space (then content without
#   end) -- each refused, nothing written (no NAME.restored, no temp file,
#   nothing outside); a setuid mode is written without it; an existing
#   ./NAME.restored, even a dangling symlink, is never replaced or written
#   through.
# - plan HOST: a site plan whose service names, reasons, run_once runs,
#   pending work and drift carry terminal escapes is printed escaped.
. "$top_srcdir/tests/func/lib.sh"
. "$top_srcdir/tests/func/lib-sshd.sh"
sshd_need
HOSTILE=$top_builddir/tests/unit/hostile-site
[ -x "$HOSTILE" ] || skip_all "tests/unit/hostile-site is not built"

cd "$T_DIR" || exit 1
mkdir -p home/.ssh repo/dist/openmrs_config
HOME="$T_DIR/home"
unset SSH_AUTH_SOCK
export HOME
sshd_start a || { echo "not ok 1 - sshd starts"; echo "1..1"; exit 1; }
MODES="other dotdot absolute overlong wronghash extra setuid filetype huge plan"
{
	printf 'distribution:\n  name: test\n  source: dist\n  store: .distsync\nhosts:\n'
	for m in $MODES; do
		sshd_host_yml a "h-$m" "$T_DIR/site/distribution" "$HOSTILE $m"
	done
} > repo/distsync.yml
D() { "$DISTSYNC" -c "$T_DIR/repo/distsync.yml" "$@"; }
keep() { cp "$T_DIR/.last.out" "$T_DIR/out"; }
out_has() { grep -q -- "$1" "$T_DIR/out"; }
ESC=$(printf '\033')
rm -f /tmp/hostile-site-absolute.txt

# refused MODE WHY: restore from h-MODE fails (exit 1) saying WHY, and writes nothing.
refused() {
	mkdir -p "$T_DIR/work/$1"
	expect_exit 1 "$1: refused" \
		sh -c "cd '$T_DIR/work/$1' && '$DISTSYNC' -c '$T_DIR/repo/distsync.yml' restore h-$1 openmrs_config/app.yml"
	keep
	ok "$1: the error says why: $2" out_has "$2"
	check "$1: nothing written here, not even a temp file" "[ -z \"\$(ls -A '$T_DIR/work/$1')\" ]"
}
refused other 'sent evil.txt where openmrs_config/app.yml was asked for'
refused dotdot "RESTORED frame: backtracking component '..'"
check "dotdot: nothing written beside the work directory" "[ ! -e '$T_DIR/work/escaped.txt' ] && [ ! -e '$T_DIR/escaped.txt' ]"
refused absolute 'RESTORED frame: absolute path'
check "absolute: nothing written at the absolute path" "[ ! -e /tmp/hostile-site-absolute.txt ]"
refused overlong 'more content than RESTORED declared'
refused wronghash 'does not match its size and SHA-256'
refused filetype 'RESTORED frame: bad mode'
refused huge 'app.yml.restored is declared as .* but only .* are free there; nothing written'

# More files than asked: the one asked for is kept, the extra one is refused.
mkdir -p "$T_DIR/work/extra"
expect_exit 1 "extra: a second RESTORED is refused" \
	sh -c "cd '$T_DIR/work/extra' && '$DISTSYNC' -c '$T_DIR/repo/distsync.yml' restore h-extra openmrs_config/app.yml"
keep
ok "extra: the error says why" out_has 'expected a RESULT frame, got RESTORED'
check "extra: only the file asked for is written" "[ \"\$(ls -A '$T_DIR/work/extra')\" = app.yml.restored ]"

# A setuid mode: the content is kept, the bit is not.
mkdir -p "$T_DIR/work/setuid"
expect_exit 0 "setuid: the file is restored" \
	sh -c "cd '$T_DIR/work/setuid' && '$DISTSYNC' -c '$T_DIR/repo/distsync.yml' restore h-setuid openmrs_config/app.yml"
keep
check "setuid: without the setuid bit" "[ \"\$(stat -c %a '$T_DIR/work/setuid/app.yml.restored')\" = 755 ]"
ok "setuid: the mode printed is the mode written" out_has '(mode 0755,'

# Never over an existing file, never through a planted symlink.
mkdir -p "$T_DIR/work/exists"
echo mine > "$T_DIR/work/exists/app.yml.restored"
expect_exit 3 "an existing NAME.restored: refused" \
	sh -c "cd '$T_DIR/work/exists' && '$DISTSYNC' -c '$T_DIR/repo/distsync.yml' restore h-setuid openmrs_config/app.yml"
check "it is left as it was" "[ \"\$(cat '$T_DIR/work/exists/app.yml.restored')\" = mine ]"
mkdir -p "$T_DIR/work/dangling"
ln -s "$T_DIR/victim" "$T_DIR/work/dangling/app.yml.restored"
expect_exit 3 "a dangling symlink at NAME.restored: refused" \
	sh -c "cd '$T_DIR/work/dangling' && '$DISTSYNC' -c '$T_DIR/repo/distsync.yml' restore h-setuid openmrs_config/app.yml"
keep
ok "it names the file" out_has 'app.yml.restored exists already'
check "nothing written through it" "[ ! -e '$T_DIR/victim' ] && [ -L '$T_DIR/work/dangling/app.yml.restored' ]"
check "no temp file left" "[ \"\$(ls -A '$T_DIR/work/dangling')\" = app.yml.restored ]"

# plan HOST: the site's strings are the site's; a terminal must not obey them.
cd repo || exit 1
echo 'db: openmrs' > dist/openmrs_config/app.yml
ok "release 1.0" D release --version 1.0
expect_exit 0 "plan of a hostile site" D plan h-plan
cp "$T_DIR/.last.out" "$T_DIR/plan.out"
check "no escape byte reaches the terminal" "! grep -q '$ESC' '$T_DIR/plan.out'"
ok "service names are shown escaped" grep -q -F 'restart web\x1b]0;pwned\x07\x1b[2J\x1b[31m: conf/\x1b]0;pwned' "$T_DIR/plan.out"
ok "a reload is shown escaped" grep -q -F 'reload db\x1b]0;pwned\x07\x1b[2J\x1b[31m (reload_on)' "$T_DIR/plan.out"
ok "a service not restarted is shown escaped" grep -q -F 'not restarted idle\x1b]0;pwned' "$T_DIR/plan.out"
ok "run_once runs are shown escaped" grep -q -F 'run_once[0] \x1b]0;pwned' "$T_DIR/plan.out"
ok "pending work is shown escaped" grep -q -F 'pending: pending \x1b]0;pwned' "$T_DIR/plan.out"
ok "drift is shown escaped" grep -q -F 'drift   drifted\x1b]0;pwned' "$T_DIR/plan.out"
expect_exit 0 "plan --json of a hostile site" D plan --json h-plan
cp "$T_DIR/.last.out" "$T_DIR/plan.json"
check "--json: no escape byte either" "! grep -q '$ESC' '$T_DIR/plan.json'"
ok "--json: the names are JSON-escaped" grep -q -F 'web\u001B]0;pwned\u0007' "$T_DIR/plan.json"

done_testing
