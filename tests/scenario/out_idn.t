#!/usr/bin/python3
# timeout: 300
"""Internationalized destination domains (issue #12 item 6).

"user@bücher.test" with SMTPUTF8 was accepted, then bounced NXDOMAIN:
the MX lookup asked for the raw UTF-8 name.  Every lookup of a
destination now uses its A-label form (libidn2, src/idn.c), and the log
shows both forms; the addresses stay as the sender wrote them.

  - bücher.test (signed zone xn--bcher-kva.test, DANE sink): delivered
    with DANE, RCPT TO as written, "looked up as xn--bcher-kva.test";
  - böse.test (insecure zone, opportunistic sink) with the policy_file
    line "böse.test dane-only" (U-labels in the table): the line
    applies, nothing is delivered;
  - grün.test (insecure zone, MTA-STS enforce policy served by nginx for
    mta-sts.xn--grn-ioa.test, a sink with a WebPKI certificate from the
    test CA): delivered with auth=webpki, which only the MTA-STS policy
    asks for; the TLSRPT counters are kept for xn--grn-ioa.test;
  - fähre.test (bogus MX RRset): deferred, the domain-level TLSRPT
    failure counted for xn--fhre-loa.test;
  - ☃.test (no valid IDN): bounced 5.1.2, not looked up.
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import certs  # noqa: E402
import dnsrig  # noqa: E402
import nginx  # noqa: E402
import sink  # noqa: E402
import world  # noqa: E402

if not nginx.available():
    drtest.skip("nginx not installed (scripts/install-deps --test)")

BUECHER, BOESE, GRUEN = "b\u00fccher.test", "b\u00f6se.test", "gr\u00fcn.test"
A_BUECHER, A_BOESE, A_GRUEN = ("xn--bcher-kva.test", "xn--bse-sna.test",
                               "xn--grn-ioa.test")
SNOW = "\u2603.test"
FAEHRE, A_FAEHRE = "f\u00e4hre.test", "xn--fhre-loa.test"

w = world.World()
root = certs.CA(w.pki, "IDN Test Root CA")
web = nginx.Nginx(os.path.join(w.tmp, "nginx"), drtest.ip(5))

w.dest(A_BUECHER, 11)
w.dest(A_BOESE, 12, secure=False, tlsa=False)
# grün.test: MTA-STS enforce, TLSRPT record
mx_cert = root.issue(["mx." + A_GRUEN])
w.rig.zone(A_GRUEN, secure=False, records=[
    "@ MX 10 mx", "mx A %s" % drtest.ip(13),
    '_mta-sts TXT "v=STSv1; id=1"', "mta-sts A %s" % web.ip,
    '_smtp._tls TXT "v=TLSRPTv1; rua=mailto:tlsrpt@reports.test"'])
w.sinks[A_GRUEN] = sink.spawn(os.path.join(w.tmp, "sink-" + A_GRUEN),
                              drtest.ip(13), w.port, cert=mx_cert.chain,
                              key=mx_cert.key)
# fähre.test: bogus MX RRset (a domain-level TLSRPT failure)
w.rig.zone(A_FAEHRE, secure=True, records=[
    dnsrig.Record("@ MX 10 mx", bogus=True), "mx A %s" % drtest.ip(14)])
web_cert = root.issue(["mta-sts." + A_GRUEN], name="policy-host")
web.site("mta-sts." + A_GRUEN, web_cert.chain, web_cert.key,
         policy="version: STSv1\r\nmode: enforce\r\nmx: mx.%s\r\n"
         "max_age: 86400\r\n" % A_GRUEN)
web.start()
w.start()

ptab = os.path.join(w.tmp, "policy")
with open(ptab, "w", encoding="utf-8") as f:
    f.write("# U-labels in the table\n%s dane-only\n" % BOESE)
os.chmod(ptab, 0o644)
d = w.daemon(min_backoff="1h", policy_file=ptab, mta_sts="yes",
             https_port=web.port, ca_file=root.crt, tlsrpt="yes",
             tlsrpt_org_name='"danerelay IDN test"',
             tlsrpt_contact="postmaster@relay.dr-test.example",
             tlsrpt_from="tlsrpt-noreply@relay.dr-test.example")

c = drtest.SMTP(d.host, d.port)
c.expect("EHLO client.dr-test.example", 250)
for dom in (BUECHER, BOESE, GRUEN, SNOW, FAEHRE):
    c.expect("MAIL FROM:<sender@example.test> SMTPUTF8", 250)
    c.expect("RCPT TO:<user@%s>" % dom, 250)
    code, text = c.data(("From: <sender@example.test>\r\nTo: <user@%s>\r\n"
                         "Subject: idn\r\n\r\nhello\r\n" % dom).encode())
    drtest.check(code == 250, "user@%s accepted: %d %s" % (dom, code, text))
c.close()


def wait(rcpt):
    return world.wait_outcome(d, rcpt)


line = wait("user@" + BUECHER)
drtest.check("status=sent" in line and "relay=mx.%s" % A_BUECHER in line
             and "auth=dane-ee" in line, "%s: sent with DANE: %s" %
             (BUECHER, line))
m = w.sinks[A_BUECHER].messages()
drtest.check(len(m) == 1 and m[0]["rcpts"] == ["user@" + BUECHER] and
             "SMTPUTF8" in m[0]["mail_params"],
             "RCPT TO:<user@%s> as written, with SMTPUTF8: %s" %
             (BUECHER, [(x["rcpts"], x["mail_params"]) for x in m]))
drtest.check("%s: internationalized domain, looked up as %s" %
             (BUECHER, A_BUECHER) in d.log_text(), "both forms logged")

line = wait("user@" + BOESE)
drtest.check("status=sent" not in line and "dane-only" in line,
             "%s: the U-label policy_file line (dane-only) applies: %s" %
             (BOESE, line))
drtest.check(w.sinks[A_BOESE].messages() == [], "nothing at %s" % A_BOESE)

line = wait("user@" + GRUEN)
drtest.check("status=sent" in line and "auth=webpki" in line,
             "%s: delivered under its MTA-STS policy: %s" % (GRUEN, line))
drtest.check(web.requests("mta-sts." + A_GRUEN),
             "the policy was fetched from mta-sts.%s" % A_GRUEN)

line = wait("user@" + SNOW)
drtest.check("status=bounced" in line and "5.1.2" in line and
             "not a valid internationalized domain name" in line,
             "%s: not a valid IDN: bounced 5.1.2: %s" % (SNOW, line))

line = wait("user@" + FAEHRE)
drtest.check("status=deferred" in line, "%s: bogus MX, deferred: %s" %
             (FAEHRE, line))

# once the daemon has written its counters (every TLSRPT_FLUSH_SECS)
r = d.cli_until(("tlsrpt", "show"), "^%s " % re.escape(A_FAEHRE))
drtest.log("tlsrpt show:\n%s%s", r.stdout, r.stderr)
drtest.check(re.search(r"%s policy=sts .*success=1" % re.escape(A_GRUEN),
                       r.stdout) is not None and "gr\u00fcn" not in r.stdout,
             "TLSRPT counts the session for %s" % A_GRUEN)
drtest.check(re.search(r"%s policy=tlsa .*failure=1" % re.escape(A_BOESE),
                       r.stdout) is not None and "b\u00f6se" not in r.stdout,
             "TLSRPT: the dane-only failure is counted for %s" % A_BOESE)
drtest.check(re.search(r"%s .*failure=1" % re.escape(A_FAEHRE), r.stdout)
             is not None and "f\u00e4hre" not in r.stdout,
             "TLSRPT: the bogus MX RRset is counted for %s" % A_FAEHRE)

d.stop()
web.stop()
w.stop()
drtest.done()
