#!/usr/bin/python3
# timeout: 240
"""dnssec_anchor.t - DNSSEC validation that cannot silently be off (issue
#23, part 1), in the signed DNS world of dnsrig (top zone "test.", its own
trust anchor).

Start refused (exit non-zero, the reason in the log):
  1. trust_anchor_file empty (and no other anchor): the message names
     the file and says it holds no DS or DNSKEY record (`danerelayd -n`
     too);
  2. no trust anchor anywhere (trust_anchor_file unset, none in
     dns_config): the message says "trust anchor";
  3. anchors that do not cover dnssec_check_name (plain.test., an
     unsigned zone served locally): the self-test answer is insecure, the
     message names the name.
Good configuration (dnssec_check_name = test.):
  4. it starts; `danerelay status` prints "DNSSEC: secure (DNSKEY test.
     checked ...)"; /metrics has danerelay_dnssec_secure 1; the check
     repeats every dnssec_check_interval (the status time moves on).
  5. SIGHUP after the anchor file was emptied: "reload failed" naming the
     file; the daemon keeps running on the old configuration (still
     secure, still accepts mail, a second setting changed in the same file
     is not applied).  A changed trust_anchor_file is announced as
     taking effect after a restart.
Run time (dnssec_check_interval = 1s):
  6. SIGHUP to dnssec_check_name = plain.test. (insecure): an error is
     logged once; a message to plain.test (default_policy dane, no DNSSEC:
     would go with opportunistic TLS) is deferred with "DNSSEC validation
     is not in effect" and does not arrive; status says insecure, the
     gauge is 0.  The same domain with its own policy_file line ("may")
     is delivered: explicit lines are unaffected.
  7. SIGHUP to a bogus check name (wrongds.test.): "failing", warned
     exactly once over several checks, the gauge 0, and opportunistic
     delivery goes on (the message of 6 arrives after a flush).
  8. SIGHUP back to test.: "secure again".
"""
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import dnsrig  # noqa: E402
import sink  # noqa: E402

for tool in ("ldns-signzone", "nsd"):
    if not drtest.which(tool):
        drtest.skip("%s not installed (scripts/install-deps --test)" % tool)

check = drtest.check
T = drtest.TMPDIR
os.chmod(T, 0o755)
port = drtest.free_port(drtest.ip(10))
rig = dnsrig.DnsRig(os.path.join(T, "dns"), drtest.ip(1),
                    drtest.free_port(drtest.ip(1)))
ip = drtest.ip(11)
plain = sink.spawn(os.path.join(T, "sink"), ip, port, starttls=False)
rig.zone("plain.test", secure=False, records=["@ MX 10 mx", "mx A " + ip])
rig.zone("wrongds.test", ds="wrong", records=["@ A " + ip])
rig.zone("explicit.test", secure=False,
         records=["@ MX 10 mx", "mx A " + ip])
rig.start()


def write(path, text):
    with open(path + ".new", "w") as f:
        f.write(text)
    os.chmod(path + ".new", 0o644)
    os.rename(path + ".new", path)


# the rig's libunbound config without its trust-anchor-file line: the
# anchor then comes only from danerelay's trust_anchor_file (or nowhere)
rig_conf = rig.unbound_conf()
with open(rig_conf) as f:
    lines = f.read().splitlines()
no_ta_conf = os.path.join(T, "unbound-no-anchor.conf")
write(no_ta_conf, "\n".join(l for l in lines
                            if "trust-anchor" not in l) + "\n")
check(any("trust-anchor-file" in l for l in lines),
      "the rig's unbound.conf has a trust-anchor-file line to drop")

empty_ta = os.path.join(T, "empty.key")
write(empty_ta, "")
# a copy of the rig's anchor, to empty later (5)
ta = os.path.join(T, "anchor.ds")
shutil.copy(rig.trust_anchor_file, ta)
os.chmod(ta, 0o644)
policy_file = os.path.join(T, "policy")
write(policy_file, "explicit.test may\n")


def refused(name, what, want, **opts):
    """Start a daemon that must refuse: exit non-zero, every string of
    want in its log."""
    d = drtest.Daemon(name=name, smtp_port=port, **opts)
    d.start(wait=False)
    try:
        rc = d.proc.wait(timeout=drtest.scaled(30))
    except Exception:
        rc = None
    text = d.log_text()
    if rc is None:
        d.stop(expect_ok=False)
    check(rc is not None and rc != 0,
          "%s: start refused (exit %s)" % (what, rc))
    missing = [w for w in want if w not in text]
    check(not missing, "%s: message has %r: %s" % (what, missing,
                                                   text.strip()[-600:]))
    check("started" not in text, "%s: never 'started'" % what)
    d.check_sanitizers()
    d.stopped = True


