/*
 * anvil.c - per-client-address connection limits and AUTH failure
 * counts, shared by the workers (see anvil.h): a hash table of client
 * addresses under one mutex.
 *
 * An entry holds the address's open connections and its rate window (the
 * start of the current smtpd_client_connection_rate_time_unit and the
 * connections since; a new window starts with the first connection after
 * the old one ended, as in Postfix's anvil), its AUTH failures (forgotten
 * smtpd_auth_block_time after the last one) and the end of its block.  It
 * is dropped when it has nothing left to remember: no open connection,
 * the window over, no failure to count and no block.
 * Stale entries are swept from a bucket whenever that bucket is used, and
 * from the whole table when it reaches ANVIL_MAX_CLIENTS.
 *
 * IPv4-mapped IPv6 addresses count as the IPv4 address.
 */
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "anvil.h"
#include "util.h"

#define NBUCKET		4096
#define LOG_INTERVAL	1.0	/* seconds between refusal lines, per
				 * address */

struct key {
	int		 family;
	unsigned char	 addr[16];
};

struct client {
	struct client	*next;
	struct key	 key;
	int		 conns;		/* open connections */
	double		 rate_start;	/* mono_now() of the window's start */
	int		 rate_count;	/* connections in the window */
	double		 logged_at;	/* last refusal line */
	int		 unlogged;	/* refusals since */
	int		 auth_failures;	/* since the last block */
	double		 auth_last;	/* last failure */
	double		 blocked_until;	/* 0: not blocked */
};

struct anvil {
	pthread_mutex_t	 mtx;
	struct client	*bucket[NBUCKET];
	size_t		 n;
	long long	 rate_unit;	/* of the last call, for the sweep */
	long long	 auth_block;	/* of the last call, for the sweep */
};

static int
make_key(const struct sockaddr *sa, struct key *k)
{
	const struct sockaddr_in6 *sin6;
	const struct sockaddr_in *sin;

	memset(k, 0, sizeof(*k));
	if (sa->sa_family == AF_INET) {
		sin = (const struct sockaddr_in *)(const void *)sa;
		k->family = AF_INET;
		memcpy(k->addr, &sin->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			k->family = AF_INET;
			memcpy(k->addr, &sin6->sin6_addr.s6_addr[12], 4);
		} else {
			k->family = AF_INET6;
			memcpy(k->addr, &sin6->sin6_addr, 16);
		}
		return 0;
	}
	return -1;
}

static unsigned
hash(const struct key *k)
{
	unsigned h = 2166136261u;
	size_t i;

	for (i = 0; i < sizeof(k->addr); i++)
		h = (h ^ k->addr[i]) * 16777619u;
	return (h ^ (unsigned)k->family) % NBUCKET;
}

/* Nothing left to remember (lock held). */
static int
stale(const struct anvil *a, const struct client *c, double now)
{
	return c->conns == 0 && now - c->rate_start >= (double)a->rate_unit &&
	    now - c->logged_at >= LOG_INTERVAL && c->blocked_until <= now &&
	    (c->auth_failures == 0 ||
	    now - c->auth_last >= (double)a->auth_block);
}

static void
sweep_bucket(struct anvil *a, unsigned b, double now)
{
	struct client **cp, *c;

	for (cp = &a->bucket[b]; (c = *cp) != NULL; )
		if (stale(a, c, now)) {
			*cp = c->next;
			free(c);
			a->n--;
		} else
			cp = &c->next;
}

static struct client *
find(struct anvil *a, const struct key *k, unsigned b)
{
	struct client *c;

	for (c = a->bucket[b]; c != NULL; c = c->next)
		if (c->key.family == k->family &&
		    memcmp(c->key.addr, k->addr, sizeof(k->addr)) == 0)
			return c;
	return NULL;
}

struct anvil *
anvil_new(void)
{
	struct anvil *a = xcalloc(1, sizeof(*a));

	pthread_mutex_init(&a->mtx, NULL);
	a->rate_unit = 60;
	a->auth_block = 3600;
	return a;
}

void
anvil_free(struct anvil *a)
{
	struct client *c;
	unsigned b;

	if (a == NULL)
		return;
	for (b = 0; b < NBUCKET; b++)
		while ((c = a->bucket[b]) != NULL) {
			a->bucket[b] = c->next;
			free(c);
		}
	pthread_mutex_destroy(&a->mtx);
	free(a);
}

/* Refused: decide whether to log it (lock held). */
static void
refused(struct client *c, double now, struct anvil_result *res)
{
	if (now - c->logged_at >= LOG_INTERVAL) {
		res->log = 1;
		res->suppressed = c->unlogged;
		c->logged_at = now;
		c->unlogged = 0;
	} else
		c->unlogged++;
}

