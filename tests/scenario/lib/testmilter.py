#!/usr/bin/python3
"""testmilter - a milter written with Debian's python3-milter (pymilter,
on Sendmail's libmilter) for milter.t: what it does is chosen by the
message.

    /usr/bin/python3 testmilter.py SOCKET      # e.g. inet:7001@127.0.0.1

  - HELO reject-helo.example: rejected (554, the whole session);
  - RCPT TO:<reject-rcpt@...>: rejected with a two-line custom reply
    (550-5.7.1 / 550 5.7.1);
  - Subject "tempfail-eom": 451 at the end of the message;
  - Subject "discard": discarded;
  - Subject "headers": adds X-Test-Milter: added and X-Test-Folded:
    (folded with bare LFs and an empty line), changes Subject: to
    "headers changed by the milter";
  - Subject "rcpts": adds <added@rcpt.test> (with NOTIFY=NEVER), deletes
    <gone@rcpt.test>;
  - Subject "sender": the envelope sender becomes
    <new-sender@client.dr-test.example>;
  - Subject "body": the body becomes "replaced by the milter", "bare
    LF", "bare CR", "split", "end" (with bare LF and CR line ends, and a
    CRLF split over two chunks);
  - Subject "quarantine": quarantined ("held for review by testmilter");
  - each connect stage is written to stdout ("testmilter: connect");
  - the end of message is answered with CONTINUE for "headers" and
    "body", ACCEPT for the rest: changes count with either;
  - every accepted message gets X-Milter-Seen: with the connect address
    and port, HELO, and the j and i macros seen at the end of message.
"""
import sys

import Milter


class TestMilter(Milter.Base):
    def __init__(self):
        self.id = Milter.uniqueID()
        self.conn = ("?", "?")
        self.helo_name = "?"
        self.subject = ""

    def connect(self, hostname, family, hostaddr):
        if isinstance(hostaddr, tuple):
            self.conn = (hostaddr[0], hostaddr[1])
        sys.stdout.write("testmilter: connect %s\n" % (self.conn,))
        sys.stdout.flush()
        return Milter.CONTINUE

    def hello(self, name):
        self.helo_name = name
        if name == "reject-helo.example":
            self.setreply("554", "5.7.1", "your HELO is refused")
            return Milter.REJECT
        return Milter.CONTINUE

    def envfrom(self, mailfrom, *args):
        self.subject = ""
        return Milter.CONTINUE

    def envrcpt(self, to, *args):
        if to.lower().startswith("<reject-rcpt@"):
            self.setreply("550", "5.7.1", "rejected by testmilter",
                          "second line of the rejection")
            return Milter.REJECT
        return Milter.CONTINUE

    def header(self, name, value):
        if name.lower() == "subject":
            self.subject = value.strip()
        return Milter.CONTINUE

    def eom(self):
        s = self.subject
        if s == "tempfail-eom":
            self.setreply("451", "4.7.1", "testmilter says later")
            return Milter.TEMPFAIL
        if s == "discard":
            return Milter.DISCARD
        if s == "headers":
            self.addheader("X-Test-Milter", "added")
            # a value with a bare fold and an empty line: stays one field
            self.addheader("X-Test-Folded", "one\ntwo\n\nThree: no")
            self.chgheader("Subject", 1, "headers changed by the milter")
        if s == "rcpts":
            self.addrcpt("<added@rcpt.test>", "NOTIFY=NEVER")
            self.delrcpt("<gone@rcpt.test>")
        if s == "sender":
            self.chgfrom("<new-sender@client.dr-test.example>")
        if s == "body":
            # bare LF and bare CR line ends, and a CRLF split over two
            # replacebody() calls: CRLF in the message
            self.replacebody(b"replaced by the milter\r\nbare LF\n"
                             b"bare CR\rsplit\r")
            self.replacebody(b"\nend\r\n")
        if s == "quarantine":
            self.quarantine("held for review by testmilter")
        self.addheader("X-Milter-Seen", "addr=%s port=%s helo=%s j=%s i=%s"
                       % (self.conn[0], self.conn[1], self.helo_name,
                          self.getsymval("j"), self.getsymval("i")))
        self.addheader("X-Milter-Session", "tls=%s cipher=%s auth=%s/%s "
                       "mail_addr=%s" % (
                           self.getsymval("{tls_version}"),
                           self.getsymval("{cipher}"),
                           self.getsymval("{auth_type}"),
                           self.getsymval("{auth_authen}"),
                           self.getsymval("{mail_addr}")))
        # both final answers keep the changes (OpenDKIM accepts)
        return Milter.CONTINUE if s in ("headers", "body") else \
            Milter.ACCEPT


def main():
    Milter.factory = TestMilter
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGHDRS | Milter.ADDRCPT |
                     Milter.ADDRCPT_PAR | Milter.DELRCPT | Milter.CHGFROM |
                     Milter.CHGBODY | Milter.QUARANTINE)
    sys.stdout.write("testmilter: listening on %s\n" % sys.argv[1])
    sys.stdout.flush()
    Milter.runmilter("testmilter", sys.argv[1], 60)


if __name__ == "__main__":
    main()
