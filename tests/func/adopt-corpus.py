#!/usr/bin/env python3
"""adopt-corpus.py DIR: two releases, DIR/A and DIR/B, of an OpenMRS-style
distribution small enough for a functional test (about 6 MB each), built the
way tools/mkcorpus's real one is and deterministic (seeded):

  openmrs_core/openmrs.war              a jar of deflated entries; B changes some
  openmrs_modules/NAME-VERSION.omod     versioned jars bumped A -> B, two unchanged
  frontend/openmrs-esm-APP-VERSION/     bundles: NNNN.js chunks (some change, and a
                                        changed chunk of a content-hashed name is
                                        renamed), main.js, *.js.map, in a
                                        directory named by the app's version
  frontend/importmap.json               app -> directory, changes with versions
  openmrs_config/...                    translations and licenses, mostly unchanged

Then `tree DIR/T` prints, as a test compares with distsync's numbers, for the
site tree T against release B: paths identical, changed, extra, missing, and
the distinct contents of B that T does not hold anywhere (what must be sent).
"""
import hashlib
import os
import random
import stat
import sys
import zipfile

WORDS = None


def words(rnd):
    global WORDS
    if WORDS is None:
        WORDS = [''.join(rnd.choice('abcdefghijklmnopqrstuvwxyz') for _ in range(rnd.randint(3, 10)))
                 for _ in range(2000)]
    return WORDS


def code(rnd, n):
    """n bytes of something like minified JavaScript or Java source."""
    w = words(rnd)
    out, size = [], 0
    while size < n:
        s = rnd.choice(('function %s(e,t){return %s(e)+t}', 'var %s=%s.default;',
                        '%s.prototype.%s=function(){this.x++};', '"%s":"%s",',
                        'import{%s}from"./%s";')) % (rnd.choice(w), rnd.choice(w))
        out.append(s)
        size += len(s)
    return ''.join(out).encode()[:n]


def mutate(rnd, data, edits):
    """data with a few local edits, as a rebuild of one version to the next makes."""
    b = bytearray(data)
    for _ in range(edits):
        at = rnd.randrange(0, max(1, len(b) - 64))
        b[at:at + rnd.randint(4, 40)] = code(rnd, rnd.randint(4, 60))
    return bytes(b)


def write(path, data, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)
    os.chmod(path, mode)


def jar(path, entries, year):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as z:
        for name in sorted(entries):
            zi = zipfile.ZipInfo(name, (year, 1, 2, 3, 4, 6))
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, entries[name])


