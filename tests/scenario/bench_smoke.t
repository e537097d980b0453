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
# relays, each one logged as sent with DANE-verified TLS, that the fsync
# count allows a flush before every 250, that every phase left its figures in
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
LATENCY_N = 20          # paced messages after the N (--latency-messages)
SESSIONS = 10           # concurrent client sessions (--sessions)
FSYNC_N = 100           # messages of bench/run's fsync phase under --quick
argv = [run, "--quick", "--builddir", drtest.BUILDDIR, "--workdir", work,
        "--out", out, "--messages", str(N), "--sizes", "4096", "--idle",
        "100", "--max-sessions", "300", "--postfix-max-sessions", "100",
        "--latency-messages", str(LATENCY_N), "--sessions", str(SESSIONS),
        "--no-postfix-reuse"]
# bench/run gets SIGTERM first, so it deletes its network namespace and
# stops its daemons; SIGKILL only if it does not end within a minute
p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                     stderr=subprocess.STDOUT, universal_newlines=True)
try:
    stdout, _ = p.communicate(timeout=drtest.scaled(360))
except BaseException:
    p.terminate()
    try:
        stdout, _ = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        stdout, _ = p.communicate()
    print(stdout, flush=True)
    raise
print(stdout, flush=True)
if p.returncode == 77:
    drtest.skip("bench/run skipped: " + stdout.strip().splitlines()[-1]
                if stdout.strip() else "bench/run skipped")
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
    # every message of the run (N, then the paced ones) delivered, and
    # every delivery over DANE-verified TLS
    check(t.get("log_sent") == N + LATENCY_N and
          t.get("log_authenticated") == N + LATENCY_N,
          "%s: all %d deliveries logged as sent with DANE-verified TLS "
          "(sent %s, verified %s)" % (relay, N + LATENCY_N,
                                      t.get("log_sent"),
                                      t.get("log_authenticated")))
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
    # A 250 after DATA means the message is on disk.  A client session
    # waits for that 250 before its next message, so one flush can cover
    # at most one message per session: at least FSYNC_N / SESSIONS calls.
    # Postfix flushes each queue file itself: at least one per message.
    fpm = R.get("fsyncs_per_msg", {}).get(relay, 0)
    least = 1.0 if relay == "Postfix" else 1.0 / SESSIONS
    check(fpm >= least, "%s: %.2f fsync calls per message, at least %.2f "
          "(%d messages over %d sessions)" % (relay, fpm, least, FSYNC_N,
                                              SESSIONS))
# the run with DKIM signing on (issue #16): every message arrived, and its
# CPU per message is in the report
k = R.get("relays", {}).get("danerelay-dkim", {}).get("4096", {})
check(k.get("arrived") == N and k.get("cpu_ms_per_msg", 0) > 0,
      "danerelay-dkim: %s of %d arrived, CPU per message %s" % (
          k.get("arrived"), N, k.get("cpu_ms_per_msg")))
check(R.get("dkim_signed") == N, "danerelay-dkim: %s of %d messages "
      "signed twice" % (R.get("dkim_signed"), N))
# the run with OpenDKIM as the one milter (issue #25): every message
# arrived, msg/s and CPU per message (OpenDKIM's included) in the report
mi = R.get("relays", {}).get("danerelay-milter", {}).get("4096", {})
check(mi.get("arrived") == N and mi.get("cpu_ms_per_msg", 0) > 0 and
      R.get("milter_cpu_s", 0) > 0,
      "danerelay-milter: %s of %d arrived, CPU per message %s (OpenDKIM "
      "%ss)" % (mi.get("arrived"), N, mi.get("cpu_ms_per_msg"),
                R.get("milter_cpu_s")))
check(R.get("fsync", {}).get("1", {}).get("commits_per_s", 0) > 0,
      "fsyncs/s measured")
check(R.get("tls", {}).get("handshakes", 0) > 0 and
      R["tls"].get("failed") == 0, "TLS handshakes measured (DANE ok)")
if drtest.which("perf"):
    check("perf_dso" in R.get("profile", {}),
          "profile phase ran: %s" % R.get("profile", {}).get("error"))
else:
    check("error" in R.get("profile", {}), "profile phase ran (no perf)")

try:
    with open(out) as f:
        md = f.read()
except OSError:
    md = ""
check("| **end-to-end msg/s, 4 KiB** |" in md, "report has the msg/s row")
check("danerelay/Postfix" in md, "report has the ratio column")
check("| CPU time per message with DKIM signing (RSA-2048 + Ed25519), 4 KiB |"
      in md, "report has the CPU per message with DKIM signing")
check("| CPU time per message with OpenDKIM as the one milter (danerelay "
      "+ opendkim), 4 KiB |" in md and "| msg/s with OpenDKIM as the one "
      "milter, 4 KiB |" in md, "report has the milter figures")
check("## Machine" in md and "nproc" in md, "report describes the machine")
# the charts beside the report, embedded in it (bench/report.py)
for n in ("throughput.svg", "latency.svg"):
    path = os.path.join(os.path.dirname(out), "charts", n)
    check(os.path.exists(path) and os.path.getsize(path) > 1000,
          "chart %s written" % path)
    check("](charts/%s)" % n in md, "report embeds charts/%s" % n)
drtest.done()
