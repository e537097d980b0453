#!/usr/bin/python3
# timeout: 300
"""What README.md promises about outbound delivery and no other test
checks, against sinks behind a signed DNS world (world.py):

- backoff: a deferred recipient is retried after min_backoff, doubling up
  to max_backoff, with jitter (+-10 %): each attempt's "next attempt in
  Ns" (attempts forced with `danerelay flush`) against the doubling the
  test computes, and five messages' first waits not all equal;
- the recipients of one message for one domain go in transactions of at
  most 100: 250 recipients arrive as 100 + 100 + 50, each exactly once;
- session reuse caps: at most 100 messages per session (250 messages, one
  connection at a time: sessions of 100, 100, 50), and an idle session
  is closed after 10 s (the sink sees the QUIT 10 s after the last
  message, and the next message opens a new session);
- max_connections bounds the deliveries in progress across destinations
  (the sinks' own times of each transaction, MAIL to the final reply).
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import world  # noqa: E402

w = world.World()
busy = w.dest("busy.test", 11, rules=["RCPT||0|451 4.2.0 mailbox busy"])
many = w.dest("many.test", 12)
reuse = w.dest("reuse.test", 13)
idle = w.dest("idle.test", 14)
slow = ["slow%d.test" % i for i in range(4)]
for i, dom in enumerate(slow):
    w.dest(dom, 20 + i, rules=["DATA||0|sleep 0.4 354 go ahead"])
w.start()

MIN, MAX = 100, 700
d = w.daemon(min_backoff="%ds" % MIN, max_backoff="%ds" % MAX,
             queue_lifetime="5d", max_connections="2",
             max_connections_per_destination="1")


def body(subj):
    return ("From: <s@client.dr-test.example>\r\nSubject: %s\r\n\r\n"
            "body of %s\r\n" % (subj, subj)).encode()


def send(rcpts, subj, c=None):
    own = c is None
    c = c or drtest.SMTP(d.host, d.port)
    qid = c.sendmail("s@client.dr-test.example", rcpts, body(subj))
    if own:
        c.close()
    return qid


# ---------------------------------------------------------------- backoff
def waits(qid):
    """{attempt: seconds to the next one} from the relay's log."""
    return {int(a): int(s) for a, s in re.findall(
        r"%s: to=<[^>]*>, attempt (\d+) deferred, next attempt in (\d+)s"
        % qid, d.log_text())}


c = drtest.SMTP(d.host, d.port)
firsts = [send(["u%d@busy.test" % i], "backoff %d" % i, c) for i in range(5)]
c.close()
qid = firsts[0]
for n in range(1, 6):
    drtest.wait_for(lambda: n in waits(qid), 30, "attempt %d of %s" % (n, qid))
    if n < 5:
        r = d.cli("flush", qid)
        drtest.check(r.returncode == 0, "flush %s: %s" % (qid, r.stderr))
got = waits(qid)
for n in range(1, 6):
    want = min(MIN * 2 ** (n - 1), MAX)
    drtest.check(abs(got[n] - want) <= want // 10,
                 "attempt %d: next in %ds, want %d +- 10 %% (doubling from "
                 "min_backoff, capped at max_backoff)" % (n, got[n], want))
for q in firsts:
    drtest.wait_for(lambda: 1 in waits(q), 30, "first attempt of %s" % q)
first = [waits(q)[1] for q in firsts]
drtest.check(all(abs(f - MIN) <= MIN // 10 for f in first),
             "first waits within min_backoff +- 10 %%: %s" % first)
drtest.check(len(set(first)) > 1, "jitter: five first waits not all equal: "
             "%s" % first)

# ---------------------------------------------------------------- 100 rcpts
rcpts = ["r%03d@many.test" % i for i in range(250)]
send(rcpts, "many recipients")
drtest.wait_for(lambda: sum(len(m["rcpts"]) for m in many.messages()) >= 250,
                60, "250 recipients at many.test")
sizes = sorted((len(m["rcpts"]) for m in many.messages()), reverse=True)
drtest.check(sizes == [100, 100, 50], "250 recipients in transactions of "
             "100, 100, 50: %s" % sizes)
seen = [r for m in many.messages() for r in m["rcpts"]]
drtest.check(sorted(seen) == sorted(rcpts), "every recipient exactly once "
             "(%d, %d distinct)" % (len(seen), len(set(seen))))

# ---------------------------------------------------------------- reuse caps
c = drtest.SMTP(d.host, d.port)
for i in range(250):
    send(["u%d@reuse.test" % i], "reuse %d" % i, c)
c.close()
drtest.wait_for(lambda: len(reuse.messages()) == 250, 90,
                "250 messages at reuse.test")
per_conn = {}
for m in reuse.messages():
    per_conn[m["conn"]] = per_conn.get(m["conn"], 0) + 1
counts = sorted(per_conn.values(), reverse=True)
drtest.check(max(counts) <= 100, "at most 100 messages per session: %s"
             % counts)
drtest.check(counts[:2] == [100, 100], "sessions reused up to the cap of "
             "100 (one connection at a time): %s" % counts)

# idle: two messages 3 s apart share a session; then the relay says QUIT
# about 10 s after the last one
send(["a@idle.test"], "idle 1")
drtest.wait_for(lambda: len(idle.messages()) == 1, 30, "idle 1 delivered")
t1 = idle.messages()[0]["time"]
drtest.wait_for(lambda: time.time() >= t1 + 3, 10, "3 s after idle 1")
send(["b@idle.test"], "idle 2")
drtest.wait_for(lambda: len(idle.messages()) == 2, 30, "idle 2 delivered")
m1, m2 = idle.messages()
drtest.check(m1["conn"] == m2["conn"], "a session idle for 3 s is reused")
drtest.wait_for(lambda: any(t["conn"] == m2["conn"]
                            for t in idle.transcripts()), 30,
                "the idle session to end")
tr = [t for t in idle.transcripts() if t["conn"] == m2["conn"]][0]
gap = tr["end_time"] - m2["time"]
drtest.check(tr["end"] == "quit" and 9.0 <= gap <= drtest.scaled(13),
             "idle session closed with QUIT 10 s after its last message: "
             "%s after %.1f s" % (tr["end"], gap))
send(["c@idle.test"], "idle 3")
drtest.wait_for(lambda: len(idle.messages()) == 3, 30, "idle 3 delivered")
drtest.check(idle.messages()[2]["conn"] != m2["conn"],
             "after the idle close a new session")

# ---------------------------------------------------------------- max_conn
c = drtest.SMTP(d.host, d.port)
for i in range(3):
    for dom in slow:
        send(["u%d@%s" % (i, dom)], "slow %d" % i, c)
c.close()
drtest.wait_for(lambda: sum(len(w.sinks[s].messages()) for s in slow) == 12,
                60, "12 messages at the slow sinks")
events = []
for s in slow:
    for m in w.sinks[s].messages():
        events.append((m["mail_time"], 1))
        events.append((m["time"], -1))
events.sort()
cur = peak = 0
for _, delta in events:
    cur += delta
    peak = max(peak, cur)
drtest.check(peak <= 2, "at most max_connections (2) deliveries at once "
             "over four destinations: %d" % peak)
drtest.check(peak == 2, "max_connections used: %d at once" % peak)

w.stop()
drtest.done()
