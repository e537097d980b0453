#!/usr/bin/python3
# resolver.t - src/resolver.c against real signed zones (dnsrig: NSD on
# DR_TEST_IP, zones signed at test time): secure MX/A/AAAA/TLSA/TXT,
# insecure delegations, bogus data (tampered, stripped, wrong DS, expired
# signatures) reported BOGUS and never INSECURE, NXDOMAIN/NODATA, SERVFAIL
# on TLSA, CNAMEs, null MX, the guard timeout, cancellation, the sync API,
# and a wrong trust anchor turning everything bogus.
# timeout: 240
import os
import re
import shutil
import subprocess
import sys
import time

SRC = os.environ.get("DR_SRCDIR", os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))))
BUILD = os.environ.get("DR_BUILDDIR", SRC)
TMP = os.environ.get("DR_TMPDIR") or "/tmp/resolver-t.%d" % os.getpid()
IP = os.environ.get("DR_TEST_IP", "127.0.50.1")
# the run's timeout factor (tests/run --timeout-scale, 2 under ASan): the
# helper's waits are scaled by it once
SCALE = float(os.environ.get("DR_TIMEOUT_SCALE") or "1")
sys.path.insert(0, os.path.join(SRC, "tests", "scenario", "lib"))

from dnsrig import DnsRig, Record, tlsa_from_cert, tlsa_record  # noqa

for tool in ("nsd", "ldns-signzone", "ldns-keygen", "drill", "openssl"):
    if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
        print("SKIP: %s not installed (scripts/install-deps --test)" % tool)
        sys.exit(77)

TOOL = os.path.join(BUILD, "tests", "unit", "resolve_tool")
if not os.access(TOOL, os.X_OK):
    print("FAIL: %s not built (make check-programs)" % TOOL)
    sys.exit(1)

os.makedirs(TMP, exist_ok=True)
failures = 0
checks = 0


def check(cond, what):
    global failures, checks
    checks += 1
    if cond:
        print("ok   " + what)
    else:
        failures += 1
        print("FAIL " + what)


def run_tool(args, timeout=60):
    p = subprocess.run([TOOL] + args, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout * SCALE)
    out = p.stdout.decode(errors="replace")
    err = p.stderr.decode(errors="replace")
    if "Sanitizer" in err or "runtime error:" in err:
        check(False, "sanitizer report from %r:\n%s" % (args[-2:], err))
    return p.returncode, out, err


def parse(out):
    """answers in order: dict with fields, 'rr' list, 'reason'."""
    answers = []
    for line in out.splitlines():
        if line.startswith("answer "):
            a = dict(kv.split("=", 1) for kv in line.split()[1:])
            a["rr"] = []
            a["reason"] = ""
            answers.append(a)
        elif line.startswith("rr ") and answers:
            answers[-1]["rr"].append(line[3:])
        elif line.startswith("reason ") and answers:
            answers[-1]["reason"] = line[7:]
        elif line.startswith("error "):
            answers.append({"error": line[6:], "rr": [], "reason": ""})
    return answers


# ---- the world ---------------------------------------------------------
cert = os.path.join(TMP, "ee.pem")
subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                os.path.join(TMP, "ee.key"), "-out", cert, "-days", "2",
                "-subj", "/CN=mx.example.test"], check=True,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
               timeout=60)
tlsa311 = tlsa_from_cert(cert, 3, 1, 1)
tlsa301 = tlsa_from_cert(cert, 3, 0, 1)
tlsa312 = tlsa_from_cert(cert, 3, 1, 2)
net = IP.rsplit(".", 1)[0]

