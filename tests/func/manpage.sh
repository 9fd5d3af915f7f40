#!/bin/sh
# The man page and --help say the same thing: every command of
# `distsync --help` has an entry in distsync(1), and for each command the
# options its --help lists are the options its man page entry documents,
# no more and no fewer. The man page renders without a warning.
. "$top_srcdir/tests/func/lib.sh"
need_prog python3

man_page=$top_srcdir/doc/distsync.1
"$DISTSYNC" --help >"$T_DIR/help" 2>&1
for c in $(sed -n '/^commands:/,/^$/s/^  \([a-z]*\) .*/\1/p' "$T_DIR/help"); do
	expect_exit 0 "distsync $c --help" "$DISTSYNC" "$c" --help
	cp "$T_DIR/.last.out" "$T_DIR/help-$c"
	ok "distsync $c --help writes to stdout (a pager can read it)" \
		sh -c "'$DISTSYNC' $c --help 2>/dev/null | grep -q '^usage: distsync $c '"
done

python3 - "$man_page" "$T_DIR" <<'PY' >"$T_DIR/report"
import glob, os, re, sys
man, tdir = sys.argv[1], sys.argv[2]
text = open(man).read()
# The COMMANDS section: ".It Cm NAME ..." entries until the next ".Sh".
section = text[text.index('.Sh COMMANDS'):]
section = section[:section.index('\n.Sh', 1)]
entries = {}
cur = None
for line in section.split('\n'):
    m = re.match(r'\.It Cm (\S+)', line)
    if m:
        cur = m.group(1)
        entries.setdefault(cur, '')
    if cur:
        entries[cur] += line + '\n'
def man_options(body, cmd):
    # "Cm serve Fl \-send" in another command's entry names serve's option.
    body = re.sub(r'Cm (?!%s\b)[a-z]+ Fl \\-[a-z0-9-]+' % cmd, '', body)
    return set(re.findall(r'Fl \\-([a-z][a-z0-9-]*)', body))
def help_options(path):
    out = open(path).read()
    opts = out[out.index('options:'):] if 'options:' in out else ''
    found = set()
    # An option line: indented, starting with a dash; its options end where
    # two spaces begin the description.
    for line in opts.split('\n'):
        m = re.match(r'^\s+(-.*?)(?:\s{2,}|$)', line)
        if m:
            found |= set(re.findall(r'(?<![A-Za-z0-9_.-])--([a-z][a-z0-9-]*)', m.group(1)))
    return found - {'help'}
failed = 0
for path in sorted(glob.glob(os.path.join(tdir, 'help-*'))):
    cmd = path.rsplit('help-', 1)[1]
    if cmd not in entries:
        print('not ok - %s: no entry in distsync(1)' % cmd)
        failed += 1
        continue
    h, m = help_options(path), man_options(entries[cmd], cmd) - {'help'}
    if h - m:
        print('not ok - %s: --help lists what distsync(1) does not: %s' % (cmd, ' '.join(sorted(h - m))))
        failed += 1
    elif m - h:
        print('not ok - %s: distsync(1) documents what --help does not list: %s' % (cmd, ' '.join(sorted(m - h))))
        failed += 1
    else:
        print('ok - %s: %d options in both' % (cmd, len(h)))
sys.exit(1 if failed else 0)
PY
status=$?
while IFS= read -r line; do
	case $line in
	"ok - "*) ok "${line#ok - }" true ;;
	*) ok "${line#not ok - }" false ;;
	esac
done <"$T_DIR/report"
check "every command agrees" "[ $status -eq 0 ]"
if command -v man >/dev/null 2>&1; then
	ok "distsync(1) renders without a warning" sh -c \
		"MANWIDTH=80 man --warnings -l '$man_page' 2>'$T_DIR/man.err' >/dev/null && ! grep -q . '$T_DIR/man.err'"
fi
done_testing
