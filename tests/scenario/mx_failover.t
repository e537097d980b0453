#!/usr/bin/python3
# timeout: 300
"""MX failover inside the transaction and reply classes mid-body (issue #13
item 5).

Destinations with two DANE MX hosts (mx1 preferred, mx2 backup), each a
sink.  mx1 drops the connection at some point of the transaction:

  - before any reply to MAIL, to RCPT, to DATA: the server said nothing
    about the message and cannot have it: the message goes to mx2 in the
    same attempt (it used to be deferred);
  - after RCPT verdicts: a 550 for one recipient stands (bounced), the
    other one goes to mx2;
  - after the final ".": the server may have the message: deferred, never
    sent to mx2 as well (a duplicate).

And a server that answers 554 while the body is still being sent (sink
rule BODY): the recipient is bounced (a 5xx is permanent wherever it
comes), and a 451 there is a deferral.
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import certs  # noqa: E402
import sink  # noqa: E402
import world  # noqa: E402

w = world.World()
n_ip = [10]


def two_mx(domain, rules1):
    """Zone with MX 10 mx1, MX 20 mx2, each with its own DANE-EE sink."""
    recs, sinks = [], []
    for i, rules in ((1, rules1), (2, ())):
        n_ip[0] += 1
        ip = drtest.ip(n_ip[0])
        host = "mx%d.%s" % (i, domain)
        cert = certs.self_signed(w.pki, [host])
        recs += ["@ MX %d mx%d" % (10 * i, i), "mx%d A %s" % (i, ip),
                 "_%d._tcp.mx%d TLSA %s" % (w.port, i, cert.tlsa(3, 1, 1))]
        sinks.append(sink.spawn(os.path.join(w.tmp, "sink-" + host), ip,
                                w.port, cert=cert.chain, key=cert.key,
                                rules=list(rules)))
    w.rig.zone(domain, secure=True, records=recs)
    w.sinks["mx1." + domain], w.sinks["mx2." + domain] = sinks
    return sinks


S = {}
S["mail"] = two_mx("mail.test", ["MAIL||0|close"])
S["rcpt"] = two_mx("rcpt.test", ["RCPT||0|close"])
S["data"] = two_mx("data.test", ["DATA||0|close"])
S["mixed"] = two_mx("mixed.test", ["RCPT|gone@|0|550 5.1.1 no such user",
                                   "DATA||0|close"])
S["eom"] = two_mx("eom.test", ["EOM||0|close"])
S["body"] = two_mx("body.test", ["BODY||0|554 5.7.1 content refused"])
S["body4"] = two_mx("body4.test", ["BODY||0|451 4.3.0 try later"])
w.dest("senders.test", 40)
w.start()
d = w.daemon(min_backoff="1h")


def msg(to, big=False):
    body = "Failover test.\r\n"
    if big:     # still being sent when the server answers
        body += ("x" * 998 + "\r\n") * 2048
    return ("From: <sender@senders.test>\r\nTo: <%s>\r\nSubject: failover\r\n"
            "Message-ID: <%s@dr-test>\r\n\r\n%s" %
            (to, to.replace("@", "."), body)).encode()


c = drtest.SMTP(d.host, d.port)
for dom in ("mail", "rcpt", "data", "eom"):
    c.sendmail("sender@senders.test", ["u@%s.test" % dom],
               msg("u@%s.test" % dom))
c.sendmail("sender@senders.test", ["ok@mixed.test", "gone@mixed.test"],
           msg("ok@mixed.test"))
for dom in ("body", "body4"):
    c.sendmail("sender@senders.test", ["u@%s.test" % dom],
               msg("u@%s.test" % dom, big=True))
c.close()


def outcome(rcpt):
    m = re.search(r"to=<%s>, relay=\S+, .*status=(sent|deferred|bounced)"
                  r"[^\n]*" % re.escape(rcpt), d.log_text())
    return m.group(0) if m else None


def wait(rcpt):
    drtest.wait_for(lambda: outcome(rcpt) is not None, 60,
                    "an outcome for %s" % rcpt)
    return outcome(rcpt)


def got(sk, rcpt):
    return [m for m in sk.messages() if rcpt in m["rcpts"]]


for dom in ("mail", "rcpt", "data"):
    rcpt = "u@%s.test" % dom
    line = wait(rcpt)
    drtest.check("status=sent" in line and "relay=mx2.%s.test" % dom in line,
                 "%s: connection lost before a reply to %s: sent to the "
                 "backup MX in the same attempt: %s" % (rcpt, dom.upper(),
                                                         line))
    drtest.check(len(got(S[dom][1], rcpt)) == 1 and
                 not got(S[dom][0], rcpt), "%s: one copy, at mx2" % rcpt)

line = wait("ok@mixed.test")
drtest.check("status=sent" in line and "relay=mx2.mixed.test" in line,
             "mixed: the accepted recipient went on to mx2: %s" % line)
line = wait("gone@mixed.test")
drtest.check("status=bounced" in line and "550 5.1.1" in line,
             "mixed: the 550 from mx1 stands: %s" % line)
m2 = S["mixed"][1].messages()
drtest.check(len(m2) == 1 and m2[0]["rcpts"] == ["ok@mixed.test"],
             "mixed: mx2 got only ok@: %s" % [m["rcpts"] for m in m2])

line = wait("u@eom.test")
drtest.check("status=deferred" in line and "relay=mx1.eom.test" in line,
             "eom: lost after the final dot: deferred: %s" % line)
drtest.check(S["eom"][1].messages() == [],
             "eom: nothing sent to mx2 (it would be a duplicate)")

line = wait("u@body.test")
drtest.check("status=bounced" in line and "554 5.7.1" in line,
             "body: a 554 in the middle of the body bounces: %s" % line)
line = wait("u@body4.test")
drtest.check("status=deferred" in line and "451 4.3.0" in line,
             "body4: a 451 in the middle of the body defers: %s" % line)
for dom in ("body", "body4"):
    drtest.check(S[dom][1].messages() == [], "%s: a reply is a verdict: "
                 "nothing at mx2" % dom)

d.stop()
w.stop()
drtest.done()
