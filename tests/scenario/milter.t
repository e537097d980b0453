#!/usr/bin/python3
# timeout: 300
"""Milters (issue #25): real filters on loopback, in the signed DNS world.

  - Real OpenDKIM (Debian's opendkim, inet socket, a key made by
    opendkim-genkey and published in the test zone) listed last signs
    relayed mail; python3-dkim (lib/dkimcheck.py) verifies it at the sink
    - also when the milter before it changed a signed header (Subject:),
    so OpenDKIM saw the changed message; OpenDKIM signs only for
    InternalHosts, so the connect stage gave it the client's address;
  - a test milter on Sendmail's libmilter (Debian's python3-milter,
    lib/testmilter.py) drives every reply and change, each checked in
    the client's transcript or at the sink: reject at RCPT with a
    two-line custom reply; tempfail at the end of message; discard (250,
    never delivered, not queued); header add and change; recipient add
    (with an ESMTP argument) and delete; sender change; body replacement;
    quarantine (held, `danerelay queue` shows the milter's reason); the
    connect address, HELO, and the j and i macros (i = the id of the
    250 reply); two messages on one connection (the milter connection
    is kept);
  - a milter that cannot be reached: 451 (milter_default_action =
    tempfail, the default); after a reload with accept, mail flows,
    signed by OpenDKIM, which still runs;
  - a milter that answers the option negotiation and then nothing: the
    default action once milter_command_timeout has passed; one that answers garbage: the
    default action at once, and the relay keeps serving.
"""
import base64
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import dkimcheck  # noqa: E402
import world  # noqa: E402

dkimcheck.require()
try:
    import Milter  # noqa: F401
except ImportError as e:
    drtest.skip("python3-milter is not installed: %s" % e)
OPENDKIM = shutil.which("opendkim") or "/usr/sbin/opendkim"
if not os.path.exists(OPENDKIM) or not shutil.which("opendkim-genkey"):
    drtest.skip("opendkim (and opendkim-tools) are not installed")

HERE = os.path.dirname(os.path.abspath(__file__))
w = world.World()
rcv = w.dest("rcpt.test", 11, extra=["--dsn"])

# -- OpenDKIM's key, in the zone
kdir = os.path.join(w.tmp, "opendkim")
os.makedirs(kdir)
subprocess.run(["opendkim-genkey", "-b", "2048", "-d", "signer.test", "-s",
                "od1", "-D", kdir], check=True)
with open(os.path.join(kdir, "od1.txt")) as f:
    txt = "".join(re.findall(r'"([^"]*)"', f.read()))
chunks = [txt[i:i + 255] for i in range(0, len(txt), 255)]
w.dest("signer.test", records=["od1._domainkey.signer.test. IN TXT %s" %
                               " ".join('"%s"' % c for c in chunks)])
w.start()

procs = []


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


drtest.at_done(lambda: [stop(p) for p in procs])


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
        return True
    except OSError:
        return False


def start_opendkim(port):
    conf = os.path.join(kdir, "opendkim.conf")
    with open(conf, "w") as f:
        f.write("Syslog no\nMode s\nDomain signer.test\nSelector od1\n"
                "KeyFile %s/od1.private\nSocket inet:%d@127.0.0.1\n"
                "Canonicalization relaxed/relaxed\nRequireSafeKeys no\n"
                "InternalHosts 127.0.0.1\nPidFile %s/opendkim.pid\n"
                % (kdir, port, kdir))
    p = subprocess.Popen([OPENDKIM, "-f", "-x", conf],
                         stdout=open(os.path.join(kdir, "out.log"), "a"),
                         stderr=subprocess.STDOUT)
    procs.append(p)
    drtest.wait_for(lambda: listening(port), 20, "opendkim listening")
    return p


def start_testmilter(port, path=None):
    p = subprocess.Popen(["/usr/bin/python3",
                          os.path.join(HERE, "lib", "testmilter.py"),
                          "unix:%s" % path if path else
                          "inet:%d@127.0.0.1" % port],
                         stdout=open(os.path.join(w.tmp, "tm.log"), "a"),
                         stderr=subprocess.STDOUT)
    procs.append(p)
    if path:
        drtest.wait_for(lambda: os.path.exists(path), 20,
                        "testmilter's socket")
        os.chmod(path, 0o666)       # the daemon's user connects
    else:
        drtest.wait_for(lambda: listening(port), 20, "testmilter listening")
    return p


