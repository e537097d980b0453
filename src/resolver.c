/*
 * resolver.c - asynchronous DNS lookups with DNSSEC validation for the
 * delivery path: MX, A/AAAA, TLSA and TXT, each answer labelled secure,
 * insecure or bogus.
 *
 * One libunbound context (struct ub_ctx) per resolver, in threaded async
 * mode: libunbound's worker thread does the network and validation work
 * and signals finished queries on ub_fd(), which is a persistent read
 * event in our libevent loop; ub_process() then runs the libunbound
 * callbacks.  Those only file the decoded answer on the `done' list; the
 * caller's callback runs afterwards from dispatch(), outside ub_process(),
 * so a callback may start, cancel or free anything, including the
 * resolver.  Every query also has a guard timer (RESOLVER_TIMEOUT): when it
 * fires the query is cancelled in libunbound and reported as TEMPFAIL.
 *
 * Query states: PENDING (at libunbound, timer armed) -> DONE (answer
 * decoded, waiting for dispatch) -> freed when its callback starts.
 * resolver_cancel() frees a PENDING or DONE query without a callback.
 *
 * Security semantics (RFC 4033 §5, RFC 4035 §4.3; used by RFC 7672
 * §2.1): libunbound's `secure' and `bogus' flags map to DNS_SEC_SECURE and
 * DNS_SEC_BOGUS; a bogus answer is always DNS_TEMPFAIL with no records
 * and the why_bogus text as reason, never insecure.  The validator is
 * mandatory: resolver_new() refuses a dns_config without the validator
 * module, and forces val-permissive-mode off and harden-dnssec-stripped
 * on after reading it.
 *
 * Record data: libunbound hands us the uncompressed wire rdata of the
 * answer RRset and offers no public rdata-to-text API, so the few types we
 * need are decoded here, in dns_result_add_rdata(), with every length
 * checked: MX (RFC 1035 §3.3.9, null MX RFC 7505 §3), A (RFC 1035 §3.4.1),
 * AAAA (RFC 3596 §2.2), TXT (RFC 1035 §3.3.14; strings concatenated as RFC
 * 7208 §3.3 and RFC 8461 §3.1 want), TLSA (RFC 6698 §2.1).  Malformed
 * rdata makes the whole answer TEMPFAIL with the reason; never a crash
 * (tests/fuzz/fuzz_rdata.c).
 */
#include <sys/queue.h>
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

#include <event2/event.h>
#include <unbound.h>
#include <ldns/ldns.h>

#include "config.h"
#include "log.h"
#include "stats.h"
#include "resolver.h"
#include "util.h"

enum query_state {
	Q_PENDING,		/* at libunbound */
	Q_DONE,			/* answered, callback not yet run */
};

struct resolver_query {
	TAILQ_ENTRY(resolver_query) entry;
	struct resolver *r;
	enum query_state state;
	int ub_id;
	int submitted;		/* ub_resolve_async() returned */
	struct event *timer;
	resolver_cb *cb;
	void *arg;
	char qname[DNS_NAME_BUF];
	int qtype;
	double started;
	struct dns_result *res;
};

TAILQ_HEAD(query_list, resolver_query);

/*
 * Answers are kept for their TTL (at most CACHE_TTL_MAX): a relay asks
 * the same MX, address and TLSA questions for every message to a domain,
 * and each trip through libunbound's worker thread costs a dozen system
 * calls on the loop (its pipes).  Only answers libunbound itself would
 * serve from its cache go in: OK, NXDOMAIN and NODATA, SECURE or
 * INSECURE, with a TTL.  Bogus answers and failures never do.  Like
 * libunbound's own cache it lives as long as the resolver (until the
 * daemon restarts); a SIGHUP keeps both.
 */
#define CACHE_BUCKETS	1024
#define CACHE_MAX	8192		/* entries */
#define CACHE_TTL_MAX	300		/* seconds */

struct cache_entry {
	struct cache_entry *next;
	int qtype;
	double expires;			/* mono_now() */
	struct dns_result *res;		/* res->qname is the key */
};

struct resolver {
	struct event_base *base;
	struct ub_ctx *ctx;
	struct event *ev;		/* ub_fd() readable */
	struct event *kick;		/* dispatch soon (answer during submit) */
	int timeout;
	struct query_list pending;
	struct query_list done;
	int dispatching;
	int dying;			/* resolver_free() during dispatch */
	struct cache_entry **cache;	/* CACHE_BUCKETS chains */
	size_t ncache;
	unsigned long cache_hits;
};

static void ub_done(void *, int, struct ub_result *);
static void dispatch(struct resolver *);

static const struct {
	int type;
	const char *name;
} dns_types[] = {
	{ DNS_T_A, "A" },
	{ DNS_T_MX, "MX" },
	{ DNS_T_TXT, "TXT" },
	{ DNS_T_AAAA, "AAAA" },
	{ DNS_T_TLSA, "TLSA" },
	{ DNS_T_DNSKEY, "DNSKEY" },
	{ DNS_T_PTR, "PTR" },
	{ DNS_T_CAA, "CAA" },
};

const char *
dns_type_name(int rrtype)
{
	size_t i;

	for (i = 0; i < sizeof(dns_types) / sizeof(dns_types[0]); i++)
		if (dns_types[i].type == rrtype)
			return dns_types[i].name;
	return NULL;
}

int
dns_type_parse(const char *s)
{
	size_t i;

	for (i = 0; i < sizeof(dns_types) / sizeof(dns_types[0]); i++)
		if (strcasecmp(dns_types[i].name, s) == 0)
			return dns_types[i].type;
	return -1;
}

