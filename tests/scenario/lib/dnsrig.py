"""dnsrig - a DNSSEC test world on loopback, built at test time.

Zones are signed with ldns-keygen/ldns-signzone (ldnsutils) and served by
one NSD process on ip:port.  libunbound reaches them through stub-zones
(the NS records' port 53 is not where NSD listens): NSD hosts the parent
and all child zones, answers DS queries from the parent side of each cut,
and libunbound builds the chain of trust from the trust anchor (the DS of
the top zone, "test." by default) down through the DS records.

    from dnsrig import DnsRig, Record, tlsa_from_cert, tlsa_record
    rig = DnsRig(tmpdir, "127.0.50.1", 5300)
    rig.zone("example.test", records=[
        "@ MX 10 mx",
        "mx A 127.0.50.5",
        "_25._tcp.mx TLSA " + tlsa_from_cert("ee.pem", 3, 1, 1),
        tlsa_record("mx", "ta.pem", 2, 0, 1),   # same owner, DANE-TA
        Record("bad A 127.0.50.6", bogus=True),   # RRSIG over other data
    ])
    rig.zone("plain.test", secure=False, records=["@ MX 10 mx", ...])
    rig.zone("wrongds.test", ds="wrong", records=[...])   # bogus zone
    rig.zone("old.test", expired=True, records=[...])     # bogus zone
    rig.zone("lame.test", records=[...],
             servfail=["_25._tcp.mx"],  # lookups at/below -> SERVFAIL
             timeout=["_25._tcp.mx2"])  # lookups at/below never answer
    rig.start()
    conf = rig.unbound_conf()      # for danerelay's dns_config
    ta = rig.trust_anchor_file     # for danerelay's trust_anchor_file
    text = rig.danerelay_conf()    # both, as danerelay.conf lines, and
                                   # dnssec_check_name = rig.check_name
                                   # ("test.": what the anchor covers)
    ...
    rig.update("plain.test", [...])   # new records while running (SIGHUP)
    rig.stop()                     # also at exit (atexit); NSD runs in
                                   # the test's process group, so a
                                   # runner killing the group stops it

Records are zone-file presentation lines.  The owner is required ("@" for
the apex, relative names are made absolute in the zone, absolute names end
with "."); TTL and class are optional.  Record(line, bogus=True) serves the
line with an RRSIG made over different data, so a validator reports it as
bogus; Record(line, bogus=True, signed_as="other line") chooses that data.
Record(line, unsigned=True) serves the line with no RRSIG at all.

Only the Python standard library and Debian tools (ldnsutils, nsd, openssl
for tlsa_from_cert, drill for the readiness probe) are used.  Nothing is
sent anywhere but the loopback address given.
"""

import atexit
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time

__all__ = ["DnsRig", "Record", "RigError", "tlsa_from_cert", "tlsa_rdata",
           "tlsa_record"]

# every wait of this helper is scaled once by the run's timeout factor
# (DR_TIMEOUT_SCALE, e.g. 2 under ASan), as drtest.scaled() does
SCALE = float(os.environ.get("DR_TIMEOUT_SCALE") or "1")

_RR_RE = re.compile(
    r"^\s*(?P<owner>\S+)\s+"
    r"(?:(?P<ttl1>\d+)\s+)?(?:(?P<cls>IN|in|In|iN)\s+)?(?:(?P<ttl2>\d+)\s+)?"
    r"(?P<type>[A-Za-z][A-Za-z0-9]*)\s+(?P<rdata>.*?)\s*$")


class RigError(Exception):
    pass


class Record:
    """One presentation line, optionally served with a broken signature."""

    def __init__(self, line, bogus=False, signed_as=None, unsigned=False):
        self.line = line
        self.bogus = bogus or signed_as is not None
        self.signed_as = signed_as
        self.unsigned = unsigned

    def __repr__(self):
        return "Record(%r, bogus=%r)" % (self.line, self.bogus)


