#!/usr/bin/python3
# timeout: 300
"""8-bit messages to a server without 8BITMIME (RFC 6152 §3; issue #13
item 6).

A real multipart message with 8-bit parts (UTF-8 text/plain, ISO-8859-1
text/html, a message/rfc822 with an 8-bit body, a base64 attachment and a
7bit part) is submitted with BODY=8BITMIME and goes to

  - a sink without 8BITMIME: what arrives is 7-bit only, has no
    BODY=8BITMIME, and parsed with Python's email package every part's
    decoded content (and type, charset, file name) is what was sent;
  - a sink with 8BITMIME: the message arrives byte for byte as sent.

What cannot be made 7-bit is bounced with 5.6.3 (RFC 3463), DSN included:
raw 8-bit in a header field, and 8-bit content inside multipart/signed
(re-encoding would break the signature).
"""
import email
import email.policy
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import world  # noqa: E402

w = world.World()
s7 = w.dest("seven.test", 11, extra=["--no-8bitmime"])
s8 = w.dest("eight.test", 12)
senders = w.dest("senders.test", 13)
w.start()
d = w.daemon(min_backoff="1h")

CRLF = b"\r\n"
ATTACH = bytes(range(256)) * 3


def b64(data):
    import base64
    enc = base64.encodebytes(data).replace(b"\n", CRLF)
    return enc


UTF8_TEXT = ("Gr\u00fc\u00dfe aus K\u00f6ln \u2013 \u00e4\u00f6\u00fc "
             "\u20ac 100\r\n"
             ".a line that starts with a dot\r\n"
             "From the start of a line\r\n"
             + "lange Zeile mit Umlauten \u00e4 " * 20 + "\r\n"
             "trailing spaces   \r\n").encode("utf-8")
LATIN1_HTML = ("<html><body><p>Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e, "
               "\u00e7a co\u00fbte 5 \u00a3</p></body></html>\r\n"
               ).encode("iso-8859-1")
INNER_TEXT = "Weitergeleitet: \u00fcber die Br\u00fccke\r\n".encode("utf-8")


def multipart(boundary, parts, sub="mixed"):
    out = b"Content-Type: multipart/%s; boundary=\"%s\"\r\n\r\n" % (
        sub.encode(), boundary.encode())
    out += b"This is a multi-part message in MIME format.\r\n"
    for p in parts:
        out += b"--" + boundary.encode() + CRLF + p
        if not p.endswith(CRLF):
            out += CRLF
    out += b"--" + boundary.encode() + b"--" + CRLF
    return out


PARTS = [
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n\r\n" + UTF8_TEXT,
    b"Content-Type: text/html; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n\r\n" + LATIN1_HTML,
    b"Content-Type: message/rfc822\r\n\r\n"
    b"From: <inner@senders.test>\r\nSubject: inner\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n\r\n" + INNER_TEXT,
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Disposition: attachment; filename=\"data.bin\"\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n" + b64(ATTACH),
    b"Content-Type: text/plain; charset=us-ascii\r\n"
    b"Content-Transfer-Encoding: 7bit\r\n\r\nplain ASCII part\r\n",
]


def message(to, subject=b"8-bit test", extra=b"", body=None):
    head = (b"From: <sender@senders.test>\r\nTo: <" + to.encode() +
            b">\r\nSubject: " + subject + b"\r\nMessage-ID: <" +
            to.encode() + b"@dr-test>\r\nMIME-Version: 1.0\r\n" + extra)
    return head + (body if body is not None else
                   multipart("=_b1", PARTS))


def submit(rcpt, data):
    c = drtest.SMTP(d.host, d.port)
    c.expect("EHLO client.dr-test.example", 250)
    c.expect("MAIL FROM:<sender@senders.test> BODY=8BITMIME", 250)
    c.expect("RCPT TO:<%s>" % rcpt, 250)
    code, text = c.data(data)
    drtest.check(code == 250, "%s: queued (%d %s)" % (rcpt, code, text))
    c.close()


def outcome(rcpt):
    m = re.search(r"to=<%s>, .*status=(sent|deferred|bounced)[^\n]*" %
                  re.escape(rcpt), d.log_text())
    return m.group(0) if m else None


def wait(rcpt):
    drtest.wait_for(lambda: outcome(rcpt) is not None, 30,
                    "an outcome for %s" % rcpt)
    return outcome(rcpt)


