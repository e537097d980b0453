/*
 * check.c - `danerelay check` (issue #18): what will hurt the delivery
 * of the operator's own mail, with the record or setting that fixes it.
 *
 * The relay (each outbound address and the HELO name said from it:
 * myhostname, or a source_table line's name; check_identities()):
 *   host    the HELO name resolves to the address;
 *   ptr     each address has a PTR naming its HELO name that resolves
 *           back to it (FCrDNS); a generic-looking name (pool, dynamic,
 *           the address's digits) warns;
 *   helo-spf the HELO name has an SPF record of its own (RFC 7208 §2.3);
 *   dnsbl   each address against check_dnsbl_zones (RFC 5782 §2.1).
 * Per domain:
 *   mx      an MX, or a null MX (RFC 7505) for a domain without mail;
 *   spf     one record (§4.5) that passes for every outbound address
 *           the domain's mail leaves from (its source_table line, else
 *           the "*" line, else the default) (libspf2, check_spf.c); spf-limits: at most 10 DNS-querying
 *           terms and 2 void lookups (§4.6.4) counted over include: and
 *           redirect= (spf_terms.c); +all fails, -all warns;
 *   dkim    each selector of the key table published and matching its
 *           key (dkim.c), RSA >= 2048 bits (RFC 8301 §3.2), Ed25519
 *           (RFC 8463) shown, key age against check_dkim_max_age;
 *   dmarc   the record parses, p= shown; external rua/ruf destinations
 *           authorise the domain (RFC 7489 §7.1); dmarc-align: the SPF
 *           and DKIM identities the relay produces align (§3.1);
 *   mta-sts the TXT record, the policy fetched as for delivery (https.c,
 *           RFC 8461 §3.3), mode and max_age, every MX covered, each MX's
 *           certificate WebPKI-valid for its name (STARTTLS);
 *   tlsrpt  the _smtp._tls record parses and its rua URIs are usable;
 *   dnssec  the zone is signed and validates; dane: per MX, the TLSA
 *           records match the served certificate (STARTTLS, OpenSSL
 *           DANE), a second (next key) record, usage/selector advice;
 *   caa     present (info).
 *
 * Asynchronous: each step starts every lookup (fetch, session) of every
 * domain at once and runs the event loop until all have answered or
 * timed out (the resolver's guard, https and SMTP timeouts, all set
 * from opts->timeout), then the next step uses the answers.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <libpsl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "check.h"
#include "check_spf.h"
#include "config.h"
#include "dkim.h"
#include "dmarc_txt.h"
#include "https.h"
#include "mta_sts.h"
#include "resolver.h"
#include "smtp_client.h"
#include "source_table.h"
#include "spf_terms.h"
#include "tls.h"
#include "tlsrpt_txt.h"
#include "util.h"

#define MAX_MX		10	/* MX hosts checked per domain */
#define MAX_PTR		4	/* PTR names followed per address */
#define MAX_EXT		(2 * DMARC_MAX_URI)
#define MAX_ZONES	16	/* blocklist zones */
#define SPF_MAX_NODES	40	/* records visited by the lookup count */
#define SPF_MAX_DEPTH	10

struct check_report {
	struct check_item *items;
	size_t		 n;
};

struct tls_probe {
	int		 tried;
	int		 ok;
	char		 why[320];
	char		 spki[65];	/* "3 1 1" data of the served cert */
};

struct mxhost {
	int		 pref;
	char		 name[DNS_NAME_BUF];
	struct dns_result *a, *aaaa, *tlsa;
	struct tls_probe webpki, dane;
};

/* One SPF record of the lookup count: the domain's or an include's. */
struct spf_node {
	char		 name[SPF_TARGET_MAX];
	int		 depth;
	int		 redirect;
	struct dns_result *txt;
	struct spf_term	 t[SPF_TERMS_MAX];
	int		 nt;
	struct dns_result *q[SPF_TERMS_MAX];	/* void checks */
};

struct dom {
	char		 name[256];
	struct dns_result *mx, *a, *aaaa, *txt, *dmarc, *sts, *tlsrpt,
			 *dnskey, *caa;
	struct mxhost	 mxh[MAX_MX];
	size_t		 nmx;
	struct dns_result **dkim;		/* per key table entry */
	/* DMARC */
	struct dmarc_rec dm;
	int		 dm_rc;			/* dmarc_txt_select() */
	char		 dm_err[256];
	char		 ext[MAX_EXT][256];
	struct dns_result *extq[MAX_EXT];
	size_t		 next;
	/* MTA-STS */
	int		 sts_rc;		/* mta_sts_txt_select() */
	char		 sts_id[MTA_STS_ID_MAX + 1];
	char		 sts_err[256];
	struct https_req *sts_req;
	int		 sts_fetched;		/* 1 ok, -1 failed */
	char		 sts_why[320];
	struct mta_sts_policy pol;
	int		 pol_ok;
	/* SPF */
	struct spf_node	*spf[SPF_MAX_NODES];
	size_t		 nspf;
	struct spf_outcome spf_out[CHECK_MAX_IDENT];
	int		 spf_pass_all;
	int		 dkim_pass;		/* an active key verifies */
};

struct ident {
	struct check_identity id;
	struct dns_result *a, *aaaa, *txt;	/* of the HELO name */
	char		 rev[DNS_NAME_BUF];
	struct dns_result *ptr;
	struct dns_result *back[MAX_PTR];
	struct dns_result *bl[MAX_ZONES];
};

struct run {
	const struct check_opts *o;
	const struct config *cf;
	struct event_base *base;
	struct resolver	*res;
	SSL_CTX		*tls_ctx, *https_ctx;
	int		 pending;
	struct check_report *rep;
	struct dom	*dom;
	size_t		 ndom;
	struct ident	 id[CHECK_MAX_IDENT];
	size_t		 nid;
	char		*zones[MAX_ZONES];
	size_t		 nzones;
	char		 day[16];		/* "YYYYMMDD", for fixes */
};

const char *
check_status_name(enum check_status s)
{
	switch (s) {
	case CHECK_OK:		return "ok";
	case CHECK_INFO:	return "info";
	case CHECK_WARN:	return "warn";
	case CHECK_FAIL:	return "fail";
	}
	return "?";
}

/* ---- the report -------------------------------------------------------- */

static struct check_item *
item(struct run *r, enum check_status st, const char *domain,
    const char *check, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static struct check_item *
item(struct run *r, enum check_status st, const char *domain,
    const char *check, const char *fmt, ...)
{
	struct check_report *rep = r->rep;
	struct check_item *it;
	va_list ap;
	char buf[1024];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	rep->items = xrealloc(rep->items, (rep->n + 1) * sizeof(*rep->items));
	it = &rep->items[rep->n++];
	it->status = st;
	it->domain = xstrdup(domain);
	it->check = xstrdup(check);
	it->reason = xstrdup(buf);
	it->fix = NULL;
	return it;
}

static void
fix(struct check_item *it, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
fix(struct check_item *it, const char *fmt, ...)
{
	va_list ap;
	char buf[2048];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	free(it->fix);
	it->fix = xstrdup(buf);
}

size_t
check_report_count(const struct check_report *r)
{
	return r->n;
}

const struct check_item *
check_report_item(const struct check_report *r, size_t i)
{
	return i < r->n ? &r->items[i] : NULL;
}

enum check_status
check_report_worst(const struct check_report *r)
{
	enum check_status w = CHECK_OK;
	size_t i;

	for (i = 0; i < r->n; i++)
		if (r->items[i].status > w)
			w = r->items[i].status;
	return w;
}

void
check_report_free(struct check_report *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < r->n; i++) {
		free(r->items[i].domain);
		free(r->items[i].check);
		free(r->items[i].reason);
		free(r->items[i].fix);
	}
	free(r->items);
	free(r);
}

/* ---- asynchronous steps ------------------------------------------------ */

struct ask {
	struct run	 *run;
	struct dns_result **slot;
};

static void
ask_done(struct dns_result *res, void *arg)
{
	struct ask *a = arg;

	*a->slot = res;
	a->run->pending--;
	free(a);
}

/* A failed result of our own when a lookup cannot even start. */
static struct dns_result *
failed(const char *name, int type, const char *why)
{
	struct dns_result *res = xcalloc(1, sizeof(*res));

	dr_strlcpy(res->qname, name, sizeof(res->qname));
	res->qtype = type;
	res->status = DNS_TEMPFAIL;
	res->security = DNS_SEC_UNKNOWN;
	dr_strlcpy(res->reason, why, sizeof(res->reason));
	return res;
}

static void
ask(struct run *r, struct dns_result **slot, int type, const char *name)
{
	struct ask *a = xcalloc(1, sizeof(*a));
	char err[256];

	a->run = r;
	a->slot = slot;
	*slot = NULL;
	r->pending++;
	if (resolver_query(r->res, name, type, ask_done, a, err,
	    sizeof(err)) == NULL) {
		r->pending--;
		free(a);
		*slot = failed(name, type, err);
	}
}

static void
wait_all(struct run *r)
{
	/* every lookup, fetch and session calls back exactly once, each
	 * bounded by its timeout; 1 (nothing left to wait for) would be a
	 * bug, and must not spin */
	while (r->pending > 0)
		if (event_base_loop(r->base, EVLOOP_ONCE) != 0)
			break;
}

/* "secure", "insecure", ... of a result for the reasons. */
static const char *
sec(const struct dns_result *res)
{
	return res == NULL ? "unknown" : dns_security_name(res->security);
}

/* Why a result has no records, for a reason text. */
static const char *
why_none(const struct dns_result *res)
{
	if (res == NULL)
		return "not looked up";
	if (res->security == DNS_SEC_BOGUS)
		return "DNSSEC validation failed (bogus)";
	switch (res->status) {
	case DNS_NXDOMAIN:	return "the name does not exist";
	case DNS_NODATA:	return "no such record";
	case DNS_TEMPFAIL:	return res->reason[0] ? res->reason :
				    "lookup failed";
	default:		return "ok";
	}
}

/* ---- identities -------------------------------------------------------- */

/* The source address the kernel picks towards dst (no packet sent). */
static int
kernel_source(int family, char *out, size_t outlen)
{
	struct sockaddr_storage ss, me;
	socklen_t len, melen = sizeof(me);
	int fd, ok = -1;

	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)&ss;

		s->sin_family = AF_INET;
		s->sin_port = htons(25);
		inet_pton(AF_INET, "192.0.2.1", &s->sin_addr);
		len = sizeof(*s);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;

		s->sin6_family = AF_INET6;
		s->sin6_port = htons(25);
		inet_pton(AF_INET6, "2001:db8::1", &s->sin6_addr);
		len = sizeof(*s);
	}
	if ((fd = socket(family, SOCK_DGRAM, 0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&ss, len) == 0 &&
	    getsockname(fd, (struct sockaddr *)&me, &melen) == 0) {
		if (family == AF_INET)
			ok = inet_ntop(AF_INET, &((struct sockaddr_in *)&me)->
			    sin_addr, out, (socklen_t)outlen) ? 0 : -1;
		else
			ok = inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&me)->
			    sin6_addr, out, (socklen_t)outlen) ? 0 : -1;
	}
	close(fd);
	return ok;
}

