/*
 * policy.c - the delivery security decision: from the policy level and
 * the DNS answers (with their DNSSEC states) to the list of hosts to try
 * and the TLS requirement for each, or a deferral/bounce with a reason.
 *
 * A pure function in the sense of STYLE.md §4 (Postfix
 * smtp_tls_policy.c): no I/O, no clock, no global state; the same input
 * always gives the same decision.  The helpers policy_hosts(),
 * policy_want_tlsa() and policy_tlsa_next() tell the orchestration which
 * lookups to make; policy_decide() judges the results.
 *
 * Rules (DESIGN.md "Delivery security semantics"), with the RFC text
 * they come from:
 *  - RFC 5321 §5.1: MX hosts by preference; no MX RRset (NODATA) means
 *    an implicit MX of the domain itself; NXDOMAIN is permanent.
 *  - RFC 7505 §3-4: a null MX ("0 .") is a permanent failure, 5.1.10.
 *  - RFC 7672 §2.1.1: bogus answers are never insecure ones: a bogus MX
 *    RRset defers the domain, a bogus address or TLSA RRset takes that
 *    host out (the message is deferred if no other host remains).
 *  - RFC 7672 §2.2.1: DANE applies only with a secure MX RRset (or a
 *    secure denial for the implicit MX, §2.2.2); with an insecure one no
 *    host gets DANE.
 *  - RFC 7672 §2.2.2: TLSA is looked up only for hosts whose address
 *    records are secure; an insecure host gets no TLSA query at all.
 *  - RFC 7672 §2.2.3: if the address records came through a (secure)
 *    CNAME chain, the TLSA base domain is the expanded name if it has
 *    TLSA records, else the original name.  A TLSA lookup that fails
 *    (SERVFAIL, timeout) for a secure host makes that host unusable: no
 *    fallback to MTA-STS or opportunistic TLS for it.
 *  - RFC 7672 §3.1.3: PKIX-TA(0)/PKIX-EE(1) are unusable; if no record
 *    is usable: TLS mandatory, unauthenticated (§2.2, "encrypt").
 *  - RFC 7672 §3.2.2/§3.2.3 reference identifiers for DANE-TA(2): the
 *    TLSA base domain, the MX host name and its CNAME expansion.  The
 *    next-hop domain is not added for MX hosts: it names the recipient
 *    domain, not the server (as Postfix does); for an implicit MX it is
 *    the host name anyway.  DANE-EE(3) needs no name (dane.c).
 *  - RFC 7672 §8.1: SNI = the TLSA base domain.
 *  - RFC 8461 §2: DANE beats MTA-STS: a host with DANE is never judged
 *    by the MTA-STS policy.  §4.1: in enforce mode only MX hosts matching
 *    the policy's mx patterns are candidates, with TLS and a WebPKI
 *    certificate for the MX host name (§4.2); testing mode delivers as
 *    opportunistic TLS and only reports (§5).
 *  - RFC 8460 §4.3: result-types recorded for hosts taken out before any
 *    connection ("dnssec-invalid", "tlsa-invalid", "dane-required",
 *    "validation-failure") and the policy type/strings of each host.
 *
 * Levels other than dane/dane-only (verify, secure, encrypt, may, none)
 * are the operator's explicit choice for the domain and ignore TLSA and
 * MTA-STS, like Postfix's smtp_tls_policy_maps.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy.h"
#include "util.h"

#define REASON_MAX	1024		/* joined deferral reasons */

/* RFC 8460 §4.3 result-types used here. */
#define RPT_DNSSEC_INVALID	"dnssec-invalid"
#define RPT_TLSA_INVALID	"tlsa-invalid"
#define RPT_DANE_REQUIRED	"dane-required"
#define RPT_VALIDATION_FAIL	"validation-failure"

/* Enhanced status codes (RFC 3463, RFC 7505). */
#define DSN_DNS_TEMP		"4.4.3"
#define DSN_SECURITY_TEMP	"4.7.5"
#define DSN_NO_DOMAIN		"5.1.2"
#define DSN_NULL_MX		"5.1.10"
#define DSN_NO_ROUTE		"5.4.4"
#define DSN_INTERNAL		"4.3.0"

