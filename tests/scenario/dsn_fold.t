#!/usr/bin/python3
# timeout: 300
"""DSN lines stay within 998 octets (RFC 5322 §2.1.1; issue #13 item 8).

A recipient with a long address (243 octets) at a domain whose MX host
name is long (242 octets) is refused with a long multi-line 550.  The
recorded error ("<mx>[ip]:port said: 550 5.1.1 ... (in reply to RCPT TO
command)") then made a line of the DSN's text part longer than 998
octets, which strict receivers refuse, and a DSN from <> that is refused
is lost.  The DSN that arrives must have no line over 998 octets, and
its text part and Diagnostic-Code, unfolded, must still say the whole
error.
"""
import email
import email.policy
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import certs  # noqa: E402
import sink  # noqa: E402
import world  # noqa: E402

DOM = "d" * 63 + "." + "e" * 63 + "." + "f" * 40 + ".long.test"
MXL = "m" * 63
RCPT = "u" * 64 + "@" + DOM
WORDS = ["reason%03d" % i for i in range(60)]
LINES = [" ".join(WORDS[i:i + 20]) for i in (0, 20, 40)]
REPLY = "\\n".join("550 5.1.1 " + l for l in LINES)

w = world.World()
# world.dest() names its MX "mx"; this one needs a long name.  The names
# live in the unsigned zone long.test: NSD cannot load a zone file named
# after DOM, and a TLSA owner name for this host would be longer than DNS
# allows (a signed zone would make the relay look TLSA up).
ip = drtest.ip(11)
PRE = DOM[:-len(".long.test")]
cert = certs.self_signed(w.pki, [MXL + "." + DOM], cn="long-mx",
                         name="long-mx")
w.rig.zone("long.test", secure=False,
           records=["%s MX 10 %s.%s" % (PRE, MXL, PRE),
                    "%s.%s A %s" % (MXL, PRE, ip)])
dest = sink.spawn(os.path.join(w.tmp, "sink-long"), ip, w.port,
                  cert=cert.chain, key=cert.key,
                  rules=["RCPT||0|" + REPLY])
w.sinks["long"] = dest
senders = w.dest("senders.test", 12)
w.start()
d = w.daemon(min_backoff="1h")

c = drtest.SMTP(d.host, d.port)
c.sendmail("sender@senders.test", [RCPT],
           ("From: <sender@senders.test>\r\nTo: <%s>\r\nSubject: long\r\n"
            "\r\nA long refusal.\r\n" % RCPT).encode())
c.close()

bounced = re.compile(r"to=<%s>, .*status=bounced \((.*)\)$" %
                     re.escape(RCPT), re.M)
drtest.wait_for(lambda: bounced.search(d.log_text()) is not None,
                30, "the bounce")
error = bounced.search(d.log_text()).group(1)
drtest.log("recorded error (%d octets): %s", len(error), error)
drtest.check(len("<%s>: %s" % (RCPT, error)) > 998,
             "the test's error is long enough to need folding")


def dsns():
    return [m for m in senders.messages() if m["mail_from"] == ""]


drtest.wait_for(lambda: len(dsns()) == 1, 30, "the DSN")
raw = dsns()[0]["data"]
lines = raw.split(b"\r\n")
longest = max(len(x) for x in lines)
drtest.check(longest <= 998, "no DSN line over 998 octets (longest %d)" %
             longest)
drtest.check(all(b"\n" not in x and b"\r" not in x for x in lines),
             "CRLF line ends only")

msg = email.message_from_bytes(raw, policy=email.policy.default)
text = status = None
for part in msg.walk():
    if part.get_content_type() == "text/plain" and text is None:
        text = part.get_payload(decode=True).decode()
    elif part.get_content_type() == "message/delivery-status":
        status = part
drtest.check(text is not None and status is not None, "DSN parts")
flat = re.sub(r"\r?\n    ", " ", text)
drtest.check("<%s>: %s" % (RCPT, error) in flat,
             "the text part, unfolded, has the whole error")
diag = None
for block in status.get_payload():
    if block.get("Final-Recipient"):
        diag = " ".join(str(block.get("Diagnostic-Code", "")).split())
want = "smtp; 550 5.1.1 " + " ".join(LINES)
drtest.check(diag is not None and diag.startswith(want[:400]),
             "Diagnostic-Code, unfolded, is the server's reply: %s" % diag)

d.stop()
w.stop()
drtest.done()
