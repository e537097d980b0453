#!/usr/bin/python3
# timeout: 300
"""Scheduler acceptance (issue #4): retries with backoff, bounces (RFC 3464),
no bounce for <>, lifetime expiry, per-destination concurrency limits and
connection reuse, all against real sinks behind a signed DNS world.
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import world  # noqa: E402

w = world.World()
dest = w.dest
sinks = w.sinks
s_retry = dest("retry.test", 11, rules=["RCPT|later@|1|451 4.3.0 try later"])
s_perm = dest("perm.test", 12, rules=["RCPT|nobody@|0|550 5.1.1 no such user"])
s_slow = dest("expire.test", 13, rules=["RCPT||0|451 4.2.0 mailbox busy"])
s_sender = dest("senders.test", 14)
bulk = ["bulk%d.test" % i for i in range(5)]
for i, b in enumerate(bulk):
    dest(b, 20 + i)
w.start()
d = w.daemon(min_backoff="2s", max_backoff="4s", queue_lifetime="8s",
             max_connections_per_destination=2)


def msg(to, subj, sender="sender@senders.test"):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n"
            "Message-ID: <%s@dr-test>\r\n\r\nbody of %s\r\n" % (
                sender or "MAILER-DAEMON", to, subj, subj.replace(" ", "."),
                subj)).encode()


c = drtest.SMTP(d.host, d.port)
c.sendmail("sender@senders.test", ["later@retry.test"], msg(
    "later@retry.test", "retry one"))
c.sendmail("sender@senders.test", ["nobody@perm.test", "ok@perm.test"],
           msg("nobody@perm.test", "perm one"))
null_id = c.sendmail("", ["nobody@perm.test"],
                     msg("nobody@perm.test", "null sender", sender=""))
c.sendmail("sender@senders.test", ["someone@expire.test"], msg(
    "someone@expire.test", "expire one"))
c.close()

# 451 then 250: delivered on a later attempt, backoff in the log
drtest.wait_for(lambda: len(s_retry.messages()) == 1, 30,
                "the retried message")
# the sink records before it answers 250: wait for the relay's log line
drtest.wait_for(lambda: re.search(r"to=<later@retry\.test>, .*status=sent",
                                  d.log_text()) is not None,
                10, "the status=sent line")
log = d.log_text()
drtest.check(re.search(r"to=<later@retry\.test>, attempt 1 deferred, next "
                       r"attempt in \d+s", log) is not None,
             "first attempt deferred with the backoff logged")
drtest.check(re.search(r"to=<later@retry\.test>, .*status=deferred \(.*451 "
                       r"4\.3\.0", log) is not None, "451 logged as deferral")
drtest.check(re.search(r"to=<later@retry\.test>, .*status=sent", log)
             is not None, "delivered on a later attempt")

# 550: ok@ delivered, nobody@ bounced with a DSN to the sender
drtest.wait_for(lambda: any("ok@perm.test" in m["rcpts"]
                            for m in s_perm.messages()), 30,
                "the accepted recipient")


def dsns():
    return [m for m in s_sender.messages()
            if m["mail_from"] == "" and "sender@senders.test" in m["rcpts"]]


drtest.wait_for(lambda: len(dsns()) >= 1, 30, "the DSN")
data = dsns()[0]["data"]
drtest.check(b"multipart/report; report-type=delivery-status" in data,
             "DSN is multipart/report delivery-status")
drtest.check(b"Reporting-MTA: dns; relay.dr-test.example" in data,
             "DSN Reporting-MTA")
drtest.check(b"Final-Recipient: rfc822; nobody@perm.test" in data,
             "DSN Final-Recipient")
drtest.check(b"Action: failed" in data and b"Status: 5.1.1" in data,
             "DSN Action/Status from the server's enhanced code")
drtest.check(b"Diagnostic-Code: smtp; " in data and b"550 5.1.1" in data,
             "DSN Diagnostic-Code carries the reply")
drtest.check(b"Remote-MTA: dns; mx.perm.test" in data, "DSN Remote-MTA")
drtest.check(b"Subject: perm one" in data,
             "DSN carries the original headers")
drtest.check(b"ok@perm.test" not in data.split(b"message/delivery-status")[1]
             .split(b"text/rfc822-headers")[0],
             "the delivered recipient is not in the DSN report part")

# lifetime expiry: bounce with 4.4.7
drtest.wait_for(lambda: len(dsns()) >= 2, 40,
                "the expiry DSN")
exp = [m for m in dsns() if b"someone@expire.test" in m["data"]]
drtest.check(len(exp) == 1, "expiry DSN names the recipient")
if exp:
    drtest.check(b"Status: 4.4.7" in exp[0]["data"] and
                 b"delivery time expired" in exp[0]["data"],
                 "expiry DSN: 4.4.7, delivery time expired")

# <> sender: bounced recipient, but no DSN anywhere.  Wait until the
# relay is done with that message (its "removed" line), then look at that
# message's own lines: bounced, and no notification created for it; and
# no notification at all besides the two DSNs the sink received.
drtest.wait_for(lambda: "%s: removed" % null_id in d.log_text(),
                30, "the <> message to be removed")
log = d.log_text()
drtest.check(re.search(r"^.*: %s: to=<nobody@perm\.test>, .*status=bounced"
                       % null_id, log, re.M) is not None,
             "the <> message's 550 logged as bounced")
drtest.check(re.search(r": %s: sender .*notification" % null_id, log)
             is None, "no notification created for the <> message")
notes = re.findall(r": [0-9A-F]{16}: sender .*notification: ([0-9A-F]{16})",
                   log)
drtest.check(len(notes) == 2, "exactly two notifications created, for "
             "'perm one' and 'expire one' (got %d)" % len(notes))
drtest.check(len(dsns()) == 2, "exactly two DSNs at the sender's sink "
             "(got %d)" % len(dsns()))
drtest.check(not any(b"Subject: null sender" in m["data"]
                     for s in sinks.values() for m in s.messages()
                     if m["mail_from"] == ""),
             "no sink received a report about the <> message")

# 500 messages to 5 domains, per-destination limit 2, connection reuse
c = drtest.SMTP(d.host, d.port)
for i in range(500):
    dom = bulk[i % 5]
    c.sendmail("sender@senders.test", ["u%d@%s" % (i, dom)],
               msg("u%d@%s" % (i, dom), "bulk %d" % i))
c.close()
drtest.wait_for(lambda: sum(len(sinks[b].messages()) for b in bulk) == 500,
                120, "500 bulk messages at the sinks")
for b in bulk:
    st = sinks[b].stats()
    drtest.check(st["max_active"] <= 2, "%s: at most 2 concurrent sessions "
                 "(saw %d)" % (b, st["max_active"]))
    drtest.check(st["connections"] <= 25, "%s: connections reused: %d "
                 "connections for 100 messages" % (b, st["connections"]))
    drtest.check(len(sinks[b].messages()) == 100, "%s: 100 messages" % b)
    drtest.log("%s: %d connections, max %d concurrent", b,
               st["connections"], st["max_active"])

# nothing left in the queue
drtest.wait_for(lambda: d.queue_ids() == [], 20,
                "an empty queue")
w.stop()
drtest.done()
