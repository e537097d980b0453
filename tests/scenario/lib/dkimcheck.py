"""dkimcheck - an independent DKIM verifier for the scenario tests:
Debian's python3-dkim (dkimpy, the library behind its dkimverify), with
the key records looked up at the test's signed DNS world (the dnsrig's
NSD, which serves every zone of the world) instead of the system resolver.

    import dkimcheck
    dkimcheck.require()                  # skips the test without dkimpy
    res = dkimcheck.verify(raw, w.rig)   # one dict per DKIM-Signature:
    # [{"d": "signer.test", "s": "rsa1", "a": "rsa-sha256", "ok": True,
    #   "why": ""}, ...]
    kconf, table = dkimcheck.keygen_config(d)   # for `danerelay dkim`
    r = dkimcheck.cli(kconf, d, "keygen", "signer.test", "s1")
    dkimcheck.zone_records(text)         # the zone lines of
                                         # `danerelay dkim keygen|dns`

Runs under /usr/bin/python3 (the tests' interpreter), where Debian puts
python3-dkim, python3-dnspython and python3-nacl (Ed25519).
"""
import os
import re
import subprocess

import drtest


def require():
    try:
        import dkim  # noqa: F401
        import dns.message  # noqa: F401
        import nacl  # noqa: F401
    except ImportError as e:
        drtest.skip("python3-dkim (with python3-dnspython, python3-nacl) "
                    "is not installed: %s" % e)


def dnsfunc(rig):
    import dns.message
    import dns.query
    import dns.rdatatype

    def lookup(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        q = dns.message.make_query(name, dns.rdatatype.TXT)
        r = dns.query.udp(q, rig.ip, port=rig.port, timeout=timeout)
        for rrset in r.answer:
            if rrset.rdtype == dns.rdatatype.TXT:
                return b"".join(rrset[0].strings)
        return b""
    return lookup


def signatures(raw):
    """The tag dicts of the message's DKIM-Signature fields, in order."""
    import dkim.util
    head = raw.split(b"\r\n\r\n", 1)[0]
    fields = re.findall(rb"(?im)^dkim-signature:([^\r\n]*(?:\r\n[ \t]"
                        rb"[^\r\n]*)*)", head)
    return [dkim.util.parse_tag_value(re.sub(rb"\s+", b"", f))
            for f in fields]


def verify(raw, rig, tlsrpt=False):
    """tlsrpt="strict": a TLSRPT report (RFC 8460 §3), whose key record
    must say s=tlsrpt."""
    import dkim
    out = []
    look = dnsfunc(rig)
    for i, tags in enumerate(signatures(raw)):
        r = {"d": tags.get(b"d", b"").decode(),
             "s": tags.get(b"s", b"").decode(),
             "a": tags.get(b"a", b"").decode(), "ok": False, "why": ""}
        try:
            r["ok"] = bool(dkim.DKIM(raw, tlsrpt=tlsrpt).verify(
                idx=i, dnsfunc=look))
        except Exception as e:      # dkimpy raises for broken ones
            r["why"] = str(e)
        out.append(r)
    return out


def zone_records(text):
    """Zone file lines (not the ';' comments) of `danerelay dkim` output."""
    return [ln for ln in text.splitlines()
            if ln.strip() and not ln.startswith(";")]


def txt_strings(line):
    """The character-strings of one TXT zone line."""
    return re.findall(r'"([^"]*)"', line)


def keygen_config(d):
    """An empty key table d.dir/dkim.keys and a configuration for
    `danerelay dkim` before the world runs (the daemon's names files the
    DNS world writes at start): d's state_dir, spool_dir, user and that
    table.  Returns (its path, the table's path)."""
    import pwd
    table = os.path.join(d.dir, "dkim.keys")
    open(table, "w").close()
    os.chmod(table, 0o644)
    kconf = os.path.join(d.dir, "keygen.conf")
    with open(kconf, "w") as f:
        f.write("state_dir = %s\nspool_dir = %s\ndkim_key_table = %s\n" % (
            d.options["state_dir"], d.spool, table))
        if d.options.get("user"):
            f.write("user = %s\n" % d.options["user"])
    os.makedirs(d.options["state_dir"], exist_ok=True)
    if os.geteuid() == 0 and d.options.get("user"):
        pw = pwd.getpwnam(d.options["user"])
        os.chown(d.options["state_dir"], pw.pw_uid, pw.pw_gid)
    return kconf, table


def cli(kconf, d, *args):
    """`danerelay -c kconf dkim ARGS` -> CompletedProcess."""
    return subprocess.run([d.cli_binary, "-c", kconf, "dkim"] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