const char *
dns_status_name(enum dns_status s)
{
	switch (s) {
	case DNS_OK:		return "ok";
	case DNS_NXDOMAIN:	return "nxdomain";
	case DNS_NODATA:	return "nodata";
	case DNS_TEMPFAIL:	return "tempfail";
	}
	return "?";
}

const char *
dns_security_name(enum dns_security s)
{
	switch (s) {
	case DNS_SEC_UNKNOWN:	return "unknown";
	case DNS_SEC_INSECURE:	return "insecure";
	case DNS_SEC_SECURE:	return "secure";
	case DNS_SEC_BOGUS:	return "bogus";
	}
	return "?";
}

static const char *
rcode_name(int rcode)
{
	switch (rcode) {
	case 0:		return "NOERROR";
	case 1:		return "FORMERR";
	case 2:		return "SERVFAIL";
	case 3:		return "NXDOMAIN";
	case 4:		return "NOTIMP";
	case 5:		return "REFUSED";
	}
	return NULL;
}

/* ---- results ---------------------------------------------------------- */

/* Presentation name -> lower case, no trailing dot (root stays ""). */
static void
name_normalize(const char *in, char *out, size_t outlen)
{
	size_t n;

	dr_strlcpy(out, in, outlen);
	str_lower(out);
	n = strlen(out);
	/* keep an escaped final dot ("a\.") */
	if (n > 0 && out[n - 1] == '.' && (n < 2 || out[n - 2] != '\\'))
		out[n - 1] = '\0';
}

static struct dns_result *
result_new(const char *qname, int qtype)
{
	struct dns_result *res;

	res = xcalloc(1, sizeof(*res));
	dr_strlcpy(res->qname, qname, sizeof(res->qname));
	res->qtype = qtype;
	res->status = DNS_TEMPFAIL;
	res->security = DNS_SEC_UNKNOWN;
	name_normalize(qname, res->canonname, sizeof(res->canonname));
	return res;
}

static void
result_clear_records(struct dns_result *res)
{
	size_t i;

	free(res->mx);
	res->mx = NULL;
	free(res->addr);
	res->addr = NULL;
	if (res->tlsa != NULL)
		tlsa_rrs_free(res->tlsa, res->n);
	res->tlsa = NULL;
	if (res->txt != NULL) {
		for (i = 0; i < res->n; i++)
			free(res->txt[i].data);
		free(res->txt);
	}
	res->txt = NULL;
	res->n = 0;
	res->null_mx = 0;
}

void
dns_result_free(struct dns_result *res)
{
	if (res == NULL)
		return;
	result_clear_records(res);
	free(res);
}

static void
result_fail(struct dns_result *res, enum dns_security sec, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));

static void
result_fail(struct dns_result *res, enum dns_security sec, const char *fmt,
    ...)
{
	va_list ap;

	result_clear_records(res);
	res->status = DNS_TEMPFAIL;
	res->security = sec;
	va_start(ap, fmt);
	vsnprintf(res->reason, sizeof(res->reason), fmt, ap);
	va_end(ap);
}

/* ---- rdata decoding (untrusted bytes: every length checked) ----------- */

int
dns_name_from_wire(const uint8_t *p, size_t len, char *out, size_t outlen)
{
	size_t i = 0, o = 0, wire = 0, k;
	uint8_t l, c;

	if (outlen == 0)
		return -1;
	for (;;) {
		if (i >= len)
			return -1;		/* no root label */
		l = p[i++];
		wire += 1 + (size_t)l;
		if (wire > 255)
			return -1;		/* RFC 1035 §2.3.4 */
		if (l == 0)
			break;
		if (l > 63)
			return -1;		/* pointer or extended label */
		if (l > len - i)
			return -1;		/* label runs past the rdata */
		if (o > 0) {
			if (o + 1 >= outlen)
				return -1;
			out[o++] = '.';
		}
		for (k = 0; k < l; k++) {
			c = p[i + k];
			if (isalnum(c) || c == '-' || c == '_') {
				if (o + 1 >= outlen)
					return -1;
				out[o++] = (char)tolower(c);
			} else if (c == '.' || c == '\\') {
				if (o + 2 >= outlen)
					return -1;
				out[o++] = '\\';
				out[o++] = (char)c;
			} else {
				if (o + 4 >= outlen)
					return -1;
				snprintf(out + o, 5, "\\%03u", (unsigned)c);
				o += 4;
			}
		}
		i += l;
	}
	out[o] = '\0';
	return (int)i;
}

