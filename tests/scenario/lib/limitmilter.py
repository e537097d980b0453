#!/usr/bin/python3
"""limitmilter - a milter on Debian's python3-milter (Sendmail's
libmilter) for milter_limits.t: what it does is chosen by the Subject.

    /usr/bin/python3 limitmilter.py SOCKET      # e.g. inet:7001@127.0.0.1

  - Subject "sleep N": sleeps N seconds at the end of message, then
    adds X-Slept: N (the content timeout tests);
  - Subject "chgfrom-args": the envelope sender becomes
    <new-sender@client.dr-test.example> with "RET=HDRS
    ENVID=milter-envid-1";
  - Subject "chgfrom-bad": the sender becomes
    <bad-args@client.dr-test.example> with "RET=BOGUS ENVID=bad-1"
    (RET= the relay's parser refuses);
  - every message gets X-Limit-Milter: seen, and X-Body-SHA256: the
    SHA-256 of the body it was sent (hex), so a test can tell that the
    milter saw the whole body.
"""
import hashlib
import sys
import time

import Milter


class LimitMilter(Milter.Base):
    def __init__(self):
        self.id = Milter.uniqueID()
        self.subject = ""
        self.h = hashlib.sha256()

    def envfrom(self, mailfrom, *args):
        self.subject = ""
        self.h = hashlib.sha256()
        return Milter.CONTINUE

    def header(self, name, value):
        if name.lower() == "subject":
            self.subject = value.strip()
        return Milter.CONTINUE

    def body(self, chunk):
        self.h.update(chunk)
        return Milter.CONTINUE

    def eom(self):
        s = self.subject
        if s.startswith("sleep "):
            n = float(s.split()[1])
            time.sleep(n)
            self.addheader("X-Slept", s.split()[1])
        if s == "chgfrom-args":
            self.chgfrom("<new-sender@client.dr-test.example>",
                         "RET=HDRS ENVID=milter-envid-1")
        if s == "chgfrom-bad":
            self.chgfrom("<bad-args@client.dr-test.example>",
                         "RET=BOGUS ENVID=bad-1")
        self.addheader("X-Limit-Milter", "seen")
        self.addheader("X-Body-SHA256", self.h.hexdigest())
        return Milter.CONTINUE


def main():
    Milter.factory = LimitMilter
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGFROM)
    sys.stdout.write("limitmilter: listening on %s\n" % sys.argv[1])
    sys.stdout.flush()
    Milter.runmilter("limitmilter", sys.argv[1], 60)


if __name__ == "__main__":
    main()
