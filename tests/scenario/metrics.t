#!/usr/bin/python3
# timeout: 300
"""Prometheus metrics (issue #7): metrics_listen serves the text format.

A signed DNS world and sinks (world.py); one danerelayd with
metrics_listen, inbound STARTTLS and AUTH.  Messages to destinations
with known outcomes (DANE-EE, opportunistic TLS, cleartext, STARTTLS
stripped on a DANE MX, bogus MX, null MX), one failed AUTH, then a
scrape with urllib: the exposition must parse (HELP/TYPE before samples,
counters *_total) and every counter and gauge must say what happened.
Also: only GET/HEAD /metrics are served, a taken metrics port stops the
start with a clear error, and SIGHUP keeps the listener.
"""
import base64
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import world  # noqa: E402
from world import MX  # noqa: E402

w = world.World()
w.dest("ee.test", mx=[MX("mx", 11)])                         # DANE-EE
w.dest("insecure.test", mx=[MX("mx", 12, tlsa=None)], secure=False)
w.dest("clear.test", mx=[MX("mx", 13, cert=None, tlsa=None)],
       secure=False)                                        # no STARTTLS
w.dest("nostarttls.test", mx=[MX("mx", 14, starttls=False)])
w.dest("bogusmx.test", mx=[MX("mx", 15)], bogus_mx=True)
w.dest("nullmx.test", null_mx=True)
w.start()
T = w.tmp

# inbound STARTTLS + AUTH, for the AUTH failure counter
crt, key = drtest.make_cert(T, "relay.dr-test.example")
authfile = drtest.auth_file(os.path.join(T, "auth"),
                            {"alice": "right-password"})

mhost = drtest.ip(2)
mport = drtest.free_port(mhost)
d = w.daemon(min_backoff="1h", tls_cert_file=crt, tls_key_file=key,
             auth_file=authfile, metrics_listen="%s:%d" % (mhost, mport))
URL = "http://%s:%d/metrics" % (mhost, mport)
drtest.check("metrics on %s" % URL in d.log_text(),
             "start-up log names the metrics URL")


def http(method, url, timeout=10):
    """-> (status, headers, body) without raising on 4xx/5xx."""
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=drtest.scaled(timeout)) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? '
                    r'(-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?)$')


def scrape():
    """Parse the exposition strictly -> {(name, labels): value}."""
    status, hdrs, body = http("GET", URL)
    drtest.check(status == 200, "GET /metrics -> 200, got %s" % status)
    drtest.check(hdrs.get("Content-Type", "").startswith(
        "text/plain; version=0.0.4"), "Prometheus content type, got %r"
        % hdrs.get("Content-Type"))
    text = body.decode("utf-8")
    drtest.check(text.endswith("\n"), "exposition ends with a newline")
    vals, helped, typed = {}, set(), {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split()[2])
            continue
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split()
            drtest.check(name not in typed, "one TYPE line for %s" % name)
            drtest.check(typ in ("counter", "gauge", "histogram"),
                         "type of %s" % name)
            typed[name] = typ
            continue
        m = SAMPLE.match(line)
        if not drtest.check(m is not None, "sample line parses: %r" % line):
            continue
        name = m.group(1)
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if base != name and typed.get(base) == "histogram":
            name_ok = base in helped
        else:
            name_ok = name in typed and name in helped
        drtest.check(name_ok, "HELP and TYPE before %s" % name)
        if typed.get(name) == "counter":
            drtest.check(name.endswith("_total"), "counter %s ends in "
                         "_total" % name)
        key = (name, m.group(3) or "")
        drtest.check(key not in vals, "one sample for %s{%s}" % key)
        vals[key] = float(m.group(4))
    return vals


def val(v, name, labels=""):
    return v.get((name, labels))


# Before any mail: everything present and zero.
v0 = scrape()
for name in ("danerelay_messages_received_total",
             "danerelay_recipients_deferred_total",
             "danerelay_recipients_bounced_total",
             "danerelay_dnssec_bogus_total",
             "danerelay_smtpd_auth_failures_total",
             "danerelay_queue_messages",
             "danerelay_queue_pending_recipients",
             "danerelay_queue_oldest_message_age_seconds",
             "danerelay_deliveries_in_flight",
             "danerelay_mta_sts_cache_policies"):
    drtest.check(val(v0, name) == 0, "%s is 0 at start, got %s" %
                 (name, val(v0, name)))
for a in ("dane-ee", "dane-ta", "webpki", "none", "cleartext"):
    drtest.check(val(v0, "danerelay_recipients_delivered_total",
                     'auth="%s"' % a) == 0, "delivered{auth=%s} 0" % a)
