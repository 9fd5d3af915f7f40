#!/bin/sh
# pull from static HTTP mirrors of a published tree, served by real nginx:
# A -> B through the precomputed patches; a download cut twice resumes at the
# byte (<= 1.1x the bytes of an uncut one); a mirror that ignores Range still
# completes; a mirror that 404s or serves an altered object is passed over
# and nothing wrong is applied; a pointer rolled back to an older release or
# expired is refused with exit 3; HTTPS with a CA file; a plain directory.
. "$top_srcdir/tests/func/lib.sh"
. "$top_srcdir/tests/func/lib-nginx.sh"
need_prog sha256sum curl python3
nginx_need

cd "$T_DIR" || exit 1
mkdir -p repo/dist/openmrs_modules repo/dist/frontend site keys
R() { (cd repo && "$DISTSYNC" "$@"); }
same_tree() { [ "$(tree_digest "$1")" = "$(tree_digest "$2")" ]; }
keep() { cp "$T_DIR/.last.out" "$T_DIR/$1"; }
has() { grep -q -- "$2" "$T_DIR/$1"; }
state=$T_DIR/site/.distribution.distsync

ok "keygen root" R keygen --no-passphrase "$T_DIR/keys/root.key"
ok "keygen release" R keygen --no-passphrase "$T_DIR/keys/release.key"
cat > repo/distsync.yml <<YML
distribution: {name: test, source: dist, store: .distsync, signing_key: $T_DIR/keys/release.key,
  publish_dir: $T_DIR/pub}
hosts:
  any: {path: $T_DIR/unused}
YML
ok "keys init" R keys init --root "$T_DIR/keys/root.key" --release "$T_DIR/keys/release.key.pub"
keep keys.out
root_id=$(sed -n "s/^sites pin the root with:  trust_root: //p" "$T_DIR/keys.out")

# Release A: a module, a "war" and a few frontend files; B changes some of each.
python3 - <<'PY'
import os, random, zipfile
random.seed(7)
d = 'repo/dist'
def jar(path, n, seed):
    r = random.Random(seed)
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as z:
        for i in range(n):
            z.writestr('org/openmrs/C%d.class' % i, bytes(r.getrandbits(8) for _ in range(3000)))
jar(d + '/openmrs_modules/htmlformentry-5.3.1.omod', 60, 1)
open(d + '/openmrs_modules/big-1.0.omod', 'wb').write(random.Random(2).randbytes(1500000))
for i in range(20):
    open(d + '/frontend/chunk%d.js' % i, 'w').write(''.join('line %d of %d\n' % (j, i) for j in range(2000)))
PY
ok "release A" R release --version A
ok "publish A" R publish
cp pub/channels/stable.pointer pointer-A
python3 - <<'PY'
import os, random, zipfile
d = 'repo/dist'
os.remove(d + '/openmrs_modules/htmlformentry-5.3.1.omod')
r = random.Random(1)
with zipfile.ZipFile(d + '/openmrs_modules/htmlformentry-5.4.0.omod', 'w', zipfile.ZIP_DEFLATED) as z:
    for i in range(60):
        body = bytes(r.getrandbits(8) for _ in range(3000))
        if i == 7:
            body = b'changed' + body[7:]
        z.writestr('org/openmrs/C%d.class' % i, body)
open(d + '/frontend/chunk3.js', 'a').write('one more line\n')
open(d + '/openmrs_modules/big-1.0.omod', 'ab').write(b'tail')
PY
ok "release B" R release --version B
ok "publish B" R publish
keep pubB.out
ok "publish says what it wrote" has pubB.out "published release B (sequence 2) on channel stable"
check "every file but the pointer is content- or version-named" \
	"[ -f pub/keys/1.keys ] && ls pub/objects/*/*.zst >/dev/null && ls pub/indexes/*-*.index >/dev/null"