/* The default identities (smtp_bind_address, else the kernel's). */
static size_t
default_identities(const struct config *cf, struct check_identity *out,
    size_t max)
{
	static const int fam[] = { AF_INET, AF_INET6 };
	size_t n = 0, i;

	if (max == 0)
		return 0;
	memset(out, 0, max * sizeof(*out));
	if (cf->smtp_bind_address != NULL && *cf->smtp_bind_address) {
		dr_strlcpy(out[0].addr, cf->smtp_bind_address,
		    sizeof(out[0].addr));
		dr_strlcpy(out[0].helo, cf->myhostname, sizeof(out[0].helo));
		return 1;
	}
	for (i = 0; i < 2 && n < max; i++)
		if (kernel_source(fam[i], out[n].addr,
		    sizeof(out[n].addr)) == 0) {
			dr_strlcpy(out[n].helo, cf->myhostname,
			    sizeof(out[n].helo));
			n++;
		}
	return n;
}

static void
add_identity(struct check_identity *out, size_t *n, size_t max,
    const char *addr, const struct source_entry *e)
{
	if (addr == NULL || *n >= max)
		return;
	memset(&out[*n], 0, sizeof(out[*n]));
	dr_strlcpy(out[*n].addr, addr, sizeof(out[*n].addr));
	dr_strlcpy(out[*n].helo, e->helo, sizeof(out[*n].helo));
	dr_strlcpy(out[*n].domain, e->domain, sizeof(out[*n].domain));
	(*n)++;
}

size_t
check_identities(const struct config *cf, struct check_identity *out,
    size_t max)
{
	struct source_table *t;
	const struct source_entry *e;
	char *buf, err[512];
	size_t len, n = 0, i;
	int star = 0;

	if (cf->source_table == NULL || read_file_max(cf->source_table,
	    SOURCE_TABLE_MAX_SIZE, &buf, &len, NULL, err, sizeof(err)) == -1)
		return default_identities(cf, out, max);
	t = source_table_parse(buf, len, cf->source_table, 0, err,
	    sizeof(err));
	free(buf);
	if (t == NULL)
		return default_identities(cf, out, max);
	for (i = 0; (e = source_table_entry(t, i)) != NULL; i++) {
		add_identity(out, &n, max, e->addr4, e);
		add_identity(out, &n, max, e->addr6, e);
		if (strcmp(e->domain, "*") == 0)
			star = 1;
	}
	source_table_free(t);
	if (!star)
		n += default_identities(cf, out + n, max - n);
	return n;
}

/*
 * Does identity i carry the mail of domain dom?  Its own source_table
 * line's addresses if dom has one, else the "*" line's, else the
 * default identities (source_table.h: the lookup delivery does).
 */
static int
serves(const struct run *r, size_t i, const char *dom)
{
	const char *mine = r->id[i].id.domain;
	int line = 0, star = 0;
	size_t k;

	for (k = 0; k < r->nid; k++) {
		if (strcmp(r->id[k].id.domain, dom) == 0)
			line = 1;
		else if (strcmp(r->id[k].id.domain, "*") == 0)
			star = 1;
	}
	if (line)
		return strcmp(mine, dom) == 0;
	if (star)
		return strcmp(mine, "*") == 0;
	return mine[0] == '\0';
}

/* "4.3.2.1.in-addr.arpa" / nibbles ".ip6.arpa"; with a zone instead of
 * the arpa suffix for blocklists (RFC 5782 §2.1, §2.4). */
static int
reverse_name(const char *addr, const char *zone, char *out, size_t outlen)
{
	unsigned char b[16];
	size_t o = 0;
	int i;

	if (inet_pton(AF_INET, addr, b) == 1) {
		snprintf(out, outlen, "%u.%u.%u.%u.%s", b[3], b[2], b[1], b[0],
		    zone ? zone : "in-addr.arpa");
		return 0;
	}
	if (inet_pton(AF_INET6, addr, b) != 1)
		return -1;
	out[0] = '\0';
	for (i = 15; i >= 0 && o + 4 < outlen; i--)
		o += (size_t)snprintf(out + o, outlen - o, "%x.%x.", b[i] & 15,
		    b[i] >> 4);
	snprintf(out + o, outlen - o, "%s", zone ? zone : "ip6.arpa");
	return 0;
}

static int
has_addr(const struct dns_result *res, const char *addr)
{
	unsigned char want[16], got[16];
	int fam = strchr(addr, ':') ? AF_INET6 : AF_INET;
	size_t i;

	if (res == NULL || res->status != DNS_OK ||
	    inet_pton(fam, addr, want) != 1)
		return 0;
	for (i = 0; i < res->n; i++)
		if (res->addr[i].family == fam &&
		    inet_pton(fam, res->addr[i].text, got) == 1 &&
		    memcmp(want, got, fam == AF_INET ? 4 : 16) == 0)
			return 1;
	return 0;
}

/*
 * The organisational domain of RFC 7489 §3.2 (the public suffix and one
 * more label, libpsl over Debian's publicsuffix list, else libpsl's
 * built-in copy) into out; a name that is itself a public suffix is its
 * own.  Lower case, no trailing dot.
 */
static void
org_domain(const char *name, char *out, size_t outlen)
{
	static const psl_ctx_t *psl;
	const char *reg;

	if (psl == NULL && (psl = psl_latest(NULL)) == NULL)
		psl = psl_builtin();
	reg = psl != NULL ? psl_registrable_domain(psl, name) : NULL;
	dr_strlcpy(out, reg != NULL ? reg : name, outlen);
	str_lower(out);
	if (*out != '\0' && out[strlen(out) - 1] == '.')
		out[strlen(out) - 1] = '\0';
}

/* Relaxed alignment (§3.1): the same organisational domain. */
static int
aligned(const char *a, const char *b)
{
	char oa[256], ob[256];

	org_domain(a, oa, sizeof(oa));
	org_domain(b, ob, sizeof(ob));
	return strcmp(oa, ob) == 0;
}

/* A PTR name that looks assigned by an access provider. */
static int
generic_ptr(const char *name, const char *addr)
{
	static const char *const words[] = { "dynamic", "dyn", "pool",
	    "dhcp", "dsl", "cable", "ppp", "dial", "broadband", "client",
	    "customer", "cust", "residential", "unassigned", NULL };
	unsigned char b[4];
	char dig[4][64];
	const char *const *w;
	const char *p;
	size_t n;

	for (w = words; *w != NULL; w++)
		for (p = name; (p = strstr(p, *w)) != NULL; p++) {
			n = strlen(*w);
			if ((p == name || !isalpha((unsigned char)p[-1])) &&
			    !isalpha((unsigned char)p[n]))
				return 1;
		}
	if (inet_pton(AF_INET, addr, b) == 1) {
		snprintf(dig[0], sizeof(dig[0]), "%u-%u-%u-%u", b[0], b[1],
		    b[2], b[3]);
		snprintf(dig[1], sizeof(dig[1]), "%u-%u-%u-%u", b[3], b[2],
		    b[1], b[0]);
		snprintf(dig[2], sizeof(dig[2]), "%u.%u.%u.%u", b[3], b[2],
		    b[1], b[0]);
		snprintf(dig[3], sizeof(dig[3]), "%02x%02x%02x%02x", b[0],
		    b[1], b[2], b[3]);
		for (n = 0; n < 4; n++)
			if (strstr(name, dig[n]) != NULL)
				return 1;
	}
	return 0;
}

/* ---- step 1: the first lookups ----------------------------------------- */

static void
start_relay(struct run *r)
{
	char name[DNS_NAME_BUF];
	size_t i, z;

	for (i = 0; i < r->nid; i++) {
		struct ident *id = &r->id[i];

		ask(r, &id->a, DNS_T_A, id->id.helo);
		ask(r, &id->aaaa, DNS_T_AAAA, id->id.helo);
		ask(r, &id->txt, DNS_T_TXT, id->id.helo);

		if (reverse_name(id->id.addr, NULL, id->rev,
		    sizeof(id->rev)) == -1)
			continue;
		ask(r, &id->ptr, DNS_T_PTR, id->rev);
		for (z = 0; z < r->nzones; z++)
			if (reverse_name(id->id.addr, r->zones[z], name,
			    sizeof(name)) == 0)
				ask(r, &id->bl[z], DNS_T_A, name);
	}
}

