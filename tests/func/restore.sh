#!/bin/sh
# distsync restore: a file a push overwrote (drift) is kept in the host's
# backup set; the push prints the command that gets it back, and that exact
# command does, on a local host and over SSH. Paths that leave the tree, and
# paths no set keeps, are refused and change nothing.
. "$top_srcdir/tests/func/lib.sh"
. "$top_srcdir/tests/func/lib-sshd.sh"
sshd_need
need_prog sha256sum

cd "$T_DIR" || exit 1
mkdir -p home/.ssh work repo/dist/openmrs_config repo/dist/frontend
HOME="$T_DIR/home"
unset SSH_AUTH_SOCK
# The printed commands name distsync as an admin runs it: from PATH.
PATH="$(dirname "$DISTSYNC"):$PATH"
export HOME PATH
sshd_start a || { echo "not ok 1 - sshd starts"; echo "1..1"; exit 1; }
cd repo || exit 1
# Not the default name: every printed command must carry its -c.
{
	printf 'distribution:\n  name: test\n  source: dist\n  store: .distsync\nhosts:\n'
	printf '  demo: {path: %s/site/distribution}\n' "$T_DIR"
	sshd_host_yml a site-a "$T_DIR/site-a/distribution"
	printf '  kirehe: {path: %s/pullsite/distribution}\n' "$T_DIR"
	printf '  f1: {path: %s/f1/distribution, groups: [g]}\n' "$T_DIR"
	printf '  f2: {path: %s/f2/distribution, groups: [g]}\n' "$T_DIR"
} > fleet.yml
# A pull site: its own site.yml; the restore command it prints names that file.
cat > "$T_DIR/site.yml" <<YML
distribution: {name: test}
hosts:
  central:
    address: 127.0.0.1
    port: $(sshd_port a)
    user: $(id -un)
    identity: $SSHD_CLIENT_KEY
    known_hosts: $SSHD_KNOWN_HOSTS
    remote_command: $DISTSYNC
    path: $T_DIR/pullsite/distribution
    connect_timeout: 60
site: {upstream: central, repository: $T_DIR/repo/fleet.yml, host: kirehe}
YML
D() { "$DISTSYNC" -c fleet.yml "$@"; }
keep() { cp "$T_DIR/.last.out" "$T_DIR/out"; }
out_has() { grep -q -- "$1" "$T_DIR/out"; }
# hint: the restore command the last push printed, as printed.
hint() { sed -n 's/^    \(distsync .* restore .*\)$/\1/p' "$T_DIR/out" | head -n 1; }

# Hints work as printed: a repository with no store names its own config.
mkdir -p "$T_DIR/hintrepo/dist" "$T_DIR/elsewhere"
echo x > "$T_DIR/hintrepo/dist/x"
printf 'distribution: {name: h}\nhosts:\n  h: {path: %s/hintsite}\n' "$T_DIR" > "$T_DIR/hintrepo/my config.yml"
expect_exit 1 "push without a store: refused" \
	sh -c "cd '$T_DIR/hintrepo' && '$DISTSYNC' -c 'my config.yml' push h"
keep
hcmd=$(sed -n "s/.*no store here (.*, or '\(distsync .* release\)')/\1/p" "$T_DIR/out" | head -n 1)
ok "the hint names the config, absolute and quoted" \
	test "$hcmd" = "distsync -c '$T_DIR/hintrepo/my config.yml' release"
expect_exit 0 "the hint runs as printed, from another directory" sh -c "cd '$T_DIR/elsewhere' && $hcmd"
expect_exit 2 "push --release of a release that is not there: refused" \
	sh -c "cd '$T_DIR/hintrepo' && '$DISTSYNC' -c 'my config.yml' push --release nosuch h"
keep
hcmd=$(sed -n "s/.*(see '\(distsync .* releases\)')/\1/p" "$T_DIR/out" | head -n 1)
ok "the releases hint names the config" \
	test "$hcmd" = "distsync -c '$T_DIR/hintrepo/my config.yml' releases"
expect_exit 0 "the releases hint runs as printed" sh -c "cd '$T_DIR/elsewhere' && $hcmd"

echo 'db: openmrs' > dist/openmrs_config/app.yml
echo '<html>1</html>' > dist/frontend/index.html
ok "release 1" D release --version 1.0

