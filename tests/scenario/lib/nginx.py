"""nginx - Debian's nginx as an HTTPS server for scenario tests
(MTA-STS policy hosts, TLSRPT https report receivers).

One nginx per object, in the foreground (daemon off) with its own
configuration, pid file, logs and temp directories under `dir`, listening
on ip:port only, in the test's process group (a runner that kills the
group stops it too; also stopped at exit).  One server block per name,
chosen by SNI, each with its own certificate.

    import nginx
    web = nginx.Nginx(os.path.join(tmp, "nginx"), drtest.ip(5))
    web.site("mta-sts.a.test", cert.chain, cert.key,
             policy="version: STSv1\\nmode: enforce\\n...")   # text/plain
    web.site("mta-sts.b.test", cert.chain, cert.key, locations={
        "/.well-known/mta-sts.txt": "return 301 https://elsewhere/;"})
    web.start()                       # waits until the port accepts
    web.set_policy("mta-sts.a.test", "new text")   # served at once
    web.remove_policy("mta-sts.a.test")            # 404 from now on
    web.stop(); web.start()           # down and up again, same port
    web.requests("mta-sts.a.test")    # access log lines for that SNI
    web.log_text()                    # access and error log

policy= serves the text at /.well-known/mta-sts.txt as
"text/plain; charset=utf-8" from a file (set_policy() rewrites it);
content_type= changes the type.  locations maps a path (exact match) to
raw nginx directives.  Only the Python standard library and /usr/sbin/nginx.
"""

import atexit
import os
import shutil
import signal
import socket
import subprocess
import time

# every wait of this helper is scaled once by the run's timeout factor
# (DR_TIMEOUT_SCALE, e.g. 2 under ASan), as drtest.scaled() does
SCALE = float(os.environ.get("DR_TIMEOUT_SCALE") or "1")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
POLICY_PATH = "/.well-known/mta-sts.txt"


def available():
    return os.access(NGINX, os.X_OK)


class NginxError(Exception):
    pass


class Nginx:
    def __init__(self, dir, ip, port=None):
        self.dir = dir
        self.ip = ip
        self.port = port or _free_port(ip)
        self.www = os.path.join(dir, "www")
        self.conf = os.path.join(dir, "nginx.conf")
        self.error_log = os.path.join(dir, "error.log")
        self.access_log = os.path.join(dir, "access.log")
        self.sites = []
        self.proc = None
        for d in (dir, self.www, os.path.join(dir, "tmp")):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o755)
        atexit.register(self.stop)

    # -- content ---------------------------------------------------------
    def _policy_file(self, name):
        return os.path.join(self.www, name + ".txt")

    def site(self, name, cert, key, policy=None, content_type="text/plain",
             charset="utf-8", locations=None):
        """A server block for SNI name with that certificate chain."""
        locs = dict(locations or {})
        if policy is not None:
            self.set_policy(name, policy)
            loc = "types { } default_type %s; alias %s;" % (
                content_type, self._policy_file(name))
            if charset:
                loc = "charset %s; " % charset + loc
            locs.setdefault(POLICY_PATH, loc)
        self.sites.append((name, cert, key, locs))

    def set_policy(self, name, text):
        """(Re)write the file behind name's policy= location."""
        path = self._policy_file(name)
        with open(path + ".new", "wb") as f:
            f.write(text.encode() if isinstance(text, str) else text)
        os.chmod(path + ".new", 0o644)
        os.rename(path + ".new", path)

    def remove_policy(self, name):
        try:
            os.unlink(self._policy_file(name))
        except FileNotFoundError:
            pass

    # -- running ---------------------------------------------------------
    def _write_conf(self):
        d = self.dir
        tmp = os.path.join(d, "tmp")
        lines = [
            "daemon off;",
            "master_process on;",
            "worker_processes 1;",
            "pid %s/nginx.pid;" % d,
            "error_log %s info;" % self.error_log,
            "events { worker_connections 128; }",
            "http {",
            "  log_format bysni '$ssl_server_name \"$request\" $status "
            "$body_bytes_sent';",
            "  access_log %s bysni;" % self.access_log,
            "  client_body_temp_path %s/body;" % tmp,
            "  proxy_temp_path %s/proxy;" % tmp,
            "  fastcgi_temp_path %s/fastcgi;" % tmp,
            "  uwsgi_temp_path %s/uwsgi;" % tmp,
            "  scgi_temp_path %s/scgi;" % tmp,
            "  server_tokens off;",
            "  keepalive_timeout 5;",
        ]
        for name, cert, key, locs in self.sites:
            lines += [
                "  server {",
                "    listen %s:%d ssl;" % (self.ip, self.port),
                "    server_name %s;" % name,
                "    ssl_certificate %s;" % cert,
                "    ssl_certificate_key %s;" % key,
            ]
            for path, body in locs.items():
                lines.append("    location = %s { %s }" % (path, body))
            lines.append("  }")
        lines.append("}")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def _accepting(self):
        s = socket.socket()
        s.settimeout(0.5)
        try:
            s.connect((self.ip, self.port))
            return True
        except OSError:
            return False
        finally:
            s.close()

    def start(self, timeout=15):
        if self.proc is not None and self.proc.poll() is None:
            return
        self._write_conf()
        p = subprocess.run([NGINX, "-t", "-q", "-c", self.conf, "-e",
                            self.error_log], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        if p.returncode != 0:
            raise NginxError("nginx -t: %s" % p.stdout.decode(
                errors="replace"))
        with open(os.path.join(self.dir, "stderr"), "ab") as err:
            self.proc = subprocess.Popen(
                [NGINX, "-c", self.conf, "-e", self.error_log],
                stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        deadline = time.monotonic() + timeout * SCALE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise NginxError("nginx exited (%d): %s" % (
                    self.proc.returncode, self.log_text()[-2000:]))
            if self._accepting():
                return
            time.sleep(0.05)
        self.stop()
        raise NginxError("nginx not accepting on %s:%d" % (self.ip,
                                                           self.port))

    def stop(self):
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)       # fast shutdown
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)
        deadline = time.monotonic() + 5     # workers follow the master
        while self._accepting() and time.monotonic() < deadline:
            time.sleep(0.05)

    def log_text(self):
        text = ""
        for p in (self.error_log, self.access_log,
                  os.path.join(self.dir, "stderr")):
            try:
                with open(p, errors="replace") as f:
                    text += f.read()
            except OSError:
                pass
        return text

    def requests(self, name=None):
        """Access log lines 'SNI "GET /path HTTP/1.1" status bytes', all
        or those for one server name."""
        try:
            with open(self.access_log, errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            return []
        return [l for l in lines if name is None or
                l.split(" ", 1)[0] == name]


def _free_port(host):
    s = socket.socket()
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()
