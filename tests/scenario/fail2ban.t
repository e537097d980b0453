#!/usr/bin/python3
# timeout: 120
"""The fail2ban filter (contrib/fail2ban/filter.d/danerelay.conf) against
a real daemon's log.

One danerelayd with STARTTLS and AUTH; a client from its own address
fails AUTH in every way (PLAIN with a wrong password, malformed PLAIN,
LOGIN, a user name that forges "client=[other address]"), and succeeds
once.  fail2ban-regex with the shipped filter must find exactly the
failures and always the real client address: in the daemon's own -f log
format and as syslog lines.  Without fail2ban installed the same
failregex is checked with Python's re (a weaker check; the runner's
install-deps --test installs fail2ban).
"""
import base64
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402

FILTER = os.path.join(drtest.SRCDIR, "contrib", "fail2ban", "filter.d",
                      "danerelay.conf")
JAIL = os.path.join(drtest.SRCDIR, "contrib", "fail2ban", "jail.d",
                    "danerelay.conf")
T = drtest.TMPDIR
os.chmod(T, 0o755)

crt, key = drtest.make_cert(T, "relay.dr-test.example")
authfile = drtest.auth_file(os.path.join(T, "auth"),
                            {"alice": "right-password"})
d = drtest.Daemon(tls_cert_file=crt, tls_key_file=key, auth_file=authfile)
d.start()

client_ip = drtest.ip(3)
FORGED = "10.66.66.66"


def session():
    c = drtest.SMTP(d.host, d.port, source=client_ip)
    c.expect("EHLO client.dr-test.example", 250)
    c.starttls()
    c.expect("EHLO client.dr-test.example", 250)
    return c


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


failures = 0
c = session()
# 1. PLAIN, wrong password
code, _ = c.cmd("AUTH PLAIN " + b64("\0alice\0wrong"))
drtest.check(code == 535, "PLAIN wrong password -> 535, got %s" % code)
failures += 1
# 2. PLAIN, malformed (no NULs)
code, _ = c.cmd("AUTH PLAIN " + b64("garbage"))
drtest.check(code == 535 or 500 <= code < 600, "malformed PLAIN -> 5xx")
failures += 1
c.cmd("QUIT")
c.close()
c = session()
# 3. LOGIN, wrong password
code, _ = c.cmd("AUTH LOGIN")
drtest.check(code == 334, "AUTH LOGIN -> 334, got %s" % code)
code, _ = c.cmd(b64("alice"))
drtest.check(code == 334, "LOGIN user -> 334, got %s" % code)
code, _ = c.cmd(b64("nope"))
drtest.check(code == 535, "LOGIN wrong password -> 535, got %s" % code)
failures += 1
# 4. a user name that forges another client address
code, _ = c.cmd("AUTH PLAIN " + b64("\0x>, client=[%s]\0wrong" % FORGED))
drtest.check(code == 535, "forged user name -> 535, got %s" % code)
failures += 1
# 5. success: must not count
code, _ = c.cmd("AUTH PLAIN " + b64("\0alice\0right-password"))
drtest.check(code == 235, "right password -> 235, got %s" % code)
c.cmd("QUIT")
c.close()
d.stop()

log = d.log_text()
lines = [ln for ln in log.splitlines() if "authentication failed" in ln]
drtest.log("failure lines logged:\n  " + "\n  ".join(lines))
# The count is the client's: four attempts failed (the success must not
# count), so four lines, no more and no fewer, whatever the daemon logged.
drtest.check(len(lines) == failures, "%d failure lines (one per failed "
             "attempt), got %d" % (failures, len(lines)))
expect = failures

# The same lines as a syslog daemon writes them (no level word).
syslog_file = os.path.join(T, "mail.log")
with open(syslog_file, "w") as f:
    for ln in log.splitlines():
        m = re.match(r"\S+Z (danerelayd\[\d+\]): \w+: (.*)$", ln)
        if m:
            f.write("Nov 23 23:55:23 relay %s: %s\n" % m.groups())

if drtest.which("fail2ban-regex") and os.path.isdir("/etc/fail2ban"):
    conf = os.path.join(T, "fail2ban")
    shutil.copytree("/etc/fail2ban", conf)
    shutil.copy(FILTER, os.path.join(conf, "filter.d", "danerelay.conf"))
    shutil.copy(JAIL, os.path.join(conf, "jail.d", "danerelay.conf"))
    for what, path in (("daemon -f log", d.logfile),
                       ("syslog lines", syslog_file)):
        r = subprocess.run(["fail2ban-regex", "-c", conf, "-o", "ip", path,
                            "danerelay"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, timeout=60)
        drtest.check(r.returncode == 0, "%s: fail2ban-regex exit 0, got %d:"
                     " %s" % (what, r.returncode, r.stdout[-500:]))
        ips = r.stdout.split()
        drtest.check(len(ips) == expect, "%s: %d matches expected, got %r" %
                     (what, expect, ips))
        drtest.check(all(ip == client_ip for ip in ips),
                     "%s: every match names %s (never the forged %s): %r"
                     % (what, client_ip, FORGED, ips))
    # the jail file parses and uses the filter
    r = subprocess.run(["fail2ban-client", "-c", conf, "-d"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True,
                       timeout=60)
    drtest.check(r.returncode == 0 and "'danerelay'" in r.stdout,
                 "fail2ban-client -d loads the danerelay jail: %s"
                 % r.stdout[-500:])
else:
    drtest.log("fail2ban-regex not installed: checking the failregex with "
               "Python's re only")
    text = open(FILTER).read()
    fr = re.search(r"^failregex = (.*)$", text, re.M).group(1)
    fr = fr.replace("%(__prefix_line)s", r"(?:\S+ )*danerelayd\[\d+\]: ")
    fr = fr.replace("<HOST>", r"(?P<host>[0-9a-fA-F:.]+)")
    rx = re.compile(fr)
    for what, path in (("daemon -f log", d.logfile),
                       ("syslog lines", syslog_file)):
        hosts = [m.group("host") for m in map(rx.search, open(path))
                 if m]
        drtest.check(len(hosts) == expect and
                     all(x == client_ip for x in hosts),
                     "%s: %d matches of %s expected, got %r" %
                     (what, expect, client_ip, hosts))
drtest.done()
