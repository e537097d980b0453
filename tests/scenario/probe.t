#!/usr/bin/python3
"""`danerelay probe DOMAIN` (issue #3): the MX list with DNSSEC states, the
TLSA records, the decision and a real STARTTLS handshake per address."""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import dnsrig  # noqa: E402
import world  # noqa: E402

w = world.World()
w.dest("ee.test", 11)
w.dest("strip.test", 12, starttls=False)
w.dest("plain.test", 13, secure=False, tlsa=False)
w.rig.zone("bogus.test", records=[dnsrig.Record("@ MX 10 mx", bogus=True),
                                  "mx A %s" % drtest.ip(14)])
w.start()
d = w.daemon(start=False)

r = d.cli("probe", "ee.test")
out = r.stdout
drtest.log("%s", out)
drtest.check(r.returncode == 0, "ee.test: exit 0 (deliverable)")
drtest.check("MX ee.test: ok, secure" in out, "MX with its DNSSEC state")
drtest.check("A mx.ee.test: ok, secure" in out, "address state")
drtest.check("TLSA _%d._tcp.mx.ee.test: ok, secure" % w.port in out,
             "TLSA lookup and state")
drtest.check("  3 1 1 " in out, "the TLSA record")
drtest.check("decision: deliver" in out, "the decision")
drtest.check("tls=dane" in out, "TLS requirement dane")
drtest.check("Verified TLS connection" in out and "auth=dane-ee" in out,
             "a real handshake, verified by DANE-EE")
drtest.check("result: deliverable" in out, "summary")

r = d.cli("probe", "strip.test")
drtest.log("%s", r.stdout)
drtest.check(r.returncode == 1, "strip.test: exit 1")
drtest.check("FAILED at STARTTLS" in r.stdout, "STARTTLS missing reported")

r = d.cli("probe", "plain.test")
drtest.log("%s", r.stdout)
drtest.check(r.returncode == 0 and "MX plain.test: ok, insecure" in
             r.stdout and "tls=may" in r.stdout and "TLSA: not looked up" in
             r.stdout, "insecure zone: opportunistic, no TLSA query")

r = d.cli("probe", "bogus.test")
drtest.log("%s", r.stdout)
# the MX line's state and the decision's reason, not just the word
# "bogus" (the domain's own name has it)
drtest.check(r.returncode == 1, "bogus.test: exit 1")
drtest.check("MX bogus.test: tempfail, bogus\n" in r.stdout,
             "bogus MX: its DNSSEC state says bogus")
drtest.check(re.search(r"^decision: defer 4\.7\.5: MX RRset of bogus\.test "
                       r"is bogus \(DNSSEC validation failed", r.stdout, re.M)
             is not None, "bogus MX: defer 4.7.5, because bogus")
drtest.check("Verified TLS" not in r.stdout and "STARTTLS" not in r.stdout,
             "bogus MX: no connection tried")

r = d.cli("probe", "-n", "ee.test")
drtest.check(r.returncode == 0 and "Verified" not in r.stdout,
             "-n: no connection")
r = d.cli("probe")
drtest.check(r.returncode == 2, "usage error")
w.stop()
drtest.done()
