#!/usr/bin/python3
# timeout: 300
"""non_smtpd_milters (issue #25): the mail the relay makes itself - DSNs
and TLSRPT report mails - passes its own milters before it is spooled,
in the signed DNS world, with a small milter on Sendmail's libmilter
(lib/nsmilter.py; what it does is read from a file at each message).

  - a DSN (a 550 at the destination) arrives at the sender's MX with the
    non-SMTP milter's header: the fake client "localhost" [127.0.0.1],
    HELO "localhost", MAIL FROM:<>, the j macro (myhostname) and the i
    macro (the DSN's own queue id, as logged); the relayed message
    carries the smtpd milter's header (`milters`) and not the non-SMTP
    one, the DSN the non-SMTP one and not the smtpd one;
  - a delay warning (delay_warning_time) passes the milter as well, is
    recorded in the envelope once sent, and is sent once;
  - a TLSRPT report mail (`danerelay tlsrpt send`) that the milter
    defers is not spooled and goes at the next run; one it rejects is
    not sent and not tried again;
  - a TLSRPT report mail (`danerelay tlsrpt send`) passes the milter and
    is DKIM-signed after it: the signature verifies (strict TLSRPT mode)
    with the milter's header and its changed Subject: in the message;
  - the milter unreachable (milter_default_action = tempfail): no DSN,
    the original stays queued and is tried again after a backoff, not in
    a loop; after a reload that points at the milter the DSN arrives
    exactly once and the original is removed;
  - a milter that rejects the DSN: no DSN, "milter-reject" and "NOT
    sent" logged with the reply, the original removed, never retried;
  - Debian's OpenDKIM (if installed) as the second non-SMTP milter signs
    the DSN (From: MAILER-DAEMON@myhostname, the fake client 127.0.0.1
    in its InternalHosts), over the Subject: the first milter changed;
    python3-dkim verifies it;
  - a milter's quarantine: the DSN is spooled on hold, `danerelay
    queue` shows the milter's reason, it is not sent;
  - kill -9 of the daemon while the milter holds the DSN (it sleeps at
    the end of the message): after the restart the DSN arrives exactly
    once and the original is removed.
"""
import datetime
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import dkimcheck  # noqa: E402
import fakemilter  # noqa: E402
import world  # noqa: E402

dkimcheck.require()
try:
    import Milter  # noqa: F401
except ImportError as e:
    drtest.skip("python3-milter is not installed: %s" % e)
# the report is of "today" (UTC): not across a midnight
_now = datetime.datetime.now(datetime.timezone.utc)
_left = 86400 - (_now.hour * 3600 + _now.minute * 60 + _now.second)
if _left < drtest.scaled(120):
    time.sleep(_left + 2)

HERE = os.path.dirname(os.path.abspath(__file__))
w = world.World()
w.dest("perm.test", 11, rules=["RCPT|nobody|0|550 5.1.1 no such user"])
w.dest("busy.test", 16, rules=["RCPT||0|451 4.2.0 mailbox busy"])
w.dest("ok.test", 12, tlsrpt="mailto:tlsrpt@reports.test")
w.dest("ok2.test", 15, tlsrpt="mailto:nsreject@reports.test")
senders = w.dest("senders.test", 13)
reports = w.dest("reports.test", 14)
# myhostname in the test zone: OpenDKIM's key for the DSNs' From: is there
d = w.daemon(start=False, min_backoff="2s", max_backoff="4s", tlsrpt="yes",
             tlsrpt_from="reports@rpt-signer.test",
             myhostname="relay.nsm-host.test", delay_warning_time="3s",
             queue_lifetime="1h")
kconf, table = dkimcheck.keygen_config(d)
r = dkimcheck.cli(kconf, d, "keygen", "rpt-signer.test", "tlsrpt")
drtest.check(r.returncode == 0, "keygen: %s" % r.stderr.strip())
with open(table) as f:
    line = f.read().strip()
