"""drtest - helpers for danerelay's Python scenario tests.

Use Debian's /usr/bin/python3 and only the standard library.  A test
starts with

    #!/usr/bin/python3
    import os, sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
    import drtest

The runner (tests/run) sets DR_SRCDIR, DR_BUILDDIR, DR_TMPDIR and
DR_TEST_IP (127.A.B.1; the test may use 127.A.B.2 .. 127.A.B.254); when a
test is run by hand without them, drtest picks defaults (./build, a fresh
temporary directory, 127.0.40.1) so `tests/scenario/x.t` just works.
Importing drtest turns SIGTERM/SIGINT into a normal exit so every daemon a
test started is stopped (atexit) on any way out.

Environment and results
    drtest.SRCDIR, BUILDDIR, TMPDIR, TEST_IP
    drtest.ip(n)              -> "127.A.B.n" in the test's own range
    drtest.SCALE              timeout factor (DR_TIMEOUT_SCALE, e.g. 2 under
                              ASan); drtest.scaled(secs) applies it
    drtest.free_port(host)    a TCP port free on host right now
    drtest.log(fmt, *args)    a line on stdout (goes to the test log)
    drtest.check(cond, msg)   count a check; print FAIL msg if false
    drtest.fail(msg)          print, show daemon logs, exit 1
    drtest.skip(msg)          print "SKIP: msg", exit 77
    drtest.skip_part(msg)     print "SKIP part: msg"; under CI=true a
                              failed check unless tests/skip-allowlist
                              names the test
    drtest.done()             print "N passed, N failed" and exit 0/1
    drtest.at_done(fn)        fn() runs at the start of done()

The daemon
    d = drtest.Daemon(name="d", **options)
        Writes DR_TMPDIR/<name>/danerelay.conf: listen on TEST_IP:<free
        port> (d.host, d.port), spool_dir/state_dir/pid_file/
        control_socket under DR_TMPDIR/<name>, user "danerelay" when root
        (created like scripts/build does if missing), and an isolated
        resolver (dns_config with local-zone "." refuse: libunbound
        answers REFUSED without sending a packet; mta_sts = no, tlsrpt =
        no) so queued mail can never leave the machine: delivery attempts
        defer at once and the mail stays queued.  options override or add
        config names (None removes one); values are written as given.
    d.start(wait=True)        run `danerelayd -f -c CONF` (stderr to
                              d.logfile; d.env: more environment, e.g.
                              LD_PRELOAD) and wait (bounded) until it
                              answers 220 on its port
    d.start_on_free_port(host, listen)  start with listen(port) as the
                              listen value, port free on host (e.g. ::1,
                              which no run owns); a port taken before
                              the daemon binds it is picked again
    d.stop(expect_ok=True)    SIGTERM, wait, SIGKILL fallback; fails the
                              test if the exit status is not 0 or the log
                              holds a sanitizer report
    d.kill9()                 SIGKILL, no questions
    d.restart()               stop + start
    d.reload()                SIGHUP
    d.alive()                 still running?
    d.log_text()              everything it logged
    d.spool                   path of its spool directory
    d.queue_ids()             committed ids (queue/*.msg), sorted
    d.read_data(id)           the message data in queue/ID.msg
    d.read_env(id)            parsed envelope (dict, see parse_env):
                              queue/ID.env, else the one in ID.msg
    d.tmp_files()             names in spool tmp/
    d.control(request)        one request on its control socket -> the
                              reply's lines ("ok ..."/"error ..." last)
    d.cli(*args)              run `danerelay -c CONF args...`
                              -> subprocess.CompletedProcess (text)
    d.cli_until(args, pattern)  d.cli(*args) until it exits 0 with output
                              matching pattern (bounded wait) -> result
    d.write_config(**opts)    rewrite the config (for reload tests)

SMTP
    c = drtest.SMTP(host, port, timeout=10, source=None)
        a raw client: c.banner (code, text) after connect,
        c.cmd("EHLO x") -> (code, text), c.send(bytes), c.reply(),
        c.sendmail(sender, rcpts, data) -> queue id or raises SMTPError,
        c.starttls(cafile=None) -> TLS version (unverified without cafile),
        c.data(bytes) dot-stuffs and sends DATA content, c.close()
    drtest.dot_stuff(data), drtest.strip_received(data)
    drtest.QUEUED_RE matches "queued as ID" in a 250 reply
    drtest.closed_within(sock, secs)  True if the server closed in time

Certificates and tools
    drtest.auth_file(path, {user: password}) -> path: an auth_file
    drtest.make_cert(dir, cn) -> (certfile, keyfile), self-signed EC via the
        openssl CLI (tests/scenario/lib/certs.py is the place for CA chains)
    drtest.snippet(name)      a README.md operator snippet ("<!-- snippet:
                              NAME -->" and the fenced block after it)
    drtest.subst(text, [(old, new)...])  replace in a snippet, failing if
                              old is missing
    drtest.tool_events(out)   smtp_send_tool's "KIND k=v k="v w"" lines
                              -> {KIND: [dict, ...]}
    drtest.postfix_tools()    directory with Postfix's smtp-source,
        smtp-sink and posttls-finger wrappers (tests/scenario/lib/
        get-postfix-tools); skips the test if they cannot be had
"""

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

