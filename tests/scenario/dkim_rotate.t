#!/usr/bin/python3
# timeout: 180
"""DKIM key rotation (issue #16): `danerelay dkim rotate` adds a new
selector; the daemon keeps signing with the old one until the new record
is visible in DNS (its DNS watch, dkim_dns_check_interval), then signs
with the new one; the old record stays published.  A message signed
before the switch and one signed after it both verify (python3-dkim,
lib/dkimcheck.py) against the signed test zone.  `danerelay dkim check`
shows each selector's record, key match and DNSSEC state; /metrics each
key's age and state.
"""
import os
import re
import sys
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import dkimcheck  # noqa: E402
import world  # noqa: E402

dkimcheck.require()
w = world.World()
rcv = w.dest("rcpt.test", 11)
mhost = drtest.ip(2)
mport = drtest.free_port(mhost)
d = w.daemon(start=False, min_backoff="1h", dkim_dns_check_interval="1s",
             metrics_listen="%s:%d" % (mhost, mport))
kconf, table = dkimcheck.keygen_config(d)
r = dkimcheck.cli(kconf, d, "keygen", "rot.test", "old")
drtest.check(r.returncode == 0, "keygen: %s" % r.stderr.strip())
records = dkimcheck.zone_records(r.stdout)
# a small TTL: the zone changes while the daemon runs
w.dest("rot.test", records=records, ttl=1)
w.start()
d.write_config(dkim_key_table=table)
d.start()

BODY = "Rotation test.\r\n"


def message(subject):
    return ("From: <a@rot.test>\r\nTo: <user@rcpt.test>\r\n"
            "Subject: %s\r\nDate: Sun, 06 Dec 2026 12:00:00 +0000\r\n\r\n%s"
            % (subject, BODY)).encode()


def send(subject):
    w.send(d, ["user@rcpt.test"], sender="a@rot.test", data=message(subject))
    drtest.wait_for(lambda: any(b"Subject: " + subject.encode() in m["data"]
                                for m in rcv.messages()), 30,
                    "%r delivered" % subject)
    return [m["data"] for m in rcv.messages()
            if b"Subject: " + subject.encode() in m["data"]][0]


# -- rotate: a new selector, pending until its record is published
r = dkimcheck.cli(kconf, d, "rotate", "rot.test", "--selector", "new")
drtest.check(r.returncode == 0, "dkim rotate: %s" % r.stderr.strip())
newrec = [x for x in dkimcheck.zone_records(r.stdout)
          if x.startswith("new._domainkey.rot.test.")]
drtest.check(len(newrec) == 1, "rotate prints the new record: %r" % r.stdout)
drtest.check(re.search(r"selector new, rsa-sha256, pending", r.stdout),
             "the new selector is pending: %r" % r.stdout)
d.reload(wait=True)

before = send("before the switch")
sigs = dkimcheck.signatures(before)
drtest.check([t[b"s"] for t in sigs] == [b"old"],
             "before the new record is published: signed with the old "
             "selector only (%r)" % [t[b"s"] for t in sigs])

r = d.cli("dkim", "check", "rot.test")
print(r.stdout, flush=True)
drtest.check(re.search(r"rot.test old rsa-sha256 active: published, key "
                       r"matches, dnssec=secure", r.stdout),
             "dkim check: the old selector is published, secure")
drtest.check(re.search(r"rot.test new rsa-sha256 pending: not published",
                       r.stdout), "dkim check: the new one is not yet")

# -- publish the new record; the daemon sees it and switches
w.rig.update("rot.test", records + newrec)
drtest.wait_for(lambda: "dkim: rot.test selector new (rsa-sha256) is "
                "published (dnssec=secure)" in d.log_text(), 30,
                "the daemon sees the new record")
after = send("after the switch")
sigs = dkimcheck.signatures(after)
drtest.check([t[b"s"] for t in sigs] == [b"new"],
             "after the switch: signed with the new selector only (%r)"
             % [t[b"s"] for t in sigs])

r = d.cli("dkim", "check", "rot.test")
print(r.stdout, flush=True)
drtest.check(r.returncode == 0 and re.search(
    r"rot.test old rsa-sha256 old: published, key matches", r.stdout) and
    re.search(r"rot.test new rsa-sha256 active: published, key matches",
              r.stdout), "dkim check: old still published, new active")
r = d.cli("dkim", "dns", "rot.test")
drtest.check("old._domainkey.rot.test." in r.stdout and
             "new._domainkey.rot.test." in r.stdout,
             "dkim dns still lists the old selector for the grace period")

# -- /metrics: each key's age by domain, selector and state
with urllib.request.urlopen("http://%s:%d/metrics" % (mhost, mport),
                            timeout=drtest.scaled(10)) as resp:
    text = resp.read().decode()
for sel, state in (("old", "old"), ("new", "active")):
    m = re.search(r'^danerelay_dkim_key_age_seconds\{domain="rot.test",'
                  r'selector="%s",state="%s"\} (\d+)$' % (sel, state), text,
                  re.M)
    drtest.check(m is not None and int(m.group(1)) < 3600,
                 "/metrics: the age of %s (%s)" % (sel, state))

# -- both verify (the old record is still published)
for name, raw in (("before", before), ("after", after)):
    res = dkimcheck.verify(raw, w.rig)
    drtest.check(len(res) == 1 and res[0]["ok"],
                 "the message signed %s the switch verifies: %r"
                 % (name, res))
drtest.done()
