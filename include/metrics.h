/*
 * metrics.h - operational counters, exported in the Prometheus text
 * format (version 0.0.4) by an optional HTTP listener (metrics_listen).
 *
 * Counting: the modules call the metrics_* functions below at the point
 * where something happened (one line each).  The counters are
 * process-wide atomics: the counting functions (metrics_inc() ..
 * metrics_set_sts_cache_size(), metrics_loop_stall()) may be called from
 * any thread (event loops and the workq pools' threads) at the same time;
 * they are cheap and safe to call in every program that links the
 * library (the CLI just never exports them).  The listener and the loop
 * watch belong to the loop they were started on.
 *
 * Loop stalls: metrics_watch_loop() measures how long callbacks keep an
 * event loop from reacting (a timer every 5 ms and its lateness, see
 * metrics.c) into the histogram danerelay_loop_stall_seconds and the
 * gauge danerelay_loop_stall_max_seconds.
 *
 * Exporting: metrics_new() binds the listener (before privileges are
 * dropped, like smtpd_new()); metrics_start() serves GET /metrics on the
 * event base and reads the gauges (queue, sessions) at scrape time from
 * the queue and smtpd it is given.
 */
#ifndef DR_METRICS_H
#define DR_METRICS_H

#include <stddef.h>

#include "delivery.h"		/* enum dlv_status */

struct event_base;
struct evbuffer;
struct config;
struct queue;
struct smtpd;
struct tls_outcome;

/* Plain counters (exported with a _total suffix). */
enum metric_counter {
	M_RECEIVED = 0,		/* messages accepted (250 after DATA) */
	M_RECEIVED_BYTES,	/* their size */
	M_RCPT_DEFERRED,	/* recipient attempts deferred */
	M_RCPT_BOUNCED,		/* recipients failed for good (5xx, policy,
				 * expired) */
	M_DNSSEC_BOGUS,		/* DNS answers that failed validation */
	M_AUTH_FAILED,		/* inbound SMTP AUTH failures */
	/* inbound clients refused by a limit (issue #12), exported as
	 * danerelay_smtpd_refused_total{reason=...} */
	M_REFUSED_RESERVED,	/* the rest is reserved for allow_clients */
	M_REFUSED_COUNT,	/* smtpd_client_connection_count_limit */
	M_REFUSED_RATE,		/* smtpd_client_connection_rate_limit */
	M_REFUSED_SLOW,		/* smtpd_min_data_rate */
	M_REFUSED_UNAUTH_TIME,	/* smtpd_unauth_session_timeout */
	M_REFUSED_AUTH_BLOCKED,	/* blocked after AUTH failures */
	M_AUTH_DELAYED,		/* failed AUTH replies delayed */
	M_AUTH_DELAY_MS,	/* and by how long in all, milliseconds */
	M_NCOUNTERS
};

void metrics_inc(enum metric_counter c);
void metrics_add(enum metric_counter c, unsigned long long n);
unsigned long long metrics_get(enum metric_counter c);

/*
 * One recipient's result of a delivery attempt.  For DLV_SENT, o is the
 * TLS outcome of the session that carried it (NULL or not established:
 * cleartext) and is counted by authentication type.
 */
void metrics_delivery(enum dlv_status st, const struct tls_outcome *o);

/* An outbound TLS negotiation failed with this RFC 8460 result-type
 * ("starttls-not-supported", "certificate-expired", ...). */
void metrics_tls_failure(const char *result_type);

/* Number of MTA-STS policies in the cache (set by the MTA-STS module). */
void metrics_set_sts_cache_size(long long n);

/* One loop stall observation (how late the watch timer ran), in
 * microseconds.  Called by the loop watch; public for tests. */
void metrics_loop_stall(unsigned long long usec);

struct metrics_watch;
/* Watch base for stalls until metrics_watch_free() (before the base is
 * freed).  NULL (logged) if libevent could not make the timer. */
struct metrics_watch *metrics_watch_loop(struct event_base *base);
void metrics_watch_free(struct metrics_watch *w);

/* Back to zero (tests). */
void metrics_reset(void);

struct metrics;

/*
 * Bind cf->metrics_listen (must be set).  Warns when the address is not
 * loopback.  NULL with the reason in err.
 */
struct metrics *metrics_new(const struct config *cf, char *err,
    size_t errlen);
/* Serve on base.  q and sd (may be NULL) provide the gauges. 0 / -1. */
int metrics_start(struct metrics *m, struct event_base *base,
    struct queue *q, struct smtpd *sd, char *err, size_t errlen);
/* The address it listens on ("127.0.0.1:9125"). */
const char *metrics_address(const struct metrics *m);
void metrics_free(struct metrics *m);

/* Append the whole exposition text to buf (q, sd may be NULL). */
void metrics_render(struct evbuffer *buf, struct queue *q,
    const struct smtpd *sd);

#endif