LIBDIR = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("DR_SRCDIR") or \
    os.path.dirname(os.path.dirname(os.path.dirname(LIBDIR)))
BUILDDIR = os.environ.get("DR_BUILDDIR") or os.path.join(SRCDIR, "build")
TMPDIR = os.environ.get("DR_TMPDIR")
if not TMPDIR:
    TMPDIR = tempfile.mkdtemp(prefix="drtest.")
    os.chmod(TMPDIR, 0o755)     # the daemon's unprivileged user reads it
TEST_IP = os.environ.get("DR_TEST_IP") or "127.0.40.1"
SCALE = float(os.environ.get("DR_TIMEOUT_SCALE") or "1")

QUEUED_RE = re.compile(r"queued as ([0-9A-F]{16})")

_checks = {"passed": 0, "failed": 0}
_daemons = []
_done_hooks = []


def scaled(secs):
    return secs * SCALE


def ip(n):
    """The n-th address of the test's own /24 (1..254)."""
    a, b, c, _ = TEST_IP.split(".")
    if not 1 <= n <= 254:
        raise ValueError("ip(%d): outside 1..254" % n)
    return "%s.%s.%s.%d" % (a, b, c, n)


def log(fmt, *args):
    msg = fmt % args if args else fmt
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def _show_daemon_logs(lines=60):
    for d in _daemons:
        print("---- last %d lines of %s" % (lines, d.logfile), flush=True)
        for line in d.log_text().splitlines()[-lines:]:
            print("  " + line)
        print("----", flush=True)


def fail(msg):
    print("FAIL: " + msg, flush=True)
    _show_daemon_logs()
    sys.exit(1)


def skip(msg):
    print("SKIP: " + msg, flush=True)
    sys.exit(77)


def skip_part(msg):
    """A part of the test cannot run here (a tool is missing).  Logged as
    "SKIP part: msg"; under CI=true, where scripts/install-deps --test
    installs everything, it is a failed check unless the test is in
    tests/skip-allowlist, as for a whole test that skips (tests/run)."""
    print("SKIP part: " + msg, flush=True)
    if os.environ.get("CI") != "true":
        return
    name = os.environ.get("DR_TEST_NAME", "")
    try:
        with open(os.path.join(SRCDIR, "tests", "skip-allowlist")) as f:
            pats = [line.split()[0] for line in f
                    if line.strip() and not line.lstrip().startswith("#")]
    except FileNotFoundError:
        pats = []
    import fnmatch
    check(any(fnmatch.fnmatchcase(name, p) or p == name for p in pats),
          "CI=true: a skipped part is a failure unless %s is in "
          "tests/skip-allowlist" % (name or "the test"))


