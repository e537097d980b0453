#!/usr/bin/python3
# smtpd_session.t - the inbound SMTP server, command by command, against a
# real danerelayd: EHLO keywords before and after STARTTLS (real TLS, a
# certificate made with the openssl CLI), AUTH refused in the clear, AUTH
# PLAIN and LOGIN success and failure over TLS (hash made with
# `openssl passwd -6`, the failure logged for fail2ban), relay denied
# (554 5.7.1) for a client outside allow_clients and allowed after AUTH,
# pipelined transactions, line limits (512-octet commands, 1000-octet
# text), NUL bytes, bare LF / CR and <LF>.<LF> smuggling in DATA, SIZE
# and message size (552, session still usable), max recipients (452),
# max errors (421), STARTTLS command injection, an HTTP request, an early
# talker, idle and total session timeouts, the client limit, SIGHUP reload
# of auth_file, and that each queued message is exactly the bytes sent
# (after un-dot-stuffing) plus one Received: header, with the envelope
# right (sender, recipients, ORCPT, ENVID, RET, 8BITMIME, SMTPUTF8, helo,
# client address, auth user).
#
# timeout: 240
import base64
import os
import re
import select
import signal
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import drtest  # noqa: E402
from drtest import check, log  # noqa: E402

HOST = "relay.dr-test.example"
CLIENT = "client.dr-test.example"
DEST = "dest.dr-test.example"
GOOD = drtest.ip(2)             # in allow_clients
OUTSIDER = drtest.ip(3)         # not in allow_clients
MAXSIZE = 100000
MAXRCPT = 5
MAXERR = 5
IDLE = 3

CERT = None


def connect(d, source=GOOD, timeout=10):
    c = drtest.SMTP(d.host, d.port, timeout=timeout, source=source)
    check(c.banner[0] == 220 and c.banner[1] == HOST + " ESMTP danerelay",
          "banner: %s" % (c.banner,))
    return c


def reply_or_close(c):
    try:
        return c.reply()
    except (OSError, drtest.SMTPError):
        return (None, "connection closed")


closed_within = drtest.closed_within


def keywords(text):
    return [line.split()[0].upper() if line else "" for line in
            text.split("\n")[1:]], text.split("\n")


def starttls(c):
    """STARTTLS verified against our certificate (drtest: nothing may
    follow the 220) -> the TLS version."""
    return c.starttls(cafile=CERT, hostname=HOST)


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def queued(text):
    m = drtest.QUEUED_RE.search(text)
    return m.group(1) if m else None


def check_spooled(d, qid, sent, what):
    """The spool holds Received: + exactly what the client meant to send."""
    data = d.read_data(qid)
    body = drtest.strip_received(data)
    check(body == sent, "%s: spooled data differs from what was sent "
          "(%d vs %d bytes)" % (what, len(body or b""), len(sent)))
    return data


# ---------------------------------------------------------------- tests

def test_basics(d):
    c = connect(d)
    code, text = c.cmd("MAIL FROM:<a@%s>" % CLIENT)
    check(code == 503 and "5.5.1" in text, "MAIL before EHLO: %d %s"
          % (code, text))
    code, text = c.cmd("HELO " + CLIENT)
    check(code == 250 and text == HOST, "HELO: %d %s" % (code, text))
    code, text = c.cmd("EHLO " + CLIENT)
    kw, lines = keywords(text)
    check(code == 250 and lines[0] == HOST, "EHLO first line: %s" % lines)
    # DSN always (RFC 3461); REQUIRETLS only inside TLS (RFC 8689 §4.1)
    check(set(kw) == {"PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8",
                      "ENHANCEDSTATUSCODES", "STARTTLS", "DSN"},
          "EHLO keywords in the clear: %s" % kw)
    check("SIZE %d" % MAXSIZE in lines, "SIZE keyword: %s" % lines)
    check("AUTH" not in " ".join(lines), "AUTH offered in the clear")
    for cmd, want in (("NOOP", 250), ("NOOP whatever", 250), ("RSET", 250),
                      ("VRFY postmaster", 252), ("EXPN staff", 502),
                      ("HELP", 214), ("RCPT TO:<r@%s>" % DEST, 503),
                      ("DATA", 503), ("BDAT 10 LAST", 500),
                      ("FOO", 500), ("EHLO", 501), ("EHLO a b", 501),
                      ("RSET x", 501), ("MAIL FROM:a@b.example", 501),
                      ("MAIL FROM:<a@b.example> XFOO=1", 555),
                      ("MAIL FROM:<a@b.example> BODY=BINARYMIME", 555),
                      # issue #17: REQUIRETLS in cleartext; bad DSN syntax
                      ("MAIL FROM:<a@b.example> REQUIRETLS", 530),
                      ("MAIL FROM:<a@b.example> RET=ALL", 501),
                      ("MAIL FROM:<a@b.example> ENVID=a+zz", 501)):
        code, text = c.cmd(cmd)
        check(code == want, "%s -> %d %s (wanted %d)" % (cmd, code, text,
                                                         want))
        if code != 250 and code >= 500:
            check(re.match(r"[245]\.\d+\.\d+ ", text) is not None,
                  "%s: no enhanced status code in %r" % (cmd, text))
        if code >= 500:         # do not run into max_errors here
            c.cmd("QUIT")
            c.close()
            c = connect(d)
            c.expect("EHLO " + CLIENT, 250)
    c.expect("MAIL FROM:<a@%s>" % CLIENT, 250)
    code, text = c.cmd("MAIL FROM:<b@%s>" % CLIENT)
    check(code == 503, "nested MAIL: %d %s" % (code, text))
    code, text = c.cmd("DATA")
    check(code == 503, "DATA without RCPT: %d %s" % (code, text))
    code, text = c.cmd("RCPT TO:<>")
    check(code == 501, "RCPT TO:<>: %d %s" % (code, text))
    # RCPT TO:<postmaster>: smtpd_postmaster.t (a 550 here would be one
    # error too many for the QUIT below)
    c.expect("RSET", 250)
    code, text = c.cmd("RCPT TO:<r@%s>" % DEST)
    check(code == 503, "RCPT after RSET: %d %s" % (code, text))
    code, text = c.cmd("STARTTLS now")
    check(code == 501, "STARTTLS with an argument: %d %s" % (code, text))
    code, text = c.cmd("QUIT")
    check(code == 221, "QUIT: %d %s" % (code, text))
    check(closed_within(c.sock, 5), "connection open after QUIT")
    c.close()


