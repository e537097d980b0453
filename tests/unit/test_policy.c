/*
 * test_policy.c - the security decision (src/policy.c) against every row
 * of DESIGN.md's "Delivery security semantics" and every rule under it.
 *
 * Each case builds a small DNS world by hand (answers with their DNSSEC
 * states), runs the orchestration exactly as the delivery code must
 * (policy_hosts -> A/AAAA -> policy_tlsa_next loop -> policy_decide),
 * records which TLSA names were asked, and checks the decision.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>

#include "policy.h"
#include "util.h"
#include "t.h"

/* ---- a DNS world ------------------------------------------------------ */

#define MAXREC 64

struct rec {
	char name[256];
	int type;
	struct dns_result *r;
};

static struct rec world[MAXREC];
static size_t nworld;
static char queried[16][300];		/* TLSA names asked, in order */
static size_t nqueried;

static void
world_reset(void)
{
	size_t i, j;

	for (i = 0; i < nworld; i++) {
		struct dns_result *r = world[i].r;

		free(r->mx);
		free(r->addr);
		for (j = 0; r->tlsa != NULL && j < r->n; j++)
			free(r->tlsa[j].data);
		free(r->tlsa);
		free(r);
	}
	nworld = 0;
	nqueried = 0;
}

static struct dns_result *
add(const char *name, int type, enum dns_status st, enum dns_security sec)
{
	struct dns_result *r = xcalloc(1, sizeof(*r));

	if (nworld == MAXREC)
		abort();
	dr_strlcpy(r->qname, name, sizeof(r->qname));
	dr_strlcpy(r->canonname, name, sizeof(r->canonname));
	r->qtype = type;
	r->status = st;
	r->security = sec;
	if (st == DNS_TEMPFAIL)
		dr_strlcpy(r->reason, sec == DNS_SEC_BOGUS ?
		    "signature expired" : "SERVFAIL", sizeof(r->reason));
	dr_strlcpy(world[nworld].name, name, sizeof(world[nworld].name));
	world[nworld].type = type;
	world[nworld].r = r;
	nworld++;
	return r;
}

/* MX: "10 mx1.example.org", ...; "0 ." alone is a null MX. */
static void
mx(const char *domain, enum dns_security sec, ...)
{
	struct dns_result *r = add(domain, DNS_T_MX, DNS_OK, sec);
	const char *s;
	va_list ap;

	va_start(ap, sec);
	while ((s = va_arg(ap, const char *)) != NULL) {
		r->mx = xrealloc(r->mx, (r->n + 1) * sizeof(*r->mx));
		r->mx[r->n].pref = (uint16_t)atoi(s);
		s = strchr(s, ' ') + 1;
		dr_strlcpy(r->mx[r->n].host, strcmp(s, ".") == 0 ? "" : s,
		    sizeof(r->mx[r->n].host));
		r->n++;
	}
	va_end(ap);
	r->null_mx = r->n == 1 && r->mx[0].pref == 0 &&
	    r->mx[0].host[0] == '\0';
}

static void
mx_status(const char *domain, enum dns_status st, enum dns_security sec)
{
	add(domain, DNS_T_MX, st, sec);
}

static struct dns_result *
addrs(const char *name, int type, enum dns_security sec, const char *canon,
    ...)
{
	struct dns_result *r = add(name, type, DNS_OK, sec);
	const char *s;
	va_list ap;

	if (canon != NULL) {
		r->cname = 1;
		dr_strlcpy(r->canonname, canon, sizeof(r->canonname));
	}
	va_start(ap, canon);
	while ((s = va_arg(ap, const char *)) != NULL) {
		r->addr = xrealloc(r->addr, (r->n + 1) * sizeof(*r->addr));
		memset(&r->addr[r->n], 0, sizeof(r->addr[r->n]));
		r->addr[r->n].family = type == DNS_T_A ? AF_INET : AF_INET6;
		dr_strlcpy(r->addr[r->n].text, s, sizeof(r->addr[r->n].text));
		r->n++;
	}
	va_end(ap);
	return r;
}

/* A host with one IPv4 address and no AAAA, both with security sec. */
static void
host4(const char *name, enum dns_security sec, const char *ip)
{
	addrs(name, DNS_T_A, sec, NULL, ip, NULL);
	add(name, DNS_T_AAAA, DNS_NODATA, sec);
}

/* Same, reached through a CNAME to canon. */
static void
host4_cname(const char *name, const char *canon, enum dns_security sec,
    const char *ip)
{
	struct dns_result *r;

	addrs(name, DNS_T_A, sec, canon, ip, NULL);
	r = add(name, DNS_T_AAAA, DNS_NODATA, sec);
	r->cname = 1;
	dr_strlcpy(r->canonname, canon, sizeof(r->canonname));
}

static void
tlsa(const char *qname, enum dns_security sec, ...)
{
	struct dns_result *r = add(qname, DNS_T_TLSA, DNS_OK, sec);
	const char *s;
	va_list ap;

	va_start(ap, sec);
	while ((s = va_arg(ap, const char *)) != NULL) {
		r->tlsa = xrealloc(r->tlsa, (r->n + 1) * sizeof(*r->tlsa));
		if (tlsa_from_text(s, &r->tlsa[r->n]) == -1)
			abort();
		r->n++;
	}
	va_end(ap);
}

static void
tlsa_status(const char *qname, enum dns_status st, enum dns_security sec)
{
	add(qname, DNS_T_TLSA, st, sec);
}

/* Not in the world: a secure NXDOMAIN (owned by the world too). */
static const struct dns_result *
lookup(const char *name, int type)
{
	size_t i;

	for (i = 0; i < nworld; i++)
		if (world[i].type == type && strcasecmp(world[i].name, name) == 0)
			return world[i].r;
	return add(name, type, DNS_NXDOMAIN, DNS_SEC_SECURE);
}

static int
was_queried(const char *qname)
{
	size_t i;

	for (i = 0; i < nqueried; i++)
		if (strcmp(queried[i], qname) == 0)
			return 1;
	return 0;
}

/* ---- the orchestration, as delivery.c must do it ----------------------- */

struct run {
	struct policy_input in;
	struct policy_host *hosts;
	size_t nhosts;
	struct decision d;
};

static const char *match_none[1];

