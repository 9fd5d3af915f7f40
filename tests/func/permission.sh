#!/bin/sh
# A permission error an admin can act on: distsync running as an ordinary
# user (a throwaway account made here and removed at exit) pushes a release
# that changes a directory root owns. The push is refused before its commit
# point (exit 3, the tree untouched, no journal left) with the path, its
# owner and mode and the user distsync runs as; after the chown it suggests,
# the same push applies.
. "$top_srcdir/tests/func/lib.sh"
need_root
need_prog useradd userdel setpriv

USER_NAME="dsperm$$"
useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
	"$USER_NAME" >/dev/null 2>&1 || skip_all "cannot create a test user"
at_exit "userdel '$USER_NAME'"
# The test directory (mktemp: 0700) must be reachable by that user.
chmod 0755 "$T_DIR"
cd "$T_DIR" || exit 1
mkdir -p repo/dist/app repo/dist/db/conf.d
cat > repo/distsync.yml <<'YML'
distribution:
  name: perm
hosts:
  demo: {path: ../site/distribution}
YML
echo app-1 > repo/dist/app/a.txt
echo "[mysqld]" > repo/dist/db/conf.d/my.cnf
# as_user CMD...: CMD as the test user, in the repository.
as_user() {
	(cd repo && setpriv --reuid="$USER_NAME" --regid="$USER_NAME" --clear-groups \
		--reset-env -- "$@")
}
D() { (cd repo && "$DISTSYNC" "$@"); }
keep() { cp "$T_DIR/.last.out" "$T_DIR/out"; }
out_has() { grep -q -- "$1" "$T_DIR/out"; }

ok "release 1" D release --version 1
expect_exit 0 "push release 1 (as root)" D push demo
# The site belongs to the user now, except the database's config, still root's.
chown -R "$USER_NAME:$USER_NAME" repo site
chown root:root site/distribution/db/conf.d site/distribution/db/conf.d/my.cnf
echo app-2 > repo/dist/app/a.txt
echo "[mysqld]
max_connections = 200" > repo/dist/db/conf.d/my.cnf
chown -R "$USER_NAME:$USER_NAME" repo
ok "release 2 (as the user)" as_user "$DISTSYNC" release --version 2
tree_digest site/distribution > "$T_DIR/r1.digest"
expect_exit 3 "push 2 as the user is refused before anything changes" as_user "$DISTSYNC" push demo
keep
ok "the message names the directory, its owner, its mode and the user" \
	out_has "site/distribution/db/conf.d is owned by root:root (mode 0755) and distsync runs as $USER_NAME: chown it to $USER_NAME"
ok "and says nothing was changed" out_has "nothing was changed"
tree_digest site/distribution > "$T_DIR/now.digest"
ok "the tree is release 1, untouched" cmp "$T_DIR/r1.digest" "$T_DIR/now.digest"
check "no journal, nothing pending" \
	"[ ! -e site/.distribution.distsync/journal ] && [ ! -e site/.distribution.distsync/pending ]"
check "release 1 is still current" "[ \"\$(cat site/.distribution.distsync/current.id)\" = 1 ]"
chown -R "$USER_NAME:$USER_NAME" site/distribution/db
expect_exit 0 "after the chown, the same push applies" as_user "$DISTSYNC" push demo
check "the tree is release 2" "grep -q max_connections site/distribution/db/conf.d/my.cnf"

done_testing
