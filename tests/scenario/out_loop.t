#!/usr/bin/python3
# timeout: 300
"""Mail loops on the outbound side (issue #12 item 3).

An MX that points back at the relay made 2,360 accept/deliver hops in
8 s.  The inbound side counts Received: (smtpd_hops.t); the outbound
side now stops a loop before the first hop:

  - greet.test: the MX greets with the relay's own myhostname (another
    way back to us, e.g. through NAT): "mail for greet.test loops back
    to myself", bounced 5.4.6, no MAIL sent;
  - ehlo.test: the greeting is someone else's, the EHLO reply names us:
    the same;
  - helo.test (no DNSSEC, so cleartext is allowed): EHLO refused, the
    HELO reply names us: the same;
  - self.test: the MX address is one of the relay's own listen
    addresses (listen has a second socket on the SMTP port): no
    connection at all, bounced 5.4.6 "... is this relay", and no second
    queue id ever carries the recipient (no hop);
  - the DSNs of those bounces go to bounce_relay, a local MTA that
    greets with the same name (same host): that hop is exempt;
  - mixed.test: MX 10 dead, MX 20 the relay itself, MX 30 a working
    sink: MX 20 and 30 are dropped (a worse MX than ourselves would
    hand the mail back), MX 10 fails, the message is deferred and the
    sink at MX 30 never sees a connection.
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import certs  # noqa: E402
import sink  # noqa: E402
import world  # noqa: E402

ME = "relay.dr-test.example"
w = world.World()
SELF_IP = drtest.ip(50)

w.dest("greet.test", 11, extra=["--hostname", ME])
w.dest("ehlo.test", 12, extra=["--hostname", ME],
       rules=["BANNER||0|220 gw.ehlo.test ESMTP"])
# helo.test: no DNSSEC (opportunistic TLS), EHLO refused: HELO names us
w.dest("helo.test", 13, secure=False, tlsa=False, starttls=False,
       extra=["--hostname", ME, "--no-ehlo"],
       rules=["BANNER||0|220 gw.helo.test ESMTP"])
w.rig.zone("self.test", secure=True, records=["@ MX 10 mx1",
                                              "mx1 A %s" % SELF_IP])
# mixed.test: mx1 dead (nothing listens), mx2 = us, mx3 a sink
cert = certs.self_signed(w.pki, ["mx3.mixed.test"])
w.rig.zone("mixed.test", secure=True, records=[
    "@ MX 10 mx1", "mx1 A %s" % drtest.ip(21),
    "@ MX 20 mx2", "mx2 A %s" % SELF_IP,
    "@ MX 30 mx3", "mx3 A %s" % drtest.ip(23),
    "_%d._tcp.mx3 TLSA %s" % (w.port, cert.tlsa(3, 1, 1))])
mx3 = sink.spawn(os.path.join(w.tmp, "sink-mx3.mixed.test"), drtest.ip(23),
                 w.port, cert=cert.chain, key=cert.key)
w.sinks["mx3.mixed.test"] = mx3
# bounce_relay: the local MTA, on this host, greets with our name too
local_mta = sink.spawn(os.path.join(w.tmp, "sink-local-mta"),
                       drtest.ip(30), 0, extra=["--hostname", ME])
w.sinks["local-mta"] = local_mta
w.start()

port = drtest.free_port(drtest.TEST_IP)
d = w.daemon(start=False, port=port, min_backoff="1h", myhostname=ME,
             bounce_relay="%s:%d" % (local_mta.host, local_mta.port),
             bounce_relay_tls="none",
             listen="%s:%d, %s:%d" % (drtest.TEST_IP, port, SELF_IP,
                                       w.port))
d.start()

c = drtest.SMTP(d.host, d.port)
for dom in ("greet", "ehlo", "helo", "self", "mixed"):
    rcpt = "u@%s.test" % dom
    c.sendmail("sender@example.test", [rcpt],
               ("From: <sender@example.test>\r\nTo: <%s>\r\nSubject: loop"
                "\r\nMessage-ID: <%s.loop@dr-test>\r\n\r\nhello\r\n" %
                (rcpt, dom)).encode())
c.close()


def outcomes(rcpt):
    return re.findall(r"(\S+): to=<%s>, relay=\S+, .*status=(?:sent|deferred"
                      r"|bounced)[^\n]*" % re.escape(rcpt), d.log_text())


def wait(rcpt):
    drtest.wait_for(lambda: outcomes(rcpt), 60,
                    "an outcome for %s" % rcpt)
    m = re.search(r"to=<%s>, relay=\S+, .*status=(sent|deferred|bounced)"
                  r"[^\n]*" % re.escape(rcpt), d.log_text())
    return m.group(0)


for dom, what in (("greet", "greeted me"), ("ehlo", "replied to EHLO"),
                  ("helo", "replied to HELO")):
    line = wait("u@%s.test" % dom)
    drtest.check("status=bounced" in line and
                 "5.4.6 mail for %s.test loops back to myself" % dom in line
                 and "%s with my own hostname %s" % (what, ME) in line,
                 "%s.test: bounced as a loop: %s" % (dom, line))
    tr = [cmd for t in w.sinks["%s.test" % dom].transcripts()
          for cmd in t["commands"]]
    drtest.check(not any(cmd.upper().startswith("MAIL") for cmd in tr),
                 "%s.test: no MAIL sent: %s" % (dom, tr))

line = wait("u@self.test")
drtest.check("status=bounced" in line and
             "5.4.6 mail for self.test loops back to myself (MX host "
             "mx1.self.test[%s]:%d is this relay)" % (SELF_IP, w.port)
             in line, "self.test: bounced before any connection: %s" % line)

line = wait("u@mixed.test")
drtest.check("status=deferred" in line and "relay=mx1.mixed.test" in line,
             "mixed.test: only MX 10 tried, deferred: %s" % line)
drtest.check(mx3.stats().get("connections", 0) == 0,
             "mixed.test: MX 30 (worse than ourselves) never contacted")
drtest.check(re.search(r"mixed\.test: MX host mx2\.mixed\.test "
                       r"\(preference 20\) is this relay", d.log_text()),
             "mixed.test: the dropped MX is logged")

# the DSNs of those bounces go to bounce_relay, which shares our name:
# that hop is exempt (the local MTA on the same host), no loop there
drtest.wait_for(lambda: len(local_mta.messages()) >= 4, 30,
                "the four DSNs at bounce_relay")
drtest.check(not re.search(r"to=<sender@example\.test>, relay=bounce_relay"
                           r"[^\n]*status=(?!sent)", d.log_text()),
             "every DSN sent to bounce_relay")

# no hop: each recipient only ever under its one queue id
for dom in ("greet", "ehlo", "helo", "self", "mixed"):
    ids = set(outcomes("u@%s.test" % dom))
    drtest.check(len(ids) == 1, "%s.test: one queue id, no hop: %s" %
                 (dom, sorted(ids)))
drtest.check("Received" not in d.log_text() and
             "max_hops" not in d.log_text(), "no hop counted")

d.stop()
w.stop()
drtest.done()
