#!/usr/bin/python3
# timeout: 300
"""The daily TLSRPT run after midnight UTC, on a fake clock.

README and src/tlsrpt_sched.c promise: the daemon's report tick (one
minute after start, then hourly at a random minute 2..11 past the hour)
sends every past UTC day's reports, so yesterday's leave a few minutes
after 00:00 UTC, and a report covers the whole previous UTC day.

danerelayd runs under libfaketime (Debian's faketime package): its clock
starts at 23:50:00 UTC of today and runs SPEED times as fast as the real
one (timers, sleeps and poll waits included), so the wait for the first
tick after midnight takes well under a minute.  TZ is set 14 hours east
of UTC: a day taken from local time would be the wrong one.  The world
(lib/world.py): ok.test with a DANE MX and rua=mailto:tlsrpt@reports.test,
reports.test's DANE MX where the report arrives.

  1. a message to ok.test is delivered (and logged) before the fake
     midnight: one successful session on day D;
  2. the tick one minute after start (23:51) sends no report: D is not
     over;
  3. after midnight the daemon sends D's report by itself: its mail's
     Date and the log line that sent it lie between 00:00:00 and the
     last possible tick (00:11:59) of D+1; nothing is sent before; the
     JSON's date-range is D 00:00:00Z .. D 23:59:59Z with the one
     session, the attachment's file name says the same.
"""
import datetime
import email
import email.policy
import email.utils
import glob
import gzip
import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
import world  # noqa: E402

SPEED = 20
LIBS = glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1")
if not LIBS:
    drtest.skip("libfaketime not installed (scripts/install-deps --test "
                "installs faketime)")

w = world.World()
w.dest("ok.test", 11, tlsrpt="mailto:tlsrpt@reports.test")
reports = w.dest("reports.test", 12)
w.start()

UTC = datetime.timezone.utc
real_now = datetime.datetime.now(UTC)
D = real_now.date()
START = datetime.datetime.combine(D, datetime.time(23, 50), UTC)
MIDNIGHT = START + datetime.timedelta(minutes=10)
LAST_TICK = MIDNIGHT + datetime.timedelta(minutes=12)   # 00:11:59 at most
d = w.daemon(start=False, min_backoff="1h", tlsrpt="yes",
             # the daemon's own timeouts run SPEED times as fast too
             smtp_connect_timeout="%ds" % (5 * SPEED),
             smtp_timeout="%ds" % (10 * SPEED),
             tlsrpt_from="tlsrpt-noreply@relay.dr-test.example")
# (libfaketime reads FAKETIME's "@start" in the process's local time)
LOCAL = datetime.timezone(datetime.timedelta(hours=14))
d.env = {
    "LD_PRELOAD": LIBS[0],
    "FAKETIME": "@%s x%d" % (START.astimezone(LOCAL).strftime(
        "%Y-%m-%d %H:%M:%S"), SPEED),
    "FAKETIME_DONT_RESET": "1",
    "TZ": "Etc/GMT-14",     # LOCAL, UTC+14 all year
    # libfaketime comes before the sanitizer runtime in an ASan build
    "ASAN_OPTIONS": (os.environ.get("ASAN_OPTIONS", "") +
                     ":verify_asan_link_order=0").lstrip(":"),
}
d.start()

LOGTIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.\d{3}Z ", re.M)


def log_time(line_start):
    """The (fake) UTC time of the log line that begins at line_start."""
    m = LOGTIME.match(d.log_text(), line_start)
    return datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S") \
        .replace(tzinfo=UTC) if m else None


first = LOGTIME.search(d.log_text())
t0 = datetime.datetime.strptime(first.group(1), "%Y-%m-%dT%H:%M:%S") \
    .replace(tzinfo=UTC) if first else None
drtest.check(t0 is not None and START <= t0 < START +
             datetime.timedelta(minutes=1),
             "the daemon runs on the fake clock from 23:50 UTC: %s" % t0)

# 1. one session on day D, before the fake midnight
w.send(d, ["user@ok.test"])
line = w.expect(d, "ok.test", "sent", auth="dane-ee", at="mx")
text = d.log_text()
sent_at = log_time(text.rfind("\n", 0, text.index(line)) + 1)
drtest.check(sent_at is not None and sent_at < MIDNIGHT,
             "delivered before the fake midnight (at %s; if later the "
             "machine is too slow for this test's margin)" % sent_at)


def report_mails():
    return [m for m in reports.messages()
            if m["mail_from"] == "tlsrpt-noreply@relay.dr-test.example"]


# 3. after midnight: D's report, sent by the daemon's own schedule.  The
# last tick is at 00:11 fake, (22 min) / SPEED real after the start.
drtest.wait_for(lambda: report_mails(), 22 * 60 / SPEED + 30,
                "D's report mail after the fake midnight")
mails = report_mails()
drtest.check(len(mails) == 1, "one report mail: %d" % len(mails))
# every report the daemon built, and when (its fake clock)
built = [(log_time(m.start()), m.group(1)) for m in re.finditer(
    r"^\S+ \S+ info: tlsrpt: (\S+ \S+): report \S+ built", d.log_text(),
    re.M)]
drtest.check([b[1] for b in built] == ["%s ok.test" % D],
             "one report built, for ok.test on day %s: %s" % (D, built))
drtest.check(all(b[0] is not None and MIDNIGHT <= b[0] <= LAST_TICK
                 for b in built),
             "built after midnight, at the first tick of the new day (none "
             "at the 23:51 tick): %s" % built)
msg = email.message_from_bytes(mails[0]["data"],
                               policy=email.policy.default)
date = email.utils.parsedate_to_datetime(msg["Date"])
drtest.check(MIDNIGHT <= date <= LAST_TICK,
             "the report left after midnight, at the first tick of the new "
             "day: Date %s (midnight %s)" % (date, MIDNIGHT))
rep = None
for part in msg.walk():
    if part.get_content_type() == "application/tlsrpt+gzip":
        rep = json.loads(gzip.decompress(part.get_payload(decode=True)))
        fn = part.get_filename()
        start = int(datetime.datetime.combine(D, datetime.time(0),
                                              UTC).timestamp())
        drtest.check(fn == "relay.dr-test.example!ok.test!%d!%d.json.gz"
                     % (start, start + 86399), "file name of day D: %s" % fn)
drtest.check(rep is not None, "the mail has the gzipped JSON report")
if rep is not None:
    dr = rep.get("date-range", {})
    drtest.check(dr == {"start-datetime": "%sT00:00:00Z" % D,
                        "end-datetime": "%sT23:59:59Z" % D},
                 "the report covers the previous UTC day %s: %s" % (D, dr))
    pol = rep.get("policies", [{}])[0]
    drtest.check(pol.get("policy", {}).get("policy-domain") == "ok.test" and
                 pol.get("summary") == {
                     "total-successful-session-count": 1,
                     "total-failure-session-count": 0},
                 "the one session of day D: %s" % pol)
w.stop()
drtest.done()
