#!/usr/bin/python3
# smtp_client_tls.t - the outbound client's STARTTLS security against a real
# TLS peer (tests/scenario/lib/sink.py) with certificates made now
# (tests/scenario/lib/certs.py): DANE-EE / DANE-TA matches and failures,
# expiry rules, WebPKI, opportunistic and mandatory unauthenticated TLS,
# missing or refused STARTTLS, STARTTLS injection, a stalled handshake.
# Every failure must leave no message at the sink, and no MAIL command may
# ever reach it in cleartext when TLS is required.
# timeout: 300
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import drtest  # noqa: E402
import certs   # noqa: E402
import sink    # noqa: E402

TOOL = os.path.join(drtest.BUILDDIR, "tests", "unit", "smtp_send_tool")
if not os.access(TOOL, os.X_OK):
    drtest.skip("%s not built (make check-programs)" % TOOL)

D = os.path.join(drtest.TMPDIR, "certs")
MX = "mx.example.test"
SINK_IP = drtest.ip(5)

root = certs.CA(D)
inter = root.intermediate("Test Issuing CA")
leaf = inter.issue([MX])
expired = inter.issue([MX], expired=True)
wrong = inter.issue(["other.example.test"])
ss = certs.self_signed(D, [MX])
other_root = certs.CA(os.path.join(D, "other"), cn="Unrelated Root CA")

sinks = []
counter = [0]


def start_sink(cert=None, starttls=True, rules=(), extra=()):
    counter[0] += 1
    out = os.path.join(drtest.TMPDIR, "sink%d" % counter[0])
    s = sink.spawn(out, SINK_IP, 0,
                   cert=cert.chain if cert else None,
                   key=cert.key if cert else None,
                   starttls=starttls, rules=rules, extra=extra,
                   timeout=drtest.scaled(10))
    sinks.append(s)
    return s


def stop_all():
    for s in sinks:
        s.stop()


import atexit  # noqa: E402
atexit.register(stop_all)


def run(s, *args, timeout=30):
    """Run smtp_send_tool against sink s; returns (rc, events, output)."""
    argv = [TOOL, "--host", MX, "--timeout", str(int(drtest.scaled(3000))),
            "--to", "rcpt@example.test"] + list(args) + \
        ["%s:%d" % (s.host, s.port)]
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=drtest.scaled(timeout))
    drtest.check(s.wait_idle(10), "sink idle after the run")
    out = p.stdout.decode(errors="replace")
    err = p.stderr.decode(errors="replace")
    drtest.check("Sanitizer" not in err and "runtime error" not in err,
                 "no sanitizer report")
    ev = drtest.tool_events(out)
    drtest.log("$ %s\n%s%s", " ".join(argv[1:]), out,
               p.stderr.decode(errors="replace")[-2000:])
    return p.returncode, ev, out


def done_of(ev):
    return (ev.get("done") or [{}])[-1]


def expect_ok(name, s, args, auth=None, tls=True):
    rc, ev, out = run(s, *args)
    d = done_of(ev)
    drtest.check(rc == 0 and d.get("status") == "ok",
                 "%s: delivered (rc=%d %s)" % (name, rc, d))
    r = (ev.get("ready") or [{}])[0]
    if auth is not None:
        drtest.check(r.get("auth") == auth,
                     "%s: auth=%s (got %s)" % (name, auth, r.get("auth")))
    msgs = s.messages()
    drtest.check(len(msgs) == 1, "%s: sink has 1 message (%d)" %
                 (name, len(msgs)))
    if msgs:
        drtest.check(msgs[0]["tls"] == tls, "%s: tls=%s at the sink" %
                     (name, tls))
    return r, msgs


