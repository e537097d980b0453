/*
 * connlimit.c - the shared connection limits (see connlimit.h): a total, a
 * small hash table of domains with slots in use (an entry lives while its
 * count is above 0) and the list of refused callers to wake, all under
 * one mutex.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "connlimit.h"
#include "util.h"

#define NBUCKET	1024

struct dest {
	struct dest	*next;
	char		*domain;
	int		 active;
};

struct waiter {
	struct waiter	*next;
	void		(*wake)(void *);
	void		*arg;
};

struct connlimit {
	pthread_mutex_t	 mtx;
	int		 total;
	struct dest	*bucket[NBUCKET];
	struct waiter	*waiters;
};

static unsigned
hash(const char *s)
{
	unsigned h = 5381;

	while (*s)
		h = h * 33 + (unsigned char)*s++;
	return h % NBUCKET;
}

static struct dest **
find(struct connlimit *l, const char *domain)
{
	struct dest **dp;

	for (dp = &l->bucket[hash(domain)]; *dp != NULL; dp = &(*dp)->next)
		if (strcmp((*dp)->domain, domain) == 0)
			break;
	return dp;
}

struct connlimit *
connlimit_new(void)
{
	struct connlimit *l = xcalloc(1, sizeof(*l));

	pthread_mutex_init(&l->mtx, NULL);
	return l;
}

void
connlimit_free(struct connlimit *l)
{
	struct waiter *w;
	struct dest *d;
	int i;

	if (l == NULL)
		return;
	for (i = 0; i < NBUCKET; i++)
		while ((d = l->bucket[i]) != NULL) {
			l->bucket[i] = d->next;
			free(d->domain);
			free(d);
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

enum connlimit_verdict
connlimit_take(struct connlimit *l, const char *domain, int max_total,
    int max_dest, void (*wake)(void *), void *wakearg)
{
	struct dest **dp, *d;
	enum connlimit_verdict v = CONNLIMIT_OK;

	pthread_mutex_lock(&l->mtx);
	dp = find(l, domain);
	if (max_total > 0 && l->total >= max_total)
		v = CONNLIMIT_TOTAL;
	else if (max_dest > 0 && *dp != NULL && (*dp)->active >= max_dest)
		v = CONNLIMIT_DEST;
	else {
		if ((d = *dp) == NULL) {
			d = *dp = xcalloc(1, sizeof(*d));
			d->domain = xstrdup(domain);
		}
		d->active++;
		l->total++;
	}
	if (v != CONNLIMIT_OK)
		wait_add(l, wake, wakearg);
	pthread_mutex_unlock(&l->mtx);
	return v;
}

void
connlimit_release(struct connlimit *l, const char *domain)
{
	struct dest **dp, *d;
	struct waiter *list, *w;

	pthread_mutex_lock(&l->mtx);
	dp = find(l, domain);
	if ((d = *dp) != NULL) {
		if (--d->active <= 0) {
			*dp = d->next;
			free(d->domain);
			free(d);
		}
		l->total--;
	}
	list = l->waiters;
	l->waiters = NULL;
	pthread_mutex_unlock(&l->mtx);
	while ((w = list) != NULL) {
		list = w->next;
		w->wake(w->arg);
		free(w);
	}
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