int
dns_result_add_rdata(struct dns_result *res, const uint8_t *rd, size_t len,
    char *err, size_t errlen)
{
	struct dns_mx mx;
	struct dns_addr *a;
	struct sockaddr_in *sin;
	struct sockaddr_in6 *sin6;
	struct tlsa_rr *t;
	struct dns_txt *x;
	size_t i, total;
	int n;

	if (rd == NULL && len > 0) {
		dr_strlcpy(err, "no rdata", errlen);
		return -1;
	}
	switch (res->qtype) {
	case DNS_T_MX:
		if (len < 3) {
			snprintf(err, errlen, "MX rdata too short (%zu)", len);
			return -1;
		}
		memset(&mx, 0, sizeof(mx));
		mx.pref = (uint16_t)(rd[0] << 8 | rd[1]);
		n = dns_name_from_wire(rd + 2, len - 2, mx.host,
		    sizeof(mx.host));
		if (n < 0) {
			dr_strlcpy(err, "MX exchange is not a valid name",
			    errlen);
			return -1;
		}
		if ((size_t)n != len - 2) {
			dr_strlcpy(err, "MX rdata has trailing bytes", errlen);
			return -1;
		}
		res->mx = xrealloc(res->mx, (res->n + 1) * sizeof(*res->mx));
		res->mx[res->n++] = mx;
		return 0;
	case DNS_T_PTR:
		/* RFC 1035 §3.3.12: one domain name, kept as an MX host */
		memset(&mx, 0, sizeof(mx));
		n = dns_name_from_wire(rd, len, mx.host, sizeof(mx.host));
		if (n < 0 || (size_t)n != len) {
			dr_strlcpy(err, "PTR rdata is not one valid name", errlen);
			return -1;
		}
		res->mx = xrealloc(res->mx, (res->n + 1) * sizeof(*res->mx));
		res->mx[res->n++] = mx;
		return 0;
	case DNS_T_A:
	case DNS_T_AAAA:
		if (len != (res->qtype == DNS_T_A ? 4u : 16u)) {
			snprintf(err, errlen, "%s rdata of %zu bytes",
			    res->qtype == DNS_T_A ? "A" : "AAAA", len);
			return -1;
		}
		res->addr = xrealloc(res->addr,
		    (res->n + 1) * sizeof(*res->addr));
		a = &res->addr[res->n];
		memset(a, 0, sizeof(*a));
		if (res->qtype == DNS_T_A) {
			sin = (struct sockaddr_in *)&a->ss;
			sin->sin_family = AF_INET;
			memcpy(&sin->sin_addr, rd, 4);
			a->family = AF_INET;
			a->sslen = sizeof(*sin);
			inet_ntop(AF_INET, rd, a->text, sizeof(a->text));
		} else {
			sin6 = (struct sockaddr_in6 *)&a->ss;
			sin6->sin6_family = AF_INET6;
			memcpy(&sin6->sin6_addr, rd, 16);
			a->family = AF_INET6;
			a->sslen = sizeof(*sin6);
			inet_ntop(AF_INET6, rd, a->text, sizeof(a->text));
		}
		res->n++;
		return 0;
	case DNS_T_TLSA:
		if (len < 3) {
			snprintf(err, errlen, "TLSA rdata too short (%zu)", len);
			return -1;
		}
		res->tlsa = xrealloc(res->tlsa,
		    (res->n + 1) * sizeof(*res->tlsa));
		t = &res->tlsa[res->n];
		memset(t, 0, sizeof(*t));
		t->usage = rd[0];
		t->selector = rd[1];
		t->mtype = rd[2];
		t->len = len - 3;
		t->data = xmalloc(t->len + 1);
		memcpy(t->data, rd + 3, t->len);
		res->n++;
		return 0;
	case DNS_T_TXT:
		/* one or more <character-string>s, each length-prefixed */
		if (len == 0) {
			dr_strlcpy(err, "TXT rdata is empty", errlen);
			return -1;
		}
		for (i = 0, total = 0; i < len; i += 1 + (size_t)rd[i]) {
			if ((size_t)rd[i] > len - i - 1) {
				dr_strlcpy(err, "TXT string runs past the rdata",
				    errlen);
				return -1;
			}
			total += rd[i];
		}
		res->txt = xrealloc(res->txt, (res->n + 1) * sizeof(*res->txt));
		x = &res->txt[res->n];
		x->data = xmalloc(total + 1);
		x->len = 0;
		for (i = 0; i < len; i += 1 + (size_t)rd[i]) {
			memcpy(x->data + x->len, rd + i + 1, rd[i]);
			x->len += rd[i];
		}
		x->data[x->len] = '\0';
		res->n++;
		return 0;
	case DNS_T_DNSKEY:
		/* flags, protocol, algorithm, key (RFC 4034 §2.1): counted only,
		 * for the DNSSEC self-test (dnssec_check.c) */
		if (len < 4) {
			snprintf(err, errlen, "DNSKEY rdata too short (%zu)", len);
			return -1;
		}
		res->n++;
		return 0;
	case DNS_T_CAA:
		/* flags, tag length, tag, value (RFC 8659 §4.1): counted only */
		if (len < 2 || (size_t)rd[1] + 2 > len) {
			snprintf(err, errlen, "CAA rdata malformed (%zu)", len);
			return -1;
		}
		res->n++;
		return 0;
	default:
		snprintf(err, errlen, "cannot decode RR type %d", res->qtype);
		return -1;
	}
}

void
dns_result_finish(struct dns_result *res)
{
	/* RFC 7505 §3: a single MX RR with preference 0 and exchange "." */
	res->null_mx = res->qtype == DNS_T_MX && res->n == 1 &&
	    res->mx[0].pref == 0 && res->mx[0].host[0] == '\0';
}

/* ---- libunbound answer -> dns_result ---------------------------------- */