def leaves(msg):
    """(content type, params, filename, decoded bytes) of every leaf part,
    in order, descending into message/rfc822."""
    out = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        if part.get_content_type() == "message/rfc822":
            continue        # walk() goes into it
        data = part.get_payload(decode=True)
        if part.get_content_maintype() == "text":
            data = data.replace(b"\r\n", b"\n")
        out.append((part.get_content_type(), part.get_param("charset"),
                    part.get_filename(), data))
    return out


sent = {}
for rcpt in ("u@seven.test", "u@eight.test"):
    sent[rcpt] = message(rcpt)
    submit(rcpt, sent[rcpt])

# ---- no 8BITMIME: converted ------------------------------------------------
line = wait("u@seven.test")
drtest.check("status=sent" in line, "seven.test: sent: %s" % line)
got = [m for m in s7.messages() if "u@seven.test" in m["rcpts"]]
drtest.check(len(got) == 1, "seven.test: one message")
if got:
    m7 = got[0]
    raw = m7["data"]
    drtest.log("arrived at seven.test:\n%s", raw.decode("ascii", "replace"))
    drtest.check("BODY=8BITMIME" not in m7["mail_params"],
                 "no BODY=8BITMIME to a server without it: %s" %
                 m7["mail_params"])
    drtest.check(all(b < 0x80 for b in raw), "what arrived is 7-bit only")
    drtest.check(max(len(x) for x in raw.split(b"\r\n")) <= 998,
                 "no line over 998 octets")
    want = leaves(email.message_from_bytes(sent["u@seven.test"],
                                           policy=email.policy.default))
    have = leaves(email.message_from_bytes(raw, policy=email.policy.default))
    drtest.log("sent parts: %s", [(t, c, f, len(b)) for t, c, f, b in want])
    drtest.log("got parts:  %s", [(t, c, f, len(b)) for t, c, f, b in have])
    drtest.check(len(want) == 5 and len(have) == len(want),
                 "every part arrived (%d of %d)" % (len(have), len(want)))
    for i, (a, b) in enumerate(zip(want, have)):
        drtest.check(a == b, "part %d (%s): decoded content, type, charset "
                     "and name as sent" % (i, a[0]))
    for hdr in (b"Subject: 8-bit test", b"Message-ID: <u@seven.test@dr-test>"):
        drtest.check(hdr in raw, "header kept: %s" % hdr.decode())
    drtest.check(re.search(r"converted to 7 bits for a server without "
                           r"8BITMIME", d.log_text()) is not None,
                 "the conversion is logged")

# ---- with 8BITMIME: untouched --------------------------------------------
line = wait("u@eight.test")
got = [m for m in s8.messages() if "u@eight.test" in m["rcpts"]]
# (the relay's smtpd put its Received: field on top)
drtest.check("status=sent" in line and len(got) == 1 and
             got[0]["data"].endswith(sent["u@eight.test"]) and
             "BODY=8BITMIME" in got[0]["mail_params"],
             "eight.test: sent byte for byte with BODY=8BITMIME")

# ---- cannot be converted: 5.6.3 --------------------------------------------
submit("hdr@seven.test", message("hdr@seven.test",
                                 subject="Gr\u00fc\u00dfe".encode()))
signed = multipart("=_s1", [PARTS[0], b"Content-Type: application/"
                            b"pgp-signature\r\n\r\n-----BEGIN PGP SIGNATURE"
                            b"-----\r\nAAAA\r\n-----END PGP SIGNATURE-----"
                            b"\r\n"],
                   sub='signed; protocol="application/pgp-signature"; '
                   'micalg=pgp-sha256')
submit("signed@seven.test", message("signed@seven.test", body=signed))
for rcpt in ("hdr@seven.test", "signed@seven.test"):
    line = wait(rcpt)
    drtest.check("status=bounced" in line and "5.6.3" in line,
                 "%s: bounced with 5.6.3: %s" % (rcpt, line))
    drtest.check(not any(rcpt in m["rcpts"] for m in s7.messages()),
                 "%s: nothing sent" % rcpt)


def dsns():
    return [m for m in senders.messages() if m["mail_from"] == ""]


drtest.wait_for(lambda: len(dsns()) >= 2, 30, "the DSNs")
for m in dsns():
    drtest.check(b"Status: 5.6.3" in m["data"], "DSN says Status: 5.6.3")

d.stop()
w.stop()
drtest.done()
