#!/usr/bin/python3
# timeout: 300
"""MTA-STS delivery end to end (issue #5 acceptance, RFC 8461).

A world (lib/world.py) without DNSSEC for the destinations (insecure
zones under the rig's signed test. tree, so DANE never applies) with
_mta-sts TXT records, Debian's nginx serving the policies over HTTPS on
loopback with the world's CA, one SMTP sink per MX host with
certificates from the same CA, and danerelayd with mta_sts = yes,
https_port and ca_file = the world's root.

Phase 1 sends one message per destination: enforce with a matching MX,
MX not in the policy (skipped / deferred), certificate for the wrong
name, no STARTTLS, testing and none modes, and every way a fetch must
fail (redirect, 404, text/html, > 64 KiB plain and chunked, bad
certificate on the policy host, 201, unparsable body, no TXT, two TXT):
those policies all list an MX that is not the real one, so had one been
used wrongly the message would be deferred, not delivered.

Phase 2 changes the world under the cache: the TXT record removed, the
policy changed without and then with a new TXT id, a new id whose fetch
fails (the cached policy stays), a short max_age that expires, and the
HTTPS server down across a daemon restart.  Then `danerelay mta-sts`
show / refresh / forget.  Whether a policy was applied is visible in the
log: auth=webpki only when MTA-STS enforce asked for a verified session.
"""
import calendar
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import nginx  # noqa: E402
import world  # noqa: E402

w = world.World()
web = w.nginx()
n_ip = [10]
scen = {}
CERT = {"ok": "ca", "wrong": "wrong", "untrusted": "untrusted", None: None}


def policy(mode, mx, max_age=86400, pad=0):
    text = world.policy(mode, mx, max_age)
    while len(text) < pad:
        text += "x-pad: " + "a" * 100 + "\r\n"
    return text


def dest(domain, expect, mx=(("mx", "ok", True),), txt=("1",), serve=None,
         ttl=None, auth=None, ip_idx=0, extra=(), servfail=(), **kw):
    """A destination zone without DNSSEC.  mx: (label, cert, starttls) per
    MX host in preference order, cert "ok" (issued for the host by the
    world's CA), "wrong" (another name), "untrusted" (another CA) or None;
    txt: ids of v=STSv1 records; serve: policy text (str) or a dict of
    nginx locations, None: the test makes the site itself (or none)."""
    mxs = []
    for label, cert, starttls in mx:
        n_ip[0] += 1
        mxs.append(world.MX(label, n_ip[0], cert=CERT[cert], tlsa=None,
                            starttls=starttls))
    w.dest(domain, mx=mxs, secure=False, records=extra, mta_sts=serve,
           sts_txt=list(txt), ttl=ttl, servfail=servfail)
    scen[domain] = dict(expect=expect, at=mxs[ip_idx].label, auth=auth,
                        **kw)


# ---- phase 1 destinations ------------------------------------------------
dest("enforce.test", "sent", auth="webpki",
     serve=policy("enforce", ["mx.enforce.test"]))
dest("wildcard.test", "sent", auth="webpki",
     serve=policy("enforce", ["*.wildcard.test"]))
dest("skipmx.test", "sent", auth="webpki", ip_idx=1,
     mx=(("mx1", "ok", True), ("mx2", "ok", True)),
     serve=policy("enforce", ["mx2.skipmx.test"]))
dest("nomx.test", "deferred", serve=policy("enforce", ["other.nomx.test"]))
dest("wrongname.test", "deferred", mx=(("mx", "wrong", True),),
     serve=policy("enforce", ["mx.wrongname.test"]))
dest("nostarttls.test", "deferred", mx=(("mx", None, False),),
     serve=policy("enforce", ["mx.nostarttls.test"]))
dest("testing.test", "sent", auth="none", mx=(("mx", "wrong", True),),
     serve=policy("testing", ["mx.testing.test"]))
dest("none.test", "sent", auth="none", mx=(("mx", "wrong", True),),
     serve=policy("none", []))
# fetches that must fail: each would-be policy names another MX
redirect_to = "https://mta-sts.enforce.test:%d/.well-known/mta-sts.txt" % \
    web.port
dest("redirect.test", "sent", auth="none", fetch="status", serve={
    nginx.POLICY_PATH: "return 301 %s;" % redirect_to})
dest("notfound.test", "sent", auth="none", fetch="status",
     serve={nginx.POLICY_PATH: "return 404;"})
