#!/usr/bin/python3
# timeout: 300
"""check.t - `danerelay check` (issue #18): the operator's own sending
setup audited against a signed test DNS world.

The relay is relay.good.test, sending from 192.0.2.25 (smtp_bind_address;
a documentation address: the check only looks its records up, it never
sends from it; libspf2 passes every loopback client by itself, so a
127.0.0.x address could not show an SPF failure).  Its reverse zone
2.0.192.in-addr.arpa is served by the test's NSD, unsigned.

  - good.test has everything right: every line is ok or info, exit 0;
  - one broken domain (or relay address) per check, each reported with
    its status and a "fix:" line:
      192.0.2.27  PTR names another host            ptr         fail
      192.0.2.26  PTR name does not resolve back    ptr         fail
      spfout.test SPF without the relay's address   spf         fail
      spf11.test  11 DNS-querying terms (include)   spf-limits  fail
      dkimbad.test published key of another key     dkim        fail
      spfvoid.test 3 void lookups; -all             spf-limits  fail,
                                                    spf-all     warn
      spfplus.test +all                             spf-all     fail
      dkim1024.test 1024-bit RSA key                dkim-key    warn
                    200 days old (180d rotation)    dkim-age    warn
      dmarcext.test rua at reports.test, which does not authorise it
                                                    dmarc-rua   fail
      stsmx.test  policy without mx2                mta-sts-mx  fail
      stscert.test MX certificate for another name  mta-sts-cert fail
      tlsabad.test TLSA of a certificate nobody serves  dane    fail
      unsigned.test unsigned zone                   dnssec      warn
      192.0.2.29  listed in the test blocklist bl.test  dnsbl   fail
      192.0.2.28  a pool/dynamic PTR name           ptr-generic warn
  - --json holds the same lines as the text output; --dkim-max-age and
    --no-relay; only warnings: exit 1; good.test alone: exit 0;
  - a domain whose nameserver never answers completes within the
    timeouts (--timeout 3), with failures, not a hang.
"""
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import certs  # noqa: E402
import dkimcheck  # noqa: E402
import world  # noqa: E402

RELAY = "relay.good.test"
GOOD_IP, NOBACK_IP, WRONG_IP, LISTED_IP = ("192.0.2.25", "192.0.2.26",
                                            "192.0.2.27", "192.0.2.29")
SRC_IP = "192.0.2.30"           # a source_table line's (issue #24)

w = world.World()
d = w.daemon(start=False, myhostname=RELAY, smtp_bind_address=GOOD_IP)
kconf, table = dkimcheck.keygen_config(d)


def keygen(dom, sel, alg="rsa-2048"):
    r = dkimcheck.cli(kconf, d, "keygen", dom, sel, "--algorithm", alg)
    drtest.check(r.returncode == 0, "dkim keygen %s %s: %s"
                 % (dom, sel, r.stderr.strip()))
    return dkimcheck.zone_records(r.stdout)


good_keys = keygen("good.test", "s1") + keygen("good.test", "e1", "ed25519")
bad_own = keygen("dkimbad.test", "s1")
# dkimbad.test publishes good.test's key under its own selector
bad_rec = good_keys[0].replace("s1._domainkey.good.test.",
                               "s1._domainkey.dkimbad.test.")
# a 1024-bit key, made by openssl, put in the table by hand
k1024 = os.path.join(d.options["state_dir"], "dkim", "dkim1024.test.s1.pem")
subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                "rsa_keygen_bits:1024", "-out", k1024], check=True,
               capture_output=True)
os.chmod(k1024, 0o600)
# ... made 200 days ago: past the rotation period (180 days by default)
old = time.time() - 200 * 86400
os.utime(k1024, (old, old))
with open(table, "a") as f:
    f.write("dkim1024.test s1 %s rsa-sha256\n" % k1024)
