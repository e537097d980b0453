#!/usr/bin/python3
# timeout: 300
"""A real Postfix hands mail to danerelay (issue #7).

Debian's postfix package (scripts/install-deps --test installs it, with
no system configuration and no service started) runs here as private
instances: own config_directory, queue_directory and data_directory in
DR_TMPDIR, no listening socket at all (no smtpd in master.cf; mail comes
in with sendmail -C), its log in a file.  The relay settings are the
README's own snippets ("snippet: postfix-local", "gateway-*"), with only
the addresses, ports and paths replaced, so the README stays correct:

1. postfix-local: relayhost = [danerelay]; mail submitted with sendmail
   arrives at the recipient's DANE MX (a sink with a certificate whose
   TLSA record is in a signed zone) through danerelay, auth=dane-ee.
2. gateway: danerelay relays for nobody without AUTH, offers AUTH after
   STARTTLS; Postfix verifies its certificate (secure level, a test CA)
   and authenticates with SASL from a postmap'ed sasl_passwd.  The
   message arrives the same way, danerelay logs auth=mta1.
3. Postfix as danerelay's next hop (issue #17): its queue file (postcat)
   holds NOTIFY, ORCPT, ENVID and RET as they were submitted to
   danerelay, and danerelay sends no DSN of its own.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import certs  # noqa: E402
import world  # noqa: E402

POSTFIX = "/usr/sbin/postfix"
SENDMAIL = "/usr/sbin/sendmail"
if not os.access(POSTFIX, os.X_OK) or not os.access(SENDMAIL, os.X_OK):
    drtest.skip("Postfix is not installed (scripts/install-deps --test "
                "installs Debian's postfix package)")
if os.geteuid() != 0:
    drtest.skip("a private Postfix instance needs root (master runs as "
                "root, its daemons as the postfix user)")
try:
    import pwd
    import grp
    pwd.getpwnam("postfix")
    grp.getgrnam("postdrop")
except KeyError:
    drtest.skip("user postfix or group postdrop missing (install the "
                "postfix package)")

T = drtest.TMPDIR
os.chmod(T, 0o755)


snippet = drtest.snippet
subst = drtest.subst


class Postfix:
    """A private Postfix instance under DIR (no listening sockets)."""

    MASTER_CF = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

    def __init__(self, name, relay_settings, master_extra=""):
        self.dir = os.path.join(T, name)
        self.etc = os.path.join(self.dir, "etc")
        self.spool = os.path.join(self.dir, "spool")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "maillog")
        for d in (self.dir, self.etc, self.spool, self.data):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o755)
        shutil.chown(self.data, "postfix")
        self.started = False
        main = [
            "# private test instance, written by postfix_relay.t",
            "compatibility_level = 3.6",
            "queue_directory = " + self.spool,
            "data_directory = " + self.data,
            "mail_owner = postfix",
            "setgid_group = postdrop",
            "myhostname = %s.dr-test.example" % name,
            "mydomain = dr-test.example",
            "myorigin = $myhostname",
            "mydestination =",
            "local_recipient_maps =",
            "local_transport = error:5.1.1 no local delivery here",
            "alias_maps =",
            "alias_database =",
            # no smtpd in master.cf: nothing listens; loopback-only keeps
            # the smtp client's source address on loopback as well
            "inet_interfaces = loopback-only",
            "inet_protocols = ipv4",
            "mynetworks = 127.0.0.0/8",
            "maillog_file = " + self.log,
            "maillog_file_prefixes = " + T,
            "biff = no",
            "smtp_connect_timeout = 10s",
            "smtp_tls_loglevel = 1",
            "# --- from README.md",
            relay_settings,
        ]
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write("\n".join(main) + "\n")
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(self.MASTER_CF + master_extra)

    def run(self, *args, check=True):
        # script(1) would give a tty for error messages on stderr; the
        # log file has them anyway
        r = subprocess.run(list(args), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True,
                           timeout=drtest.scaled(60))
        if check and r.returncode != 0:
            drtest.fail("%s: exit %d: %s\n--- maillog:\n%s" % (
                " ".join(args), r.returncode, r.stdout, self.log_text()))
        return r

    def start(self, hosts=None):
        """hosts: {name: ip} that this instance (only) resolves: Postfix
        runs in a private mount namespace with its own /etc/hosts."""
        self.run(POSTFIX, "-c", self.etc, "check")
        if hosts:
            hfile = os.path.join(self.dir, "hosts")
            with open(hfile, "w") as f:
                f.write("127.0.0.1 localhost\n")
                for name, ip in hosts.items():
                    f.write("%s %s\n" % (ip, name))
            os.chmod(hfile, 0o644)
            self.run("unshare", "--mount", "--propagation", "private",
                     "sh", "-ec", 'mount --bind "$1" /etc/hosts; '
                     'exec "$2" -c "$3" start', "sh", hfile, POSTFIX,
                     self.etc)
        else:
            self.run(POSTFIX, "-c", self.etc, "start")
        self.started = True
        drtest.wait_for(lambda: self.master_pid() is not None, 20,
                        "Postfix master of %s" % self.dir)

    def master_pid(self):
        try:
            with open(os.path.join(self.spool, "pid", "master.pid")) as f:
                pid = int(f.read().split()[0])
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError, IndexError):
            return None

    def stop(self):
        if not self.started:
            return
        self.started = False
        pid = self.master_pid()
        self.run(POSTFIX, "-c", self.etc, "stop", check=False)
        deadline = time.monotonic() + drtest.scaled(20)
        while pid is not None and time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                return
            time.sleep(0.1)
        if pid is not None:
            # master is a process group leader; take its daemons too
            for sig in (signal.SIGKILL,):
                try:
                    os.killpg(pid, sig)
                except OSError:
                    pass

    def sendmail(self, sender, rcpt, body):
        p = subprocess.run([SENDMAIL, "-C", self.etc, "-f", sender, "-i",
                            "--", rcpt], input=body, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT,
                           timeout=drtest.scaled(30))
        drtest.check(p.returncode == 0, "sendmail -C %s: exit %d %s" % (
            self.etc, p.returncode, p.stdout))

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


instances = []


def cleanup():
    for pf in instances:
        pf.stop()


import atexit  # noqa: E402
atexit.register(cleanup)

# ---------------------------------------------------------------- world
w = world.World()
mx = w.dest("dest.test", mx=[world.MX("mx", 11)])
# 3.: a Postfix smtpd is the MX of pfnext.test (no DANE, no MTA-STS)
PF_IP = drtest.ip(14)
w.rig.zone("pfnext.test", secure=False,
           records=["@ MX 10 mx", "mx A %s" % PF_IP])
w.start()


def body(n):
    return ("From: Application <app@client.dr-test.example>\n"
            "To: <user%d@dest.test>\n"
            "Subject: through Postfix and danerelay %d\n"
            "\n"
            "Hello from Postfix, message %d.\n" % (n, n, n)).encode()


def arrived(n):
    return [m for m in mx.messages()
            if "user%d@dest.test" % n in m.get("rcpts", [])]


def check_delivery(n, pf, d):
    """Message n went Postfix -> danerelay -> DANE MX, once, intact."""
    drtest.wait_for(lambda: arrived(n), 60,
                    "message %d at the DANE MX (Postfix log:\n%s)" %
                    (n, pf.log_text()[-2000:]))
    m = arrived(n)
    drtest.check(len(m) == 1, "message %d arrived once, got %d" %
                 (n, len(m)))
    m = m[0]
    drtest.check(m["tls"], "message %d arrived over TLS" % n)
    drtest.check(m["mail_from"] == "app@client.dr-test.example",
                 "envelope sender kept: %r" % m["mail_from"])
    data = m["data"]
    drtest.check(b"Hello from Postfix, message %d." % n in data,
                 "message %d: body intact" % n)
    drtest.check(b"Subject: through Postfix and danerelay %d" % n in data,
                 "message %d: header intact" % n)
    drtest.check(re.search(rb"Message-Id: <[^>]+@%s\.dr-test\.example>" %
                           os.path.basename(pf.dir).encode(), data, re.I)
                 is not None, "message %d: Postfix's Message-ID" % n)
    # Postfix says it was sent to the relay ...
    drtest.wait_for(lambda: re.search(
        r"to=<user%d@dest\.test>, relay=[^\[]+\[%s\]:%d, .*status=sent" %
        (n, re.escape(d.host), d.port), pf.log_text()),
        20, "Postfix's status=sent line for message %d" % n)
    # ... and danerelay delivered it with DANE
    # (the MX may have the message a moment before danerelay logs it)
    line = drtest.wait_for(lambda: re.search(
        r"to=<user%d@dest\.test>, relay=mx\.dest\.test\[.*status=sent.*" %
        n, d.log_text()), 20, "danerelay's status=sent line for message %d"
        % n)
    drtest.check(line is not None and "auth=dane-ee" in line.group(0),
                 "danerelay: sent with auth=dane-ee: %s" %
                 (line.group(0) if line else None))


# ---------------------------------------- 1. Postfix on the same host
d1 = w.daemon(name="local", min_backoff="1h")
local = subst(snippet("postfix-local"),
              [("[127.0.0.1]:10025", "[%s]:%d" % (d1.host, d1.port))])
pf1 = Postfix("pflocal", local)
instances.append(pf1)
pf1.start()
pf1.sendmail("app@client.dr-test.example", "user1@dest.test", body(1))
check_delivery(1, pf1, d1)
pf1.stop()
d1.stop()

# ----------------------------- 2. a remote gateway with STARTTLS + AUTH
ca = certs.CA(w.pki, "Gateway Test CA")
gw_ip = drtest.ip(3)
gw_port = drtest.free_port(gw_ip)
GW_NAME = "relay.dr-test.example"
gw_cert = ca.issue([GW_NAME])
auth_file = os.path.join(T, "gw-auth")
conf_pairs = [("192.0.2.25:587", "%s:%d" % (gw_ip, gw_port)),
              ("/etc/danerelay/auth", auth_file),
              ("/etc/danerelay/fullchain.pem", gw_cert.chain),
              ("/etc/danerelay/privkey.pem", gw_cert.key)]
gw_conf = subst(snippet("gateway-conf"), conf_pairs)
opts = dict(min_backoff="1h")
for line in gw_conf.splitlines():
    k, _, v = line.partition("=")
    opts[k.strip()] = v.strip()
drtest.check(opts.get("allow_clients") == "", "gateway relays for nobody "
             "without AUTH")
d2 = w.daemon(name="gw", start=False, host=gw_ip, port=gw_port, **opts)
# the README's commands make the auth file (the user exists now)
r = subprocess.run(["sh", "-ec", subst(snippet("gateway-auth"),
                                       [("/etc/danerelay/auth", auth_file)])],
                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                   stderr=subprocess.STDOUT, universal_newlines=True,
                   timeout=60)
drtest.check(r.returncode == 0, "README auth_file commands: %s" % r.stdout)
os.chmod(gw_cert.key, 0o644)
d2.start()

pf2dir = os.path.join(T, "pfgw")
pf_pairs = [("relay.example.org", GW_NAME), (":587", ":%d" % gw_port),
            ("/etc/postfix/", pf2dir + "/etc/"),
            ("/etc/ssl/certs/ca-certificates.crt", ca.crt)]
# The gateway's name resolves from Postfix's own /etc/hosts (see start());
# "native" makes Postfix's smtp client look there (test plumbing, not
# part of the README's settings).
gw_main = subst(snippet("gateway-postfix"), pf_pairs) + \
    "\nsmtp_host_lookup = native"
pf2 = Postfix("pfgw", gw_main)
instances.append(pf2)
sasl = os.path.join(pf2.etc, "sasl_passwd")
with open(sasl, "w") as f:
    f.write(subst(snippet("gateway-sasl_passwd"), pf_pairs[:2]) + "\n")
os.chmod(sasl, 0o600)
pf2.run("/usr/sbin/postmap", "-c", pf2.etc, sasl)
pf2.start(hosts={GW_NAME: gw_ip})
pf2.sendmail("app@client.dr-test.example", "user2@dest.test", body(2))
check_delivery(2, pf2, d2)
glog = d2.log_text()
drtest.check(re.search(r"client=unknown\[[0-9.]+\], sasl_method=PLAIN, "
                       r"sasl_username=mta1", glog) or
             re.search(r"client=unknown\[[0-9.]+\], sasl_method=LOGIN, "
                       r"sasl_username=mta1", glog),
             "gateway: Postfix authenticated as mta1")
drtest.check(re.search(r"from=<app@client\.dr-test\.example>, size=\d+, "
                       r"nrcpt=1, tls=TLSv1\.[23], auth=mta1", glog),
             "gateway: the message came in over TLS, authenticated")
drtest.check(re.search(r"Verified TLS connection established to %s\[%s\]"
                       % (re.escape(GW_NAME), re.escape(gw_ip)),
                       pf2.log_text()),
             "Postfix verified the gateway's certificate")
drtest.check("authentication failed" not in glog, "no AUTH failure")
# and without AUTH the gateway relays nothing
c = drtest.SMTP(gw_ip, gw_port)
c.expect("EHLO stranger.dr-test.example", 250)
c.expect("MAIL FROM:<app@client.dr-test.example>", 250)
code, text = c.cmd("RCPT TO:<user3@dest.test>")
drtest.check(500 <= code < 600, "gateway without AUTH: RCPT refused, got "
             "%d %s" % (code, text))
c.close()
pf2.stop()
d2.stop()

# ------------- 3. Postfix as the next hop: DSN parameters passed on (#17)
# Its smtpd listens where pfnext.test's MX points and puts everything on
# hold, so the queue file shows what danerelay handed over.
pf3 = Postfix("pfnext", "\n".join([
    "relay_domains = pfnext.test",
    "smtpd_peername_lookup = no",
    "smtpd_recipient_restrictions = check_recipient_access static:HOLD, "
    "permit_mynetworks, reject_unauth_destination"]),
    master_extra="%s:%d inet n - n - - smtpd\n" % (PF_IP, w.port))
instances.append(pf3)
pf3.start()
d3 = w.daemon(name="next", min_backoff="1h")
c = drtest.SMTP(d3.host, d3.port)
c.expect("EHLO client.dr-test.example", 250)
c.expect("MAIL FROM:<app@client.dr-test.example> RET=HDRS "
         "ENVID=pf+2Benv1", 250)
c.expect("RCPT TO:<u1@pfnext.test> NOTIFY=SUCCESS,DELAY "
         "ORCPT=rfc822;orig+2Bu1@pfnext.test", 250)
c.expect("RCPT TO:<u2@pfnext.test> NOTIFY=NEVER", 250)
code, text = c.data(b"From: <app@client.dr-test.example>\r\n"
                    b"Subject: DSN to Postfix\r\n\r\nhello\r\n")
c.close()
drtest.check(code == 250, "accepted: %d %s" % (code, text))
for r in ("u1", "u2"):
    world.wait_outcome(d3, "%s@pfnext.test" % r)
    drtest.check("status=sent" in world.outcome(d3, "%s@pfnext.test" % r),
                 "%s sent to Postfix: %s" % (r, world.outcome(
                     d3, "%s@pfnext.test" % r)))
hold = os.path.join(pf3.spool, "hold")
drtest.wait_for(lambda: os.listdir(hold), 20, "the message in Postfix's "
                "hold queue (log:\n%s)" % pf3.log_text()[-2000:])
qid = os.listdir(hold)[0]
pc = pf3.run("/usr/sbin/postcat", "-c", pf3.etc, "-e", "-q", qid).stdout
drtest.log("postcat:\n%s", pc)
rec = {}
pending = {}
for ln in pc.splitlines():
    k, _, v = ln.partition(": ")
    if k == "named_attribute":
        k, _, v = v.partition("=")
        if k in ("envelope_id", "ret_flags"):
            rec[k] = v
        elif k in ("notify_flags", "dsn_orig_rcpt"):
            pending[k] = v      # of the recipient record that follows
    elif k == "recipient":
        rec[v] = pending
        pending = {}
# Postfix keeps ENVID and ORCPT decoded; ret_flags 2 = HDRS; notify_flags
# are its bits NEVER 1, SUCCESS 2, FAILURE 4, DELAY 8
drtest.check(rec.get("envelope_id") == "pf+env1", "ENVID at Postfix: %s"
             % rec.get("envelope_id"))
drtest.check(rec.get("ret_flags") == "2", "RET=HDRS at Postfix: %s"
             % rec.get("ret_flags"))
u1 = rec.get("u1@pfnext.test", {})
drtest.check(u1.get("dsn_orig_rcpt") == "rfc822;orig+u1@pfnext.test",
             "ORCPT at Postfix: %s" % u1)
drtest.check(u1.get("notify_flags") == "10", "NOTIFY=SUCCESS,DELAY at "
             "Postfix: %s" % u1)
drtest.check(rec.get("u2@pfnext.test", {}).get("notify_flags") == "1",
             "NOTIFY=NEVER at Postfix: %s" % rec.get("u2@pfnext.test"))
# Postfix offers DSN: the success is its to report, not ours
drtest.check("notification" not in d3.log_text(),
             "no DSN from danerelay for a DSN-capable next hop")
pf3.stop()
d3.stop()
w.stop()
drtest.done()
