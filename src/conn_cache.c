/*
 * conn_cache.c - the delivery engine's cache of idle outbound sessions.
 * A session whose transaction ended cleanly waits here
 * (bounded idle time, bounded number of messages) for the next job that
 * would connect to the same address with exactly the same TLS
 * requirement (mode, SNI, names, TLSA records, base domain).  A session
 * is therefore never reused for a destination whose decision differs.
 *
 * Moved out of delivery.c unchanged (issue #15), on a struct of its own
 * (the cache's fields of struct delivery) with conn_cache_new/free and
 * conn_cache_shutdown() (what delivery_shutdown() did to the cache).
 *
 * Issue #24: a parked session counts toward its destination's
 * concurrency (connlimit_idle_*) until it is reused or closed.
 */
#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "conn_cache.h"
#include "connlimit.h"
#include "dane.h"
#include "log.h"
#include "smtp_client.h"
#include "util.h"

#define CACHE_IDLE_SECS		10	/* idle time before QUIT */
#define CACHE_MAX		256	/* idle sessions at most */

struct cached {
	TAILQ_ENTRY(cached) entry;
	struct conn_cache *d;
	char *key;
	struct smtp_client *c;
	struct event *timer;
	struct cl_slot *slot;	/* the destination it counts toward (idle),
				 * or NULL */
};
TAILQ_HEAD(cached_list, cached);

struct conn_cache {
	struct event_base *base;
	struct cached_list cache;
	size_t ncache;
	int stopping;		/* no more parking in the cache */
	struct connlimit *limits;	/* where slots count, or NULL */
};


/* The QUIT of a counted session is over: its connection is closed. */
static void
counted_closed(void *limits, void *slot)
{
	connlimit_idle_gone(limits, slot);
}

/* QUIT c; with a slot, c counts toward it (already: counted) until its
 * connection is closed, so that a new one never overlaps it. */
static void
quit_counted(struct conn_cache *d, struct smtp_client *c,
    struct cl_slot *slot, int counted)
{
	if (slot != NULL && d->limits != NULL) {
		if (!counted)
			connlimit_idle_add(slot);
		smtp_client_on_close(c, counted_closed, d->limits, slot);
	}
	smtp_client_quit(c);
}

void
conn_cache_quit(struct conn_cache *d, struct smtp_client *c,
    struct cl_slot *slot)
{
	quit_counted(d, c, slot, 0);
}

/* Out of the cache (the caller accounts for its slot). */
static void
cached_free(struct cached *e)
{
	TAILQ_REMOVE(&e->d->cache, e, entry);
	e->d->ncache--;
	event_free(e->timer);
	free(e->key);
	free(e);
}

static void
cached_idle_timeout(evutil_socket_t fd, short ev, void *arg)
{
	struct cached *e = arg;
	struct smtp_client *c = e->c;
	struct conn_cache *d = e->d;
	struct cl_slot *slot;

	log_debug("connection cache: closing idle session to %s",
	    smtp_client_relay(c));
	slot = e->slot;
	cached_free(e);
	quit_counted(d, c, slot, 1);
}

/* The peer closed (or misbehaved) while the session was parked. */
static void
cached_done(struct smtp_client *c, const struct smtp_result *r, void *arg)
{
	struct cached *e = arg;

	log_debug("connection cache: session to %s ended while idle: %s",
	    smtp_client_relay(c), r->reply);
	if (e->slot != NULL)
		connlimit_idle_gone(e->d->limits, e->slot);
	cached_free(e);
	smtp_client_free(c);
}

static const struct smtp_client_cb cached_cb = { NULL, NULL, cached_done };

void
conn_cache_put(struct conn_cache *d, struct smtp_client *c, const char *key,
    int max_msgs)
{
	conn_cache_put_slot(d, c, key, max_msgs, NULL);
}

void
conn_cache_set_limits(struct conn_cache *d, struct connlimit *l)
{
	d->limits = l;
}

