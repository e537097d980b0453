/*
 * test_resolver.c - the resolver's offline parts: rdata decoding (MX, A,
 * AAAA, TLSA, TXT, null MX, malformed input), wire names, type names,
 * and resolver_new() refusing bad trust anchors and dns_config files.
 * Lookups against signed zones are tested by tests/scenario/resolver.t.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "log.h"
#include "resolver.h"
#include "util.h"
#include "t.h"

static struct dns_result *
newres(int qtype)
{
	struct dns_result *r = xcalloc(1, sizeof(*r));

	r->qtype = qtype;
	return r;
}

static int
add(struct dns_result *r, const void *rd, size_t len)
{
	char err[256];

	err[0] = '\0';
	if (dns_result_add_rdata(r, rd, len, err, sizeof(err)) == -1) {
		CHECK(err[0] != '\0');		/* a reason is always given */
		return -1;
	}
	return 0;
}

static void
test_names(void)
{
	char out[DNS_NAME_BUF];
	uint8_t buf[300];
	int i;

	CHECK(dns_name_from_wire((const uint8_t *)"\2Mx\7Example\4TEST\0",
	    17, out, sizeof(out)) == 17);
	CHECK_STR(out, "mx.example.test");
	CHECK(dns_name_from_wire((const uint8_t *)"\0", 1, out,
	    sizeof(out)) == 1);
	CHECK_STR(out, "");
	/* odd octets are escaped, never passed through */
	CHECK(dns_name_from_wire((const uint8_t *)"\3a.\n\0", 5, out,
	    sizeof(out)) == 5);
	CHECK_STR(out, "a\\.\\010");
	CHECK(dns_name_from_wire((const uint8_t *)"\3_25\4_tcp\0", 10, out,
	    sizeof(out)) == 10);
	CHECK_STR(out, "_25._tcp");
	/* no root label, truncated label, pointer, empty input */
	CHECK(dns_name_from_wire((const uint8_t *)"\2mx", 3, out,
	    sizeof(out)) == -1);
	CHECK(dns_name_from_wire((const uint8_t *)"\5mx\0", 4, out,
	    sizeof(out)) == -1);
	CHECK(dns_name_from_wire((const uint8_t *)"\xc0\x0c", 2, out,
	    sizeof(out)) == -1);
	CHECK(dns_name_from_wire((const uint8_t *)"", 0, out,
	    sizeof(out)) == -1);
	/* label of 64 */
	memset(buf, 'a', sizeof(buf));
	buf[0] = 64;
	buf[65] = 0;
	CHECK(dns_name_from_wire(buf, 66, out, sizeof(out)) == -1);
	/* 255 octets ok, 257 not */
	memset(buf, 'a', sizeof(buf));
	for (i = 0; i < 4; i++)
		buf[i * 64] = 63;	/* 4 * 64 = 256 > 255 with the root */
	buf[256] = 0;
	CHECK(dns_name_from_wire(buf, 257, out, sizeof(out)) == -1);
	buf[192] = 61;			/* 3 * 64 + 62 + 1 = 255 */
	buf[254] = 0;
	CHECK(dns_name_from_wire(buf, 255, out, sizeof(out)) == 255);
	CHECK(strlen(out) == 253);
	/* small output buffer: refused, not overflowed */
	CHECK(dns_name_from_wire((const uint8_t *)"\7example\0", 9, out,
	    5) == -1);
	/* worst case escaping fits DNS_NAME_BUF */
	memset(buf, 0xff, sizeof(buf));
	for (i = 0; i < 4; i++)
		buf[i * 64] = 63;
	buf[192] = 61;
	buf[254] = 0;
	CHECK(dns_name_from_wire(buf, 255, out, sizeof(out)) == 255);
	CHECK(strlen(out) == 250 * 4 + 3);
}