class _RR:
    def __init__(self, owner, ttl, rtype, rdata):
        self.owner = owner          # absolute, lower case, trailing dot
        self.ttl = ttl
        self.type = rtype.upper()
        self.rdata = rdata

    def text(self):
        return "%s\t%d\tIN\t%s\t%s" % (self.owner, self.ttl, self.type,
                                       self.rdata)


def _absname(name, origin):
    """origin: 'example.test.'"""
    if name == "@":
        return origin
    if name.endswith("."):
        return name.lower()
    return (name + "." + origin).lower()


def _parse_rr(line, origin, default_ttl):
    m = _RR_RE.match(line)
    if not m:
        raise RigError("cannot parse record %r" % line)
    ttl = m.group("ttl1") or m.group("ttl2")
    return _RR(_absname(m.group("owner"), origin),
               int(ttl) if ttl else default_ttl, m.group("type"),
               m.group("rdata"))


def _mutate(rr):
    """Different rdata of the same type, for a signature that won't match."""
    t, d = rr.type, rr.rdata.split()
    if t == "A":
        o = d[0].split(".")
        o[3] = str((int(o[3]) + 1) % 256)
        return ".".join(o)
    if t == "AAAA":
        return "2001:db8::" + hashlib.sha256(rr.rdata.encode()).hexdigest()[:4]
    if t == "MX":
        return "%d %s" % ((int(d[0]) + 1) % 65536, " ".join(d[1:]))
    if t == "TLSA":
        hexd = "".join(d[3:])
        flip = "0" if hexd[-1:] != "0" else "1"
        return "%s %s %s %s" % (d[0], d[1], d[2], hexd[:-1] + flip)
    if t == "TXT":
        return rr.rdata + ' "x"'
    if t in ("CNAME", "NS", "PTR"):
        return "tampered." + d[0]
    raise RigError("bogus %s: give Record(..., signed_as=...)" % t)


def _run(argv, cwd=None):
    p = subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    if p.returncode != 0:
        raise RigError("%s failed (%d): %s" % (" ".join(argv), p.returncode,
                                               p.stderr.decode(errors="replace")))
    return p.stdout.decode()


def tlsa_rdata(der_cert, spki_der, usage, selector, mtype):
    """'u s m hex' from DER bytes."""
    data = der_cert if selector == 0 else spki_der
    if mtype == 0:
        h = data.hex()
    elif mtype == 1:
        h = hashlib.sha256(data).hexdigest()
    elif mtype == 2:
        h = hashlib.sha512(data).hexdigest()
    else:
        raise RigError("matching type %d" % mtype)
    return "%d %d %d %s" % (usage, selector, mtype, h)


def tlsa_from_cert(path, usage=3, selector=1, mtype=1):
    """TLSA rdata 'u s m hex' for the (first) certificate in a PEM file."""
    der = subprocess.run(["openssl", "x509", "-in", path, "-outform", "DER"],
                         stdout=subprocess.PIPE, check=True,
                         timeout=30).stdout
    spki = b""
    if selector == 1:
        pub = subprocess.run(["openssl", "x509", "-in", path, "-pubkey",
                              "-noout"], stdout=subprocess.PIPE, check=True,
                             timeout=30).stdout
        spki = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"],
                              input=pub, stdout=subprocess.PIPE, check=True,
                              timeout=30).stdout
    return tlsa_rdata(der, spki, usage, selector, mtype)


def tlsa_record(host, cert, usage=3, selector=1, mtype=1, port=25):
    """A TLSA record line for host's SMTP port, e.g.
    tlsa_record("mx.example.test.", "ee.pem") ->
    "_25._tcp.mx.example.test. TLSA 3 1 1 ab12..."  (host relative to the
    zone if it has no trailing dot, like any record line)."""
    return "_%d._tcp.%s TLSA %s" % (port, host,
                                    tlsa_from_cert(cert, usage, selector,
                                                   mtype))


