/*
 * stats.c - the process-wide operational counters, and the loop watch
 * that measures event loop stalls into a histogram.
 *
 * The counters are bumped by the modules where things happen (main.c:
 * messages received; delivery.c: recipient results and TLS failures;
 * queue.c: expiry; resolver.c: bogus DNSSEC answers; smtpd.c and
 * smtpd_session.c: AUTH failures and refusals).  They are C11 atomics
 * (relaxed: each is an independent count), so any thread - an event loop
 * or a worker of the thread pools - may bump them, and a reader never
 * sees a torn value.  metrics_http.c exports them; the gauges that describe
 * the current state (queue, sessions, MTA-STS cache) are not kept here
 * but read from their owners at scrape time.
 *
 * Loop stalls: stats_watch_loop() arms a timer on an event base every
 * STALL_TICK and measures how late it runs (CLOCK_MONOTONIC).  libevent
 * 2.1 has no hook around each callback (evwatch came in 2.2), and a
 * timer that is due while a callback holds the loop can only run once
 * that callback (and the rest of that loop iteration) returned, so its
 * lateness is exactly the time the loop could not react to anything:
 * for a single long callback, the part of it after the tick was due.  A
 * stall longer than the tick is therefore seen nearly whole (at least
 * its length minus one tick) and once; shorter ones are sampled.  The
 * timer is re-armed from the moment it ran, so one long stall gives one
 * observation, not one per missed tick.  The tick is a timerfd (Linux)
 * read as an ordinary fd event: libevent 2.1's own timers run on
 * CLOCK_MONOTONIC_COARSE and epoll's millisecond timeouts, which would
 * add up to 4 ms of noise to every sample; elsewhere a libevent timer is
 * the fallback.  The smallest bucket is 1 ms.  The samples
 * go into danerelay_loop_stall_seconds (a Prometheus histogram) and the
 * largest into danerelay_loop_stall_max_seconds; every loop of the
 * process feeds the same histogram.
 *
 * Histograms (stats_observe()): one implementation for every histogram,
 * a table of upper bounds per histogram and atomic bucket counters, so
 * an observation from any thread costs a scan of at most
 * STATS_HIST_MAXNB bounds and two relaxed atomic adds, no lock.  Besides
 * the loop stalls: the time from the inbound 250 to a recipient's final
 * outcome (delivery.c, queue.c), and outbound TLS handshakes
 * (smtp_client.c).  Label values of every counter family here come from
 * the fixed tables below, never from input (bounded cardinality).
 *
 * Moved out of the exposition (metrics_http.c), so that counting modules depend
 * on nothing above the base layer.
 */
#include <sys/types.h>
#ifdef __linux__
#include <sys/timerfd.h>
#endif

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "stats.h"
#include "util.h"

#define STALL_TICK_US		5000	/* loop watch timer: 200 wakeups/s */

/*
 * The counters
 */

typedef _Atomic unsigned long long counter_t;

#define CADD(c, n)	atomic_fetch_add_explicit(&(c), (n), \
			    memory_order_relaxed)
#define CGET(c)		atomic_load_explicit(&(c), memory_order_relaxed)
#define CSET(c, v)	atomic_store_explicit(&(c), (v), memory_order_relaxed)

static counter_t counters[S_NCOUNTERS];

/* Delivered recipients by how the session was authenticated. */
static counter_t delivered[STAT_AUTH_N];
const char *const stats_auth_label[STAT_AUTH_N] = {
	"none",		/* TLS_AUTH_NONE: encrypted, not authenticated */
	"dane-ta",	/* TLS_AUTH_DANE_TA */
	"dane-ee",	/* TLS_AUTH_DANE_EE */
	"webpki",	/* TLS_AUTH_WEBPKI */
	"cleartext",	/* no TLS */
};

/* RFC 8460 §4.3 result-types, and "other" for anything else. */
const char *const stats_tls_fail_label[STATS_TLS_FAIL_N] = {
	"starttls-not-supported", "certificate-host-mismatch",
	"certificate-expired", "certificate-not-trusted",
	"validation-failure", "tlsa-invalid", "dnssec-invalid",
	"dane-required", "sts-policy-fetch-error", "sts-policy-invalid",
	"sts-webpki-invalid", "other",
};
static counter_t tls_fail[STATS_TLS_FAIL_N];

/*
 * Histograms, in microseconds: upper bounds of the finite buckets, the
 * count per bucket (the last one is +Inf) and the sum.  The count of
 * observations is the sum of the buckets (the exposition's +Inf).
 */
struct hist {
	const unsigned long long *le_us;
	size_t nb;
	counter_t bucket[STATS_HIST_MAXNB + 1];
	counter_t sum_us;
};

