#!/usr/bin/python3
# timeout: 120
"""out_msgs_per_conn.t - max_messages_per_connection: with 3, ten
messages to one destination, sent one after another so that each finds
the previous session idle in the connection cache, arrive over
connections that carry at most 3 messages each (so over at least 4), and
every one arrives once.  The default (100) carries them all over one.
"""
import collections
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import drtest  # noqa: E402
import world  # noqa: E402

w = world.World()
w.dest("three.test", 11)
w.dest("many.test", 12)
w.start()


def run(d, dom, n=10):
    for i in range(n):
        rcpt = "u%d@%s" % (i, dom)
        w.send(d, [rcpt])
        w.expect(d, dom, "sent", rcpt=rcpt, at="mx")
    per = collections.Counter(m["conn"] for m in w.sinks[dom].messages())
    return per


d = w.daemon(max_messages_per_connection=3, workers=1)
per = run(d, "three.test")
drtest.check(sum(per.values()) == 10, "ten messages arrived: %r" % per)
drtest.check(max(per.values()) == 3 and len(per) == 4,
             "at most 3 per connection, sessions reused up to 3: %r" % per)
d.stop()

d2 = w.daemon(name="d2", workers=1)
per = run(d2, "many.test")
drtest.check(len(per) == 1 and sum(per.values()) == 10,
             "the default reuses one connection for all ten: %r" % per)
w.stop()
drtest.done()
