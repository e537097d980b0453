/*
 * test_smtp_client.c - unit tests for src/smtp_reply.c (reply and EHLO
 * parsing), the parameter checks and the line reader of
 * src/smtp_client.c.  The session
 * itself is exercised against real TLS peers by
 * tests/scenario/smtp_client_*.t (through tests/unit/smtp_send_tool).
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "log.h"
#include "smtp_client.h"
#include "smtp_reply.h"
#include "t.h"
#include "tls.h"

/* Feed lines (NUL-separated list ending in an empty string). */
static enum smtp_reply_status
feed(struct smtp_reply *r, const char *const *lines, char *err, size_t len)
{
	enum smtp_reply_status st = REPLY_ERROR;

	smtp_reply_init(r);
	for (; *lines != NULL; lines++) {
		st = smtp_reply_feed(r, *lines, strlen(*lines), err, len);
		if (st != REPLY_MORE)
			break;
	}
	return st;
}

static void
test_single(void)
{
	struct smtp_reply r;
	char err[128], buf[256];
	const char *l1[] = { "250 2.1.5 Ok, recipient accepted", NULL };
	const char *l2[] = { "220", NULL };
	const char *l3[] = { "550 5.7.1", NULL };
	const char *l4[] = { "421 closing", NULL };

	CHECK(feed(&r, l1, err, sizeof(err)) == REPLY_DONE);
	CHECK(r.code == 250);
	CHECK_STR(r.enh, "2.1.5");
	CHECK(r.nlines == 1);
	CHECK_STR(r.lines[0], "Ok, recipient accepted");
	CHECK_STR(smtp_reply_summary(&r, buf, sizeof(buf)),
	    "250 2.1.5 Ok, recipient accepted");
	CHECK(SMTP_REPLY_CLASS(&r) == 2);
	smtp_reply_clear(&r);
	CHECK(r.nlines == 0 && r.lines == NULL);

	CHECK(feed(&r, l2, err, sizeof(err)) == REPLY_DONE);
	CHECK(r.code == 220 && r.enh[0] == '\0');
	smtp_reply_clear(&r);

	CHECK(feed(&r, l3, err, sizeof(err)) == REPLY_DONE);
	CHECK(r.code == 550);
	CHECK_STR(r.enh, "5.7.1");
	CHECK_STR(r.lines[0], "");
	smtp_reply_clear(&r);

	CHECK(feed(&r, l4, err, sizeof(err)) == REPLY_DONE);
	CHECK(r.code == 421 && r.enh[0] == '\0');
	CHECK_STR(r.lines[0], "closing");
	smtp_reply_clear(&r);
}

static void
test_enhanced(void)
{
	struct smtp_reply r;
	char err[128];
	/* class must match the first digit; bad forms stay text */
	const char *a[] = { "250 5.1.1 text", NULL };
	const char *b[] = { "451 4.3.0try", NULL };
	const char *c[] = { "550 5.1234.1 x", NULL };
	const char *d[] = { "552 5.3.4", NULL };
	const char *e[] = { "250 2.0.0 ", NULL };

	CHECK(feed(&r, a, err, sizeof(err)) == REPLY_DONE);
	CHECK(r.enh[0] == '\0');
	CHECK_STR(r.lines[0], "5.1.1 text");
	smtp_reply_clear(&r);
	CHECK(feed(&r, b, err, sizeof(err)) == REPLY_DONE);
	CHECK(r.enh[0] == '\0');
	smtp_reply_clear(&r);
	CHECK(feed(&r, c, err, sizeof(err)) == REPLY_DONE);
	CHECK(r.enh[0] == '\0');
	smtp_reply_clear(&r);
	CHECK(feed(&r, d, err, sizeof(err)) == REPLY_DONE);
	CHECK_STR(r.enh, "5.3.4");
	smtp_reply_clear(&r);
	CHECK(feed(&r, e, err, sizeof(err)) == REPLY_DONE);
	CHECK_STR(r.enh, "2.0.0");
	CHECK_STR(r.lines[0], "");
	smtp_reply_clear(&r);
}

