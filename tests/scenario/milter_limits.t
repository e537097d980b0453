#!/usr/bin/python3
# timeout: 400
"""Milters (issue #25), the limits: timeouts, older protocol versions,
SMFIR_CHGFROM's ESMTP arguments and a large message read back off the
event loop.

  - milter_content_timeout covers the body chunks and the end of
    message: a milter that answers a body chunk, or the end of message,
    after milter_command_timeout but before the content timeout has its
    answer used; one slower than the content timeout at the end of
    message gets milter_default_action (451), logged as a content
    timeout;
  - milter_connect_timeout covers the option negotiation: a milter that
    accepts the connection and never answers SMFIC_OPTNEG gets the
    default action after the connect timeout (2s), well before the
    command timeout (20s); a connect that never completes (a listener
    whose backlog is full) too;
  - milter_protocol 2 and 4: the OPTNEG offer has every action and the
    version's steps only (Postfix's masks); a libmilter milter
    (lib/limitmilter.py) negotiates, mail flows and its header applies;
    a version 2 or 3 milter is never sent SMFIC_DATA, a version 4 one is;
    a milter that asks for steps its version has not, or answers a newer
    version than offered, gets the default action - with reject, a 5xx;
  - SMFIR_CHGFROM with "RET=HDRS ENVID=...": the sender changes and the
    arguments reach the next hop's MAIL FROM; refused arguments are
    logged with the queue id and dropped, the sender change kept;
  - a 3 MiB message through a header-adding milter: the milter saw the
    whole body (its SHA-256), the sink got it intact with the header, and
    the file part was read back on the io pool (debug log).
"""
import hashlib
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import world  # noqa: E402
from fakemilter import listening, packets, pkt, stop  # noqa: E402

try:
    import Milter  # noqa: F401
except ImportError as e:
    drtest.skip("python3-milter is not installed: %s" % e)

HERE = os.path.dirname(os.path.abspath(__file__))
w = world.World()
rcv = w.dest("rcpt.test", 11, extra=["--dsn"])
rtls = w.dest("rtls.test", 12, extra=["--dsn", "--requiretls"])
w.start()

procs = []
drtest.at_done(lambda: [stop(p) for p in procs])

lm_port = drtest.free_port("127.0.0.1")
procs.append(subprocess.Popen(
    ["/usr/bin/python3", os.path.join(HERE, "lib", "limitmilter.py"),
     "inet:%d@127.0.0.1" % lm_port],
    stdout=open(os.path.join(w.tmp, "lm.log"), "a"),
    stderr=subprocess.STDOUT))
drtest.wait_for(lambda: listening(lm_port), 20, "limitmilter listening")
LM = "inet:127.0.0.1:%d" % lm_port

crt, ckey = drtest.make_cert(w.tmp, "relay.dr-test.example")
d = w.daemon(start=False, milters=LM, milter_command_timeout="2s",
             milter_content_timeout="6s", milter_connect_timeout="2s",
             min_backoff="1h", tls_cert_file=crt, tls_key_file=ckey)
d.start(args=["-d"])        # debug: the io pool's read back is logged
reloads = 0


def reconfigure(**opts):
    global reloads
    d.write_config(**opts)
    reloads += 1
    d.reload()
    drtest.wait_for(lambda: len(re.findall(r"info: reloaded /",
                                           d.log_text())) >= reloads, 10,
                    "reload")


def message(subject, to, body="Hello.\r\n"):
    return ("From: <a@client.dr-test.example>\r\nTo: <%s>\r\n"
            "Subject: %s\r\nMessage-ID: <%s@dr-test>\r\n\r\n%s" % (
                to, subject, re.sub(r"\W", ".", subject) + to,
                body)).encode()


def arrived(rcpt):
    return [m for m in rcv.messages() if rcpt in m["rcpts"]]


def deliver(rcpt, subject, body="Hello.\r\n", sender="a@client.dr-test."
            "example"):
    """Send, wait until it arrived; -> the sink's record."""
    c = drtest.SMTP(d.host, d.port, timeout=drtest.scaled(30))
    c.sendmail(sender, [rcpt], message(subject, rcpt, body))
    c.close()
    w.expect(d, "rcpt.test", "sent", rcpt=rcpt, at="mx")
    return arrived(rcpt)[0]


