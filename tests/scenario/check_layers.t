#!/usr/bin/python3
# timeout: 60
"""scripts/check-layers (issue #15): dependencies run one way.

- The tree passes: no module includes the header of a higher layer, every
  file and every included header is in the layer table, no circle of
  includes between modules of one layer.
- The check fails, naming the file, line and header, on a copy of src/
  and include/ with one deliberate violation each: an include of a
  higher layer's header (bounce.c, a service, including queue.h, the
  layer above, the tie issue #15 removed; and stats.c, the base,
  including metrics_http.h), a new module that is not in the table, an
  include of a header that does not exist, and a circle inside one layer
  (route.c including delivery.h, while delivery.c includes route.h).
- Every module in the README's layer table is in the script's table, in
  the same layer, and the other way round.
"""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402

S = drtest.SRCDIR
SCRIPT = os.path.join(S, "scripts", "check-layers")
T = drtest.TMPDIR


def run(top):
    r = subprocess.run([SCRIPT, top], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=drtest.scaled(30))
    drtest.log("check-layers %s -> %d\n%s", top, r.returncode,
               r.stdout.strip())
    return r


r = run(S)
drtest.check(r.returncode == 0 and "check-layers: ok" in r.stdout,
             "the tree keeps the layer rule: %s" % r.stdout[-3000:])


def copy():
    top = os.path.join(T, "tree")
    shutil.rmtree(top, ignore_errors=True)
    for sub in ("src", "include"):
        shutil.copytree(os.path.join(S, sub), os.path.join(top, sub))
    return top


def inject(top, path, line, after=r'#include "util\.h"\n'):
    p = os.path.join(top, path)
    with open(p) as f:
        text = f.read()
    new, n = re.subn(after, lambda m: m.group(0) + line + "\n", text,
                     count=1)
    drtest.check(n == 1, "%s: place for the injected line found" % path)
    with open(p, "w") as f:
        f.write(new)
    lineno = new[:new.index(line)].count("\n") + 1
    return "%s:%d" % (path, lineno)


def expect_fail(what, top, *needles):
    r = run(top)
    drtest.check(r.returncode == 1, "%s: exit 1, got %d" %
                 (what, r.returncode))
    for n in needles:
        drtest.check(n in r.stdout, "%s: output names %r: %s" %
                     (what, n, r.stdout[-2000:]))
    return r


# the unchanged copy passes (the copy itself is not what fails below)
top = copy()
r = run(top)
drtest.check(r.returncode == 0, "an unchanged copy passes: %s" % r.stdout)

# an include of a higher layer: a service including the queue
top = copy()
where = inject(top, "src/bounce.c", '#include "queue.h"')
expect_fail("bounce.c includes queue.h", top, where, "includes queue.h",
            "higher layer")

# the base including the exposition (the metrics tie of issue #15)
top = copy()
where = inject(top, "src/stats.c", '#include "metrics_http.h"')
expect_fail("stats.c includes metrics_http.h", top, where, "includes metrics_http.h")

# a header including a higher one
top = copy()
where = inject(top, "include/policy.h", '#include "resolver.h"',
               after=r'#include "dns\.h"[^\n]*\n')
expect_fail("policy.h includes resolver.h", top, where,
            "includes resolver.h")

# a module that is not in the table
top = copy()
with open(os.path.join(top, "src", "newthing.c"), "w") as f:
    f.write('#include "util.h"\n')
expect_fail("src/newthing.c not in the table", top,
            "src/newthing.c: module newthing is not in the layer table")

# an include of a header that does not exist
top = copy()
where = inject(top, "src/route.c", '#include "nosuch.h"')
expect_fail("route.c includes nosuch.h", top, where, "no include/nosuch.h")

# a circle inside one layer
top = copy()
where = inject(top, "src/route.c", '#include "delivery.h"')
expect_fail("route.c includes delivery.h", top, "circle:",
            "delivery -> route -> delivery", where)

# README's table and the script's table agree
with open(os.path.join(S, "README.md"), encoding="utf-8") as f:
    readme = f.read()
with open(SCRIPT, encoding="utf-8") as f:
    script = f.read()
m = re.search(r"^LAYERS = \[\n(.*?)^\]", script, re.S | re.M)
drtest.check(m is not None, "the script has a LAYERS table")
script_layer = {}
for n, (name, mods) in enumerate(re.findall(
        r'\("(\w+)", """(.*?)"""\)', m.group(1), re.S)):
    for mod in mods.split():
        script_layer[mod] = n
readme_layer = {}
for row in re.finditer(r"^\| L(\d) ([a-z]+) \| ([^|]*)\|", readme, re.M):
    for mod in re.findall(r"`([a-z0-9_]+)`", row.group(3)):
        readme_layer[mod] = int(row.group(1))
drtest.check(len(readme_layer) > 20, "README has the layer table (rows "
             "'| L0 base | `log` ... |'): %d modules" % len(readme_layer))
drtest.check(readme_layer == script_layer,
             "README and scripts/check-layers have the same table: only in "
             "README %s, only in the script %s, other layer %s" % (
                 sorted(set(readme_layer) - set(script_layer)),
                 sorted(set(script_layer) - set(readme_layer)),
                 sorted(k for k in readme_layer if k in script_layer and
                        readme_layer[k] != script_layer[k])))
# every module of the tree is named in the README's table
mods = {os.path.splitext(f)[0] for sub in ("src", "include")
        for f in os.listdir(os.path.join(S, sub))}
drtest.check(mods <= set(readme_layer), "README's table names every "
             "module: missing %s" % sorted(mods - set(readme_layer)))
drtest.done()
