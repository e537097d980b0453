#!/usr/bin/python3
# timeout: 400
"""out_sites.t - sites and throttle replies (issue #24 parts 1 and 2).

A site is the set of MX host names of a destination: b.test's MX is
a.test's MX host, so both are one site, and so are c.test and d.test.

 1. sites: max_connections_per_destination = 1, messages to a.test and
    b.test at once (each taking 0.4 s at the MX): never more than one
    connection open at mx.a.test, all arrive; with limits_by = domain
    the two domains count apart: two connections at once;
 2. idle sessions count: with two workers (a.test and b.test are
    delivered by different ones), b.test's message waits until the
    session a.test left idle in the other worker's cache is closed:
    never two connections;
 3. policy_file limits, stricter wins: c.test max_connections=3
    max_messages_per_connection=2, d.test max_connections=1 (same
    site; d.test routed once before, so that the site knows its line): one connection at a time, at most 2 messages on each (the
    MX answers QUIT after 0.8 s: a session finishing its QUIT still
    counts);
 4. rate: r.test rate=2/s (policy_file) spreads 12 messages over at
    least 5 s, all arrive; so does destination_rate_limit = 2/s for
    g.test;
 5. throttle: a 421 greeting at mx.t.test pauses the site for
    throttle_pause (3s; min_backoff 1h): no connection to it within the
    pause, then that message and the two queued after it arrive without
    a flush; a "451 4.7.1" RCPT reply at mx.q.test pauses that site the
    same way; a 421 greeting at mx1.two.test pauses its whole site: the
    delivery does not go on to mx2 (nor to mx1 again) within the pause;
    pauses and resumes are logged and counted in /metrics;
 6. a bad max_connections= or rate= in policy_file is refused by
    danerelayd -n with file:line.
"""
import os
import re
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import drtest  # noqa: E402
import world  # noqa: E402

SLOW = "EOM||0|sleep 0.4 250 2.0.0 queued slowly"
w = world.World()
w.dest("a.test", 11, rules=[SLOW])
w.dest("b.test", records=["@ MX 10 mx.a.test."])
w.dest("c.test", 12, rules=[SLOW, "QUIT||0|sleep 0.8 221 2.0.0 bye"])
w.dest("d.test", records=["@ MX 10 mx.c.test."])
w.dest("r.test", 13)
w.dest("g.test", 14)
w.dest("t.test", 15, rules=["BANNER||1|421 4.7.0 [TSS04] Messages from "
                            "this host temporarily deferred"])
w.dest("q.test", 16, rules=["RCPT||1|451 4.7.1 please come back"])
w.dest("two.test", mx=[world.MX("mx1", 17, rules=["BANNER||1|421 4.7.0 "
                                                  "busy"]),
                       world.MX("mx2", 18)])
w.start()
T = drtest.TMPDIR


def overlap(sink, since=0):
    """Most connections open at once at sink (connections that began
    after since), from the transcripts (start, end_time).  The sink
    notes a connection's end once it has seen the client's close, and
    the relay opens the next one as soon as it has closed the last: the
    two may be noted a few milliseconds apart in either order, so an
    overlap shorter than 0.1 s does not count (the breakages this test
    is for overlap for 0.4 s and more: a slow EOM, a slow QUIT, an idle
    session)."""
    sink.wait_idle()
    ev = []
    for t in sink.transcripts():
        if t["start"] >= since:
            ev += [(t["start"], 1), (max(t["start"], t["end_time"] - 0.1),
                                     -1)]
    n = most = 0
    for _, d in sorted(ev):
        n += d
        most = max(most, n)
    return most


def sent_all(d, rcpts, timeout=90):
    """Each of rcpts sent (after deferrals, if any)."""
    for r in rcpts:
        drtest.wait_for(lambda: any("status=sent" in x for x in
                                    w.outcomes(d).get(r, [])),
                        timeout, "%s sent" % r)