html_cert = w.root.issue(["mta-sts.htmltype.test"])
web.site("mta-sts.htmltype.test", html_cert.chain, html_cert.key,
         policy=policy("enforce", ["nomatch.htmltype.test"]),
         content_type="text/html")
dest("htmltype.test", "sent", auth="none", fetch="content-type")
big = policy("enforce", ["nomatch.toobig.test"], pad=70000)
dest("toobig.test", "sent", auth="none", fetch="too-big", serve=big)
web.set_policy("chunked-src", big)
dest("chunked.test", "sent", auth="none", fetch="too-big", serve={
    nginx.POLICY_PATH: "types { } default_type text/plain; alias %s; "
    "sub_filter 'zzz' 'yyy'; sub_filter_once off; sub_filter_types *;" %
    os.path.join(web.www, "chunked-src.txt")})
bad_cert = w.root.issue(["mta-sts.elsewhere.test"], name="policy-bad")
web.site("mta-sts.badcert.test", bad_cert.chain, bad_cert.key,
         policy=policy("enforce", ["nomatch.badcert.test"]))
dest("badcert.test", "sent", auth="none", fetch="verify")
dest("invalid.test", "sent", auth="none", fetch="invalid policy",
     serve="garbage\r\n")
dest("status201.test", "sent", auth="none", fetch="status", serve={
    nginx.POLICY_PATH: "types { } default_type text/plain; return 201 "
    "'%s';" % policy("enforce", ["nomatch.status201.test"]).replace(
        "\r\n", "\\n")})
dest("notxt.test", "sent", auth="none", txt=(),
     serve=policy("enforce", ["nomatch.notxt.test"]))
dest("twotxt.test", "sent", auth="none", txt=("1", "2"),
     serve=policy("enforce", ["nomatch.twotxt.test"]))
# three deliveries at once share one (slow) fetch and all wait for it
web.set_policy("mta-sts.dedup.test", policy("enforce", ["mx.dedup.test"]))
dest("dedup.test", "sent", auth="webpki", serve={
    nginx.POLICY_PATH: "types { } default_type text/plain; limit_rate 100; "
    "alias %s;" % os.path.join(web.www, "mta-sts.dedup.test.txt")})
# TXT lookup SERVFAIL without a cached policy: delivery goes on without
# MTA-STS (as for a failed fetch, RFC 8461 §3.3)
dest("servfail.test", "sent", auth="none", txt=(), servfail=["_mta-sts"],
     serve=policy("enforce", ["nomatch.servfail.test"]))
# an IDN domain: DNS, SNI and Host use the A-label (refreshed by the CLI
# as "b\u00fccher.test")
dest("xn--bcher-kva.test", None,
     serve=policy("enforce", ["mx.xn--bcher-kva.test"]))
# phase 2 ones, delivered (or not) in phase 1 first
dest("txtgone.test", "sent", auth="webpki", ttl=1,
     serve=policy("enforce", ["mx.txtgone.test"]))
dest("idchange.test", "sent", auth="webpki", ttl=1,
     serve=policy("enforce", ["mx.idchange.test"]))
dest("keep.test", "sent", auth="webpki", ttl=1,
     serve=policy("enforce", ["mx.keep.test"]))
dest("expire.test", "deferred", mx=(("mx", "wrong", True),),
     serve=policy("enforce", ["mx.expire.test"], max_age=8))
dest("refresh.test", "sent", auth="webpki",
     serve=policy("enforce", ["mx.refresh.test"], max_age=6))
dest("cached.test", None, mx=(("mx", "wrong", True),),
     serve=policy("enforce", ["mx.cached.test"]))

w.start()
d = w.daemon(min_backoff="1h")
r = d.cli("mta-sts", "show")
drtest.check(r.returncode == 0, "danerelay has the mta-sts command (its "
             "dispatch line in src/danerelay.c): %s" % r.stderr.strip())


def send(local, dom):
    w.send(d, "%s@%s" % (local, dom))


def check_outcome(local, dom, expect, auth=None):
    """The first outcome of local@dom: its status, auth=, and for a sent
    message exactly one copy over TLS at the MX the scenario names (none
    at the others); nothing anywhere when it is not sent."""
    sent = expect == "sent"
    return w.expect(d, dom, expect, rcpt="%s@%s" % (local, dom), auth=auth,
                    at=scen[dom]["at"] if sent else None,
                    tls=True if sent else None)


