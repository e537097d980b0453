#!/usr/bin/python3
# timeout: 240
"""The shipped dashboard and alert rules against a real Prometheus (#21).

A signed DNS world (world.py) with DANE successes, a TLSA mismatch, a
bogus MX RRset, a deferral (451), a bounce (550) and an MTA-STS
(enforce) delivery; one danerelayd with
metrics_listen and inbound STARTTLS (for the certificate expiry gauge).
A private Prometheus (Debian's package) on this test's loopback address,
storage in the test's directory, configured by README's snippet
"prometheus-scrape" (the interval 1 s, the rules of the source tree):
it scrapes the relay as job "danerelay" and loads
contrib/prometheus/danerelay-alerts.yml.  After
the traffic, through Prometheus' HTTP API:

  * every expression of contrib/grafana/danerelay.json (panels' targets,
    with $instance as ".*" and $__rate_interval as a window; the
    instance variable's label_values() query) parses and returns at
    least one series;
  * every alert rule is loaded and evaluated without error; its
    expression parses, and each side of its comparison returns at least
    one series (the whole expression is empty while the alert is
    silent);
  * the alerts that must see this relay (a certificate valid for 2
    days, half the attempts deferred) are pending, the others silent;
  * the traffic adds no series (bounded labels);
  * the new metrics say what happened: deliveries by level "dane", the
    latency histograms have real (finite) quantiles, handshakes counted.

`promtool check rules` and `promtool test rules` run in
metrics_alert_rules.t (no world needed).
"""
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import world  # noqa: E402
from world import MX  # noqa: E402

PROM = "/usr/bin/prometheus"
if not os.access(PROM, os.X_OK):
    drtest.skip("prometheus not installed (scripts/install-deps --test)")
DASH = os.path.join(drtest.SRCDIR, "contrib", "grafana", "danerelay.json")
RULES = os.path.join(drtest.SRCDIR, "contrib", "prometheus",
                     "danerelay-alerts.yml")
WINDOW = "5m"           # for $__rate_interval: the whole test fits in it

w = world.World()
w.dest("ee.test", mx=[MX("mx", 11)])                         # DANE-EE
w.dest("mismatch.test", mx=[MX("mx", 12, tlsa="3 1 1 decoy")])
w.dest("bogus.test", mx=[MX("mx", 13)], bogus_mx=True)
w.dest("later.test", mx=[MX("mx", 14, rules=["RCPT||0|451 4.3.0 later"])])
w.dest("perm.test", mx=[MX("mx", 15, rules=["RCPT||0|550 5.1.1 nobody"])])
w.dest("sts.test", mx=[MX("mx", 16, cert="ca", tlsa=None)], secure=False,
       mta_sts=world.policy("enforce", ["mx.sts.test"]))       # MTA-STS
w.start()
T = w.tmp

crt, key = drtest.make_cert(T, "relay.dr-test.example")
mhost = drtest.ip(2)
mport = drtest.free_port(mhost)
d = w.daemon(min_backoff="1h", tls_cert_file=crt, tls_key_file=key,
             metrics_listen="%s:%d" % (mhost, mport))

# The private Prometheus.
phost = drtest.ip(3)
pport = drtest.free_port(phost)
PURL = "http://%s:%d" % (phost, pport)
pdir = os.path.join(T, "prometheus")
os.makedirs(os.path.join(pdir, "data"), exist_ok=True)
# README's prometheus.yml as written, with this test's addresses, a
# scrape and rule evaluation every second and the rules of the tree.
with open(os.path.join(pdir, "prometheus.yml"), "w") as f:
    f.write(drtest.subst(drtest.snippet("prometheus-scrape"), [
        ("15s", "1s"),
        ("/usr/local/share/danerelay/prometheus/danerelay-alerts.yml", RULES),
        ("127.0.0.1:9125", "%s:%d" % (mhost, mport))]))
plog = open(os.path.join(pdir, "prometheus.log"), "w")
prom = subprocess.Popen(
    [PROM, "--config.file=" + os.path.join(pdir, "prometheus.yml"),
     "--storage.tsdb.path=" + os.path.join(pdir, "data"),
     "--web.listen-address=%s:%d" % (phost, pport),
     "--storage.tsdb.retention.time=1h", "--log.level=warn"],
    stdin=subprocess.DEVNULL, stdout=plog, stderr=subprocess.STDOUT)


def stop_prom():
    if prom.poll() is None:
        prom.terminate()
        try:
            prom.wait(timeout=10)
        except subprocess.TimeoutExpired:
            prom.kill()
            prom.wait()


drtest.at_done(stop_prom)


def prom_log():
    with open(os.path.join(pdir, "prometheus.log")) as f:
        return f.read()[-2000:]


def api(path, **params):
    """GET PURL/api/v1/path -> (status, data or error text)."""
    url = PURL + "/api/v1/" + path
    if params:
        url += "?" + urllib.parse.urlencode(params, doseq=True)
    try:
        with urllib.request.urlopen(url, timeout=drtest.scaled(10)) as r:
            body = json.load(r)
    except urllib.error.HTTPError as e:
        body = json.load(e)
    except (urllib.error.URLError, ConnectionError, OSError) as e:
        return "error", str(e)
    if body.get("status") != "success":
        return "error", "%s: %s" % (body.get("errorType"), body.get("error"))
    return "success", body["data"]