r = dkimcheck.cli(kconf, d, "dns", "dkim1024.test")
drtest.check(r.returncode == 0, "dkim dns dkim1024.test: %s" % r.stderr)
k1024_rec = dkimcheck.zone_records(r.stdout)
d.write_config(dkim_key_table=table, check_dnsbl_zones="bl.test")

SPF_OK = '@ TXT "v=spf1 ip4:%s ~all"' % GOOD_IP
DMARC_OK = '_dmarc TXT "v=DMARC1; p=reject; rua=mailto:dmarc@DOM"'


def full(dom, extra=(), spf=SPF_OK, dmarc=DMARC_OK):
    """A domain's records but MX and DKIM: SPF, DMARC, TLSRPT, CAA."""
    return [spf, dmarc.replace("DOM", dom),
            '_smtp._tls TXT "v=TLSRPTv1; rua=mailto:tlsrpt@%s"' % dom,
            '@ CAA 0 issue "ca.test"'] + list(extra)


w.dest("good.test", mx=[world.MX("mx", 11, cert="ca",
                                 tlsa=["3 1 1", "3 1 1 decoy"])],
       mta_sts=world.policy("enforce", ["mx.good.test"]),
       records=full("good.test", dmarc='_dmarc TXT "v=DMARC1; p=reject; '
                    'rua=mailto:dmarc@DOM,mailto:dmarc@reports.test"',
                    extra=good_keys + [
           "relay A %s" % GOOD_IP, "relay A %s" % WRONG_IP,
           "relay A %s" % LISTED_IP,
           'relay TXT "v=spf1 a -all"',
           "out A %s" % SRC_IP, 'out TXT "v=spf1 a -all"']))
w.rig.zone("reports.test", records=[
    '@ MX 0 .',
    'good.test._report._dmarc TXT "v=DMARC1"'])
w.rig.zone("2.0.192.in-addr.arpa", secure=False, records=[
    "25 PTR %s." % RELAY,
    "26 PTR %s." % RELAY,           # relay.good.test has no A 192.0.2.26
    "27 PTR mail.elsewhere.test.",
    "28 PTR dynamic-192-0-2-28.pool.isp.test.",
    "29 PTR %s." % RELAY,
    "30 PTR out.good.test."])       # source_table's address
w.rig.zone("bl.test", records=["29.2.0.192 A 127.0.0.2",
                               '29.2.0.192 TXT "listed for the test"'])
w.dest("spfout.test", records=['@ MX 0 .'] + full(
    "spfout.test", spf='@ TXT "v=spf1 ip4:198.51.100.7 ~all"'))
w.dest("spf11.test", records=['@ MX 0 .'] + full(
    "spf11.test", spf='@ TXT "v=spf1 include:_i.spf11.test %s ip4:%s ~all"'
    % (" ".join("a:h%d.spf11.test" % i for i in range(1, 7)), GOOD_IP),
    extra=['_i TXT "v=spf1 %s ~all"' % " ".join(
        "a:h%d.spf11.test" % i for i in range(7, 11))] +
    ["h%d A 198.51.100.%d" % (i, i) for i in range(1, 11)]))
w.dest("spfvoid.test", records=['@ MX 0 .'] + full(
    "spfvoid.test", spf='@ TXT "v=spf1 a:nx1.spfvoid.test a:nx2.spfvoid.test '
    'a:nx3.spfvoid.test ip4:%s -all"' % GOOD_IP))
w.dest("spfplus.test", records=['@ MX 0 .'] + full(
    "spfplus.test", spf='@ TXT "v=spf1 ip4:%s +all"' % GOOD_IP))
w.dest("dkimbad.test", records=['@ MX 0 .', bad_rec] + full("dkimbad.test"))
w.dest("dkim1024.test", records=['@ MX 0 .'] + k1024_rec +
       full("dkim1024.test"))
