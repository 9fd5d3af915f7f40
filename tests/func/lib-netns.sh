#!/bin/sh
# A slow link for functional tests and benchmarks: a network namespace whose
# loopback (mtu 1500) is shaped with tc tbf, an sshd inside it, and ways to
# cut the link. Source after lib.sh and lib-sshd.sh:
#
#   netns_need                   # SKIP (FAIL under CI=true) without root, ip, tc
#   netns_start 256kbit          # namespace $NETNS, deleted at exit
#   netns_sshd_start up          # sshd "up" inside it (lib-sshd.sh helpers work)
#   NX "$DISTSYNC" ...           # run a command inside the namespace
#   netns_bytes                  # bytes through the shaped loopback so far
#   netns_sample                 # the same, and when, read without a fork
#   netns_shape 512kbit          # new rate; also resets the byte count
#   netns_cut up                 # kill up's per-connection sshd processes
#                                # (NETNS_CUT_LOST adds what that destroyed)
#   netns_link_down; netns_link_up   # loopback down (packets vanish) and up again
#
# Traffic both ways crosses the one loopback, so netns_bytes counts the data,
# the ACKs and the SSH overhead: the bytes a real link would carry.

NETNS=""
NETNS_PID=""
SSHD_REAL=${SSHD_REAL:-/usr/sbin/sshd}

netns_need() {
	need_root
	need_prog ip tc
	ip netns list >/dev/null 2>&1 || skip_all "ip netns does not work here"
}

# netns_start RATE: creates the namespace with a shaped loopback.
netns_start() {
	NETNS="ds-$$-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
	ip netns add "$NETNS" || return 1
	at_exit "ip netns del $NETNS"
	ip -n "$NETNS" link set lo mtu 1500 up || return 1
	# A process inside, whose /proc/PID/net/dev is the namespace's.
	ip netns exec "$NETNS" sleep 86400 &
	NETNS_PID=$!
	at_exit "kill $NETNS_PID"
	netns_shape "$1"
}

# netns_shape RATE: (re)installs the tbf qdisc: a burst of 10 ms of traffic
# (at least 4 KB) and a queue of 200 ms but at least 64 KB, as a modem or
# cellular link buffers (a 6 KB queue at 256 kbit/s drops so much that TCP
# stalls for many seconds in retransmission backoff).
netns_shape() {
	local bytes_per_s burst queue_ms
	bytes_per_s=$(netns_rate_bytes "$1")
	burst=$((bytes_per_s / 100))
	[ "$burst" -lt 4096 ] && burst=4096
	queue_ms=$((65536 * 1000 / bytes_per_s))
	[ "$queue_ms" -lt 200 ] && queue_ms=200
	ip netns exec "$NETNS" tc qdisc del dev lo root 2>/dev/null
	ip netns exec "$NETNS" tc qdisc add dev lo root tbf rate "$1" burst "$burst" \
	    latency "${queue_ms}ms"
}

# netns_rate_bytes RATE: "256kbit" -> 32000 (bytes per second); kbit/mbit only.
netns_rate_bytes() {
	case $1 in
	*kbit) echo $(( ${1%kbit} * 1000 / 8 )) ;;
	*mbit) echo $(( ${1%mbit} * 1000000 / 8 )) ;;
	*) echo "$1" ;;
	esac
}

# netns_bytes: bytes sent through the loopback's qdisc since netns_shape.
netns_bytes() {
	ip netns exec "$NETNS" tc -s qdisc show dev lo | awk '/Sent/ { print $2; exit }'
}

# netns_sample: NETNS_SAMPLE_BYTES, the bytes through the namespace's
# loopback since it was made (as netns_bytes counts them, but not reset by
# netns_shape), and NETNS_SAMPLE_MS, now_ms when they were read. The shell
# reads both itself, microseconds apart: a rate over a second or two stays
# right on a busy machine, where starting tc can take longer than that.
netns_sample() {
	local name bytes rest up
	bytes=""
	while read -r name bytes rest; do
		[ "$name" = "lo:" ] && break
	done <"/proc/$NETNS_PID/net/dev"
	read -r up rest </proc/uptime
	NETNS_SAMPLE_BYTES=$bytes
	NETNS_SAMPLE_MS=$(( ${up%.*}${up#*.} * 10 ))
}

NX() {
	ip netns exec "$NETNS" "$@"
}

# netns_sshd_start NAME: sshd_start with the server inside the namespace
# (ip netns exec execs sshd itself, so the pid lib-sshd.sh records is sshd's).
netns_sshd_start() {
	local wrap
	wrap="$T_DIR/sshd-in-netns"
	printf '#!/bin/sh\nexec ip netns exec %s %s "$@"\n' "$NETNS" "$SSHD_REAL" >"$wrap"
	chmod +x "$wrap"
	SSHD_BIN=$wrap sshd_start "$1"
}

# netns_connections NAME: NAME's per-connection sshd processes.
netns_connections() {
	local pid real p
	pid=$(sshd_pid "$1")
	[ -n "$pid" ] || return 0
	real=$(readlink -f "$SSHD_REAL")
	for p in $(sshd_descendants "$pid"); do
		[ "$(readlink -f "/proc/$p/exe" 2>/dev/null)" = "$real" ] && echo "$p"
	done
}

# netns_inflight: bytes that crossed the link or wait in its queue but no
# process has read yet: the namespace's TCP receive queues and the qdisc's
# backlog. A killed connection resets, and a reset socket's unread data is
# dropped: those bytes crossed the link and will cross it again after a
# resume, however well the resume is done (the busier the machine, the
# further the reader lags and the more that is).
netns_inflight() {
	local q b
	q=$(NX ss -tnH 2>/dev/null | awk '{ s += $2 } END { print s + 0 }')
	b=$(ip netns exec "$NETNS" tc -s qdisc show dev lo | awk '
		/backlog/ { v = $2; m = 1
			if (v ~ /Kb$/) m = 1024; else if (v ~ /Mb$/) m = 1048576
			sub(/[KM]?b$/, "", v); print int(v * m); exit }')
	echo $((q + ${b:-0}))
}

# netns_cut NAME: the connection dies mid-stream, as when a link drops.
# Sets NETNS_CUT_LAST to the bytes in flight that the cut destroyed and
# adds them to NETNS_CUT_LOST.
NETNS_CUT_LOST=0 NETNS_CUT_LAST=0
netns_cut() {
	local pids lost
	pids=$(netns_connections "$1")
	[ -n "$pids" ] || return 1
	lost=$(netns_inflight)
	NETNS_CUT_LAST=$lost NETNS_CUT_LOST=$((NETNS_CUT_LOST + lost))
	# shellcheck disable=SC2086
	kill -9 $pids 2>/dev/null
	return 0
}

netns_link_down() {
	ip -n "$NETNS" link set lo down
}

netns_link_up() {
	ip -n "$NETNS" link set lo up
}
