#!/usr/bin/python3
# timeout: 240
"""Several relays sharing their state on PostgreSQL (issue #19 acceptance).

A private PostgreSQL server (lib/pgrig.py: initdb in a temporary
directory, a Unix socket only), `danerelay db init`, and two danerelayd
instances d1, d2 with state_backend = that server, tlsrpt = yes and
mta_sts = yes, in a world (lib/world.py) with a DANE destination
(dane.test) and an MTA-STS one (sts.test, policy on the world's nginx);
both publish "_smtp._tls" with rua = an HTTPS receiver in this test.

  0. `db init`, `db migrate` (nothing to do; an old schema is refused
     until it migrates it, version 1 -> 2), `db version`;

  1. deliveries through both relays to both destinations;
  2. MTA-STS: the policy is fetched once for the fleet (nginx's access
     log), and d2 enforces the policy d1 fetched: a policy change with
     a new id, refreshed on d1 (`mta-sts refresh`), is what d2 shows;
  3. `tlsrpt show` on either relay shows the summed counts;
  4. `tlsrpt send` on d1 while the receiver holds every POST unanswered;
     meanwhile d2's `tlsrpt send` finds the sender's lock taken and sends
     nothing; d1 is killed (SIGKILL) in the middle; d2's `tlsrpt send`
     then sends each report once, with the summed counts; a second send
     on d2 and one on the restarted d1 send nothing more;
  5. PostgreSQL stopped: deliveries through both relays go on; started
     again: their counts arrive (`tlsrpt show`).
"""
import atexit
import datetime
import gzip
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import nginx  # noqa: E402
import pgrig  # noqa: E402
import world  # noqa: E402
from world import MX  # noqa: E402

# Midnight guard (as tlsrpt.t): every session of the test is on day0.
_now = datetime.datetime.now(datetime.timezone.utc)
_left = 86400 - (_now.hour * 3600 + _now.minute * 60 + _now.second)
if _left < drtest.scaled(150):
    drtest.log("%d s to UTC midnight: waiting for the new day", _left)
    time.sleep(_left + 2)

pg = pgrig.Postgres()
pg.start()

w = world.World()
https_ip = drtest.ip(9)
https_port = drtest.free_port(https_ip)
RUA = "https://rpt.reports.test:%d/v1/tlsrpt" % https_port
STS_ID = ["20240101"]
STS = ("version: STSv1\r\nmode: enforce\r\nmx: mx.sts.test\r\n"
       "max_age: 86400\r\n")
w.dest("dane.test", mx=[MX("mx", 11)], tlsrpt=RUA)
# the policy is served slowly (about 2 s), so both relays want it while
# the first fetch is still going: only the fetch lease keeps it to one
web = w.nginx()
web.set_policy("mta-sts.sts.test", STS)
w.dest("sts.test", mx=[MX("mx", 12, cert="ca", tlsa=None)], secure=False,
       mta_sts={nginx.POLICY_PATH: "charset utf-8; types { } default_type "
                "text/plain; limit_rate 32; alias %s;" %
                web._policy_file("mta-sts.sts.test")},
       sts_txt=STS_ID, tlsrpt=RUA, ttl=1)
w.dest("rpt.reports.test", mx=[], records=["@ A %s" % https_ip])

# ---- the report receiver: every POST, and a switch that holds them -------
posts = []
posts_lock = threading.Lock()
hold = threading.Event()        # set: POSTs wait, never answered


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if 0 < n < (1 << 20) else b""
        rec = {"body": body, "code": None}
        with posts_lock:
            posts.append(rec)
        if hold.is_set():
            # the sender dies while waiting; nothing is answered
            while hold.is_set():
                time.sleep(0.05)
            self.close_connection = True
            return
        rec["code"] = 200
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()

    def log_message(self, fmt, *args):
        drtest.log("https receiver: " + fmt, *args)


httpd = w.https_server(https_ip, https_port, Handler, "rpt.reports.test")


def stop_httpd():
    hold.clear()
    httpd.shutdown()
    httpd.server_close()


atexit.register(stop_httpd)


def answered():
    """{policy-domain: [report json]} of the POSTs answered 200."""
    out = {}
    with posts_lock:
        done = [p for p in posts if p["code"] == 200]
    for p in done:
        rep = json.loads(gzip.decompress(p["body"]))
        out.setdefault(rep["policies"][0]["policy"]["policy-domain"],
                       []).append(rep)
    return out


