/*
 * dkim_watch.c - DKIM key rotation in the daemon (issue #16; the rules
 * are dkim.c's "Rotation"): a key that `danerelay dkim rotate` added is
 * pending until its record is visible in DNS, through the daemon's
 * validating resolver.  Visible means: a TXT answer that is not bogus
 * (secure, or insecure for a zone without DNSSEC) carrying the key's
 * public key.  Then dkim_key_seen() makes it the key that signs, in
 * every worker, and this is logged once.  A lookup that fails, is bogus
 * or shows another key leaves it pending (logged at debug level) and is
 * tried again after dkim_dns_check_interval.
 *
 * The key table file is read again at each round, so keys added by a
 * rotation and picked up by a reload are watched without more wiring.
 * Owns its timer, its queries and a key table of its own.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "config.h"
#include "dkim.h"
#include "dkim_watch.h"
#include "log.h"
#include "resolver.h"
#include "util.h"

struct dkim_watch;

struct dkim_lookup {
	struct dkim_watch	*dw;
	struct resolver_query	*q;
	size_t			 i;		/* in dw->t */
};

struct dkim_watch {
	struct event_base	*base;
	struct resolver		*res;
	char			*path;
	long long		 interval;
	struct event		*timer;
	struct dkim_table	*t;		/* of the current round */
	struct dkim_lookup	*l;		/* its lookups */
	size_t			 nl, pending;
};

static void round_start(evutil_socket_t, short, void *);

static void
round_end(struct dkim_watch *dw)
{
	size_t i;

	for (i = 0; i < dw->nl; i++)
		if (dw->l[i].q != NULL)
			resolver_cancel(dw->l[i].q);
	free(dw->l);
	dw->l = NULL;
	dw->nl = dw->pending = 0;
	dkim_table_unref(dw->t);
	dw->t = NULL;
}

static void
schedule(struct dkim_watch *dw, long long secs)
{
	struct timeval tv = { (time_t)secs, 0 };

	evtimer_add(dw->timer, &tv);
}

static void
lookup_done(struct dns_result *res, void *arg)
{
	struct dkim_lookup *l = arg;
	struct dkim_watch *dw = l->dw;
	struct dkim_key_info k;
	char why[256] = "";
	size_t j;
	int match = 0;

	l->q = NULL;
	dkim_table_key(dw->t, l->i, &k);
	if (res->status == DNS_OK && res->security != DNS_SEC_BOGUS)
		for (j = 0; j < res->n && !match; j++)
			match = dkim_record_match(dw->t, l->i,
			    res->txt[j].data, res->txt[j].len, why,
			    sizeof(why));
	if (match) {
		dkim_key_seen(dw->t, l->i);
		log_info("dkim: %s selector %s (%s) is published "
		    "(dnssec=%s): signing with it from now on", k.domain,
		    k.selector, dkim_alg_name(k.alg),
		    dns_security_name(res->security));
	} else
		log_debug("dkim: %s selector %s still pending: %s%s%s",
		    k.domain, k.selector, res->status != DNS_OK ?
		    dns_status_name(res->status) : why,
		    res->security == DNS_SEC_BOGUS ? ", bogus" : "",
		    res->reason[0] ? res->reason : "");
	dns_result_free(res);
	if (--dw->pending == 0) {
		round_end(dw);
		schedule(dw, dw->interval);
	}
}

static void
round_start(evutil_socket_t fd, short ev, void *arg)
{
	struct dkim_watch *dw = arg;
	struct dkim_key_info k;
	struct dkim_lookup *l;
	char name[600], err[1024];
	size_t i, n;

	(void)fd;
	(void)ev;
	round_end(dw);
	if ((dw->t = dkim_table_load(dw->path, err, sizeof(err))) == NULL) {
		log_warnx("dkim: %s", err);	/* the workers keep theirs */
		schedule(dw, dw->interval);
		return;
	}
	n = dkim_table_count(dw->t);
	dw->l = xcalloc(n + 1, sizeof(*dw->l));
	for (i = 0; i < n; i++) {
		if (dkim_table_key(dw->t, i, &k) == -1 ||
		    k.state != DKIM_KEY_PENDING ||
		    dkim_record_name(dw->t, i, name, sizeof(name)) == -1)
			continue;
		l = &dw->l[dw->nl++];
		l->dw = dw;
		l->i = i;
		dw->pending++;
		if ((l->q = resolver_query(dw->res, name, DNS_T_TXT,
		    lookup_done, l, err, sizeof(err))) == NULL) {
			log_warnx("dkim: lookup of %s: %s", name, err);
			dw->pending--;
		}
	}
	if (dw->pending == 0) {
		round_end(dw);
		schedule(dw, dw->interval);
	}
}

struct dkim_watch *
dkim_watch_start(struct event_base *base, struct resolver *r,
    const struct config *cf)
{
	struct dkim_watch *dw;

	if (cf->dkim_key_table == NULL)
		return NULL;
	dw = xcalloc(1, sizeof(*dw));
	dw->base = base;
	dw->res = r;
	dw->path = xstrdup(cf->dkim_key_table);
	dw->interval = cf->dkim_dns_check_interval;
	dw->timer = evtimer_new(base, round_start, dw);
	schedule(dw, 0);
	return dw;
}

void
dkim_watch_reload(struct dkim_watch *dw, const struct config *cf)
{
	if (dw == NULL)
		return;
	if (cf->dkim_key_table != NULL) {
		free(dw->path);
		dw->path = xstrdup(cf->dkim_key_table);
	}
	dw->interval = cf->dkim_dns_check_interval;
	round_end(dw);
	evtimer_del(dw->timer);
	schedule(dw, 0);
}

void
dkim_watch_free(struct dkim_watch *dw)
{
	if (dw == NULL)
		return;
	round_end(dw);
	if (dw->timer != NULL)
		event_free(dw->timer);
	free(dw->path);
	free(dw);
}
