/*
 * test_smtp_parse.c - unit tests for src/smtp_parse.c: command lines,
 * HELO arguments, MAIL/RCPT paths and parameters, AUTH decoding and the
 * DATA scanner.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsn.h"
#include "smtp_parse.h"
#include "t.h"

static int
cmd(const char *text, enum smtp_verb *verb, char *arg, size_t arglen,
    int *code)
{
	char line[1024];
	struct smtp_cmd c;
	struct smtp_perr e = { 0, "" };
	size_t len = strlen(text);
	int r;

	memcpy(line, text, len + 1);
	r = smtp_parse_command(line, len, &c, &e);
	*verb = c.verb;
	snprintf(arg, arglen, "%s", c.arg);
	*code = r == 0 ? 0 : e.code;
	return r;
}

static void
test_commands(void)
{
	enum smtp_verb v;
	char arg[512], line[64];
	struct smtp_cmd c;
	struct smtp_perr e;
	int code;

	CHECK(cmd("EHLO client.example", &v, arg, sizeof(arg), &code) == 0);
	CHECK(v == CMD_EHLO);
	CHECK_STR(arg, "client.example");
	CHECK(cmd("ehlo   client.example  ", &v, arg, sizeof(arg), &code)
	    == 0);
	CHECK(v == CMD_EHLO);
	CHECK_STR(arg, "client.example");
	CHECK(cmd("HELO x", &v, arg, sizeof(arg), &code) == 0 &&
	    v == CMD_HELO);
	CHECK(cmd("MAIL FROM:<a@b.example>", &v, arg, sizeof(arg), &code)
	    == 0 && v == CMD_MAIL);
	CHECK_STR(arg, "FROM:<a@b.example>");
	CHECK(cmd("rcpt TO:<a@b.example>", &v, arg, sizeof(arg), &code) == 0
	    && v == CMD_RCPT);
	CHECK(cmd("DATA", &v, arg, sizeof(arg), &code) == 0 && v == CMD_DATA);
	CHECK(cmd("DATA x", &v, arg, sizeof(arg), &code) == -1 &&
	    code == 501);
	CHECK(cmd("RSET", &v, arg, sizeof(arg), &code) == 0 && v == CMD_RSET);
	CHECK(cmd("RSET now", &v, arg, sizeof(arg), &code) == -1 &&
	    code == 501);
	CHECK(cmd("NOOP", &v, arg, sizeof(arg), &code) == 0 && v == CMD_NOOP);
	CHECK(cmd("NOOP anything", &v, arg, sizeof(arg), &code) == 0 &&
	    v == CMD_NOOP);
	CHECK(cmd("QUIT", &v, arg, sizeof(arg), &code) == 0 && v == CMD_QUIT);
	CHECK(cmd("VRFY postmaster", &v, arg, sizeof(arg), &code) == 0 &&
	    v == CMD_VRFY);
	CHECK(cmd("EXPN list", &v, arg, sizeof(arg), &code) == 0 &&
	    v == CMD_EXPN);
	CHECK(cmd("HELP", &v, arg, sizeof(arg), &code) == 0 && v == CMD_HELP);
	CHECK(cmd("STARTTLS", &v, arg, sizeof(arg), &code) == 0 &&
	    v == CMD_STARTTLS);
	CHECK(cmd("STARTTLS now", &v, arg, sizeof(arg), &code) == -1);
	CHECK(cmd("AUTH PLAIN AGJvYgBzZWNyZXQ=", &v, arg, sizeof(arg),
	    &code) == 0 && v == CMD_AUTH);
	CHECK_STR(arg, "PLAIN AGJvYgBzZWNyZXQ=");
	CHECK(cmd("AUTH", &v, arg, sizeof(arg), &code) == -1 && code == 501);
	CHECK(cmd("EHLO", &v, arg, sizeof(arg), &code) == -1 && code == 501);
	CHECK(cmd("MAIL", &v, arg, sizeof(arg), &code) == -1 && code == 501);
	CHECK(cmd("BDAT 100 LAST", &v, arg, sizeof(arg), &code) == 0 &&
	    v == CMD_UNKNOWN);
	CHECK(cmd("MAILFROM:<a@b>", &v, arg, sizeof(arg), &code) == 0 &&
	    v == CMD_UNKNOWN);
	CHECK(cmd("GET / HTTP/1.1", &v, arg, sizeof(arg), &code) == 0 &&
	    v == CMD_HTTP);
	CHECK(cmd("POST /x HTTP/1.1", &v, arg, sizeof(arg), &code) == 0 &&
	    v == CMD_HTTP);
	CHECK(cmd("CONNECT host:25 HTTP/1.1", &v, arg, sizeof(arg), &code)
	    == 0 && v == CMD_HTTP);
	CHECK(cmd("", &v, arg, sizeof(arg), &code) == -1 && code == 500);
	CHECK(cmd("   ", &v, arg, sizeof(arg), &code) == -1 && code == 500);
	CHECK(cmd("NOOP \r", &v, arg, sizeof(arg), &code) == -1 &&
	    code == 500);
	CHECK(cmd("NO\x01OP", &v, arg, sizeof(arg), &code) == -1 &&
	    code == 500);
	CHECK(cmd("NOOP\x7f", &v, arg, sizeof(arg), &code) == -1 &&
	    code == 500);

	/* NUL byte inside the line: len != strlen */
	memcpy(line, "NOOP\0x", 7);
	CHECK(smtp_parse_command(line, 6, &c, &e) == -1 && e.code == 500);
	CHECK(strstr(e.text, "NUL") != NULL);
	CHECK(strncmp(e.text, "5.5.2 ", 6) == 0);

	CHECK_STR(smtp_verb_name(CMD_STARTTLS), "STARTTLS");
}

