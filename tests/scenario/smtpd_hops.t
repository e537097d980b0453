#!/usr/bin/python3
# smtpd_hops.t - issue #12 item 3 (inbound): a message that has been
# relayed too often is refused at the end of DATA with 554 5.4.6, so a
# mail loop (an MX pointing back at the relay: 2,360 hops in 8 s) ends.
#
# timeout: 120
#
# max_hops (default 100) counts the Received: header fields, the one
# danerelay adds included (RFC 5321 §6.3).  With the default: 99 fields
# from the client are accepted (100 with ours), 100 get 554 5.4.6 and
# nothing is queued.  Only fields of the header section count, in any
# case and with blanks before the colon; continuation lines,
# Received-SPF: and "Received:" lines in the body do not.  Then the
# message that loops for real: each accepted copy is sent back in again,
# as a relay in a loop would, until it is refused - after exactly
# max_hops copies (max_hops = 5 after a SIGHUP).
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


def received(i):
    return (b"Received: from hop%d.dr-test.example (hop%d.dr-test.example "
            b"[192.0.2.%d])\r\n\tby mx%d.dr-test.example with ESMTP id "
            b"X%d;\r\n\tSun, 6 Dec 2026 08:00:00 +0000\r\n"
            % (i, i, i % 250 + 1, i, i))


def send(body):
    c = drtest.SMTP(d.host, d.port, source=GOOD)
    c.expect("EHLO " + CLIENT, 250)
    c.expect("MAIL FROM:<s@%s>" % CLIENT, 250)
    c.expect("RCPT TO:<r@%s>" % DEST, 250)
    code, text = c.data(body)
    code2, _ = c.cmd("NOOP")
    check(code2 == 250, "the session goes on after %d: NOOP %d"
          % (code, code2))
    c.cmd("QUIT")
    c.close()
    m = drtest.QUEUED_RE.search(text)
    return code, text, (m.group(1) if m else None)


TAIL = b"From: <s@client.dr-test.example>\r\nSubject: hops\r\n\r\nbody\r\n"

# 1. the default limit, 100
code, text, qid = send(b"".join(received(i) for i in range(99)) + TAIL)
check(code == 250, "99 Received: fields (+ ours = 100): %d %s" % (code, text))
n0 = len(d.queue_ids())
code, text, qid = send(b"".join(received(i) for i in range(100)) + TAIL)
log("100 Received: fields -> %d %s", code, text)
check(code == 554 and text.startswith("5.4.6"),
      "100 Received: fields (+ ours = 101): %d %s (wanted 554 5.4.6)"
      % (code, text))
check(len(d.queue_ids()) == n0, "nothing queued for it")
check("reject: DATA from unknown[%s]: 554 5.4.6" % GOOD in d.log_text(),
      "the rejection is logged")

# 2. what counts and what does not
odd = (b"".join(received(i) for i in range(50))
       + b"RECEIVED : from a\r\n"
       + b"received:from b\r\n"
       + b"".join(received(i) for i in range(48)) + b"X-Other: y\r\n")
code, text, _ = send(odd + b"Received-SPF: pass\r\n" + TAIL)
check(code == 554, "RECEIVED : and received: count (100 fields): %d %s"
      % (code, text))
code, text, _ = send(odd[:-len(b"X-Other: y\r\n")].replace(
    b"received:from b\r\n", b"Received-SPF: pass\r\n") + TAIL)
check(code == 250, "Received-SPF: does not count (99 fields): %d %s"
      % (code, text))
folded = (b"".join(received(i) for i in range(99))
          + b"Subject: x\r\n" + b"".join(b" Received: folded\r\n"
                                          for _ in range(10)))
code, text, _ = send(folded + b"\r\nbody\r\n")
check(code == 250, "continuation lines do not count: %d %s" % (code, text))
body = (b"Subject: forwarded\r\n\r\n"
        + b"".join(received(i) for i in range(200)))
code, text, _ = send(body)
check(code == 250, "Received: lines in the body do not count: %d %s"
      % (code, text))

# 3. a real loop: every accepted copy goes in again, with our header
d.write_config(max_hops=5)
d.reload()
drtest.wait_for(lambda: "settings reloaded" in d.log_text(), 10,
                "the reload")
time.sleep(0.2)
msg = b"From: <s@client.dr-test.example>\r\nSubject: loop\r\n\r\nloop\r\n"
hops = 0
while hops < 50:
    code, text, qid = send(msg)
    if code != 250:
        break
    hops += 1
    msg = d.read_data(qid)      # what the next hop would get
log("the looping message was accepted %d times, then %d %s", hops, code,
    text)
check(hops == 5 and code == 554 and text.startswith("5.4.6"),
      "max_hops = 5 ends the loop after 5 copies: %d copies, then %d %s"
      % (hops, code, text))
d.stop()
drtest.done()