static void
start_domain(struct run *r, struct dom *d)
{
	struct dkim_key_info k;
	char name[DNS_NAME_BUF];
	size_t i;

	ask(r, &d->mx, DNS_T_MX, d->name);
	ask(r, &d->a, DNS_T_A, d->name);
	ask(r, &d->aaaa, DNS_T_AAAA, d->name);
	ask(r, &d->txt, DNS_T_TXT, d->name);
	snprintf(name, sizeof(name), "_dmarc.%s", d->name);
	ask(r, &d->dmarc, DNS_T_TXT, name);
	snprintf(name, sizeof(name), "_mta-sts.%s", d->name);
	ask(r, &d->sts, DNS_T_TXT, name);
	snprintf(name, sizeof(name), "_smtp._tls.%s", d->name);
	ask(r, &d->tlsrpt, DNS_T_TXT, name);
	ask(r, &d->dnskey, DNS_T_DNSKEY, d->name);
	ask(r, &d->caa, DNS_T_CAA, d->name);
	if (r->o->dkim == NULL)
		return;
	d->dkim = xcalloc(dkim_table_count(r->o->dkim) + 1,
	    sizeof(*d->dkim));
	for (i = 0; dkim_table_key(r->o->dkim, i, &k) == 0; i++)
		if (strcmp(k.domain, d->name) == 0 &&
		    dkim_record_name(r->o->dkim, i, name, sizeof(name)) == 0)
			ask(r, &d->dkim[i], DNS_T_TXT, name);
}

/* ---- step 2: what the first answers lead to ---------------------------- */

struct sts_arg {
	struct run	*run;
	struct dom	*dom;
};

static void
sts_done(const struct https_result *res, void *arg)
{
	struct sts_arg *a = arg;
	struct dom *d = a->dom;
	char err[256];

	d->sts_req = NULL;
	a->run->pending--;
	if (res->fail != HTTPS_OK) {
		d->sts_fetched = -1;
		snprintf(d->sts_why, sizeof(d->sts_why), "%s (%s)",
		    res->reason[0] ? res->reason : https_fail_name(res->fail),
		    https_fail_name(res->fail));
	} else if (mta_sts_policy_parse(res->body, res->body_len, &d->pol,
	    err, sizeof(err)) == -1) {
		d->sts_fetched = -1;
		snprintf(d->sts_why, sizeof(d->sts_why), "the policy does "
		    "not parse: %s", err);
	} else {
		d->sts_fetched = 1;
		d->pol_ok = 1;
	}
	free(a);
}

static void
start_sts_fetch(struct run *r, struct dom *d)
{
	struct https_params p;
	struct sts_arg *a;
	char host[300], err[512];

	mta_sts_https_params(&p, host, sizeof(host), d->name,
	    r->cf->https_port);
	p.base = r->base;
	p.ssl_ctx = r->https_ctx;
	p.resolver = r->res;
	p.connect_timeout_ms = (unsigned)r->o->timeout * 1000;
	p.timeout_ms = (unsigned)r->o->timeout * 1000;
	p.logid = "check";
	a = xcalloc(1, sizeof(*a));
	a->run = r;
	a->dom = d;
	r->pending++;
	if ((d->sts_req = https_request(&p, sts_done, a, err,
	    sizeof(err))) == NULL) {
		r->pending--;
		free(a);
		d->sts_fetched = -1;
		dr_strlcpy(d->sts_why, err, sizeof(d->sts_why));
	}
}

static int
mx_cmp(const void *a, const void *b)
{
	const struct mxhost *x = a, *y = b;

	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	return strcmp(x->name, y->name);
}

static void
second_domain(struct run *r, struct dom *d)
{
	char name[DNS_NAME_BUF];
	size_t i, j;

	if (d->mx != NULL && d->mx->status == DNS_OK && !d->mx->null_mx)
		for (i = 0; i < d->mx->n && d->nmx < MAX_MX; i++) {
			struct mxhost *m = &d->mxh[d->nmx++];

			dr_strlcpy(m->name, d->mx->mx[i].host,
			    sizeof(m->name));
			m->pref = d->mx->mx[i].pref;
		}
	/* in preference order, then by name: the same report each run */
	qsort(d->mxh, d->nmx, sizeof(d->mxh[0]), mx_cmp);
	for (i = 0; i < d->nmx; i++) {
		ask(r, &d->mxh[i].a, DNS_T_A, d->mxh[i].name);
		ask(r, &d->mxh[i].aaaa, DNS_T_AAAA, d->mxh[i].name);
	}
	/* DMARC: external report destinations (§7.1) */
	if (d->dmarc != NULL && d->dmarc->status == DNS_OK)
		d->dm_rc = dmarc_txt_select(d->dmarc->txt, d->dmarc->n,
		    &d->dm, d->dm_err, sizeof(d->dm_err));
	if (d->dm_rc == 1) {
		for (i = 0; i < d->dm.nrua + d->dm.nruf; i++) {
			const char *u = i < d->dm.nrua ? d->dm.rua[i] :
			    d->dm.ruf[i - d->dm.nrua];
			char ed[256];

			if (dmarc_uri_domain(u, ed, sizeof(ed)) == -1)
				continue;
			/* a destination of the same organisational domain
			 * is not external (§7.1) */
			if (aligned(ed, d->name))
				continue;
			for (j = 0; j < d->next; j++)
				if (strcmp(d->ext[j], ed) == 0)
					break;
			if (j < d->next || d->next == MAX_EXT)
				continue;
			dr_strlcpy(d->ext[d->next], ed, sizeof(d->ext[0]));
			snprintf(name, sizeof(name), "%s._report._dmarc.%s",
			    d->name, ed);
			ask(r, &d->extq[d->next], DNS_T_TXT, name);
			d->next++;
		}
	}
	/* MTA-STS: the policy, when a TXT record announces one */
	if (d->sts != NULL && d->sts->status == DNS_OK)
		d->sts_rc = mta_sts_txt_select(d->sts->txt, d->sts->n,
		    d->sts_id, d->sts_err, sizeof(d->sts_err));
	if (d->sts_rc == 1)
		start_sts_fetch(r, d);
}

static void
second_relay(struct run *r)
{
	size_t i, j;

	for (i = 0; i < r->nid; i++) {
		struct ident *id = &r->id[i];
		int v6 = strchr(id->id.addr, ':') != NULL;

		if (id->ptr == NULL || id->ptr->status != DNS_OK)
			continue;
		for (j = 0; j < id->ptr->n && j < MAX_PTR; j++)
			ask(r, &id->back[j], v6 ? DNS_T_AAAA : DNS_T_A,
			    id->ptr->mx[j].host);
	}
}

/* ---- step 3: TLSA; step 4: STARTTLS ------------------------------------ */

static int
addr_secure(const struct mxhost *m)
{
	return (m->a != NULL && m->a->status == DNS_OK &&
	    m->a->security == DNS_SEC_SECURE) ||
	    (m->aaaa != NULL && m->aaaa->status == DNS_OK &&
	    m->aaaa->security == DNS_SEC_SECURE);
}

static void
third_domain(struct run *r, struct dom *d)
{
	char name[DNS_NAME_BUF];
	size_t i;

	/* RFC 7672 §2.2: TLSA only for a host whose addresses are secure */
	for (i = 0; i < d->nmx; i++)
		if (addr_secure(&d->mxh[i])) {
			snprintf(name, sizeof(name), "_%d._tcp.%s",
			    r->cf->smtp_port, d->mxh[i].name);
			ask(r, &d->mxh[i].tlsa, DNS_T_TLSA, name);
		}
}

struct tls_arg {
	struct run	*run;
	struct tls_probe *p;
};

static void
tls_ready(struct smtp_client *c, void *arg)
{
	struct tls_arg *a = arg;
	const struct tls_outcome *o = smtp_client_tls(c);

	a->p->ok = o->established && o->verified;
	dr_strlcpy(a->p->spki, o->spki_sha256, sizeof(a->p->spki));
	snprintf(a->p->why, sizeof(a->p->why), "%s, %s, auth=%s%s%s",
	    o->protocol, o->cipher, tls_auth_name(o->auth),
	    o->tlsa[0] ? ", tlsa " : "", o->tlsa);
	a->run->pending--;
	smtp_client_quit(c);
	free(a);
}

static void
tls_done(struct smtp_client *c, const struct smtp_result *res, void *arg)
{
	struct tls_arg *a = arg;

	a->p->ok = 0;
	dr_strlcpy(a->p->spki, smtp_client_tls(c)->spki_sha256,
	    sizeof(a->p->spki));
	snprintf(a->p->why, sizeof(a->p->why), "%.200s at %s%s%s", res->reply,
	    res->stage ? res->stage : "?", res->tlsrpt ? ", " : "",
	    res->tlsrpt ? res->tlsrpt : "");
	a->run->pending--;
	smtp_client_free(c);
	free(a);
}

static const struct smtp_client_cb tls_cb = { tls_ready, NULL, tls_done };

static const struct dns_addr *
first_addr(const struct mxhost *m)
{
	if (m->a != NULL && m->a->status == DNS_OK && m->a->n > 0)
		return &m->a->addr[0];
	if (m->aaaa != NULL && m->aaaa->status == DNS_OK && m->aaaa->n > 0)
		return &m->aaaa->addr[0];
	return NULL;
}

/* mode: SMTP_TLS_WEBPKI (the MTA-STS check), SMTP_TLS_DANE (the TLSA
 * check) or SMTP_TLS_ENCRYPT (only the certificate's key, for a fix) */
static void
start_tls(struct run *r, struct mxhost *m, struct tls_probe *p,
    enum smtp_tls_mode mode)
{
	const struct dns_addr *a = first_addr(m);
	struct smtp_client_params cp;
	const char *names[1];
	struct tls_arg *ta;
	char err[256];

