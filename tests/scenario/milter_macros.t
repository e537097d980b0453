#!/usr/bin/python3
# timeout: 240
"""Milter macros (issue #25): what a real libmilter milter (Debian's
python3-milter, lib/macromilter.py) is given, stage by stage.

  - Postfix's default milter_*_macros lists: j, {daemon_name},
    {daemon_addr}, v and _ at connect (and not {client_port}); the TLS
    macros at HELO after STARTTLS; i (the queue id of the 250 reply),
    {mail_addr}, {mail_host}, {mail_mailer} at MAIL, the AUTH macros with
    {auth_author} (MAIL's AUTH=) for an authenticated client only; i,
    {rcpt_addr}, {rcpt_host}, {rcpt_mailer} at RCPT; i at DATA, end of
    headers and end of message;
  - MAIL's and RCPT's ESMTP arguments reach the milter;
  - a milter's own lists (smfi_setsymlist, asked in the option
    negotiation) replace the settings for that milter only: it gets
    {client_port}, {daemon_port} and {client_addr} at connect and no i
    at MAIL, while the milter beside it gets the defaults;
  - milter_connect_macros, milter_mail_macros and milter_rcpt_macros set
    by the operator (a reload) are what is sent; "" sends none;
  - a malformed macro name is refused with file:line (-n); a name
    danerelay has no value for is warned about.
"""
import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import world  # noqa: E402

try:
    import Milter  # noqa: F401
except ImportError as e:
    drtest.skip("python3-milter is not installed: %s" % e)

HERE = os.path.dirname(os.path.abspath(__file__))
w = world.World()
rcv = w.dest("rcpt.test", 11)
w.start()

procs = []


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


drtest.at_done(lambda: [stop(p) for p in procs])


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
        return True
    except OSError:
        return False


def start_milter(name, *mode):
    port = drtest.free_port("127.0.0.1")
    log = os.path.join(w.tmp, "%s.jsonl" % name)
    p = subprocess.Popen(["/usr/bin/python3",
                          os.path.join(HERE, "lib", "macromilter.py"),
                          "inet:%d@127.0.0.1" % port, log] + list(mode),
                         stdout=open(os.path.join(w.tmp, "%s.log" % name),
                                     "a"), stderr=subprocess.STDOUT)
    procs.append(p)
    drtest.wait_for(lambda: listening(port), 20, "%s listening" % name)
    return port, log


dport, dlog = start_milter("dflt")
sport, slog = start_milter("syms", "symlist")
MILTERS = "inet:127.0.0.1:%d, inet:127.0.0.1:%d" % (dport, sport)
crt, ckey = drtest.make_cert(w.tmp, "relay.dr-test.example")
authfile = drtest.auth_file(os.path.join(w.tmp, "auth"),
                            {"alice": "alice-password"})
OPTS = dict(milters=MILTERS, min_backoff="1h", tls_cert_file=crt,
            tls_key_file=ckey, auth_file=authfile)
d = w.daemon(**OPTS)


def stages(log):
    """The log's lines since the last call, as [(stage, macros, args)]."""
    out = []
    if not os.path.exists(log):
        return out
    with open(log) as f:
        lines = f.read().splitlines()
    done = stages.seen.get(log, 0)
    stages.seen[log] = len(lines)
    for ln in lines[done:]:
        j = json.loads(ln)
        out.append((j["stage"], j["macros"], j["args"]))
    return out


stages.seen = {}


def at(st, stage):
    """The macros of the last callback of stage."""
    got = [m for s, m, a in st if s == stage]
    drtest.check(got, "the milter saw the %s stage: %r" % (stage, st))
    return got[-1]


def args_at(st, stage):
    return [a for s, m, a in st if s == stage][-1]


def message(subject):
    return ("From: <a@signer.test>\r\nTo: <u@rcpt.test>\r\nSubject: %s\r\n"
            "Message-ID: <%s@dr-test>\r\n\r\nbody\r\n" % (
                subject, re.sub(r"\W", ".", subject))).encode()


