#!/usr/bin/python3
# timeout: 300
"""The README's operator snippets, run as written (issue #7).

Only names, addresses, ports and paths are replaced (example.org and
example.net by a signed test zone, 127.0.0.1:10025 by the test daemon,
and so on); everything else is the README's text:

- dns-zone: the self-hoster's records become a DNSSEC-signed zone served
  by NSD (so they parse as zone data), their TXT records are served as
  written, and the TLSA record carries the digest that the README's
  tlsa-digest command computes from the MX's certificate;
- that MX is a sink with that certificate: `danerelay probe` on the zone
  says deliverable with DANE-EE, and the application snippets (Python
  smtplib; swaks and curl from the shell; Python with STARTTLS, a
  verified certificate and AUTH through a gateway set up with the
  gateway-conf and gateway-auth snippets) each deliver one message
  there through danerelay, authenticated by DANE;
- mta-sts-policy, served by nginx at the zone's mta-sts address, is
  fetched and parsed by danerelay itself (`danerelay mta-sts refresh`,
  `show`): mode enforce, the zone's MX, a max_age within RFC 8461's
  limits.
"""
import atexit
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import certs  # noqa: E402
import nginx  # noqa: E402
import world  # noqa: E402

for tool in ("swaks", "curl"):
    if not drtest.which(tool):
        drtest.skip("%s not installed (scripts/install-deps --test)" % tool)
if not nginx.available():
    drtest.skip("nginx not installed (scripts/install-deps --test)")

T = drtest.TMPDIR
os.chmod(T, 0o755)
DOM = "selfhost.test"


snippet = drtest.snippet
subst = drtest.subst


def sh(script, timeout=60):
    return subprocess.run(["sh", "-ec", script], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True,
                          timeout=drtest.scaled(timeout))


# ---------------------------------------------------------------- the MX
w = world.World()
mx_ip = drtest.ip(20)
mx_cert = certs.self_signed(w.pki, ["mail." + DOM])

# tlsa-digest: the README's command on the MX's certificate
cmd = subst(snippet("tlsa-digest"),
            [("/etc/letsencrypt/live/mail.example.org/cert.pem",
              mx_cert.crt)])
r = sh(cmd)
digest = r.stdout.strip()
drtest.check(r.returncode == 0 and re.fullmatch(r"[0-9a-f]{64}", digest),
             "tlsa-digest prints a SHA-256: %r" % r.stdout)
want = mx_cert.tlsa(3, 1, 1).split()[-1].lower()
drtest.check(digest == want, "tlsa-digest equals the 3 1 1 data of the "
             "certificate (%s, certs.py says %s)" % (digest, want))

# ---------------------------------------------------------------- the zone
zone = subst(snippet("dns-zone"), [
    ("8cb0fc6c527506a053f4f14c8464bebbd6dede2738d11468dd953d7d6a3021f1",
     digest),
    ("_25._tcp.", "_%d._tcp." % w.port),
    ("192.0.2.25", mx_ip), ("192.0.2.80", drtest.ip(21)),
    ("example.org.", DOM + ".")])
records = []
for line in zone.splitlines():
    if " AAAA " in line:
        continue        # the test world is IPv4 (no foreign ::1 traffic)
    records.append(line)
# the MX is a sink with that certificate; the zone's records are the
# README's (publish=False: the world adds none of its own)
mx = w.dest(DOM, mx=[world.MX("mail", 20, cert=mx_cert, publish=False)],
            records=records)
w.start()
rig = w.rig