	p->tried = 1;
	if (a == NULL) {
		snprintf(p->why, sizeof(p->why), "no address for %.250s",
		    m->name);
		return;
	}
	names[0] = m->name;
	memset(&cp, 0, sizeof(cp));
	cp.base = r->base;
	memcpy(&cp.addr, &a->ss, a->sslen);
	if (cp.addr.ss_family == AF_INET)
		((struct sockaddr_in *)&cp.addr)->sin_port =
		    htons((uint16_t)r->cf->smtp_port);
	else
		((struct sockaddr_in6 *)&cp.addr)->sin6_port =
		    htons((uint16_t)r->cf->smtp_port);
	cp.addrlen = a->sslen;
	cp.host = m->name;
	cp.helo = r->cf->myhostname;
	cp.own_name_ok = 1;
	cp.logid = "check";
	cp.connect_timeout_ms = (unsigned)r->o->timeout * 1000;
	cp.cmd_timeout_ms = (unsigned)r->o->timeout * 1000;
	cp.ssl_ctx = r->tls_ctx;
	cp.names = names;
	cp.nnames = 1;
	cp.tls = mode;
	if (mode == SMTP_TLS_DANE) {
		cp.tlsa = m->tlsa->tlsa;
		cp.ntlsa = m->tlsa->n;
		cp.tlsa_base = m->name;
	} else
		cp.sni = m->name;
	ta = xcalloc(1, sizeof(*ta));
	ta->run = r;
	ta->p = p;
	r->pending++;
	if (smtp_client_connect(&cp, &tls_cb, ta, err, sizeof(err)) == NULL) {
		r->pending--;
		free(ta);
		snprintf(p->why, sizeof(p->why), "cannot connect: %s", err);
	}
}

static void
fourth_domain(struct run *r, struct dom *d)
{
	size_t i;

	for (i = 0; i < d->nmx; i++) {
		struct mxhost *m = &d->mxh[i];

		if (d->pol_ok && d->pol.mode != MTA_STS_MODE_NONE)
			start_tls(r, m, &m->webpki, SMTP_TLS_WEBPKI);
		if (m->tlsa != NULL && m->tlsa->status == DNS_OK &&
		    m->tlsa->security == DNS_SEC_SECURE)
			start_tls(r, m, &m->dane, SMTP_TLS_DANE);
		else if (addr_secure(m) && (m->tlsa == NULL ||
		    m->tlsa->status != DNS_TEMPFAIL))
			start_tls(r, m, &m->dane, SMTP_TLS_ENCRYPT);
	}
}

/* ---- SPF --------------------------------------------------------------- */

/* The domain's one SPF record, or NULL; *count the number of them. */
static const struct dns_txt *
spf_record(const struct dns_result *res, int *count)
{
	const struct dns_txt *found = NULL;
	size_t i;

	*count = 0;
	if (res == NULL || res->status != DNS_OK)
		return NULL;
	for (i = 0; i < res->n; i++)
		if (spf_is_record(res->txt[i].data, res->txt[i].len)) {
			(*count)++;
			found = &res->txt[i];
		}
	return found;
}

static void
spf_node_add(struct dom *d, const char *name, int depth, int redirect)
{
	struct spf_node *n;

	if (d->nspf == SPF_MAX_NODES || depth > SPF_MAX_DEPTH)
		return;
	n = xcalloc(1, sizeof(*n));
	dr_strlcpy(n->name, name, sizeof(n->name));
	n->depth = depth;
	n->redirect = redirect;
	d->spf[d->nspf++] = n;
}

/* The lookup count: each level of include:/redirect= one step. */
static void
spf_walk(struct run *r)
{
	size_t di, i;
	int t, cnt, more = 1, level;
	char err[256];

	for (di = 0; di < r->ndom; di++)
		spf_node_add(&r->dom[di], r->dom[di].name, 0, 0);
	for (level = 0; more && level <= SPF_MAX_DEPTH; level++) {
		more = 0;
		/* the TXT records of this level's nodes (the domain's own
		 * is known already) */
		for (di = 0; di < r->ndom; di++) {
			struct dom *d = &r->dom[di];

			for (i = 0; i < d->nspf; i++)
				if (d->spf[i]->depth == level && level > 0)
					ask(r, &d->spf[i]->txt, DNS_T_TXT,
					    d->spf[i]->name);
		}
		wait_all(r);
		for (di = 0; di < r->ndom; di++) {
			struct dom *d = &r->dom[di];
			size_t nnodes = d->nspf;

			for (i = 0; i < nnodes; i++) {
				struct spf_node *n = d->spf[i];
				const struct dns_txt *rec;

				if (n->depth != level)
					continue;
				rec = spf_record(level == 0 ? d->txt : n->txt,
				    &cnt);
				if (rec == NULL || cnt != 1)
					continue;
				n->nt = spf_terms_parse(rec->data, rec->len,
				    n->t, SPF_TERMS_MAX, err, sizeof(err));
				for (t = 0; t < n->nt; t++) {
					struct spf_term *st = &n->t[t];
					const char *tg = st->target[0] ?
					    st->target : n->name;

					if (st->macro)
						continue;
					switch (st->kind) {
					case SPF_TERM_INCLUDE:
					case SPF_TERM_REDIRECT:
						spf_node_add(d, tg, level + 1,
						    st->kind ==
						    SPF_TERM_REDIRECT);
						more = 1;
						break;
					case SPF_TERM_A:
					case SPF_TERM_EXISTS:
						ask(r, &n->q[t], DNS_T_A, tg);
						break;
					case SPF_TERM_MX:
						ask(r, &n->q[t], DNS_T_MX, tg);
						break;
					default:
						break;
					}
				}
			}
		}
		wait_all(r);
	}
}

/* SPF evaluation rounds for every domain and identity at once. */
#define SPF_ASK_MAX	16	/* questions asked per evaluation and round */

struct spf_job {
	struct spf_eval	 *ev;
	size_t		  dom, id;
	int		  busy;
	size_t		  nask;
	struct dns_result *ans[SPF_ASK_MAX];
};

static void
spf_evaluate(struct run *r)
{
	struct spf_job *job;
	size_t di, i, k, nev = 0;
	int any = 1, type, cnt;
	char err[256];

	job = xcalloc(r->ndom * r->nid + 1, sizeof(*job));
	for (di = 0; di < r->ndom; di++) {
		struct dom *d = &r->dom[di];

		if (spf_record(d->txt, &cnt) == NULL || cnt != 1)
			continue;
		for (i = 0; i < r->nid; i++) {
			if (!serves(r, i, d->name))
				continue;
			if ((job[nev].ev = spf_eval_new(err, sizeof(err))) ==
			    NULL) {
				dr_strlcpy(d->spf_out[i].result, "error",
				    sizeof(d->spf_out[i].result));
				dr_strlcpy(d->spf_out[i].why, err,
				    sizeof(d->spf_out[i].why));
				continue;
			}
			job[nev].dom = di;
			job[nev].id = i;
			job[nev].busy = 1;
			nev++;
		}
	}
	while (any) {
		any = 0;
		for (k = 0; k < nev; k++) {
			struct spf_job *j = &job[k];
			struct dom *d = &r->dom[j->dom];

			if (!j->busy)
				continue;
			if (spf_eval_run(j->ev, r->id[j->id].id.addr,
			    r->id[j->id].id.helo, d->name,
			    &d->spf_out[j->id]) != SPF_EVAL_NEED) {
				j->busy = 0;
				continue;
			}
			any = 1;
			j->nask = spf_eval_nmissing(j->ev);
			if (j->nask > SPF_ASK_MAX)
				j->nask = SPF_ASK_MAX;
			for (i = 0; i < j->nask; i++) {
				const char *n = spf_eval_missing(j->ev, i,
				    &type);

				ask(r, &j->ans[i], type, n);
			}
		}
		if (!any)
			break;
		wait_all(r);
		for (k = 0; k < nev; k++) {
			struct spf_job *j = &job[k];

			if (!j->busy)
				continue;
			for (i = 0; i < j->nask; i++) {
				spf_eval_add(j->ev, j->ans[i]);
				dns_result_free(j->ans[i]);
				j->ans[i] = NULL;
			}
		}
	}
	for (k = 0; k < nev; k++)
		spf_eval_free(job[k].ev);
	free(job);
}

/* ---- the verdicts ------------------------------------------------------ */

/* For a lookup that failed (SERVFAIL, timeout, bogus). */
static void
answer_fix(struct check_item *it, const char *domain)
{
	fix(it, "make every nameserver of %s answer, with valid DNSSEC "
	    "signatures if the zone is signed (a failed lookup defers mail "
	    "at receivers)", domain);
}

/* A record at PREFIX.DOMAIN whose lookup failed: reported (fail, with
 * answer_fix) -> 1; 0 if it did not fail (found or absent). */
static int
lookup_failed(struct run *r, const struct dom *d, const char *check,
    const char *prefix, const struct dns_result *res)
{
	struct check_item *it;

	if (res == NULL || res->status != DNS_TEMPFAIL)
		return 0;
	it = item(r, CHECK_FAIL, d->name, check, "the lookup of %s.%s "
	    "failed: %s", prefix, d->name, why_none(res));
	answer_fix(it, d->name);
	return 1;
}

