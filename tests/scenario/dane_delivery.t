#!/usr/bin/python3
# timeout: 300
"""DANE delivery end to end (issue #3 acceptance).

A signed test world (NSD + ldns-signzone, validated by danerelay's own
libunbound), one receiving sink per destination on 127.A.B.x with
certificates made now, one danerelayd pointed at them with smtp_port.
Each destination domain is one scenario; one message each.  A message
either arrives at the right sink over TLS (and the log names the
authentication) or is deferred and nothing arrives at all.
"""
import os
import re
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

root = certs.CA(pki, "Test Root CA")
inter = root.intermediate("Test Issuing CA")
other_root = certs.CA(pki, "Unrelated Root CA", name="unrelated")


def ss(name, **kw):
    return certs.self_signed(pki, [name], **kw)


# host ip -> (cert obj or None, starttls)
port = drtest.free_port(drtest.ip(10))
sinks = {}
n_ip = [10]


def mx_ip():
    n_ip[0] += 1
    return drtest.ip(n_ip[0])


scen = {}          # domain -> dict(expect=..., ...)
rig = dnsrig.DnsRig(os.path.join(T, "dns"), drtest.ip(1),
                    drtest.free_port(drtest.ip(1)))


def host_records(label, ip, tlsa=(), bogus_tlsa=False):
    recs = ["%s A %s" % (label, ip)]
    for t in tlsa:
        line = "_%d._tcp.%s TLSA %s" % (port, label, t)
        recs.append(dnsrig.Record(line, bogus=True) if bogus_tlsa else line)
    return recs


def add_sink(ip, cert, starttls=True, chain=True, rules=()):
    c = k = None
    if cert is not None:
        c = cert.chain if chain else cert.crt
        k = cert.key
    sinks[ip] = sink.spawn(os.path.join(T, "sink-" + ip), ip, port, cert=c,
                           key=k, starttls=starttls, rules=rules)
    return ip


def scenario(domain, expect, secure=True, records=(), servfail=(), **kw):
    rig.zone(domain, secure=secure, records=list(records),
             servfail=list(servfail))
    d = dict(expect=expect)
    d.update(kw)
    scen[domain] = d


# 1. DANE-EE 3 1 1 match -> delivered, auth=dane-ee
ee = ss("mx.ee.test")
ip = add_sink(mx_ip(), ee)
scenario("ee.test", "sent", records=["@ MX 10 mx"] + host_records(
    "mx", ip, [ee.tlsa(3, 1, 1)]), ip=ip, auth="dane-ee", tls=True)

# 2. DANE-TA 2 0 1 and 2 1 1 on the issuing CA, chain, MX name
ta_leaf = inter.issue(["mx.ta.test"])
ip = add_sink(mx_ip(), ta_leaf)
scenario("ta.test", "sent", records=["@ MX 10 mx"] + host_records(
    "mx", ip, [inter.tlsa(2, 0, 1)]), ip=ip, auth="dane-ta", tls=True)
ta2_leaf = inter.issue(["mx.ta2.test"])
ip = add_sink(mx_ip(), ta2_leaf)
scenario("ta2.test", "sent", records=["@ MX 10 mx"] + host_records(
    "mx", ip, [inter.tlsa(2, 1, 1)]), ip=ip, auth="dane-ta", tls=True)

# 3. DANE-TA, certificate for another name -> deferred
wrong = inter.issue(["mail.elsewhere.test"])
ip = add_sink(mx_ip(), wrong)
scenario("taname.test", "deferred", records=["@ MX 10 mx"] + host_records(
    "mx", ip, [inter.tlsa(2, 1, 1)]), ip=ip,
    why=r"stage TLS: certificate verification failed: hostname mismatch")

# 4. TLSA present, no match -> deferred
nm = ss("mx.nomatch.test")
decoy = ss("decoy.nomatch.test")
ip = add_sink(mx_ip(), nm)
scenario("nomatch.test", "deferred", records=["@ MX 10 mx"] + host_records(
    "mx", ip, [decoy.tlsa(3, 1, 1)]), ip=ip,
    why=r"stage TLS: certificate verification failed: no matching DANE "
    r"TLSA records")