def ready():
    if prom.poll() is not None:
        drtest.fail("prometheus exited (%s): %s" % (prom.returncode,
                                                    prom_log()))
    try:
        with urllib.request.urlopen(PURL + "/-/ready", timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, ConnectionError, OSError):
        return False


drtest.wait_for(ready, 30, "prometheus ready on %s" % PURL, interval=0.2)


def query(expr):
    st, data = api("query", query=expr)
    if st != "success":
        return None, data
    return data["result"], None


def scalar(expr):
    res, _ = query(expr)
    return float(res[0]["value"][1]) if res else None


drtest.wait_for(lambda: (scalar('up{job="danerelay"}') or 0) == 1, 30,
                "prometheus scraping the relay (up == 1)", interval=0.2)

# Bounded labels: the traffic below (six domains, eight recipients)
# adds no series; every label value comes from a fixed table.
NSERIES = 'count({__name__=~"danerelay_.*"})'
n_before = scalar(NSERIES)

# The traffic.
for i in range(3):
    w.send(d, ["user%d@ee.test" % i])
w.send(d, ["user@mismatch.test"])
w.send(d, ["user@bogus.test"])
w.send(d, ["user@later.test"])
w.send(d, ["user@perm.test"])
w.send(d, ["user@sts.test"])
for i in range(3):
    w.expect(d, "ee.test", "sent", rcpt="user%d@ee.test" % i,
             auth="dane-ee", at="mx")
w.expect(d, "mismatch.test", "deferred")
w.expect(d, "bogus.test", "deferred")
w.expect(d, "later.test", "deferred", why="451")
w.expect(d, "perm.test", "bounced", why="550")
w.expect(d, "sts.test", "sent", auth="webpki", at="mx")

# Prometheus has scraped the end state (the bounce's DSN to the
# sender's domain, which does not resolve, is one more deferral).
drtest.wait_for(
    lambda: scalar("sum(danerelay_recipients_bounced_total)") == 1 and
    (scalar("sum(danerelay_recipients_deferred_total)") or 0) >= 3 and
    scalar('sum(danerelay_recipients_by_level_total{outcome="delivered"})')
    == 4, 30, "the outcomes in Prometheus", interval=0.2)
time.sleep(2.5)         # a few more samples for rate() and increase()


n_after = scalar(NSERIES)
drtest.check(n_before is not None and n_before == n_after and
             100 < n_after < 200, "the same danerelay_* series before and "
             "after the traffic: %s, %s" % (n_before, n_after))


def returns_series(expr, what):
    res, err = query(expr)
    if not drtest.check(res is not None, "%s: %s does not evaluate: %s"
                        % (what, expr, err)):
        return None
    drtest.check(len(res) >= 1, "%s: %s returns no series" % (what, expr))
    return res


# The dashboard.
with open(DASH) as f:
    dash = json.load(f)
exprs = []
for p in dash["panels"]:
    for t in p.get("targets", []):
        exprs.append((p["title"], t["expr"]))
drtest.check(len(exprs) >= 20, "dashboard expressions: %d" % len(exprs))
for title, e in exprs:
    sub = e.replace("$__rate_interval", WINDOW).replace("$instance", ".*")
    drtest.check("$" not in sub, "%s: no variable left in %s" % (title, sub))
    returns_series(sub, "panel %r" % title)
for v in dash["templating"]["list"]:
    if v["type"] != "query":
        continue
    m = re.fullmatch(r"label_values\((\w+), *(\w+)\)", v["definition"])
    if not drtest.check(m is not None, "variable %s: label_values(metric, "
                        "label), got %r" % (v["name"], v["definition"])):
        continue
    st, vals = api("label/%s/values" % m.group(2),
                   **{"match[]": m.group(1)})
    drtest.check(st == "success" and vals == ["%s:%d" % (mhost, mport)],
                 "variable %s: the relay's instance, got %s" % (v["name"],
                                                                vals))

# Panels with real data, not only series: quantiles are finite.
for e, what in (
        ("histogram_quantile(0.5, sum by (le) (rate(danerelay_delivery_"
         "latency_seconds_bucket{outcome=\"delivered\"}[%s])))" % WINDOW,
         "delivered latency p50"),
        ("histogram_quantile(0.99, sum by (le) (rate(danerelay_delivery_"
         "latency_seconds_bucket{outcome=\"bounced\"}[%s])))" % WINDOW,
         "bounced latency p99"),
        ("histogram_quantile(0.5, sum by (le) (rate(danerelay_tls_"
         "handshake_seconds_bucket[%s])))" % WINDOW, "handshake p50")):
    v = scalar(e)
    drtest.check(v is not None and 0 < v < 60, "%s is finite: %s" % (what, v))