static void
report_relay(struct run *r)
{
	const char *h = r->cf->myhostname;
	struct check_item *it;
	size_t i, j, z, k;

	if (r->nid == 0) {
		it = item(r, CHECK_WARN, h, "host", "cannot tell the outbound "
		    "address (no route, and smtp_bind_address is not set)");
		fix(it, "set smtp_bind_address = ADDRESS in danerelay.conf");
		return;
	}
	for (i = 0; i < r->nid; i++) {
		struct ident *id = &r->id[i];
		const char *a = id->id.addr;
		int v6 = strchr(a, ':') != NULL, fwd = 0, named = 0, cnt;
		const char *setting = id->id.domain[0] ? "its source_table "
		    "line's HELO name" : "myhostname";

		h = id->id.helo;
		/* the HELO name -> address */
		if (has_addr(v6 ? id->aaaa : id->a, a))
			item(r, CHECK_OK, h, "host", "%s resolves to %s (%s)",
			    h, a, sec(v6 ? id->aaaa : id->a));
		else {
			it = item(r, CHECK_FAIL, h, "host", "%s does not "
			    "resolve to the outbound address %s (%s)", h, a,
			    why_none(v6 ? id->aaaa : id->a));
			fix(it, "%s. IN %s %s", h, v6 ? "AAAA" : "A", a);
		}
		/* PTR, FCrDNS */
		if (id->ptr == NULL || id->ptr->status != DNS_OK) {
			it = item(r, CHECK_FAIL, h, "ptr", "%s has no PTR "
			    "record (%s): many receivers refuse mail from it",
			    a, why_none(id->ptr));
			fix(it, "%s. IN PTR %s. (ask the provider of %s)",
			    id->rev, h, a);
		} else {
			for (j = 0; j < id->ptr->n && j < MAX_PTR; j++) {
				const char *pn = id->ptr->mx[j].host;

				if (strcasecmp(pn, h) == 0)
					named = 1;
				if (has_addr(id->back[j], a))
					fwd = 1;
			}
			if (!named) {
				it = item(r, CHECK_FAIL, h, "ptr", "the PTR of "
				    "%s is %s, not %s %s", a,
				    id->ptr->mx[0].host, setting, h);
				fix(it, "%s. IN PTR %s. (ask the provider of "
				    "%s), or set %s to %s", id->rev, h,
				    a, setting, id->ptr->mx[0].host);
			} else if (!fwd) {
				it = item(r, CHECK_FAIL, h, "ptr", "the PTR of "
				    "%s is %s, but that name does not resolve "
				    "back to %s (no forward-confirmed reverse "
				    "DNS)", a, h, a);
				fix(it, "%s. IN %s %s", h, v6 ? "AAAA" : "A",
				    a);
			} else
				item(r, CHECK_OK, h, "ptr", "%s has PTR %s, "
				    "which resolves back (FCrDNS)", a, h);
			for (j = 0; j < id->ptr->n && j < MAX_PTR; j++)
				if (generic_ptr(id->ptr->mx[j].host, a)) {
					it = item(r, CHECK_WARN, h,
					    "ptr-generic", "the PTR %s of %s "
					    "looks generic (dynamic or pool "
					    "addresses): receivers score it "
					    "as a home connection",
					    id->ptr->mx[j].host, a);
					fix(it, "%s. IN PTR %s. (ask the "
					    "provider of %s)", id->rev, h, a);
				}
		}
		/* blocklists */
		for (z = 0; z < r->nzones; z++) {
			struct dns_result *b = id->bl[z];

			if (b != NULL && b->status == DNS_OK && b->n > 0) {
				it = item(r, CHECK_FAIL, h, "dnsbl", "%s is "
				    "listed in %s (%s)", a, r->zones[z],
				    b->addr[0].text);
				fix(it, "ask %s to delist %s (see its lookup "
				    "page), or send from another address "
				    "(smtp_bind_address)", r->zones[z], a);
			} else if (b != NULL && (b->status == DNS_NXDOMAIN ||
			    b->status == DNS_NODATA))
				item(r, CHECK_OK, h, "dnsbl", "%s is not "
				    "listed in %s", a, r->zones[z]);
			else {
				it = item(r, CHECK_WARN, h, "dnsbl", "%s: "
				    "lookup in %s failed: %s", a, r->zones[z],
				    why_none(b));
				fix(it, "check the zone name in "
				    "check_dnsbl_zones (%s); some lists refuse "
				    "queries through public resolvers",
				    r->zones[z]);
			}
		}
		/* the HELO name's own SPF record, once per name */
		for (k = 0; k < i; k++)
			if (strcasecmp(r->id[k].id.helo, h) == 0)
				break;
		if (k < i)
			continue;
		if (spf_record(id->txt, &cnt) != NULL && cnt == 1)
			item(r, CHECK_OK, h, "helo-spf", "the HELO name %s "
			    "has an SPF record", h);
		else {
			it = item(r, CHECK_WARN, h, "helo-spf", "the HELO "
			    "name %s has %s SPF record: bounces (empty "
			    "MAIL FROM) are checked against it (RFC 7208 "
			    "§2.3)", h, cnt > 1 ? "more than one" : "no");
			fix(it, "%s. IN TXT \"v=spf1 a -all\"", h);
		}
	}
}

static void
report_mx(struct run *r, struct dom *d)
{
	struct check_item *it;
	const char *h = r->cf->myhostname;

	if (d->mx != NULL && d->mx->status == DNS_OK) {
		if (d->mx->null_mx)
			item(r, CHECK_INFO, d->name, "mx", "null MX: the "
			    "domain receives no mail (RFC 7505)");
		else
			item(r, CHECK_OK, d->name, "mx", "%zu MX host%s, "
			    "first %s (%s)", d->mx->n, d->mx->n > 1 ? "s" : "",
			    d->nmx ? d->mxh[0].name : d->mx->mx[0].host,
			    sec(d->mx));
		return;
	}
	if ((d->a != NULL && d->a->status == DNS_OK) ||
	    (d->aaaa != NULL && d->aaaa->status == DNS_OK)) {
		it = item(r, CHECK_WARN, d->name, "mx", "no MX record, only "
		    "addresses: mail to the domain goes to its web server "
		    "(implicit MX)");
		fix(it, "%s. IN MX 10 %s.   (or, for a domain that never "
		    "receives mail, the null MX %s. IN MX 0 .)", d->name, h,
		    d->name);
		return;
	}
	it = item(r, CHECK_FAIL, d->name, "mx", "no MX and no address "
	    "(%s): replies and bounces to the domain cannot be delivered",
	    why_none(d->mx));
	fix(it, "%s. IN MX 10 %s.   (or the null MX %s. IN MX 0 .)",
	    d->name, h, d->name);
}

/* The record with "ip4:ADDR " put after "v=spf1" (the fix). */
static char *
spf_with(const struct dns_txt *rec, const char *addr)
{
	return xasprintf("v=spf1 %s:%s%s", strchr(addr, ':') ? "ip6" : "ip4",
	    addr, rec ? rec->data + 6 : " ~all");
}

/* The record with its all term (which, any case) written "~all". */
static char *
spf_all_soft(const struct dns_txt *rec, const char *which)
{
	const char *p = strcasestr(rec->data, which);

	if (p == NULL)
		return xasprintf("%s ~all", rec->data);
	return xasprintf("%.*s~all%s", (int)(p - rec->data), rec->data,
	    p + strlen(which));
}

static void
report_spf(struct run *r, struct dom *d)
{
	const struct dns_txt *rec;
	struct check_item *it;
	int cnt, lookups = 0, voids = 0, nall = 0;
	char allq = 0, *s;
	size_t i, k;
	int t;

	rec = spf_record(d->txt, &cnt);
	if (cnt == 0) {
		if (d->txt != NULL && d->txt->status == DNS_TEMPFAIL) {
			it = item(r, CHECK_FAIL, d->name, "spf", "the TXT "
			    "lookup failed: %s", why_none(d->txt));
			answer_fix(it, d->name);
			return;
		}
		it = item(r, CHECK_FAIL, d->name, "spf", "no SPF record: "
		    "receivers cannot tell that this relay may send for "
		    "the domain");
		for (i = 0; i < r->nid && !serves(r, i, d->name); i++)
			;
		s = i < r->nid ? spf_with(NULL, r->id[i].id.addr) :
		    xstrdup("v=spf1 a mx ~all");
		fix(it, "%s. IN TXT \"%s\"", d->name, s);
		free(s);
		return;
	}
	if (cnt > 1) {
		it = item(r, CHECK_FAIL, d->name, "spf", "%d SPF records: "
		    "RFC 7208 §4.5 makes that a permerror", cnt);
		fix(it, "keep exactly one \"v=spf1 ...\" TXT record at %s",
		    d->name);
		return;
	}
	/* evaluation of every outbound address */
	d->spf_pass_all = r->nid > 0;
	for (i = 0; i < r->nid; i++) {
		struct spf_outcome *o = &d->spf_out[i];

		if (!serves(r, i, d->name))
			continue;
		if (strcmp(o->result, "pass") == 0)
			item(r, CHECK_OK, d->name, "spf", "pass for %s "
			    "(libspf2): %s", r->id[i].id.addr, o->why);
		else {
			d->spf_pass_all = 0;
			it = item(r, CHECK_FAIL, d->name, "spf", "%s for the "
			    "outbound address %s (libspf2): %s",
			    o->result[0] ? o->result : "no result",
			    r->id[i].id.addr, o->why);
			s = spf_with(rec, r->id[i].id.addr);
			fix(it, "%s. IN TXT \"%s\"", d->name, s);
			free(s);
		}
	}
	/* the lookup count over include:/redirect= (§4.6.4) */
	for (k = 0; k < d->nspf; k++) {
		struct spf_node *n = d->spf[k];

		if (k > 0 && n->txt != NULL && (n->txt->status ==
		    DNS_NXDOMAIN || n->txt->status == DNS_NODATA))
			voids++;
		for (t = 0; t < n->nt; t++) {
			if (spf_term_dns(n->t[t].kind))
				lookups++;
			if (n->q[t] != NULL && (n->q[t]->status ==
			    DNS_NXDOMAIN || n->q[t]->status == DNS_NODATA))
				voids++;
			if (k == 0 && n->t[t].kind == SPF_TERM_ALL) {
				nall++;
				allq = n->t[t].qual;
			}
		}
	}
	if (lookups > 10) {
		it = item(r, CHECK_FAIL, d->name, "spf-limits", "%d "
		    "DNS-querying terms (include, a, mx, ptr, exists, "
		    "redirect) counted over the includes: more than 10 is a "
		    "permerror (RFC 7208 §4.6.4)", lookups);
		fix(it, "%s. IN TXT: replace include:/a/mx terms by the "
		    "ip4:/ip6: ranges they stand for, or drop unused ones, "
		    "until at most 10 remain", d->name);
	} else if (voids > 2) {
		it = item(r, CHECK_FAIL, d->name, "spf-limits", "%d void "
		    "lookups (names without records): more than 2 is a "
		    "permerror (RFC 7208 §4.6.4)", voids);
		fix(it, "%s. IN TXT: remove the terms whose names do not "
		    "exist", d->name);
	} else
		item(r, CHECK_OK, d->name, "spf-limits", "%d DNS-querying "
		    "terms (at most 10), %d void lookups (at most 2)",
		    lookups, voids);
	if (nall > 0 && allq == '+') {
		it = item(r, CHECK_FAIL, d->name, "spf-all", "+all: every "
		    "host on the internet may send as %s", d->name);
		s = spf_all_soft(rec, "+all");
		fix(it, "%s. IN TXT \"%s\"", d->name, s);
		free(s);
	} else if (nall > 0 && allq == '-') {
		it = item(r, CHECK_WARN, d->name, "spf-all", "-all: "
		    "receivers may reject at SMTP time before DMARC or DKIM "
		    "are looked at (forwarded mail); ~all lets DMARC decide "
		    "(RFC 7489 §10.1)");
		s = spf_all_soft(rec, "-all");
		fix(it, "%s. IN TXT \"%s\"", d->name, s);
		free(s);
	} else if (nall == 0 || allq == '?') {
		it = item(r, CHECK_WARN, d->name, "spf-all", "%s: other "
		    "hosts get a neutral result", nall ? "?all" : "no all "
		    "term");
		fix(it, "end the record at %s with ~all", d->name);
	} else
		item(r, CHECK_OK, d->name, "spf-all", "~all");
}

