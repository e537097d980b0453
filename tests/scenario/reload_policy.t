#!/usr/bin/python3
# timeout: 180
"""SIGHUP takes a changed policy_file (issue #15: main.c now builds the
delivery engine's parts and swaps the policy table in them on reload).

One insecure destination (no DNSSEC, so no DANE) whose MX offers no
STARTTLS.  With the policy table saying "plain.test encrypt" a message
is deferred (mandatory TLS, never cleartext); the file is changed to
"plain.test may", SIGHUP, and the next message is delivered in
cleartext.  A policy file that no longer parses is refused at the reload
and the table in force stays ("may": a third message is delivered).
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import dnsrig  # noqa: E402
import sink  # noqa: E402

for tool in ("ldns-signzone", "nsd"):
    if not drtest.which(tool):
        drtest.skip("%s not installed (scripts/install-deps --test)" % tool)

T = drtest.TMPDIR
os.chmod(T, 0o755)
port = drtest.free_port(drtest.ip(10))
rig = dnsrig.DnsRig(os.path.join(T, "dns"), drtest.ip(1),
                    drtest.free_port(drtest.ip(1)))
ip = drtest.ip(11)
plain = sink.spawn(os.path.join(T, "sink"), ip, port, starttls=False)
rig.zone("plain.test", secure=False, records=["@ MX 10 mx", "mx A " + ip])
rig.start()

policy_file = os.path.join(T, "policy")


def write_policy(text):
    with open(policy_file + ".new", "w") as f:
        f.write("# written by reload_policy.t\n" + text)
    os.chmod(policy_file + ".new", 0o644)
    os.rename(policy_file + ".new", policy_file)


write_policy("plain.test encrypt\n")
d = drtest.Daemon(dns_config=rig.unbound_conf(),
                  trust_anchor_file=rig.trust_anchor_file,
                  smtp_port=port, policy_file=policy_file,
                  min_backoff="1h", smtp_connect_timeout="5s",
                  smtp_timeout="10s")
d.start()

final = re.compile(r"to=<(u\d)@plain\.test>, .*status=(sent|deferred|"
                   r"bounced)[^\n]*")


def outcome(local):
    drtest.wait_for(lambda: any(m.group(1) == local for m in
                                final.finditer(d.log_text())),
                    60, "an outcome for %s" % local)
    for m in final.finditer(d.log_text()):
        if m.group(1) == local:
            return m.group(2), m.group(0)


def send(local):
    c = drtest.SMTP(d.host, d.port)
    c.sendmail("sender@senders.test", ["%s@plain.test" % local],
               ("From: <sender@senders.test>\r\nTo: <%s@plain.test>\r\n"
                "Subject: reload policy\r\n\r\nHello.\r\n" % local).encode())
    c.close()


def reloads():
    return len(re.findall(r": reloaded /", d.log_text()))


send("u1")
st, line = outcome("u1")
drtest.check(st == "deferred", "encrypt, no STARTTLS: deferred, got %s"
             % line)
drtest.check(len(plain.messages()) == 0, "nothing arrived in cleartext")

write_policy("plain.test may\n")
n = reloads()
d.reload()
drtest.wait_for(lambda: reloads() > n, 20, "the reload")
send("u2")
st, line = outcome("u2")
drtest.check(st == "sent", "after SIGHUP, may: sent, got %s" % line)
drtest.check(len(plain.messages()) == 1, "one message arrived: %d" %
             len(plain.messages()))

# a broken policy file: the reload fails, "may" stays in force
write_policy("plain.test no-such-level\n")
d.reload()
drtest.wait_for(lambda: "reload failed" in d.log_text(), 20,
                "the refused reload")
send("u3")
st, line = outcome("u3")
drtest.check(st == "sent", "after a refused reload, may stays: got %s" %
             line)

d.stop()
d.check_sanitizers()
rig.stop()
plain.stop()
drtest.done()