def transaction(c, rcpt, mail_args="", rcpt_args="", subject="m"):
    c.expect("MAIL FROM:<a@signer.test>%s" % mail_args, 250)
    c.expect("RCPT TO:<%s>%s" % (rcpt, rcpt_args), 250)
    code, text = c.data(message(subject))
    drtest.check(code == 250, "the message was accepted: %d %s"
                 % (code, text))
    return drtest.QUEUED_RE.search(text).group(1)


# -- a plain session: Postfix's default lists, and the ESMTP arguments
stages(dlog)
stages(slog)
c = drtest.SMTP(d.host, d.port)
client_port = c.sock.getsockname()[1]
c.expect("EHLO client.dr-test.example", 250)
qid = transaction(c, "u1@rcpt.test",
                  " SIZE=300 BODY=8BITMIME RET=HDRS ENVID=env1 "
                  "AUTH=<bob@signer.test>",
                  " NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;u1@rcpt.test")
c.close()
w.expect(d, "rcpt.test", "sent", rcpt="u1@rcpt.test", at="mx")
st = stages(dlog)
con = at(st, "connect")
drtest.check(con.get("j") == d.options["myhostname"] and
             con.get("{daemon_name}") == "danerelay" and
             con.get("{daemon_addr}") == d.host and
             con.get("v", "").startswith("danerelay ") and
             con.get("_") == "unknown [127.0.0.1]",
             "connect: j, {daemon_name}, {daemon_addr}, v, _: %r" % con)
drtest.check("{client_port}" not in con and "{client_addr}" not in con and
             "i" not in con,
             "connect: only the default list (no {client_port}, "
             "{client_addr}, i): %r" % con)
drtest.check("{tls_version}" not in at(st, "helo"),
             "helo: no TLS macros without TLS: %r" % at(st, "helo"))
mail = at(st, "mail")
drtest.check(mail.get("i") == qid,
             "MAIL: i is the queue id of the 250 reply (%s): %r"
             % (qid, mail))
drtest.check(mail.get("{mail_addr}") == "a@signer.test" and
             mail.get("{mail_host}") == "signer.test" and
             mail.get("{mail_mailer}") == "smtp",
             "MAIL: {mail_addr}, {mail_host}, {mail_mailer}: %r" % mail)
drtest.check("{auth_author}" not in mail and "{auth_type}" not in mail,
             "MAIL: no AUTH macros for a client that did not "
             "authenticate, AUTH= or not: %r" % mail)
drtest.check(args_at(st, "mail") == ["SIZE=300", "BODY=8BITMIME",
                                     "RET=HDRS", "ENVID=env1"],
             "MAIL's ESMTP arguments reach the milter: %r"
             % args_at(st, "mail"))
rc = at(st, "rcpt")
drtest.check(rc.get("i") == qid and rc.get("{rcpt_addr}") == "u1@rcpt.test"
             and rc.get("{rcpt_host}") == "rcpt.test" and
             rc.get("{rcpt_mailer}") == "smtp",
             "RCPT: i, {rcpt_addr}, {rcpt_host}, {rcpt_mailer}: %r" % rc)
drtest.check(args_at(st, "rcpt") == ["NOTIFY=SUCCESS,FAILURE",
                                     "ORCPT=rfc822;u1@rcpt.test"],
             "RCPT's ESMTP arguments reach the milter: %r"
             % args_at(st, "rcpt"))
for s in ("data", "eoh", "eom"):
    drtest.check(at(st, s).get("i") == qid, "%s: i = %s" % (s, qid))

# the milter with its own lists, beside it
st = stages(slog)
con = at(st, "connect")
drtest.check(con.get("{client_port}") == str(client_port) and
             con.get("{daemon_port}") == str(d.port) and
             con.get("{client_addr}") == "127.0.0.1",
             "a milter's own connect list is sent ({client_port} %d, "
             "{daemon_port} %d): %r" % (client_port, d.port, con))
drtest.check("j" not in con and "_" not in con and
             "{daemon_name}" not in con,
             "... instead of milter_connect_macros: %r" % con)
