#!/usr/bin/python3
# timeout: 300
"""DANE delivery end to end (issue #3 acceptance).

A signed test world (world.py: NSD + ldns-signzone, validated by
danerelay's own libunbound), one receiving sink per MX host on 127.A.B.x
with certificates made now, one danerelayd pointed at them with
smtp_port.  Each destination domain is one scenario; one message each.
A message either arrives at the right sink over TLS (and the log names
the authentication) or is deferred for its own reason and nothing
arrives at all; the hosts DNSSEC rules out are never even contacted.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import world  # noqa: E402
from world import MX  # noqa: E402

w = world.World()
scen = {}          # domain -> dict(expect=..., ...)
n_ip = [10]


def ip():
    n_ip[0] += 1
    return n_ip[0]


def scenario(domain, expect, mx=(), tls=None, **kw):
    """A destination and what must become of its message."""
    w.dest(domain, mx=list(mx), **{k: v for k, v in kw.items()
                                   if k in ("secure", "bogus_mx",
                                            "null_mx")})
    sc = dict(expect=expect, tls=tls)
    sc.update({k: v for k, v in kw.items()
               if k in ("auth", "at", "why", "never_contacted")})
    scen[domain] = sc


# 1. DANE-EE 3 1 1 match -> delivered, auth=dane-ee
scenario("ee.test", "sent", [MX("mx", ip())], auth="dane-ee", at="mx",
         tls=True)

# 2. DANE-TA 2 0 1 and 2 1 1 on the issuing CA, chain, MX name
scenario("ta.test", "sent", [MX("mx", ip(), cert="ca", tlsa="2 0 1")],
         auth="dane-ta", at="mx", tls=True)
scenario("ta2.test", "sent", [MX("mx", ip(), cert="ca", tlsa="2 1 1")],
         auth="dane-ta", at="mx", tls=True)

# 3. DANE-TA, certificate for another name -> deferred
scenario("taname.test", "deferred",
         [MX("mx", ip(), cert="wrong", tlsa="2 1 1")],
         why=r"stage TLS: certificate verification failed: hostname mismatch")

# 4. TLSA present, no match -> deferred
scenario("nomatch.test", "deferred", [MX("mx", ip(), tlsa="3 1 1 decoy")],
         why=r"stage TLS: certificate verification failed: no matching DANE "
         r"TLSA records")

# 5. STARTTLS stripped on a DANE MX -> deferred, nothing in cleartext
scenario("nostarttls.test", "deferred", [MX("mx", ip(), starttls=False)],
         why=r"stage STARTTLS: TLS is required but the server does not "
         r"offer STARTTLS")

# 6. Bogus TLSA signature -> deferred, never contacted
scenario("bogustlsa.test", "deferred", [MX("mx", ip(), tlsa_bogus=True)],
         why=r"4\.7\.5 TLSA RRset of mx\.bogustlsa\.test is bogus \(DNSSEC "
         r"validation failed", never_contacted=["mx"])

# 7. TLSA lookup SERVFAIL for a secure host -> deferred, never contacted
scenario("servfail.test", "deferred", [MX("mx", ip(), tlsa_servfail=True)],
         why=r"4\.7\.5 TLSA lookup for mx\.servfail\.test failed "
         r"\(SERVFAIL\)", never_contacted=["mx"])

# 8. Bogus MX RRset -> deferred, never contacted
scenario("bogusmx.test", "deferred", [MX("mx", ip())], bogus_mx=True,
         why=r"4\.7\.5 MX RRset of bogusmx\.test is bogus \(DNSSEC validation "
         r"failed", never_contacted=["mx"])

# 9. Insecure zone with (non-matching) TLSA -> ignored, opportunistic TLS
scenario("insecure.test", "sent", [MX("mx", ip(), tlsa="3 1 1 decoy")],
         secure=False, auth="none", at="mx", tls=True)

# 10. Secure zone without TLSA -> opportunistic TLS; cleartext only when
#     the server offers no STARTTLS (level dane allows it then)
scenario("notlsa.test", "sent", [MX("mx", ip(), tlsa=None)], auth="none",
         at="mx", tls=True)
scenario("notlsaclear.test", "sent", [MX("mx", ip(), cert=None, tlsa=None)],
         auth="none", at="mx", tls=False)

# 10b. Opportunistic TLS whose handshake fails -> cleartext on the same
#      host (the level allows cleartext); a DANE host never does that
scenario("brokentls.test", "sent",
         [MX("mx", ip(), tlsa=None, rules=["STARTTLS||1|tls-garbage"])],
         auth="none", at="mx", tls=False)
scenario("brokendane.test", "deferred",
         [MX("mx", ip(), rules=["STARTTLS||0|tls-garbage"])],
         why=r"stage TLS: TLS handshake failed")

# 11. Only PKIX usages -> mandatory TLS, unauthenticated
scenario("pkix.test", "sent",
         [MX("mx", ip(), tlsa=["1 1 1 decoy", "0 0 1 decoy"])],
         auth="none", at="mx", tls=True)
scenario("pkixclear.test", "deferred",
         [MX("mx", ip(), starttls=False, tlsa="1 1 1 decoy")],
         why=r"stage STARTTLS: TLS is required but the server does not "
         r"offer STARTTLS")

# 12. First MX fails DANE, second passes -> delivered via the second
scenario("twomx.test", "sent", [MX("mx1", ip(), tlsa="3 1 1 decoy"),
                                MX("mx2", ip())],
         auth="dane-ee", at="mx2", tls=True)

# 13. Expired DANE-EE certificate -> delivered (no expiry check)
scenario("expee.test", "sent", [MX("mx", ip(), cert="expired")],
         auth="dane-ee", at="mx", tls=True)

# 14. Expired certificate under DANE-TA -> deferred
scenario("expta.test", "deferred",
         [MX("mx", ip(), cert="expired-ca", tlsa="2 1 1")],
         why=r"stage TLS: certificate verification failed: certificate has "
         r"expired")

# 15. Null MX -> bounced; the DSN reaches the sender's own DANE MX
scenario("nullmx.test", "bounced", null_mx=True)
w.dest("senders.test", mx=[MX("mx", ip())])

# 16. dane-only destination without DANE (insecure zone) -> deferred
scenario("daneonly.test", "deferred", [MX("mx", ip(), tlsa=None)],
         secure=False,
         why=r"4\.7\.5 dane-only: no DANE for mx\.daneonly\.test \(MX RRset "
         r"not DNSSEC-validated\)", never_contacted=["mx"])

# 17. DANE-TA whose chain leads to an unrelated CA -> deferred
scenario("unrelated.test", "deferred",
         [MX("mx", ip(), cert="untrusted", tlsa="2 1 1")],
         why=r"stage TLS: certificate verification failed: no matching DANE "
         r"TLSA records")

w.start()
policy = os.path.join(w.tmp, "policy")
with open(policy, "w") as f:
    f.write("# test policy table\ndaneonly.test dane-only\n")
os.chmod(policy, 0o644)
d = w.daemon(policy_file=policy, min_backoff="1h")

c = drtest.SMTP(d.host, d.port)
for dom in scen:
    body = ("From: <sender@senders.test>\r\nTo: <user@%s>\r\n"
            "Subject: scenario %s\r\nMessage-ID: <%s@dr-test>\r\n\r\n"
            "Hello %s.\r\n" % (dom, dom, dom, dom)).encode()
    c.sendmail("sender@senders.test", ["user@" + dom], body)
c.close()

# bounces: the DSN to the sender must arrive at the sender's MX
senders = w.sinks["senders.test"]
drtest.wait_for(lambda: len(senders.messages()) >= 1, 30,
                "the DSN at the sender's MX")

for dom, sc in scen.items():
    # deferred for its own reason; nothing arrives; the hosts DNSSEC rules
    # out never contacted, the others tried (the reason is their answer)
    w.expect(d, dom, sc["expect"], auth=sc.get("auth"), at=sc.get("at"),
             why=sc.get("why"), never_contacted=sc.get("never_contacted", ()))
    if sc["expect"] == "deferred" and not sc.get("never_contacted"):
        conns = sum(m.sink.stats().get("connections", 0) for m in w.mx[dom])
        drtest.check(conns >= 1, "%s: its MX was tried (the reason is its "
                     "answer), the sinks saw %d connections" % (dom, conns))
    if sc["expect"] == "sent":
        mine = [m for m in w.sink(dom, sc["at"]).messages()
                if ("user@" + dom) in m.get("rcpts", [])]
        if mine:
            drtest.check(mine[0]["tls"] == sc["tls"], "%s: tls=%s expected "
                         "%s" % (dom, mine[0]["tls"], sc["tls"]))
            drtest.check(b"Hello %s." % dom.encode() in mine[0]["data"],
                         "%s: body arrived intact" % dom)

# the deferred ones are still queued with their reason, pending
pending = set()
for qid in d.queue_ids():
    for r in d.read_env(qid).get("rcpts", []):
        pending.add(r["addr"].split("@")[1])
for dom, sc in scen.items():
    if sc["expect"] == "deferred":
        drtest.check(dom in pending, "%s: still in the queue" % dom)
    else:
        drtest.check(dom not in pending, "%s: no longer queued" % dom)

# the DSN for the null MX destination
dsn = [m for m in senders.messages()
       if "sender@senders.test" in m.get("rcpts", [])]
drtest.check(len(dsn) == 1, "one DSN at the sender's MX")
if dsn:
    data = dsn[0]["data"]
    drtest.check(dsn[0]["mail_from"] == "", "DSN from the null sender")
    drtest.check(b"report-type=delivery-status" in data, "DSN is a report")
    drtest.check(b"Final-Recipient: rfc822; user@nullmx.test" in data,
                 "DSN names the failed recipient")
    drtest.check(b"Action: failed" in data, "DSN action failed")
    drtest.check(dsn[0]["tls"], "DSN went over TLS too")

drtest.check("Verified TLS connection established" in d.log_text(),
             "Postfix-style verified TLS line logged")
w.stop()
drtest.done()