def data_reply(rcpt, subject):
    """One message; -> (code, text, seconds) of the end of DATA."""
    c = drtest.SMTP(d.host, d.port, timeout=drtest.scaled(40))
    c.expect("EHLO client.dr-test.example", 250)
    c.expect("MAIL FROM:<a@client.dr-test.example>", 250)
    c.expect("RCPT TO:<%s>" % rcpt, 250)
    t0 = time.time()
    code, text = c.data(message(subject, rcpt))
    took = time.time() - t0
    c.close()
    return code, text, took


def mail_reply():
    """-> (code, text, seconds) of MAIL in a new session."""
    c = drtest.SMTP(d.host, d.port, timeout=drtest.scaled(40))
    c.expect("EHLO client.dr-test.example", 250)
    t0 = time.time()
    code, text = c.cmd("MAIL FROM:<a@client.dr-test.example>")
    took = time.time() - t0
    c.close()
    return code, text, took


# -- the content timeout at the end of message: 4s is over the command
# timeout (2s) but under the content timeout (6s): the answer counts
m = deliver("slow1@rcpt.test", "sleep 4")
drtest.check(b"\r\nX-Slept: 4\r\n" in m["data"],
             "a milter answering the end of message after 4s (command "
             "timeout 2s, content timeout 6s): its header applies: %r"
             % re.findall(rb"X-[A-Za-z-]+: [^\r]*", m["data"]))
# 10s is over the content timeout: the default action (tempfail)
mark = len(d.log_text())
code, text, took = data_reply("slow2@rcpt.test", "sleep 10")
drtest.check(code == 451 and 5 <= took < 9.5,
             "a milter slower than the content timeout: 451 after ~6s "
             "(%d %s, %.1fs)" % (code, text, took))
drtest.check(re.search(r"milter %s: content timeout; "
                       r"milter_default_action = tempfail" % LM,
                       d.log_text()[mark:]),
             "the content timeout is logged")
time.sleep(drtest.scaled(1))
drtest.check(not arrived("slow2@rcpt.test"), "the timed-out message was "
             "not relayed")

# -- SMFIR_CHGFROM with ESMTP arguments: applied as the client's would be
m = deliver("chgfrom1@rcpt.test", "chgfrom-args")
drtest.check(m["mail_from"] == "new-sender@client.dr-test.example",
             "sender changed: %r" % m["mail_from"])
params = m.get("mail_params") or ""
drtest.check("RET=HDRS" in params and "ENVID=milter-envid-1" in params,
             "the milter's RET=HDRS and ENVID= reached the next hop: %r"
             % params)
mark = len(d.log_text())
c = drtest.SMTP(d.host, d.port)
qid = c.sendmail("a@client.dr-test.example", ["chgfrom2@rcpt.test"],
                 message("chgfrom-bad", "chgfrom2@rcpt.test"))
c.close()
w.expect(d, "rcpt.test", "sent", rcpt="chgfrom2@rcpt.test", at="mx")
m = arrived("chgfrom2@rcpt.test")[0]
drtest.check(m["mail_from"] == "bad-args@client.dr-test.example" and
             "RET=" not in (m.get("mail_params") or "") and
             "ENVID=" not in (m.get("mail_params") or ""),
             "refused arguments dropped, the sender change kept: %r %r"
             % (m["mail_from"], m.get("mail_params")))
drtest.check(re.search(r"%s: milter: sender change: ignoring ESMTP "
                       r"arguments \"RET=BOGUS ENVID=bad-1\"" % qid,
                       d.log_text()[mark:]),
             "the refused arguments are logged with the queue id")

# the client's REQUIRETLS stays when the milter's arguments lack it
mark = len(d.log_text())
c = drtest.SMTP(d.host, d.port)
c.expect("EHLO client.dr-test.example", 250)
c.starttls()
c.expect("EHLO client.dr-test.example", 250)
c.expect("MAIL FROM:<a@client.dr-test.example> REQUIRETLS", 250)
c.expect("RCPT TO:<rt1@rtls.test>", 250)
code, text = c.data(message("chgfrom-args", "rt1@rtls.test"))
c.close()
drtest.check(code == 250, "REQUIRETLS message accepted: %d %s"
             % (code, text))
