#!/bin/sh
# Delta encodings on the wire, through the real binary and a real receiver
# (forked locally, and `distsync serve` as over SSH): identical files, empty
# files, 0 -> N and N -> 0 bytes, rename-only, a versioned module rename
# (artifact-identity basis), a drifted file (rsync signature path), a store
# that lacks the basis (rsync), a basis that is not what it claims and a
# corrupt cached delta (both fall back to the whole file and say so), a jar
# whose entries changed only their timestamps, the cache reused by a second
# host, and release --precompute.
. "$top_srcdir/tests/func/lib.sh"
need_prog sha256sum python3

cd "$T_DIR" || exit 1
mkdir -p repo/dist/openmrs_modules repo/dist/openmrs_config repo/dist/frontend/app-1.0.0
cd repo || exit 1
cat > distsync.yml <<'YML'
distribution:
  name: test
  source: dist
  store: .distsync
hosts:
  demo: {path: ../site/distribution}
  second: {path: ../site2/distribution}
YML
D() { "$DISTSYNC" "$@"; }
site=../site/distribution
state=../site/.distribution.distsync
same_tree() { [ "$(tree_digest "$1")" = "$(tree_digest "$2")" ]; }
# push_json HOST [ARGS]: pushes, keeps the JSON summary in $T_DIR/json.
push_json() {
	host=$1
	shift
	D push "$host" --json "$@" >"$T_DIR/json"
}
# field EXPR: a value from the last JSON summary (python expression over j).
field() {
	python3 -c "import json,sys; d=json.load(open('$T_DIR/json')); j=d[0] if isinstance(d,list) else d; print($1)"
}
sha() { sha256sum "$1" | cut -d' ' -f1; }
# mkjar OUT STAMP: a jar of compressible, deterministic entries dated STAMP (a year).
mkjar() {
	python3 - "$1" "$2" <<'PY'
import random, sys, zipfile
out, year = sys.argv[1], int(sys.argv[2])
rnd = random.Random(7)
words = [''.join(rnd.choice('abcdefghijklmnop') for _ in range(rnd.randint(3, 9))) for _ in range(400)]
with zipfile.ZipFile(out, 'w', zipfile.ZIP_DEFLATED) as z:
    for i in range(300):
        text = ' '.join(rnd.choice(words) for _ in range(1500)).encode()
        zi = zipfile.ZipInfo('org/example/C%03d.class' % i, (year, 1, 2, 3, 4, 6))
        zi.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(zi, text)
PY
}
# A module: 3 MB of incompressible bytes; the next version changes a few.
head -c 3000000 /dev/urandom > ../mod
cp ../mod dist/openmrs_modules/htmlformentry-5.3.1.omod
head -c 1000000 /dev/urandom > dist/openmrs_config/drifty.bin
seq 1 200000 > dist/openmrs_config/big.txt
: > dist/openmrs_config/empty.txt
: > dist/openmrs_config/grows.txt
echo "shrinks to nothing" > dist/openmrs_config/shrinks.txt
seq 1 50000 > dist/frontend/app-1.0.0/main.js
mkjar dist/openmrs_modules/lib.jar 2001

ok "release 1" D release --version 1
expect_exit 0 "push release 1 to an empty site" push_json demo
ok "site equals release 1" same_tree $site dist
ok "empty site: nothing to delta against, no delta sent" \
    test "$(field "j['encodings']['zpatch']['objects'] + j['encodings']['rsync']['objects']")" = 0

expect_exit 0 "identical release: push again" push_json demo
ok "identical files: no object sent" test "$(field "j['objects_sent']")" = 0
ok "identical files: under 2 KB on the wire" test "$(field "j['bytes_sent']")" -lt 2048

# Release 2: module version bump (identity basis), rename-only, 0 -> N, N -> 0,
# a jar rebuilt with new timestamps only, a frontend app in a new versioned dir.
python3 -c "
import sys
b = bytearray(open('../mod','rb').read())
for off in (1000, 1500000, 2999000):
    b[off:off+16] = b'changed-version!'
open('dist/openmrs_modules/htmlformentry-5.4.0.omod','wb').write(b)"
rm dist/openmrs_modules/htmlformentry-5.3.1.omod
mv dist/openmrs_config/big.txt dist/openmrs_config/renamed-big.txt
seq 1 1000 > dist/openmrs_config/grows.txt
: > dist/openmrs_config/shrinks.txt
mkjar dist/openmrs_modules/lib.jar 2002
mv dist/frontend/app-1.0.0 dist/frontend/app-1.0.1
echo "// 1.0.1" >> dist/frontend/app-1.0.1/main.js
ok "release 2" D release --version 2
expect_exit 0 "push release 2" push_json demo
ok "site equals release 2" same_tree $site dist
modsize=$(stat -c %s dist/openmrs_modules/htmlformentry-5.4.0.omod)
jarsize=$(stat -c %s dist/openmrs_modules/lib.jar)
ok "known bases go as zstd or zip-aware patches (module, jar, app file)" \
    test "$(field "j['encodings']['zpatch']['objects'] + j['encodings']['zippatch']['objects']")" -ge 3
ok "versioned module rename: patch bytes far below the file size" \
    test "$(field "j['encodings']['zpatch']['bytes']")" -lt $((modsize / 20))
ok "rename-only and timestamp-only jar: whole push under 5% of the module" \
    test "$(field "j['bytes_sent']")" -lt $((modsize / 20))
ok "no signature round trip for known bases" test "$(field "j['round_trips']")" = 2
check "jar with new timestamps: its patch (zstd or zip-aware) is tiny" \
    "[ \$(cat .distsync/deltas/*-$(sha dist/openmrs_modules/lib.jar).zp* | wc -c) -lt $((jarsize / 50)) ]"
