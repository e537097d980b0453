/*
 * route.c - resolve a destination domain and decide how to deliver to it.
 *
 * Sequencing of lookups per policy.h (RFC 7672 §2.2): the MX RRset; the
 * A and AAAA RRsets of every host (in parallel); then, for each host
 * whose addresses are secure and whose level is dane/dane-only, the TLSA
 * owner names policy_tlsa_next() asks for (CNAME-expanded first).  An
 * insecure host never gets a TLSA query.  When nothing is outstanding the
 * pure policy_decide() turns the results into a decision.  Every lookup
 * is asynchronous; the owner gets one callback.
 *
 * MTA-STS (RFC 8461) comes last, and only where it can matter: level
 * dane (policy_want_sts()), mta_sts = yes, and at least one candidate
 * host that would otherwise get opportunistic TLS - a host with usable
 * DANE is never judged by MTA-STS (RFC 8461 §2), so a domain whose hosts
 * all have DANE needs no policy at all.  The MTA-STS manager
 * (mta_sts_mgr.c) answers from its cache or waits, bounded, for a
 * first-time fetch; its answer becomes policy_input.sts.
 *
 * Lifetime: a route may wait on DNS and an MTA-STS fetch for a minute
 * or more, and a SIGHUP may replace the config and the policy table in
 * the meantime (issue #13).  The route reads its config after those
 * waits (cf->mta_sts) and its policy_input borrows the table entry's
 * match= names, so route_start() takes a reference on both (config_ref(),
 * policy_table_ref()) and route_free() drops them: a route decides with
 * the settings it started under, never with freed memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "config.h"
#include "dnssec_check.h"
#include "idn.h"
#include "log.h"
#include "mta_sts.h"
#include "own_addr.h"
#include "policy.h"
#include "policy_table.h"
#include "resolver.h"
#include "route.h"
#include "util.h"

#define ROUTE_MAX_Q	(1 + POLICY_MAX_HOSTS * (2 + POLICY_MAX_TLSA))

enum qkind { Q_MX, Q_A, Q_AAAA, Q_TLSA };

struct rquery {
	struct route *rt;
	enum qkind kind;
	size_t host;
	struct resolver_query *h;	/* NULL once answered */
};

struct route {
	struct event_base *base;
	struct resolver *res;
	const struct config *cf;	/* a reference (config_ref) */
	struct policy_table *pt;	/* a reference; in.match points in */
	char *domain;			/* A-label form (idn.c) */
	char *bad_idn;			/* why domain could not be converted */
	route_cb *cb;
	void *arg;
	struct event *kick;
	char level_src[64];
	int by_default;			/* level from default_policy */

	struct policy_input in;
	struct dns_result *mx;
	struct policy_host *hosts;
	size_t nhosts;
	/* every result we own, to free at the end */
	struct dns_result *owned[ROUTE_MAX_Q];
	size_t nowned;
	struct rquery q[ROUTE_MAX_Q];
	size_t nq;
	int outstanding;
	int decided;
	struct decision dec;

	struct mta_sts *sts;		/* manager, NULL: no MTA-STS */
	struct mta_sts_lookup *stsl;	/* in flight */
	struct mta_sts_answer *sts_ans;	/* owned */
	int sts_done;
};

static void route_step(struct route *rt);

static void
route_answer(struct dns_result *res, void *arg)
{
	struct rquery *rq = arg;
	struct route *rt = rq->rt;
	struct policy_host *h;
	size_t k;

	rq->h = NULL;
	rt->outstanding--;
	if (rt->nowned < ROUTE_MAX_Q)
		rt->owned[rt->nowned++] = res;
	log_debug("route %s: %s %s: %s/%s%s%s", rt->domain,
	    dns_type_name(res->qtype), res->qname, dns_status_name(res->status),
	    dns_security_name(res->security), res->reason[0] ? ": " : "",
	    res->reason);
	switch (rq->kind) {
	case Q_MX:
		rt->mx = res;
		rt->in.mx = res;
		break;
	case Q_A:
		rt->hosts[rq->host].a = res;
		break;
	case Q_AAAA:
		rt->hosts[rq->host].aaaa = res;
		break;
	case Q_TLSA:
		h = &rt->hosts[rq->host];
		for (k = 0; k < POLICY_MAX_TLSA && h->tlsa[k] != NULL; k++)
			;
		if (k < POLICY_MAX_TLSA)
			h->tlsa[k] = res;
		break;
	}
	route_step(rt);
}