def expect_fail(name, s, args, cls, tlsrpt=None):
    rc, ev, out = run(s, *args)
    d = done_of(ev)
    drtest.check(rc == 1 and d.get("status") == "fail",
                 "%s: failed (rc=%d)" % (name, rc))
    drtest.check(d.get("class") == cls, "%s: class %s (got %s)" %
                 (name, cls, d.get("class")))
    if tlsrpt is not None:
        drtest.check(d.get("tlsrpt") == tlsrpt, "%s: tlsrpt %s (got %s)" %
                     (name, tlsrpt, d.get("tlsrpt")))
    drtest.check(not ev.get("ready"), "%s: session never became ready" %
                 name)
    drtest.check(s.messages() == [], "%s: nothing delivered" % name)
    # No transaction command may have reached the sink at all.
    for t in s.transcripts():
        for c in t["commands"]:
            verb = c.split(" ")[0].split(":")[0].upper()
            drtest.check(verb not in ("MAIL", "RCPT", "DATA"),
                         "%s: no %s sent (tls=%s)" % (name, verb, t["tls"]))
    return d


# ---- DANE-EE ---------------------------------------------------------------
s = start_sink(leaf)
r, m = expect_ok("dane-ee 3 1 1", s, ["--tls", "dane", "--base", MX,
                                      "--tlsa", leaf.tlsa(3, 1, 1)],
                 auth="dane-ee")
drtest.check(r.get("verified") == "1", "dane-ee: verified=1")
drtest.check(r.get("tlsa", "").lower() == leaf.tlsa(3, 1, 1).lower(),
             "dane-ee: the matched record is reported (%s)" % r.get("tlsa"))
drtest.check(m and m[0]["sni"] == MX, "dane-ee: SNI is the TLSA base domain")

for u, sel, mt in ((3, 0, 1), (3, 1, 2), (3, 0, 0)):
    s = start_sink(leaf)
    expect_ok("dane-ee %d %d %d" % (u, sel, mt), s,
              ["--tls", "dane", "--base", MX,
               "--tlsa", leaf.tlsa(u, sel, mt)], auth="dane-ee")

# one record of the set matches, others do not
s = start_sink(leaf)
expect_ok("dane-ee, one of three matches", s,
          ["--tls", "dane", "--base", MX,
           "--tlsa", "3 1 1 " + "00" * 32,
           "--tlsa", wrong.tlsa(3, 1, 1),
           "--tlsa", leaf.tlsa(3, 1, 1)], auth="dane-ee")

# DANE-EE ignores names and expiry (RFC 7672 §3.1.1)
s = start_sink(expired)
expect_ok("dane-ee, expired leaf", s,
          ["--tls", "dane", "--base", MX, "--tlsa", expired.tlsa(3, 1, 1)],
          auth="dane-ee")
s = start_sink(wrong)
expect_ok("dane-ee, other name", s,
          ["--tls", "dane", "--base", MX, "--tlsa", wrong.tlsa(3, 1, 1)],
          auth="dane-ee")
s = start_sink(ss)
expect_ok("dane-ee, self-signed", s,
          ["--tls", "dane", "--base", MX, "--tlsa", ss.tlsa(3, 1, 1)],
          auth="dane-ee")

# no match
s = start_sink(leaf)
expect_fail("dane, no record matches", s,
            ["--tls", "dane", "--base", MX, "--tlsa", wrong.tlsa(3, 1, 1)],
            "tls", "validation-failure")

# ---- DANE-TA ---------------------------------------------------------------
s = start_sink(leaf)
r, m = expect_ok("dane-ta 2 1 1 on the issuing CA", s,
                 ["--tls", "dane", "--base", MX,
                  "--tlsa", inter.tlsa(2, 1, 1)], auth="dane-ta")
s = start_sink(leaf)
expect_ok("dane-ta 2 0 0 on the root (full, not sent by the server)", s,
          ["--tls", "dane", "--base", MX, "--tlsa", root.tlsa(2, 0, 0)],
          auth="dane-ta")
# A digest of a trust anchor the server does not send cannot match
# (RFC 7671 §5.2.2): the server must include it in its chain.
s = start_sink(leaf)
expect_fail("dane-ta 2 0 1 on a root the server does not send", s,
            ["--tls", "dane", "--base", MX, "--tlsa", root.tlsa(2, 0, 1)],
            "tls", "validation-failure")