drtest.check(val(v0, "danerelay_build_info", 'version="0.1.0"') == 1 or
             any(k[0] == "danerelay_build_info" for k in v0),
             "build_info present")
st0 = val(v0, "danerelay_start_time_seconds")
drtest.check(st0 is not None and abs(st0 - time.time()) < 120,
             "start_time_seconds is about now (%s)" % st0)

# The loop stall histogram (a timer every 5 ms and its lateness): ticks
# are counted, buckets are cumulative, +Inf is the count, and the max
# gauge is no larger than what the +Inf bucket allows.
H = "danerelay_loop_stall_seconds"
les = sorted((float(k[1][4:-1]), v) for k, v in v0.items()
             if k[0] == H + "_bucket" and k[1] != 'le="+Inf"')
drtest.check(len(les) == 10 and les[0][0] == 0.001 and les[-1][0] == 1.0,
             "stall buckets 1 ms .. 1 s: %s" % [b for b, _ in les])
drtest.check(all(les[i][1] <= les[i + 1][1] for i in range(len(les) - 1)),
             "stall buckets cumulative: %s" % les)
inf = val(v0, H + "_bucket", 'le="+Inf"')
drtest.check(inf is not None and inf == val(v0, H + "_count") and inf > 0
             and inf >= les[-1][1], "stall +Inf %s = _count %s > 0" %
             (inf, val(v0, H + "_count")))
drtest.check(val(v0, H + "_sum") is not None and
             val(v0, "danerelay_loop_stall_max_seconds") is not None,
             "stall _sum and max present")
drtest.wait_for(lambda: val(scrape(), H + "_count") > inf + 2, 10,
                "more stall ticks than %s (one every 5 ms)" % inf)

# Other paths and methods.
status, _, body = http("GET", "http://%s:%d/" % (mhost, mport))
drtest.check(status == 404, "GET / -> 404, got %s" % status)
status, _, _ = http("POST", URL)
drtest.check(status in (405, 501), "POST /metrics refused, got %s" % status)
status, hdrs, body = http("HEAD", URL)
drtest.check(status == 200 and body == b"", "HEAD /metrics -> 200, no body")

# A failed AUTH (after STARTTLS, as AUTH is only offered then).
c = drtest.SMTP(d.host, d.port)
c.expect("EHLO client.dr-test.example", 250)
c.starttls()
c.expect("EHLO client.dr-test.example", 250)
code, _ = c.cmd("AUTH PLAIN " + base64.b64encode(
    b"\0alice\0wrong-password").decode())
drtest.check(code == 535, "wrong password -> 535, got %s" % code)
c.cmd("QUIT")
c.close()

# The messages.
scen = {"ee.test": "sent", "insecure.test": "sent", "clear.test": "sent",
        "nostarttls.test": "deferred", "bogusmx.test": "deferred",
        "nullmx.test": "bounced"}


