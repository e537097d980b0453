#!/usr/bin/python3
# smtpd_auth_guess.t - issue #12 item 2: guessing AUTH passwords is no
# longer free.  Failures are counted per client address (over every worker
# and every connection): each one's 535 comes later than the last
# (smtpd_auth_failure_delay times the address's failures), and after
# smtpd_auth_failure_limit failures the address is refused for
# smtpd_auth_block_time; both show in the metrics.
#
# timeout: 200
#
# Here: limit 5, delay 1 s, block 12 s.  The guesser (outside
# allow_clients) fails twice, reconnects (the count goes on), fails twice
# more: its replies take about 1, 2, 3 and 4 s.  A second session of the
# same address, opened before, gets 421 for AUTH once the fifth failure
# blocked the address; the fifth gets 421 4.7.0 and the connection is
# closed, a new connection gets 421 4.7.0 at once, both logged as
# "refused: ..., client=[ADDR]" for fail2ban.  Another address is not
# affected (right password: 235 at once; its own first failure: 1 s), nor
# is a client in allow_clients (its failures are not delayed).  The
# metrics count the failures, the delayed replies and their time, the
# refusals, and show one blocked address.  After the block the address
# gets in again and its count has started over.
import base64
import os
import re
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import drtest  # noqa: E402
from drtest import check, log  # noqa: E402

HOST = "relay.dr-test.example"
GOOD = drtest.ip(2)             # allow_clients
GUESSER = drtest.ip(3)
OTHER = drtest.ip(4)
LIMIT, DELAY, BLOCK = 5, 1, 12
METRICS = "%s:%d" % (drtest.TEST_IP, drtest.free_port())
T = drtest.TMPDIR

crt, key = drtest.make_cert(T, HOST)
authfile = drtest.auth_file(os.path.join(T, "auth"),
                            {"alice": "right-password"})
d = drtest.Daemon(tls_cert_file=crt, tls_key_file=key, auth_file=authfile,
                  allow_clients=GOOD + "/32", metrics_listen=METRICS,
                  smtpd_auth_failure_limit=LIMIT,
                  smtpd_auth_failure_delay="%ds" % DELAY,
                  smtpd_auth_block_time="%ds" % BLOCK,
                  # the session opened before the block waits idle
                  # through the delays (10 s and more): not the data
                  # rate's business here (smtpd_flood.t tests that)
                  smtpd_min_data_rate="0",
                  smtpd_unauth_session_timeout="300s")
d.start()


def b64(s):
    return base64.b64encode(s.encode()).decode()


def session(src):
    c = drtest.SMTP(d.host, d.port, source=src, timeout=30)
    c.expect("EHLO client.dr-test.example", 250)
    c.starttls(hostname=HOST)
    c.expect("EHLO client.dr-test.example", 250)
    return c


def guess(c, pw):
    t0 = time.monotonic()
    code, text = c.cmd("AUTH PLAIN " + b64("\0alice\0" + pw))
    return code, text, time.monotonic() - t0