w.expect(d, "rtls.test", "sent", rcpt="rt1@rtls.test", at="mx")
m = [x for x in rtls.messages() if "rt1@rtls.test" in x["rcpts"]][0]
params = m.get("mail_params") or ""
drtest.check(m["mail_from"] == "new-sender@client.dr-test.example" and
             "REQUIRETLS" in params and "RET=HDRS" in params,
             "a sender change without REQUIRETLS keeps the client's "
             "REQUIRETLS (and applies RET=): %r" % params)
drtest.check("milter: sender change without REQUIRETLS: the client's "
             "REQUIRETLS kept" in d.log_text()[mark:], "and says so")

# -- a 3 MiB message through the header-adding milter: intact, with the
# header, the file part read back on the io pool
line = "".join(chr(0x41 + i % 26) for i in range(76)) + "\r\n"
body = "".join("%06d %s" % (i, line) for i in range(3 * 1024 * 1024 //
                                                    (len(line) + 7) + 1))
mark = len(d.log_text())
m = deliver("big@rcpt.test", "big", body=body)
raw = m["data"]
got_body = raw.split(b"\r\n\r\n", 1)[1]
want = hashlib.sha256(body.encode()).hexdigest()
drtest.check(len(body) > 3 * 1024 * 1024 and
             hashlib.sha256(got_body).hexdigest() == want,
             "the 3 MiB body arrived intact (%d bytes, want %d)"
             % (len(got_body), len(body)))
drtest.check(("\r\nX-Body-SHA256: %s\r\n" % want).encode() in raw and
             b"\r\nX-Limit-Milter: seen\r\n" in raw,
             "the milter saw the whole body and its header applies: %r"
             % re.findall(rb"X-[A-Za-z0-9-]+: [^\r]*", raw))
drtest.check(re.search(r"milter: reading \d+ bytes back on the io pool",
                       d.log_text()[mark:]),
             "the file part was read back on the io pool")


# -- hand-made milters (mfdef.h) for the negotiation and connect limits
class Raw(threading.Thread):
    """mode "silent": accepts, never answers; "rec": answers OPTNEG with
    version (None: the offered one), actions ADDHDRS and steps, records
    the offer and every command, answers each body chunk after
    body_delay seconds, adds X-Raw: at the end of message."""

    def __init__(self, mode, version=None, steps=0, body_delay=0):
        super().__init__(daemon=True)
        self.mode, self.version, self.steps = mode, version, steps
        self.body_delay = body_delay
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.port = self.ls.getsockname()[1]
        self.spec = "inet:127.0.0.1:%d" % self.port
        self.offers, self.cmds, self.conns = [], [], []

    def serve(self, s):
        for cmd, data in packets(s):
            self.cmds.append(cmd)
            if cmd == b"O":
                offer = struct.unpack(">III", data[:12])
                self.offers.append(offer)
                s.sendall(pkt(b"O", struct.pack(
                    ">III", self.version or offer[0], 0x01, self.steps)))
            elif cmd == b"B" and self.body_delay:
                time.sleep(self.body_delay)
                s.sendall(pkt(b"c"))
            elif cmd in (b"C", b"H", b"M", b"R", b"T", b"L", b"N", b"B"):
                s.sendall(pkt(b"c"))
            elif cmd == b"E":
                s.sendall(pkt(b"h", b"X-Raw\0seen\0") + pkt(b"c"))

    def run(self):
        while True:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            self.conns.append(s)
            if self.mode == "silent":
                continue
            try:
                self.serve(s)
            except OSError:
                pass
            s.close()


# the connect timeout covers the option negotiation (command timeout 20s)
silent = Raw("silent")
silent.start()
reconfigure(milters=silent.spec, milter_command_timeout="20s",
            milter_connect_timeout="2s")
mark = len(d.log_text())
code, text, took = mail_reply()
drtest.check(code == 451 and 1.5 <= took < 8,
             "a milter that never answers OPTNEG: 451 after the 2s connect "
             "timeout, not the 20s command timeout (%d %s, %.1fs)"
             % (code, text, took))
drtest.check(re.search(r"milter %s: connect timeout \(option negotiation\)"
                       r"; milter_default_action = tempfail" % silent.spec,
                       d.log_text()[mark:]), "the timeout is logged")

# a connect that never completes: a listener whose backlog is full (the
# kernel drops the SYN)
full = socket.socket()
full.bind(("127.0.0.1", 0))
full.listen(0)
fillers = []
for _ in range(4):
    f = socket.socket()
    f.setblocking(False)
    f.connect_ex(full.getsockname())
    fillers.append(f)
