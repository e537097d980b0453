#!/usr/bin/python3
"""nsmilter - a small milter (Debian's python3-milter) for
milter_nonsmtpd.t: what it does at the end of a message is read from a
file at each message, so the test changes it without a restart.

    /usr/bin/python3 nsmilter.py SOCKET MODEFILE HEADER

MODEFILE holds one of:
  - "accept" (or a missing file): adds HEADER: with the connect host
    name and address, the HELO, the envelope sender and recipients and
    the j and i macros, appends " [HEADER]" to the Subject: (a field a
    DKIM signature covers), then accepts;
  - "reject": 550 5.7.1 "rejected by nsmilter";
  - "tempfail": 451 4.7.1 "nsmilter says later";
  - "sleep N": sleeps N seconds, then as "accept";
  - "quarantine": as "accept", and quarantined ("held by nsmilter").
A message to a recipient with "nsreject" in its address is rejected
whatever the mode.  Each end of message is written to stdout before it is answered
("nsmilter: eom MODE from=<...> i=ID").
"""
import sys
import time

import Milter


def mode():
    try:
        with open(sys.argv[2]) as f:
            return f.read().strip() or "accept"
    except OSError:
        return "accept"


class NsMilter(Milter.Base):
    def __init__(self):
        self.host = self.addr = self.helo_name = "?"
        self.sender = "?"
        self.rcpts = []
        self.subject = None

    def connect(self, hostname, family, hostaddr):
        self.host = hostname
        if isinstance(hostaddr, tuple):
            self.addr = hostaddr[0]
        return Milter.CONTINUE

    def hello(self, name):
        self.helo_name = name
        return Milter.CONTINUE

    def envfrom(self, mailfrom, *args):
        self.sender = mailfrom
        self.rcpts = []
        self.subject = None
        return Milter.CONTINUE

    def envrcpt(self, to, *args):
        self.rcpts.append(to)
        return Milter.CONTINUE

    def header(self, name, value):
        if name.lower() == "subject" and self.subject is None:
            self.subject = value
        return Milter.CONTINUE

    def eom(self):
        m = mode()
        sys.stdout.write("nsmilter: eom %s from=%s i=%s\n" % (
            m, self.sender, self.getsymval("i")))
        sys.stdout.flush()
        if m == "reject" or any("nsreject" in r for r in self.rcpts):
            self.setreply("550", "5.7.1", "rejected by nsmilter")
            return Milter.REJECT
        if m == "tempfail":
            self.setreply("451", "4.7.1", "nsmilter says later")
            return Milter.TEMPFAIL
        if m.startswith("sleep "):
            time.sleep(float(m.split()[1]))
        if m == "quarantine":
            self.quarantine("held by nsmilter")
        self.addheader(sys.argv[3], "host=%s addr=%s helo=%s from=%s "
                       "rcpts=%s j=%s i=%s" % (
                           self.host, self.addr, self.helo_name, self.sender,
                           ",".join(self.rcpts), self.getsymval("j"),
                           self.getsymval("i")))
        if self.subject is not None:
            self.chgheader("Subject", 1, "%s [%s]" % (self.subject.strip(),
                                                     sys.argv[3]))
        return Milter.ACCEPT


def main():
    Milter.factory = NsMilter
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGHDRS | Milter.QUARANTINE)
    sys.stdout.write("nsmilter: listening on %s\n" % sys.argv[1])
    sys.stdout.flush()
    Milter.runmilter("nsmilter", sys.argv[1], 60)


if __name__ == "__main__":
    main()