with open(table, "w") as f:
    f.write(line + " s=tlsrpt\n")
r = dkimcheck.cli(kconf, d, "dns", "rpt-signer.test")
w.dest("rpt-signer.test", records=dkimcheck.zone_records(r.stdout))
# Debian's OpenDKIM, if installed, as the second non-SMTP milter: it signs
# the DSNs (From: MAILER-DAEMON@myhostname) for the fake client 127.0.0.1
OPENDKIM = shutil.which("opendkim") or "/usr/sbin/opendkim"
HAVE_OD = os.path.exists(OPENDKIM) and shutil.which("opendkim-genkey")
MYHOST = d.options["myhostname"]
kdir = os.path.join(w.tmp, "opendkim")
if HAVE_OD:
    os.makedirs(kdir)
    subprocess.run(["opendkim-genkey", "-b", "2048", "-d", MYHOST, "-s",
                    "od1", "-D", kdir], check=True)
    with open(os.path.join(kdir, "od1.txt")) as f:
        txt = "".join(re.findall(r'"([^"]*)"', f.read()))
    chunks = [txt[i:i + 255] for i in range(0, len(txt), 255)]
    w.dest(MYHOST, records=["od1._domainkey.%s. IN TXT %s" % (
        MYHOST, " ".join('"%s"' % c for c in chunks))])
else:
    print("opendkim is not installed: DSNs not signed by it", flush=True)
w.start()

procs = []
drtest.at_done(lambda: [fakemilter.stop(p) for p in procs])
listening = fakemilter.listening


def start_milter(name, header):
    port = drtest.free_port("127.0.0.1")
    modefile = os.path.join(w.tmp, name + ".mode")
    log = os.path.join(w.tmp, name + ".log")
    p = subprocess.Popen(["/usr/bin/python3",
                          os.path.join(HERE, "lib", "nsmilter.py"),
                          "inet:%d@127.0.0.1" % port, modefile, header],
                         stdout=open(log, "a"), stderr=subprocess.STDOUT)
    procs.append(p)
    drtest.wait_for(lambda: listening(port), 20, name + " listening")
    return port, modefile, log


def start_opendkim():
    port = drtest.free_port("127.0.0.1")
    conf = os.path.join(kdir, "opendkim.conf")
    with open(conf, "w") as f:
        f.write("Syslog no\nMode s\nDomain %s\nSelector od1\n"
                "KeyFile %s/od1.private\nSocket inet:%d@127.0.0.1\n"
                "Canonicalization relaxed/relaxed\nRequireSafeKeys no\n"
                "InternalHosts 127.0.0.1\nPidFile %s/opendkim.pid\n"
                % (MYHOST, kdir, port, kdir))
    p = subprocess.Popen([OPENDKIM, "-f", "-x", conf],
                         stdout=open(os.path.join(kdir, "out.log"), "a"),
                         stderr=subprocess.STDOUT)
    procs.append(p)
    drtest.wait_for(lambda: listening(port), 20, "opendkim listening")
    return port


ns_port, ns_mode, ns_log = start_milter("ns", "X-NS-Milter")
sd_port, sd_mode, sd_log = start_milter("sd", "X-Smtpd-Milter")
NS = "inet:127.0.0.1:%d" % ns_port
if HAVE_OD:
    NS += ", inet:127.0.0.1:%d" % start_opendkim()
DEAD = "inet:127.0.0.1:%d" % drtest.free_port("127.0.0.1")
SD = "inet:127.0.0.1:%d" % sd_port
opts = dict(dkim_key_table=table, milters=SD, non_smtpd_milters=NS)
d.write_config(**opts)
d.start()
reloads = 0


def reconfigure(**more):
    global reloads
    o = dict(opts)
    o.update(more)
    d.write_config(**o)
    reloads += 1
    d.reload()
    drtest.wait_for(lambda: len(re.findall(r"info: reloaded /",
                                           d.log_text())) >= reloads, 10,
                    "reload")