def test_tls_auth(d):
    # AUTH in the clear: refused, even with right credentials
    c = connect(d, source=OUTSIDER)
    c.expect("EHLO " + CLIENT, 250)
    code, text = c.cmd("AUTH PLAIN " + b64("\0alice\0correct horse"))
    check(code == 538 and "5.7.11" in text, "AUTH before STARTTLS: %d %s"
          % (code, text))
    code, text = c.cmd("AUTH LOGIN")
    check(code == 538, "AUTH LOGIN before STARTTLS: %d %s" % (code, text))

    version = starttls(c)
    check(version in ("TLSv1.2", "TLSv1.3"), "TLS version %s" % version)
    # RFC 3207: state reset, EHLO needed again
    code, text = c.cmd("MAIL FROM:<a@%s>" % CLIENT)
    check(code == 503, "MAIL right after STARTTLS: %d %s" % (code, text))
    code, text = c.cmd("EHLO " + CLIENT)
    kw, lines = keywords(text)
    check(set(kw) == {"PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8",
                      "ENHANCEDSTATUSCODES", "AUTH", "DSN", "REQUIRETLS"},
          "EHLO keywords over TLS: %s" % kw)
    # REQUIRETLS is taken inside TLS (and needs no AUTH to be parsed)
    c.expect("MAIL FROM:<a@%s> REQUIRETLS" % CLIENT, 250)
    c.expect("RSET", 250)
    check("AUTH PLAIN LOGIN" in lines, "AUTH keyword: %s" % lines)
    code, text = c.cmd("STARTTLS")
    check(code == 503, "second STARTTLS: %d %s" % (code, text))
    c.cmd("QUIT")
    c.close()

    # not authenticated yet: still no relaying, not even over TLS
    c = connect(d, source=OUTSIDER)
    c.expect("EHLO " + CLIENT, 250)
    starttls(c)
    c.expect("EHLO " + CLIENT, 250)
    c.expect("MAIL FROM:<a@%s>" % CLIENT, 250)
    code, text = c.cmd("RCPT TO:<r@%s>" % DEST)
    check(code == 554 and "5.7.1" in text, "RCPT before AUTH over TLS: "
          "%d %s" % (code, text))
    code, text = c.cmd("AUTH PLAIN " + b64("\0alice\0correct horse"))
    check(code == 503, "AUTH during a transaction: %d %s" % (code, text))
    c.expect("RSET", 250)

    code, text = c.cmd("AUTH PLAIN " + b64("\0alice\0wrong horse"))
    check(code == 535 and "5.7.8" in text, "wrong password: %d %s"
          % (code, text))
    code, text = c.cmd("AUTH PLAIN " + b64("\0mallory\0correct horse"))
    check(code == 535, "unknown user: %d %s" % (code, text))
    c.cmd("QUIT")
    c.close()
    c = connect(d, source=OUTSIDER)
    c.expect("EHLO " + CLIENT, 250)
    starttls(c)
    c.expect("EHLO " + CLIENT, 250)
    code, text = c.cmd("AUTH CRAM-MD5")
    check(code == 504, "unknown mechanism: %d %s" % (code, text))
    code, text = c.cmd("AUTH PLAIN")
    check(code == 334, "AUTH PLAIN without response: %d %s" % (code, text))
    code, text = c.cmd("*")
    check(code == 501, "AUTH cancelled: %d %s" % (code, text))
    code, text = c.cmd("AUTH PLAIN not-base64!")
    check(code == 501, "AUTH PLAIN bad base64: %d %s" % (code, text))
    # an overlong AUTH response ends the exchange: the next line is a
    # command again, not read as the LOGIN username
    code, text = c.cmd("AUTH LOGIN")
    check(code == 334, "AUTH LOGIN prompt: %d %s" % (code, text))
    code, text = c.cmd("x" * 13000)
    check(code == 500 and "aborted" in text,
          "overlong AUTH response: %d %s" % (code, text))
    code, text = c.cmd("NOOP")
    check(code == 250, "NOOP after an overlong AUTH response: %d %s"
          % (code, text))
    c.cmd("QUIT")
    c.close()
    log_text = d.log_text()
    check("authentication failed: user=<alice>, client=[%s]" % OUTSIDER
          in log_text, "failed AUTH for alice not logged")
    check("authentication failed: user=<mallory>, client=[%s]" % OUTSIDER
          in log_text, "failed AUTH for mallory not logged")

    # LOGIN, then relay from the outsider, with ESMTPSA in Received:
    c = connect(d, source=OUTSIDER)
    c.expect("EHLO " + CLIENT, 250)
    starttls(c)
    c.expect("EHLO " + CLIENT, 250)
    code, text = c.cmd("AUTH LOGIN")
    check(code == 334 and base64.b64decode(text) == b"Username:",
          "AUTH LOGIN prompt: %d %s" % (code, text))
    code, text = c.cmd(b64("alice"))
    check(code == 334 and base64.b64decode(text) == b"Password:",
          "AUTH LOGIN password prompt: %d %s" % (code, text))
    code, text = c.cmd(b64("correct horse"))
    check(code == 235 and "2.7.0" in text, "AUTH LOGIN: %d %s"
          % (code, text))
    code, text = c.cmd("EHLO " + CLIENT)
    check("AUTH" not in text, "AUTH still offered after AUTH")
    code, text = c.cmd("AUTH PLAIN " + b64("\0alice\0correct horse"))
    check(code == 503, "second AUTH: %d %s" % (code, text))
    msg = b"Subject: authenticated relay\r\n\r\nhello over TLS\r\n"
    qid = c.sendmail("alice@" + CLIENT, ["r1@" + DEST], msg)
    c.cmd("QUIT")
    c.close()
    data = check_spooled(d, qid, msg, "AUTH LOGIN message")
    hdr = data[:data.find(msg)].decode()
    check("with ESMTPSA id %s" % qid in hdr, "Received: %r" % hdr)
    check("(using TLSv1." in hdr and "with cipher" in hdr,
          "Received: no TLS details: %r" % hdr)
    check("from %s ([%s])" % (CLIENT, OUTSIDER) in hdr, "Received: %r" % hdr)
    check("for <r1@%s>;" % DEST in hdr, "Received: %r" % hdr)
    env = d.read_env(qid)
    check(env.get("auth-user") == "alice", "envelope auth-user: %s" % env)
    check(re.search(r"%s: client=unknown\[%s\].*tls=TLSv1\.[23], auth=alice"
                    % (qid, re.escape(OUTSIDER)), d.log_text()) is not None,
          "no accepted-message log line with tls= and auth=")

    # PLAIN with an initial response, and PLAIN as a second step
    c = connect(d, source=OUTSIDER)
    c.expect("EHLO " + CLIENT, 250)
    starttls(c)
    c.expect("EHLO " + CLIENT, 250)
    code, text = c.cmd("AUTH PLAIN")
    check(code == 334, "AUTH PLAIN: %d %s" % (code, text))
    code, text = c.cmd(b64("alice\0alice\0correct horse"))
    check(code == 235, "AUTH PLAIN (two steps, authzid): %d %s"
          % (code, text))
    c.expect("MAIL FROM:<alice@%s>" % CLIENT, 250)
    c.expect("RCPT TO:<r2@%s>" % DEST, 250)
    c.cmd("QUIT")
    c.close()


