#!/usr/bin/python3
# timeout: 300
"""A real Exim hands mail to danerelay with the README's router and
transport ("snippet: exim-router", "exim-transport"), only the relay's
address and port replaced.

Exim is Debian's exim4-daemon-light binary unpacked by lib/get-exim
(Postfix is the installed MTA; Debian allows one).  It runs as a
private instance: its own configuration (-C), spool and log directory
in DR_TMPDIR, no daemon and no listener: a message submitted on stdin
is delivered at once (-odi) through the manualroute router to
danerelay, which delivers it to the recipient's DANE MX (auth=dane-ee).
"""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import world  # noqa: E402

if os.geteuid() != 0:
    drtest.skip("the unpacked Exim runs its deliveries as Debian-exim: "
                "needs root")
r = subprocess.run([os.path.join(drtest.LIBDIR, "get-exim")],
                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                   stderr=subprocess.STDOUT, universal_newlines=True,
                   timeout=600)
if r.returncode != 0:
    drtest.skip("Exim unavailable: " + r.stdout.strip()[-300:])
EXIM = r.stdout.strip().splitlines()[-1]

T = drtest.TMPDIR
os.chmod(T, 0o755)
snippet = drtest.snippet

# the world: a signed zone with a DANE MX (a sink)
w = world.World()
mx = w.dest("dest.test", mx=[world.MX("mx", 11)])
w.start()
d = w.daemon(min_backoff="1h")

# the Exim instance
ex = os.path.join(T, "exim")
spool = os.path.join(ex, "spool")
logdir = os.path.join(ex, "log")
for p in (ex, spool, logdir):
    os.makedirs(p, exist_ok=True)
    os.chmod(p, 0o755)
for p in (spool, logdir):
    shutil.chown(p, "Debian-exim")
router = snippet("exim-router")
transport = snippet("exim-transport")
if "127.0.0.1::10025" not in router:
    drtest.fail("snippet exim-router changed: no 127.0.0.1::10025")
router = router.replace("127.0.0.1::10025", "%s::%d" % (d.host, d.port))
conf = os.path.join(ex, "exim.conf")
with open(conf, "w") as f:
    f.write("""# private test instance, written by exim_relay.t
exim_path = %(exim)s
spool_directory = %(spool)s
log_file_path = %(log)s/%%slog
primary_hostname = exim.dr-test.example
qualify_domain = exim.dr-test.example
domainlist local_domains = @
keep_environment =
tls_advertise_hosts =
# no daemon, no listener: -odi delivers in the submitting process

begin routers

%(router)s

begin transports

%(transport)s

begin retry

*   *   F,2h,15m
""" % dict(exim=EXIM, spool=spool, log=logdir, router=router,
           transport=transport))
os.chmod(conf, 0o644)

r = subprocess.run([EXIM, "-C", conf, "-bV"], stdin=subprocess.DEVNULL,
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                   universal_newlines=True, timeout=30)
drtest.check(r.returncode == 0, "exim -bV accepts the configuration: %s" %
             r.stdout[-1000:])

body = (b"From: Application <app@exim.dr-test.example>\n"
        b"To: <user@dest.test>\n"
        b"Subject: through Exim and danerelay\n"
        b"\n"
        b"Hello from Exim.\n")
r = subprocess.run([EXIM, "-C", conf, "-odi", "-f", "app@exim.dr-test.example",
                    "--", "user@dest.test"], input=body,
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                   timeout=drtest.scaled(60))
drtest.check(r.returncode == 0, "exim -odi: exit %d %s" % (r.returncode,
                                                          r.stdout))


def mainlog():
    try:
        with open(os.path.join(logdir, "mainlog"), errors="replace") as f:
            return f.read()
    except OSError:
        return ""


drtest.wait_for(lambda: mx.messages(), 60, "the message at the DANE MX "
                "(Exim log:\n%s)" % mainlog())
msgs = mx.messages()
drtest.check(len(msgs) == 1, "one message at the MX, got %d" % len(msgs))
m = msgs[0]
drtest.check(m["tls"], "arrived over TLS")
drtest.check(m["mail_from"] == "app@exim.dr-test.example",
             "envelope sender kept: %r" % m["mail_from"])
drtest.check(b"Hello from Exim." in m["data"], "body intact")
drtest.check(re.search(rb"Message-Id: <[^>]+@exim\.dr-test\.example>",
                       m["data"], re.I) is not None, "Exim's Message-ID")
log = mainlog()
hop = re.search(r"=> user@dest\.test R=danerelay T=danerelay_smtp "
                r"H=%s \[%s\] .*C=\"250 [^\"]*queued as ([0-9A-F]+)\"" %
                (re.escape(d.host), re.escape(d.host)), log)
drtest.check(hop is not None, "Exim delivered through the danerelay router "
             "to %s:\n%s" % (d.host, log))
qid = hop.group(1) if hop else "NONE"
# (the MX may have the message a moment before danerelay logs it)
line = drtest.wait_for(lambda: re.search(
    r"%s: to=<user@dest\.test>, relay=mx\.dest\.test\[.*status=sent.*" %
    qid, d.log_text()), 20, "danerelay's status=sent line")
drtest.check(line is not None and "auth=dane-ee" in line.group(0),
             "danerelay sent it with auth=dane-ee: %s" %
             (line.group(0) if line else None))
w.stop()
drtest.done()