/* The entry of k, made if need be (lock held).  NULL: table full. */
static struct client *
get(struct anvil *a, const struct key *k, const struct anvil_limits *lim,
    double now)
{
	struct client *c;
	unsigned b = hash(k);

	a->rate_unit = lim->rate_unit > 0 ? lim->rate_unit : 60;
	a->auth_block = lim->auth_block > 0 ? lim->auth_block : 3600;
	sweep_bucket(a, b, now);
	if ((c = find(a, k, b)) != NULL)
		return c;
	if (a->n >= ANVIL_MAX_CLIENTS)
		for (b = 0; b < NBUCKET; b++)
			sweep_bucket(a, b, now);
	if (a->n >= ANVIL_MAX_CLIENTS)
		return NULL;
	b = hash(k);
	c = xcalloc(1, sizeof(*c));
	c->key = *k;
	c->rate_start = now;
	c->logged_at = now - LOG_INTERVAL;
	c->next = a->bucket[b];
	a->bucket[b] = c;
	a->n++;
	return c;
}

void
anvil_connect(struct anvil *a, const struct sockaddr *sa,
    const struct anvil_limits *lim, struct anvil_result *res)
{
	struct client *c;
	struct key k;
	double now = mono_now();

	memset(res, 0, sizeof(*res));
	if (make_key(sa, &k) == -1)
		return;
	pthread_mutex_lock(&a->mtx);
	if ((c = get(a, &k, lim, now)) == NULL) {
		pthread_mutex_unlock(&a->mtx);
		return;			/* uncounted, see anvil.h */
	}
	if (c->blocked_until > now) {
		res->verdict = ANVIL_AUTH_BLOCKED;
		res->value = (int)(c->blocked_until - now + 0.5);
		refused(c, now, res);
		pthread_mutex_unlock(&a->mtx);
		return;
	}
	if (now - c->rate_start >= (double)a->rate_unit) {
		c->rate_start = now;
		c->rate_count = 0;
	}
	/* a refused attempt counts towards the rate too, as in Postfix:
	 * hammering on the door keeps it shut */
	c->rate_count++;
	if (lim->count > 0 && c->conns >= lim->count) {
		res->verdict = ANVIL_COUNT;
		res->value = c->conns + 1;
		refused(c, now, res);
	} else if (lim->rate > 0 && c->rate_count > lim->rate) {
		res->verdict = ANVIL_RATE;
		res->value = c->rate_count;
		refused(c, now, res);
	} else {
		c->conns++;
		res->counted = 1;
	}
	pthread_mutex_unlock(&a->mtx);
}

void
anvil_disconnect(struct anvil *a, const struct sockaddr *sa)
{
	struct client *c;
	struct key k;
	unsigned b;

	if (make_key(sa, &k) == -1)
		return;
	b = hash(&k);
	pthread_mutex_lock(&a->mtx);
	if ((c = find(a, &k, b)) != NULL && c->conns > 0)
		c->conns--;
	pthread_mutex_unlock(&a->mtx);
}

double
anvil_auth_failed(struct anvil *a, const struct sockaddr *sa,
    const struct anvil_limits *lim, int *failures, int *blocked)
{
	struct client *c;
	struct key k;
	double now = mono_now(), delay = 0;

	*failures = 0;
	*blocked = 0;
	if (make_key(sa, &k) == -1)
		return 0;
	pthread_mutex_lock(&a->mtx);
	if ((c = get(a, &k, lim, now)) != NULL) {
		if (c->auth_failures > 0 &&
		    now - c->auth_last >= (double)a->auth_block)
			c->auth_failures = 0;	/* forgotten */
		c->auth_failures++;
		c->auth_last = now;
		*failures = c->auth_failures;
		if (lim->auth_limit > 0 &&
		    c->auth_failures >= lim->auth_limit) {
			*blocked = 1;
			c->blocked_until = now + (double)a->auth_block;
			c->auth_failures = 0;
		} else {
			delay = (double)lim->auth_delay * *failures;
			if (delay > ANVIL_AUTH_DELAY_MAX)
				delay = ANVIL_AUTH_DELAY_MAX;
		}
	}
	pthread_mutex_unlock(&a->mtx);
	return delay;
}

double
anvil_auth_blocked(struct anvil *a, const struct sockaddr *sa)
{
	struct client *c;
	struct key k;
	double now = mono_now(), left = 0;

	if (make_key(sa, &k) == -1)
		return 0;
	pthread_mutex_lock(&a->mtx);
	if ((c = find(a, &k, hash(&k))) != NULL && c->blocked_until > now)
		left = c->blocked_until - now;
	pthread_mutex_unlock(&a->mtx);
	return left;
}

size_t
anvil_blocked_clients(struct anvil *a)
{
	struct client *c;
	double now = mono_now();
	size_t n = 0;
	unsigned b;

	pthread_mutex_lock(&a->mtx);
	for (b = 0; b < NBUCKET; b++)
		for (c = a->bucket[b]; c != NULL; c = c->next)
			if (c->blocked_until > now)
				n++;
	pthread_mutex_unlock(&a->mtx);
	return n;
}

size_t
anvil_clients(struct anvil *a)
{
	size_t n;

	pthread_mutex_lock(&a->mtx);
	n = a->n;
	pthread_mutex_unlock(&a->mtx);
	return n;
}