# 5. STARTTLS stripped on a DANE MX -> deferred, nothing in cleartext
st = ss("mx.nostarttls.test")
ip = add_sink(mx_ip(), st, starttls=False)
scenario("nostarttls.test", "deferred", records=["@ MX 10 mx"] +
         host_records("mx", ip, [st.tlsa(3, 1, 1)]), ip=ip,
         why=r"stage STARTTLS: TLS is required but the server does not "
         r"offer STARTTLS")

# 6. Bogus TLSA signature -> deferred
bt = ss("mx.bogustlsa.test")
ip = add_sink(mx_ip(), bt)
scenario("bogustlsa.test", "deferred", records=["@ MX 10 mx"] +
         host_records("mx", ip, [bt.tlsa(3, 1, 1)], bogus_tlsa=True), ip=ip,
         why=r"4\.7\.5 TLSA RRset of mx\.bogustlsa\.test is bogus \(DNSSEC "
         r"validation failed", never_contacted=True)

# 7. TLSA lookup SERVFAIL for a secure host -> deferred
sf = ss("mx.servfail.test")
ip = add_sink(mx_ip(), sf)
scenario("servfail.test", "deferred", records=["@ MX 10 mx"] +
         host_records("mx", ip, [sf.tlsa(3, 1, 1)]),
         servfail=["_%d._tcp.mx" % port], ip=ip,
         why=r"4\.7\.5 TLSA lookup for mx\.servfail\.test failed "
         r"\(SERVFAIL\)", never_contacted=True)

# 8. Bogus MX RRset -> deferred
bm = ss("mx.bogusmx.test")
ip = add_sink(mx_ip(), bm)
scenario("bogusmx.test", "deferred", records=[
    dnsrig.Record("@ MX 10 mx", bogus=True)] + host_records(
    "mx", ip, [bm.tlsa(3, 1, 1)]), ip=ip,
    why=r"4\.7\.5 MX RRset of bogusmx\.test is bogus \(DNSSEC validation "
    r"failed", never_contacted=True)

# 9. Insecure zone with (non-matching) TLSA -> ignored, opportunistic TLS
ins = ss("mx.insecure.test")
ip = add_sink(mx_ip(), ins)
scenario("insecure.test", "sent", secure=False, records=["@ MX 10 mx"] +
         host_records("mx", ip, [decoy.tlsa(3, 1, 1)]), ip=ip, auth="none",
         tls=True)

# 10. Secure zone without TLSA -> opportunistic TLS; cleartext only when
#     the server offers no STARTTLS (level dane allows it then)
nt = ss("mx.notlsa.test")
ip = add_sink(mx_ip(), nt)
scenario("notlsa.test", "sent", records=["@ MX 10 mx"] + host_records(
    "mx", ip), ip=ip, auth="none", tls=True)
ip = add_sink(mx_ip(), None, starttls=False)
scenario("notlsaclear.test", "sent", records=["@ MX 10 mx"] + host_records(
    "mx", ip), ip=ip, auth="none", tls=False)

# 10b. Opportunistic TLS whose handshake fails -> cleartext on the same
#      host (the level allows cleartext); a DANE host never does that
bt2 = ss("mx.brokentls.test")
ip = add_sink(mx_ip(), bt2, rules=["STARTTLS||1|tls-garbage"])
scenario("brokentls.test", "sent", records=["@ MX 10 mx"] + host_records(
    "mx", ip), ip=ip, auth="none", tls=False)
bd = ss("mx.brokendane.test")
ip = add_sink(mx_ip(), bd, rules=["STARTTLS||0|tls-garbage"])
scenario("brokendane.test", "deferred", records=["@ MX 10 mx"] +
         host_records("mx", ip, [bd.tlsa(3, 1, 1)]), ip=ip,
         why=r"stage TLS: TLS handshake failed")

