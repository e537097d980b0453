#!/usr/bin/python3
# timeout: 120
"""cli_conventions.t - the command-line conventions of both programs, what
`danerelayd -n` checks, and the pid file going away at exit.

1. `--help` and `-h` print the usage on stdout and exit 0, for danerelay
   and danerelayd; `--version` and `-V` print "NAME VERSION" and exit 0;
   an unknown long option gives the usage on stderr and a failing status.
2. `danerelayd -n` checks what a start loads, not only the config's own
   syntax: a bad policy_file line is refused with the policy file's
   name and line (it used to pass, then stopped the daemon at start), and
   so are a missing tls_cert_file, a dns_config libunbound refuses and an
   unreadable ca_file; the same files, repaired, pass.
3. When root: the pid file's directory was made by root before the start
   (an rc script's mkdir, a unit's RuntimeDirectory=) and holds nothing
   else: it is handed to the daemon's user, and after SIGTERM the pid
   file is gone (it used to stay, with "remove pid file ...: Permission
   denied" at every stop).  In a directory shared with other files the
   daemon says at start that the file will stay behind.
"""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "lib"))
import drtest  # noqa: E402

B = drtest.BUILDDIR
T = drtest.TMPDIR
PROGS = {"danerelay": os.path.join(B, "danerelay"),
         "danerelayd": os.path.join(B, "danerelayd")}


def run(args, timeout=20):
    p = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=drtest.scaled(timeout))
    return p.returncode, p.stdout, p.stderr


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)
    return path


# -- 1. --help, -h, --version, -V ------------------------------------------
for name, prog in PROGS.items():
    for flag in ("--help", "-h"):
        rc, out, err = run([prog, flag])
        drtest.check(rc == 0 and out.startswith("usage: %s" % name) and
                     err == "", "%s %s: usage on stdout, exit 0 (rc %d, "
                     "stderr %r)" % (name, flag, rc, err[:200]))
    for flag in ("--version", "-V"):
        rc, out, err = run([prog, flag])
        drtest.check(rc == 0 and re.fullmatch(r"%s \d+\.\d+\S*\n" % name,
                                              out) is not None,
                     "%s %s: prints the version, exit 0 (rc %d, %r)" %
                     (name, flag, rc, out))
    rc, out, err = run([prog, "--no-such-option"])
    drtest.check(rc != 0 and out == "" and "usage: %s" % name in err,
                 "%s --no-such-option: usage on stderr, failing status "
                 "(rc %d)" % (name, rc))

# -- 2. danerelayd -n checks the files a start loads -------------------------
d = drtest.Daemon("check")
good_policy = write(os.path.join(T, "policy.good"),
                    "# per-domain policies\nexample.org dane\n")
bad_policy = write(os.path.join(T, "policy.bad"),
                   "example.org dane\nexample.net sometimes-tls\n")


def check_n(what, expect_ok, pattern=None, **options):
    d.write_config(**options)
    rc, out, err = run([PROGS["danerelayd"], "-n", "-c", d.conf])
    if expect_ok:
        drtest.check(rc == 0 and "configuration OK" in out,
                     "-n: %s passes (rc %d, %r)" % (what, rc, err))
    else:
        drtest.check(rc == 1 and re.search(pattern, err) is not None,
                     "-n: %s refused with %r (rc %d, got %r)" %
                     (what, pattern, rc, err))
    d.write_config(**{k: None for k in options})


check_n("a good policy_file", True, policy_file=good_policy)
check_n("a bad policy_file line", False,
        re.escape(bad_policy) + r":2: .*sometimes-tls",
        policy_file=bad_policy)
check_n("a missing tls_cert_file", False, r"nonexistent\.pem",
        tls_cert_file=os.path.join(T, "nonexistent.pem"),
        tls_key_file=os.path.join(T, "nonexistent.key"))
bad_dns = write(os.path.join(T, "unbound.bad"),
                "server:\n    no-such-unbound-option: yes\n")
check_n("a dns_config libunbound refuses", False, r"dns_config|unbound",
        dns_config=bad_dns)
check_n("an unreadable ca_file", False, r"nonexistent-ca\.pem",
        ca_file=os.path.join(T, "nonexistent-ca.pem"))
check_n("the repaired files", True, policy_file=good_policy)

# -- 3. the pid file goes away at exit (root only: the privilege drop) -------
if os.geteuid() != 0:
    drtest.log("not root: no privilege drop, the pid file part is moot")
else:
    # a directory root made, empty: the daemon's own
    own = os.path.join(T, "rundir-own")
    os.mkdir(own, 0o755)
    pidf = os.path.join(own, "danerelayd.pid")
    d.write_config(pid_file=pidf)
    d.start()
    drtest.check(os.path.exists(pidf), "pid file written in %s" % own)
    drtest.check(os.stat(own).st_uid != 0,
                 "the empty root-made directory is handed to the user")
    d.stop()
    drtest.check(not os.path.exists(pidf),
                 "SIGTERM: the pid file is gone from a root-made directory")
    drtest.check("remove pid file" not in d.log_text(),
                 "no 'remove pid file' warning at stop")

    # a shared directory (other files in it): left alone, said at start
    shared = os.path.join(T, "rundir-shared")
    os.mkdir(shared, 0o755)
    write(os.path.join(shared, "someone-elses.pid"), "1\n")
    pidf = os.path.join(shared, "danerelayd.pid")
    d.write_config(pid_file=pidf)
    d.start()
    drtest.check(os.stat(shared).st_uid == 0,
                 "a shared directory is not handed to the user")
    drtest.check(re.search(r"pid file .*rundir-shared/danerelayd\.pid: the "
                           r"directory is shared", d.log_text())
                 is not None, "a shared pid directory is reported at start")
    d.stop()

drtest.done()
