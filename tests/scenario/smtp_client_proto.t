#!/usr/bin/python3
# smtp_client_proto.t - the outbound client's SMTP conduct against the test
# sink (tests/scenario/lib/sink.py), over STARTTLS: per-recipient replies,
# pipelining or not, dot-stuffing and large bodies streamed intact,
# session reuse (with RSET after a failed transaction), SIZE / SMTPUTF8 /
# 8BITMIME, failure classes (4xx/5xx at each stage, 421, a closed
# connection, refused connection, over-long reply lines) and timeouts at
# the banner, a command and the end of data.
# timeout: 300
import hashlib
import os
import subprocess
import sys
import time

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
SINK_IP = drtest.ip(6)
leaf = certs.self_signed(D, [MX])
TLSA = leaf.tlsa(3, 1, 1)
DANE = ["--tls", "dane", "--base", MX, "--tlsa", TLSA]

sinks = []
counter = [0]


def start_sink(rules=(), extra=(), starttls=True):
    counter[0] += 1
    out = os.path.join(drtest.TMPDIR, "sink%d" % counter[0])
    s = sink.spawn(out, SINK_IP, 0, cert=leaf.chain, key=leaf.key,
                   starttls=starttls, rules=rules, extra=extra,
                   timeout=drtest.scaled(10))
    sinks.append(s)
    return s


def stop_all():
    for s in sinks:
        s.stop()


import atexit  # noqa: E402
atexit.register(stop_all)


def run(target, *args, rcpts=("rcpt@example.test",), data=None,
        timeout=30, tls=DANE):
    """smtp_send_tool against a sink (or "ip:port"); (rc, events)."""
    argv = [TOOL, "--host", MX, "--timeout", str(int(drtest.scaled(3000)))]
    argv += list(tls)
    for r in rcpts:
        argv += ["--to", r]
    if data is not None:
        path = os.path.join(drtest.TMPDIR, "data-%d" % time.monotonic_ns())
        with open(path, "wb") as f:
            f.write(data)
        argv += ["--data", path]
    argv += list(args)
    argv.append(target if isinstance(target, str) else
                "%s:%d" % (target.host, target.port))
    t0 = time.monotonic()
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=drtest.scaled(timeout))
    elapsed = time.monotonic() - t0
    if not isinstance(target, str):
        drtest.check(target.wait_idle(10), "sink idle")
    out = p.stdout.decode(errors="replace")
    err = p.stderr.decode(errors="replace")
    drtest.check("Sanitizer" not in err and "runtime error" not in err,
                 "no sanitizer report")
    ev = drtest.tool_events(out)
    ev["elapsed"] = elapsed
    drtest.log("$ %s  (%.2fs)\n%s%s", " ".join(argv[1:]), elapsed, out,
               p.stderr.decode(errors="replace")[-1500:])
    return p.returncode, ev


def done(ev, i=-1):
    return (ev.get("done") or [{}])[i]


def commands(s):
    return [c for t in s.transcripts() for c in t["commands"]]


# ---- per-recipient replies, pipelined ---------------------------------------
s = start_sink(rules=["RCPT|temp@|1|451 4.3.0 try again later",
                      "RCPT|bad@|0|550 5.1.1 no such user"])
rc, ev = run(s, rcpts=["ok1@example.test", "temp@example.test",
                       "bad@example.test", "ok2@example.test"])
r = ev.get("rcpt", [])
drtest.check([x.get("code") for x in r] == ["250", "451", "550", "250"],
             "per-recipient codes 250/451/550/250 (%s)" %
             [x.get("code") for x in r])
drtest.check(r and r[2].get("reply") == "550 5.1.1 no such user",
             "the 550 reply text is passed on")
drtest.check(rc == 0 and done(ev).get("naccepted") == "2",
             "message accepted for 2 recipients")
m = s.messages()
drtest.check(len(m) == 1 and m[0]["rcpts"] == ["ok1@example.test",
                                               "ok2@example.test"],
             "sink got the message for the accepted recipients only")
drtest.check(m and m[0]["pipelined"], "MAIL/RCPT/DATA were pipelined")
drtest.check(m and m[0]["tls"], "over TLS")
# the 451 was for the first time only
rc, ev = run(s, rcpts=["temp@example.test"])
drtest.check(rc == 0 and ev["rcpt"][0].get("code") == "250",
             "second try of the 451 recipient accepted")

# ---- the same without PIPELINING -------------------------------------------
s = start_sink(rules=["RCPT|bad@|0|550 5.1.1 no such user"],
               extra=["--no-pipelining"])