# 11. Only PKIX usages -> mandatory TLS, unauthenticated
pk = ss("mx.pkix.test")
ip = add_sink(mx_ip(), pk)
scenario("pkix.test", "sent", records=["@ MX 10 mx"] + host_records(
    "mx", ip, [decoy.tlsa(1, 1, 1), decoy.tlsa(0, 0, 1)]), ip=ip,
    auth="none", tls=True)
pkc = ss("mx.pkixclear.test")
ip = add_sink(mx_ip(), pkc, starttls=False)
scenario("pkixclear.test", "deferred", records=["@ MX 10 mx"] +
         host_records("mx", ip, [decoy.tlsa(1, 1, 1)]), ip=ip,
         why=r"stage STARTTLS: TLS is required but the server does not "
         r"offer STARTTLS")

# 12. First MX fails DANE, second passes -> delivered via the second
m1 = ss("mx1.twomx.test")
m2 = ss("mx2.twomx.test")
ip1 = add_sink(mx_ip(), m1)
ip2 = add_sink(mx_ip(), m2)
scenario("twomx.test", "sent", records=["@ MX 10 mx1", "@ MX 20 mx2"] +
         host_records("mx1", ip1, [decoy.tlsa(3, 1, 1)]) +
         host_records("mx2", ip2, [m2.tlsa(3, 1, 1)]), ip=ip2, not_ip=ip1,
         auth="dane-ee", tls=True)

# 13. Expired DANE-EE certificate -> delivered (no expiry check)
xe = ss("mx.expee.test", expired=True)
ip = add_sink(mx_ip(), xe)
scenario("expee.test", "sent", records=["@ MX 10 mx"] + host_records(
    "mx", ip, [xe.tlsa(3, 1, 1)]), ip=ip, auth="dane-ee", tls=True)

# 14. Expired certificate under DANE-TA -> deferred
xt = inter.issue(["mx.expta.test"], expired=True)
ip = add_sink(mx_ip(), xt)
scenario("expta.test", "deferred", records=["@ MX 10 mx"] + host_records(
    "mx", ip, [inter.tlsa(2, 1, 1)]), ip=ip,
    why=r"stage TLS: certificate verification failed: certificate has "
    r"expired")

# 15. Null MX -> bounced; the DSN reaches the sender's own DANE MX
scenario("nullmx.test", "bounced", records=["@ MX 0 ."])
snd = ss("mx.senders.test")
sender_ip = add_sink(mx_ip(), snd)
rig.zone("senders.test", records=["@ MX 10 mx"] + host_records(
    "mx", sender_ip, [snd.tlsa(3, 1, 1)]))

# 16. dane-only destination without DANE (insecure zone) -> deferred
do = ss("mx.daneonly.test")
ip = add_sink(mx_ip(), do)
scenario("daneonly.test", "deferred", secure=False, records=["@ MX 10 mx"] +
         host_records("mx", ip), ip=ip,
         why=r"4\.7\.5 dane-only: no DANE for mx\.daneonly\.test \(MX RRset "
         r"not DNSSEC-validated\)", never_contacted=True)

# 17. DANE-TA whose chain leads to an unrelated CA -> deferred
un = other_root.issue(["mx.unrelated.test"])
ip = add_sink(mx_ip(), un)
scenario("unrelated.test", "deferred", records=["@ MX 10 mx"] + host_records(
    "mx", ip, [inter.tlsa(2, 1, 1)]), ip=ip,
    why=r"stage TLS: certificate verification failed: no matching DANE "
    r"TLSA records")

rig.start()

policy = os.path.join(T, "policy")
with open(policy, "w") as f:
    f.write("# test policy table\ndaneonly.test dane-only\n")
os.chmod(policy, 0o644)

d = drtest.Daemon(dns_config=rig.unbound_conf(),
                  trust_anchor_file=rig.trust_anchor_file,
                  smtp_port=port, policy_file=policy,
                  min_backoff="1h", smtp_connect_timeout="5s",
                  smtp_timeout="10s")
d.start()

