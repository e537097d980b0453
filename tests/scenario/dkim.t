#!/usr/bin/python3
# timeout: 180
"""DKIM signing (issue #16): keys made by `danerelay dkim keygen`, their
records loaded into the signed test zone, mail relayed and checked by an
independent verifier (Debian's python3-dkim, lib/dkimcheck.py) against
those records.

  - keygen: RSA-2048 and Ed25519 keys, 0600, owned by the daemon's user;
    the RSA record split into strings of at most 255 octets;
  - dual signing: a message From: the domain arrives with an rsa-sha256
    and an ed25519-sha256 signature, both verify; relaxed/relaxed; From,
    To, Subject and Date oversigned;
  - a 1.5 MiB message (spooled to a file while it arrives) too;
  - the same message with its body changed, or a second Subject: added,
    fails (the test can fail);
  - mail From: a domain without a key is not signed;
  - a message libopendkim refuses to sign gets 451 with
    dkim_failure_action = defer, is relayed unsigned with pass, and both
    are logged;
  - the signature is stored with the message: a message that waits in the
    queue across a restart arrives with the signature made at accept
    time, signed once;
  - a bad key table line is refused by danerelayd -n with file:line.
"""
import os
import pwd
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import dkimcheck  # noqa: E402
import world  # noqa: E402

dkimcheck.require()
w = world.World()
rcv = w.dest("rcpt.test", 11)
w.dest("later.test", 12)
d = w.daemon(start=False, min_backoff="1h")

# -- keygen, through the CLI, into the zone (a configuration of its own:
# the daemon's names files that the DNS world writes at w.start())
kconf, table = dkimcheck.keygen_config(d)
d.write_config(dkim_key_table=table)
records = []
for sel, alg in (("rsa1", "rsa-2048"), ("ed1", "ed25519")):
    r = dkimcheck.cli(kconf, d, "keygen", "signer.test", sel,
                      "--algorithm", alg)
    drtest.check(r.returncode == 0, "dkim keygen %s %s: exit 0 (%s)"
                 % (sel, alg, r.stderr.strip()))
    recs = dkimcheck.zone_records(r.stdout)
    drtest.check(len(recs) == 1 and recs[0].startswith(
        "%s._domainkey.signer.test. IN TXT" % sel),
        "keygen %s prints its TXT record: %r" % (sel, r.stdout))
    strings = dkimcheck.txt_strings(recs[0])
    drtest.check(all(len(s) <= 255 for s in strings),
                 "%s: every string of the record is at most 255 octets" % sel)
    if alg == "rsa-2048":
        drtest.check(len(strings) >= 2 and len(strings[0]) == 255,
                     "the RSA-2048 record is split into 255-octet strings "
                     "(%s)" % [len(s) for s in strings])
    keyfile = os.path.join(d.options["state_dir"], "dkim",
                           "signer.test.%s.pem" % sel)
    st = os.stat(keyfile)
    drtest.check(st.st_mode & 0o777 == 0o600, "%s is 0600 (%o)"
                 % (keyfile, st.st_mode & 0o777))
    if os.geteuid() == 0 and d.options.get("user"):
        drtest.check(st.st_uid == pwd.getpwnam(d.options["user"]).pw_uid,
                     "%s belongs to the daemon's user" % keyfile)
    records += recs
with open(table) as f:
    lines = f.read().splitlines()
drtest.check(len(lines) == 2 and lines[0].startswith("signer.test rsa1 "),
             "keygen added its lines to dkim_key_table: %r" % lines)

w.dest("signer.test", records=records)
w.start()

# -- a bad key table: refused with file:line, by danerelayd -n
bad = os.path.join(d.dir, "bad.keys")
with open(bad, "w") as f:
    f.write("# comment\nsigner.test rsa1 %s rsa-sha256\n"
            "signer.test s2 /nonexistent.pem rsa-sha256\n" % lines[0].split()[2])
d.write_config(dkim_key_table=bad)
r = subprocess.run([d.binary, "-n", "-c", d.conf], stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE, universal_newlines=True)
drtest.check(r.returncode != 0 and "%s:3:" % bad in r.stderr and
             "/nonexistent.pem" in r.stderr,
             "danerelayd -n refuses an unreadable key with file:line: %r"
             % r.stderr)
d.write_config(dkim_key_table=table)
r = subprocess.run([d.binary, "-n", "-c", d.conf], stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE, universal_newlines=True)
drtest.check(r.returncode == 0, "danerelayd -n accepts the key table (%s)"
             % r.stderr.strip())
d.start()

BODY = "Hello from the signer.\r\nA second line.\r\n"


def message(frm, to, subject):
    return ("From: Signer <%s>\r\nTo: <%s>\r\nSubject: %s\r\n"
            "Date: Sun, 06 Dec 2026 12:00:00 +0000\r\n"
            "Message-ID: <%s@dr-test>\r\n\r\n%s" % (
                frm, to, subject, re.sub(r"\W", ".", subject), BODY)).encode()


def received(sink, subject):
    got = [m for m in sink.messages() if b"Subject: " + subject.encode()
           in m["data"]]
    drtest.check(len(got) == 1, "one message %r arrived" % subject)
    return got[0]["data"]


# -- dual signing
w.send(d, ["user@rcpt.test"], sender="a@signer.test",
       data=message("a@signer.test", "user@rcpt.test", "dual"))
