#!/usr/bin/python3
# commit_order.t - "250 after DATA" waits for the disk, in the order the
# spool promises (src/spool.c, src/journal.c, README "Architecture"),
# seen from outside with strace on every thread of a running danerelayd
# (workers = 2, so both loops and the io pool commit at once):
#   for every message ID that got "250 ... queued as ID":
#   1. a write to journal/log carried ID's record (its header names ID);
#   2. an fdatasync of journal/log began after that write returned;
#   3. and returned before the rename of tmp/ID.msg to queue/ID.msg
#      began, which returned before the 250 was written to the client;
#   4. tmp/ID.msg itself was never fsync'ed (the journal made it
#      durable: that is the fsync the journal saves).
# 60 messages from 6 concurrent sessions, so that group commits (one
# journal write and fdatasync for several messages) happen; the test also
# says how many there were.  Those stay below 1 MiB; then BIG messages
# of 1.5 MiB take the direct path, and for each of them:
#   5. tmp/ID.msg was fsync'ed, and that returned before the rename of
#      tmp/ID.msg to queue/ID.msg began;
#   6. an fsync of the queue/ directory began after the rename returned
#      and returned before the 250 was written;
#   7. no journal record carried it.
#
# timeout: 300
# exclusive
import os
import re
import shutil
import struct
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
BIG = 3

if shutil.which("strace") is None:
    drtest.skip("strace not installed (apt-get install strace)")