static int
key_bits(const char *path, int *rsa)
{
	EVP_PKEY *pk;
	FILE *fp;
	int bits;

	*rsa = 0;
	if ((fp = fopen(path, "r")) == NULL)
		return -1;
	pk = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
	fclose(fp);
	if (pk == NULL)
		return -1;
	bits = EVP_PKEY_get_bits(pk);
	*rsa = EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA;
	EVP_PKEY_free(pk);
	return bits;
}

static void
report_dkim(struct run *r, struct dom *d)
{
	struct dkim_key_info k;
	struct check_item *it;
	char why[256], day[16], *rec, *zone;
	int nkeys = 0, rsa_act = 0, ed_act = 0, rsa, bits;
	size_t i, j;
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(day, sizeof(day), "%Y%m%d", &tm);
	for (i = 0; r->o->dkim != NULL &&
	    dkim_table_key(r->o->dkim, i, &k) == 0; i++) {
		struct dns_result *res = d->dkim[i];
		int match = 0;

		if (strcmp(k.domain, d->name) != 0)
			continue;
		nkeys++;
		if (k.state == DKIM_KEY_ACTIVE)
			*(k.alg == DKIM_ALG_ED25519_SHA256 ? &ed_act :
			    &rsa_act) = 1;
		why[0] = '\0';
		for (j = 0; res != NULL && res->status == DNS_OK &&
		    j < res->n && !match; j++)
			match = dkim_record_match(r->o->dkim, i,
			    res->txt[j].data, res->txt[j].len, why,
			    sizeof(why));
		if (match && res->security != DNS_SEC_BOGUS) {
			item(r, CHECK_OK, d->name, "dkim", "selector %s "
			    "(%s, %s) published, key matches (%s)", k.selector,
			    dkim_alg_name(k.alg), dkim_key_state_name(k.state),
			    sec(res));
			if (k.state == DKIM_KEY_ACTIVE)
				d->dkim_pass = 1;
		} else {
			enum check_status st = k.state == DKIM_KEY_ACTIVE ?
			    CHECK_FAIL : k.state == DKIM_KEY_PENDING ?
			    CHECK_INFO : CHECK_WARN;

			if (res != NULL && res->status == DNS_OK)
				it = item(r, st, d->name, "dkim", "selector "
				    "%s (%s, %s): the published key differs "
				    "from the private key: %s", k.selector,
				    dkim_alg_name(k.alg),
				    dkim_key_state_name(k.state), why);
			else
				it = item(r, st, d->name, "dkim", "selector "
				    "%s (%s, %s) is not published: %s",
				    k.selector, dkim_alg_name(k.alg),
				    dkim_key_state_name(k.state),
				    why_none(res));
			if ((rec = dkim_key_record(r->o->dkim, i)) != NULL) {
				zone = dkim_record_zone(k.domain, k.selector,
				    rec);
				fix(it, "%s", zone);
				free(zone);
				free(rec);
			}
		}
		if (k.state == DKIM_KEY_OLD)
			continue;
		bits = key_bits(k.keyfile, &rsa);
		if (rsa && bits > 0 && bits < 2048) {
			it = item(r, CHECK_WARN, d->name, "dkim-key", "selector "
			    "%s: RSA key of %d bits; 2048 is the size to use "
			    "(RFC 8301 §3.2), receivers may score shorter "
			    "keys down", k.selector, bits);
			fix(it, "danerelay dkim rotate %s   (a new 2048-bit "
			    "key under a new selector)", d->name);
		} else if (bits > 0)
			item(r, CHECK_OK, d->name, "dkim-key", "selector %s: "
			    "%s key of %d bits", k.selector, rsa ? "RSA" :
			    "Ed25519", bits);
		if (k.created > 0 && now - k.created > r->o->dkim_max_age) {
			it = item(r, CHECK_WARN, d->name, "dkim-age",
			    "selector %s: the key is %lld days old, past the "
			    "rotation period of %lld days (check_dkim_max_age)",
			    k.selector, (long long)(now - k.created) / 86400,
			    r->o->dkim_max_age / 86400);
			fix(it, "danerelay dkim rotate %s", d->name);
		}
	}
	if (nkeys == 0) {
		it = item(r, CHECK_WARN, d->name, "dkim", "no DKIM key for "
		    "%s in %s: its mail goes out unsigned", d->name,
		    r->cf->dkim_key_table ? r->cf->dkim_key_table :
		    "dkim_key_table (not set)");
		fix(it, "danerelay dkim keygen %s s%s   (with dkim_key_table "
		    "set), then publish the record it prints", d->name, day);
		return;
	}
	if (ed_act && rsa_act)
		item(r, CHECK_INFO, d->name, "dkim-ed25519", "dual signing: "
		    "RSA and Ed25519 (RFC 8463)");
	else if (rsa_act) {
		it = item(r, CHECK_INFO, d->name, "dkim-ed25519", "RSA only; "
		    "an Ed25519 key beside it (RFC 8463) is optional");
		fix(it, "danerelay dkim keygen %s e%s --algorithm ed25519",
		    d->name, day);
	}
}

static void
report_dmarc(struct run *r, struct dom *d)
{
	struct check_item *it;
	struct dkim_key_info k;
	size_t i;
	int dkim_al = 0;

	if (d->dm_rc == 0) {
		if (lookup_failed(r, d, "dmarc", "_dmarc", d->dmarc))
			return;
		it = item(r, CHECK_WARN, d->name, "dmarc", "no DMARC record: "
		    "large receivers want one from senders (RFC 7489)");
		fix(it, "_dmarc.%s. IN TXT \"v=DMARC1; p=none; "
		    "rua=mailto:dmarc@%s\"", d->name, d->name);
		return;
	}
	if (d->dm_rc == -1) {
		it = item(r, CHECK_FAIL, d->name, "dmarc", "the DMARC record "
		    "is not valid: %s", d->dm_err);
		fix(it, "_dmarc.%s. IN TXT \"v=DMARC1; p=none; "
		    "rua=mailto:dmarc@%s\"", d->name, d->name);
		return;
	}
	item(r, strcmp(d->dm.p, "none") == 0 ? CHECK_INFO : CHECK_OK,
	    d->name, "dmarc", "p=%s%s%s, adkim=%c, aspf=%c, pct=%d%s",
	    d->dm.p, d->dm.sp[0] ? ", sp=" : "", d->dm.sp, d->dm.adkim,
	    d->dm.aspf, d->dm.pct, strcmp(d->dm.p, "none") == 0 ?
	    " (monitoring only)" : "");
	for (i = 0; i < d->next; i++) {
		struct dns_result *q = d->extq[i];
		size_t j;
		int ok = 0;

		for (j = 0; q != NULL && q->status == DNS_OK && j < q->n; j++)
			if (strncmp(q->txt[j].data, "v=DMARC1", 8) == 0)
				ok = 1;
		if (ok)
			item(r, CHECK_OK, d->name, "dmarc-rua", "%s accepts "
			    "reports for %s (RFC 7489 §7.1)", d->ext[i],
			    d->name);
		else {
			it = item(r, CHECK_FAIL, d->name, "dmarc-rua", "%s "
			    "does not authorise reports for %s (%s): "
			    "receivers send it none (RFC 7489 §7.1)",
			    d->ext[i], d->name, why_none(q));
			fix(it, "%s._report._dmarc.%s. IN TXT \"v=DMARC1\"   "
			    "(in %s's zone)", d->name, d->ext[i], d->ext[i]);
		}
	}
	/* alignment of what this relay produces: a signature that verifies
	 * (an active key of the domain, published), or one of a parent
	 * domain's active keys under relaxed alignment (§3.1.1) */
	dkim_al = d->dkim_pass;
	for (i = 0; r->o->dkim != NULL && d->dm.adkim != 's' &&
	    dkim_table_key(r->o->dkim, i, &k) == 0; i++)
		if (k.state == DKIM_KEY_ACTIVE && strcmp(k.domain,
		    d->name) != 0 && aligned(k.domain, d->name) &&
		    strlen(k.domain) < strlen(d->name))
			dkim_al = 1;
	if (dkim_al && d->spf_pass_all)
		item(r, CHECK_OK, d->name, "dmarc-align", "DKIM d=%s and "
		    "SPF (MAIL FROM @%s, passing) align with From: %s",
		    d->name, d->name, d->name);
	else if (dkim_al) {
		it = item(r, CHECK_WARN, d->name, "dmarc-align", "DKIM "
		    "aligns, SPF does not pass for the relay: DMARC rests on "
		    "DKIM alone (forwarding breaks it)");
		fix(it, "see the spf lines for %s", d->name);
	} else if (d->spf_pass_all) {
		it = item(r, CHECK_WARN, d->name, "dmarc-align", "SPF aligns, "
		    "no published active DKIM key signs as %s: DMARC rests "
		    "on SPF alone (forwarding breaks it)", d->name);
		fix(it, "publish the record of the dkim lines for %s, or make "
		    "a key: danerelay dkim keygen %s SELECTOR", d->name,
		    d->name);
	} else {
		it = item(r, CHECK_FAIL, d->name, "dmarc-align", "neither "
		    "DKIM nor SPF produce an identity aligned with %s: "
		    "DMARC fails (p=%s)", d->name, d->dm.p);
		fix(it, "danerelay dkim keygen %s SELECTOR, and see the spf "
		    "lines", d->name);
	}
}