void
conn_cache_put_slot(struct conn_cache *d, struct smtp_client *c,
    const char *key, int max_msgs, struct cl_slot *slot)
{
	struct timeval tv = { CACHE_IDLE_SECS, 0 };
	struct cached *e;

	if (key == NULL || d->stopping || d->ncache >= CACHE_MAX ||
	    smtp_client_nmsg(c) >= max_msgs) {
		quit_counted(d, c, slot, 0);
		return;
	}
	e = xcalloc(1, sizeof(*e));
	e->d = d;
	e->key = xstrdup(key);
	e->c = c;
	e->timer = evtimer_new(d->base, cached_idle_timeout, e);
	evtimer_add(e->timer, &tv);
	TAILQ_INSERT_TAIL(&d->cache, e, entry);
	d->ncache++;
	if (slot != NULL && d->limits != NULL) {
		e->slot = slot;
		connlimit_idle_add(slot);
	}
	smtp_client_set_cb(c, &cached_cb, e);
}

struct smtp_client *
conn_cache_get(struct conn_cache *d, const char *key)
{
	struct cached *e;
	struct smtp_client *c;

	TAILQ_FOREACH(e, &d->cache, entry)
		if (strcmp(e->key, key) == 0)
			break;
	if (e == NULL)
		return NULL;
	c = e->c;
	if (e->slot != NULL)
		connlimit_idle_reuse(e->slot);
	cached_free(e);
	return c;
}

int
conn_cache_has_slot(const struct conn_cache *d, const struct cl_slot *slot)
{
	const struct cached *e;

	TAILQ_FOREACH(e, &d->cache, entry)
		if (e->slot == slot)
			return 1;
	return 0;
}

void
conn_cache_close_slot(struct conn_cache *d, const struct cl_slot *slot)
{
	struct cached *e;
	struct smtp_client *c;
	struct cl_slot *e_slot;

	TAILQ_FOREACH(e, &d->cache, entry)
		if (e->slot == slot)
			break;
	if (e == NULL)
		return;
	c = e->c;
	e_slot = e->slot;
	log_debug("connection cache: closing an idle session to %s for "
	    "another one to its %s", smtp_client_relay(c),
	    connlimit_slot_name(slot));
	cached_free(e);
	quit_counted(d, c, e_slot, 1);
}

char *
conn_cache_key(const struct smtp_client_params *p, const char *relay)
{
	char *buf = NULL;
	size_t len = 0, i;
	FILE *f;

	if ((f = open_memstream(&buf, &len)) == NULL)
		return NULL;
	fprintf(f, "%s|%s|%s|src=%s|sni=%s|base=%s|check=%d|names=", relay,
	    smtp_tls_mode_name(p->tls), p->helo, p->bind_ip ? p->bind_ip : "",
	    p->sni ? p->sni : "", p->tlsa_base ? p->tlsa_base : "",
	    p->check_names);
	for (i = 0; i < p->nnames; i++)
		fprintf(f, "%s,", p->names[i]);
	fprintf(f, "|tlsa=");
	for (i = 0; i < p->ntlsa; i++) {
		char *t = tlsa_to_text(&p->tlsa[i]);
		fprintf(f, "%s;", t ? t : "?");
		free(t);
	}
	fclose(f);
	return buf;
}

struct conn_cache *
conn_cache_new(struct event_base *base)
{
	struct conn_cache *d = xcalloc(1, sizeof(*d));

	d->base = base;
	TAILQ_INIT(&d->cache);
	return d;
}

void
conn_cache_shutdown(struct conn_cache *d)
{
	while (!TAILQ_EMPTY(&d->cache)) {
		struct smtp_client *c = TAILQ_FIRST(&d->cache)->c;
		struct cl_slot *slot = TAILQ_FIRST(&d->cache)->slot;

		cached_free(TAILQ_FIRST(&d->cache));
		quit_counted(d, c, slot, 1);
	}
	d->stopping = 1;
}

void
conn_cache_free(struct conn_cache *d)
{
	if (d == NULL)
		return;
	conn_cache_shutdown(d);
	free(d);
}
