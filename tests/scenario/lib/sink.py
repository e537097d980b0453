#!/usr/bin/python3
"""sink - an SMTP sink for tests: STARTTLS, scripted replies, a record of
everything that arrived (cleartext too).  Python standard library only.

As a process (what tests normally do):

    python3 sink.py --listen 127.0.70.5:2525 --outdir DIR \\
        [--cert CHAIN.pem --key KEY.pem] [--no-starttls] [--ready FILE] ...

  --listen IP:PORT     address to listen on (PORT 0: any; the ready file
                       says which).  "[::1]:2525" for IPv6.  Repeatable.
  --outdir DIR         where the record goes (created)
  --ready FILE         written ("IP PORT" per line) once listening
  --cert, --key        certificate chain and key: enables STARTTLS
  --no-starttls        do not offer STARTTLS (even with a certificate)
  --tls-max 1.2        highest TLS version offered
  --no-pipelining, --no-8bitmime, --no-smtputf8, --no-enhanced
  --dsn                advertise DSN (RFC 3461)
  --requiretls         advertise REQUIRETLS (RFC 8689) inside TLS
  --size N             advertise SIZE N (default 52428800; 0: "SIZE")
  --no-ehlo            EHLO gets 502 (HELO works)
  --hostname NAME      name in the greeting (default sink.test)
  --rule 'CMD|MATCH|TIMES|REPLY'   scripted reply, repeatable, first match
        CMD    BANNER, EHLO, HELO, STARTTLS, MAIL, RCPT, DATA, EOM (after
               the final "."), BODY (right after 354, while the client
               sends the data: the reply goes out at once, the rest of
               the data is read and dropped until the client closes),
               RSET, QUIT, or * (any command)
        MATCH  case-insensitive substring of the command's argument
               ("" matches everything; for EOM: of the message data)
        TIMES  how many times the rule fires in this sink's life (0: always)
        REPLY  the reply ("451 4.3.0 try again later"; "\\n" separates
               lines of a multi-line reply) or an action:
               stall     send nothing, read nothing, keep the connection
               close     drop the connection at once
               tls-stall (STARTTLS) reply 220, then never do the handshake
               tls-garbage (STARTTLS) reply 220, answer the ClientHello
                         with bytes that are not TLS (handshake fails)
               inject    (STARTTLS) send "220 ready" and "250 injected" in
                         one write (a plaintext-injection attack)
               sleep N REPLY   wait N seconds (a float), then send REPLY
                         (a slow server; for EOM the message is recorded
                         before the wait)

The record, in DIR:
    messages.jsonl   one JSON object per message accepted by "250" after
                     the final "." (written before the 250 is sent):
        {"n": 1, "conn": 3, "time": ..., "mail_time": (when MAIL was
         accepted), "peer": "127.0.0.1",
         "helo": "...", "tls": true, "tls_version": "TLSv1.3",
         "cipher": "...", "sni": "mx.example.test" or null,
         "mail_from": "a@b", "mail_params": "SIZE=10 BODY=8BITMIME",
         "rcpts": ["accepted", ...], "rcpts_refused": [...],
         "rcpt_params": {"accepted": "NOTIFY=SUCCESS ORCPT=...", ...},
         "pipelined": true (MAIL arrived with more commands behind it),
         "data_file": "msg-1.eml", "size": 1234, "sha256": "..."}
    msg-N.eml        the data as received, dot-unstuffed, CRLF kept
    transcript.jsonl one JSON object per connection when it ends:
        {"conn": 3, "peer": ..., "tls": ..., "sni": ..., "commands":
         ["EHLO x", "STARTTLS", ...], "end": "quit"|"eof"|"close"|...,
         "start": (time of accept), "end_time": (time it ended)}
    stats.json       {"connections": N, "active": N, "max_active": N,
                      "messages": N, "tls_handshakes": N, "tls_failures": N}
                     rewritten (atomically) on every change

In Python (from a test):

    import sink
    s = sink.spawn(DIR, "127.0.70.5", cert=..., key=..., rules=[...])
    ... s.port ... s.messages() ... s.stats() ... s.transcripts()
    s.wait_idle()       # every session over and written down
    s.stop()
    sink.read_messages(DIR) -> list of dicts, each with "data" (bytes)

The sink exits on SIGTERM/SIGINT.  It only listens where it is told.
"""

import argparse
import asyncio
import hashlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time

# every wait of this helper is scaled once by the run's timeout factor
# (DR_TIMEOUT_SCALE, e.g. 2 under ASan), as drtest.scaled() does
SCALE = float(os.environ.get("DR_TIMEOUT_SCALE") or "1")
LINE_MAX = 1 << 20
DATA_MAX = 64 * 1024 * 1024