static int
route_query(struct route *rt, const char *name, int type, enum qkind kind,
    size_t host)
{
	struct rquery *rq;
	char err[256];

	if (rt->nq >= ROUTE_MAX_Q)
		return -1;
	rq = &rt->q[rt->nq++];
	rq->rt = rt;
	rq->kind = kind;
	rq->host = host;
	rq->h = resolver_query(rt->res, name, type, route_answer, rq, err,
	    sizeof(err));
	if (rq->h == NULL) {
		log_warnx("route %s: cannot look up %s %s: %s", rt->domain,
		    dns_type_name(type), name, err);
		return -1;
	}
	rt->outstanding++;
	return 0;
}

/* Shuffle hosts of equal preference (RFC 5321 §5.1 "SHOULD randomize"). */
static void
shuffle_equal(struct policy_host *h, size_t n)
{
	size_t i, j, start = 0;

	for (i = 1; i <= n; i++) {
		if (i < n && h[i].pref == h[start].pref)
			continue;
		for (j = i - 1; j > start; j--) {
			size_t k = start + (size_t)random() % (j - start + 1);
			struct policy_host t = h[j];
			h[j] = h[k];
			h[k] = t;
		}
		start = i;
	}
}

/*
 * Whether an MTA-STS policy could change the decision: some candidate
 * host would get opportunistic TLS without one (no DANE for it).
 */
static int
route_needs_sts(struct route *rt)
{
	struct decision tmp;
	size_t i;
	int need = 0;

	if (rt->sts == NULL || !rt->cf->mta_sts ||
	    !policy_want_sts(&rt->in) || rt->nhosts == 0)
		return 0;
	policy_decide(&rt->in, &tmp);
	for (i = 0; i < tmp.nhosts; i++)
		if (!tmp.hosts[i].skip && tmp.hosts[i].tls == PTLS_MAY)
			need = 1;
	decision_free(&tmp);
	return need;
}

static void
route_sts_answer(struct mta_sts_answer *ans, void *arg)
{
	struct route *rt = arg;

	rt->stsl = NULL;
	rt->sts_done = 1;
	rt->sts_ans = ans;
	if (ans->sts.mode != STS_MODE_NONE || ans->sts.failure != NULL)
		rt->in.sts = &ans->sts;
	log_debug("route %s: MTA-STS: %s%s%s (%s)", rt->domain,
	    ans->source != MTA_STS_SRC_NONE ? "mode " : "no policy",
	    ans->source != MTA_STS_SRC_NONE ? mta_sts_mode_name(ans->mode) :
	    "", ans->sts.failure ? ", failure recorded" : "", ans->note);
	route_step(rt);
}

/*
 * Never to ourselves (issue #12; Postfix smtp_addr.c): a host with one of
 * our own listening addresses (own_addr.c) and every host with the same
 * or a worse preference are dropped - a worse one would only hand the
 * mail back to us.  If no host is left: "mail for D loops back to
 * myself", 5.4.6 (deferred instead if a better host is only skipped for
 * now, e.g. a DNS failure).
 */
static void
route_prune_self(struct route *rt)
{
	struct decision *d = &rt->dec;
	const struct decision_host *me = NULL;
	const struct dns_addr *mine = NULL;
	int temp = 0;
	size_t i, k;

	for (i = 0; i < d->nhosts && me == NULL; i++)
		for (k = 0; k < d->hosts[i].naddrs && me == NULL; k++)
			if (own_addr_match(rt->cf, (const struct sockaddr *)
			    &d->hosts[i].addrs[k].ss, rt->in.port)) {
				me = &d->hosts[i];
				mine = &d->hosts[i].addrs[k];
			}
	if (me == NULL)
		return;
	log_warnx("%s: MX host %s (preference %u) is this relay: %s port %d "
	    "is a listen address; not using it nor any MX with preference "
	    ">= %u", rt->domain, me->name, me->pref, mine->text, rt->in.port,
	    me->pref);
	for (i = 0; i < d->nhosts; i++) {
		struct decision_host *h = &d->hosts[i];

		if (h->pref < me->pref) {
			temp |= h->skip && h->skip_temp;
			continue;
		}
		/* not even for a TLSRPT report (tlsrpt_report_host_ok()) */
		h->rpt_failure = NULL;
		if (h->skip)
			continue;
		h->skip = 1;
		h->skip_temp = 0;
		h->skip_dsn = "5.4.6";
		free(h->reason);
		h->reason = xasprintf("%s: MX preference %u, not better than "
		    "this relay's own (%s[%s]:%d, preference %u)", h->name,
		    h->pref, me->name, mine->text, rt->in.port, me->pref);
		d->ncandidates--;
	}
	if (d->ncandidates > 0 || d->action != POLICY_DELIVER)
		return;
	d->action = temp ? POLICY_DEFER : POLICY_FAIL;
	d->dsn = temp ? "4.4.6" : "5.4.6";
	free(d->reason);
	d->reason = xasprintf("mail for %s loops back to myself (MX host "
	    "%s[%s]:%d is this relay)", rt->domain, me->name, mine->text,
	    rt->in.port);
}