static void
report_sts(struct run *r, struct dom *d)
{
	struct check_item *it;
	const char *const *pats;
	size_t i;

	if (d->sts_rc == 0) {
		if (lookup_failed(r, d, "mta-sts", "_mta-sts", d->sts))
			return;
		it = item(r, CHECK_INFO, d->name, "mta-sts", "no MTA-STS "
		    "policy (RFC 8461): senders without DANE deliver to "
		    "%s opportunistically", d->name);
		fix(it, "_mta-sts.%s. IN TXT \"v=STSv1; id=%s01\" and "
		    "https://mta-sts.%s%s", d->name, r->day, d->name,
		    MTA_STS_PATH);
		return;
	}
	if (d->sts_rc == -1) {
		it = item(r, CHECK_FAIL, d->name, "mta-sts", "the _mta-sts "
		    "TXT record is not valid: %s", d->sts_err);
		fix(it, "_mta-sts.%s. IN TXT \"v=STSv1; id=YYYYMMDDnn\"   "
		    "(one record)", d->name);
		return;
	}
	if (d->sts_fetched != 1) {
		it = item(r, CHECK_FAIL, d->name, "mta-sts", "TXT id=%s, but "
		    "the policy fetch from https://mta-sts.%s%s failed: %s",
		    d->sts_id, d->name, MTA_STS_PATH, d->sts_why);
		fix(it, "serve the policy at https://mta-sts.%s%s as "
		    "text/plain, status 200, no redirect, with a WebPKI "
		    "certificate for mta-sts.%s", d->name, MTA_STS_PATH,
		    d->name);
		return;
	}
	if (d->pol.mode == MTA_STS_MODE_ENFORCE)
		item(r, CHECK_OK, d->name, "mta-sts", "id=%s, mode enforce, "
		    "%zu mx pattern%s", d->sts_id, d->pol.nmx,
		    d->pol.nmx == 1 ? "" : "s");
	else {
		it = item(r, d->pol.mode == MTA_STS_MODE_NONE ? CHECK_INFO :
		    CHECK_WARN, d->name, "mta-sts", "id=%s, mode %s: senders "
		    "do not enforce it", d->sts_id,
		    mta_sts_mode_name(d->pol.mode));
		fix(it, "mode: enforce   (in https://mta-sts.%s%s, and a new "
		    "id in _mta-sts.%s)", d->name, MTA_STS_PATH, d->name);
	}
	if (d->pol.max_age < 86400) {
		it = item(r, CHECK_WARN, d->name, "mta-sts-max-age",
		    "max_age %lld s: shorter than a day, the policy lapses "
		    "between fetches (RFC 8461 §3.2 suggests weeks)",
		    d->pol.max_age);
		fix(it, "max_age: 604800   (in the policy file)");
	} else
		item(r, CHECK_OK, d->name, "mta-sts-max-age", "max_age %lld s",
		    d->pol.max_age);
	pats = (const char *const *)d->pol.mx;
	for (i = 0; i < d->nmx; i++) {
		struct mxhost *m = &d->mxh[i];

		if (!mta_sts_mx_match(pats, d->pol.nmx, m->name)) {
			it = item(r, CHECK_FAIL, d->name, "mta-sts-mx", "MX %s "
			    "is not covered by the policy's mx patterns: "
			    "senders that enforce it never deliver there",
			    m->name);
			fix(it, "mx: %s   (add to https://mta-sts.%s%s and "
			    "change the id in _mta-sts.%s)", m->name, d->name,
			    MTA_STS_PATH, d->name);
		} else
			item(r, CHECK_OK, d->name, "mta-sts-mx", "MX %s is "
			    "covered", m->name);
		if (!m->webpki.tried)
			continue;
		if (m->webpki.ok)
			item(r, CHECK_OK, d->name, "mta-sts-cert", "MX %s: "
			    "WebPKI-valid certificate (%s)", m->name,
			    m->webpki.why);
		else {
			it = item(r, CHECK_FAIL, d->name, "mta-sts-cert", "MX "
			    "%s: no WebPKI-valid certificate for the name: %s",
			    m->name, m->webpki.why);
			fix(it, "install on %s a certificate of a public CA "
			    "whose subjectAltName names %s", m->name, m->name);
		}
	}
}

static void
report_tlsrpt(struct run *r, struct dom *d)
{
	struct tlsrpt_rua rua;
	struct check_item *it;
	char err[256], a[300], host[300], target[1100];
	size_t i;
	int port, usable = 0;

	if (d->tlsrpt == NULL || d->tlsrpt->status != DNS_OK) {
		if (lookup_failed(r, d, "tlsrpt", "_smtp._tls", d->tlsrpt))
			return;
		it = item(r, CHECK_INFO, d->name, "tlsrpt", "no TLSRPT record "
		    "(RFC 8460): senders cannot report TLS failures to you");
		fix(it, "_smtp._tls.%s. IN TXT \"v=TLSRPTv1; "
		    "rua=mailto:tlsrpt@%s\"", d->name, d->name);
		return;
	}
	memset(&rua, 0, sizeof(rua));
	if (tlsrpt_txt_select(d->tlsrpt->txt, d->tlsrpt->n, &rua, err,
	    sizeof(err)) == -1) {
		it = item(r, CHECK_FAIL, d->name, "tlsrpt", "the _smtp._tls "
		    "record is not valid: %s", err);
		fix(it, "_smtp._tls.%s. IN TXT \"v=TLSRPTv1; "
		    "rua=mailto:tlsrpt@%s\"", d->name, d->name);
		return;
	}
	for (i = 0; i < rua.n; i++)
		if ((strncasecmp(rua.uri[i], "mailto:", 7) == 0 &&
		    tlsrpt_mailto_addr(rua.uri[i], a, sizeof(a)) == 0) ||
		    (strncasecmp(rua.uri[i], "https:", 6) == 0 &&
		    tlsrpt_https_uri(rua.uri[i], host, sizeof(host), &port,
		    target, sizeof(target)) == 0))
			usable++;
		else {
			it = item(r, CHECK_FAIL, d->name, "tlsrpt", "rua %s "
			    "is not usable", rua.uri[i]);
			fix(it, "_smtp._tls.%s. IN TXT \"v=TLSRPTv1; "
			    "rua=mailto:tlsrpt@%s\"", d->name, d->name);
		}
	if (usable)
		item(r, CHECK_OK, d->name, "tlsrpt", "%d usable rua URI%s",
		    usable, usable > 1 ? "s" : "");
	tlsrpt_rua_free(&rua);
}

/* The TLSA record of the certificate the MX served, or how to make it. */
static void
tlsa_fix(struct check_item *it, const char *owner, const struct tls_probe *p)
{
	if (p->spki[0] != '\0')
		fix(it, "%s. IN TLSA 3 1 1 %s   (the key the MX serves now)",
		    owner, p->spki);
	else
		fix(it, "%s. IN TLSA 3 1 1 <SHA-256 of the certificate's "
		    "public key: openssl x509 -in CERT -noout -pubkey | "
		    "openssl pkey -pubin -outform DER | sha256sum>", owner);
}

