#!/bin/sh
# Restart only what changed, against a real Docker engine: a compose project
# (gateway, frontend, backend) bind-mounting parts of a site's distribution
# tree. Driven through tests/unit/restart-driver, which calls the restart
# module the way the receiver does after a commit.
. "$top_srcdir/tests/func/lib.sh"
. "$top_srcdir/tests/func/lib-docker.sh"

DRIVER="$top_builddir/tests/unit/restart-driver"
[ -x "$DRIVER" ] || skip_all "restart-driver is not built"
docker_start

cd "$T_DIR" || exit 1
PORT=$(free_port)
PROJECT="dstest$$"
IMAGE="distsync-test/busybox:$$"
SITE="$T_DIR/site"
DIST="$SITE/distribution"
COMPOSE_ARGS="--project-directory $SITE -f $SITE/compose.yml -p $PROJECT"

docker_busybox_image "$IMAGE" || skip_all "could not import a busybox image"
at_exit "docker rmi -f $IMAGE"
mkdir -p "$DIST/openmrs_core" "$DIST/openmrs_modules" "$DIST/frontend" "$DIST/gateway" \
	"$DIST/trusted_sql" dist
echo "war 1" >"$DIST/openmrs_core/openmrs.war"
echo "module 1.0" >"$DIST/openmrs_modules/htmlformentry-1.0.omod"
echo "<h1>index</h1>" >"$DIST/frontend/index.html"
echo "console.log(1)" >"$DIST/frontend/main.js"
echo "gateway" >"$DIST/gateway/index.html"
echo "create table a (x int);" >"$DIST/trusted_sql/001.sql"
sed -e "s|@IMAGE@|$IMAGE|" -e "s|@PORT@|$PORT|" "$top_srcdir/tests/func/docker/compose.yml" \
	>"$SITE/compose.yml"
sed -e "s|@PORT@|$PORT|" -e "s|@PROJECT@|$PROJECT|" "$top_srcdir/tests/func/docker/distsync.yml" \
	>distsync.yml

# shellcheck disable=SC2086
at_exit "cd '$T_DIR' && compose $COMPOSE_ARGS down -t 1"
# shellcheck disable=SC2086
ok "compose project comes up" compose $COMPOSE_ARGS up -d
ok "backend healthy" wait_healthy backend 120

snapshot() {
	for s in backend frontend gateway; do
		printf '%s %s\n' "$s" "$(started_at $s)"
	done >"$1"
}

# restarted_only BEFORE SERVICE...: exactly these services have a new StartedAt.
restarted_only() {
	before=$1
	shift
	snapshot "$T_DIR/after"
	for s in backend frontend gateway; do
		want=same
		for r in "$@"; do
			[ "$r" = "$s" ] && want=new
		done
		b=$(grep "^$s " "$before")
		a=$(grep "^$s " "$T_DIR/after")
		if [ "$want" = same ] && [ "$a" != "$b" ]; then
			echo "$s restarted: $b -> $a"
			return 1
		fi
		if [ "$want" = new ] && [ "$a" = "$b" ]; then
			echo "$s did not restart: $a"
			return 1
		fi
	done
}

# drive LABEL [ARGS...] [PATH...]: one TAP line for a driver run; its output in $T_DIR/out.
drive() {
	label=$1
	shift
	ok "$label" "$DRIVER" "$@"
	cp "$T_DIR/.last.out" "$T_DIR/out"
}

# 1. Only a module changes: only backend restarts (its health is the container's).
snapshot before
echo "module 1.1" >"$DIST/openmrs_modules/htmlformentry-1.0.omod"
drive "modules changed: driver succeeds" distsync.yml site \
	openmrs_modules/htmlformentry-1.0.omod
check "the plan says backend and why" \
	"grep -qx 'plan: restart backend: openmrs_modules/htmlformentry-1.0.omod changed' '$T_DIR/out'"
check "the report says backend is healthy" \
	"grep -q '^report: backend: restarted, healthy' '$T_DIR/out'"
ok "only backend restarted (others' StartedAt unchanged)" restarted_only before backend

# 2. Only frontend static files: nothing restarts.
snapshot before
echo "console.log(2)" >"$DIST/frontend/main.js"
drive "frontend static files changed: driver succeeds" distsync.yml site frontend/main.js
check "frontend listed as not restarted" \
	"grep -qx 'plan: not restarted frontend (restart: none): frontend/main.js changed' '$T_DIR/out'"