od_port = drtest.free_port("127.0.0.1")
od = start_opendkim(od_port)
tm_port = drtest.free_port("127.0.0.1")
tm = start_testmilter(tm_port)

MILTERS = "inet:127.0.0.1:%d, inet:127.0.0.1:%d" % (tm_port, od_port)
mport = drtest.free_port("127.0.0.1")
crt, ckey = drtest.make_cert(w.tmp, "relay.dr-test.example")
authfile = drtest.auth_file(os.path.join(w.tmp, "auth"),
                            {"alice": "alice-password"})
d = w.daemon(milters=MILTERS, milter_command_timeout="3s",
             min_backoff="1h", metrics_listen="127.0.0.1:%d" % mport,
             tls_cert_file=crt, tls_key_file=ckey, auth_file=authfile)


def metric(name):
    import urllib.request
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport,
                                timeout=drtest.scaled(10)) as r:
        body = r.read().decode()
    m = re.search(r"^%s (\d+)$" % name, body, re.M)
    return int(m.group(1)) if m else None
reloads = 0

# a bad milter list or default action: refused with file:line
for opt, val, want in (("milters", "inet:mx.example:8891", "milters: bad "
                        "milter"),
                       ("milter_default_action", "bounce",
                        "want tempfail, accept or reject")):
    d.write_config(**{"milters": MILTERS, opt: val})
    r = subprocess.run([d.binary, "-n", "-c", d.conf],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    drtest.check(r.returncode != 0 and re.search(r"%s:\d+: " % re.escape(
        d.conf), r.stderr) and want in r.stderr,
        "%s = %s refused with file:line: %r" % (opt, val, r.stderr))
d.write_config(milters=MILTERS, milter_default_action="tempfail")


def reconfigure(**opts):
    global reloads
    d.write_config(**opts)
    reloads += 1
    d.reload()
    drtest.wait_for(lambda: len(re.findall(r"info: reloaded /",
                                           d.log_text())) >= reloads, 10,
                    "reload")


def message(subject, to="user@rcpt.test", body="Hello from the signer.\r\n"):
    return ("From: Signer <a@signer.test>\r\nTo: <%s>\r\nSubject: %s\r\n"
            "Date: Sun, 06 Dec 2026 12:00:00 +0000\r\n"
            "Message-ID: <%s@dr-test>\r\n\r\n%s" % (
                to, subject, re.sub(r"\W", ".", subject), body)).encode()


def arrived(rcpt):
    return [m for m in rcv.messages() if rcpt in m["rcpts"]]


def verified(raw, what):
    res = dkimcheck.verify(raw, w.rig)
    drtest.check(len(res) == 1 and res[0]["ok"] and res[0]["d"] ==
                 "signer.test" and res[0]["s"] == "od1",
                 "%s: OpenDKIM's signature verifies: %r" % (what, res))
    return dkimcheck.signatures(raw)[0]


def session():
    c = drtest.SMTP(d.host, d.port)
    c.expect("EHLO client.dr-test.example", 250)
    return c


# -- plain mail: signed by OpenDKIM, the macros and the connect address
c = session()
qid = c.sendmail("a@signer.test", ["user1@rcpt.test"],
                 message("plain", "user1@rcpt.test"))
qid2 = c.sendmail("a@signer.test", ["user2@rcpt.test"],
                  message("second on the same connection",
                          "user2@rcpt.test"))
c.close()
w.expect(d, "rcpt.test", "sent", rcpt="user1@rcpt.test", at="mx")
w.expect(d, "rcpt.test", "sent", rcpt="user2@rcpt.test", at="mx")
m1 = arrived("user1@rcpt.test")[0]
raw = m1["data"]
verified(raw, "plain")
seen = re.search(rb"X-Milter-Seen: addr=(\S+) port=(\d+) helo=(\S+) "
                 rb"j=(\S+) i=(\S+)", raw)
drtest.check(seen is not None, "the test milter's header arrived")
drtest.check(seen.group(1) == b"127.0.0.1" and int(seen.group(2)) > 0,
             "the connect stage had the client's address and port: %r"
             % seen.group(0))
drtest.check(seen.group(3) == b"client.dr-test.example", "HELO seen")
drtest.check(seen.group(4) == d.options["myhostname"].encode(),
             "j is myhostname: %r" % seen.group(4))
drtest.check(seen.group(5) == qid.encode(),
             "i is the queue id of the 250 reply (%s): %r"
             % (qid, seen.group(5)))
raw2 = arrived("user2@rcpt.test")[0]["data"]
verified(raw2, "second message on one connection")
drtest.check(("i=%s" % qid2).encode() in raw2,
             "the second message of the session has its own i (%s)" % qid2)
conns = open(os.path.join(w.tmp, "tm.log")).read().count(
    "testmilter: connect ")
drtest.check(conns == 1, "one milter connection for the session's two "
             "messages (%d connect stages)" % conns)

drtest.check(b"X-Milter-Session: tls=None cipher=None auth=None/None "
             b"mail_addr=a@signer.test" in raw2,
             "no TLS or AUTH macros in a plain session, {mail_addr} set: %r"
             % re.findall(rb"X-Milter-Session: [^\r]*", raw2))

# -- STARTTLS and AUTH: the TLS and AUTH macros
c = session()
c.starttls()
c.expect("EHLO client.dr-test.example", 250)
c.expect("AUTH PLAIN " + base64.b64encode(
    b"\0alice\0alice-password").decode(), 235)
c._helo_done = True
c.sendmail("a@signer.test", ["user13@rcpt.test"],
           message("tls and auth", "user13@rcpt.test"))
c.close()
w.expect(d, "rcpt.test", "sent", rcpt="user13@rcpt.test", at="mx")
raw = arrived("user13@rcpt.test")[0]["data"]
verified(raw, "a message over TLS from an authenticated client")
ms = re.search(rb"X-Milter-Session: tls=(TLSv1\.[23]) cipher=(\S+) "
               rb"auth=PLAIN/alice mail_addr=a@signer.test", raw)
drtest.check(ms is not None and ms.group(2) != b"None",
             "{tls_version}, {cipher}, {auth_type}, {auth_authen}: %r"
             % re.findall(rb"X-Milter-Session: [^\r]*", raw))

# -- header add and change, and OpenDKIM after it signs the changed Subject
w.send(d, ["user3@rcpt.test"], sender="a@signer.test",
       data=message("headers", "user3@rcpt.test"))
w.expect(d, "rcpt.test", "sent", rcpt="user3@rcpt.test", at="mx")
raw = arrived("user3@rcpt.test")[0]["data"]
drtest.check(b"\r\nX-Test-Milter: added\r\n" in raw, "header added")
drtest.check(b"\r\nX-Test-Folded: one\r\n\ttwo\r\n\tThree: no\r\n" in raw,
             "a value with bare folds and an empty line stays one folded "
             "field: %r" % raw[raw.find(b"X-Test-Folded"):][:60])
drtest.check(b"\r\nSubject: headers changed by the milter\r\n" in raw and
             b"Subject: headers\r\n" not in raw, "Subject: changed")
tags = verified(raw, "a header changed before OpenDKIM")
drtest.check(b"subject" in tags[b"h"].lower(),
             "OpenDKIM signed the Subject: (h=%r)" % tags[b"h"])

# -- refused at HELO: every MAIL of that session gets the milter's answer
c = drtest.SMTP(d.host, d.port)
c.expect("EHLO reject-helo.example", 250)
got = [c.cmd("MAIL FROM:<a@signer.test>") for _ in range(2)]
c.close()
drtest.check(all(g[0] == 554 and "your HELO is refused" in g[1]
                 for g in got), "a milter that refused HELO refuses every "
             "MAIL of the session: %r" % got)

# -- reject at RCPT, with the milter's two-line reply; others go on
c = session()
c.expect("MAIL FROM:<a@signer.test>", 250)
code, text = c.cmd("RCPT TO:<reject-rcpt@rcpt.test>")
drtest.check(code == 550 and "rejected by testmilter" in text and
             "second line of the rejection" in text,
             "RCPT rejected with the milter's reply: %d %r" % (code, text))
c.expect("RCPT TO:<user4@rcpt.test>", 250)
code, text = c.data(message("after a rejected rcpt", "user4@rcpt.test"))
drtest.check(code == 250, "the other recipient's message: 250 (%d %s)"
             % (code, text))
# -- tempfail at the end of message (same connection)
c.expect("MAIL FROM:<a@signer.test>", 250)
c.expect("RCPT TO:<user5@rcpt.test>", 250)
code, text = c.data(message("tempfail-eom", "user5@rcpt.test"))
drtest.check(code == 451 and "testmilter says later" in text,
             "tempfail at end of message: %d %s" % (code, text))
# -- discard: 250, never delivered, not queued
before = set(d.queue_ids())
c.expect("MAIL FROM:<a@signer.test>", 250)
c.expect("RCPT TO:<user6@rcpt.test>", 250)
code, text = c.data(message("discard", "user6@rcpt.test"))
drtest.check(code == 250, "discard: 250 (%d %s)" % (code, text))
c.close()
w.expect(d, "rcpt.test", "sent", rcpt="user4@rcpt.test", at="mx")
drtest.check(set(d.queue_ids()) <= before, "discarded: not queued")
drtest.check(not arrived("user5@rcpt.test") and not
             arrived("user6@rcpt.test"), "tempfailed and discarded "
             "messages never arrived")
drtest.check(not arrived("reject-rcpt@rcpt.test"), "rejected recipient: "
             "nothing arrived")

# -- recipients: one added with NOTIFY=NEVER, one deleted
w.send(d, ["gone@rcpt.test", "user7@rcpt.test"], sender="a@signer.test",
       data=message("rcpts", "user7@rcpt.test"))
w.expect(d, "rcpt.test", "sent", rcpt="user7@rcpt.test", at="mx")
w.expect(d, "rcpt.test", "sent", rcpt="added@rcpt.test", at="mx")
m = arrived("added@rcpt.test")[0]
drtest.check(set(m["rcpts"]) == {"user7@rcpt.test", "added@rcpt.test"},
             "added@ added, gone@ deleted: %r" % m["rcpts"])
drtest.check(not arrived("gone@rcpt.test"), "the deleted one got nothing")
drtest.check("NOTIFY=NEVER" in (m.get("rcpt_params") or {}).get(
    "added@rcpt.test", ""), "the added recipient kept its ESMTP argument "
    "NOTIFY=NEVER: %r" % m.get("rcpt_params"))

# -- sender change
w.send(d, ["user8@rcpt.test"], sender="a@signer.test",
       data=message("sender", "user8@rcpt.test"))
w.expect(d, "rcpt.test", "sent", rcpt="user8@rcpt.test", at="mx")
m = arrived("user8@rcpt.test")[0]
drtest.check(m["mail_from"] == "new-sender@client.dr-test.example",
             "envelope sender changed: %r" % m["mail_from"])

# -- body replacement (and still signed: OpenDKIM saw the new body)
w.send(d, ["user9@rcpt.test"], sender="a@signer.test",
       data=message("body", "user9@rcpt.test"))
w.expect(d, "rcpt.test", "sent", rcpt="user9@rcpt.test", at="mx")
raw = arrived("user9@rcpt.test")[0]["data"]
drtest.check(raw.split(b"\r\n\r\n", 1)[1] == b"replaced by the milter\r\n"
             b"bare LF\r\nbare CR\r\nsplit\r\nend\r\n",
             "body replaced, every line end CRLF: %r"
             % raw.split(b"\r\n\r\n", 1)[1][:120])
verified(raw, "a replaced body")

# -- quarantine: held, with the milter's reason, not delivered
qid = w.send(d, ["user10@rcpt.test"], sender="a@signer.test",
             data=message("quarantine", "user10@rcpt.test"))
r = d.cli("queue")
drtest.check(r.returncode == 0 and qid in r.stdout and "hold" in r.stdout
             and "held for review by testmilter" in r.stdout,
             "danerelay queue shows it held with the reason: %s" % r.stdout)
time.sleep(drtest.scaled(2))
drtest.check(not arrived("user10@rcpt.test"), "quarantined: not delivered")
got = (metric("danerelay_milter_rejected_total"),
       metric("danerelay_milter_discarded_total"),
       metric("danerelay_milter_held_total"),
       metric("danerelay_milter_failures_total"))
drtest.check(got == (4, 1, 1, 0), "metrics: 4 rejected (two MAIL after "
             "HELO, RCPT, end of message), 1 discarded, 1 held, no "
             "failures: %r" % (got,))

# -- a milter that cannot be reached: 451 (tempfail), then with accept
# mail flows, signed by OpenDKIM which still runs
stop(tm)
c = session()
code, text = c.cmd("MAIL FROM:<a@signer.test>")
c.close()
drtest.check(code == 451, "test milter stopped: MAIL gets 451 (%d %s)"
             % (code, text))
drtest.check(re.search(r"milter inet:127.0.0.1:%d: cannot connect; "
                       r"milter_default_action = tempfail" % tm_port,
                       d.log_text()), "the failure is logged")
reconfigure(milter_default_action="accept")
w.send(d, ["user11@rcpt.test"], sender="a@signer.test",
       data=message("milter down, accept", "user11@rcpt.test"))
w.expect(d, "rcpt.test", "sent", rcpt="user11@rcpt.test", at="mx")
raw = arrived("user11@rcpt.test")[0]["data"]
verified(raw, "accept with one milter down")
drtest.check(b"X-Milter-Seen" not in raw, "the stopped milter did not run")


# -- misbehaving milters: one that never answers, one that answers garbage
class Bad(threading.Thread):
    def __init__(self, garbage):
        super().__init__(daemon=True)
        self.garbage = garbage
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.port = self.ls.getsockname()[1]
        self.conns = []

    def run(self):
        while True:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            self.conns.append(s)
            try:
                s.recv(4096)
                if self.garbage:
                    s.sendall(b"\x00\x00\x00\x05Zjunk and more junk\r\n")
                else:
                    # the option negotiation answered (version 6, no
                    # actions, every step), then silence: the command
                    # timeout (milter_limits.t has a silent negotiation)
                    s.sendall(struct.pack(">IcIII", 13, b"O", 6, 0, 0))
            except OSError:
                pass


class Raw(threading.Thread):
    """A milter spoken by hand (mfdef.h): it asks for no reply to
    headers (SMFIP_NR_HDR) and none to connect (SMFIP_NR_CONN), skips
    HELO (SMFIP_NOHELO), answers the first body chunk with SMFIR_SKIP and
    adds X-Raw: at the end of message, counting the body chunks it
    got."""

    def __init__(self):
        super().__init__(daemon=True)
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(4)
        self.port = self.ls.getsockname()[1]
        self.cmds = []

    @staticmethod
    def pkt(cmd, data=b""):
        return struct.pack(">I", len(data) + 1) + cmd + data

    def serve(self, s):
        buf = b""
        while True:
            while len(buf) < 4 or len(buf) < 4 + struct.unpack(
                    ">I", buf[:4])[0]:
                chunk = s.recv(65536)
                if not chunk:
                    return
                buf += chunk
            n = struct.unpack(">I", buf[:4])[0]
            cmd, data, buf = buf[4:5], buf[5:4 + n], buf[4 + n:]
            self.cmds.append(cmd)
            if cmd == b"O":
                s.sendall(self.pkt(b"O", struct.pack(
                    ">III", 6, 0x01, 0x80 | 0x1000 | 0x2 | 0x400)))
            elif cmd in (b"M", b"R", b"T", b"N"):
                s.sendall(self.pkt(b"c"))
            elif cmd == b"B":
                s.sendall(self.pkt(b"s"))
            elif cmd == b"E":
                s.sendall(self.pkt(b"h", b"X-Raw\0body chunks=%d\0" %
                                   self.cmds.count(b"B")) + self.pkt(b"c"))
            elif cmd == b"H":
                return      # asked not to get HELO: a protocol error

    def run(self):
        while True:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            try:
                self.serve(s)
            except OSError:
                pass
            s.close()


# -- a milter on a unix socket
sock = os.path.join(w.tmp, "tm.sock")
start_testmilter(None, sock)
reconfigure(milters="unix:%s, inet:127.0.0.1:%d" % (sock, od_port))
w.send(d, ["user15@rcpt.test"], sender="a@signer.test",
       data=message("headers", "user15@rcpt.test"))
w.expect(d, "rcpt.test", "sent", rcpt="user15@rcpt.test", at="mx")
raw = arrived("user15@rcpt.test")[0]["data"]
drtest.check(b"\r\nX-Test-Milter: added\r\n" in raw and
             b"X-Milter-Seen: addr=127.0.0.1" in raw,
             "a milter on unix:%s ran" % sock)
verified(raw, "after a milter on a unix socket")

raw_milter = Raw()
raw_milter.start()
reconfigure(milters="inet:127.0.0.1:%d, inet:127.0.0.1:%d"
            % (raw_milter.port, od_port))
big = message("skip", "user14@rcpt.test",
              body=("y" * 70 + "\r\n") * 3000)      # 216 KB: 4 chunks
w.send(d, ["user14@rcpt.test"], sender="a@signer.test", data=big)
w.expect(d, "rcpt.test", "sent", rcpt="user14@rcpt.test", at="mx")
raw = arrived("user14@rcpt.test")[0]["data"]
drtest.check(b"\r\nX-Raw: body chunks=1\r\n" in raw,
             "SMFIR_SKIP after the first body chunk: no more chunks sent, "
             "the end of message still: %r"
             % re.findall(rb"X-Raw: [^\r]*", raw))
drtest.check(b"H" not in raw_milter.cmds and raw_milter.cmds.count(b"L") >= 5,
             "SMFIP_NOHELO: no HELO; SMFIP_NR_HDR: headers sent without "
             "waiting for replies (%r)" % raw_milter.cmds[:12])
verified(raw, "after a milter that skipped the body")

silent = Bad(False)
silent.start()
garbage = Bad(True)
garbage.start()

reconfigure(milters="inet:127.0.0.1:%d, inet:127.0.0.1:%d"
            % (silent.port, od_port), milter_default_action="tempfail",
            milter_command_timeout="2s")
c = session()
t0 = time.time()
code, text = c.cmd("MAIL FROM:<a@signer.test>")
took = time.time() - t0
c.close()
drtest.check(code == 451 and took >= 1.5,
             "a milter that never answers: 451 after the 2s timeout "
             "(%d %s, %.1fs)" % (code, text, took))
drtest.check(re.search(r"milter inet:127.0.0.1:%d: command timeout; "
                       r"milter_default_action = tempfail" % silent.port,
                       d.log_text()), "the timeout is logged")

reconfigure(milters="inet:127.0.0.1:%d, inet:127.0.0.1:%d"
            % (garbage.port, od_port))
c = session()
code, text = c.cmd("MAIL FROM:<a@signer.test>")
c.close()
drtest.check(code == 451, "a milter that answers garbage: 451 (%d %s)"
             % (code, text))
drtest.check(re.search(r"milter inet:127.0.0.1:%d: (bad packet length|"
                       r"unknown reply code|malformed)" % garbage.port,
                       d.log_text()), "the garbage is logged")
reconfigure(milter_default_action="accept")
w.send(d, ["user12@rcpt.test"], sender="a@signer.test",
       data=message("garbage milter, accept", "user12@rcpt.test"))
w.expect(d, "rcpt.test", "sent", rcpt="user12@rcpt.test", at="mx")
verified(arrived("user12@rcpt.test")[0]["data"],
         "after a garbage milter, with accept")
drtest.check(d.alive(), "the relay keeps serving")
drtest.check(metric("danerelay_milter_failures_total") >= 4,
             "metrics: the failures counted (%s)"
             % metric("danerelay_milter_failures_total"))
drtest.done()