def test_relay_denied(d):
    before = d.queue_ids()
    c = connect(d, source=OUTSIDER)
    c.expect("EHLO outsider.example", 250)
    c.expect("MAIL FROM:<someone@outsider.example>", 250)
    code, text = c.cmd("RCPT TO:<victim@%s>" % DEST)
    check(code == 554 and text == "5.7.1 <victim@%s>: Relay access denied"
          % DEST, "outsider RCPT: %d %s" % (code, text))
    code, text = c.cmd("RCPT TO:<postmaster>")
    check(code == 554, "outsider RCPT postmaster: %d %s" % (code, text))
    code, text = c.cmd("DATA")
    check(code == 554 and "no valid recipients" in text,
          "outsider DATA: %d %s" % (code, text))
    c.cmd("QUIT")
    c.close()
    check(d.queue_ids() == before, "something was queued for the outsider")
    check(re.search(r"reject: RCPT from unknown\[%s\]: 554 5\.7\.1 "
                    r"<victim@%s>: Relay access denied"
                    % (re.escape(OUTSIDER), re.escape(DEST)),
                    d.log_text()) is not None,
          "relay refusal not logged with the client address")


def test_pipelining(d):
    msgs = [b"Subject: pipelined %d\r\n\r\nbody %d\r\n.leading dot\r\n" % (i, i)
            for i in range(3)]
    c = connect(d)
    c.expect("EHLO " + CLIENT, 250)
    batch = b""
    for i, m in enumerate(msgs):
        batch += (b"MAIL FROM:<p%d@%s>\r\nRCPT TO:<a@%s>\r\n"
                  b"RCPT TO:<bad address>\r\nRCPT TO:<b@%s>\r\nDATA\r\n"
                  % (i, CLIENT.encode(), DEST.encode(), DEST.encode()))
        batch += drtest.dot_stuff(m) + b".\r\n"
    batch += b"NOOP\r\nQUIT\r\n"
    c.send(batch)                       # one write, everything in it
    codes, qids = [], []
    for i in range(len(msgs)):
        for want in (250, 250, 501, 250, 354, 250):
            code, text = reply_or_close(c)
            codes.append(code)
            check(code == want, "pipelined transaction %d: %s %s (wanted "
                  "%d)" % (i, code, text, want))
            if want == 250 and code == 250 and queued(text):
                qids.append(queued(text))
    code, _ = reply_or_close(c)
    check(code == 250, "pipelined NOOP: %s" % code)
    code, _ = reply_or_close(c)
    check(code == 221, "pipelined QUIT: %s" % code)
    c.close()
    check(len(qids) == 3, "pipelined: %d messages queued" % len(qids))
    for qid, m in zip(qids, msgs):
        check_spooled(d, qid, m, "pipelined message")
        env = d.read_env(qid)
        check([r["addr"] for r in env["rcpts"]] == ["a@" + DEST,
                                                    "b@" + DEST],
              "pipelined recipients: %s" % env["rcpts"])

    # A client that pipelines without ever reading: once the replies it
    # does not read pile up, the server must stop reading (TCP pushes
    # back) instead of buffering replies without bound, and carry on
    # normally once the client reads.
    c = connect(d)
    c.expect("EHLO " + CLIENT, 250)
    rss0 = rss_kb(d)
    unit = b"NOOP\r\n" * 10000
    total, blocked = 0, False
    c.sock.setblocking(False)
    while total < 200 * len(unit):
        r, w, _ = select.select([], [c.sock], [], drtest.scaled(1))
        if not w:
            blocked = True
            break
        try:
            total += c.sock.send(unit[total % len(unit):])
        except BlockingIOError:
            pass
    rss1 = rss_kb(d)
    c.sock.setblocking(True)
    c.sock.settimeout(drtest.scaled(10))
    if total % 6:
        c.send(b"NOOP\r\n"[total % 6:])
    n = (total + 5) // 6
    log("unread pipelining: %d NOOPs (%d bytes) sent before the server "
        "pushed back; daemon RSS %d -> %d kB", n, total, rss0, rss1)
    check(blocked, "the server never stopped reading (%d bytes)" % total)
    check(rss1 - rss0 < 32 * 1024, "daemon grew by %d kB while the client "
          "did not read" % (rss1 - rss0))
    got, bad = 0, 0
    try:
        c.sock.settimeout(drtest.scaled(30))
        while got < n:
            code, _ = c.reply()
            bad += code != 250
            got += 1
        code, _ = c.cmd("QUIT")
        check(code == 221, "QUIT after the NOOP flood: %s" % code)
    except (OSError, drtest.SMTPError) as e:
        check(False, "reading back %d NOOP replies: %s after %d" % (n, e,
                                                                   got))
    check(bad == 0, "%d NOOP replies were not 250" % bad)
    c.close()


