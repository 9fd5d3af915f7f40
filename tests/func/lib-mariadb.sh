#!/bin/sh
# A throwaway MariaDB server for functional tests, entirely inside $T_DIR: its
# own data directory, a unix socket and no TCP port. Source after lib.sh:
#
#   . "$top_srcdir/tests/func/lib.sh"
#   . "$top_srcdir/tests/func/lib-mariadb.sh"
#   mariadb_need                  # SKIP (FAIL under CI=true) without mariadb-server
#   mariadb_start db              # a server "db"; stopped at exit
#   sock=$(mariadb_socket db)
#   mariadb_sql db "SELECT 1"     # runs SQL as root over the socket, prints rows
#   mariadb_stop db
#
# The server runs as the test's user (root is passed --user=root), with its
# pid and log under $T_DIR/mariadb-NAME/.

MARIADBD_BIN=${MARIADBD_BIN:-/usr/sbin/mariadbd}

mariadb_need() {
	[ -x "$MARIADBD_BIN" ] || skip_all "$MARIADBD_BIN is not installed (apt-get install mariadb-server)"
	command -v mariadb-install-db >/dev/null 2>&1 || skip_all "mariadb-install-db is not installed"
	command -v mariadb >/dev/null 2>&1 || skip_all "the mariadb client is not installed"
}

mariadb_dir() {
	echo "$T_DIR/mariadb-$1"
}

mariadb_socket() {
	echo "$(mariadb_dir "$1")/mysqld.sock"
}

# mariadb_sql NAME SQL: runs SQL as root over NAME's socket.
mariadb_sql() {
	mariadb --no-defaults --socket="$(mariadb_socket "$1")" -uroot -N -B -e "$2"
}

mariadb_start() {
	d=$(mariadb_dir "$1")
	mkdir -p "$d/data" "$d/tmp" || return 1
	user_opt=""
	[ "$(id -u)" -eq 0 ] && user_opt="--user=root"
	mariadb-install-db --no-defaults $user_opt --datadir="$d/data" --auth-root-authentication-method=socket \
		--skip-test-db >"$d/install.log" 2>&1 || {
		sed 's/^/# /' "$d/install.log" >&2
		return 1
	}
	"$MARIADBD_BIN" --no-defaults $user_opt --datadir="$d/data" --socket="$(mariadb_socket "$1")" \
		--pid-file="$d/mariadbd.pid" --skip-networking --tmpdir="$d/tmp" \
		--log-error="$d/error.log" --innodb-buffer-pool-size=16M >/dev/null 2>&1 &
	echo $! >"$d/server"
	at_exit "mariadb_stop $1"
	i=0
	while [ $i -lt 600 ]; do
		mariadb_sql "$1" "SELECT 1" >/dev/null 2>&1 && return 0
		kill -0 "$(cat "$d/server")" 2>/dev/null || break
		sleep 0.1
		i=$((i + 1))
	done
	echo "# mariadb $1 did not start:" >&2
	sed 's/^/# /' "$d/error.log" >&2 2>/dev/null
	return 1
}

mariadb_stop() {
	d=$(mariadb_dir "$1")
	[ -f "$d/server" ] || return 0
	pid=$(cat "$d/server")
	kill "$pid" 2>/dev/null
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -9 "$pid" 2>/dev/null
	rm -f "$d/server"
}
