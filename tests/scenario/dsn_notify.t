#!/usr/bin/python3
# timeout: 180
"""DSN (RFC 3461, RFC 3464) end to end in the signed DNS world (issue #17).

The relay advertises DSN, keeps NOTIFY, ORCPT, RET and ENVID in the
envelope (across a restart) and:
- passes them on to a next hop that offers DSN (MAIL ... RET= ENVID=,
  RCPT ... NOTIFY= ORCPT=, as sent) and then sends no DSN itself;
- for a next hop without DSN, follows NOTIFY itself - the matrix:
    NEVER                       nothing, not even for a failure
    SUCCESS                     "relayed" DSN for a delivery, nothing for
                                a failure
    FAILURE (and no NOTIFY)     failed DSN; RET=FULL returns the whole
                                message, RET=HDRS (and no RET) the headers
    SUCCESS,FAILURE             one DSN: Action relayed and Action failed
    DELAY (and no NOTIFY)       a delay warning; FAILURE alone: none
  Every DSN is parsed with Python's email module and checked field by
  field: Original-Envelope-Id and Original-Recipient decoded from xtext,
  Final-Recipient, Action, Status, Remote-MTA, the returned content.
"""
import email
import email.policy
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import drtest  # noqa: E402
from drtest import check  # noqa: E402
import world  # noqa: E402

SENDER = "sender@senders.test"
FAIL = "RCPT|fail-|0|550 5.1.1 no such user here"
SLOW = "RCPT|slow-|0|451 4.2.0 mailbox busy"

w = world.World()
senders = w.dest("senders.test", 11)
nodsn = w.dest("nodsn.test", 12, rules=[FAIL, SLOW])
withdsn = w.dest("dsn.test", 13, rules=[FAIL], extra=["--dsn"])
w.start()
d = w.daemon(min_backoff="1h", max_backoff="1h", delay_warning_time="4s",
             queue_lifetime="1d")


def send(rcpts, mail_params="", marker="x", envid=None):
    """rcpts: [(address, "NOTIFY=... ORCPT=...")] -> queue id."""
    data = ("From: <%s>\r\nTo: <%s>\r\nSubject: dsn %s\r\n"
            "Message-ID: <%s@dr-test>\r\n\r\nBODY-MARKER-%s\r\n" % (
                SENDER, rcpts[0][0], marker, marker, marker)).encode()
    if envid:
        mail_params += " ENVID=" + envid
    c = drtest.SMTP(d.host, d.port)
    c.expect("EHLO client.dr-test.example", 250)
    c.expect(("MAIL FROM:<%s> %s" % (SENDER, mail_params)).rstrip(), 250)
    for r, p in rcpts:
        c.expect(("RCPT TO:<%s> %s" % (r, p)).rstrip(), 250)
    code, text = c.data(data)
    c.expect("QUIT", 221)
    c.close()
    check(code == 250, "message %s accepted: %d %s" % (marker, code, text))
    return drtest.QUEUED_RE.search(text).group(1)


def dsns():
    """{Original-Envelope-Id: [parsed DSN, ...]} of what reached the
    sender's MX."""
    out = {}
    for m in senders.messages():
        if m["mail_from"] != "":
            continue
        msg = email.message_from_bytes(m["data"], policy=email.policy.default)
        info = {"msg": msg, "raw": m["data"], "rcpts": {}, "returned": None,
                "subject": str(msg["Subject"])}
        for part in msg.walk():
            ct = part.get_content_type()
            if ct == "message/delivery-status":
                blocks = part.get_payload()
                info["per_msg"] = blocks[0]
                for b in blocks[1:]:
                    info["rcpts"][str(b["Final-Recipient"])] = b
            elif ct in ("message/rfc822", "text/rfc822-headers"):
                info["returned"] = (ct, part)
        envid = str(info["per_msg"].get("Original-Envelope-Id", ""))
        out.setdefault(envid, []).append(info)
    return out


def field(block, name):
    v = block.get(name)
    return " ".join(str(v).split()) if v is not None else None


# ---- the messages -------------------------------------------------------
# ENVIDs in xtext: "+2B" is "+", decoded in the DSN
q = {}
q["never"] = send([("ok-never@nodsn.test", "NOTIFY=NEVER"),
                   ("fail-never@nodsn.test", "NOTIFY=NEVER")],
                  envid="E-never", marker="never")
q["succ"] = send([("ok-succ@nodsn.test",
                   "NOTIFY=SUCCESS ORCPT=rfc822;Orig+2Bsucc@x.test")],
                 mail_params="RET=HDRS", envid="E+2Bsucc", marker="succ")
