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
import world  # noqa: E402

w = world.World()
T = w.tmp
plain = w.dest("plain.test", secure=False,
               mx=[world.MX("mx", 11, cert=None, tlsa=None)])
w.start()

policy_file = os.path.join(T, "policy")


def write_policy(text):
    with open(policy_file + ".new", "w") as f:
        f.write("# written by reload_policy.t\n" + text)
    os.chmod(policy_file + ".new", 0o644)
    os.rename(policy_file + ".new", policy_file)


write_policy("plain.test encrypt\n")
d = w.daemon(policy_file=policy_file, min_backoff="1h")



def send(local):
    w.send(d, "%s@plain.test" % local)


def reloads():
    return len(re.findall(r": reloaded /", d.log_text()))


send("u1")
# encrypt, no STARTTLS: deferred, nothing arrived (in cleartext)
w.expect(d, "plain.test", "deferred", rcpt="u1@plain.test")

write_policy("plain.test may\n")
n = reloads()
d.reload()
drtest.wait_for(lambda: reloads() > n, 20, "the reload")
send("u2")
# after SIGHUP, may: sent, in cleartext, exactly once
w.expect(d, "plain.test", "sent", rcpt="u2@plain.test", at="mx", tls=False)
drtest.check(len(plain.messages()) == 1, "one message arrived: %d" %
             len(plain.messages()))

# a broken policy file: the reload fails, "may" stays in force
write_policy("plain.test no-such-level\n")
d.reload()
drtest.wait_for(lambda: "reload failed" in d.log_text(), 20,
                "the refused reload")
send("u3")
w.expect(d, "plain.test", "sent", rcpt="u3@plain.test", at="mx", tls=False)

d.stop()            # fails on a non-zero exit or a sanitizer report
w.stop()
drtest.done()
