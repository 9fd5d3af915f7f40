#!/bin/sh
# Throwaway OpenSSH servers for functional tests, entirely inside $T_DIR.
# Source after lib.sh:
#
#   . "$top_srcdir/tests/func/lib.sh"
#   . "$top_srcdir/tests/func/lib-sshd.sh"
#   sshd_need                 # SKIP (FAIL under CI=true) without sshd/ssh-keygen
#   sshd_start a              # sshd "a" on a free loopback port, stopped at exit
#   sshd_start b              # as many as needed (fleet tests start 20)
#   port=$(sshd_port a)
#   sshd_host_yml a site-a "$T_DIR/site-a" >> distsync.yml   # a hosts: entry
#   sshd_cut a                # kill a's per-connection sshd processes: the link drops
#   sshd_stop a               # also done at exit
#
# One client key pair is shared by all servers: $SSHD_CLIENT_KEY (private key)
# is authorized on every server, and $SSHD_KNOWN_HOSTS holds every started
# server's host key as "[127.0.0.1]:PORT ssh-ed25519 ...". Each server lives in
# $T_DIR/sshd-NAME/ (config, host key, log, pid file, port).
# Servers run as the test's user (root is fine: PermitRootLogin prohibit-password),
# logins land in that same user's account, with the environment sshd gives
# (PATH from sshd's default; use absolute paths for remote_command).

SSHD_BIN=${SSHD_BIN:-/usr/sbin/sshd}
SSHD_CLIENT_DIR="$T_DIR/ssh-client"
SSHD_CLIENT_KEY="$SSHD_CLIENT_DIR/id_ed25519"
SSHD_KNOWN_HOSTS="$SSHD_CLIENT_DIR/known_hosts"

# sshd_need: skips the script when the programs a server needs are missing.
sshd_need() {
	[ -x "$SSHD_BIN" ] || skip_all "$SSHD_BIN is not installed (apt-get install openssh-server)"
	command -v ssh-keygen >/dev/null 2>&1 || skip_all "ssh-keygen is not installed (apt-get install openssh-client)"
	# Privilege separation needs this directory even for a throwaway server.
	if [ ! -d /run/sshd ]; then
		mkdir -p /run/sshd 2>/dev/null && chmod 0755 /run/sshd ||
			skip_all "/run/sshd is missing and cannot be created (needs root)"
	fi
}

# sshd_client_init: the shared client key and known_hosts (idempotent).
sshd_client_init() {
	[ -f "$SSHD_CLIENT_KEY" ] && return 0
	mkdir -p "$SSHD_CLIENT_DIR" && chmod 0700 "$SSHD_CLIENT_DIR" || return 1
	ssh-keygen -q -t ed25519 -N '' -C distsync-test-client -f "$SSHD_CLIENT_KEY" || return 1
	: >"$SSHD_KNOWN_HOSTS"
}

# sshd_dir NAME: the server's directory.
sshd_dir() {
	echo "$T_DIR/sshd-$1"
}

# sshd_port NAME, sshd_pid NAME: the server's port and listener pid.
sshd_port() {
	cat "$(sshd_dir "$1")/port"
}

sshd_pid() {
	cat "$(sshd_dir "$1")/pid" 2>/dev/null
}

# sshd_host_pub NAME: the server's public host key line ("ssh-ed25519 AAAA...").
sshd_host_pub() {
	cut -d' ' -f1,2 "$(sshd_dir "$1")/ssh_host_ed25519_key.pub"
}

# sshd_fingerprint NAME: "SHA256:..." of the server's host key.
sshd_fingerprint() {
	ssh-keygen -l -E sha256 -f "$(sshd_dir "$1")/ssh_host_ed25519_key.pub" | cut -d' ' -f2
}

# sshd_write_config NAME PORT: (re)writes the server's sshd_config.
sshd_write_config() {
	local d
	d=$(sshd_dir "$1")
	cat >"$d/sshd_config" <<EOF
ListenAddress 127.0.0.1:$2
HostKey $d/ssh_host_ed25519_key
PidFile $d/sshd.pid
AuthorizedKeysFile $d/authorized_keys
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AllowTcpForwarding yes
X11Forwarding no
PrintMotd no
PrintLastLog no
MaxStartups 100:30:200
MaxSessions 50
LoginGraceTime 30
ClientAliveInterval 0
Subsystem sftp internal-sftp
LogLevel VERBOSE
SetEnv HOME=$d/home
EOF
	mkdir -p "$d/home"
}

# sshd_start NAME: starts server NAME on a free loopback port and waits until it
# listens. Stopped at exit by pid. Returns non-zero (with the log) on failure.
sshd_start() {
	local name d tries port pid i
	name=$1
	d=$(sshd_dir "$name")
	sshd_client_init || return 1
	mkdir -p "$d" || return 1
	if [ ! -f "$d/ssh_host_ed25519_key" ]; then
		ssh-keygen -q -t ed25519 -N '' -C "distsync-test-$name" -f "$d/ssh_host_ed25519_key" || return 1
	fi
	cp "$SSHD_CLIENT_KEY.pub" "$d/authorized_keys"
	tries=0
	while [ $tries -lt 5 ]; do
		tries=$((tries + 1))
		port=$(free_port)
		sshd_write_config "$name" "$port"
		: >"$d/log"
		"$SSHD_BIN" -D -e -f "$d/sshd_config" >>"$d/log" 2>&1 &
		pid=$!
		echo "$pid" >"$d/pid"
		echo "$port" >"$d/port"
		at_exit "sshd_stop_pid $pid"
		# Ready when it says so; gone when the port was taken meanwhile.
		if sshd_wait_listening "$d" "$pid"; then
			sshd_known_hosts_add "$name"
			return 0
		fi
		sshd_stop_pid "$pid"
	done
	echo "# sshd $name did not start:" >&2
	sed 's/^/#   /' "$d/log" >&2
	return 1
}