for h in demo site-a; do
	case $h in
	demo) site=$T_DIR/site/distribution ;;
	site-a) site=$T_DIR/site-a/distribution ;;
	esac
	expect_exit 0 "$h: push release 1" D push --release 1.0 $h
	# A hand edit on the host, with a mode of its own.
	printf 'db: openmrs\n# tuned by hand on %s\n' "$h" > "$site/openmrs_config/app.yml"
	chmod 0640 "$site/openmrs_config/app.yml"
	found=$(sha256sum < "$site/openmrs_config/app.yml")
	echo two > dist/frontend/two.js
	ok "$h: release 2 ($h)" D release --version 2.0-$h
	expect_exit 0 "$h: push release 2 overwrites the drift" D push --release 2.0-$h $h
	keep
	ok "$h: the drift is listed" out_has 'drift   openmrs_config/app.yml (changed on the host since the last apply; overwritten)'
	ok "$h: the message says where it was kept" out_has "kept in $h's backup set 1.0"
	cmd=$(hint)
	ok "$h: the message prints a restore command with -c" \
		sh -c "echo '$cmd' | grep -q -- '-c $T_DIR/repo/fleet.yml restore --backup 1.0 $h openmrs_config/app.yml'"
	check "$h: the tree holds the release's file" "cmp -s '$site/openmrs_config/app.yml' dist/openmrs_config/app.yml"
	tree=$(tree_digest "$site")
	mkdir -p "$T_DIR/work/$h"
	expect_exit 0 "$h: the printed command runs as printed, from another directory" \
		sh -c "cd '$T_DIR/work/$h' && $cmd"
	check "$h: it gives the content found back" \
		"[ \"\$(sha256sum < '$T_DIR/work/$h/app.yml.restored')\" = '$found' ]"
	check "$h: with the mode it had" "[ \"\$(stat -c %a '$T_DIR/work/$h/app.yml.restored')\" = 640 ]"
	ok "$h: the host's tree is untouched" test "$(tree_digest "$site")" = "$tree"
	expect_exit 3 "$h: never over an existing file" sh -c "cd '$T_DIR/work/$h' && $cmd"
	expect_exit 0 "$h: --to - writes it to stdout" \
		sh -c "'$DISTSYNC' -c fleet.yml restore --to - $h openmrs_config/app.yml > '$T_DIR/stdout'"
	check "$h: stdout holds the content found" "[ \"\$(sha256sum < '$T_DIR/stdout')\" = '$found' ]"
	expect_exit 0 "$h: --to FILE, the newest set by default" \
		D restore --to "$T_DIR/work/$h/mine.yml" $h openmrs_config/app.yml
	check "$h: --to FILE holds it" "cmp -s '$T_DIR/work/$h/mine.yml' '$T_DIR/work/$h/app.yml.restored'"

	# Refusals: nothing written here, nothing changed there.
	cd "$T_DIR/work/$h" || exit 1
	before=$(ls | sort | tr '\n' ' ')
	expect_exit 2 "$h: ../x is refused" "$DISTSYNC" -c "$T_DIR/repo/fleet.yml" restore $h ../x
	keep
	ok "$h: the refusal says why" out_has 'give the path relative to the host'
	expect_exit 2 "$h: an absolute path is refused" \
		"$DISTSYNC" -c "$T_DIR/repo/fleet.yml" restore $h /etc/passwd
	expect_exit 2 "$h: a path through .. inside is refused" \
		"$DISTSYNC" -c "$T_DIR/repo/fleet.yml" restore $h openmrs_config/../../x
	expect_exit 2 "$h: a bad --backup id is refused" \
		"$DISTSYNC" -c "$T_DIR/repo/fleet.yml" restore --backup ../.. $h openmrs_config/app.yml
	expect_exit 4 "$h: a path never backed up: exit 4" \
		"$DISTSYNC" -c "$T_DIR/repo/fleet.yml" restore $h frontend/two.js
	keep
	ok "$h: the error names the path" out_has 'frontend/two.js: no backup set keeps a copy of it'
	expect_exit 4 "$h: one path never backed up among others: exit 4" \
		"$DISTSYNC" -c "$T_DIR/repo/fleet.yml" restore $h frontend/index.html nosuch/file
	check "$h: nothing was written here" "[ \"\$(ls | sort | tr '\n' ' ')\" = '$before' ]"
	ok "$h: nothing changed there" test "$(tree_digest "$site")" = "$tree"
	cd "$T_DIR/repo" || exit 1

	# In place: the file found is back in the tree, and verify says it drifted.
	expect_exit 0 "$h: --in-place puts it back" D restore --in-place --backup 1.0 $h openmrs_config/app.yml
	keep
	ok "$h: it says the host differs from its release" out_has 'differs from its release until the next apply'
	check "$h: the tree holds the content found" "[ \"\$(sha256sum < '$site/openmrs_config/app.yml')\" = '$found' ]"
	check "$h: with its mode" "[ \"\$(stat -c %a '$site/openmrs_config/app.yml')\" = 640 ]"
	check "$h: no temp file left" "! ls -a '$site/openmrs_config' | grep -q distsync-restore"
	expect_exit 1 "$h: verify reports it as drift" D verify $h
	rm -f dist/frontend/two.js
	# The next host starts from release 1 again; the tree keeps the hand edit.
done

# A pull site: the pull prints the command with its site.yml, which restores here.
site=$T_DIR/pullsite/distribution
expect_exit 0 "pull site: pull release 1" "$DISTSYNC" -c "$T_DIR/site.yml" pull --release 1.0
printf 'db: openmrs\n# tuned at the site\n' > "$site/openmrs_config/app.yml"
found=$(sha256sum < "$site/openmrs_config/app.yml")
echo three > dist/frontend/three.js
ok "release 3" D release --version 3.0
expect_exit 0 "pull site: a pull overwrites the drift" "$DISTSYNC" -c "$T_DIR/site.yml" pull
keep
ok "pull site: the drift is listed" out_has 'drift   openmrs_config/app.yml (changed here since the last apply; overwritten)'
cmd=$(hint)
ok "pull site: the command names site.yml and the site" \
	sh -c "echo '$cmd' | grep -q -- '-c $T_DIR/site.yml restore --backup 1.0 kirehe openmrs_config/app.yml'"