drtest.check(scalar('danerelay_recipients_by_level_total{level="dane",'
                    'outcome="delivered"}') == 3, "3 delivered at level dane")
drtest.check(scalar('danerelay_recipients_by_level_total{level="dane",'
                    'outcome="bounced"}') == 1, "1 bounced at level dane")
drtest.check(scalar('danerelay_recipients_by_level_total{level="mta-sts",'
                    'outcome="delivered"}') == 1, "1 delivered at level "
             "mta-sts")
drtest.check((scalar('danerelay_tls_handshake_seconds_count') or 0) >= 4,
             "handshakes counted")
exp = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", crt],
                     capture_output=True, text=True).stdout
exp = time.mktime(time.strptime(exp.strip().split("=", 1)[1],
                                "%b %d %H:%M:%S %Y %Z")) - time.timezone
drtest.check(scalar("danerelay_smtpd_certificate_expiry_seconds") == exp,
             "certificate expiry %s is the certificate's notAfter %s"
             % (scalar("danerelay_smtpd_certificate_expiry_seconds"), exp))
drtest.check((scalar("danerelay_spool_free_bytes") or 0) > 0,
             "spool free bytes")


# The alert rules: loaded and evaluated by Prometheus without error.
def rules_loaded():
    st, data = api("rules")
    if st != "success":
        return None
    rules = [r for g in data["groups"] for r in g["rules"]]
    if not rules or any(r.get("lastEvaluation", "").startswith("0001")
                        for r in rules):
        return None
    return rules


rules = drtest.wait_for(rules_loaded, 20, "the alert rules evaluated",
                        interval=0.2)
with open(RULES) as f:
    nalerts = len(re.findall(r"^\s*- alert: ", f.read(), re.M))
drtest.check(len(rules) == nalerts and nalerts >= 8,
             "%d rules loaded, %d in the file" % (len(rules), nalerts))


def operands(expr):
    """The sides of the top-level comparisons (and/or/unless) of a PromQL
    expression: outside (), {}, [] and strings."""
    parts, depth, cur, i, q = [], 0, "", 0, None
    while i < len(expr):
        c = expr[i]
        if q:
            cur += c
            if c == "\\":
                cur += expr[i + 1]
                i += 1
            elif c == q:
                q = None
        elif c in "\"'":
            q = c
            cur += c
        elif c in "([{":
            depth += 1
            cur += c
        elif c in ")]}":
            depth -= 1
            cur += c
        elif depth == 0 and expr[i:i + 2] in ("==", "!=", ">=", "<="):
            parts.append(cur)
            cur = ""
            i += 1
        elif depth == 0 and c in "<>":
            parts.append(cur)
            cur = ""
        elif depth == 0 and re.match(r"\s(and|or|unless)\s", expr[i:]):
            m = re.match(r"\s(and|or|unless)\s", expr[i:])
            parts.append(cur)
            cur = ""
            i += len(m.group(0)) - 1
        else:
            cur += c
        i += 1
    parts.append(cur)
    return [p.strip() for p in parts]


for r in rules:
    drtest.check(r.get("health") == "ok" and not r.get("lastError"),
                 "rule %s evaluates: %s %s" % (r["name"], r.get("health"),
                                              r.get("lastError")))
    res, err = query(r["query"])
    drtest.check(res is not None, "rule %s: expression does not evaluate: "
                 "%s" % (r["name"], err))
    sides = [s for s in operands(r["query"])
             if not re.fullmatch(r"[\d\s.*+/()-]+", s)]
    drtest.check(len(sides) >= 1, "rule %s: a side to evaluate in %s"
                 % (r["name"], r["query"]))
    for s in sides:
        returns_series(s, "rule %s" % r["name"])
    # this relay's inbound certificate is valid for 2 days, and 4 of 8
    # attempts were deferred (the DSN too): those two are pending (their
    # "for:" not yet over); every other alert is silent
    want = "pending" if r["name"] in ("DanerelayCertificateExpiring",
                                      "DanerelayDeferredRateHigh") \
        else "inactive"
    if r["name"] == "DanerelayLoopStall":
        # it fires (no "for:") when the relay's own histogram, as
        # scraped, holds a stall over 100 ms: a slow build (ThreadSanitizer
        # makes the loops many times slower) or a starved machine does
        # stall; the alert must then fire, and stay silent otherwise
        stalls = scalar('sum(danerelay_loop_stall_seconds_bucket'
                        '{le="+Inf"}) - sum(danerelay_loop_stall_seconds_'
                        'bucket{le=~"0.10*"})')
        drtest.log("loop stalls over 100 ms scraped: %s", stalls)
        if stalls and r.get("state") != "inactive":
            want = "firing"     # (a stall after the last evaluation: not
                                # yet seen by the rule, still inactive)
    drtest.check(r.get("state") == want, "rule %s: %s expected, state %s"
                 % (r["name"], want, r.get("state")))

stop_prom()
drtest.check(prom.returncode == 0, "prometheus stopped cleanly (exit %s): %s"
             % (prom.returncode, "" if prom.returncode == 0 else prom_log()))
w.stop()
drtest.done()