static void
run_full(struct run *x, const char *domain, enum policy_level level,
    const struct policy_sts *sts, const char *const *match, size_t nmatch,
    int port)
{
	char qname[DNS_NAME_BUF];
	size_t i, k;

	memset(x, 0, sizeof(*x));
	x->in.domain = domain;
	x->in.port = port;
	x->in.level = level;
	x->in.match = match;
	x->in.nmatch = nmatch;
	x->in.sts = sts;
	x->in.mx = lookup(domain, DNS_T_MX);
	x->nhosts = policy_hosts(&x->in, &x->hosts);
	x->in.hosts = x->hosts;
	x->in.nhosts = x->nhosts;
	for (i = 0; i < x->nhosts; i++) {
		x->hosts[i].a = lookup(x->hosts[i].name, DNS_T_A);
		x->hosts[i].aaaa = lookup(x->hosts[i].name, DNS_T_AAAA);
	}
	for (i = 0; i < x->nhosts; i++) {
		for (k = 0; k < POLICY_MAX_TLSA &&
		    policy_tlsa_next(&x->in, i, qname, sizeof(qname)); k++) {
			if (nqueried < 16)
				dr_strlcpy(queried[nqueried++], qname,
				    sizeof(queried[0]));
			x->hosts[i].tlsa[k] = lookup(qname, DNS_T_TLSA);
		}
		/* The loop ends by itself. */
		CHECK(!policy_tlsa_next(&x->in, i, qname, sizeof(qname)));
	}
	policy_decide(&x->in, &x->d);
}

static void
run(struct run *x, const char *domain, enum policy_level level,
    const struct policy_sts *sts)
{
	run_full(x, domain, level, sts, match_none, 0, 25);
}

static void
run_free(struct run *x)
{
	decision_free(&x->d);
	policy_hosts_free(x->hosts, x->nhosts);
	memset(x, 0, sizeof(*x));
	world_reset();
}

static int
has_name(const struct decision_host *h, const char *name)
{
	size_t i;

	for (i = 0; i < h->nnames; i++)
		if (strcmp(h->names[i], name) == 0)
			return 1;
	return 0;
}

static int
contains(const char *hay, const char *needle)
{
	return hay != NULL && strstr(hay, needle) != NULL;
}

#define SEC	DNS_SEC_SECURE
#define INSEC	DNS_SEC_INSECURE
#define BOGUS	DNS_SEC_BOGUS

static const char *EE1 = "3 1 1 "
    "3111668338043DE264D0256A702248696C9484B6221A42740F920187B4C61838";
static const char *TA1 = "2 0 1 "
    "0DAA76425A1FC398C55A643D5A2485AE4CC2B64B9515A75054722B2E83C31BBD";
static const char *PKIXEE = "1 1 1 "
    "3111668338043DE264D0256A702248696C9484B6221A42740F920187B4C61838";
static const char *PKIXTA = "0 0 1 "
    "FE7C8E01110627A782765E468D8CB4D2CC7907EAC4BA5974CD92B540ED2AAC3C";
static const char *BADLEN = "3 1 1 3111668338043DE2";

static const char *sts_mx[] = { "mx1.example.org", "*.mail.example.net" };
static const char *sts_lines[] = { "version: STSv1", "mode: enforce",
    "mx: mx1.example.org", "mx: *.mail.example.net", "max_age: 86400" };

static struct policy_sts sts_enforce = {
	STS_MODE_ENFORCE, sts_mx, 2, sts_lines, 5, NULL };
static struct policy_sts sts_testing = {
	STS_MODE_TESTING, sts_mx, 2, sts_lines, 5, NULL };
static struct policy_sts sts_fetch_error = {
	STS_MODE_ENFORCE, sts_mx, 2, sts_lines, 5, "sts-policy-fetch-error" };

/* The common secure DANE world: one MX with a DANE-EE record. */
static void
world_dane(void)
{
	mx("example.org", SEC, "10 mx1.example.org", NULL);
	host4("mx1.example.org", SEC, "192.0.2.1");
	tlsa("_25._tcp.mx1.example.org", SEC, EE1, NULL);
}

/* ---- cases: the level table --------------------------------------------- */

static void
dane_secure_mx_host_and_tlsa_gives_dane(void)
{
	struct run x;
	const struct decision_host *h;

	world_dane();
	run(&x, "example.org", POLICY_DANE, NULL);
	CHECK(x.d.action == POLICY_DELIVER);
	CHECK(x.d.mx_secure);
	CHECK(x.d.nhosts == 1 && x.d.ncandidates == 1);
	h = &x.d.hosts[0];
	CHECK(h->tls == PTLS_DANE);
	CHECK(h->ntlsa == 1 && h->tlsa[0].usage == 3);
	CHECK_STR(h->tlsa_base, "mx1.example.org");
	CHECK_STR(h->sni, "mx1.example.org");		/* SNI = base */
	CHECK(has_name(h, "mx1.example.org"));
	CHECK(!has_name(h, "example.org"));		/* not the next hop */
	CHECK(h->naddrs == 1 && strcmp(h->addrs[0].text, "192.0.2.1") == 0);
	CHECK(h->rpt_type == RPT_TLSA && h->nrpt_strings == 1);
	CHECK_STR(h->rpt_strings[0], EE1);
	CHECK_STR(h->rpt_domain, "example.org");
	CHECK(h->rpt_failure == NULL);
	CHECK(nqueried == 1 && was_queried("_25._tcp.mx1.example.org"));
	run_free(&x);
}

static void
dane_mixed_records_keep_only_usable(void)
{
	struct run x;
	const struct decision_host *h;

	mx("example.org", SEC, "10 mx1.example.org", NULL);
	host4("mx1.example.org", SEC, "192.0.2.1");
	tlsa("_25._tcp.mx1.example.org", SEC, PKIXEE, TA1, PKIXTA, BADLEN,
	    NULL);
	run(&x, "example.org", POLICY_DANE, NULL);
	h = &x.d.hosts[0];
	CHECK(x.d.action == POLICY_DELIVER && h->tls == PTLS_DANE);
	CHECK(h->ntlsa == 1 && h->tlsa[0].usage == 2);	/* PKIX dropped */
	CHECK(h->nrpt_strings == 4);	/* the policy is the whole RRset */
	run_free(&x);
}

static void
dane_all_tlsa_unusable_gives_encrypt(void)
{
	struct run x;
	const struct decision_host *h;

	mx("example.org", SEC, "10 mx1.example.org", NULL);
	host4("mx1.example.org", SEC, "192.0.2.1");
	tlsa("_25._tcp.mx1.example.org", SEC, PKIXEE, PKIXTA, BADLEN, NULL);
	run(&x, "example.org", POLICY_DANE, &sts_enforce);
	h = &x.d.hosts[0];
	CHECK(x.d.action == POLICY_DELIVER);
	CHECK(h->tls == PTLS_ENCRYPT);		/* mandatory, unauthenticated */
	CHECK(h->ntlsa == 0);
	CHECK_STR(h->tlsa_base, "mx1.example.org");
	CHECK_STR(h->sni, "mx1.example.org");
	CHECK_STR(h->rpt_failure, "tlsa-invalid");
	CHECK(h->rpt_type == RPT_TLSA);		/* DANE beat MTA-STS */
	run_free(&x);
}

static void
dane_no_tlsa_no_sts_gives_may(void)
{
	struct run x;
	const struct decision_host *h;

	mx("example.org", SEC, "10 mx1.example.org", NULL);
	host4("mx1.example.org", SEC, "192.0.2.1");
	/* _25._tcp.mx1 not in the world: secure NXDOMAIN */
	run(&x, "example.org", POLICY_DANE, NULL);
	h = &x.d.hosts[0];
	CHECK(x.d.action == POLICY_DELIVER && h->tls == PTLS_MAY);
	CHECK(h->rpt_type == RPT_NO_POLICY && h->ntlsa == 0);
	CHECK(h->tlsa_base == NULL);
	CHECK(was_queried("_25._tcp.mx1.example.org"));
	run_free(&x);
}