# -- 1. an empty trust_anchor_file -------------------------------------------
refused("empty", "empty trust_anchor_file",
        [empty_ta, "no DS or DNSKEY record"],
        dns_config=no_ta_conf, trust_anchor_file=empty_ta,
        dnssec_check_name=rig.check_name)
# `danerelayd -n` says so too
r = subprocess.run([os.path.join(drtest.BUILDDIR, "danerelayd"), "-n", "-c",
                    os.path.join(T, "empty", "danerelay.conf")],
                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                   stderr=subprocess.STDOUT, universal_newlines=True,
                   timeout=drtest.scaled(30))
check(r.returncode == 1 and empty_ta in r.stdout and
      "no DS or DNSKEY record" in r.stdout,
      "danerelayd -n refuses the empty anchor: %d %r" %
      (r.returncode, r.stdout))

# -- 2. no trust anchor at all -----------------------------------------------
refused("none", "no trust anchor anywhere", ["trust anchor"],
        dns_config=no_ta_conf, trust_anchor_file="",
        dnssec_check_name=rig.check_name)

# -- 3. anchors that do not cover dnssec_check_name --------------------------
refused("uncovered", "check name in an unsigned zone",
        ["plain.test.", "insecure"],
        dns_config=rig_conf, trust_anchor_file=ta,
        dnssec_check_name="plain.test.")

# -- 4. the good configuration -----------------------------------------------
mport = drtest.free_port(drtest.ip(1))
URL = "http://%s:%d/metrics" % (drtest.ip(1), mport)
d = drtest.Daemon(name="good", smtp_port=port, dns_config=no_ta_conf,
                  trust_anchor_file=ta, dnssec_check_name=rig.check_name,
                  dnssec_check_interval="1s", policy_file=policy_file,
                  metrics_listen="%s:%d" % (drtest.ip(1), mport),
                  min_backoff="1h", smtp_connect_timeout="5s",
                  smtp_timeout="10s")
d.start()


def gauge():
    with urllib.request.urlopen(URL, timeout=drtest.scaled(10)) as r:
        text = r.read().decode()
    m = re.search(r"^danerelay_dnssec_secure (\d+)$", text, re.M)
    return m.group(1) if m else None


def status():
    r = d.cli("status")
    return r.returncode, r.stdout + r.stderr


rc, out = status()
check(rc == 0 and re.search(r"^DNSSEC: secure \(DNSKEY test\. checked "
                            r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)$", out,
                            re.M) is not None,
      "status shows DNSSEC secure: %r" % out)
check(gauge() == "1", "metrics: danerelay_dnssec_secure 1")
check("DNSKEY test. is secure" in d.log_text(), "start-up: secure logged")


def checked_at():
    r = d.control("status")
    m = re.search(r"dnssec_checked=(\d+)", r[-1] if r else "")
    return int(m.group(1)) if m else 0


# the check repeats every dnssec_check_interval (1s here), not just once
for i in range(3):
    t0 = checked_at()
    drtest.wait_for(lambda: checked_at() > t0, drtest.scaled(10),
                    "self-test %d after start (dnssec_check_interval = 1s)"
                    % (i + 1))


def reloads():
    return len(re.findall(r": reloaded /", d.log_text()))


def reload_and_wait(what):
    n = reloads()
    d.reload()
    drtest.wait_for(lambda: reloads() > n, drtest.scaled(20), what)


# -- 5. SIGHUP with the anchor file emptied: refused, old config kept --------
write(ta + ".tmp", "")
os.rename(ta + ".tmp", ta)
d.write_config(max_message_size="1M")   # a second change, not applied
d.reload()
drtest.wait_for(lambda: "reload failed" in d.log_text(), drtest.scaled(20),
                "the refused reload")
m = re.search(r"reload failed: ([^\n]*)", d.log_text())
check(m is not None and ta in m.group(1) and
      "no DS or DNSKEY record" in m.group(1),
      "reload refused naming the emptied file: %r" %
      (m.group(0) if m else None))
check(d.alive(), "still running after the refused reload")
check(reloads() == 0, "no 'reloaded' line")
time.sleep(drtest.scaled(2.5))   # checks keep running on the old resolver
rc, out = status()
check("DNSSEC: secure" in out, "still secure after the refused reload: %r"
      % out)
c = drtest.SMTP(d.host, d.port)
code, text = c.cmd("EHLO client.test")
check(code == 250, "still accepts sessions")
check("SIZE %d" % (1 << 20) not in text,
      "the other change of the refused file is not in force: %r" % text)
