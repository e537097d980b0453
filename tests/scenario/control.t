#!/usr/bin/python3
# control.t - the daemon's control socket (src/control.c) and the CLI
# commands that use it: `danerelay flush [ID|DOMAIN]`, `queue hold`,
# `queue release`, `queue delete`, `status`, and the '*' mark of a
# message in delivery in `danerelay queue`.
#
# The daemon's resolver refuses every name at once (every delivery
# defers) except inflight.dr-test.example, whose queries go to a UDP
# socket of ours that never answers: a delivery attempt there stays in
# progress for many seconds.  min_backoff = 1h, so nothing is retried
# unless we ask for it.
#
# Checks: the socket is 0600 and belongs to the daemon's user; hold shows
# '!' and is written to the envelope, flush of a held message is refused,
# release, flush ID / DOMAIN / everything each cause exactly the expected
# new attempts (attempt count in the envelope and a status=deferred log
# line); delete of a waiting message and of one in a delivery attempt
# (marked '*', cancelled) removes it from spool and listing; unknown ids,
# bad arguments; the raw protocol (pipelined requests answered in order,
# unknown/short/unprintable requests, an over-long line closes); a user
# other than root and the daemon's is refused by the file mode and, with
# the mode opened up, by the SO_PEERCRED check; a second daemon cannot
# take over a live socket, a non-socket path is refused; with the daemon
# stopped (stale socket left behind) listing works, flush/status say it
# is not running, hold/release/delete edit the spool directly as the
# spool's owner; a restart keeps every message with its attempt count,
# next-attempt time and hold flag, and the new daemon answers on the
# socket again.
import os
import pwd
import re
import socket
import stat
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import drtest                                   # noqa: E402
from drtest import check, log                   # noqa: E402

ROOT = os.geteuid() == 0
LIST_RE = re.compile(r"^([0-9A-F]{16})([ !*])", re.M)


def listing(d):
    """`danerelay queue` -> {id: mark}."""
    r = d.cli("queue")
    if r.returncode != 0:
        drtest.fail("danerelay queue -> %d: %s" % (r.returncode, r.stderr))
    return {m.group(1): m.group(2) for m in LIST_RE.finditer(r.stdout)}


def attempts(d, qid):
    """Attempt counts of qid's recipients, from its envelope."""
    return [int(r.get("attempts", "0")) for r in d.read_env(qid)["rcpts"]]


def schedule(d, qid):
    env = d.read_env(qid)
    return (env.get("hold"), [(r.get("attempts"), r.get("next"),
                               r.get("state")) for r in env["rcpts"]])


def deferred_lines(d, qid):
    return len(re.findall(r"%s: to=<[^>]*>.*status=deferred" % qid,
                          d.log_text()))


def settled(d):
    """{id: in a delivery attempt now} once the daemon has acted on every
    request made so far.  Each control request runs on every worker's
    loop; a queue run that a request scheduled (a 0 s timer) fires at
    the latest in the loop iteration that serves the next request, so
    after two "list" round trips every attempt the daemon decided to
    start is under way (active=1) or over (its outcome logged)."""
    d.control("list")
    act = {}
    for line in d.control("list"):
        f = line.split()
        if len(f) >= 3 and f[0] == "msg":
            act[f[1]] = f[2] == "active=1"
    return act


def untouched(d, qids, base, lines, what):
    """No attempt of any of qids since base (attempt counts) and lines
    (their deferred log lines), proved after settled(), not after a
    sleep."""
    act = settled(d)
    for q in qids:
        check(not act.get(q, False) and attempts(d, q) == [base[q]] and
              deferred_lines(d, q) == lines[q],
              "%s: %s (active %s, attempts %s (was %s), %d log lines (was "
              "%d))" % (what, q, act.get(q), attempts(d, q), base[q],
                        deferred_lines(d, q), lines[q]))


def wait_attempts(d, qid, n, what):
    drtest.wait_for(lambda: min(attempts(d, qid)) >= n, 60, what)


