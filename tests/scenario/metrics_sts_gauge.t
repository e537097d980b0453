#!/usr/bin/python3
# timeout: 240
"""The MTA-STS cache gauge counts real policies (issue #15).

danerelay_mta_sts_cache_policies used to be a gauge nobody set (always
0).  Now the metrics listener asks main.c at every scrape, and main.c
asks the MTA-STS manager how many policies its cache holds.

A world (lib/world.py) without DNSSEC (so DANE never applies) with
_mta-sts TXT records, nginx serving the policies over HTTPS with the
world's CA, one SMTP sink per MX host, danerelayd with mta_sts = yes and
metrics_listen.  The
gauge is 0 before any mail; a message to a domain with a policy makes it
1, two more (another policy, and a domain whose fetch fails with 404,
which caches nothing) make it 2, and it agrees with `danerelay mta-sts
show`; `danerelay mta-sts forget` of one policy brings it back to 1 (the
daemon reads the shared cache file).
"""
import os
import re
import sys
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import nginx  # noqa: E402
import world  # noqa: E402

w = world.World()
for n, label in ((11, "one"), (12, "two")):
    w.dest(label + ".test", mx=[world.MX("mx", n, cert="ca", tlsa=None)],
           secure=False,
           mta_sts=world.policy("enforce", ["mx.%s.test" % label]))
w.dest("bad.test", mx=[world.MX("mx", 13, cert="ca", tlsa=None)],
       secure=False, mta_sts={nginx.POLICY_PATH: "return 404;"})
w.start()
mhost = drtest.ip(2)
mport = drtest.free_port(mhost)
URL = "http://%s:%d/metrics" % (mhost, mport)
d = w.daemon(min_backoff="1h", metrics_listen="%s:%d" % (mhost, mport))


def gauge():
    with urllib.request.urlopen(URL, timeout=drtest.scaled(10)) as r:
        text = r.read().decode()
    m = re.search(r"^danerelay_mta_sts_cache_policies (\d+)$", text, re.M)
    drtest.check(m is not None, "the gauge is in the exposition")
    return int(m.group(1)) if m else None


def send_and_wait(*doms):
    for dom in doms:
        w.send(d, ["user@" + dom])
    for dom in doms:
        w.expect(d, dom, "sent", at="mx")


def wait_gauge(n, what):
    drtest.wait_for(lambda: gauge() == n, 20, what)


drtest.check(gauge() == 0, "no policy cached at the start: gauge 0")

send_and_wait("one.test")
drtest.check("mta-sts: one.test: fetched policy id=%s" % w.sts_id["one.test"]
             in d.log_text(),
             "one.test's policy was fetched")
wait_gauge(1, "gauge 1 after one.test's policy was fetched")

send_and_wait("two.test", "bad.test")
drtest.check("mta-sts: bad.test: policy fetch for id=%s failed"
             % w.sts_id["bad.test"] in d.log_text(),
             "bad.test's fetch failed (404)")
wait_gauge(2, "gauge 2: one.test and two.test, nothing for bad.test")
r = d.cli("mta-sts", "show")
drtest.check(r.returncode == 0 and "2 cached MTA-STS policies" in r.stdout,
             "danerelay mta-sts show agrees: %s" % r.stdout[-500:])

r = d.cli("mta-sts", "forget", "one.test")
drtest.check(r.returncode == 0, "mta-sts forget one.test: %s" %
             (r.stdout + r.stderr))
wait_gauge(1, "gauge 1 after one.test's policy was forgotten")

w.stop()
drtest.done()