q["succfail"] = send([("fail-succ@nodsn.test", "NOTIFY=SUCCESS")],
                     envid="E-succfail", marker="succfail")
q["full"] = send([("fail-full@nodsn.test",
                   "NOTIFY=FAILURE ORCPT=rfc822;fail-full@nodsn.test")],
                 mail_params="RET=FULL", envid="E-full", marker="full")
q["hdrs"] = send([("fail-hdrs@nodsn.test", "")], mail_params="RET=HDRS",
                 envid="E-hdrs", marker="hdrs")
q["combo"] = send([("ok-combo@nodsn.test", "NOTIFY=SUCCESS,FAILURE"),
                   ("fail-combo@nodsn.test", "NOTIFY=FAILURE,SUCCESS")],
                  envid="E-combo", marker="combo")
q["delay"] = send([("slow-delay@nodsn.test", "NOTIFY=DELAY")],
                  envid="E-delay", marker="delay")
q["nodelay"] = send([("slow-nodelay@nodsn.test", "NOTIFY=FAILURE")],
                    envid="E-nodelay", marker="nodelay")
q["dfltdelay"] = send([("slow-dflt@nodsn.test", "")], envid="E-dfltdelay",
                      marker="dfltdelay")
q["pass"] = send([("ok-pass@dsn.test",
                   "NOTIFY=SUCCESS,DELAY ORCPT=rfc822;ok-pass+2Bx@dsn.test"),
                  ("ok-plain@dsn.test", "")],
                 mail_params="RET=HDRS", envid="E+2Bpass", marker="pass")
q["passfail"] = send([("fail-pass@dsn.test", "NOTIFY=FAILURE")],
                     envid="E-passfail", marker="passfail")

# NOTIFY/RET/ENVID/ORCPT are in the spool: a restart before the delay
# warnings are due must not lose them (the NOTIFY=FAILURE one must stay
# without a warning)
try:
    env = d.read_env(q["nodelay"])
    check(env["rcpts"][0].get("notify") == "FAILURE",
          "rcpt-notify in the envelope: %s" % env)
except FileNotFoundError:
    drtest.log("envelope of %s still in the journal only", q["nodelay"])
d.stop()
d.start()

for r in ("ok-never", "ok-succ", "ok-combo", "ok-pass", "ok-plain"):
    dom = "dsn.test" if "pass" in r or "plain" in r else "nodsn.test"
    w.expect(d, dom, "sent", rcpt=r + "@" + dom, at="mx")
for r in ("fail-never", "fail-succ", "fail-full", "fail-hdrs", "fail-combo"):
    w.expect(d, "nodsn.test", "bounced", rcpt=r + "@nodsn.test")
w.expect(d, "dsn.test", "bounced", rcpt="fail-pass@dsn.test")

want = ["E+succ", "E-full", "E-hdrs", "E-combo", "E-delay", "E-dfltdelay",
        "E-passfail"]
drtest.wait_for(lambda: all(k in dsns() for k in want), 60,
                "the DSNs for %s" % want)
# the queue handled every final message and the delay warnings: anything
# unwanted had its chance to be made by now
drtest.wait_for(lambda: d.log_text().count("sender delay notification") >= 2,
                30, "the delay notifications")
got = dsns()
drtest.log("DSNs by ENVID: %s", sorted(got))

# -- nothing where NOTIFY says so
for k in ("E-never", "E-succfail", "E-nodelay", "E+pass"):
    check(k not in got, "no DSN for %s, got %d" % (k, len(got.get(k, []))))
for k in want:
    check(len(got.get(k, [])) == 1, "exactly one DSN for %s" % k)


def one(envid, rcpt):
    info = got[envid][0]
    b = info["rcpts"].get("rfc822; " + rcpt)
    check(b is not None, "%s: a block for %s in %s" % (
        envid, rcpt, list(info["rcpts"])))
    check(field(info["per_msg"], "Reporting-MTA") ==
          "dns; relay.dr-test.example", "%s: Reporting-MTA" % envid)
    return info, b


# -- SUCCESS at a next hop without DSN: "relayed"
info, b = one("E+succ", "ok-succ@nodsn.test")
check(field(b, "Action") == "relayed", "succ: Action %s" % field(b, "Action"))
check(field(b, "Status") == "2.0.0", "succ: Status %s" % field(b, "Status"))
check(field(b, "Original-Recipient") == "rfc822; Orig+succ@x.test",
      "succ: Original-Recipient decoded: %s" % field(b, "Original-Recipient"))
