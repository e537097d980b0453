#!/usr/bin/python3
"""macromilter - a milter on Sendmail's libmilter (Debian's python3-milter)
that writes down the macros it is given, for milter_macros.t.

    /usr/bin/python3 macromilter.py SOCKET LOG [symlist]

At each callback it appends one JSON line to LOG:
    {"stage": "connect", "macros": {NAME: VALUE, ...}, "args": [...]}
with every name of NAMES that libmilter has a value for at that point
(libmilter keeps the macros of earlier stages, so a name is "sent at a
stage" if it first shows up there), and the ESMTP arguments of MAIL and
RCPT.  With "symlist" it asks for its own lists in the option
negotiation (libmilter's smfi_setsymlist): {client_port},
{daemon_port} and {client_addr} at connect, {mail_host} at MAIL.
Every message is accepted unchanged.
"""
import json
import sys

import Milter

NAMES = ["i", "j", "v", "_", "{auth_authen}", "{auth_author}",
         "{auth_type}", "{cert_issuer}", "{cert_subject}", "{cipher}",
         "{cipher_bits}", "{client_addr}", "{client_name}", "{client_port}",
         "{client_ptr}", "{daemon_addr}", "{daemon_name}", "{daemon_port}",
         "{mail_addr}", "{mail_host}", "{mail_mailer}", "{rcpt_addr}",
         "{rcpt_host}", "{rcpt_mailer}", "{tls_version}"]
LOG = sys.argv[2]


class MacroMilter(Milter.Base):
    def note(self, stage, args=()):
        seen = {}
        for n in NAMES:
            v = self.getsymval(n)
            if v is not None:
                seen[n] = v
        with open(LOG, "a") as f:
            f.write(json.dumps({"stage": stage, "macros": seen,
                                "args": list(args)}) + "\n")

    def connect(self, hostname, family, hostaddr):
        self.note("connect")
        return Milter.CONTINUE

    def hello(self, name):
        self.note("helo")
        return Milter.CONTINUE

    def envfrom(self, mailfrom, *args):
        self.note("mail", args)
        return Milter.CONTINUE

    def envrcpt(self, to, *args):
        self.note("rcpt", args)
        return Milter.CONTINUE

    def data(self):
        self.note("data")
        return Milter.CONTINUE

    def eoh(self):
        self.note("eoh")
        return Milter.CONTINUE

    def eom(self):
        self.note("eom")
        return Milter.ACCEPT


class SymlistMilter(MacroMilter):
    SYMS = {Milter.M_CONNECT: "{client_port} {daemon_port} {client_addr}",
            Milter.M_ENVFROM: "{mail_host}"}

    def negotiate(self, opts):
        # libmilter's smfi_setsymlist; pymilter's own setsymlist() hands
        # the C module bytes where it wants str under Python 3
        r = MacroMilter.negotiate(self, opts)
        for stage, names in self.SYMS.items():
            self._ctx.setsymlist(stage, names)
        return r


def main():
    Milter.factory = (SymlistMilter if sys.argv[3:] == ["symlist"] else
                      MacroMilter)
    Milter.runmilter("macromilter", sys.argv[1], 60)


if __name__ == "__main__":
    main()
