#!/usr/bin/python3
# timeout: 180
"""DKIM-signed TLSRPT reports (RFC 8460 §3, issue #16): the report mail
is signed by the reporting domain (the domain of tlsrpt_from) with its
key table entry for the "tlsrpt" service; the record `danerelay dkim dns`
prints for it carries s=tlsrpt.  The report arrives signed and verifies
with python3-dkim in its strict TLSRPT mode (lib/dkimcheck.py), which
requires s=tlsrpt in the key record; a changed report fails.
"""
import datetime
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import dkimcheck  # noqa: E402
import world  # noqa: E402

dkimcheck.require()
# the report is of "today" (UTC): not across a midnight
_now = datetime.datetime.now(datetime.timezone.utc)
_left = 86400 - (_now.hour * 3600 + _now.minute * 60 + _now.second)
if _left < drtest.scaled(60):
    time.sleep(_left + 2)

w = world.World()
w.dest("ok.test", 11, tlsrpt="mailto:tlsrpt@reports.test")
reports = w.dest("reports.test", 12)
d = w.daemon(start=False, min_backoff="1h", tlsrpt="yes",
             tlsrpt_from="reports@rpt-signer.test")
kconf, table = dkimcheck.keygen_config(d)
r = dkimcheck.cli(kconf, d, "keygen", "rpt-signer.test", "tlsrpt")
drtest.check(r.returncode == 0, "keygen: %s" % r.stderr.strip())
# the key is for reports only
with open(table) as f:
    line = f.read().strip()
with open(table, "w") as f:
    f.write(line + " s=tlsrpt\n")
r = dkimcheck.cli(kconf, d, "dns", "rpt-signer.test")
records = dkimcheck.zone_records(r.stdout)
drtest.check(len(records) == 1 and "s=tlsrpt;" in records[0],
             "dkim dns: the record says s=tlsrpt: %r" % r.stdout)
w.dest("rpt-signer.test", records=records)
w.start()
d.write_config(dkim_key_table=table)
d.start()

# a session to report on: mail From: the reporting domain, which is not
# signed with its key for s=tlsrpt only
w.send(d, "user@ok.test", sender="a@rpt-signer.test",
       data=b"From: <a@rpt-signer.test>\r\nTo: <user@ok.test>\r\n"
       b"Subject: relayed\r\n\r\nHello.\r\n")
w.expect(d, "ok.test", "sent", at="mx")
got = w.sinks["ok.test"].messages()
drtest.check(len(got) == 1 and b"From: <a@rpt-signer.test>" in got[0]["data"]
             and not dkimcheck.signatures(got[0]["data"]),
             "relayed mail is not signed with a key for s=tlsrpt only")

day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
r = d.cli("tlsrpt", "send", "--date", day, timeout=120)
drtest.check(r.returncode == 0, "tlsrpt send: %s%s" % (r.stdout, r.stderr))


def report():
    return [m["data"] for m in reports.messages()
            if m["mail_from"] == "reports@rpt-signer.test"]


drtest.wait_for(lambda: report(), 30, "the report mail")
raw = report()[0]
res = dkimcheck.verify(raw, w.rig, tlsrpt="strict")
print("verifier: %r" % res, flush=True)
drtest.check(len(res) == 1 and res[0]["ok"] and
             res[0]["d"] == "rpt-signer.test" and res[0]["s"] == "tlsrpt",
             "the report arrives signed by rpt-signer.test and verifies "
             "(strict TLSRPT mode): %r" % res)
i = raw.rindex(b"\r\n\r\n") - 10
res = dkimcheck.verify(raw[:i] + b"X" + raw[i + 1:], w.rig, tlsrpt="strict")
drtest.check(res and not res[0]["ok"], "a changed report fails: %r" % res)
drtest.done()
