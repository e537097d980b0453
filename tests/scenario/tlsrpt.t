#!/usr/bin/python3
# timeout: 420
"""TLSRPT end to end (issue #6 acceptance).

A world (lib/world.py: the signed DNS tree, sinks, certificates made now,
nginx for the MTA-STS policies), DANE, MTA-STS and opportunistic
destinations, each publishing "_smtp._tls" TXT with
rua=mailto:(a sink on reports.test) and rua=https://(a loopback HTTPS
receiver in this test, certificate from the world's root, which is the
daemon's ca_file).  One daemon with tlsrpt = yes.

  1. one message per destination: success, validation-failure,
     starttls-not-supported (DANE and no-policy), certificate-expired,
     dnssec-invalid (bogus TLSA, skipped host), no-policy-found success,
     MTA-STS enforce and testing (a wrong certificate name in testing mode
     is delivered and reported as certificate-host-mismatch);
  2. restart, a second message to ok.test: the counters survive;
  3. `danerelay tlsrpt send --date TODAY` with the daemon running: every
     report arrives by mail (also at nomatch.test, whose DANE fails, and
     at bogustlsa.test, whose TLSA RRset is bogus: RFC 8460 §3) and by
     HTTPS POST (the first POST fails with 503: the CLI
     says so, exits 1, the next send delivers it; everything else is sent
     once); the gunzipped JSON has the right policies, counts,
     result-types; the mail has the RFC 8460 §5.3 headers; its shape
     matches the real reports in tests/vectors/tlsrpt (parsed with the
     same reader);
  4. report sessions are not counted (`tlsrpt show` after delivery);
  5. with the daemon stopped, counters for yesterday (written into the
     database like the daemon does) are sent by `danerelay tlsrpt send`
     itself: HTTPS at once, the mail from the spool once the daemon runs.
"""
import atexit
import datetime
import email
import email.policy
import glob
import gzip
import http.server
import json
import os
import re
import sqlite3
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import nginx  # noqa: E402
import world  # noqa: E402
from world import MX  # noqa: E402

# Midnight guard: the test takes about 30 s (a minute or two under ASan)
# and reads "today" (UTC) more than once; a run that would cross midnight
# waits for the new day first, so day0 stays the day of every session.
# (tlsrpt_midnight.t runs the daemon across a midnight, on a fake clock.)
_now = datetime.datetime.now(datetime.timezone.utc)
_left = 86400 - (_now.hour * 3600 + _now.minute * 60 + _now.second)
if _left < drtest.scaled(120):
    drtest.log("%d s to UTC midnight: waiting for the new day", _left)
    time.sleep(_left + 2)

w = world.World()
https_ip = drtest.ip(9)
https_port = drtest.free_port(https_ip)
RUA_HTTPS = "https://rpt.reports.test:%d/v1/tlsrpt" % https_port
n_ip = [10]
httpd = None


def cleanup():
    """The report receiver (the world stops the rest at exit)."""
    global httpd
    if httpd is not None:
        httpd.shutdown()
        httpd.server_close()
        httpd = None


atexit.register(cleanup)


def dest(domain, cert="self", tlsa="3 1 1", secure=True, starttls=True,
         rua=True, mailto="tlsrpt@reports.test", bogus_tlsa=False,
         sts=None):
    """One MX host (the world's MX(): cert, tlsa spec) whose _smtp._tls
    record sends reports to mailto and to this test's HTTPS receiver;
    sts: the MTA-STS policy text (or nginx locations) of the domain."""
    n_ip[0] += 1
    m = MX("mx", n_ip[0], cert=cert, tlsa=tlsa, tlsa_bogus=bogus_tlsa,
           starttls=starttls)
    w.dest(domain, mx=[m], secure=secure, mta_sts=sts,
           sts_txt=None if sts is None else ["20240101"],
           tlsrpt="mailto:%s,%s" % (mailto, RUA_HTTPS) if rua else None)
    return m.ip


# the destinations: domain -> what the report must say
IP = {}
IP["ok.test"] = dest("ok.test")
IP["nomatch.test"] = dest("nomatch.test", tlsa="3 1 1 decoy",
                          mailto="tlsrpt@nomatch.test")
