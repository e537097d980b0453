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
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import certs  # noqa: E402
import dnsrig  # noqa: E402
import sink  # noqa: E402

for tool in ("ldns-signzone", "nsd"):
    if not drtest.which(tool):
        drtest.skip("%s not installed (scripts/install-deps --test)" % tool)

T = drtest.TMPDIR
os.chmod(T, 0o755)
pki = os.path.join(T, "pki")
os.makedirs(pki)
os.chmod(pki, 0o755)
port = drtest.free_port(drtest.ip(10))
rig = dnsrig.DnsRig(os.path.join(T, "dns"), drtest.ip(1),
                    drtest.free_port(drtest.ip(1)))
sinks = {}


def dest(domain, n, rules=()):
    ip = drtest.ip(n)
    cert = certs.self_signed(pki, ["mx." + domain])
    rig.zone(domain, records=["@ MX 10 mx", "mx A %s" % ip,
                              "_%d._tcp.mx TLSA %s" % (port,
                                                       cert.tlsa(3, 1, 1))])
    sinks[domain] = sink.spawn(os.path.join(T, "sink-" + domain), ip, port,
                               cert=cert.chain, key=cert.key, rules=rules)
    return sinks[domain]


busy = dest("busy.test", 11, rules=["RCPT||0|451 4.2.0 mailbox busy"])
perm = dest("perm.test", 12, rules=["RCPT|nobody@|0|550 5.1.1 no such user"])
senders = dest("senders.test", 13)
rig.start()
# the stand-in for the local MTA that bounces must go back to
local = sink.spawn(os.path.join(T, "sink-local"), drtest.ip(30), 0)


def msg(to, subj, sender):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n\r\nbody\r\n" % (
        sender, to, subj)).encode()


# -- delay warning
d = drtest.Daemon(name="warn", dns_config=rig.unbound_conf(),
                  trust_anchor_file=rig.trust_anchor_file, smtp_port=port,
                  min_backoff="1s", max_backoff="2s",
                  delay_warning_time="3s", queue_lifetime="1h")
d.start()
c = drtest.SMTP(d.host, d.port)
c.sendmail("sender@senders.test", ["someone@busy.test"],
           msg("someone@busy.test", "slow one", "sender@senders.test"))
c.close()


def delayed():
    return [m for m in senders.messages() if m["mail_from"] == ""]


drtest.wait_for(lambda: len(delayed()) >= 1, drtest.scaled(30),
                "the delay warning")
time.sleep(drtest.scaled(5))   # several more retries: still one warning
w = delayed()
drtest.check(len(w) == 1, "exactly one delay warning (got %d)" % len(w))
data = w[0]["data"]
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
# the warning survives a restart: no second warning
d.restart()
time.sleep(drtest.scaled(4))
drtest.check(len(delayed()) == 1, "still one warning after a restart")
d.stop()

# -- bounce_relay
b = drtest.Daemon(name="relay", dns_config=rig.unbound_conf(),
                  trust_anchor_file=rig.trust_anchor_file, smtp_port=port,
                  bounce_relay="%s:%d" % (local.host, local.port),
                  min_backoff="1h")
b.start()
c = drtest.SMTP(b.host, b.port)
c.sendmail("user@nodns.invalid", ["nobody@perm.test"],
           msg("nobody@perm.test", "goes back", "user@nodns.invalid"))
c.close()
drtest.wait_for(lambda: len(local.messages()) >= 1, drtest.scaled(30),
                "the DSN at the bounce_relay")
m = local.messages()[0]
drtest.check(m["mail_from"] == "" and m["rcpts"] == ["user@nodns.invalid"],
             "DSN from <> to the original sender")
drtest.check(b"Final-Recipient: rfc822; nobody@perm.test" in m["data"],
             "DSN content")
drtest.check("relay=bounce_relay[%s]:%d" % (local.host, local.port)
             in b.log_text(), "logged with the bounce_relay as relay")
drtest.wait_for(lambda: b.queue_ids() == [], drtest.scaled(10),
                "an empty queue")
b.stop()
for s in list(sinks.values()) + [local]:
    s.stop()
rig.stop()
drtest.done()
