#!/usr/bin/python3
# queue_cli.t - `danerelay queue` / `mailq` / `queue delete` against a
# spool written here by hand in envelope format 1 (src/spool.c), without
# a daemon: the operator can read a stopped daemon's queue.
#
# Checks: listing (ids, sizes, null sender, per-recipient state, last
# error, summary "-- N KiB in N messages."), foreign bytes from a hostile
# peer never reach the terminal raw, a corrupt envelope is reported (exit
# 1) while the rest is listed, listing never touches tmp/ leftovers,
# delete (lower-case id accepted, missing id -> 1, bad id -> 2, nothing
# else removed), usage errors -> 2, a missing spool or bad config -> 1,
# and an empty queue.
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import drtest                                   # noqa: E402
from drtest import check, log                   # noqa: E402

CLI = os.path.join(drtest.BUILDDIR, "danerelay")
SPOOL = os.path.join(drtest.TMPDIR, "spool")
CONF = os.path.join(drtest.TMPDIR, "danerelay.conf")


def esc(s):
    """Envelope value escaping: controls, space, DEL and % as %XX."""
    out = []
    for b in s.encode() if isinstance(s, str) else s:
        if b <= 0x20 or b == 0x7F or b == 0x25:
            out.append("%%%02X" % b)
        else:
            out.append(chr(b) if b < 0x80 else bytes([b]).decode("latin-1"))
    return "".join(out).encode("latin-1")


def put_message(qid, sender, rcpts, data, created, extra=b""):
    with open(os.path.join(SPOOL, "queue", qid + ".msg"), "wb") as f:
        f.write(data)
    lines = [b"danerelay-envelope 1", b"id " + qid.encode(),
             b"created %d" % created, b"size %d" % len(data),
             b"sender" + (b" " + esc(sender) if sender else b"")]
    if extra:
        lines.append(extra)
    for r in rcpts:
        lines.append(b"rcpt " + esc(r["addr"]))
        lines.append(b"rcpt-state " + r.get("state", "pending").encode())
        lines.append(b"rcpt-attempts %d" % r.get("attempts", 0))
        lines.append(b"rcpt-next %d" % r.get("next", 0))
        if "error" in r:
            lines.append(b"rcpt-error " + esc(r["error"]))
        if "relay" in r:
            lines.append(b"rcpt-relay " + esc(r["relay"]))
    lines.append(b"end")
    with open(os.path.join(SPOOL, "queue", qid + ".env"), "wb") as f:
        f.write(b"\n".join(lines) + b"\n")


def run(*args, conf=True):
    cmd = [CLI] + (["-c", CONF] if conf else []) + list(args)
    r = subprocess.run(cmd, capture_output=True, timeout=drtest.scaled(30))
    r.out = r.stdout.decode("utf-8", "backslashreplace")
    r.err = r.stderr.decode("utf-8", "backslashreplace")
    return r


