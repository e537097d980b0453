"""certs - test certificates made at test time with the openssl CLI.

Python standard library + /usr/bin/openssl only.  Keys are EC P-256 unless
key="rsa" (RSA 2048).  Every object writes its files into the directory
given and never touches anything else.

    import certs
    root  = certs.CA(dir)                          # self-signed root CA
    inter = root.intermediate("Test Issuing CA")   # CA signed by root
    leaf  = inter.issue(["mx.example.test", "*.example.test"])
    old   = inter.issue(["mx.example.test"], expired=True)
    ss    = certs.self_signed(dir, ["mx.example.test"])
    bad   = certs.self_signed(dir, ["mx.example.test"], expired=True)

    leaf.crt    PEM of the certificate alone
    leaf.key    PEM private key (unencrypted)
    leaf.chain  PEM of the certificate followed by its issuers up to, not
                including, the root: what a server presents
    root.crt    the trust anchor to give a client as its CA file

    leaf.tlsa(3, 1, 1)   -> "3 1 1 <hex>"   TLSA RDATA in presentation form
    inter.tlsa(2, 1, 1)  -> "2 1 1 <hex>"   (DANE-TA on the issuing CA)
    certs.tlsa(path, u, s, m), certs.tlsa_data(path, s, m) -> hex

CA.issue(names, cn=None, days=365, expired=False, not_yet_valid=False,
         not_before=None, not_after=None, key="ec", name=None)
    names: DNS subjectAltNames (the first one is also the CN unless cn is
    given); expired: valid from 30 days ago to yesterday; not_yet_valid:
    from tomorrow; not_before/not_after: datetime.datetime (UTC) to set
    the validity exactly; name: base of the file names (default derived
    from the first name).  Wrong-name certificates are just certificates
    issued for another name.
self_signed(dir, names, ...) takes the same options.

Dates are set with `openssl ca -startdate/-enddate`, which OpenSSL 3.0
supports (its `x509` command cannot set a past notBefore).  Selector 0 is
the certificate's DER, selector 1 its SubjectPublicKeyInfo DER (both from
the openssl CLI); matching type 0 full, 1 SHA-256, 2 SHA-512.
"""

import datetime
import hashlib
import os
import re
import subprocess

OPENSSL = "/usr/bin/openssl"

_CA_CONF = """\
[ ca ]
default_ca = CA_default

[ CA_default ]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no
default_days = 365

[ policy_any ]
commonName = supplied
"""


def _run(*args, input=None):
    p = subprocess.run([OPENSSL] + [str(a) for a in args], input=input,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (
            " ".join(str(a) for a in args),
            p.stderr.decode(errors="replace").strip()))
    return p.stdout