static void
dane_tlsa_nodata_gives_may(void)
{
	struct run x;

	mx("example.org", SEC, "10 mx1.example.org", NULL);
	host4("mx1.example.org", SEC, "192.0.2.1");
	tlsa_status("_25._tcp.mx1.example.org", DNS_NODATA, SEC);
	run(&x, "example.org", POLICY_DANE, NULL);
	CHECK(x.d.action == POLICY_DELIVER && x.d.hosts[0].tls == PTLS_MAY);
	run_free(&x);
}

static void
dane_tlsa_insecure_records_are_ignored(void)
{
	struct run x;

	mx("example.org", SEC, "10 mx1.example.org", NULL);
	host4("mx1.example.org", SEC, "192.0.2.1");
	tlsa("_25._tcp.mx1.example.org", INSEC, EE1, NULL);
	run(&x, "example.org", POLICY_DANE, NULL);
	CHECK(x.d.action == POLICY_DELIVER && x.d.hosts[0].tls == PTLS_MAY);
	CHECK(x.d.hosts[0].ntlsa == 0);
	run_free(&x);
}

static void
dane_no_tlsa_sts_enforce_gives_verify(void)
{
	struct run x;
	const struct decision_host *h;

	mx("example.org", SEC, "10 mx1.example.org", NULL);
	host4("mx1.example.org", SEC, "192.0.2.1");
	run(&x, "example.org", POLICY_DANE, &sts_enforce);
	h = &x.d.hosts[0];
	CHECK(x.d.action == POLICY_DELIVER && h->tls == PTLS_VERIFY);
	CHECK(h->nnames == 1 && has_name(h, "mx1.example.org"));
	CHECK(h->rpt_type == RPT_STS && h->nrpt_strings == 5);
	CHECK(!h->sts_testing);
	run_free(&x);
}

static void
dane_sts_enforce_mx_not_in_policy_is_skipped(void)
{
	struct run x;
	const struct decision_host *h;

	mx("example.org", INSEC, "10 mx9.example.org", NULL);
	host4("mx9.example.org", INSEC, "192.0.2.9");
	run(&x, "example.org", POLICY_DANE, &sts_enforce);
	h = &x.d.hosts[0];
	CHECK(h->skip && h->skip_temp);
	CHECK_STR(h->rpt_failure, "validation-failure");
	CHECK(x.d.action == POLICY_DEFER);		/* never cleartext */
	CHECK_STR(x.d.dsn, "4.7.5");
	CHECK(contains(x.d.reason, "mx9.example.org"));
	run_free(&x);
}

static void
dane_sts_enforce_wildcard_pattern(void)
{
	struct run x;

	mx("example.org", INSEC, "10 a.mail.example.net",
	    "20 a.b.mail.example.net", NULL);
	host4("a.mail.example.net", INSEC, "192.0.2.1");
	host4("a.b.mail.example.net", INSEC, "192.0.2.2");
	run(&x, "example.org", POLICY_DANE, &sts_enforce);
	CHECK(x.d.action == POLICY_DELIVER && x.d.ncandidates == 1);
	CHECK(x.d.hosts[0].tls == PTLS_VERIFY && !x.d.hosts[0].skip);
	CHECK(x.d.hosts[1].skip);	/* "*" is exactly one label */
	run_free(&x);
}

static void
dane_sts_testing_delivers_opportunistically(void)
{
	struct run x;
	const struct decision_host *h;

	mx("example.org", INSEC, "10 mx1.example.org", "20 other.example.com",
	    NULL);
	host4("mx1.example.org", INSEC, "192.0.2.1");
	host4("other.example.com", INSEC, "192.0.2.2");
	run(&x, "example.org", POLICY_DANE, &sts_testing);
	CHECK(x.d.action == POLICY_DELIVER && x.d.ncandidates == 2);
	h = &x.d.hosts[0];
	CHECK(h->tls == PTLS_MAY && h->sts_testing && !h->sts_mismatch);
	CHECK(has_name(h, "mx1.example.org") && h->rpt_type == RPT_STS);
	h = &x.d.hosts[1];
	CHECK(h->tls == PTLS_MAY && h->sts_testing && h->sts_mismatch);
	run_free(&x);
}

static void
dane_sts_failure_is_reported_not_enforced(void)
{
	struct run x;
	const struct decision_host *h;

	mx("example.org", INSEC, "10 mx9.example.org", NULL);
	host4("mx9.example.org", INSEC, "192.0.2.9");
	run(&x, "example.org", POLICY_DANE, &sts_fetch_error);
	h = &x.d.hosts[0];
	CHECK(x.d.action == POLICY_DELIVER && h->tls == PTLS_MAY);
	CHECK(h->rpt_type == RPT_STS);
	CHECK_STR(h->rpt_failure, "sts-policy-fetch-error");
	run_free(&x);
}

static void
dane_beats_sts(void)
{
	struct run x;
	const struct decision_host *h;

	/* TLSA present; the STS policy does not even list this host. */
	mx("example.org", SEC, "10 mx7.example.org", NULL);
	host4("mx7.example.org", SEC, "192.0.2.7");
	tlsa("_25._tcp.mx7.example.org", SEC, EE1, NULL);
	run(&x, "example.org", POLICY_DANE, &sts_enforce);
	h = &x.d.hosts[0];
	CHECK(x.d.action == POLICY_DELIVER && h->tls == PTLS_DANE);
	CHECK(!h->skip && h->rpt_type == RPT_TLSA && !h->sts_testing);
	run_free(&x);
}

static void
dane_insecure_mx_no_dane_for_any_host(void)
{
	struct run x;

	/* Host and TLSA secure, but the MX RRset is not (RFC 7672 §2.2.1). */
	mx("example.org", INSEC, "10 mx1.example.org", NULL);
	host4("mx1.example.org", SEC, "192.0.2.1");
	tlsa("_25._tcp.mx1.example.org", SEC, EE1, NULL);
	run(&x, "example.org", POLICY_DANE, NULL);
	CHECK(!x.d.mx_secure);
	CHECK(x.d.action == POLICY_DELIVER && x.d.hosts[0].tls == PTLS_MAY);
	CHECK(nqueried == 0);			/* no TLSA query at all */
	CHECK(contains(x.d.hosts[0].reason, "MX RRset"));
	run_free(&x);
}

static void
dane_insecure_mx_with_sts_enforce_gives_verify(void)
{
	struct run x;

	mx("example.org", INSEC, "10 mx1.example.org", NULL);
	host4("mx1.example.org", SEC, "192.0.2.1");
	tlsa("_25._tcp.mx1.example.org", SEC, EE1, NULL);
	run(&x, "example.org", POLICY_DANE, &sts_enforce);
	CHECK(x.d.hosts[0].tls == PTLS_VERIFY && nqueried == 0);
	run_free(&x);
}

