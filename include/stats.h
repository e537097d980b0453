/*
 * stats.h - the process-wide operational counters (layer 0: they call
 * nothing but the C library, libevent and log).
 *
 * Counting: the modules call the stats_* functions below at the point
 * where something happened (one line each).  The counters are C11
 * atomics: the counting functions (stats_inc() .. stats_observe(),
 * stats_level_outcome(), stats_tlsrpt_delivery()) may be called from
 * any thread (event loops and the workq pools'
 * threads) at the same time; they are cheap and safe to call in every
 * program that links the library (the CLI just never exports them).
 * The loop watch belongs to the loop it was started on.
 *
 * Loop stalls: stats_watch_loop() measures how long callbacks keep an
 * event loop from reacting (a timer every 5 ms and its lateness, see
 * stats.c) into a histogram.
 *
 * Reading: stats_read() copies every counter; metrics_http.c exports them
 * (with the gauges, which are not counters and are read from their
 * owners at scrape time) in the Prometheus text format.
 */
#ifndef DR_STATS_H
#define DR_STATS_H

#include <stddef.h>

struct event_base;

/* Plain counters (exported with a _total suffix). */
enum stat_counter {
	S_RECEIVED = 0,		/* messages accepted (250 after DATA) */
	S_RECEIVED_BYTES,	/* their size */
	S_RCPT_DEFERRED,	/* recipient attempts deferred */
	S_RCPT_BOUNCED,		/* recipients failed for good (5xx, policy,
				 * expired) */
	S_DNSSEC_BOGUS,		/* DNS answers that failed validation */
	S_AUTH_FAILED,		/* inbound SMTP AUTH failures */
	/* inbound clients refused by a limit (issue #12), exported as
	 * danerelay_smtpd_refused_total{reason=...} */
	S_REFUSED_RESERVED,	/* the rest is reserved for allow_clients */
	S_REFUSED_COUNT,	/* smtpd_client_connection_count_limit */
	S_REFUSED_RATE,		/* smtpd_client_connection_rate_limit */
	S_REFUSED_SLOW,		/* smtpd_min_data_rate */
	S_REFUSED_UNAUTH_TIME,	/* smtpd_unauth_session_timeout */
	S_REFUSED_AUTH_BLOCKED,	/* blocked after AUTH failures */
	S_AUTH_DELAYED,		/* failed AUTH replies delayed */
	S_AUTH_DELAY_MS,	/* and by how long in all, milliseconds */
	S_TLS_DOWNGRADE_REFUSED, /* hosts refused by TLS memory (issue #23):
				 * no STARTTLS, a failed handshake or an
				 * unverified chain where TLS was seen */
	S_SENDER_RATE_LIMITED,	/* RCPTs refused by sender_rate_limit */
	S_TLSRPT_DROPPED,	/* TLSRPT session counts dropped: the memory
				 * for them full while the database (SQLite
				 * or PostgreSQL) could not be written */
	S_MILTER_FAILURES,	/* milters unreachable, timed out or
				 * answering nonsense (issue #25) */
	S_MILTER_REJECTED,	/* commands and messages a milter refused
				 * (reject, tempfail, custom reply) */
	S_MILTER_DISCARDED,	/* messages a milter discarded */
	S_MILTER_HELD,		/* messages a milter quarantined */
	/* throttle pauses of sites (issue #24, connlimit.c) */
	S_SITE_PAUSES,		/* pauses begun */
	S_SITE_RESUMES,		/* pauses ended */
	S_SITES_PAUSED,		/* a gauge: paused now (added and taken) */
	S_NCOUNTERS
};

void stats_inc(enum stat_counter c);
void stats_add(enum stat_counter c, unsigned long long n);
unsigned long long stats_get(enum stat_counter c);

/*
 * Delivered recipients by how the TLS session that carried them was
 * authenticated: the first four are tls.h's enum tls_auth in its order.
 */
enum stat_auth {
	STAT_AUTH_NONE = 0,	/* encrypted, not authenticated */
	STAT_AUTH_DANE_TA,
	STAT_AUTH_DANE_EE,
	STAT_AUTH_WEBPKI,
	STAT_AUTH_CLEARTEXT,	/* no TLS */
	STAT_AUTH_N
};
extern const char *const stats_auth_label[STAT_AUTH_N];
void stats_delivered(enum stat_auth a);

/* An outbound TLS negotiation failed with this RFC 8460 result-type
 * ("starttls-not-supported", "certificate-expired", ...); the labels,
 * the last of which ("other") counts anything else. */
