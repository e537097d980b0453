#!/usr/bin/python3
# timeout: 300
"""TLS memory (issue #23 part 2): a domain without DANE or MTA-STS that
was seen with STARTTLS is not delivered to with less afterwards.

Four unsigned destinations (no DANE; no MTA-STS), default_policy dane,
so each ends in opportunistic TLS.  The first message to each goes over
STARTTLS.  Then:

  - STARTTLS stripped: strip.test's MX is restarted without STARTTLS.
    The second message is deferred with "TLS downgrade refused:
    strip.test used STARTTLS until <date>", also after kill -9 and a
    restart (the memory is on disk); after `danerelay tls-memory forget`
    and `danerelay flush` it arrives (in cleartext);
  - handshake garbage: garbage.test's MX answers the ClientHello with
    bytes that are not TLS: deferred, never retried in cleartext;
  - backup MX: backup.test's STARTTLS MX (mx1) is down; its backup mx2
    offers no STARTTLS: not delivered there, deferred;
  - explicit "may": may.test has its own policy_file line "may"; after
    its MX drops STARTTLS the second message is delivered in cleartext
    (and the domain was never remembered);
  - tls_memory = verify (a second daemon): verify.test's MX served a
    chain of the CA in ca_file for its name; restarted with a
    self-signed certificate, its second message is deferred;
  - a TLSRPT report to rpt.test (remembered, its MX restarted without
    STARTTLS) is delivered in cleartext (RFC 8460 §3), while a normal
    message is deferred;
and `danerelay tls-memory show` lists what is remembered, with the
daemon running (control socket) and stopped (the file), forget works on
the file too; /metrics counts the refusals; tls_memory = no (set by
SIGHUP) refuses nothing.
"""
import os
import re
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import world  # noqa: E402

w = world.World()
w.dest("strip.test", mx=[world.MX("mx", 21, tlsa=None)], secure=False)
w.dest("garbage.test", mx=[world.MX("mx", 22, tlsa=None)], secure=False)
w.dest("backup.test", mx=[world.MX("mx1", 23, tlsa=None),
                          world.MX("mx2", 24, tlsa=None, starttls=False)],
       secure=False)
w.dest("may.test", mx=[world.MX("mx", 25, tlsa=None)], secure=False)
# TLSRPT reports to it are exempt (RFC 8460 §3)
w.dest("rpt.test", mx=[world.MX("mx", 27, tlsa=None)], secure=False,
       tlsrpt="mailto:tlsrpt@rpt.test")
# for tls_memory = verify (daemon d2): a certificate of the world's CA
w.dest("verify.test", mx=[world.MX("mx", 26, cert="ca", tlsa=None)],
       secure=False)
w.start()
policy = os.path.join(w.tmp, "policy")
with open(policy, "w") as f:
    f.write("# the operator's explicit choice\nmay.test may\n")
os.chmod(policy, 0o644)
mhost = drtest.ip(2)
mport = drtest.free_port(mhost)
d = w.daemon(policy_file=policy, min_backoff="1h", max_backoff="1h",
             metrics_listen="%s:%d" % (mhost, mport), tlsrpt="yes",
             tlsrpt_from="tlsrpt-noreply@relay.dr-test.example")
DOMS = ("strip.test", "garbage.test", "backup.test", "may.test", "rpt.test")
REFUSED = r"TLS downgrade refused: %s used STARTTLS until " \
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def refusals():
    with urllib.request.urlopen("http://%s:%d/metrics" % (mhost, mport),
                                timeout=drtest.scaled(10)) as r:
        text = r.read().decode()
    m = re.search(r"^danerelay_tls_downgrade_refused_total (\d+)$", text,
                  re.M)
    drtest.check(m is not None, "/metrics has the refusal counter")
    return int(m.group(1)) if m else -1


def show(*args):
    r = d.cli("tls-memory", "show", *args)
    drtest.check(r.returncode == 0, "tls-memory show %s: exit %d: %s"
                 % (args, r.returncode, r.stderr))
    return r.stdout


def outcome_after(rcpt, n, timeout=60):
    """The (n+1)th outcome line of rcpt."""
    return drtest.wait_for(lambda: (w.outcomes(d).get(rcpt, []) + [None] *
                                    (n + 1))[n], drtest.scaled(timeout),
                           "outcome %d of %s" % (n + 1, rcpt))


def no_mail_command(s, what):
    for t in s.transcripts():
        drtest.check(not any(c.upper().startswith("MAIL")
                             for c in t.get("commands", [])),
                     "%s: no MAIL command in cleartext: %s" % (what, t))


# -- first contact: over STARTTLS, never blocked
for dom in DOMS:
    w.send(d, "first@" + dom)
for dom in DOMS:
    line = w.expect(d, dom, "sent", rcpt="first@" + dom,
                    at="mx1" if dom == "backup.test" else "mx")
    drtest.check(", tls=TLSv1." in line, "%s: first message over TLS: %s"
                 % (dom, line))
out = show()
for dom in ("strip.test", "garbage.test", "backup.test", "rpt.test"):
    drtest.check(re.search(r"^%s\s+encrypt\s+last seen" % re.escape(dom),
                           out, re.M), "%s remembered: %s" % (dom, out))
drtest.check("may.test" not in out, "may.test (its own policy_file line) "
             "is not remembered: %s" % out)
drtest.check("4 remembered domains." in out, out)
drtest.check(refusals() == 0, "no refusal yet")

# -- the attacks (and the explicit "may")
w.restart_mx("strip.test", "mx", starttls=False)
w.restart_mx("garbage.test", "mx", rules=["STARTTLS||0|tls-garbage"])
w.stop_mx("backup.test", "mx1")
w.restart_mx("may.test", "mx", starttls=False)
for dom in DOMS[:4]:
    w.send(d, "second@" + dom)
