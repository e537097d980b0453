#!/usr/bin/python3
# timeout: 180
"""REQUIRETLS and TLS-Required: No (RFC 8689) in the signed DNS world
(issue #17).

REQUIRETLS, submitted inside TLS (in cleartext: 530 5.7.10):
- DANE host that offers REQUIRETLS: delivered over DANE-authenticated
  TLS with REQUIRETLS on MAIL;
- MTA-STS enforce host that offers it: delivered the same way (WebPKI);
- DANE host or MTA-STS enforce host without REQUIRETLS: returned 5.7.30,
  never received;
- opportunistic destination (TLS and REQUIRETLS offered, no DANE, no
  MTA-STS) and a cleartext-only one: returned 5.7.30, never contacted;
- a DANE MX that is down with a backup MX without TLSA: deferred, the
  backup never contacted;
- the non-delivery report says 5.7.30 and carries nothing of the message
  (requiretls_redact_dsn = yes, the default).

TLS-Required: No against a DANE-mismatch MX (a normal message waits):
- from a client in allow_clients with tls_required_header = no (the
  default): not honoured, waits;
- after a reload with yes: delivered over (unauthenticated) TLS,
  logged tls_required=no; the earlier message still waits;
- from an outside client after AUTH: honoured; an outside client
  without AUTH cannot relay at all;
- with REQUIRETLS: never weakened, waits;
- TLSRPT counts the DANE failures at that MX, those of the
  TLS-Required: No sessions too, and no success.
"""
import email
import email.policy
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
from drtest import check  # noqa: E402
import world  # noqa: E402

SENDER = "sender@senders.test"
GOOD = drtest.ip(2)             # in allow_clients
OUTSIDER = drtest.ip(3)         # not: AUTH needed
RT = ["--requiretls"]

w = world.World()
senders = w.dest("senders.test", 11)
w.dest("rtls.test", 12, extra=RT)
w.dest("nortls.test", 13)
w.dest("sts.test", mx=[world.MX("mx", 14, cert="ca", tlsa=None, extra=RT)],
       secure=False, mta_sts=world.policy("enforce", ["mx.sts.test"]))
w.dest("stsno.test", mx=[world.MX("mx", 15, cert="ca", tlsa=None)],
       secure=False, mta_sts=world.policy("enforce", ["mx.stsno.test"]))
w.dest("opp.test", mx=[world.MX("mx", 16, tlsa=None, extra=RT)],
       secure=False)
w.dest("clear.test", mx=[world.MX("mx", 17, cert=None, tlsa=None)])
w.dest("mm.test", mx=[world.MX("mx", 18, tlsa=["3 1 1 decoy"], extra=RT)],
       tlsrpt="mailto:tlsrpt@senders.test")
# a DANE MX that is down and a backup without TLSA: the backup must not
# even be contacted for a REQUIRETLS message
w.dest("mix.test", mx=[world.MX("mx1", 19, extra=RT),
                       world.MX("mx2", 20, tlsa=None, extra=RT)])
w.start()
w.stop_mx("mix.test", "mx1")

cert, key = drtest.make_cert(w.tmp, "relay.dr-test.example")
auth = os.path.join(w.tmp, "auth")
drtest.auth_file(auth, {"alice": "correct horse"})
d = w.daemon(min_backoff="1h", max_backoff="1h", allow_clients=GOOD,
             tls_cert_file=cert, tls_key_file=key, auth_file=auth,
             tlsrpt="yes", tlsrpt_org_name="test",
             tlsrpt_contact="postmaster@relay.dr-test.example",
             tlsrpt_from="tlsrpt-noreply@relay.dr-test.example")


def submit(rcpt, marker, requiretls=False, tls_no=False, source=GOOD,
           user=None, expect_rcpt=250):
    data = ("From: <%s>\r\nTo: <%s>\r\nSubject: rtls %s\r\n%s"
            "Message-ID: <%s@dr-test>\r\n\r\nSECRET-BODY-%s\r\n" % (
                SENDER, rcpt, marker, "TLS-Required: No\r\n" if tls_no
                else "", marker, marker)).encode()
    c = drtest.SMTP(d.host, d.port, source=source)
    c.expect("EHLO client.dr-test.example", 250)
    if requiretls or user:
        c.starttls()
        c.expect("EHLO client.dr-test.example", 250)
    if user:
        import base64
        c.expect("AUTH PLAIN " + base64.b64encode(
            ("\0%s\0correct horse" % user).encode()).decode(), 235)
    c.expect("MAIL FROM:<%s>%s" % (SENDER, " REQUIRETLS" if requiretls
                                   else ""), 250)
    code, text = c.cmd("RCPT TO:<%s>" % rcpt)
    check(code == expect_rcpt, "RCPT %s from %s: %d %s" % (rcpt, source,
                                                          code, text))
    if code != 250:
        c.close()
        return None
    code, text = c.data(data)
    c.expect("QUIT", 221)
    c.close()
    check(code == 250, "%s accepted: %d %s" % (marker, code, text))
    return drtest.QUEUED_RE.search(text).group(1)


# -- REQUIRETLS in cleartext is refused at MAIL
c = drtest.SMTP(d.host, d.port, source=GOOD)
c.expect("EHLO client.dr-test.example", 250)
code, text = c.cmd("MAIL FROM:<%s> REQUIRETLS" % SENDER)
check(code == 530 and text.startswith("5.7.10"),
      "REQUIRETLS in cleartext: %d %s" % (code, text))
c.close()

for dom in ("rtls", "nortls", "sts", "stsno", "opp", "clear", "mix"):
    submit("user@%s.test" % dom, dom, requiretls=True)