static int
is_dane_level(enum policy_level l)
{
	return l == POLICY_DANE || l == POLICY_DANE_ONLY;
}

static int
mx_secure(const struct policy_input *in)
{
	const struct dns_result *mx = in->mx;

	return mx != NULL && mx->security == DNS_SEC_SECURE &&
	    (mx->status == DNS_OK || mx->status == DNS_NODATA);
}

/* ---- host list -------------------------------------------------------- */

static int
host_listed(const struct policy_host *h, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcasecmp(h[i].name, name) == 0)
			return 1;
	return 0;
}

size_t
policy_hosts(const struct policy_input *in, struct policy_host **hosts)
{
	const struct dns_result *mx = in->mx;
	const struct dns_mx **order;
	struct policy_host *h;
	size_t i, j, n = 0, no;

	*hosts = NULL;
	if (mx == NULL || in->domain == NULL || *in->domain == '\0' ||
	    mx->security == DNS_SEC_BOGUS)
		return 0;
	if (mx->status == DNS_NODATA) {
		h = xcalloc(1, sizeof(*h));
		h->name = str_lower(xstrdup(in->domain));
		h->implicit = 1;
		*hosts = h;
		return 1;
	}
	if (mx->status != DNS_OK || mx->null_mx || mx->n == 0 ||
	    mx->mx == NULL)
		return 0;

	/* Stable insertion sort by preference; "." entries dropped. */
	order = xcalloc(mx->n, sizeof(*order));
	for (i = 0, no = 0; i < mx->n; i++) {
		if (mx->mx[i].host[0] == '\0')
			continue;
		for (j = no; j > 0 && order[j - 1]->pref > mx->mx[i].pref; j--)
			order[j] = order[j - 1];
		order[j] = &mx->mx[i];
		no++;
	}
	h = xcalloc(no > 0 ? no : 1, sizeof(*h));
	for (i = 0; i < no && n < POLICY_MAX_HOSTS; i++) {
		if (host_listed(h, n, order[i]->host))
			continue;	/* keep the lowest preference */
		h[n].name = str_lower(xstrdup(order[i]->host));
		h[n].pref = order[i]->pref;
		n++;
	}
	free(order);
	if (n == 0) {
		free(h);
		return 0;
	}
	*hosts = h;
	return n;
}

void
policy_hosts_free(struct policy_host *hosts, size_t n)
{
	size_t i;

	if (hosts == NULL)
		return;
	for (i = 0; i < n; i++)
		free(hosts[i].name);
	free(hosts);
}

/* ---- address state ---------------------------------------------------- */

struct addr_state {
	int looked_up;		/* at least one of A/AAAA given */
	int bogus;		/* a BOGUS answer */
	int temp;		/* a TEMPFAIL (not bogus) */
	int insecure;		/* an answer that is not SECURE */
	size_t naddrs;		/* addresses in OK answers */
	const char *why;	/* reason of the failure, if any */
	const char *expanded;	/* CNAME target, NULL if none/same */
};

static void
addr_state(const struct policy_host *h, struct addr_state *st)
{
	const struct dns_result *r[2] = { h->a, h->aaaa };
	size_t i;

	memset(st, 0, sizeof(*st));
	for (i = 0; i < 2; i++) {
		if (r[i] == NULL)
			continue;
		st->looked_up = 1;
		if (r[i]->security == DNS_SEC_BOGUS) {
			st->bogus = 1;
			st->why = r[i]->reason;
			continue;
		}
		if (r[i]->status == DNS_TEMPFAIL) {
			st->temp = 1;
			if (st->why == NULL)
				st->why = r[i]->reason;
			continue;
		}
		if (r[i]->security != DNS_SEC_SECURE)
			st->insecure = 1;
		if (r[i]->status == DNS_OK && r[i]->addr != NULL) {
			st->naddrs += r[i]->n;
			if (st->expanded == NULL && r[i]->cname &&
			    r[i]->canonname[0] != '\0' &&
			    strcasecmp(r[i]->canonname, h->name) != 0)
				st->expanded = r[i]->canonname;
		}
	}
}