static void
test_multi(void)
{
	struct smtp_reply r;
	char err[128], buf[64];
	const char *ok[] = { "250-mx.example.test hello", "250-PIPELINING",
	    "250-SIZE 10240000", "250-8bitmime", "250-SMTPUTF8",
	    "250-ENHANCEDSTATUSCODES", "250-STARTTLS", "250-AUTH PLAIN LOGIN",
	    "250-SIZEX", "250 DSN", NULL };
	const char *mixed[] = { "250-a", "251 b", NULL };
	struct smtp_ext x;

	CHECK(feed(&r, ok, err, sizeof(err)) == REPLY_DONE);
	CHECK(r.nlines == 10);
	CHECK(smtp_ehlo_parse(&r, &x) == 0);
	CHECK(x.flags & SMTP_EXT_PIPELINING);
	CHECK(x.flags & SMTP_EXT_SIZE);
	CHECK(x.size == 10240000ULL);
	CHECK(x.flags & SMTP_EXT_8BITMIME);
	CHECK(x.flags & SMTP_EXT_SMTPUTF8);
	CHECK(x.flags & SMTP_EXT_ENHANCEDSTATUSCODES);
	CHECK(x.flags & SMTP_EXT_STARTTLS);
	CHECK(x.flags & SMTP_EXT_AUTH);
	CHECK(x.flags & SMTP_EXT_DSN);
	CHECK(!(x.flags & SMTP_EXT_CHUNKING));
	/* summary is bounded */
	smtp_reply_summary(&r, buf, sizeof(buf));
	CHECK(strlen(buf) == sizeof(buf) - 1);
	CHECK(strncmp(buf, "250 mx.example.test hello PIPELINING", 36) == 0);
	smtp_reply_clear(&r);

	CHECK(feed(&r, mixed, err, sizeof(err)) == REPLY_ERROR);
	CHECK(strstr(err, "changed") != NULL);
	smtp_reply_clear(&r);
}

static void
test_ehlo_edge(void)
{
	struct smtp_reply r;
	struct smtp_ext x;
	char err[128];
	/* the greeting line is never a keyword */
	const char *a[] = { "250-STARTTLS", "250 SIZE", NULL };
	const char *b[] = { "250 only.greeting", NULL };
	const char *c[] = { "550 no", NULL };
	const char *d[] = { "250-x", "250 SIZE 99999999999999999999999", NULL };

	CHECK(feed(&r, a, err, sizeof(err)) == REPLY_DONE);
	CHECK(smtp_ehlo_parse(&r, &x) == 0);
	CHECK(!(x.flags & SMTP_EXT_STARTTLS));
	CHECK((x.flags & SMTP_EXT_SIZE) && x.size == 0);
	smtp_reply_clear(&r);
	CHECK(feed(&r, b, err, sizeof(err)) == REPLY_DONE);
	CHECK(smtp_ehlo_parse(&r, &x) == 0 && x.flags == 0);
	smtp_reply_clear(&r);
	CHECK(feed(&r, c, err, sizeof(err)) == REPLY_DONE);
	CHECK(smtp_ehlo_parse(&r, &x) == -1);
	smtp_reply_clear(&r);
	CHECK(feed(&r, d, err, sizeof(err)) == REPLY_DONE);
	CHECK(smtp_ehlo_parse(&r, &x) == 0 && x.size == 0);
	smtp_reply_clear(&r);
}