static void
dane_insecure_host_gets_no_tlsa_query(void)
{
	struct run x;

	/* Secure MX, insecure provider host whose TLSA would SERVFAIL. */
	mx("example.org", SEC, "10 mx.bigprovider.example", NULL);
	host4("mx.bigprovider.example", INSEC, "192.0.2.3");
	tlsa_status("_25._tcp.mx.bigprovider.example", DNS_TEMPFAIL,
	    DNS_SEC_UNKNOWN);
	run(&x, "example.org", POLICY_DANE, NULL);
	CHECK(nqueried == 0);
	CHECK(!policy_want_tlsa(&x.in, 0));
	CHECK(x.d.action == POLICY_DELIVER && x.d.hosts[0].tls == PTLS_MAY);
	run_free(&x);
}

static void
dane_only_with_dane_delivers(void)
{
	struct run x;

	world_dane();
	run(&x, "example.org", POLICY_DANE_ONLY, NULL);
	CHECK(x.d.action == POLICY_DELIVER && x.d.hosts[0].tls == PTLS_DANE);
	run_free(&x);
}

static void
dane_only_without_dane_defers(void)
{
	struct run x;

	mx("example.org", INSEC, "10 mx1.example.org", NULL);
	host4("mx1.example.org", INSEC, "192.0.2.1");
	run(&x, "example.org", POLICY_DANE_ONLY, &sts_enforce);
	CHECK(x.d.action == POLICY_DEFER);	/* not even MTA-STS */
	CHECK(x.d.hosts[0].skip && x.d.hosts[0].skip_temp);
	CHECK_STR(x.d.hosts[0].rpt_failure, "dane-required");
	CHECK_STR(x.d.dsn, "4.7.5");
	CHECK(contains(x.d.reason, "dane-only"));
	run_free(&x);
}

static void
dane_only_no_tlsa_defers(void)
{
	struct run x;

	mx("example.org", SEC, "10 mx1.example.org", NULL);
	host4("mx1.example.org", SEC, "192.0.2.1");
	run(&x, "example.org", POLICY_DANE_ONLY, NULL);
	CHECK(x.d.action == POLICY_DEFER);
	CHECK_STR(x.d.hosts[0].rpt_failure, "dane-required");
	run_free(&x);
}

static void
dane_only_unusable_tlsa_defers(void)
{
	struct run x;

	mx("example.org", SEC, "10 mx1.example.org", NULL);
	host4("mx1.example.org", SEC, "192.0.2.1");
	tlsa("_25._tcp.mx1.example.org", SEC, PKIXEE, NULL);
	run(&x, "example.org", POLICY_DANE_ONLY, NULL);
	CHECK(x.d.action == POLICY_DEFER);
	CHECK_STR(x.d.hosts[0].rpt_failure, "tlsa-invalid");
	run_free(&x);
}

static void
verify_level_names_mx_host(void)
{
	struct run x;
	const struct decision_host *h;

	world_dane();
	run(&x, "example.org", POLICY_VERIFY, &sts_testing);
	h = &x.d.hosts[0];
	CHECK(x.d.action == POLICY_DELIVER && h->tls == PTLS_VERIFY);
	CHECK(h->nnames == 1 && has_name(h, "mx1.example.org"));
	CHECK_STR(h->sni, "mx1.example.org");
	CHECK(h->ntlsa == 0 && nqueried == 0);	/* the table overrides DANE */
	CHECK(!h->sts_testing && h->rpt_type == RPT_NO_POLICY);
	run_free(&x);
}

static void
verify_level_match_names(void)
{
	struct run x;
	const struct decision_host *h;
	const char *m[] = { "hostname", "nexthop", "dot-nexthop",
	    "mail.partner.example", "hostname" };

	world_dane();
	run_full(&x, "example.org", POLICY_VERIFY, NULL, m, 5, 25);
	h = &x.d.hosts[0];
	CHECK(h->tls == PTLS_VERIFY && h->nnames == 4);
	CHECK(has_name(h, "mx1.example.org") && has_name(h, "example.org"));
	CHECK(has_name(h, ".example.org"));
	CHECK(has_name(h, "mail.partner.example"));
	run_free(&x);
}

static void
secure_level_names_next_hop(void)
{
	struct run x;
	const struct decision_host *h;

	world_dane();
	run(&x, "example.org", POLICY_SECURE, NULL);
	h = &x.d.hosts[0];
	CHECK(x.d.action == POLICY_DELIVER && h->tls == PTLS_VERIFY);
	CHECK(h->nnames == 2 && has_name(h, "example.org") &&
	    has_name(h, ".example.org"));
	CHECK(!has_name(h, "mx1.example.org"));
	CHECK(nqueried == 0);
	run_free(&x);
}

static void
secure_level_match_overrides(void)
{
	struct run x;
	const char *m[] = { "relay.partner.example" };

	world_dane();
	run_full(&x, "example.org", POLICY_SECURE, NULL, m, 1, 25);
	CHECK(x.d.hosts[0].nnames == 1 &&
	    has_name(&x.d.hosts[0], "relay.partner.example"));
	run_free(&x);
}

static void
encrypt_level(void)
{
	struct run x;

	world_dane();
	run(&x, "example.org", POLICY_ENCRYPT, NULL);
	CHECK(x.d.action == POLICY_DELIVER);
	CHECK(x.d.hosts[0].tls == PTLS_ENCRYPT && x.d.hosts[0].ntlsa == 0);
	CHECK(nqueried == 0);
	run_free(&x);
}

static void
may_level(void)
{
	struct run x;

	world_dane();
	run(&x, "example.org", POLICY_MAY, &sts_enforce);
	CHECK(x.d.action == POLICY_DELIVER && x.d.hosts[0].tls == PTLS_MAY);
	CHECK(nqueried == 0 && !x.d.hosts[0].sts_testing);
	run_free(&x);
}

static void
none_level(void)
{
	struct run x;

	world_dane();
	run(&x, "example.org", POLICY_NONE, NULL);
	CHECK(x.d.action == POLICY_DELIVER && x.d.hosts[0].tls == PTLS_NONE);
	CHECK(x.d.hosts[0].sni == NULL && nqueried == 0);
	run_free(&x);
}

/* ---- cases: DNSSEC failure rules ---------------------------------------- */

static void
bogus_mx_defers_domain(void)
{
	struct run x;

	mx_status("example.org", DNS_TEMPFAIL, BOGUS);
	host4("mx1.example.org", SEC, "192.0.2.1");
	run(&x, "example.org", POLICY_DANE, NULL);
	CHECK(x.nhosts == 0);
	CHECK(x.d.action == POLICY_DEFER && x.d.nhosts == 0);
	CHECK_STR(x.d.rpt_failure, "dnssec-invalid");
	CHECK(contains(x.d.reason, "bogus"));
	CHECK_STR(x.d.dsn, "4.7.5");
	run_free(&x);
}

