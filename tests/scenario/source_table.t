#!/usr/bin/python3
# timeout: 300
"""source_table.t - the source address and HELO name per sender domain
(issue #24 part 3), in the signed DNS world.

  - Mail from a sender domain in source_table reaches the MX from the
    line's address and says the line's HELO name; the delivery line
    names the source.  Mail from another sender (no `*` line) leaves as
    before: not from that address, with myhostname.
  - The connection cache keys on the identity: a message from the other
    sender right after one from the table's sender opens its own session
    (the cached one is not reused), also when only the address differs,
    while a second message from the
    table's sender reuses its session.
  - A line with only an IPv6 address never sends to an IPv4-only MX from
    another address: the MX is not tried, the message waits, with the
    reason in the log.
  - The TLSRPT failure recorded for a session from the table's address
    (TLSA not matching) carries that address as sending-mta-ip.
  - SIGHUP with a `*` line: other senders now leave from its address and
    say its name.  A SIGHUP with a non-local address keeps the old table.
  - A non-local address (192.0.2.1, TEST-NET-1: never this host's) is
    refused by `danerelayd -n` and at start, naming the file and line.
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import certs  # noqa: E402
import sink  # noqa: E402
import world  # noqa: E402

SRC_A = drtest.ip(50)           # senders-a.test's source address
SRC_ALL = drtest.ip(51)         # the `*` line's (after the reload)
SRC_C = drtest.ip(52)           # senders-c.test's: same HELO as a's
RPT = '_smtp._tls TXT "v=TLSRPTv1; rua=mailto:tlsrpt@reports.test"'

w = world.World()
gw = w.dest("gw.test", 11)
bad_ip = drtest.ip(12)
bad_cert = certs.self_signed(w.pki, ["mx.bad.test"])
decoy = certs.self_signed(w.pki, ["decoy.bad.test"])
w.rig.zone("bad.test", records=[
    "@ MX 10 mx", "mx A %s" % bad_ip, RPT,
    "_%d._tcp.mx TLSA %s" % (w.port, decoy.tlsa(3, 1, 1))])
bad = sink.spawn(os.path.join(w.tmp, "sink-bad"), bad_ip, w.port,
                 cert=bad_cert.chain, key=bad_cert.key)
w.sinks["bad"] = bad
w.dest("senders-a.test", 20)
w.dest("senders-b.test", 21)
w.start()

T = drtest.TMPDIR


def write(name, text):
    path = os.path.join(T, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)
    return path


TABLE = ("# sender-domain  address[,address]  helo-name\n"
         "senders-a.test   %s   out-a.dr-test.example\n"
         "v6only.test      ::1          out-v6.dr-test.example\n"
         "senders-c.test   %s   out-a.dr-test.example\n" % (SRC_A, SRC_C))
table = write("source_table", TABLE)
bad_table = write("source_table.bad", TABLE +
                  "senders-b.test   192.0.2.1    out-b.dr-test.example\n")

# -- refused at -n and at start, with file:line -------------------------------
chk = drtest.Daemon("check")
chk.write_config(source_table=bad_table)
p = subprocess.run([chk.binary, "-n", "-c", chk.conf], capture_output=True,
                   text=True, timeout=60 * drtest.SCALE)
want = "%s:5: address 192.0.2.1: not an address of this host" % bad_table
drtest.check(p.returncode == 1 and want in p.stderr,
             "-n refuses a non-local address with file:line (rc %d, %r)" %
             (p.returncode, p.stderr))
chk.write_config(source_table=table)
p = subprocess.run([chk.binary, "-n", "-c", chk.conf], capture_output=True,
                   text=True, timeout=60 * drtest.SCALE)
drtest.check(p.returncode == 0, "-n passes the good table (rc %d, %r)" %
             (p.returncode, p.stderr))

d = w.daemon(start=False, min_backoff="1h", tlsrpt="yes", workers="1",
             source_table=bad_table,
             tlsrpt_org_name='"danerelay TLSRPT test"',
             tlsrpt_contact="postmaster@relay.dr-test.example",
             tlsrpt_from="tlsrpt-noreply@relay.dr-test.example")
d.start(wait=False)
try:
    rc = d.proc.wait(timeout=30 * drtest.SCALE)
except subprocess.TimeoutExpired:
    rc = None
drtest.check(rc is not None and rc != 0 and want in d.log_text(),
             "start refused with file:line (exit %s)" % rc)
d.proc = None
d.stopped = True

# -- the good table ------------------------------------------------------------
d.write_config(source_table=table)
d.start()


def sent_line(rcpt, status="sent", **kw):
    return w.expect(d, rcpt.split("@")[1], status, rcpt=rcpt, **kw)


def at_sink(sk, rcpt):
    ms = [m for m in sk.messages() if rcpt in m["rcpts"]]
    drtest.check(len(ms) == 1, "%s: one copy at the sink (%d)" %
                 (rcpt, len(ms)))
    return ms[0] if ms else {}


# one after the other, well within a cached session's idle time
w.send(d, ["a1@gw.test"], sender="alice@senders-a.test")
line = sent_line("a1@gw.test", at="mx")
drtest.check(", source=%s," % SRC_A in line,
             "the delivery line names the source: %s" % line)
w.send(d, ["a2@gw.test"], sender="alice@Senders-A.test")
sent_line("a2@gw.test", at="mx")
w.send(d, ["c1@gw.test"], sender="carol@senders-c.test")
sent_line("c1@gw.test", at="mx")
w.send(d, ["b1@gw.test"], sender="bob@senders-b.test")
line = sent_line("b1@gw.test", at="mx")
drtest.check("source=" not in line, "no source= for a sender without a "
             "line: %s" % line)

m1, m2, m3, m4 = (at_sink(gw, r) for r in ("a1@gw.test", "a2@gw.test",
                                           "b1@gw.test", "c1@gw.test"))
drtest.check(m1.get("peer") == SRC_A and m1.get("helo") ==
             "out-a.dr-test.example",
             "senders-a.test: from %s as out-a.dr-test.example (%s, %s)" %
             (SRC_A, m1.get("peer"), m1.get("helo")))
drtest.check(m2.get("peer") == SRC_A and m2.get("conn") == m1.get("conn"),
             "a second senders-a.test message reuses that session "
             "(conn %s, %s)" % (m1.get("conn"), m2.get("conn")))
drtest.check(m3.get("peer") != SRC_A and m3.get("helo") ==
             "relay.dr-test.example" and m3.get("conn") != m1.get("conn"),
             "senders-b.test: its own session, not from %s, HELO "
             "myhostname (%s, %s, conn %s)" % (SRC_A, m3.get("peer"),
                                                m3.get("helo"),
                                                m3.get("conn")))

drtest.check(m4.get("peer") == SRC_C and m4.get("conn") not in
             (m1.get("conn"), m3.get("conn")),
             "senders-c.test (the same HELO name as a's, another address): "
             "its own session from %s (%s, conn %s)" % (SRC_C, m4.get("peer"),
                                                        m4.get("conn")))

# -- IPv6 only, IPv4-only MX: not tried, waits ---------------------------------
w.send(d, ["v1@gw.test"], sender="v@v6only.test")
line = sent_line("v1@gw.test", "deferred",
                 why=r"source_table line 3 \(v6only\.test\) has no IPv4 "
                 r"source address")
drtest.check("not tried: source_table line 3 (v6only.test) has no IPv4 "
             "address" in d.log_text(), "the skipped MX address is logged")

# -- TLSRPT: sending-mta-ip is the table's address -----------------------------
w.send(d, ["a3@bad.test"], sender="alice@senders-a.test")
drtest.wait_for(lambda: re.search(r"to=<a3@bad\.test>.*status=deferred",
                                  d.log_text()), 60, "a3@bad.test deferred")
r = d.cli_until(("tlsrpt", "show"), r"^bad\.test policy=")
m = re.search(r"result-type=validation-failure sending-mta-ip=(\S+) "
              r"receiving-mx-hostname=mx\.bad\.test", r.stdout)
drtest.check({t["peer"] for t in bad.transcripts()} == {SRC_A},
             "the bad.test MX saw %s" % SRC_A)
drtest.check(m is not None and m.group(1) == SRC_A,
             "sending-mta-ip is the source address %s: %s" %
             (SRC_A, m.group(1) if m else r.stdout))

# -- SIGHUP: a `*` line; a bad table is not taken -------------------------------
write("source_table", TABLE + "*  %s  gw.dr-test.example\n" % SRC_ALL)
d.reload(wait=True)
w.send(d, ["b2@gw.test"], sender="bob@senders-b.test")
sent_line("b2@gw.test", at="mx")
m = at_sink(gw, "b2@gw.test")
drtest.check(m.get("peer") == SRC_ALL and m.get("helo") ==
             "gw.dr-test.example",
             "after the reload, other senders leave from the * line's "
             "address and name (%s, %s)" % (m.get("peer"), m.get("helo")))
d.write_config(source_table=bad_table)
d.reload()
drtest.wait_for(lambda: "reload failed: %s" % want in d.log_text(), 10,
                "the refused reload")
w.send(d, ["a4@gw.test"], sender="alice@senders-a.test")
sent_line("a4@gw.test", at="mx")
m = at_sink(gw, "a4@gw.test")
drtest.check(m.get("peer") == SRC_A,
             "the refused reload kept the table (%s)" % m.get("peer"))

d.stop()
w.stop()
drtest.done()