static void
test_mx(void)
{
	struct dns_result *r;

	r = newres(DNS_T_MX);
	CHECK(add(r, "\0\12\2mx\7example\4test\0", 19) == 0);
	CHECK(add(r, "\x01\x00\3MX2\7EXAMPLE\4test\0", 20) == 0);
	dns_result_finish(r);
	CHECK(r->n == 2);
	if (r->n != 2)
		return;
	CHECK(r->mx[0].pref == 10);
	CHECK_STR(r->mx[0].host, "mx.example.test");
	CHECK(r->mx[1].pref == 256);
	CHECK_STR(r->mx[1].host, "mx2.example.test");
	CHECK(r->null_mx == 0);
	/* malformed */
	CHECK(add(r, "\0\12", 2) == -1);
	CHECK(add(r, "\0\12\2mx\0\0", 7) == -1);	/* trailing byte */
	CHECK(add(r, "\0\12\2mx", 5) == -1);		/* no root */
	CHECK(add(r, "\0\12\xc0\x0c", 4) == -1);	/* compression */
	CHECK(r->n == 2);
	dns_result_free(r);

	/* RFC 7505 null MX: one record, preference 0, "." */
	r = newres(DNS_T_MX);
	CHECK(add(r, "\0\0\0", 3) == 0);
	dns_result_finish(r);
	CHECK(r->null_mx == 1);
	CHECK_STR(r->mx[0].host, "");
	dns_result_free(r);
	/* "." with preference 10 or among others is not a null MX */
	r = newres(DNS_T_MX);
	CHECK(add(r, "\0\12\0", 3) == 0);
	dns_result_finish(r);
	CHECK(r->null_mx == 0);
	dns_result_free(r);
	r = newres(DNS_T_MX);
	CHECK(add(r, "\0\0\0", 3) == 0);
	CHECK(add(r, "\0\12\2mx\0", 6) == 0);
	dns_result_finish(r);
	CHECK(r->null_mx == 0);
	dns_result_free(r);
}

static void
test_addr(void)
{
	struct dns_result *r;
	struct sockaddr_in *sin;
	struct sockaddr_in6 *sin6;
	static const uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
	    0, 0, 0, 0, 0, 0, 0, 0x01 };

	r = newres(DNS_T_A);
	CHECK(add(r, "\x7f\0\x32\x05", 4) == 0);
	CHECK(r->n == 1);
	CHECK_STR(r->addr[0].text, "127.0.50.5");
	CHECK(r->addr[0].family == AF_INET);
	sin = (struct sockaddr_in *)&r->addr[0].ss;
	CHECK(sin->sin_family == AF_INET && sin->sin_port == 0);
	CHECK(r->addr[0].sslen == sizeof(*sin));
	CHECK(add(r, "\x7f\0\x32", 3) == -1);
	CHECK(add(r, "\x7f\0\x32\x05\x01", 5) == -1);
	dns_result_free(r);

	r = newres(DNS_T_AAAA);
	CHECK(add(r, v6, 16) == 0);
	CHECK_STR(r->addr[0].text, "2001:db8::1");
	sin6 = (struct sockaddr_in6 *)&r->addr[0].ss;
	CHECK(sin6->sin6_family == AF_INET6);
	CHECK(memcmp(&sin6->sin6_addr, v6, 16) == 0);
	CHECK(add(r, v6, 4) == -1);
	dns_result_free(r);
}

static void
test_tlsa(void)
{
	struct dns_result *r;
	uint8_t rd[3 + 32];
	char *text;

	memset(rd, 0xab, sizeof(rd));
	rd[0] = 3;
	rd[1] = 1;
	rd[2] = 1;
	r = newres(DNS_T_TLSA);
	CHECK(add(r, rd, sizeof(rd)) == 0);
	CHECK(r->n == 1);
	CHECK(r->tlsa[0].usage == 3 && r->tlsa[0].selector == 1 &&
	    r->tlsa[0].mtype == 1 && r->tlsa[0].len == 32);
	CHECK(r->tlsa[0].data[0] == 0xab && r->tlsa[0].data[31] == 0xab);
	text = tlsa_to_text(&r->tlsa[0]);
	CHECK(text != NULL && strncmp(text, "3 1 1 ", 6) == 0);
	free(text);
	/* no association data: decodes (tlsa_usable() judges it) */
	CHECK(add(r, "\2\0\1", 3) == 0);
	CHECK(r->tlsa[1].len == 0);
	CHECK(add(r, "\3\1", 2) == -1);
	CHECK(r->n == 2);
	dns_result_free(r);
}

static void
test_txt(void)
{
	struct dns_result *r;

	r = newres(DNS_T_TXT);
	CHECK(add(r, "\5v=STS\3v1;\0\4 id=", 16) == 0);
	CHECK(r->n == 1);
	CHECK(r->txt[0].len == 12);
	CHECK_STR(r->txt[0].data, "v=STSv1; id=");
	CHECK(add(r, "\0", 1) == 0);			/* one empty string */
	CHECK(r->txt[1].len == 0 && r->txt[1].data[0] == '\0');
	CHECK(add(r, "\3a\0b", 4) == 0);		/* NUL inside */
	CHECK(r->txt[2].len == 3 && memcmp(r->txt[2].data, "a\0b", 3) == 0);
	CHECK(add(r, "", 0) == -1);			/* no string */
	CHECK(add(r, "\5abc", 4) == -1);		/* runs past */
	CHECK(add(r, "\2ab\3a", 5) == -1);		/* second runs past */
	CHECK(r->n == 3);
	dns_result_free(r);

	/* unsupported type */
	r = newres(99);
	CHECK(add(r, "abc", 3) == -1);
	dns_result_free(r);
}