w.dest("dmarcext.test", records=['@ MX 0 .'] + full(
    "dmarcext.test", dmarc='_dmarc TXT "v=DMARC1; p=reject; '
    'rua=mailto:dmarc@reports.test"'))
w.dest("stsmx.test", mx=[world.MX("mx1", 12, cert="ca", tlsa=None),
                         world.MX("mx2", 13, cert="ca", tlsa=None)],
       mta_sts=world.policy("enforce", ["mx1.stsmx.test"]),
       records=full("stsmx.test"))
w.dest("stscert.test", mx=[world.MX("mx", 14, cert="wrong", tlsa=None)],
       mta_sts=world.policy("enforce", ["mx.stscert.test"]),
       records=full("stscert.test"))
w.dest("tlsabad.test", mx=[world.MX("mx", 15, tlsa=["3 1 1 decoy",
                                                   "3 1 1 decoy"])],
       records=full("tlsabad.test"))
w.dest("unsigned.test", secure=False, records=['@ MX 0 .'] +
       full("unsigned.test"))
# a.dmarcorg.test sends its reports to b.dmarcorg.test: another name of
# the same organisational domain (the public suffix list: dmarcorg.test),
# so not external, nothing to authorise (RFC 7489 §7.1)
w.rig.zone("dmarcorg.test", records=[
    "a MX 0 .", 'a TXT "v=spf1 ip4:%s ~all"' % GOOD_IP,
    '_dmarc.a TXT "v=DMARC1; p=reject; rua=mailto:d@b.dmarcorg.test"'])
w.rig.zone("slow.test", records=[], timeout=["dead"])
# the policy sites exist now: their port and CA for the check
d.write_config(mta_sts="yes", https_port=w.web.port, ca_file=w.root.crt)
w.rig.unbound_conf()    # again, with the zones added since (same path)
w.start()

BROKEN = ["spfout.test", "spf11.test", "spfvoid.test", "spfplus.test", "dkimbad.test", "dkim1024.test",
          "dmarcext.test", "stsmx.test", "stscert.test", "tlsabad.test",
          "unsigned.test"]
LINE = re.compile(r"^(ok|info|warn|fail) +(\S+)  (\S+)  (.*)$")


def check(*args, conf=None, timeout=120):
    t0 = time.monotonic()
    p = subprocess.run([d.cli_binary, "-c", conf or d.conf, "check"] +
                       list(args), capture_output=True, text=True,
                       timeout=drtest.scaled(timeout))
    return p, time.monotonic() - t0


def parse(text):
    """[(status, domain, check, reason, fix)] of the text output."""
    out = []
    for ln in text.splitlines():
        m = LINE.match(ln)
        if m:
            out.append(list(m.groups()) + [None])
        elif ln.startswith("      fix: ") and out:
            out[-1][4] = ln[len("      fix: "):]
        else:
            drtest.check(False, "unexpected output line %r" % ln)
    return [tuple(x) for x in out]


def expect(lines, dom, chk, status, reason, fixre):
    got = [x for x in lines if x[1] == dom and x[2] == chk and
           x[0] == status and re.search(reason, x[3])]
    drtest.check(got, "%s %s: a %s line /%s/; got:\n%s" % (
        dom, chk, status, reason, "\n".join(
            "  ".join(str(f) for f in x) for x in lines
            if x[1] == dom and x[2] == chk) or "(none)"))
    if got:
        drtest.check(got[0][4] is not None and re.search(fixre, got[0][4]),
                     "%s %s: fix /%s/, got %r" % (dom, chk, fixre,
                                                  got[0][4]))