# ---- phase 1 ---------------------------------------------------------------
for dom, sc in scen.items():
    if sc["expect"] is not None:
        send("u1", dom)
for local in ("u1b", "u1c"):
    send(local, "dedup.test")
for dom, sc in scen.items():
    if sc["expect"] is not None:
        check_outcome("u1", dom, sc["expect"], sc.get("auth"))
log = d.log_text()
drtest.check(len(w.sink("skipmx.test", "mx1").messages()) == 0,
             "skipmx.test: nothing at the MX that is not in the policy")
drtest.check(re.search(r"relay=mx1\.skipmx\.test, status=skipped \(MTA-STS "
                       r"enforce", log) is not None,
             "skipmx.test: mx1 logged as skipped by MTA-STS")
drtest.check("Verified TLS connection established" in log,
             "Postfix-style verified TLS line logged")
for dom, sc in scen.items():
    if "fetch" in sc:
        m = re.search(r"mta-sts: %s: policy fetch for id=1 failed \(([^)]*)"
                      % re.escape(dom), log)
        drtest.check(m is not None and sc["fetch"] in m.group(1),
                     "%s: fetch failure '%s' logged: %s" % (
                         dom, sc["fetch"], m.group(0) if m else None))
drtest.check(re.search(r"mta-sts: badcert\.test: .*\(sts-webpki-invalid\)",
                       log) is not None, "badcert.test: sts-webpki-invalid")
drtest.check(re.search(r"mta-sts: invalid\.test: .*\(sts-policy-invalid\)",
                       log) is not None, "invalid.test: sts-policy-invalid")
drtest.check(re.search(r"mta-sts: notfound\.test: .*\(sts-policy-fetch-"
                       r"error\)", log) is not None,
             "notfound.test: sts-policy-fetch-error")
drtest.check(not web.requests("mta-sts.notxt.test"),
             "notxt.test: no fetch without a TXT record")
drtest.check(not web.requests("mta-sts.twotxt.test"),
             "twotxt.test: no fetch with two STS records")
drtest.check(len(web.requests("mta-sts.enforce.test")) == 1,
             "enforce.test: fetched once (the redirect was not followed)")
drtest.check("mta-sts: enforce.test: fetched policy id=1, mode=enforce" in
             log, "fetch logged with id and mode")
for local in ("u1b", "u1c"):
    check_outcome(local, "dedup.test", "sent", "webpki")
drtest.check(len(web.requests("mta-sts.dedup.test")) == 1,
             "dedup.test: one fetch for three waiting deliveries: %s" %
             web.requests("mta-sts.dedup.test"))
drtest.check(re.search(r"mta-sts: servfail\.test: TXT lookup failed", log)
             and not web.requests("mta-sts.servfail.test"),
             "servfail.test: TXT SERVFAIL logged, no fetch")

# ---- phase 2: the world changes under the cache ----------------------------
# TXT record removed: the cached policy is still enforced
txtgone = [r for r in w.records["txtgone.test"] if "_mta-sts" not in r]
w.rig.update("txtgone.test", txtgone)
# a new policy without a new id is not fetched; with one it is
web.set_policy("mta-sts.idchange.test",
               policy("enforce", ["other.idchange.test"]))
# a new id whose fetch fails keeps the cached policy
web.remove_policy("mta-sts.keep.test")
keep = [r.replace("id=1", "id=2") for r in w.records["keep.test"]]
w.rig.update("keep.test", keep)
# the short-lived policy can not be refreshed any more
web.remove_policy("mta-sts.expire.test")
time.sleep(2.5)         # TTL 1 s: libunbound's cached answers expire

send("u2", "txtgone.test")
line = check_outcome("u2", "txtgone.test", "sent", "webpki")  # TXT removed
drtest.check(re.search(r"mta-sts: txtgone\.test: no TXT record \((nxdomain|nodata)\); "
                       r"using the cached policy id=1", d.log_text()),
             "txtgone.test: vanished TXT record logged, cached policy used")
send("u2", "idchange.test")
check_outcome("u2", "idchange.test", "sent", "webpki")    # same id
drtest.check(len(web.requests("mta-sts.idchange.test")) == 1,
             "idchange.test: no refetch while the id is unchanged")