static void
bogus_mx_defers_even_for_may(void)
{
	struct run x;

	mx_status("example.org", DNS_TEMPFAIL, BOGUS);
	run(&x, "example.org", POLICY_MAY, NULL);
	CHECK(x.d.action == POLICY_DEFER);	/* never "insecure" */
	run_free(&x);
}

static void
bogus_address_skips_host(void)
{
	struct run x;
	const struct decision_host *h;

	mx("example.org", SEC, "10 mx1.example.org", "20 mx2.example.org",
	    NULL);
	add("mx1.example.org", DNS_T_A, DNS_TEMPFAIL, BOGUS);
	add("mx1.example.org", DNS_T_AAAA, DNS_NODATA, SEC);
	host4("mx2.example.org", SEC, "192.0.2.2");
	tlsa("_25._tcp.mx1.example.org", SEC, EE1, NULL);
	tlsa("_25._tcp.mx2.example.org", SEC, EE1, NULL);
	run(&x, "example.org", POLICY_DANE, NULL);
	CHECK(x.d.action == POLICY_DELIVER && x.d.ncandidates == 1);
	h = &x.d.hosts[0];
	CHECK(h->skip && h->skip_temp && contains(h->reason, "bogus"));
	CHECK_STR(h->rpt_failure, "dnssec-invalid");
	CHECK(h->naddrs == 0);
	CHECK(!was_queried("_25._tcp.mx1.example.org"));
	CHECK(x.d.hosts[1].tls == PTLS_DANE);
	run_free(&x);
}

static void
bogus_address_only_host_defers(void)
{
	struct run x;

	mx("example.org", SEC, "10 mx1.example.org", NULL);
	add("mx1.example.org", DNS_T_A, DNS_TEMPFAIL, BOGUS);
	add("mx1.example.org", DNS_T_AAAA, DNS_NODATA, SEC);
	run(&x, "example.org", POLICY_MAY, NULL);
	CHECK(x.d.action == POLICY_DEFER);
	CHECK_STR(x.d.dsn, "4.7.5");
	run_free(&x);
}

static void
bogus_aaaa_with_good_a_skips_host(void)
{
	struct run x;

	mx("example.org", SEC, "10 mx1.example.org", NULL);
	addrs("mx1.example.org", DNS_T_A, SEC, NULL, "192.0.2.1", NULL);
	add("mx1.example.org", DNS_T_AAAA, DNS_TEMPFAIL, BOGUS);
	run(&x, "example.org", POLICY_DANE, NULL);
	CHECK(x.d.action == POLICY_DEFER && x.d.hosts[0].skip);
	run_free(&x);
}

static void
bogus_tlsa_skips_host(void)
{
	struct run x;
	const struct decision_host *h;

	mx("example.org", SEC, "10 mx1.example.org", NULL);
	host4("mx1.example.org", SEC, "192.0.2.1");
	tlsa_status("_25._tcp.mx1.example.org", DNS_TEMPFAIL, BOGUS);
	run(&x, "example.org", POLICY_DANE, &sts_enforce);
	h = &x.d.hosts[0];
	CHECK(x.d.action == POLICY_DEFER);
	CHECK(h->skip && h->tls != PTLS_VERIFY && h->tls != PTLS_MAY);
	CHECK_STR(h->rpt_failure, "dnssec-invalid");
	CHECK(h->rpt_type == RPT_TLSA);
	run_free(&x);
}

static void
tlsa_servfail_secure_host_defers_no_fallback(void)
{
	struct run x;
	const struct decision_host *h;

	mx("example.org", SEC, "10 mx1.example.org", NULL);
	host4("mx1.example.org", SEC, "192.0.2.1");
	tlsa_status("_25._tcp.mx1.example.org", DNS_TEMPFAIL,
	    DNS_SEC_UNKNOWN);
	/* The STS policy lists the host: still no fallback to it. */
	run(&x, "example.org", POLICY_DANE, &sts_enforce);
	h = &x.d.hosts[0];
	CHECK(h->skip && h->skip_temp);
	CHECK(contains(h->reason, "TLSA lookup"));
	CHECK(x.d.action == POLICY_DEFER);
	CHECK(contains(x.d.reason, "SERVFAIL"));
	run_free(&x);
	/* Nor to opportunistic TLS. */
	mx("example.org", SEC, "10 mx1.example.org", NULL);
	host4("mx1.example.org", SEC, "192.0.2.1");
	tlsa_status("_25._tcp.mx1.example.org", DNS_TEMPFAIL,
	    DNS_SEC_UNKNOWN);
	run(&x, "example.org", POLICY_DANE, NULL);
	CHECK(x.d.action == POLICY_DEFER && x.d.hosts[0].skip);
	run_free(&x);
}

static void
tlsa_servfail_one_host_other_host_used(void)
{
	struct run x;

	mx("example.org", SEC, "10 mx1.example.org", "20 mx2.example.org",
	    NULL);
	host4("mx1.example.org", SEC, "192.0.2.1");
	host4("mx2.example.org", SEC, "192.0.2.2");
	tlsa_status("_25._tcp.mx1.example.org", DNS_TEMPFAIL,
	    DNS_SEC_UNKNOWN);
	tlsa("_25._tcp.mx2.example.org", SEC, TA1, NULL);
	run(&x, "example.org", POLICY_DANE, NULL);
	CHECK(x.d.action == POLICY_DELIVER && x.d.ncandidates == 1);
	CHECK(x.d.hosts[0].skip && x.d.hosts[1].tls == PTLS_DANE);
	run_free(&x);
}

static void
address_tempfail_defers(void)
{
	struct run x;

	mx("example.org", INSEC, "10 mx1.example.org", NULL);
	add("mx1.example.org", DNS_T_A, DNS_TEMPFAIL, DNS_SEC_UNKNOWN);
	add("mx1.example.org", DNS_T_AAAA, DNS_TEMPFAIL, DNS_SEC_UNKNOWN);
	run(&x, "example.org", POLICY_DANE, NULL);
	CHECK(x.d.action == POLICY_DEFER);
	CHECK_STR(x.d.dsn, "4.4.3");
	run_free(&x);
}

static void
aaaa_tempfail_secure_a_still_dane(void)
{
	struct run x;

	mx("example.org", SEC, "10 mx1.example.org", NULL);
	addrs("mx1.example.org", DNS_T_A, SEC, NULL, "192.0.2.1", NULL);
	add("mx1.example.org", DNS_T_AAAA, DNS_TEMPFAIL, DNS_SEC_UNKNOWN);
	tlsa("_25._tcp.mx1.example.org", SEC, EE1, NULL);
	run(&x, "example.org", POLICY_DANE, NULL);
	CHECK(x.d.action == POLICY_DELIVER && x.d.hosts[0].tls == PTLS_DANE);
	run_free(&x);
}