# ---- the fleet -------------------------------------------------------------
w.start()
opts = dict(min_backoff="1h", tlsrpt="yes", state_backend=pg.uri)
d1 = w.daemon("d1", start=False, **opts)
r = d1.cli("db", "init")
drtest.check(r.returncode == 0 and "schema version 0 -> 2" in r.stdout,
             "db init: %d %s%s" % (r.returncode, r.stdout, r.stderr))
r = d1.cli("db", "migrate")
drtest.check(r.returncode == 0 and "nothing to do" in r.stdout,
             "db migrate on a current schema: %s%s" % (r.stdout, r.stderr))
# a schema of version 1 (before the MTA-STS tables): refused until
# `db migrate` brings it to 2
pg.sql("DROP TABLE mta_sts_policy, mta_sts_fetch; "
       "UPDATE danerelay_schema SET version = 1")
r = d1.cli("tlsrpt", "show")
drtest.check(r.returncode == 1 and "schema version 1, this danerelay needs "
             "2: run `danerelay db migrate`" in r.stderr,
             "an old schema is refused: %s%s" % (r.stdout, r.stderr))
r = d1.cli("db", "init")
drtest.check(r.returncode == 1 and "already there" in r.stderr,
             "db init on an existing schema: %s" % r.stderr)
r = d1.cli("db", "migrate")
drtest.check(r.returncode == 0 and "schema version 1 -> 2" in r.stdout,
             "db migrate 1 -> 2: %s%s" % (r.stdout, r.stderr))
drtest.check(pg.sql("SELECT count(*) FROM mta_sts_policy").strip() == "0",
             "the migration made the MTA-STS tables")
r = d1.cli("db", "version")
drtest.check(r.returncode == 0 and "schema version 2" in r.stdout,
             "db version: %s%s" % (r.stdout, r.stderr))
d1.start()
d2 = w.daemon("d2", **opts)


def today():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")


day0 = today()


def deliver(d, dom, n, tag):
    for i in range(n):
        w.send(d, "user@" + dom, subject="%s %s %d" % (tag, dom, i))


def sent(d, dom):
    return len([x for x in w.outcomes(d).get("user@" + dom, [])
                if "status=sent" in x])


def expect_sent(d, dom, n):
    drtest.wait_for(lambda: sent(d, dom) >= n, 60,
                    "%s: %d message(s) to %s sent" % (d.name, n, dom))
    drtest.check(sent(d, dom) == n, "%s: %s: %d sent, expected %d" %
                 (d.name, dom, sent(d, dom), n))


# 1. deliveries through both relays
deliver(d1, "dane.test", 2, "one")
deliver(d1, "sts.test", 1, "one")
deliver(d2, "dane.test", 1, "one")
deliver(d2, "sts.test", 2, "one")
for d, dom, n in ((d1, "dane.test", 2), (d1, "sts.test", 1),
                  (d2, "dane.test", 1), (d2, "sts.test", 2)):
    expect_sent(d, dom, n)
drtest.wait_for(lambda: len(w.sinks["dane.test"].messages()) == 3, 10,
                "three messages at mx.dane.test")

# 2. one MTA-STS fetch for the fleet: the other relay took the policy from
# the shared cache (waiting for the fetch lease, or finding it there)
drtest.check(len(web.requests("mta-sts.sts.test")) == 1,
             "one policy fetch for both relays: %s" %
             web.requests("mta-sts.sts.test"))
drtest.check(re.search(r"mta-sts: sts\.test: policy id=20240101 \(mode "
                       r"enforce\) from the shared cache",
                       d1.log_text() + d2.log_text()) is not None,
             "a relay logged the policy from the shared cache")
r = d2.cli("mta-sts", "show")
drtest.check(r.returncode == 0 and re.search(r"^sts\.test +enforce +id="
                                             r"20240101", r.stdout, re.M),
             "d2 mta-sts show: the shared policy: %s%s" % (r.stdout,
                                                           r.stderr))

# 3. the summed counts, read by either relay
for d in (d1, d2):
    d.cli_until(("tlsrpt", "show"), r"dane\.test policy=tlsa mx-host=mx\."
                r"dane\.test success=3 failure=0", timeout=30)
    d.cli_until(("tlsrpt", "show"), r"sts\.test policy=sts mx-host=mx\."
                r"sts\.test success=3 failure=0", timeout=30)

# 4. the sender dies in the middle of sending
hold.set()
send1 = subprocess.Popen([d1.cli_binary, "-c", d1.conf, "tlsrpt", "send",
                          "--date", day0], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True)
drtest.wait_for(lambda: len(posts) >= 2, 60,
                "d1's two POSTs at the receiver (held)")