rig = DnsRig(TMP, IP, 5300)
rig.zone("example.test", records=[
    "@ MX 10 MX.Example.TEST.",
    "@ MX 20 mx2",
    "@ TXT \"v=spf1 -all\"",
    "_mta-sts TXT \"v=STSv1; \" \"id=2024\"",
    "multi TXT \"one\"",
    "multi TXT \"two\" \"parts\"",
    "mx A %s.5" % net,
    "mx AAAA 2001:db8::5",
    "mx2 A %s.6" % net,
    "_25._tcp.mx TLSA " + tlsa311,
    "_25._tcp.mx TLSA " + tlsa301,
    tlsa_record("mx2", cert, 3, 1, 2),
    "www CNAME mx",
    "out CNAME mx.plain.test.",
    "nomx A %s.7" % net,
    Record("bad A %s.8" % net, bogus=True),
    Record("_25._tcp.bad TLSA " + tlsa311, bogus=True),
    Record("stripped A %s.9" % net, unsigned=True),
    "sfhost A %s.10" % net,
], servfail=["_25._tcp.sfhost"], timeout=["_25._tcp.slow"])
rig.zone("plain.test", secure=False, records=[
    "@ MX 10 mx", "mx A %s.11" % net, "_25._tcp.mx TLSA " + tlsa311])
rig.zone("nullmx.test", records=["@ MX 0 ."])
rig.zone("badmx.test", records=[Record("@ MX 10 mx.example.test.",
                                       bogus=True)])
rig.zone("wrongds.test", ds="wrong", records=["@ MX 10 mx.example.test."])
rig.zone("expired.test", expired=True, records=["@ MX 10 mx.example.test."])
rig.zone("nsec3.test", nsec3=True, records=["@ MX 10 mx.example.test."])
try:
    rig.start()
except Exception as e:
    print("FAIL: rig did not start: %s" % e)
    sys.exit(1)
conf = rig.unbound_conf()
ta = rig.trust_anchor_file
base = ["-a", ta, "-c", conf]