def rss_kb(d):
    with open("/proc/%d/status" % d.proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_line_limits(d):
    c = connect(d)
    c.expect("EHLO " + CLIENT, 250)
    line = "NOOP " + "x" * (512 - 2 - 5)       # 512 octets with CRLF
    code, text = c.cmd(line)
    check(code == 250, "512-octet command: %d %s" % (code, text))
    code, text = c.cmd(line + "x")
    check(code == 500 and "5.5.2" in text and "too long" in text,
          "513-octet command: %d %s" % (code, text))
    c.expect("NOOP", 250)
    c.send(b"MAIL FROM:<" + b"a" * (1 << 20))
    time.sleep(0.2)
    c.send(b"@x>\r\nNOOP\r\n")
    code, text = c.reply()
    check(code == 500, "1 MB command line: %d %s" % (code, text))
    code, text = c.reply()
    check(code == 250, "NOOP after 1 MB line (sync kept): %d %s"
          % (code, text))
    code, text = c.cmd("NO\0OP")
    check(code == 500 and "NUL" in text, "NUL in command: %d %s"
          % (code, text))
    code, text = c.cmd("MAIL FROM:<a\0b@%s>" % CLIENT)
    check(code == 500, "NUL in MAIL: %d %s" % (code, text))
    code, text = c.cmd("NOOP\rNOOP")
    check(code == 500, "bare CR in a command: %d %s" % (code, text))
    c.cmd("QUIT")
    c.close()

    # DATA text lines: 1000 octets with CRLF fine, 1001 refused
    c = connect(d)
    c.expect("EHLO " + CLIENT, 250)
    ok = b"Subject: long lines\r\n\r\n" + b"y" * 998 + b"\r\n"
    qid = c.sendmail("long@" + CLIENT, ["r@" + DEST], ok)
    check_spooled(d, qid, ok, "998-octet line")
    before = d.queue_ids()
    c.expect("MAIL FROM:<toolong@%s>" % CLIENT, 250)
    c.expect("RCPT TO:<r@%s>" % DEST, 250)
    code, text = c.data(b"Subject: x\r\n\r\n" + b"z" * 999 + b"\r\n")
    check(code == 550 and "5.5.2" in text, "1001-octet text line: %d %s"
          % (code, text))
    c.expect("NOOP", 250)
    check(d.queue_ids() == before, "message with a long line queued")
    c.cmd("QUIT")
    c.close()


def test_bare_newlines(d):
    before = d.queue_ids()
    c = connect(d)
    c.expect("EHLO " + CLIENT, 250)
    for what, content in (("bare LF", b"Subject: x\r\n\r\na\nb\r\n.\r\n"),
                          ("bare CR", b"Subject: x\r\n\r\na\rb\r\n.\r\n"),
                          ("smuggling <LF>.<LF>",
                           b"Subject: x\r\n\r\nhello\n.\nMAIL FROM:<evil@"
                           b"x.example>\r\nRCPT TO:<victim@" + DEST.encode()
                           + b">\r\nDATA\r\nSubject: smuggled\r\n\r\nevil"
                           b"\r\n.\r\n"),
                          ("smuggling <CR><LF>.<LF>",
                           b"Subject: x\r\n\r\nhello\r\n.\nMAIL FROM:<evil2@"
                           b"x.example>\r\n.\r\n")):
        c.expect("MAIL FROM:<nl@%s>" % CLIENT, 250)
        c.expect("RCPT TO:<r@%s>" % DEST, 250)
        c.expect("DATA", 354)
        c.send(content)
        code, text = reply_or_close(c)
        check(code == 550 and "5.6.0" in text, "%s in DATA: %s %s (wanted "
              "550 5.6.0)" % (what, code, text))
        code, text = c.cmd("NOOP") if code is not None else (None, "")
        check(code == 250, "NOOP after %s: %s %s" % (what, code, text))
    c.cmd("QUIT")
    c.close()
    check(d.queue_ids() == before, "a message with bare newlines (or a "
          "smuggled one) was queued: %s" % (set(d.queue_ids()) -
                                            set(before)))


def test_sizes(d):
    c = connect(d)
    c.expect("EHLO " + CLIENT, 250)
    code, text = c.cmd("MAIL FROM:<big@%s> SIZE=%d" % (CLIENT, MAXSIZE + 1))
    check(code == 552 and "5.3.4" in text, "SIZE over the limit: %d %s"
          % (code, text))
    before = d.queue_ids()
    c.expect("MAIL FROM:<big@%s> SIZE=%d" % (CLIENT, MAXSIZE), 250)
    c.expect("RCPT TO:<r@%s>" % DEST, 250)
    big = b"Subject: big\r\n\r\n" + (b"b" * 98 + b"\r\n") * 2000  # 200 KB
    code, text = c.data(big)
    check(code == 552 and "5.3.4" in text, "oversize message: %d %s"
          % (code, text))
    check(d.queue_ids() == before, "oversize message queued")
    # the session is still usable
    msg = b"Subject: small\r\n\r\nfits\r\n"
    qid = c.sendmail("small@" + CLIENT, ["r@" + DEST], msg)
    check_spooled(d, qid, msg, "message after a 552")
    c.cmd("QUIT")
    c.close()


def test_recipients(d):
    c = connect(d)
    c.expect("EHLO " + CLIENT, 250)
    c.expect("MAIL FROM:<many@%s>" % CLIENT, 250)
    for i in range(MAXRCPT):
        c.expect("RCPT TO:<r%d@%s>" % (i, DEST), 250)
    code, text = c.cmd("RCPT TO:<r%d@%s>" % (MAXRCPT, DEST))
    check(code == 452 and "4.5.3" in text, "recipient %d: %d %s (wanted "
          "452 4.5.3)" % (MAXRCPT + 1, code, text))
    code, text = c.cmd("RCPT TO:<r0@%s>" % DEST)
    check(code == 250, "duplicate recipient: %d %s" % (code, text))
    msg = b"Subject: many\r\n\r\nto five\r\n"
    code, text = c.data(msg)
    qid = queued(text)
    check(code == 250 and qid, "DATA with %d recipients: %d %s"
          % (MAXRCPT, code, text))
    if qid:
        env = d.read_env(qid)
        check(len(env["rcpts"]) == MAXRCPT, "queued with %d recipients"
              % len(env["rcpts"]))
        hdr = d.read_data(qid).decode("utf-8", "replace")
        check("\tfor <" not in hdr.split("\r\n\r\n")[0],
              "Received: names a recipient of a multi-recipient message")
    c.cmd("QUIT")
    c.close()


def test_envelope(d):
    c = connect(d)
    c.expect("EHLO " + CLIENT, 250)
    sender = "j\u00f6rg@b\u00fccher.example"
    c.expect("MAIL FROM:<%s> SMTPUTF8 BODY=8BITMIME RET=HDRS "
             "ENVID=QQ314159" % sender, 250)
    code, text = c.cmd("RCPT TO:<\u7528\u6237@%s> ORCPT=rfc822;x+40y.example "
                       "NOTIFY=FAILURE,DELAY" % DEST)
    check(code == 250, "UTF-8 RCPT with SMTPUTF8: %d %s" % (code, text))
    c.expect("RCPT TO:<\"quoted local\"@%s>" % DEST, 250)
    c.expect("RCPT TO:<@hop.example:routed@%s>" % DEST, 250)
    msg = ("Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\nFrom: <%s>\r\n\r\n"
           "8-bit: gr\u00fc\u00dfe\r\n.\r\n..\r\n. \r\nlast\r\n"
           % sender).encode()
    code, text = c.data(msg)
    qid = queued(text)
    check(code == 250 and qid, "UTF-8 message: %d %s" % (code, text))
    code, text = c.cmd("MAIL FROM:<%s>" % sender)
    check(code == 553 and "5.6.7" in text, "UTF-8 sender without SMTPUTF8: "
          "%d %s" % (code, text))
    c.cmd("QUIT")
    c.close()
    if not qid:
        return
    data = check_spooled(d, qid, msg, "UTF-8 / dot lines message")
    check(b"with UTF8SMTP id " + qid.encode() in data, "Received: protocol "
          "not UTF8SMTP: %r" % data[:300])
    env = d.read_env(qid)
    check(env.get("sender") == sender, "envelope sender: %r" %
          env.get("sender"))
    check([r["addr"] for r in env["rcpts"]] ==
          ["\u7528\u6237@" + DEST, "\"quoted local\"@" + DEST,
           "routed@" + DEST], "envelope recipients: %s" % env["rcpts"])
    check(env["rcpts"][0].get("orcpt") == "rfc822;x+40y.example",
          "ORCPT: %s" % env["rcpts"][0])
    check(env.get("body-8bit") == "1" and env.get("smtputf8") == "1",
          "8BITMIME/SMTPUTF8 flags: %s" % env)
    check(env.get("envid") == "QQ314159" and env.get("ret") == "HDRS",
          "ENVID/RET: %s" % env)
    check(env.get("client-addr") == GOOD and env.get("client-helo") ==
          CLIENT, "client address/helo: %s" % env)
    check(env.get("size") == str(len(data)), "envelope size %s, data %d"
          % (env.get("size"), len(data)))


def test_hostile(d):
    # STARTTLS with a command pipelined behind it (CVE-2011-0411 style)
    c = connect(d)
    c.expect("EHLO " + CLIENT, 250)
    c.send(b"STARTTLS\r\nMAIL FROM:<injected@x.example>\r\n")
    code, text = reply_or_close(c)
    check(code == 554, "STARTTLS with pipelined command: %s %s"
          % (code, text))
    check(closed_within(c.sock, 5), "not closed after STARTTLS injection")
    c.close()

    # a browser made to POST to us
    c = connect(d)
    c.send(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    code, text = reply_or_close(c)
    check(code == 554, "HTTP request: %s %s" % (code, text))
    check(closed_within(c.sock, 5), "not closed after an HTTP request")
    c.close()

    # an early talker: data before the greeting.  Freeze the daemon so
    # the bytes are certainly there when it accepts.
    s = socket.socket()
    s.settimeout(drtest.scaled(10))
    s.bind((GOOD, 0))
    d.proc.send_signal(signal.SIGSTOP)
    try:
        # SIGSTOP takes effect asynchronously: wait until every thread
        # is stopped, or a worker may accept before the bytes arrive
        deadline = time.monotonic() + drtest.scaled(5)
        task = "/proc/%d/task" % d.proc.pid
        while time.monotonic() < deadline:
            states = []
            for t in os.listdir(task):
                try:
                    with open("%s/%s/stat" % (task, t)) as f:
                        states.append(f.read().rsplit(")", 1)[1].split()[0])
                except OSError:
                    pass
            if states and all(st in ("T", "t") for st in states):
                break
            time.sleep(0.01)
        s.connect((d.host, d.port))
        s.sendall(b"EHLO early.example\r\n")
        time.sleep(0.2)
    finally:
        d.proc.send_signal(signal.SIGCONT)
    got = b""
    try:
        while b"\n" not in got:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    except OSError:
        pass
    check(got.startswith(b"554 "), "early talker got %r (wanted 554)" % got)
    check(closed_within(s, 5), "early talker not disconnected")
    s.close()
    check("before the greeting" in d.log_text(), "early talker not logged")

    # too many errors: 421 and close
    c = connect(d)
    c.expect("EHLO " + CLIENT, 250)
    codes = []
    for i in range(MAXERR + 3):
        try:
            c.send("BOGUS%d\r\n" % i)
        except OSError:
            break
        code, _ = reply_or_close(c)
        if code is None:
            break
        codes.append(code)
        if code == 421:
            break
    check(codes and codes[-1] == 421 and codes.count(500) == MAXERR + 1,
          "max errors: replies %s" % codes)
    check(closed_within(c.sock, 5), "not closed after too many errors")
    c.close()

    # a client that asks for TLS and then never starts the handshake
    c = connect(d)
    c.expect("EHLO " + CLIENT, 250)
    c.expect("STARTTLS", 220)
    t0 = time.monotonic()
    check(closed_within(c.sock, IDLE + 5), "stalled TLS handshake: "
          "connection still open")
    dt = time.monotonic() - t0
    check(IDLE * 0.8 <= dt, "stalled TLS handshake closed after %.1fs" % dt)
    c.close()

    # idle timeout
    c = connect(d)
    c.expect("EHLO " + CLIENT, 250)
    t0 = time.monotonic()
    code, text = reply_or_close(c)
    dt = time.monotonic() - t0
    check(code == 421 and "4.4.2" in text, "idle client: %s %s"
          % (code, text))
    check(IDLE * 0.8 <= dt <= drtest.scaled(IDLE + 5), "idle timeout after "
          "%.1fs (smtpd_timeout %ds)" % (dt, IDLE))
    check(closed_within(c.sock, 5), "idle client not disconnected")
    c.close()


def test_limits_d2(tmp):
    """Own daemon: total session timeout and the client limit."""
    d2 = drtest.Daemon(name="d2", allow_clients="%s/32 ::1" % GOOD,
                       smtpd_timeout="2s", smtpd_session_timeout="4s",
                       smtpd_max_clients="3")
    # ::1 has no per-run block: a port free now, picked again if another
    # run or program binds it before the daemon does
    port6 = d2.start_on_free_port("::1", lambda p: "%s:%d, [::1]:%d"
                                  % (d2.host, d2.port, p))
    # IPv6 listener and an IPv6 entry in allow_clients
    c = drtest.SMTP("::1", port6, timeout=10)
    check(c.banner[0] == 220, "IPv6 banner: %s" % (c.banner,))
    msg = b"Subject: over IPv6\r\n\r\nhi\r\n"
    try:
        qid = c.sendmail("v6@" + CLIENT, ["r@" + DEST], msg)
        data = check_spooled(d2, qid, msg, "IPv6 message")
        check(b"from %s ([IPv6:::1])" % CLIENT.encode() in data,
              "Received: for an IPv6 client: %r" % data[:200])
        check(d2.read_env(qid).get("client-addr") == "::1",
              "IPv6 client-addr: %s" % d2.read_env(qid))
    except drtest.SMTPError as e:
        check(False, "IPv6 client in allow_clients: %s" % e)
    c.cmd("QUIT")
    c.close()
    c = connect(d2, source=OUTSIDER)
    c.expect("EHLO " + CLIENT, 250)
    c.expect("MAIL FROM:<a@%s>" % CLIENT, 250)
    code, text = c.cmd("RCPT TO:<r@%s>" % DEST)
    check(code == 554, "IPv4 outsider with a mixed ACL: %d %s"
          % (code, text))
    c.cmd("QUIT")
    c.close()
    # every NOOP resets the idle timer, the session limit still hits
    c = connect(d2)
    c.expect("EHLO " + CLIENT, 250)
    t0 = time.monotonic()
    code, text = None, ""
    while time.monotonic() - t0 < drtest.scaled(15):
        try:
            code, text = c.cmd("NOOP")
        except (OSError, drtest.SMTPError):
            code, text = None, "closed"
            break
        if code != 250:
            break
        time.sleep(0.5)
    dt = time.monotonic() - t0
    check(code == 421 and "4.4.2" in text, "session time limit: %s %s"
          % (code, text))
    check(3 <= dt <= drtest.scaled(8), "session limit hit after %.1fs (4s)"
          % dt)
    c.close()

    held = [connect(d2) for _ in range(3)]
    extra = drtest.SMTP(d2.host, d2.port, timeout=10, source=GOOD)
    check(extra.banner[0] == 421 and "4.7.0" in extra.banner[1],
          "client over smtpd_max_clients: %s" % (extra.banner,))
    check(closed_within(extra.sock, 5), "refused client not disconnected")
    extra.close()
    for h in held:
        h.cmd("QUIT")
        h.close()
    drtest.wait_for(lambda: "too many clients" in d2.log_text(), 5,
                    "the refusal to be logged")
    time.sleep(0.3)
    c = connect(d2)
    c.expect("EHLO " + CLIENT, 250)
    c.cmd("QUIT")
    c.close()

    d2.stop()


def test_emfile(tmp):
    """Out of file descriptors, accept() fails with EMFILE: the daemon
    must pause the listener (not spin), keep serving, and accept the
    waiting client once a descriptor is free again."""
    wrapper = os.path.join(tmp, "danerelayd-lowfd")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nulimit -n 48 || exit 1\nexec %s \"$@\"\n"
                % os.path.join(drtest.BUILDDIR, "danerelayd"))
    os.chmod(wrapper, 0o755)
    d3 = drtest.Daemon(name="d3", allow_clients=GOOD, smtpd_timeout="30s")
    d3.binary = wrapper
    d3.start()
    held = []
    waiting = None
    for _ in range(60):
        s = socket.create_connection((d3.host, d3.port),
                                     timeout=drtest.scaled(10),
                                     source_address=(GOOD, 0))
        s.settimeout(1)
        try:
            banner = s.recv(512)
        except socket.timeout:
            waiting = s
            break
        check(banner.startswith(b"220 "), "banner %r" % banner)
        held.append(s)
    check(waiting is not None, "never ran out of descriptors with %d "
          "connections" % len(held))
    if waiting is not None:
        log("EMFILE after %d connections", len(held))
        check("pausing the listener" in d3.log_text(),
              "accept() failing with EMFILE not logged")
        held.pop().close()
        t0 = time.monotonic()
        waiting.settimeout(drtest.scaled(5))
        try:
            banner = waiting.recv(512)
        except OSError as e:
            banner = repr(e).encode()
        check(banner.startswith(b"220 "), "client waiting through EMFILE "
              "got %r" % banner)
        log("the waiting client was served after %.1fs",
            time.monotonic() - t0)
        waiting.close()
    for s in held:
        s.close()
    check(d3.alive(), "danerelayd died on EMFILE")
    c = connect(d3)
    c.expect("EHLO " + CLIENT, 250)
    c.cmd("QUIT")
    c.close()
    d3.stop()


def test_shutdown(d):
    """SIGTERM: idle sessions get 421 4.3.2; a message being received is
    finished and acknowledged first; the daemon exits 0."""
    idle = connect(d)
    idle.expect("EHLO " + CLIENT, 250)
    busy = connect(d)
    busy.expect("EHLO " + CLIENT, 250)
    busy.expect("MAIL FROM:<late@%s>" % CLIENT, 250)
    busy.expect("RCPT TO:<r@%s>" % DEST, 250)
    busy.expect("DATA", 354)
    busy.send(b"Subject: in flight\r\n\r\nfirst half\r\n")
    time.sleep(0.2)
    d.proc.send_signal(signal.SIGTERM)
    code, text = reply_or_close(idle)
    check(code == 421 and "4.3.2" in text, "idle session at shutdown: %s %s"
          % (code, text))
    busy.send(b"second half\r\n.\r\n")
    code, text = reply_or_close(busy)
    qid = queued(text) if code == 250 else None
    check(qid is not None, "message in flight at shutdown: %s %s"
          % (code, text))
    code, text = reply_or_close(busy)
    check(code == 421, "after the last message at shutdown: %s %s"
          % (code, text))
    idle.close()
    busy.close()
    try:
        d.proc.wait(timeout=drtest.scaled(20))
    except subprocess.TimeoutExpired:
        check(False, "danerelayd did not exit after SIGTERM")
    if qid:
        check(qid in d.queue_ids(), "acknowledged message %s not in the "
              "queue" % qid)


def write_auth(path, lines):
    drtest.auth_file(path, dict(lines))


def auth_ok(d, user, pw):
    c = connect(d, source=OUTSIDER)
    c.expect("EHLO " + CLIENT, 250)
    starttls(c)
    c.expect("EHLO " + CLIENT, 250)
    code, _ = c.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (user, pw)))
    c.cmd("QUIT")
    c.close()
    return code == 235