def received_header(client, qid, rcpt, when):
    """The trace header danerelay prepends (RFC 5321 §4.4), as the test
    knows it must be: our EHLO name and address, no TLS, ESMTP, one
    recipient, the date in RFC 5322 form (day not zero-padded)."""
    tm = time.localtime(when)
    off = tm.tm_gmtoff // 60
    date = "%s %d %s %s %c%02d%02d" % (
        time.strftime("%a,", tm), tm.tm_mday, time.strftime("%b %Y", tm),
        time.strftime("%H:%M:%S", tm), "-" if off < 0 else "+",
        abs(off) // 60, abs(off) % 60)
    return ("Received: from client.dr-test.example ([%s])\r\n"
            "\tby relay.dr-test.example (danerelay) with ESMTP id %s\r\n"
            "\tfor <%s>; %s\r\n" % (client, qid, rcpt, date)).encode()


# The bytes received, counted by the test itself: what it sent plus the
# trace header it knows the relay must prepend.
sizes = 0
sent = {}
c = drtest.SMTP(d.host, d.port)
client = c.sock.getsockname()[0]
for dom in scen:
    body = ("From: <sender@example.net>\r\nTo: <user@%s>\r\n"
            "Subject: metrics %s\r\n\r\nHello %s.\r\n" % (dom, dom, dom))
    qid = c.sendmail("", ["user@" + dom], body.encode())
    sent[dom] = (qid, body.encode())
    sizes += len(body) + len(received_header(client, qid, "user@" + dom,
                                             time.time()))
c.cmd("QUIT")
c.close()

final = re.compile(r"to=<user@([a-z0-9.]+)>, .*status=(sent|deferred|"
                   r"bounced)")


def outcomes():
    got = {}
    for m in final.finditer(d.log_text()):
        got.setdefault(m.group(1), m.group(2))
    return got


drtest.wait_for(lambda: set(outcomes()) >= set(scen), 90,
                "a delivery outcome for every destination")
got = outcomes()
for dom, want in scen.items():
    drtest.check(got[dom] == want, "%s: %s expected, got %s" %
                 (dom, want, got[dom]))
drtest.wait_for(lambda: val(scrape(), "danerelay_deliveries_in_flight") == 0,
                30, "no delivery in flight")

v = scrape()

# Where a copy can still be seen (at a sink, or queued), it is exactly
# that header and what was sent (the date only as its form).
DATE_RE = (rb"[A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} "
           rb"\d\d:\d\d:\d\d [-+]\d{4}")
copies = {}
for sk in w.sinks.values():
    for m in sk.messages():
        dom = m["rcpts"][0].split("@")[1]
        copies[dom] = m["data"]
for qid in d.queue_ids():
    dom = d.read_env(qid)["rcpts"][0]["addr"].split("@")[1]
    copies[dom] = d.read_data(qid)
drtest.check(set(copies) == set(scen) - {"nullmx.test"},
             "a copy of every message but the bounced one: %s"
             % sorted(copies))
for dom, data in copies.items():
    qid, body = sent[dom]
    hdr = re.escape(received_header(client, qid, "user@" + dom, 0)
                    .rsplit(b"; ", 1)[0] + b"; ")
    drtest.check(re.fullmatch(hdr + DATE_RE + rb"\r\n" + re.escape(body),
                              data, re.S) is not None,
                 "%s: the copy is the trace header and what was sent: %r"
                 % (dom, data[:300]))


def want(name, value, labels=""):
    got = val(v, name, labels)
    drtest.check(got == value, "%s{%s}: expected %s, got %s" %
                 (name, labels, value, got))


want("danerelay_messages_received_total", len(scen))
want("danerelay_received_bytes_total", sizes)
want("danerelay_smtpd_auth_failures_total", 1)
want("danerelay_recipients_delivered_total", 1, 'auth="dane-ee"')
want("danerelay_recipients_delivered_total", 1, 'auth="none"')
want("danerelay_recipients_delivered_total", 1, 'auth="cleartext"')
want("danerelay_recipients_delivered_total", 0, 'auth="dane-ta"')
want("danerelay_recipients_delivered_total", 0, 'auth="webpki"')
want("danerelay_recipients_deferred_total", 2)
want("danerelay_recipients_bounced_total", 1)
want("danerelay_tls_failures_total", 1,
     'result_type="starttls-not-supported"')
want("danerelay_tls_failures_total", 0, 'result_type="certificate-expired"')
bogus = val(v, "danerelay_dnssec_bogus_total")
drtest.check(bogus is not None and bogus >= 1,
             "bogus MX counted (dnssec_bogus_total %s)" % bogus)
want("danerelay_queue_messages", 2)
want("danerelay_queue_pending_recipients", 2)
want("danerelay_queue_held_messages", 0)
want("danerelay_deliveries_in_flight", 0)
want("danerelay_smtpd_sessions", 0)
age = val(v, "danerelay_queue_oldest_message_age_seconds")
drtest.check(age is not None and 0 <= age < 300,
             "oldest message age is plausible (%s)" % age)
time.sleep(2.1)
age2 = val(scrape(), "danerelay_queue_oldest_message_age_seconds")
drtest.check(age2 is not None and age2 >= age + 2,
             "oldest message age grows (%s -> %s)" % (age, age2))

# A second daemon on the same metrics port: refused at start, clearly.
d2 = drtest.Daemon(name="d2", metrics_listen="%s:%d" % (mhost, mport))
r = subprocess.run([d2.binary, "-f", "-c", d2.conf], stdin=subprocess.DEVNULL,
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                   universal_newlines=True, timeout=drtest.scaled(30))
drtest.check(r.returncode == 1, "taken metrics port: exit 1, got %d" %
             r.returncode)
drtest.check(re.search(r"metrics_listen %s:%d: Address already in use"
                       % (re.escape(mhost), mport), r.stdout) is not None,
             "taken metrics port: clear error, got %r" % r.stdout[-300:])

# SIGHUP with another metrics_listen: warned, the old listener stays.
d.write_config(metrics_listen="%s:%d" % (mhost, drtest.free_port(mhost)))
d.reload()
drtest.wait_for(lambda: "metrics_listen changed" in d.log_text(), 10,
                "the reload warning about metrics_listen")
drtest.check(val(scrape(), "danerelay_messages_received_total") == len(scen),
             "counters survive SIGHUP on the same listener")

# The listener goes away with the daemon.
d.stop()
s = socket.socket()
s.settimeout(2)
drtest.check(s.connect_ex((mhost, mport)) != 0, "nothing listens after stop")
s.close()
w.stop()
drtest.done()