class Reply(str):
    """A scripted reply; delay: seconds to wait before sending it."""
    delay = 0.0


class Rule:
    def __init__(self, spec):
        parts = spec.split("|", 3)
        if len(parts) != 4:
            raise ValueError("rule must be CMD|MATCH|TIMES|REPLY: %r" % spec)
        self.cmd = parts[0].strip().upper()
        self.match = parts[1].lower()
        self.times = int(parts[2] or 0)
        self.reply = parts[3].replace("\\n", "\n")
        self.delay = 0.0
        if self.reply.startswith("sleep "):
            _, secs, self.reply = self.reply.split(" ", 2)
            self.delay = float(secs)
        self.fired = 0

    def applies(self, cmd, arg):
        if self.cmd != "*" and self.cmd != cmd:
            return False
        if self.match and self.match not in arg.lower():
            return False
        if self.times and self.fired >= self.times:
            return False
        return True


class Sink:
    def __init__(self, opts):
        self.o = opts
        self.outdir = opts.outdir
        os.makedirs(self.outdir, exist_ok=True)
        self.rules = [Rule(r) for r in (opts.rule or [])]
        self.nconn = 0
        self.active = 0
        self.max_active = 0
        self.nmsg = 0
        self.handshakes = 0
        self.tls_failures = 0
        self.sni = {}           # id(ssl object) -> server name
        self.ctx = None
        if opts.cert and not opts.no_starttls:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(opts.cert, opts.key)
            self.ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            if opts.tls_max == "1.2":
                self.ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            self.ctx.sni_callback = self._sni
        self.write_stats()

    def _sni(self, sslobj, name, ctx):
        self.sni[id(sslobj)] = name
        return None

    def rule_for(self, cmd, arg):
        for r in self.rules:
            if r.applies(cmd, arg):
                r.fired += 1
                rep = Reply(r.reply)
                rep.delay = r.delay
                return rep
        return None

    def write_stats(self):
        st = {"connections": self.nconn, "active": self.active,
              "max_active": self.max_active, "messages": self.nmsg,
              "tls_handshakes": self.handshakes,
              "tls_failures": self.tls_failures}
        tmp = os.path.join(self.outdir, ".stats.tmp")
        with open(tmp, "w") as f:
            json.dump(st, f)
        os.replace(tmp, os.path.join(self.outdir, "stats.json"))

    def append(self, name, obj):
        with open(os.path.join(self.outdir, name), "a") as f:
            f.write(json.dumps(obj) + "\n")
            f.flush()
            os.fsync(f.fileno())

    async def handle(self, reader, writer):
        self.nconn += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        self.write_stats()
        sess = Session(self, self.nconn, reader, writer)
        try:
            await sess.run()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError,
                OSError) as e:
            sess.end = sess.end or "error: %s" % e
        finally:
            try:
                writer.close()
            except Exception:
                pass
            self.append("transcript.jsonl", sess.transcript())
            self.active -= 1
            self.write_stats()