static void
mixed_security_addresses_are_insecure(void)
{
	struct run x;

	mx("example.org", SEC, "10 mx1.example.org", NULL);
	addrs("mx1.example.org", DNS_T_A, SEC, NULL, "192.0.2.1", NULL);
	addrs("mx1.example.org", DNS_T_AAAA, INSEC, NULL, "2001:db8::1",
	    NULL);
	tlsa("_25._tcp.mx1.example.org", SEC, EE1, NULL);
	run(&x, "example.org", POLICY_DANE, NULL);
	CHECK(nqueried == 0 && x.d.hosts[0].tls == PTLS_MAY);
	CHECK(x.d.hosts[0].naddrs == 2);
	run_free(&x);
}

/* ---- cases: MX handling ------------------------------------------------- */

static void
mx_tempfail_defers(void)
{
	struct run x;

	mx_status("example.org", DNS_TEMPFAIL, DNS_SEC_UNKNOWN);
	run(&x, "example.org", POLICY_DANE, NULL);
	CHECK(x.nhosts == 0 && x.d.action == POLICY_DEFER);
	CHECK_STR(x.d.dsn, "4.4.3");
	CHECK(x.d.rpt_failure == NULL);
	run_free(&x);
}

static void
nxdomain_fails_permanently(void)
{
	struct run x;

	mx_status("nowhere.example", DNS_NXDOMAIN, SEC);
	run(&x, "nowhere.example", POLICY_DANE, NULL);
	CHECK(x.nhosts == 0 && x.d.action == POLICY_FAIL);
	CHECK_STR(x.d.dsn, "5.1.2");
	run_free(&x);
}

static void
null_mx_fails_permanently(void)
{
	struct run x;

	mx("nomail.example", SEC, "0 .", NULL);
	run(&x, "nomail.example", POLICY_DANE, NULL);
	CHECK(x.nhosts == 0);
	CHECK(x.d.action == POLICY_FAIL);
	CHECK_STR(x.d.dsn, "5.1.10");
	CHECK(contains(x.d.reason, "null MX"));
	run_free(&x);
}

static void
null_mx_insecure_fails_too(void)
{
	struct run x;

	mx("nomail.example", INSEC, "0 .", NULL);
	run(&x, "nomail.example", POLICY_MAY, NULL);
	CHECK(x.d.action == POLICY_FAIL);
	CHECK_STR(x.d.dsn, "5.1.10");
	run_free(&x);
}

static void
nodata_implicit_mx_with_dane(void)
{
	struct run x;
	const struct decision_host *h;

	mx_status("example.org", DNS_NODATA, SEC);
	host4("example.org", SEC, "192.0.2.5");
	tlsa("_25._tcp.example.org", SEC, TA1, NULL);
	run(&x, "example.org", POLICY_DANE, NULL);
	CHECK(x.nhosts == 1 && x.hosts[0].implicit);
	h = &x.d.hosts[0];
	CHECK(x.d.action == POLICY_DELIVER && h->implicit);
	CHECK_STR(h->name, "example.org");
	CHECK(h->tls == PTLS_DANE);
	CHECK_STR(h->tlsa_base, "example.org");
	CHECK(has_name(h, "example.org"));
	run_free(&x);
}

static void
nodata_insecure_implicit_mx_no_dane(void)
{
	struct run x;

	mx_status("example.org", DNS_NODATA, INSEC);
	host4("example.org", SEC, "192.0.2.5");
	tlsa("_25._tcp.example.org", SEC, TA1, NULL);
	run(&x, "example.org", POLICY_DANE, NULL);
	CHECK(x.d.action == POLICY_DELIVER && x.d.hosts[0].tls == PTLS_MAY);
	CHECK(nqueried == 0);
	run_free(&x);
}

static void
implicit_mx_without_address_fails(void)
{
	struct run x;

	mx_status("example.org", DNS_NODATA, SEC);
	add("example.org", DNS_T_A, DNS_NODATA, SEC);
	add("example.org", DNS_T_AAAA, DNS_NODATA, SEC);
	run(&x, "example.org", POLICY_DANE, NULL);
	CHECK(x.d.action == POLICY_FAIL);
	CHECK_STR(x.d.dsn, "5.4.4");
	CHECK(x.d.hosts[0].skip && !x.d.hosts[0].skip_temp);
	run_free(&x);
}

static void
mx_order_and_duplicates(void)
{
	struct run x;

	mx("example.org", INSEC, "20 b.example.org", "10 a.example.org",
	    "10 c.example.org", "30 a.example.org", "5 .", NULL);
	host4("a.example.org", INSEC, "192.0.2.1");
	host4("b.example.org", INSEC, "192.0.2.2");
	host4("c.example.org", INSEC, "192.0.2.3");
	run(&x, "example.org", POLICY_MAY, NULL);
	CHECK(x.nhosts == 3);
	CHECK(x.d.nhosts == 3 && x.d.ncandidates == 3);
	CHECK_STR(x.d.hosts[0].name, "a.example.org");
	CHECK(x.d.hosts[0].pref == 10);
	CHECK_STR(x.d.hosts[1].name, "c.example.org");
	CHECK_STR(x.d.hosts[2].name, "b.example.org");
	run_free(&x);
}

static void
mx_host_limit(void)
{
	struct run x;
	struct dns_result *r;
	size_t i;

	r = add("big.example", DNS_T_MX, DNS_OK, INSEC);
	r->mx = xcalloc(40, sizeof(*r->mx));
	for (i = 0; i < 40; i++) {
		r->mx[i].pref = (uint16_t)(40 - i);
		snprintf(r->mx[i].host, sizeof(r->mx[i].host),
		    "mx%zu.big.example", i);
	}
	r->n = 40;
	run(&x, "big.example", POLICY_MAY, NULL);
	CHECK(x.nhosts == POLICY_MAX_HOSTS);
	CHECK(x.hosts[0].pref == 1);		/* the best ones kept */
	/* None has an address: permanent. */
	CHECK(x.d.action == POLICY_FAIL && x.d.nhosts == POLICY_MAX_HOSTS);
	run_free(&x);
}

static void
mx_only_dots_fails(void)
{
	struct run x;

	mx("example.org", SEC, "10 .", "20 .", NULL);
	run(&x, "example.org", POLICY_DANE, NULL);
	CHECK(x.nhosts == 0 && x.d.action == POLICY_FAIL);
	run_free(&x);
}

static void
host_without_address_other_used(void)
{
	struct run x;

	mx("example.org", SEC, "10 gone.example.org", "20 mx2.example.org",
	    NULL);
	host4("mx2.example.org", SEC, "192.0.2.2");
	run(&x, "example.org", POLICY_DANE, NULL);
	CHECK(x.d.action == POLICY_DELIVER && x.d.ncandidates == 1);
	CHECK(x.d.hosts[0].skip && !x.d.hosts[0].skip_temp);
	CHECK(x.d.hosts[1].tls == PTLS_MAY);
	run_free(&x);
}