s = start_sink(leaf)
expect_ok("dane-ta, name is an extra reference name", s,
          ["--tls", "dane", "--base", "alias.example.test", "--name", MX,
           "--tlsa", inter.tlsa(2, 1, 1)], auth="dane-ta")
s = start_sink(wrong)
expect_fail("dane-ta, wrong name", s,
            ["--tls", "dane", "--base", MX, "--name", "example.test",
             "--tlsa", inter.tlsa(2, 1, 1)],
            "tls", "certificate-host-mismatch")
s = start_sink(expired)
expect_fail("dane-ta, expired leaf", s,
            ["--tls", "dane", "--base", MX, "--tlsa", inter.tlsa(2, 1, 1)],
            "tls", "certificate-expired")
s = start_sink(leaf)
expect_fail("dane-ta, unrelated CA", s,
            ["--tls", "dane", "--base", MX,
             "--tlsa", other_root.tlsa(2, 1, 1)], "tls")

# every record unusable (PKIX-EE, bad length): TLS mandatory, unauthenticated
s = start_sink(ss)
r, m = expect_ok("dane, all records unusable", s,
                 ["--tls", "dane", "--base", MX,
                  "--tlsa", "1 1 1 " + ss.tlsa_data(1, 1),
                  "--tlsa", "3 1 1 abcd"], auth="none")
drtest.check(r.get("dane_unusable") == "1", "unusable: reported")
s = start_sink(ss, starttls=False)
expect_fail("dane, all records unusable, no STARTTLS", s,
            ["--tls", "dane", "--base", MX,
             "--tlsa", "1 1 1 " + ss.tlsa_data(1, 1)],
            "starttls-missing", "starttls-not-supported")

# ---- STARTTLS missing / refused / injected / stalled -----------------------
for mode, extra in (("dane", ["--base", MX, "--tlsa", leaf.tlsa(3, 1, 1)]),
                    ("webpki", ["--name", MX, "--ca-file", root.crt]),
                    ("encrypt", [])):
    s = start_sink(leaf, starttls=False)
    expect_fail("%s, STARTTLS not offered" % mode, s,
                ["--tls", mode] + extra, "starttls-missing",
                "starttls-not-supported")
    t = s.transcripts()
    drtest.check(t and t[-1]["commands"][-1].upper() == "QUIT",
                 "%s, STARTTLS not offered: QUIT sent" % mode)

s = start_sink(leaf, rules=["STARTTLS||0|454 4.7.0 TLS not available"])
expect_fail("dane, STARTTLS refused", s,
            ["--tls", "dane", "--base", MX, "--tlsa", leaf.tlsa(3, 1, 1)],
            "starttls-missing", "starttls-not-supported")

s = start_sink(leaf, rules=["EHLO||0|550 5.5.1 no EHLO for you"])
expect_fail("dane, EHLO refused (no HELO fallback)", s,
            ["--tls", "dane", "--base", MX, "--tlsa", leaf.tlsa(3, 1, 1)],
            "starttls-missing", "starttls-not-supported")
drtest.check(all(not c.upper().startswith("HELO")
                 for t in s.transcripts() for c in t["commands"]),
             "dane, EHLO refused: no HELO sent")

s = start_sink(leaf, rules=["STARTTLS||0|inject"])
expect_fail("STARTTLS response injection", s,
            ["--tls", "dane", "--base", MX, "--tlsa", leaf.tlsa(3, 1, 1)],
            "protocol")

s = start_sink(leaf, rules=["STARTTLS||0|tls-stall"])
d = expect_fail("stalled handshake", s,
                ["--tls", "dane", "--base", MX, "--tlsa",
                 leaf.tlsa(3, 1, 1), "--timeout",
                 str(int(drtest.scaled(1000)))], "timeout")
drtest.check(d.get("stage") == "TLS", "stalled handshake: stage TLS")