class Session:
    def __init__(self, sink, n, reader, writer):
        self.s = sink
        self.o = sink.o
        self.n = n
        self.r = reader
        self.w = writer
        peer = writer.get_extra_info("peername")
        self.peer = peer[0] if peer else None
        self.tls = False
        self.tls_version = None
        self.cipher = None
        self.sni = None
        self.helo = None
        self.commands = []
        self.end = None
        self.start = time.time()
        self.reset()

    def reset(self):
        self.mail_from = None
        self.mail_time = None
        self.mail_params = ""
        self.rcpts = []
        self.rcpt_params = {}
        self.refused = []
        self.pipelined = False

    def transcript(self):
        return {"conn": self.n, "peer": self.peer, "tls": self.tls,
                "tls_version": self.tls_version, "sni": self.sni,
                "helo": self.helo, "commands": self.commands,
                "end": self.end, "start": self.start,
                "end_time": time.time()}

    async def send(self, text):
        if getattr(text, "delay", 0):
            await asyncio.sleep(text.delay)
        lines = text.split("\n")
        code = lines[0][:3]
        out = []
        for i, l in enumerate(lines):
            if i > 0 and not l[:3].isdigit():
                l = code + " " + l
            sep = "-" if i < len(lines) - 1 else " "
            if len(l) > 3 and l[3] in " -":
                l = l[:3] + sep + l[4:]
            else:
                l = l[:3] + sep + l[3:]
            out.append(l + "\r\n")
        self.w.write("".join(out).encode())
        await self.w.drain()

    async def stall(self):
        self.end = "stall"
        try:
            while True:
                if not await self.r.read(65536):
                    return
        except Exception:
            return

    async def scripted(self, cmd, arg, default):
        """Send the scripted reply or the default; False: session over."""
        rep = self.s.rule_for(cmd, arg)
        if rep is None:
            rep = default
        if rep == "stall":
            await self.stall()
            return False
        if rep == "close":
            self.end = "close"
            self.w.transport.abort()
            return False
        await self.send(rep)
        return rep

    async def readline(self):
        try:
            line = await self.r.readuntil(b"\n")
        except asyncio.LimitOverrunError:
            raise ConnectionError("line too long")
        except asyncio.IncompleteReadError as e:
            if e.partial:
                self.commands.append("(partial) " +
                                     e.partial.decode(errors="replace"))
            return None
        return line

    def ehlo_lines(self):
        o = self.o
        lines = ["250 %s hello %s" % (o.hostname, self.helo)]
        if not o.no_pipelining:
            lines.append("250 PIPELINING")
        lines.append("250 SIZE %d" % o.size if o.size else "250 SIZE")
        if not o.no_8bitmime:
            lines.append("250 8BITMIME")
        if not o.no_smtputf8:
            lines.append("250 SMTPUTF8")
        if not o.no_enhanced:
            lines.append("250 ENHANCEDSTATUSCODES")
        if o.dsn:
            lines.append("250 DSN")
        if o.requiretls and self.tls:
            lines.append("250 REQUIRETLS")
        if self.s.ctx is not None and not self.tls:
            lines.append("250 STARTTLS")
        lines.append("250 HELP")
        return "\n".join(lines)

    async def run(self):
        if not await self.scripted("BANNER", "",
                                   "220 %s ESMTP sink" % self.o.hostname):
            return
        while True:
            line = await self.readline()
            if line is None:
                self.end = self.end or "eof"
                return
            text = line.rstrip(b"\r\n").decode("utf-8", errors="replace")
            self.commands.append(text)
            verb, _, arg = text.partition(" ")
            verb = verb.upper()
            if ":" in verb:           # "MAIL FROM:<x>" without space
                verb, _, rest = verb.partition(":")
            if verb == "MAIL" or verb == "RCPT":
                arg = text.split(":", 1)[1] if ":" in text else ""
            pending = len(getattr(self.r, "_buffer", b""))
            if not await self.command(verb, arg.strip(), pending):
                return

    async def command(self, verb, arg, pending):
        o = self.o
        if verb == "EHLO":
            self.helo = arg
            self.reset()
            if o.no_ehlo:
                return await self.scripted("EHLO", arg,
                                           "502 5.5.2 EHLO not supported")
            return await self.scripted("EHLO", arg, self.ehlo_lines())
        if verb == "HELO":
            self.helo = arg
            self.reset()
            return await self.scripted("HELO", arg, "250 %s" % o.hostname)
        if verb == "STARTTLS":
            if self.s.ctx is None or self.tls:
                return await self.scripted("STARTTLS", arg,
                                           "502 5.5.1 no STARTTLS")
            rep = self.s.rule_for("STARTTLS", arg)
            if rep == "tls-stall":
                await self.send("220 2.0.0 ready to start TLS")
                await self.stall()
                return False
            if rep == "tls-garbage":
                # a broken TLS stack: answer the ClientHello with junk
                await self.send("220 2.0.0 ready to start TLS")
                try:
                    await asyncio.wait_for(self.r.read(1), 10)
                except Exception:
                    pass
                self.w.write(b"this is not TLS\r\n" * 4)
                await self.w.drain()
                self.end = "tls-garbage"
                self.w.close()
                return False
            if rep == "inject":
                self.w.write(b"220 2.0.0 ready\r\n250 injected\r\n")
                await self.w.drain()
            elif rep is not None:
                if rep == "stall":
                    await self.stall()
                    return False
                if rep == "close":
                    self.end = "close"
                    self.w.transport.abort()
                    return False
                await self.send(rep)
                if not rep.startswith("220"):
                    return True
            else:
                await self.send("220 2.0.0 ready to start TLS")
            try:
                await self.w.start_tls(self.s.ctx)
            except (ssl.SSLError, ConnectionError, OSError) as e:
                self.s.tls_failures += 1
                self.s.write_stats()
                self.end = "tls-failed: %s" % e
                return False
            so = self.w.get_extra_info("ssl_object")
            self.tls = True
            self.tls_version = so.version()
            self.cipher = so.cipher()[0] if so.cipher() else None
            self.sni = self.s.sni.pop(id(so), None)
            self.s.handshakes += 1
            self.s.write_stats()
            self.helo = None
            self.reset()
            return True
        if verb == "RSET":
            self.reset()
            return await self.scripted("RSET", arg, "250 2.0.0 reset")
        if verb == "NOOP":
            return await self.scripted("NOOP", arg, "250 2.0.0 ok")
        if verb == "QUIT":
            await self.scripted("QUIT", arg, "221 2.0.0 bye")
            self.end = "quit"
            return False
        if verb == "MAIL":
            if self.helo is None:
                return await self.scripted("MAIL", arg,
                                           "503 5.5.1 EHLO first")
            if self.mail_from is not None:
                return await self.scripted("MAIL", arg,
                                           "503 5.5.1 nested MAIL")
            addr, params = split_path(arg)
            rep = await self.scripted("MAIL", arg, "250 2.1.0 ok")
            if rep and rep.startswith("2"):
                self.mail_from = addr
                self.mail_time = time.time()
                self.mail_params = params.strip()
                self.pipelined = pending > 0
            return rep
        if verb == "RCPT":
            if self.mail_from is None:
                return await self.scripted("RCPT", arg,
                                           "503 5.5.1 MAIL first")
            addr, rparams = split_path(arg)
            rep = await self.scripted("RCPT", arg, "250 2.1.5 ok")
            if rep is False:
                return False
            if rep.startswith("2"):
                self.rcpts.append(addr)
                self.rcpt_params[addr] = rparams.strip()
            else:
                self.refused.append(addr)
            return rep
        if verb == "DATA":
            if self.mail_from is None or not self.rcpts:
                return await self.scripted("DATA", arg,
                                           "503 5.5.1 no valid recipients")
            rep = await self.scripted("DATA", arg,
                                      "354 end data with <CRLF>.<CRLF>")
            if rep is False or not rep.startswith("354"):
                return rep
            return await self.data()
        return await self.scripted(verb, arg, "500 5.5.2 unknown command")

    async def data(self):
        chunks = []
        size = 0
        rep = self.s.rule_for("BODY", "")
        if rep is not None:
            # a reply in the middle of the body: the server gave up
            if rep == "close":
                self.end = "close"
                self.w.transport.abort()
                return False
            await self.send(rep)
            self.end = "reply in body"
            await self.stall()
            return False
        while True:
            line = await self.readline()
            if line is None:
                self.end = "eof in data"
                return False
            if line in (b".\r\n", b".\n"):
                break
            if line.startswith(b"."):
                line = line[1:]
            size += len(line)
            if size > DATA_MAX:
                await self.send("552 5.3.4 too big")
                return False
            chunks.append(line)
        data = b"".join(chunks)
        self.commands.append("(data %d bytes) ." % len(data))
        rep = self.s.rule_for("EOM", data.decode("utf-8", errors="replace"))
        if rep is None:
            rep = "250 2.0.0 queued as %d" % (self.s.nmsg + 1)
        if rep.startswith("2"):
            self.s.nmsg += 1
            n = self.s.nmsg
            fn = "msg-%d.eml" % n
            with open(os.path.join(self.s.outdir, fn), "wb") as f:
                f.write(data)
            self.s.append("messages.jsonl", {
                "n": n, "conn": self.n, "time": time.time(),
                "mail_time": self.mail_time,
                "peer": self.peer, "helo": self.helo, "tls": self.tls,
                "tls_version": self.tls_version, "cipher": self.cipher,
                "sni": self.sni, "mail_from": self.mail_from,
                "mail_params": self.mail_params, "rcpts": self.rcpts,
                "rcpts_refused": self.refused, "pipelined": self.pipelined,
                "rcpt_params": self.rcpt_params,
                "data_file": fn, "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest()})
            self.s.write_stats()
        self.reset()
        if rep == "stall":
            await self.stall()
            return False
        if rep == "close":
            self.end = "close"
            self.w.transport.abort()
            return False
        await self.send(rep)
        return True


def split_path(arg):
    """'<addr> params' -> (addr, params); a '>' inside a quoted local
    part ('<"a>b"@dom>', RFC 5321 Quoted-string) does not end the path."""
    arg = arg.lstrip()
    i = 1 if arg.startswith("<") else 0
    quoted = False
    while i < len(arg):
        ch = arg[i]
        if quoted and ch == "\\":
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif ch == ">" and not quoted:
            break
        i += 1
    start = 1 if arg.startswith("<") else 0
    return arg[start:i], arg[i + 1:].strip()


def parse_listen(s):
    if s.startswith("["):
        host, _, port = s[1:].partition("]:")
    else:
        host, _, port = s.rpartition(":")
    return host, int(port)


async def main_async(opts):
    sink = Sink(opts)
    servers = []
    ready = []
    for l in opts.listen:
        host, port = parse_listen(l)
        srv = await asyncio.start_server(sink.handle, host, port,
                                         limit=LINE_MAX, reuse_address=True)
        servers.append(srv)
        for sock in srv.sockets:
            a = sock.getsockname()
            ready.append("%s %d" % (a[0], a[1]))
    if opts.ready:
        tmp = opts.ready + ".tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(ready) + "\n")
        os.replace(tmp, opts.ready)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for srv in servers:
        srv.close()


def parse_args(argv):
    p = argparse.ArgumentParser(description="SMTP sink for tests")
    p.add_argument("--listen", action="append", required=True)
    p.add_argument("--outdir", required=True)
    p.add_argument("--ready")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--no-starttls", action="store_true")
    p.add_argument("--tls-max", choices=["1.2", "1.3"])
    p.add_argument("--no-pipelining", action="store_true")
    p.add_argument("--no-8bitmime", action="store_true")
    p.add_argument("--no-smtputf8", action="store_true")
    p.add_argument("--no-enhanced", action="store_true")
    p.add_argument("--no-ehlo", action="store_true")
    p.add_argument("--dsn", action="store_true")
    p.add_argument("--requiretls", action="store_true")
    p.add_argument("--size", type=int, default=52428800)
    p.add_argument("--hostname", default="sink.test")
    p.add_argument("--rule", action="append")
    o = p.parse_args(argv)
    if o.cert and not o.key:
        p.error("--cert needs --key")
    return o


def main(argv=None):
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    asyncio.run(main_async(opts))


# ---- helpers for tests ----------------------------------------------------

def read_jsonl(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    out.append(json.loads(line))
    except FileNotFoundError:
        pass
    return out


def read_messages(outdir):
    """Every recorded message, with its data as bytes under "data"."""
    msgs = read_jsonl(os.path.join(outdir, "messages.jsonl"))
    for m in msgs:
        with open(os.path.join(outdir, m["data_file"]), "rb") as f:
            m["data"] = f.read()
    return msgs


def read_stats(outdir):
    try:
        with open(os.path.join(outdir, "stats.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


class SinkProcess:
    """A sink running as a child process (see spawn())."""

    def __init__(self, outdir, args, timeout=10):
        self.outdir = outdir
        os.makedirs(outdir, exist_ok=True)
        self.ready_file = os.path.join(outdir, "ready")
        try:
            os.unlink(self.ready_file)
        except FileNotFoundError:
            pass
        self.log = open(os.path.join(outdir, "sink.log"), "ab")
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", os.path.abspath(__file__),
             "--outdir", outdir, "--ready", self.ready_file] + args,
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + timeout * SCALE
        while not os.path.exists(self.ready_file):
            if self.proc.poll() is not None:
                raise RuntimeError("sink exited with %d; see %s/sink.log" %
                                   (self.proc.returncode, outdir))
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("sink not ready after %ds" % timeout)
            time.sleep(0.05)
        first = open(self.ready_file).read().split("\n")[0].split()
        self.host, self.port = first[0], int(first[1])

    def messages(self):
        return read_messages(self.outdir)

    def stats(self):
        return read_stats(self.outdir)

    def transcripts(self):
        return read_jsonl(os.path.join(self.outdir, "transcript.jsonl"))

    def alive(self):
        return self.proc.poll() is None

    def wait_idle(self, timeout=10):
        """Wait until no session is open and every ended one is in the
        transcript; True if so within timeout seconds (scaled)."""
        deadline = time.monotonic() + timeout * SCALE
        while time.monotonic() < deadline:
            st = self.stats()
            if st.get("active", 1) == 0 and \
                    len(self.transcripts()) >= st.get("connections", 0):
                return True
            time.sleep(0.05)
        return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


def spawn(outdir, host, port=0, cert=None, key=None, starttls=True,
          rules=(), extra=(), timeout=10):
    """Start a sink on host:port (0: any free port); returns SinkProcess
    with .host/.port.  extra: more command-line options as a list."""
    listen = "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (
        host, port)
    args = ["--listen", listen]
    if cert:
        args += ["--cert", cert, "--key", key]
    if not starttls:
        args += ["--no-starttls"]
    for r in rules:
        args += ["--rule", r]
    args += list(extra)
    return SinkProcess(outdir, args, timeout)


if __name__ == "__main__":
    main()
