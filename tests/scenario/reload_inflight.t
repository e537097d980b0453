#!/usr/bin/python3
# timeout: 240
"""SIGHUP reloads while deliveries wait on DNS and MTA-STS (issue #13
item 1).

A delivery's route used to keep a pointer to the config and borrow the
policy-table entry's match= names while it waited on DNS and on a
first-time MTA-STS fetch; a SIGHUP freed both under it.  Read as 0, the
freed `mta_sts` flag turned an MTA-STS enforce domain into opportunistic
TLS: mail went to an MX outside the policy, unauthenticated.

The world (lib/world.py): a signed test. tree (dnsrig/NSD) reached
through a DNS forwarder that answers every query 0.25 s late (slowdns),
with records of TTL 1 s so lookups stay slow all along; nginx serving
the policies over HTTPS with the world's CA, the enforce policy trickled
out at 100 bytes/s (a fetch of about 5 s that every route waits for);
SMTP sinks with certificates from the same CA.

  sts.test     MTA-STS enforce, policy mx: mx.sts.test.  Its MX RRset
               prefers rogue.sts.test (a valid certificate, but not in
               the policy): a route that lost MTA-STS delivers there.
  verify.test  policy_file "verify match=gw.verify.test"; its MX presents
               a certificate for gw.verify.test only, so delivery works
               only with the table entry's match= names.

200 messages to sts.test and 40 to verify.test are submitted while the
daemon gets a SIGHUP every 50 ms until every delivery is over.  Each must
be sent to the policy's MX with auth=webpki; the rogue MX must see no
connection at all; the daemon must survive and, in the ASan build, exit
without a sanitizer report (on the old code the first route that read
its config after a reload was a heap-use-after-free).
"""
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import nginx  # noqa: E402
import slowdns  # noqa: E402
import world  # noqa: E402
from world import MX  # noqa: E402

N_STS = 200
N_VERIFY = 40
HUP_EVERY = 0.05

w = world.World()
T = w.tmp
web = w.nginx()
slow = slowdns.SlowDns(drtest.ip(2), w.rig.ip, w.rig.port, delay=0.25)

IP_MX, IP_VERIFY = drtest.ip(11), drtest.ip(13)
# The policy, padded with extension lines (ignored, RFC 8461 §3.2) so
# that at 100 bytes/s its fetch takes about 5 s.
policy = ("version: STSv1\r\nmode: enforce\r\nmx: mx.sts.test\r\n"
          "max_age: 86400\r\n")
while len(policy) < 500:
    policy += "x-pad: " + "a" * 60 + "\r\n"
web.set_policy("mta-sts.sts.test", policy)
w.dest("sts.test", secure=False, ttl=1, sts_txt=["1"], mx=[
    MX("rogue", 12, cert="ca", tlsa=None, pref=5),
    MX("mx", 11, cert="ca", tlsa=None, pref=10)], mta_sts={
    nginx.POLICY_PATH: "types { } default_type text/plain; limit_rate 100; "
    "alias %s;" % os.path.join(web.www, "mta-sts.sts.test.txt")})
w.dest("verify.test", secure=False, ttl=1, mx=[
    MX("mx", 13, cert=w.root.issue(["gw.verify.test"]), tlsa=None)])
sinks = {"mx.sts.test": w.sink("sts.test", "mx"),
         "rogue.sts.test": w.sink("sts.test", "rogue"),
         "mx.verify.test": w.sink("verify.test", "mx")}

policy_file = os.path.join(T, "policy")
with open(policy_file, "w") as f:
    f.write("# written by reload_inflight.t\n"
            "sts.test dane\n"
            "verify.test verify match=gw.verify.test\n")
os.chmod(policy_file, 0o644)

w.start()
d = w.daemon(dns_config=slow.unbound_conf(w.rig, os.path.join(
    T, "unbound-slow.conf")), policy_file=policy_file,
             min_backoff="1h", max_connections=500,
             max_connections_per_destination=400,
             smtp_connect_timeout="10s", smtp_timeout="30s")


# ---- SIGHUP every 50 ms, from before the first message to the end ------
hup_stop = threading.Event()
hups = [0]


def hupper():
    while not hup_stop.wait(HUP_EVERY):
        if not d.alive():
            return
        d.reload()
        hups[0] += 1


hup_thread = threading.Thread(target=hupper, daemon=True)
hup_thread.start()
time.sleep(0.3)

# ---- submit, four clients at once --------------------------------------
jobs = [("s%03d" % i, "sts.test") for i in range(N_STS)] + \
    [("v%03d" % i, "verify.test") for i in range(N_VERIFY)]
submit_errors = []


def submitter(part):
    c = None
    try:
        c = drtest.SMTP(d.host, d.port, timeout=30)
        for local, dom in part:
            body = ("From: <sender@senders.test>\r\nTo: <%s@%s>\r\n"
                    "Subject: reload %s\r\n\r\nHello %s@%s.\r\n" % (
                        local, dom, local, local, dom)).encode()
            c.sendmail("sender@senders.test", ["%s@%s" % (local, dom)], body)
    except (OSError, drtest.SMTPError) as e:
        submit_errors.append(str(e))
    finally:
        if c is not None:
            c.close()


