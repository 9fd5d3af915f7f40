#!/bin/sh
# run_once in a compose service (service: db): "compose exec -T db ..." with
# whichever compose this machine has (v2 plugin or v1 docker-compose, as
# `restart: compose` detects), each new file once on the command's stdin and
# its path in DISTSYNC_RUN_ONCE_FILE inside the container, against a real
# Docker engine. The "database" is a busybox container appending what it is
# fed to a bind-mounted file, so the test can read exactly what arrived.
. "$top_srcdir/tests/func/lib.sh"
. "$top_srcdir/tests/func/lib-docker.sh"
docker_start

cd "$T_DIR" || exit 1
PROJECT="dsonce$$"
IMAGE="distsync-test/busybox-once:$$"
docker_busybox_image "$IMAGE" || skip_all "could not import a busybox image"
at_exit "docker rmi -f $IMAGE"
mkdir -p site/data repo/dist/trusted_sql
cat > site/compose.yml <<YML
version: "2.4"
services:
  db:
    image: "$IMAGE"
    network_mode: none
    stop_signal: SIGKILL
    volumes:
      - ./data:/data
    command: ["sh", "-c", "while :; do sleep 1; done"]
YML
cat > repo/distsync.yml <<'YML'
distribution:
  name: compose-once
run_once:
  - paths: [trusted_sql/*.sql]
    service: db
    command: [sh, -c, 'echo "-- $DISTSYNC_RUN_ONCE_FILE" >> /data/fed.sql; cat >> /data/fed.sql']
    input: stdin
hosts:
  demo: {path: ../site/distribution, compose: ../site, compose_project: "@PROJECT@"}
YML
sed -i "s|@PROJECT@|$PROJECT|" repo/distsync.yml
COMPOSE_ARGS="--project-directory $T_DIR/site -f $T_DIR/site/compose.yml -p $PROJECT"
# shellcheck disable=SC2086
at_exit "cd '$T_DIR' && compose $COMPOSE_ARGS down -t 1"
# shellcheck disable=SC2086
ok "compose project comes up" compose $COMPOSE_ARGS up -d
cd repo || exit 1
D() { "$DISTSYNC" "$@"; }
keep() { cp "$T_DIR/.last.out" "$T_DIR/out"; }
out_has() { grep -q -- "$1" "$T_DIR/out"; }

echo "CREATE TABLE a;" > dist/trusted_sql/001.sql
echo "INSERT INTO a;" > dist/trusted_sql/002.sql
ok "release 1" D release --version 1
expect_exit 0 "push 1" D push demo
keep
ok "002.sql ran in the service" out_has "run_once: run_once\[0\] trusted_sql/002.sql: ran"
printf -- '-- trusted_sql/001.sql\nCREATE TABLE a;\n-- trusted_sql/002.sql\nINSERT INTO a;\n' \
	> "$T_DIR/want"
ok "the container got each file on stdin, in path order, named in its environment" \
	cmp "$T_DIR/want" ../site/data/fed.sql
echo "ALTER TABLE a;" > dist/trusted_sql/003.sql
ok "release 2" D release --version 2
expect_exit 0 "push 2" D push demo
printf -- '-- trusted_sql/003.sql\nALTER TABLE a;\n' >> "$T_DIR/want"
ok "only the new file went in" cmp "$T_DIR/want" ../site/data/fed.sql

done_testing