for dom in ("strip.test", "garbage.test", "backup.test"):
    w.expect(d, dom, "deferred", rcpt="second@" + dom,
             why=REFUSED % re.escape(dom))
line = w.expect(d, "may.test", "sent", rcpt="second@may.test", at="mx")
drtest.check(", tls=none," in line, "may.test: cleartext: %s" % line)
gq = [x for x in re.findall(r"(\w+): to=<second@garbage\.test>",
                            d.log_text())]
drtest.check(gq and not re.search(r"%s: .*trying again without TLS"
                                  % gq[0], d.log_text()),
             "garbage.test: no cleartext retry")
no_mail_command(w.sink("garbage.test", "mx"), "garbage.test")
no_mail_command(w.sink("backup.test", "mx2"), "backup.test mx2")
drtest.check(w.sink("backup.test", "mx2").stats().get("connections", 0) > 0,
             "backup.test: mx2 was tried (and refused)")
drtest.check(refusals() >= 3, "refusals counted")

# -- a TLSRPT report to a remembered domain whose MX dropped STARTTLS:
# delivered all the same (in cleartext), unlike its other mail
w.restart_mx("rpt.test", "mx", starttls=False)
w.send(d, "second@rpt.test")
w.expect(d, "rpt.test", "deferred", rcpt="second@rpt.test",
         why=REFUSED % r"rpt\.test")
r = d.cli("tlsrpt", "send", "--date", time.strftime("%Y-%m-%d",
                                                    time.gmtime()),
          timeout=120)
drtest.check(r.returncode == 0, "tlsrpt send: %s %s" % (r.stdout, r.stderr))
line = w.expect(d, "rpt.test", "sent", rcpt="tlsrpt@rpt.test", at="mx")
drtest.check(", tls=none," in line, "the report went in cleartext: %s"
             % line)

# -- kill -9 and a restart: still remembered
d.kill9()
d.start()
n = len(w.outcomes(d).get("second@strip.test", []))
r = d.cli("flush", "strip.test")
drtest.check(r.returncode == 0, "flush: %s" % r.stderr)
line = outcome_after("second@strip.test", n)
drtest.check("status=deferred" in line and
             re.search(REFUSED % r"strip\.test", line),
             "after kill -9: still refused: %s" % line)
drtest.check(not w.sink("strip.test", "mx").messages(),
             "strip.test: nothing arrived")
drtest.check(re.search(r"^domain:\s+strip\.test$", show("strip.test"),
                       re.M), "show DOMAIN")

# -- forget (daemon running) and flush: it arrives
n = len(w.outcomes(d).get("second@strip.test", []))
r = d.cli("tls-memory", "forget", "strip.test")
drtest.check(r.returncode == 0 and "forgotten" in r.stdout,
             "forget: %s %s" % (r.stdout, r.stderr))
drtest.check("strip.test" not in show(), "forgotten in the daemon")
r = d.cli("flush", "strip.test")
drtest.check(r.returncode == 0, "flush: %s" % r.stderr)
line = outcome_after("second@strip.test", n)
drtest.check("status=sent" in line, "after forget + flush: %s" % line)
drtest.check(len(w.sink("strip.test", "mx").messages()) == 1,
             "strip.test: arrived once")

# -- with the daemon stopped: show and forget on the file
d.stop()
out = show()
drtest.check("garbage.test" in out and "backup.test" in out and
             "strip.test" not in out, "show on the file: %s" % out)
r = d.cli("tls-memory", "forget", "garbage.test")
drtest.check(r.returncode == 0 and "forgotten" in r.stdout,
             "forget on the file: %s %s" % (r.stdout, r.stderr))
r = d.cli("tls-memory", "forget", "nothing.test")
drtest.check(r.returncode == 1 and "nothing remembered" in r.stdout,
             "forget of nothing: %s" % r.stdout)
d.start()
out = show()
drtest.check("garbage.test" not in out and "backup.test" in out,
             "the daemon reads what the file says: %s" % out)
r = d.cli("tls-memory", "bogus")
drtest.check(r.returncode == 2, "usage error")

# -- tls_memory = no (by SIGHUP): backup.test, still remembered, goes to
# its cleartext backup MX
n = len(w.outcomes(d).get("second@backup.test", []))
d.write_config(tls_memory="no")
d.reload()
drtest.wait_for(lambda: ": reloaded /" in
                d.log_text().split("==== drtest")[-1], drtest.scaled(10),
                "the reload")
r = d.cli("flush", "backup.test")
drtest.check(r.returncode == 0, "flush: %s" % r.stderr)
line = outcome_after("second@backup.test", n)
drtest.check("status=sent" in line and ", tls=none," in line and
             "relay=mx2.backup.test" in line,
             "tls_memory = no: cleartext to the backup MX: %s" % line)

# -- tls_memory = verify: a verified chain is remembered and required
d2 = w.daemon(name="d2", tls_memory="verify", min_backoff="1h",
              max_backoff="1h")
w.send(d2, "first@verify.test")
line = w.expect(d2, "verify.test", "sent", rcpt="first@verify.test",
                at="mx")
drtest.check(", tls=TLSv1." in line, "verify.test over TLS: %s" % line)
r = d2.cli("tls-memory", "show")
drtest.check(re.search(r"^verify\.test\s+verify\s", r.stdout, re.M),
             "verify.test remembered at verify: %s" % r.stdout)
w.restart_mx("verify.test", "mx", cert="self")
w.send(d2, "second@verify.test")
w.expect(d2, "verify.test", "deferred", rcpt="second@verify.test",
         why=REFUSED % r"verify\.test")

w.stop()
drtest.done()