static struct dns_result *
result_from_ub(const struct resolver_query *q, int err, struct ub_result *ur)
{
	struct dns_result *res;
	char canon[DNS_NAME_BUF], why[256];
	const char *rn;
	int i;

	res = result_new(q->qname, q->qtype);
	if (err != 0 || ur == NULL) {
		result_fail(res, DNS_SEC_UNKNOWN, "resolver error: %s",
		    ub_strerror(err));
		return res;
	}
	res->rcode = ur->rcode;
	res->ttl = ur->ttl > 0 ? (uint32_t)ur->ttl : 0;
	if (ur->canonname != NULL) {
		name_normalize(ur->canonname, canon, sizeof(canon));
		if (strcmp(canon, res->canonname) != 0) {
			dr_strlcpy(res->canonname, canon,
			    sizeof(res->canonname));
			res->cname = 1;
		}
	}

	/* Bogus first: whatever the rcode, it is a validation failure. */
	if (ur->bogus) {
		stats_inc(S_DNSSEC_BOGUS);
		result_fail(res, DNS_SEC_BOGUS, "%s", ur->why_bogus != NULL ?
		    ur->why_bogus : "validation failure (no reason given)");
		return res;
	}
	res->security = ur->secure ? DNS_SEC_SECURE : DNS_SEC_INSECURE;

	switch (ur->rcode) {
	case 0:
		if (!ur->havedata || ur->data == NULL || ur->data[0] == NULL) {
			res->status = DNS_NODATA;
			return res;
		}
		for (i = 0; ur->data[i] != NULL; i++) {
			if (ur->len[i] < 0 ||
			    dns_result_add_rdata(res, (uint8_t *)ur->data[i],
			    (size_t)ur->len[i], why, sizeof(why)) == -1) {
				if (ur->len[i] < 0)
					dr_strlcpy(why, "negative length",
					    sizeof(why));
				result_fail(res, DNS_SEC_UNKNOWN,
				    "malformed %s rdata: %s",
				    dns_type_name(q->qtype), why);
				return res;
			}
		}
		dns_result_finish(res);
		res->status = DNS_OK;
		return res;
	case 3:
		res->status = DNS_NXDOMAIN;
		return res;
	default:
		rn = rcode_name(ur->rcode);
		if (rn != NULL)
			result_fail(res, DNS_SEC_UNKNOWN, "%s", rn);
		else
			result_fail(res, DNS_SEC_UNKNOWN, "rcode %d",
			    ur->rcode);
		return res;
	}
}

/* ---- the answer cache -------------------------------------------------- */

static struct dns_result *
result_dup(const struct dns_result *src)
{
	struct dns_result *res = xmalloc(sizeof(*res));
	size_t i;

	*res = *src;
	res->mx = NULL;
	res->addr = NULL;
	res->tlsa = NULL;
	res->txt = NULL;
	if (src->mx != NULL && src->n > 0) {
		res->mx = xcalloc(src->n, sizeof(*res->mx));
		memcpy(res->mx, src->mx, src->n * sizeof(*res->mx));
	}
	if (src->addr != NULL && src->n > 0) {
		res->addr = xcalloc(src->n, sizeof(*res->addr));
		memcpy(res->addr, src->addr, src->n * sizeof(*res->addr));
	}
	if (src->tlsa != NULL && src->n > 0) {
		res->tlsa = xcalloc(src->n, sizeof(*res->tlsa));
		for (i = 0; i < src->n; i++) {
			res->tlsa[i] = src->tlsa[i];
			res->tlsa[i].data = xmalloc(src->tlsa[i].len + 1);
			memcpy(res->tlsa[i].data, src->tlsa[i].data,
			    src->tlsa[i].len);
		}
	}
	if (src->txt != NULL && src->n > 0) {
		res->txt = xcalloc(src->n, sizeof(*res->txt));
		for (i = 0; i < src->n; i++) {
			res->txt[i].len = src->txt[i].len;
			res->txt[i].data = xmalloc(src->txt[i].len + 1);
			memcpy(res->txt[i].data, src->txt[i].data,
			    src->txt[i].len + 1);
		}
	}
	return res;
}

static size_t
cache_bucket(const char *qname, int qtype)
{
	uint32_t h = 2166136261u ^ (uint32_t)qtype;

	for (; *qname != '\0'; qname++) {
		h ^= (uint32_t)tolower((unsigned char)*qname);
		h *= 16777619u;
	}
	return h % CACHE_BUCKETS;
}

/* Same question: names compare without case and trailing dot. */
static int
cache_same(const struct dns_result *res, const char *qname, int qtype)
{
	size_t a = strlen(res->qname), b = strlen(qname);

	if (res->qtype != qtype)
		return 0;
	if (a > 1 && res->qname[a - 1] == '.')
		a--;
	if (b > 1 && qname[b - 1] == '.')
		b--;
	return a == b && strncasecmp(res->qname, qname, a) == 0;
}

static void
cache_drop(struct resolver *r, struct cache_entry **pp)
{
	struct cache_entry *e = *pp;

	*pp = e->next;
	dns_result_free(e->res);
	free(e);
	r->ncache--;
}

/* A copy of a live answer, with its TTL counted down; NULL if none. */
static struct dns_result *
cache_get(struct resolver *r, const char *qname, int qtype)
{
	struct cache_entry **pp;
	struct dns_result *res;
	double now;

	if (r->cache == NULL)
		return NULL;
	now = mono_now();
	for (pp = &r->cache[cache_bucket(qname, qtype)]; *pp != NULL;
	    pp = &(*pp)->next) {
		if (!cache_same((*pp)->res, qname, qtype))
			continue;
		if ((*pp)->expires <= now) {
			cache_drop(r, pp);
			return NULL;
		}
		res = result_dup((*pp)->res);
		dr_strlcpy(res->qname, qname, sizeof(res->qname));
		res->ttl = (uint32_t)((*pp)->expires - now);
		res->cached = 1;
		r->cache_hits++;
		return res;
	}
	return NULL;
}

