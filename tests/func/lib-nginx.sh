#!/bin/sh
# Throwaway nginx servers serving a directory, entirely inside $T_DIR: the
# static HTTP mirrors of a published tree. Source after lib.sh:
#
#   . "$top_srcdir/tests/func/lib.sh"
#   . "$top_srcdir/tests/func/lib-nginx.sh"
#   nginx_need                     # SKIP (FAIL under CI=true) without nginx
#   nginx_start m1 "$T_DIR/pub"    # serves the tree on a free loopback port
#   nginx_start m2 "$T_DIR/pub" noranges   # the same, ignoring Range (max_ranges 0)
#   nginx_start m3 "$T_DIR/pub" tls        # HTTPS with a certificate of a test CA
#   nginx_start m4 "$T_DIR/pub" rate=200k  # each response sent at 200 KB/s (limit_rate)
#   nginx_cut m4                   # kill its worker: transfers in flight are cut
#   url=$(nginx_url m1)            # http://127.0.0.1:PORT (https://localhost:PORT for tls)
#   nginx_ca                       # the test CA's certificate file (after a tls start)
#   nginx_requests m1              # how many requests m1 answered, from its log
#   nginx_bytes m1                 # body bytes m1 sent, from its log
#   nginx_stop m1                  # also done at exit
#
# A server runs as the test's user with its own prefix, pid file and logs
# ($T_DIR/nginx-NAME/), in the foreground under our control (daemon off);
# nginx_start waits until it answers before returning.

NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}

nginx_need() {
	[ -x "$NGINX_BIN" ] || skip_all "$NGINX_BIN is not installed (apt-get install nginx-light)"
	command -v openssl >/dev/null 2>&1 || skip_all "openssl is not installed"
}

nginx_dir() {
	echo "$T_DIR/nginx-$1"
}

nginx_port() {
	cat "$(nginx_dir "$1")/port"
}

nginx_url() {
	local d
	d=$(nginx_dir "$1")
	if [ -f "$d/tls" ]; then
		echo "https://localhost:$(nginx_port "$1")"
	else
		echo "http://127.0.0.1:$(nginx_port "$1")"
	fi
}

nginx_ca() {
	echo "$T_DIR/nginx-ca/ca.pem"
}

# nginx_make_ca: a test CA and a certificate for localhost signed by it.
nginx_make_ca() {
	local ca
	ca="$T_DIR/nginx-ca"
	[ -f "$ca/ca.pem" ] && return 0
	mkdir -p "$ca" || return 1
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=distsync test CA" \
		-keyout "$ca/ca.key" -out "$ca/ca.pem" >/dev/null 2>&1 || return 1
	openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
		-keyout "$ca/server.key" -out "$ca/server.csr" >/dev/null 2>&1 || return 1
	printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$ca/ext"
	openssl x509 -req -in "$ca/server.csr" -CA "$ca/ca.pem" -CAkey "$ca/ca.key" \
		-CAcreateserial -days 2 -extfile "$ca/ext" -out "$ca/server.pem" >/dev/null 2>&1
}

# nginx_start NAME ROOT [noranges|tls]: serve ROOT until the test ends.
nginx_start() {
	local name root mode d port listen extra user i
	name=$1
	root=$2
	mode=${3:-}
	d=$(nginx_dir "$name")
	mkdir -p "$d/logs" "$d/tmp" || return 1
	port=$(free_port)
	echo "$port" >"$d/port"
	listen="listen 127.0.0.1:$port;"
	extra=""
	# As root nginx would hand the workers to nobody, who cannot read \$T_DIR.
	user=""
	[ "$(id -u)" -eq 0 ] && user="user root;"
	case $mode in
	noranges) extra="max_ranges 0;" ;;
	rate=*) extra="limit_rate ${mode#rate=};" ;;
	tls)
		nginx_make_ca || return 1
		: >"$d/tls"
		listen="listen 127.0.0.1:$port ssl http2;"
		extra="ssl_certificate $T_DIR/nginx-ca/server.pem; ssl_certificate_key $T_DIR/nginx-ca/server.key;"
		;;
	esac
	cat >"$d/nginx.conf" <<EOF
daemon off;
master_process on;
$user
worker_processes 1;
pid $d/nginx.pid;
error_log $d/logs/error.log warn;
events { worker_connections 256; }
http {
	access_log $d/logs/access.log;
	client_body_temp_path $d/tmp/body;
	proxy_temp_path $d/tmp/proxy;
	fastcgi_temp_path $d/tmp/fastcgi;
	uwsgi_temp_path $d/tmp/uwsgi;
	scgi_temp_path $d/tmp/scgi;
	types { application/octet-stream zst; text/plain pointer release keys index manifest; }
	default_type application/octet-stream;
	sendfile on;
	server {
		$listen
		root $root;
		$extra
	}
}
EOF
	"$NGINX_BIN" -p "$d" -c "$d/nginx.conf" -e "$d/logs/error.log" >"$d/stdout" 2>&1 &
	echo $! >"$d/master"
	at_exit "nginx_stop $name"
	# Ready when it answers (any status: the root may have no index).
	i=0
	while [ $i -lt 300 ]; do
		if [ "$mode" = tls ]; then
			curl -s -o /dev/null --cacert "$(nginx_ca)" "$(nginx_url "$name")/" && return 0
		else
			curl -s -o /dev/null "$(nginx_url "$name")/" && return 0
		fi
		kill -0 "$(cat "$d/master")" 2>/dev/null || break
		sleep 0.1
		i=$((i + 1))
	done
	echo "# nginx $name did not start:" >&2
	sed 's/^/# /' "$d/stdout" "$d/logs/error.log" >&2 2>/dev/null
	return 1
}

nginx_stop() {
	local d pid i
	d=$(nginx_dir "$1")
	[ -f "$d/master" ] || return 0
	pid=$(cat "$d/master")
	kill "$pid" 2>/dev/null
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	kill -9 "$pid" 2>/dev/null
	rm -f "$d/master"
}

# nginx_requests NAME [PATTERN]: requests in NAME's access log (matching PATTERN).
nginx_requests() {
	local log
	log="$(nginx_dir "$1")/logs/access.log"
	[ -f "$log" ] || { echo 0; return; }
	if [ $# -gt 1 ]; then
		grep -c -- "$2" "$log"
	else
		wc -l <"$log" | tr -d ' '
	fi
}

# nginx_cut NAME: kills NAME's worker processes (the master starts a new one),
# so every transfer in flight ends at once, as a dropped link would.
nginx_cut() {
	local master w
	master=$(cat "$(nginx_dir "$1")/master")
	for w in $(pgrep -P "$master"); do
		kill -9 "$w" 2>/dev/null
	done
}

# nginx_bytes NAME [PATTERN]: body bytes NAME sent (requests matching PATTERN).
nginx_bytes() {
	local log
	log="$(nginx_dir "$1")/logs/access.log"
	[ -f "$log" ] || { echo 0; return; }
	if [ $# -gt 1 ]; then
		grep -- "$2" "$log"
	else
		cat "$log"
	fi | awk '{ n += $10 } END { print n + 0 }'
}
