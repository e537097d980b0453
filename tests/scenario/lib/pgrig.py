"""A private PostgreSQL server for a scenario test (issue #19).

    pg = pgrig.Postgres()          # initdb in a temporary directory
    pg.start()                     # listens on a Unix socket only
    pg.uri                         # postgresql:///postgres?host=...&user=...
    pg.sql("SELECT 1")             # psql -At, returns stdout
    pg.stop(); pg.start()          # an outage

Debian's postgresql package (scripts/install-deps --test) provides
/usr/lib/postgresql/<version>/bin.  PostgreSQL refuses to run as root:
when the test runs as root the server runs as "nobody" (setpriv).  The
socket directory is short (/tmp/drpg.*: a socket path has 107 bytes at
most) and world-readable, so the daemons' unprivileged user connects.
Authentication is "trust" on that socket; no TCP listener.
"""
import atexit
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

import drtest


def _bindir():
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not dirs:
        drtest.fail("no PostgreSQL server: scripts/install-deps --test "
                    "installs Debian's postgresql package")
    return os.path.dirname(dirs[-1])


class Postgres:
    def __init__(self, user="danerelay"):
        self.bin = _bindir()
        self.dir = tempfile.mkdtemp(prefix="drpg.")
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "postgres.log")
        self.user = user
        self.proc = None
        self.priv = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("nobody")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.priv = ["setpriv", "--reuid=%d" % pw.pw_uid,
                         "--regid=%d" % pw.pw_gid, "--clear-groups"]
        r = subprocess.run(self.priv + [
            os.path.join(self.bin, "initdb"), "-D", self.data, "-A",
            "trust", "-U", user, "-N", "-E", "UTF8", "--locale=C"],
            capture_output=True, text=True)
        if r.returncode != 0:
            drtest.fail("initdb: %s%s" % (r.stdout, r.stderr))
        self.uri = "postgresql:///postgres?host=%s&user=%s" % (self.dir,
                                                               user)
        atexit.register(self.cleanup)

    def start(self):
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(self.priv + [
            os.path.join(self.bin, "postgres"), "-D", self.data,
            "-k", self.dir, "-c", "listen_addresses=", "-c", "fsync=off",
            "-c", "full_page_writes=off", "-c", "max_connections=40"],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT)
        logf.close()
        drtest.wait_for(lambda: self._ready(), 30, "PostgreSQL accepting "
                        "connections", interval=0.1)

    def _ready(self):
        if self.proc.poll() is not None:
            with open(self.log, errors="replace") as f:
                drtest.fail("postgres exited: %s" % f.read()[-2000:])
        return subprocess.run([os.path.join(self.bin, "pg_isready"), "-q",
                               "-h", self.dir, "-U", self.user]).returncode \
            == 0

    def sql(self, query):
        r = subprocess.run([os.path.join(self.bin, "psql"), "-X", "-At",
                            "-v", "ON_ERROR_STOP=1", "-h", self.dir, "-U",
                            self.user, "-d", "postgres", "-c", query],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            drtest.fail("psql %r: %s" % (query, r.stderr))
        return r.stdout

    def stop(self):
        """Fast shutdown: clients are disconnected at once."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