def set_mode(path, mode):
    with open(path, "w") as f:
        f.write(mode + "\n")


def head(raw):
    return raw.split(b"\r\n\r\n", 1)[0]


def dsns(rcpt):
    """The DSNs at the sender's MX about rcpt."""
    return [m for m in senders.messages() if m["mail_from"] == "" and
            ("Final-Recipient: rfc822; %s" % rcpt).encode() in m["data"]]


def bounce(rcpt):
    """A message to rcpt (refused with 550): its queue id."""
    return w.send(d, [rcpt], sender="sender@senders.test")


def gone(qid):
    return qid not in d.queue_ids()


# -- a DSN passes the non-SMTP milter; smtpd mail the smtpd one only
q1 = bounce("nobody1@perm.test")
w.send(d, ["user@ok.test"], sender="a@rpt-signer.test",
       data=b"From: <a@rpt-signer.test>\r\nTo: <user@ok.test>\r\n"
       b"Subject: relayed\r\n\r\nHello.\r\n")
w.send(d, ["user@ok2.test"], sender="a@rpt-signer.test")
drtest.wait_for(lambda: dsns("nobody1@perm.test"), 30, "the first DSN")
raw = dsns("nobody1@perm.test")[0]["data"]
ns = re.search(rb"X-NS-Milter: host=(\S+) addr=(\S+) helo=(\S+) from=(\S+) "
               rb"rcpts=(\S+) j=(\S+) i=(\S+)", head(raw))
drtest.check(ns is not None, "the DSN carries the non-SMTP milter's header"
             ": %r" % head(raw)[:600])
m = re.search(r"%s: sender non-delivery notification: ([0-9A-F]+)" % q1,
              d.log_text())
drtest.check(m is not None, "the DSN is logged with its queue id")
if ns is not None and m is not None:
    drtest.check(ns.group(1) == b"localhost" and ns.group(2) ==
                 b"127.0.0.1" and ns.group(3) == b"localhost",
                 "the fake client localhost [127.0.0.1], HELO localhost: %r"
                 % ns.group(0))
    drtest.check(ns.group(4) == b"<>" and ns.group(5) ==
                 b"<sender@senders.test>", "MAIL FROM:<> and RCPT TO the "
                 "sender: %r" % ns.group(0))
    drtest.check(ns.group(6) == d.options["myhostname"].encode(),
                 "j is myhostname: %r" % ns.group(6))
    drtest.check(ns.group(7) == m.group(1).encode(),
                 "i is the DSN's queue id (%s): %r" % (m.group(1),
                                                       ns.group(7)))
drtest.check(b"X-Smtpd-Milter:" not in head(raw),
             "the smtpd milter did not see the DSN")
if HAVE_OD:
    res = dkimcheck.verify(raw, w.rig)
    drtest.check(len(res) == 1 and res[0]["ok"] and res[0]["d"] == MYHOST
                 and res[0]["s"] == "od1", "OpenDKIM (the second non-SMTP "
                 "milter) signed the DSN and it verifies: %r" % res)
    drtest.check(b"subject" in dkimcheck.signatures(raw)[0].get(
        b"h", b"").lower().split(b":") and re.search(
            rb"\r\nSubject:[^\r]* \[X-NS-Milter\]\r\n", head(raw)),
                 "... over the Subject: the first milter changed")
drtest.wait_for(lambda: gone(q1), 10, "the bounced message removed")
w.expect(d, "ok.test", "sent", at="mx")
relayed = [x for x in w.sinks["ok.test"].messages()
           if "user@ok.test" in x["rcpts"]]
drtest.check(len(relayed) == 1 and b"X-Smtpd-Milter: host=[127.0.0.1]" in
             head(relayed[0]["data"]) and b"X-NS-Milter" not in
             relayed[0]["data"], "relayed mail passed the smtpd milter, not "
             "the non-SMTP one")