w.expect(d, "rcpt.test", "sent", at="mx")
raw = received(rcv, "dual")
res = dkimcheck.verify(raw, w.rig)
print("verifier: %r" % res, flush=True)
algs = sorted(r["a"] for r in res)
drtest.check(algs == ["ed25519-sha256", "rsa-sha256"],
             "both signatures are there: %r" % algs)
drtest.check(all(r["ok"] for r in res), "both verify: %r" % res)
drtest.check(all(r["d"] == "signer.test" for r in res), "d=signer.test")
sigs = dkimcheck.signatures(raw)
for t in sigs:
    drtest.check(t[b"c"] == b"relaxed/relaxed", "c=relaxed/relaxed")
    h = [x.lower() for x in t[b"h"].split(b":")]
    for f in (b"from", b"to", b"subject", b"date"):
        drtest.check(h.count(f) == 2, "%s oversigned in h=%r" % (f, h))
    drtest.check(b"received" not in h, "Received: is not signed")
drtest.check(raw.endswith(BODY.encode()), "the body arrived untouched")

# -- a message over 1 MiB (spooled to a file as it arrives, the
# signatures put in front of that file): both verify
big = message("a@signer.test", "user3@rcpt.test", "big")
big += ("x" * 76 + "\r\n").encode() * 20000
w.send(d, ["user3@rcpt.test"], sender="a@signer.test", data=big)
w.expect(d, "rcpt.test", "sent", rcpt="user3@rcpt.test", at="mx")
res = dkimcheck.verify(received(rcv, "big"), w.rig)
drtest.check(len(res) == 2 and all(r["ok"] for r in res),
             "a 1.5 MiB message: both signatures verify: %r" % res)

# -- changed in transit: fails
res = dkimcheck.verify(raw.replace(b"second line", b"second linE"), w.rig)
drtest.check(res and not any(r["ok"] for r in res),
             "a changed body fails verification: %r" % res)
head, body = raw.split(b"\r\n\r\n", 1)
res = dkimcheck.verify(head + b"\r\nSubject: added\r\n\r\n" + body, w.rig)
drtest.check(res and not any(r["ok"] for r in res),
             "a second Subject: fails verification (oversigned): %r" % res)

# -- no key for the From: domain: not signed
w.send(d, ["user2@rcpt.test"], sender="b@other.test",
       data=message("b@other.test", "user2@rcpt.test", "nokey"))
w.expect(d, "rcpt.test", "sent", rcpt="user2@rcpt.test", at="mx")
drtest.check(not dkimcheck.signatures(received(rcv, "nokey")),
             "mail From: a domain without a key is not signed")

# -- a message libopendkim cannot sign (a header line without a colon):
# dkim_failure_action = defer (the default) answers 451; pass relays it
# unsigned; both logged
BAD = (b"From: <a@signer.test>\r\nTo: <user4@rcpt.test>\r\n"
       b"NoColonHere\r\nSubject: unsignable\r\n\r\nbody\r\n")
c = drtest.SMTP(d.host, d.port)
c.expect("EHLO client.dr-test.example", 250)
c.expect("MAIL FROM:<a@signer.test>", 250)
c.expect("RCPT TO:<user4@rcpt.test>", 250)
code, text = c.data(BAD)
c.close()
drtest.check(code == 451, "unsignable, defer: 451 (%d %s)" % (code, text))
drtest.check(re.search(r"dkim: signing for d=signer.test failed: .*; "
                       r"deferred \(dkim_failure_action = defer\)",
                       d.log_text()), "the deferral is logged")
d.write_config(dkim_failure_action="pass")
d.reload(wait=True)
w.send(d, ["user4@rcpt.test"], sender="a@signer.test", data=BAD)
w.expect(d, "rcpt.test", "sent", rcpt="user4@rcpt.test", at="mx")
drtest.check(not dkimcheck.signatures(received(rcv, "unsignable")),
             "unsignable, pass: relayed unsigned")
drtest.check(re.search(r"dkim: signing for d=signer.test failed: .*; sent "
                       r"unsigned \(dkim_failure_action = pass\)",
                       d.log_text()), "the pass is logged")

# -- stored with the message: queued across a restart, signed once
w.stop_mx("later.test", "mx")
qid = w.send(d, ["user@later.test"], sender="a@signer.test",
             data=message("a@signer.test", "user@later.test", "later"))
w.expect(d, "later.test", "deferred")
spooled = d.read_data(qid)
drtest.check(spooled.startswith(b"DKIM-Signature:"),
             "the spooled message starts with its signatures")
d.restart()
later = w.restart_mx("later.test", "mx")
r = d.cli("flush")
drtest.check(r.returncode == 0, "flush (%s)" % r.stderr.strip())
drtest.wait_for(lambda: any(b"Subject: later" in m["data"]
                            for m in later.messages()), 30,
                "the queued message delivered after the restart")
raw = received(later, "later")
drtest.check(dkimcheck.signatures(raw) == dkimcheck.signatures(spooled),
             "it arrived with the signatures made at accept time")
drtest.check(all(r["ok"] for r in dkimcheck.verify(raw, w.rig)),
             "they verify")
n = len(re.findall(r"%s: dkim: signed" % qid, d.log_text()))
drtest.check(n == 1, "signed once (%d 'dkim: signed' lines)" % n)

drtest.done()
