#!/usr/bin/python3
# timeout: 300
"""Addresses that used to poison a whole message (issue #12 item 5).

The outbound client writes every address the inbound side accepts, and
an address it cannot carry fails alone, never its co-recipients.
Destinations are DANE sinks in a signed zone:

  - '"a>b"@q.test' (an RFC 5321 quoted local part) with a co-recipient,
    and a message from '"x<y"@senders.test': accepted at RCPT / MAIL,
    so written as they are and delivered (the client used to refuse any
    '<' or '>' and deferred every recipient for the queue lifetime);
  - a UTF-8 recipient and an ASCII one (SMTPUTF8 submission, ASCII
    header) at a server without SMTPUTF8: the UTF-8 one is bounced
    (5.6.7), the ASCII one is delivered (both used to bounce);
  - a UTF-8 sender there: the sender is in every transaction, so every
    recipient bounces at once (5.6.7) - not deferred;
  - a message left in the queue with an address no inbound parser takes
    (an envelope of spool format 0.1 written by hand: an older version,
    or a damaged file): such a recipient bounces alone (5.1.3), a sender
    like that bounces every recipient at once (5.1.7) instead of
    deferring them until queue_lifetime.
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import world  # noqa: E402

w = world.World()
q = w.dest("q.test", 11)
nu = w.dest("nu.test", 12, extra=["--no-smtputf8"])
w.dest("senders.test", 40)
w.start()
d = w.daemon(min_backoff="1h")


def msg(to, subject="addresses"):
    return ("From: <sender@senders.test>\r\nTo: <%s>\r\nSubject: %s\r\n"
            "Message-ID: <%d.%s@dr-test>\r\n\r\nAddress test.\r\n" %
            (to, subject, time.time_ns(), subject.replace(" ", "."))
            ).encode()


c = drtest.SMTP(d.host, d.port)
c.sendmail("sender@senders.test", ['"a>b"@q.test', "ok1@q.test"],
           msg("ok1@q.test", "quoted rcpt"))
c.sendmail('"x<y"@senders.test', ["ok2@q.test"], msg("ok2@q.test",
                                                     "quoted sender"))
# UTF-8 recipient + ASCII recipient, ASCII header, SMTPUTF8 submission
c.expect("MAIL FROM:<sender@senders.test> SMTPUTF8", 250)
c.expect("RCPT TO:<j\u00fcrgen@nu.test>", 250)
c.expect("RCPT TO:<ok3@nu.test>", 250)
code, text = c.data(msg("ok3@nu.test", "utf8 rcpt"))
drtest.check(code == 250, "UTF-8 recipient message accepted: %d" % code)
c.expect("MAIL FROM:<j\u00f6rg@senders.test> SMTPUTF8", 250)
c.expect("RCPT TO:<ok4@nu.test>", 250)
code, text = c.data(msg("ok4@nu.test", "utf8 sender"))
drtest.check(code == 250, "UTF-8 sender message accepted: %d" % code)
c.close()

# Two messages queued by hand in spool format 0.1 (ID.msg = the data,
# ID.env beside it), while the daemon is down.
d.stop()
qdir = os.path.join(d.spool, "queue")
st = os.stat(qdir)


def plant(qid, sender, rcpts, subject):
    data = msg(rcpts[-1], subject)
    env = ["danerelay-envelope 1", "id " + qid,
           "created %d" % int(time.time()), "size %d" % len(data),
           "sender " + sender]
    for r in rcpts:
        env += ["rcpt " + r, "rcpt-state pending", "rcpt-attempts 0",
                "rcpt-next 0"]
    env.append("end")
    for name, content in ((qid + ".msg", data),
                          (qid + ".env", ("\n".join(env) + "\n").encode())):
        path = os.path.join(qdir, name)
        with open(path, "wb") as f:
            f.write(content)
        os.chmod(path, 0o600)
        os.chown(path, st.st_uid, st.st_gid)


plant("0000000000AB0001", "sender@senders.test", ["bad>x@q.test",
                                                   "ok5@q.test"], "bad rcpt")
plant("0000000000AB0002", "bad<s@senders.test", ["ok6@q.test"], "bad sender")
d.start()


def wait(rcpt):
    return world.wait_outcome(d, rcpt)


def at(sk, rcpt):
    return [m for m in sk.messages() if rcpt in m["rcpts"]]


for rcpt in ('"a>b"@q.test', "ok1@q.test", "ok2@q.test"):
    line = wait(rcpt)
    drtest.check("status=sent" in line, "%s: sent: %s" % (rcpt, line))
m1 = at(q, '"a>b"@q.test')
drtest.check(len(m1) == 1 and sorted(m1[0]["rcpts"]) ==
             ['"a>b"@q.test', "ok1@q.test"],
             "one copy with both recipients as written: %s" %
             [m["rcpts"] for m in m1])
m2 = at(q, "ok2@q.test")
drtest.check(len(m2) == 1 and m2[0]["mail_from"] == '"x<y"@senders.test',
             "MAIL FROM:<\"x<y\"@senders.test> as written: %s" %
             [m["mail_from"] for m in m2])

line = wait("ok3@nu.test")
drtest.check("status=sent" in line, "ok3: the ASCII co-recipient of a "
             "UTF-8 one goes to the server without SMTPUTF8: %s" % line)
line = wait("j\u00fcrgen@nu.test")
drtest.check("status=bounced" in line and "5.6.7" in line,
             "the UTF-8 recipient alone bounces 5.6.7: %s" % line)
m3 = at(nu, "ok3@nu.test")
drtest.check(len(m3) == 1 and m3[0]["rcpts"] == ["ok3@nu.test"] and
             "SMTPUTF8" not in m3[0]["mail_params"],
             "nu.test got ok3 alone, without SMTPUTF8: %s" %
             [(m["rcpts"], m["mail_params"]) for m in m3])

line = wait("ok4@nu.test")
drtest.check("status=bounced" in line and "5.6.7" in line,
             "a UTF-8 sender at a server without SMTPUTF8: bounced at "
             "once: %s" % line)
drtest.check(at(nu, "ok4@nu.test") == [], "nothing sent for ok4")

line = wait("bad>x@q.test")
drtest.check("status=bounced" in line and "5.1.3" in line,
             "a recipient that cannot be written bounces (5.1.3): %s" %
             line)
line = wait("ok5@q.test")
drtest.check("status=sent" in line, "...and its co-recipient is sent: %s" %
             line)
m5 = at(q, "ok5@q.test")
drtest.check(len(m5) == 1 and m5[0]["rcpts"] == ["ok5@q.test"],
             "q.test got ok5 alone: %s" % [m["rcpts"] for m in m5])
line = wait("ok6@q.test")
drtest.check("status=bounced" in line and "5.1.7" in line,
             "a sender that cannot be written bounces every recipient at "
             "once (5.1.7): %s" % line)
drtest.check(at(q, "ok6@q.test") == [], "nothing sent for ok6")
tr = "\n".join(cmd for t in q.transcripts() for cmd in t["commands"])
drtest.check("bad<s" not in tr and "bad>x" not in tr,
             "neither bad address was ever written to the server")

d.stop()
w.stop()
drtest.done()
