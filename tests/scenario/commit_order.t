#!/usr/bin/python3
# commit_order.t - "250 after DATA" waits for the disk, in the order the
# spool promises (src/spool.c, README "Architecture"), seen from outside
# with strace on every thread of a running danerelayd (workers = 2, so
# both loops and the io pool commit at once):
#   for every message ID that got "250 ... queued as ID":
#   1. fsync of tmp/ID.msg returned before the rename to queue/ID.msg began;
#   2. an fsync of the queue/ directory began after that rename returned;
#   3. and returned before the 250 was written to the client.
# 60 messages from 6 concurrent sessions, so that group commits (one
# directory fsync for several messages) happen; the test also says how
# many directory fsyncs there were.
#
# timeout: 300
# exclusive
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import drtest  # noqa: E402
from drtest import check, log  # noqa: E402

SESSIONS = 6
PER_SESSION = 10

if shutil.which("strace") is None:
    drtest.skip("strace not installed (apt-get install strace)")

d = drtest.Daemon("d")
d.write_config(workers="2")
d.start()
spool = os.path.realpath(d.spool)
trace = os.path.join(drtest.TMPDIR, "strace.out")
st = subprocess.Popen(["strace", "-f", "-ttt", "-T", "-y", "-s", "200",
                       "-e", "trace=fsync,fdatasync,rename,renameat,"
                       "renameat2,write,writev,sendmsg,sendto",
                       "-o", trace, "-p", str(d.proc.pid)],
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(1.5)         # strace attached to every thread


def session(k, ids):
    s = socket.create_connection((d.host, d.port), timeout=60)
    f = s.makefile("rb")

    def reply():
        while True:
            line = f.readline()
            if not line:
                raise RuntimeError("connection closed")
            if line[3:4] == b" ":
                return line

    reply()
    s.sendall(b"EHLO client.dr-test.example\r\n")
    reply()
    for i in range(PER_SESSION):
        s.sendall(b"MAIL FROM:<s%d@client.dr-test.example>\r\n"
                  b"RCPT TO:<r%d@dest.dr-test.example>\r\nDATA\r\n" % (k, i))
        for _ in range(3):
            r = reply()
        if not r.startswith(b"354"):
            raise RuntimeError("DATA: %r" % r)
        s.sendall(b"Subject: commit order %d/%d\r\n\r\n%s.\r\n"
                  % (k, i, (b"x" * 70 + b"\r\n") * (1 + 20 * i)))
        r = reply()
        m = re.match(rb"250 2\.0\.0 Ok: queued as ([0-9A-F]{16})", r)
        if not m:
            raise RuntimeError("end of data: %r" % r)
        ids.append(m.group(1).decode())
    s.sendall(b"QUIT\r\n")
    reply()
    s.close()


ids, errors = [], []


def run(k):
    try:
        session(k, ids)
    except Exception as e:      # noqa: BLE001
        errors.append("session %d: %s" % (k, e))


threads = [threading.Thread(target=run, args=(k,)) for k in range(SESSIONS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
check(not errors, "sessions: %s" % errors)
check(len(ids) == SESSIONS * PER_SESSION, "%d messages got 250" % len(ids))
time.sleep(0.5)
st.send_signal(signal.SIGINT)
st.wait(timeout=30)
d.stop()

# ---- parse: "PID EPOCH call(args) = R <DUR>", or split in two lines
# ("<unfinished ...>" and "<... call resumed> ...") when threads overlap.
line_re = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+(.*)$")
calls = []              # (start, end, name, args)
pending = {}
with open(trace, errors="replace") as f:
    for raw in f:
        m = line_re.match(raw.rstrip("\n"))
        if not m:
            continue
        pid, t, rest = m.group(1), float(m.group(2)), m.group(3)
        if rest.endswith("<unfinished ...>"):
            pending[pid] = (t, rest)
            continue
        r = re.match(r"<\.\.\. (\w+) resumed>(.*)", rest)
        if r and pid in pending:
            t0, first = pending.pop(pid)
            rest = first.replace("<unfinished ...>", "").rstrip() + \
                r.group(2).lstrip()
            t = t0
        dm = re.search(r"<(\d+\.\d+)>$", rest)
        dur = float(dm.group(1)) if dm else 0.0
        nm = re.match(r"(\w+)\((.*)", rest)
        if not nm:
            continue
        calls.append((t, t + dur, nm.group(1), nm.group(2)))
calls.sort()
log("%d system calls traced" % len(calls))

qdir = os.path.join(spool, "queue")
dir_fsyncs = [(s, e) for s, e, n, a in calls
              if n in ("fsync", "fdatasync") and
              re.match(r"\d+<%s>\)" % re.escape(qdir), a)]
# (deliveries defer here - no DNS - and their envelope rewrites join the
# same directory fsyncs, so this counts more than the commits' share;
# bench/run measures fsyncs per relayed message)
log("%d fsyncs of queue/ while %d messages were committed and deferred"
    % (len(dir_fsyncs), len(ids)))
check(len(dir_fsyncs) > 0, "queue/ fsynced")

bad = []
for qid in ids:
    tmpf = os.path.join(spool, "tmp", qid + ".msg")
    file_fsync = [e for s, e, n, a in calls if n in ("fsync", "fdatasync")
                  and re.match(r"\d+<%s>\)" % re.escape(tmpf), a)]
    ren = [(s, e) for s, e, n, a in calls if n.startswith("rename")
           and '"%s.msg"' % qid in a and "/tmp>" in a]
    acks = [s for s, e, n, a in calls if n in ("write", "writev", "sendmsg",
                                              "sendto")
            and ("queued as %s" % qid) in a]
    if not file_fsync or not ren or not acks:
        bad.append("%s: fsync %d, rename %d, 250 %d seen" % (
            qid, len(file_fsync), len(ren), len(acks)))
        continue
    rs, re_ = ren[0]
    ack = acks[0]
    if not max(file_fsync) <= rs:
        bad.append("%s: renamed into queue/ before its fsync returned" % qid)
    ok = [(s, e) for s, e in dir_fsyncs if s >= re_ and e <= ack]
    if not ok:
        bad.append("%s: no fsync of queue/ between the rename (%.6f) and "
                   "the 250 (%.6f)" % (qid, re_, ack))
check(not bad, "commit order: %d of %d messages wrong: %s" % (
    len(bad), len(ids), "; ".join(bad[:5])))
drtest.done()