ok "nothing restarted" restarted_only before

# 3. A reload_on file: frontend restarts.
snapshot before
echo "<h1>index 2</h1>" >"$DIST/frontend/index.html"
drive "reload_on file changed: driver succeeds" distsync.yml site frontend/main.js \
	frontend/index.html
check "frontend restarts because of reload_on" \
	"grep -qx 'plan: reload frontend (reload_on): frontend/index.html changed' '$T_DIR/out'"
ok "only frontend restarted" restarted_only before frontend

# 4. Nothing changes: nothing restarts.
snapshot before
drive "nothing changed: driver succeeds" distsync.yml site
check "the plan says so" "grep -qx 'plan: no service restarts' '$T_DIR/out'"
ok "nothing restarted" restarted_only before

# 5. gateway, with an HTTP health check against its httpd, after backend and frontend.
snapshot before
echo "gateway 2" >"$DIST/gateway/index.html"
drive "gateway and a module changed: driver succeeds" distsync.yml site \
	gateway/index.html openmrs_core/openmrs.war
check "backend restarts before gateway" \
	"grep '^report:' '$T_DIR/out' | cut -d: -f2 | tr -d ' ' | tr '\n' , | grep -qx 'backend,gateway,'"
ok "backend and gateway restarted, frontend not" restarted_only before backend gateway
check "gateway serves the new file" \
	"/bin/busybox wget -q -O - http://127.0.0.1:$PORT/index.html | grep -qx 'gateway 2'"

# 6. A dry run plans and touches nothing.
snapshot before
drive "dry run" -n distsync.yml site openmrs_modules/htmlformentry-1.0.omod
check "dry run prints the plan" "grep -q '^plan: restart backend' '$T_DIR/out' && ! grep -q '^report:' '$T_DIR/out'"
ok "dry run restarted nothing" restarted_only before

# 7. A failing health check: the report names the service and the health output.
echo "broken" >"$DIST/openmrs_modules/broken.omod"
sed -i 's/health: {container: true, timeout: 60}/health: {container: true, timeout: 15}/' distsync.yml
expect_exit 1 "a module that breaks backend's healthcheck fails" "$DRIVER" distsync.yml site \
	openmrs_modules/broken.omod
cp "$T_DIR/.last.out" "$T_DIR/out"
check "the report says backend failed" "grep -qx 'failed: backend' '$T_DIR/out'"
check "with docker's health output" \
	"grep -q 'report: backend: unhealthy' '$T_DIR/out' && grep -q 'module broken.omod failed to start' '$T_DIR/out'"
# What the receiver does next: files back, restart again, healthy again.
rm -f "$DIST/openmrs_modules/broken.omod"
sed -i 's/health: {container: true, timeout: 15}/health: {container: true, timeout: 60}/' distsync.yml
ok "after the files are restored, the restart passes" "$DRIVER" distsync.yml site \
	openmrs_modules/broken.omod
ok "backend healthy again" wait_healthy backend 120

# 8. run_once: once per content, across two runs of the same content.
rm -f "$SITE/run_once.log"
drive "run_once first run" -r distsync.yml site trusted_sql/001.sql
check "it ran" "grep -q '^run_once: run_once\\[0\\]: ran' '$T_DIR/out'"
drive "run_once second run, same content" -r distsync.yml site trusted_sql/001.sql
check "it was skipped" "grep -q '^run_once: run_once\\[0\\]: already ran' '$T_DIR/out'"
check "the hook ran exactly once" "[ \$(wc -l <'$SITE/run_once.log') -eq 1 ]"
echo "insert into a values (1);" >"$DIST/trusted_sql/002.sql"
ok "run_once with new content" "$DRIVER" -r distsync.yml site trusted_sql/002.sql
check "it ran again" "[ \$(wc -l <'$SITE/run_once.log') -eq 2 ]"

# Part 2: the same through real pushes of releases (distsync release, push).
# compose.yml and the services as above, in a second project whose target
# only distsync writes.
# shellcheck disable=SC2086
compose $COMPOSE_ARGS down -t 1 >/dev/null 2>&1
PROJECT="dspush$$"
SITE="$T_DIR/site2"
DIST="$SITE/distribution"
COMPOSE_ARGS="--project-directory $SITE -f $SITE/compose.yml -p $PROJECT"
mkdir -p "$SITE" repo/dist/openmrs_core repo/dist/openmrs_modules repo/dist/frontend \
	repo/dist/gateway repo/dist/trusted_sql
