#!/usr/bin/python3
# smtpd_bulk.t - acceptance: 1,000 messages from real SMTP clients, all of
# them in the spool with exact bytes.
#
# timeout: 600
# exclusive
#
# Postfix's smtp-source (unpacked from Debian's postfix package by
# lib/get-postfix-tools) sends 800 messages in four concurrent runs with
# different shapes (10/5/10/10 parallel sessions, 1-5 recipients, one
# message per connection or many with -d, message files with dot lines,
# 998-octet lines, 8-bit bytes, 100 KB bodies); swaks sends 200 unique
# messages from 8 parallel workers, half of them over STARTTLS.  Then:
# exactly 1,000 messages are queued, each one's data after the Received:
# header is byte for byte what its client put on the wire (for smtp-source
# the wire bytes are first captured once by a small SMTP server of the
# test's own), sender and recipients are right, nothing is left in tmp/,
# `danerelay queue` counts 1,000, and the daemon stops cleanly and finds
# all 1,000 again after a restart.
import os
import random
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import drtest  # noqa: E402
from drtest import check, log  # noqa: E402

CLIENT = "client.dr-test.example"
DEST = "dest.dr-test.example"
N_SWAKS = 200
SWAKS_WORKERS = 8


# ---------------------------------------------------------------- inputs

def write_lf(path, lines):
    with open(path, "wb") as f:
        f.write(b"".join(l + b"\n" for l in lines))
    return path


def smtp_source_files(tmp):
    rnd = random.Random(7)
    files = {}
    files["plain"] = write_lf(os.path.join(tmp, "plain.txt"), [
        b"From: <src-a@" + CLIENT.encode() + b">",
        b"To: <rcpt-a@" + DEST.encode() + b">",
        b"Subject: smtp-source plain",
        b"",
        b"Hello,",
        b".a line that starts with a dot",
        b"..two dots",
        b".",
        b"",
        b"   leading blanks and trailing ones   ",
        b"\tand a tab",
    ] + [b"line %d of some ordinary text" % i for i in range(30)])
    big = [b"Subject: smtp-source big, long lines and 8-bit", b""]
    for i in range(100):
        big.append(bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz0123456789")
                         for _ in range(998)))
        big.append(b"caf\xc3\xa9 \xe2\x82\xac 8-bit \xff\xfe line %d" % i)
    files["big"] = write_lf(os.path.join(tmp, "big.txt"), big)
    files["dots"] = write_lf(os.path.join(tmp, "dots.txt"), [
        b"Subject: dots", b"", b".", b"..", b"...", b". .", b"", b"",
        b"end.", b".end"])
    files["small"] = write_lf(os.path.join(tmp, "small.txt"),
                              [b"Subject: small", b"", b"x"])
    return files


# name, file, messages, sessions, recipients, extra flags
RUNS = [
    ("a", "plain", 300, 10, 1, []),
    ("b", "big", 100, 5, 3, ["-d"]),
    ("c", "dots", 200, 10, 5, ["-d"]),
    ("e", "small", 200, 10, 1, ["-N"]),
]