/* Loop stalls: 1-2-5 steps from 1 ms to 1 s. */
const unsigned long long stats_stall_le_us[STATS_STALL_NB] = {
	1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000,
	1000000,
};
/* 250 to the final outcome: 10 ms to 5 days (queue_lifetime). */
static const unsigned long long latency_le_us[] = {
	10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,
	5000000, 10000000, 30000000, 60000000, 300000000ULL, 900000000ULL,
	3600000000ULL, 14400000000ULL, 86400000000ULL, 432000000000ULL,
};
/* Outbound TLS handshakes: 1 ms to 10 s. */
static const unsigned long long handshake_le_us[] = {
	1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000,
};
#define NB(a)	(sizeof(a) / sizeof((a)[0]))

static struct hist hists[SH_N] = {
	[SH_LOOP_STALL] = { stats_stall_le_us, STATS_STALL_NB, {0}, 0 },
	[SH_LATENCY_DELIVERED] = { latency_le_us, NB(latency_le_us), {0}, 0 },
	[SH_LATENCY_BOUNCED] = { latency_le_us, NB(latency_le_us), {0}, 0 },
	[SH_TLS_HANDSHAKE] = { handshake_le_us, NB(handshake_le_us), {0}, 0 },
};
_Static_assert(NB(latency_le_us) <= STATS_HIST_MAXNB, "latency buckets");
_Static_assert(NB(handshake_le_us) <= STATS_HIST_MAXNB, "handshake buckets");
_Static_assert(STATS_STALL_NB <= STATS_HIST_MAXNB, "stall buckets");

static counter_t stall_max_us;

/* Recipient outcomes by security level (stats.h's enums, in order). */
const char *const stats_level_label[STAT_LEVEL_N] = {
	"dane", "mta-sts", "verify", "encrypt", "may", "none",
};
const char *const stats_outcome_label[STAT_OUT_N] = {
	"delivered", "deferred", "bounced",
};
static counter_t by_level[STAT_LEVEL_N][STAT_OUT_N];

/* TLSRPT destinations by result. */
const char *const stats_rpt_label[STATS_RPT_N] = {
	"sent", "pending", "failed",
};
static counter_t tlsrpt[STATS_RPT_N];

void
stats_inc(enum stat_counter c)
{
	if ((unsigned)c < S_NCOUNTERS)
		CADD(counters[c], 1);
}

void
stats_add(enum stat_counter c, unsigned long long n)
{
	if ((unsigned)c < S_NCOUNTERS)
		CADD(counters[c], n);
}

unsigned long long
stats_get(enum stat_counter c)
{
	return (unsigned)c < S_NCOUNTERS ? CGET(counters[c]) : 0;
}

void
stats_delivered(enum stat_auth a)
{
	CADD(delivered[(unsigned)a < STAT_AUTH_N ? a : STAT_AUTH_NONE], 1);
}

void
stats_tls_failure(const char *result_type)
{
	size_t i;

	for (i = 0; i < STATS_TLS_FAIL_N - 1; i++)
		if (result_type != NULL &&
		    strcmp(result_type, stats_tls_fail_label[i]) == 0)
			break;
	CADD(tls_fail[i], 1);
}

size_t
stats_hist_bounds(enum stat_hist h, const unsigned long long **le_us)
{
	if ((unsigned)h >= SH_N) {
		*le_us = NULL;
		return 0;
	}
	*le_us = hists[h].le_us;
	return hists[h].nb;
}

/* The first bucket whose bound is >= usec (a value on a bound belongs
 * to that bound's bucket: Prometheus' "le"). */
void
stats_observe(enum stat_hist h, unsigned long long usec)
{
	struct hist *x;
	size_t i;

	if ((unsigned)h >= SH_N)
		return;
	x = &hists[h];
	for (i = 0; i < x->nb && usec > x->le_us[i]; i++)
		;
	CADD(x->bucket[i], 1);
	CADD(x->sum_us, usec);
}

void
stats_loop_stall(unsigned long long usec)
{
	unsigned long long max;

	stats_observe(SH_LOOP_STALL, usec);
	max = CGET(stall_max_us);
	while (usec > max && !atomic_compare_exchange_weak_explicit(
	    &stall_max_us, &max, usec, memory_order_relaxed,
	    memory_order_relaxed))
		;
}

void
stats_level_outcome(enum stat_level l, enum stat_outcome o)
{
	if ((unsigned)l < STAT_LEVEL_N && (unsigned)o < STAT_OUT_N)
		CADD(by_level[l][o], 1);
}

void
stats_tlsrpt_delivery(const char *state)
{
	size_t i;

	for (i = 0; state != NULL && i < STATS_RPT_N; i++)
		if (strcmp(state, stats_rpt_label[i]) == 0) {
			CADD(tlsrpt[i], 1);
			return;
		}
}

