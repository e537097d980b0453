"""world - a small mail world for delivery scenario tests.

One signed DNS tree (dnsrig: NSD + ldns-signzone), DANE-EE destinations
each with its own sink on 127.A.B.n, all on one SMTP port that the relay
uses as smtp_port, and a daemon wired to that DNS.

    import world
    w = world.World()                       # skips if the tools are missing
    s = w.dest("retry.test", 11, rules=["RCPT|later@|1|451 4.3.0 later"])
    w.start()
    d = w.daemon(min_backoff="2s")          # drtest.Daemon, started
    ...
    w.stop()                                # daemons, sinks, DNS
    world.wait_outcome(d, "u@retry.test")   # its first final log line


dest() options: rules (sink.py --rule), secure (signed zone, default True),
tlsa (False: no TLSA record), starttls (False: the sink offers none),
extra (more sink.py arguments, e.g. ["--no-8bitmime"]).
"""
import os
import re

import drtest
import certs
import dnsrig
import sink


class World:
    def __init__(self):
        for tool in ("ldns-signzone", "nsd"):
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
        self.sinks = {}
        self.daemons = []

    def dest(self, domain, n, rules=(), secure=True, tlsa=True,
             starttls=True, extra=()):
        """A destination: zone with MX mx.<domain> -> 127.A.B.n, a
        self-signed certificate with its DANE-EE 3 1 1 record, a sink."""
        ip = drtest.ip(n)
        cert = certs.self_signed(self.pki, ["mx." + domain])
        records = ["@ MX 10 mx", "mx A %s" % ip]
        if tlsa:
            records.append("_%d._tcp.mx TLSA %s" % (self.port,
                                                    cert.tlsa(3, 1, 1)))
        self.rig.zone(domain, secure=secure, records=records)
        self.sinks[domain] = sink.spawn(
            os.path.join(self.tmp, "sink-" + domain), ip, self.port,
            cert=cert.chain, key=cert.key, starttls=starttls, rules=rules,
            extra=extra)
        return self.sinks[domain]

    def start(self):
        self.rig.start()

    def daemon(self, name="d", start=True, **options):
        opts = dict(dns_config=self.rig.unbound_conf(),
                    trust_anchor_file=self.rig.trust_anchor_file,
                    smtp_port=self.port, smtp_connect_timeout="5s",
                    smtp_timeout="10s")
        opts.update(options)
        d = drtest.Daemon(name=name, **opts)
        self.daemons.append(d)
        if start:
            d.start()
        return d

    def stop(self):
        for d in self.daemons:
            if d.alive():
                d.stop()
        for s in self.sinks.values():
            s.stop()
        self.rig.stop()


def outcome(d, rcpt):
    """The first "to=<rcpt>, relay=..., status=sent|deferred|bounced (...)"
    line in daemon d's log, or None."""
    m = re.search(r"to=<%s>, relay=\S+, .*status=(sent|deferred|bounced)"
                  r"[^\n]*" % re.escape(rcpt), d.log_text())
    return m.group(0) if m else None


def wait_outcome(d, rcpt, timeout=60):
    """outcome(), waiting up to timeout (scaled) seconds for it."""
    drtest.wait_for(lambda: outcome(d, rcpt) is not None,
                    drtest.scaled(timeout), "an outcome for %s" % rcpt)
    return outcome(d, rcpt)