static void
test_malformed(void)
{
	struct smtp_reply r;
	char err[128], *big;
	size_t i;
	const char *bad[] = { "", "25", "2500 x", "25a ok", "abc", "650 x",
	    "150 x", "260 x", "250_x", "050 x", NULL };
	char ctl[] = "250 a\0b\x01" "c\x7f";

	for (i = 0; bad[i] != NULL; i++) {
		smtp_reply_init(&r);
		CHECK(smtp_reply_feed(&r, bad[i], strlen(bad[i]), err,
		    sizeof(err)) == REPLY_ERROR);
		CHECK(err[0] != '\0');
		smtp_reply_clear(&r);
	}

	/* control characters and NUL are replaced, not trusted */
	smtp_reply_init(&r);
	CHECK(smtp_reply_feed(&r, ctl, sizeof(ctl) - 1, err, sizeof(err)) ==
	    REPLY_DONE);
	CHECK_STR(r.lines[0], "a?b?c?");
	/* nothing more after the last line */
	CHECK(smtp_reply_feed(&r, "250 x", 5, err, sizeof(err)) ==
	    REPLY_ERROR);
	smtp_reply_clear(&r);

	/* line limit */
	big = malloc(SMTP_REPLY_LINE_MAX + 2);
	memset(big, 'x', SMTP_REPLY_LINE_MAX + 1);
	memcpy(big, "250 ", 4);
	smtp_reply_init(&r);
	CHECK(smtp_reply_feed(&r, big, SMTP_REPLY_LINE_MAX, err,
	    sizeof(err)) == REPLY_DONE);
	smtp_reply_clear(&r);
	CHECK(smtp_reply_feed(&r, big, SMTP_REPLY_LINE_MAX + 1, err,
	    sizeof(err)) == REPLY_ERROR);
	CHECK(strstr(err, "longer") != NULL);
	smtp_reply_clear(&r);
	free(big);

	/* line count limit */
	smtp_reply_init(&r);
	for (i = 0; i < SMTP_REPLY_LINES_MAX; i++)
		CHECK(smtp_reply_feed(&r, "250-x", 5, err, sizeof(err)) ==
		    REPLY_MORE);
	CHECK(smtp_reply_feed(&r, "250 x", 5, err, sizeof(err)) ==
	    REPLY_ERROR);
	CHECK(strstr(err, "lines") != NULL);
	smtp_reply_clear(&r);
}

static void
test_params(void)
{
	struct smtp_client_params p;
	struct smtp_client_cb cb = { NULL, NULL, NULL };
	struct event_base *base = event_base_new();
	struct sockaddr_in *sin;
	char err[256];
	const char *names[] = { "mx.example.test" };

	memset(&p, 0, sizeof(p));
	p.base = base;
	p.helo = "client.test";
	sin = (struct sockaddr_in *)&p.addr;
	sin->sin_family = AF_INET;
	sin->sin_port = htons(25);
	inet_pton(AF_INET, "127.0.70.250", &sin->sin_addr);
	p.addrlen = sizeof(*sin);

	/* TLS levels need a context; DANE needs records; WebPKI names */
	p.tls = SMTP_TLS_MAY;
	CHECK(smtp_client_connect(&p, &cb, NULL, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "SSL context") != NULL);
	p.ssl_ctx = tls_client_ctx_new(NULL, err, sizeof(err));
	CHECK(p.ssl_ctx != NULL);
	p.tls = SMTP_TLS_DANE;
	p.tlsa_base = "mx.example.test";
	CHECK(smtp_client_connect(&p, &cb, NULL, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "TLSA") != NULL);
	p.tls = SMTP_TLS_WEBPKI;
	CHECK(smtp_client_connect(&p, &cb, NULL, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "names") != NULL);
	p.names = names;
	p.nnames = 1;
	p.helo = "bad name";
	CHECK(smtp_client_connect(&p, &cb, NULL, err, sizeof(err)) == NULL);
	p.helo = "client.test";
	p.addr.ss_family = AF_UNIX;
	CHECK(smtp_client_connect(&p, &cb, NULL, err, sizeof(err)) == NULL);

	CHECK_STR(smtp_tls_mode_name(SMTP_TLS_DANE), "dane");
	CHECK_STR(smtp_fail_name(SMTP_FAIL_STARTTLS_MISSING),
	    "starttls-missing");
	CHECK_STR(tls_auth_name(TLS_AUTH_DANE_EE), "dane-ee");
	CHECK_STR(tls_verify_result_type(X509_V_ERR_CERT_HAS_EXPIRED),
	    "certificate-expired");
	CHECK_STR(tls_verify_result_type(X509_V_ERR_HOSTNAME_MISMATCH),
	    "certificate-host-mismatch");
	CHECK_STR(tls_verify_result_type(
	    X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT), "certificate-not-trusted");
	CHECK_STR(tls_verify_result_type(X509_V_ERR_DANE_NO_MATCH),
	    "validation-failure");
	CHECK(tls_verify_result_type(X509_V_OK) == NULL);
	CHECK(tls_client_ctx_new("/nonexistent/ca.pem", err,
	    sizeof(err)) == NULL);
	CHECK(strstr(err, "/nonexistent/ca.pem") != NULL);

	SSL_CTX_free(p.ssl_ctx);
	event_base_free(base);
}