def jar_pair(rnd, n, size, changed, added):
    a = {'org/openmrs/C%04d.class' % i: code(rnd, rnd.randint(size // 2, size * 3 // 2))
         for i in range(n)}
    b = dict(a)
    for name in rnd.sample(sorted(a), changed):
        b[name] = mutate(rnd, a[name], 3)
    for i in range(added):
        b['org/openmrs/N%04d.class' % i] = code(rnd, size)
    return a, b


def build(top):
    rnd = random.Random(12)
    A, B = os.path.join(top, 'A'), os.path.join(top, 'B')
    wa, wb = jar_pair(rnd, 500, 3000, 25, 3)
    jar(os.path.join(A, 'openmrs_core/openmrs.war'), wa, 2024)
    jar(os.path.join(B, 'openmrs_core/openmrs.war'), wb, 2025)
    for name, va, vb in (('htmlformentry', '5.3.1', '5.4.0'), ('reporting', '1.26.0', '1.27.0'),
                         ('fhir2', '2.2.0', '2.3.0')):
        ma, mb = jar_pair(rnd, 120, 2500, 8, 1)
        jar(os.path.join(A, 'openmrs_modules/%s-%s.omod' % (name, va)), ma, 2024)
        jar(os.path.join(B, 'openmrs_modules/%s-%s.omod' % (name, vb)), mb, 2025)
    for name, v in (('idgen', '4.10.0'), ('webservices.rest', '2.40.0')):
        m, _ = jar_pair(rnd, 60, 2000, 0, 0)
        for rel in (A, B):
            jar(os.path.join(rel, 'openmrs_modules/%s-%s.omod' % (name, v)), m, 2023)
    imports = {A: [], B: []}
    for app, va, vb in (('esm-login-app', '5.1.0', '5.2.0'),
                        ('esm-patient-chart-app', '8.0.1', '8.1.0'),
                        ('esm-home-app', '5.2.2', '5.3.0')):
        chunks = {'%d.js' % rnd.randint(100, 9999): code(rnd, rnd.randint(10000, 60000))
                  for _ in range(12)}
        for rel, v in ((A, va), (B, vb)):
            d = os.path.join(rel, 'frontend/openmrs-%s-%s' % (app, v))
            for name, data in sorted(chunks.items()):
                write(os.path.join(d, name), data)
                write(os.path.join(d, name + '.map'), b'{"version":3,"sources":["' +
                      data[:2000] + b'"]}')
            main = b'/* ' + app.encode() + b' ' + v.encode() + b' */' + code(rnd, 30000)
            digest = hashlib.sha256(main).hexdigest()[:20]
            write(os.path.join(d, 'main.%s.js' % digest), main)
            write(os.path.join(d, 'routes.json'), b'{"app":"%s","version":"%s"}' %
                  (app.encode(), v.encode()))
            imports[rel].append('"@openmrs/%s": "./openmrs-%s-%s/main.%s.js"' %
                                (app, app, v, digest))
            # The next version: some chunks rebuilt, a few with a new hashed name.
            for name in rnd.sample(sorted(chunks), 4):
                chunks[name] = mutate(rnd, chunks[name], 4)
            for name in rnd.sample(sorted(chunks), 2):
                chunks['%d.js' % rnd.randint(10000, 99999)] = mutate(rnd, chunks.pop(name), 2)
            tr = os.path.join(rel, 'openmrs_config/frontend-translations', app)
            for lang in ('en', 'fr', 'rw', 'es'):
                write(os.path.join(tr, lang + '.json'), b'{' + code(rnd, 3000) + b'}'
                      if rel == B and lang == 'en' else b'{"%s": "%s"}' % (app.encode(),
                                                                         lang.encode()))
    for rel in (A, B):
        write(os.path.join(rel, 'frontend/importmap.json'),
              ('{"imports": {' + ', '.join(imports[rel]) + '}}\n').encode())
        write(os.path.join(rel, 'frontend/index.html'), b'<html><body>openmrs</body></html>\n')
        for i in range(6):
            write(os.path.join(rel, 'openmrs_config/licenses/license-%d.txt' % i),
                  random.Random(i).randbytes(1) + code(random.Random(i), 5000))
        write(os.path.join(rel, 'openmrs_config/run.sh'), b'#!/bin/sh\nexit 0\n', 0o755)


def scan(root):
    """path -> (type, mode, content hash) for every entry below root."""
    out = {}
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(d, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if stat.S_ISDIR(st.st_mode):
                out[rel] = ('d', stat.S_IMODE(st.st_mode), '')
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = ('l', 0, os.readlink(p))
            else:
                with open(p, 'rb') as f:
                    out[rel] = ('f', stat.S_IMODE(st.st_mode), hashlib.sha256(f.read()).hexdigest())
    return out


def tree(site, release):
    s, r = scan(site), scan(release)
    identical = sum(1 for p in r if p in s and s[p] == r[p])
    changed = sum(1 for p in r if p in s and s[p] != r[p])
    extra = sum(1 for p in s if p not in r)
    missing = sum(1 for p in r if p not in s)
    have = {v[2] for v in s.values() if v[0] == 'f'}
    send = {v[2] for v in r.values() if v[0] == 'f' and v[2] not in have}
    print(identical, changed, extra, missing, len(send))


if __name__ == '__main__':
    if len(sys.argv) == 2:
        build(sys.argv[1])
    elif len(sys.argv) == 4 and sys.argv[1] == 'tree':
        tree(sys.argv[2], sys.argv[3])
    else:
        sys.exit('usage: adopt-corpus.py DIR | adopt-corpus.py tree SITE RELEASE')