# -- the main run: the relay and every domain --------------------------------
p, took = check(*(["good.test"] + BROKEN))
drtest.log("check took %.1fs, exit %d\n%s", took, p.returncode, p.stdout)
drtest.check(p.stderr == "", "no stderr: %r" % p.stderr[-2000:])
lines = parse(p.stdout)
drtest.check(p.returncode == 2, "failures: exit 2, got %d" % p.returncode)
for dom in [RELAY, "good.test"]:
    mine = [x for x in lines if x[1] == dom]
    drtest.check(len(mine) >= (4 if dom == RELAY else 15),
                 "%s: its checks are there (%d lines)" % (dom, len(mine)))
    bad = [x for x in mine if x[0] in ("warn", "fail")]
    drtest.check(not bad, "%s is clean, got:\n%s" % (
        dom, "\n".join("  ".join(str(f) for f in x) for x in bad)))
nofix = [x for x in lines if x[0] in ("warn", "fail") and not x[4]]
drtest.check(not nofix, "every warn and fail line has a fix: %s" % nofix)
for chk in ("host", "ptr", "helo-spf", "dnsbl"):
    drtest.check(any(x[1] == RELAY and x[2] == chk and x[0] == "ok"
                     for x in lines), "relay: %s ok" % chk)
for chk in ("mx", "spf", "spf-limits", "spf-all", "dkim", "dkim-key",
            "dmarc", "dmarc-rua", "dmarc-align", "mta-sts", "mta-sts-mx",
            "mta-sts-cert", "tlsrpt", "dnssec", "dane", "dane-rollover"):
    drtest.check(any(x[1] == "good.test" and x[2] == chk and x[0] == "ok"
                     for x in lines), "good.test: %s ok" % chk)

expect(lines, "spfout.test", "spf", "fail", r"fail.*%s" % GOOD_IP,
       r'^spfout\.test\. IN TXT "v=spf1 ip4:%s ip4:198\.51\.100\.7 ~all"$'
       % GOOD_IP)
expect(lines, "spf11.test", "spf-limits", "fail", r"^11 DNS-querying",
       r"at most 10")
expect(lines, "spfvoid.test", "spf-limits", "fail", r"^3 void lookups",
       r"remove the terms")
expect(lines, "spfvoid.test", "spf-all", "warn", r"^-all: receivers may "
       r"reject", r'^spfvoid\.test\. IN TXT ".* ~all"$')
expect(lines, "spfplus.test", "spf-all", "fail", r"^\+all",
       r'^spfplus\.test\. IN TXT "v=spf1 ip4:%s ~all"$' % GOOD_IP)
expect(lines, "dkim1024.test", "dkim-age", "warn", r"200 days old",
       r"danerelay dkim rotate dkim1024\.test")
expect(lines, "dkimbad.test", "dkim", "fail", r"selector s1 .*differs",
       r'^s1\._domainkey\.dkimbad\.test\. IN TXT \(?\s*"v=DKIM1')
# a key that does not verify gives no aligned DKIM identity
expect(lines, "dkimbad.test", "dmarc-align", "warn", r"^SPF aligns, no "
       r"published active DKIM key", r"dkim keygen dkimbad\.test")
expect(lines, "dkim1024.test", "dkim-key", "warn", r"1024 bits",
       r"danerelay dkim rotate dkim1024\.test")
expect(lines, "dmarcext.test", "dmarc-rua", "fail",
       r"reports\.test does not authorise",
       r'^dmarcext\.test\._report\._dmarc\.reports\.test\. IN TXT '
       r'"v=DMARC1"')
expect(lines, "stsmx.test", "mta-sts-mx", "fail", r"MX mx2\.stsmx\.test is "
       r"not covered", r"^mx: mx2\.stsmx\.test ")
expect(lines, "stscert.test", "mta-sts-cert", "fail",
       r"MX mx\.stscert\.test: no WebPKI-valid", r"names mx\.stscert\.test")
# the fix is the record of the key the MX serves
expect(lines, "tlsabad.test", "dane", "fail", r"no TLSA record matches",
       r"^_%d\._tcp\.mx\.tlsabad\.test\. IN TLSA 3 1 1 %s " % (
           w.port, certs.tlsa_data(w.mx["tlsabad.test"][0].cert.crt, 1, 1)))