void
stats_read(struct stats_snapshot *s)
{
	size_t i, j;

	memset(s, 0, sizeof(*s));
	for (i = 0; i < S_NCOUNTERS; i++)
		s->counter[i] = CGET(counters[i]);
	for (i = 0; i < STAT_AUTH_N; i++)
		s->delivered[i] = CGET(delivered[i]);
	for (i = 0; i < STATS_TLS_FAIL_N; i++)
		s->tls_fail[i] = CGET(tls_fail[i]);
	for (i = 0; i < STAT_LEVEL_N; i++)
		for (j = 0; j < STAT_OUT_N; j++)
			s->by_level[i][j] = CGET(by_level[i][j]);
	for (i = 0; i < STATS_RPT_N; i++)
		s->tlsrpt[i] = CGET(tlsrpt[i]);
	for (i = 0; i < SH_N; i++) {
		for (j = 0; j <= hists[i].nb; j++)
			s->hist[i].bucket[j] = CGET(hists[i].bucket[j]);
		s->hist[i].sum_us = CGET(hists[i].sum_us);
	}
	s->stall_max_us = CGET(stall_max_us);
}

void
stats_reset(void)
{
	size_t i, j;

	for (i = 0; i < S_NCOUNTERS; i++)
		CSET(counters[i], 0);
	for (i = 0; i < STAT_AUTH_N; i++)
		CSET(delivered[i], 0);
	for (i = 0; i < STATS_TLS_FAIL_N; i++)
		CSET(tls_fail[i], 0);
	for (i = 0; i < STAT_LEVEL_N; i++)
		for (j = 0; j < STAT_OUT_N; j++)
			CSET(by_level[i][j], 0);
	for (i = 0; i < STATS_RPT_N; i++)
		CSET(tlsrpt[i], 0);
	for (i = 0; i < SH_N; i++) {
		for (j = 0; j <= STATS_HIST_MAXNB; j++)
			CSET(hists[i].bucket[j], 0);
		CSET(hists[i].sum_us, 0);
	}
	CSET(stall_max_us, 0);
}

/*
 * The loop watch
 */

struct stats_watch {
	struct event	*ev;
	int		 tfd;		/* timerfd, or -1: a libevent timer */
	struct timespec	 due;
};

static void
ts_add_us(struct timespec *t, long us)
{
	t->tv_sec += us / 1000000;
	t->tv_nsec += (us % 1000000) * 1000;
	if (t->tv_nsec >= 1000000000) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000;
	}
}

/* The next tick, STALL_TICK after now. */
static void
watch_arm(struct stats_watch *w)
{
	struct timeval tv = { 0, STALL_TICK_US };

	clock_gettime(CLOCK_MONOTONIC, &w->due);
	ts_add_us(&w->due, STALL_TICK_US);
#ifdef __linux__
	if (w->tfd != -1) {
		struct itimerspec its;

		memset(&its, 0, sizeof(its));
		its.it_value = w->due;
		if (timerfd_settime(w->tfd, TFD_TIMER_ABSTIME, &its,
		    NULL) == 0)
			return;
		log_warnx("metrics: timerfd_settime: %s", strerror(errno));
	}
#endif
	evtimer_add(w->ev, &tv);
}

static void
watch_tick(evutil_socket_t fd, short what, void *arg)
{
	struct stats_watch *w = arg;
	struct timespec now;
	unsigned long long expirations;
	long long late;

	if (w->tfd != -1 && read(w->tfd, &expirations,
	    sizeof(expirations)) != (ssize_t)sizeof(expirations))
		return;		/* not yet (EAGAIN) */
	clock_gettime(CLOCK_MONOTONIC, &now);
	late = (long long)(now.tv_sec - w->due.tv_sec) * 1000000 +
	    (now.tv_nsec - w->due.tv_nsec) / 1000;
	stats_loop_stall(late > 0 ? (unsigned long long)late : 0);
	watch_arm(w);
}

struct stats_watch *
stats_watch_loop(struct event_base *base)
{
	struct stats_watch *w = xcalloc(1, sizeof(*w));

	w->tfd = -1;
#ifdef __linux__
	w->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
#endif
	if (w->tfd != -1)
		w->ev = event_new(base, w->tfd, EV_READ | EV_PERSIST,
		    watch_tick, w);
	else
		w->ev = evtimer_new(base, watch_tick, w);
	if (w->ev == NULL) {
		log_warnx("metrics: cannot watch the event loop for stalls");
		stats_watch_free(w);
		return NULL;
	}
	if (w->tfd != -1)
		event_add(w->ev, NULL);
	watch_arm(w);
	return w;
}

void
stats_watch_free(struct stats_watch *w)
{
	if (w == NULL)
		return;
	if (w->ev != NULL)
		event_free(w->ev);
	if (w->tfd != -1)
		close(w->tfd);
	free(w);
}

