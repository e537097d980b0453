#!/usr/bin/python3
# timeout: 240
"""The MTA-STS cache gauge counts real policies (issue #15).

danerelay_mta_sts_cache_policies used to be a gauge nobody set (always
0).  Now the metrics listener asks main.c at every scrape, and main.c
asks the MTA-STS manager how many policies its cache holds.

A DNS world without DNSSEC (so DANE never applies) with _mta-sts TXT
records, nginx serving the policies over HTTPS with a test CA, one SMTP
sink per MX host, danerelayd with mta_sts = yes and metrics_listen.  The
gauge is 0 before any mail; a message to a domain with a policy makes it
1, two more (another policy, and a domain whose fetch fails with 404,
which caches nothing) make it 2, and it agrees with `danerelay mta-sts
show`; `danerelay mta-sts forget` of one policy brings it back to 1 (the
daemon reads the shared cache file).
"""
import os
import re
import sys
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import certs  # noqa: E402
import dnsrig  # noqa: E402
import nginx  # noqa: E402
import sink  # noqa: E402

for tool in ("ldns-signzone", "nsd"):
    if not drtest.which(tool):
        drtest.skip("%s not installed (scripts/install-deps --test)" % tool)
if not nginx.available():
    drtest.skip("nginx not installed (scripts/install-deps --test)")

T = drtest.TMPDIR
os.chmod(T, 0o755)
pki = os.path.join(T, "pki")
os.makedirs(pki)
os.chmod(pki, 0o755)
root = certs.CA(pki, "Gauge Test Root CA")

smtp_port = drtest.free_port(drtest.ip(10))
rig = dnsrig.DnsRig(os.path.join(T, "dns"), drtest.ip(1),
                    drtest.free_port(drtest.ip(1)))
web = nginx.Nginx(os.path.join(T, "nginx"), drtest.ip(5))
web_cert = root.issue(["mta-sts.%s.test" % h for h in ("one", "two", "bad")],
                      name="policy-hosts")
sinks = []


def policy(mx):
    return ("version: STSv1\r\nmode: enforce\r\nmx: %s\r\n"
            "max_age: 86400\r\n" % mx)


def dest(n, label, serve):
    domain = "%s.test" % label
    ip = drtest.ip(10 + n)
    c = root.issue(["mx." + domain])
    s = sink.spawn(os.path.join(T, "sink-" + label), ip, smtp_port,
                   cert=c.chain, key=c.key, starttls=True)
    sinks.append(s)
    rig.zone(domain, secure=False, records=[
        "mta-sts A %s" % web.ip, "@ MX 10 mx", "mx A %s" % ip,
        '_mta-sts TXT "v=STSv1; id=1"'])
    if isinstance(serve, str):
        web.site("mta-sts." + domain, web_cert.chain, web_cert.key,
                 policy=serve)
    else:
        web.site("mta-sts." + domain, web_cert.chain, web_cert.key,
                 locations=serve)


dest(1, "one", policy("mx.one.test"))
dest(2, "two", policy("mx.two.test"))
dest(3, "bad", {nginx.POLICY_PATH: "return 404;"})

rig.start()
web.start()
mhost = drtest.ip(2)
mport = drtest.free_port(mhost)
URL = "http://%s:%d/metrics" % (mhost, mport)
d = drtest.Daemon(dns_config=rig.unbound_conf(),
                  trust_anchor_file=rig.trust_anchor_file,
                  smtp_port=smtp_port, mta_sts="yes", https_port=web.port,
                  ca_file=root.crt, min_backoff="1h",
                  smtp_connect_timeout="5s", smtp_timeout="10s",
                  metrics_listen="%s:%d" % (mhost, mport))
d.start()


def gauge():
    with urllib.request.urlopen(URL, timeout=drtest.scaled(10)) as r:
        text = r.read().decode()
    m = re.search(r"^danerelay_mta_sts_cache_policies (\d+)$", text, re.M)
    drtest.check(m is not None, "the gauge is in the exposition")
    return int(m.group(1)) if m else None


final = re.compile(r"to=<u@([a-z.]+)>, .*status=(sent|deferred|bounced)")


def send_and_wait(*doms):
    c = drtest.SMTP(d.host, d.port)
    for dom in doms:
        c.sendmail("sender@senders.test", ["u@" + dom],
                   ("From: <sender@senders.test>\r\nTo: <u@%s>\r\n"
                    "Subject: gauge\r\n\r\nHello.\r\n" % dom).encode())
    c.close()
    drtest.wait_for(lambda: set(doms) <= {m.group(1) for m in
                                          final.finditer(d.log_text())},
                    drtest.scaled(60), "delivery outcomes for %s" % (doms,))
    for dom in doms:
        m = re.search(r"to=<u@%s>, .*status=(\w+)[^\n]*" % re.escape(dom),
                      d.log_text())
        drtest.check(m.group(1) == "sent", "%s: sent, log: %s" %
                     (dom, m.group(0)))


def wait_gauge(n, what):
    drtest.wait_for(lambda: gauge() == n, drtest.scaled(20), what)


drtest.check(gauge() == 0, "no policy cached at the start: gauge 0")

send_and_wait("one.test")
drtest.check("mta-sts: one.test: fetched policy id=1" in d.log_text(),
             "one.test's policy was fetched")
wait_gauge(1, "gauge 1 after one.test's policy was fetched")

send_and_wait("two.test", "bad.test")
drtest.check(re.search(r"mta-sts: bad\.test: policy fetch for id=1 failed",
                       d.log_text()) is not None,
             "bad.test's fetch failed (404)")
wait_gauge(2, "gauge 2: one.test and two.test, nothing for bad.test")
r = d.cli("mta-sts", "show")
drtest.check(r.returncode == 0 and "2 cached MTA-STS policies" in r.stdout,
             "danerelay mta-sts show agrees: %s" % r.stdout[-500:])

r = d.cli("mta-sts", "forget", "one.test")
drtest.check(r.returncode == 0, "mta-sts forget one.test: %s" %
             (r.stdout + r.stderr))
wait_gauge(1, "gauge 1 after one.test's policy was forgotten")

d.stop()
d.check_sanitizers()
rig.stop()
web.stop()
for s in sinks:
    s.stop()
drtest.done()
