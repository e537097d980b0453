#!/usr/bin/python3
# smtpd_crash.t - acceptance: kill -9 of danerelayd at random moments under
# load loses no acknowledged message and never shows half a message.
#
# timeout: 600
# exclusive
#
# Eight concurrent clients send 1,000+ unique messages (sender
# crash-N@..., sizes from 1 KB to 1 MB, streamed in chunks, 1-10 messages
# per connection, 1-3 recipients).  A client counts a message as accepted
# only once it has read the 250 reply to its final dot; a message whose dot
# was sent but whose reply never came is "in doubt" (may or may not be
# queued).  Ten times during the load danerelayd is killed with SIGKILL
# at a random moment (after a random number of acceptances plus a random
# few milliseconds; every third time also once more during its start-up
# and spool recovery), then restarted.  The delivery engine runs too (its
# lookups fail at once, so it rewrites envelopes with deferrals while the
# kills happen).  Set DR_CRASH_SEED to replay a run's kill points.  After
# every restart, before any client reconnects:
#   - the partial files the kill left in tmp/ are gone and their removal
#     is logged; tmp/ is empty once the new daemon's own deferral
#     rewrites are done;
#   - every accepted message is queued under the id its 250 reply named,
#     and its data after the Received: header is bit for bit what was sent;
#   - every queued message is an accepted or in-doubt one, complete and
#     exact: nothing half-written or never-finished is visible;
#   - `danerelay queue` lists exactly the committed messages.
# At the end the daemon stops cleanly (exit 0).
import functools
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import drtest  # noqa: E402
from drtest import check, log  # noqa: E402

CLIENTS = 8
TOTAL = 1000
KILLS = 10
CLIENT = "client.dr-test.example"
DEST = "dest.dr-test.example"


@functools.lru_cache(maxsize=None)
def message(n):
    """Message n: deterministic, unique, CRLF lines."""
    rnd = random.Random(n)
    p = rnd.random()
    size = rnd.randint(200, 4000) if p < 0.7 else \
        rnd.randint(32000, 128000) if p < 0.95 else rnd.randint(500000, 1 << 20)
    head = (b"From: <crash-%d@%s>\r\nTo: <r@%s>\r\nSubject: crash test %d\r\n"
            b"Message-ID: <crash-%d@%s>\r\n\r\n"
            % (n, CLIENT.encode(), DEST.encode(), n, n, CLIENT.encode()))
    lines = [head]
    have = len(head)
    i = 0
    while have < size:
        line = b"%d.%d %s\r\n" % (n, i, b"%x" % rnd.getrandbits(
            4 * rnd.randint(1, 200)))
        if i % 17 == 0:
            line = b"." + line      # dot-stuffing on the way
        lines.append(line)
        have += len(line)
        i += 1
    return b"".join(lines)


class Load:
    def __init__(self, d):
        self.d = d
        self.lock = threading.Condition()
        self.go = threading.Event()
        self.stop = False
        self.next_n = 0
        self.accepted = {}      # n -> queue id
        self.doubt = set()      # n: final dot sent, no reply read
        self.errors = []
        self.parked = 0

    def take(self):
        with self.lock:
            n = self.next_n
            self.next_n += 1
            return n

    def n_accepted(self):
        with self.lock:
            return len(self.accepted)

    def client(self, k):
        rnd = random.Random(k)
        while True:
            with self.lock:
                self.parked += 1
                self.lock.notify_all()
            self.go.wait()
            with self.lock:
                self.parked -= 1
            if self.stop:
                return
            try:
                self.session(rnd)
            except (OSError, drtest.SMTPError):
                pass    # the daemon went away: park, wait for the restart

    def session(self, rnd):
        c = drtest.SMTP(self.d.host, self.d.port, timeout=30)
        try:
            if c.banner[0] != 220:
                return
            c.expect("EHLO " + CLIENT, 250)
            for _ in range(rnd.randint(1, 10)):
                if not self.go.is_set() or self.n_accepted() >= TOTAL:
                    break
                n = self.take()
                data = drtest.dot_stuff(message(n)) + b".\r\n"
                c.expect("MAIL FROM:<crash-%d@%s>" % (n, CLIENT), 250)
                for j in range(1 + n % 3):
                    c.expect("RCPT TO:<r%d@%s>" % (j, DEST), 250)
                c.expect("DATA", 354)
                for off in range(0, len(data), 16384):
                    c.send(data[off:off + 16384])
                with self.lock:
                    self.doubt.add(n)
                code, text = c.reply()
                m = drtest.QUEUED_RE.search(text)
                with self.lock:
                    if code == 250 and m:
                        self.doubt.discard(n)
                        self.accepted[n] = m.group(1)
                    else:
                        self.doubt.discard(n)
                        self.errors.append("message %d: %d %s"
                                           % (n, code, text))
            c.cmd("QUIT")
        finally:
            c.close()

    def park_all(self, timeout=60):
        self.go.clear()
        with self.lock:
            ok = self.lock.wait_for(lambda: self.parked == CLIENTS,
                                    drtest.scaled(timeout))
        if not ok:
            drtest.fail("clients did not stop within %.0fs"
                        % drtest.scaled(timeout))


def sender_n(env):
    s = env.get("sender", "")
    if s.startswith("crash-") and s.endswith("@" + CLIENT):
        try:
            return int(s[6:-len(CLIENT) - 1])
        except ValueError:
            pass
    return None


