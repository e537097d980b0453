"""world - a mail world for delivery scenario tests: one API for the
signed DNS tree, the destinations' MX hosts (certificate, TLSA, STARTTLS,
sink rules), MTA-STS and TLSRPT records, the daemons wired to it, sending
and checking outcomes.

One signed DNS tree (dnsrig: NSD + ldns-signzone), a test PKI (a root CA
and an issuing intermediate), one sink per MX host on 127.A.B.n, all on
one SMTP port that the relay uses as smtp_port, and daemons wired to that
DNS (and to the PKI as ca_file).

    import world
    w = world.World()                       # skips if the tools are missing
    w.dest("ee.test", 11)                   # one DANE-EE MX, as before
    w.dest("two.test", mx=[                 # an MX list
        world.MX("mx1", 12, tlsa=["3 1 1 decoy"]),
        world.MX("mx2", 13, pref=20)])
    w.dest("sts.test", mx=[world.MX("mx", 14, cert="ca", tlsa=None)],
           secure=False, mta_sts=world.policy("enforce", ["mx.sts.test"]),
           tlsrpt="mailto:tlsrpt@sts.test")
    w.start()
    d = w.daemon(min_backoff="1h")          # drtest.Daemon, started
    w.send(d, ["user@ee.test", "user@two.test"])
    w.expect(d, "ee.test", "sent", auth="dane-ee", at="mx")
    w.expect(d, "two.test", "sent", at="mx2", never_contacted=())
    ...
    w.stop()                                # daemons, sinks, web, DNS
    world.wait_outcome(d, "u@retry.test")   # its first final log line

MX(label, n, ...): the host label.<domain> on 127.A.B.n with
    cert      "self" (self-signed for the host name, the default), "ca"
              (issued by the world's intermediate: the sink serves the
              chain), "expired" / "expired-ca", "wrong" (issued for
              another name), "untrusted" (an unrelated CA), a certs.Cert,
              or None (no certificate: no STARTTLS);
    chain     False: the sink serves the leaf alone (default True);
    tlsa      a list of TLSA specs for _port._tcp.<host>: "3 1 1" (of the
              host's certificate), "2 1 1" / "2 0 1" (of the issuing CA),
              "3 1 1 decoy" (of a certificate nobody serves), or a full
              "U S M HEX"; a single string is one spec; None or [] means
              no TLSA record.  Default ["3 1 1"];
    tlsa_bogus / tlsa_servfail   the TLSA RRset is served with a bad
              signature / its name SERVFAILs;
    starttls  False: the sink offers no STARTTLS;
    rules, extra  sink.py --rule and more arguments;
    pref      the MX preference (default 10, 20, ... in list order);
    publish   False: no MX, A or TLSA record for it (the test's records=
              have them, e.g. a README zone as written).
dest(domain, n=None, mx=None, secure=True, records=(), mta_sts=None,
    tlsrpt=None, bogus_mx=False, null_mx=False, sts_txt=None, ttl=None,
    ...): a zone with those
    MX hosts (n= and rules/tlsa/starttls/extra: the single-MX form of
    before), more records, an MTA-STS policy (policy() text, or a dict of
    nginx locations for a policy site that answers otherwise, e.g.
    {nginx.POLICY_PATH: "return 404;"}: the TXT record, its id in
    w.sts_id[domain], and the HTTPS site mta-sts.<domain> with a
    certificate of the world's CA), a TLSRPT rua.  sts_txt: the ids of
    the _mta-sts TXT records instead of the one made up ([] none, two
    ids two records; w.sts_id[domain] is the first); with mta_sts=None
    the records and mta-sts.<domain>'s address are published and the
    test makes the site itself (w.nginx().site(...)).  ttl: the zone's
    TTL (small for a zone the test changes with w.rig.update(domain,
    records), w.records[domain] being what dest() published).  Returns
    the first MX's sink; w.sinks[domain] is the first MX's sink,
    w.sink(domain, label) any.
restart_mx(domain, label, starttls=None, rules=None, cert=None): the
    MX's sink stopped and started again on the same address, with
    STARTTLS on or off, other sink rules and/or another certificate (a
    kind as for MX; its TLSA records stay as published; its record starts
    afresh in a new directory); stop_mx(domain, label): the MX's sink stopped (the host
    is down: connection refused).
daemon(name="d", start=True, **options): a drtest.Daemon wired to the
    rig (dns_config, trust_anchor_file, smtp_port, ca_file, https_port
    when MTA-STS is used); remembered for stop() and the end-of-test
    check.
nginx(): the world's HTTPS server for MTA-STS sites (nginx.Nginx, made
    on first use; started by start()).
send(d, rcpts, subject=None, sender=...): one message -> queue id.
outcomes(d) -> {recipient: [status lines, in order]}.
expect(d, dom, status, rcpt=None, auth=None, at=None, never_contacted=(),
    why=None, timeout=60, tls=None): wait for the first outcome of the
    recipient (default user@dom), check its status, "auth=AUTH", its
    reason (a regular expression, for deferred/bounced), that the message
    arrived at MX label at (exactly once, no other MX of the domain got
    it; tls=True/False: over TLS / in cleartext) or nowhere when status
    is not "sent", and that the MX labels in never_contacted saw no
    connection at all.  Returns the line.
At the end of the test (drtest.done(), or any exit) every daemon the
world started must still be running (unless stopped by the test) and
its log must hold no sanitizer report; all processes are stopped.
"""
import atexit
import os
import re

