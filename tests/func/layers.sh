#!/bin/sh
# The source tree's layers: tools/check-layers passes on src/, and fails on a
# copy of src/ given an include that points up or sideways.
. "$top_srcdir/tests/func/lib.sh"

check_layers() {	# SRCDIR: the check's output in $T_DIR/layers.out, its status returned
	"$top_srcdir/tools/check-layers" "$1" >"$T_DIR/layers.out" 2>&1
}

ok "every include under src/ points to its own layer or one below" check_layers "$top_srcdir/src"

cp -R "$top_srcdir/src" "$T_DIR/src"
printf '#include "session/receiver.h"\n' >>"$T_DIR/src/site/stage.c"
printf '#include "wire/proto.h"\n' >>"$T_DIR/src/repo/plan.c"
printf '#include "stage.h"\n' >>"$T_DIR/src/site/commit.c"
check_layers "$T_DIR/src"
status=$?
check "includes that point up or sideways fail the check (exit $status)" "[ $status -ne 0 ]"
ok "the upward include is named with its file and line" \
	grep -q 'site/stage.c:[0-9]*: site may not include session/receiver.h' "$T_DIR/layers.out"
ok "a sideways include (repo to wire) is named" \
	grep -q 'repo/plan.c:[0-9]*: repo may not include wire/proto.h' "$T_DIR/layers.out"
ok "an include that hides its layer is named" \
	grep -q 'site/commit.c:[0-9]*: "stage.h" does not name its layer' "$T_DIR/layers.out"
done_testing