IP["nostarttls.test"] = dest("nostarttls.test", starttls=False)
IP["expta.test"] = dest("expta.test", cert="expired-ca", tlsa="2 1 1")
IP["bogustlsa.test"] = dest("bogustlsa.test", bogus_tlsa=True,
                            mailto="tlsrpt@bogustlsa.test")
IP["insecure.test"] = dest("insecure.test", tlsa=None, secure=False)
IP["plain.test"] = dest("plain.test", cert=None, tlsa=None, secure=False,
                        starttls=False)
IP["norua.test"] = dest("norua.test", rua=False)
# where the mailto reports go (DANE); it publishes a record too, but only
# report sessions reach it, so it must never get a report itself
IP["reports.test"] = dest("reports.test")
w.dest("rpt.reports.test", mx=[], records=["@ A %s" % https_ip])
# MTA-STS (no DNSSEC, so DANE does not apply; policies served by the
# world's nginx, certificates from the world's CA)
STS_POLICY = {
    "sts.test": "version: STSv1\r\nmode: enforce\r\nmx: mx.sts.test\r\n"
                "max_age: 86400\r\n",
    "stsname.test": "version: STSv1\nmode: enforce\nmx: mx.stsname.test\n"
                    "max_age: 86400\n",
    # testing mode: delivered, but the name is checked and reported
    # (issue #13 item 2)
    "ststest.test": "version: STSv1\r\nmode: testing\r\n"
                    "mx: mx.ststest.test\r\nmax_age: 86400\r\n",
}
IP["sts.test"] = dest("sts.test", cert="ca", tlsa=None, secure=False,
                      sts=STS_POLICY["sts.test"])
IP["stsname.test"] = dest("stsname.test",
                          cert=w.root.issue(["wrong.stsname.test"]),
                          tlsa=None, secure=False,
                          sts=STS_POLICY["stsname.test"])
IP["ststest.test"] = dest("ststest.test",
                          cert=w.root.issue(["wrong.ststest.test"]),
                          tlsa=None, secure=False,
                          sts=STS_POLICY["ststest.test"])
IP["stsfetch.test"] = dest("stsfetch.test", cert="ca", tlsa=None,
                           secure=False,
                           sts={nginx.POLICY_PATH: "return 404;"})

OK_TLSA = w.mx["ok.test"][0].cert.tlsa(3, 1, 1)
EXPECT = {
    # domain: (policy-type, success, {result-type: count}, mx-host)
    "ok.test": ("tlsa", 2, {}, ["mx.ok.test"]),
    "nomatch.test": ("tlsa", 0, {"validation-failure": 1},
                     ["mx.nomatch.test"]),
    "nostarttls.test": ("tlsa", 0, {"starttls-not-supported": 1},
                        ["mx.nostarttls.test"]),
    "expta.test": ("tlsa", 0, {"certificate-expired": 1},
                   ["mx.expta.test"]),
    "bogustlsa.test": ("tlsa", 0, {"dnssec-invalid": 1},
                       ["mx.bogustlsa.test"]),
    "insecure.test": ("no-policy-found", 1, {}, None),
    "plain.test": ("no-policy-found", 0, {"starttls-not-supported": 1},
                   None),
    "sts.test": ("sts", 1, {}, ["mx.sts.test"]),
    "stsname.test": ("sts", 0, {"certificate-host-mismatch": 1},
                     ["mx.stsname.test"]),
    "ststest.test": ("sts", 0, {"certificate-host-mismatch": 1},
                     ["mx.ststest.test"]),
    "stsfetch.test": ("sts", 0, {"sts-policy-fetch-error": 1}, None),
}
BATCH1 = ["ok.test", "nomatch.test", "nostarttls.test", "expta.test",
          "bogustlsa.test", "insecure.test", "plain.test", "norua.test",
          "sts.test", "stsname.test", "ststest.test", "stsfetch.test"]