try:
    # ---- one batch of concurrent queries -------------------------------
    qs = [
        ("example.test", "MX"),              # 0
        ("mx.example.test", "A"),            # 1
        ("mx.example.test", "AAAA"),         # 2
        ("_25._tcp.mx.example.test", "TLSA"),  # 3
        ("_mta-sts.example.test", "TXT"),    # 4
        ("multi.example.test", "TXT"),       # 5
        ("plain.test", "MX"),                # 6
        ("mx.plain.test", "A"),              # 7
        ("bad.example.test", "A"),           # 8
        ("_25._tcp.bad.example.test", "TLSA"),  # 9
        ("badmx.test", "MX"),                # 10
        ("wrongds.test", "MX"),              # 11
        ("expired.test", "MX"),              # 12
        ("stripped.example.test", "A"),      # 13
        ("nx.example.test", "A"),            # 14
        ("nomx.example.test", "MX"),         # 15
        ("nx.plain.test", "MX"),             # 16
        ("_25._tcp.sfhost.example.test", "TLSA"),  # 17
        ("www.example.test", "A"),           # 18
        ("out.example.test", "A"),           # 19
        ("nullmx.test", "MX"),               # 20
        ("nsec3.test", "MX"),                # 21
        ("nx.nsec3.test", "A"),              # 22
        ("_25._tcp.mx2.example.test", "TLSA"),  # 23
        ("EXAMPLE.test.", "MX"),             # 24
        ("mx.example.test", "TXT"),          # 25
    ]
    args = base + ["-T", "20"]
    for n, t in qs:
        args += [n, t]
    t0 = time.monotonic()
    rc, out, err = run_tool(args, timeout=90)
    print(out)
    print("batch of %d queries: %.1fs" % (len(qs), time.monotonic() - t0))
    a = parse(out)
    check(rc == 0 and len(a) == len(qs), "all %d answers in (rc %d, %d)" %
          (len(qs), rc, len(a)))
    if len(a) != len(qs):
        print(err[-3000:])
        raise SystemExit(1)

    def is_(i, status, sec):
        check(a[i].get("status") == status and a[i].get("security") == sec,
              "%s %s: %s %s (got %s %s %s)" % (qs[i][0], qs[i][1], status,
                                                sec, a[i].get("status"),
                                                a[i].get("security"),
                                                a[i]["reason"]))

    # secure data
    is_(0, "ok", "secure")
    check(a[0]["rr"] == ["10 mx.example.test", "20 mx2.example.test"] or
          a[0]["rr"] == ["20 mx2.example.test", "10 mx.example.test"],
          "MX hosts lower-cased, no trailing dot: %r" % a[0]["rr"])
    check(a[0]["null_mx"] == "0", "not a null MX")
    is_(1, "ok", "secure")
    check(a[1]["rr"] == ["%s.5 family=inet" % net], "A record")
    is_(2, "ok", "secure")
    check(a[2]["rr"] == ["2001:db8::5 family=inet6"], "AAAA record")
    is_(3, "ok", "secure")
    got = sorted(r.lower() for r in a[3]["rr"])
    check(got == sorted([tlsa311.lower(), tlsa301.lower()]),
          "TLSA records match tlsa_from_cert: %r" % got)
    is_(4, "ok", "secure")
    check(a[4]["rr"] == ["16 v=STSv1; id=2024"],
          "TXT strings concatenated: %r" % a[4]["rr"])
    is_(5, "ok", "secure")
    check(sorted(a[5]["rr"]) == ["3 one", "8 twoparts"],
          "one TXT string per RR: %r" % a[5]["rr"])
    is_(23, "ok", "secure")
    check([r.lower() for r in a[23]["rr"]] == [tlsa312.lower()],
          "TLSA 3 1 2")
    is_(24, "ok", "secure")
    check(a[24]["qname"] == "EXAMPLE.test." and a[24]["cname"] == "0" and
          a[24]["canonname"] == "example.test",
          "qname as asked, canonname normalised, no CNAME")

    # insecure delegation
    is_(6, "ok", "insecure")
    is_(7, "ok", "insecure")
    check(a[7]["rr"] == ["%s.11 family=inet" % net], "insecure A record")

    # bogus: never insecure, never data
    for i in (8, 9, 10, 11, 12, 13):
        is_(i, "tempfail", "bogus")
        check(a[i]["rr"] == [] and "validation fail" in a[i]["reason"],
              "%s: no records, why_bogus given: %s" % (qs[i][0],
                                                       a[i]["reason"]))
    check("signature" in a[8]["reason"].lower(),
          "tampered record: signature failure named")
    check("DS" in a[11]["reason"], "wrong DS named: " + a[11]["reason"])
    check("expired" in a[12]["reason"], "expiry named: " + a[12]["reason"])

    # denial
    is_(14, "nxdomain", "secure")
    check(a[14]["rcode"] == "3", "NXDOMAIN rcode")
    is_(15, "nodata", "secure")
    is_(16, "nxdomain", "insecure")
    is_(21, "ok", "secure")
    is_(22, "nxdomain", "secure")
    is_(25, "nodata", "secure")

    # SERVFAIL on the TLSA of a secure host: tempfail, not "no TLSA"
    is_(17, "tempfail", "unknown")
    check(a[17]["reason"] == "SERVFAIL", "reason SERVFAIL: " + a[17]["reason"])

    # CNAMEs
    is_(18, "ok", "secure")
    check(a[18]["cname"] == "1" and a[18]["canonname"] == "mx.example.test",
          "secure CNAME followed and reported")
    check(a[18]["rr"] == ["%s.5 family=inet" % net], "CNAME target's A")
    is_(19, "ok", "insecure")
    check(a[19]["cname"] == "1" and a[19]["canonname"] == "mx.plain.test",
          "CNAME into an insecure zone: insecure")

    # null MX
    is_(20, "ok", "secure")
    check(a[20]["null_mx"] == "1" and a[20]["rr"] == ["0 ."],
          "RFC 7505 null MX flagged")

    # ---- the guard timer ------------------------------------------------
    t0 = time.monotonic()
    rc, out, err = run_tool(base + ["-T", "2", "_25._tcp.slow.example.test",
                                    "TLSA", "mx.example.test", "A"])
    dt = time.monotonic() - t0
    a = parse(out)
    check(len(a) == 2 and a[0].get("status") == "tempfail" and
          a[0]["reason"] == "timeout after 2 s" and dt < 15 * SCALE,
          "unanswered lookup: TEMPFAIL timeout after 2 s (%.1fs) %r" %
          (dt, a[:1]))
    check(len(a) == 2 and a[1].get("status") == "ok",
          "other query unaffected by the slow one")

    # ---- cancellation ---------------------------------------------------
    rc, out, err = run_tool(base + ["-x", "mx.example.test", "A"])
    print(out)
    check(rc == 0 and "cancel FAIL" not in out and out.count("cancel ok")
          >= 10, "cancellation checks")

    # ---- synchronous API --------------------------------------------------
    rc, out, err = run_tool(base + ["-s", "example.test", "MX",
                                    "bad.example.test", "A"])
    a = parse(out)
    check(rc == 0 and len(a) == 2 and a[0].get("status") == "ok" and
          a[0].get("security") == "secure" and
          a[1].get("security") == "bogus", "resolver_query_sync")

    # ---- the answer cache ---------------------------------------------------
    # asked twice in a row: a secure answer, an insecure one, NXDOMAIN and
    # NODATA come from the cache the second time, with the same records;
    # bogus and SERVFAIL answers never do.
    qs = [("example.test", "MX"), ("mx.plain.test", "A"),
          ("nothere.example.test", "A"), ("mx.example.test", "TXT"),
          ("bad.example.test", "A"), ("_25._tcp.sfhost.example.test",
                                      "TLSA")]
    args = []
    for q in qs + qs:
        args += list(q)
    rc, out, err = run_tool(base + ["-s"] + args)
    a = parse(out)
    check(rc == 0 and len(a) == 2 * len(qs), "cache: %d answers" % len(a))
    if len(a) == 2 * len(qs):
        for i, q in enumerate(qs):
            first, again = a[i], a[len(qs) + i]
            want = "1" if i < 4 else "0"
            check(first.get("cached") == "0" and
                  again.get("cached") == want and
                  again.get("status") == first.get("status") and
                  again.get("security") == first.get("security") and
                  again["rr"] == first["rr"],
                  "cache: %s/%s asked again: cached=%s (want %s), %s %s"
                  % (q[0], q[1], again.get("cached"), want,
                     again.get("status"), again.get("security")))
        check(int(a[len(qs)]["ttl"]) <= int(a[0]["ttl"]) and
              a[len(qs)]["rr"] == a[0]["rr"],
              "cache: the TTL counts down (%s then %s)"
              % (a[0]["ttl"], a[len(qs)]["ttl"]))

    # ---- bad input --------------------------------------------------------
    rc, out, err = run_tool(base + ["a..b.example.test", "A",
                                    ("x" * 64) + ".example.test", "A"])
    check(out.count("error ") == 2, "bad names refused: %r" % out)

    # ---- the trust anchor is what makes data secure -------------------------
    wrong = os.path.join(TMP, "wrong-anchor.ds")
    keyout = subprocess.run(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k",
                             "test."], cwd=TMP, stdout=subprocess.PIPE,
                            check=True, timeout=60).stdout.decode().strip()
    with open(os.path.join(TMP, keyout + ".ds")) as f:
        ds = f.read().split(";")[0].strip()
    with open(wrong, "w") as f:
        f.write(ds + "\n")
    wconf = os.path.join(TMP, "wrong.conf")
    with open(conf) as f:
        text = f.read().replace(ta, wrong)
    with open(wconf, "w") as f:
        f.write(text)
    rc, out, err = run_tool(["-a", wrong, "-c", wconf, "-T", "20",
                             "mx.example.test", "A", "plain.test", "MX"])
    a = parse(out)
    check(len(a) == 2 and a[0].get("security") == "bogus" and
          a[1].get("security") == "bogus",
          "wrong trust anchor: everything bogus, nothing insecure")

    # a missing trust anchor is refused at start
    rc, out, err = run_tool(["-a", os.path.join(TMP, "nope.key"), "-c", conf,
                             "mx.example.test", "A"])
    check(rc != 0 and "resolver_new failed" in out and "nope.key" in out,
          "missing trust_anchor_file refused: %r" % out.strip())
finally:
    rig.stop()

print("%d passed, %d failed" % (checks - failures, failures))
sys.exit(1 if failures else 0)