static void
mixed_hosts_dane_and_insecure(void)
{
	struct run x;

	mx("example.org", SEC, "10 mx1.example.org", "20 backup.isp.example",
	    NULL);
	host4("mx1.example.org", SEC, "192.0.2.1");
	host4("backup.isp.example", INSEC, "192.0.2.2");
	tlsa("_25._tcp.mx1.example.org", SEC, EE1, NULL);
	run(&x, "example.org", POLICY_DANE, NULL);
	CHECK(x.d.action == POLICY_DELIVER && x.d.ncandidates == 2);
	CHECK(x.d.hosts[0].tls == PTLS_DANE);
	CHECK(x.d.hosts[1].tls == PTLS_MAY);
	CHECK(nqueried == 1);
	run_free(&x);
}

/* ---- cases: CNAME rules (RFC 7672 §2.2.3) -------------------------------- */

static void
cname_expanded_name_tlsa_first(void)
{
	struct run x;
	const struct decision_host *h;

	mx("example.org", SEC, "10 mx.example.org", NULL);
	host4_cname("mx.example.org", "smtp.provider.example", SEC,
	    "192.0.2.1");
	tlsa("_25._tcp.smtp.provider.example", SEC, TA1, NULL);
	tlsa("_25._tcp.mx.example.org", SEC, EE1, NULL);
	run(&x, "example.org", POLICY_DANE, NULL);
	h = &x.d.hosts[0];
	CHECK(h->tls == PTLS_DANE && h->tlsa[0].usage == 2);
	CHECK_STR(h->tlsa_base, "smtp.provider.example");
	CHECK_STR(h->sni, "smtp.provider.example");
	CHECK(has_name(h, "smtp.provider.example"));
	CHECK(has_name(h, "mx.example.org"));
	CHECK(!has_name(h, "example.org"));
	CHECK(nqueried == 1);
	CHECK_STR(queried[0], "_25._tcp.smtp.provider.example");
	run_free(&x);
}

static void
cname_falls_back_to_original_name(void)
{
	struct run x;
	const struct decision_host *h;

	mx("example.org", SEC, "10 mx.example.org", NULL);
	host4_cname("mx.example.org", "smtp.provider.example", SEC,
	    "192.0.2.1");
	tlsa_status("_25._tcp.smtp.provider.example", DNS_NODATA, SEC);
	tlsa("_25._tcp.mx.example.org", SEC, TA1, NULL);
	run(&x, "example.org", POLICY_DANE, NULL);
	h = &x.d.hosts[0];
	CHECK(nqueried == 2);
	CHECK_STR(queried[0], "_25._tcp.smtp.provider.example");
	CHECK_STR(queried[1], "_25._tcp.mx.example.org");
	CHECK(h->tls == PTLS_DANE);
	CHECK_STR(h->tlsa_base, "mx.example.org");
	CHECK(has_name(h, "mx.example.org") &&
	    has_name(h, "smtp.provider.example"));
	run_free(&x);
}

static void
cname_neither_name_has_tlsa(void)
{
	struct run x;

	mx("example.org", SEC, "10 mx.example.org", NULL);
	host4_cname("mx.example.org", "smtp.provider.example", SEC,
	    "192.0.2.1");
	run(&x, "example.org", POLICY_DANE, NULL);
	CHECK(nqueried == 2 && x.d.hosts[0].tls == PTLS_MAY);
	run_free(&x);
}

static void
cname_expanded_tlsa_servfail_no_fallback(void)
{
	struct run x;

	mx("example.org", SEC, "10 mx.example.org", NULL);
	host4_cname("mx.example.org", "smtp.provider.example", SEC,
	    "192.0.2.1");
	tlsa_status("_25._tcp.smtp.provider.example", DNS_TEMPFAIL,
	    DNS_SEC_UNKNOWN);
	tlsa("_25._tcp.mx.example.org", SEC, TA1, NULL);
	run(&x, "example.org", POLICY_DANE, NULL);
	CHECK(nqueried == 1);		/* a failure is not "no records" */
	CHECK(x.d.action == POLICY_DEFER && x.d.hosts[0].skip);
	run_free(&x);
}

static void
cname_insecure_chain_no_tlsa(void)
{
	struct run x;

	mx("example.org", SEC, "10 mx.example.org", NULL);
	host4_cname("mx.example.org", "smtp.unsigned.example", INSEC,
	    "192.0.2.1");
	tlsa("_25._tcp.mx.example.org", SEC, TA1, NULL);
	run(&x, "example.org", POLICY_DANE, NULL);
	CHECK(nqueried == 0 && x.d.hosts[0].tls == PTLS_MAY);
	run_free(&x);
}

/* ---- cases: helpers ----------------------------------------------------- */

static void
tlsa_qname_uses_port(void)
{
	struct run x;

	mx("example.org", SEC, "10 mx1.example.org", NULL);
	host4("mx1.example.org", SEC, "192.0.2.1");
	tlsa("_2525._tcp.mx1.example.org", SEC, EE1, NULL);
	run_full(&x, "example.org", POLICY_DANE, NULL, match_none, 0, 2525);
	CHECK(nqueried == 1);
	CHECK_STR(queried[0], "_2525._tcp.mx1.example.org");
	CHECK(x.d.hosts[0].tls == PTLS_DANE);
	run_free(&x);
}

static void
tlsa_qname_buffer_too_small(void)
{
	struct run x;
	char small[8];

	world_dane();
	run(&x, "example.org", POLICY_DANE, NULL);
	x.hosts[0].tlsa[0] = NULL;
	CHECK(policy_tlsa_next(&x.in, 0, small, sizeof(small)) == 0);
	CHECK(policy_tlsa_next(&x.in, 5, small, sizeof(small)) == 0);
	run_free(&x);
}

static void
tlsa_lookup_missing_defers(void)
{
	struct run x;
	struct decision d;

	world_dane();
	run(&x, "example.org", POLICY_DANE, NULL);
	x.hosts[0].tlsa[0] = NULL;	/* the orchestrator forgot */
	policy_decide(&x.in, &d);
	CHECK(d.action == POLICY_DEFER && d.hosts[0].skip);
	decision_free(&d);
	run_free(&x);
}

static void
want_sts_only_for_dane(void)
{
	struct policy_input in;

	memset(&in, 0, sizeof(in));
	in.level = POLICY_DANE;
	CHECK(policy_want_sts(&in));
	in.level = POLICY_DANE_ONLY;
	CHECK(!policy_want_sts(&in));
	in.level = POLICY_VERIFY;
	CHECK(!policy_want_sts(&in));
	in.level = POLICY_MAY;
	CHECK(!policy_want_sts(&in));
	CHECK(!policy_want_sts(NULL));
}

