/*
 * test_tlsrpt.c - TLSRPT (src/tlsrpt_*.c): UTC days,
 * the _smtp._tls TXT parser, mailto addresses, the recording rules for
 * sessions/skips/decisions, aggregation in SQLite and its survival over a
 * close/reopen (a daemon restart), the JSON report (values, and its shape
 * against the real reports in tests/vectors/tlsrpt/ parsed with the
 * same reader), gzip round trip, the report mail, report routing.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <zlib.h>

#include <event2/event.h>

#include "config.h"
#include "policy.h"
#include "resolver.h"
#include "stats.h"
#include "tls.h"
#include "tlsrpt_record.h"
#include "workq.h"
#include "tlsrpt_report.h"
#include "util.h"
#include "t.h"

static time_t fake_now;

static time_t
fake_clock(void)
{
	return fake_now;
}

/* ---- days --------------------------------------------------------------- */

static void
test_days(void)
{
	char d[11];
	time_t t;

	tlsrpt_day(0, d);
	CHECK_STR(d, "1970-01-01");
	tlsrpt_day(1725321600 + 86399, d);	/* 2024-09-03T23:59:59Z */
	CHECK_STR(d, "2024-09-03");
	tlsrpt_day(1725321600 + 86400, d);
	CHECK_STR(d, "2024-09-04");
	CHECK(tlsrpt_day_parse("2024-09-03", &t) == 0 && t == 1725321600);
	CHECK(tlsrpt_day_parse("2024-02-29", &t) == 0);
	CHECK(tlsrpt_day_parse("2023-02-29", &t) == -1);
	CHECK(tlsrpt_day_parse("2024-13-01", &t) == -1);
	CHECK(tlsrpt_day_parse("2024-1-01", &t) == -1);
	CHECK(tlsrpt_day_parse("2024-01-01x", &t) == -1);
	CHECK(tlsrpt_day_parse("20240101", &t) == -1);
	CHECK(tlsrpt_day_parse("", &t) == -1);
	CHECK(tlsrpt_day_parse(NULL, &t) == -1);
	CHECK(tlsrpt_day_parse("1969-12-31", &t) == -1);
}

/* ---- TXT ---------------------------------------------------------------- */

static int
txt(const char *s, struct tlsrpt_rua *r)
{
	char err[256];

	return tlsrpt_txt_parse(s, strlen(s), r, err, sizeof(err));
}

static void
test_txt(void)
{
	struct tlsrpt_rua r;
	struct dns_txt recs[3];
	char err[256];

	CHECK(txt("v=TLSRPTv1; rua=mailto:tlsrpt@example.com", &r) == 0);
	CHECK(r.n == 1);
	CHECK_STR(r.uri[0], "mailto:tlsrpt@example.com");
	tlsrpt_rua_free(&r);

	CHECK(txt("v=TLSRPTv1;rua=mailto:a@example.com,https://r.example."
	    "com/tlsrpt", &r) == 0);
	CHECK(r.n == 2);
	CHECK_STR(r.uri[1], "https://r.example.com/tlsrpt");
	tlsrpt_rua_free(&r);

	CHECK(txt("v=TLSRPTv1 ;\trua=mailto:a@example.com , "
	    "https://r.example.com/x ; ", &r) == 0);
	CHECK(r.n == 2);
	CHECK_STR(r.uri[0], "mailto:a@example.com");
	tlsrpt_rua_free(&r);

	/* unknown well-formed extension ignored; other schemes ignored */
	CHECK(txt("v=TLSRPTv1; ext_1.a-b=val!ue; rua=ftp://x.example/,"
	    "MAILTO:b@example.com", &r) == 0);
	CHECK(r.n == 1);
	CHECK_STR(r.uri[0], "MAILTO:b@example.com");
	tlsrpt_rua_free(&r);

	CHECK(txt("v=TLSRPTv1; rua=ftp://x.example/", &r) == -1);
	CHECK(txt("v=TLSRPTv1", &r) == -1);
	CHECK(txt("v=TLSRPTv1;", &r) == -1);
	CHECK(txt("v=TLSRPTv2; rua=mailto:a@example.com", &r) == -1);
	CHECK(txt("v=tlsrptv1; rua=mailto:a@example.com", &r) == -1);
	CHECK(txt(" v=TLSRPTv1; rua=mailto:a@example.com", &r) == -1);
	CHECK(txt("v=TLSRPTv1 rua=mailto:a@example.com", &r) == -1);
	CHECK(txt("v=TLSRPTv1; rua=mailto:a@example.com; rua=mailto:b@"
	    "example.com", &r) == -1);
	CHECK(txt("v=TLSRPTv1; rua=mailto:a@example.com; bad", &r) == -1);
	CHECK(txt("v=TLSRPTv1; rua=mailto:a@example.com; =x", &r) == -1);
	CHECK(txt("v=TLSRPTv1; rua=mailto:a@example.com; _x=1", &r) == -1);
	CHECK(txt("v=TLSRPTv1; rua=mailto:a@example.com mailto:b@"
	    "example.com", &r) == -1);
	CHECK(txt("v=TLSRPTv1; rua=", &r) == -1);
	CHECK(txt("v=TLSRPTv1; rua=,mailto:a@example.com", &r) == -1);
	CHECK(txt("v=TLSRPTv1; rua=nocolon", &r) == -1);
	CHECK(tlsrpt_txt_parse("v=TLSRPTv1; rua=mailto:a@e\0x.com", 31, &r,
	    err, sizeof(err)) == -1);
	{
		char big[TLSRPT_TXT_MAX + 64];

		memset(big, 'a', sizeof(big));
		memcpy(big, "v=TLSRPTv1; rua=mailto:x@", 25);
		big[sizeof(big) - 1] = '\0';
		CHECK(txt(big, &r) == -1);
	}
	/* at most TLSRPT_MAX_RUA kept */
	CHECK(txt("v=TLSRPTv1; rua=mailto:a@x.example,mailto:b@x.example,"
	    "mailto:c@x.example,mailto:d@x.example,mailto:e@x.example,"
	    "mailto:f@x.example,mailto:g@x.example,mailto:h@x.example,"
	    "mailto:i@x.example", &r) == 0);
	CHECK(r.n == TLSRPT_MAX_RUA);
	tlsrpt_rua_free(&r);

	/* the RRset: others discarded, exactly one left */
	recs[0].data = "v=spf1 -all";
	recs[0].len = strlen(recs[0].data);
	recs[1].data = "v=TLSRPTv1; rua=mailto:r@example.net";
	recs[1].len = strlen(recs[1].data);
	recs[2].data = "v=TLSRPTv1x; rua=mailto:s@example.net";
	recs[2].len = strlen(recs[2].data);
	CHECK(tlsrpt_txt_select(recs, 3, &r, err, sizeof(err)) == 0);
	CHECK(r.n == 1 && strcmp(r.uri[0], "mailto:r@example.net") == 0);
	tlsrpt_rua_free(&r);
	recs[2].data = "v=TLSRPTv1;rua=mailto:s@example.net";
	recs[2].len = strlen(recs[2].data);
	CHECK(tlsrpt_txt_select(recs, 3, &r, err, sizeof(err)) == -1);
	CHECK(tlsrpt_txt_select(recs, 1, &r, err, sizeof(err)) == -1);
	CHECK(tlsrpt_txt_select(recs, 0, &r, err, sizeof(err)) == -1);
}