/*
 * The DNSSEC self-test says validation is not in effect (dnssec_check.h:
 * the DNSKEY RRset of dnssec_check_name came back insecure): then "no
 * DANE" may only mean "no validation", so a host that default_policy
 * dane would send to with opportunistic TLS (PTLS_MAY, MTA-STS testing
 * included) is skipped for now, 4.7.5, and with no candidate left the
 * domain is deferred.  Untouched: hosts with DANE, MTA-STS enforce
 * (WebPKI), dane-only (already refuses), a default_policy other than
 * dane (no DANE decision is made), and a domain's own policy_file line
 * (the operator's explicit choice, followed as written).
 */
static void
route_dnssec_gate(struct route *rt)
{
	struct decision *d = &rt->dec;
	char name[256];
	size_t i, n = 0;

	if (!rt->by_default || rt->in.level != POLICY_DANE ||
	    !dnssec_check_insecure())
		return;
	dnssec_check_name(name, sizeof(name));
	for (i = 0; i < d->nhosts; i++) {
		struct decision_host *h = &d->hosts[i];

		if (h->skip || h->tls != PTLS_MAY)
			continue;
		h->skip = 1;
		h->skip_temp = 1;
		h->skip_dsn = "4.7.5";
		h->tls = PTLS_NONE;
		free(h->reason);
		h->reason = xasprintf("%s: DNSSEC validation is not in effect "
		    "(self-test: DNSKEY %s insecure): no opportunistic TLS "
		    "until it is", h->name, name);
		d->ncandidates--;
		n++;
	}
	if (n == 0 || d->ncandidates > 0 || d->action != POLICY_DELIVER)
		return;
	d->action = POLICY_DEFER;
	d->dsn = "4.7.5";
	free(d->reason);
	d->reason = xasprintf("DNSSEC validation is not in effect (self-test: "
	    "DNSKEY %s insecure): delivery to %s deferred rather than sent "
	    "with opportunistic TLS", name, rt->domain);
}

/*
 * Called after every answer: start what the answers so far allow, and
 * decide when nothing is outstanding any more.
 */
static void
route_step(struct route *rt)
{
	char qname[DNS_NAME_BUF + 16];
	size_t i;

	if (rt->outstanding > 0 || rt->decided || rt->stsl != NULL)
		return;
	if (rt->bad_idn != NULL) {
		/* RFC 3463 5.1.2: bad destination system address */
		memset(&rt->dec, 0, sizeof(rt->dec));
		rt->dec.action = POLICY_FAIL;
		rt->dec.level = rt->in.level;
		rt->dec.dsn = "5.1.2";
		rt->dec.reason = xasprintf("domain %s: %s", rt->domain,
		    rt->bad_idn);
		rt->decided = 1;
		rt->cb(rt, rt->arg);
		return;
	}
	if (rt->mx == NULL) {
		if (route_query(rt, rt->domain, DNS_T_MX, Q_MX, 0) == 0)
			return;
		/* cannot even ask: decide with what we have (nothing) */
	} else if (rt->hosts == NULL && rt->nhosts == 0 &&
	    (rt->nhosts = policy_hosts(&rt->in, &rt->hosts)) > 0) {
		shuffle_equal(rt->hosts, rt->nhosts);
		rt->in.hosts = rt->hosts;
		rt->in.nhosts = rt->nhosts;
		for (i = 0; i < rt->nhosts; i++) {
			route_query(rt, rt->hosts[i].name, DNS_T_A, Q_A, i);
			route_query(rt, rt->hosts[i].name, DNS_T_AAAA, Q_AAAA,
			    i);
		}
		if (rt->outstanding > 0)
			return;
	} else if (rt->nhosts > 0) {
		/* addresses are in: TLSA where DANE may apply */
		for (i = 0; i < rt->nhosts; i++) {
			if (!policy_want_tlsa(&rt->in, i))
				continue;
			if (policy_tlsa_next(&rt->in, i, qname,
			    sizeof(qname)) == 1)
				route_query(rt, qname, DNS_T_TLSA, Q_TLSA, i);
		}
		if (rt->outstanding > 0)
			return;
	}
	if (!rt->sts_done && route_needs_sts(rt)) {
		rt->stsl = mta_sts_lookup(rt->sts, rt->domain, route_sts_answer,
		    rt);
		if (rt->stsl != NULL)
			return;
	}
	rt->sts_done = 1;
	rt->decided = 1;
	policy_decide(&rt->in, &rt->dec);
	route_prune_self(rt);
	route_dnssec_gate(rt);
	rt->cb(rt, rt->arg);
}