c = drtest.SMTP(d.host, d.port)
for dom in scen:
    body = ("From: <sender@senders.test>\r\nTo: <user@%s>\r\n"
            "Subject: scenario %s\r\nMessage-ID: <%s@dr-test>\r\n\r\n"
            "Hello %s.\r\n" % (dom, dom, dom, dom)).encode()
    c.sendmail("sender@senders.test", ["user@" + dom], body)
c.close()

final = re.compile(r"to=<user@([a-z0-9.]+)>, .*status=(sent|deferred|bounced)"
                   r"[^\n]*")


def outcomes():
    got = {}
    for m in final.finditer(d.log_text()):
        got.setdefault(m.group(1), m.group(0))
    return got


drtest.wait_for(lambda: set(outcomes()) >= set(scen), drtest.scaled(90),
                "a delivery outcome for every scenario")
got = outcomes()
# bounces: the DSN to the sender must arrive at the sender's MX
drtest.wait_for(lambda: len(sinks[sender_ip].messages()) >= 1,
                drtest.scaled(30), "the DSN at the sender's MX")
time.sleep(0.5)

for dom, sc in scen.items():
    line = got[dom]
    status = re.search(r"status=(\w+)", line).group(1)
    drtest.check(status == sc["expect"], "%s: expected %s, log: %s" %
                 (dom, sc["expect"], line))
    ip = sc.get("ip")
    msgs = sinks[ip].messages() if ip else []
    mine = [m for m in msgs if ("user@" + dom) in m.get("rcpts", [])]
    if sc["expect"] == "sent":
        drtest.check(len(mine) == 1, "%s: exactly one message at %s, got "
                     "%d" % (dom, ip, len(mine)))
        if mine:
            drtest.check(mine[0]["tls"] == sc["tls"], "%s: tls=%s expected "
                         "%s" % (dom, mine[0]["tls"], sc["tls"]))
            drtest.check(b"Hello %s." % dom.encode() in mine[0]["data"],
                         "%s: body arrived intact" % dom)
        drtest.check("auth=%s" % sc["auth"] in line, "%s: auth=%s in %s" %
                     (dom, sc["auth"], line))
        if "not_ip" in sc:
            drtest.check(len(sinks[sc["not_ip"]].messages()) == 0,
                         "%s: nothing at the failing first MX" % dom)
    else:
        drtest.check(len(msgs) == 0, "%s: nothing may arrive at %s, got %d"
                     % (dom, ip, len(msgs)))
    if sc["expect"] == "deferred":
        # deferred for its own reason, not for any reason at all
        m = re.search(r"status=deferred \((.*)\)$", line)
        drtest.check(m is not None and re.search(sc["why"], m.group(1))
                     is not None, "%s: deferred because /%s/, log: %s"
                     % (dom, sc["why"], line))
        # the sink counts connections: a host that DNSSEC rules out is
        # never contacted; the others were (the reason came from them)
        conns = sinks[ip].stats().get("connections", 0)
        if sc.get("never_contacted"):
            drtest.check(conns == 0, "%s: %s must never be contacted, the "
                         "sink saw %d connections" % (dom, ip, conns))
        else:
            drtest.check(conns >= 1, "%s: %s was tried (the reason is its "
                         "answer), the sink saw %d connections"
                         % (dom, ip, conns))

# the deferred ones are still queued with their reason, pending
ids = d.queue_ids()
pending = set()
for qid in ids:
    env = d.read_env(qid)
    for r in env.get("rcpts", []):
        pending.add(r["addr"].split("@")[1])
for dom, sc in scen.items():
    if sc["expect"] == "deferred":
        drtest.check(dom in pending, "%s: still in the queue" % dom)
    else:
        drtest.check(dom not in pending, "%s: no longer queued" % dom)

# the DSN for the null MX destination
dsn = [m for m in sinks[sender_ip].messages()
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

log = d.log_text()
drtest.check("Verified TLS connection established" in log,
             "Postfix-style verified TLS line logged")
d.stop()
rig.stop()
for s in sinks.values():
    s.stop()
drtest.done()
