#!/bin/sh
# A real Docker engine for functional tests, sourced after lib.sh:
#
#   . "$top_srcdir/tests/func/lib-docker.sh"
#   docker_start                 # DOCKER_HOST set; skip_all when impossible
#   docker_busybox_image NAME    # a busybox-static image made with docker import
#   compose ARGS...              # docker compose v2 or docker-compose v1
#
# When no engine is reachable we start our own dockerd (root only) with its
# data and sockets under a short directory in /tmp (unix socket paths are
# limited to about 100 bytes), no iptables, no bridge, the vfs storage
# driver. It is stopped by pid at exit, and anything it left mounted under
# its directory is unmounted before the directory is removed.

DOCKER_OWN_DIR=""
DOCKER_OWN_PID=""

# compose ARGS...: whichever compose this machine has, v2 plugin first.
compose() {
	if docker compose version >/dev/null 2>&1; then
		docker compose "$@"
	else
		docker-compose "$@"
	fi
}

# docker_stop: stops the dockerd we started (by pid) and cleans its directory.
docker_stop() {
	[ -n "$DOCKER_OWN_DIR" ] || return 0
	if [ -n "$DOCKER_OWN_PID" ] && kill -0 "$DOCKER_OWN_PID" 2>/dev/null; then
		# Every container of our own engine is ours; no shim may outlive it.
		ids=$(docker ps -aq 2>/dev/null)
		# shellcheck disable=SC2086
		[ -z "$ids" ] || docker rm -f $ids >/dev/null 2>&1
		kill -TERM "$DOCKER_OWN_PID" 2>/dev/null
		i=0
		while kill -0 "$DOCKER_OWN_PID" 2>/dev/null && [ $i -lt 100 ]; do
			sleep 0.2
			i=$((i + 1))
		done
		kill -KILL "$DOCKER_OWN_PID" 2>/dev/null
	fi
	# Deepest first; lazily, in case a shim still holds one.
	awk -v d="$DOCKER_OWN_DIR" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r |
		while IFS= read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
	rm -rf "$DOCKER_OWN_DIR"
	DOCKER_OWN_DIR=""
	DOCKER_OWN_PID=""
}

# docker_up_or_gone: our dockerd answers, or it has exited.
docker_up_or_gone() {
	docker info >/dev/null 2>&1 || ! kill -0 "$DOCKER_OWN_PID" 2>/dev/null
}

# docker_start: makes DOCKER_HOST point at a working engine.
docker_start() {
	need_prog docker docker-compose
	[ -x /bin/busybox ] || skip_all "busybox-static is not installed (/bin/busybox)"
	if docker info >/dev/null 2>&1; then
		echo "# using the reachable Docker engine"
		return 0
	fi
	need_root
	need_prog dockerd
	DOCKER_OWN_DIR=$(mktemp -d /tmp/dsd.XXXXXX)
	at_exit "docker_stop"
	dockerd --iptables=false --bridge=none --storage-driver=vfs \
		--data-root "$DOCKER_OWN_DIR/data" --exec-root "$DOCKER_OWN_DIR/e" \
		--pidfile "$DOCKER_OWN_DIR/docker.pid" -H "unix://$DOCKER_OWN_DIR/s.sock" \
		>"$T_DIR/dockerd.log" 2>&1 &
	DOCKER_OWN_PID=$!
	DOCKER_HOST="unix://$DOCKER_OWN_DIR/s.sock"
	export DOCKER_HOST
	# Up, or gone; two minutes at most (a busy machine starts it slowly).
	if ! wait_for 120 docker_up_or_gone || ! docker info >/dev/null 2>&1; then
		tail -n 20 "$T_DIR/dockerd.log" | sed 's/^/# dockerd: /'
		skip_all "could not start dockerd"
	fi
	echo "# started dockerd pid $DOCKER_OWN_PID"
}

# docker_busybox_image NAME: imports a rootfs of /bin/busybox and its applets.
# No registry is reachable, so this is the only base image we have.
docker_busybox_image() {
	if ldd /bin/busybox >/dev/null 2>&1; then
		skip_all "/bin/busybox is not static (install busybox-static)"
	fi
	sh "$top_srcdir/tests/func/docker/make-rootfs.sh" "$T_DIR/rootfs.tar" || return 1
	docker import --change 'CMD ["/bin/sh"]' "$T_DIR/rootfs.tar" "$1" >/dev/null || return 1
	rm -f "$T_DIR/rootfs.tar"
}

# container_of SERVICE: the id of a compose service's container (compose args in COMPOSE_ARGS).
container_of() {
	# shellcheck disable=SC2086
	compose $COMPOSE_ARGS ps -q "$1"
}

# started_at SERVICE: when its container last started.
started_at() {
	docker inspect --format '{{.State.StartedAt}}' "$(container_of "$1")"
}

# health_of SERVICE: docker's health status of its container.
health_of() {
	docker inspect --format '{{.State.Health.Status}}' "$(container_of "$1")" 2>/dev/null
}

# is_healthy SERVICE: docker reports the container healthy.
is_healthy() {
	[ "$(health_of "$1")" = healthy ]
}

# wait_healthy SERVICE SECONDS: until docker reports the container healthy.
wait_healthy() {
	wait_for "$2" is_healthy "$1" && return 0
	echo "service $1 is not healthy after $2 s: $(health_of "$1")"
	return 1
}