check(field(b, "Remote-MTA") == "dns; mx.nodsn.test",
      "succ: Remote-MTA %s" % field(b, "Remote-MTA"))
check(info["returned"] and info["returned"][0] == "text/rfc822-headers",
      "succ: headers returned")
check(len(info["rcpts"]) == 1, "succ: one recipient block")

# -- FAILURE with RET=FULL: the whole message comes back
info, b = one("E-full", "fail-full@nodsn.test")
check(field(b, "Action") == "failed" and field(b, "Status") == "5.1.1",
      "full: Action/Status %s/%s" % (field(b, "Action"), field(b, "Status")))
check(field(b, "Original-Recipient") == "rfc822; fail-full@nodsn.test",
      "full: Original-Recipient %s" % field(b, "Original-Recipient"))
check("550 5.1.1 no such user here" in (field(b, "Diagnostic-Code") or ""),
      "full: Diagnostic-Code %s" % field(b, "Diagnostic-Code"))
check(info["returned"] and info["returned"][0] == "message/rfc822",
      "full: message/rfc822 returned: %s" % (info["returned"],))
check(b"BODY-MARKER-full" in info["raw"], "full: the body came back")
check(info["subject"] == "Undelivered Mail Returned to Sender",
      "full: subject %s" % info["subject"])

# -- no NOTIFY, RET=HDRS: failure DSN with the headers only
info, b = one("E-hdrs", "fail-hdrs@nodsn.test")
check(field(b, "Action") == "failed", "hdrs: Action %s" % field(b, "Action"))
check(b.get("Original-Recipient") is None, "hdrs: no ORCPT, no field")
check(info["returned"] and info["returned"][0] == "text/rfc822-headers",
      "hdrs: headers returned")
check(b"BODY-MARKER-hdrs" not in info["raw"], "hdrs: the body stayed out")
check(b"Subject: dsn hdrs" in info["raw"], "hdrs: the headers are there")

# -- SUCCESS,FAILURE: one DSN with both
info, b = one("E-combo", "ok-combo@nodsn.test")
check(field(b, "Action") == "relayed", "combo: ok relayed")
info, b = one("E-combo", "fail-combo@nodsn.test")
check(field(b, "Action") == "failed", "combo: fail failed")
check(len(info["rcpts"]) == 2, "combo: two blocks")

# -- DELAY and the default warn; FAILURE alone does not
for envid, rcpt in (("E-delay", "slow-delay@nodsn.test"),
                    ("E-dfltdelay", "slow-dflt@nodsn.test")):
    info, b = one(envid, rcpt)
    check(field(b, "Action") == "delayed" and
          (field(b, "Status") or "").startswith("4."),
          "%s: delayed 4.x.x: %s %s" % (envid, field(b, "Action"),
                                          field(b, "Status")))
    check(b.get("Will-Retry-Until") is not None, "%s: Will-Retry-Until"
          % envid)

# -- a next hop with DSN got the parameters as sent, and reports itself
m = [x for x in withdsn.messages() if "ok-pass@dsn.test" in x["rcpts"]]
check(len(m) == 1, "the DSN next hop got the message once")
if m:
    mp = m[0]["mail_params"].split()
    check("RET=HDRS" in mp and "ENVID=E+2Bpass" in mp,
          "MAIL parameters passed on: %s" % mp)
    rp = m[0]["rcpt_params"]
    check(sorted(rp.get("ok-pass@dsn.test", "").split()) ==
          ["NOTIFY=SUCCESS,DELAY", "ORCPT=rfc822;ok-pass+2Bx@dsn.test"],
          "RCPT parameters passed on: %s" % rp)
    check(rp.get("ok-plain@dsn.test") == "",
          "no parameters made up for a recipient without them: %s" % rp)
# the failure there is ours to report (it was refused in our session)
info, b = one("E-passfail", "fail-pass@dsn.test")
check(field(b, "Action") == "failed", "passfail: failed")
# and the relay, next hop without DSN, was never sent DSN parameters
for x in nodsn.messages():
    check("NOTIFY" not in " ".join(x["rcpt_params"].values()) and
          "RET=" not in x["mail_params"] and "ENVID" not in x["mail_params"],
          "no DSN parameters to a server without DSN: %s %s" % (
              x["mail_params"], x["rcpt_params"]))

d.stop()
w.stop()
drtest.done()