def _newkey(path, key):
    if key == "rsa":
        _run("genpkey", "-algorithm", "RSA", "-pkeyopt",
             "rsa_keygen_bits:2048", "-out", path)
    else:
        _run("genpkey", "-algorithm", "EC", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-out", path)
    os.chmod(path, 0o600)


def _asn1(t):
    return t.strftime("%Y%m%d%H%M%SZ")


def _validity(days, expired, not_yet_valid, not_before, not_after):
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    if not_before is None and not_after is None:
        if expired:
            not_before = now - datetime.timedelta(days=30)
            not_after = now - datetime.timedelta(days=1)
        elif not_yet_valid:
            not_before = now + datetime.timedelta(days=1)
            not_after = now + datetime.timedelta(days=1 + days)
        else:
            not_before = now - datetime.timedelta(hours=1)
            not_after = now + datetime.timedelta(days=days)
    if not_before is None:
        not_before = now - datetime.timedelta(hours=1)
    if not_after is None:
        not_after = not_before + datetime.timedelta(days=days)
    return _asn1(not_before), _asn1(not_after)


def _safe(s):
    return re.sub(r"[^A-Za-z0-9.-]", "_", s).strip(".") or "cert"


def der(path, selector=0):
    """DER of the certificate (selector 0) or of its SPKI (selector 1)."""
    if selector == 0:
        return _run("x509", "-in", path, "-outform", "DER")
    if selector == 1:
        pem = _run("x509", "-in", path, "-noout", "-pubkey")
        return _run("pkey", "-pubin", "-outform", "DER", input=pem)
    raise ValueError("selector must be 0 or 1")


def tlsa_data(path, selector, mtype):
    """Hex of the TLSA certificate association data."""
    d = der(path, selector)
    if mtype == 0:
        return d.hex()
    if mtype == 1:
        return hashlib.sha256(d).hexdigest()
    if mtype == 2:
        return hashlib.sha512(d).hexdigest()
    raise ValueError("mtype must be 0, 1 or 2")


def tlsa(path, usage, selector, mtype):
    """TLSA RDATA in presentation form, "3 1 1 <hex>"."""
    return "%d %d %d %s" % (usage, selector, mtype,
                            tlsa_data(path, selector, mtype))


class Cert:
    """A certificate with its key; chain = cert + issuers below the root."""

    def __init__(self, dir, name, issuer=None):
        self.dir = dir
        self.name = name
        self.crt = os.path.join(dir, name + ".crt")
        self.key = os.path.join(dir, name + ".key")
        self.chain = os.path.join(dir, name + ".chain.pem")
        self.issuer = issuer

    def _write_chain(self):
        parts = [open(self.crt).read()]
        i = self.issuer
        while i is not None and i.issuer is not None:   # stop at the root
            parts.append(open(i.crt).read())
            i = i.issuer
        with open(self.chain, "w") as f:
            f.write("".join(p if p.endswith("\n") else p + "\n"
                            for p in parts))

    def tlsa(self, usage, selector, mtype):
        return tlsa(self.crt, usage, selector, mtype)

    def tlsa_data(self, selector, mtype):
        return tlsa_data(self.crt, selector, mtype)

    def subject(self):
        return _run("x509", "-in", self.crt, "-noout", "-subject").decode()

    def dates(self):
        """(notBefore, notAfter) as printed by openssl."""
        out = _run("x509", "-in", self.crt, "-noout", "-startdate",
                   "-enddate").decode().split("\n")
        return out[0].split("=", 1)[1], out[1].split("=", 1)[1]

    def __repr__(self):
        return "<Cert %s>" % self.crt


def _leaf_ext(path, names, ca=False, pathlen=None):
    with open(path, "w") as f:
        f.write("[ ext ]\n")
        if ca:
            bc = "critical,CA:TRUE"
            if pathlen is not None:
                bc += ",pathlen:%d" % pathlen
            f.write("basicConstraints = %s\n" % bc)
            f.write("keyUsage = critical,keyCertSign,cRLSign\n")
        else:
            f.write("basicConstraints = CA:FALSE\n")
            f.write("keyUsage = critical,digitalSignature,keyEncipherment\n")
            f.write("extendedKeyUsage = serverAuth\n")
        f.write("subjectKeyIdentifier = hash\n")
        f.write("authorityKeyIdentifier = keyid,issuer\n")
        if names:
            f.write("subjectAltName = %s\n" %
                    ",".join("DNS:" + n for n in names))


def _sign(cadir, issuer_crt, issuer_key, csr, out, ext, start, end,
          selfsign=False, subj=None):
    conf = os.path.join(cadir, "ca.cnf")
    args = ["ca", "-batch", "-config", conf, "-in", csr, "-out", out,
            "-startdate", start, "-enddate", end, "-extfile", ext,
            "-extensions", "ext", "-notext", "-md", "sha256",
            "-keyfile", issuer_key]
    if selfsign:
        args += ["-selfsign"]
    else:
        args += ["-cert", issuer_crt]
    if subj:
        args += ["-subj", subj]
    _run(*args)


def _cadir(dir, name):
    d = os.path.join(dir, name + ".ca")
    os.makedirs(os.path.join(d, "newcerts"), exist_ok=True)
    open(os.path.join(d, "index.txt"), "a").close()
    serial = os.path.join(d, "serial")
    if not os.path.exists(serial):
        with open(serial, "w") as f:
            f.write("%s\n" % os.urandom(8).hex().upper())
    with open(os.path.join(d, "ca.cnf"), "w") as f:
        f.write(_CA_CONF.format(dir=d))
    return d


def _subj(cn):
    return "/CN=" + cn.replace("/", "\\/")


class CA(Cert):
    """A certificate authority.  CA(dir) makes a self-signed root."""

    def __init__(self, dir, cn="danerelay Test Root CA", key="ec",
                 name=None, _issuer=None, days=3650):
        os.makedirs(dir, exist_ok=True)
        name = name or _safe(cn)
        Cert.__init__(self, dir, name, _issuer)
        self.cn = cn
        self.cadir = _cadir(dir, name)
        _newkey(self.key, key)
        if _issuer is None:
            _run("req", "-x509", "-new", "-key", self.key, "-subj", _subj(cn),
                 "-days", days, "-sha256",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                 "-out", self.crt)
        self._write_chain()

    def intermediate(self, cn="danerelay Test Issuing CA", key="ec",
                     name=None, **validity):
        """A CA signed by this one (pathlen 0)."""
        name = name or _safe(cn)
        ca = CA.__new__(CA)
        Cert.__init__(ca, self.dir, name, self)
        ca.cn = cn
        ca.cadir = _cadir(self.dir, name)
        _newkey(ca.key, key)
        csr = os.path.join(self.dir, name + ".csr")
        _run("req", "-new", "-key", ca.key, "-subj", _subj(cn), "-out", csr)
        ext = os.path.join(self.dir, name + ".ext")
        _leaf_ext(ext, None, ca=True, pathlen=0)
        start, end = _validity(validity.get("days", 3650),
                               validity.get("expired", False),
                               validity.get("not_yet_valid", False),
                               validity.get("not_before"),
                               validity.get("not_after"))
        _sign(self.cadir, self.crt, self.key, csr, ca.crt, ext, start, end)
        ca._write_chain()
        return ca

    def issue(self, names, cn=None, days=365, expired=False,
              not_yet_valid=False, not_before=None, not_after=None,
              key="ec", name=None):
        """A server (leaf) certificate for DNS names, signed by this CA."""
        if isinstance(names, str):
            names = [names]
        cn = cn or (names[0] if names else "leaf")
        base = name or _safe(cn)
        if expired:
            base += "-expired" if name is None else ""
        name = _unique(self.dir, base)
        leaf = Cert(self.dir, name, self)
        _newkey(leaf.key, key)
        csr = os.path.join(self.dir, name + ".csr")
        _run("req", "-new", "-key", leaf.key, "-subj", _subj(cn), "-out", csr)
        ext = os.path.join(self.dir, name + ".ext")
        _leaf_ext(ext, names)
        start, end = _validity(days, expired, not_yet_valid, not_before,
                               not_after)
        _sign(self.cadir, self.crt, self.key, csr, leaf.crt, ext, start, end)
        leaf._write_chain()
        return leaf


def _unique(dir, base):
    name, i = base, 1
    while os.path.exists(os.path.join(dir, name + ".crt")):
        i += 1
        name = "%s-%d" % (base, i)
    return name


def self_signed(dir, names, cn=None, days=365, expired=False,
                not_yet_valid=False, not_before=None, not_after=None,
                key="ec", name=None):
    """A self-signed leaf certificate (no CA): chain = the certificate."""
    os.makedirs(dir, exist_ok=True)
    if isinstance(names, str):
        names = [names]
    cn = cn or (names[0] if names else "self-signed")
    base = name or ("ss-" + _safe(cn) + ("-expired" if expired else ""))
    name = _unique(dir, base)
    c = Cert(dir, name, None)
    cadir = _cadir(dir, name)
    _newkey(c.key, key)
    csr = os.path.join(dir, name + ".csr")
    _run("req", "-new", "-key", c.key, "-subj", _subj(cn), "-out", csr)
    ext = os.path.join(dir, name + ".ext")
    _leaf_ext(ext, names)
    # A self-signed certificate has no other issuer key identifier.
    with open(ext) as f:
        text = f.read().replace("authorityKeyIdentifier = keyid,issuer\n", "")
    with open(ext, "w") as f:
        f.write(text)
    start, end = _validity(days, expired, not_yet_valid, not_before,
                           not_after)
    _sign(cadir, None, c.key, csr, c.crt, ext, start, end, selfsign=True)
    with open(c.chain, "w") as f:
        f.write(open(c.crt).read())
    return c


if __name__ == "__main__":
    # Self-test: python3 certs.py DIR
    import sys
    import tempfile
    d = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp()
    root = CA(d)
    inter = root.intermediate()
    leaf = inter.issue(["mx.example.test"])
    old = inter.issue(["mx.example.test"], expired=True)
    ss = self_signed(d, ["mx.example.test"])
    for c in (root, inter, leaf, old, ss):
        print(c.crt, c.dates(), c.tlsa(3, 1, 1)[:30])
    _run("verify", "-CAfile", root.crt, "-untrusted", inter.crt, leaf.crt)
    print("verify ok")
