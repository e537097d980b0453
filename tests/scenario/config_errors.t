#!/usr/bin/python3
# timeout: 180
"""config_errors.t - danerelayd's config checking, start-up refusal,
SIGHUP reload and SIGTERM shutdown, run against the built daemon.

1. `danerelayd -n -c FILE`: exit 0 for good files (also the shipped
   conf/danerelay.conf), exit 1 and exactly "danerelayd: FILE:LINE: reason"
   for bad ones; a missing file, a relative -c path, bad usage.
2. `danerelayd -f -c bad.conf` and `danerelayd -c bad.conf` refuse to start
   with FILE:LINE and leave no pid file; when root, an unknown `user` is
   refused; a failure after the fork still reaches the terminal.
3. A running `danerelayd -f`: pid file, privileges dropped (when root),
   accepts a message; SIGHUP with a broken file logs
   "reload failed: FILE:LINE: ..." and keeps serving with the old config;
   a config smtpd refuses is also kept out; a good file is applied
   (EHLO SIZE changes); a second instance is refused; SIGTERM exits 0 and
   removes the pid file.
4. Without -f: the parent exits 0 once the daemon is ready; SIGTERM to the
   pid from the pid file stops it and removes the pid file.

Needs the inbound server (smtpd.c): parts 3-4 are skipped (exit 77) while
smtpd_new() is still a stub.
"""

import os
import pwd
import re
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
import shutil

BUILD = os.environ.get("DR_BUILDDIR", ".")
SRC = os.environ.get("DR_SRCDIR", ".")
IP = os.environ.get("DR_TEST_IP", "127.0.10.1")
DAEMON = os.path.join(BUILD, "danerelayd")
# the run's timeout factor (tests/run --timeout-scale, 2 under ASan): every
# wait below is scaled by it once
SCALE = float(os.environ.get("DR_TIMEOUT_SCALE") or "1")


def _free_port():
    s = socket.socket()
    s.bind((IP, 0))
    port = s.getsockname()[1]
    s.close()
    return port


PORT = _free_port()     # on the test's own address, never a fixed one

failures = []
procs = []


def check(cond, what):
    if cond:
        print("ok   - %s" % what)
    else:
        print("FAIL - %s" % what)
        failures.append(what)
    return cond


def run(args, cwd=None, timeout=20):
    p = subprocess.run([DAEMON] + args, cwd=cwd, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True,
                       timeout=timeout * SCALE)
    return p.returncode, p.stdout, p.stderr


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def traversable_by_others(path):
    path = os.path.abspath(path)
    while True:
        if not os.stat(path).st_mode & 0o001:
            return False
        if path == "/":
            return True
        path = os.path.dirname(path)


# Scratch space.  When root the daemon runs as "nobody", which must be able
# to reach its spool: use DR_TMPDIR if others can traverse it, else /tmp.
own_tmp = None
TMP = os.environ.get("DR_TMPDIR")
if not TMP or not traversable_by_others(TMP):
    TMP = own_tmp = tempfile.mkdtemp(prefix="dr-config-")
    os.chmod(TMP, 0o755)

is_root = os.geteuid() == 0
if is_root:
    try:
        run_user = pwd.getpwnam("nobody")
    except KeyError:
        print("SKIP: no user nobody to drop privileges to")
        sys.exit(77)
else:
    run_user = pwd.getpwuid(os.getuid())


def cleanup():
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(5)
    pidf = os.path.join(TMP, "run", "danerelayd.pid")
    try:
        pid = int(open(pidf).read())
        os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass
    if own_tmp:
        shutil.rmtree(own_tmp, ignore_errors=True)


# ---------------------------------------------------------------------------
# 1. -n on good and bad files