time.sleep(0.5)
probe = socket.socket()
probe.settimeout(1.5)
try:
    probe.connect(full.getsockname())
    backlog_full = False
except OSError:
    backlog_full = True
probe.close()
if backlog_full:
    reconfigure(milters="inet:127.0.0.1:%d" % full.getsockname()[1])
    mark = len(d.log_text())
    code, text, took = mail_reply()
    drtest.check(code == 451 and 1.5 <= took < 8,
                 "a connect that never completes: 451 after the 2s "
                 "connect timeout (%d %s, %.1fs)" % (code, text, took))
    drtest.check(re.search(r"milter inet:127.0.0.1:%d: connect timeout; "
                           % full.getsockname()[1], d.log_text()[mark:]),
                 "the connect timeout is logged")
else:
    drtest.log("loopback completed a connect to a full backlog: the "
               "hanging connect is not tested here")
for f in fillers:
    f.close()
full.close()

# -- milter_protocol 2 and 4, with the libmilter milter
for ver in (2, 4):
    reconfigure(milters=LM, milter_protocol=str(ver),
                milter_command_timeout="5s")
    m = deliver("proto%d@rcpt.test" % ver, "protocol %d" % ver)
    drtest.check(b"\r\nX-Limit-Milter: seen\r\n" in m["data"],
                 "milter_protocol = %d: a libmilter milter negotiates, "
                 "mail flows and its header applies" % ver)

# what is offered and sent per version, with a hand-made milter
for ver, steps, data_sent in ((2, 0x7f, False), (3, 0x17f, False),
                              (4, 0x37f, True), (6, 0x1fffff, True)):
    rec = Raw("rec")
    rec.start()
    reconfigure(milters=rec.spec, milter_protocol=str(ver))
    m = deliver("rec%d@rcpt.test" % ver, "recorded %d" % ver)
    drtest.check(rec.offers and rec.offers[0] == (ver, 0x1ff, steps),
                 "milter_protocol = %d offers every action and the "
                 "version's steps 0x%x: %r" % (ver, steps, rec.offers[:1]))
    drtest.check((b"T" in rec.cmds) == data_sent,
                 "version %d: SMFIC_DATA %s (%r)" % (
                     ver, "sent" if data_sent else "never sent",
                     rec.cmds))
    drtest.check(b"\r\nX-Raw: seen\r\n" in m["data"],
                 "version %d: the hand-made milter's header applies" % ver)

# a milter that asks for a step version 2 has not (no reply to connect),
# and one that answers a newer version than offered: broken, the default
# action; with reject a 5xx
for what, bad in (("asks for SMFIP_NR_CONN at version 2",
                   Raw("rec", steps=0x1000)),
                  ("answers version 6 to an offer of 2",
                   Raw("rec", version=6))):
    bad.start()
    reconfigure(milters=bad.spec, milter_protocol="2",
                milter_default_action="reject")
    mark = len(d.log_text())
    code, text, took = mail_reply()
    drtest.check(500 <= code < 600,
                 "a milter that %s: 5xx with milter_default_action = "
                 "reject (%d %s)" % (what, code, text))
    drtest.check(re.search(r"milter %s: (option negotiation asks for steps "
                           r"0x1000|protocol version 6, not 2 to 2)"
                           % bad.spec, d.log_text()[mark:]),
                 "a milter that %s: logged" % what)
    drtest.check(b"C" not in bad.cmds, "a milter that %s: sent nothing "
                 "after the negotiation (%r)" % (what, bad.cmds))

# the content timeout covers the body chunks too: a milter that answers
# a chunk after 4s (command timeout 2s, content timeout 6s) still counts
slowbody = Raw("rec", body_delay=4)
slowbody.start()
reconfigure(milters=slowbody.spec, milter_protocol="6",
            milter_command_timeout="2s", milter_default_action="tempfail")
m = deliver("slowbody@rcpt.test", "slow body")
drtest.check(b"\r\nX-Raw: seen\r\n" in m["data"] and b"B" in slowbody.cmds,
             "a milter answering a body chunk after 4s: within the content "
             "timeout, its header applies")

drtest.check(d.alive(), "the relay keeps serving")
drtest.done()