def restart(d, leftovers, when):
    """Start d after a kill; the partial files the kill left in tmp/ must
    be removed (and logged) by recovery at start-up."""
    d.start()
    now = set(d.tmp_files())
    check(not (now & leftovers), "%s: partial files still in tmp/ after "
          "start: %s" % (when, sorted(now & leftovers)[:10]))
    text = d.log_text()
    unlogged = [f for f in leftovers if f not in text]
    check(not unlogged, "%s: removal of partial files not logged: %s"
          % (when, unlogged[:10]))
    # What remains is the new daemon's own work (deferral rewrites of
    # envelopes) and must be gone soon, no client being connected.
    drtest.wait_for(lambda: d.tmp_files() == [], 10,
                    "tmp/ to be empty after start (%s)" % when)


def verify(d, load, when):
    """The invariants, checked while no client is connected."""
    ids = d.queue_ids()
    idset = set(ids)
    with load.lock:
        accepted = dict(load.accepted)
        doubt = set(load.doubt)
    missing = [(n, q) for n, q in accepted.items() if q not in idset]
    check(not missing, "%s: %d accepted messages missing, e.g. %s"
          % (when, len(missing), missing[:5]))
    byid = {q: n for n, q in accepted.items()}
    bad = []
    for qid in ids:
        try:
            env = d.read_env(qid)
            raw = d.read_data(qid)
        except (OSError, ValueError) as e:
            bad.append("%s: unreadable: %s" % (qid, e))
            continue
        n = sender_n(env)
        if n is None:
            bad.append("%s: unknown sender %r" % (qid, env.get("sender")))
            continue
        if qid in byid and byid[qid] != n:
            bad.append("%s: holds message %d, the 250 was for %d"
                       % (qid, n, byid[qid]))
        if n not in accepted and n not in doubt:
            bad.append("%s: message %d was never finished by its client"
                       % (qid, n))
        body = drtest.strip_received(raw)
        if body != message(n):
            bad.append("%s: message %d differs from what was sent "
                       "(%s bytes vs %d)" % (qid, n, None if body is None
                                             else len(body), len(message(n))))
        if int(env.get("size", -1)) != len(raw):
            bad.append("%s: envelope size %s, data %d bytes"
                       % (qid, env.get("size"), len(raw)))
        if len(env["rcpts"]) != 1 + n % 3:
            bad.append("%s: %d recipients, expected %d"
                       % (qid, len(env["rcpts"]), 1 + n % 3))
    for b in bad[:10]:
        check(False, "%s: %s" % (when, b))
    check(not bad, "%s: %d bad messages in the queue" % (when, len(bad)))

    q = d.cli("queue")
    check(q.returncode == 0, "%s: danerelay queue exited %d: %s"
          % (when, q.returncode, q.stderr.strip()))
    listed = set()
    for line in q.stdout.splitlines():
        w = line.split()
        if w and drtest.QUEUED_RE.match("queued as " + w[0].rstrip("*!")):
            listed.add(w[0].rstrip("*!"))
    check(listed == idset, "%s: danerelay queue lists %d ids, the spool "
          "holds %d (only in list: %s, only in spool: %s)"
          % (when, len(listed), len(idset), sorted(listed - idset)[:3],
             sorted(idset - listed)[:3]))
    log("%s: %d queued, %d accepted, %d in doubt: ok" % (
        when, len(ids), len(accepted), len(doubt)))


def main():
    d = drtest.Daemon()
    d.start()
    load = Load(d)
    threads = [threading.Thread(target=load.client, args=(k,), daemon=True)
               for k in range(CLIENTS)]
    for t in threads:
        t.start()
    seed = int(os.environ.get("DR_CRASH_SEED", str(int(time.time()))))
    rnd = random.Random(seed)
    points = sorted(rnd.sample(range(40, TOTAL - 60), KILLS))
    log("DR_CRASH_SEED=%d: kill -9 after about %s accepted messages",
        seed, points)

    t0 = time.monotonic()
    for i, point in enumerate(points):
        load.go.set()
        drtest.wait_for(lambda: load.n_accepted() >= point or load.errors,
                        120, "%d accepted messages" % point, interval=0.002)
        time.sleep(rnd.random() * 0.05)
        load.go.clear()
        d.kill9()
        load.park_all()
        when = "kill %d (after %d accepted)" % (i + 1, load.n_accepted())
        if load.errors:
            drtest.fail("%s: unexpected replies: %s" % (when,
                                                        load.errors[:5]))
        if i % 3 == 2:
            # and once more while it starts up and recovers the spool
            d.start(wait=False)
            time.sleep(rnd.random() * 0.3)
            d.kill9()
            when += " + kill during start-up"
        leftovers = set(d.tmp_files())
        restart(d, leftovers, when)
        verify(d, load, when)
        log("%s: %d partial files in tmp/ removed at start-up", when,
            len(leftovers))

    load.go.set()
    drtest.wait_for(lambda: load.n_accepted() >= TOTAL or load.errors, 180,
                    "%d accepted messages" % TOTAL, interval=0.01)
    load.stop = True
    load.park_all()
    check(not load.errors, "unexpected replies: %s" % load.errors[:5])
    load.go.set()
    for t in threads:
        t.join(drtest.scaled(30))
    elapsed = time.monotonic() - t0
    d.stop()
    check(d.tmp_files() == [], "files in tmp/ after a clean stop: %s"
          % d.tmp_files()[:10])
    restart(d, set(), "final restart")
    verify(d, load, "final restart")
    d.stop()
    log("%d messages accepted, %d kills, in %.1fs",
        len(load.accepted), KILLS, elapsed)
    drtest.done()


main()