import drtest
import certs
import dnsrig
import sink


def policy(mode, mx, max_age=86400):
    """An RFC 8461 §3.2 policy text."""
    return ("version: STSv1\r\nmode: %s\r\n%smax_age: %d\r\n"
            % (mode, "".join("mx: %s\r\n" % m for m in mx), max_age))


class MX:
    def __init__(self, label, n, cert="self", chain=True, tlsa=("3 1 1",),
                 tlsa_bogus=False, tlsa_servfail=False, starttls=True,
                 rules=(), extra=(), pref=None, publish=True):
        self.label = label
        self.publish = publish
        self.n = n
        self.cert_kind = cert
        self.chain = chain
        if isinstance(tlsa, str):
            tlsa = [tlsa]
        self.tlsa = list(tlsa or [])
        self.tlsa_bogus = tlsa_bogus
        self.tlsa_servfail = tlsa_servfail
        self.starttls = starttls
        self.rules = list(rules)
        self.extra = list(extra)
        self.pref = pref
        self.host = None        # set by dest()
        self.ip = None
        self.cert = None
        self.sink = None


class World:
    def __init__(self):
        for tool in ("ldns-signzone", "nsd", "openssl"):
            if not drtest.which(tool):
                drtest.skip("%s not installed (scripts/install-deps --test)"
                            % tool)
        self.tmp = drtest.TMPDIR
        os.chmod(self.tmp, 0o755)
        self.pki = os.path.join(self.tmp, "pki")
        os.makedirs(self.pki, exist_ok=True)
        os.chmod(self.pki, 0o755)
        self.port = drtest.free_port(drtest.ip(10))
        self.rig = dnsrig.DnsRig(os.path.join(self.tmp, "dns"), drtest.ip(1),
                                 drtest.free_port(drtest.ip(1)))
        self.sinks = {}         # domain -> its first MX's sink
        self.mx = {}            # domain -> [MX]
        self.sts_id = {}        # domain -> its _mta-sts TXT id
        self.records = {}       # domain -> the records dest() published
        self.daemons = []
        self.web = None
        self._root = self._inter = self._other = None
        self._stopped = False
        atexit.register(self._atexit)
        drtest.at_done(self._check_daemons)

    # -- PKI
    @property
    def root(self):
        if self._root is None:
            self._root = certs.CA(self.pki, "World Test Root CA")
        return self._root

    @property
    def inter(self):
        if self._inter is None:
            self._inter = self.root.intermediate("World Test Issuing CA")
        return self._inter

    @property
    def other_root(self):
        if self._other is None:
            self._other = certs.CA(self.pki, "Unrelated Root CA",
                                   name="unrelated")
        return self._other

    def _cert(self, kind, host):
        if kind is None or isinstance(kind, certs.Cert):
            return kind
        if kind == "self":
            return certs.self_signed(self.pki, [host])
        if kind == "expired":
            return certs.self_signed(self.pki, [host], expired=True)
        if kind == "ca":
            return self.inter.issue([host])
        if kind == "expired-ca":
            return self.inter.issue([host], expired=True)
        if kind == "wrong":
            return self.inter.issue(["mail.elsewhere.test"])
        if kind == "untrusted":
            return self.other_root.issue([host])
        raise ValueError("cert kind %r" % (kind,))

    def _tlsa(self, spec, cert):
        f = spec.split()
        if len(f) == 4 and f[3] == "decoy":
            decoy = certs.self_signed(self.pki, ["decoy.world.test"])
            return decoy.tlsa(int(f[0]), int(f[1]), int(f[2]))
        if len(f) == 4:
            return spec
        usage, sel, mt = (int(x) for x in f)
        if usage in (0, 2):
            return self.inter.tlsa(usage, sel, mt)
        return cert.tlsa(usage, sel, mt)

    # -- the world
    def dest(self, domain, n=None, rules=(), secure=True, tlsa=True,
             starttls=True, extra=(), mx=None, records=(), mta_sts=None,
             tlsrpt=None, bogus_mx=False, null_mx=False, servfail=(),
             sts_txt=None, ttl=None):
        if mx is None:
            mx = [] if null_mx or n is None else [
                MX("mx", n, tlsa=["3 1 1"] if tlsa else None,
                   starttls=starttls, rules=rules, extra=extra)]
        recs = list(records)
        servfail = list(servfail)
        if null_mx:
            recs.append("@ MX 0 .")
        for i, m in enumerate(mx):
            m.host = "%s.%s" % (m.label, domain)
            m.ip = drtest.ip(m.n)
            m.cert = self._cert(m.cert_kind, m.host)
            line = "@ MX %d %s" % (m.pref or 10 * (i + 1), m.label)
            if m.publish:
                recs.append(dnsrig.Record(line, bogus=True) if bogus_mx
                            else line)
                recs.append("%s A %s" % (m.label, m.ip))
            owner = "_%d._tcp.%s" % (self.port, m.label)
            for spec in m.tlsa if m.publish else ():
                line = "%s TLSA %s" % (owner, self._tlsa(spec, m.cert))
                recs.append(dnsrig.Record(line, bogus=True) if m.tlsa_bogus
                            else line)
            if m.tlsa_servfail and m.publish:
                servfail.append(owner)
            crt = None
            if m.cert is not None:
                crt = m.cert.chain if m.chain else m.cert.crt
            m.sink = sink.spawn(
                os.path.join(self.tmp, "sink-%s" % m.host), m.ip, self.port,
                cert=crt, key=m.cert.key if m.cert else None,
                starttls=m.starttls and m.cert is not None, rules=m.rules,
                extra=m.extra)
        if mta_sts is not None or sts_txt is not None:
            if sts_txt is None:
                sts_txt = [re.sub(r"\W", "",
                                  str(abs(hash(str(mta_sts)))))[:20]]
            if sts_txt:
                self.sts_id[domain] = sts_txt[0]
            recs += ['_mta-sts TXT "v=STSv1; id=%s"' % i for i in sts_txt]
            recs.append("mta-sts A %s" % self._web().ip)
        if mta_sts is not None:
            c = self.root.issue(["mta-sts." + domain])
            if isinstance(mta_sts, dict):
                self.web.site("mta-sts." + domain, c.chain, c.key,
                              locations=mta_sts)
            else:
                self.web.site("mta-sts." + domain, c.chain, c.key,
                              policy=mta_sts)
        if tlsrpt is not None:
            recs.append('_smtp._tls TXT "v=TLSRPTv1; rua=%s"' % tlsrpt)
        self.rig.zone(domain, secure=secure, records=recs, servfail=servfail,
                      ttl=ttl)
        self.records[domain] = recs
        self.mx[domain] = mx
        if mx:
            self.sinks[domain] = mx[0].sink
            return mx[0].sink
        return None

    def _mx(self, domain, label):
        for m in self.mx[domain]:
            if m.label == label:
                return m
        raise KeyError("%s has no MX %s" % (domain, label))

    def sink(self, domain, label):
        return self._mx(domain, label).sink

    def restart_mx(self, domain, label, starttls=None, rules=None,
                   cert=None):
        m = self._mx(domain, label)
        m.sink.stop()
        if cert is not None:
            m.cert_kind = cert
            m.cert = self._cert(cert, m.host)
        if starttls is not None:
            m.starttls = starttls
        if rules is not None:
            m.rules = list(rules)
        m.restarts = getattr(m, "restarts", 0) + 1
        crt = None
        if m.cert is not None:
            crt = m.cert.chain if m.chain else m.cert.crt
        m.sink = sink.spawn(
            os.path.join(self.tmp, "sink-%s.%d" % (m.host, m.restarts)),
            m.ip, self.port, cert=crt, key=m.cert.key if m.cert else None,
            starttls=m.starttls and m.cert is not None, rules=m.rules,
            extra=m.extra)
        if self.mx[domain][0] is m:
            self.sinks[domain] = m.sink
        return m.sink

    def stop_mx(self, domain, label):
        self._mx(domain, label).sink.stop()

    def nginx(self):
        return self._web()

    def _web(self):
        if self.web is None:
            import nginx
            if not nginx.available():
                drtest.skip("nginx not installed (scripts/install-deps "
                            "--test)")
            self.web = nginx.Nginx(os.path.join(self.tmp, "nginx"),
                                   drtest.ip(5))
        return self.web

    def https_server(self, ip, port, handler, name):
        """An HTTPS server of the test's own (a TLSRPT report receiver)
        on ip:port, with a certificate of the world's root for name,
        answering with handler (an http.server request handler class) in
        a thread of its own -> the http.server.ThreadingHTTPServer; the
        test shuts it down."""
        import http.server
        import ssl
        import threading
        crt = self.root.issue([name])
        httpd = http.server.ThreadingHTTPServer((ip, port), handler)
        httpd.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt.chain, crt.key)
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        return httpd

    def start(self):
        self.rig.start()
        if self.web is not None:
            self.web.start()

    def daemon(self, name="d", start=True, **options):
        # (a dns_config of the test's own, e.g. slowdns's, is not
        # overwritten by the rig's: both are written to one default path)
        opts = dict(dns_config=options.get("dns_config") or
                    self.rig.unbound_conf(),
                    trust_anchor_file=self.rig.trust_anchor_file,
                    dnssec_check_name=self.rig.check_name,
                    smtp_port=self.port, smtp_connect_timeout="5s",
                    smtp_timeout="10s")
        if self._root is not None:
            opts["ca_file"] = self.root.crt
        if self.web is not None:
            opts.update(mta_sts="yes", https_port=self.web.port)
        opts.update(options)
        d = drtest.Daemon(name=name, **opts)
        self.daemons.append(d)
        if start:
            d.start()
        return d

    # -- mail
    def send(self, d, rcpts, subject=None, sender="sender@client.dr-test."
             "example", data=None):
        if isinstance(rcpts, str):
            rcpts = [rcpts]
        subject = subject or "to %s" % ", ".join(rcpts)
        if data is None:
            data = ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n"
                    "Message-ID: <%s@dr-test>\r\n\r\nHello %s.\r\n" % (
                        sender, rcpts[0], subject,
                        re.sub(r"[^\w.]", ".", subject), subject)).encode()
        c = drtest.SMTP(d.host, d.port)
        try:
            return c.sendmail(sender, rcpts, data)
        finally:
            c.close()

    OUTCOME = re.compile(r"to=<([^>]+)>, (?:relay=)?.*status=(sent|deferred|"
                         r"bounced|expired)[^\n]*")

    def outcomes(self, d):
        got = {}
        for m in self.OUTCOME.finditer(d.log_text()):
            got.setdefault(m.group(1), []).append(m.group(0))
        return got

    def expect(self, d, dom, status, rcpt=None, auth=None, at=None,
               never_contacted=(), why=None, timeout=60, tls=None):
        rcpt = rcpt or "user@" + dom
        line = drtest.wait_for(lambda: self.outcomes(d).get(rcpt, [None])[0],
                               timeout, "an outcome for %s" % rcpt)
        got = re.search(r"status=(\w+)", line).group(1)
        drtest.check(got == status, "%s: %s expected, log: %s"
                     % (rcpt, status, line))
        if auth is not None:
            drtest.check(", auth=%s," % auth in line or
                         ", auth=%s " % auth in line,
                         "%s: auth=%s expected: %s" % (rcpt, auth, line))
        if why is not None:
            m = re.search(r"status=\w+ \((.*)\)$", line)
            drtest.check(m is not None and re.search(why, m.group(1)),
                         "%s: %s because /%s/, log: %s"
                         % (rcpt, status, why, line))
        mine = {}
        for m in self.mx.get(dom, []):
            mine[m.label] = [x for x in m.sink.messages()
                             if rcpt in x.get("rcpts", [])]
        if status == "sent" and at is not None:
            drtest.check(len(mine.get(at, [])) == 1, "%s: exactly one "
                         "message at %s.%s, got %d" % (
                             rcpt, at, dom, len(mine.get(at, []))))
            if tls is not None and len(mine.get(at, [])) == 1:
                drtest.check(bool(mine[at][0]["tls"]) == tls,
                             "%s: arrived at %s %s" % (
                                 rcpt, at, "in cleartext" if tls else
                                 "over TLS"))
            others = [lb for lb, ms in mine.items() if lb != at and ms]
            drtest.check(not others, "%s: also arrived at %s" % (rcpt,
                                                                  others))
        elif status != "sent":
            got_at = [lb for lb, ms in mine.items() if ms]
            drtest.check(not got_at, "%s: %s, yet it arrived at %s"
                         % (rcpt, status, got_at))
        for lb in never_contacted:
            conns = self.sink(dom, lb).stats().get("connections", 0)
            drtest.check(conns == 0, "%s: %s.%s must never be contacted, "
                         "its sink saw %d connections" % (rcpt, lb, dom,
                                                          conns))
        return line

    # -- the end
    def _check_daemons(self):
        for d in self.daemons:
            if d.proc is not None and not d.stopped and not d.alive():
                drtest.check(False, "%s died during the test (exit %s)"
                             % (d.name, d.proc.returncode))
            d.check_sanitizers()

    def stop(self):
        if self._stopped:
            return
        self._stopped = True
        for d in self.daemons:
            if d.alive():
                d.stop()
        for ms in self.mx.values():
            for m in ms:
                m.sink.stop()
        if self.web is not None:
            self.web.stop()
        self.rig.stop()

    def _atexit(self):
        for d in self.daemons:
            if d.alive():
                d.kill9()
        for ms in self.mx.values():
            for m in ms:
                try:
                    m.sink.stop()
                except Exception:
                    pass


def outcome(d, rcpt):
    """The first "to=<rcpt>, relay=..., status=sent|deferred|bounced (...)"
    line in daemon d's log, or None."""
    m = re.search(r"to=<%s>, relay=\S+, .*status=(sent|deferred|bounced)"
                  r"[^\n]*" % re.escape(rcpt), d.log_text())
    return m.group(0) if m else None


def wait_outcome(d, rcpt, timeout=60):
    """outcome(), waiting up to timeout seconds (scaled once, by
    drtest.wait_for) for it."""
    drtest.wait_for(lambda: outcome(d, rcpt) is not None, timeout,
                    "an outcome for %s" % rcpt)
    return outcome(d, rcpt)