static void
report_dnssec(struct run *r, struct dom *d)
{
	struct check_item *it;
	size_t i, j, usable;

	if (d->dnskey != NULL && d->dnskey->security == DNS_SEC_SECURE &&
	    d->dnskey->status == DNS_OK)
		item(r, CHECK_OK, d->name, "dnssec", "signed and validated "
		    "(%zu DNSKEY record%s)", d->dnskey->n,
		    d->dnskey->n == 1 ? "" : "s");
	else if (d->dnskey != NULL && d->dnskey->security == DNS_SEC_BOGUS) {
		it = item(r, CHECK_FAIL, d->name, "dnssec", "validation "
		    "fails (bogus): %s; DANE senders defer all mail to %s",
		    d->dnskey->reason, d->name);
		fix(it, "re-sign the zone %s, and check that the DS at the "
		    "parent matches its key", d->name);
	} else if (d->dnskey != NULL && d->dnskey->security ==
	    DNS_SEC_INSECURE) {
		it = item(r, CHECK_WARN, d->name, "dnssec", "the zone is not "
		    "signed (insecure): no DANE for mail to %s", d->name);
		fix(it, "sign the zone %s with DNSSEC and publish its DS "
		    "record at the parent (the registrar)", d->name);
	} else {
		it = item(r, CHECK_FAIL, d->name, "dnssec", "the DNSKEY "
		    "lookup failed: %s", why_none(d->dnskey));
		answer_fix(it, d->name);
	}
	for (i = 0; i < d->nmx; i++) {
		struct mxhost *m = &d->mxh[i];
		char owner[DNS_NAME_BUF];

		snprintf(owner, sizeof(owner), "_%d._tcp.%s",
		    r->cf->smtp_port, m->name);
		if (!addr_secure(m)) {
			item(r, CHECK_INFO, d->name, "dane", "MX %s: its "
			    "address is not DNSSEC-signed, no DANE", m->name);
			continue;
		}
		if (m->tlsa == NULL || m->tlsa->status != DNS_OK) {
			it = item(r, m->tlsa != NULL && m->tlsa->status ==
			    DNS_TEMPFAIL ? CHECK_FAIL : CHECK_WARN, d->name,
			    "dane", "MX %s: no TLSA record (%s)", m->name,
			    why_none(m->tlsa));
			tlsa_fix(it, owner, &m->dane);
			continue;
		}
		for (j = 0, usable = 0; j < m->tlsa->n; j++)
			usable += tlsa_usable(&m->tlsa->tlsa[j]);
		if (m->dane.ok)
			item(r, CHECK_OK, d->name, "dane", "MX %s: the TLSA "
			    "records match the served certificate (%s)",
			    m->name, m->dane.why);
		else {
			it = item(r, CHECK_FAIL, d->name, "dane", "MX %s: no "
			    "TLSA record matches the served certificate: %s; "
			    "DANE senders defer mail to it", m->name,
			    m->dane.why);
			tlsa_fix(it, owner, &m->dane);
		}
		if (usable < 2) {
			it = item(r, CHECK_WARN, d->name, "dane-rollover", "MX "
			    "%s: %zu usable TLSA record%s: publish the next "
			    "key's record before a key or certificate change",
			    m->name, usable, usable == 1 ? "" : "s");
			fix(it, "%s. IN TLSA 3 1 1 <hash of the next key>   "
			    "(beside the current one; or 2 1 1 of the "
			    "issuing CA)", owner);
		} else
			item(r, CHECK_OK, d->name, "dane-rollover", "MX %s: "
			    "%zu usable TLSA records", m->name, usable);
		for (j = 0; j < m->tlsa->n; j++) {
			const struct tlsa_rr *t = &m->tlsa->tlsa[j];

			if (!tlsa_usable(t)) {
				it = item(r, CHECK_WARN, d->name, "dane-usage",
				    "MX %s: TLSA %u %u %u is unusable for SMTP "
				    "(RFC 7672 §3.1.3: usages 2 and 3 only)",
				    m->name, t->usage, t->selector, t->mtype);
				fix(it, "%s. IN TLSA 3 1 1 <key hash>", owner);
			} else if (t->selector != 1 || t->mtype != 1)
				item(r, CHECK_INFO, d->name, "dane-usage",
				    "MX %s: TLSA %u %u %u; %u 1 1 (public key, "
				    "SHA-256) survives certificate renewals "
				    "with the same key (RFC 7671 §5)", m->name,
				    t->usage, t->selector, t->mtype, t->usage);
		}
	}
}

static void
report_caa(struct run *r, struct dom *d)
{
	struct check_item *it;

	if (d->caa != NULL && d->caa->status == DNS_OK)
		item(r, CHECK_INFO, d->name, "caa", "%zu CAA record%s",
		    d->caa->n, d->caa->n > 1 ? "s" : "");
	else {
		it = item(r, CHECK_INFO, d->name, "caa", "no CAA record: any "
		    "CA may issue certificates for %s (RFC 8659)", d->name);
		fix(it, "%s. IN CAA 0 issue \"letsencrypt.org\"   (your CA)",
		    d->name);
	}
}

/* ---- the run ----------------------------------------------------------- */

static void
dom_clear(struct run *r, struct dom *d)
{
	size_t i;

	dns_result_free(d->mx);
	dns_result_free(d->a);
	dns_result_free(d->aaaa);
	dns_result_free(d->txt);
	dns_result_free(d->dmarc);
	dns_result_free(d->sts);
	dns_result_free(d->tlsrpt);
	dns_result_free(d->dnskey);
	dns_result_free(d->caa);
	for (i = 0; i < d->nmx; i++) {
		dns_result_free(d->mxh[i].a);
		dns_result_free(d->mxh[i].aaaa);
		dns_result_free(d->mxh[i].tlsa);
	}
	if (d->dkim != NULL) {
		for (i = 0; i < dkim_table_count(r->o->dkim); i++)
			dns_result_free(d->dkim[i]);
		free(d->dkim);
	}
	for (i = 0; i < d->next; i++)
		dns_result_free(d->extq[i]);
	dmarc_rec_clear(&d->dm);
	https_cancel(d->sts_req);
	mta_sts_policy_clear(&d->pol);
	for (i = 0; i < d->nspf; i++) {
		int t;

		dns_result_free(d->spf[i]->txt);
		for (t = 0; t < SPF_TERMS_MAX; t++)
			dns_result_free(d->spf[i]->q[t]);
		free(d->spf[i]);
	}
}

static void
zones_parse(struct run *r, const char *list)
{
	char *copy, *p, *tok, *save = NULL;

	if (list == NULL)
		return;
	copy = xstrdup(list);
	for (p = copy; (tok = strtok_r(p, " ,\t", &save)) != NULL; p = NULL)
		if (r->nzones < MAX_ZONES)
			r->zones[r->nzones++] = xstrdup(tok);
	free(copy);
}

struct check_report *
check_run(const struct check_opts *o, const char *const *domains,
    size_t ndomains, char *err, size_t errlen)
{
	struct check_identity ids[CHECK_MAX_IDENT];
	struct check_report *rep = NULL;
	struct run r;
	size_t i;

	memset(&r, 0, sizeof(r));
	r.o = o;
	r.cf = o->cf;
	{
		time_t now = time(NULL);
		struct tm tm;

		gmtime_r(&now, &tm);
		strftime(r.day, sizeof(r.day), "%Y%m%d", &tm);
	}
	if ((r.base = event_base_new()) == NULL) {
		dr_strlcpy(err, "event_base_new failed", errlen);
		return NULL;
	}
	if ((r.res = resolver_new(r.base, r.cf, err, errlen)) == NULL ||
	    (r.tls_ctx = tls_client_ctx_new(r.cf->ca_file, err,
	    errlen)) == NULL ||
	    (r.https_ctx = https_ctx_new(r.cf->ca_file, err, errlen)) == NULL)
		goto out;
	resolver_set_timeout(r.res, o->timeout);
	rep = r.rep = xcalloc(1, sizeof(*rep));
	r.nid = check_identities(r.cf, ids, CHECK_MAX_IDENT);
	for (i = 0; i < r.nid; i++)
		r.id[i].id = ids[i];
	zones_parse(&r, r.cf->check_dnsbl_zones);
	r.ndom = ndomains;
	r.dom = xcalloc(ndomains + 1, sizeof(*r.dom));
	for (i = 0; i < ndomains; i++)
		dr_strlcpy(r.dom[i].name, domains[i], sizeof(r.dom[i].name));

	/* 1: the domains' records, the relay's names */
	if (o->relay)
		start_relay(&r);
	for (i = 0; i < r.ndom; i++)
		start_domain(&r, &r.dom[i]);
	wait_all(&r);
	/* 2: MX addresses, DMARC destinations, policies, PTR names */
	if (o->relay)
		second_relay(&r);
	for (i = 0; i < r.ndom; i++)
		second_domain(&r, &r.dom[i]);
	wait_all(&r);
	/* 3: TLSA of the MX hosts; 4: STARTTLS to them */
	for (i = 0; i < r.ndom; i++)
		third_domain(&r, &r.dom[i]);
	wait_all(&r);
	for (i = 0; i < r.ndom; i++)
		fourth_domain(&r, &r.dom[i]);
	wait_all(&r);
	/* 5: SPF: the lookup count and the evaluation */
	spf_walk(&r);
	spf_evaluate(&r);

	if (o->relay)
		report_relay(&r);
	for (i = 0; i < r.ndom; i++) {
		struct dom *d = &r.dom[i];

		report_mx(&r, d);
		report_spf(&r, d);
		report_dkim(&r, d);
		report_dmarc(&r, d);
		report_sts(&r, d);
		report_tlsrpt(&r, d);
		report_dnssec(&r, d);
		report_caa(&r, d);
	}
out:
	for (i = 0; i < r.ndom; i++)
		dom_clear(&r, &r.dom[i]);
	free(r.dom);
	for (i = 0; i < r.nid; i++) {
		size_t j;

		dns_result_free(r.id[i].a);
		dns_result_free(r.id[i].aaaa);
		dns_result_free(r.id[i].txt);
		dns_result_free(r.id[i].ptr);
		for (j = 0; j < MAX_PTR; j++)
			dns_result_free(r.id[i].back[j]);
		for (j = 0; j < MAX_ZONES; j++)
			dns_result_free(r.id[i].bl[j]);
	}
	for (i = 0; i < r.nzones; i++)
		free(r.zones[i]);
	resolver_free(r.res);
	/* sessions finishing their QUIT (bounded by their timeouts) */
	event_base_dispatch(r.base);
	smtp_client_free_all();
	SSL_CTX_free(r.tls_ctx);
	SSL_CTX_free(r.https_ctx);
	event_base_free(r.base);
	return rep;
}