started = time.monotonic()
senders = [threading.Thread(target=submitter, args=(jobs[i::4],))
           for i in range(4)]
for t in senders:
    t.start()
for t in senders:
    t.join()
drtest.log("submitted %d messages in %.1f s (%d SIGHUPs so far)%s",
           len(jobs), time.monotonic() - started, hups[0],
           ": errors: %s" % submit_errors if submit_errors else "")

final = re.compile(r"to=<([a-z0-9]+)@([a-z.]+)>, relay=(\S+), (.*?), "
                   r"delay=[0-9.]+, status=(sent|deferred|bounced)")


def outcomes():
    got = {}
    for m in final.finditer(d.log_text()):
        got.setdefault((m.group(1), m.group(2)), m)
    return got


deadline = time.monotonic() + drtest.scaled(120)
while time.monotonic() < deadline:
    if not d.alive():
        break
    if len(outcomes()) >= len(jobs):
        break
    time.sleep(0.2)
hup_stop.set()
hup_thread.join()
alive = d.alive()
drtest.log("%d outcomes after %.1f s, %d SIGHUPs sent", len(outcomes()),
           time.monotonic() - started, hups[0])
if not alive:
    log = d.log_text()
    asan = log.find("ERROR: AddressSanitizer")
    drtest.fail("the daemon died under SIGHUP with deliveries in flight%s"
                % (":\n" + log[asan:asan + 3000] if asan >= 0 else ""))
drtest.check(not submit_errors, "every message was accepted: %s" %
             submit_errors)

# ---- every delivery verified, at the policy's MX ------------------------
got = outcomes()
want_relay = {"sts.test": "mx.sts.test[%s]:%d" % (IP_MX, w.port),
              "verify.test": "mx.verify.test[%s]:%d" % (IP_VERIFY, w.port)}
bad = []
for local, dom in jobs:
    m = got.get((local, dom))
    if m is None or m.group(5) != "sent" or \
            m.group(3) != want_relay[dom] or "auth=webpki" not in m.group(4):
        bad.append(m.group(0) if m else "%s@%s: no outcome" % (local, dom))
drtest.check(not bad, "%d of %d deliveries sent with auth=webpki to the "
             "policy's MX; not so: %d, e.g. %s" % (
                 len(jobs) - len(bad), len(jobs), len(bad), bad[:3]))

log = d.log_text()
drtest.check(re.search(r"status=(deferred|bounced)", log) is None,
             "nothing deferred or bounced")
drtest.check(len(re.findall(r"relay=rogue\.sts\.test, status=skipped "
                            r"\(MTA-STS enforce", log)) >= N_STS,
             "rogue.sts.test skipped by MTA-STS enforce for every message")

rogue = sinks["rogue.sts.test"]
drtest.check(rogue.stats().get("connections", 0) == 0 and
             not rogue.messages(),
             "the MX outside the policy saw no connection and no mail: %s"
             % rogue.stats())
for name, dom, n in (("mx.sts.test", "sts.test", N_STS),
                     ("mx.verify.test", "verify.test", N_VERIFY)):
    msgs = sinks[name].messages()
    drtest.check(len(msgs) == n and all(m["tls"] for m in msgs),
                 "%s received the %d messages for %s, all over TLS: %d" % (
                     name, n, dom, len(msgs)))

# ---- and the reloads really happened while they were waiting ------------
reloads, first_queued, during_fetch = 0, None, None
queued_at, sent_reloads = {}, []
for line in log.splitlines():
    if re.search(r": reloaded /", line):
        reloads += 1
        continue
    m = re.search(r": (\w+): queued, ", line)
    if m:
        queued_at[m.group(1)] = reloads
        if first_queued is None:
            first_queued = reloads
        continue
    if "mta-sts: sts.test: fetched policy id=1" in line and \
            during_fetch is None and first_queued is not None:
        during_fetch = reloads - first_queued
    m = re.search(r": (\w+): to=<[a-z0-9]+@[a-z.]+>, .*status=sent", line)
    if m and m.group(1) in queued_at:
        sent_reloads.append(reloads - queued_at[m.group(1)])
crossed = sum(1 for n in sent_reloads if n > 0)
drtest.log("reloads: %d in all; deliveries with a reload between queued "
           "and sent: %d of %d (most: %d); during the first policy "
           "fetch: %s", reloads, crossed, len(sent_reloads),
           max(sent_reloads or [0]), during_fetch)
drtest.check(reloads >= 20, "at least 20 reloads done: %d" % reloads)
drtest.check(crossed >= len(jobs) // 2, "at least half the deliveries "
             "were in flight across a reload: %d" % crossed)
drtest.check(during_fetch is not None and during_fetch >= 10,
             "deliveries waited on the MTA-STS fetch across >= 10 reloads: "
             "%s" % during_fetch)
drtest.check(slow.queries > 0, "DNS went through the slow forwarder: %d "
             "queries" % slow.queries)

d.stop()            # fails on a non-zero exit or a sanitizer report
slow.stop()
w.stop()
drtest.done()