d = drtest.Daemon("d")
d.write_config(workers="2")
d.start()
spool = os.path.realpath(d.spool)
trace = os.path.join(drtest.TMPDIR, "strace.out")
st = subprocess.Popen(["strace", "-f", "-ttt", "-T", "-y", "-x", "-s", "200",
                       "-e", "trace=fsync,fdatasync,rename,renameat,"
                       "renameat2,write,writev,pwrite64,pwritev,pwritev2,"
                       "sendmsg,sendto",
                       "-o", trace, "-p", str(d.proc.pid)],
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(1.5)         # strace attached to every thread


def session(k, ids, n=PER_SESSION, lines=None):
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
    for i in range(n):
        s.sendall(b"MAIL FROM:<s%d@client.dr-test.example>\r\n"
                  b"RCPT TO:<r%d@dest.dr-test.example>\r\nDATA\r\n" % (k, i))
        for _ in range(3):
            r = reply()
        if not r.startswith(b"354"):
            raise RuntimeError("DATA: %r" % r)
        s.sendall(b"Subject: commit order %d/%d\r\n\r\n%s.\r\n"
                  % (k, i, (b"x" * 70 + b"\r\n") *
                     (lines if lines else 1 + 20 * i)))
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
big = []
try:
    session(SESSIONS, big, n=BIG, lines=1536 * 1024 // 72)   # 1.5 MiB
except Exception as e:          # noqa: BLE001
    check(False, "big messages: %s" % e)
check(len(big) == BIG, "%d big messages got 250" % len(big))
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

def unescape(x):
    """The bytes of a string as strace -x prints it."""
    out, i = bytearray(), 0
    simple = {"n": 10, "r": 13, "t": 9, "v": 11, "f": 12, '"': 34,
              "\\": 92}
    while i < len(x):
        c = x[i]
        if c == "\\" and i + 1 < len(x):
            n = x[i + 1]
            if n == "x":
                out.append(int(x[i + 2:i + 4], 16))
                i += 4
                continue
            if n in simple:
                out.append(simple[n])
                i += 2
                continue
            m = re.match(r"[0-7]{1,3}", x[i + 1:])
            if m:
                out.append(int(m.group(0), 8))
                i += 1 + len(m.group(0))
                continue
        out += c.encode("latin-1")
        i += 1
    return bytes(out)


jpath = os.path.join(spool, "journal", "log")
jre = re.compile(r"\d+<%s>" % re.escape(jpath))
jsyncs = [(s, e) for s, e, n, a in calls
          if n in ("fsync", "fdatasync") and jre.match(a)]
# record headers: "DRJ1", kind 1 (message), generation, queue id
jwrites = {}            # queue id -> end of the write that carried it
for s, e, n, a in calls:
    if not n.startswith("pwrite") or not jre.match(a):
        continue
    for b in re.findall(r'"((?:[^"\\]|\\.)*)"', a):
        raw = unescape(b)
        for k in range(0, len(raw) - 23):
            if raw[k:k + 8] == b"DRJ1\x01\x00\x00\x00":
                qid = "%016X" % struct.unpack("<Q", raw[k + 16:k + 24])[0]
                jwrites.setdefault(qid, e)
log("%d journal writes, %d journal fdatasyncs for %d messages"
    % (len([1 for s, e, n, a in calls if n.startswith("pwrite")
            and jre.match(a)]), len(jsyncs), len(ids)))
check(0 < len(jsyncs) < len(ids),
      "group commit: fewer journal fdatasyncs (%d) than messages (%d)"
      % (len(jsyncs), len(ids)))


def steps(qid):
    """(ends of the fsyncs of tmp/ID.msg, (start, end) of its renames out
    of tmp/, starts of the writes of its 250)."""
    tmpf = os.path.join(spool, "tmp", qid + ".msg")
    fsyncs = [e for s, e, n, a in calls if n in ("fsync", "fdatasync")
              and re.match(r"\d+<%s>\)" % re.escape(tmpf), a)]
    ren = [(s, e) for s, e, n, a in calls if n.startswith("rename")
           and '"%s.msg"' % qid in a and "/tmp>" in a]
    acks = [s for s, e, n, a in calls if n in ("write", "writev", "sendmsg",
                                              "sendto")
            and ("queued as %s" % qid) in a]
    return fsyncs, ren, acks


bad = []
for qid in ids:
    file_fsync, ren, acks = steps(qid)
    if qid not in jwrites or not ren or not acks:
        bad.append("%s: journal record %d, rename %d, 250 %d seen" % (
            qid, qid in jwrites, len(ren), len(acks)))
        continue
    if file_fsync:
        bad.append("%s: its own file was fsync'ed too" % qid)
    rs, re_ = ren[0]
    ack = acks[0]
    ok = [(s, e) for s, e in jsyncs if s >= jwrites[qid] and e <= rs]
    if not ok:
        bad.append("%s: no fdatasync of the journal between its record "
                   "(%.6f) and the rename (%.6f)" % (qid, jwrites[qid], rs))
    if not re_ <= ack:
        bad.append("%s: 250 (%.6f) before the rename into queue/ returned "
                   "(%.6f)" % (qid, ack, re_))
check(not bad, "commit order: %d of %d messages wrong: %s" % (
    len(bad), len(ids), "; ".join(bad[:5])))

# ---- the direct path: file fsync, rename, directory fsync, 250
qdir = os.path.join(spool, "queue")
dsyncs = [(s, e) for s, e, n, a in calls if n in ("fsync", "fdatasync")
          and re.match(r"\d+<%s>\)" % re.escape(qdir), a)]
log("%d fsyncs of queue/" % len(dsyncs))
bad = []
for qid in big:
    fsyncs, ren, acks = steps(qid)
    if not fsyncs or not ren or not acks:
        bad.append("%s: file fsync %d, rename %d, 250 %d seen" % (
            qid, len(fsyncs), len(ren), len(acks)))
        continue
    rs, re_ = ren[0]
    ack = acks[0]
    if not fsyncs[0] <= rs:
        bad.append("%s: rename (%.6f) before its file's fsync returned "
                   "(%.6f)" % (qid, rs, fsyncs[0]))
    if not [1 for s, e in dsyncs if s >= re_ and e <= ack]:
        bad.append("%s: no fsync of queue/ between the rename (%.6f) and "
                   "the 250 (%.6f)" % (qid, re_, ack))
    if qid in jwrites:
        bad.append("%s: a 1.5 MiB message went through the journal" % qid)
check(not bad, "direct path: %d of %d big messages wrong: %s" % (
    len(bad), len(big), "; ".join(bad[:5])))
drtest.done()