static void
test_mailto(void)
{
	char a[256];

	CHECK(tlsrpt_mailto_addr("mailto:tlsrpt@example.org", a,
	    sizeof(a)) == 0);
	CHECK_STR(a, "tlsrpt@example.org");
	CHECK(tlsrpt_mailto_addr("MailTo:tlsrpt%2Bx@example.org?subject=y",
	    a, sizeof(a)) == 0);
	CHECK_STR(a, "tlsrpt+x@example.org");
	CHECK(tlsrpt_mailto_addr("mailto:a@b@example.org", a, sizeof(a)) ==
	    -1);
	CHECK(tlsrpt_mailto_addr("mailto:example.org", a, sizeof(a)) == -1);
	CHECK(tlsrpt_mailto_addr("mailto:a%20b@example.org", a, sizeof(a)) ==
	    -1);
	CHECK(tlsrpt_mailto_addr("mailto:a%0d%0aRCPT@example.org", a,
	    sizeof(a)) == -1);
	CHECK(tlsrpt_mailto_addr("mailto:<a@example.org>", a, sizeof(a)) ==
	    -1);
	CHECK(tlsrpt_mailto_addr("mailto:a%4@example.org", a, sizeof(a)) ==
	    -1);
	CHECK(tlsrpt_mailto_addr("mailto:@example.org", a, sizeof(a)) == -1);
	CHECK(tlsrpt_mailto_addr("mailto:a@", a, sizeof(a)) == -1);
	CHECK(tlsrpt_mailto_addr("https://a@example.org", a, sizeof(a)) ==
	    -1);
	CHECK(tlsrpt_mailto_addr("mailto:a@example.org", a, 5) == -1);
}

static void
test_https_uri(void)
{
	char host[256], target[64];
	int port;

	CHECK(tlsrpt_https_uri("https://r.example.com/tlsrpt", host,
	    sizeof(host), &port, target, sizeof(target)) == 0);
	CHECK_STR(host, "r.example.com");
	CHECK(port == 443);
	CHECK_STR(target, "/tlsrpt");
	CHECK(tlsrpt_https_uri("HTTPS://r.example.com:8443", host,
	    sizeof(host), &port, target, sizeof(target)) == 0);
	CHECK(port == 8443);
	CHECK_STR(target, "/");
	CHECK(tlsrpt_https_uri("https://r.example.com?k=v#frag", host,
	    sizeof(host), &port, target, sizeof(target)) == 0);
	CHECK_STR(target, "/?k=v");
	CHECK(tlsrpt_https_uri("https://r.example.com/a/b?k=v#f", host,
	    sizeof(host), &port, target, sizeof(target)) == 0);
	CHECK_STR(target, "/a/b?k=v");
	CHECK(tlsrpt_https_uri("https://u:p@r.example.com/", host,
	    sizeof(host), &port, target, sizeof(target)) == -1);
	CHECK(tlsrpt_https_uri("https://[::1]/", host, sizeof(host), &port,
	    target, sizeof(target)) == -1);
	CHECK(tlsrpt_https_uri("https://r.example.com:0/", host, sizeof(host),
	    &port, target, sizeof(target)) == -1);
	CHECK(tlsrpt_https_uri("https://r.example.com:65536/", host,
	    sizeof(host), &port, target, sizeof(target)) == -1);
	CHECK(tlsrpt_https_uri("https://r.example.com:44x/", host,
	    sizeof(host), &port, target, sizeof(target)) == -1);
	CHECK(tlsrpt_https_uri("https://r.example.c[oe:6886/x", host,
	    sizeof(host), &port, target, sizeof(target)) == -1);
	CHECK(tlsrpt_https_uri("https://r%2e.example.com/x", host,
	    sizeof(host), &port, target, sizeof(target)) == -1);
	CHECK(tlsrpt_https_uri("https:///x", host, sizeof(host), &port,
	    target, sizeof(target)) == -1);
	CHECK(tlsrpt_https_uri("http://r.example.com/", host, sizeof(host),
	    &port, target, sizeof(target)) == -1);
	CHECK(tlsrpt_https_uri("https://r.example.com/0123456789012345678901"
	    "234567890123456789012345678901234567890123", host, sizeof(host),
	    &port, target, sizeof(target)) == -1);
}

/* ---- recording ---------------------------------------------------------- */

static char statedir[256];

static void
cf_init(struct config *cf)
{
	config_defaults(cf);
	free(cf->state_dir);
	cf->state_dir = xstrdup(statedir);
	free(cf->myhostname);
	cf->myhostname = xstrdup("relay.test.example");
	cf->tlsrpt_org_name = xstrdup("danerelay test");
	cf->tlsrpt_contact = xstrdup("postmaster@test.example");
}

