#!/usr/bin/python3
# timeout: 300
"""MX address and session limits per delivery attempt (issue #12 item 8).

All 20 addresses of one MX host were tried on each of 34 attempts, and a
tarpit MX held delivery slots.  smtp_max_addresses (default 5) and
smtp_max_sessions (default 2), like Postfix's smtp_mx_address_limit and
smtp_mx_session_limit, bound one attempt:

  - many.test: seven MX hosts (preferences 10..70), nothing listens on
    the first six, a DANE sink on the seventh: one attempt connects to
    mx1..mx5 only and defers; mx6 and mx7 are never tried;
  - tarpit.test: four MX hosts, each a DANE sink: mx1 never greets (a
    tarpit, smtp_greeting_timeout 2s), mx2 and mx3 answer 421 at the
    greeting, mx4 works: one attempt stops after two sessions (mx1,
    mx2); mx3 and mx4 see no connection;
  - with both limits 0 (no limit) and throttle_pause 0 (a 421 greeting
    pauses the whole site otherwise, issue #24: out_sites.t) a second
    daemon delivers both, through mx7 and mx4 (what the relay did
    before);
  - a bad value is refused by `danerelayd -n` with file:line.
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import certs  # noqa: E402
import sink  # noqa: E402
import world  # noqa: E402

w = world.World()


def mx_zone(domain, first_ip, specs):
    """specs: per MX host (preference order) None (nothing listens) or a
    list of sink rules.  Returns {host: sink or None}."""
    recs, out = [], {}
    for i, rules in enumerate(specs, 1):
        ip = drtest.ip(first_ip + i)
        host = "mx%d.%s" % (i, domain)
        cert = certs.self_signed(w.pki, [host])
        recs += ["@ MX %d mx%d" % (10 * i, i), "mx%d A %s" % (i, ip),
                 "_%d._tcp.mx%d TLSA %s" % (w.port, i, cert.tlsa(3, 1, 1))]
        out[host] = None
        if rules is not None:
            out[host] = sink.spawn(os.path.join(w.tmp, "sink-" + host), ip,
                                   w.port, cert=cert.chain, key=cert.key,
                                   rules=list(rules))
            w.sinks[host] = out[host]
    w.rig.zone(domain, secure=True, records=recs)
    return out


many = mx_zone("many.test", 20, [None] * 6 + [[]])
tarpit = mx_zone("tarpit.test", 30, [["BANNER||0|stall"],
                                     ["BANNER||0|421 4.3.2 busy"],
                                     ["BANNER||0|421 4.3.2 busy"], []])
w.start()


def send(d, tag):
    c = drtest.SMTP(d.host, d.port)
    for dom in ("many", "tarpit"):
        rcpt = "%s@%s.test" % (tag, dom)
        c.sendmail("sender@example.test", [rcpt],
                   ("From: <sender@example.test>\r\nTo: <%s>\r\n"
                    "Subject: limits\r\nMessage-ID: <%s.%s@dr-test>\r\n\r\n"
                    "hello\r\n" % (rcpt, tag, dom)).encode())
    c.close()


wait = world.wait_outcome


def tried(d, rcpt):
    """MX hosts the attempts for rcpt failed at, in order."""
    return re.findall(r"to=<%s>, relay=([^\[\s]+)\[[^\n]*status=host-failed"
                      % re.escape(rcpt), d.log_text())


def conns(host):
    return tarpit[host].stats().get("connections", 0)


# 1. the defaults: 5 addresses, 2 sessions
d = w.daemon(min_backoff="1h", smtp_greeting_timeout="2s")
send(d, "a")
line = wait(d, "a@many.test")
drtest.check("status=deferred" in line, "many: deferred: %s" % line)
hosts = tried(d, "a@many.test")
drtest.check(hosts == ["mx%d.many.test" % i for i in range(1, 6)],
             "many: mx1..mx5 tried, in order, once each: %s" % hosts)
drtest.check(many["mx7.many.test"].stats().get("connections", 0) == 0,
             "many: mx7 never contacted")
drtest.check(re.search(r"many\.test: no more MX addresses in this attempt: "
                       r"5 tried.*smtp_max_addresses = 5", d.log_text()),
             "many: the limit is logged")

line = wait(d, "a@tarpit.test")
drtest.check("status=deferred" in line, "tarpit: deferred: %s" % line)
hosts = tried(d, "a@tarpit.test")
drtest.check(hosts == ["mx1.tarpit.test", "mx2.tarpit.test"],
             "tarpit: two sessions (mx1, mx2): %s" % hosts)
drtest.check([conns("mx%d.tarpit.test" % i) for i in range(1, 5)] ==
             [1, 1, 0, 0], "tarpit: connections per MX: %s" %
             [conns("mx%d.tarpit.test" % i) for i in range(1, 5)])
drtest.check(re.search(r"tarpit\.test: no more MX addresses in this "
                       r"attempt: 2 tried, 2 sessions "
                       r"\(smtp_max_sessions = 2\)", d.log_text()),
             "tarpit: the limit is logged")
d.stop()

# 2. no limits: what the relay did before
d2 = w.daemon(name="d2", min_backoff="1h", smtp_greeting_timeout="2s",
              smtp_max_addresses="0", smtp_max_sessions="0",
              throttle_pause="0")
send(d2, "b")
line = wait(d2, "b@many.test")
drtest.check("status=sent" in line and "relay=mx7.many.test" in line,
             "no limit: many.test delivered through mx7: %s" % line)
line = wait(d2, "b@tarpit.test")
drtest.check("status=sent" in line and "relay=mx4.tarpit.test" in line,
             "no limit: tarpit.test delivered through mx4: %s" % line)
d2.stop()

# 3. bad values: file:line
for name, value in (("smtp_max_addresses", "-1"),
                    ("smtp_max_sessions", "two")):
    bad = os.path.join(drtest.TMPDIR, "bad-%s.conf" % name)
    with open(d.conf) as f:
        text = f.read()
    with open(bad, "w") as f:
        f.write(text + "%s = %s\n" % (name, value))
    lineno = text.count("\n") + 1
    r = subprocess.run([d.binary, "-n", "-c", bad], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    drtest.check(r.returncode != 0 and "%s:%d:" % (bad, lineno) in r.stdout
                 and name in r.stdout,
                 "%s = %s refused with file:line: %s" % (name, value,
                                                         r.stdout.strip()))

w.stop()
drtest.done()