# ---- WebPKI ----------------------------------------------------------------
s = start_sink(leaf)
r, m = expect_ok("webpki", s, ["--tls", "webpki", "--name", MX,
                               "--ca-file", root.crt], auth="webpki")
drtest.check(m and m[0]["sni"] == MX, "webpki: SNI is the MX name")
s = start_sink(leaf)
expect_ok("webpki, second name matches", s,
          ["--tls", "webpki", "--name", "example.test", "--name", MX,
           "--ca-file", root.crt], auth="webpki")
s = start_sink(wrong)
expect_fail("webpki, wrong name", s,
            ["--tls", "webpki", "--name", MX, "--ca-file", root.crt],
            "tls", "certificate-host-mismatch")
s = start_sink(expired)
expect_fail("webpki, expired", s,
            ["--tls", "webpki", "--name", MX, "--ca-file", root.crt],
            "tls", "certificate-expired")
s = start_sink(ss)
expect_fail("webpki, self-signed", s,
            ["--tls", "webpki", "--name", MX, "--ca-file", root.crt],
            "tls", "certificate-not-trusted")
s = start_sink(leaf)
expect_fail("webpki, other roots", s,
            ["--tls", "webpki", "--name", MX, "--ca-file", other_root.crt],
            "tls", "certificate-not-trusted")
# RFC 8461 §4.2: DNS-IDs only.  A certificate that names the MX only in its
# subject CN (no subjectAltName) must not match (issue #13 item 3).
cn_only = inter.issue([], cn=MX, name="cn-only")
s = start_sink(cn_only)
expect_fail("webpki, name only in the subject CN", s,
            ["--tls", "webpki", "--name", MX, "--ca-file", root.crt],
            "tls", "certificate-host-mismatch")
# wildcards: whole leftmost label only
wild = inter.issue(["*.example.test"], name="wild")
partial = inter.issue(["m*.example.test"], name="partial")
s = start_sink(wild)
expect_ok("webpki, wildcard", s, ["--tls", "webpki", "--name", MX,
                                  "--ca-file", root.crt], auth="webpki")
s = start_sink(partial)
expect_fail("webpki, partial wildcard refused", s,
            ["--tls", "webpki", "--name", MX, "--ca-file", root.crt],
            "tls", "certificate-host-mismatch")

# ---- opportunistic and unauthenticated ---------------------------------------
s = start_sink(ss)
r, m = expect_ok("may, self-signed: encrypted", s, ["--tls", "may"],
                 auth="none")
drtest.check(r.get("trusted") == "0", "may, self-signed: untrusted")
s = start_sink(leaf)
r, m = expect_ok("may, CA-signed: trusted", s,
                 ["--tls", "may", "--ca-file", root.crt], auth="none")
drtest.check(r.get("trusted") == "1", "may, CA-signed: trusted=1")
s = start_sink(expired)
expect_ok("encrypt, expired: encrypted anyway", s, ["--tls", "encrypt"],
          auth="none")
s = start_sink(ss, starttls=False)
expect_ok("may, no STARTTLS: cleartext", s, ["--tls", "may"], tls=False)
s = start_sink(ss, rules=["STARTTLS||0|454 4.7.0 TLS not available"])
expect_ok("may, STARTTLS refused: cleartext", s, ["--tls", "may"], tls=False)
s = start_sink(ss, extra=["--no-ehlo"])
expect_ok("may, EHLO refused: HELO, cleartext", s, ["--tls", "may"],
          tls=False)
s = start_sink(ss)
expect_ok("none: cleartext although STARTTLS is offered", s,
          ["--tls", "none"], tls=False)
s = start_sink(leaf, extra=["--tls-max", "1.2"])
r, m = expect_ok("dane over TLS 1.2", s,
                 ["--tls", "dane", "--base", MX, "--tlsa",
                  leaf.tlsa(3, 1, 1)], auth="dane-ee")
drtest.check(r.get("tls") == "TLSv1.2", "TLS 1.2 negotiated (%s)" %
             r.get("tls"))

drtest.done()