def main():
    if not os.access(CLI, os.X_OK):
        drtest.skip("%s not built" % CLI)
    for d in ("", "tmp", "queue"):
        os.makedirs(os.path.join(SPOOL, d), mode=0o700, exist_ok=True)
    with open(CONF, "w") as f:
        f.write("spool_dir = %s\n" % SPOOL)

    now = int(time.time())
    A, B, C = "6B000000AAAAAAA1", "6B000000BBBBBBB2", "6B000000CCCCCCC3"
    put_message(A, "alice@example.org", [{"addr": "bob@example.net"}],
                b"Subject: a\r\n\r\n" + b"x" * 3000, now - 7200)
    put_message(B, "", [{"addr": "alice@example.org", "state": "pending",
                         "attempts": 4, "next": now + 930,  # 15m30s: "15m" even if the test is slow
                         "error": "451 4.7.5 \x1b[2J\x1b]0;pwned\x07TLSA "
                                  "mismatch\r\nsecond line",
                         "relay": "mx.example.org[127.0.20.9]:25"}],
                b"bounce\r\n" * 100, now - 60, b"bounce 1")
    put_message(C, "carol@example.com",
                [{"addr": "d1@example.net", "state": "delivered",
                  "attempts": 1},
                 {"addr": "j\u00f6rg@b\u00fccher.example", "state": "failed",
                  "attempts": 2, "error": "550 5.1.1 no such user"},
                 {"addr": "evil\x9b31m@example.net"}],
                b"\x00\xff" * 600, now - 3 * 86400, b"hold 1")
    # A crash leftover the listing must not touch.
    with open(os.path.join(SPOOL, "tmp", "6B000000DDDDDDD4.msg"), "wb") as f:
        f.write(b"partial")

    # -- listing
    for cmd in (["queue"], ["mailq"], ["queue", "list"]):
        r = run(*cmd)
        check(r.returncode == 0, "%s: exit %d, stderr %r"
              % (cmd, r.returncode, r.err))
        check(r.err == "", "%s: stderr %r" % (cmd, r.err))
    log("listing:\n%s", r.out)
    out = r.out
    for qid in (A, B, C):
        check(qid in out, "%s listed" % qid)
    lines = out.splitlines()
    line_a = [l for l in lines if l.startswith(A)]
    check(line_a and "3014" in line_a[0] and "<alice@example.org>"
          in line_a[0] and "2h" in line_a[0], "line of A: %r" % line_a)
    line_b = [l for l in lines if l.startswith(B)]
    check(line_b and "<>" in line_b[0] and " 800 " in line_b[0],
          "null sender and size of B: %r" % line_b)
    line_c = [l for l in lines if l.startswith(C)]
    check(line_c and line_c[0].startswith(C + "!") and "3d" in line_c[0],
          "hold mark and age of C: %r" % line_c)
    check("<bob@example.net> pending" in out, "A's recipient pending")
    check("4 attempts" in out and "next in 15m" in out, "B's retry state")
    check("relay=mx.example.org[127.0.20.9]:25" in out, "B's relay")
    check("451 4.7.5" in out and "TLSA mismatch" in out, "B's last error")
    check("<d1@example.net> delivered" in out, "C's delivered recipient")
    check("<j\u00f6rg@b\u00fccher.example> failed" in out,
          "UTF-8 recipient shown as is")
    check("550 5.1.1 no such user" in out, "C's last error")
    check("-- 5 KiB in 3 messages." in out.splitlines()[-1],
          "summary line: %r" % out.splitlines()[-1:])
    # Terminal safety: no ESC, BEL, CR, C1 CSI reaches stdout raw.
    raw = r.stdout
    for bad in (b"\x1b", b"\x07", b"\r", b"\xc2\x9b", b"\x9b"):
        check(bad not in raw, "raw %r in the listing" % bad)
    check("\\x1B[2J" in out and "\\x0D\\x0Asecond line" in out,
          "escapes shown visibly")
    check(os.path.exists(os.path.join(SPOOL, "tmp", "6B000000DDDDDDD4.msg")),
          "listing left tmp/ alone")

    # -s overrides the config.
    r = run("-s", SPOOL, "queue", conf=False)
    check(r.returncode == 0 and A in r.out, "-s SPOOL queue works")

    # -- a corrupt envelope: reported, the others still listed, exit 1
    E = "6B000000EEEEEEE5"
    with open(os.path.join(SPOOL, "queue", E + ".msg"), "wb") as f:
        f.write(b"data")
    with open(os.path.join(SPOOL, "queue", E + ".env"), "wb") as f:
        f.write(b"danerelay-envelope 1\nid " + E.encode() + b"\nsender a b\n")
    r = run("queue")
    check(r.returncode == 1, "corrupt envelope: exit %d" % r.returncode)
    check(E in r.err and "line 3" in r.err, "corrupt reported: %r" % r.err)
    check(A in r.out and C in r.out and "in 3 messages." in r.out,
          "others still listed")
    os.unlink(os.path.join(SPOOL, "queue", E + ".env"))
    os.unlink(os.path.join(SPOOL, "queue", E + ".msg"))

    # -- delete
    r = run("queue", "delete", A.lower())
    check(r.returncode == 0, "delete A: exit %d %r" % (r.returncode, r.err))
    check("%s: deleted" % A in r.out, "delete A says so: %r" % r.out)
    for ext in (".env", ".msg"):
        check(not os.path.exists(os.path.join(SPOOL, "queue", A + ext)),
              "A%s gone" % ext)
    r = run("queue", "delete", A)
    check(r.returncode == 1 and "no such message" in r.err,
          "delete again: exit %d %r" % (r.returncode, r.err))
    for bad in ("../queue/x", "6B000000BBBBBBB", "6B000000BBBBBBBG",
                "6B000000BBBBBBB2/"):
        r = run("queue", "delete", bad)
        check(r.returncode == 2 and "not a queue id" in r.err,
              "delete %r: exit %d %r" % (bad, r.returncode, r.err))
    r = run("queue", "delete", B, "nonsense")
    check(r.returncode == 2, "a bad id among good ones: usage error first")
    check(os.path.exists(os.path.join(SPOOL, "queue", B + ".env")),
          "nothing deleted when an argument is bad")
    r = run("queue")
    check(B in r.out and C in r.out and A not in r.out,
          "after delete: %r" % r.out)
    check("in 2 messages." in r.out, "summary after delete")

    # -- usage
    for args in ([], ["bogus"], ["queue", "bogus"], ["queue", "delete"],
                 ["mailq", "x"], ["-x", "queue"]):
        r = run(*args)
        check(r.returncode == 2 and "usage:" in r.err,
              "%s: exit %d, %r" % (args, r.returncode, r.err[:200]))
    r = run("-h", conf=False)
    check(r.returncode == 0 and "queue" in r.out, "-h prints usage")

    # -- errors: missing spool, bad config
    r = run("-s", os.path.join(drtest.TMPDIR, "nope"), "queue", conf=False)
    check(r.returncode == 1 and "nope" in r.err,
          "missing spool: exit %d %r" % (r.returncode, r.err))
    check(not os.path.exists(os.path.join(drtest.TMPDIR, "nope")),
          "the CLI never creates a spool")
    badconf = os.path.join(drtest.TMPDIR, "bad.conf")
    with open(badconf, "w") as f:
        f.write("spool_dir = %s\nno_such_option = 1\n" % SPOOL)
    r = subprocess.run([CLI, "-c", badconf, "queue"], capture_output=True,
                       text=True, timeout=drtest.scaled(30))
    check(r.returncode == 1 and "bad.conf:2" in r.stderr,
          "bad config: exit %d %r" % (r.returncode, r.stderr))

    # -- empty queue
    run("queue", "delete", B, C)
    r = run("queue")
    check(r.returncode == 0 and "Mail queue is empty" in r.out,
          "empty queue: %r" % r.out)
    drtest.done()


main()