static void
test_names_of_things(void)
{
	CHECK(dns_type_parse("mx") == DNS_T_MX);
	CHECK(dns_type_parse("TLSA") == DNS_T_TLSA);
	CHECK(dns_type_parse("SRV") == -1);
	CHECK_STR(dns_type_name(DNS_T_AAAA), "AAAA");
	CHECK(dns_type_name(99) == NULL);
	CHECK_STR(dns_status_name(DNS_NODATA), "nodata");
	CHECK_STR(dns_security_name(DNS_SEC_BOGUS), "bogus");
	CHECK_STR(dns_security_name(DNS_SEC_UNKNOWN), "unknown");
}

static char tmpdir[] = "/tmp/test_resolver.XXXXXX";

static const char *
writefile(const char *name, const char *text)
{
	static char path[4][512];
	static int i;
	FILE *fp;
	char *p = path[i++ % 4];

	snprintf(p, 512, "%s/%s", tmpdir, name);
	fp = fopen(p, "w");
	fputs(text, fp);
	fclose(fp);
	return p;
}

static int
try_new(struct event_base *base, const char *ta, const char *conf,
    char *err, size_t errlen)
{
	struct config cf;
	struct resolver *r;

	memset(&cf, 0, sizeof(cf));
	cf.trust_anchor_file = (char *)ta;
	cf.dns_config = (char *)conf;
	err[0] = '\0';
	r = resolver_new(base, &cf, err, errlen);
	if (r == NULL)
		return -1;
	CHECK(resolver_pending(r) == 0);
	resolver_free(r);
	return 0;
}

/*
 * resolver_query() refuses what it cannot look up, synchronously.  The
 * config's stub keeps anything that does get sent on loopback.
 */
static void
test_query_args(struct event_base *base, const char *ta, const char *conf)
{
	static const char *bad[] = { "", "a..b.test", ".test", "x.test..",
	    "\\", "a\\25", "a\\256.test",
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.test",
	};
	static const char *good[] = { "mx.example.test", "MX.Example.TEST.",
	    "_25._tcp.mx.example.test", "a\\.b.test", "a\\255.test", "test",
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.test",
	};
	struct config cf;
	struct resolver *r;
	struct resolver_query *q;
	char err[256], longname[300];
	size_t i;

	memset(&cf, 0, sizeof(cf));
	cf.trust_anchor_file = (char *)ta;
	cf.dns_config = (char *)conf;
	if ((r = resolver_new(base, &cf, err, sizeof(err))) == NULL) {
		CHECK(!"resolver_new");
		return;
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		q = resolver_query(r, bad[i], DNS_T_A, NULL, NULL, err,
		    sizeof(err));
		CHECK(q == NULL && strstr(err, "bad domain name") != NULL);
		if (q != NULL)
			resolver_cancel(q);
	}
	/* 4 labels of 63 = 259 octets on the wire: too long */
	memset(longname, 'a', sizeof(longname));
	for (i = 63; i < 256; i += 64)
		longname[i] = '.';
	longname[255] = '\0';
	CHECK(resolver_query(r, longname, DNS_T_A, NULL, NULL, err,
	    sizeof(err)) == NULL);
	longname[253] = '\0';			/* 63.63.63.61 = 255: fits */
	q = resolver_query(r, longname, DNS_T_A, NULL, NULL, err, sizeof(err));
	CHECK(q != NULL);
	resolver_cancel(q);
	CHECK(resolver_query(r, "mx.example.test", 33, NULL, NULL, err,
	    sizeof(err)) == NULL);
	CHECK(strstr(err, "unsupported") != NULL);
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		q = resolver_query(r, good[i], DNS_T_MX, NULL, NULL, err,
		    sizeof(err));
		CHECK(q != NULL);
		if (q == NULL)
			fprintf(stderr, "%s: %s\n", good[i], err);
	}
	CHECK(resolver_pending(r) == sizeof(good) / sizeof(good[0]));
	resolver_free(r);			/* cancels them: no callback */
}