# -- a delay warning passes the milter too, and is sent once
qb = w.send(d, ["someone@busy.test"], sender="sender@senders.test")


def warnings():
    return [x for x in senders.messages() if x["mail_from"] == "" and
            b"Action: delayed" in x["data"]]


drtest.wait_for(lambda: warnings(), 30, "the delay warning")
drtest.wait_for(lambda: d.read_env(qb).get("warned") in ("1", 1, True), 10,
                "the warning recorded in the envelope")
drtest.check(b"X-NS-Milter: host=localhost" in head(warnings()[0]["data"]),
             "the delay warning carries the non-SMTP milter's header")
drtest.check(qb in d.queue_ids(), "the delayed message stays queued")

# -- a TLSRPT report mail: milter, then DKIM signing
w.expect(d, "ok2.test", "sent", at="mx")
day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")


def report(rcpt="tlsrpt@reports.test"):
    return [x["data"] for x in reports.messages()
            if x["mail_from"] == "reports@rpt-signer.test" and
            rcpt in x["rcpts"]]


# first with the milter saying "later" (and refusing ok2.test's report):
# nothing spooled, ok.test's report left for the next run
set_mode(ns_mode, "tempfail")
r = d.cli("tlsrpt", "send", "--date", day, timeout=120)
out = r.stdout + r.stderr
drtest.check(re.search(r"ok\.test: report to mailto:tlsrpt@reports\.test "
                       r"deferred by the non_smtpd_milters \(451 4\.7\.1 "
                       r"nsmilter says later\); will retry", out),
             "tlsrpt send: the report deferred by the milter: %r" % out)
drtest.check(re.search(r"ok2\.test: report to mailto:nsreject@reports\.test "
                       r"not sent: rejected by a milter: 550 5\.7\.1", out),
             "tlsrpt send: the refused report not sent: %r" % out)
time.sleep(drtest.scaled(3))
drtest.check(not report() and not report("nsreject@reports.test"),
             "no report mail spooled while the milter defers or rejects")
set_mode(ns_mode, "accept")
r = d.cli("tlsrpt", "send", "--date", day, timeout=120)
drtest.check(r.returncode == 0, "tlsrpt send: %s%s" % (r.stdout, r.stderr))
drtest.check(re.search(r"nsreject@reports\.test already failed \(rejected "
                       r"by a milter", r.stdout) and not re.search(
                           r"nsreject@reports\.test (queued|deferred)",
                           r.stdout),
             "the refused report is not tried again: %r" % r.stdout)
drtest.wait_for(lambda: report(), 30, "the report mail")
raw = report()[0]
drtest.check(re.search(rb"X-NS-Milter: host=localhost addr=127.0.0.1 "
                       rb"helo=localhost from=<reports@rpt-signer.test> "
                       rb"rcpts=<tlsrpt@reports.test>", head(raw)),
             "the report mail carries the non-SMTP milter's header: %r"
             % head(raw)[:800])
drtest.check(re.search(rb"\r\nSubject:(?:[^\r]|\r\n[ \t])* \[X-NS-Milter\]"
                       rb"\r\n", head(raw)),
             "the milter changed the report's Subject: (a signed field): %r"
             % re.findall(rb"\r\nSubject:(?:[^\r]|\r\n[ \t])*", head(raw)))
res = dkimcheck.verify(raw, w.rig, tlsrpt="strict")
drtest.check(len(res) == 1 and res[0]["ok"] and
             res[0]["d"] == "rpt-signer.test",
             "the report is signed after the milter and verifies: %r" % res)

# -- the milter unreachable: tempfail, retried with a backoff
reconfigure(non_smtpd_milters=DEAD)
at = len(d.log_text())
q2 = bounce("nobody2@perm.test")
defer = "%s: sender non-delivery notification deferred by the " \
    "non_smtpd_milters" % q2
