#!/usr/bin/python3
# timeout: 120
"""sender_limit.t - sender_rate_limit: recipients accepted per sender.

One danerelayd with sender_rate_limit = 5/h, STARTTLS and AUTH, its
metrics on, and the test's address in allow_clients.

1. A client allowed by its address, envelope sender domain a.example:
   five recipients are accepted over two messages; the sixth gets
   "450 4.7.1" naming the limit; the log has the NOQUEUE line and the
   "refused: ..., client=[ADDR]" line that the shipped fail2ban filter
   matches; another sender domain (b.example) is still accepted, and
   so is A.EXAMPLE's limit shared with a.example (one sender).
2. An authenticated user counts as that user, whatever the sender
   domain: alice's sixth recipient is refused while an unauthenticated
   session with the same sender domain is accepted.
3. /metrics counts the refusals; `danerelay status` lists the senders
   nearest the limit.  A restart forgets the counts (in memory only, as
   the README says).
"""

import base64
import os
import re
import sys
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import drtest  # noqa: E402

T = drtest.TMPDIR
crt, key = drtest.make_cert(T, "relay.dr-test.example")
authfile = drtest.auth_file(os.path.join(T, "auth"),
                            {"alice": "right-password"})
mhost = drtest.ip(2)
mport = drtest.free_port(mhost)
d = drtest.Daemon(tls_cert_file=crt, tls_key_file=key, auth_file=authfile,
                  metrics_listen="%s:%d" % (mhost, mport),
                  allow_clients="%s/32" % drtest.ip(3),
                  sender_rate_limit="5/h", min_backoff="1h")
d.start()
CLIENT = drtest.ip(3)


def session(user=None):
    c = drtest.SMTP(d.host, d.port, source=CLIENT)
    c.expect("EHLO client.dr-test.example", 250)
    if user is not None:
        c.starttls()
        c.expect("EHLO client.dr-test.example", 250)
        c.expect("AUTH PLAIN " + base64.b64encode(
            ("\0%s\0right-password" % user).encode()).decode(), 235)
    return c


def rcpts(c, sender, addrs):
    """MAIL, then RCPT for each: -> [(code, text)]; RSET at the end."""
    c.expect("MAIL FROM:<%s>" % sender, 250)
    out = [c.cmd("RCPT TO:<%s>" % a) for a in addrs]
    c.expect("RSET", 250)
    return out


MSG = b"Subject: t\r\n\r\nhello\r\n"

# -- 1. by envelope sender domain ---------------------------------------------
c = session()
drtest.check(c.sendmail("x@a.example", ["r1@dest.example", "r2@dest.example",
                                         "r3@dest.example"], MSG),
             "three recipients of a.example accepted")
got = rcpts(c, "y@A.EXAMPLE", ["r4@dest.example", "r5@dest.example",
                               "r6@dest.example"])
drtest.check([g[0] for g in got] == [250, 250, 450],
             "the 4th and 5th accepted, the 6th refused: %r" % got)
code, text = got[2]
drtest.check(text.startswith("4.7.1 <r6@dest.example>: Recipient address "
                             "rejected: sender domain has sent to 5 "
                             "recipients, the limit of sender_rate_limit "
                             "5/h; try again in "),
             "the refusal names the limit: %r" % text)
got = rcpts(c, "x@b.example", ["r7@dest.example"])
drtest.check(got[0][0] == 250, "another sender domain is accepted: %r" % got)
c.cmd("QUIT")
c.close()

log = d.log_text()
drtest.check(re.search(r"NOQUEUE: reject: RCPT from unknown\[%s\]: 450 "
                       r"4\.7\.1 <r6@dest\.example>: sender rate limit 5/h "
                       r"reached for domain a\.example; from=<y@A\.EXAMPLE>"
                       % re.escape(CLIENT), log) is not None,
             "the NOQUEUE line names sender, rate and client")
# the shipped fail2ban filter's second failregex, on danerelayd's -f log
f2b = open(os.path.join(drtest.SRCDIR, "contrib", "fail2ban", "filter.d",
                        "danerelay.conf")).read()
drtest.check(r"refused: [^\[\]]*, client=\[<HOST>\]" in f2b,
             "the fail2ban filter matches 'refused: ..., client=[HOST]'")
drtest.check(re.search(r"warning: refused: sender rate limit 5/h reached, "
                       r"client=\[%s\]\s*$" % re.escape(CLIENT), log, re.M)
             is not None, "the refusal is logged for fail2ban")

# -- 2. by authenticated user --------------------------------------------------
c = session("alice")
got = rcpts(c, "x@c.example", ["u%d@dest.example" % i for i in range(6)])
drtest.check([g[0] for g in got] == [250] * 5 + [450],
             "alice: five accepted, the sixth refused: %r" % got)
drtest.check("user has sent to 5 recipients" in got[5][1],
             "the refusal says it is the user's limit: %r" % got[5][1])
c.close()
c = session()
got = rcpts(c, "x@c.example", ["v@dest.example"])
drtest.check(got[0][0] == 250, "c.example without AUTH is its own sender: "
             "%r" % got)
c.close()

# -- 3. metrics, status, restart ---------------------------------------------
with urllib.request.urlopen("http://%s:%d/metrics" % (mhost, mport),
                            timeout=drtest.scaled(10)) as r:
    body = r.read().decode()
m = re.search(r"^danerelay_smtpd_sender_rate_limited_total (\d+)$", body,
              re.M)
drtest.check(m is not None and int(m.group(1)) == 2,
             "metrics count the two refusals: %r" % (m and m.group(0)))
r = d.cli("status")
drtest.check(r.returncode == 0 and
             "Sender limit: sender_rate_limit 5/h; nearest to it:" in
             r.stdout, "status has the sender limit: %r" % r.stdout)
lines = [ln.split() for ln in r.stdout.splitlines() if ln.startswith("  ")]
drtest.check(lines[:2] and sorted(" ".join(x[:3]) for x in lines[:2]) ==
             ["domain a.example 5", "user alice 5"],
             "status lists a.example and alice first, at 5: %r" % lines)
d.restart()
c = session()
got = rcpts(c, "x@a.example", ["after@dest.example"])
drtest.check(got[0][0] == 250, "a restart forgets the counts: %r" % got)
c.close()

drtest.done()