sed -e "s|@IMAGE@|$IMAGE|" -e "s|@PORT@|$PORT|" "$top_srcdir/tests/func/docker/compose.yml" \
	>"$SITE/compose.yml"
sed -e "s|@PORT@|$PORT|" -e "s|@PROJECT@|$PROJECT|" -e "s|path: site/distribution|path: ../site2/distribution|" \
	-e "s|compose: site|compose: ../site2|" "$top_srcdir/tests/func/docker/distsync.yml" \
	>repo/distsync.yml
cd repo || exit 1
echo "war 1" >dist/openmrs_core/openmrs.war
echo "module 1.0" >dist/openmrs_modules/htmlformentry-1.0.omod
echo "<h1>index</h1>" >dist/frontend/index.html
echo "console.log(1)" >dist/frontend/main.js
echo "gateway" >dist/gateway/index.html
echo "create table a (x int);" >dist/trusted_sql/001.sql

# push_release LABEL VERSION [push options]: cut a release and push it; output in $T_DIR/out.
push_release() {
	push_label=$1
	push_version=$2
	shift 2
	ok "release $push_version" "$DISTSYNC" release --version "$push_version"
	ok "$push_label" "$DISTSYNC" push site "$@"
	cp "$T_DIR/.last.out" "$T_DIR/out"
}

push_release "push release 1 without restarts" 1 --no-restart
# shellcheck disable=SC2086
at_exit "cd '$T_DIR' && compose $COMPOSE_ARGS down -t 1"
# shellcheck disable=SC2086
ok "compose project on the pushed tree comes up" compose $COMPOSE_ARGS up -d
ok "backend healthy" wait_healthy backend 120

snapshot before
echo "module 1.1" >dist/openmrs_modules/htmlformentry-1.0.omod
push_release "push: only a module changed" 2
check "push reports backend restarted and healthy" \
	"grep -q 'restarted: backend (health: ok)' '$T_DIR/out'"
ok "push: only backend restarted" restarted_only before backend
backend_id=$(container_of backend)
check "the restarted container sees the pushed module through its bind mount" \
	"docker exec $backend_id cat /openmrs/modules/htmlformentry-1.0.omod | grep -qx 'module 1.1'"
check "run_once ran with the commit" "[ \$(wc -l <'$SITE/run_once.log') -eq 1 ]"

snapshot before
echo "console.log(2)" >dist/frontend/main.js
push_release "push: only frontend static files changed" 3
check "push says no service restarted" "grep -q 'no service restarted' '$T_DIR/out'"
ok "push: nothing restarted" restarted_only before

snapshot before
echo "<h1>index 2</h1>" >dist/frontend/index.html
push_release "push: a reload_on file changed" 4
check "push reports frontend restarted" "grep -q 'restarted: frontend' '$T_DIR/out'"
ok "push: only frontend restarted" restarted_only before frontend

snapshot before
ok "push: nothing changed" "$DISTSYNC" push site
ok "push: nothing restarted" restarted_only before
check "run_once ran once across all those pushes of the same content" \
	"[ \$(wc -l <'$SITE/run_once.log') -eq 1 ]"

# A release whose new module breaks backend's healthcheck: rolled back, restarted, exit 1.
snapshot before
echo "broken" >dist/openmrs_modules/broken.omod
sed -i 's/health: {container: true, timeout: 60}/health: {container: true, timeout: 15}/' distsync.yml
ok "release 5" "$DISTSYNC" release --version 5
expect_exit 1 "push of a release failing its health check exits 1" "$DISTSYNC" push site
cp "$T_DIR/.last.out" "$T_DIR/out"
check "the failure names backend and docker's health output" \
	"grep -q 'backend' '$T_DIR/out' && grep -q 'module broken.omod failed to start' '$T_DIR/out'"
check "the files were rolled back" "[ ! -e '$DIST/openmrs_modules/broken.omod' ]"
ok "backend was restarted again" restarted_only before backend
ok "backend healthy on the old files" wait_healthy backend 120
cd "$T_DIR" || exit 1

done_testing
