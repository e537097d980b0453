#!/usr/bin/python3
# timeout: 60
"""bench/report.py's charts (#21) on a tiny results fixture, no bench run.

charts() writes throughput.svg (a bar per relay and size, a point per
round), latency.svg (p50 and p99, paced and under load) and scaling.svg
(workers = N against workers = 1, only when both were measured) as
well-formed SVG that names the relays, sizes and percentiles; the same
results give the same bytes; render() embeds them below the tables,
which stay.  The full harness is bench_smoke.t.
"""
import copy
import os
import re
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import drtest  # noqa: E402
from drtest import check  # noqa: E402

try:
    import matplotlib  # noqa: F401
except ImportError:
    drtest.skip("python3-matplotlib not installed (scripts/install-deps "
                "--test)")
sys.path.insert(0, os.path.join(drtest.SRCDIR, "bench"))
import report  # noqa: E402


def run(relay_rounds, workers=2):
    """A results dict: msgs_per_s per round -> the median's neighbours."""
    rel = {}
    for relay, per_size in relay_rounds.items():
        rel[relay] = {}
        for size, rounds in per_size.items():
            rs = [{"msgs_per_s": v,
                   "latency_paced": {"p50_ms": 0.5 + i, "p99_ms": 4.0 + i},
                   "latency_load": {"p50_ms": 3.0 + i, "p99_ms": 40.0 + i}}
                  for i, v in enumerate(rounds)]
            rel[relay][size] = {
                "msgs_per_s": sorted(rounds)[len(rounds) // 2],
                "workers": workers if relay == "danerelay" else None,
                "latency_paced": {"p50_ms": 0.8, "p99_ms": 4.5},
                "latency_load": {"p50_ms": 3.5, "p99_ms": 45.0},
                "rounds": rs}
    return {"args": {"sizes": [4096, 102400], "quick": False,
                     "sessions": 10, "messages": 100, "latency_rate": 25.0,
                     "latency_messages": 10, "idle": 10, "max_sessions": 10,
                     "postfix_max_sessions": 10},
            "machine": {"date": "2026-12-06 12:00 UTC", "cpu": "test",
                        "nproc": 2, "mem": "1G", "disk": "d", "mount": "m",
                        "os": "o", "kernel": "k", "danerelay": "x",
                        "cflags": "-O2", "postfix": "3", "openssl": "3",
                        "unbound": "1", "loadavg_start": ["0", "0", "0"]},
            "scaling_size": 4096, "relays": rel}


R = run({"danerelay": {"4096": [2900.0, 2800.0, 3000.0],
                       "102400": [760.0, 770.0, 750.0]},
         "Postfix": {"4096": [230.0, 235.0, 228.0],
                     "102400": [190.0, 195.0, 192.0]},
         "danerelay-w1": {"4096": [3300.0, 3310.0, 3290.0]}})
out = os.path.join(drtest.TMPDIR, "charts")
cs = report.charts(R, out)
names = [n for _, n in cs]
check(names == ["throughput.svg", "latency.svg", "scaling.svg"],
      "three charts: %s" % names)


def svg(name):
    path = os.path.join(out, name)
    with open(path, "rb") as f:
        data = f.read()
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        check(False, "%s is not well-formed XML: %s" % (name, e))
        return data.decode(), None
    check(root.tag.endswith("svg"), "%s is an SVG document" % name)
    return data.decode(), root


def points(root):
    """Round points drawn: matplotlib's <use> of the marker, one per
    point, in the groups report.py names "rounds-..." (gid)."""
    return sum(len([u for u in g.iter() if u.tag.endswith("use")])
               for g in root.iter() if g.tag.endswith("g") and
               g.get("id", "").startswith("rounds-"))


text, root = svg("throughput.svg")
for word in ("danerelay", "Postfix", "4 KiB", "100 KiB", "each round",
             "messages/s"):
    check(word in text, "throughput.svg names %r" % word)
check("danerelay-w1" not in text, "throughput.svg: no workers = 1 bar")
# 2 relays x 2 sizes x 3 rounds, and the legend's sample point
check(root is not None and points(root) == 12,
      "throughput.svg: a point for each of 12 rounds, got %s"
      % (points(root) if root is not None else None))

text, root = svg("latency.svg")
for word in ("danerelay p50", "danerelay p99", "Postfix p99", "paced",
             "under full load"):
    check(word in text, "latency.svg names %r" % word)

text, root = svg("scaling.svg")
for word in ("workers = 1", "workers = 2", "Scaling: 0.88x"):
    check(word in text, "scaling.svg names %r" % word)
check(root is not None and points(root) == 6,
      "scaling.svg: a point for each of 6 rounds, got %s"
      % (points(root) if root is not None else None))

# one more round: one more point; the same results: the same bytes
with open(os.path.join(out, "throughput.svg"), "rb") as f:
    before = f.read()
report.charts(R, out)
with open(os.path.join(out, "throughput.svg"), "rb") as f:
    check(f.read() == before, "the same results draw the same SVG")
R4 = copy.deepcopy(R)
R4["relays"]["Postfix"]["4096"]["rounds"].append({"msgs_per_s": 231.0})
out4 = os.path.join(drtest.TMPDIR, "charts4")
report.charts(R4, out4)
root = ET.parse(os.path.join(out4, "throughput.svg")).getroot()
check(points(root) == 13, "a fourth Postfix round: 13 points, got %d"
      % points(root))

# without workers = 1: no scaling chart
R2 = copy.deepcopy(R)
del R2["relays"]["danerelay-w1"]
cs2 = report.charts(R2, os.path.join(drtest.TMPDIR, "charts2"))
check([n for _, n in cs2] == ["throughput.svg", "latency.svg"],
      "no scaling chart without workers = 1: %s" % [n for _, n in cs2])

# the page: the tables stay, the charts below them
md = report.render(R, [(t, "charts/" + n) for t, n in cs])
check("| **end-to-end msg/s, 4 KiB** (median; each round) |" in md and
      "### All figures" in md,
      "render keeps the tables")
emb = re.findall(r"^!\[[^\]]+\]\((charts/[\w.]+\.svg)\)$", md, re.M)
check(emb == ["charts/throughput.svg", "charts/latency.svg",
              "charts/scaling.svg"], "render embeds the charts: %s" % emb)
check(md.index("### All figures") < md.index("### Charts"),
      "the charts come after the tables")
check("### Charts" not in report.render(R), "no charts: no section")
drtest.done()