# ---- the HTTPS endpoint ---------------------------------------------------
posts = []
posts_lock = threading.Lock()
fail_first = [1]        # the first POST gets 503


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if 0 < n < (1 << 20) else b""
        code = 200
        with posts_lock:
            if fail_first[0] > 0:
                fail_first[0] -= 1
                code = 503
            posts.append({"path": self.path, "code": code,
                          "ctype": self.headers.get("Content-Type"),
                          "host": self.headers.get("Host"), "body": body})
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()

    def log_message(self, fmt, *args):
        drtest.log("https endpoint: " + fmt, *args)


httpd = w.https_server(https_ip, https_port, Handler, "rpt.reports.test")


def ok_posts():
    with posts_lock:
        return [p for p in posts if p["code"] == 200]


# ---- the daemon ------------------------------------------------------------
w.start()
MHOST = drtest.ip(2)
MPORT = drtest.free_port(MHOST)
d = w.daemon(min_backoff="1h", tlsrpt="yes",
             metrics_listen="%s:%d" % (MHOST, MPORT),
             tlsrpt_org_name='"danerelay TLSRPT test"',
             tlsrpt_contact="postmaster@relay.dr-test.example",
             tlsrpt_from="tlsrpt-noreply@relay.dr-test.example")

r = d.cli("tlsrpt", "show")
drtest.check(r.returncode == 0, "danerelay tlsrpt show: exit %d: %s"
             % (r.returncode, r.stderr.strip()))


def send(domains):
    for dom in domains:
        w.send(d, "user@" + dom, sender="sender@relay.dr-test.example")


def outcomes():
    """{domain: [status of each outcome line of user@domain, in order]}"""
    return {rcpt.split("@")[1]: [re.search(r"status=(\w+)", x).group(1)
                                 for x in lines]
            for rcpt, lines in w.outcomes(d).items()
            if rcpt.startswith("user@")}


def today():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")


day0 = today()
send(BATCH1)
drtest.wait_for(lambda: set(outcomes()) >= set(BATCH1),
                60, "a delivery outcome for every destination")
got = outcomes()
for dom in ("ok.test", "insecure.test", "plain.test", "norua.test",
            "sts.test", "ststest.test", "stsfetch.test"):
    drtest.check(got[dom] == ["sent"], "%s sent: %s" % (dom, got[dom]))
    w.expect(d, dom, "sent", at="mx")
drtest.check(re.search(r"MTA-STS policy in testing mode: the certificate "
                       r"would fail in enforce mode \(hostname mismatch\)",
                       d.log_text()) is not None,
             "ststest.test: the log says what enforce mode would refuse")
for dom in ("nomatch.test", "nostarttls.test", "expta.test",
            "bogustlsa.test", "stsname.test"):
    drtest.check(got[dom] == ["deferred"], "%s deferred: %s" % (dom, got[dom]))
    w.expect(d, dom, "deferred")

# 2. restart between sessions and report
d.stop()
db_path = os.path.join(d.dir, "state", "tlsrpt.db")
drtest.check(os.path.exists(db_path), "tlsrpt.db in state_dir")
d.start()
send(["ok.test"])
drtest.wait_for(lambda: outcomes().get("ok.test", []) ==
                ["sent", "sent"], 30, "second ok.test message")
drtest.wait_for(lambda: len([m for m in w.sinks["ok.test"].messages()]) == 2,
                10, "two messages at ok.test")

# show: ok.test 2 successes across the restart (once the daemon has
# written its counters, every TLSRPT_FLUSH_SECS)
r = d.cli_until(("tlsrpt", "show"), r"ok\.test policy=tlsa mx-host=mx\."
                r"ok\.test success=2 failure=0")
drtest.log("tlsrpt show:\n%s%s", r.stdout, r.stderr)
drtest.check("result-type=certificate-expired" in r.stdout,
             "show: the failure details")
r = d.cli("tlsrpt", "show", "nomatch.test")
drtest.check("nomatch.test" in r.stdout and "ok.test" not in r.stdout,
             "show DOMAIN shows only that domain")

# 3. send with the daemon running; the first POST fails (503)
days = [day0] if today() == day0 else [day0, today()]
r = d.cli("tlsrpt", "send", "--date", day0, timeout=120)
drtest.log("tlsrpt send:\n%s%s", r.stdout, r.stderr)
drtest.check(r.returncode == 1, "send exits 1 when a POST failed: %d" %
             r.returncode)
