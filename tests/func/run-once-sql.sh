#!/bin/sh
# run_once feeds SQL to a real database: a MariaDB server of the test's own
# (tests/func/lib-mariadb.sh) gets each new or changed trusted_sql file once,
# in path order, on the stdin of `mariadb`: two files applied once across
# three pushes, a third file added later applied alone, the server's output
# in the log, a failing file named, its release rolled back, and the fixed
# file applied by the next push.
. "$top_srcdir/tests/func/lib.sh"
. "$top_srcdir/tests/func/lib-mariadb.sh"
mariadb_need

cd "$T_DIR" || exit 1
ok "mariadb server starts" mariadb_start db
SOCK=$(mariadb_socket db)
ok "database openmrs" mariadb_sql db "CREATE DATABASE openmrs"
# answer_is SQL WANT: the server answers SQL with WANT.
answer_is() {
	got=$(mariadb_sql db "$1")
	[ "$got" = "$2" ] || { echo "$1: got '$got', wanted '$2'"; return 1; }
}

mkdir -p repo/dist/trusted_sql repo/dist/openmrs_modules
cat > repo/distsync.yml <<YML
distribution:
  name: sql
run_once:
  - paths: [trusted_sql/*.sql]
    command: [mariadb, --no-defaults, "--socket=$SOCK", -uroot, openmrs]
    input: stdin
hosts:
  demo: {path: ../site/distribution}
YML
cd repo || exit 1
D() { "$DISTSYNC" "$@"; }
state=../site/.distribution.distsync
keep() { cp "$T_DIR/.last.out" "$T_DIR/out"; }
out_has() { for want in "$@"; do grep -q -- "$want" "$T_DIR/out" || return 1; done; }

# Path order matters: 001 makes the table 002 fills.
cat > dist/trusted_sql/001-create.sql <<'SQL'
CREATE TABLE applied (id INT PRIMARY KEY, note VARCHAR(40));
SQL
cat > dist/trusted_sql/002-rows.sql <<'SQL'
INSERT INTO applied VALUES (1, 'one'), (2, 'two');
SELECT CONCAT('rows now: ', COUNT(*)) AS said FROM applied;
SQL
echo "module 1" > dist/openmrs_modules/m.omod
ok "release 1" D release --version 1
expect_exit 0 "push 1 applies both files" D -v push demo
keep
ok "each file is reported" out_has "run_once: run_once\[0\] trusted_sql/001-create.sql: ran" \
	"run_once: run_once\[0\] trusted_sql/002-rows.sql: ran"
ok "the server's output is in the log" out_has "trusted_sql/002-rows.sql: | rows now: 2"
ok "the table holds the two rows" answer_is "SELECT COUNT(*) FROM openmrs.applied" 2

echo "module 2" > dist/openmrs_modules/m.omod
ok "release 2 (no SQL change)" D release --version 2
expect_exit 0 "push 2" D push demo
keep
ok "push 2 runs no SQL" sh -c "! grep -q 'run_once' '$T_DIR/out'"
ok "release 3 (nothing changed)" D release --version 3
expect_exit 0 "push 3" D push demo
ok "after three pushes each file ran once: two rows, no error" \
	answer_is "SELECT COUNT(*) FROM openmrs.applied" 2

cat > dist/trusted_sql/003-more.sql <<'SQL'
INSERT INTO applied VALUES (3, 'three');
SQL
ok "release 4 adds a third file" D release --version 4
expect_exit 0 "push 4" D push demo
keep
ok "the third file runs" out_has "trusted_sql/003-more.sql: ran"
ok "alone" sh -c "! grep -q '00[12]-' '$T_DIR/out'"
ok "three rows" answer_is "SELECT COUNT(*) FROM openmrs.applied" 3
check "run_once.done records three files" "[ \$(wc -l < $state/run_once.done) -eq 3 ]"

# A file the server refuses: named, with the server's error; the release is rolled back.
cat > dist/trusted_sql/004-broken.sql <<'SQL'
INSERT INTO applied VALUES (4, 'four');
INSRT INTO applied VALUES (5, 'five');
SQL
ok "release 5 with a broken file" D release --version 5
expect_exit 1 "push 5 fails" D push demo
keep
ok "the failure names the file" out_has "trusted_sql/004-broken.sql"
ok "and says what the server said" out_has "You have an error in your SQL syntax"
ok "the files were rolled back to release 4" test ! -e ../site/distribution/trusted_sql/004-broken.sql
check "current release is 4" "[ \"\$(cat $state/current.id)\" = 4 ]"
check "the broken file is not recorded as run" "[ \$(wc -l < $state/run_once.done) -eq 3 ]"
sed -i 's/INSRT/INSERT/; s/(4, /(40, /' dist/trusted_sql/004-broken.sql
ok "release 6 with the file fixed" D release --version 6
expect_exit 0 "push 6" D push demo
keep
ok "the fixed file runs" out_has "trusted_sql/004-broken.sql: ran"
ok "its rows are in (its first statement also ran in the failed run)" \
	answer_is "SELECT COUNT(*) FROM openmrs.applied WHERE id IN (4, 5, 40)" 3

# input: argument: the file's path as the last argument (mariadb -e "source PATH").
cd .. || exit 1
mkdir -p repo2/dist/sql
cat > repo2/distsync.yml <<YML
distribution:
  name: sql2
run_once:
  - paths: [sql/*.sql]
    command: [sh, -c, "mariadb --no-defaults --socket=$SOCK -uroot openmrs -e \"source \$1\"", sh]
    input: argument
hosts:
  demo: {path: ../site2/distribution}
YML
cd repo2 || exit 1
echo "CREATE TABLE by_path (x INT); INSERT INTO by_path VALUES (7);" > dist/sql/a.sql
ok "release for the argument form" D release --version 1
expect_exit 0 "push: the path as an argument" D push demo
ok "the file was sourced by its path" answer_is "SELECT x FROM openmrs.by_path" 7

done_testing