def test_reload(d, auth):
    write_auth(auth, [("alice", "correct horse"), ("bob", "new pass")])
    n = d.log_text().count("settings reloaded")
    d.reload()
    drtest.wait_for(lambda: d.log_text().count("settings reloaded") > n, 10,
                    "the reload")
    check(auth_ok(d, "bob", "new pass"), "bob cannot AUTH after reload")
    # a weak hash makes the reload fail; the old table stays
    with open(auth, "a") as f:
        f.write("weak:$1$abcdefgh$0123456789abcdefghijkl\n")
    n = d.log_text().count("reload failed")
    d.reload()
    drtest.wait_for(lambda: d.log_text().count("reload failed") > n, 10,
                    "the failed reload to be logged")
    check("MD5" in d.log_text(), "the weak hash is not named in the log")
    check(auth_ok(d, "bob", "new pass"), "bob lost AUTH after a bad reload")


def main():
    global CERT
    tmp = drtest.TMPDIR
    CERT, key = drtest.make_cert(tmp, HOST)
    auth = os.path.join(tmp, "auth")
    if os.geteuid() == 0:
        drtest._ensure_user("danerelay")
    write_auth(auth, [("alice", "correct horse")])
    d = drtest.Daemon(allow_clients=GOOD, tls_cert_file=CERT,
                      tls_key_file=key, auth_file=auth,
                      max_message_size=str(MAXSIZE),
                      max_recipients=str(MAXRCPT),
                      smtpd_max_errors=str(MAXERR),
                      smtpd_timeout="%ds" % IDLE)
    d.start()
    for t in (test_basics, test_tls_auth, test_relay_denied,
              test_pipelining, test_line_limits, test_bare_newlines,
              test_sizes, test_recipients, test_envelope, test_hostile,
              lambda dd: test_reload(dd, auth)):
        log("--- %s", getattr(t, "__name__", "test"))
        try:
            t(d)
        except (OSError, drtest.SMTPError, ssl.SSLError) as e:
            check(False, "%s: %s" % (getattr(t, "__name__", "test"), e))
        if not d.alive():
            drtest.fail("danerelayd died")
    check(d.tmp_files() == [], "tmp/ not empty: %s" % d.tmp_files())
    log("--- shutdown")
    test_shutdown(d)
    d.stop()
    log("--- session limits (second daemon)")
    test_limits_d2(tmp)
    log("--- EMFILE (third daemon)")
    test_emfile(tmp)
    drtest.done()


main()