def scrape():
    with urllib.request.urlopen("http://%s/metrics" % METRICS,
                                timeout=10) as r:
        body = r.read().decode()
    v = {}
    for m in re.finditer(r"^(danerelay_smtpd_[a-z_]+)(\{[^}]*\})? (\S+)$",
                         body, re.M):
        v[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return v


# 1. growing delays, across connections
times = []
c = session(GUESSER)
later = session(GUESSER)        # open before the block
for i in range(2):
    code, text, dt = guess(c, "guess-a%d" % i)
    check(code == 535, "failure %d: 535, got %d %s" % (i + 1, code, text))
    times.append(dt)
c.cmd("QUIT")
c.close()
c = session(GUESSER)
for i in range(2):
    code, text, dt = guess(c, "guess-b%d" % i)
    check(code == 535, "failure %d after reconnecting: 535, got %d %s"
          % (i + 3, code, text))
    times.append(dt)
log("reply times of failures 1-4: %s", ", ".join("%.2fs" % t
                                                  for t in times))
for n, dt in enumerate(times, 1):
    check(n * DELAY - 0.05 <= dt <= drtest.scaled(n * DELAY + 1.5),
          "failure %d answered after %.2fs (want about %ds)"
          % (n, dt, n * DELAY))

# 2. the fifth failure blocks the address
code, text, dt = guess(c, "guess-b2")
log("failure 5 -> %d %s after %.2fs", code, text, dt)
check(code == 421 and text.startswith("4.7.0"),
      "failure %d: 421 4.7.0, got %d %s" % (LIMIT, code, text))
check(dt < drtest.scaled(1.0), "the blocking failure is not delayed: %.2fs"
      % dt)
check(drtest.closed_within(c.sock, 5),
      "the connection is closed after the block")
c.close()
code, text = later.cmd("AUTH PLAIN " + b64("\0alice\0right-password"))
check(code == 421 and text.startswith("4.7.0"),
      "AUTH in a session opened before the block: %d %s" % (code, text))
later.close()
nc = drtest.SMTP(d.host, d.port, source=GUESSER, timeout=10)
check(nc.banner[0] == 421 and nc.banner[1].startswith("4.7.0"),
      "a new connection from the blocked address: %s" % (nc.banner,))
nc.close()
t_block = time.monotonic()

# 3. nobody else pays for it
c = session(OTHER)
code, text, dt = guess(c, "right-password")
check(code == 235 and dt < drtest.scaled(1.0),
      "another address with the right password: %d after %.2fs" % (code, dt))
c.close()
c = session(OTHER)
code, text, dt = guess(c, "wrong")
check(code == 535 and DELAY - 0.05 <= dt <= drtest.scaled(DELAY + 1.5),
      "another address's first failure: %d after %.2fs" % (code, dt))
c.close()
c = session(GOOD)
ts = []
for i in range(LIMIT + 1):
    code, text, dt = guess(c, "allowed-wrong%d" % i)
    ts.append(dt)
    if code != 535:
        break
check(code == 535 and max(ts) < drtest.scaled(1.0),
      "a client in allow_clients: %d failures, not delayed or blocked: %d, "
      "max %.2fs" % (len(ts), code, max(ts)))
c.close()

# 4. logs and metrics
text = d.log_text()
check(re.search(r"refused: %d AUTH failures, blocked for %ds "
                r"\(smtpd_auth_failure_limit\), client=\[%s\]"
                % (LIMIT, BLOCK, re.escape(GUESSER)), text),
      "the block is logged")
check(re.search(r"refused: blocked after smtpd_auth_failure_limit %d AUTH "
                r"failures \(\d+s left\), client=\[%s\]"
                % (LIMIT, re.escape(GUESSER)), text),
      "the refused connection is logged")
v = scrape()
log("metrics: %s", {k: v[k] for k in sorted(v) if "auth" in k})
check(v.get("danerelay_smtpd_auth_failures_total", 0) >= LIMIT + 1 + LIMIT,
      "auth failures counted: %s" % v.get("danerelay_smtpd_auth_failures_"
                                          "total"))
check(v.get("danerelay_smtpd_auth_delayed_total") == 5,
      "delayed replies: 4 of the guesser, 1 of the other address: %s"
      % v.get("danerelay_smtpd_auth_delayed_total"))
secs = v.get("danerelay_smtpd_auth_delay_seconds_total", 0)
check(abs(secs - (1 + 2 + 3 + 4 + 1) * DELAY) < 0.01,
      "delay seconds: %s (want 11)" % secs)
check(v.get('danerelay_smtpd_refused_total{reason="auth_blocked"}', 0) >= 3,
      "refusals of the blocked address counted: %s"
      % v.get('danerelay_smtpd_refused_total{reason="auth_blocked"}'))
check(v.get("danerelay_smtpd_auth_blocked_clients") == 1,
      "one address blocked now: %s"
      % v.get("danerelay_smtpd_auth_blocked_clients"))

# 5. the block ends, and the count has started over
time.sleep(max(0, BLOCK + 0.5 - (time.monotonic() - t_block)))
c = session(GUESSER)
code, text, dt = guess(c, "after-the-block")
check(code == 535 and DELAY - 0.05 <= dt <= drtest.scaled(DELAY + 1.5),
      "after %ds the address gets in, its first failure waits %ds: %d "
      "after %.2fs" % (BLOCK, DELAY, code, dt))
c.close()
check(scrape().get("danerelay_smtpd_auth_blocked_clients") == 0,
      "no address blocked any more")
d.stop()
drtest.done()