expect(lines, "stsmx.test", "dane", "warn", r"MX mx2\.stsmx\.test: no TLSA",
       r"^_%d\._tcp\.mx2\.stsmx\.test\. IN TLSA 3 1 1 %s " % (
           w.port, certs.tlsa_data(w.mx["stsmx.test"][1].cert.crt, 1, 1)))
expect(lines, "unsigned.test", "dnssec", "warn", r"not signed",
       r"sign the zone unsigned\.test")

# -- --json: the same lines --------------------------------------------------
pj, _ = check(*(["--json", "good.test"] + BROKEN))
try:
    doc = json.loads(pj.stdout)
except ValueError as e:
    doc = None
    drtest.check(False, "--json output parses: %s: %r" % (e, pj.stdout[:300]))
if doc is not None:
    jl = [(x["status"], x["domain"], x["check"], x["reason"], x["fix"])
          for x in doc["checks"]]
    diff = [(a, b) for a, b in zip(jl, lines) if a != b]
    drtest.check(jl == lines, "--json matches the text output (%d and %d "
                 "lines), first differences: %s" % (len(jl), len(lines),
                                                   diff[:3]))
    drtest.check(doc["worst"] == "fail" and pj.returncode == 2,
                 "--json: worst fail, exit 2 (%s, %d)" % (doc["worst"],
                                                          pj.returncode))

# -- the relay from other addresses ------------------------------------------
for ip, chk, status, reason, fixre in (
        (WRONG_IP, "ptr", "fail", r"is mail\.elsewhere\.test, not myhostname",
         r"^27\.2\.0\.192\.in-addr\.arpa\. IN PTR relay\.good\.test\."),
        (NOBACK_IP, "ptr", "fail", r"does not resolve back",
         r"^relay\.good\.test\. IN A 192\.0\.2\.26$"),
        (LISTED_IP, "dnsbl", "fail", r"listed in bl\.test \(127\.0\.0\.2\)",
         r"delist 192\.0\.2\.29"),
        ("192.0.2.28", "ptr-generic", "warn", r"looks generic",
         r"^28\.2\.0\.192\.in-addr\.arpa\. IN PTR relay\.good\.test\.")):
    d.write_config(smtp_bind_address=ip)
    p, _ = check("unsigned.test")
    drtest.check(p.returncode == 2 and p.stderr == "", "from %s: exit 2, "
                 "no stderr (%d, %r)" % (ip, p.returncode, p.stderr[-1500:]))
    expect(parse(p.stdout), RELAY, chk, status, reason, fixre)
d.write_config(smtp_bind_address=GOOD_IP)

# -- source_table: each line's address with its HELO name --------------------
# spfout.test's mail leaves from 192.0.2.30 as out.good.test (PTR, A and
# SPF right), spf11.test's from 192.0.2.27 (PTR mail.elsewhere.test), the
# rest from the '*' line's 192.0.2.25 as relay.good.test
srct = os.path.join(drtest.TMPDIR, "source_table")
with open(srct, "w") as f:
    f.write("spfout.test %s out.good.test\n"
            "spf11.test %s out.good.test\n"
            "* %s %s\n" % (SRC_IP, WRONG_IP, GOOD_IP, RELAY))
d.write_config(source_table=srct)
p, _ = check("spfout.test", "good.test")
sl = parse(p.stdout)
drtest.log("with source_table:\n%s", p.stdout)
for chk in ("host", "ptr", "helo-spf"):
    drtest.check(any(x[1] == "out.good.test" and x[2] == chk and
                     x[0] == "ok" and (chk == "helo-spf" or SRC_IP in x[3])
                     for x in sl),
                 "source_table: out.good.test %s ok for %s" % (chk, SRC_IP))