c.close()
d.write_config(max_message_size=None)
shutil.copy(rig.trust_anchor_file, ta)    # repaired
reload_and_wait("the reload with the repaired anchor")
# anchors are read at start only: a changed one is announced as such
ta2 = os.path.join(T, "anchor2.ds")
shutil.copy(rig.trust_anchor_file, ta2)
os.chmod(ta2, 0o644)
d.write_config(trust_anchor_file=ta2)
reload_and_wait("the reload with another anchor file")
check('reload: trust_anchor_file changed to "%s": takes effect after a '
      'restart' % ta2 in d.log_text(),
      "a changed trust_anchor_file: restart needed, said")

# -- 6. run time: check name insecure -> opportunistic deliveries wait ------
final = re.compile(r"to=<(\w+)@(plain|explicit)\.test>, .*status=(sent|"
                   r"deferred|bounced)[^\n]*")


def outcome(local):
    drtest.wait_for(lambda: any(mm.group(1) == local for mm in
                                final.finditer(d.log_text())),
                    drtest.scaled(60), "an outcome for %s" % local)
    for mm in final.finditer(d.log_text()):
        if mm.group(1) == local:
            return mm.group(3), mm.group(0)


def send(local, domain="plain.test"):
    c = drtest.SMTP(d.host, d.port)
    c.sendmail("sender@senders.test", ["%s@%s" % (local, domain)],
               ("From: <sender@senders.test>\r\nTo: <%s@%s>\r\n"
                "Subject: dnssec_anchor\r\n\r\nHello.\r\n" %
                (local, domain)).encode())
    c.close()


d.write_config(dnssec_check_name="plain.test.")
reload_and_wait("the reload to plain.test.")
drtest.wait_for(lambda: "DNSKEY plain.test. is insecure" in d.log_text(),
                drtest.scaled(20), "the insecure self-test")
send("u1")
st, line = outcome("u1")
check(st == "deferred" and "DNSSEC validation is not in effect" in line,
      "insecure: opportunistic delivery deferred with the reason: %s" % line)
send("e1", "explicit.test")
st, line = outcome("e1")
check(st == "sent", "own policy_file line (may): delivered: %s" % line)
arrived = [m for m in plain.messages() if b"Subject: dnssec_anchor" in
           m["data"]]
check(len(arrived) == 1 and b"e1@explicit.test" in arrived[0]["data"],
      "only the explicit.test message arrived: %d" % len(arrived))
rc, out = status()
check("DNSSEC: insecure (DNSKEY plain.test." in out,
      "status says insecure: %r" % out)
check(gauge() == "0", "metrics: danerelay_dnssec_secure 0 when insecure")
time.sleep(drtest.scaled(2.5))
check(d.log_text().count("DNSKEY plain.test. is insecure") == 1,
      "insecure logged once, not at every check")

# -- 7. failing (bogus): warn once, keep delivering opportunistically -------
d.write_config(dnssec_check_name="wrongds.test.")
reload_and_wait("the reload to wrongds.test.")
drtest.wait_for(lambda: "DNSKEY wrongds.test. failed" in d.log_text(),
                drtest.scaled(20), "the failing self-test")
time.sleep(drtest.scaled(3.5))  # several more checks at 1 s
check(d.log_text().count("DNSKEY wrongds.test. failed") == 1,
      "failing warned once over several checks (%d)" %
      d.log_text().count("DNSKEY wrongds.test. failed"))
check(d.alive(), "failing: keeps running")
rc, out = status()
check("DNSSEC: failing (DNSKEY wrongds.test." in out,
      "status says failing: %r" % out)
check(gauge() == "0", "metrics: danerelay_dnssec_secure 0 when failing")
r = d.cli("flush")
check(r.returncode == 0, "flush: %s" % (r.stdout + r.stderr))
drtest.wait_for(lambda: re.search(r"to=<u1@plain\.test>, .*status=sent",
                                  d.log_text()), drtest.scaled(60),
                "u1 sent once the check no longer says insecure")
check(len(plain.messages()) == 2, "both messages arrived: %d" %
      len(plain.messages()))

# -- 8. secure again ----------------------------------------------------------
d.write_config(dnssec_check_name=rig.check_name)
reload_and_wait("the reload back to test.")
drtest.wait_for(lambda: "DNSKEY test. is secure: validation in effect "
                "again" in d.log_text(), drtest.scaled(20),
                "secure again")
check(gauge() == "1", "metrics: 1 again")

d.stop()
plain.stop()
rig.stop()
drtest.done()