def check(cond, msg):
    if cond:
        _checks["passed"] += 1
    else:
        _checks["failed"] += 1
        print("FAIL: " + msg, flush=True)
    return cond


def at_done(fn):
    """fn() runs first thing in done(): end-of-test checks (world.py: every
    daemon still alive, no sanitizer report)."""
    _done_hooks.append(fn)


def done():
    for fn in _done_hooks:
        fn()
    if _checks["failed"]:
        _show_daemon_logs()
    print("%d passed, %d failed" % (_checks["passed"], _checks["failed"]),
          flush=True)
    sys.exit(1 if _checks["failed"] else 0)


def _on_signal(signum, frame):
    raise SystemExit("drtest: signal %d" % signum)


signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


@atexit.register
def _cleanup():
    for d in _daemons:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


def free_port(host=None):
    host = host or TEST_IP
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def wait_for(pred, timeout, what, interval=0.05):
    """Poll pred() until true or timeout (scaled); fail the test then."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            fail("timed out after %.0fs waiting for %s" % (scaled(timeout),
                                                             what))
        time.sleep(interval)


def _ensure_user(name):
    try:
        import pwd
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home",
                        "--home-dir", "/nonexistent", "--shell",
                        "/usr/sbin/nologin", name], check=True)


# ---------------------------------------------------------------- daemon

class Daemon:
    def __init__(self, name="d", host=None, port=None, **options):
        self.name = name
        self.dir = os.path.join(TMPDIR, name)
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.host = host or TEST_IP
        self.port = port or free_port(self.host)
        self.conf = os.path.join(self.dir, "danerelay.conf")
        self.logfile = os.path.join(self.dir, "danerelayd.log")
        self.spool = os.path.join(self.dir, "spool")
        self.proc = None
        self.stopped = False    # stopped by the test (stop(), kill9())
        self.env = {}           # more environment for danerelayd
        self._logfh = None
        self.binary = os.path.join(BUILDDIR, "danerelayd")
        self.cli_binary = os.path.join(BUILDDIR, "danerelay")
        self.options = self._default_options()
        self.options.update(options)
        self.write_config()
        _daemons.append(self)

    def _default_options(self):
        dead = os.path.join(self.dir, "unbound.conf")
        with open(dead, "w") as f:
            # libunbound answers every query REFUSED itself, at once: no
            # packet is sent anywhere, delivery defers right away (and a
            # SIGTERM has no DNS lookups in flight to wait for).
            f.write("server:\n"
                    "    local-zone: \".\" refuse\n")
        os.chmod(dead, 0o644)
        opts = {
            "listen": ("[%s]:%d" if ":" in self.host else "%s:%d")
            % (self.host, self.port),
            "myhostname": "relay.dr-test.example",
            "spool_dir": self.spool,
            "state_dir": os.path.join(self.dir, "state"),
            "pid_file": os.path.join(self.dir, "run", "danerelayd.pid"),
            "control_socket": os.path.join(self.dir, "control.sock"),
            "dns_config": dead,
            "mta_sts": "no",
            "tlsrpt": "no",
        }
        if os.geteuid() == 0:
            _ensure_user("danerelay")
            opts["user"] = "danerelay"
        # workers = auto (one per CPU) unless the run says otherwise:
        # DR_TEST_WORKERS=1 runs every scenario on a single loop
        if os.environ.get("DR_TEST_WORKERS"):
            opts["workers"] = os.environ["DR_TEST_WORKERS"]
        return opts

    def write_config(self, **options):
        self.options.update(options)
        with open(self.conf + ".new", "w") as f:
            f.write("# written by drtest for %s\n" % os.environ.get(
                "DR_TEST_NAME", sys.argv[0]))
            for k, v in self.options.items():
                if v is not None:
                    f.write("%s = %s\n" % (k, v))
        os.chmod(self.conf + ".new", 0o644)
        os.rename(self.conf + ".new", self.conf)

    # -- process
    def start(self, wait=True, args=()):
        if self.proc is not None and self.proc.poll() is None:
            fail("%s: start: already running" % self.name)
        if not os.access(self.binary, os.X_OK):
            fail("no %s (build first)" % self.binary)
        self._logfh = open(self.logfile, "ab")
        self._logfh.write(("==== drtest: start %s\n" % time.strftime("%T"))
                          .encode())
        self._logfh.flush()
        self.stopped = False
        self.proc = subprocess.Popen(
            [self.binary, "-f", "-c", self.conf] + list(args),
            stdin=subprocess.DEVNULL, stdout=self._logfh,
            stderr=subprocess.STDOUT, cwd=self.dir,
            env=dict(os.environ, **self.env) if self.env else None)
        if wait:
            self.wait_ready()
        return self

    def start_on_free_port(self, host, listen, tries=5):
        """Start with a listener on host at a port that is free right
        now: listen(port) -> the config's whole listen value.  For an
        address outside the run's own block (::1 is shared by every run
        and every program on the machine), where such a port is not
        reserved: when something else binds it first, the daemon exits
        with "bind: Address already in use" and another port is tried
        (up to tries times).  -> the port."""
        for _ in range(tries):
            port = free_port(host)
            self.write_config(listen=listen(port))
            mark = len(self.log_text())
            self.start(wait=False)
            if self.wait_ready(or_exit=True):
                return port
            self._close_log()
            if "bind: Address already in use" not in self.log_text()[mark:]:
                fail("%s exited with %s during start-up" %
                     (self.name, self.proc.returncode))
            log("%s: port %d on %s taken before the daemon bound it, "
                "picking another", self.name, port, host)
        fail("%s: no free port on %s in %d tries" % (self.name, host, tries))

    def wait_ready(self, timeout=30, or_exit=False):
        """Until the daemon answers 220 (-> True); an exit during
        start-up fails the test, or returns False with or_exit."""
        deadline = time.monotonic() + scaled(timeout)
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if or_exit:
                    return False
                fail("%s exited with %s during start-up" %
                     (self.name, self.proc.returncode))
            try:
                c = SMTP(self.host, self.port, timeout=5)
                c.cmd("QUIT")
                c.close()
                return True
            except (OSError, SMTPError) as e:
                last = str(e)
            time.sleep(0.05)
        fail("%s did not answer on %s:%d within %.0fs (%s)" %
             (self.name, self.host, self.port, scaled(timeout), last))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, expect_ok=True, timeout=30):
        if self.proc is None:
            return None
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=scaled(timeout))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                if expect_ok:
                    fail("%s did not exit within %.0fs of SIGTERM" %
                         (self.name, scaled(timeout)))
        rc = self.proc.returncode
        self._close_log()
        if expect_ok:
            if rc != 0:
                fail("%s exited with status %s after SIGTERM" %
                     (self.name, rc))
            self.check_sanitizers()
        return rc

    def kill9(self):
        self.stopped = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_log()

    def restart(self):
        self.stop()
        self.start()

    def reload(self, wait=False, timeout=10):
        """SIGHUP; with wait, until the daemon's own "reloaded FILE" line
        of this reload (each worker's "settings reloaded" may come before
        the reload is over; a refused reload never says it)."""
        n = len(re.findall(r": reloaded /", self.log_text()))
        self.proc.send_signal(signal.SIGHUP)
        if wait:
            wait_for(lambda: len(re.findall(r": reloaded /",
                                            self.log_text())) > n,
                     scaled(timeout), "the reload")

    def _close_log(self):
        if self._logfh is not None:
            self._logfh.close()
            self._logfh = None

    def log_text(self):
        try:
            with open(self.logfile, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def check_sanitizers(self):
        text = self.log_text()
        for pat in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                    "runtime error:", "WARNING: ThreadSanitizer"):
            if pat in text:
                fail("%s: sanitizer report in %s" % (self.name, self.logfile))

    # -- spool
    def queue_ids(self):
        """Ids of the messages in queue/ (a message is its ID.msg)."""
        q = os.path.join(self.spool, "queue")
        try:
            names = os.listdir(q)
        except FileNotFoundError:
            return []
        return sorted(n[:-4] for n in names if n.endswith(".msg"))

    def _split_msg(self, qid):
        """queue/ID.msg -> (data, embedded envelope bytes or None).
        The file is the data, the envelope as committed and a trailer
        line "danerelay-data <16 hex>\\n" (the data's size); a file of
        version 0.1 is data only."""
        with open(os.path.join(self.spool, "queue", qid + ".msg"), "rb") as f:
            raw = f.read()
        return split_msg(raw)

    def read_data(self, qid):
        """The message data, exactly (without the embedded envelope)."""
        return self._split_msg(qid)[0]

    def read_env(self, qid):
        """The current envelope: queue/ID.env if a delivery rewrote it,
        else the one embedded in queue/ID.msg."""
        try:
            with open(os.path.join(self.spool, "queue", qid + ".env"),
                      "rb") as f:
                return parse_env(f.read())
        except FileNotFoundError:
            pass
        data, env = self._split_msg(qid)
        if env is None:
            raise FileNotFoundError("%s: no envelope" % qid)
        return parse_env(env)

    def tmp_files(self):
        try:
            return sorted(os.listdir(os.path.join(self.spool, "tmp")))
        except FileNotFoundError:
            return []

    def control(self, request, timeout=30):
        """One request on the daemon's control socket (src/control.c)
        -> the reply's lines, the final "ok ..." or "error ..." last."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(scaled(timeout))
        try:
            s.connect(self.options["control_socket"])
            s.sendall(request.encode() + b"\n")
            buf = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    raise OSError("control socket closed after %r"
                                  % buf[-200:])
                buf += chunk
                lines = buf.decode("utf-8", "replace").split("\n")
                for i, line in enumerate(lines[:-1]):
                    if line.startswith(("ok", "error")):
                        return lines[:i + 1]
        finally:
            s.close()

    def cli_until(self, args, pattern, timeout=15, what=None):
        """Run `danerelay args...` until it exits 0 and its output
        matches the regular expression pattern (counters the daemon
        writes every few seconds, e.g. `tlsrpt show`); -> that result.
        The test fails after timeout (scaled) seconds."""
        def ok():
            r = self.cli(*args)
            return r if r.returncode == 0 and re.search(
                pattern, r.stdout, re.M) else None
        return wait_for(ok, timeout, what or "danerelay %s to say /%s/"
                        % (" ".join(args), pattern), interval=0.5)

    def cli(self, *args, timeout=60):
        return subprocess.run([self.cli_binary, "-c", self.conf]
                              + list(args), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True,
                              timeout=scaled(timeout))


TRAILER_TAG = b"danerelay-data "
TRAILER_LEN = len(TRAILER_TAG) + 16 + 1


def split_msg(raw):
    """A spool message file -> (data, embedded envelope or None)."""
    t = raw[-TRAILER_LEN:]
    if (len(raw) >= TRAILER_LEN and t.startswith(TRAILER_TAG)
            and t.endswith(b"\n")):
        try:
            off = int(t[len(TRAILER_TAG):-1], 16)
        except ValueError:
            return raw, None
        if off <= len(raw) - TRAILER_LEN:
            return raw[:off], raw[off:-TRAILER_LEN]
    return raw, None


def _unescape(v):
    return re.sub(rb"%([0-9A-Fa-f]{2})",
                  lambda m: bytes([int(m.group(1), 16)]), v)


def parse_env(raw):
    """Envelope format 1 (src/spool.c) -> {"id", "sender", ..., "rcpts":
    [{"addr", "state", "attempts", ...}]}; values are str (UTF-8,
    undecodable bytes escaped), numbers stay strings."""
    env = {"rcpts": []}
    cur = env
    lines = raw.split(b"\n")
    if not lines or lines[0] != b"danerelay-envelope 1":
        raise ValueError("not an envelope: %r" % raw[:40])
    for line in lines[1:]:
        if line in (b"end", b""):
            continue
        k, _, v = line.partition(b" ")
        k = k.decode()
        v = _unescape(v).decode("utf-8", "backslashreplace")
        if k == "rcpt":
            cur = {"addr": v}
            env["rcpts"].append(cur)
        elif k.startswith("rcpt-"):
            cur[k[5:]] = v
        else:
            env[k] = v
    return env


# ---------------------------------------------------------------- SMTP

class SMTPError(Exception):
    def __init__(self, msg, code=None, text=""):
        Exception.__init__(self, msg)
        self.code = code
        self.text = text


def dot_stuff(data):
    """RFC 5321 §4.5.2 for data whose lines end in CRLF."""
    if data.startswith(b"."):
        data = b"." + data
    return data.replace(b"\r\n.", b"\r\n..")


def strip_received(data):
    """The message after the Received: header danerelay prepends (the
    header and its continuation lines).  None if there is none."""
    if not data.startswith(b"Received:"):
        return None
    pos = data.find(b"\r\n")
    while pos != -1 and data[pos + 2:pos + 3] in (b" ", b"\t"):
        pos = data.find(b"\r\n", pos + 2)
    if pos == -1:
        return None
    return data[pos + 2:]


class SMTP:
    def __init__(self, host, port, timeout=10, source=None, banner=True):
        self.timeout = timeout
        self.sock = socket.create_connection(
            (host, port), timeout=scaled(timeout),
            source_address=(source, 0) if source else None)
        self.buf = b""
        self.banner = self.reply() if banner else None

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SMTPError("connection closed by server (after %r)"
                                % self.buf[-200:])
            self.buf += chunk
            if len(self.buf) > 1 << 20:
                raise SMTPError("reply line too long")
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def reply(self):
        """-> (code, text) of one (multi-line) reply; lines joined by \\n."""
        texts = []
        while True:
            line = self._line()
            if len(line) < 3 or not line[:3].isdigit():
                raise SMTPError("bad reply line %r" % line)
            texts.append(line[4:])
            if line[3:4] != "-":
                return int(line[:3]), "\n".join(texts)

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def expect(self, line, codes):
        code, text = self.cmd(line) if line is not None else self.reply()
        if isinstance(codes, int):
            codes = (codes,)
        if code not in codes:
            raise SMTPError("%s -> %d %s (wanted %s)" %
                            (line, code, text, codes), code, text)
        return code, text

    def data(self, content):
        """Send DATA content (CRLF lines); returns the final reply."""
        self.expect("DATA", 354)
        if content and not content.endswith(b"\r\n"):
            content += b"\r\n"
        self.send(dot_stuff(content) + b".\r\n")
        return self.reply()

    def sendmail(self, sender, rcpts, content, helo="client.dr-test.example"):
        """EHLO (once per session), MAIL, RCPT..., DATA -> queue id."""
        if not getattr(self, "_helo_done", False):
            self.expect("EHLO " + helo, 250)
            self._helo_done = True
        self.expect("MAIL FROM:<%s>" % sender, 250)
        for r in rcpts:
            self.expect("RCPT TO:<%s>" % r, (250, 251))
        code, text = self.data(content)
        if code != 250:
            raise SMTPError("end of DATA -> %d %s" % (code, text), code, text)
        m = QUEUED_RE.search(text)
        if not m:
            raise SMTPError("no queue id in %r" % text, code, text)
        return m.group(1)

    def starttls(self, cafile=None, hostname="relay.dr-test.example"):
        """STARTTLS -> 220, then TLS on the socket: verified against
        cafile if given, else unverified; EHLO must be sent again.
        Returns the TLS version.  Fails if the server sent anything after
        its 220 (a plaintext injection)."""
        self.expect("STARTTLS", 220)
        if self.buf:
            raise SMTPError("data after the STARTTLS reply: %r"
                            % self.buf[:100])
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if cafile:
            ctx.load_verify_locations(cafile)
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(self.sock, server_hostname=hostname)
        self._helo_done = False
        return self.sock.version()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def closed_within(sock, secs):
    """Read until the server closes; True if it did within secs (scaled)."""
    sock.settimeout(scaled(secs))
    try:
        while sock.recv(65536):
            pass
        return True
    except socket.timeout:
        return False
    except OSError:
        return True


# ---------------------------------------------------------------- tools

def tool_events(out):
    """The output of a test tool (tests/unit/smtp_send_tool): lines
    'KIND key=value key="quoted value" ...' -> {KIND: [{key: value}]}."""
    ev = {}
    for line in out.splitlines():
        kind, _, rest = line.partition(" ")
        d = {}
        i = 0
        while i < len(rest):
            while i < len(rest) and rest[i] == " ":
                i += 1
            j = rest.find("=", i)
            if j < 0:
                break
            k = rest[i:j]
            if j + 1 < len(rest) and rest[j + 1] == '"':
                e = rest.find('"', j + 2)
                e = len(rest) if e < 0 else e
                d[k] = rest[j + 2:e]
                i = e + 1
            else:
                e = rest.find(" ", j)
                e = len(rest) if e < 0 else e
                d[k] = rest[j + 1:e]
                i = e
        ev.setdefault(kind, []).append(d)
    return ev


def make_cert(directory, cn="relay.dr-test.example"):
    """Self-signed EC P-256 certificate for cn -> (certfile, keyfile)."""
    cert = os.path.join(directory, cn + ".crt")
    key = os.path.join(directory, cn + ".key")
    r = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
         "/CN=" + cn, "-addext", "subjectAltName=DNS:" + cn,
         "-keyout", key, "-out", cert],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, universal_newlines=True)
    if r.returncode != 0:
        fail("openssl req: " + r.stdout)
    os.chmod(cert, 0o644)
    os.chmod(key, 0o644)     # test key: the dropped daemon re-reads it
    return cert, key