send("u2", "keep.test")
check_outcome("u2", "keep.test", "sent", "webpki")  # new id, fetch fails
drtest.check(re.search(r"mta-sts: keep\.test: policy fetch for id=2 failed "
                       r"\(status: [^)]*404[^)]*\); keeping the cached "
                       r"policy id=1", d.log_text()),
             "keep.test: failed fetch of id=2 keeps cached id=1")

idchange = [r.replace("id=1", "id=2") for r in w.records["idchange.test"]]
w.rig.update("idchange.test", idchange)
time.sleep(2.5)
send("u3", "idchange.test")
check_outcome("u3", "idchange.test", "deferred")    # new id, new policy
drtest.check("mta-sts: idchange.test: new policy id=2" in d.log_text(),
             "idchange.test: new policy fetched for id=2")

# expiry: max_age 8 s from the phase 1 fetch
r = d.cli("mta-sts", "show", "expire.test")
drtest.check(r.returncode == 0 and "mode:     enforce" in r.stdout,
             "mta-sts show expire.test: %s%s" % (r.stdout, r.stderr))
m = re.search(r"mta-sts: expire\.test: fetched policy id=1, .* expires "
              r"(\S+)Z", d.log_text())
drtest.check(m is not None, "expire.test: fetch logged with its expiry")
if m:
    # the log's time is UTC: timegm, not mktime (which is local time and
    # off by an hour across a DST change)
    exp = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    while time.time() < exp + 1.5:
        time.sleep(0.2)
send("u2", "expire.test")
check_outcome("u2", "expire.test", "sent", "none")     # policy expired
drtest.check("mta-sts: expire.test: policy fetch for id=1 failed" in
             d.log_text(), "expire.test: the refresh/refetch failures logged")

# the background refresh fetched the short-lived policy again
drtest.check(len(web.requests("mta-sts.refresh.test")) >= 2 and
             len(re.findall(r"mta-sts: refresh\.test: fetched policy id=1",
                            d.log_text())) >= 2,
             "refresh.test: refreshed in the background before expiry")

# CLI refresh, then the HTTPS server down across a restart
r = d.cli("mta-sts", "refresh", "cached.test")
drtest.check(r.returncode == 0 and "fetched policy id=1, mode enforce" in
             r.stdout, "mta-sts refresh cached.test: %s%s" % (r.stdout,
                                                             r.stderr))
r = d.cli("mta-sts", "show")
drtest.check(r.returncode == 0 and re.search(r"^cached\.test +enforce +id=1 ",
                                             r.stdout, re.M),
             "mta-sts show lists cached.test: %s%s" % (r.stdout, r.stderr))
r = d.cli("mta-sts", "refresh", "B\u00fccher.test.")
drtest.check(r.returncode == 0 and "xn--bcher-kva.test: fetched policy id=1"
             in r.stdout and web.requests("mta-sts.xn--bcher-kva.test"),
             "mta-sts refresh of an IDN domain uses the A-label: %s%s" % (
                 r.stdout, r.stderr))
r = d.cli("mta-sts", "refresh", "notxt.test")
drtest.check(r.returncode == 1 and "no new policy" in r.stdout,
             "mta-sts refresh without a TXT record fails: %s%s" % (
                 r.stdout, r.stderr))
web.stop()
d.restart()
send("u2", "cached.test")
# the cached policy, the server down, after a restart
check_outcome("u2", "cached.test", "deferred")
send("u3", "enforce.test")
check_outcome("u3", "enforce.test", "sent", "webpki")
drtest.check(re.search(r"mta-sts: cached\.test: policy fetch", d.log_text())
             is None, "cached.test: no fetch while the id is unchanged")

r = d.cli("mta-sts", "forget", "cached.test")
drtest.check(r.returncode == 0 and "forgotten" in r.stdout,
             "mta-sts forget cached.test: %s%s" % (r.stdout, r.stderr))
r = d.cli("mta-sts", "show", "cached.test")
drtest.check(r.returncode == 1 and "no cached MTA-STS policy" in r.stdout,
             "mta-sts show after forget: %s%s" % (r.stdout, r.stderr))
send("u3", "cached.test")
check_outcome("u3", "cached.test", "sent", "none")  # forgotten, server down
r = d.cli("mta-sts", "bogus")
drtest.check(r.returncode == 2 and "usage" in r.stderr, "mta-sts usage")

w.stop()
drtest.done()
