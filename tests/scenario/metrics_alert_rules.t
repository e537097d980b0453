#!/usr/bin/python3
# timeout: 60
"""The shipped monitoring files, without a relay (#21).

  * contrib/prometheus/danerelay-alerts.yml: `promtool check rules`
    passes; it has the alerts issue #21 lists, each with a summary;
  * `promtool test rules contrib/prometheus/danerelay-alerts.test.yml`
    passes, and it tests every alert of the file (fires on a broken
    relay's series, silent on a healthy one's);
  * contrib/grafana/danerelay.json: a Grafana 10+ dashboard with a
    Prometheus datasource variable that every panel uses, the rows
    traffic, security, queue, latency, inbound and health, and
    expressions on danerelay's metrics only;
  * every danerelay_* metric that the dashboard or the rules use is in
    README.md's metrics table (documented, with its type).
Whether the expressions return data from a real scrape:
metrics_prometheus.t.
"""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402

PROMTOOL = "/usr/bin/promtool"
if not os.access(PROMTOOL, os.X_OK):
    drtest.skip("promtool not installed (prometheus package, "
                "scripts/install-deps --test)")
C = os.path.join(drtest.SRCDIR, "contrib")
RULES = os.path.join(C, "prometheus", "danerelay-alerts.yml")
RTEST = os.path.join(C, "prometheus", "danerelay-alerts.test.yml")
DASH = os.path.join(C, "grafana", "danerelay.json")


def promtool(*args):
    r = subprocess.run([PROMTOOL] + list(args), cwd=os.path.dirname(RULES),
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True,
                       timeout=drtest.scaled(30))
    return r.returncode, r.stdout


rc, out = promtool("check", "rules", RULES)
drtest.check(rc == 0 and "SUCCESS" in out, "promtool check rules: %s" % out)
rc, out = promtool("test", "rules", RTEST)
drtest.check(rc == 0 and "SUCCESS" in out, "promtool test rules: %s" % out)

with open(RULES) as f:
    rules_text = f.read()
alerts = re.findall(r"^\s*- alert: (\w+)$", rules_text, re.M)
want = {"DanerelayDown", "DanerelayQueueOldestMessage",
        "DanerelayDeferredRateHigh", "DanerelayDANEFailureBurst",
        "DanerelayMTASTSFailureBurst", "DanerelayDNSSECBogusBurst",
        "DanerelayTLSRPTSendingFailing", "DanerelaySpoolSpaceLow",
        "DanerelayCertificateExpiring", "DanerelayLoopStall"}
drtest.check(set(alerts) == want and len(alerts) == len(want),
             "the alerts of issue #21: %s" % alerts)
drtest.check(rules_text.count("summary:") == len(alerts),
             "a summary for every alert")
with open(RTEST) as f:
    tested = set(re.findall(r"^\s*alertname: (\w+)$", f.read(), re.M))
drtest.check(tested == set(alerts), "a promtool test for every alert; "
             "untested: %s" % sorted(set(alerts) - tested))

with open(DASH) as f:
    dash = json.load(f)
tv = {v["name"]: v for v in dash["templating"]["list"]}
drtest.check(tv.get("datasource", {}).get("type") == "datasource" and
             tv["datasource"].get("query") == "prometheus",
             "a Prometheus datasource variable")
drtest.check(dash.get("schemaVersion", 0) >= 36, "Grafana 10 schema")
rows = [p["title"].lower() for p in dash["panels"] if p["type"] == "row"]
drtest.check(rows == ["traffic", "security", "queue", "latency", "inbound",
                      "health"], "the rows: %s" % rows)
used = set()
for p in dash["panels"]:
    if p["type"] == "row":
        continue
    drtest.check(p.get("datasource", {}).get("uid") == "${datasource}",
                 "panel %r uses the datasource variable" % p["title"])
    drtest.check(p.get("targets"), "panel %r has queries" % p["title"])
    for t in p.get("targets", []):
        drtest.check(t.get("datasource", {}).get("uid") == "${datasource}",
                     "panel %r: query uses the datasource variable"
                     % p["title"])
        used |= set(re.findall(r"\b(danerelay_\w+)", t["expr"]))
        drtest.check('instance=~"$instance"' in t["expr"],
                     "panel %r: filtered by $instance: %s"
                     % (p["title"], t["expr"]))
used |= set(re.findall(r"\b(danerelay_\w+)", rules_text))
used = {re.sub(r"_(bucket|sum|count)$", "", m) for m in used}

with open(os.path.join(drtest.SRCDIR, "README.md")) as f:
    readme = f.read()
for m in sorted(used):
    drtest.check(re.search(r"^\| `%s(\{[^`]*\})?` \| (counter|gauge|"
                           r"histogram) \|" % m, readme, re.M),
                 "%s is in README.md's metrics table with its type" % m)
drtest.done()
