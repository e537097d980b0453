#!/usr/bin/python3
# timeout: 60
"""The manual pages are clean mdoc and in step with the code.

- mandoc -T lint (warnings and errors; "STYLE" notes about manuals not
  installed on this machine are ignored) says nothing for man/*.
- Every option of the parser's table (src/config.c options[]) is
  documented in danerelay.conf.5 (".It Cm NAME Ns = ..."), every option
  documented there exists, and every option exists in the shipped
  conf/danerelay.conf (commented or not), and vice versa.
- danerelayd.8 documents every getopt flag of src/main.c, danerelay.1
  every command of src/danerelay.c's dispatch tables and its flags.
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402

if not drtest.which("mandoc"):
    drtest.skip("mandoc not installed (scripts/install-deps --test)")

S = drtest.SRCDIR
PAGES = ["danerelayd.8", "danerelay.1", "danerelay.conf.5"]


def read(*p):
    with open(os.path.join(S, *p), encoding="utf-8") as f:
        return f.read()


for page in PAGES:
    path = os.path.join(S, "man", page)
    r = subprocess.run(["mandoc", "-T", "lint", "-W", "warning", path],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True)
    msgs = [ln for ln in r.stdout.splitlines()
            if "outdated mandoc.db" not in ln]
    drtest.check(r.returncode == 0 and not msgs,
                 "mandoc -T lint %s: exit %d\n%s" % (page, r.returncode,
                                                    "\n".join(msgs)))
    r = subprocess.run(["mandoc", "-T", "utf8", path], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    drtest.check(r.returncode == 0 and len(r.stdout) > 1000,
                 "%s renders" % page)
    name, sec = page.rsplit(".", 1)
    drtest.check(re.search(r"^\.Dt %s %s$" % (re.escape(name.upper()), sec),
                           read("man", page), re.M) is not None,
                 "%s: .Dt matches the file name" % page)

# --- options: parser table, man page, shipped config
src = read("src", "config.c")
table = re.search(r"^\} options\[\] = \{$(.*?)^\};", src, re.M | re.S)
if table is None:
    table = re.search(r"options\[\] = \{(.*?)\n\};", src, re.S)
drtest.check(table is not None, "found the options[] table in config.c")
code_opts = set(re.findall(r'\{\s*"([a-z0-9_]+)"\s*,', table.group(1)))
drtest.check(len(code_opts) >= 30, "parsed %d options from config.c" %
             len(code_opts))

man5 = read("man", "danerelay.conf.5")
man_opts = set(re.findall(r"^\.It Cm ([a-z0-9_]+) Ns = Ns", man5, re.M))
for o in sorted(code_opts - man_opts):
    drtest.check(False, "option %s (src/config.c) is not documented in "
                 "man/danerelay.conf.5" % o)
for o in sorted(man_opts - code_opts):
    drtest.check(False, "man/danerelay.conf.5 documents %s, which "
                 "src/config.c does not know" % o)
drtest.check(code_opts == man_opts, "danerelay.conf.5 and config.c list the "
             "same %d options" % len(code_opts))

conf = read("conf", "danerelay.conf")
conf_opts = set(re.findall(r"^#?([a-z0-9_]+) = ", conf, re.M))
for o in sorted(code_opts - conf_opts):
    drtest.check(False, "option %s is missing from conf/danerelay.conf" % o)
for o in sorted(conf_opts - code_opts):
    drtest.check(False, "conf/danerelay.conf has %s, unknown to config.c" % o)

# --- danerelayd flags
main_c = read("src", "main.c")
GETOPT = r'getopt(?:_long)?\(argc, argv, "\+?([^"]+)"'
LONGOPT = r'^\t\{ "([a-z-]+)",\s+(?:no|required)_argument'


def check_flags(src, page, man, name):
    m = re.search(GETOPT, src)
    drtest.check(m is not None, "getopt string in %s" % name)
    for flag in re.sub(r"[^a-zA-Z]", "", m.group(1) if m else ""):
        drtest.check(re.search(r"^\.It Fl %s\b" % flag, man, re.M)
                     is not None, "%s documents -%s" % (page, flag))
    for opt in re.findall(LONGOPT, src, re.M):
        drtest.check(re.search(r"^\.It Fl .*Fl -%s\b" % opt, man, re.M)
                     is not None, "%s documents --%s" % (page, opt))


man8 = read("man", "danerelayd.8")
check_flags(main_c, "danerelayd.8", man8, "main.c")

# --- danerelay commands and flags
cli = read("src", "danerelay.c")
man1 = read("man", "danerelay.1")
check_flags(cli, "danerelay.1", man1, "danerelay.c")
for tab, prefix in (("commands", ""), ("queue_commands", "queue ")):
    t = re.search(r"struct command %s\[\] = \{(.*?)\n\};" % tab, cli, re.S)
    drtest.check(t is not None, "dispatch table %s in danerelay.c" % tab)
    for cmd in re.findall(r'\{\s*"([a-z-]+)"\s*,', t.group(1) if t else ""):
        if prefix:
            pat = r"^\.It Cm queue (?:Op Cm )?%s\b" % cmd
        else:
            pat = r"^\.It Cm %s\b" % cmd
        drtest.check(re.search(pat, man1, re.M) is not None,
                     "danerelay.1 documents \"%s%s\"" % (prefix, cmd))
drtest.done()
