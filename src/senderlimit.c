/*
 * senderlimit.c - recipients per sender and window (senderlimit.h).
 *
 * A chained hash table of at most SENDERLIMIT_MAX entries under one
 * mutex; a take is one lookup.  Making room (a full table) scans it once,
 * which happens only while more than SENDERLIMIT_MAX senders are active.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "senderlimit.h"
#include "util.h"

#define NBUCKET	4096

struct sl_ent {
	struct sl_ent		*next;
	struct senderlimit_entry e;
};

struct senderlimit {
	pthread_mutex_t	 mu;
	struct sl_ent	*bucket[NBUCKET];
	size_t		 n;
};

static unsigned
hash(const char *s)
{
	unsigned h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % NBUCKET;
}

struct senderlimit *
senderlimit_new(void)
{
	struct senderlimit *l = xcalloc(1, sizeof(*l));

	pthread_mutex_init(&l->mu, NULL);
	return l;
}

void
senderlimit_free(struct senderlimit *l)
{
	struct sl_ent *x, *next;
	size_t i;

	if (l == NULL)
		return;
	for (i = 0; i < NBUCKET; i++)
		for (x = l->bucket[i]; x != NULL; x = next) {
			next = x->next;
			free(x);
		}
	pthread_mutex_destroy(&l->mu);
	free(l);
}

/* Drop the entries whose window is over; if none was, the one with the
 * fewest recipients.  Under the mutex. */
static void
make_room(struct senderlimit *l, long long per, time_t now)
{
	struct sl_ent **pp, *x, **least = NULL;
	size_t i, dropped = 0;

	for (i = 0; i < NBUCKET; i++)
		for (pp = &l->bucket[i]; (x = *pp) != NULL;) {
			if (now - x->e.start >= per) {
				*pp = x->next;
				free(x);
				l->n--;
				dropped++;
				continue;
			}
			if (least == NULL || x->e.count < (*least)->e.count)
				least = pp;
			pp = &x->next;
		}
	if (dropped == 0 && least != NULL) {
		x = *least;
		*least = x->next;
		free(x);
		l->n--;
	}
}

int
senderlimit_take(struct senderlimit *l, const char *key,
    const struct rate *rate, time_t now, struct senderlimit_entry *e)
{
	struct sl_ent *x;
	unsigned h = hash(key);
	int refused = 0;

	pthread_mutex_lock(&l->mu);
	for (x = l->bucket[h]; x != NULL; x = x->next)
		if (strcmp(x->e.key, key) == 0)
			break;
	if (x == NULL) {
		if (l->n >= SENDERLIMIT_MAX)
			make_room(l, rate->per, now);
		x = xcalloc(1, sizeof(*x));
		dr_strlcpy(x->e.key, key, sizeof(x->e.key));
		x->e.start = now;
		x->next = l->bucket[h];
		l->bucket[h] = x;
		l->n++;
	}
	if (now - x->e.start >= rate->per || now < x->e.start) {
		x->e.start = now;	/* a new window */
		x->e.count = 0;
	}
	if (x->e.count >= rate->count)
		refused = 1;
	else
		x->e.count++;
	if (e != NULL)
		*e = x->e;
	pthread_mutex_unlock(&l->mu);
	return refused;
}

static int
top_cmp(const void *a, const void *b)
{
	const struct senderlimit_entry *x = a, *y = b;

	if (x->count != y->count)
		return x->count < y->count ? 1 : -1;
	return strcmp(x->key, y->key);
}

size_t
senderlimit_top(struct senderlimit *l, long long per, time_t now,
    struct senderlimit_entry *out, size_t n)
{
	struct sl_ent *x;
	size_t i, k = 0;

	if (n == 0)
		return 0;
	pthread_mutex_lock(&l->mu);
	for (i = 0; i < NBUCKET; i++)
		for (x = l->bucket[i]; x != NULL; x = x->next) {
			if (now - x->e.start >= per || x->e.count == 0)
				continue;
			if (k < n) {
				out[k++] = x->e;
				qsort(out, k, sizeof(*out), top_cmp);
			} else if (top_cmp(&x->e, &out[n - 1]) < 0) {
				out[n - 1] = x->e;
				qsort(out, k, sizeof(*out), top_cmp);
			}
		}
	pthread_mutex_unlock(&l->mu);
	return k;
}