#define STATS_TLS_FAIL_N	12
extern const char *const stats_tls_fail_label[STATS_TLS_FAIL_N];
void stats_tls_failure(const char *result_type);

/*
 * Histograms: one implementation for all of them.  Each has fixed upper
 * bounds in microseconds (ascending; the bucket after the last bound is
 * +Inf), a count per bucket and a sum, all atomics: stats_observe() is a
 * short scan of the bounds and two relaxed atomic adds, lock-free, from
 * any thread.  The exposition makes the buckets cumulative.
 */
enum stat_hist {
	SH_LOOP_STALL = 0,	/* danerelay_loop_stall_seconds */
	SH_LATENCY_DELIVERED,	/* danerelay_delivery_latency_seconds
				 * {outcome="delivered"}: 250 to the server's
				 * 2xx for that recipient */
	SH_LATENCY_BOUNCED,	/* {outcome="bounced"}: 250 to the permanent
				 * failure (5xx, policy, expiry) */
	SH_TLS_HANDSHAKE,	/* danerelay_tls_handshake_seconds: outbound
				 * handshakes that succeeded */
	SH_N
};
#define STATS_HIST_MAXNB	20	/* finite buckets at most */
/* The finite upper bounds of h (microseconds) and their number. */
size_t stats_hist_bounds(enum stat_hist h, const unsigned long long **le_us);
/* One observation of usec microseconds into h. */
void stats_observe(enum stat_hist h, unsigned long long usec);

/* One loop stall observation (how late the watch timer ran), in
 * microseconds: SH_LOOP_STALL and the maximum.  Called by the loop
 * watch; public for tests.  The buckets' upper bounds (the last bucket,
 * STATS_STALL_NB, is +Inf). */
#define STATS_STALL_NB		10
extern const unsigned long long stats_stall_le_us[STATS_STALL_NB];
void stats_loop_stall(unsigned long long usec);

/*
 * Recipient outcomes of delivery attempts by the security level the
 * host was held to: danerelay_recipients_by_level_total{level,outcome}.
 * Both label sets are these fixed tables.
 */
enum stat_level {
	STAT_LEVEL_DANE = 0,	/* TLSA records applied (PTLS_DANE) */
	STAT_LEVEL_MTA_STS,	/* MTA-STS policy in enforce mode */
	STAT_LEVEL_VERIFY,	/* verify/secure: WebPKI by configuration */
	STAT_LEVEL_ENCRYPT,	/* mandatory TLS, unauthenticated */
	STAT_LEVEL_MAY,		/* opportunistic TLS */
	STAT_LEVEL_NONE,	/* cleartext by configuration */
	STAT_LEVEL_N
};
enum stat_outcome {
	STAT_OUT_DELIVERED = 0,
	STAT_OUT_DEFERRED,
	STAT_OUT_BOUNCED,
	STAT_OUT_N
};
extern const char *const stats_level_label[STAT_LEVEL_N];
extern const char *const stats_outcome_label[STAT_OUT_N];
void stats_level_outcome(enum stat_level l, enum stat_outcome o);

/* A TLSRPT report destination (rua URI) was handled: "sent", "pending"
 * (will be retried) or "failed" (given up); anything else is ignored.
 * danerelay_tlsrpt_deliveries_total{result}. */
#define STATS_RPT_N		3
extern const char *const stats_rpt_label[STATS_RPT_N];
void stats_tlsrpt_delivery(const char *state);

struct stats_watch;
/* Watch base for stalls until stats_watch_free() (before the base is
 * freed).  NULL (logged) if libevent could not make the timer. */
struct stats_watch *stats_watch_loop(struct event_base *base);
void stats_watch_free(struct stats_watch *w);

/* Everything counted, copied counter by counter. */
struct stats_hist_snapshot {
	unsigned long long bucket[STATS_HIST_MAXNB + 1];	/* not
						 * cumulative; [nb] is +Inf */
	unsigned long long sum_us;
};
struct stats_snapshot {
	unsigned long long counter[S_NCOUNTERS];
	unsigned long long delivered[STAT_AUTH_N];
	unsigned long long tls_fail[STATS_TLS_FAIL_N];
	unsigned long long by_level[STAT_LEVEL_N][STAT_OUT_N];
	unsigned long long tlsrpt[STATS_RPT_N];
	struct stats_hist_snapshot hist[SH_N];
	unsigned long long stall_max_us;
};
void stats_read(struct stats_snapshot *s);

/* Back to zero (tests). */
void stats_reset(void);

#endif