r = d2.cli("tlsrpt", "send", "--date", day0, timeout=60)
drtest.log("d2 tlsrpt send while d1 sends:\n%s%s", r.stdout, r.stderr)
drtest.check("another relay is sending" in r.stdout,
             "d2 does not send while d1 holds the sender's lock")
d1.kill9()
send1.kill()
send1.communicate()
hold.clear()
with posts_lock:
    held = len(posts)
drtest.check(answered() == {}, "nothing answered before d1 died")

r = d2.cli("tlsrpt", "send", "--date", day0, timeout=60)
drtest.log("d2 tlsrpt send after d1 died:\n%s%s", r.stdout, r.stderr)
drtest.check(r.returncode == 0, "d2 send: exit %d" % r.returncode)
got = answered()
drtest.check(sorted(got) == ["dane.test", "sts.test"] and
             all(len(v) == 1 for v in got.values()),
             "one report per policy domain: %s" %
             {k: len(v) for k, v in got.items()})
for dom in ("dane.test", "sts.test"):
    s = got.get(dom, [{}])[0].get("policies", [{}])[0].get("summary", {})
    drtest.check(s.get("total-successful-session-count") == 3 and
                 s.get("total-failure-session-count") == 0,
                 "%s: the summed counts of both relays: %s" % (dom, s))
# nothing more: d2 again, and d1 restarted
r = d2.cli("tlsrpt", "send", "--date", day0, timeout=60)
drtest.check(r.returncode == 0 and "already sent" in r.stdout,
             "d2 second send: already sent: %s" % r.stdout)
d1.start()
r = d1.cli("tlsrpt", "send", "--date", day0, timeout=60)
drtest.log("d1 tlsrpt send after restart:\n%s%s", r.stdout, r.stderr)
drtest.check(r.returncode == 0 and "already sent" in r.stdout,
             "d1 send after restart: already sent: %s" % r.stdout)
with posts_lock:
    drtest.check(len(posts) == held + 2, "no POST after the one per domain: "
                 "%d" % (len(posts) - held))

# 5. PostgreSQL down: deliveries go on; the counts arrive afterwards
pg.stop()
deliver(d1, "dane.test", 2, "outage")
deliver(d2, "dane.test", 1, "outage")
expect_sent(d1, "dane.test", 4)
expect_sent(d2, "dane.test", 2)
for d in (d1, d2):
    drtest.wait_for(lambda: "cannot write counters" in d.log_text(), 30,
                    "%s: the failed flush logged" % d.name)
pg.start()
for d in (d1, d2):
    d.cli_until(("tlsrpt", "show", "dane.test"), r"dane\.test policy=tlsa "
                r"mx-host=mx\.dane\.test success=6 failure=0", timeout=30)
drtest.check(re.search(r"counters written again", d1.log_text()) is not None,
             "d1: the counters written again after the outage")

# 6. a new policy (mx other.sts.test, a new id) refreshed on d1 is enforced
# by d2 without a fetch of its own: d2's mail to mx.sts.test waits
web.set_policy("mta-sts.sts.test", STS.replace("mx.sts.test",
                                                 "other.sts.test"))
w.rig.update("sts.test", [x.replace("id=20240101", "id=20240102")
                          for x in w.records["sts.test"]])
time.sleep(1.5)         # TTL 1 s: the resolvers' cached TXT expires
r = d1.cli("mta-sts", "refresh", "sts.test")
drtest.check(r.returncode == 0 and "fetched policy id=20240102" in r.stdout,
             "d1 mta-sts refresh: %s%s" % (r.stdout, r.stderr))
drtest.wait_for(lambda: re.search(r"mta-sts: sts\.test: policy id=20240102 "
                                  r"\(mode enforce\) from the shared cache",
                                  d2.log_text()), 10,
                "d2 takes the new policy from the shared cache")
w.send(d2, "user@sts.test", subject="after the policy change")
drtest.wait_for(lambda: len(w.outcomes(d2).get("user@sts.test", [])) == 3, 30,
                "d2: an outcome for the mail after the policy change")
drtest.log("d2 after the change: %s", w.outcomes(d2)["user@sts.test"][-1])
drtest.check("status=deferred" in w.outcomes(d2)["user@sts.test"][-1],
             "d2 enforces the new policy (mx.sts.test no longer allowed): %s"
             % w.outcomes(d2)["user@sts.test"][-1])
drtest.check(len(web.requests("mta-sts.sts.test")) == 2,
             "two policy fetches in all (d2 fetched none): %s" %
             web.requests("mta-sts.sts.test"))

drtest.done()
