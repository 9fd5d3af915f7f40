#!/bin/sh
# Shared helpers for functional tests: TAP output, a temp dir per test script
# (kept on failure), cleanup hooks run on every exit, and the CI skip rule.
#
# Usage in a test script:
#   . "$top_srcdir/tests/func/lib.sh"
#   need_prog sshd            # SKIP (or FAIL under CI=true) when missing
#   at_exit "kill $pid"       # run when the script exits, in reverse order
#   ok "label" test -f x      # one TAP check
#   wait_for 60 test -f x     # a condition, never a fixed sleep
#   done_testing

set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
: "${DISTSYNC:=$top_builddir/src/distsync}"
export DISTSYNC

T_COUNT=0
T_FAILED=0
T_CLEANUP=""
T_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ds-func-$(basename "$0" .sh)-XXXXXX")

# at_exit CMD: run CMD (a shell string) at exit, last registered first.
at_exit() {
	T_CLEANUP="$1
$T_CLEANUP"
}

t_cleanup() {
	status=$?
	set +e
	printf '%s\n' "$T_CLEANUP" | while IFS= read -r cmd; do
		[ -n "$cmd" ] && eval "$cmd" >/dev/null 2>&1
	done
	if [ "$T_FAILED" -eq 0 ] && [ "$status" -eq 0 ]; then
		rm -rf "$T_DIR"
	else
		echo "# kept $T_DIR"
	fi
}
trap t_cleanup EXIT
trap 'exit 130' INT TERM

# ok LABEL CMD...: runs CMD, one TAP line.
ok() {
	label=$1
	shift
	T_COUNT=$((T_COUNT + 1))
	if "$@" >"$T_DIR/.last.out" 2>&1; then
		echo "ok $T_COUNT - $label"
	else
		echo "not ok $T_COUNT - $label"
		T_FAILED=$((T_FAILED + 1))
		sed 's/^/# /' "$T_DIR/.last.out" | tail -n 30
	fi
}

# check LABEL CONDITION-STRING: evaluates a shell condition.
check() {
	label=$1
	shift
	ok "$label" sh -c "$*"
}

# expect_exit CODE LABEL CMD...: CMD must exit with CODE.
expect_exit() {
	want=$1
	label=$2
	shift 2
	T_COUNT=$((T_COUNT + 1))
	"$@" >"$T_DIR/.last.out" 2>&1
	got=$?
	if [ "$got" -eq "$want" ]; then
		echo "ok $T_COUNT - $label (exit $got)"
	else
		echo "not ok $T_COUNT - $label (exit $got, wanted $want)"
		T_FAILED=$((T_FAILED + 1))
		sed 's/^/# /' "$T_DIR/.last.out" | tail -n 30
	fi
}

# last_output: what the last ok/expect_exit command printed.
last_output() {
	cat "$T_DIR/.last.out"
}

# skip_all REASON: the whole script is skipped, except under CI=true where a
# missing requirement is a failure so CI cannot pass while testing nothing.
skip_all() {
	if [ "${CI:-}" = true ]; then
		echo "not ok 1 - required under CI: $1"
		echo "1..1"
		exit 1
	fi
	echo "1..0 # SKIP $1"
	exit 0
}

need_prog() {
	for p in "$@"; do
		command -v "$p" >/dev/null 2>&1 || [ -x "/usr/sbin/$p" ] || skip_all "$p is not installed"
	done
}

need_root() {
	[ "$(id -u)" -eq 0 ] || skip_all "needs root"
}

# now_ms: milliseconds on a steady clock (since boot; 10 ms steps), read
# without starting a program, so a loaded machine does not skew it.
now_ms() {
	local up
	read -r up _ </proc/uptime
	echo $(( ${up%.*}${up#*.} * 10 ))
}

# wait_for SECONDS CMD...: runs CMD every 0.1 s until it succeeds; returns 1
# when SECONDS passed first. Wait for a condition this way, never for a time:
# SECONDS only catches a hang, so be generous (a busy CI machine is slow).
wait_for() {
	local end
	end=$(( $(now_ms) + $1 * 1000 ))
	shift
	until "$@"; do
		[ "$(now_ms)" -lt "$end" ] || return 1
		sleep 0.1
	done
}

# lock_held FILE: another process holds FILE's flock(2).
lock_held() {
	flock -n -E 75 "$1" true 2>/dev/null
	[ $? -eq 75 ]
}

# hold_lock FILE: starts a process that holds FILE's flock(2) until it is
# killed (pid in HOLD_PID, killed at exit too); returns once the lock is held.
hold_lock() {
	(exec 9>>"$1" && flock 9 && exec sleep 3600) &
	HOLD_PID=$!
	at_exit "kill $HOLD_PID"
	wait_for 120 lock_held "$1"
}

# free_port: an unused loopback TCP port.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null ||
		echo $((20000 + $$ % 20000))
}

# tree_digest DIR: one line per entry with type, mode and content hash, to
# compare two trees byte for byte.
tree_digest() {
	(cd "$1" && find . -mindepth 1 \( -type f -printf 'f %m %p ' -exec sha256sum {} \; \) -o \
		\( -type l -printf 'l %p %l\n' \) -o \( -type d -printf 'd %m %p\n' \) | sort)
}

done_testing() {
	echo "1..$T_COUNT"
	[ "$T_FAILED" -eq 0 ]
}