def part_check():
    rc, out, err = run(["-n", "-c", os.path.join(SRC, "conf",
                                                 "danerelay.conf")])
    check(rc == 0, "shipped conf/danerelay.conf passes -n (rc=%d %s)"
          % (rc, err.strip()))
    check("configuration OK" in out, "-n says configuration OK")

    good = write(os.path.join(TMP, "good.conf"),
                 "# comment\n\nlisten = %s:%d, [::1]:%d\n"
                 "spool_dir = spool   # relative to this file\n"
                 "max_message_size = 20M\nqueue_lifetime = 2d\n"
                 "mta_sts = no\ndefault_policy = dane-only\n"
                 "tlsrpt_org_name = \"Org # 1\"\n" % (IP, PORT, PORT))
    rc, out, err = run(["-n", "-c", good])
    check(rc == 0 and err == "", "good.conf passes -n (rc=%d %s)"
          % (rc, err.strip()))

    bad = [
        # (file contents, line, reason)
        ("listen = %s:%d\n# x\nlisen = 1\n" % (IP, PORT), 3,
         'unknown option "lisen"'),
        ("smtp_port = 0\n", 1, 'smtp_port: bad port "0" (want 1-65535)'),
        ("\n\nhttps_port = 65536\n", 3,
         'https_port: bad port "65536" (want 1-65535)'),
        ("listen = %s:99999\n" % IP, 1,
         'listen: bad port "99999" in "%s:99999" (want 1-65535)' % IP),
        ("listen = mail.example:25\n", 1,
         'listen: bad address "mail.example:25" (want a numeric IPv4 or '
         '[IPv6] address)'),
        ("mta_sts = no\nmta_sts = yes\n", 2,
         'duplicate option "mta_sts" (first set on line 1)'),
        ("queue_lifetime = 5 days\n", 1,
         'queue_lifetime: bad duration "5 days" (want e.g. 300, 300s, 5m, '
         '1h, 5d, 2w)'),
        ("max_message_size = lots\n", 1,
         'max_message_size: bad size "lots" (want e.g. 10485760, 10240k, '
         '50M, 1G)'),
        ("tlsrpt = perhaps\n", 1,
         'tlsrpt: bad boolean "perhaps" (want yes or no)'),
        ("default_policy = none\n", 1,
         'default_policy: "none" (cleartext) is not allowed as the '
         'default; write it for single domains in the policy_file'),
        ("default_policy = strict\n", 1,
         'default_policy: bad policy level "strict" (want dane, dane-only, '
         'verify, secure, encrypt or may)'),
        ("# a\nsmtp_port 25\n", 2,
         'syntax error: expected "=" after "smtp_port"'),
        ("tlsrpt_org_name = \"open\n", 1,
         "tlsrpt_org_name: missing closing quote"),
        ("tls_cert_file = missing.pem\n", 1,
         'tls_cert_file: "%s/missing.pem": No such file or directory'
         % TMP),
        ("min_backoff = 2h\n", 1,
         "max_backoff (3600s) is less than min_backoff (7200s)"),
        ("allow_clients = 10.0.0.0/99\n", 1, None),   # acl.c's wording
        ("dkim_failure_action = retry\n", 1,
         'dkim_failure_action: want defer or pass, not "retry"'),
    ]
    for i, (text, line, reason) in enumerate(bad):
        path = write(os.path.join(TMP, "bad%d.conf" % i), text)
        rc, out, err = run(["-n", "-c", path])
        prefix = "danerelayd: %s:%d: " % (path, line)
        if reason is None:
            ok = rc == 1 and err.startswith(prefix) and \
                err.count("\n") == 1 and len(err) > len(prefix) + 1
        else:
            ok = rc == 1 and err == prefix + reason + "\n"
        check(ok, "-n refuses bad%d.conf with %s%s (got rc=%d %r)"
              % (i, prefix, reason or "...", rc, err))

    # a relative -c path is reported with the full path
    rc, out, err = run(["-n", "-c", "bad0.conf"], cwd=TMP)
    check(rc == 1 and err == 'danerelayd: %s/bad0.conf:3: unknown option '
          '"lisen"\n' % TMP, "relative -c path: %r" % err)
    rc, out, err = run(["-n", "-c", "./bad0.conf"], cwd=TMP)
    check(rc == 1 and err.startswith("danerelayd: %s/bad0.conf:3: " % TMP),
          "./relative -c path: %r" % err)

    missing = os.path.join(TMP, "nonexistent.conf")
    rc, out, err = run(["-n", "-c", missing])
    check(rc == 1 and err == "danerelayd: %s: No such file or directory\n"
          % missing, "missing file refused: %r" % err)
    rc, out, err = run(["-n", "-c", TMP])
    check(rc == 1 and err == "danerelayd: %s: not a regular file\n" % TMP,
          "directory as config refused: %r" % err)

    rc, out, err = run(["-x"])
    check(rc == 1 and "usage: danerelayd" in err, "bad flag gives usage")
    rc, out, err = run(["-n", "-c", good, "extra"])
    check(rc == 1 and "usage: danerelayd" in err, "extra argument: usage")


