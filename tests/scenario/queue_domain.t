#!/usr/bin/python3
# timeout: 240
"""queue_domain.t - the operator's queue control by destination, in the
signed DNS world: `danerelay queue hold|release|delete|bounce --domain D`,
`queue bounce ID`, and `queue suspend|resume D`, with the daemon running
and stopped.

Destinations a.test and b.test have their MX hosts down (every attempt
is deferred, min_backoff 1h); c.test's MX is up; the senders' domain
snd.test receives the DSNs.

1. Running daemon (two workers, so the operations reach every worker's
   queue): hold/release --domain a.test touch exactly the messages with a
   recipient waiting there; bounce --domain a.test fails those
   recipients: the sender of a message that has nothing else to do gets
   its DSN at once ("returned to the sender by the postmaster", 5.0.0),
   a message from <> goes without one, and a message that still waits
   for b.test keeps waiting; delete --domain b.test then removes the
   b.test recipients without a DSN for them: the message with only b.test
   goes, the mixed one goes too and its DSN names only the a.test
   recipient; bounce ID returns one message.
2. suspend c.test: a message for it is not delivered, also after a
   restart; `danerelay queue` lists the suspension at the top and on the
   recipient; resume delivers it without a flush.
3. Stopped daemon: hold/release/bounce --domain and suspend edit the
   spool and the list; at the next start the DSN goes out and the
   suspension holds, until resume.
"""

import email
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import drtest  # noqa: E402
import world  # noqa: E402

SENDER = "s@snd.test"

w = world.World()
w.dest("a.test", 11)
w.dest("b.test", 12)
w.dest("c.test", 13)
w.dest("snd.test", 14)
w.start()
w.stop_mx("a.test", "mx")
w.stop_mx("b.test", "mx")
d = w.daemon(min_backoff="1h", workers=2)


def send(rcpts, sender=SENDER):
    return w.send(d, rcpts, sender=sender)


def cli(*args):
    r = d.cli(*args)
    drtest.check(r.returncode == 0, "danerelay %s: exit 0 (%d, %s)" %
                 (" ".join(args), r.returncode, r.stderr.strip()))
    return r.stdout


def deferred(rcpt):
    drtest.wait_for(lambda: any("status=deferred" in x for x in
                                w.outcomes(d).get(rcpt, [])), 30,
                    "%s deferred" % rcpt)


def listing():
    return cli("queue")


def block(text, qid):
    """The lines of one message in the listing ('' when not listed)."""
    m = re.search(r"^%s.*?(?=^\S|\Z)" % qid, text, re.M | re.S)
    return m.group(0) if m else ""


def dsns():
    out = []
    for m in w.sinks["snd.test"].messages():
        msg = email.message_from_bytes(m["data"])
        if msg.get_content_type() != "multipart/report":
            continue
        status = [p for p in msg.walk()
                  if p.get_content_type() == "message/delivery-status"]
        text = status[0].as_string() if status else ""
        out.append({"rcpts": m.get("rcpts", []), "status": text,
                    "subject": msg.get("Subject", "")})
    return out


def wait_dsns(n, what):
    return drtest.wait_for(lambda: dsns() if len(dsns()) >= n else None,
                           30, what)


def queued_ids():
    return set(re.findall(r"^([0-9A-F]{16})", listing(), re.M))


# -- 1. by domain, daemon running --------------------------------------------
m1 = send(["u1@a.test"])
# b.test first: m2 belongs to the other worker than the a.test-only ones
m2 = send(["u2@b.test", "u2@a.test"])
m3 = send(["u3@b.test"])
m4 = send(["u4@a.test"], sender="")
for r in ("u1@a.test", "u2@a.test", "u2@b.test", "u3@b.test", "u4@a.test"):
    deferred(r)

out = cli("queue", "hold", "--domain", "A.test.")
drtest.check("3 messages on hold (recipients at a.test)" in out,
             "hold --domain: 3 messages (%r)" % out)
text = listing()
for qid in (m1, m2, m4):
    drtest.check("[on hold]" in block(text, qid), "%s held" % qid)
drtest.check("[on hold]" not in block(text, m3),
             "the b.test-only message is not held")
out = cli("queue", "release", "--domain", "a.test")
drtest.check("3 messages released" in out, "release --domain (%r)" % out)
drtest.check("[on hold]" not in listing(), "all released")

out = cli("queue", "bounce", "--domain", "a.test")
drtest.check("3 messages returned to the sender (recipients at a.test)"
             in out, "bounce --domain: 3 messages (%r)" % out)
got = wait_dsns(1, "the DSN for %s" % m1)
time.sleep(drtest.scaled(1))
got = dsns()
drtest.check(len(got) == 1, "one DSN so far (m1's; m2 still waits for "
             "b.test, m4 is from <>): %d" % len(got))
if got:
    st = got[0]["status"]
    drtest.check(got[0]["rcpts"] == [SENDER], "the DSN goes to the sender")
    drtest.check("Final-Recipient: rfc822; u1@a.test" in st and
                 "Status: 5.0.0" in st and "Action: failed" in st,
                 "DSN fields for u1@a.test: %r" % st)
    drtest.check("returned to the sender by the postmaster" in st,
                 "the DSN says the postmaster returned it")
