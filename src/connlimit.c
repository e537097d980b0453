/*
 * connlimit.c - the shared connection limits (see connlimit.h): a total
 * and a hash table of destinations, domains and sites, each with its
 * slots in use, idle sessions, rate, pause and slow start, and the list
 * of refused callers to wake, all under one mutex.
 *
 * A domain entry lives while it holds slots or idle sessions, or while
 * it has learned its site (or, with limits_by = domain, its limits):
 * CONNLIMIT_MAP_TTL seconds, after which the next job learns again.
 * When the table holds more than CL_MAX entries, unused ones whose
 * learning is old are dropped.  A site entry lives while a domain maps
 * to it or it holds slots, idle sessions or a pause.
 *
 * Rates are spaced evenly (one message every per/count seconds, no
 * burst): 2/s lets one message go every half second.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connlimit.h"
#include "log.h"
#include "policy.h"
#include "stats.h"
#include "util.h"

#define NBUCKET	1024
#define CL_MAX	10000		/* entries before unused ones are dropped */
#define SS_MAX	64		/* slow start ends here without a limit */

struct cl_slot {
	struct cl_slot	*next;
	char		*key;		/* domain, or site key */
	int		 is_site;
	int		 active;	/* jobs holding a slot */
	int		 idle;		/* parked sessions (atomic) */
	struct cl_slot	*site;		/* domain: its site once learned */
	int		 nref;		/* site: domains mapped to it */
	double		 learned;	/* domain: when (0: never) */
	struct connlimit_limits lim;	/* domain: its line's; site: the
					 * strictest of its domains' */
	int		 lim_msgs;	/* lim.max_msgs (atomic) */
	double		 rate_next;	/* next message allowed at */
	double		 pause_until;	/* paused until (0: not paused) */
	long long	 pause_len;	/* last pause's length (atomic) */
	int		 ss_cap;	/* slow start concurrency (atomic;
					 * 0: none) */
};

struct waiter {
	struct waiter	*next;
	void		(*wake)(void *);
	void		*arg;
};

struct connlimit {
	pthread_mutex_t	 mtx;
	int		 total;
	size_t		 n;
	double		 (*now)(void);
	struct cl_slot	*bucket[NBUCKET];
	struct waiter	*waiters;
};

static unsigned
hash(const char *s, int is_site)
{
	unsigned h = 5381 + (unsigned)is_site;

	while (*s)
		h = h * 33 + (unsigned char)*s++;
	return h % NBUCKET;
}

static struct cl_slot **
find(struct connlimit *l, const char *key, int is_site)
{
	struct cl_slot **sp;

	for (sp = &l->bucket[hash(key, is_site)]; *sp != NULL;
	    sp = &(*sp)->next)
		if ((*sp)->is_site == is_site && strcmp((*sp)->key, key) == 0)
			break;
	return sp;
}

