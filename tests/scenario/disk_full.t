#!/usr/bin/python3
# timeout: 180
"""Disk full (issue #11 item 6), with the spool on a small tmpfs of the
test's own (root only: mount(2)).

(a) queue_minfree: MAIL gets "452 4.3.1" when the spool's file system has
    less free than queue_minfree, or when the SIZE= a client announces
    would not fit above it; logged as a NOQUEUE reject; the session goes
    on (NOOP).
(b) A commit that hits ENOSPC (queue_minfree small, the disk filled by a
    filler file, a message bigger than what is left): 451 4.3.1 after the
    final dot, nothing of that message in queue/ or tmp/, the session and
    the daemon keep serving (NOOP, EHLO, a small message still fits).
(c) Once the filler is gone, mail is accepted again, and every message
    that got a 250, before and after, reaches the sink: nothing lost.
(d) An envelope rewrite that fails because the disk is full is retried:
    a deferred message's second attempt happens while the disk is full
    ("cannot record delivery results ... trying again"); after the space
    is freed queue/ID.env records that attempt before the next attempt
    would have (min_backoff 5s doubles to 10s; the retry comes after 5s).
"""
import errno
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import world  # noqa: E402
from drtest import check, log  # noqa: E402

if os.geteuid() != 0:
    drtest.skip("needs root to mount a tmpfs for the spool")

SPOOL_FS = 8 << 20          # the tmpfs
MINFREE = 2 << 20           # queue_minfree for (a)

w = world.World()
s_ok = w.dest("full.test", 11)
s_later = w.dest("later.test", 12, rules=["RCPT||0|451 4.3.0 try later"])
w.start()
d = w.daemon(start=False, queue_minfree="2M", min_backoff="5s",
             max_backoff="1h")

# --- the spool on a tmpfs, unmounted on every way out
os.makedirs(d.spool, exist_ok=True)
mounted = False


def unmount():
    global mounted
    if not mounted:
        return
    d.kill9()           # no-op if stopped; it holds files in the spool
    for _ in range(50):
        if subprocess.run(["umount", d.spool]).returncode == 0:
            mounted = False
            return
        time.sleep(0.1)
    subprocess.run(["umount", "-l", d.spool])
    mounted = False


# registered after drtest's own atexit handler, so it runs before it
import atexit  # noqa: E402
atexit.register(unmount)
r = subprocess.run(["mount", "-t", "tmpfs", "-o",
                    "size=%d,mode=0700" % SPOOL_FS, "dr-test-spool",
                    d.spool], stdout=subprocess.PIPE,
                   stderr=subprocess.STDOUT, universal_newlines=True)
if r.returncode != 0:
    drtest.skip("cannot mount a tmpfs: " + r.stdout.strip())
mounted = True
d.start()

FILLER = os.path.join(d.spool, "filler")


def free_bytes():
    st = os.statvfs(d.spool)
    return st.f_bavail * st.f_frsize


def fill(leave):
    """Grow or shrink the filler so that `leave` bytes stay free (0: until
    the file system says ENOSPC).  Written, not sparse: tmpfs only counts
    pages that hold data."""
    cur = os.path.getsize(FILLER) if os.path.exists(FILLER) else 0
    target = max(0, cur + free_bytes() - leave)
    if target < cur:
        os.truncate(FILLER, target)
        return
    chunk = b"\0" * 65536
    with open(FILLER, "ab") as f:
        n = target - cur if leave > 0 else 1 << 40
        try:
            while n > 0:
                f.write(chunk[:min(n, len(chunk))])
                n -= len(chunk)
            f.flush()
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
    log("filler %d bytes, %d bytes free", os.path.getsize(FILLER),
        free_bytes())


def unfill():
    if os.path.exists(FILLER):
        os.unlink(FILLER)
    log("filler removed, %d bytes free", free_bytes())


def msg(subj, body=b"hello\r\n"):
    return (b"From: <s@full.test>\r\nTo: <r@full.test>\r\nSubject: %s\r\n"
            b"Message-ID: <%s@dr-test>\r\n\r\n" % (subj.encode(),
                                                   subj.encode()) + body)


def wait_cache():
    """smtpd reads the free space at most once a second."""
    time.sleep(1.2)


accepted = {}           # subject -> queue id: every message that got 250


def send(c, subj, rcpt="r@full.test", body=b"hello\r\n"):
    qid = c.sendmail("s@full.test", [rcpt], msg(subj, body))
    accepted[subj] = qid
    return qid


# --- before: a message is accepted and queued
c = drtest.SMTP(d.host, d.port)
send(c, "before-1")
log("free on the spool: %d bytes", free_bytes())

# --- (a) SIZE= that would not fit above queue_minfree, and one that does
c.cmd("RSET")
code, text = c.cmd("MAIL FROM:<s@full.test> SIZE=%d" % (7 << 20))
check(code == 452 and text.startswith("4.3.1"),
      "(a) MAIL SIZE=7M with 8M free and queue_minfree 2M: 452 4.3.1 "
      "(got %d %s)" % (code, text))
code, text = c.cmd("MAIL FROM:<s@full.test> SIZE=%d" % (1 << 20))
check(code == 250, "(a) MAIL SIZE=1M fits: 250 (got %d %s)" % (code, text))
c.cmd("RSET")