static void
test_helo(void)
{
	struct smtp_perr e;
	char big[300];

	CHECK(smtp_parse_helo("mail.example.org", &e) == 0);
	CHECK(smtp_parse_helo("localhost", &e) == 0);
	CHECK(smtp_parse_helo("MY_PC", &e) == 0);
	CHECK(smtp_parse_helo("[192.0.2.1]", &e) == 0);
	CHECK(smtp_parse_helo("[IPv6:2001:db8::1]", &e) == 0);
	CHECK(smtp_parse_helo("", &e) == -1 && e.code == 501);
	CHECK(smtp_parse_helo("a b", &e) == -1 && e.code == 501);
	CHECK(smtp_parse_helo("a(b)", &e) == -1);
	CHECK(smtp_parse_helo("[300.1.1.1]", &e) == -1);
	CHECK(smtp_parse_helo("[192.0.2.1", &e) == -1);
	CHECK(smtp_parse_helo("h\xc3\xa9llo", &e) == -1);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CHECK(smtp_parse_helo(big, &e) == -1 && e.code == 501);
}

static int
mail(const char *arg, struct smtp_mail *m, int *code)
{
	struct smtp_perr e = { 0, "" };
	int r = smtp_parse_mail(arg, m, &e);

	*code = r == 0 ? 0 : e.code;
	if (r == -1 && (strlen(e.text) < 6 || e.text[1] != '.'))
		fprintf(stderr, "bad error text: %s\n", e.text);
	return r;
}

static int
rcpt(const char *arg, int utf8, struct smtp_rcpt *r, int *code)
{
	struct smtp_perr e = { 0, "" };
	int ret = smtp_parse_rcpt(arg, utf8, r, &e);

	*code = ret == 0 ? 0 : e.code;
	return ret;
}