def interleaved(d, tag, doms, n):
    """n messages to each of doms, taking turns; all sent -> recipients."""
    rcpts = []
    for i in range(n):
        for dom in doms:
            rcpts.append("%s%d@%s" % (tag, i, dom))
            w.send(d, [rcpts[-1]])
    sent_all(d, rcpts)
    return rcpts


# 1. two domains, one site, concurrency 1
d = w.daemon(name="d1", max_connections_per_destination=1, workers=1)
rcpts = interleaved(d, "u", ("a.test", "b.test"), 5)
mx = w.sinks["a.test"]
got = sorted(r for m in mx.messages() for r in m["rcpts"])
drtest.check(got == sorted(rcpts), "all ten arrived once at mx.a.test: %s"
             % got)
drtest.check(overlap(mx) == 1, "one site: never two connections at "
             "mx.a.test, saw %d" % overlap(mx))
d.stop()

# 1b. limits_by = domain: the same two domains count apart
since = time.time()
d = w.daemon(name="d1b", max_connections_per_destination=1, workers=1,
             limits_by="domain")
interleaved(d, "v", ("a.test", "b.test"), 5)
drtest.check(overlap(mx, since) == 2, "limits_by = domain: a.test and "
             "b.test one connection each, two at once at mx.a.test, saw %d"
             % overlap(mx, since))
d.stop()

# 2. an idle session in another worker's cache counts
since = time.time()
d = w.daemon(name="d2", max_connections_per_destination=1, workers=2)
w.send(d, ["idle@a.test"])
sent_all(d, ["idle@a.test"])
t0 = time.time()
w.send(d, ["other@b.test"])
sent_all(d, ["other@b.test"], timeout=60)
drtest.check(overlap(mx, since) == 1, "the idle session counted: one "
             "connection at a time at mx.a.test, saw %d"
             % overlap(mx, since))
drtest.check(time.time() - t0 < 40, "b.test's message went once the idle "
             "session closed")
d.stop()

# 3. policy_file limits, the stricter wins
pol = os.path.join(T, "policy")
with open(pol, "w") as f:
    f.write("c.test dane max_connections=3 max_messages_per_connection=2\n"
            "d.test dane max_connections=1\n"
            "r.test dane rate=2/s\n")
d = w.daemon(name="d3", policy_file=pol, workers=1)
# d.test's line applies to the site from d.test's first routing on
w.send(d, ["first@d.test"])
sent_all(d, ["first@d.test"])
interleaved(d, "p", ("c.test", "d.test"), 4)
mc = w.sinks["c.test"]
drtest.check(overlap(mc) == 1, "d.test's max_connections=1 holds for "
             "c.test too: saw %d at once" % overlap(mc))
per = {}
for m in mc.messages():
    per[m["conn"]] = per.get(m["conn"], 0) + 1
drtest.check(sum(per.values()) == 9 and max(per.values()) <= 2,
             "c.test's max_messages_per_connection=2 for both: %r" % per)


# 4. rates
def rate_check(d, dom):
    rcpts = ["n%d@%s" % (i, dom) for i in range(12)]
    for r in rcpts:
        w.send(d, [r])
    sent_all(d, rcpts)
    ms = w.sinks[dom].messages()
    times = sorted(m["mail_time"] for m in ms)
    drtest.check(len(ms) == 12, "%s: all 12 arrived, got %d"
                 % (dom, len(ms)))
    drtest.check(times[-1] - times[0] >= 5, "%s: 2/s spreads 12 messages "
                 "over at least 5 s: %.2f s" % (dom, times[-1] - times[0]))


rate_check(d, "r.test")
d.stop()