mail = at(st, "mail")
drtest.check(mail.get("{mail_host}") == "signer.test" and "i" not in mail
             and "{mail_addr}" not in mail,
             "a milter's own MAIL list ({mail_host} only): %r" % mail)
drtest.check(at(st, "rcpt").get("i") == qid,
             "the default list for the stages it did not ask for: %r"
             % at(st, "rcpt"))

# -- STARTTLS and AUTH: the TLS macros at HELO, the AUTH ones at MAIL
c = drtest.SMTP(d.host, d.port)
c.expect("EHLO client.dr-test.example", 250)
c.starttls()
c.expect("EHLO client.dr-test.example", 250)
c.expect("AUTH PLAIN " + base64.b64encode(
    b"\0alice\0alice-password").decode(), 235)
qid = transaction(c, "u2@rcpt.test", " AUTH=alice+2B1@signer.test")
c.close()
w.expect(d, "rcpt.test", "sent", rcpt="u2@rcpt.test", at="mx")
st = stages(dlog)
helo = at(st, "helo")
drtest.check(re.match(r"TLSv1\.[23]$", helo.get("{tls_version}", "")) and
             helo.get("{cipher}") and
             int(helo.get("{cipher_bits}", "0")) >= 128,
             "HELO after STARTTLS: {tls_version}, {cipher}, "
             "{cipher_bits}: %r" % helo)
mail = at(st, "mail")
drtest.check(mail.get("{auth_type}") == "PLAIN" and
             mail.get("{auth_authen}") == "alice" and
             mail.get("{auth_author}") == "alice+1@signer.test",
             "MAIL: {auth_type}, {auth_authen}, {auth_author} (AUTH= "
             "decoded): %r" % mail)
stages(slog)

# -- the operator's lists (a reload); "" sends none
d.write_config(milter_connect_macros="{client_port} j",
               milter_mail_macros="i, {mail_addr}", milter_rcpt_macros="",
               **OPTS)
d.reload()
drtest.wait_for(lambda: re.search(r"info: reloaded /", d.log_text()), 10,
                "reload")
c = drtest.SMTP(d.host, d.port)
client_port = c.sock.getsockname()[1]
c.expect("EHLO client.dr-test.example", 250)
qid = transaction(c, "u3@rcpt.test")
c.close()
w.expect(d, "rcpt.test", "sent", rcpt="u3@rcpt.test", at="mx")
st = stages(dlog)
con = at(st, "connect")
drtest.check(con.get("{client_port}") == str(client_port) and "j" in con
             and "_" not in con and "v" not in con,
             "milter_connect_macros = {client_port} j: %r" % con)
mail = at(st, "mail")
drtest.check(mail.get("i") == qid and mail.get("{mail_addr}") ==
             "a@signer.test" and "{mail_host}" not in mail,
             "milter_mail_macros = i, {mail_addr}: %r" % mail)
rc = at(st, "rcpt")
drtest.check("{rcpt_addr}" not in rc and "{rcpt_host}" not in rc and
             rc.get("i") == qid,
             "milter_rcpt_macros = \"\": nothing new at RCPT (i is the "
             "MAIL stage's, kept by libmilter): %r" % rc)

# -- a malformed name: refused with file:line; an unknown one: a warning
for val in ("{tls_version", "ab", "{a b}"):
    d.write_config(milter_helo_macros=val, **OPTS)
    r = subprocess.run([d.binary, "-n", "-c", d.conf],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    drtest.check(r.returncode != 0 and re.search(
        r"%s:\d+: milter_helo_macros: bad macro name" % re.escape(d.conf),
        r.stderr), "milter_helo_macros = %s refused with file:line: %r"
        % (val, r.stderr))
d.write_config(milter_helo_macros="{tls_version} {if_name}", **OPTS)
d.reload()
drtest.wait_for(lambda: "milter_helo_macros: {if_name}: danerelay has no "
                "such macro" in d.log_text(), 10, "the unknown-name warning")
drtest.done()
