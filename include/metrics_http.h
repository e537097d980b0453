/*
 * metrics_http.h - the Prometheus text format (version 0.0.4) export of the
 * counters (stats.h) and of gauges, by an optional HTTP listener
 * (metrics_listen).
 *
 * Exporting: metrics_new() binds the listener (before privileges are
 * dropped, like smtpd_new()); metrics_start() serves GET /metrics on the
 * event base.  The gauges (queue, sessions, MTA-STS cache) are read at
 * scrape time through the callback handed to metrics_start(): main.c
 * implements it with the parts it built, so this module includes none
 * of them.  The listener belongs to the loop it was started on; the
 * callback runs on that loop.
 */
#ifndef DR_METRICS_HTTP_H
#define DR_METRICS_HTTP_H

#include <stddef.h>

struct event_base;
struct evbuffer;
struct config;

/* The current state, filled by the gauges callback (all 0 before it
 * runs).  A have_* of 0 leaves that group's gauges out. */
struct metrics_gauges {
	int have_smtpd;
	unsigned long long smtpd_sessions;	/* inbound sessions open */
	unsigned long long smtpd_auth_blocked;	/* addresses blocked now */
	int have_queue;
	unsigned long long queue_msgs, queue_held, queue_pending;
	unsigned long long queue_oldest_age;	/* seconds, 0 when empty */
	unsigned long long in_flight;		/* delivery attempts */
	long long sts_cache_policies;		/* MTA-STS policies cached */
	int have_dnssec;
	int dnssec_secure;			/* self-test: 1 secure */
	int have_spool;
	unsigned long long spool_free_bytes;	/* for the relay's user */
	unsigned long long queue_minfree;	/* the setting, bytes */
	int have_cert;				/* inbound STARTTLS on */
	long long cert_not_after;		/* its notAfter, Unix time */
	struct dkim_table *dkim;		/* key ages; a reference that
						 * the renderer drops, or NULL */
};
typedef void metrics_gauges_fn(struct metrics_gauges *g, void *arg);

struct dkim_table;
struct metrics;

/*
 * Bind cf->metrics_listen (must be set).  Warns when the address is not
 * loopback.  NULL with the reason in err.
 */
struct metrics *metrics_new(const struct config *cf, char *err,
    size_t errlen);
/* Serve on base; gauges(g, arg) (gauges may be NULL) fills in the
 * gauges at each scrape.  0 / -1. */
int metrics_start(struct metrics *m, struct event_base *base,
    metrics_gauges_fn *gauges, void *arg, char *err, size_t errlen);
/* The address it listens on ("127.0.0.1:9125"). */
const char *metrics_address(const struct metrics *m);
void metrics_free(struct metrics *m);

/* Append the whole exposition text to buf (gauges may be NULL). */
void metrics_render(struct evbuffer *buf, metrics_gauges_fn *gauges,
    void *arg);

#endif