# a bad limit in policy_file: refused by danerelayd -n with file:line
for line, what in (("x.test dane rate=fast", "rate: bad rate"),
                   ("x.test dane max_connections=0",
                    "max_connections: bad number")):
    with open(pol, "w") as f:
        f.write("ok.test dane\n%s\n" % line)
    r = subprocess.run([d.binary, "-n", "-c", d.conf],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True)
    drtest.check(r.returncode != 0 and "%s:2: %s" % (pol, what) in r.stdout,
                 "-n refuses '%s' with file:line: %s" % (line, r.stdout))
d = w.daemon(name="d4", destination_rate_limit="2/s", workers=1)
rate_check(d, "g.test")
d.stop()

# 5. throttle replies
mhost = drtest.ip(2)
mport = drtest.free_port(mhost)
d = w.daemon(name="d5", throttle_pause="3s", min_backoff="1h",
             metrics_listen="%s:%d" % (mhost, mport))
w.send(d, ["m1@t.test"])
drtest.wait_for(lambda: re.search(r"site mx\.t\.test paused for 3s: "
                                  r"throttled by mx\.t\.test\[[^\]]+\]:\d+ "
                                  r"\(421 4\.7\.0 \[TSS04\]", d.log_text()),
                30, "the pause of site mx.t.test logged")
w.send(d, ["m2@t.test"])
w.send(d, ["m3@t.test"])
sent_all(d, ["m1@t.test", "m2@t.test", "m3@t.test"], timeout=60)
mt = w.sinks["t.test"]
mt.wait_idle()
tr = sorted(mt.transcripts(), key=lambda t: t["start"])
drtest.check(len(tr) >= 2, "mx.t.test: the 421 and then a session: %d"
             % len(tr))
if len(tr) >= 2:
    gap = tr[1]["start"] - tr[0]["start"]
    drtest.check(gap >= 2.8, "no new connection to mx.t.test within the "
                 "pause: the next came after %.2f s" % gap)
    drtest.check(gap < 20, "the messages went when the pause ended, not "
                 "at their retry time: %.2f s" % gap)
drtest.check(re.search(r"site mx\.t\.test resumed after a 3s throttle "
                       r"pause", d.log_text()), "the resume is logged")

w.send(d, ["r1@q.test"])
line = world.wait_outcome(d, "r1@q.test")
drtest.check("status=deferred" in line and "4.7.1" in line,
             "q.test: the 4.7.1 RCPT reply defers: %s" % line)
drtest.check(re.search(r"site mx\.q\.test paused for 3s", d.log_text()),
             "a 4.7.x RCPT reply pauses the site")
drtest.wait_for(lambda: len(w.sinks["q.test"].messages()) == 1, 30,
                "r1@q.test delivered after the pause")

# the whole site: not the next MX either
w.send(d, ["x1@two.test"])
sent_all(d, ["x1@two.test"], timeout=60)
t421 = min(t["start"] for t in w.sink("two.test", "mx1").transcripts())
got = [m["time"] for lb in ("mx1", "mx2")
       for m in w.sink("two.test", lb).messages()]
conns = sum(w.sink("two.test", lb).stats().get("connections", 0)
            for lb in ("mx1", "mx2"))
drtest.check(len(got) == 1 and got[0] - t421 >= 2.8 and conns == 2,
             "two.test: after mx1's 421 no connection to mx1 or mx2 within "
             "the pause: arrived after %s s, %d connections" % (
                 [round(x - t421, 2) for x in got], conns))
with urllib.request.urlopen("http://%s:%d/metrics" % (mhost, mport),
                            timeout=10) as r:
    text = r.read().decode()
for name, want in (("danerelay_site_throttle_pauses_total", 3),
                   ("danerelay_site_throttle_resumes_total", 3),
                   ("danerelay_sites_paused", 0)):
    m = re.search(r"^%s (\d+)$" % name, text, re.M)
    drtest.check(m is not None and int(m.group(1)) == want,
                 "%s = %d: %s" % (name, want, m and m.group(0)))
drtest.check("site=" not in text, "no site labels in /metrics")
w.stop()
drtest.done()