static void
cache_put(struct resolver *r, const struct dns_result *res)
{
	struct cache_entry *e, **pp;
	size_t b, i;
	double now = mono_now();

	if (res->ttl == 0 || res->cached ||
	    (res->status != DNS_OK && res->status != DNS_NXDOMAIN &&
	    res->status != DNS_NODATA) ||
	    (res->security != DNS_SEC_SECURE &&
	    res->security != DNS_SEC_INSECURE))
		return;
	if (r->cache == NULL)
		r->cache = xcalloc(CACHE_BUCKETS, sizeof(*r->cache));
	b = cache_bucket(res->qname, res->qtype);
	for (pp = &r->cache[b]; *pp != NULL; )
		if (cache_same((*pp)->res, res->qname, res->qtype) ||
		    (*pp)->expires <= now)
			cache_drop(r, pp);
		else
			pp = &(*pp)->next;
	if (r->ncache >= CACHE_MAX) {
		/* full: drop what has expired, else everything */
		for (i = 0; i < CACHE_BUCKETS; i++)
			for (pp = &r->cache[i]; *pp != NULL; )
				if ((*pp)->expires <= now ||
				    r->ncache >= CACHE_MAX / 2)
					cache_drop(r, pp);
				else
					pp = &(*pp)->next;
	}
	e = xcalloc(1, sizeof(*e));
	e->qtype = res->qtype;
	e->expires = now + (res->ttl < CACHE_TTL_MAX ? res->ttl :
	    CACHE_TTL_MAX);
	e->res = result_dup(res);
	e->next = r->cache[b];
	r->cache[b] = e;
	r->ncache++;
}

static void
cache_free(struct resolver *r)
{
	size_t i;

	if (r->cache == NULL)
		return;
	for (i = 0; i < CACHE_BUCKETS; i++)
		while (r->cache[i] != NULL)
			cache_drop(r, &r->cache[i]);
	free(r->cache);
	r->cache = NULL;
}

unsigned long
resolver_cache_hits(const struct resolver *r)
{
	return r->cache_hits;
}

/* ---- queries ---------------------------------------------------------- */

static void
query_free(struct resolver_query *q)
{
	if (q->timer != NULL)
		event_free(q->timer);
	dns_result_free(q->res);
	free(q);
}

/* PENDING -> DONE with res. */
static void
query_finish(struct resolver_query *q, struct dns_result *res)
{
	struct resolver *r = q->r;

	evtimer_del(q->timer);
	TAILQ_REMOVE(&r->pending, q, entry);
	q->state = Q_DONE;
	q->res = res;
	TAILQ_INSERT_TAIL(&r->done, q, entry);
	log_debug("resolver: %s/%s: %s %s%s%s (%.3fs)", q->qname,
	    dns_type_name(q->qtype), dns_status_name(res->status),
	    dns_security_name(res->security), res->reason[0] ? ": " : "",
	    res->reason, mono_now() - q->started);
}

static void
ub_done(void *mydata, int err, struct ub_result *ur)
{
	struct resolver_query *q = mydata;
	struct dns_result *res;

	res = result_from_ub(q, err, ur);
	if (ur != NULL)
		ub_resolve_free(ur);
	cache_put(q->r, res);
	if (q->state != Q_PENDING) {		/* cannot happen */
		dns_result_free(res);
		return;
	}
	query_finish(q, res);
	if (!q->submitted)			/* answered inside submit */
		event_active(q->r->kick, EV_TIMEOUT, 0);
}

static void
query_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct resolver_query *q = arg;
	struct resolver *r = q->r;
	struct dns_result *res;

	ub_cancel(r->ctx, q->ub_id);
	res = result_new(q->qname, q->qtype);
	result_fail(res, DNS_SEC_UNKNOWN, "timeout after %d s", r->timeout);
	query_finish(q, res);
	dispatch(r);
}

static void resolver_destroy(struct resolver *);

/* Run the callbacks of answered queries, outside ub_process(). */
static void
dispatch(struct resolver *r)
{
	struct resolver_query *q;
	struct dns_result *res;
	resolver_cb *cb;
	void *arg;

	if (r->dispatching)
		return;
	r->dispatching = 1;
	while (!r->dying && (q = TAILQ_FIRST(&r->done)) != NULL) {
		TAILQ_REMOVE(&r->done, q, entry);
		res = q->res;
		q->res = NULL;
		cb = q->cb;
		arg = q->arg;
		query_free(q);
		cb(res, arg);
	}
	r->dispatching = 0;
	if (r->dying)
		resolver_destroy(r);
}

static void
ub_readable(evutil_socket_t fd, short what, void *arg)
{
	struct resolver *r = arg;
	int rc;

	if ((rc = ub_process(r->ctx)) != 0)
		log_warnx("resolver: ub_process: %s", ub_strerror(rc));
	dispatch(r);
}

static void
kick(evutil_socket_t fd, short what, void *arg)
{
	dispatch(arg);
}

/*
 * A domain name in presentation form (RFC 1035 §5.1, escapes "\X" and
 * "\DDD"): labels of 1..63 octets, 255 octets on the wire, at most one
 * trailing dot.  0 ok, -1 bad.
 */
static int
name_check(const char *s)
{
	size_t label = 0, wire = 1;
	unsigned v;

	if (*s == '\0')
		return -1;
	if (strcmp(s, ".") == 0)
		return 0;
	for (; *s != '\0'; s++) {
		if (*s == '.') {
			if (label == 0)
				return -1;		/* empty label */
			wire += 1 + label;
			label = 0;
			continue;
		}
		if (*s == '\\') {
			if (isdigit((unsigned char)s[1])) {
				if (!isdigit((unsigned char)s[2]) ||
				    !isdigit((unsigned char)s[3]))
					return -1;
				v = (unsigned)(s[1] - '0') * 100 +
				    (unsigned)(s[2] - '0') * 10 +
				    (unsigned)(s[3] - '0');
				if (v > 255)
					return -1;
				s += 3;
			} else if (s[1] == '\0')
				return -1;
			else
				s++;
		}
		if (++label > 63)
			return -1;
	}
	if (label > 0)
		wire += 1 + label;
	return wire <= 255 ? 0 : -1;
}