mkdir -p "$T_DIR/work/pull"
expect_exit 0 "pull site: the printed command runs as printed" sh -c "cd '$T_DIR/work/pull' && $cmd"
check "pull site: it gives the content found back" \
	"[ \"\$(sha256sum < '$T_DIR/work/pull/app.yml.restored')\" = '$found' ]"
expect_exit 2 "pull site: another host name is refused (a usage error)" \
	"$DISTSYNC" -c "$T_DIR/site.yml" restore other openmrs_config/app.yml

# A push to many hosts: the summary says which host's drift was overwritten,
# and the command it prints for that host works as printed.
expect_exit 0 "fleet: push release 1 to a group" D push --release 1.0 g
printf 'db: openmrs\n# tuned on f2\n' > "$T_DIR/f2/distribution/openmrs_config/app.yml"
found=$(sha256sum < "$T_DIR/f2/distribution/openmrs_config/app.yml")
expect_exit 0 "fleet: push release 3 to the group" D push --release 3.0 g
keep
ok "fleet: the summary names the host and the drift" out_has '^f2: 1 file changed on the host since the last apply, overwritten (openmrs_config/app.yml)'
ok "fleet: no drift reported for the other host" sh -c "! grep -q '^f1: .*overwritten' '$T_DIR/out'"
cmd=$(hint)
ok "fleet: the command is the host's" \
	sh -c "echo '$cmd' | grep -q -- 'restore --backup 1.0 f2 openmrs_config/app.yml'"
mkdir -p "$T_DIR/work/fleet"
expect_exit 0 "fleet: the printed command runs as printed" sh -c "cd '$T_DIR/work/fleet' && $cmd"
check "fleet: it gives the content found back" \
	"[ \"\$(sha256sum < '$T_DIR/work/fleet/app.yml.restored')\" = '$found' ]"

# In place, several paths go back all or none: one that cannot (a directory
# stands there now) leaves the others as they were.
site=$T_DIR/site/distribution
echo '<html>4</html>' > dist/frontend/index.html
echo 'db: four' > dist/openmrs_config/app.yml
ok "release 4" D release --version 4.0
expect_exit 0 "demo: push release 4 (replaces app.yml and index.html)" D push --release 4.0 demo
rm "$site/frontend/index.html"
mkdir "$site/frontend/index.html"
before=$(tree_digest "$site")
expect_exit 1 "in place, two paths, the second a directory now: refused" \
	D restore --in-place demo openmrs_config/app.yml frontend/index.html
keep
ok "it names the directory" out_has 'frontend/index.html: is a directory now; not replaced'
ok "it says nothing was put back" out_has 'nothing was put back (all paths or none)'
ok "the first path was not put back either" test "$(tree_digest "$site")" = "$before"
check "no temp file left" "! ls -a '$site/openmrs_config' '$site/frontend' | grep -q distsync-restore"
rmdir "$site/frontend/index.html"
expect_exit 0 "in place, both paths (one named twice)" \
	D restore --in-place demo openmrs_config/app.yml frontend/index.html openmrs_config/app.yml
check "both are back" "grep -q '<html>1</html>' '$site/frontend/index.html' && grep -q 'tuned by hand on demo' '$site/openmrs_config/app.yml'"
check "no temp file left" "! ls -a '$site/openmrs_config' '$site/frontend' | grep -q distsync-restore"

# A file the host replaced by a directory: the set keeps the files under it,
# and a restore of the directory's path names them.
rm "$site/frontend/index.html"
mkdir "$site/frontend/index.html"
echo kept > "$site/frontend/index.html/keep"
echo '<html>5</html>' > dist/frontend/index.html
ok "release 5" D release --version 5.0
expect_exit 0 "demo: push release 5 over the directory" D push --release 5.0 demo
expect_exit 4 "restore of the path that was a directory: exit 4" \
	D restore --to - --backup 4.0 demo frontend/index.html
keep
ok "it names the file kept under it" out_has 'frontend/index.html: it was a directory in backup set 4.0, which keeps the files that were under it: name those (the first: frontend/index.html/keep)'
expect_exit 0 "restore of that file" sh -c "'$DISTSYNC' -c fleet.yml restore --to - --backup 4.0 demo frontend/index.html/keep > '$T_DIR/keep'"
ok "it is the file that was there" grep -qx kept "$T_DIR/keep"

# A symlink in the tree is not followed: the directory it points at is untouched.
mkdir -p "$T_DIR/outside"
mv "$site/openmrs_config" "$T_DIR/moved"
ln -s "$T_DIR/outside" "$site/openmrs_config"
expect_exit 1 "in place through a symlinked directory is refused" \
	D restore --in-place demo openmrs_config/app.yml
check "nothing was written through the symlink" "[ -z \"\$(ls -A '$T_DIR/outside')\" ]"

done_testing