static int
ld(const int *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* Nothing keeps e: no slot, session, pause, slow start, learning or
 * rate spacing still to come. */
static int
unused(const struct cl_slot *e, double now)
{
	return e->active <= 0 && e->rate_next <= now && ld(&e->idle) <= 0 && e->pause_until == 0 &&
	    __atomic_load_n(&e->pause_len, __ATOMIC_RELAXED) == 0 &&
	    ld(&e->ss_cap) == 0 && (e->is_site ? e->nref == 0 :
	    e->learned == 0);
}

static void
unlink_free(struct connlimit *l, struct cl_slot *e)
{
	struct cl_slot **sp = find(l, e->key, e->is_site);

	if (*sp == e)
		*sp = e->next;
	l->n--;
	free(e->key);
	free(e);
}

/* Free e if nothing keeps it (lock held); a domain lets go of its site. */
static void
maybe_free(struct connlimit *l, struct cl_slot *e)
{
	struct cl_slot *s;

	if (e == NULL || !unused(e, l->now()))
		return;
	s = e->site;
	unlink_free(l, e);
	if (s != NULL) {
		s->nref--;
		maybe_free(l, s);
	}
}

/* Domain entries learned long ago and unused go (lock held). */
static void
sweep(struct connlimit *l, double now)
{
	struct cl_slot *e, *next, *s;
	size_t i;

	for (i = 0; i < NBUCKET; i++)
		for (e = l->bucket[i]; e != NULL; e = next) {
			next = e->next;
			if (e->is_site || e->active > 0 || ld(&e->idle) > 0 ||
			    e->pause_until != 0 || e->rate_next > now ||
			    now - e->learned < CONNLIMIT_MAP_TTL)
				continue;
			s = e->site;
			unlink_free(l, e);
			if (s != NULL)
				s->nref--;
		}
	for (i = 0; i < NBUCKET; i++)
		for (e = l->bucket[i]; e != NULL; e = next) {
			next = e->next;
			if (e->is_site)
				maybe_free(l, e);
		}
}

static struct cl_slot *
get(struct connlimit *l, const char *key, int is_site, double now)
{
	struct cl_slot **sp = find(l, key, is_site), *e;

	if (*sp != NULL)
		return *sp;
	if (l->n >= CL_MAX) {
		sweep(l, now);
		sp = find(l, key, is_site);
	}
	e = *sp = xcalloc(1, sizeof(*e));
	e->key = xstrdup(key);
	e->is_site = is_site;
	l->n++;
	return e;
}

struct connlimit *
connlimit_new(void)
{
	struct connlimit *l = xcalloc(1, sizeof(*l));

	pthread_mutex_init(&l->mtx, NULL);
	l->now = mono_now;
	return l;
}

void
connlimit_set_clock(struct connlimit *l, double (*now)(void))
{
	l->now = now;
}

void
connlimit_free(struct connlimit *l)
{
	struct waiter *w;
	struct cl_slot *e;
	int i;

	if (l == NULL)
		return;
	for (i = 0; i < NBUCKET; i++)
		while ((e = l->bucket[i]) != NULL) {
			l->bucket[i] = e->next;
			free(e->key);
			free(e);
		}
	while ((w = l->waiters) != NULL) {
		l->waiters = w->next;
		free(w);
	}
	pthread_mutex_destroy(&l->mtx);
	free(l);
}

/* Remember a refused caller once (lock held). */
static void
wait_add(struct connlimit *l, void (*wake)(void *), void *arg)
{
	struct waiter *w;

	if (wake == NULL)
		return;
	for (w = l->waiters; w != NULL; w = w->next)
		if (w->arg == arg)
			return;
	w = xcalloc(1, sizeof(*w));
	w->wake = wake;
	w->arg = arg;
	w->next = l->waiters;
	l->waiters = w;
}

/* Take the waiters (lock held); wake_all() them after unlocking. */
static struct waiter *
wait_take(struct connlimit *l)
{
	struct waiter *list = l->waiters;

	l->waiters = NULL;
	return list;
}

static void
wake_all(struct waiter *list)
{
	struct waiter *w;

	while ((w = list) != NULL) {
		list = w->next;
		w->wake(w->arg);
		free(w);
	}
}

double
connlimit_rate_interval(const struct rate *r)
{
	if (r == NULL || r->count <= 0 || r->per <= 0)
		return 0;
	return (double)r->per / r->count;
}

long long
connlimit_pause_next(long long prev, long long base)
{
	long long n;

	if (base <= 0)
		return 0;
	n = prev <= 0 ? base : prev * 2;
	if (n < base)
		n = base;
	return n > CONNLIMIT_PAUSE_MAX ? (base > CONNLIMIT_PAUSE_MAX ? base :
	    CONNLIMIT_PAUSE_MAX) : n;
}

const char *
connlimit_slot_name(const struct cl_slot *s)
{
	return s->is_site ? "site" : "destination";
}

/* The smaller of two limits, 0 meaning none. */
static int
stricter(int a, int b)
{
	if (a <= 0)
		return b;
	if (b <= 0)
		return a;
	return a < b ? a : b;
}

static int
eff_conn(const struct cl_slot *t, int max_dest)
{
	return stricter(stricter(max_dest, t->lim.max_connections),
	    ld(&t->ss_cap));
}

/* A pause that ended (lock held): say so once. */
static void
resume(struct cl_slot *t, double now)
{
	if (t->pause_until == 0 || now < t->pause_until)
		return;
	log_info("%s %s resumed after a %llds throttle pause (concurrency "
	    "starts at 1)", connlimit_slot_name(t), t->key,
	    __atomic_load_n(&t->pause_len, __ATOMIC_RELAXED));
	t->pause_until = 0;
	stats_inc(S_SITE_RESUMES);
	stats_add(S_SITES_PAUSED, (unsigned long long)-1);
}

/*
 * May one more job go to t?  self: the caller's job is counted in
 * t->active already (a check after learning); no rate taken then.
 * (lock held)
 */
static enum connlimit_verdict
admit(struct cl_slot *t, struct connlimit_req *rq, double now, int self)
{
	int eff, busy, idle = ld(&t->idle);
	double iv;

	rq->borrowed = 0;
	resume(t, now);
	if (t->pause_until != 0) {
		rq->retry_at = t->pause_until;
		return CONNLIMIT_LATER;
	}
	eff = eff_conn(t, rq->max_dest);
	busy = t->active - self + idle;
	if (eff > 0 && busy >= eff) {
		if (idle > 0 && t->active - self < eff && rq->own_idle != NULL &&
		    rq->own_idle(rq->own_arg, t))
			rq->borrowed = 1;
		else
			return CONNLIMIT_DEST;
	}
	if (self)
		return CONNLIMIT_OK;
	iv = connlimit_rate_interval(rq->rate);
	if (connlimit_rate_interval(&t->lim.rate) > iv)
		iv = connlimit_rate_interval(&t->lim.rate);
	if (iv > 0) {
		if (t->rate_next > now + 1e-6) {
			rq->borrowed = 0;
			rq->retry_at = t->rate_next;
			return CONNLIMIT_LATER;
		}
		t->rate_next = (t->rate_next > now ? t->rate_next : now) + iv;
	}
	return CONNLIMIT_OK;
}

enum connlimit_verdict
connlimit_take(struct connlimit *l, struct connlimit_req *rq)
{
	struct cl_slot *d, *t;
	enum connlimit_verdict v;
	double now = l->now();

	rq->slot = NULL;
	rq->borrowed = rq->relearn = 0;
	pthread_mutex_lock(&l->mtx);
	if (rq->max_total > 0 && l->total >= rq->max_total) {
		wait_add(l, rq->wake, rq->wakearg);
		pthread_mutex_unlock(&l->mtx);
		return CONNLIMIT_TOTAL;
	}
	d = get(l, rq->domain, 0, now);
	t = !rq->by_domain && d->site != NULL ? d->site : d;
	if ((v = admit(t, rq, now, 0)) == CONNLIMIT_OK) {
		t->active++;
		l->total++;
		rq->slot = t;
		rq->relearn = d->learned == 0 ||
		    now - d->learned >= CONNLIMIT_MAP_TTL ||
		    (!rq->by_domain && d->site == NULL);
	} else {
		if (v == CONNLIMIT_DEST)
			wait_add(l, rq->wake, rq->wakearg);
		maybe_free(l, d);
	}
	pthread_mutex_unlock(&l->mtx);
	return v;
}

void
connlimit_release(struct connlimit *l, struct cl_slot *s)
{
	struct waiter *list;

	if (s == NULL)
		return;
	pthread_mutex_lock(&l->mtx);
	s->active--;
	l->total--;
	maybe_free(l, s);
	list = wait_take(l);
	pthread_mutex_unlock(&l->mtx);
	wake_all(list);
}

/* s's limits: the strictest of the domains mapped to it (lock held). */
static void
site_limits(struct connlimit *l, struct cl_slot *s)
{
	struct cl_slot *e;
	double iv = 0;
	size_t i;

	memset(&s->lim, 0, sizeof(s->lim));
	for (i = 0; i < NBUCKET; i++)
		for (e = l->bucket[i]; e != NULL; e = e->next) {
			if (e->site != s)
				continue;
			s->lim.max_connections = stricter(
			    s->lim.max_connections, e->lim.max_connections);
			s->lim.max_msgs = stricter(s->lim.max_msgs,
			    e->lim.max_msgs);
			if (connlimit_rate_interval(&e->lim.rate) > iv) {
				iv = connlimit_rate_interval(&e->lim.rate);
				s->lim.rate = e->lim.rate;
			}
		}
	__atomic_store_n(&s->lim_msgs, s->lim.max_msgs, __ATOMIC_RELAXED);
}

enum connlimit_verdict
connlimit_learn(struct connlimit *l, struct connlimit_req *rq,
    const char *site, const struct connlimit_limits *dom)
{
	static const struct connlimit_limits none;
	struct cl_slot *d, *s, *t, *cur = rq->slot, *old;
	struct waiter *list = NULL;
	enum connlimit_verdict v;
	double now = l->now();
	int had;

	pthread_mutex_lock(&l->mtx);
	d = get(l, rq->domain, 0, now);
	d->learned = now;
	had = d->lim.max_connections || d->lim.max_msgs || d->lim.rate.count;
	d->lim = dom != NULL ? *dom : none;
	__atomic_store_n(&d->lim_msgs, d->lim.max_msgs, __ATOMIC_RELAXED);
	t = d;
	if (!rq->by_domain && site != NULL) {
		s = get(l, site, 1, now);
		if ((old = d->site) != s) {
			d->site = s;
			s->nref++;
			if (old != NULL) {
				old->nref--;
				maybe_free(l, old);
			}
		}
		if (had || dom != NULL || s->lim.max_connections ||
		    s->lim.max_msgs || s->lim.rate.count)
			site_limits(l, s);
		t = s;
	}
	if (cur == t) {
		/* the job was counted there: still within the limits? */
		v = admit(t, rq, now, 1);
	} else {
		cur->active--;
		maybe_free(l, cur);
		v = admit(t, rq, now, 0);
		if (v == CONNLIMIT_OK) {
			t->active++;
			rq->slot = t;
		}
		list = wait_take(l);	/* cur has a free slot now */
	}
	if (v != CONNLIMIT_OK) {
		if (cur == t) {
			t->active--;
			maybe_free(l, t);
		}
		l->total--;
		rq->slot = NULL;
		if (list == NULL)
			list = wait_take(l);
		if (v == CONNLIMIT_DEST)
			wait_add(l, rq->wake, rq->wakearg);
	}
	pthread_mutex_unlock(&l->mtx);
	wake_all(list);
	return v;
}

long long
connlimit_throttle(struct connlimit *l, struct cl_slot *s, long long base,
    const char *relay, const char *reply)
{
	double now;
	long long left, len;

	if (s == NULL || base <= 0)
		return 0;
	pthread_mutex_lock(&l->mtx);
	now = l->now();
	if (s->pause_until > now) {
		/* another session got the same answer: one pause */
		left = (long long)(s->pause_until - now + 0.999);
		pthread_mutex_unlock(&l->mtx);
		return left;
	}
	resume(s, now);
	len = connlimit_pause_next(__atomic_load_n(&s->pause_len,
	    __ATOMIC_RELAXED), base);
	__atomic_store_n(&s->pause_len, len, __ATOMIC_RELAXED);
	s->pause_until = now + (double)len;
	__atomic_store_n(&s->ss_cap, 1, __ATOMIC_RELAXED);
	stats_inc(S_SITE_PAUSES);
	stats_inc(S_SITES_PAUSED);
	log_info("%s %s paused for %llds: throttled by %s (%s); no new "
	    "connections until the pause ends", connlimit_slot_name(s),
	    s->key, len, relay, reply);
	pthread_mutex_unlock(&l->mtx);
	return len;
}

void
connlimit_success(struct connlimit *l, struct cl_slot *s, int new_conn,
    int max_dest)
{
	int cap, lim;

	if (s == NULL || (__atomic_load_n(&s->pause_len,
	    __ATOMIC_RELAXED) == 0 && ld(&s->ss_cap) == 0))
		return;		/* nothing to undo: no lock */
	pthread_mutex_lock(&l->mtx);
	__atomic_store_n(&s->pause_len, 0, __ATOMIC_RELAXED);
	if (new_conn && (cap = ld(&s->ss_cap)) > 0 && s->pause_until == 0) {
		lim = stricter(max_dest, s->lim.max_connections);
		cap++;
		if ((lim > 0 && cap >= lim) || cap > SS_MAX)
			cap = 0;	/* slow start is over */
		__atomic_store_n(&s->ss_cap, cap, __ATOMIC_RELAXED);
	}
	maybe_free(l, s);	/* (never: the caller holds a slot) */
	pthread_mutex_unlock(&l->mtx);
}

int
connlimit_max_msgs(const struct cl_slot *s, int global)
{
	return s == NULL ? global : stricter(global, ld(&s->lim_msgs));
}

void
connlimit_idle_add(struct cl_slot *s)
{
	__atomic_add_fetch(&s->idle, 1, __ATOMIC_RELAXED);
}

void
connlimit_idle_reuse(struct cl_slot *s)
{
	__atomic_sub_fetch(&s->idle, 1, __ATOMIC_RELAXED);
}

void
connlimit_idle_gone(struct connlimit *l, struct cl_slot *s)
{
	struct waiter *list;

	pthread_mutex_lock(&l->mtx);
	__atomic_sub_fetch(&s->idle, 1, __ATOMIC_RELAXED);
	maybe_free(l, s);
	list = wait_take(l);
	pthread_mutex_unlock(&l->mtx);
	wake_all(list);
}

void
connlimit_forget(struct connlimit *l, void *wakearg)
{
	struct waiter **wp, *w;

	pthread_mutex_lock(&l->mtx);
	for (wp = &l->waiters; (w = *wp) != NULL; )
		if (w->arg == wakearg) {
			*wp = w->next;
			free(w);
		} else
			wp = &w->next;
	pthread_mutex_unlock(&l->mtx);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

char *
connlimit_site_key(const struct decision *dec, const char *domain)
{
	char **names, *buf = NULL;
	size_t n = 0, i, len = 0;
	FILE *f;

	names = xcalloc(dec->nhosts + 1, sizeof(*names));
	for (i = 0; i < dec->nhosts; i++)
		if (dec->hosts[i].name != NULL)
			names[n++] = str_lower(xstrdup(dec->hosts[i].name));
	if (n == 0)
		names[n++] = str_lower(xstrdup(domain));
	for (i = 0; i < n; i++) {	/* "mx.example." = "mx.example" */
		size_t k = strlen(names[i]);

		if (k > 1 && names[i][k - 1] == '.')
			names[i][k - 1] = '\0';
	}
	qsort(names, n, sizeof(*names), cmp_str);
	if ((f = open_memstream(&buf, &len)) == NULL)
		abort();	/* out of memory, as xcalloc() */
	for (i = 0; i < n; i++)
		if (i == 0 || strcmp(names[i], names[i - 1]) != 0)
			fprintf(f, "%s%s", i > 0 ? "," : "", names[i]);
	for (i = 0; i < n; i++)
		free(names[i]);
	fclose(f);
	free(names);
	return buf;
}
