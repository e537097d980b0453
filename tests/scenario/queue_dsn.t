#!/usr/bin/python3
# timeout: 240
"""Delay warnings (delay_warning_time) and bounce_relay (issue #4).

- A destination that keeps answering 451: after delay_warning_time the
  sender gets exactly one "Action: delayed" DSN, the message stays queued.
- With bounce_relay set, the DSN for a 550 goes to that fixed next hop
  (a sink standing in for the local MTA), not to the sender's MX, and the
  sender's domain is never even looked up.
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import sink  # noqa: E402
import world  # noqa: E402

w = world.World()
busy = w.dest("busy.test", 11, rules=["RCPT||0|451 4.2.0 mailbox busy"])
perm = w.dest("perm.test", 12, rules=["RCPT|nobody@|0|550 5.1.1 no such user"])
senders = w.dest("senders.test", 13)
w.start()
# the stand-in for the local MTA that bounces must go back to
local = sink.spawn(os.path.join(w.tmp, "sink-local"), drtest.ip(30), 0)


def msg(to, subj, sender):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n\r\nbody\r\n" % (
        sender, to, subj)).encode()


# -- delay warning
d = w.daemon(name="warn", min_backoff="1s", max_backoff="2s",
             delay_warning_time="3s", queue_lifetime="1h")
c = drtest.SMTP(d.host, d.port)
slow = c.sendmail("sender@senders.test", ["someone@busy.test"],
                  msg("someone@busy.test", "slow one", "sender@senders.test"))
c.close()


def delayed():
    return [m for m in senders.messages() if m["mail_from"] == ""]


def retries(since=0):
    """Attempts of the slow message the relay has finished since offset
    since of its log: each one is a queue pass that could warn again."""
    return len(re.findall(r"%s: to=<someone@busy\.test>, attempt \d+ "
                          r"deferred" % slow, d.log_text()[since:]))


def notes(since=0):
    return re.findall(r"%s: sender delay notification: ([0-9A-F]{16})"
                      % slow, d.log_text()[since:])


def one_warning(what):
    """Exactly one warning exists: one made, one at the sender's MX, and
    nothing but the slow message queued (a second one made by now would
    be queued or delivered)."""
    drtest.check(len(notes()) == 1, "%s: one delay notification made (%d: "
                 "%s)" % (what, len(notes()), notes()[:5]))
    drtest.check(d.queue_ids() == [slow], "%s: only the slow message "
                 "queued (%d queued: %s)" % (what, len(d.queue_ids()),
                                             d.queue_ids()[:5]))
    drtest.check(len(delayed()) == 1, "%s: one delay warning at the "
                 "sender's MX (got %d)" % (what, len(delayed())))


drtest.wait_for(lambda: len(delayed()) >= 1, 30,
                "the delay warning")
# three more attempts after the one that warned (backoff 1-2 s): three
# more passes that must not warn again
n = retries()
drtest.wait_for(lambda: retries() >= n + 3, 30,
                "three more attempts after the warning")
one_warning("after three more attempts")
warns = delayed()
data = warns[0]["data"]
drtest.check(b"Action: delayed" in data, "Action: delayed")
drtest.check(b"Status: 4.2.0" in data, "Status from the 451 reply")
drtest.check(b"Will-Retry-Until: " in data, "Will-Retry-Until")
drtest.check(b"Final-Recipient: rfc822; someone@busy.test" in data,
             "names the recipient")
drtest.check(b"Subject: Delayed Mail" in data, "delay subject")
ids = d.queue_ids()
drtest.check(len(ids) == 1, "the message is still queued")
if ids:
    drtest.check(d.read_env(ids[0]).get("warned") in ("1", 1, True),
                 "the warning is recorded in the envelope")
# the warning survives a restart: no second warning, after two attempts
# of the restarted daemon
d.stop()
at = len(d.log_text())
d.start()
drtest.wait_for(lambda: retries(at) >= 2, 30,
                "two attempts after the restart")
drtest.check(notes(at) == [], "no delay notification after the restart")
one_warning("after a restart")
d.stop()

# -- bounce_relay
b = w.daemon(name="relay", min_backoff="1h",
             bounce_relay="%s:%d" % (local.host, local.port))
c = drtest.SMTP(b.host, b.port)
c.sendmail("user@nodns.invalid", ["nobody@perm.test"],
           msg("nobody@perm.test", "goes back", "user@nodns.invalid"))
c.close()
drtest.wait_for(lambda: len(local.messages()) >= 1, 30,
                "the DSN at the bounce_relay")
m = local.messages()[0]
drtest.check(m["mail_from"] == "" and m["rcpts"] == ["user@nodns.invalid"],
             "DSN from <> to the original sender")
drtest.check(b"Final-Recipient: rfc822; nobody@perm.test" in m["data"],
             "DSN content")
# the sink records before it answers 250: wait for the relay's log line
relay_line = "relay=bounce_relay[%s]:%d" % (local.host, local.port)
drtest.wait_for(lambda: relay_line in b.log_text(), 10,
                "the delivery line naming the bounce_relay")
drtest.check(relay_line in b.log_text(),
             "logged with the bounce_relay as relay")
drtest.wait_for(lambda: b.queue_ids() == [], 10,
                "an empty queue")
local.stop()
w.stop()
drtest.done()