drtest.wait_for(lambda: defer in d.log_text()[at:], 30,
                "the DSN deferred by the unreachable milter")
time.sleep(drtest.scaled(5))
n = d.log_text()[at:].count(defer)
drtest.check(1 <= n <= 4, "retried after a backoff, not in a loop (%d "
             "deferrals in 5 s)" % n)
drtest.check(not dsns("nobody2@perm.test"), "no DSN while the milter "
             "cannot be reached")
drtest.check(q2 in d.queue_ids(), "the original stays queued")
reconfigure()
drtest.wait_for(lambda: dsns("nobody2@perm.test"), 30,
                "the DSN once the milter is back")
drtest.wait_for(lambda: gone(q2), 10, "the original removed")
time.sleep(drtest.scaled(3))
drtest.check(len(dsns("nobody2@perm.test")) == 1, "the DSN arrived once")
drtest.check(b"X-NS-Milter" in head(dsns("nobody2@perm.test")[0]["data"]),
             "... through the milter")

# -- the milter rejects the DSN
set_mode(ns_mode, "reject")
at = len(d.log_text())
q3 = bounce("nobody3@perm.test")
drtest.wait_for(lambda: gone(q3), 30, "the original removed after the "
                "reject")
log = d.log_text()[at:]
drtest.check(re.search(r"milter-reject: END-OF-MESSAGE from localhost"
                       r"\[127\.0\.0\.1\]: 550 5\.7\.1 rejected by nsmilter; "
                       r"from=<> nrcpt=1: non-delivery notification for %s "
                       r"not sent" % q3, log),
             "milter-reject logged with the reply and the message")
drtest.check(re.search(r"%s: sender non-delivery notification NOT sent: "
                       r"rejected by the non_smtpd_milters" % q3, log),
             "the lost DSN said loudly")
time.sleep(drtest.scaled(4))
drtest.check(not dsns("nobody3@perm.test"), "no DSN")
drtest.check(d.log_text()[at:].count("milter-reject") == 1,
             "not tried again")

# -- a quarantine: the DSN spooled on hold with the milter's reason
set_mode(ns_mode, "quarantine")
at = len(d.log_text())
q5 = bounce("nobody5@perm.test")
pat = r"%s: sender non-delivery notification: ([0-9A-F]+)" % q5
drtest.wait_for(lambda: re.search(pat, d.log_text()[at:]), 30,
                "the quarantined DSN spooled")
drtest.wait_for(lambda: gone(q5), 10, "the original removed")
held = re.search(pat, d.log_text()[at:]).group(1)
r = d.cli("queue")
drtest.check(held in r.stdout and "on hold" in r.stdout and
             "held by a milter: held by nsmilter" in r.stdout,
             "danerelay queue shows the DSN held with the reason: %s"
             % r.stdout)
time.sleep(drtest.scaled(2))
drtest.check(not dsns("nobody5@perm.test"), "the held DSN is not sent")

# -- kill -9 while the milter holds the DSN
set_mode(ns_mode, "sleep 20")
eoms = open(ns_log).read().count("nsmilter: eom sleep")
q4 = bounce("nobody4@perm.test")
drtest.wait_for(lambda: open(ns_log).read().count("nsmilter: eom sleep")
                > eoms, 30, "the DSN in the sleeping milter")
d.kill9()
set_mode(ns_mode, "accept")
drtest.check(not dsns("nobody4@perm.test"), "no DSN before the restart")
d.start()
drtest.wait_for(lambda: dsns("nobody4@perm.test"), 30,
                "the DSN after the restart")
drtest.wait_for(lambda: gone(q4), 10, "the original removed")
time.sleep(drtest.scaled(3))
drtest.check(len(dsns("nobody4@perm.test")) == 1, "the DSN arrived once")
drtest.check(len(warnings()) == 1, "one delay warning in all: %d"
             % len(warnings()))
d.stop()
w.stop()
drtest.done()