modz=.distsync/deltas/$(sha ../mod)-$(sha dist/openmrs_modules/htmlformentry-5.4.0.omod)
ok "a pair that is not zips leaves an empty zippatch marker" \
    sh -c "test -f $modz.zippatch && test ! -s $modz.zippatch && test -s $modz.zpatch"
ok "empty file staged and applied" test ! -s $site/openmrs_config/shrinks.txt
ok "0 -> N bytes applied" cmp $site/openmrs_config/grows.txt dist/openmrs_config/grows.txt

# A second host at the same release: everything comes from the cache.
expect_exit 0 "second host, release 1" push_json second --release 1
expect_exit 0 "second host, release 2" push_json second
ok "second host: every encoding from the delta cache" \
    test "$(field "j['cache_hits']")" = "$(field "j['objects_sent'] - j['encodings']['raw']['objects']")"
ok "second host equals release 2" same_tree ../site2/distribution dist

# Drift: the site's copy changed; the next release changes it too. The
# sender cannot patch against content it does not have: rsync signature.
python3 -c "
b = bytearray(open('$site/openmrs_config/drifty.bin','rb').read()); b[500:510] = b'site-edit!'
open('$site/openmrs_config/drifty.bin','wb').write(b)"
python3 -c "
b = bytearray(open('dist/openmrs_config/drifty.bin','rb').read()); b[900000:900010] = b'release-3!'
open('dist/openmrs_config/drifty.bin','wb').write(b)"
ok "release 3" D release --version 3
expect_exit 0 "push release 3 over a drifted file" push_json demo
ok "site equals release 3" same_tree $site dist
ok "drifted file: one rsync delta" test "$(field "j['encodings']['rsync']['objects']")" = 1
ok "drifted file: one signature" test "$(field "j['signatures']")" = 1
ok "drifted file: far less than the file on the wire" test "$(field "j['bytes_sent']")" -lt 200000
ok "drift reported" test "$(field "len(j['drift'])")" = 1

# Basis not what it claims: a staged object under the basis's hash holds
# other bytes. The receiver finds it out by SHA-256 and gets the whole file.
seq 1 200000 | sed 's/5/6/' > dist/openmrs_config/renamed-big.txt
ok "release 4" D release --version 4
basis=$(sha $site/openmrs_config/renamed-big.txt)
head -c 1000000 /dev/urandom > $state/staging/$basis
expect_exit 0 "push release 4 against a lying basis" D push demo
cp "$T_DIR/.last.out" "$T_DIR/out"
ok "basis mismatch: reported" grep -q 'did not reconstruct' "$T_DIR/out"
ok "basis mismatch: site equals release 4 all the same" same_tree $site dist

# Corrupt cached delta: the receiver rejects it, the whole file goes, and
# the bad cache entry is dropped.
seq 1 200000 | sed 's/7/8/' > dist/openmrs_config/renamed-big.txt
ok "release 5" D release --version 5
old=$(sha $site/openmrs_config/renamed-big.txt)
new=$(sha dist/openmrs_config/renamed-big.txt)
cache=.distsync/deltas/$old-$new.zpatch
head -c 5000 /dev/urandom > "$cache"
expect_exit 0 "push release 5 with a corrupt cached delta" D push demo
cp "$T_DIR/.last.out" "$T_DIR/out"
ok "corrupt delta: reported" grep -q 'did not reconstruct' "$T_DIR/out"
ok "corrupt delta: site equals release 5" same_tree $site dist
ok "corrupt delta: dropped from the cache" test ! -e "$cache"

# A store that lacks the basis content (a site synced from elsewhere):
# rsync deltas against signatures, one batch.
mkdir ../repo2
cp distsync.yml ../repo2/
seq 1 200000 | sed 's/9/0/' > ../repo2/dist-tmp
mkdir -p ../repo2/dist
cp -a dist/. ../repo2/dist/
mv ../repo2/dist-tmp ../repo2/dist/openmrs_config/renamed-big.txt
(cd ../repo2 && D release --version 6) >/dev/null
expect_exit 0 "push from a store without the site's release" sh -c "cd ../repo2 && \"\$DISTSYNC\" push demo --json > '$T_DIR/json'"
ok "unknown basis: rsync delta" test "$(field "j['encodings']['rsync']['objects']")" = 1
ok "unknown basis: well under the file size" test "$(field "j['bytes_sent']")" -lt 300000
ok "site equals release 6" same_tree $site ../repo2/dist

# The same through `distsync serve` (the remote code path, without SSH).
DISTSYNC_SERVE_ROOT=$T_DIR
export DISTSYNC_SERVE_ROOT
echo "// 1.0.2" >> dist/frontend/app-1.0.1/main.js
ok "release 7" D release --version 7
expect_exit 0 "push release 7 through serve" push_json demo
ok "serve: zstd patch" test "$(field "j['encodings']['zpatch']['objects']")" = 1
ok "serve: site equals release 7" same_tree $site dist
unset DISTSYNC_SERVE_ROOT

# release --precompute: encodings from the last releases made at release time.
echo "// 1.0.3" >> dist/frontend/app-1.0.1/main.js
expect_exit 0 "release 8 --precompute 2" D release --version 8 --precompute 2
new=$(sha dist/frontend/app-1.0.1/main.js)
check "precomputed patch in the cache" "ls .distsync/deltas/*-$new.zpatch >/dev/null"
expect_exit 0 "push release 8" push_json demo
ok "push uses the precomputed patch" test "$(field "j['cache_hits']")" -ge 1
ok "site equals release 8" same_tree $site dist
check "no staging debris" "[ -z \"\$(ls $state/staging)\" ]"

done_testing