static int
host_secure(const struct addr_state *st)
{
	return st->looked_up && !st->bogus && !st->insecure &&
	    st->naddrs > 0;
}

int
policy_want_tlsa(const struct policy_input *in, size_t i)
{
	struct addr_state st;

	if (in == NULL || i >= in->nhosts || !is_dane_level(in->level) ||
	    !mx_secure(in))
		return 0;
	addr_state(&in->hosts[i], &st);
	return host_secure(&st);
}

/* ---- TLSA candidates -------------------------------------------------- */

/* RFC 7672 §2.2.3 order: the CNAME-expanded name, then the original. */
static size_t
tlsa_candidates(const struct policy_host *h, const struct addr_state *st,
    const char *cand[POLICY_MAX_TLSA])
{
	if (st->expanded != NULL) {
		cand[0] = st->expanded;
		cand[1] = h->name;
		return 2;
	}
	cand[0] = h->name;
	cand[1] = NULL;
	return 1;
}

/* The lookup proved nothing usable at this name: try the next one. */
static int
tlsa_absent(const struct dns_result *r)
{
	if (r->security == DNS_SEC_BOGUS || r->status == DNS_TEMPFAIL)
		return 0;
	if (r->status == DNS_NXDOMAIN || r->status == DNS_NODATA)
		return 1;
	/* Records, but not validated: as good as none (RFC 7672 §2.2). */
	return r->security != DNS_SEC_SECURE || r->n == 0;
}

int
policy_tlsa_next(const struct policy_input *in, size_t i, char *qname,
    size_t qlen)
{
	const struct policy_host *h;
	const char *cand[POLICY_MAX_TLSA];
	struct addr_state st;
	size_t ncand, k;
	int r;

	if (!policy_want_tlsa(in, i))
		return 0;
	h = &in->hosts[i];
	addr_state(h, &st);
	ncand = tlsa_candidates(h, &st, cand);
	for (k = 0; k < ncand; k++) {
		if (h->tlsa[k] == NULL)
			break;
		if (!tlsa_absent(h->tlsa[k]))
			return 0;	/* records, or a failure: decided */
	}
	if (k == ncand)
		return 0;
	r = snprintf(qname, qlen, "_%d._tcp.%s", in->port > 0 ? in->port : 25,
	    cand[k]);
	return r > 0 && (size_t)r < qlen;
}

int
policy_want_sts(const struct policy_input *in)
{
	return in != NULL && in->level == POLICY_DANE;
}

/* ---- MTA-STS ---------------------------------------------------------- */

static size_t
name_len(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && s[n - 1] == '.' ? n - 1 : n;
}

int
policy_sts_mx_match(const char *pattern, const char *host)
{
	size_t pl, hl, sl;
	const char *label_end;

	if (pattern == NULL || host == NULL)
		return 0;
	pl = name_len(pattern);
	hl = name_len(host);
	if (pl == 0 || hl == 0)
		return 0;
	if (pl > 2 && pattern[0] == '*' && pattern[1] == '.') {
		/* "*.example.net": exactly one label before ".example.net" */
		sl = pl - 1;
		if (hl <= sl ||
		    strncasecmp(host + hl - sl, pattern + 1, sl) != 0)
			return 0;
		label_end = memchr(host, '.', hl - sl);
		return label_end == NULL;
	}
	return pl == hl && strncasecmp(pattern, host, pl) == 0;
}

static int
sts_valid(const struct policy_sts *sts)
{
	return sts != NULL && sts->failure == NULL &&
	    (sts->mode == STS_MODE_ENFORCE || sts->mode == STS_MODE_TESTING);
}

