#!/usr/bin/python3
# smtpd_postmaster.t - issue #12 item 7: "RCPT TO:<postmaster>" without a
# domain is delivered to the configured `postmaster` address, or refused at
# RCPT when there is none - never accepted and then deferred until
# queue_lifetime.
#
# timeout: 120
#
# Without `postmaster`: <postmaster> and <PostMaster> get 550 5.1.1 at
# RCPT (logged as a NOQUEUE reject), the other recipients of the same
# transaction are still accepted and only they are queued.  With
# `postmaster = admin@ops.dr-test.example` (after a SIGHUP): the
# recipient becomes that address in the envelope, with ORCPT
# rfc822;postmaster, once even when given twice.  A postmaster value
# without a domain is refused by `danerelayd -n` with file:line.
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import drtest  # noqa: E402
from drtest import check, log  # noqa: E402

CLIENT = "client.dr-test.example"
DEST = "dest.dr-test.example"
GOOD = drtest.ip(2)
ADMIN = "admin@ops.dr-test.example"

d = drtest.Daemon()
d.start()


def session():
    c = drtest.SMTP(d.host, d.port, source=GOOD)
    c.expect("EHLO " + CLIENT, 250)
    return c


# 1. no postmaster configured: refused at RCPT
c = session()
c.expect("MAIL FROM:<s@%s>" % CLIENT, 250)
for rcpt in ("postmaster", "PostMaster"):
    code, text = c.cmd("RCPT TO:<%s>" % rcpt)
    log("RCPT TO:<%s> -> %d %s", rcpt, code, text)
    check(code == 550 and text.startswith("5.1.1"),
          "RCPT TO:<%s> without a postmaster address: %d %s (wanted 550 "
          "5.1.1)" % (rcpt, code, text))
c.expect("RCPT TO:<r@%s>" % DEST, 250)
code, text = c.data(b"Subject: to postmaster\r\n\r\nhello\r\n")
check(code == 250, "the other recipient is accepted: %d %s" % (code, text))
ids = d.queue_ids()
check(len(ids) == 1, "one message queued: %s" % ids)
if ids:
    rcpts = [r["addr"] for r in d.read_env(ids[0])["rcpts"]]
    check(rcpts == ["r@" + DEST], "only the real recipient: %s" % rcpts)
# a transaction whose only recipient is postmaster: nothing to send
c.expect("MAIL FROM:<s@%s>" % CLIENT, 250)
code, text = c.cmd("RCPT TO:<postmaster>")
check(code == 550, "RCPT TO:<postmaster> again: %d %s" % (code, text))
code, text = c.cmd("DATA")
check(code == 554, "DATA with no valid recipient: %d %s" % (code, text))
c.cmd("QUIT")
c.close()
check("NOQUEUE: reject: RCPT from unknown[%s]: 550 5.1.1 <postmaster>"
      % GOOD in d.log_text(), "the refusal is logged")

# 2. a postmaster address: the recipient goes there
d.write_config(postmaster=ADMIN)
d.reload()
deadline = time.monotonic() + drtest.scaled(10)
while "settings reloaded" not in d.log_text() and \
        time.monotonic() < deadline:
    time.sleep(0.05)
time.sleep(0.2)
c = session()
c.expect("MAIL FROM:<s@%s>" % CLIENT, 250)
code, text = c.cmd("RCPT TO:<Postmaster>")
check(code == 250, "RCPT TO:<Postmaster> with postmaster set: %d %s"
      % (code, text))
code, text = c.cmd("RCPT TO:<postmaster>")
check(code == 250, "given twice: %d %s" % (code, text))
code, text = c.data(b"Subject: to postmaster\r\n\r\nhello\r\n")
check(code == 250, "queued: %d %s" % (code, text))
m = drtest.QUEUED_RE.search(text)
if m:
    env = d.read_env(m.group(1))
    rcpts = [(r["addr"], r.get("orcpt")) for r in env["rcpts"]]
    log("envelope recipients: %s", rcpts)
    check(len(rcpts) == 1 and rcpts[0][0] == ADMIN,
          "the recipient is %s, once: %s" % (ADMIN, rcpts))
    check(len(rcpts) == 1 and rcpts[0][1] is not None and
          rcpts[0][1].lower() == "rfc822;postmaster",
          "ORCPT keeps the original: %s" % rcpts)
c.cmd("QUIT")
c.close()
d.stop()

# 3. the value is checked
bad = os.path.join(drtest.TMPDIR, "bad.conf")
with open(d.conf) as f:
    text = f.read().replace("postmaster = " + ADMIN, "postmaster = admin")
with open(bad, "w") as f:
    f.write(text)
r = subprocess.run([d.binary, "-n", "-c", bad], stdin=subprocess.DEVNULL,
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                   universal_newlines=True)
log("danerelayd -n with postmaster = admin: %d %s", r.returncode,
    r.stdout.strip())
check(r.returncode == 1 and "bad.conf:" in r.stdout and "postmaster" in
      r.stdout, "postmaster without a domain is refused: %s" % r.stdout)
drtest.done()