static void
test_setup(void)
{
	struct event_base *base;
	char err[512], tabuf[512];
	const char *ta, *bad, *conf;

	if (mkdtemp(tmpdir) == NULL) {
		CHECK(!"mkdtemp");
		return;
	}
	base = event_base_new();
	/* a copy: writefile() reuses its four buffers */
	ta = dr_strlcpy(tabuf, writefile("ta.ds", "test. IN DS 62480 13 2 "
	    "297c0d83ec8b165f9dca4ccad96cb9d4d4bfe5550fc98f7255b670c78bd7f346\n"),
	    sizeof(tabuf)) < sizeof(tabuf) ? tabuf : NULL;
	CHECK(try_new(base, ta, NULL, err, sizeof(err)) == 0);
	/* Debian's root key, when installed */
	if (access("/usr/share/dns/root.key", R_OK) == 0)
		CHECK(try_new(base, "/usr/share/dns/root.key", NULL, err,
		    sizeof(err)) == 0);

	CHECK(try_new(base, "/nonexistent/root.key", NULL, err,
	    sizeof(err)) == -1);
	CHECK(strstr(err, "/nonexistent/root.key") != NULL);

	bad = writefile("bad.key", "this is not a trust anchor\n");
	CHECK(try_new(base, bad, NULL, err, sizeof(err)) == -1);
	CHECK(err[0] != '\0');

	conf = writefile("ok.conf", "server:\n  do-not-query-localhost: no\n"
	    "stub-zone:\n  name: \"test.\"\n  stub-addr: 127.0.50.1@5300\n");
	CHECK(try_new(base, ta, conf, err, sizeof(err)) == 0);

	test_query_args(base, ta, conf);

	conf = writefile("syntax.conf", "server:\n  no-such-option: 1\n");
	CHECK(try_new(base, ta, conf, err, sizeof(err)) == -1);
	CHECK(strstr(err, "dns_config") != NULL);

	/* validation cannot be configured away */
	conf = writefile("noval.conf", "server:\n  module-config: iterator\n");
	CHECK(try_new(base, ta, conf, err, sizeof(err)) == -1);
	CHECK(strstr(err, "validator") != NULL);

	CHECK(try_new(base, ta, "/nonexistent/unbound.conf", err,
	    sizeof(err)) == -1);
	CHECK(strstr(err, "dns_config") != NULL);

	event_base_free(base);
}

/*
 * Issue #23: a configuration that would validate nothing is refused by
 * resolver_new() and resolver_check_config(): an anchor file without a
 * DS or DNSKEY record (empty, comments only, other types), no anchor at
 * all, an empty anchor file or a non-anchor inline record in dns_config.
 */