static int
sts_host_listed(const struct policy_sts *sts, const char *host)
{
	size_t i;

	for (i = 0; i < sts->nmx; i++)
		if (policy_sts_mx_match(sts->mx[i], host))
			return 1;
	return 0;
}

/* ---- decision building ------------------------------------------------ */

static void
add_name(struct decision_host *dh, const char *name)
{
	size_t i;

	if (name == NULL || *name == '\0')
		return;
	for (i = 0; i < dh->nnames; i++)
		if (strcasecmp(dh->names[i], name) == 0)
			return;
	dh->names = xrealloc(dh->names, (dh->nnames + 1) *
	    sizeof(*dh->names));
	dh->names[dh->nnames++] = str_lower(xstrdup(name));
}

static void
add_rpt_string(struct decision_host *dh, char *s)
{
	if (s == NULL)
		return;
	dh->rpt_strings = xrealloc(dh->rpt_strings, (dh->nrpt_strings + 1) *
	    sizeof(*dh->rpt_strings));
	dh->rpt_strings[dh->nrpt_strings++] = s;
}

static void
set_reason(struct decision_host *dh, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
set_reason(struct decision_host *dh, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	free(dh->reason);
	dh->reason = xstrdup(buf);
}

static void
skip(struct decision_host *dh, int temp, const char *dsn, const char *rpt,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void
skip(struct decision_host *dh, int temp, const char *dsn, const char *rpt,
    const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	free(dh->reason);
	dh->reason = xstrdup(buf);
	dh->skip = 1;
	dh->skip_temp = temp;
	dh->skip_dsn = dsn;
	dh->rpt_failure = rpt;
	dh->tls = PTLS_NONE;
}

static const char *
why(const char *s)
{
	return s != NULL && *s != '\0' ? s : "no reason given";
}

static void
copy_addrs(struct decision_host *dh, const struct policy_host *h)
{
	const struct dns_result *r[2] = { h->a, h->aaaa };
	size_t i, j;

	for (i = 0; i < 2; i++) {
		if (r[i] == NULL || r[i]->status != DNS_OK ||
		    r[i]->security == DNS_SEC_BOGUS || r[i]->addr == NULL)
			continue;
		dh->addrs = xrealloc(dh->addrs, (dh->naddrs + r[i]->n) *
		    sizeof(*dh->addrs));
		for (j = 0; j < r[i]->n; j++)
			dh->addrs[dh->naddrs++] = r[i]->addr[j];
	}
}

/* verify/secure: the names the certificate must match. */
static void
verify_names(struct decision_host *dh, const struct policy_input *in,
    const char *deflt[], size_t ndeflt)
{
	size_t i;

	if (in->match == NULL || in->nmatch == 0) {
		for (i = 0; i < ndeflt; i++)
			add_name(dh, deflt[i]);
		return;
	}
	for (i = 0; i < in->nmatch; i++) {
		if (strcasecmp(in->match[i], "hostname") == 0)
			add_name(dh, dh->name);
		else if (strcasecmp(in->match[i], "nexthop") == 0)
			add_name(dh, in->domain);
		else if (strcasecmp(in->match[i], "dot-nexthop") == 0) {
			char *d = xasprintf(".%s", in->domain);

			add_name(dh, d);
			free(d);
		} else
			add_name(dh, in->match[i]);
	}
}

/* A host without DANE under level dane: MTA-STS or opportunistic. */
static void
no_dane(struct decision_host *dh, const struct policy_input *in,
    const char *why_not)
{
	const struct policy_sts *sts = in->sts;
	size_t i;

	if (in->level == POLICY_DANE_ONLY) {
		skip(dh, 1, DSN_SECURITY_TEMP, RPT_DANE_REQUIRED,
		    "dane-only: no DANE for %s (%s)", dh->name, why_not);
		dh->rpt_type = RPT_TLSA;
		return;
	}
	if (sts_valid(sts)) {
		dh->rpt_type = RPT_STS;
		for (i = 0; i < sts->nlines; i++)
			add_rpt_string(dh, xstrdup(sts->lines[i]));
		add_name(dh, dh->name);
		dh->sni = xstrdup(dh->name);
		if (sts->mode == STS_MODE_ENFORCE) {
			if (!sts_host_listed(sts, dh->name)) {
				skip(dh, 1, DSN_SECURITY_TEMP,
				    RPT_VALIDATION_FAIL, "MTA-STS enforce: MX "
				    "host %s does not match the policy's mx "
				    "patterns", dh->name);
				dh->rpt_type = RPT_STS;
				return;
			}
			dh->tls = PTLS_VERIFY;
			set_reason(dh, "MTA-STS enforce (%s): TLS with a "
			    "WebPKI certificate for %s", why_not, dh->name);
			return;
		}
		dh->tls = PTLS_MAY;
		dh->sts_testing = 1;
		dh->sts_mismatch = !sts_host_listed(sts, dh->name);
		set_reason(dh, "MTA-STS testing (%s): opportunistic TLS, "
		    "verification reported only%s", why_not,
		    dh->sts_mismatch ? "; MX host not in the policy" : "");
		return;
	}
	dh->tls = PTLS_MAY;
	dh->sni = xstrdup(dh->name);
	dh->rpt_type = RPT_NO_POLICY;
	if (sts != NULL && sts->failure != NULL) {
		dh->rpt_type = RPT_STS;
		dh->rpt_failure = sts->failure;
	}
	set_reason(dh, "opportunistic TLS (%s)", why_not);
}

/* Level dane/dane-only for one host whose addresses are known. */
static void
decide_dane(struct decision_host *dh, const struct policy_input *in,
    const struct policy_host *h, const struct addr_state *st)
{
	const char *cand[POLICY_MAX_TLSA], *base = NULL;
	const struct dns_result *r = NULL;
	size_t ncand, k, i, nusable;

	if (!mx_secure(in)) {
		no_dane(dh, in, h->implicit ? "no MX records, denial not "
		    "DNSSEC-validated" : "MX RRset not DNSSEC-validated");
		return;
	}
	if (!host_secure(st)) {
		no_dane(dh, in, "address records not DNSSEC-validated");
		return;
	}
	ncand = tlsa_candidates(h, st, cand);
	for (k = 0; k < ncand; k++) {
		r = h->tlsa[k];
		if (r == NULL) {
			skip(dh, 1, DSN_DNS_TEMP, NULL, "TLSA lookup for "
			    "_%d._tcp.%s was not made", in->port > 0 ?
			    in->port : 25, cand[k]);
			dh->rpt_type = RPT_TLSA;
			return;
		}
		if (r->security == DNS_SEC_BOGUS) {
			skip(dh, 1, DSN_SECURITY_TEMP, RPT_DNSSEC_INVALID,
			    "TLSA RRset of %s is bogus (DNSSEC validation "
			    "failed: %s)", cand[k], why(r->reason));
			dh->rpt_type = RPT_TLSA;
			return;
		}
		if (r->status == DNS_TEMPFAIL) {
			/* Never "no TLSA": no fallback for this host. */
			skip(dh, 1, DSN_SECURITY_TEMP, RPT_DNSSEC_INVALID,
			    "TLSA lookup for %s failed (%s)", cand[k],
			    why(r->reason));
			dh->rpt_type = RPT_TLSA;
			return;
		}
		if (!tlsa_absent(r)) {
			if (r->tlsa == NULL) {
				skip(dh, 1, DSN_INTERNAL, NULL, "TLSA result "
				    "for %s is malformed", cand[k]);
				dh->rpt_type = RPT_TLSA;
				return;
			}
			base = cand[k];
			break;
		}
	}
	if (base == NULL) {
		no_dane(dh, in, "no DNSSEC-validated TLSA records");
		return;
	}

	/* TLSA records found at base: DANE applies, no fallback. */
	dh->rpt_type = RPT_TLSA;
	dh->tlsa_base = xstrdup(base);
	dh->sni = xstrdup(base);
	for (i = 0; i < r->n; i++)
		add_rpt_string(dh, tlsa_to_text(&r->tlsa[i]));
	for (i = 0, nusable = 0; i < r->n; i++)
		if (tlsa_usable(&r->tlsa[i]))
			nusable++;
	if (nusable == 0) {
		if (in->level == POLICY_DANE_ONLY) {
			skip(dh, 1, DSN_SECURITY_TEMP, RPT_TLSA_INVALID,
			    "dane-only: every TLSA record of %s is unusable",
			    base);
			dh->rpt_type = RPT_TLSA;
			return;
		}
		dh->tls = PTLS_ENCRYPT;
		dh->rpt_failure = RPT_TLSA_INVALID;
		set_reason(dh, "DANE: every TLSA record of %s is unusable: "
		    "mandatory TLS, unauthenticated", base);
		return;
	}
	dh->tlsa = xcalloc(nusable, sizeof(*dh->tlsa));
	for (i = 0; i < r->n; i++) {
		struct tlsa_rr *c;

		if (!tlsa_usable(&r->tlsa[i]))
			continue;
		c = &dh->tlsa[dh->ntlsa++];
		*c = r->tlsa[i];
		c->data = xmalloc(c->len);
		memcpy(c->data, r->tlsa[i].data, c->len);
	}
	/* DANE-TA reference identifiers (RFC 7672 §3.2.2). */
	add_name(dh, base);
	add_name(dh, h->name);
	add_name(dh, st->expanded);
	dh->tls = PTLS_DANE;
	set_reason(dh, "DANE: %zu usable TLSA record%s at _%d._tcp.%s",
	    nusable, nusable == 1 ? "" : "s", in->port > 0 ? in->port : 25,
	    base);
}

static void
decide_host(struct decision_host *dh, const struct policy_input *in,
    const struct policy_host *h)
{
	struct addr_state st;
	const char *deflt[2];

	dh->name = xstrdup(h->name);
	dh->pref = h->pref;
	dh->implicit = h->implicit;
	dh->rpt_domain = xstrdup(in->domain);
	dh->rpt_type = RPT_NO_POLICY;

	addr_state(h, &st);
	if (st.bogus) {
		skip(dh, 1, DSN_SECURITY_TEMP, RPT_DNSSEC_INVALID, "address "
		    "records of %s are bogus (DNSSEC validation failed: %s)",
		    h->name, why(st.why));
		return;
	}
	if (!st.looked_up) {
		skip(dh, 1, DSN_DNS_TEMP, NULL, "addresses of %s were not "
		    "looked up", h->name);
		return;
	}
	if (st.naddrs == 0) {
		if (st.temp)
			skip(dh, 1, DSN_DNS_TEMP, NULL, "address lookup for %s "
			    "failed (%s)", h->name, why(st.why));
		else
			skip(dh, 0, DSN_NO_ROUTE, NULL, "%s has no address "
			    "records", h->name);
		return;
	}
	copy_addrs(dh, h);

	switch (in->level) {
	case POLICY_NONE:
		dh->tls = PTLS_NONE;
		set_reason(dh, "policy none: cleartext");
		break;
	case POLICY_MAY:
		dh->tls = PTLS_MAY;
		dh->sni = xstrdup(h->name);
		set_reason(dh, "policy may: opportunistic TLS");
		break;
	case POLICY_ENCRYPT:
		dh->tls = PTLS_ENCRYPT;
		dh->sni = xstrdup(h->name);
		set_reason(dh, "policy encrypt: mandatory TLS, "
		    "unauthenticated");
		break;
	case POLICY_VERIFY:
		deflt[0] = h->name;
		verify_names(dh, in, deflt, 1);
		dh->tls = PTLS_VERIFY;
		dh->sni = xstrdup(h->name);
		set_reason(dh, "policy verify: mandatory TLS, WebPKI");
		break;
	case POLICY_SECURE: {
		char *dot = xasprintf(".%s", in->domain);

		deflt[0] = in->domain;
		deflt[1] = dot;
		verify_names(dh, in, deflt, 2);
		free(dot);
		dh->tls = PTLS_VERIFY;
		dh->sni = xstrdup(h->name);
		set_reason(dh, "policy secure: mandatory TLS, WebPKI, "
		    "next-hop name");
		break;
	}
	case POLICY_DANE:
	case POLICY_DANE_ONLY:
		decide_dane(dh, in, h, &st);
		break;
	default:
		skip(dh, 1, DSN_INTERNAL, NULL, "unknown policy level %d",
		    (int)in->level);
		break;
	}
}

static void
decide_fail(struct decision *d, enum policy_action a, const char *dsn,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
decide_fail(struct decision *d, enum policy_action a, const char *dsn,
    const char *fmt, ...)
{
	char buf[REASON_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	d->action = a;
	d->dsn = dsn;
	free(d->reason);
	d->reason = xstrdup(buf);
}

/* Decide from the MX answer alone; 1 if that settles it. */
static int
decide_mx(const struct policy_input *in, struct decision *d)
{
	const struct dns_result *mx = in->mx;
	size_t i;

	if (mx == NULL) {
		decide_fail(d, POLICY_DEFER, DSN_INTERNAL, "no MX lookup "
		    "result for %s", in->domain);
		return 1;
	}
	if (mx->security == DNS_SEC_BOGUS) {
		decide_fail(d, POLICY_DEFER, DSN_SECURITY_TEMP, "MX RRset of "
		    "%s is bogus (DNSSEC validation failed: %s)", in->domain,
		    why(mx->reason));
		if (is_dane_level(in->level))
			d->rpt_failure = RPT_DNSSEC_INVALID;
		return 1;
	}
	switch (mx->status) {
	case DNS_TEMPFAIL:
		decide_fail(d, POLICY_DEFER, DSN_DNS_TEMP, "MX lookup for %s "
		    "failed (%s)", in->domain, why(mx->reason));
		return 1;
	case DNS_NXDOMAIN:
		decide_fail(d, POLICY_FAIL, DSN_NO_DOMAIN, "domain %s does "
		    "not exist (NXDOMAIN)", in->domain);
		return 1;
	case DNS_NODATA:
		return 0;
	case DNS_OK:
		break;
	default:
		decide_fail(d, POLICY_DEFER, DSN_INTERNAL, "MX lookup for %s: "
		    "unknown status", in->domain);
		return 1;
	}
	if (mx->n > 0 && mx->mx == NULL) {
		decide_fail(d, POLICY_DEFER, DSN_INTERNAL, "MX lookup for %s: "
		    "malformed result", in->domain);
		return 1;
	}
	if (mx->null_mx) {
		decide_fail(d, POLICY_FAIL, DSN_NULL_MX, "domain %s does not "
		    "accept mail (null MX, RFC 7505)", in->domain);
		return 1;
	}
	for (i = 0; i < mx->n && mx->mx != NULL; i++)
		if (mx->mx[i].host[0] != '\0')
			return 0;
	decide_fail(d, POLICY_FAIL, DSN_NULL_MX, "domain %s has no usable "
	    "MX host (only \".\")", in->domain);
	return 1;
}

void
policy_decide(const struct policy_input *in, struct decision *d)
{
	char buf[REASON_MAX];
	size_t i, len = 0;
	int temp = 0;
	const char *dsn = NULL;

	memset(d, 0, sizeof(*d));
	if (in == NULL || in->domain == NULL || *in->domain == '\0') {
		decide_fail(d, POLICY_DEFER, DSN_INTERNAL, "no domain");
		return;
	}
	d->level = in->level;
	d->mx_secure = mx_secure(in);
	if (decide_mx(in, d))
		return;
	if (in->hosts == NULL || in->nhosts == 0) {
		decide_fail(d, POLICY_DEFER, DSN_INTERNAL, "no hosts for %s "
		    "(policy_hosts() not used?)", in->domain);
		return;
	}

	d->nhosts = in->nhosts > POLICY_MAX_HOSTS ? POLICY_MAX_HOSTS :
	    in->nhosts;
	d->hosts = xcalloc(d->nhosts, sizeof(*d->hosts));
	for (i = 0; i < d->nhosts; i++) {
		decide_host(&d->hosts[i], in, &in->hosts[i]);
		if (!d->hosts[i].skip)
			d->ncandidates++;
	}
	if (d->ncandidates > 0) {
		d->action = POLICY_DELIVER;
		return;
	}

	/* Nothing to try: defer if any reason is temporary, else bounce. */
	buf[0] = '\0';
	for (i = 0; i < d->nhosts; i++) {
		const struct decision_host *dh = &d->hosts[i];
		int r;

		if (dh->skip_temp) {
			temp = 1;
			if (dsn == NULL)
				dsn = dh->skip_dsn;
		}
		if (len < sizeof(buf) - 1) {
			r = snprintf(buf + len, sizeof(buf) - len, "%s%s",
			    len ? "; " : "", why(dh->reason));
			if (r > 0)
				len += (size_t)r;
		}
	}
	if (len >= sizeof(buf))
		len = sizeof(buf) - 1;
	if (temp)
		decide_fail(d, POLICY_DEFER, dsn ? dsn : DSN_DNS_TEMP, "%s",
		    buf);
	else
		decide_fail(d, POLICY_FAIL, DSN_NO_ROUTE, "%s", buf);
}

static void
host_clear(struct decision_host *dh)
{
	size_t i;

	free(dh->name);
	free(dh->addrs);
	tlsa_rrs_free(dh->tlsa, dh->ntlsa);
	free(dh->tlsa_base);
	free(dh->sni);
	for (i = 0; i < dh->nnames; i++)
		free(dh->names[i]);
	free(dh->names);
	free(dh->reason);
	free(dh->rpt_domain);
	for (i = 0; i < dh->nrpt_strings; i++)
		free(dh->rpt_strings[i]);
	free(dh->rpt_strings);
}

void
decision_free(struct decision *d)
{
	size_t i;

	if (d == NULL)
		return;
	for (i = 0; i < d->nhosts; i++)
		host_clear(&d->hosts[i]);
	free(d->hosts);
	free(d->reason);
	memset(d, 0, sizeof(*d));
}

const char *
policy_tls_name(enum policy_tls t)
{
	switch (t) {
	case PTLS_NONE:
		return "none";
	case PTLS_MAY:
		return "may";
	case PTLS_ENCRYPT:
		return "encrypt";
	case PTLS_DANE:
		return "dane";
	case PTLS_VERIFY:
		return "verify";
	}
	return "?";
}

const char *
policy_action_name(enum policy_action a)
{
	switch (a) {
	case POLICY_DELIVER:
		return "deliver";
	case POLICY_DEFER:
		return "defer";
	case POLICY_FAIL:
		return "fail";
	}
	return "?";
}

const char *
policy_rpt_type_name(enum policy_rpt_type t)
{
	switch (t) {
	case RPT_NO_POLICY:
		return "no-policy-found";
	case RPT_TLSA:
		return "tlsa";
	case RPT_STS:
		return "sts";
	}
	return "?";
}

/* ---- report delivery policy (RFC 8460 §3; moved from tlsrpt.c) ---------- */

int
tlsrpt_report_host_ok(const struct decision *d, const struct decision_host *h)
{
	(void)d;
	if (h->naddrs == 0)
		return 0;
	if (!h->skip)
		return 1;
	/* Skipped for a TLS/DANE/MTA-STS reason (it has a result-type),
	 * not because its addresses are unknown or bogus (naddrs == 0). */
	return h->rpt_failure != NULL;
}

int
tlsrpt_report_deliverable(const struct decision *d)
{
	size_t i;

	if (d->action == POLICY_FAIL)
		return 0;
	for (i = 0; i < d->nhosts; i++)
		if (tlsrpt_report_host_ok(d, &d->hosts[i]))
			return 1;
	return 0;
}