drtest.wait_for(lambda: not ({m1, m4} & queued_ids()), 10,
                "the bounced messages leave the queue")
text = listing()
drtest.check(re.search(r"<u2@a\.test> failed", block(text, m2)) and
             re.search(r"<u2@b\.test> pending", block(text, m2)),
             "the mixed message: a.test failed, b.test pending:\n%s"
             % block(text, m2))
drtest.check(re.search(r"to=<u4@a\.test>, status=bounced \(returned to the "
                       r"sender by the postmaster", d.log_text())
             is not None, "the bounce is logged per recipient")

out = cli("queue", "delete", "--domain", "b.test")
drtest.check("2 messages with recipients deleted (recipients at b.test)"
             in out, "delete --domain b.test: 2 messages (%r)" % out)
got = wait_dsns(2, "m2's DSN once its b.test recipient is deleted")
if len(got) >= 2:
    st = got[1]["status"]
    drtest.check("u2@a.test" in st and "u2@b.test" not in st,
                 "m2's DSN names the bounced recipient only: %r" % st)
drtest.wait_for(lambda: not queued_ids(), 10, "the queue is empty")
drtest.check(w.sinks["snd.test"].stats().get("messages") == 2,
             "exactly two DSNs (none for <>, none for deleted recipients)")

m5 = send(["u5@b.test"])
deferred("u5@b.test")
out = cli("queue", "bounce", m5)
drtest.check("%s: returned to the sender" % m5 in out,
             "bounce ID (%r)" % out)
got = wait_dsns(3, "the DSN of bounce ID")
drtest.check(len(got) == 3 and "u5@b.test" in got[-1]["status"],
             "bounce ID: the DSN names u5@b.test")
r = d.cli("queue", "bounce", m5)
drtest.check(r.returncode == 1 and "no such message" in r.stderr,
             "bounce of a message that is gone: exit 1 (%r)" % r.stderr)
r = d.cli("queue", "bounce", "--domain", "no domain")
drtest.check(r.returncode == 2, "bounce --domain with a bad name: exit 2")

# -- 2. suspend / resume, daemon running -------------------------------------
out = cli("queue", "suspend", "c.test")
drtest.check(out.strip() == "c.test: suspended", "suspend (%r)" % out)
out = cli("queue", "suspend", "c.test")
drtest.check(out.strip() == "c.test: already suspended",
             "suspend twice (%r)" % out)
m6 = send(["u6@c.test"])
time.sleep(drtest.scaled(3))
drtest.check(w.sinks["c.test"].stats().get("connections", 0) == 0,
             "suspended: c.test's MX is not contacted")
text = listing()
drtest.check(text.startswith("Suspended destinations (danerelay queue resume"
                             " DOMAIN): c.test"),
             "the listing starts with the suspension:\n%s" % text[:300])
drtest.check("<u6@c.test> pending, destination suspended" in
             block(text, m6), "the recipient is marked suspended")
d.restart()
time.sleep(drtest.scaled(3))
drtest.check(w.sinks["c.test"].stats().get("connections", 0) == 0,
             "suspended across a restart")
drtest.check("1 destination suspended by the operator" in d.log_text(),
             "the start says what is suspended")
out = cli("queue", "resume", "c.test")
drtest.check(out.strip() == "c.test: resumed", "resume (%r)" % out)
w.expect(d, "c.test", "sent", rcpt="u6@c.test", at="mx")
drtest.check(not listing().startswith("Suspended"),
             "nothing listed as suspended after resume")

# -- 3. daemon stopped --------------------------------------------------------
m7 = send(["u7@a.test"])
deferred("u7@a.test")
d.stop()
out = cli("queue", "hold", "--domain", "a.test")
drtest.check("1 message on hold" in out, "stopped: hold --domain (%r)" % out)
drtest.check("[on hold]" in block(listing(), m7), "stopped: m7 held")
out = cli("queue", "release", "--domain", "a.test")
drtest.check("1 message released" in out, "stopped: release (%r)" % out)
out = cli("queue", "bounce", "--domain", "a.test")
drtest.check("1 message returned to the sender" in out and
             "sent when the daemon starts" in out,
             "stopped: bounce --domain (%r)" % out)
out = cli("queue", "suspend", "c.test")
drtest.check(out.strip() == "c.test: suspended", "stopped: suspend")
d.start()
got = wait_dsns(4, "the DSN of the bounce made while stopped")
drtest.check(len(got) == 4 and "u7@a.test" in got[-1]["status"],
             "the stopped-daemon bounce's DSN names u7@a.test")
before = w.sinks["c.test"].stats().get("messages", 0)
m8 = send(["u8@c.test"])
time.sleep(drtest.scaled(3))
drtest.check(w.sinks["c.test"].stats().get("messages", 0) == before,
             "suspended while stopped: not delivered after the start")
out = cli("queue", "resume", "c.test")
drtest.wait_for(lambda: w.sinks["c.test"].stats().get("messages", 0) ==
                before + 1, 30, "u8@c.test delivered after resume")

w.stop()
drtest.done()
