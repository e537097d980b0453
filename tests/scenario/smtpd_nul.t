#!/usr/bin/python3
# smtpd_nul.t - issue #12 item 4: a message with a NUL byte is refused with
# 550 5.6.0, so a NUL cannot be used to smuggle a second message past a
# next hop that drops NUL bytes.
#
# timeout: 120
#
# The attack, exactly: inside DATA the client sends "\r\n\0.\r\n" (for a
# receiver that drops NULs, the end of data) followed by a complete second
# transaction (MAIL, RCPT, DATA, text, "."), all in one write.  For us
# "\0." is message text and the whole thing is one message, ended by the
# real CRLF "." CRLF: it must get exactly one reply, 550 5.6.0, nothing
# may be queued (and nothing left in tmp/), and the session goes on: the
# next transaction on it is queued.  A NUL anywhere else (header, body,
# the last byte) is refused the same way; a message without one is not.
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import drtest  # noqa: E402
from drtest import check, log  # noqa: E402

CLIENT = "client.dr-test.example"
DEST = "dest.dr-test.example"
GOOD = drtest.ip(2)

d = drtest.Daemon()
d.start()


def session():
    c = drtest.SMTP(d.host, d.port, source=GOOD)
    c.expect("EHLO " + CLIENT, 250)
    return c


def no_more_replies(c, secs=1.0):
    """Nothing else arrives within secs (no reply of a second
    transaction)."""
    c.sock.settimeout(drtest.scaled(secs))
    try:
        extra = c.buf + c.sock.recv(65536)
    except OSError:
        extra = c.buf
    c.sock.settimeout(drtest.scaled(10))
    return extra


# 1. the smuggling sequence
c = session()
c.expect("MAIL FROM:<attacker@%s>" % CLIENT, 250)
c.expect("RCPT TO:<victim@%s>" % DEST, 250)
c.expect("DATA", 354)
c.send(b"From: <attacker@client.dr-test.example>\r\n"
       b"Subject: first\r\n\r\nfirst message\r\n"
       b"\0.\r\n"
       b"MAIL FROM:<ceo@bank.example>\r\n"
       b"RCPT TO:<victim@dest.dr-test.example>\r\n"
       b"DATA\r\n"
       b"From: <ceo@bank.example>\r\nSubject: smuggled\r\n\r\n"
       b"please wire the money\r\n"
       b".\r\n")
code, text = c.reply()
log("smuggling sequence -> %d %s", code, text)
check(code == 550 and text.startswith("5.6.0"),
      "\\r\\n\\0.\\r\\n + second transaction: %d %s (wanted 550 5.6.0)"
      % (code, text))
extra = no_more_replies(c)
check(extra == b"", "exactly one reply for the whole sequence, then %r"
      % extra)
check(d.queue_ids() == [], "nothing queued: %s" % d.queue_ids())
check(d.tmp_files() == [], "nothing left in tmp/: %s" % d.tmp_files())
check("reject: DATA from unknown[%s]: 550 5.6.0" % GOOD in d.log_text(),
      "the rejection is logged")
# the session is still usable
qid = c.sendmail("ok@" + CLIENT, ["r@" + DEST],
                 b"Subject: after\r\n\r\nclean\r\n")
check(len(d.queue_ids()) == 1 and d.queue_ids() == [qid],
      "the next transaction on the session is queued: %s" % d.queue_ids())
data = drtest.strip_received(d.read_data(qid))
check(data == b"Subject: after\r\n\r\nclean\r\n", "queued bytes: %r" % data)
c.cmd("QUIT")
c.close()

# 2. a NUL elsewhere: in a header, in the body, as the very last byte
for name, body in (("header", b"Subject: a\0b\r\n\r\nbody\r\n"),
                   ("body", b"Subject: x\r\n\r\nab\0cd\r\n"),
                   ("last byte", b"Subject: x\r\n\r\nbody\0\r\n"),
                   ("1 MB in", b"Subject: x\r\n\r\n"
                    + b"0123456789abcde\r\n" * 65536 + b"\0\r\n")):
    c = session()
    c.expect("MAIL FROM:<s@%s>" % CLIENT, 250)
    c.expect("RCPT TO:<r@%s>" % DEST, 250)
    code, text = c.data(body)
    check(code == 550 and text.startswith("5.6.0"),
          "NUL in the %s: %d %s" % (name, code, text))
    code, text = c.cmd("NOOP")
    check(code == 250, "NOOP after: %d %s" % (code, text))
    c.close()
time.sleep(0.2)
check(len(d.queue_ids()) == 1, "still only one message queued: %s"
      % d.queue_ids())
d.stop()
check(d.tmp_files() == [], "tmp/ empty at the end: %s" % d.tmp_files())
drtest.done()