# ---------------------------------------------------------------------------
# 2. refusing to start

def base_conf(extra=""):
    return ("# danerelayd test config\n"
            "listen = %s:%d\n"
            "myhostname = relay.test\n"
            "spool_dir = spool\n"
            "state_dir = state\n"
            "pid_file = run/danerelayd.pid\n"
            "user = %s\n"
            "allow_clients = 127.0.0.0/8\n"
            "%s" % (IP, PORT, run_user.pw_name, extra))


def part_refuse():
    pidf = os.path.join(TMP, "run", "danerelayd.pid")
    bad = write(os.path.join(TMP, "start-bad.conf"),
                base_conf("smtpd_timeout = 0\n"))
    want = "danerelayd: %s:9: smtpd_timeout: must be greater than 0\n" % bad
    for args in (["-f", "-c", bad], ["-c", bad]):
        rc, out, err = run(args)
        check(rc == 1 and err == want, "%s refuses to start: %r"
              % (" ".join(args[:-1]), err))
    check(not os.path.exists(pidf), "no pid file after refusal")
    check(not os.path.exists(os.path.join(TMP, "spool")),
          "no spool created after refusal")

    if is_root:
        nouser = write(os.path.join(TMP, "nouser.conf"),
                       base_conf().replace("user = %s" % run_user.pw_name,
                                           "user = nosuchuser-dr"))
        rc, out, err = run(["-f", "-c", nouser])
        check(rc == 1 and 'user "nosuchuser-dr" does not exist' in err,
              "unknown user refused: %r" % err)
        rootu = write(os.path.join(TMP, "rootuser.conf"),
                      base_conf().replace("user = %s" % run_user.pw_name,
                                          "user = root"))
        rc, out, err = run(["-f", "-c", rootu])
        check(rc == 1 and 'user "root" is root' in err,
              "user = root refused: %r" % err)


# ---------------------------------------------------------------------------
# 3. the running daemon

