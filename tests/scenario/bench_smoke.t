#!/usr/bin/python3
# bench_smoke.t - bench/run works (issue #8): a tiny `bench/run --quick`.
#
# timeout: 420
# exclusive
#
# Runs the benchmark harness end to end with small counts (200 messages of
# 4 KiB, 100 idle sessions, 300 concurrent) in its own network namespace:
# signed DNS world, the C sink, danerelayd and a private Postfix, both
# DANE-enforcing.  Checks that every message reached the sink through both
# relays with DANE-verified TLS, that every phase left its figures in
# results.json and that the Markdown report has the comparison table.  The
# figures themselves are not judged (not a timed test); they are printed.
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import drtest  # noqa: E402
from drtest import check  # noqa: E402

if os.geteuid() != 0:
    drtest.skip("bench/run needs root (network namespace)")
os.chmod(drtest.TMPDIR, 0o755)     # danerelayd's own user reads below it
run = os.path.join(drtest.SRCDIR, "bench", "run")
work = os.path.join(drtest.TMPDIR, "bench")
out = os.path.join(drtest.TMPDIR, "RESULTS.md")
N = 200
p = subprocess.run(
    [run, "--quick", "--builddir", drtest.BUILDDIR, "--workdir", work,
     "--out", out, "--messages", str(N), "--sizes", "4096", "--idle", "100",
     "--max-sessions", "300", "--postfix-max-sessions", "100",
     "--latency-messages", "20", "--no-postfix-reuse"],
    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT, universal_newlines=True,
    timeout=drtest.scaled(360))
print(p.stdout, flush=True)
if p.returncode == 77:
    drtest.skip("bench/run skipped: " + p.stdout.strip().splitlines()[-1]
                if p.stdout.strip() else "bench/run skipped")
check(p.returncode == 0, "bench/run --quick exit status %d" % p.returncode)

try:
    with open(os.path.join(work, "results.json")) as f:
        R = json.load(f)
except (OSError, ValueError) as e:
    drtest.fail("no results.json: %s" % e)

check(R.get("errors") == [], "no errors: %s" % R.get("errors"))
check(R.get("sink", {}).get("4096", {}).get("msgs_per_s", 0) > 0,
      "sink capacity measured")
for relay in ("danerelay", "Postfix"):
    r = R.get("relays", {}).get(relay, {})
    t = r.get("4096", {})
    check(t.get("arrived") == N, "%s: %d of %d messages arrived" % (
        relay, t.get("arrived", 0), N))
    check(t.get("msgs_per_s", 0) > 0, "%s: msg/s" % relay)
    check(t.get("log_sent", 0) >= N and t.get("log_authenticated", 0) >= 1,
          "%s: deliveries logged as sent with DANE-verified TLS (%s, %s)"
          % (relay, t.get("log_sent"), t.get("log_authenticated")))
    check(t.get("latency_load", {}).get("n") == N,
          "%s: a latency for every message" % relay)
    check(t.get("latency_paced", {}).get("p99_ms") is not None,
          "%s: paced latency" % relay)
    check(t.get("cpu_ms_per_msg", 0) > 0, "%s: CPU per message" % relay)
    check(t.get("peak_rss_kb", 0) > 0, "%s: peak RSS" % relay)
    s = r.get("sessions", {})
    check(s.get("idle", {}).get("ok") == 100, "%s: 100 idle sessions" % relay)
    check(s.get("max_ok") is True, "%s: concurrent sessions held: %s" % (
        relay, s.get("max")))
    check(R.get("fsyncs_per_msg", {}).get(relay, 0) > 0,
          "%s: fsyncs per message counted" % relay)
check(R.get("fsync", {}).get("1", {}).get("commits_per_s", 0) > 0,
      "fsyncs/s measured")
check(R.get("tls", {}).get("handshakes", 0) > 0 and
      R["tls"].get("failed") == 0, "TLS handshakes measured (DANE ok)")
check("perf_dso" in R.get("profile", {}) or "error" in R.get("profile", {}),
      "profile phase ran")

try:
    with open(out) as f:
        md = f.read()
except OSError:
    md = ""
check("| **end-to-end msg/s, 4 KiB** |" in md, "report has the msg/s row")
check("danerelay/Postfix" in md, "report has the ratio column")
check("## Machine" in md and "nproc" in md, "report describes the machine")
drtest.done()