static void
sts_mx_patterns(void)
{
	CHECK(policy_sts_mx_match("mx1.example.org", "mx1.example.org"));
	CHECK(policy_sts_mx_match("MX1.Example.ORG", "mx1.example.org."));
	CHECK(policy_sts_mx_match("*.example.org", "mx1.example.org"));
	CHECK(!policy_sts_mx_match("*.example.org", "a.b.example.org"));
	CHECK(!policy_sts_mx_match("*.example.org", "example.org"));
	CHECK(!policy_sts_mx_match("*.example.org", ".example.org"));
	CHECK(!policy_sts_mx_match("*.example.org", "mx1.example.org.evil"));
	CHECK(!policy_sts_mx_match("*.example.org", "mx1xexample.org"));
	CHECK(!policy_sts_mx_match("mx1.example.org", "mx2.example.org"));
	CHECK(!policy_sts_mx_match("mx*.example.org", "mx1.example.org"));
	CHECK(!policy_sts_mx_match("", "mx1.example.org"));
	CHECK(!policy_sts_mx_match(NULL, "x"));
}

static void
names_and_strings(void)
{
	CHECK_STR(policy_tls_name(PTLS_DANE), "dane");
	CHECK_STR(policy_tls_name(PTLS_VERIFY), "verify");
	CHECK_STR(policy_tls_name(PTLS_MAY), "may");
	CHECK_STR(policy_action_name(POLICY_DEFER), "defer");
	CHECK_STR(policy_rpt_type_name(RPT_NO_POLICY), "no-policy-found");
	CHECK_STR(policy_rpt_type_name(RPT_TLSA), "tlsa");
	CHECK_STR(policy_rpt_type_name(RPT_STS), "sts");
}

static void
no_input_is_a_deferral(void)
{
	struct decision d;
	struct policy_input in;

	policy_decide(NULL, &d);
	CHECK(d.action == POLICY_DEFER && d.reason != NULL);
	decision_free(&d);
	memset(&in, 0, sizeof(in));
	in.domain = "example.org";
	policy_decide(&in, &d);		/* no MX result */
	CHECK(d.action == POLICY_DEFER);
	decision_free(&d);
	decision_free(NULL);
}

static void
malformed_results_defer(void)
{
	struct run x;
	struct dns_result *r;

	r = add("example.org", DNS_T_MX, DNS_OK, SEC);
	r->n = 2;			/* records claimed, none there */
	run(&x, "example.org", POLICY_DANE, NULL);
	CHECK(x.nhosts == 0 && x.d.action == POLICY_DEFER);
	run_free(&x);

	mx("example.org", SEC, "10 mx1.example.org", NULL);
	host4("mx1.example.org", SEC, "192.0.2.1");
	r = add("_25._tcp.mx1.example.org", DNS_T_TLSA, DNS_OK, SEC);
	r->n = 1;
	run(&x, "example.org", POLICY_DANE, NULL);
	CHECK(x.d.action == POLICY_DEFER && x.d.hosts[0].skip);
	run_free(&x);
}

static void
decision_is_deterministic(void)
{
	struct run x;
	struct decision d2;

	world_dane();
	run(&x, "example.org", POLICY_DANE, &sts_enforce);
	policy_decide(&x.in, &d2);
	CHECK(d2.action == x.d.action && d2.nhosts == x.d.nhosts);
	CHECK(d2.hosts[0].tls == x.d.hosts[0].tls);
	CHECK_STR(d2.hosts[0].reason, x.d.hosts[0].reason);
	decision_free(&d2);
	run_free(&x);
}

/* ---- runner ------------------------------------------------------------- */

#define CASE(f) { #f, f }
static const struct {
	const char *name;
	void (*fn)(void);
} cases[] = {
	CASE(dane_secure_mx_host_and_tlsa_gives_dane),
	CASE(dane_mixed_records_keep_only_usable),
	CASE(dane_all_tlsa_unusable_gives_encrypt),
	CASE(dane_no_tlsa_no_sts_gives_may),
	CASE(dane_tlsa_nodata_gives_may),
	CASE(dane_tlsa_insecure_records_are_ignored),
	CASE(dane_no_tlsa_sts_enforce_gives_verify),
	CASE(dane_sts_enforce_mx_not_in_policy_is_skipped),
	CASE(dane_sts_enforce_wildcard_pattern),
	CASE(dane_sts_testing_delivers_opportunistically),
	CASE(dane_sts_failure_is_reported_not_enforced),
	CASE(dane_beats_sts),
	CASE(dane_insecure_mx_no_dane_for_any_host),
	CASE(dane_insecure_mx_with_sts_enforce_gives_verify),
	CASE(dane_insecure_host_gets_no_tlsa_query),
	CASE(dane_only_with_dane_delivers),
	CASE(dane_only_without_dane_defers),
	CASE(dane_only_no_tlsa_defers),
	CASE(dane_only_unusable_tlsa_defers),
	CASE(verify_level_names_mx_host),
	CASE(verify_level_match_names),
	CASE(secure_level_names_next_hop),
	CASE(secure_level_match_overrides),
	CASE(encrypt_level),
	CASE(may_level),
	CASE(none_level),
	CASE(bogus_mx_defers_domain),
	CASE(bogus_mx_defers_even_for_may),
	CASE(bogus_address_skips_host),
	CASE(bogus_address_only_host_defers),
	CASE(bogus_aaaa_with_good_a_skips_host),
	CASE(bogus_tlsa_skips_host),
	CASE(tlsa_servfail_secure_host_defers_no_fallback),
	CASE(tlsa_servfail_one_host_other_host_used),
	CASE(address_tempfail_defers),
	CASE(aaaa_tempfail_secure_a_still_dane),
	CASE(mixed_security_addresses_are_insecure),
	CASE(mx_tempfail_defers),
	CASE(nxdomain_fails_permanently),
	CASE(null_mx_fails_permanently),
	CASE(null_mx_insecure_fails_too),
	CASE(nodata_implicit_mx_with_dane),
	CASE(nodata_insecure_implicit_mx_no_dane),
	CASE(implicit_mx_without_address_fails),
	CASE(mx_order_and_duplicates),
	CASE(mx_host_limit),
	CASE(mx_only_dots_fails),
	CASE(host_without_address_other_used),
	CASE(mixed_hosts_dane_and_insecure),
	CASE(cname_expanded_name_tlsa_first),
	CASE(cname_falls_back_to_original_name),
	CASE(cname_neither_name_has_tlsa),
	CASE(cname_expanded_tlsa_servfail_no_fallback),
	CASE(cname_insecure_chain_no_tlsa),
	CASE(tlsa_qname_uses_port),
	CASE(tlsa_qname_buffer_too_small),
	CASE(tlsa_lookup_missing_defers),
	CASE(want_sts_only_for_dane),
	CASE(sts_mx_patterns),
	CASE(names_and_strings),
	CASE(no_input_is_a_deferral),
	CASE(malformed_results_defer),
	CASE(decision_is_deterministic),
};

int
main(int argc, char **argv)
{
	size_t i;
	int before;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (argc > 1 && strcmp(argv[1], cases[i].name) != 0)
			continue;
		before = t_failed;
		cases[i].fn();
		world_reset();
		printf("%s %s\n", t_failed == before ? "ok  " : "FAIL",
		    cases[i].name);
	}
	return t_done();
}