class Daemon:
    def __init__(self, conf, args):
        self.logpath = os.path.join(TMP, "daemon-%d.log" % len(procs))
        self.log = open(self.logpath, "w")
        self.p = subprocess.Popen([DAEMON, "-f", "-d", "-c", conf] + args,
                                  stdin=subprocess.DEVNULL,
                                  stdout=self.log, stderr=self.log)
        procs.append(self.p)

    def text(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def wait_log(self, pattern, timeout=10, start=0):
        """Wait for a regex in the log (after offset start)."""
        end = time.monotonic() + timeout * SCALE
        while time.monotonic() < end:
            m = re.search(pattern, self.text()[start:])
            if m:
                return m
            if self.p.poll() is not None:
                return re.search(pattern, self.text()[start:])
            time.sleep(0.05)
        return None


def smtp_session(size=None):
    """Send one message; return the EHLO SIZE value (or None)."""
    s = smtplib.SMTP(IP, PORT, timeout=10 * SCALE)
    try:
        code, _ = s.ehlo("client.test")
        if code != 250:
            raise smtplib.SMTPException("EHLO %d" % code)
        sz = s.esmtp_features.get("size")
        s.sendmail("a@example.org", ["b@example.net"],
                   "From: a@example.org\r\nTo: b@example.net\r\n"
                   "Subject: config test\r\n\r\nhello\r\n")
        s.quit()
        return sz
    finally:
        s.close()


def part_daemon():
    conf = os.path.join(TMP, "live.conf")
    pidf = os.path.join(TMP, "run", "danerelayd.pid")
    write(conf, base_conf("max_message_size = 10M\n"))
    d = Daemon(conf, [])
    if not d.wait_log(r"started: ", 15):
        check(False, "daemon started (log: %s)" % d.text())
        return
    check(d.p.poll() is None, "daemon running")
    try:
        pid = int(open(pidf).read())
    except (OSError, ValueError):
        pid = None
    check(pid == d.p.pid, "pid file holds the daemon's pid (%r)" % pid)

    st = os.stat(os.path.join(TMP, "spool"))
    check(st.st_mode & 0o777 == 0o700, "spool_dir mode 0700")
    if is_root:
        check(st.st_uid == run_user.pw_uid, "spool_dir owned by %s"
              % run_user.pw_name)
        check(os.stat(pidf).st_uid == run_user.pw_uid,
              "pid file owned by %s" % run_user.pw_name)
        status = open("/proc/%d/status" % d.p.pid).read()
        uids = re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()
        gids = re.search(r"^Gid:\s+(.*)$", status, re.M).group(1).split()
        groups = re.search(r"^Groups:\s*(.*)$", status, re.M).group(1)
        check(uids == [str(run_user.pw_uid)] * 4,
              "all uids dropped to %d: %s" % (run_user.pw_uid, uids))
        check(gids == [str(run_user.pw_gid)] * 4,
              "all gids dropped to %d: %s" % (run_user.pw_gid, gids))
        check(groups.split() in ([], [str(run_user.pw_gid)]),
              "supplementary groups dropped: %r" % groups)

    try:
        sz = smtp_session()
        check(sz == str(10 << 20), "EHLO SIZE is max_message_size (%r)" % sz)
    except (OSError, smtplib.SMTPException) as e:
        check(False, "message accepted before reload: %r" % e)
    check(d.wait_log(r"[0-9A-F]{16}: queued, from=<a@example\.org>, "
                     r"nrcpt=1, size=\d+", 10) is not None,
          "queued message logged")

    # a second instance with the same pid file is refused
    rc, out, err = run(["-f", "-c", conf])
    check(rc == 1 and "already running as pid %d" % d.p.pid in err,
          "second instance refused: %r" % err)
    check(d.p.poll() is None, "first instance unaffected")

    # SIGHUP with a broken file: old config stays
    mark = len(d.text())
    write(conf, base_conf("max_message_size = 1M\nsmtp_port = 0\n"))
    d.p.send_signal(signal.SIGHUP)
    m = d.wait_log(r"reload failed: (.*)", 10, mark)
    check(m is not None and m.group(1).startswith(
        '%s:10: smtp_port: bad port "0" (want 1-65535)' % conf),
        "bad reload logged with file:line: %r" % (m and m.group(1)))
    # a whole SMTP session served after the failed reload proves the
    # daemon went on; then it must still be there
    try:
        sz = smtp_session()
        check(sz == str(10 << 20), "old max_message_size still in force "
              "(SIZE %r)" % sz)
    except (OSError, smtplib.SMTPException) as e:
        check(False, "message accepted after bad reload: %r" % e)
    check(d.p.poll() is None, "daemon still running after a bad reload")

    # SIGHUP with a file the parser takes but smtpd cannot use
    mark = len(d.text())
    write(os.path.join(TMP, "junk.pem"), "not a certificate\n")
    write(conf, base_conf("max_message_size = 1M\n"
                          "tls_cert_file = junk.pem\n"
                          "tls_key_file = junk.pem\n"))
    d.p.send_signal(signal.SIGHUP)
    m = d.wait_log(r"reload failed: (.*)", 10, mark)
    check(m is not None, "unusable TLS files: reload failed logged (%r)"
          % (m and m.group(1)))
    check(d.p.poll() is None, "daemon still running")
    try:
        sz = smtp_session()
        check(sz == str(10 << 20), "old config kept (SIZE %r)" % sz)
    except (OSError, smtplib.SMTPException) as e:
        check(False, "message accepted after refused reload: %r" % e)

    # SIGHUP with a good file: applied; listen changes need a restart
    mark = len(d.text())
    write(conf, base_conf("max_message_size = 1M\n").replace(
        "listen = %s:%d" % (IP, PORT), "listen = %s:%d" % (IP, PORT + 1)))
    d.p.send_signal(signal.SIGHUP)
    check(d.wait_log(r": reloaded /", 10, mark) is not None, "good reload")
    check(re.search(r"listen changed: takes effect after a restart",
                    d.text()[mark:]) is not None,
          "listen change needs a restart (logged)")
    try:
        sz = smtp_session()
        check(sz == str(1 << 20), "new max_message_size applied (SIZE %r)"
              % sz)
    except (OSError, smtplib.SMTPException) as e:
        check(False, "message accepted after good reload: %r" % e)

    # SIGTERM: exit 0, pid file removed
    d.p.send_signal(signal.SIGTERM)
    try:
        rc = d.p.wait(20 * SCALE)
    except subprocess.TimeoutExpired:
        rc = None
    check(rc == 0, "SIGTERM: exit status 0 (%r)" % rc)
    check(not os.path.exists(pidf), "SIGTERM: pid file removed")
    check(re.search(r"SIGTERM: shutting down", d.text()) is not None and
          "exiting" in d.text(), "shutdown logged")


# ---------------------------------------------------------------------------
# 4. without -f

def part_background():
    conf = os.path.join(TMP, "bg.conf")
    pidf = os.path.join(TMP, "run", "danerelayd.pid")
    write(conf, base_conf())
    rc, out, err = run(["-c", conf], timeout=30)
    check(rc == 0 and err == "", "background start: parent exits 0 (%d %r)"
          % (rc, err))
    try:
        pid = int(open(pidf).read())
    except (OSError, ValueError):
        check(False, "background: pid file written")
        return
    try:
        os.kill(pid, 0)
        alive = True
    except OSError:
        alive = False
    check(alive, "background daemon alive (pid %d)" % pid)
    try:
        with socket.create_connection((IP, PORT), timeout=5 * SCALE) as s:
            s.settimeout(5 * SCALE)
            banner = s.recv(512)
        check(banner.startswith(b"220 "), "background daemon greets: %r"
              % banner)
    except OSError as e:
        check(False, "background daemon accepts connections: %r" % e)
    os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + 20 * SCALE
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.05)
    else:
        check(False, "background daemon exits on SIGTERM")
    gone = time.monotonic() + 2 * SCALE
    while os.path.exists(pidf) and time.monotonic() < gone:
        time.sleep(0.05)
    check(not os.path.exists(pidf), "background: pid file removed")

    # a failure after the fork is reported by the parent
    write(os.path.join(TMP, "notadir"), "")
    conf2 = write(os.path.join(TMP, "bg2.conf"), base_conf().replace(
        "pid_file = run/danerelayd.pid", "pid_file = notadir/d.pid"))
    rc, out, err = run(["-c", conf2], timeout=30)
    check(rc == 1 and "pid file %s/notadir/d.pid: Not a directory" % TMP
          in err, "failure after fork reaches the terminal: %d %r"
          % (rc, err))


def main():
    if not os.access(DAEMON, os.X_OK):
        print("danerelayd not built at %s" % DAEMON)
        return 1
    part_check()
    part_refuse()
    part_daemon()
    part_background()
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    try:
        rc = main()
    finally:
        cleanup()
    sys.exit(rc)
