#!/usr/bin/python3
# timeout: 600
"""make install / uninstall / dist, and the service files (issue #7).

In DR_BUILDDIR (already configured and built by the runner):
- `make install DESTDIR=...` installs exactly the expected files with
  the expected modes: danerelayd in sbin, danerelay in bin, the three
  manual pages, danerelay.conf.sample and danerelay.conf, the systemd
  unit, the rc.d script and the fail2ban files in pkgdatadir; the
  installed programs run and the installed config passes -n;
- a second install keeps an edited danerelay.conf (new sample only);
- `make uninstall` removes everything but the edited config;
- the systemd unit passes `systemd-analyze verify` (its ExecStart paths
  pointed into DESTDIR; without systemd-analyze a skipped part, which
  fails under CI=true) and keeps its
  hardening (`systemd-analyze security` exposure at most 2.0);
- the rc.d script passes `sh -n`, and with a stand-in for FreeBSD's
  rc.subr its configtest, start (pid file from the config's pid_file)
  and the daemon's answer on its port work;
- `make distdir` holds what a release needs and no build or test litter.
With DR_DISTCHECK=1 it also runs `make distcheck` (about 90 s on 2
cores; it rebuilds everything): tests/run-all sets it under CI=true.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402

B = drtest.BUILDDIR
T = drtest.TMPDIR
os.chmod(T, 0o755)
if not os.path.isfile(os.path.join(B, "Makefile")):
    drtest.skip("no configured build in %s" % B)


def make(*args, timeout=300):
    r = subprocess.run(["make", "-s", "-C", B] + list(args),
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True,
                       timeout=drtest.scaled(timeout))
    return r


def run(argv, timeout=60, **kw):
    return subprocess.run(argv, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True,
                          timeout=drtest.scaled(timeout), **kw)


r = make("print-install-dirs")
if r.returncode != 0:
    drtest.fail("make print-install-dirs: %s" % r.stdout)
D = dict(line.split("=", 1) for line in r.stdout.splitlines()
         if re.match(r"^[a-z]+=", line))
for k in ("bindir", "sbindir", "sysconfdir", "mandir", "pkgdatadir"):
    if not D.get(k, "").startswith("/"):
        drtest.fail("install dir %s=%r" % (k, D.get(k)))

root = os.path.join(T, "root")


def R(path):
    return root + path


expected = {
    D["sbindir"] + "/danerelayd": 0o755,
    D["bindir"] + "/danerelay": 0o755,
    D["sysconfdir"] + "/danerelay.conf": 0o644,
    D["sysconfdir"] + "/danerelay.conf.sample": 0o644,
    D["mandir"] + "/man8/danerelayd.8": 0o644,
    D["mandir"] + "/man1/danerelay.1": 0o644,
    D["mandir"] + "/man5/danerelay.conf.5": 0o644,
    D["pkgdatadir"] + "/danerelayd.service": 0o644,
    D["pkgdatadir"] + "/rc.d/danerelayd": 0o755,
    D["pkgdatadir"] + "/fail2ban/filter.d/danerelay.conf": 0o644,
    D["pkgdatadir"] + "/fail2ban/jail.d/danerelay.conf": 0o644,
    D["pkgdatadir"] + "/grafana/danerelay.json": 0o644,
    D["pkgdatadir"] + "/prometheus/danerelay-alerts.yml": 0o644,
    D["pkgdatadir"] + "/prometheus/danerelay-alerts.test.yml": 0o644,
}


def installed():
    got = {}
    for dp, dn, fn in os.walk(root):
        for f in fn:
            p = os.path.join(dp, f)
            got[p[len(root):]] = os.stat(p).st_mode & 0o7777
    return got


# ---------------------------------------------------------------- install
r = make("install", "DESTDIR=" + root)
drtest.check(r.returncode == 0, "make install: %s" % r.stdout[-2000:])
got = installed()
for p, mode in sorted(expected.items()):
    drtest.check(p in got, "installed %s" % p)
    if p in got:
        drtest.check(got[p] == mode, "%s mode %o, expected %o" %
                     (p, got[p], mode))
for p in sorted(set(got) - set(expected)):
    drtest.check(False, "unexpected file installed: %s" % p)

with open(os.path.join(drtest.SRCDIR, "conf", "danerelay.conf"), "rb") as f:
    shipped = f.read()
for p in ("/danerelay.conf", "/danerelay.conf.sample"):
    with open(R(D["sysconfdir"] + p), "rb") as f:
        drtest.check(f.read() == shipped, "%s is the shipped config" % p)

conf = R(D["sysconfdir"] + "/danerelay.conf")
r = run([R(D["sbindir"] + "/danerelayd"), "-n", "-c", conf])
drtest.check(r.returncode == 0 and "configuration OK" in r.stdout,
             "installed danerelayd -n accepts the installed config: %s"
             % r.stdout)
r = run([R(D["bindir"] + "/danerelay"), "-h"])
drtest.check(r.returncode == 0 and "usage:" in r.stdout,
             "installed danerelay -h: %s" % r.stdout)
unit = R(D["pkgdatadir"] + "/danerelayd.service")
with open(unit) as f:
    unit_text = f.read()
drtest.check(re.search(r"@[a-z]+@", unit_text) is None,
             "no @substitutions@ left in the unit")
drtest.check("ExecStart=%s/danerelayd -c %s/danerelay.conf\n" %
             (D["sbindir"], D["sysconfdir"]) in unit_text,
             "unit ExecStart uses this build's sbindir and sysconfdir")

# An operator's edited config survives the next install.
with open(conf, "ab") as f:
    f.write(b"\n# edited by the operator\nmyhostname = edited.example\n")
with open(conf, "rb") as f:
    edited = f.read()
r = make("install", "DESTDIR=" + root)
drtest.check(r.returncode == 0, "second make install: %s" % r.stdout[-2000:])
drtest.check("exists: kept" in r.stdout, "install says the config is kept")
with open(conf, "rb") as f:
    drtest.check(f.read() == edited, "edited danerelay.conf not overwritten")

# ---------------------------------------------------------------- systemd
if drtest.which("systemd-analyze"):
    vdir = os.path.join(T, "unit")
    os.makedirs(vdir)
    vunit = os.path.join(vdir, "danerelayd.service")
    text = unit_text.replace(D["sbindir"] + "/", R(D["sbindir"]) + "/")
    with open(vunit, "w") as f:
        f.write(text)
    r = run(["systemd-analyze", "verify", "--man=no", vunit])
    drtest.check(r.returncode == 0 and r.stdout.strip() == "",
                 "systemd-analyze verify: exit %d\n%s" % (r.returncode,
                                                          r.stdout))
    r = run(["systemd-analyze", "security", "--offline=yes", vunit])
    m = re.search(r"Overall exposure level for danerelayd\.service: "
                  r"([0-9.]+)", r.stdout)
    drtest.check(m is not None and float(m.group(1)) <= 2.0,
                 "systemd-analyze security: exposure %s (want <= 2.0)" %
                 (m.group(1) if m else r.stdout[-500:]))
else:
    # scripts/install-deps --test installs systemd (systemd-analyze)
    drtest.skip_part("systemd-analyze not installed (scripts/install-deps "
                     "--test), the unit is checked for its settings only")
for setting in ("User=danerelay", "NoNewPrivileges=yes",
                "ProtectSystem=strict", "PrivateTmp=yes",
                "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n",
                "ReadWritePaths=-/var/spool/danerelay -/var/lib/danerelay",
                "Type=forking", "PIDFile=/run/danerelay/danerelayd.pid"):
    drtest.check(setting in unit_text, "unit has %s" % setting.strip())
# the unit's paths are those of the shipped config
for k, v in (("spool_dir", "/var/spool/danerelay"),
             ("state_dir", "/var/lib/danerelay"),
             ("pid_file", "/run/danerelay/danerelayd.pid")):
    drtest.check(re.search(r"^%s = %s$" % (k, re.escape(v)),
                           shipped.decode(), re.M) is not None,
                 "shipped config has %s = %s like the unit" % (k, v))

# ---------------------------------------------------------------- rc.d
rcd = R(D["pkgdatadir"] + "/rc.d/danerelayd")
r = run(["sh", "-n", rcd])
drtest.check(r.returncode == 0, "sh -n rc.d/danerelayd: %s" % r.stdout)
with open(rcd) as f:
    rc_text = f.read()
for want in ('name="danerelayd"', 'rcvar="danerelayd_enable"',
             'extra_commands="reload configtest"',
             ': ${danerelayd_enable:="NO"}',
             ': ${danerelayd_config:="%s/danerelay.conf"}' % D["sysconfdir"],
             'command="%s/danerelayd"' % D["sbindir"],
             '. /etc/rc.subr', 'run_rc_command "$1"'):
    drtest.check(want in rc_text, "rc.d script has %s" % want)

# A stand-in for FreeBSD's /etc/rc.subr: just what the script uses.
stub = os.path.join(T, "rc.subr")
with open(stub, "w") as f:
    f.write(r'''# rc.subr stand-in for install.t
load_rc_config() { :; }
run_rc_command() {
	case "$1" in
	vars)
		for v in name rcvar command command_args pidfile \
		    required_files extra_commands sig_reload; do
			eval "echo $v=\"\${$v}\""
		done ;;
	configtest) eval "$configtest_cmd" ;;
	start)
		eval "$start_precmd" || return 1
		$command $danerelayd_flags $command_args ;;
	*) echo "rc.subr stand-in: $1 not supported"; return 1 ;;
	esac
}
''')
script = os.path.join(T, "danerelayd.rc")
with open(script, "w") as f:
    f.write(rc_text.replace(". /etc/rc.subr", ". " + stub)
            .replace('command="%s/danerelayd"' % D["sbindir"],
                     'command="%s/danerelayd"' % R(D["sbindir"])))
os.chmod(script, 0o755)

d = drtest.Daemon(name="rc")      # writes a config, not started
env = dict(os.environ, danerelayd_config=d.conf, danerelayd_enable="YES")
r = run(["sh", script, "vars"], env=env)
v = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
drtest.check(v.get("pidfile") == d.options["pid_file"],
             "rc.d pidfile from the config's pid_file: %r" % v.get("pidfile"))
drtest.check(v.get("command_args") == "-c " + d.conf,
             "rc.d command_args: %r" % v.get("command_args"))
drtest.check(v.get("sig_reload") == "HUP", "rc.d reload is SIGHUP")
env0 = dict(os.environ, danerelayd_enable="YES")
r = run(["sh", script, "vars"], env=env0)
drtest.check("pidfile=/run/danerelay/danerelayd.pid" in r.stdout or
             "pidfile=%s/danerelay/danerelayd.pid" % D["runstatedir"]
             in r.stdout, "rc.d pidfile without a config file: %s" %
             r.stdout)
r = run(["sh", script, "configtest"], env=env)
drtest.check(r.returncode == 0 and "configuration OK" in r.stdout,
             "rc.d configtest: %s" % r.stdout)
bad = os.path.join(T, "bad.conf")
with open(bad, "w") as f:
    f.write("listen = nowhere\n")
r = run(["sh", script, "configtest"],
        env=dict(env, danerelayd_config=bad))
drtest.check(r.returncode != 0 and "bad.conf:1:" in r.stdout,
             "rc.d configtest refuses a bad file: %s" % r.stdout)

pid = None
try:
    r = run(["sh", script, "start"], env=env, timeout=60)
    drtest.check(r.returncode == 0, "rc.d start: %s" % r.stdout)
    pf = d.options["pid_file"]
    drtest.wait_for(lambda: os.path.exists(pf), 10, "the pid file")
    with open(pf) as f:
        pid = int(f.read().strip())
    c = drtest.SMTP(d.host, d.port)
    drtest.check(c.banner[0] == 220, "the daemon started by rc.d answers")
    c.cmd("QUIT")
    c.close()
finally:
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + drtest.scaled(20)
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
drtest.check(pid is not None and not os.path.exists(d.options["pid_file"]),
             "the daemon removed its pid file at SIGTERM")

# ---------------------------------------------------------------- uninstall
r = make("uninstall", "DESTDIR=" + root)
drtest.check(r.returncode == 0, "make uninstall: %s" % r.stdout[-2000:])
left = installed()
drtest.check(list(left) == [D["sysconfdir"] + "/danerelay.conf"],
             "uninstall leaves only the edited config: %r" % sorted(left))

# ---------------------------------------------------------------- dist
dist = os.path.join(T, "dist")
r = make("distdir", "distdir=" + dist)
drtest.check(r.returncode == 0, "make distdir: %s" % r.stdout[-2000:])
files = set()
for dp, dn, fn in os.walk(dist):
    for f in fn + [x for x in dn if x in ("__pycache__", ".deps")]:
        files.add(os.path.relpath(os.path.join(dp, f), dist))
for want in ("configure", "Makefile.in", "README.md", "conf/danerelay.conf",
             "man/danerelayd.8", "man/danerelay.1", "man/danerelay.conf.5",
             "contrib/danerelayd.service.in", "rc.d/danerelayd.in",
             "contrib/fail2ban/filter.d/danerelay.conf",
             "contrib/fail2ban/jail.d/danerelay.conf",
             "contrib/grafana/danerelay.json",
             "contrib/prometheus/danerelay-alerts.yml",
             "contrib/prometheus/danerelay-alerts.test.yml",
             "include/config.h",
             "src/main.c", "src/metrics_http.c", "scripts/install-deps",
             ".ci/run", "tests/run", "tests/unit/t.h",
             "tests/scenario/install.t", "tests/scenario/lib/drtest.py",
             "build-aux/test-driver"):
    drtest.check(want in files, "tarball has %s" % want)
for f in sorted(files):
    if re.search(r"(^|/)(__pycache__|\.deps)$|\.(o|a|pyc)$|(^|/)test-logs/",
                 f):
        drtest.check(False, "tarball must not hold %s" % f)
shutil.rmtree(dist, ignore_errors=True)

if os.environ.get("DR_DISTCHECK") == "1":
    r = make("distcheck", timeout=900)
    drtest.check(r.returncode == 0 and "archives ready for distribution"
                 in r.stdout, "make distcheck:\n%s" % r.stdout[-3000:])
else:
    drtest.log("make distcheck not run (set DR_DISTCHECK=1)")
drtest.done()
