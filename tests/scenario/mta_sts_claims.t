#!/usr/bin/python3
# timeout: 240
"""What README.md promises about the MTA-STS policy fetch and no other
test checks, through a running danerelayd (world.py: signed DNS, nginx
for the policy hosts, sinks):

- negative cache: "A failed fetch of one policy id is not retried for 5
  minutes": a policy host answering 404 is asked once, and a second
  message to the domain a moment later does not ask again (nginx's
  access log counts);
- "10 s connect and 30 s total timeouts": a policy host that accepts the
  connection and then says nothing is given up after 10 s (the first
  delivery waits for the fetch, so the message's outcome comes 10 s
  after it was sent, not at the 40 s cap); one that answers a byte every
  3 s (never 10 s of silence) is given up after 30 s in all.
"""
import os
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import world  # noqa: E402
from world import MX  # noqa: E402

w = world.World()
POLICY = world.policy("enforce", ["nomatch.example"])
# 404: the policy is there for nginx's site, then removed
w.dest("nf.test", mx=[MX("mx", 11, tlsa=None)], secure=False,
       mta_sts=POLICY)
w.web.remove_policy("mta-sts.nf.test")
# the silent and the slow policy hosts: our own listeners on the HTTPS
# port, at their own addresses
STALL_IP, SLOW_IP = drtest.ip(6), drtest.ip(7)
for dom, ip in (("stall.test", STALL_IP), ("slow.test", SLOW_IP)):
    w.dest(dom, mx=[MX("mx", 12 if dom == "stall.test" else 13, tlsa=None)],
           secure=False, records=['_mta-sts TXT "v=STSv1; id=1"',
                                  "mta-sts A %s" % ip])
w.start()
d = w.daemon(min_backoff="1h")
port = w.web.port

stop = threading.Event()
conns = {"stall": [], "slow": []}


def listener(ip, name, handler=None):
    """Accept on (ip, the HTTPS port); handler(conn) in a thread, or
    nothing at all (a silent policy host)."""
    s = socket.socket()
    s.bind((ip, port))
    s.listen(8)
    s.settimeout(0.2)
    while not stop.is_set():
        try:
            c, _ = s.accept()
        except socket.timeout:
            continue
        conns[name].append((time.monotonic(), c))
        if handler is not None:
            threading.Thread(target=handler, args=(c,), daemon=True).start()
    s.close()


slow_cert = w.root.issue(["mta-sts.slow.test"])


def slow_one(c):
    """TLS, read the request, then the response a byte every 3 s."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(slow_cert.chain, slow_cert.key)
    try:
        t = ctx.wrap_socket(c, server_side=True)
        t.recv(4096)                    # the request
        for b in b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n":
            if stop.is_set():
                break
            t.sendall(bytes([b]))
            time.sleep(3)
    except OSError:
        pass


for args in ((STALL_IP, "stall"), (SLOW_IP, "slow", slow_one)):
    threading.Thread(target=listener, args=args, daemon=True).start()
time.sleep(0.3)


def sent_and_outcome(rcpt, what):
    t0 = time.monotonic()
    w.send(d, [rcpt])
    line = drtest.wait_for(lambda: w.outcomes(d).get(rcpt, [None])[0], 90,
                           "the outcome for %s" % rcpt)
    dt = time.monotonic() - t0
    drtest.log("%s: outcome after %.1f s: %s", what, dt, line)
    return dt, line


# -- negative cache
dt, line = sent_and_outcome("u1@nf.test", "404 policy")
drtest.check("status=sent" in line, "nf.test: no policy (404): delivered "
             "as without MTA-STS: %s" % line)
asked = len(w.web.requests("mta-sts.nf.test"))
drtest.check(asked == 1, "nf.test: the policy host asked once (%d)" % asked)
dt, line = sent_and_outcome("u2@nf.test", "404 policy, again")
drtest.check("status=sent" in line, "nf.test: second message delivered")
again = len(w.web.requests("mta-sts.nf.test"))
drtest.check(again == 1, "nf.test: the failed fetch of id %s not retried "
             "within 5 minutes: %d requests" % ("(same)", again))

# -- 10 s: a silent policy host
dt, line = sent_and_outcome("u@stall.test", "silent policy host")
drtest.check(len(conns["stall"]) >= 1, "stall.test: the policy host was "
             "connected to")
drtest.check("status=sent" in line, "stall.test: delivered without a "
             "policy after the timeout: %s" % line)
drtest.check(9.5 <= dt <= 16, "stall.test: given up after the 10 s wait "
             "limit, not sooner and not at the 40 s cap: %.1f s" % dt)

# -- 30 s: a slow policy host that never pauses for 10 s
dt, line = sent_and_outcome("u@slow.test", "slow policy host")
drtest.check(len(conns["slow"]) >= 1, "slow.test: the policy host was "
             "connected to")
drtest.check("status=sent" in line, "slow.test: delivered without a "
             "policy after the timeout: %s" % line)
drtest.check(29.5 <= dt <= 36, "slow.test: given up after 30 s in all, not "
             "at the 40 s cap: %.1f s" % dt)

stop.set()
for k in conns:
    for _, c in conns[k]:
        c.close()
w.stop()
drtest.done()