if drtest.which("drill"):
    def txt(name):
        p = subprocess.run(["drill", "-p", str(rig.port), "@" + rig.ip, name,
                            "TXT"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, universal_newlines=True,
                           timeout=20)
        return p.stdout
    for owner, want_txt in (
            (DOM, '"v=spf1 mx -all"'),
            ("_dmarc." + DOM, '"v=DMARC1; p=quarantine; '
             'rua=mailto:dmarc-reports@example.org"'),
            ("_mta-sts." + DOM, '"v=STSv1; id=2024060101"'),
            ("_smtp._tls." + DOM, '"v=TLSRPTv1; '
             'rua=mailto:tlsrpt-reports@example.org"')):
        ans = txt(owner)
        drtest.check(want_txt in ans,
                     "TXT %s served as written: %s" % (owner, ans[-400:]))

# ---------------------------------------------------------------- relays
d = w.daemon(name="local", min_backoff="1h")

r = d.cli("probe", DOM, timeout=60)
drtest.check(r.returncode == 0 and "result: deliverable" in r.stdout,
             "danerelay probe %s: exit %d\n%s%s" % (DOM, r.returncode,
                                                   r.stdout, r.stderr))
drtest.check("dane-ee" in r.stdout, "probe verified the MX by DANE-EE:\n%s"
             % r.stdout)

# a gateway with AUTH, from the README's gateway snippets
ca = certs.CA(w.pki, "Gateway Test CA")
GW = "relay.dr-test.example"
gw_ip = drtest.ip(3)
gw_port = drtest.free_port(gw_ip)
gw_cert = ca.issue([GW])
os.chmod(gw_cert.key, 0o644)
auth_file = os.path.join(T, "gw-auth")
gw_conf = subst(snippet("gateway-conf"), [
    ("192.0.2.25:587", "%s:%d" % (gw_ip, gw_port)),
    ("/etc/danerelay/auth", auth_file),
    ("/etc/danerelay/fullchain.pem", gw_cert.chain),
    ("/etc/danerelay/privkey.pem", gw_cert.key)])
opts = dict(min_backoff="1h")
for line in gw_conf.splitlines():
    k, _, v = line.partition("=")
    opts[k.strip()] = v.strip()
d2 = w.daemon(name="gw", start=False, host=gw_ip, port=gw_port, **opts)
r = sh(subst(snippet("gateway-auth"), [("/etc/danerelay/auth", auth_file),
                                       ("mta1:", "app1:")]))
drtest.check(r.returncode == 0, "gateway-auth commands: %s" % r.stdout)
d2.start()

# ---------------------------------------------------------------- apps
addr_pairs = [("app@example.org", "app@" + DOM),
              ("user@example.net", "user@" + DOM)]
local = [("127.0.0.1", d.host), ("10025", str(d.port))]

py = subst(snippet("app-python"), addr_pairs + local +
           [("Nightly report", "python snippet")])
r = subprocess.run(["/usr/bin/python3", "-c", py], stdin=subprocess.DEVNULL,
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                   universal_newlines=True, timeout=drtest.scaled(60))
drtest.check(r.returncode == 0, "app-python: %s" % r.stdout)

shell = subst(snippet("app-shell"),
              [("app@example.org", "app@" + DOM),
               ("user@example.net", "user@" + DOM),
               ("127.0.0.1:10025", "%s:%d" % (d.host, d.port))])
r = sh(shell)
drtest.check(r.returncode == 0, "app-shell: %s" % r.stdout[-1500:])

pyauth = subst(snippet("app-python-auth"), addr_pairs + [
    ('"relay.example.org", 587', '"%s", %d' % (GW, gw_port)),
    ("ssl.create_default_context()",
     "ssl.create_default_context(cafile=%r)" % ca.crt),
    ("Nightly report", "python auth snippet")])
# test plumbing: the gateway's name resolves to its loopback address
resolve = ("import socket\n"
           "_gai = socket.getaddrinfo\n"
           "def _getaddrinfo(host, *a, **kw):\n"
           "    return _gai(%r if host == %r else host, *a, **kw)\n"
           "socket.getaddrinfo = _getaddrinfo\n" % (gw_ip, GW))
r = subprocess.run(["/usr/bin/python3", "-c", resolve + pyauth],
                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                   stderr=subprocess.STDOUT, universal_newlines=True,
                   timeout=drtest.scaled(60))
drtest.check(r.returncode == 0, "app-python-auth: %s" % r.stdout)

subjects = ["python snippet", "swaks test", "curl test",
            "python auth snippet"]


def arrived():
    got = {}
    for m in mx.messages():
        for s in subjects:
            if ("Subject: " + s).encode() in m["data"]:
                got.setdefault(s, []).append(m)
    return got


drtest.wait_for(lambda: len(arrived()) == len(subjects), 60,
                "all application messages at the MX (have %s)" %
                sorted(arrived()))
got = arrived()
for s in subjects:
    ms = got.get(s, [])
    drtest.check(len(ms) == 1, "%s: one message, got %d" % (s, len(ms)))
    if ms:
        drtest.check(ms[0]["tls"], "%s: over TLS" % s)
        drtest.check(ms[0]["mail_from"] == "app@" + DOM,
                     "%s: sender %r" % (s, ms[0]["mail_from"]))
SENT = re.compile(r"to=<user@%s>, relay=mail\.%s\[.*status=sent.*" %
                  (re.escape(DOM), re.escape(DOM)))
# (the MX may have a message a moment before danerelay logs it)
drtest.wait_for(lambda: len(SENT.findall(d.log_text() + d2.log_text())) >=
                len(subjects), 20, "danerelay's status=sent lines")
sent = SENT.findall(d.log_text() + d2.log_text())
drtest.check(len(sent) == len(subjects) and
             all("auth=dane-ee" in s for s in sent),
             "every message delivered with auth=dane-ee: %r" % sent)
drtest.check(re.search(r"sasl_method=(PLAIN|LOGIN), sasl_username=app1",
                       d2.log_text()) is not None,
             "the python auth snippet logged in as app1")

# ---------------------------------------------------------------- MTA-STS
# The policy as written, served where the zone's records say (the
# mta-sts A record, the _mta-sts TXT id), fetched and parsed by
# danerelay's own MTA-STS code: `danerelay mta-sts refresh` and `show`.
pol = subst(snippet("mta-sts-policy"), [("example.org", DOM)])
sts_cert = ca.issue(["mta-sts." + DOM])
web = nginx.Nginx(os.path.join(T, "nginx"), drtest.ip(21))
web.site("mta-sts." + DOM, sts_cert.chain, sts_cert.key, policy=pol + "\n")
web.start()
atexit.register(web.stop)
sts = w.daemon(name="sts", start=False, mta_sts="yes", https_port=web.port,
               ca_file=ca.crt, min_backoff="1h")
r = sts.cli("mta-sts", "refresh", DOM, timeout=60)
drtest.check(r.returncode == 0 and
             ("%s: fetched policy id=2024060101, mode enforce" % DOM)
             in r.stdout, "mta-sts refresh of the README's policy: %s%s"
             % (r.stdout, r.stderr))
drtest.check(len(web.requests("mta-sts." + DOM)) >= 1,
             "the policy was fetched from mta-sts.%s" % DOM)
r = sts.cli("mta-sts", "show", DOM)
drtest.log("%s", r.stdout)
drtest.check(r.returncode == 0 and re.search(r"^mode: +enforce$", r.stdout,
                                             re.M) is not None,
             "the parsed policy's mode is enforce: %s%s" % (r.stdout,
                                                            r.stderr))
mxs = re.findall(r"^mx: +(\S+)$", r.stdout, re.M)
drtest.check(mxs == ["mail." + DOM], "the parsed policy's mx is the zone's "
             "MX (mail.%s): %r" % (DOM, mxs))
ma = re.search(r"^max_age: +(\d+)", r.stdout, re.M)
drtest.check(ma is not None and 86400 <= int(ma.group(1)) <= 31557600,
             "parsed max_age within a day and RFC 8461's limit: %s"
             % r.stdout)
drtest.check(re.search(r"^example\.org\.\s+MX\s+10 mail\.example\.org\.$",
                       snippet("dns-zone"), re.M) is not None,
             "the zone's MX is the policy's mx (mail.example.org)")
sts.cli("mta-sts", "forget", DOM)

w.stop()
drtest.done()