static void
route_kick(evutil_socket_t fd, short ev, void *arg)
{
	route_step(arg);
}

struct route *
route_start(struct event_base *base, struct resolver *r,
    const struct config *cf, struct policy_table *pt,
    struct mta_sts *sts, const char *domain, route_cb *cb, void *arg)
{
	struct route *rt = xcalloc(1, sizeof(*rt));
	const struct policy_entry *pe = NULL;
	struct timeval tv = { 0, 0 };
	char alabels[1024], err[256];

	rt->base = base;
	rt->res = r;
	rt->cf = config_ref(cf);
	rt->pt = policy_table_ref(pt);
	/*
	 * IDN (issue #12): the MX lookup, the policy_file entry, MTA-STS and
	 * TLSRPT all use the A-label form; the addresses keep the form the
	 * sender wrote.  Both forms are logged once per route.
	 */
	switch (idn_to_alabels(domain, alabels, sizeof(alabels), err,
	    sizeof(err))) {
	case 1:
		log_info("%s: internationalized domain, looked up as %s",
		    domain, alabels);
		/* FALLTHROUGH */
	case 0:
		rt->domain = xstrdup(alabels);
		break;
	default:
		log_info("%s: %s", domain, err);
		rt->domain = str_lower(xstrdup(domain));
		rt->bad_idn = xstrdup(err);
		break;
	}
	rt->cb = cb;
	rt->arg = arg;
	rt->sts = sts;
	if (pt != NULL)
		pe = policy_table_lookup(pt, rt->domain);
	rt->in.domain = rt->domain;
	rt->in.port = cf->smtp_port;
	if (pe != NULL) {
		rt->in.level = pe->level;
		rt->in.match = (const char *const *)pe->match;
		rt->in.nmatch = pe->nmatch;
		snprintf(rt->level_src, sizeof(rt->level_src),
		    "policy_file line %d (%s)", pe->line, pe->domain);
	} else {
		rt->in.level = cf->default_policy;
		rt->by_default = 1;
		snprintf(rt->level_src, sizeof(rt->level_src),
		    "default_policy");
	}
	rt->kick = evtimer_new(base, route_kick, rt);
	evtimer_add(rt->kick, &tv);
	return rt;
}

const struct decision *
route_decision(const struct route *rt)
{
	return rt->decided ? &rt->dec : NULL;
}

const char *
route_domain(const struct route *rt)
{
	return rt->domain;
}

const struct policy_input *
route_input(const struct route *rt)
{
	return &rt->in;
}

const char *
route_level_source(const struct route *rt)
{
	return rt->level_src;
}

const struct mta_sts_answer *
route_sts(const struct route *rt)
{
	return rt->sts_ans;
}

void
route_free(struct route *rt)
{
	size_t i;

	if (rt == NULL)
		return;
	for (i = 0; i < rt->nq; i++)
		if (rt->q[i].h != NULL)
			resolver_cancel(rt->q[i].h);
	mta_sts_lookup_cancel(rt->stsl);
	mta_sts_answer_free(rt->sts_ans);
	if (rt->decided)
		decision_free(&rt->dec);
	policy_hosts_free(rt->hosts, rt->nhosts);
	for (i = 0; i < rt->nowned; i++)
		dns_result_free(rt->owned[i]);
	event_free(rt->kick);
	free(rt->domain);
	free(rt->bad_idn);
	policy_table_free(rt->pt);	/* in.match pointed into it */
	config_unref(rt->cf);
	free(rt);
}