rc, ev = run(s, rcpts=["ok@example.test", "bad@example.test"])
drtest.check(rc == 0 and [x.get("code") for x in ev.get("rcpt", [])] ==
             ["250", "550"], "no pipelining: per-recipient replies")
m = s.messages()
drtest.check(len(m) == 1 and not m[0]["pipelined"],
             "no pipelining: one command at a time")

# ---- every recipient refused: no DATA, the transaction fails ----------------
for pipe in (True, False):
    s = start_sink(rules=["RCPT||0|550 5.1.1 nobody here"],
                   extra=[] if pipe else ["--no-pipelining"])
    rc, ev = run(s, rcpts=["a@example.test", "b@example.test"])
    d = done(ev)
    what = "all refused (%s)" % ("pipelined" if pipe else "one by one")
    drtest.check(rc == 1 and d.get("class") == "response" and
                 d.get("permanent") == "1" and d.get("naccepted") == "0",
                 "%s: permanent response failure" % what)
    drtest.check(s.messages() == [], "%s: nothing delivered" % what)
    if not pipe:
        drtest.check("DATA" not in commands(s), "%s: no DATA sent" % what)

# ---- MAIL refused -------------------------------------------------------------
for pipe in (True, False):
    s = start_sink(rules=["MAIL||0|451 4.7.1 greylisted"],
                   extra=[] if pipe else ["--no-pipelining"])
    rc, ev = run(s, rcpts=["a@example.test", "b@example.test"])
    d = done(ev)
    what = "MAIL 451 (%s)" % ("pipelined" if pipe else "one by one")
    drtest.check(rc == 1 and d.get("stage") == "MAIL" and
                 d.get("code") == "451" and d.get("permanent") == "0",
                 "%s: temporary failure at MAIL (%s)" % (what, d))
    drtest.check(not ev.get("rcpt"), "%s: no per-recipient results" % what)
    drtest.check(s.messages() == [], "%s: nothing delivered" % what)

# ---- end of data replies ------------------------------------------------------
s = start_sink(rules=["EOM||1|451 4.3.0 queue full", "EOM||1|554 5.6.0 no"])
rc, ev = run(s)
drtest.check(rc == 1 and done(ev).get("stage") == "end of data" and
             done(ev).get("permanent") == "0", "451 after data: temporary")
rc, ev = run(s)
drtest.check(rc == 1 and done(ev).get("permanent") == "1" and
             done(ev).get("enh") == "5.6.0", "554 after data: permanent")
drtest.check(s.messages() == [], "refused data: nothing recorded")

# ---- dot-stuffing and line ends -----------------------------------------------
body = (b"Subject: dots\r\n\r\n.\r\n..\r\n.leading dot\r\n"
        b"middle . dot\r\n. \r\n...\r\n.\r\nlast line without CRLF.")
s = start_sink()
rc, ev = run(s, data=body)
m = s.messages()
want = body + b"\r\n"
drtest.check(rc == 0 and len(m) == 1 and m[0]["data"] == want,
             "dot-stuffed body arrives intact (%r)" %
             (m[0]["data"][:120] if m else None))
body = b"Subject: bare LF\n\nline one\n.dot line\nline three\r\n"
s = start_sink()
rc, ev = run(s, data=body)
m = s.messages()
drtest.check(rc == 0 and m and m[0]["data"] ==
             b"Subject: bare LF\r\n\r\nline one\r\n.dot line\r\n"
             b"line three\r\n", "bare LF sent as CRLF")

# ---- a large body is streamed, intact, with dots at chunk edges --------------
lines = []
i = 0
size = 0
while size < 3 * 1024 * 1024:
    ln = (b"." if i % 7 == 0 else b"") + (b"%08d " % i) + b"x" * (i % 300)
    lines.append(ln)
    size += len(ln) + 2
    i += 1
big = b"Subject: big\r\n\r\n" + b"\r\n".join(lines) + b"\r\n"
s = start_sink()
rc, ev = run(s, data=big, timeout=120)
m = s.messages()
drtest.check(rc == 0 and m and m[0]["size"] == len(big) and
             m[0]["sha256"] == hashlib.sha256(big).hexdigest(),
             "3 MB body intact (%d bytes)" % len(big))
drtest.check(m and ("SIZE=%d" % len(big)) in m[0]["mail_params"],
             "SIZE= announced")

# ---- session reuse ------------------------------------------------------------
s = start_sink()
rc, ev = run(s, "--count", "3")
drtest.check(rc == 0 and len(ev.get("done", [])) == 3,
             "three messages over one session")