# sshd_listening DIR PID: the server in DIR says it listens (1 also when PID is gone).
sshd_listening() {
	grep -q "Server listening on" "$1/log" || ! kill -0 "$2" 2>/dev/null
}

# sshd_wait_listening DIR PID: waits (a minute at most: a loaded machine is
# slow, a hung one is not worth more) until the server in DIR listens.
sshd_wait_listening() {
	wait_for 60 sshd_listening "$1" "$2" && grep -q "Server listening on" "$1/log"
}

# sshd_known_hosts_add NAME: records NAME's current host key for its port.
sshd_known_hosts_add() {
	echo "[127.0.0.1]:$(sshd_port "$1") $(sshd_host_pub "$1")" >>"$SSHD_KNOWN_HOSTS"
}

# sshd_stop_pid PID: stops a listener and waits for it (no error when gone).
sshd_stop_pid() {
	local i
	kill "$1" 2>/dev/null || return 0
	i=0
	while kill -0 "$1" 2>/dev/null && [ $i -lt 50 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	kill -9 "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	return 0
}

# sshd_stop NAME: stops server NAME (its open connections live on, as with sshd).
sshd_stop() {
	local pid
	pid=$(sshd_pid "$1")
	[ -n "$pid" ] && sshd_stop_pid "$pid"
	rm -f "$(sshd_dir "$1")/pid"
}

# sshd_descendants PID: the pids below PID, children first listed before theirs.
# One cat and one awk for the whole process table: a cut must land while
# the transfer it cuts is still going, even on a loaded machine.
sshd_descendants() {
	cat /proc/[0-9]*/stat 2>/dev/null | awk -v root="$1" '
		# Field 4 is the parent pid; field 2 (the name, in parentheses) may hold spaces.
		{
			for (p = 0; (q = index(substr($0, p + 1), ") ")) > 0; p += q)
				;
			split(substr($0, p + 2), f, " ")
			kids[f[2]] = kids[f[2]] " " $1
		}
		END {
			n = split(kids[root], queue, " ")
			for (i = 1; i <= n; i++) {
				print queue[i]
				m = split(kids[queue[i]], more, " ")
				for (j = 1; j <= m; j++)
					queue[++n] = more[j]
			}
		}'
}

# sshd_connections NAME: pids of NAME's per-connection sshd processes (the
# listener's descendants running the sshd binary itself, not the commands).
sshd_connections() {
	local pid real p
	pid=$(sshd_pid "$1")
	[ -n "$pid" ] || return 0
	real=$(readlink -f "$SSHD_BIN")
	for p in $(sshd_descendants "$pid"); do
		[ "$(readlink -f "/proc/$p/exe" 2>/dev/null)" = "$real" ] && echo "$p"
	done
}

# sshd_cut NAME: kills NAME's per-connection sshd processes with SIGKILL, as a
# dropped link would end them: the client sees the connection die mid-stream.
# The listener stays up, so the next connection works. Returns 1 when there was
# no connection to cut.
sshd_cut() {
	local pids
	pids=$(sshd_connections "$1")
	[ -n "$pids" ] || return 1
	# shellcheck disable=SC2086
	kill -9 $pids 2>/dev/null
	return 0
}

# sshd_has_connection NAME: NAME has a connection open.
sshd_has_connection() {
	[ -n "$(sshd_connections "$1")" ]
}

# sshd_wait_connection NAME [SECONDS]: waits (60 s at most) until NAME has a connection open.
sshd_wait_connection() {
	wait_for "${2:-60}" sshd_has_connection "$1"
}

# sshd_rekey NAME: gives NAME a new host key (the listener restarts on the same
# port), so clients that knew the old one see a changed key.
sshd_rekey() {
	local d port pid i
	d=$(sshd_dir "$1")
	port=$(sshd_port "$1")
	sshd_stop "$1"
	rm -f "$d/ssh_host_ed25519_key" "$d/ssh_host_ed25519_key.pub"
	ssh-keygen -q -t ed25519 -N '' -C "distsync-test-$1-new" -f "$d/ssh_host_ed25519_key" || return 1
	: >"$d/log"
	"$SSHD_BIN" -D -e -f "$d/sshd_config" >>"$d/log" 2>&1 &
	pid=$!
	echo "$pid" >"$d/pid"
	at_exit "sshd_stop_pid $pid"
	sshd_wait_listening "$d" "$pid" && return 0
	sed 's/^/#   /' "$d/log" >&2
	return 1
}

# sshd_host_yml NAME HOSTNAME TARGET [REMOTE_COMMAND]: prints a distsync.yml
# "hosts:" entry (indented by two spaces) for server NAME.
sshd_host_yml() {
	printf '  %s:\n' "$2"
	printf '    address: 127.0.0.1\n'
	printf '    port: %s\n' "$(sshd_port "$1")"
	printf '    user: %s\n' "$(id -un)"
	printf '    identity: %s\n' "$SSHD_CLIENT_KEY"
	printf '    known_hosts: %s\n' "$SSHD_KNOWN_HOSTS"
	printf '    path: %s\n' "$3"
	printf '    remote_command: %s\n' "${4:-$DISTSYNC}"
	# Loopback: only a hang takes long, but a loaded machine connecting many hosts at once is slow.
	printf '    connect_timeout: 60\n'
}