/*
 * The client's line reader (smtp_client_read_reply()): a line of exactly
 * SMTP_REPLY_LINE_MAX bytes is legal however its CRLF arrives.  It once
 * failed ("reply line longer than 4096 bytes") when the CR came in one
 * read and the LF in the next (found by fuzz_smtp_client_read); one byte
 * more is refused whether or not the LF has arrived.
 */
static void
test_read_reply(void)
{
	struct evbuffer *in = evbuffer_new();
	struct smtp_reply acc, r;
	char line[SMTP_REPLY_LINE_MAX + 2], err[128];

	smtp_reply_init(&acc);
	memset(line, 'x', sizeof(line));
	memcpy(line, "250-", 4);
	evbuffer_add(in, line, SMTP_REPLY_LINE_MAX);
	evbuffer_add(in, "\r", 1);
	CHECK(smtp_client_read_reply(in, &acc, &r, err, sizeof(err)) ==
	    SMTP_READ_MORE);
	evbuffer_add(in, "\n250 2.0.0 ok\r", 15);
	CHECK(smtp_client_read_reply(in, &acc, &r, err, sizeof(err)) ==
	    SMTP_READ_MORE);
	evbuffer_add(in, "\n", 1);
	CHECK(smtp_client_read_reply(in, &acc, &r, err, sizeof(err)) ==
	    SMTP_READ_REPLY);
	CHECK(r.code == 250 && r.nlines == 2);
	CHECK(r.nlines == 2 && strlen(r.lines[0]) == SMTP_REPLY_LINE_MAX - 4);
	CHECK(evbuffer_get_length(in) == 0);
	smtp_reply_clear(&r);

	/* SMTP_REPLY_LINE_MAX + 1 bytes: refused before the LF comes ... */
	evbuffer_add(in, line, SMTP_REPLY_LINE_MAX + 1);
	CHECK(smtp_client_read_reply(in, &acc, &r, err, sizeof(err)) ==
	    SMTP_READ_LONG);
	CHECK(strstr(err, "longer than 4096") != NULL);
	evbuffer_drain(in, evbuffer_get_length(in));
	/* ... and with it */
	evbuffer_add(in, line, SMTP_REPLY_LINE_MAX + 1);
	evbuffer_add(in, "\r\n", 2);
	CHECK(smtp_client_read_reply(in, &acc, &r, err, sizeof(err)) ==
	    SMTP_READ_LONG);
	evbuffer_drain(in, evbuffer_get_length(in));
	/* bare LF ends a line too; a malformed reply is SMTP_READ_BAD */
	evbuffer_add(in, "250-a\n251 b\n", 12);
	CHECK(smtp_client_read_reply(in, &acc, &r, err, sizeof(err)) ==
	    SMTP_READ_BAD);
	CHECK(err[0] != '\0');
	smtp_reply_clear(&acc);
	evbuffer_free(in);
}

int
main(void)
{
	log_init("test_smtp_client", 1, 0);
	test_single();
	test_enhanced();
	test_multi();
	test_ehlo_edge();
	test_malformed();
	test_params();
	test_read_reply();
	return t_done();
}