def capture_wire(smtp_source, path, host):
    """Run smtp-source once against our own minimal SMTP server and
    return the message as it went over the wire (dot-unstuffed)."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, 0))
    srv.listen(1)
    srv.settimeout(drtest.scaled(30))
    port = srv.getsockname()[1]
    got = {}

    def serve():
        c, _ = srv.accept()
        c.settimeout(drtest.scaled(30))
        f = c.makefile("rwb")

        def w(s):
            f.write(s + b"\r\n")
            f.flush()
        w(b"220 capture")
        data = None
        while True:
            line = f.readline()
            if not line:
                break
            if data is not None:
                if line == b".\r\n":
                    got["data"] = b"".join(data)
                    data = None
                    w(b"250 ok")
                else:
                    data.append(line[1:] if line.startswith(b".") else line)
                continue
            verb = line[:4].upper()
            if verb == b"DATA":
                data = []
                w(b"354 go")
            elif verb == b"QUIT":
                w(b"221 bye")
                break
            else:
                w(b"250 ok")
        c.close()

    th = threading.Thread(target=serve)
    th.start()
    r = subprocess.run([smtp_source, "-F", path, "-f", "x@" + CLIENT, "-t",
                        "y@" + DEST, "-M", CLIENT, "%s:%d" % (host, port)],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True,
                       timeout=drtest.scaled(60))
    th.join(drtest.scaled(30))
    srv.close()
    if r.returncode != 0 or "data" not in got:
        drtest.fail("capturing smtp-source's output for %s failed: %s"
                    % (path, r.stdout))
    return got["data"]


def swaks_message(i):
    """A unique message with CRLF lines, as swaks will send it."""
    rnd = random.Random(1000 + i)
    lines = [
        b"From: <swaks-%d@%s>" % (i, CLIENT.encode()),
        b"To: <r1@%s>" % DEST.encode(),
        b"Subject: swaks message %d" % i,
        b"Message-ID: <swaks-%d.%x@%s>" % (i, rnd.getrandbits(64),
                                           CLIENT.encode()),
        b"",
        b"Message number %d." % i,
        b".dot-leading line %d" % i,
        b"",
    ]
    nbody = 2000 if i % 10 == 0 else rnd.randint(1, 60)
    for n in range(nbody):
        lines.append(b"%d-%d %s" % (i, n, ("%x" % rnd.getrandbits(
            4 * rnd.randint(1, 240))).encode()))
    return b"".join(l + b"\r\n" for l in lines)


# ---------------------------------------------------------------- test

def main():
    tools = drtest.postfix_tools()
    smtp_source = os.path.join(tools, "smtp-source")
    swaks = drtest.which("swaks")
    if swaks is None:
        drtest.skip("swaks not installed (apt-get install swaks)")

    tmp = drtest.TMPDIR
    cert, key = drtest.make_cert(tmp)
    d = drtest.Daemon(tls_cert_file=cert, tls_key_file=key)
    d.start()
    target = "%s:%d" % (d.host, d.port)

    files = smtp_source_files(tmp)
    wire = {name: capture_wire(smtp_source, files[name], drtest.ip(2))
            for name in files}

    expected = {}     # sender -> (data, nrcpt)
    for name, fname, m, s, r, extra in RUNS:
        expected["src-%s@%s" % (name, CLIENT)] = (wire[fname], r, m)

    t0 = time.monotonic()
    procs = []
    for name, fname, m, s, r, extra in RUNS:
        cmd = [smtp_source, "-F", files[fname], "-m", str(m), "-s", str(s),
               "-r", str(r), "-f", "src-%s@%s" % (name, CLIENT),
               "-t", "rcpt-%s@%s" % (name, DEST), "-M", CLIENT] + extra \
            + [target]
        log("run %s: %s", name, " ".join(cmd))
        procs.append((name, subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, universal_newlines=True)))

    swaks_expected = {}
    swaks_errors = []
    lock = threading.Lock()

    def swaks_worker(k):
        for i in range(k, N_SWAKS, SWAKS_WORKERS):
            data = swaks_message(i)
            path = os.path.join(tmp, "swaks-%d.eml" % i)
            with open(path, "wb") as f:
                # swaks ends the data with CRLF . CRLF itself
                f.write(data[:-2])
            rcpts = ["r%d@%s" % (j + 1, DEST) for j in range(1 + i % 3)]
            sender = "swaks-%d@%s" % (i, CLIENT)
            cmd = [swaks, "--server", d.host, "--port", str(d.port),
                   "--helo", CLIENT, "--from", sender,
                   "--to", ",".join(rcpts), "--data", "@" + path,
                   "--timeout", "60"]
            if i % 2 == 0:
                cmd.append("--tls")
            r = subprocess.run(cmd, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT,
                               universal_newlines=True,
                               timeout=drtest.scaled(120))
            with lock:
                if r.returncode != 0 or "queued as" not in r.stdout:
                    swaks_errors.append("swaks %d exited %d:\n%s" % (
                        i, r.returncode, r.stdout[-3000:]))
                else:
                    swaks_expected[sender] = (data, len(rcpts), 1,
                                              i % 2 == 0)
            os.unlink(path)

    workers = [threading.Thread(target=swaks_worker, args=(k,))
               for k in range(SWAKS_WORKERS)]
    for w in workers:
        w.start()
    # smtp-source writes little; wait for all, noting when each finished
    pending = dict(procs)
    outs = {name: [] for name in pending}
    readers = [threading.Thread(target=lambda n=n, p=p: outs[n].append(
        p.communicate()[0])) for n, p in procs]
    for r in readers:
        r.start()
    deadline = time.monotonic() + drtest.scaled(400)
    while (pending or any(w.is_alive() for w in workers)) and \
            time.monotonic() < deadline:
        for name, p in list(pending.items()):
            if p.poll() is not None:
                log("smtp-source run %s done after %.1fs (exit %d)", name,
                    time.monotonic() - t0, p.returncode)
                del pending[name]
        time.sleep(0.1)
    log("swaks done: %s", not any(w.is_alive() for w in workers))
    for name, p in pending.items():
        p.kill()
        check(False, "smtp-source run %s did not finish in time" % name)
    for r in readers:
        r.join(drtest.scaled(30))
    for w in workers:
        w.join(drtest.scaled(30))
        check(not w.is_alive(), "a swaks worker did not finish in time")
    for name, p in procs:
        check(p.returncode == 0, "smtp-source run %s exited %s: %s"
              % (name, p.returncode, "".join(outs[name])[-2000:]))
    elapsed = time.monotonic() - t0
    for e in swaks_errors[:5]:
        check(False, e)
    check(not swaks_errors, "%d swaks runs failed" % len(swaks_errors))
    log("sent in %.1fs", elapsed)

    # -- the spool
    total = sum(m for _, _, m, _, _, _ in RUNS) + N_SWAKS
    ids = d.queue_ids()
    check(len(ids) == total, "%d messages queued, expected %d"
          % (len(ids), total))
    # (the queue's deferral rewrites of envelopes pass through tmp/ and
    # finish at once; partial messages would stay)
    drtest.wait_for(lambda: d.tmp_files() == [], 10, "tmp/ to be empty")

    def verify(ids, when):
        """Each message in the spool against what its client sent."""
        seen = {}
        bad = []
        for qid in ids:
            raw = d.read_data(qid)
            env = d.read_env(qid)
            body = drtest.strip_received(raw)
            recv = raw[:len(raw) - len(body)] if body is not None else b""
            sender = env.get("sender", "")
            exp = expected.get(sender) or swaks_expected.get(sender)
            problem = None
            if body is None:
                problem = "no Received: header at the top"
            elif b"relay.dr-test.example" not in recv:
                problem = "Received: header without our myhostname: %r" % recv
            elif ("id " + qid).encode() not in recv:
                problem = "Received: header without 'id %s': %r" % (qid, recv)
            elif exp is None:
                problem = "unknown sender %r" % sender
            elif body != exp[0]:
                problem = "data differs from what was sent (%d vs %d bytes)" \
                    % (len(body), len(exp[0]))
            elif len(env["rcpts"]) != exp[1]:
                problem = "%d recipients, expected %d" % (len(env["rcpts"]),
                                                         exp[1])
            elif not all(r["addr"].endswith("@" + DEST)
                         for r in env["rcpts"]):
                problem = "wrong recipients %s" % [r["addr"] for r in
                                                   env["rcpts"]]
            elif int(env.get("size", -1)) != len(raw):
                problem = "envelope size %s != data file %d" % (
                    env.get("size"), len(raw))
            if problem:
                bad.append("%s (from %s): %s" % (qid, sender, problem))
            seen[sender] = seen.get(sender, 0) + 1
        for b in bad[:10]:
            check(False, b)
        check(not bad, "%s: %d of %d messages are wrong" % (when, len(bad),
                                                           len(ids)))
        for sender, (_, _, m) in expected.items():
            check(seen.get(sender, 0) == m, "%s: %s: %d messages in the "
                  "spool, expected %d" % (when, sender, seen.get(sender, 0),
                                          m))
        for sender in swaks_expected:
            check(seen.get(sender, 0) == 1, "%s: %s: %d messages in the "
                  "spool, expected 1" % (when, sender, seen.get(sender, 0)))

    verify(ids, "after sending")
    tls = [s for s, v in swaks_expected.items() if v[3]]
    log("%d messages checked (%d over STARTTLS)", len(ids), len(tls))

    # -- the operator's view
    q = d.cli("queue")
    check(q.returncode == 0, "danerelay queue exited %d: %s"
          % (q.returncode, q.stderr))
    summary = [l for l in q.stdout.splitlines() if l.startswith("--")]
    check(summary and (" in %d messages" % total) in summary[-1],
          "danerelay queue summary %r, expected %d messages"
          % (summary[-1:] or q.stdout[-300:], total))

    # -- clean stop, and everything found again after a restart
    d.stop()
    d.start()
    # the same messages, still exactly what was received (a restart
    # replays the spool: nothing lost, added, or changed)
    after = d.queue_ids()
    check(set(after) == set(ids), "after restart: %d messages queued, "
          "%d missing, %d new" % (len(after), len(set(ids) - set(after)),
                                  len(set(after) - set(ids))))
    verify(after, "after restart")
    # and the restarted daemon holds each of them, with every recipient
    # (its own queue, asked on the control socket, against what was sent)
    held = {}
    for line in d.control("list")[:-1]:
        f = line.split()
        if f and f[0] == "msg":
            held[f[1]] = dict(kv.split("=", 1) for kv in f[2:])
    check(set(held) == set(ids), "after restart the daemon holds %d "
          "messages, %d of the received ones missing" %
          (len(held), len(set(ids) - set(held))))
    wrong = []
    for qid in ids:
        exp = expected.get(d.read_env(qid).get("sender", "")) or \
            swaks_expected.get(d.read_env(qid).get("sender", ""))
        if qid in held and exp and int(held[qid].get("rcpts", -1)) != exp[1]:
            wrong.append(qid)
    check(not wrong, "after restart %d messages held with the wrong number "
          "of recipients: %s" % (len(wrong), wrong[:5]))
    c = drtest.SMTP(d.host, d.port)
    qid = c.sendmail("after@" + CLIENT, ["r@" + DEST], b"Subject: after\r\n"
                     b"\r\nstill serving\r\n")
    c.cmd("QUIT")
    c.close()
    check(qid in d.queue_ids(), "message after restart not queued")
    d.stop()
    log("%d messages in %.1fs (%.0f/s)", total, elapsed, total / elapsed)
    drtest.done()


main()
