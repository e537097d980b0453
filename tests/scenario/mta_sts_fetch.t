#!/usr/bin/python3
# timeout: 180
"""The HTTPS policy fetch (src/https.c) against real servers: the "fetch"
cases of tests/vectors/mta-sts/cases.jsonl (RFC 8461 §3.3).

nginx (Debian) serves most cases on loopback with certificates from a
test CA made now; a small Python TLS server (standard library ssl) plays
the misbehaving ones nginx will not: no Content-Type header, a truncated
body.  Each case runs tests/unit/https_tool with the parameters the
MTA-STS manager uses (200 only, text/plain, 64 KiB, no redirects) and
checks the outcome class.  Cases 216 (IDN domain), 219 (TXT SERVFAIL) and
220 (no TXT) need DNS and the manager: tests/scenario/mta_sts.t.
"""
import os
import socket
import ssl
import struct
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import certs  # noqa: E402
import nginx  # noqa: E402

if not nginx.available():
    drtest.skip("nginx not installed (scripts/install-deps --test)")
TOOL = os.path.join(drtest.BUILDDIR, "tests", "unit", "https_tool")
if not os.access(TOOL, os.X_OK):
    drtest.fail("no %s (make check-programs)" % TOOL)

T = drtest.TMPDIR
os.chmod(T, 0o755)
pki = os.path.join(T, "pki")
root = certs.CA(pki, "Fetch Test Root CA")
other = certs.CA(pki, "Unrelated Root CA", name="unrelated")
H = "mta-sts.example.test"
POLICY = ("version: STSv1\r\nmode: enforce\r\nmx: mx.example.test\r\n"
          "max_age: 86400\r\n")
good = root.issue([H])

web = nginx.Nginx(os.path.join(T, "nginx"), drtest.ip(5))
PLAIN = "types { } default_type %s; return 200 '%s';"


def ret(code, ctype="text/plain", body=POLICY):
    return "types { } default_type \"%s\"; return %d '%s';" % (
        ctype, code, body.replace("\r\n", "\\n"))


big_file = os.path.join(web.www, "big.txt")
with open(big_file, "w") as f:
    f.write(POLICY + ("x-pad: " + "a" * 100 + "\r\n") * 700)
os.chmod(big_file, 0o644)
ok_file = os.path.join(web.www, "ok.txt")
with open(ok_file, "w") as f:
    f.write(POLICY)
os.chmod(ok_file, 0o644)
static = "types { } default_type text/plain; alias %s;"
web.site(H, good.chain, good.key, locations={
    "/ok": static % ok_file,
    "/charset": "charset utf-8; " + static % ok_file,
    "/upper": ret(200, "TEXT/Plain"),
    "/nospace": ret(200, "text/plain;charset=us-ascii"),
    "/html": ret(200, "text/html"),
    "/404": ret(404),
    "/301": "return 301 https://%s/ok;" % H,
    "/302": "return 302 /ok;",
    "/201": ret(201),
    "/203": ret(203),
    "/206": ret(206),
    "/big": static % big_file,
    "/chunked": static % big_file + " sub_filter 'zzz' 'yyy'; "
    "sub_filter_once off; sub_filter_types *;",
    "/chunked-ok": static % ok_file + " sub_filter 'zzz' 'yyy'; "
    "sub_filter_once off; sub_filter_types *;",
    "/slow": static % big_file + " limit_rate 2000;",
})
# certificate cases: one server name each, chosen by SNI
cases_cert = {
    "untrusted": other.issue(["mta-sts.untrusted.test"]),
    "othername": root.issue(["mta-sts.elsewhere.test"], name="othername"),
    "wild": root.issue(["*.wild.test"], name="wild"),
    "cnonly": root.issue([], cn="mta-sts.cnonly.test", name="cnonly"),
    "partial": root.issue(["mta-*.partial.test"], name="partial"),
    "expired": root.issue(["mta-sts.expired.test"], expired=True),
}
sni = {"untrusted": "mta-sts.untrusted.test",
       "othername": "mta-sts.othername.test",
       "wild": "mta-sts.wild.test", "cnonly": "mta-sts.cnonly.test",
       "partial": "mta-sts.partial.test",
       "expired": "mta-sts.expired.test"}
for k, c in cases_cert.items():
    web.site(sni[k], c.chain, c.key, locations={"/ok": static % ok_file})
web.start()


def fetch(host, path, ip=None, port=None, extra=()):
    argv = [TOOL, "-a", ip or web.ip, "-p", str(port or web.port), "-c",
            root.crt, "-y", "text/plain", "-m", "65536", "-t", "5000",
            "-T", "3000"] + list(extra) + [host, path]
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True,
                       timeout=drtest.scaled(30))
    out = dict(l.split("=", 1) for l in p.stdout.splitlines() if "=" in l)
    out["rc"] = p.returncode
    out["stderr"] = p.stderr
    drtest.check("Sanitizer" not in p.stderr and "runtime error" not in
                 p.stderr, "%s%s: sanitizer report: %s" % (host, path,
                                                           p.stderr[-3000:]))
    return out