drtest.check(s.stats().get("connections") == 1 and len(s.messages()) == 3,
             "one connection, three messages at the sink")
drtest.check(len(set(x["conn"] for x in s.messages())) == 1,
             "all on the same connection")
s = start_sink(rules=["RCPT||1|550 5.1.1 no"])
rc, ev = run(s, "--count", "2")
drtest.check(done(ev, 0).get("status") == "fail" and
             done(ev, 0).get("usable") == "1" and
             done(ev, 1).get("status") == "ok",
             "failed transaction, then the session is reused")
drtest.check("RSET" in commands(s), "RSET after the failed transaction")
drtest.check(len(s.messages()) == 1, "second message delivered")

# ---- extensions ---------------------------------------------------------------
s = start_sink()
rc, ev = run(s, "--8bit", "--smtputf8", "--from", "j\u00f6rg@example.test",
             rcpts=["\u00fc@example.test"])
m = s.messages()
drtest.check(rc == 0 and m and "BODY=8BITMIME" in m[0]["mail_params"] and
             "SMTPUTF8" in m[0]["mail_params"],
             "BODY=8BITMIME and SMTPUTF8 sent (%s)" %
             (m[0]["mail_params"] if m else None))
drtest.check(m and m[0]["mail_from"] == "j\u00f6rg@example.test",
             "UTF-8 sender intact")
# a UTF-8 header field needs SMTPUTF8 (RFC 6532)
UTF8_HDR = ("From: <a@example.test>\r\nSubject: Gr\u00fc\u00dfe\r\n\r\n"
            "body\r\n").encode()
s = start_sink(extra=["--no-smtputf8"])
rc, ev = run(s, "--smtputf8", "--count", "2", data=UTF8_HDR)
d = done(ev, 0)
drtest.check(rc == 1 and d.get("class") == "unsupported" and
             d.get("permanent") == "1" and d.get("enh") == "5.6.7",
             "SMTPUTF8 needed, not offered: permanent 5.6.7 (%s)" % d)
drtest.check(not any(c.upper().startswith("MAIL") for c in commands(s)),
             "SMTPUTF8 not offered: no MAIL sent")
drtest.check(done(ev, 1).get("class") == "unsupported",
             "the session stays usable after it")
s = start_sink(extra=["--no-smtputf8"])
rc, ev = run(s, rcpts=["\u00fc@example.test"])
drtest.check(rc == 1 and done(ev).get("enh") == "5.6.7",
             "UTF-8 address without the flag: SMTPUTF8 still required")
# flagged SMTPUTF8 but all ASCII in envelope and headers (a UTF-8 body is
# 8BITMIME's business): delivered to a server without SMTPUTF8, without
# the parameter (issue #13 item 7)
ASCII_HDR = ("From: <a@example.test>\r\nSubject: plain\r\n\r\n"
             "Gr\u00fc\u00dfe im Text\r\n").encode()
s = start_sink(extra=["--no-smtputf8"])
rc, ev = run(s, "--smtputf8", "--8bit", data=ASCII_HDR)
m = s.messages()
drtest.check(rc == 0 and m and "SMTPUTF8" not in m[0]["mail_params"] and
             m[0]["data"] == ASCII_HDR,
             "SMTPUTF8 flag, ASCII envelope and headers: sent without "
             "SMTPUTF8 (%s)" % done(ev))
s = start_sink()
rc, ev = run(s, "--smtputf8", data=ASCII_HDR)
m = s.messages()
drtest.check(rc == 0 and m and "SMTPUTF8" in m[0]["mail_params"],
             "SMTPUTF8 flag, server offers it: the parameter is kept")
s = start_sink()
rc, ev = run(s, rcpts=["\u00fc@example.test"])
m = s.messages()
drtest.check(rc == 0 and m and "SMTPUTF8" in m[0]["mail_params"],
             "UTF-8 address: SMTPUTF8 parameter added")
s = start_sink(extra=["--no-8bitmime"])
rc, ev = run(s, "--8bit")
m = s.messages()
drtest.check(rc == 0 and m and "BODY=" not in m[0]["mail_params"],
             "no 8BITMIME: no BODY= parameter")
s = start_sink(extra=["--size", "100"])
rc, ev = run(s, data=b"Subject: x\r\n\r\n" + b"y" * 200 + b"\r\n")
d = done(ev)
drtest.check(rc == 1 and d.get("class") == "unsupported" and
             d.get("enh") == "5.3.4" and d.get("permanent") == "1",
             "larger than SIZE: permanent 5.3.4 (%s)" % d)
drtest.check(s.messages() == [], "larger than SIZE: nothing sent")

