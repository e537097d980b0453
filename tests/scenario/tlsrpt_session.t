#!/usr/bin/python3
# timeout: 300
"""TLSRPT accuracy per session (issue #13 item 9).

  - Two domains, a.test and b.test, share one DANE MX host
    (mx.shared.test): the message to b.test reuses the session the one to
    a.test opened.  Each policy domain counts that session once: a.test
    success=1 and b.test success=1 (a reused session used to be counted
    for the first domain only).  A second message to a.test on the same
    session does not count again.
  - sending-mta-ip is the connected socket's own address: the daemon binds
    to a test address (smtp_bind_address), and the failure recorded for
    bad.test (no TLSA record matches) carries that address, the one the
    sink saw as its peer (it used to come from a separate route lookup,
    which knows nothing of the bind).
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import certs  # noqa: E402
import sink  # noqa: E402
import world  # noqa: E402

w = world.World()
RPT = '_smtp._tls TXT "v=TLSRPTv1; rua=mailto:tlsrpt@reports.test"'
SRC = drtest.ip(3)              # smtp_bind_address

shared_ip = drtest.ip(11)
cert = certs.self_signed(w.pki, ["mx.shared.test"])
w.rig.zone("shared.test", records=[
    "mx A %s" % shared_ip,
    "_%d._tcp.mx TLSA %s" % (w.port, cert.tlsa(3, 1, 1))])
shared = sink.spawn(os.path.join(w.tmp, "sink-shared"), shared_ip, w.port,
                    cert=cert.chain, key=cert.key)
w.sinks["shared"] = shared
for dom in ("a.test", "b.test"):
    w.rig.zone(dom, records=["@ MX 10 mx.shared.test.", RPT])

bad_ip = drtest.ip(12)
bad_cert = certs.self_signed(w.pki, ["mx.bad.test"])
decoy = certs.self_signed(w.pki, ["decoy.bad.test"])
w.rig.zone("bad.test", records=[
    "@ MX 10 mx", "mx A %s" % bad_ip, RPT,
    "_%d._tcp.mx TLSA %s" % (w.port, decoy.tlsa(3, 1, 1))])
bad = sink.spawn(os.path.join(w.tmp, "sink-bad"), bad_ip, w.port,
                 cert=bad_cert.chain, key=bad_cert.key)
w.sinks["bad"] = bad
w.dest("senders.test", 20)
w.start()

d = w.daemon(min_backoff="1h", tlsrpt="yes", workers="1",
             smtp_bind_address=SRC,
             tlsrpt_org_name='"danerelay TLSRPT test"',
             tlsrpt_contact="postmaster@relay.dr-test.example",
             tlsrpt_from="tlsrpt-noreply@relay.dr-test.example")


def send(rcpt):
    c = drtest.SMTP(d.host, d.port)
    c.sendmail("sender@senders.test", [rcpt], (
        "From: <sender@senders.test>\r\nTo: <%s>\r\nSubject: session\r\n"
        "\r\nHello.\r\n" % rcpt).encode())
    c.close()


def outcome(rcpt):
    m = re.search(r"to=<%s>, .*status=(sent|deferred|bounced)[^\n]*" %
                  re.escape(rcpt), d.log_text())
    return m.group(0) if m else None


def deliver(rcpt, want):
    send(rcpt)
    drtest.wait_for(lambda: outcome(rcpt) is not None, 30,
                    "an outcome for %s" % rcpt)
    drtest.check("status=" + want in outcome(rcpt), "%s: %s: %s" %
                 (rcpt, want, outcome(rcpt)))


# one after the other, well within the 10 s idle time of a cached session
deliver("u@a.test", "sent")
deliver("u@b.test", "sent")
deliver("v@a.test", "sent")
deliver("u@bad.test", "deferred")
drtest.check(shared.stats()["connections"] == 1,
             "one session carried all three messages to mx.shared.test "
             "(%d connections)" % shared.stats()["connections"])

# once the daemon has written its counters (every TLSRPT_FLUSH_SECS):
# bad.test's session is the last one
r = d.cli_until(("tlsrpt", "show"), r"^bad\.test policy=")
drtest.log("tlsrpt show:\n%s%s", r.stdout, r.stderr)
drtest.check(r.returncode == 0, "tlsrpt show exits 0")
for dom in ("a.test", "b.test"):
    drtest.check(re.search(r"^%s policy=tlsa mx-host=mx\.shared\.test "
                           r"success=1 failure=0$" % re.escape(dom),
                           r.stdout, re.M) is not None,
                 "%s: the shared session counted once for it" % dom)
drtest.check(re.search(r"^bad\.test policy=tlsa mx-host=mx\.bad\.test "
                       r"success=0 failure=1$", r.stdout, re.M) is not None,
             "bad.test: one failed session")
m = re.search(r"result-type=validation-failure sending-mta-ip=(\S+) "
              r"receiving-mx-hostname=mx\.bad\.test", r.stdout)
peers = {t["peer"] for t in bad.transcripts()}
drtest.check(peers == {SRC}, "the sink saw the bound address: %s" % peers)
drtest.check(m is not None and m.group(1) == SRC,
             "sending-mta-ip is the session's own address %s: %s" %
             (SRC, m.group(1) if m else None))

d.stop()
w.stop()
drtest.done()