static sqlite3 *
db(void)
{
	sqlite3 *d = NULL;
	char *p = xasprintf("%s/%s", statedir, TLSRPT_DB_NAME);

	if (sqlite3_open_v2(p, &d, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		fprintf(stderr, "open %s failed\n", p);
		sqlite3_close(d);
		d = NULL;
	}
	free(p);
	return d;
}

/* One integer from a query (with up to two text parameters). */
static long long
q1(const char *sql, const char *a, const char *b)
{
	sqlite3 *d = db();
	sqlite3_stmt *s = NULL;
	long long v = -1;

	if (d == NULL)
		return -1;
	if (sqlite3_prepare_v2(d, sql, -1, &s, NULL) == SQLITE_OK) {
		if (a != NULL)
			sqlite3_bind_text(s, 1, a, -1, SQLITE_STATIC);
		if (b != NULL)
			sqlite3_bind_text(s, 2, b, -1, SQLITE_STATIC);
		if (sqlite3_step(s) == SQLITE_ROW)
			v = sqlite3_column_int64(s, 0);
	} else
		fprintf(stderr, "sql: %s\n", sqlite3_errmsg(d));
	sqlite3_finalize(s);
	sqlite3_close(d);
	return v;
}

static struct dns_addr
mkaddr(const char *ip)
{
	struct dns_addr a;
	struct sockaddr_in *sin = (struct sockaddr_in *)&a.ss;

	memset(&a, 0, sizeof(a));
	a.family = AF_INET;
	dr_strlcpy(a.text, ip, sizeof(a.text));
	sin->sin_family = AF_INET;
	inet_pton(AF_INET, ip, &sin->sin_addr);
	a.sslen = sizeof(*sin);
	return a;
}

static void
test_record(void)
{
	struct config cf;
	struct tlsrpt *t;
	struct tls_outcome ok, bad;
	struct decision_host h;
	struct decision d;
	struct dns_addr a = mkaddr("127.0.90.7");
	char err[512];
	char *tlsa[] = { "3 1 1 AABBCC", "2 1 1 DDEEFF" };
	char *sts[] = { "version: STSv1", "mode: testing",
	    "mx: *.sts.example", "mx: mx9.sts.example", "max_age: 86400" };

	cf_init(&cf);
	fake_now = 1725321600 + 86399;		/* 2024-09-03T23:59:59Z */
	tlsrpt_set_clock(fake_clock);
	t = tlsrpt_open(&cf, NULL, err, sizeof(err));
	CHECK(t != NULL);
	if (t == NULL) {
		fprintf(stderr, "tlsrpt_open: %s\n", err);
		config_free(&cf);
		return;
	}

	memset(&ok, 0, sizeof(ok));
	ok.established = ok.trusted = ok.verified = 1;
	memset(&bad, 0, sizeof(bad));
	dr_strlcpy(bad.reason, "certificate verification failed: "
	    "certificate has expired", sizeof(bad.reason));

	/* DANE host: 2 successes, 1 expired, 1 starttls missing */
	memset(&h, 0, sizeof(h));
	h.name = "mx.dane.example";
	h.rpt_domain = "dane.example";
	h.rpt_type = RPT_TLSA;
	h.rpt_strings = tlsa;
	h.nrpt_strings = 2;
	h.tls = PTLS_DANE;
	h.addrs = &a;
	h.naddrs = 1;
	tlsrpt_note_session(t, &h, &a, &ok, NULL, "127.0.0.1");
	tlsrpt_note_session(t, &h, &a, &ok, NULL, "127.0.0.1");
	tlsrpt_note_session(t, &h, &a, &bad, "certificate-expired",
	    "127.0.0.1");
	tlsrpt_note_session(t, &h, &a, NULL, "starttls-not-supported",
	    "127.0.0.1");
	/* report session: not counted */
	tlsrpt_note_session(NULL, &h, &a, &ok, NULL,
	    "127.0.0.1");

	/* level none: nothing */
	h.tls = PTLS_NONE;
	tlsrpt_note_session(t, &h, &a, NULL, NULL, "127.0.0.1");

	/* no policy: TLS = success, cleartext = starttls-not-supported */
	memset(&h, 0, sizeof(h));
	h.name = "mx.plain.example";
	h.rpt_domain = "plain.example";
	h.rpt_type = RPT_NO_POLICY;
	h.tls = PTLS_MAY;
	memset(&bad, 0, sizeof(bad));
	tlsrpt_note_session(t, &h, &a, &ok, NULL, "127.0.0.1");
	tlsrpt_note_session(t, &h, &a, &bad, NULL, "127.0.0.1");

	/* sts testing: untrusted chain, then MX mismatch, then fine */
	memset(&h, 0, sizeof(h));
	h.name = "mx1.sts.example";
	h.rpt_domain = "sts.example";
	h.rpt_type = RPT_STS;
	h.rpt_strings = sts;
	h.nrpt_strings = 5;
	h.tls = PTLS_MAY;
	h.sts_testing = 1;
	bad.established = 1;
	bad.verify_error = 10;		/* X509_V_ERR_CERT_HAS_EXPIRED */
	tlsrpt_note_session(t, &h, &a, &bad, NULL, "127.0.0.1");
	h.sts_mismatch = 1;
	tlsrpt_note_session(t, &h, &a, &ok, NULL, "127.0.0.1");
	h.sts_mismatch = 0;
	tlsrpt_note_session(t, &h, &a, &ok, NULL, "127.0.0.1");

	/* skipped host with a result-type, and one without */
	memset(&h, 0, sizeof(h));
	h.name = "mx.bogus.example";
	h.rpt_domain = "bogus.example";
	h.rpt_type = RPT_TLSA;
	h.skip = 1;
	h.rpt_failure = "dnssec-invalid";
	h.reason = "TLSA RRset of mx.bogus.example is bogus";
	tlsrpt_note_skip(t, &h);
	h.rpt_failure = NULL;
	tlsrpt_note_skip(t, &h);

	/* all TLSA unusable: tlsa-invalid replaces the success */
	memset(&h, 0, sizeof(h));
	h.name = "mx.pkix.example";
	h.rpt_domain = "pkix.example";
	h.rpt_type = RPT_TLSA;
	h.tls = PTLS_ENCRYPT;
	h.rpt_failure = "tlsa-invalid";
	tlsrpt_note_session(t, &h, &a, &ok, NULL, "127.0.0.1");

	/* bogus MX RRset: the domain, policy-type tlsa */
	memset(&d, 0, sizeof(d));
	d.action = POLICY_DEFER;
	d.rpt_failure = "dnssec-invalid";
	d.reason = "MX RRset of bogusmx.example is bogus";
	tlsrpt_note_decision(t, "bogusmx.example", &d);
	/* every host skipped (dane-only without DANE): per host */
	memset(&h, 0, sizeof(h));
	h.name = "mx.allskip.example";
	h.rpt_domain = "allskip.example";
	h.rpt_type = RPT_TLSA;
	h.skip = 1;
	h.rpt_failure = "dane-required";
	memset(&d, 0, sizeof(d));
	d.action = POLICY_DEFER;
	d.hosts = &h;
	d.nhosts = 1;
	tlsrpt_note_decision(t, "allskip.example", &d);

	/* UTC day boundary: one second later is the next day */
	fake_now++;
	memset(&h, 0, sizeof(h));
	h.name = "mx.dane.example";
	h.rpt_domain = "DANE.example";		/* stored lower case */
	h.rpt_type = RPT_TLSA;
	h.rpt_strings = tlsa;
	h.nrpt_strings = 2;
	h.tls = PTLS_DANE;
	tlsrpt_note_session(t, &h, &a, &ok, NULL, "127.0.0.1");

	/* nothing reached the disk yet */
	CHECK(q1("SELECT count(*) FROM policy", NULL, NULL) == 0);
	CHECK(tlsrpt_flush(t) == 0);
	CHECK(q1("SELECT sum(success) FROM policy WHERE day = ?1 AND "
	    "domain = ?2", "2024-09-03", "dane.example") == 2);
	CHECK(q1("SELECT sum(failure) FROM policy WHERE day = ?1 AND "
	    "domain = ?2", "2024-09-03", "dane.example") == 2);
	CHECK(q1("SELECT sum(success) FROM policy WHERE day = ?1 AND "
	    "domain = ?2", "2024-09-04", "dane.example") == 1);
	CHECK(q1("SELECT count(*) FROM failure f JOIN policy p ON p.id = "
	    "f.policy WHERE p.domain = ?1 AND f.result = ?2 AND f.sending_ip "
	    "= '127.0.0.1' AND f.receiving_ip = '127.0.90.7'",
	    "dane.example", "certificate-expired") == 1);
	CHECK(q1("SELECT count(*) FROM failure f JOIN policy p ON p.id = "
	    "f.policy WHERE p.domain = ?1 AND f.reason LIKE ?2",
	    "dane.example", "%has expired") == 1);
	CHECK(q1("SELECT success FROM policy WHERE domain = ?1 AND type = "
	    "?2", "plain.example", "no-policy-found") == 1);
	CHECK(q1("SELECT failure FROM policy WHERE domain = ?1 AND mx = ''",
	    "plain.example", NULL) == 1);
	CHECK(q1("SELECT count(*) FROM failure WHERE result = ?1 AND mx = ?2",
	    "starttls-not-supported", "mx.plain.example") == 1);
	CHECK(q1("SELECT success FROM policy WHERE domain = ?1 AND mx = ?2",
	    "sts.example", "*.sts.example\nmx9.sts.example") == 1);
	CHECK(q1("SELECT count(*) FROM failure f JOIN policy p ON p.id = "
	    "f.policy WHERE p.domain = 'sts.example' AND f.result = ?1",
	    "certificate-expired", NULL) == 1);
	CHECK(q1("SELECT count(*) FROM failure f JOIN policy p ON p.id = "
	    "f.policy WHERE p.domain = 'sts.example' AND f.result = ?1",
	    "validation-failure", NULL) == 1);
	CHECK(q1("SELECT failure FROM policy WHERE domain = ?1",
	    "bogus.example", NULL) == 1);
	CHECK(q1("SELECT count(*) FROM failure WHERE result = ?1 AND "
	    "receiving_ip = '' AND mx = ?2", "dnssec-invalid",
	    "mx.bogus.example") == 1);
	CHECK(q1("SELECT success FROM policy WHERE domain = ?1",
	    "pkix.example", NULL) == 0);
	CHECK(q1("SELECT count(*) FROM failure WHERE result = ?1",
	    "tlsa-invalid", NULL) == 1);
	CHECK(q1("SELECT failure FROM policy WHERE domain = ?1 AND type = ?2",
	    "bogusmx.example", "tlsa") == 1);
	CHECK(q1("SELECT count(*) FROM failure f JOIN policy p ON p.id = "
	    "f.policy WHERE p.domain = ?1 AND f.result = ?2 AND f.mx = "
	    "'mx.allskip.example'", "allskip.example", "dane-required") == 1);

	/* restart: close (flushes), reopen, count on */
	fake_now = 1725321600 + 86399;
	memset(&h, 0, sizeof(h));
	h.name = "mx.dane.example";
	h.rpt_domain = "dane.example";
	h.rpt_type = RPT_TLSA;
	h.rpt_strings = tlsa;
	h.nrpt_strings = 2;
	h.tls = PTLS_DANE;
	tlsrpt_note_session(t, &h, &a, &ok, NULL, "127.0.0.1");
	tlsrpt_close(t);
	CHECK(q1("SELECT sum(success) FROM policy WHERE day = ?1 AND "
	    "domain = ?2", "2024-09-03", "dane.example") == 3);
	t = tlsrpt_open(&cf, NULL, err, sizeof(err));
	CHECK(t != NULL);
	tlsrpt_note_session(t, &h, &a, &ok, NULL, "127.0.0.1");
	tlsrpt_note_session(t, &h, &a, &bad, "validation-failure",
	    "127.0.0.1");
	tlsrpt_close(t);
	CHECK(q1("SELECT sum(success) FROM policy WHERE day = ?1 AND "
	    "domain = ?2", "2024-09-03", "dane.example") == 4);
	CHECK(q1("SELECT sum(failure) FROM policy WHERE day = ?1 AND "
	    "domain = ?2", "2024-09-03", "dane.example") == 3);
	CHECK(q1("SELECT count(*) FROM policy WHERE domain = ?1",
	    "dane.example", NULL) == 2);	/* one per day */

	/* tlsrpt = no: nothing recorded */
	cf.tlsrpt = 0;
	t = tlsrpt_open(&cf, NULL, err, sizeof(err));
	CHECK(t != NULL);
	tlsrpt_note_session(t, &h, &a, &ok, NULL, "127.0.0.1");
	tlsrpt_close(t);
	CHECK(q1("SELECT sum(success) FROM policy WHERE day = ?1 AND "
	    "domain = ?2", "2024-09-03", "dane.example") == 4);
	cf.tlsrpt = 1;
	config_free(&cf);
}

/* The timer's flush on the io pool: recording goes on meanwhile; a write
 * that fails (the database locked) puts its counts back, merged with
 * what came since, and the next flush writes them all. */
static void
wait_port(struct event_base *base, struct workq_port *port)
{
	while (workq_port_pending(port) > 0)
		event_base_loop(base, EVLOOP_ONCE);
}

static void
test_flush_async(void)
{
	struct config cf;
	struct tlsrpt *t;
	struct tlsrpt_event ev;
	struct event_base *base = event_base_new();
	struct workq *wq;
	struct workq_port *port;
	sqlite3 *lk;
	char err[512];
	int i;

	cf_init(&cf);
	fake_now = 1725321600 + 7200;
	wq = workq_new("io", 2, err, sizeof(err));
	port = workq_port_new(base, err, sizeof(err));
	t = tlsrpt_open(&cf, base, err, sizeof(err));
	CHECK(t != NULL && wq != NULL && port != NULL);
	if (t == NULL || wq == NULL || port == NULL) {
		config_free(&cf);
		return;
	}
	tlsrpt_set_workq(t, wq, port);
	memset(&ev, 0, sizeof(ev));
	ev.type = RPT_NO_POLICY;
	ev.domain = "async.example";
	for (i = 0; i < 3; i++)
		tlsrpt_record(t, &ev);
	tlsrpt_flush_start(t);
	tlsrpt_record(t, &ev);		/* while the pool writes */
	wait_port(base, port);
	CHECK(q1("SELECT success FROM policy WHERE domain = ?1 AND day = ?2",
	    "async.example", "2024-09-03") == 3);

	/* locked: the write fails, its 1 + the 2 that come are kept */
	lk = db();
	CHECK(lk != NULL &&
	    sqlite3_exec(lk, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK);
	tlsrpt_flush_start(t);
	tlsrpt_record(t, &ev);
	ev.domain = "other.example";
	tlsrpt_record(t, &ev);
	wait_port(base, port);
	CHECK(q1("SELECT success FROM policy WHERE domain = ?1 AND day = ?2",
	    "async.example", "2024-09-03") == 3);
	CHECK(sqlite3_exec(lk, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(lk);
	tlsrpt_flush_start(t);
	wait_port(base, port);
	CHECK(q1("SELECT success FROM policy WHERE domain = ?1 AND day = ?2",
	    "async.example", "2024-09-03") == 5);
	CHECK(q1("SELECT success FROM policy WHERE domain = ?1 AND day = ?2",
	    "other.example", "2024-09-03") == 1);
	tlsrpt_close(t);
	workq_port_free(port);
	workq_free(wq);
	event_base_free(base);
	config_free(&cf);
}

/* A database another process keeps locked: the counters wait in memory,
 * and when memory is full events are dropped instead of blocking. */
static void
test_busy(void)
{
	struct config cf;
	struct tlsrpt *t;
	struct tlsrpt_event ev;
	sqlite3 *lk;
	char err[512], dom[64];
	int i;
	long long n;
	unsigned long long dropped0 = stats_get(S_TLSRPT_DROPPED);

	cf_init(&cf);
	fake_now = 1725321600 + 3600;
	t = tlsrpt_open(&cf, NULL, err, sizeof(err));
	CHECK(t != NULL);
	if (t == NULL) {
		config_free(&cf);
		return;
	}
	lk = db();
	CHECK(lk != NULL &&
	    sqlite3_exec(lk, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK);
	memset(&ev, 0, sizeof(ev));
	ev.domain = "busy.example";
	ev.type = RPT_NO_POLICY;
	tlsrpt_record(t, &ev);
	CHECK(tlsrpt_flush(t) == -1);		/* locked: kept */
	for (i = 0; i < 5000; i++) {
		snprintf(dom, sizeof(dom), "d%d.example", i);
		ev.domain = dom;
		tlsrpt_record(t, &ev);
	}
	CHECK(sqlite3_exec(lk, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(lk);
	CHECK(tlsrpt_flush(t) == 0);
	CHECK(q1("SELECT success FROM policy WHERE domain = ?1 AND day = ?2",
	    "busy.example", "2024-09-03") == 1);
	n = q1("SELECT count(*) FROM policy WHERE domain LIKE 'd%.example'",
	    NULL, NULL);
	CHECK(n > 1000 && n < 5000);		/* capped, not blocked */
	CHECK(stats_get(S_TLSRPT_DROPPED) - dropped0 > 0 &&
	    stats_get(S_TLSRPT_DROPPED) - dropped0 < 5000);	/* counted */
	/* working again: nothing dropped any more */
	ev.domain = "d4999.example";
	tlsrpt_record(t, &ev);
	tlsrpt_close(t);
	CHECK(q1("SELECT success FROM policy WHERE domain = ?1",
	    "d4999.example", NULL) == 1);
	config_free(&cf);
}

/* state_backend = postgresql with the server gone (issue #19): the same
 * bounded memory; what does not fit is dropped and counted, recording
 * never waits (the failed connection is not retried for a while). */
static void
test_pg_down(void)
{
	struct config cf;
	struct tlsrpt *t;
	struct tlsrpt_event ev;
	char err[512], dom[64];
	unsigned long long before = stats_get(S_TLSRPT_DROPPED);
	time_t t0;
	int i;

	cf_init(&cf);
	cf.state_backend = xasprintf("postgresql:///dr?host=%s/no-such-dir",
	    statedir);
	t = tlsrpt_open(&cf, NULL, err, sizeof(err));
	CHECK(t != NULL);
	if (t == NULL) {
		config_free(&cf);
		return;
	}
	memset(&ev, 0, sizeof(ev));
	ev.domain = "pgdown.example";
	ev.type = RPT_NO_POLICY;
	tlsrpt_record(t, &ev);
	CHECK(tlsrpt_flush(t) == -1);		/* unreachable: kept */
	t0 = time(NULL);
	for (i = 0; i < 5000; i++) {
		snprintf(dom, sizeof(dom), "p%d.example", i);
		ev.domain = dom;
		tlsrpt_record(t, &ev);
	}
	CHECK(time(NULL) - t0 < 3);		/* never waited */
	CHECK(stats_get(S_TLSRPT_DROPPED) - before > 500 &&
	    stats_get(S_TLSRPT_DROPPED) - before < 5000);
	tlsrpt_close(t);
	config_free(&cf);
}

/* ---- the JSON shape against real reports --------------------------------- */

/* Schema learned from documents: per path, the JSON types seen, how many
 * objects were seen at an object path and how often each key was in one. */
struct shape {
	char path[256];
	int types;		/* bit per json_type */
	int objects;		/* object instances at this path */
	int present;		/* instances of the parent having this key */
};

static struct shape shapes[512];
static size_t nshapes;

static struct shape *
shape_get(const char *path)
{
	size_t i;

	for (i = 0; i < nshapes; i++)
		if (strcmp(shapes[i].path, path) == 0)
			return &shapes[i];
	if (nshapes == sizeof(shapes) / sizeof(shapes[0]))
		return NULL;
	dr_strlcpy(shapes[nshapes].path, path, sizeof(shapes[0].path));
	return &shapes[nshapes++];
}

static void
learn(const char *path, json_t *v)
{
	struct shape *s = shape_get(path);
	char sub[256];
	const char *k;
	json_t *e;
	size_t i;

	if (s == NULL)
		return;
	s->types |= 1 << json_typeof(v);
	if (json_is_object(v)) {
		s->objects++;
		json_object_foreach(v, k, e) {
			struct shape *c;

			snprintf(sub, sizeof(sub), "%s.%s", path, k);
			if ((c = shape_get(sub)) != NULL)
				c->present++;
			learn(sub, e);
		}
	} else if (json_is_array(v)) {
		snprintf(sub, sizeof(sub), "%s[]", path);
		json_array_foreach(v, i, e)
			learn(sub, e);
	}
}

/* Every member of ours is known with a type seen in a real report, and
 * every member every real report has at that place is there. */
static int
conforms(const char *path, json_t *v)
{
	struct shape *s = shape_get(path);
	char sub[256];
	const char *k;
	json_t *e;
	size_t i;
	int ok = 1, is_int;

	if (s == NULL || s->types == 0) {
		fprintf(stderr, "shape: %s is in no real report\n", path);
		return 0;
	}
	is_int = json_is_integer(v);
	if (!(s->types & (1 << json_typeof(v))) && !(is_int &&
	    (s->types & (1 << JSON_REAL)))) {
		fprintf(stderr, "shape: %s has a type no real report has\n",
		    path);
		return 0;
	}
	if (json_is_object(v)) {
		json_object_foreach(v, k, e) {
			snprintf(sub, sizeof(sub), "%s.%s", path, k);
			ok &= conforms(sub, e);
		}
		for (i = 0; i < nshapes; i++) {
			const char *p = shapes[i].path;
			size_t n = strlen(path);

			if (strncmp(p, path, n) != 0 || p[n] != '.' ||
			    strchr(p + n + 1, '.') != NULL ||
			    strchr(p + n + 1, '[') != NULL)
				continue;
			if (shapes[i].present == s->objects &&
			    json_object_get(v, p + n + 1) == NULL) {
				fprintf(stderr, "shape: %s missing\n", p);
				ok = 0;
			}
		}
	} else if (json_is_array(v)) {
		snprintf(sub, sizeof(sub), "%s[]", path);
		json_array_foreach(v, i, e)
			ok &= conforms(sub, e);
	}
	return ok;
}

static int
learn_vectors(void)
{
	const char *src = getenv("DR_SRCDIR");
	char dir[512], path[1024];
	struct dirent *de;
	DIR *dp, *sub;
	int n = 0;

	snprintf(dir, sizeof(dir), "%s/tests/vectors/tlsrpt",
	    src ? src : ".");
	if ((dp = opendir(dir)) == NULL)
		return 0;
	while ((de = readdir(dp)) != NULL) {
		struct dirent *fe;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if ((sub = opendir(path)) == NULL)
			continue;
		while ((fe = readdir(sub)) != NULL) {
			size_t l = strlen(fe->d_name);
			char file[1400];
			json_error_t je;
			json_t *j;

			if (l < 5 || strcmp(fe->d_name + l - 5, ".json") != 0)
				continue;
			snprintf(file, sizeof(file), "%s/%s", path,
			    fe->d_name);
			if ((j = json_load_file(file, 0, &je)) == NULL) {
				fprintf(stderr, "%s: %s\n", file, je.text);
				continue;
			}
			learn("$", j);
			json_decref(j);
			n++;
		}
		closedir(sub);
	}
	closedir(dp);
	return n;
}

static json_t *
report_for(const char *day, const char *domain)
{
	struct tlsrpt_meta m;
	sqlite3 *d = db();
	char err[256];
	json_t *j;

	memset(&m, 0, sizeof(m));
	m.org = "danerelay test";
	m.contact = "postmaster@test.example";
	m.submitter = "relay.test.example";
	m.report_id = "20240903.dane.example.0011223344556677@"
	    "relay.test.example";
	tlsrpt_day_parse(day, &m.start);
	j = tlsrpt_report_json(d, day, domain, &m, err, sizeof(err));
	if (j == NULL)
		fprintf(stderr, "report_json: %s\n", err);
	sqlite3_close(d);
	return j;
}

static json_t *
find_policy(json_t *rep, const char *type)
{
	json_t *p;
	size_t i;

	json_array_foreach(json_object_get(rep, "policies"), i, p)
		if (strcmp(json_string_value(json_object_get(json_object_get(
		    p, "policy"), "policy-type")), type) == 0)
			return p;
	return NULL;
}

static void
test_json(void)
{
	json_t *rep, *p, *fd, *f, *sum;
	const char *domains[] = { "dane.example", "plain.example",
	    "sts.example", "bogus.example", "pkix.example",
	    "bogusmx.example", "allskip.example" };
	size_t i;
	int nvec;

	rep = report_for("2024-09-03", "dane.example");
	CHECK(rep != NULL);
	if (rep == NULL)
		return;
	CHECK_STR(json_string_value(json_object_get(rep,
	    "organization-name")), "danerelay test");
	CHECK_STR(json_string_value(json_object_get(json_object_get(rep,
	    "date-range"), "start-datetime")), "2024-09-03T00:00:00Z");
	CHECK_STR(json_string_value(json_object_get(json_object_get(rep,
	    "date-range"), "end-datetime")), "2024-09-03T23:59:59Z");
	CHECK(json_array_size(json_object_get(rep, "policies")) == 1);
	p = find_policy(rep, "tlsa");
	CHECK(p != NULL);
	if (p != NULL) {
		json_t *pol = json_object_get(p, "policy");

		CHECK_STR(json_string_value(json_object_get(pol,
		    "policy-domain")), "dane.example");
		CHECK(json_array_size(json_object_get(pol,
		    "policy-string")) == 2);
		CHECK_STR(json_string_value(json_array_get(json_object_get(
		    pol, "policy-string"), 0)), "3 1 1 AABBCC");
		CHECK_STR(json_string_value(json_array_get(json_object_get(
		    pol, "mx-host"), 0)), "mx.dane.example");
		sum = json_object_get(p, "summary");
		CHECK(json_integer_value(json_object_get(sum,
		    "total-successful-session-count")) == 4);
		CHECK(json_integer_value(json_object_get(sum,
		    "total-failure-session-count")) == 3);
		fd = json_object_get(p, "failure-details");
		CHECK(json_array_size(fd) == 3);
		json_array_foreach(fd, i, f) {
			CHECK(json_integer_value(json_object_get(f,
			    "failed-session-count")) == 1);
			CHECK_STR(json_string_value(json_object_get(f,
			    "receiving-mx-hostname")), "mx.dane.example");
			CHECK_STR(json_string_value(json_object_get(f,
			    "receiving-ip")), "127.0.90.7");
			CHECK_STR(json_string_value(json_object_get(f,
			    "sending-mta-ip")), "127.0.0.1");
		}
	}
	json_decref(rep);

	rep = report_for("2024-09-03", "plain.example");
	p = rep ? find_policy(rep, "no-policy-found") : NULL;
	CHECK(p != NULL);
	if (p != NULL) {
		CHECK(json_object_get(json_object_get(p, "policy"),
		    "mx-host") == NULL);
		CHECK(json_object_get(json_object_get(p, "policy"),
		    "policy-string") == NULL);
		CHECK_STR(json_string_value(json_object_get(json_array_get(
		    json_object_get(p, "failure-details"), 0),
		    "result-type")), "starttls-not-supported");
	}
	json_decref(rep);
	rep = report_for("2024-09-03", "nothing.example");
	CHECK(rep == NULL);

	nvec = learn_vectors();
	CHECK(nvec >= 5);	/* tests/vectors/tlsrpt is in the tree */
	if (nvec == 0)
		return;
	for (i = 0; i < sizeof(domains) / sizeof(domains[0]); i++) {
		rep = report_for("2024-09-03", domains[i]);
		CHECK(rep != NULL);
		if (rep != NULL) {
			int ok = conforms("$", rep);

			if (!ok)
				fprintf(stderr, "shape of %s differs\n",
				    domains[i]);
			CHECK(ok);
		}
		json_decref(rep);
	}
	/* the checker itself must be able to fail */
	rep = json_pack("{s:s, s:i}", "organization-name", "x", "bogus", 1);
	CHECK(!conforms("$", rep));
	json_decref(rep);
	rep = json_pack("{s:i}", "organization-name", 1);
	CHECK(!conforms("$", rep));
	json_decref(rep);
}

/* ---- gzip, mail ------------------------------------------------------------ */

static void
test_gzip_mime(void)
{
	const char *in = "{\"organization-name\":\"x\",\"policies\":[]}";
	unsigned char *gz = NULL, out[256], *dec;
	struct tlsrpt_meta m;
	size_t gzlen = 0, mlen = 0, k, dlen;
	z_stream z;
	char *mail, *p, *q, fname[700], *b64;
	int n;

	CHECK(tlsrpt_gzip(in, strlen(in), &gz, &gzlen) == 0);
	CHECK(gzlen > 18 && gz[0] == 0x1f && gz[1] == 0x8b && gz[2] == 8);
	memset(&z, 0, sizeof(z));
	CHECK(inflateInit2(&z, 15 + 16) == Z_OK);	/* gzip only */
	z.next_in = gz;
	z.avail_in = (uInt)gzlen;
	z.next_out = out;
	z.avail_out = sizeof(out);
	CHECK(inflate(&z, Z_FINISH) == Z_STREAM_END);
	CHECK(z.total_out == strlen(in) && memcmp(out, in, strlen(in)) == 0);
	inflateEnd(&z);

	memset(&m, 0, sizeof(m));
	m.org = "danerelay test";
	m.submitter = "relay.test.example";
	m.report_id = "20240903.dane.example.0011223344556677@relay.test."
	    "example";
	m.start = 1725321600;
	tlsrpt_filename(&m, "dane.example", fname, sizeof(fname));
	CHECK_STR(fname, "relay.test.example!dane.example!1725321600!"
	    "1725407999.json.gz");
	mail = tlsrpt_mime(&m, "dane.example", "postmaster@relay.test."
	    "example", "tlsrpt@dane.example", gz, gzlen, &mlen);
	CHECK(mail != NULL && mlen == strlen(mail));
	if (mail != NULL) {
		CHECK(strstr(mail, "\r\nSubject: Report Domain: dane.example"
		    "\r\n Submitter: relay.test.example\r\n Report-ID: "
		    "<20240903.dane.example.0011223344556677@relay.test."
		    "example>\r\n") != NULL);
		CHECK(strstr(mail, "\r\nTLS-Report-Domain: dane.example\r\n") !=
		    NULL);
		CHECK(strstr(mail, "\r\nTLS-Report-Submitter: relay.test."
		    "example\r\n") != NULL);
		CHECK(strstr(mail, "\r\nTLS-Required: No\r\n") != NULL);
		CHECK(strstr(mail, "Content-Type: multipart/report; "
		    "report-type=\"tlsrpt\";") != NULL);
		CHECK(strstr(mail, "Content-Type: application/tlsrpt+gzip\r\n")
		    != NULL);
		CHECK(strstr(mail, fname) != NULL);
		/* no bare LF, lines <= 78 */
		for (k = 0, n = 0; k < mlen; k++) {
			if (mail[k] == '\n' && (k == 0 || mail[k - 1] != '\r'))
				n = 1000;
			if (mail[k] == '\n')
				n = 0;
			else if (++n > 78)
				break;
		}
		CHECK(k == mlen);
		/* the base64 part decodes to the gzip bytes */
		p = strstr(mail, "Content-Transfer-Encoding: base64\r\n");
		p = p ? strstr(p, "\r\n\r\n") : NULL;
		q = p ? strstr(p + 4, "\r\n\r\n--") : NULL;
		CHECK(p != NULL && q != NULL);
		if (p != NULL && q != NULL) {
			char *w;

			p += 4;
			b64 = xmalloc((size_t)(q - p) + 1);
			for (w = b64; p < q; p++)
				if (*p != '\r' && *p != '\n')
					*w++ = *p;
			*w = '\0';
			dec = xmalloc(strlen(b64));
			n = EVP_DecodeBlock(dec, (unsigned char *)b64,
			    (int)strlen(b64));
			dlen = n < 0 ? 0 : (size_t)n;
			/* EVP_DecodeBlock counts padding as zero bytes */
			while (dlen > gzlen && dec[dlen - 1] == 0)
				dlen--;
			CHECK(dlen == gzlen && memcmp(dec, gz, gzlen) == 0);
			free(dec);
			free(b64);
		}
	}
	free(mail);
	free(gz);
}

/* ---- routing of report messages ----------------------------------------- */

static void
test_report_route(void)
{
	struct decision d;
	struct decision_host h[3];
	struct dns_addr a = mkaddr("127.0.90.9");

	memset(&d, 0, sizeof(d));
	memset(h, 0, sizeof(h));
	d.hosts = h;
	d.nhosts = 3;
	d.action = POLICY_DEFER;
	d.level = POLICY_DANE;
	h[0].skip = 1;			/* bogus addresses: no addrs */
	h[0].rpt_failure = "dnssec-invalid";
	h[1].skip = 1;			/* no result-type: not for reports */
	h[1].addrs = &a;
	h[1].naddrs = 1;
	h[2].skip = 1;			/* bogus TLSA: usable for reports */
	h[2].rpt_failure = "dnssec-invalid";
	h[2].addrs = &a;
	h[2].naddrs = 1;
	CHECK(!tlsrpt_report_host_ok(&d, &h[0]));
	CHECK(!tlsrpt_report_host_ok(&d, &h[1]));
	CHECK(tlsrpt_report_host_ok(&d, &h[2]));
	CHECK(tlsrpt_report_deliverable(&d));
	d.nhosts = 2;
	CHECK(!tlsrpt_report_deliverable(&d));
	d.nhosts = 3;
	d.action = POLICY_FAIL;
	CHECK(!tlsrpt_report_deliverable(&d));
	CHECK(tlsrpt_report_tls_mode(&d) == SMTP_TLS_MAY);
	d.level = POLICY_NONE;
	CHECK(tlsrpt_report_tls_mode(&d) == SMTP_TLS_NONE);
}

int
main(void)
{
	char tmpl[] = "/tmp/test_tlsrpt.XXXXXX";
	char cmd[300];
	const char *base = getenv("DR_TMPDIR");

	if (base != NULL) {
		snprintf(statedir, sizeof(statedir), "%s/tlsrpt-state", base);
		mkdir(statedir, 0700);
	} else if (mkdtemp(tmpl) != NULL)
		dr_strlcpy(statedir, tmpl, sizeof(statedir));
	else {
		perror("mkdtemp");
		return 1;
	}
	test_days();
	test_txt();
	test_mailto();
	test_https_uri();
	test_record();
	test_json();
	test_busy();
	test_pg_down();
	test_flush_async();
	test_gzip_mime();
	test_report_route();
	if (base == NULL) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", statedir);
		if (system(cmd) != 0)
			fprintf(stderr, "cleanup of %s failed\n", statedir);
	}
	return t_done();
}