def expect(case, r, fail, status=None):
    ok = r.get("fail") == fail and (status is None or
                                    r.get("status") == str(status))
    drtest.check(ok, "%s: expected fail=%s%s, got %s" % (
        case, fail, " status=%s" % status if status else "", r))
    if fail == "ok":
        drtest.check(r["rc"] == 0 and r.get("body_len") in (
            str(len(POLICY)), str(len(POLICY.replace("\r\n", "\n")))),
            "%s: exit 0 and the whole body: %s" % (case, r))


# 207 and the good path
expect("ok", fetch(H, "/ok"), "ok", 200)
expect("207 charset", fetch(H, "/charset"), "ok")
expect("207 TEXT/Plain", fetch(H, "/upper"), "ok")
expect("207 ;charset", fetch(H, "/nospace"), "ok")
expect("chunked within the limit", fetch(H, "/chunked-ok"), "ok")
# 203-206, 209, 210, 217
expect("203 text/html", fetch(H, "/html"), "content-type", 200)
expect("204 404", fetch(H, "/404"), "status", 404)
r = fetch(H, "/301")
expect("205 301", r, "status", 301)
drtest.check(r.get("location") == "https://%s/ok" % H and
             "not followed" in r.get("reason", ""), "301 not followed: %s" % r)
expect("205 302", fetch(H, "/302"), "status", 302)
for code in (201, 203, 206):
    expect("206 %d" % code, fetch(H, "/%d" % code), "status", code)
expect("209 > 64 KiB", fetch(H, "/big"), "too-big")
expect("210 chunked > 64 KiB", fetch(H, "/chunked"), "too-big")
expect("217 slow drip", fetch(H, "/slow", extra=["-m", "200000"]),
       "timeout")
# 211-215 and an expired certificate
expect("211 untrusted CA", fetch(sni["untrusted"], "/ok"), "verify")
expect("212 SAN for another name", fetch(sni["othername"], "/ok"), "verify")
expect("213 *.wild.test", fetch(sni["wild"], "/ok"), "ok")
expect("214 CN only", fetch(sni["cnonly"], "/ok"), "verify")
expect("215 mta-*.partial.test", fetch(sni["partial"], "/ok"), "verify")
r = fetch(sni["expired"], "/ok")
expect("expired certificate", r, "verify")
drtest.check("expired" in r.get("reason", ""), "expired: reason says so: %s"
             % r)
# nothing listening
expect("refused", fetch(H, "/ok", port=drtest.free_port(drtest.ip(6)),
                        ip=drtest.ip(6)), "connect")


# ---- misbehaving servers (Python, one canned response per connection)
def tls_server(ip, responses):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(good.chain, good.key)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((ip, 0))
    ls.listen(8)
    ls.settimeout(drtest.scaled(30))

    def run():
        for resp, abort in responses:
            try:
                c, _ = ls.accept()
                s = ctx.wrap_socket(c, server_side=True)
                s.settimeout(5)
                s.recv(4096)
                s.sendall(resp)
                if abort:
                    # abort: RST instead of a clean TLS close
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 struct.pack("ii", 1, 0))
                    s.close()
                else:
                    s.unwrap()
                    s.close()
            except (OSError, ssl.SSLError):
                pass
        ls.close()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return ls.getsockname()[1], t


body = POLICY.encode()
port, t = tls_server(drtest.ip(7), [
    (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n"
     b"\r\n" % len(body) + body, False),
    (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
     b"1000\r\nConnection: close\r\n\r\n" + body, True),
    (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close"
     b"\r\n\r\n" + body, False),
])
expect("208 no Content-Type", fetch(H, "/p", ip=drtest.ip(7), port=port),
       "content-type", 200)
r = fetch(H, "/p", ip=drtest.ip(7), port=port)
drtest.check(r.get("fail") in ("http", "tls"), "218 truncated body: %s" % r)
expect("read until close", fetch(H, "/p", ip=drtest.ip(7), port=port), "ok")
t.join(drtest.scaled(10))

# cancellation and a POST (TLSRPT's use): nginx answers 405 to POST on a
# static file and 200 to "return 200"
r = subprocess.run([TOOL, "-a", web.ip, "-p", str(web.port), "-c", root.crt,
                    "-x", H, "/ok"], stdout=subprocess.PIPE,
                   universal_newlines=True, timeout=30)
drtest.check(r.returncode == 0 and "cancel ok" in r.stdout,
             "cancel: no callback: %s" % r.stdout)
rep = os.path.join(T, "report.json.gz")
with open(rep, "wb") as f:
    f.write(b"\x1f\x8b" + b"\0" * 100)
r = fetch(H, "/201", extra=["-2", "-P", "application/tlsrpt+gzip", "-f",
                            rep])
expect("POST, 2xx accepted", r, "ok", 201)
# nginx writes its access-log line after the response has gone out, so
# the tool may have its 201 before the line is there
drtest.wait_for(lambda: any('"POST /201 HTTP/1.1" 201' in l
                            for l in web.requests(H)), 10,
                "nginx's access-log line for the POST")
web.stop()
drtest.done()