drtest.check("HTTP 503" in r.stdout and "will retry" in r.stdout,
             "send names the failed POST")
drtest.check("norua.test: no report" in r.stdout, "norua.test: no record")


def rpt_metric(result):
    """danerelay_tlsrpt_deliveries_total{result=...} from /metrics."""
    import urllib.request
    with urllib.request.urlopen("http://%s:%d/metrics" % (MHOST, MPORT),
                                timeout=10) as resp:
        text = resp.read().decode()
    m = re.search(r'^danerelay_tlsrpt_deliveries_total\{result="%s"\} '
                  r'(\d+)$' % result, text, re.M)
    return int(m.group(1)) if m else None


# the 503 counted as "pending" (retried), the rest as "sent" (#21)
drtest.check(rpt_metric("pending") == 1, "metrics: one TLSRPT delivery "
             "pending, got %s" % rpt_metric("pending"))
drtest.check((rpt_metric("sent") or 0) >= 1 and rpt_metric("failed") == 0,
             "metrics: TLSRPT deliveries sent %s, failed %s"
             % (rpt_metric("sent"), rpt_metric("failed")))
r = d.cli("tlsrpt", "send", "--date", day0, timeout=120)
drtest.log("tlsrpt send (again):\n%s%s", r.stdout, r.stderr)
drtest.check(r.returncode == 0, "second send exits 0: %d" % r.returncode)
drtest.check("already sent" in r.stdout, "second send: already sent")
for extra in days[1:]:
    d.cli("tlsrpt", "send", "--date", extra, timeout=120)

REPORTED = sorted(EXPECT)
drtest.wait_for(lambda: len(ok_posts()) >= len(REPORTED), 30,
                "a POST per reported domain")


def report_mails():
    out = []
    for dom in ("reports.test", "nomatch.test", "bogustlsa.test"):
        for m in w.sinks[dom].messages():
            if m["mail_from"] == "tlsrpt-noreply@relay.dr-test.example":
                out.append(m)
    return out


drtest.wait_for(lambda: len(report_mails()) >= len(REPORTED),
                60, "a report mail per reported domain")


def report_qids():
    """The report mails the daemon queued (`tlsrpt send` has returned:
    every one is queued and logged by now)."""
    return re.findall(r"tlsrpt: \S+ \S+: report to mailto:\S+ queued as "
                      r"([0-9A-F]{16})", d.log_text())


# no fixed sleep for "nothing more arrives": every queued report mail
# has its final status=sent line, so the sinks hold all there will be
drtest.wait_for(lambda: all(re.search(r"^\S+ \S+ info: %s: to=<[^>]+>, "
                                      r".*status=sent" % q, d.log_text(),
                                      re.M) for q in report_qids()),
                60, "every queued report mail delivered")
drtest.check(len(report_qids()) == len(REPORTED), "one report mail queued "
             "per reported domain: %d" % len(report_qids()))


