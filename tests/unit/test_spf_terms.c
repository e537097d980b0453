/*
 * test_spf_terms.c - spf_terms_parse() (src/spf_terms.c): the terms of
 * an SPF record that `danerelay check` counts (RFC 7208 §4.6.1, §4.6.4,
 * §5, §6), and dmarc_txt.c's record and URI parsers (RFC 7489 §6.3,
 * §7.1), both pure parsers of the check.
 */
#include <string.h>

#include "dmarc_txt.h"
#include "dns.h"
#include "spf_terms.h"
#include "t.h"

static int
terms(const char *rec, struct spf_term *t)
{
	char err[256];
	int n;

	err[0] = '\0';
	n = spf_terms_parse(rec, strlen(rec), t, SPF_TERMS_MAX, err,
	    sizeof(err));
	if (n < 0)
		CHECK(err[0] != '\0');
	return n;
}

static void
spf(void)
{
	struct spf_term t[SPF_TERMS_MAX];
	int i, dns = 0;

	CHECK(spf_is_record("v=spf1", 6));
	CHECK(spf_is_record("V=SPF1 -all", 11));
	CHECK(!spf_is_record("v=spf10 -all", 12));
	CHECK(!spf_is_record("v=DMARC1", 8));

	CHECK(terms("v=spf1 include:_spf.example.org a a:mail.example.org/24 "
	    "mx/24 -ip6:2001:db8::/32 ip4:192.0.2.0/24 exists:%{i}.x.example "
	    "?ptr redirect=_spf.example.net exp=explain.%{d} foo=bar ~all",
	    t) == 12);
	CHECK(t[0].kind == SPF_TERM_INCLUDE && t[0].qual == '+');
	CHECK_STR(t[0].target, "_spf.example.org");
	CHECK(t[1].kind == SPF_TERM_A && t[1].target[0] == '\0');
	CHECK(t[2].kind == SPF_TERM_A);
	CHECK_STR(t[2].target, "mail.example.org");
	CHECK(t[3].kind == SPF_TERM_MX && t[3].target[0] == '\0');
	CHECK(t[4].kind == SPF_TERM_IP6 && t[4].qual == '-');
	CHECK_STR(t[4].target, "2001:db8::");
	CHECK(t[5].kind == SPF_TERM_IP4);
	CHECK_STR(t[5].target, "192.0.2.0");
	CHECK(t[6].kind == SPF_TERM_EXISTS && t[6].macro);
	CHECK(t[7].kind == SPF_TERM_PTR && t[7].qual == '?');
	CHECK(t[8].kind == SPF_TERM_REDIRECT);
	CHECK_STR(t[8].target, "_spf.example.net");
	CHECK(t[9].kind == SPF_TERM_EXP);
	CHECK(t[10].kind == SPF_TERM_UNKNOWN_MOD);
	CHECK(t[11].kind == SPF_TERM_ALL && t[11].qual == '~');
	for (i = 0; i < 12; i++)
		dns += spf_term_dns(t[i].kind);
	CHECK(dns == 7);	/* include a a mx exists ptr redirect */

	/* spaces anywhere, case, an empty record */
	CHECK(terms("v=spf1   MX   -ALL  ", t) == 2 &&
	    t[0].kind == SPF_TERM_MX && t[1].kind == SPF_TERM_ALL &&
	    t[1].qual == '-');
	CHECK(terms("v=spf1", t) == 0);
	/* refused */
	CHECK(terms("v=spf1 bogus:x", t) == -1);
	CHECK(terms("v=spf1 include", t) == -1);	/* needs a value */
	CHECK(terms("v=spf1 all:x", t) == -1);
	CHECK(terms("v=spf1 ip4/24", t) == -1);
	CHECK(terms("v=spf1 +", t) == -1);
	CHECK(terms("v=spf1 a\tmx", t) == -1);		/* control char */
	CHECK(terms("spf1 -all", t) == -1);
}

static int
dmarc(const char *rec, struct dmarc_rec *r)
{
	char err[256];
	int rc;

	err[0] = '\0';
	rc = dmarc_txt_parse(rec, strlen(rec), r, err, sizeof(err));
	if (rc != 0)
		CHECK(err[0] != '\0' && r->nrua == 0 && r->p[0] == '\0');
	return rc;
}

static void
dmarc_tests(void)
{
	struct dmarc_rec r;
	struct dns_txt txt[3];
	char dom[256], err[256];

	CHECK(dmarc("v=DMARC1; p=Reject; sp=none; adkim=s; pct=50; "
	    "rua=mailto:a@example.org, mailto:b@Reports.Example!10m; "
	    "ruf=mailto:f@example.net; x=y", &r) == 0);
	CHECK_STR(r.p, "reject");
	CHECK_STR(r.sp, "none");
	CHECK(r.adkim == 's' && r.aspf == 'r' && r.pct == 50);
	CHECK(r.nrua == 2 && r.nruf == 1);
	CHECK_STR(r.rua[1], "mailto:b@Reports.Example!10m");
	CHECK(dmarc_uri_domain(r.rua[1], dom, sizeof(dom)) == 0);
	CHECK_STR(dom, "reports.example");
	dmarc_rec_clear(&r);
	/* no p= but a rua: p=none (§6.3) */
	CHECK(dmarc("v=DMARC1; rua=mailto:a@example.org", &r) == 0);
	CHECK_STR(r.p, "none");
	dmarc_rec_clear(&r);
	/* refused */
	CHECK(dmarc("v=DMARC1", &r) == -1);		/* no p, no rua */
	CHECK(dmarc("p=none; v=DMARC1", &r) == -1);	/* v= not first */
	CHECK(dmarc("v=DMARC1; p=maybe", &r) == -1);
	CHECK(dmarc("v=DMARC1; p=none; pct=101", &r) == -1);
	CHECK(dmarc("v=DMARC1; p=none; adkim=x", &r) == -1);
	CHECK(dmarc("v=DMARC1; p=none; rua=,", &r) == -1);
	/* URIs */
	CHECK(dmarc_uri_domain("https://example.org/", dom, sizeof(dom)) ==
	    -1);
	CHECK(dmarc_uri_domain("mailto:a@exa..mple", dom, sizeof(dom)) == -1);
	CHECK(dmarc_uri_domain("mailto:a@example.org.", dom, sizeof(dom)) ==
	    0);
	CHECK_STR(dom, "example.org");
	/* the RRset: other records ignored, two DMARC records refused */
	txt[0].data = "v=spf1 -all";
	txt[0].len = strlen(txt[0].data);
	txt[1].data = "v=DMARC1; p=quarantine";
	txt[1].len = strlen(txt[1].data);
	txt[2].data = "v=DMARC1; p=none";
	txt[2].len = strlen(txt[2].data);
	CHECK(dmarc_txt_select(txt, 1, &r, err, sizeof(err)) == 0);
	CHECK(dmarc_txt_select(txt, 2, &r, err, sizeof(err)) == 1);
	CHECK_STR(r.p, "quarantine");
	dmarc_rec_clear(&r);
	CHECK(dmarc_txt_select(txt, 3, &r, err, sizeof(err)) == -1);
}

int
main(void)
{
	spf();
	dmarc_tests();
	return t_done();
}