struct resolver_query *
resolver_query(struct resolver *r, const char *name, int rrtype,
    resolver_cb *cb, void *arg, char *err, size_t errlen)
{
	struct resolver_query *q;
	struct dns_result *cached;
	struct timeval tv;
	int rc;

	if (r->dying) {
		dr_strlcpy(err, "resolver is shutting down", errlen);
		return NULL;
	}
	if (dns_type_name(rrtype) == NULL) {
		snprintf(err, errlen, "unsupported RR type %d", rrtype);
		return NULL;
	}
	if (name == NULL || strlen(name) >= DNS_NAME_BUF ||
	    name_check(name) == -1) {
		snprintf(err, errlen, "bad domain name \"%.300s\"",
		    name != NULL ? name : "(null)");
		return NULL;
	}
	q = xcalloc(1, sizeof(*q));
	q->r = r;
	q->cb = cb;
	q->arg = arg;
	q->qtype = rrtype;
	q->state = Q_PENDING;
	q->started = mono_now();
	dr_strlcpy(q->qname, name, sizeof(q->qname));
	q->timer = evtimer_new(r->base, query_timeout, q);
	if (q->timer == NULL) {
		dr_strlcpy(err, "evtimer_new failed", errlen);
		free(q);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&r->pending, q, entry);
	if ((cached = cache_get(r, name, rrtype)) != NULL) {
		/* answered from the cache: the callback runs from the loop */
		q->submitted = 1;
		query_finish(q, cached);
		event_active(r->kick, EV_TIMEOUT, 0);
		return q;
	}
	tv.tv_sec = r->timeout;
	tv.tv_usec = 0;
	evtimer_add(q->timer, &tv);

	rc = ub_resolve_async(r->ctx, q->qname, rrtype, 1 /* IN */, q,
	    ub_done, &q->ub_id);
	if (rc != 0) {
		snprintf(err, errlen, "%s/%s: %s", name,
		    dns_type_name(rrtype), ub_strerror(rc));
		if (q->state == Q_PENDING)
			TAILQ_REMOVE(&r->pending, q, entry);
		else
			TAILQ_REMOVE(&r->done, q, entry);
		query_free(q);
		return NULL;
	}
	q->submitted = 1;
	log_debug("resolver: query %s/%s", q->qname, dns_type_name(rrtype));
	return q;
}

void
resolver_cancel(struct resolver_query *q)
{
	struct resolver *r;

	if (q == NULL)
		return;
	r = q->r;
	if (q->state == Q_PENDING) {
		ub_cancel(r->ctx, q->ub_id);
		TAILQ_REMOVE(&r->pending, q, entry);
	} else
		TAILQ_REMOVE(&r->done, q, entry);
	query_free(q);
}

size_t
resolver_pending(const struct resolver *r)
{
	const struct resolver_query *q;
	size_t n = 0;

	TAILQ_FOREACH(q, &r->pending, entry)
		n++;
	TAILQ_FOREACH(q, &r->done, entry)
		n++;
	return n;
}

void
resolver_set_timeout(struct resolver *r, int secs)
{
	r->timeout = secs > 0 ? secs : RESOLVER_TIMEOUT;
}

struct sync_wait {
	int done;
	struct dns_result *res;
};

static void
sync_cb(struct dns_result *res, void *arg)
{
	struct sync_wait *w = arg;

	w->res = res;
	w->done = 1;
}

int
resolver_query_sync(struct resolver *r, const char *name, int rrtype,
    struct dns_result **out, char *err, size_t errlen)
{
	struct sync_wait w = { 0, NULL };
	struct resolver_query *q;

	*out = NULL;
	if ((q = resolver_query(r, name, rrtype, sync_cb, &w, err,
	    errlen)) == NULL)
		return -1;
	while (!w.done) {
		/* our read event and the query timer keep the loop busy */
		if (event_base_loop(r->base, EVLOOP_ONCE) == -1) {
			resolver_cancel(q);
			dr_strlcpy(err, "event loop failed", errlen);
			return -1;
		}
	}
	*out = w.res;
	return 0;
}

/* ---- setup ------------------------------------------------------------ */

static int
set_option(struct ub_ctx *ctx, const char *opt, const char *val, char *err,
    size_t errlen)
{
	int rc;

	if ((rc = ub_ctx_set_option(ctx, opt, val)) != 0) {
		snprintf(err, errlen, "libunbound option %s %s: %s", opt, val,
		    ub_strerror(rc));
		return -1;
	}
	return 0;
}

static int
readable(const char *what, const char *path, char *err, size_t errlen)
{
	FILE *fp;

	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s %s: %s", what, path,
		    strerror(errno));
		return -1;
	}
	fclose(fp);
	return 0;
}

/* ---- trust anchors (issue #23: validation that cannot silently be off) */

/*
 * The anchors of cf into ctx: trust_anchor_file, then dns_config.
 * Debian's /usr/share/dns/root.key is a static, package-managed DNSKEY
 * file (read-only), so ub_ctx_add_ta_file(), not the RFC 5011 tracker
 * ub_ctx_add_ta_autr() that rewrites it.
 */
static int
ctx_load(struct ub_ctx *ctx, const struct config *cf, char *err,
    size_t errlen)
{
	int rc;

	if (cf->trust_anchor_file != NULL && *cf->trust_anchor_file != '\0') {
		if (readable("trust_anchor_file", cf->trust_anchor_file, err,
		    errlen) == -1)
			return -1;
		if ((rc = ub_ctx_add_ta_file(ctx,
		    cf->trust_anchor_file)) != 0) {
			snprintf(err, errlen, "trust_anchor_file %s: %s",
			    cf->trust_anchor_file, ub_strerror(rc));
			return -1;
		}
	}
	if (cf->dns_config != NULL && *cf->dns_config != '\0') {
		if (readable("dns_config", cf->dns_config, err, errlen) == -1)
			return -1;
		if ((rc = ub_ctx_config(ctx, cf->dns_config)) != 0) {
			snprintf(err, errlen, "dns_config %s: %s%s",
			    cf->dns_config, ub_strerror(rc),
			    rc == UB_SYNTAX ? " (details on stderr)" : "");
			return -1;
		}
	}
	return 0;
}