nginx_start m1 "$T_DIR/pub" || { echo "not ok - nginx starts"; echo "1..$T_COUNT"; exit 1; }
site_yml() {	# NAME MIRRORS [EXTRA]: a site.yml pulling from MIRRORS (a YAML list)
	cat > "$T_DIR/$1" <<YML
distribution: {name: test}
hosts:
  central:
    mirrors: $2
    trust_root: [$root_id]
    path: $T_DIR/site/distribution
    retries: 3
    retry_max_wait: 1
    connect_timeout: 5
    idle_timeout: 20
${3:-}
site: {upstream: central, host: kirehe}
YML
}
P() { yml=$1; shift; "$DISTSYNC" -c "$T_DIR/$yml" pull "$@"; }

# A site at A (pulled from a copy of the tree as it was when A was published).
mkdir -p pubA && cp -a pub/. pubA/ && cp pointer-A pubA/channels/stable.pointer
site_yml siteA.yml "[$T_DIR/pubA]"
expect_exit 0 "a first pull from a directory mirror (the tree as published for A)" P siteA.yml
ok "the site is at A" sh -c "grep -q '^A$' $state/current.id"

# A -> B over HTTP: the precomputed patches.
site_yml site.yml "[$(nginx_url m1)]"
before=$(nginx_bytes m1)
expect_exit 0 "pull A -> B from nginx" P site.yml
keep ab.out
ok "the site equals release B" same_tree site/distribution repo/dist
ok "the summary names the move" has ab.out "kirehe: pull A -> B"
ab_bytes=$(( $(nginx_bytes m1) - before ))
whole=$(python3 -c "import sys,glob,os; print(sum(os.path.getsize(f) for f in glob.glob('pub/objects/*/*.zst')))")
check "the patches cost less than a fifth of the objects whole ($ab_bytes of $whole)" \
	"[ $ab_bytes -lt $((whole / 5)) ]"
ok "patches were fetched" sh -c "grep -q 'GET /deltas/' '$(nginx_dir m1)/logs/access.log'"
expect_exit 0 "a second pull is a no-op" P site.yml --quiet
ok "and prints nothing" test ! -s "$T_DIR/.last.out"

# A download cut twice, then resumed at the byte: a slow mirror, a fresh site.
# received FILE: the bytes a pull's summary says it received.
received() {
	python3 - "$1" <<'PY'
import re, sys
m = re.search(r'; ([0-9.]+) (B|KB|MB|GB) received', open(sys.argv[1]).read())
print(int(float(m.group(1)) * {'B': 1, 'KB': 1e3, 'MB': 1e6, 'GB': 1e9}[m.group(2)]) if m else -1)
PY
}
rm -rf site && mkdir site
expect_exit 0 "an uncut first pull of B, for reference" P site.yml
keep uncut.out
uncut=$(received "$T_DIR/uncut.out")
nginx_start slow "$T_DIR/pub" rate=300k
rm -rf site && mkdir site
site_yml slow.yml "[$(nginx_url slow)]"
big=$(sha256sum repo/dist/openmrs_modules/big-1.0.omod | cut -d' ' -f1)
part=$state/staging/$big.zst.part
P slow.yml >"$T_DIR/slow.out" 2>&1 &
pull_pid=$!
at_exit "kill $pull_pid"
# cut_at BYTES: waits until the big object's download holds BYTES, then cuts.
cut_at() {
	i=0
	while [ $i -lt 1200 ]; do
		size=$(stat -c %s "$part" 2>/dev/null || echo 0)
		[ "$size" -ge "$1" ] && { nginx_cut slow; return 0; }
		kill -0 $pull_pid 2>/dev/null || return 1
		sleep 0.05
		i=$((i + 1))
	done
	return 1
}
ok "the download is cut at 400 KB" cut_at 400000
ok "and again at 900 KB" cut_at 900000
wait $pull_pid
status=$?
check "the pull completes after the cuts (exit $status)" "[ $status -eq 0 ]"
ok "the site equals release B" same_tree site/distribution repo/dist
cut=$(received "$T_DIR/slow.out")
ok "it took more than one attempt" grep -q "in [0-9]* attempts" "$T_DIR/slow.out"
check "bytes with two cuts <= 1.1x an uncut pull ($cut vs $uncut)" \
	"[ $uncut -gt 0 ] && [ $((cut * 10)) -le $((uncut * 11)) ]"