static void
test_paths(void)
{
	struct smtp_mail m;
	struct smtp_rcpt r;
	char big[400], *p;
	int code;

	CHECK(mail("FROM:<alice@example.org>", &m, &code) == 0);
	CHECK_STR(m.addr, "alice@example.org");
	CHECK(mail("from:<alice@example.org>", &m, &code) == 0);
	CHECK(mail("FROM: <alice@example.org>", &m, &code) == 0);
	CHECK_STR(m.addr, "alice@example.org");
	CHECK(mail("FROM:<>", &m, &code) == 0);
	CHECK_STR(m.addr, "");
	CHECK(mail("FROM:<first.last+tag@sub.example.org>", &m, &code) == 0);
	CHECK_STR(m.addr, "first.last+tag@sub.example.org");
	/* quoted local part kept as written */
	CHECK(mail("FROM:<\"john doe\"@example.org>", &m, &code) == 0);
	CHECK_STR(m.addr, "\"john doe\"@example.org");
	CHECK(mail("FROM:<\"a\\\"b\"@example.org>", &m, &code) == 0);
	CHECK_STR(m.addr, "\"a\\\"b\"@example.org");
	CHECK(mail("FROM:<\"unterminated@example.org>", &m, &code) == -1);
	/* source route dropped */
	CHECK(mail("FROM:<@relay.example,@b.example:user@example.org>", &m,
	    &code) == 0);
	CHECK_STR(m.addr, "user@example.org");
	CHECK(mail("FROM:<@relay.example:user@example.org>", &m, &code) == 0);
	CHECK_STR(m.addr, "user@example.org");
	CHECK(mail("FROM:<@:user@example.org>", &m, &code) == -1);
	CHECK(mail("FROM:<@relay.example;user@example.org>", &m, &code) ==
	    -1);
	/* address literals */
	CHECK(mail("FROM:<u@[192.0.2.1]>", &m, &code) == 0);
	CHECK_STR(m.addr, "u@[192.0.2.1]");
	CHECK(mail("FROM:<u@[IPv6:2001:db8::1]>", &m, &code) == 0);
	CHECK(mail("FROM:<u@[2001:db8::1]>", &m, &code) == -1);
	CHECK(mail("FROM:<u@[tag:x]>", &m, &code) == -1);
	/* bad syntax */
	CHECK(mail("FROM:alice@example.org", &m, &code) == -1 &&
	    code == 501);
	CHECK(mail("TO:<alice@example.org>", &m, &code) == -1 &&
	    code == 501);
	CHECK(mail("FROM:<alice@example.org", &m, &code) == -1);
	CHECK(mail("FROM:<alice>", &m, &code) == -1 && code == 501);
	CHECK(mail("FROM:<postmaster>", &m, &code) == -1);
	CHECK(mail("FROM:<@example.org>", &m, &code) == -1);
	CHECK(mail("FROM:<a@>", &m, &code) == -1);
	CHECK(mail("FROM:<a..b@example.org>", &m, &code) == -1);
	CHECK(mail("FROM:<.a@example.org>", &m, &code) == -1);
	CHECK(mail("FROM:<a.@example.org>", &m, &code) == -1);
	CHECK(mail("FROM:<a b@example.org>", &m, &code) == -1);
	CHECK(mail("FROM:<a@-example.org>", &m, &code) == -1);
	CHECK(mail("FROM:<a@example-.org>", &m, &code) == -1);
	CHECK(mail("FROM:<a@example..org>", &m, &code) == -1);
	CHECK(mail("FROM:<a@example.org.>", &m, &code) == -1);
	CHECK(mail("FROM:<a@exa_mple.org>", &m, &code) == -1);
	CHECK(mail("FROM:<a@b@example.org>", &m, &code) == -1);
	CHECK(mail("FROM:<a@example.org>x", &m, &code) == -1);
	CHECK(mail("FROM:<a@example.org> <b@example.org>", &m, &code) == -1);
	CHECK(mail("FROM:<a\x01@example.org>", &m, &code) == -1);
	/* 63-octet labels are fine, 64 are not */
	snprintf(big, sizeof(big), "FROM:<a@%.*s.example>", 63,
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	CHECK(mail(big, &m, &code) == 0);
	snprintf(big, sizeof(big), "FROM:<a@%.*s.example>", 64,
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	CHECK(mail(big, &m, &code) == -1);
	/* overlong path: 254 octets of mailbox is the limit */
	strcpy(big, "FROM:<");
	p = big + strlen(big);
	memset(p, 'x', 240);
	p += 240;
	strcpy(p, "@example.org>");	/* 240 + 12 = 252: fine */
	CHECK(mail(big, &m, &code) == 0);
	CHECK(strlen(m.addr) == 252);
	strcpy(big, "FROM:<");
	p = big + strlen(big);
	memset(p, 'x', 250);
	p += 250;
	strcpy(p, "@example.org>");
	CHECK(mail(big, &m, &code) == -1 && code == 501);

	/* RCPT */
	CHECK(rcpt("TO:<bob@example.net>", 0, &r, &code) == 0);
	CHECK_STR(r.addr, "bob@example.net");
	CHECK(rcpt("To: <bob@example.net>", 0, &r, &code) == 0);
	CHECK(rcpt("TO:<postmaster>", 0, &r, &code) == 0);
	CHECK_STR(r.addr, "postmaster");
	CHECK(rcpt("TO:<PostMaster>", 0, &r, &code) == 0);
	CHECK(rcpt("TO:<>", 0, &r, &code) == -1 && code == 501);
	CHECK(rcpt("TO:<bob>", 0, &r, &code) == -1);
	CHECK(rcpt("TO:<p", 0, &r, &code) == -1);	/* found by fuzzing */
	CHECK(rcpt("TO:<a.", 0, &r, &code) == -1);
	CHECK(rcpt("TO:<\"a", 0, &r, &code) == -1);
	CHECK(rcpt("TO:<\"a\\", 0, &r, &code) == -1);
	CHECK(rcpt("TO:<a@b", 0, &r, &code) == -1);
	CHECK(rcpt("TO:<a@[1.2.3.4", 0, &r, &code) == -1);
	CHECK(rcpt("TO:<@a", 0, &r, &code) == -1);
	CHECK(rcpt("FROM:<bob@example.net>", 0, &r, &code) == -1);
	CHECK(rcpt("TO:<@hop.example:bob@example.net>", 0, &r, &code) == 0);
	CHECK_STR(r.addr, "bob@example.net");
}

static void
test_params(void)
{
	struct smtp_mail m;
	struct smtp_rcpt r;
	int code;

	CHECK(mail("FROM:<a@example.org> SIZE=12345", &m, &code) == 0);
	CHECK(m.has_size && m.size == 12345);
	CHECK(mail("FROM:<a@example.org> SIZE=", &m, &code) == -1);
	CHECK(mail("FROM:<a@example.org> SIZE=12x", &m, &code) == -1 &&
	    code == 501);
	CHECK(mail("FROM:<a@example.org> SIZE=99999999999999999999999", &m,
	    &code) == -1);
	CHECK(mail("FROM:<a@example.org> SIZE=1 SIZE=2", &m, &code) == -1);
	CHECK(mail("FROM:<a@example.org> BODY=8BITMIME", &m, &code) == 0);
	CHECK(m.body == BODY_8BITMIME);
	CHECK(mail("FROM:<a@example.org> body=7bit", &m, &code) == 0);
	CHECK(m.body == BODY_7BIT);
	CHECK(mail("FROM:<a@example.org> BODY=BINARYMIME", &m, &code) == -1
	    && code == 555);
	CHECK(mail("FROM:<a@example.org> SMTPUTF8", &m, &code) == 0);
	CHECK(m.smtputf8);
	CHECK(mail("FROM:<a@example.org> SMTPUTF8=yes", &m, &code) == -1);
	CHECK(mail("FROM:<a@example.org> RET=hdrs ENVID=QQ314159+2B", &m,
	    &code) == 0);
	CHECK_STR(m.ret, "HDRS");
	CHECK_STR(m.envid, "QQ314159+2B");
	CHECK(mail("FROM:<a@example.org> RET=ALL", &m, &code) == -1);
	CHECK(mail("FROM:<a@example.org> ENVID=a+zz", &m, &code) == -1);
	/* REQUIRETLS (RFC 8689 §4.1): no value, once */
	CHECK(mail("FROM:<a@example.org> REQUIRETLS", &m, &code) == 0 &&
	    m.requiretls == 1);
	CHECK(mail("FROM:<a@example.org> requiretls=yes", &m, &code) == -1 &&
	    code == 501);
	CHECK(mail("FROM:<a@example.org> REQUIRETLS REQUIRETLS", &m, &code)
	    == -1 && code == 501);
	CHECK(mail("FROM:<a@example.org>", &m, &code) == 0 &&
	    m.requiretls == 0);
	CHECK(mail("FROM:<a@example.org> AUTH=<>", &m, &code) == 0);
	CHECK(mail("FROM:<a@example.org> AUTH=alice+40example.org", &m,
	    &code) == 0);
	CHECK(mail("FROM:<a@example.org> XFOO=1", &m, &code) == -1 &&
	    code == 555);
	CHECK(mail("FROM:<a@example.org> XFOO", &m, &code) == -1 &&
	    code == 555);
	CHECK(mail("FROM:<a@example.org> =x", &m, &code) == -1 &&
	    code == 501);
	CHECK(mail("FROM:<a@example.org>  SIZE=1   BODY=8BITMIME", &m,
	    &code) == 0);
	CHECK(m.size == 1 && m.body == BODY_8BITMIME);

	/* non-ASCII only with SMTPUTF8, and only well-formed UTF-8 */
	CHECK(mail("FROM:<j\xc3\xb6rg@b\xc3\xbc" "cher.example>", &m, &code)
	    == -1 && code == 553);
	CHECK(mail("FROM:<j\xc3\xb6rg@b\xc3\xbc" "cher.example> SMTPUTF8",
	    &m, &code) == 0);
	CHECK_STR(m.addr, "j\xc3\xb6rg@b\xc3\xbc" "cher.example");
	CHECK(mail("FROM:<j\xc3rg@example.org> SMTPUTF8", &m, &code) == -1);
	CHECK(mail("FROM:<j\xc0\xafrg@example.org> SMTPUTF8", &m, &code) ==
	    -1);	/* overlong */
	CHECK(mail("FROM:<j\xed\xa0\x80rg@example.org> SMTPUTF8", &m, &code)
	    == -1);	/* surrogate */
	CHECK(rcpt("TO:<\xe7\x94\xa8\xe6\x88\xb7@example.org>", 0, &r, &code)
	    == -1 && code == 553);
	CHECK(rcpt("TO:<\xe7\x94\xa8\xe6\x88\xb7@example.org>", 1, &r, &code)
	    == 0);

	/* RCPT parameters (RFC 3461) */
	CHECK(rcpt("TO:<b@example.net> NOTIFY=SUCCESS,FAILURE", 0, &r, &code)
	    == 0);
	CHECK(r.notify == (DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE));
	CHECK(rcpt("TO:<b@example.net> NOTIFY=never", 0, &r, &code) == 0);
	CHECK(r.notify == DSN_NOTIFY_NEVER);
	CHECK(rcpt("TO:<b@example.net> NOTIFY=NEVER,DELAY", 0, &r, &code) ==
	    -1);
	CHECK(rcpt("TO:<b@example.net> NOTIFY=DELAY,DELAY", 0, &r, &code) ==
	    -1);
	CHECK(rcpt("TO:<b@example.net> NOTIFY=SUCCESS,", 0, &r, &code) == -1);
	CHECK(rcpt("TO:<b@example.net> NOTIFY=BOGUS", 0, &r, &code) == -1);
	CHECK(rcpt("TO:<b@example.net> ORCPT=rfc822;b+40example.net", 0, &r,
	    &code) == 0);
	CHECK_STR(r.orcpt, "rfc822;b+40example.net");
	CHECK(rcpt("TO:<b@example.net> ORCPT=rfc822", 0, &r, &code) == -1);
	CHECK(rcpt("TO:<b@example.net> ORCPT=;x", 0, &r, &code) == -1);
	CHECK(rcpt("TO:<b@example.net> SIZE=1", 0, &r, &code) == -1 &&
	    code == 555);
	CHECK(rcpt("TO:<b@example.net> ORCPT=rfc822;a ORCPT=rfc822;b", 0, &r,
	    &code) == -1 && code == 501);
	/* issue #17: xtext that decodes to a control byte, lower-case hex */
	CHECK(rcpt("TO:<b@example.net> ORCPT=rfc822;a+0Ab", 0, &r, &code) ==
	    -1 && code == 501);
	CHECK(rcpt("TO:<b@example.net> ORCPT=rfc822;a+2bb", 0, &r, &code) ==
	    -1 && code == 501);
	CHECK(rcpt("TO:<b@example.net> NOTIFY=,SUCCESS", 0, &r, &code) == -1);
	CHECK(rcpt("TO:<b@example.net> NOTIFY=SUCCESS,,DELAY", 0, &r, &code)
	    == -1);
	CHECK(rcpt("TO:<b@example.net> NOTIFY=delay,Failure", 0, &r, &code)
	    == 0 && r.notify == (DSN_NOTIFY_DELAY | DSN_NOTIFY_FAILURE));
	CHECK(rcpt("TO:<b@example.net> NOTIFY=SUCCESS NOTIFY=DELAY", 0, &r,
	    &code) == -1 && code == 501);
}

/* RFC 3461 §4: xtext, NOTIFY flags (dsn.c, issue #17). */
static void
test_dsn(void)
{
	char buf[64];
	unsigned f;

	CHECK(dsn_xtext_decode("a+2Bb+3Dc", buf, sizeof(buf)) == 5);
	CHECK_STR(buf, "a+b=c");
	CHECK(dsn_xtext_decode("a+2b", buf, sizeof(buf)) == -1);
	CHECK(dsn_xtext_decode("a+2", buf, sizeof(buf)) == -1);
	CHECK(dsn_xtext_decode("a=b", buf, sizeof(buf)) == -1);
	CHECK(dsn_xtext_decode("a b", buf, sizeof(buf)) == -1);
	CHECK(dsn_xtext_decode("+00", buf, sizeof(buf)) == -1);
	CHECK(dsn_xtext_decode("+7F", buf, sizeof(buf)) == -1);
	CHECK(dsn_xtext_decode("+20", buf, sizeof(buf)) == 1);
	CHECK(dsn_xtext_decode("abcd", buf, 4) == -1);	/* no room */
	CHECK(dsn_xtext_decode("abc", buf, 4) == 3);
	CHECK(dsn_xtext_encode("a+b=c d\x7f", buf, sizeof(buf)) > 0);
	CHECK_STR(buf, "a+2Bb+3Dc+20d+7F");
	CHECK(dsn_xtext_encode("a+", buf, 4) == -1);
	CHECK(dsn_xtext_encode("a+", buf, 5) == 4);
	CHECK(dsn_xtext_valid("x+41y") && !dsn_xtext_valid("x+4"));
	CHECK(dsn_envid_valid("Q+2B1") && !dsn_envid_valid(""));
	CHECK(dsn_orcpt_valid("rfc822;u+40example.org"));
	CHECK(!dsn_orcpt_valid("rfc 822;u"));
	CHECK(!dsn_orcpt_valid("rfc822;"));
	CHECK(dsn_notify_parse("NEVER", &f) == 0 && f == DSN_NOTIFY_NEVER);
	CHECK(dsn_notify_parse("never,success", &f) == -1);
	CHECK(dsn_notify_parse("", &f) == -1);
	CHECK(dsn_notify_parse("SUCCESS,DELAY", &f) == 0);
	CHECK_STR(dsn_notify_format(f, buf, sizeof(buf)), "SUCCESS,DELAY");
	CHECK_STR(dsn_notify_format(DSN_NOTIFY_NEVER, buf, sizeof(buf)),
	    "NEVER");
	CHECK_STR(dsn_notify_format(0, buf, sizeof(buf)), "");
	CHECK(dsn_notify_wants(0, DSN_NOTIFY_FAILURE));
	CHECK(dsn_notify_wants(0, DSN_NOTIFY_DELAY));
	CHECK(!dsn_notify_wants(0, DSN_NOTIFY_SUCCESS));
	CHECK(!dsn_notify_wants(DSN_NOTIFY_NEVER, DSN_NOTIFY_FAILURE));
	CHECK(!dsn_notify_wants(DSN_NOTIFY_SUCCESS, DSN_NOTIFY_FAILURE));
	CHECK(dsn_notify_wants(DSN_NOTIFY_SUCCESS, DSN_NOTIFY_SUCCESS));
}

static void
test_auth(void)
{
	char user[256], pass[1024], out[64];
	unsigned char raw[64];
	struct smtp_perr e;
	size_t n;

	/* "\0bob\0secret" */
	CHECK(smtp_auth_plain("AGJvYgBzZWNyZXQ=", user, sizeof(user), pass,
	    sizeof(pass), &e) == 0);
	CHECK_STR(user, "bob");
	CHECK_STR(pass, "secret");
	/* "bob\0bob\0secret": authzid = authcid is fine */
	CHECK(smtp_auth_plain("Ym9iAGJvYgBzZWNyZXQ=", user, sizeof(user),
	    pass, sizeof(pass), &e) == 0);
	CHECK_STR(user, "bob");
	/* "eve\0bob\0secret": acting as someone else is not */
	CHECK(smtp_auth_plain("ZXZlAGJvYgBzZWNyZXQ=", user, sizeof(user),
	    pass, sizeof(pass), &e) == -1 && e.code == 535);
	/* "bob\0secret": one NUL only */
	CHECK(smtp_auth_plain("Ym9iAHNlY3JldA==", user, sizeof(user), pass,
	    sizeof(pass), &e) == -1 && e.code == 535);
	/* "\0bob\0" empty password */
	CHECK(smtp_auth_plain("AGJvYgA=", user, sizeof(user), pass,
	    sizeof(pass), &e) == -1 && e.code == 535);
	/* "\0bob\0se\0cret": NUL inside the password */
	CHECK(smtp_auth_plain("AGJvYgBzZQBjcmV0", user, sizeof(user), pass,
	    sizeof(pass), &e) == -1);
	/* not base64 */
	CHECK(smtp_auth_plain("AGJvYgBzZWNyZXQ", user, sizeof(user), pass,
	    sizeof(pass), &e) == -1 && e.code == 501);
	CHECK(smtp_auth_plain("AGJv YgBzZWNyZXQ=", user, sizeof(user), pass,
	    sizeof(pass), &e) == -1 && e.code == 501);
	CHECK(smtp_auth_plain("AGJvYgBz=WNyZXQ=", user, sizeof(user), pass,
	    sizeof(pass), &e) == -1 && e.code == 501);
	CHECK(smtp_auth_plain("=", user, sizeof(user), pass, sizeof(pass),
	    &e) == -1);

	CHECK(smtp_auth_login("Ym9i", out, sizeof(out), &e) == 0);
	CHECK_STR(out, "bob");
	CHECK(smtp_auth_login("c2VjcmV0", out, sizeof(out), &e) == 0);
	CHECK_STR(out, "secret");
	CHECK(smtp_auth_login("=", out, sizeof(out), &e) == -1);
	CHECK(smtp_auth_login("!!!!", out, sizeof(out), &e) == -1 &&
	    e.code == 501);
	CHECK(smtp_auth_login("AA==", out, sizeof(out), &e) == -1);

	CHECK(smtp_b64_decode("", raw, sizeof(raw), &n) == -1);
	CHECK(smtp_b64_decode("=", raw, sizeof(raw), &n) == 0 && n == 0);
	CHECK(smtp_b64_decode("YQ==", raw, sizeof(raw), &n) == 0 && n == 1 &&
	    raw[0] == 'a');
	CHECK(smtp_b64_decode("YWI=", raw, sizeof(raw), &n) == 0 && n == 2);
	CHECK(smtp_b64_decode("YWJj", raw, sizeof(raw), &n) == 0 && n == 3);
	CHECK(smtp_b64_decode("Y===", raw, sizeof(raw), &n) == -1);
	CHECK(smtp_b64_decode("YWJjYWJj", raw, 6, &n) == -1); /* no room */
	CHECK(smtp_b64_decode("YWJjYWJj", raw, 7, &n) == 0 && n == 6);
}

/* Feed the scanner in pieces of `step` octets; collect output. */
static size_t
scan(const char *in, size_t len, size_t step, char *out, int *flags,
    int *done, size_t *consumed)
{
	struct smtp_data_scan ds;
	size_t i = 0, o = 0, used, olen, n;

	smtp_data_scan_init(&ds);
	while (i < len && !ds.done) {
		n = len - i < step ? len - i : step;
		used = smtp_data_scan(&ds, in + i, n, out + o, &olen);
		i += used;
		o += olen;
	}
	out[o] = '\0';
	*flags = ds.flags;
	*done = ds.done;
	*consumed = i;
	return o;
}

static void
test_data(void)
{
	static char out[8192], in[8192];
	size_t n, used, step;
	int flags, done, ok;

	/* plain, with the end marker and pipelined commands after it */
	{
		const char *m = "Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n";
		for (step = 1, ok = 1; step <= strlen(m); step++) {
			n = scan(m, strlen(m), step, out, &flags, &done,
			    &used);
			ok &= done && flags == 0 &&
			    strcmp(out, "Subject: x\r\n\r\nhello\r\n") == 0 &&
			    used == strlen(m) - 6 && n == strlen(out);
		}
		CHECK(ok);
	}
	/* empty message */
	n = scan(".\r\n", 3, 3, out, &flags, &done, &used);
	CHECK(done && n == 0 && flags == 0 && used == 3);
	/* dot-unstuffing, split at every position */
	{
		const char *m = "..leading dot\r\n...\r\n.x\r\na.b\r\n.\r\n";
		for (step = 1, ok = 1; step <= strlen(m); step++) {
			scan(m, strlen(m), step, out, &flags, &done, &used);
			ok &= done && flags == 0 && strcmp(out,
			    ".leading dot\r\n..\r\nx\r\na.b\r\n") == 0;
		}
		CHECK(ok);
	}
	/* not the end: ". " and ".." lines, "\r\n.\r" split */
	n = scan("a\r\n. \r\n..\r\n.\r\n", 15, 1, out, &flags, &done, &used);
	CHECK(done && strcmp(out, "a\r\n \r\n.\r\n") == 0);
	/* no end marker yet: not done, everything consumed, CR held back */
	n = scan("abc\r\n.\r", 7, 7, out, &flags, &done, &used);
	CHECK(!done && used == 7 && strcmp(out, "abc\r\n") == 0);

	/* bare LF inside: rejected, but the end is still CRLF.CRLF */
	n = scan("a\nb\r\n.\r\nNEXT", 12, 4, out, &flags, &done, &used);
	CHECK(done && (flags & DATA_BARE_NL) && used == 8);
	/* bare CR inside */
	scan("a\rb\r\n.\r\n", 8, 1, out, &flags, &done, &used);
	CHECK(done && (flags & DATA_BARE_NL));
	/* smuggling: <LF>.<LF> is not an end; the smuggled commands stay
	 * message text up to the real CRLF.CRLF */
	{
		const char *m = "a\r\n\n.\nMAIL FROM:<x@y>\r\n.\r\nQUIT\r\n";
		for (step = 1, ok = 1; step <= strlen(m); step++) {
			scan(m, strlen(m), step, out, &flags, &done, &used);
			ok &= done && (flags & DATA_BARE_NL) &&
			    used == strlen(m) - 6;
		}
		CHECK(ok);
	}
	/* <CR><LF>.<LF> */
	scan("a\r\n.\nMAIL\r\n.\r\n", 14, 14, out, &flags, &done, &used);
	CHECK(done && (flags & DATA_BARE_NL) && used == 14);
	/* <LF>.<CR><LF> */
	scan("a\n.\r\nMAIL\r\n.\r\nX", 15, 2, out, &flags, &done, &used);
	CHECK(done && (flags & DATA_BARE_NL) && used == 14);
	/* only a bare-LF speaker's end: never done */
	scan("a\n.\n", 5, 1, out, &flags, &done, &used);
	CHECK(!done && used == 5 && (flags & DATA_BARE_NL));
	/* <CR>.<CR><LF>: bare CR, not an end */
	scan("a\r.\r\nb\r\n.\r\n", 11, 1, out, &flags, &done, &used);
	CHECK(done && (flags & DATA_BARE_NL) && used == 11);
	/* ".\r" followed by something else */
	scan(".\rx\r\n.\r\n", 8, 1, out, &flags, &done, &used);
	CHECK(done && (flags & DATA_BARE_NL));

	/* 1000 octets with CRLF is fine, 1001 is not */
	memset(in, 'x', 998);
	memcpy(in + 998, "\r\n.\r\n", 5);
	scan(in, 1003, 100, out, &flags, &done, &used);
	CHECK(done && flags == 0);
	memset(in, 'x', 999);
	memcpy(in + 999, "\r\n.\r\n", 5);
	scan(in, 1004, 100, out, &flags, &done, &used);
	CHECK(done && flags == DATA_LONG_LINE);
	/* the count restarts on each line */
	memset(in, 'x', 998);
	memcpy(in + 998, "\r\n", 2);
	memset(in + 1000, 'y', 998);
	memcpy(in + 1998, "\r\n.\r\n", 5);
	scan(in, 2003, 7, out, &flags, &done, &used);
	CHECK(done && flags == 0);
}

int
main(void)
{
	test_commands();
	test_helo();
	test_paths();
	test_params();
	test_auth();
	test_dsn();
	test_data();
	return t_done();
}