static int
anchor_type(const ldns_rr *rr)
{
	ldns_rr_type t = ldns_rr_get_type(rr);

	return t == LDNS_RR_TYPE_DS || t == LDNS_RR_TYPE_DNSKEY;
}

int
resolver_anchor_count(const char *path, char *err, size_t errlen)
{
	FILE *fp;
	ldns_rr *rr;
	ldns_rdf *origin = NULL, *prev = NULL;
	ldns_status s;
	uint32_t ttl = 3600;
	int line = 1, n = 0;

	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (!feof(fp)) {
		rr = NULL;
		s = ldns_rr_new_frm_fp_l(&rr, fp, &ttl, &origin, &prev, &line);
		if (s == LDNS_STATUS_OK) {
			n += anchor_type(rr);
			ldns_rr_free(rr);
			continue;
		}
		if (s == LDNS_STATUS_SYNTAX_EMPTY ||
		    s == LDNS_STATUS_SYNTAX_TTL ||
		    s == LDNS_STATUS_SYNTAX_ORIGIN)
			continue;
		/* nothing but comments or blanks up to the end */
		if (s == LDNS_STATUS_SYNTAX_ERR && feof(fp))
			break;
		snprintf(err, errlen, "%s line %d: %s", path, line,
		    ldns_get_errorstr_by_id(s));
		n = -1;
		break;
	}
	if (n >= 0 && ferror(fp)) {
		snprintf(err, errlen, "%s: read error", path);
		n = -1;
	}
	fclose(fp);
	ldns_rdf_deep_free(origin);
	ldns_rdf_deep_free(prev);
	return n;
}

/* A BIND-style trusted-keys file: anything but blanks and comments. */
static int
file_has_text(const char *path, char *err, size_t errlen)
{
	FILE *fp;
	char buf[512], *p;
	int text = 0;

	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (!text && fgets(buf, sizeof(buf), fp) != NULL) {
		for (p = buf; isspace((unsigned char)*p); p++)
			;
		text = *p != '\0' && *p != '#' && *p != ';' && *p != '/';
	}
	fclose(fp);
	return text;
}

/*
 * One libunbound list option: every item through check(), which returns
 * the anchors it found (0: none, which is refused) or -1.  Adds to *total.
 */
static int
anchors_option(struct ub_ctx *ctx, const struct config *cf,
    const char *opt, int (*check)(const char *, char *, size_t),
    int *total, char *err, size_t errlen)
{
	char *list = NULL, *item, *save = NULL, why[512];
	const char *who;
	int rc, n;

	if ((rc = ub_ctx_get_option(ctx, opt, &list)) != 0) {
		snprintf(err, errlen, "libunbound option %s: %s", opt,
		    ub_strerror(rc));
		return -1;
	}
	for (item = strtok_r(list, "\n", &save); item != NULL;
	    item = strtok_r(NULL, "\n", &save)) {
		who = cf->trust_anchor_file != NULL &&
		    strcmp(item, cf->trust_anchor_file) == 0 ?
		    "trust_anchor_file" : "dns_config";
		if ((n = check(item, why, sizeof(why))) == -1) {
			snprintf(err, errlen, "%s: %s %s", who, opt, why);
			free(list);
			return -1;
		}
		if (n == 0) {
			if (strcmp(who, "trust_anchor_file") == 0)
				snprintf(err, errlen, "trust_anchor_file %s "
				    "holds no DS or DNSKEY record (empty or "
				    "truncated?): DNSSEC validation would be "
				    "off", item);
			else
				snprintf(err, errlen, "dns_config %s: %s %s "
				    "holds no trust anchor record (empty or "
				    "truncated?)", cf->dns_config, opt, item);
			free(list);
			return -1;
		}
		*total += n;
	}
	free(list);
	return 0;
}

static int
inline_anchor(const char *text, char *err, size_t errlen)
{
	ldns_rr *rr = NULL;
	ldns_status s;
	int ok;

	if ((s = ldns_rr_new_frm_str(&rr, text, 3600, NULL, NULL)) !=
	    LDNS_STATUS_OK) {
		snprintf(err, errlen, "\"%s\": %s", text,
		    ldns_get_errorstr_by_id(s));
		return -1;
	}
	ok = anchor_type(rr);
	ldns_rr_free(rr);
	if (!ok)
		snprintf(err, errlen, "\"%s\": not a DS or DNSKEY record",
		    text);
	return ok ? 1 : -1;
}

static int
trusted_keys(const char *path, char *err, size_t errlen)
{
	return file_has_text(path, err, errlen);
}

static int
anchor_file(const char *path, char *err, size_t errlen)
{
	return resolver_anchor_count(path, err, errlen);
}

/*
 * Every trust anchor libunbound was given (trust_anchor_file and what
 * dns_config adds, include: files too) must hold a DS or DNSKEY record,
 * and there must be at least one: libunbound itself accepts an empty
 * anchor file and then answers every query "insecure", which would turn
 * DANE off without a word.
 */