static void
test_anchors(void)
{
	static const char ds[] = "test. IN DS 62480 13 2 297c0d83ec8b165f9dca"
	    "4ccad96cb9d4d4bfe5550fc98f7255b670c78bd7f346";
	struct event_base *base = event_base_new();
	struct config cf;
	char err[1024], ta[512], empty[512], conf[512];

	/* counting */
	CHECK(resolver_anchor_count(writefile("a0", ""), err,
	    sizeof(err)) == 0);
	CHECK(resolver_anchor_count(writefile("a1", "; only a comment\n\n"
	    "   \n"), err, sizeof(err)) == 0);
	CHECK(resolver_anchor_count(writefile("a2", "test. 3600 IN A "
	    "192.0.2.1\n"), err, sizeof(err)) == 0);
	snprintf(ta, sizeof(ta), "%s\n", ds);
	CHECK(resolver_anchor_count(writefile("a3", ta), err,
	    sizeof(err)) == 1);
	/* $ORIGIN, $TTL, relative owner, comment after the record */
	CHECK(resolver_anchor_count(writefile("a4", "$ORIGIN test.\n"
	    "$TTL 60\n@ DS 62480 13 2 297c0d83ec8b165f9dca4ccad96cb9d4d4bf"
	    "e5550fc98f7255b670c78bd7f346 ; key\nwww A 192.0.2.1\n"), err,
	    sizeof(err)) == 1);
	if (access("/usr/share/dns/root.key", R_OK) == 0)
		CHECK(resolver_anchor_count("/usr/share/dns/root.key", err,
		    sizeof(err)) >= 1);
	/* a truncated record is a syntax error, with its line */
	err[0] = '\0';
	CHECK(resolver_anchor_count(writefile("a5", "; x\ntest. IN DS "
	    "62480 13\n"), err, sizeof(err)) == -1);
	CHECK(strstr(err, "line") != NULL);
	CHECK(resolver_anchor_count("/nonexistent/x.key", err,
	    sizeof(err)) == -1);
	CHECK(strstr(err, "/nonexistent/x.key") != NULL);

	/* resolver_new() and resolver_check_config() refuse alike */
	dr_strlcpy(ta, writefile("good.ds", ta), sizeof(ta));
	dr_strlcpy(empty, writefile("empty.key", ""), sizeof(empty));
	memset(&cf, 0, sizeof(cf));

	cf.trust_anchor_file = ta;
	CHECK(resolver_check_config(&cf, err, sizeof(err)) == 0);

	cf.trust_anchor_file = empty;
	CHECK(try_new(base, empty, NULL, err, sizeof(err)) == -1);
	CHECK(strstr(err, empty) != NULL &&
	    strstr(err, "no DS or DNSKEY record") != NULL);
	CHECK(resolver_check_config(&cf, err, sizeof(err)) == -1);
	CHECK(strstr(err, empty) != NULL);

	/* no anchor anywhere */
	CHECK(try_new(base, NULL, NULL, err, sizeof(err)) == -1);
	CHECK(strstr(err, "trust anchor") != NULL);
	dr_strlcpy(conf, writefile("plain.conf", "server:\n"
	    "  do-not-query-localhost: no\n"), sizeof(conf));
	CHECK(try_new(base, "", conf, err, sizeof(err)) == -1);
	CHECK(strstr(err, "trust anchor") != NULL);
	cf.trust_anchor_file = NULL;
	cf.dns_config = conf;
	CHECK(resolver_check_config(&cf, err, sizeof(err)) == -1);
	CHECK(strstr(err, "trust anchor") != NULL);

	/* anchors from dns_config count, and are checked the same way */
	snprintf(err, sizeof(err), "server:\n  trust-anchor: \"%s\"\n", ds);
	dr_strlcpy(conf, writefile("inline.conf", err), sizeof(conf));
	CHECK(try_new(base, NULL, conf, err, sizeof(err)) == 0);
	snprintf(err, sizeof(err), "server:\n  trust-anchor-file: \"%s\"\n",
	    ta);
	dr_strlcpy(conf, writefile("file.conf", err), sizeof(conf));
	CHECK(try_new(base, NULL, conf, err, sizeof(err)) == 0);
	snprintf(err, sizeof(err), "server:\n  trust-anchor-file: \"%s\"\n",
	    empty);
	dr_strlcpy(conf, writefile("emptyfile.conf", err), sizeof(conf));
	CHECK(try_new(base, ta, conf, err, sizeof(err)) == -1);
	CHECK(strstr(err, empty) != NULL && strstr(err, "dns_config") !=
	    NULL);
	dr_strlcpy(conf, writefile("notanchor.conf", "server:\n"
	    "  trust-anchor: \"test. A 192.0.2.1\"\n"), sizeof(conf));
	CHECK(try_new(base, ta, conf, err, sizeof(err)) == -1);
	CHECK(strstr(err, "not a DS or DNSKEY") != NULL);

	/* DNSKEY answers are counted (the self-test), short rdata refused */
	{
		struct dns_result *r = newres(DNS_T_DNSKEY);

		CHECK(add(r, "\1\1\3\15", 4) == 0 && r->n == 1);
		CHECK(add(r, "\1\1\3", 3) == -1);
		dns_result_free(r);
		CHECK_STR(dns_type_name(DNS_T_DNSKEY), "DNSKEY");
	}
	/* PTR: one name, kept in mx[].host (danerelay check); CAA counted */
	{
		struct dns_result *r = newres(DNS_T_PTR);

		CHECK(add(r, "\5Relay\4good\4test\0", 17) == 0 &&
		    r->n == 1);
		CHECK_STR(r->mx[0].host, "relay.good.test");
		CHECK(add(r, "\5relay\4good\4test\0x", 18) == -1);
		CHECK(add(r, "\5rel", 4) == -1 && r->n == 1);
		dns_result_free(r);
		CHECK_STR(dns_type_name(DNS_T_PTR), "PTR");
		r = newres(DNS_T_CAA);
		CHECK(add(r, "\0\5issue", 7) == 0 && r->n == 1);
		CHECK(add(r, "\0\5iss", 5) == -1 && r->n == 1);
		dns_result_free(r);
		CHECK(dns_type_parse("caa") == DNS_T_CAA);
	}
	event_base_free(base);
}

static void
cleanup(void)
{
	static const char *names[] = { "ta.ds", "bad.key", "ok.conf",
	    "syntax.conf", "noval.conf", "a0", "a1", "a2", "a3", "a4", "a5",
	    "good.ds", "empty.key", "plain.conf", "inline.conf", "file.conf",
	    "emptyfile.conf", "notanchor.conf" };
	char path[512];
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
		unlink(path);
	}
	rmdir(tmpdir);
}

int
main(void)
{
	log_init("test_resolver", 1, 0);
	test_names();
	test_mx();
	test_addr();
	test_tlsa();
	test_txt();
	test_names_of_things();
	test_setup();
	test_anchors();
	cleanup();
	return t_done();
}