# A mirror that ignores ranges (max_ranges 0) still completes a resumed download.
nginx_start norange "$T_DIR/pub" noranges
rm -rf site && mkdir -p "$state/staging"
head -c 5000 "pub/objects/$(echo "$big" | cut -c1-2)/$big.zst" > "$part"
site_yml norange.yml "[$(nginx_url norange)]"
expect_exit 0 "a pull from a mirror that ignores Range, with a part staged" \
	"$DISTSYNC" -v -c "$T_DIR/norange.yml" pull
keep norange.out
ok "the site equals release B" same_tree site/distribution repo/dist
ok "it said the mirror ignores ranges" has norange.out "ignores ranges"

# The first mirror lacks everything (404): the second is used.
mkdir -p empty
nginx_start none "$T_DIR/empty"
rm -rf site && mkdir site
site_yml failover.yml "[$(nginx_url none), $(nginx_url m1)]"
expect_exit 0 "first mirror 404s, the second serves" P failover.yml
ok "the site equals release B" same_tree site/distribution repo/dist

# An altered object on the first mirror: refused, the next mirror, nothing wrong applied.
mkdir -p evil && cp -a pub/. evil/
obj=$(ls evil/objects/*/*.zst | head -n 1)
chmod u+w "$obj" && printf 'altered' | dd of="$obj" bs=1 seek=20 conv=notrunc 2>/dev/null
nginx_start evil "$T_DIR/evil"
rm -rf site && mkdir site
site_yml evil.yml "[$(nginx_url evil), $(nginx_url m1)]"
expect_exit 0 "an altered object on the first mirror: the second serves it" P evil.yml
keep evil.out
ok "the altered object was refused by its hash" has evil.out "does not decode to the object"
ok "the site equals release B" same_tree site/distribution repo/dist

# A pointer rolled back to A (the site is at B): refused, exit 3.
mkdir -p rolled && cp -a pub/. rolled/ && cp pointer-A rolled/channels/stable.pointer
site_yml rolled.yml "[$T_DIR/rolled]"
before=$(tree_digest site/distribution)
expect_exit 3 "a pointer rolled back to an older release: refused (exit 3)" P rolled.yml
keep rolled.out
ok "it says anti-rollback" has rolled.out "anti-rollback"
ok "the tree is unchanged" test "$(tree_digest site/distribution)" = "$before"

# An expired pointer: refused, exit 3, with its age.
mkdir -p stale && cp -a pub/. stale/
ok "publish a pointer that expires in 1s" R publish --expires 1s "$T_DIR/stale"
sleep 2
site_yml stale.yml "[$T_DIR/stale]"
expect_exit 3 "an expired pointer: refused (exit 3)" P stale.yml
keep stale.out
ok "it says how old it is" has stale.out "expired 0 min [0-9]* s ago"

# HTTPS with a test CA given as ca_file.
nginx_start tls "$T_DIR/pub" tls
rm -rf site && mkdir site
site_yml tls.yml "[$(nginx_url tls)]" "    ca_file: $(nginx_ca)"
expect_exit 0 "a pull over HTTPS with ca_file" P tls.yml
ok "the site equals release B" same_tree site/distribution repo/dist
site_yml notrust.yml "[$(nginx_url tls)]"
rm -rf site && mkdir site
expect_exit 1 "without the CA, TLS fails" P notrust.yml

# A site without trust_root is refused: a mirror is trusted for nothing.
sed '/trust_root/d' "$T_DIR/site.yml" > "$T_DIR/nopin.yml"
expect_exit 2 "a mirror pull without trust_root is a config error" P nopin.yml
expect_exit 2 "config check refuses it too" "$DISTSYNC" config check "$T_DIR/nopin.yml"
cp "$T_DIR/.last.out" "$T_DIR/nopin.out"
ok "naming the upstream and trust_root" grep -q "site.upstream: host '[a-z]*' pulls from mirrors, so it must pin the repository's root (trust_root" "$T_DIR/nopin.out"
done_testing