static int
anchors_check(struct ub_ctx *ctx, const struct config *cf, char *err,
    size_t errlen)
{
	int total = 0;

	if (anchors_option(ctx, cf, "trust-anchor-file", anchor_file,
	    &total, err, errlen) == -1 ||
	    anchors_option(ctx, cf, "auto-trust-anchor-file", anchor_file,
	    &total, err, errlen) == -1 ||
	    anchors_option(ctx, cf, "trusted-keys-file", trusted_keys,
	    &total, err, errlen) == -1 ||
	    anchors_option(ctx, cf, "trust-anchor", inline_anchor,
	    &total, err, errlen) == -1)
		return -1;
	if (total == 0) {
		snprintf(err, errlen, "no DNSSEC trust anchor: "
		    "trust_anchor_file is not set and dns_config%s%s%s has "
		    "no trust-anchor, trust-anchor-file, "
		    "auto-trust-anchor-file or trusted-keys-file; DNSSEC "
		    "validation would be off (set trust_anchor_file = "
		    "/usr/share/dns/root.key)",
		    cf->dns_config != NULL ? " (" : "",
		    cf->dns_config != NULL ? cf->dns_config : "",
		    cf->dns_config != NULL ? ")" : "");
		return -1;
	}
	return 0;
}

int
resolver_check_config(const struct config *cf, char *err, size_t errlen)
{
	struct ub_ctx *ctx;
	int rc = -1;

	if ((ctx = ub_ctx_create()) == NULL) {
		dr_strlcpy(err, "ub_ctx_create failed", errlen);
		return -1;
	}
	if (ctx_load(ctx, cf, err, errlen) == 0 &&
	    anchors_check(ctx, cf, err, errlen) == 0)
		rc = 0;
	ub_ctx_delete(ctx);
	return rc;
}

int
resolver_name_ok(const char *name)
{
	return name != NULL && strlen(name) < DNS_NAME_BUF &&
	    name_check(name) == 0;
}

struct resolver *
resolver_new(struct event_base *base, const struct config *cf, char *err,
    size_t errlen)
{
	struct resolver *r;
	char *mods = NULL;
	int rc, fd;

	r = xcalloc(1, sizeof(*r));
	r->base = base;
	r->timeout = RESOLVER_TIMEOUT;
	TAILQ_INIT(&r->pending);
	TAILQ_INIT(&r->done);

	if ((r->ctx = ub_ctx_create()) == NULL) {
		dr_strlcpy(err, "ub_ctx_create failed", errlen);
		goto fail;
	}
	/*
	 * A worker thread, not a forked process: nothing of ours (spool,
	 * keys, sockets) is copied into a child.  The thread starts with the
	 * first query, so the daemon may still fork after resolver_new().
	 */
	if ((rc = ub_ctx_async(r->ctx, 1)) != 0) {
		snprintf(err, errlen, "ub_ctx_async: %s", ub_strerror(rc));
		goto fail;
	}
	/* why_bogus is only filled in at val-log-level 2 */
	if (set_option(r->ctx, "val-log-level:", "2", err, errlen) == -1)
		goto fail;

	if (ctx_load(r->ctx, cf, err, errlen) == -1 ||
	    anchors_check(r->ctx, cf, err, errlen) == -1)
		goto fail;

	/* Not negotiable whatever dns_config says. */
	if (set_option(r->ctx, "val-permissive-mode:", "no", err,
	    errlen) == -1 ||
	    set_option(r->ctx, "harden-dnssec-stripped:", "yes", err,
	    errlen) == -1)
		goto fail;
	if ((rc = ub_ctx_get_option(r->ctx, "module-config", &mods)) != 0 ||
	    mods == NULL || strstr(mods, "validator") == NULL) {
		snprintf(err, errlen, "dns_config: module-config \"%s\" "
		    "lacks the validator; DNSSEC validation is mandatory",
		    mods != NULL ? mods : "?");
		free(mods);
		goto fail;
	}
	free(mods);

	/*
	 * Finalize now so a bad trust anchor or config is refused at start,
	 * not at the first query: removing a zone that does not exist is a
	 * no-op that makes libunbound apply its configuration.
	 */
	if ((rc = ub_ctx_zone_remove(r->ctx, "danerelay-init.invalid.")) !=
	    0) {
		snprintf(err, errlen, "libunbound initialisation failed: %s "
		    "(trust anchor or dns_config; details on stderr)",
		    ub_strerror(rc));
		goto fail;
	}

	if ((fd = ub_fd(r->ctx)) == -1) {
		dr_strlcpy(err, "ub_fd failed", errlen);
		goto fail;
	}
	r->ev = event_new(base, fd, EV_READ | EV_PERSIST, ub_readable, r);
	r->kick = event_new(base, -1, 0, kick, r);
	if (r->ev == NULL || r->kick == NULL || event_add(r->ev, NULL) == -1) {
		dr_strlcpy(err, "cannot register the resolver event", errlen);
		goto fail;
	}
	log_debug("resolver: libunbound %s, trust anchor %s, dns_config %s",
	    ub_version(), cf->trust_anchor_file ? cf->trust_anchor_file :
	    "-", cf->dns_config ? cf->dns_config : "-");
	return r;

fail:
	resolver_destroy(r);
	return NULL;
}

static void
resolver_destroy(struct resolver *r)
{
	struct resolver_query *q;

	while ((q = TAILQ_FIRST(&r->pending)) != NULL)
		resolver_cancel(q);
	while ((q = TAILQ_FIRST(&r->done)) != NULL)
		resolver_cancel(q);
	if (r->ev != NULL)
		event_free(r->ev);
	if (r->kick != NULL)
		event_free(r->kick);
	if (r->ctx != NULL)
		ub_ctx_delete(r->ctx);
	cache_free(r);
	free(r);
}

void
resolver_free(struct resolver *r)
{
	if (r == NULL)
		return;
	if (r->dispatching) {
		/* inside a callback: dispatch() frees after it returns */
		r->dying = 1;
		return;
	}
	resolver_destroy(r);
}