# --- (a) free space below queue_minfree: every MAIL gets 452 4.3.1
fill(MINFREE // 2)
wait_cache()
code, text = c.cmd("MAIL FROM:<s@full.test>")
check(code == 452 and text == "4.3.1 Error: insufficient system storage",
      "(a) MAIL with 1M free, queue_minfree 2M: 452 4.3.1 (got %d %s)"
      % (code, text))
code, text = c.cmd("NOOP")
check(code == 250, "(a) the session goes on after the 452 (NOOP: %d)" % code)
check(re.search(r"NOQUEUE: reject: MAIL from unknown\[[0-9.]+\]: 452 4\.3\.1 "
                r"insufficient system storage \(\d+ bytes free, "
                r"queue_minfree %d, SIZE 0\); from=<s@full\.test>" % MINFREE,
                d.log_text()) is not None,
      "(a) the 452 is logged as a NOQUEUE reject with the free space")
c2 = drtest.SMTP(d.host, d.port)
c2.expect("EHLO x.dr-test.example", 250)
code, text = c2.cmd("MAIL FROM:<other@full.test>")
check(code == 452, "(a) another session's MAIL: 452 too (got %d)" % code)
c2.cmd("QUIT")
c2.close()
c.cmd("QUIT")
c.close()

# --- (b) queue_minfree small, the disk really full: ENOSPC in the commit
d.write_config(queue_minfree="64k")
nlog = len(d.log_text())
d.reload()
drtest.wait_for(lambda: "smtpd: settings reloaded" in d.log_text()[nlog:],
                10, "the reload")
fill(256 << 10)
wait_cache()
before = set(os.listdir(os.path.join(d.spool, "queue")))
c = drtest.SMTP(d.host, d.port)
c.expect("EHLO client.dr-test.example", 250)
c.expect("MAIL FROM:<s@full.test>", 250)
c.expect("RCPT TO:<r@full.test>", 250)
big = b"".join(b"%07d %s\r\n" % (i, b"x" * 90) for i in range(6000))  # ~590K
code, text = c.data(msg("too-big-for-the-disk", big))
check(code == 451 and text.startswith("4.3.1"),
      "(b) commit with ENOSPC: 451 4.3.1 (got %d %s)" % (code, text))
m = re.search(r"([0-9A-F]{16}): cannot queue message from .*No space left",
              d.log_text())
check(m is not None, "(b) the failed commit is logged with its reason")
failed_id = m.group(1) if m else "NONE"
after = set(os.listdir(os.path.join(d.spool, "queue")))
check(after == before, "(b) nothing new in queue/: %s" % sorted(after - before))
check(not any(n.startswith(failed_id) for n in d.tmp_files()),
      "(b) nothing of the failed message in tmp/: %s" % d.tmp_files())
check(failed_id not in d.queue_ids(), "(b) the failed id is not queued")
code, _ = c.cmd("NOOP")
check(code == 250, "(b) NOOP after the 451: %d" % code)
code, _ = c.cmd("EHLO client.dr-test.example")
check(code == 250, "(b) EHLO after the 451: %d" % code)
qid = send(c, "small-while-nearly-full")
check(qid in d.queue_ids(), "(b) a small message still fits: 250, queued")
c.cmd("QUIT")
c.close()
check(d.alive(), "(b) the daemon is still running")
drtest.wait_for(lambda: d.tmp_files() == [], 10, "an empty tmp/")

# --- (d) an envelope rewrite that fails for lack of space is retried
unfill()
c = drtest.SMTP(d.host, d.port)
defer_id = send(c, "deferred", rcpt="u@later.test")
c.close()
drtest.wait_for(lambda: re.search(r"to=<u@later\.test>, attempt 1 deferred",
                                  d.log_text()), 20, "the first attempt")
drtest.wait_for(lambda: d.read_env(defer_id)["rcpts"][0].get("attempts")
                == "1", 10, "attempt 1 in the envelope")
fill(0)                                 # nothing left at all
drtest.wait_for(lambda: re.search(r"to=<u@later\.test>, attempt 2 deferred",
                                  d.log_text()), 20, "the second attempt")
pat = (r"%s: cannot record delivery results: .*No space left.*trying "
       r"again" % defer_id)
drtest.wait_for(lambda: re.search(pat, d.log_text()), 10,
                "the failed envelope rewrite")
check(d.read_env(defer_id)["rcpts"][0].get("attempts") == "1",
      "(d) while the disk is full the envelope still says attempt 1")
unfill()

# --- (c) space again: accepted, and everything delivered
c = drtest.SMTP(d.host, d.port)
send(c, "after-1")
c.close()


def env_attempts():
    return d.read_env(defer_id)["rcpts"][0].get("attempts")


drtest.wait_for(lambda: env_attempts() != "1", 10,
                "the envelope rewrite to be retried")
check(env_attempts() == "2",
      "(d) the retried rewrite recorded attempt 2 (envelope: %s)"
      % env_attempts())
check(re.search(r"to=<u@later\.test>, attempt 3 ", d.log_text()) is None,
      "(d) ... before attempt 3 could have written it")


def delivered():
    subs = set()
    for m in s_ok.messages():
        hit = re.search(rb"^Subject: (\S+)", m["data"], re.M)
        if hit:
            subs.add(hit.group(1).decode())
    return subs


want = {s for s in accepted if s != "deferred"}
drtest.wait_for(lambda: want <= delivered(), 30,
                "every accepted message at the sink")
check(want <= delivered(), "(c) delivered: %s" % sorted(delivered()))
check("too-big-for-the-disk" not in delivered(),
      "(c) the refused message was not delivered")
check(defer_id in d.queue_ids(), "(c) the deferred message is still queued")
drtest.wait_for(lambda: set(d.queue_ids()) == {defer_id}, 20,
                "the delivered messages removed from the queue")

d.stop()
unmount()
check(not mounted, "the tmpfs is unmounted")
w.stop()
drtest.done()
