#!/usr/bin/python3
# timeout: 300
"""bounce_relay honours a TLS level (issue #13 item 10).

DSNs carry the original message's headers.  They used to go to
bounce_relay with opportunistic TLS and a cleartext retry whatever the
operator wanted.  Now bounce_relay_tls says: "may" (default: STARTTLS
when offered, cleartext otherwise and after a failed handshake),
"encrypt" (TLS or defer, never cleartext), "verify" (TLS with a
certificate for bounce_relay_tls_name from ca_file), "none".

Each case: a message to nobody@perm.test is refused with 550, the DSN to
sender@senders.test goes to the bounce_relay sink of that case.
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
w.dest("perm.test", 11, rules=["RCPT|nobody@|0|550 5.1.1 no such user"])
w.dest("senders.test", 12)
root = certs.CA(os.path.join(w.pki, "ca"), "Bounce Relay Test Root")
good = root.issue(["relay.test"])
wrong = root.issue(["other.test"])


def relay_sink(name, n, cert=None, starttls=True, rules=()):
    ip = drtest.ip(n)
    s = sink.spawn(os.path.join(w.tmp, "relay-" + name), ip, 0,
                   cert=cert.chain if cert else None,
                   key=cert.key if cert else None, starttls=starttls,
                   rules=list(rules))
    w.sinks["relay-" + name] = s
    return s


R = {
    "plain": relay_sink("plain", 20, good, starttls=False),
    "garbage": relay_sink("garbage", 21, good,
                          rules=["STARTTLS||0|tls-garbage"]),
    "good": relay_sink("good", 22, good),
    "wrong": relay_sink("wrong", 23, wrong),
    "plain2": relay_sink("plain2", 24, good, starttls=False),
    "none": relay_sink("none", 25, good),
}
w.start()


def run(case, level, sk, **opts):
    """One daemon with this bounce_relay level; returns (status, dsn
    messages at the relay sink)."""
    d = w.daemon(name=case, min_backoff="1h", ca_file=root.crt,
                 bounce_relay="%s:%d" % (sk.host, sk.port),
                 bounce_relay_tls=level, **opts)
    c = drtest.SMTP(d.host, d.port)
    c.sendmail("sender@senders.test", ["nobody@perm.test"],
               b"From: <sender@senders.test>\r\nTo: <nobody@perm.test>\r\n"
               b"Subject: secret subject\r\n\r\nhello\r\n")
    c.close()
    rx = re.compile(r"to=<sender@senders\.test>, relay=bounce_relay\S*, "
                    r".*status=(sent|deferred|bounced)")
    drtest.wait_for(lambda: rx.search(d.log_text()) is not None,
                    30, "%s: the DSN's outcome" % case)
    st = rx.search(d.log_text()).group(1)
    d.stop()            # ends a cached session to the sink, too
    drtest.check(sk.wait_idle(10), "%s: sink idle" % case)
    return st, [m for m in sk.messages() if m["mail_from"] == ""]


def no_cleartext_mail(case, sk):
    for t in sk.transcripts():
        if t["tls"]:
            continue
        for cmd in t["commands"]:
            drtest.check(not cmd.upper().startswith(("MAIL", "RCPT",
                                                     "DATA")),
                         "%s: no %s in cleartext" % (case, cmd))


st, m = run("encrypt-nostarttls", "encrypt", R["plain"])
drtest.check(st == "deferred" and m == [], "encrypt, no STARTTLS: the DSN "
             "is deferred, not sent in cleartext (%s, %d)" % (st, len(m)))
no_cleartext_mail("encrypt-nostarttls", R["plain"])

st, m = run("encrypt-badtls", "encrypt", R["garbage"])
drtest.check(st == "deferred" and m == [], "encrypt, failed handshake: "
             "deferred, no cleartext retry (%s, %d)" % (st, len(m)))
no_cleartext_mail("encrypt-badtls", R["garbage"])

st, m = run("verify-ok", "verify", R["good"],
            bounce_relay_tls_name="relay.test")
drtest.check(st == "sent" and len(m) == 1 and m[0]["tls"] and
             m[0]["sni"] == "relay.test",
             "verify, right name: sent over TLS with SNI (%s)" % st)

st, m = run("verify-wrong", "verify", R["wrong"],
            bounce_relay_tls_name="relay.test")
drtest.check(st == "deferred" and m == [], "verify, wrong name: deferred "
             "(%s, %d)" % (st, len(m)))
no_cleartext_mail("verify-wrong", R["wrong"])

st, m = run("may", "may", R["plain2"])
drtest.check(st == "sent" and len(m) == 1 and not m[0]["tls"],
             "may (the default): cleartext when no STARTTLS (%s)" % st)

st, m = run("none", "none", R["none"])
drtest.check(st == "sent" and len(m) == 1 and not m[0]["tls"],
             "none: cleartext although STARTTLS is offered (%s)" % st)

# the config refuses verify without a name, and levels that need DNS
for level, want in (("verify", "needs bounce_relay_tls_name"),
                    ("dane", "want none, may, encrypt or verify")):
    d = w.daemon(name="bad-" + level, start=False,
                 bounce_relay="127.0.0.1:25", bounce_relay_tls=level)
    p = subprocess.run([d.binary, "-n", "-c", d.conf], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    out = p.stdout.decode(errors="replace")
    drtest.check(p.returncode != 0 and want in out and
                 re.search(r"danerelay\.conf:\d+: ", out) is not None,
                 "bounce_relay_tls = %s refused with file:line: %s" %
                 (level, out.strip()))
w.stop()
drtest.done()