line = w.expect(d, "rtls.test", "sent", auth="dane-ee", at="mx", tls=True)
w.expect(d, "sts.test", "sent", auth="webpki", at="mx", tls=True)
for dom in ("rtls", "sts"):
    m = w.sinks[dom + ".test"].messages()
    check(len(m) == 1 and "REQUIRETLS" in m[0]["mail_params"].split(),
          "%s: REQUIRETLS passed on: %s" % (dom, [x["mail_params"]
                                                 for x in m]))
for dom in ("nortls", "stsno"):
    w.expect(d, dom + ".test", "bounced", why=r"5\.7\.30 .*REQUIRETLS")
for dom in ("opp", "clear"):
    w.expect(d, dom + ".test", "bounced", why=r"5\.7\.30 REQUIRETLS",
             never_contacted=("mx",))
w.expect(d, "mix.test", "deferred", never_contacted=("mx2",))
check(re.search(r"mx2\.mix\.test: skipped for REQUIRETLS", d.log_text())
      is not None, "mix: the backup skipped for REQUIRETLS")


# -- the non-delivery reports: 5.7.30, nothing of the message
def dsns():
    out = {}
    for m in senders.messages():
        if m["mail_from"] != "":
            continue
        msg = email.message_from_bytes(m["data"], policy=email.policy.default)
        for part in msg.walk():
            if part.get_content_type() == "message/delivery-status":
                for b in part.get_payload()[1:]:
                    out[str(b["Final-Recipient"])] = (b, m, msg)
    return out


bounced = ["user@%s.test" % x for x in ("nortls", "stsno", "opp", "clear")]
drtest.wait_for(lambda: all("rfc822; " + r in dsns() for r in bounced), 60,
                "the non-delivery reports")
for r in bounced:
    b, m, msg = dsns()["rfc822; " + r]
    check(str(b["Action"]) == "failed" and str(b["Status"]) == "5.7.30",
          "%s: failed 5.7.30: %s %s" % (r, b["Action"], b["Status"]))
    check(b"SECRET-BODY" not in m["data"] and b"Subject: rtls" not in
          m["data"], "%s: the report carries nothing of the message" % r)
    types = [p.get_content_type() for p in msg.walk()]
    check("text/rfc822-headers" not in types and "message/rfc822" not in
          types, "%s: no returned content part: %s" % (r, types))
    check("REQUIRETLS" not in m["mail_params"], "%s: the redacted report "
          "goes without REQUIRETLS" % r)

# -- TLS-Required: No, tls_required_header = no (default): not honoured
before = submit("before@mm.test", "before", tls_no=True)
w.expect(d, "mm.test", "deferred", rcpt="before@mm.test")
check(re.search(r"%s: TLS-Required: No ignored \(tls_required_header = no\)"
                % before, d.log_text()) is not None, "ignored, logged")

d.write_config(tls_required_header="yes")
n = d.log_text().count("settings reloaded")
d.reload()
drtest.wait_for(lambda: d.log_text().count("settings reloaded") > n, 10,
                "the reload")

plain = submit("plain@mm.test", "plain")
allowed = submit("allowed@mm.test", "allowed", tls_no=True)
authed = submit("authed@mm.test", "authed", tls_no=True, source=OUTSIDER,
                user="alice")
submit("outsider@mm.test", "outsider", tls_no=True, source=OUTSIDER,
       expect_rcpt=554)
both = submit("both@mm.test", "both", tls_no=True, requiretls=True)

for r in ("allowed", "authed"):
    line = w.expect(d, "mm.test", "sent", rcpt=r + "@mm.test", at="mx",
                    tls=True)
    check(", tls_required=no," in line, "%s: tls_required=no logged: %s"
          % (r, line))
    check("auth=none" in line, "%s: not authenticated (a DANE "
          "mismatch): %s" % (r, line))
for r in ("plain", "both"):
    w.expect(d, "mm.test", "deferred", rcpt=r + "@mm.test")
check(re.search(r"%s: TLS-Required: No ignored \(REQUIRETLS message\)"
                % both, d.log_text()) is not None,
      "REQUIRETLS + TLS-Required: No: ignored, logged")
# the message taken while the setting was off stays held to DANE
d.cli("flush")
drtest.wait_for(lambda: len(w.outcomes(d).get("before@mm.test", [])) >= 2,
                30, "a second attempt for before@mm.test")
check(all("status=deferred" in x for x in w.outcomes(d)["before@mm.test"]),
      "before@mm.test: never delivered: %s" % w.outcomes(d)["before@mm.test"])
got = [x["rcpts"] for x in w.sinks["mm.test"].messages()]
check(sorted(sum(got, [])) == ["allowed@mm.test", "authed@mm.test"],
      "only the honoured messages reached the mismatch MX: %s" % got)
# TLSRPT: the DANE failures at mm.test are counted, also those of the
# TLS-Required: No sessions (the certificate does not match the TLSA
# records, whatever the message then did): none is a "success"
r = d.cli_until(("tlsrpt", "show", "mm.test"),
                r"mm\.test policy=tlsa mx-host=mx\.mm\.test success=\d+ "
                r"failure=([4-9]|[1-9]\d)", timeout=30)
drtest.log("tlsrpt show:\n%s", r.stdout)
check(re.search(r"mm\.test policy=tlsa mx-host=mx\.mm\.test success=0 ",
                r.stdout) is not None,
      "TLS-Required: No sessions not counted as successes: %s" % r.stdout)

d.stop()
w.stop()
drtest.done()