def raw(path, data, timeout=10):
    """Send bytes on the control socket, return everything read until the
    daemon closes or stops answering for a moment."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(drtest.scaled(timeout))
    s.connect(path)
    s.sendall(data)
    out = b""
    try:
        while True:
            s.settimeout(1.0)
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except (socket.timeout, ConnectionResetError):
        pass        # a reset after an error reply is fine: it came first
    s.close()
    return out.decode("utf-8", "replace")


def refuse_all(sock, stop):
    """Answer every DNS query that reaches the blackhole with REFUSED
    (the header and question echoed, QR set), until stop is set."""
    sock.settimeout(0.1)
    while not stop.is_set():
        try:
            q, peer = sock.recvfrom(4096)
        except socket.timeout:
            continue
        if len(q) < 12:
            continue
        pos = 12
        while pos < len(q) and q[pos] != 0:
            pos += 1 + q[pos]
        question = q[12:pos + 5]
        flags = 0x8000 | (q[2] << 8 & 0x0100) | 0x0080 | 5
        sock.sendto(q[:2] + flags.to_bytes(2, "big") + b"\0\1\0\0\0\0\0\0"
                    + question, peer)


def as_nobody(d, *args):
    return subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
         d.cli_binary, "-c", d.conf] + list(args),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, universal_newlines=True,
        timeout=drtest.scaled(60))


def resolver_conf(d, blackhole):
    """libunbound config: "." refused locally, inflight.dr-test.example
    forwarded to blackhole (host, port), which swallows the queries."""
    path = os.path.join(d.dir, "unbound-control-t.conf")
    with open(path, "w") as f:
        f.write("server:\n"
                "    do-not-query-localhost: no\n"
                "    local-zone: \".\" refuse\n"
                "    local-zone: \"inflight.dr-test.example.\" transparent\n"
                "    domain-insecure: \"inflight.dr-test.example.\"\n"
                "forward-zone:\n"
                "    name: \"inflight.dr-test.example.\"\n"
                "    forward-addr: %s@%d\n" % blackhole)
    os.chmod(path, 0o644)
    return path


def main():
    blackhole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blackhole.bind((drtest.ip(2), 0))
    d = drtest.Daemon(min_backoff="1h", max_backoff="4h")
    for b in (d.binary, d.cli_binary):
        if not os.access(b, os.X_OK):
            drtest.skip("%s not built" % b)
    d.write_config(dns_config=resolver_conf(d, blackhole.getsockname()))
    sock = d.options["control_socket"]
    d.start()

    # -- the socket itself
    if not os.path.exists(sock):
        drtest.fail("no control socket %s after start-up (control_new "
                    "not called by danerelayd?)" % sock)
    st = os.lstat(sock)
    check(stat.S_ISSOCK(st.st_mode), "control socket exists")
    check(stat.S_IMODE(st.st_mode) == 0o600,
          "socket mode %o, want 600" % stat.S_IMODE(st.st_mode))
    if ROOT:
        check(st.st_uid == pwd.getpwnam("danerelay").pw_uid,
              "socket owned by the daemon's user")

    # -- three messages, three domains; wait for the first attempts
    c = drtest.SMTP(d.host, d.port)
    ids = {}
    for name in ("a", "b", "c"):
        ids[name] = c.sendmail("s@client.dr-test.example",
                               ["%s@%s.dr-test.example" % (name, name)],
                               b"Subject: " + name.encode() + b"\r\n\r\nx\r\n")
    c.close()
    A, B, C = ids["a"], ids["b"], ids["c"]
    log("queued A=%s B=%s C=%s", A, B, C)
    for q in (A, B, C):
        wait_attempts(d, q, 1, "first attempt of %s" % q)
    # the daemon's decision after each first attempt: the next one in
    # min_backoff (1 h, +-10 % jitter), not sooner
    for q in (A, B, C):
        m = drtest.wait_for(lambda: re.search(
            r"%s: to=<[^>]*>, attempt 1 deferred, next attempt in (\d+)s"
            % q, d.log_text()), 10, "the retry time of %s" % q)
        check(int(m.group(1)) >= 3240, "%s: next attempt in %ss, at least "
              "0.9 x min_backoff" % (q, m.group(1)))
    untouched(d, (A, B, C), {A: 1, B: 1, C: 1}, {A: 1, B: 1, C: 1},
              "one attempt each")

    r = d.cli("status")
    check(r.returncode == 0 and "3 messages in the queue" in r.stdout,
          "status: %r %r" % (r.stdout, r.stderr))

    # -- hold
    r = d.cli("queue", "hold", A.lower())
    check(r.returncode == 0 and r.stdout.strip() == "%s: on hold" % A,
          "hold A (lower-case id): %r %r" % (r.stdout, r.stderr))
    # the rewrite runs on the daemon's io pool: durable moments later
    drtest.wait_for(lambda: d.read_env(A).get("hold") == "1", 10,
                    "hold written to A's envelope")
    check(listing(d).get(A) == "!", "listing shows A held ('!')")
    r = d.cli("flush", A)
    check(r.returncode == 1 and "on hold" in r.stderr,
          "flush of a held message refused: %r" % r.stderr)

    # -- release: tried at its next retry time, not at once
    r = d.cli("queue", "release", A)
    check(r.returncode == 0 and r.stdout.strip() == "%s: released" % A,
          "release A: %r %r" % (r.stdout, r.stderr))
    drtest.wait_for(lambda: d.read_env(A).get("hold") == "0", 10,
                    "release written to envelope")
    check(listing(d).get(A) == " ", "listing: A no longer held")
    untouched(d, (A,), {A: 1}, {A: 1}, "release alone does not retry at once")

    # -- flush everything: a held message is not tried
    check(d.cli("queue", "hold", A).returncode == 0, "hold A again")
    r = d.cli("flush")
    check(r.returncode == 0, "flush all -> 0: %r" % r.stderr)
    wait_attempts(d, B, 2, "flush-all attempt of B")
    wait_attempts(d, C, 2, "flush-all attempt of C")
    untouched(d, (A,), {A: 1}, {A: 1}, "held A not tried by flush")
    check(d.cli("queue", "release", A).returncode == 0, "release A again")

    # -- flush one message
    settled(d)
    base = {q: attempts(d, q)[0] for q in (A, B, C)}
    lines = {q: deferred_lines(d, q) for q in (A, B, C)}
    check(all(lines[q] == base[q] for q in (A, B, C)),
          "one deferred line per attempt: %r %r" % (base, lines))
    n0 = lines[A]
    r = d.cli("flush", A)
    check(r.returncode == 0 and "scheduled" in r.stdout,
          "flush A: %r %r" % (r.stdout, r.stderr))
    wait_attempts(d, A, base[A] + 1, "flushed attempt of A")
    drtest.wait_for(lambda: deferred_lines(d, A) > n0, 10,
                    "log line of A's flushed attempt")
    untouched(d, (B, C), base, lines, "flush A left B and C alone")
    base[A] = attempts(d, A)[0]
    lines[A] = deferred_lines(d, A)

    # -- flush a domain (case-insensitive)
    r = d.cli("flush", "B.DR-TEST.example")
    check(r.returncode == 0, "flush domain: %r" % r.stderr)
    wait_attempts(d, B, base[B] + 1, "flushed attempt of B's domain")
    untouched(d, (A, C), base, lines, "flush domain left A and C alone")
    r = d.cli("flush", "nowhere.dr-test.example")
    check(r.returncode == 1 and "no recipient" in r.stderr,
          "flush of an unknown domain -> 1: %r" % r.stderr)
    r = d.cli("flush", "no such")
    check(r.returncode == 2, "flush with a space -> usage error")
    r = d.cli("flush", "a", "b")
    check(r.returncode == 2, "flush with two arguments -> usage error")

    # -- delete
    r = d.cli("queue", "delete", C)
    check(r.returncode == 0 and r.stdout.strip() == "%s: deleted" % C,
          "delete C: %r %r" % (r.stdout, r.stderr))
    check(C not in d.queue_ids(), "C gone from the spool")
    check(not os.path.exists(os.path.join(d.spool, "queue", C + ".msg")),
          "C's data gone")
    check(C not in listing(d), "C gone from the listing")
    r = d.cli("queue", "delete", C)
    check(r.returncode == 1 and "no such message" in r.stderr,
          "delete C again -> 1: %r" % r.stderr)
    r = d.cli("queue", "hold", "0123456789ABCDEF")
    check(r.returncode == 1 and "no such message" in r.stderr,
          "hold of an unknown id -> 1")
    r = d.cli("queue", "release", "not-an-id")
    check(r.returncode == 2, "release of a bad id -> usage error")

    # -- delete during a delivery attempt ('*' while it runs)
    c = drtest.SMTP(d.host, d.port)
    D = c.sendmail("s@client.dr-test.example",
                   ["d@inflight.dr-test.example"],
                   b"Subject: d\r\n\r\nx\r\n")
    c.close()
    drtest.wait_for(lambda: "1 delivery attempt in" in d.cli("status").stdout,
                    10, "D's attempt in progress")
    marks = listing(d)
    check(attempts(d, D) == [0], "D's attempt still in progress")
    check(marks.get(D) == "*", "D in delivery is marked '*': %r"
          % marks.get(D))
    check(marks.get(A) == " ", "A waiting, not marked")
    r = d.cli("queue", "delete", D)
    check(r.returncode == 0, "delete D in flight: %r" % r.stderr)
    check(D not in d.queue_ids(), "D gone from the spool")
    check(D not in listing(d), "D gone from the listing")
    check("0 delivery attempts in" in d.cli("status").stdout,
          "D's attempt cancelled")
    # Now let the DNS answer that D's attempt was waiting for arrive: a
    # second message F to the same domain (same worker) waits for the same
    # lookups, the blackhole answers them all, and once F's outcome is
    # logged, D's would have been too had its attempt lived on.
    c = drtest.SMTP(d.host, d.port)
    F = c.sendmail("s@client.dr-test.example",
                   ["f@inflight.dr-test.example"], b"Subject: f\r\n\r\nx\r\n")
    c.close()
    drtest.wait_for(lambda: "1 delivery attempt in" in d.cli("status").stdout,
                    10, "F's attempt in progress")
    stop = threading.Event()
    answerer = threading.Thread(target=refuse_all, args=(blackhole, stop))
    answerer.start()
    try:
        drtest.wait_for(lambda: deferred_lines(d, F) >= 1, 60,
                        "F's outcome once the DNS answers came")
        settled(d)
    finally:
        stop.set()
        answerer.join()
    check(deferred_lines(d, D) == 0, "no outcome logged for D")
    check(re.search(r"%s: to=" % D, d.log_text()) is None,
          "no delivery line at all for D")
    check(D not in d.queue_ids(), "D not written back")
    check(d.cli("queue", "delete", F).returncode == 0, "delete F")

    # -- the raw protocol
    out = raw(sock, b"status\nlist\nfrobnicate\nhold\nhold x y z\n"
              b"hold %s\ndelete 0000000000000000\nhold \x01\n"
              % A.lower().encode())
    lines = out.splitlines()
    finals = [ln for ln in lines if not ln.startswith("msg ")]
    want = ["ok messages=2 active=0", "ok 2", "error unknown request",
            "error usage: hold ID", "error too many arguments",
            "error not a queue id", "error no such message in the queue",
            "error request is not printable ASCII"]
    check(len(finals) == len(want) and all(
        f.startswith(w) for f, w in zip(finals, want)),
        "pipelined replies in order: %r" % finals)
    msgs = sorted(ln.split()[1] for ln in lines if ln.startswith("msg "))
    check(msgs == sorted([A, B]), "list: %r" % msgs)
    out = raw(sock, b"x" * 5000)
    check(out.startswith("error request too long"),
          "over-long line refused: %r" % out[:80])
    out = raw(sock, b"status\r\n")
    check(out.startswith("ok messages=2"), "CRLF accepted: %r" % out)
    check(d.alive(), "daemon alive after the raw requests")

    # -- other users
    if ROOT and drtest.which("setpriv"):
        r = as_nobody(d, "flush")
        check(r.returncode == 1 and "permission denied" in r.stderr,
              "nobody refused by the socket mode: %r" % r.stderr)
        r = as_nobody(d, "queue", "delete", A)
        check(r.returncode == 1 and A in d.queue_ids(),
              "nobody cannot delete: %r" % r.stderr)
        os.chmod(sock, 0o666)
        try:
            r = as_nobody(d, "queue", "hold", A)
        finally:
            os.chmod(sock, 0o600)
        check(r.returncode == 1 and "permission denied" in r.stderr,
              "nobody refused by SO_PEERCRED: %r" % r.stderr)
        check("refused uid 65534" in d.log_text(),
              "refusal logged with the uid")
        check(d.read_env(A).get("hold") == "0", "A not held by nobody")
    else:
        drtest.skip_part("not root or no setpriv: the other-user checks")

    # -- nobody takes over a live socket; a non-socket is refused
    d2 = drtest.Daemon(name="d2", control_socket=sock)
    d2.start(wait=False)
    try:
        rc = d2.proc.wait(timeout=drtest.scaled(30))
    except subprocess.TimeoutExpired:
        rc = None
    check(rc == 1 and "another process is listening" in d2.log_text(),
          "second daemon on a live socket refused (rc %r)" % rc)
    check(d.alive() and d.cli("status").returncode == 0,
          "first daemon still answers")
    notsock = os.path.join(d2.dir, "not-a-socket")
    with open(notsock, "w") as f:
        f.write("x")
    d2.write_config(control_socket=notsock)
    d2.start(wait=False)
    try:
        rc = d2.proc.wait(timeout=drtest.scaled(30))
    except subprocess.TimeoutExpired:
        rc = None
    check(rc == 1 and "is not a socket" in d2.log_text(),
          "non-socket control_socket refused (rc %r)" % rc)
    check(os.path.isfile(notsock), "the file was left alone")

    # -- restart mid-queue: hold B, stop, look, edit, start
    check(d.cli("queue", "hold", B).returncode == 0, "hold B")
    n = attempts(d, A)[0]
    check(d.cli("flush").returncode == 0, "flush before the restart")
    wait_attempts(d, A, n + 1, "A tried once more")
    untouched(d, (B,), {B: attempts(d, B)[0]}, {B: deferred_lines(d, B)},
              "held B not tried by the flush")
    sched = {q: schedule(d, q) for q in (A, B)}
    nlines = {q: deferred_lines(d, q) for q in (A, B)}
    log("schedule before the restart: %r", sched)
    check(all(s[1][0][1] not in (None, "0") for s in sched.values()),
          "every recipient has a next-attempt time")
    d.stop()
    check({q: schedule(d, q) for q in (A, B)} == sched,
          "SIGTERM changed no envelope")

    marks = listing(d)
    check(marks == {A: " ", B: "!"}, "stopped: listing from the spool %r"
          % marks)
    r = d.cli("status")
    check(r.returncode == 1 and "not running" in r.stdout,
          "stopped: status says not running: %r" % r.stdout)
    r = d.cli("flush")
    check(r.returncode == 1 and "not running" in r.stderr,
          "stopped: flush says not running: %r" % r.stderr)
    # hold/release/delete edit the spool directly
    r = d.cli("queue", "release", B)
    check(r.returncode == 0 and d.read_env(B).get("hold") == "0",
          "stopped: release B directly: %r" % r.stderr)
    r = d.cli("queue", "hold", B)
    check(r.returncode == 0 and d.read_env(B).get("hold") == "1",
          "stopped: hold B directly: %r" % r.stderr)
    if ROOT:
        envst = os.stat(os.path.join(d.spool, "queue", B + ".env"))
        check(envst.st_uid == pwd.getpwnam("danerelay").pw_uid,
              "an envelope rewritten by root's CLI belongs to the daemon")
    check(schedule(d, B) == sched[B], "direct edits kept B's schedule")
    c_ids = d.queue_ids()

    start_at = len(d.log_text())
    d.start()
    check(sorted(d.queue_ids()) == sorted(c_ids), "every message kept")
    # the loaded queue has run (settled) and tried nothing: no attempt in
    # flight, no outcome logged since the restart
    act = settled(d)
    check(not any(act.values()), "nothing in flight after the restart: %r"
          % act)
    check(re.search(r"status=deferred", d.log_text()[start_at:]) is None
          and {q: deferred_lines(d, q) for q in (A, B)} == nlines,
          "no attempt after the restart")
    after = {q: schedule(d, q) for q in (A, B)}
    check(after == sched, "restart kept attempts, next-attempt times and "
          "hold: %r -> %r" % (sched, after))
    check("queue: 2 messages loaded" in d.log_text(), "both loaded")
    r = d.cli("status")
    check(r.returncode == 0 and "2 messages in the queue" in r.stdout,
          "restarted daemon answers: %r %r" % (r.stdout, r.stderr))
    check(listing(d) == {A: " ", B: "!"}, "listing after the restart")
    n = attempts(d, B)[0]
    check(d.cli("queue", "release", B).returncode == 0, "release B")
    check(d.cli("flush", B).returncode == 0, "flush B")
    wait_attempts(d, B, n + 1, "B tried after release + flush")

    # -- stopped again: delete directly
    d.stop()
    r = d.cli("queue", "delete", A)
    check(r.returncode == 0 and A not in d.queue_ids(),
          "stopped: delete A directly: %r" % r.stderr)
    d.start()
    check(d.cli("status").stdout.find("1 message in the queue") != -1,
          "one message left after the restart")
    d.stop()
    drtest.done()


main()