def auth_file(path, users, owner="danerelay"):
    """Write an auth_file (src/auth.h) with SHA-512-crypt hashes of
    users {name: password}; mode 0600, owned by the daemon's user when
    root (the daemon reads it after dropping privileges).  -> path."""
    with open(path, "w") as f:
        for name, pw in users.items():
            h = subprocess.run(["openssl", "passwd", "-6", "-salt",
                                "drtestsalt", pw], stdout=subprocess.PIPE,
                               universal_newlines=True, check=True)
            f.write("%s:%s\n" % (name, h.stdout.strip()))
    os.chmod(path, 0o600)
    if os.geteuid() == 0:
        import pwd
        _ensure_user(owner)
        pw = pwd.getpwnam(owner)
        os.chown(path, pw.pw_uid, pw.pw_gid)
    return path


def snippet(name, readme=None):
    """The fenced block after "<!-- snippet: NAME ..." in README.md (the
    operator snippets the tests run as written)."""
    readme = readme or os.path.join(SRCDIR, "README.md")
    with open(readme, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"<!-- snippet: %s\b[^>]*-->\s*\n```[a-z]*\n(.*?)\n```"
                  % re.escape(name), text, re.S)
    if m is None:
        fail("README.md has no snippet %r" % name)
    return m.group(1)


def subst(text, pairs):
    """Replace each (old, new) in a snippet; fail if old is not there
    (the snippet changed and the test must follow)."""
    for old, new in pairs:
        if old not in text:
            fail("snippet changed: %r not found in:\n%s" % (old, text))
        text = text.replace(old, new)
    return text


def postfix_tools():
    """Directory holding smtp-source, smtp-sink and posttls-finger."""
    tool = os.path.join(LIBDIR, "get-postfix-tools")
    r = subprocess.run([tool], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=600)
    if r.returncode != 0:
        skip("Postfix test tools unavailable: " + r.stdout.strip()[-300:])
    return r.stdout.strip().splitlines()[-1]


def which(prog):
    return shutil.which(prog)
