#!/usr/bin/python3
# timeout: 300
"""RFC 5321 §4.5.3.2 client timeouts, each with its own setting (issue #13
item 4).

Slow servers (sink.py "sleep N REPLY" rules), one per wait: the greeting,
the replies to MAIL, RCPT and DATA, and the reply after the final ".".

  A. smtp_timeout = 2s and every other timeout at its default (the RFC's
     5 / 5 / 5 / 2 / 10 minutes): a server that takes 4 s for any of these
     replies still gets its message, once.  Before the fix the wait after
     the final "." was smtp_timeout: the receiver had the message, we
     deferred it, and the retry delivered it a second time.
  B. smtp_timeout = 60s, the per-wait settings at 1s: each slow reply now
     times out in its own state (the settings are wired, and are not
     smtp_timeout).
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import world  # noqa: E402

SLOW = drtest.scaled(4)
CASES = [
    # domain, sink rule, state in the "timeout in state X" message
    ("greeting.test", "BANNER||0|sleep %g 220 sink.test slow ESMTP" % SLOW,
     "BANNER"),
    ("mail.test", "MAIL||0|sleep %g 250 2.1.0 ok, slowly" % SLOW, "MAIL"),
    ("rcpt.test", "RCPT||0|sleep %g 250 2.1.5 ok, slowly" % SLOW, "RCPT"),
    ("data.test", "DATA||0|sleep %g 354 go ahead, slowly" % SLOW, "DATA"),
    ("done.test", "EOM||0|sleep %g 250 2.0.0 queued, slowly" % SLOW, "EOM"),
]

w = world.World()
for i, (dom, rule, _) in enumerate(CASES):
    w.dest(dom, 11 + i, rules=[rule])
w.dest("senders.test", 30)
w.start()


def msg(to):
    return ("From: <sender@senders.test>\r\nTo: <%s>\r\nSubject: slow\r\n"
            "Message-ID: <%s@dr-test>\r\n\r\nA slow server.\r\n" %
            (to, to.replace("@", "."))).encode()


def send_all(d, local):
    c = drtest.SMTP(d.host, d.port)
    for dom, _, _ in CASES:
        c.sendmail("sender@senders.test", ["%s@%s" % (local, dom)],
                   msg("%s@%s" % (local, dom)))
    c.close()


def outcome(d, local, dom):
    m = re.search(r"to=<%s@%s>, .*status=(sent|deferred|bounced)[^\n]*" %
                  (local, re.escape(dom)), d.log_text())
    return m.group(0) if m else None


def at_sink(dom, local):
    return [m for m in w.sinks[dom].messages()
            if "%s@%s" % (local, dom) in m["rcpts"]]


# ---- A: defaults, smtp_timeout much shorter than the slow replies ---------
a = w.daemon(name="a", min_backoff="1h", smtp_timeout="2s")
send_all(a, "a")
for dom, _, state in CASES:
    drtest.wait_for(lambda: outcome(a, "a", dom) is not None,
                    60, "an outcome for a@%s" % dom)
    line = outcome(a, "a", dom)
    drtest.check("status=sent" in line, "defaults: %s slow at %s, still "
                 "sent: %s" % (dom, state, line))
    drtest.check(len(at_sink(dom, "a")) == 1, "defaults: %s got the message "
                 "once (%d)" % (dom, len(at_sink(dom, "a"))))
a.stop()

# ---- B: every per-wait setting short, smtp_timeout long -------------------
b = w.daemon(name="b", min_backoff="1h", smtp_timeout="60s",
             smtp_greeting_timeout="1s", smtp_mail_timeout="1s",
             smtp_rcpt_timeout="1s", smtp_data_init_timeout="1s",
             smtp_data_done_timeout="1s")
send_all(b, "b")
for dom, _, state in CASES:
    drtest.wait_for(lambda: outcome(b, "b", dom) is not None,
                    60, "an outcome for b@%s" % dom)
    line = outcome(b, "b", dom)
    drtest.check("status=deferred" in line and
                 "timeout in state %s" % state in line,
                 "short %s timeout: deferred, timeout in state %s: %s" %
                 (dom, state, line))
b.stop()
w.stop()
drtest.done()