class _Zone:
    def __init__(self, name, secure, records, ds, expired, servfail, nsec3,
                 ttl):
        self.name = name                # "example.test." (absolute)
        self.secure = secure
        self.records = records
        self.ds = ds                    # "auto", "wrong", None (no DS)
        self.expired = expired
        self.servfail = servfail
        self.nsec3 = nsec3
        self.ttl = ttl
        self.keybase = None
        self.dsline = None              # DS published in the parent
        self.children = []


class DnsRig:
    """A signed zone tree under `top` served by NSD on ip:port."""

    def __init__(self, tmpdir, ip, port=5300, top="test", dead_ip=None,
                 ttl=300):
        self.dir = os.path.join(tmpdir, "dnsrig")
        os.makedirs(self.dir, exist_ok=True)
        self.ip = ip
        self.port = int(port)
        self.top = top.rstrip(".").lower() + "."
        self.ttl = ttl
        # An address in the test's range where nothing listens on port 53:
        # delegations to it are lame (SERVFAIL).
        self.dead_ip = dead_ip or ".".join(ip.split(".")[:3] + ["253"])
        self.zones = {}
        self.proc = None
        # SOA serial unique to this rig: the readiness probe checks it, so
        # a stale server on the same address is never mistaken for ours
        self.serial = int(time.time()) % 400000000 * 10 + os.getpid() % 10
        self.trust_anchor_file = os.path.join(self.dir, "trust-anchor.ds")
        self.nsd_log = os.path.join(self.dir, "nsd.log")
        self.zone(self.top, secure=True, records=[])
        atexit.register(self.stop)

    # -- describing the world -------------------------------------------
    def zone(self, name, secure=True, records=(), ds="auto", expired=False,
             servfail=(), timeout=(), nsec3=False, ttl=None):
        """Add a zone (name under top).  secure=False: unsigned, no DS
        (insecure delegation).  ds="wrong": a DS that matches no key
        (bogus).  ds=None with secure=True: signed but no DS (an island,
        insecure to a validator).  expired=True: signatures expired.
        servfail: names in the zone delegated to a nameserver that does
        not exist (lookups at or below them SERVFAIL at once).  timeout:
        names delegated to an address where nothing answers (lookups
        hang until the client gives up).  A zone outside top (a reverse
        zone such as "2.0.192.in-addr.arpa") must be unsigned: it is
        served as it is, reached through its own stub-zone (and
        unbound's built-in local zone of that name is turned off).
        Returns the absolute zone name."""
        zname = name.rstrip(".").lower() + "."
        if zname != self.top and not zname.endswith("." + self.top) and \
                secure:
            raise RigError("zone %s is not under %s: only an unsigned "
                           "zone may be" % (zname, self.top))
        if self.proc is not None:
            raise RigError("add zones before start()")
        if zname in self.zones and zname != self.top:
            raise RigError("zone %s twice" % zname)
        z = _Zone(zname, secure, list(records), ds if secure else None,
                  expired, [_absname(n, zname) for n in servfail], nsec3,
                  ttl or self.ttl)
        z.timeout = [_absname(n, zname) for n in timeout]
        if zname == self.top and self.top in self.zones:
            old = self.zones[self.top]
            z.records = old.records + z.records
        self.zones[zname] = z
        return zname

    def add_records(self, zone, records):
        """More records for a zone already described (before start())."""
        self.zones[zone.rstrip(".").lower() + "."].records.extend(records)

    def update(self, zone, records, timeout=10):
        """Replace the records of a zone while NSD runs (after start()):
        the zone is re-signed with its own keys (the chain of trust and
        the trust anchor stay), NSD reloads it (SIGHUP), and update()
        returns once the new version is served.  Resolvers see it when
        their cached copies expire: give such a zone a small ttl=."""
        zname = zone.rstrip(".").lower() + "."
        z = self.zones[zname]
        if self.proc is None:
            raise RigError("update() needs a running rig")
        z.records = list(records)
        self.serial += 1            # the new SOA serial says it is served
        self._write_zone(z)
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout * SCALE
        while time.monotonic() < deadline:
            if self._probe(zname) == self.serial:
                return
            time.sleep(0.1)
        raise RigError("nsd did not serve the new %s: %s" % (
            zname, self._logtail()))

    # -- building --------------------------------------------------------
    def _parent_of(self, zname):
        best = None
        for other in self.zones:
            if other != zname and zname.endswith("." + other):
                if best is None or len(other) > len(best):
                    best = other
        return best

    def _keygen(self, z):
        out = _run(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k", z.name],
                   cwd=self.dir).strip()
        return os.path.join(self.dir, out)

    def _build(self):
        # parents before children: sort by label count
        order = sorted(self.zones.values(), key=lambda z: z.name.count("."))
        for z in order:
            z.children = []
        for z in order:
            if z.name != self.top and self._parent_of(z.name) is not None:
                self.zones[self._parent_of(z.name)].children.append(z)
        # keys and DS first (children's DS go into parents), deepest first
        for z in sorted(order, key=lambda z: -z.name.count(".")):
            if z.secure:
                z.keybase = self._keygen(z)
                with open(z.keybase + ".ds") as f:
                    real = f.read().split(";")[0].strip()
                if z.ds == "auto":
                    z.dsline = real
                elif z.ds == "wrong":
                    other = self._keygen(z)
                    with open(other + ".ds") as f:
                        z.dsline = f.read().split(";")[0].strip()
        for z in order:
            self._write_zone(z)
        top = self.zones[self.top]
        with open(top.keybase + ".ds") as f:
            anchor = f.read().split(";")[0].strip()
        with open(self.trust_anchor_file, "w") as f:
            f.write(anchor + "\n")

    def _ns_records(self, zname):
        ns = "ns." + zname
        return [_RR(zname, self.ttl, "NS", ns), _RR(ns, self.ttl, "A", self.ip)]

    def _write_zone(self, z):
        rrs = [_RR(z.name, z.ttl, "SOA",
                   "ns.%s hostmaster.%s %d 3600 600 86400 60" % (
                       z.name, z.name, self.serial))]
        rrs += self._ns_records(z.name)
        bogus, unsigned = [], []
        for r in z.records:
            line = r.line if isinstance(r, Record) else r
            rr = _parse_rr(line, z.name, z.ttl)
            if isinstance(r, Record) and r.unsigned:
                unsigned.append(rr)
                continue
            if isinstance(r, Record) and r.bogus:
                if r.signed_as:
                    fake = _parse_rr(r.signed_as, z.name, z.ttl)
                else:
                    fake = _RR(rr.owner, rr.ttl, rr.type, _mutate(rr))
                if (fake.owner, fake.type) != (rr.owner, rr.type):
                    raise RigError("signed_as must have owner and type of %r"
                                   % line)
                bogus.append((rr, fake))
                rrs.append(fake)
                continue
            rrs.append(rr)
        for c in z.children:
            rrs += self._ns_records(c.name)
            if c.dsline:
                m = _parse_rr(c.dsline, z.name, z.ttl)
                rrs.append(_RR(c.name, z.ttl, "DS", m.rdata))
        for name in z.servfail:
            # lame: the only nameserver's name does not exist (a proven
            # NXDOMAIN in the top zone), so resolvers SERVFAIL at once
            rrs.append(_RR(name, z.ttl, "NS", "no-such-ns.lame." + self.top))
        for name in z.timeout:
            # nameserver at an address where nothing answers: resolvers
            # retry for minutes (danerelay's guard timer ends it)
            ns = "ns." + name
            rrs += [_RR(name, z.ttl, "NS", ns), _RR(ns, z.ttl, "A",
                                                     self.dead_ip)]
        base = os.path.join(self.dir, z.name.rstrip(".") or "root")
        with open(base + ".zone", "w") as f:
            f.write("$ORIGIN %s\n$TTL %d\n" % (z.name, z.ttl))
            for rr in rrs:
                f.write(rr.text() + "\n")
        served = base + ".zone"
        if z.secure:
            argv = ["ldns-signzone", "-o", z.name, "-f", base + ".signed"]
            if z.nsec3:
                argv += ["-n", "-t", "0"]
            now = int(time.time())
            if z.expired:
                argv += ["-i", time.strftime("%Y%m%d%H%M%S",
                                             time.gmtime(now - 20 * 86400)),
                         "-e", time.strftime("%Y%m%d%H%M%S",
                                             time.gmtime(now - 10 * 86400))]
            else:
                argv += ["-i", time.strftime("%Y%m%d%H%M%S",
                                             time.gmtime(now - 3600)),
                         "-e", time.strftime("%Y%m%d%H%M%S",
                                             time.gmtime(now + 30 * 86400))]
            argv += [base + ".zone", z.keybase]
            _run(argv, cwd=self.dir)
            served = base + ".signed"
            if bogus or unsigned:
                fakes = [id(fake) for _, fake in bogus]
                keys = {(fake.owner, fake.type) for _, fake in bogus}
                # every member of a tampered RRset is served: the others
                # unchanged, the bogus ones with their real data
                serve = [rr for rr in rrs if (rr.owner, rr.type) in keys
                         and id(rr) not in fakes]
                serve += [real for real, _ in bogus] + unsigned
                self._tamper(served, keys, serve)
        z.file = served

    @staticmethod
    def _tamper(path, drop, serve):
        """Drop the signed RRs of the (owner, type) pairs in drop, keep
        their RRSIGs, append serve."""
        out = []
        with open(path) as f:
            for line in f:
                fields = line.split()
                if (len(fields) >= 4 and not line.startswith(";")
                        and (fields[0].lower(), fields[3].upper()) in drop):
                    continue
                out.append(line.rstrip("\n"))
        out += [rr.text() for rr in serve]
        with open(path, "w") as f:
            f.write("\n".join(out) + "\n")

    # -- running ---------------------------------------------------------
    def _nsd_conf(self):
        d = self.dir
        conf = os.path.join(d, "nsd.conf")
        lines = [
            "server:",
            "  ip-address: %s@%d" % (self.ip, self.port),
            "  port: %d" % self.port,
            '  username: ""',
            '  chroot: ""',
            "  zonesdir: \"%s\"" % d,
            '  database: ""',
            "  zonelistfile: \"%s/zone.list\"" % d,
            "  xfrdfile: \"%s/xfrd.state\"" % d,
            "  xfrdir: \"%s\"" % d,
            "  pidfile: \"%s/nsd.pid\"" % d,
            "  logfile: \"%s\"" % self.nsd_log,
            "  server-count: 1",
            "  verbosity: 2",
            "  hide-version: yes",
            "  do-ip6: no",
            "  reuseport: no",
            "  refuse-any: yes",
            "remote-control:",
            "  control-enable: no",
        ]
        for z in self.zones.values():
            lines += ["zone:", "  name: \"%s\"" % z.name,
                      "  zonefile: \"%s\"" % z.file]
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        return conf

    def _port_taken(self):
        """True if some socket holds UDP ip:port (no packet is sent)."""
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((self.ip, self.port))
            return False
        except OSError:
            return True
        finally:
            s.close()

    def _probe(self, zone=None):
        """The SOA serial of the top zone (or zone) at ip:port, or None."""
        if not self._port_taken():
            return None     # drill would retry for 15 s
        try:
            p = subprocess.run(["drill", "-p", str(self.port), "-Q",
                                "@" + self.ip, zone or self.top, "SOA"],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=5)
        except subprocess.TimeoutExpired:
            return None
        f = p.stdout.split()
        if p.returncode != 0 or len(f) < 3:
            return None
        try:
            return int(f[2])
        except ValueError:
            return None

    def start(self, timeout=20):
        if self.proc is not None:
            return
        for tool in ("ldns-keygen", "ldns-signzone", "nsd", "drill"):
            if shutil.which(tool) is None and \
                    not os.path.exists("/usr/sbin/" + tool):
                raise RigError("missing tool %s (apt-get install ldnsutils "
                               "nsd)" % tool)
        self._build()
        conf = self._nsd_conf()
        _run(["nsd-checkconf", conf])
        if self._port_taken():
            raise RigError("UDP %s@%d is in use" % (self.ip, self.port))
        nsd = shutil.which("nsd") or "/usr/sbin/nsd"
        # Same process group as the test, so a runner that kills the
        # test's group on timeout takes NSD with it.
        with open(self.nsd_log + ".stderr", "w") as errf:
            self.proc = subprocess.Popen([nsd, "-d", "-c", conf],
                                         stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL,
                                         stderr=errf)
        deadline = time.monotonic() + timeout * SCALE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RigError("nsd exited (%d): %s" % (
                    self.proc.returncode, self._logtail()))
            if self._probe() == self.serial:
                with open(self.nsd_log) as f:
                    bad = [l for l in f if " error: " in l]
                if bad:
                    self.stop()
                    raise RigError("nsd: zone errors:\n" + "".join(bad))
                return
            time.sleep(0.1)
        self.stop()
        raise RigError("nsd not answering on %s@%d: %s" % (
            self.ip, self.port, self._logtail()))

    def _logtail(self):
        text = ""
        for p in (self.nsd_log, self.nsd_log + ".stderr"):
            try:
                with open(p) as f:
                    text += f.read()[-2000:]
            except OSError:
                pass
        return text

    def stop(self):
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)  # nsd's main stops its children
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- for the resolver --------------------------------------------------
    def unbound_conf(self, path=None, extra=()):
        """Write a libunbound config for danerelay's dns_config and return
        its path: stub-zone for the top zone at ip@port, its trust anchor,
        test. unblocked, loopback allowed.  extra: more server: lines."""
        path = path or os.path.join(self.dir, "unbound.conf")
        lines = [
            "server:",
            "  do-not-query-localhost: no",
            '  local-zone: "%s" nodefault' % self.top,
            '  trust-anchor-file: "%s"' % self.trust_anchor_file,
            "  val-log-level: 2",
            "  do-ip6: no",
        ] + ["  " + e for e in extra]
        # zones outside the tree (reverse zones): unbound's default
        # local zones (RFC 6303: 127.in-addr.arpa, the TEST-NETs) off
        lines += ['  local-zone: "%s" nodefault' % z for z in self.zones
                  if z != self.top and not z.endswith("." + self.top)]
        # A stub for every zone, not only the top: the NS records say
        # port 53, NSD listens on self.port, and a validator that refetches
        # a zone's NS set (e.g. retrying after bogus data) must still reach
        # it.  Validation still walks DS records down from the anchor.
        for z in sorted(self.zones, key=lambda n: n.count(".")):
            lines += ["stub-zone:", '  name: "%s"' % z,
                      "  stub-addr: %s@%d" % (self.ip, self.port)]
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    @property
    def check_name(self):
        """danerelay's dnssec_check_name for this rig: the top zone, the
        one its trust anchor covers (the real root is out of reach)."""
        return self.top

    def danerelay_conf(self):
        """The danerelay.conf lines that point the daemon at this rig."""
        return ("dns_config = %s\ntrust_anchor_file = %s\n"
                "dnssec_check_name = %s\n" % (
                    self.unbound_conf(), self.trust_anchor_file,
                    self.check_name))