# ---- greeting and session failures ---------------------------------------------
s = start_sink(rules=["BANNER||0|554 5.7.1 go away"])
rc, ev = run(s)
d = done(ev)
drtest.check(rc == 1 and d.get("class") == "response" and
             d.get("stage") == "banner" and d.get("code") == "554" and
             d.get("usable") == "0", "554 greeting (%s)" % d)
drtest.check(commands(s) == ["QUIT"], "554 greeting: only QUIT sent")
s = start_sink(rules=["RCPT||0|421 4.3.2 shutting down"])
rc, ev = run(s, rcpts=["a@example.test", "b@example.test"])
d = done(ev)
drtest.check(rc == 1 and d.get("code") == "421" and d.get("usable") == "0" and
             d.get("permanent") == "0", "421 during RCPT (%s)" % d)
s = start_sink(rules=["DATA||0|close"])
rc, ev = run(s)
d = done(ev)
drtest.check(rc == 1 and d.get("class") == "connection" and
             d.get("usable") == "0", "connection closed at DATA (%s)" % d)
s = start_sink(rules=["EHLO||0|250-" + "x" * 5000 + "\\n250 OK"])
rc, ev = run(s)
d = done(ev)
drtest.check(rc == 1 and d.get("class") == "protocol",
             "reply line over 4096 bytes: protocol failure (%s)" % d)
s = start_sink(rules=["MAIL||0|2x0 what"])
rc, ev = run(s)
drtest.check(rc == 1 and done(ev).get("class") == "protocol",
             "malformed reply code: protocol failure")
s = start_sink(rules=["EHLO||0|" + "\\n".join(["250-l%d" % n
                                                for n in range(150)])
                      + "\\n250 end"])
rc, ev = run(s)
drtest.check(rc == 1 and done(ev).get("class") == "protocol",
             "reply with 151 lines: protocol failure")

port = drtest.free_port(drtest.ip(7))
rc, ev = run("%s:%d" % (drtest.ip(7), port))
drtest.check(rc == 1 and done(ev).get("class") == "connection" and
             done(ev).get("stage") == "connect", "connection refused")

# ---- timeouts -----------------------------------------------------------------
T = ["--timeout", str(int(drtest.scaled(1000)))]
for rule, stage in (("BANNER||0|stall", "banner"), ("EHLO||0|stall", "EHLO"),
                    ("RCPT||0|stall", "RCPT")):
    s = start_sink(rules=[rule])
    rc, ev = run(s, *T)
    d = done(ev)
    drtest.check(rc == 1 and d.get("class") == "timeout" and
                 d.get("stage") == stage,
                 "stall at %s: timeout (%s)" % (stage, d))
    drtest.check(ev["elapsed"] < drtest.scaled(6),
                 "stall at %s: bounded wait (%.1fs)" % (stage, ev["elapsed"]))
s = start_sink(rules=["EOM||0|stall"])
rc, ev = run(s, "--data-timeout", str(int(drtest.scaled(1500))))
d = done(ev)
drtest.check(rc == 1 and d.get("class") == "timeout" and
             d.get("stage") == "end of data",
             "stall after the final dot: timeout (%s)" % d)
drtest.check(ev["elapsed"] < drtest.scaled(8), "bounded wait after data")

# connect timeout: a listener with a full accept queue drops further SYNs,
# so the TCP connect itself hangs.
import socket  # noqa: E402
lsock = socket.socket()
lsock.bind((drtest.ip(8), 0))
lsock.listen(0)
lport = lsock.getsockname()[1]
fillers = []
for _ in range(3):
    f = socket.socket()
    f.setblocking(False)
    try:
        f.connect((drtest.ip(8), lport))
    except BlockingIOError:
        pass
    fillers.append(f)
time.sleep(0.2)
rc, ev = run("%s:%d" % (drtest.ip(8), lport), "--connect-timeout",
             str(int(drtest.scaled(1000))), tls=["--tls", "none"])
d = done(ev)
drtest.check(rc == 1 and d.get("class") == "timeout" and
             d.get("stage") in ("connect", "banner"),
             "connect to a host that does not answer: timeout (%s)" % d)
drtest.check(ev["elapsed"] < drtest.scaled(6), "bounded connect wait")
for f in fillers:
    f.close()
lsock.close()

# ---- cleartext when allowed -----------------------------------------------------
s = start_sink(starttls=False)
rc, ev = run(s, tls=["--tls", "may"])
drtest.check(rc == 0 and s.messages() and not s.messages()[0]["tls"],
             "may without STARTTLS: delivered in cleartext, recorded")

drtest.done()