def report_from_mail(raw):
    """(headers, json) of a report mail: the same reader for ours and the
    real ones."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    for part in msg.walk():
        ct = part.get_content_type()
        if ct.startswith("application/tlsrpt"):
            data = part.get_payload(decode=True)
            if ct.endswith("+gzip"):
                data = gzip.decompress(data)
            return msg, part, json.loads(data)
    return msg, None, None


def check_report(dom, rep, how):
    exp = EXPECT[dom]
    drtest.check(rep.get("organization-name") == "danerelay TLSRPT test",
                 "%s (%s): organization-name" % (dom, how))
    drtest.check(rep.get("contact-info") ==
                 "postmaster@relay.dr-test.example",
                 "%s (%s): contact-info" % (dom, how))
    dr = rep.get("date-range", {})
    drtest.check(dr.get("start-datetime") == day0 + "T00:00:00Z" and
                 dr.get("end-datetime") == day0 + "T23:59:59Z",
                 "%s (%s): date-range is the UTC day: %s" % (dom, how, dr))
    pols = rep.get("policies", [])
    drtest.check(len(pols) == 1, "%s (%s): one policy, got %d" %
                 (dom, how, len(pols)))
    if not pols:
        return
    p = pols[0]
    pol = p["policy"]
    drtest.check(pol.get("policy-type") == exp[0],
                 "%s (%s): policy-type %s" % (dom, how, pol.get(
                     "policy-type")))
    drtest.check(pol.get("policy-domain") == dom,
                 "%s (%s): policy-domain" % (dom, how))
    drtest.check(pol.get("mx-host") == exp[3], "%s (%s): mx-host %s" %
                 (dom, how, pol.get("mx-host")))
    if exp[0] == "sts" and dom in STS_POLICY:
        want = [x for x in STS_POLICY[dom].replace("\r", "").split("\n") if x]
        drtest.check(pol.get("policy-string") == want,
                     "%s (%s): the MTA-STS policy as policy-string: %s" %
                     (dom, how, pol.get("policy-string")))
    elif exp[0] == "sts":
        drtest.check("policy-string" not in pol,
                     "%s (%s): no policy-string without a policy" %
                     (dom, how))
    elif exp[0] == "tlsa" and dom != "bogustlsa.test":
        drtest.check(len(pol.get("policy-string", [])) == 1 and
                     re.match(r"^[23] [01] [012] [0-9a-f]+$",
                              pol["policy-string"][0], re.I) is not None,
                     "%s (%s): the TLSA record as policy-string: %s" %
                     (dom, how, pol.get("policy-string")))
    else:
        # no policy, or a bogus TLSA RRset: nothing trustworthy to quote
        drtest.check("policy-string" not in pol,
                     "%s (%s): no policy-string" % (dom, how))
    s = p["summary"]
    nfail = sum(exp[2].values())
    drtest.check(s.get("total-successful-session-count") == exp[1] and
                 s.get("total-failure-session-count") == nfail,
                 "%s (%s): summary %s, expected %d/%d" %
                 (dom, how, s, exp[1], nfail))
    fd = p.get("failure-details", [])
    types = {}
    for f in fd:
        types[f["result-type"]] = types.get(f["result-type"], 0) + \
            f["failed-session-count"]
        drtest.check(f.get("receiving-mx-hostname") == "mx." + dom,
                     "%s (%s): receiving-mx-hostname" % (dom, how))
        if f["result-type"] not in ("dnssec-invalid",):
            drtest.check(f.get("receiving-ip") == IP[dom] and
                         f.get("sending-mta-ip", "").startswith("127."),
                         "%s (%s): receiving-ip/sending-mta-ip %s" %
                         (dom, how, f))
        else:
            drtest.check("receiving-ip" not in f,
                         "%s (%s): no receiving-ip for a skipped host" %
                         (dom, how))
    drtest.check(types == exp[2], "%s (%s): failure-details %s, expected %s"
                 % (dom, how, types, exp[2]))


# the HTTPS reports
by_dom_https = {}
for p in ok_posts():
    drtest.check(p["ctype"] == "application/tlsrpt+gzip",
                 "POST Content-Type: %s" % p["ctype"])
    drtest.check(p["path"] == "/v1/tlsrpt", "POST path %s" % p["path"])
    try:
        rep = json.loads(gzip.decompress(p["body"]))
    except (OSError, ValueError) as e:
        drtest.check(False, "POST body is gzipped JSON: %s" % e)
        continue
    dom = rep["policies"][0]["policy"]["policy-domain"]
    drtest.check(dom not in by_dom_https, "%s posted once" % dom)
    by_dom_https[dom] = rep
drtest.check(sorted(by_dom_https) == REPORTED, "POSTs for %s, expected %s" %
             (sorted(by_dom_https), REPORTED))
with posts_lock:
    drtest.check(len(posts) == len(REPORTED) + 1,
                 "one failed POST and one per domain: %d" % len(posts))

# the mail reports
by_dom_mail = {}
ours_shape = []
for m in report_mails():
    msg, part, rep = report_from_mail(m["data"])
    drtest.check(rep is not None, "report mail has an application/tlsrpt+gzip"
                 " part")
    if rep is None:
        continue
    dom = rep["policies"][0]["policy"]["policy-domain"]
    drtest.check(dom not in by_dom_mail, "%s mailed once" % dom)
    by_dom_mail[dom] = (m, msg, part, rep)
    ours_shape.append(rep)
drtest.check(sorted(by_dom_mail) == REPORTED, "mails for %s, expected %s" %
             (sorted(by_dom_mail), REPORTED))
for dom in REPORTED:
    if dom in by_dom_https:
        check_report(dom, by_dom_https[dom], "https")
    if dom not in by_dom_mail:
        continue
    m, msg, part, rep = by_dom_mail[dom]
    check_report(dom, rep, "mail")
    drtest.check(rep == by_dom_https.get(dom),
                 "%s: the same report by mail and https" % dom)
    subj = " ".join(str(msg["Subject"]).split())
    rid = rep["report-id"]
    drtest.check(subj == "Report Domain: %s Submitter: relay.dr-test.example"
                 " Report-ID: <%s>" % (dom, rid), "%s: Subject %r" %
                 (dom, subj))
    drtest.check(msg["TLS-Report-Domain"] == dom, "%s: TLS-Report-Domain" %
                 dom)
    drtest.check(msg["TLS-Report-Submitter"] == "relay.dr-test.example",
                 "%s: TLS-Report-Submitter" % dom)
    drtest.check(msg.get_content_type() == "multipart/report" and
                 msg.get_param("report-type") == "tlsrpt",
                 "%s: multipart/report; report-type=tlsrpt" % dom)
    drtest.check(part.get_content_type() == "application/tlsrpt+gzip",
                 "%s: application/tlsrpt+gzip part" % dom)
    fn = part.get_filename() or ""
    start = int(datetime.datetime.strptime(day0, "%Y-%m-%d").replace(
        tzinfo=datetime.timezone.utc).timestamp())
    drtest.check(fn == "relay.dr-test.example!%s!%d!%d.json.gz" %
                 (dom, start, start + 86399), "%s: filename %s" % (dom, fn))
    texts = [p for p in msg.walk() if p.get_content_type() == "text/plain"]
    drtest.check(len(texts) == 1, "%s: a text/plain part" % dom)
    own = dom in ("nomatch.test", "bogustlsa.test")
    drtest.check(m["rcpts"] == ["tlsrpt@" + (dom if own else "reports.test")],
                 "%s: sent to its rua: %s" % (dom, m["rcpts"]))
# RFC 8460 §3: delivered although nomatch.test's DANE fails
nmm = by_dom_mail.get("nomatch.test")
if nmm:
    drtest.check(nmm[0]["tls"], "the report to nomatch.test went over "
                 "(unauthenticated) TLS")
for dom in ("nomatch.test", "bogustlsa.test"):
    drtest.check(not any(m["rcpts"] == ["user@" + dom]
                         for m in w.sinks[dom].messages()),
                 "the normal message to %s still never arrived" % dom)
# ... and the report reached bogustlsa.test's MX although its TLSA RRset
# is bogus (the host's address records are secure)
drtest.check("bogustlsa.test" in by_dom_mail and
             by_dom_mail["bogustlsa.test"][0]["rcpts"] ==
             ["tlsrpt@bogustlsa.test"], "report delivered to bogustlsa.test")

# the shape of ours against the real reports, one reader for both
vecdir = os.path.join(drtest.SRCDIR, "tests", "vectors", "tlsrpt")
real = []
for f in sorted(glob.glob(os.path.join(vecdir, "*", "*.eml"))):
    with open(f, "rb") as fh:
        _, _, rep = report_from_mail(fh.read())
    if rep is not None:
        real.append(rep)
for f in sorted(glob.glob(os.path.join(vecdir, "*", "*.json"))):
    with open(f, "rb") as fh:
        real.append(json.load(fh))


def shape(v, path, acc, present):
    t = type(v).__name__
    acc.setdefault(path, set()).add(t)
    if isinstance(v, dict):
        present.setdefault(path, []).append(set(v))
        for k, x in v.items():
            shape(x, path + "." + k, acc, present)
    elif isinstance(v, list):
        for x in v:
            shape(x, path + "[]", acc, present)


# the real reports are in the tree (tests/vectors/tlsrpt): without them
# the comparison is not made, and that is a failure, not a quiet pass
drtest.check(len(real) > 0, "real TLSRPT reports found in %s" % vecdir)
if real:
    types, present = {}, {}
    for rep in real:
        shape(rep, "$", types, present)
    required = {p: set.intersection(*ks) for p, ks in present.items()}
    for rep in ours_shape:
        mine, mpresent = {}, {}
        shape(rep, "$", mine, mpresent)
        for p, ts in mine.items():
            drtest.check(p in types, "shape: %s occurs in a real report" % p)
            if p in types:
                drtest.check(ts <= types[p] or (ts == {"int"} and "float"
                                                in types[p]),
                             "shape: %s type %s, real %s" % (p, ts, types[p]))
        for p, keysets in mpresent.items():
            for ks in keysets:
                drtest.check(required.get(p, set()) <= ks,
                             "shape: %s has %s" % (p, required.get(p)))
    drtest.log("shape compared with %d real reports", len(real))

# 4. the report sessions were not counted: the daemon writes every
# counter when it stops, then the CLI reads them
d.stop()
r = d.cli("tlsrpt", "show")
drtest.log("tlsrpt show (after the reports):\n%s", r.stdout)
drtest.check("reports.test" not in r.stdout.replace("rpt.reports.test", ""),
             "report deliveries to reports.test not counted")
drtest.check(re.search(r"nomatch\.test policy=tlsa mx-host=mx\.nomatch\.test"
                       r" success=0 failure=1", r.stdout) is not None,
             "the report delivery to nomatch.test not counted")
drtest.check(re.search(r"bogustlsa\.test policy=tlsa mx-host=mx\.bogustlsa"
                       r"\.test success=0 failure=1", r.stdout) is not None,
             "the report delivery to bogustlsa.test not counted")
drtest.check("rpt.reports.test" not in r.stdout, "https not counted")

# 5. the CLI alone: yesterday's counters, daemon stopped
yday = (datetime.datetime.now(datetime.timezone.utc) -
        datetime.timedelta(days=1)).strftime("%Y-%m-%d")
con = sqlite3.connect(db_path)
con.execute("INSERT INTO policy (day, domain, type, strings, mx, success, "
            "failure) VALUES (?, 'ok.test', 'tlsa', ?, 'mx.ok.test', 7, 0)",
            (yday, OK_TLSA))
con.commit()
con.close()
posts_before = len(ok_posts())
r = d.cli("tlsrpt", "send", timeout=120)
drtest.log("tlsrpt send (no daemon):\n%s%s", r.stdout, r.stderr)
drtest.check(r.returncode == 0, "send without a daemon exits 0")
drtest.check("delivered when danerelayd runs" in r.stdout,
             "the mail waits in the spool")
drtest.check(len(ok_posts()) == posts_before + 1, "posted at once")
new = ok_posts()[-1:]
if new:
    rep = json.loads(gzip.decompress(new[0]["body"]))
    drtest.check(rep["date-range"]["start-datetime"] == yday + "T00:00:00Z"
                 and rep["policies"][0]["summary"][
                     "total-successful-session-count"] == 7,
                 "yesterday's report: %s" % rep.get("date-range"))
mails_before = len(report_mails())
d.start()
drtest.wait_for(lambda: len(report_mails()) == mails_before + 1,
                30, "yesterday's report mail after start")
r = d.cli("tlsrpt", "send", "--date", "2999-01-01")
drtest.check(r.returncode == 2, "a future --date is refused")
r = d.cli("tlsrpt", "send", "--date", "yesterday")
drtest.check(r.returncode == 2, "a malformed --date is refused")
r = d.cli("tlsrpt", "frobnicate")
drtest.check(r.returncode == 2, "unknown subcommand: usage")

log = d.log_text()
drtest.check("tlsrpt: cannot write counters" not in log,
             "the counters were always written")
d.stop()
cleanup()
w.stop()
drtest.done()