expect(sl, "out.good.test", "ptr", "fail", r"%s is mail\.elsewhere\.test, "
       r"not its source_table line's HELO name out\.good\.test" % WRONG_IP,
       r"^27\.2\.0\.192\.in-addr\.arpa\. IN PTR out\.good\.test\.")
expect(sl, "spfout.test", "spf", "fail", r"for the outbound address %s "
       % SRC_IP, r'^spfout\.test\. IN TXT "v=spf1 ip4:%s ' % SRC_IP)
spf = [x for x in sl if x[2] == "spf"]
drtest.check(not [x for x in spf if x[1] == "spfout.test" and
                  GOOD_IP in x[3]] and
             [x[0] for x in spf if x[1] == "good.test"] == ["ok"] and
             not [x for x in spf if x[1] == "good.test" and SRC_IP in x[3]],
             "SPF is evaluated per domain for the addresses its mail leaves "
             "from: spfout.test for %s only, good.test for the * line's %s "
             "only:\n%s" % (SRC_IP, GOOD_IP, "\n".join(
                 "  ".join(str(f) for f in x) for x in spf)))
d.write_config(source_table=None)

# -- --dkim-max-age: a longer rotation period; warnings alone: exit 1 ----------
p, _ = check("--dkim-max-age", "365d", "--no-relay", "dkim1024.test")
dl = parse(p.stdout)
drtest.check(not [x for x in dl if x[2] == "dkim-age"] and
             not [x for x in dl if x[1] == RELAY],
             "--dkim-max-age 365d: no dkim-age line, --no-relay: no relay "
             "line:\n%s" % p.stdout)
p, _ = check("--no-relay", "unsigned.test")
drtest.check(p.returncode == 1 and "warn  unsigned.test  dnssec" in p.stdout
             and "\nfail" not in "\n" + p.stdout,
             "unsigned.test alone: warnings, exit 1 (%d):\n%s"
             % (p.returncode, p.stdout))

# -- DMARC: organisational domains from the public suffix list --------------
p, _ = check("--no-relay", "a.dmarcorg.test")
dl = parse(p.stdout)
drtest.check([x[0] for x in dl if x[2] == "dmarc"] == ["ok"] and
             not [x for x in dl if x[2] == "dmarc-rua" and x[0] != "ok"],
             "a.dmarcorg.test: reports to b.dmarcorg.test (the same "
             "organisational domain) need no authorisation:\n%s" % p.stdout)

# -- the good domain alone: exit 0 --------------------------------------------
p, _ = check("good.test")
drtest.check(p.returncode == 0, "good.test alone: exit 0, got %d:\n%s"
             % (p.returncode, p.stdout))

# -- a domain whose nameserver never answers ---------------------------------
p, took = check("--timeout", "3", "--no-relay", "dead.slow.test", timeout=90)
drtest.log("dead.slow.test: %.1fs, exit %d\n%s", took, p.returncode,
           p.stdout)
dl = parse(p.stdout)
drtest.check(p.returncode == 2 and took < drtest.scaled(20),
             "dead.slow.test completes within its timeouts (%.1fs, exit %d)"
             % (took, p.returncode))
expect(dl, "dead.slow.test", "mx", "fail", r"timeout|fail|SERVFAIL",
       r"IN MX")
expect(dl, "dead.slow.test", "spf", "fail", r"lookup failed",
       r"make every nameserver of dead\.slow\.test answer")
for chk, owner in (("dmarc", "_dmarc"), ("mta-sts", "_mta-sts"),
                   ("tlsrpt", "_smtp\\._tls")):
    expect(dl, "dead.slow.test", chk, "fail",
           r"the lookup of %s\.dead\.slow\.test failed" % owner,
           r"make every nameserver of dead\.slow\.test answer")
nofix = [x for x in dl if x[0] in ("warn", "fail") and not x[4]]
drtest.check(not nofix, "dead.slow.test: every warn and fail line has a "
             "fix: %s" % nofix)

w.stop()
drtest.done()
