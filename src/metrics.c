/*
 * metrics.c - operational counters and their export in the Prometheus
 * text exposition format (version 0.0.4) over HTTP.
 *
 * The counters are process-wide integers bumped by the modules where
 * things happen (main.c: messages received; delivery.c: recipient
 * results and TLS failures; queue.c: expiry; resolver.c: bogus DNSSEC
 * answers; smtpd_session.c: AUTH failures; the MTA-STS cache sets its
 * size).  They are C11 atomics (relaxed: each is an independent count),
 * so any thread - an event loop or a worker of the thread pools - may
 * bump them, and a scrape never sees a torn value.  Gauges that describe
 * the current state (queue size and age, deliveries in flight, inbound
 * sessions) are read at scrape time.
 *
 * Loop stalls: metrics_watch_loop() arms a timer on an event base every
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
 * The HTTP side is libevent's evhttp on one listening socket bound by
 * metrics_new() before privileges are dropped.  Only GET and HEAD of
 * /metrics are served; everything else gets 404/405.  Bounds: request
 * headers 8 KiB, body 1 KiB, 10 s per connection.  The listener is meant
 * for loopback (or a private monitoring network): it serves counters
 * only, no addresses or message data, but a non-loopback address is
 * logged as a warning.  libevent 2.1 has no connection limit of its own;
 * the kernel backlog (16) and the 10 s timeout bound what a local client
 * can hold open.
 *
 * No RFC is implemented; the format is Prometheus'
 * "exposition_formats.md" (text format 0.0.4): "# HELP", "# TYPE", one
 * sample per line, counters named *_total.
 */
#include <sys/types.h>
#include <sys/socket.h>
#ifdef __linux__
#include <sys/timerfd.h>
#endif

#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "queue.h"
#include "smtpd.h"
#include "spool.h"
#include "tls.h"
#include "util.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "?"
#endif

#define METRICS_BACKLOG		16
#define METRICS_TIMEOUT		10	/* seconds per HTTP connection */
#define METRICS_MAX_HEADERS	8192
#define METRICS_MAX_BODY	1024
#define METRICS_CONTENT_TYPE	"text/plain; version=0.0.4; charset=utf-8"
#define STALL_TICK_US		5000	/* loop watch timer: 200 wakeups/s */

/*
 * The counters
 */

typedef _Atomic unsigned long long counter_t;

#define CADD(c, n)	atomic_fetch_add_explicit(&(c), (n), \
			    memory_order_relaxed)
#define CGET(c)		atomic_load_explicit(&(c), memory_order_relaxed)
#define CSET(c, v)	atomic_store_explicit(&(c), (v), memory_order_relaxed)

static counter_t counters[M_NCOUNTERS];

/* Delivered recipients by how the session was authenticated. */
enum { AUTH_SLOT_CLEARTEXT = 4, AUTH_NSLOTS = 5 };
static counter_t delivered[AUTH_NSLOTS];
static const char *const auth_label[AUTH_NSLOTS] = {
	"none",		/* TLS_AUTH_NONE: encrypted, not authenticated */
	"dane-ta",	/* TLS_AUTH_DANE_TA */
	"dane-ee",	/* TLS_AUTH_DANE_EE */
	"webpki",	/* TLS_AUTH_WEBPKI */
	"cleartext",	/* no TLS */
};

/* RFC 8460 §4.3 result-types, and "other" for anything else. */
static const char *const tls_fail_label[] = {
	"starttls-not-supported", "certificate-host-mismatch",
	"certificate-expired", "certificate-not-trusted",
	"validation-failure", "tlsa-invalid", "dnssec-invalid",
	"dane-required", "sts-policy-fetch-error", "sts-policy-invalid",
	"sts-webpki-invalid", "other",
};
#define TLS_FAIL_N	(sizeof(tls_fail_label) / sizeof(tls_fail_label[0]))
static counter_t tls_fail[TLS_FAIL_N];

/* danerelay_smtpd_refused_total's reasons. */
static const struct {
	enum metric_counter counter;
	const char *label;
} refused_label[] = {
	{ M_REFUSED_RESERVED, "reserved" },
	{ M_REFUSED_COUNT, "connection_count" },
	{ M_REFUSED_RATE, "connection_rate" },
	{ M_REFUSED_SLOW, "min_data_rate" },
	{ M_REFUSED_UNAUTH_TIME, "unauth_session_time" },
	{ M_REFUSED_AUTH_BLOCKED, "auth_blocked" },
};
#define REFUSED_N	(sizeof(refused_label) / sizeof(refused_label[0]))

static _Atomic long long sts_cache_size;
static time_t start_time;		/* set once, before any thread */

/*
 * Loop stalls, in microseconds: upper bounds of the buckets (1-2-5 steps
 * from 1 ms to 1 s), the count per bucket (the last one is +Inf), sum
 * and maximum.
 */
static const unsigned long long stall_le_us[] = {
	1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000,
	1000000,
};
#define STALL_NB	(sizeof(stall_le_us) / sizeof(stall_le_us[0]))
static counter_t stall_bucket[STALL_NB + 1];
static counter_t stall_sum_us, stall_max_us;

void
metrics_inc(enum metric_counter c)
{
	if ((unsigned)c < M_NCOUNTERS)
		CADD(counters[c], 1);
}

void
metrics_add(enum metric_counter c, unsigned long long n)
{
	if ((unsigned)c < M_NCOUNTERS)
		CADD(counters[c], n);
}

unsigned long long
metrics_get(enum metric_counter c)
{
	return (unsigned)c < M_NCOUNTERS ? CGET(counters[c]) : 0;
}

void
metrics_delivery(enum dlv_status st, const struct tls_outcome *o)
{
	switch (st) {
	case DLV_SENT:
		if (o == NULL || !o->established)
			CADD(delivered[AUTH_SLOT_CLEARTEXT], 1);
		else if ((unsigned)o->auth < AUTH_SLOT_CLEARTEXT)
			CADD(delivered[o->auth], 1);
		else
			CADD(delivered[TLS_AUTH_NONE], 1);
		break;
	case DLV_DEFER:
		CADD(counters[M_RCPT_DEFERRED], 1);
		break;
	case DLV_FAIL:
		CADD(counters[M_RCPT_BOUNCED], 1);
		break;
	}
}

void
metrics_tls_failure(const char *result_type)
{
	size_t i;

	for (i = 0; i < TLS_FAIL_N - 1; i++)
		if (result_type != NULL &&
		    strcmp(result_type, tls_fail_label[i]) == 0)
			break;
	CADD(tls_fail[i], 1);
}

void
metrics_set_sts_cache_size(long long n)
{
	atomic_store_explicit(&sts_cache_size, n < 0 ? 0 : n,
	    memory_order_relaxed);
}

void
metrics_loop_stall(unsigned long long usec)
{
	unsigned long long max;
	size_t i;

	for (i = 0; i < STALL_NB && usec > stall_le_us[i]; i++)
		;
	CADD(stall_bucket[i], 1);
	CADD(stall_sum_us, usec);
	max = CGET(stall_max_us);
	while (usec > max && !atomic_compare_exchange_weak_explicit(
	    &stall_max_us, &max, usec, memory_order_relaxed,
	    memory_order_relaxed))
		;
}

void
metrics_reset(void)
{
	size_t i;

	for (i = 0; i < M_NCOUNTERS; i++)
		CSET(counters[i], 0);
	for (i = 0; i < AUTH_NSLOTS; i++)
		CSET(delivered[i], 0);
	for (i = 0; i < TLS_FAIL_N; i++)
		CSET(tls_fail[i], 0);
	for (i = 0; i <= STALL_NB; i++)
		CSET(stall_bucket[i], 0);
	CSET(stall_sum_us, 0);
	CSET(stall_max_us, 0);
	atomic_store_explicit(&sts_cache_size, 0, memory_order_relaxed);
}

/*
 * The loop watch
 */

struct metrics_watch {
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
watch_arm(struct metrics_watch *w)
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
	struct metrics_watch *w = arg;
	struct timespec now;
	unsigned long long expirations;
	long long late;

	if (w->tfd != -1 && read(w->tfd, &expirations,
	    sizeof(expirations)) != (ssize_t)sizeof(expirations))
		return;		/* not yet (EAGAIN) */
	clock_gettime(CLOCK_MONOTONIC, &now);
	late = (long long)(now.tv_sec - w->due.tv_sec) * 1000000 +
	    (now.tv_nsec - w->due.tv_nsec) / 1000;
	metrics_loop_stall(late > 0 ? (unsigned long long)late : 0);
	watch_arm(w);
}

struct metrics_watch *
metrics_watch_loop(struct event_base *base)
{
	struct metrics_watch *w = xcalloc(1, sizeof(*w));

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
		metrics_watch_free(w);
		return NULL;
	}
	if (w->tfd != -1)
		event_add(w->ev, NULL);
	watch_arm(w);
	return w;
}

void
metrics_watch_free(struct metrics_watch *w)
{
	if (w == NULL)
		return;
	if (w->ev != NULL)
		event_free(w->ev);
	if (w->tfd != -1)
		close(w->tfd);
	free(w);
}

/*
 * Rendering
 */

struct queue_stats {
	unsigned long long msgs, held, pending;
	time_t oldest;
};

static void
queue_stat(const struct spool_env *env, int active, void *arg)
{
	struct queue_stats *s = arg;
	size_t i;

	s->msgs++;
	if (env->hold)
		s->held++;
	for (i = 0; i < env->nrcpt; i++)
		if (env->rcpts[i].state == RCPT_PENDING)
			s->pending++;
	if (s->oldest == 0 || env->created < s->oldest)
		s->oldest = env->created;
}

static void
head(struct evbuffer *b, const char *name, const char *type,
    const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help,
	    name, type);
}

static void
one(struct evbuffer *b, const char *name, const char *type,
    const char *help, unsigned long long v)
{
	head(b, name, type, help);
	evbuffer_add_printf(b, "%s %llu\n", name, v);
}

/* Microseconds as seconds, exactly ("0.012345"). */
static void
add_seconds(struct evbuffer *b, unsigned long long us)
{
	evbuffer_add_printf(b, "%llu.%06llu", us / 1000000, us % 1000000);
}

/* The stall histogram: cumulative buckets from one snapshot, so +Inf
 * and _count agree even while other threads add samples. */
static void
render_stalls(struct evbuffer *b)
{
	unsigned long long n[STALL_NB + 1], cum = 0;
	size_t i;

	for (i = 0; i <= STALL_NB; i++)
		n[i] = CGET(stall_bucket[i]);
	head(b, "danerelay_loop_stall_seconds", "histogram",
	    "How late a timer due every 5 ms ran on the event loop: the time "
	    "one callback (or loop iteration) kept the loop from reacting.");
	for (i = 0; i < STALL_NB; i++) {
		cum += n[i];
		evbuffer_add_printf(b, "danerelay_loop_stall_seconds_bucket"
		    "{le=\"");
		add_seconds(b, stall_le_us[i]);
		evbuffer_add_printf(b, "\"} %llu\n", cum);
	}
	cum += n[STALL_NB];
	evbuffer_add_printf(b, "danerelay_loop_stall_seconds_bucket"
	    "{le=\"+Inf\"} %llu\n", cum);
	evbuffer_add_printf(b, "danerelay_loop_stall_seconds_sum ");
	add_seconds(b, CGET(stall_sum_us));
	evbuffer_add_printf(b, "\ndanerelay_loop_stall_seconds_count %llu\n",
	    cum);
	head(b, "danerelay_loop_stall_max_seconds", "gauge",
	    "The longest loop stall seen since the start.");
	evbuffer_add_printf(b, "danerelay_loop_stall_max_seconds ");
	add_seconds(b, CGET(stall_max_us));
	evbuffer_add_printf(b, "\n");
}

void
metrics_render(struct evbuffer *b, struct queue *q, const struct smtpd *sd)
{
	struct queue_stats qs;
	time_t now = time(NULL);
	size_t i;

	head(b, "danerelay_build_info", "gauge",
	    "Version of the running danerelayd.");
	evbuffer_add_printf(b, "danerelay_build_info{version=\"%s\"} 1\n",
	    PACKAGE_VERSION);
	one(b, "danerelay_start_time_seconds", "gauge",
	    "When danerelayd started, seconds since the Unix epoch.",
	    (unsigned long long)start_time);

	/* inbound */
	one(b, "danerelay_messages_received_total", "counter",
	    "Messages accepted from clients (committed to the spool).",
	    CGET(counters[M_RECEIVED]));
	one(b, "danerelay_received_bytes_total", "counter",
	    "Size of the messages accepted, in bytes.",
	    CGET(counters[M_RECEIVED_BYTES]));
	one(b, "danerelay_smtpd_auth_failures_total", "counter",
	    "Failed SMTP AUTH attempts of clients.",
	    CGET(counters[M_AUTH_FAILED]));
	head(b, "danerelay_smtpd_refused_total", "counter",
	    "Clients outside allow_clients refused or disconnected by a "
	    "limit, by reason.");
	for (i = 0; i < REFUSED_N; i++)
		evbuffer_add_printf(b, "danerelay_smtpd_refused_total"
		    "{reason=\"%s\"} %llu\n", refused_label[i].label,
		    CGET(counters[refused_label[i].counter]));
	one(b, "danerelay_smtpd_auth_delayed_total", "counter",
	    "Failed SMTP AUTH replies delayed (smtpd_auth_failure_delay).",
	    CGET(counters[M_AUTH_DELAYED]));
	head(b, "danerelay_smtpd_auth_delay_seconds_total", "counter",
	    "Time failed SMTP AUTH replies were delayed, in all.");
	evbuffer_add_printf(b, "danerelay_smtpd_auth_delay_seconds_total ");
	add_seconds(b, CGET(counters[M_AUTH_DELAY_MS]) * 1000);
	evbuffer_add_printf(b, "\n");
	if (sd != NULL)
		one(b, "danerelay_smtpd_auth_blocked_clients", "gauge",
		    "Client addresses blocked now after too many failed SMTP "
		    "AUTH attempts (smtpd_auth_failure_limit).",
		    (unsigned long long)smtpd_auth_blocked_clients(sd));
	if (sd != NULL)
		one(b, "danerelay_smtpd_sessions", "gauge",
		    "Inbound SMTP sessions open now.",
		    (unsigned long long)smtpd_sessions(sd));

	/* outbound */
	head(b, "danerelay_recipients_delivered_total", "counter",
	    "Recipients accepted by a destination server, by how the TLS "
	    "session was authenticated (none = encrypted, not "
	    "authenticated).");
	for (i = 0; i < AUTH_NSLOTS; i++)
		evbuffer_add_printf(b, "danerelay_recipients_delivered_total"
		    "{auth=\"%s\"} %llu\n", auth_label[i],
		    CGET(delivered[i]));
	one(b, "danerelay_recipients_deferred_total", "counter",
	    "Delivery attempts of a recipient that ended in a deferral.",
	    CGET(counters[M_RCPT_DEFERRED]));
	one(b, "danerelay_recipients_bounced_total", "counter",
	    "Recipients that failed for good (permanent error, policy, "
	    "expired); a DSN goes to the sender.",
	    CGET(counters[M_RCPT_BOUNCED]));
	head(b, "danerelay_tls_failures_total", "counter",
	    "Outbound TLS negotiation failures, by RFC 8460 result-type.");
	for (i = 0; i < TLS_FAIL_N; i++)
		evbuffer_add_printf(b, "danerelay_tls_failures_total"
		    "{result_type=\"%s\"} %llu\n", tls_fail_label[i],
		    CGET(tls_fail[i]));
	one(b, "danerelay_dnssec_bogus_total", "counter",
	    "DNS answers that failed DNSSEC validation (never used).",
	    CGET(counters[M_DNSSEC_BOGUS]));
	one(b, "danerelay_mta_sts_cache_policies", "gauge",
	    "MTA-STS policies in the cache.", (unsigned long long)
	    atomic_load_explicit(&sts_cache_size, memory_order_relaxed));

	/* the event loop */
	render_stalls(b);

	/* the queue */
	if (q == NULL)
		return;
	memset(&qs, 0, sizeof(qs));
	queue_foreach(q, queue_stat, &qs);
	one(b, "danerelay_queue_messages", "gauge",
	    "Messages in the queue.", qs.msgs);
	one(b, "danerelay_queue_held_messages", "gauge",
	    "Messages on hold by the operator.", qs.held);
	one(b, "danerelay_queue_pending_recipients", "gauge",
	    "Recipients not yet delivered or failed.", qs.pending);
	one(b, "danerelay_queue_oldest_message_age_seconds", "gauge",
	    "Age of the oldest message in the queue (0 when empty).",
	    qs.msgs && now > qs.oldest ? (unsigned long long)(now - qs.oldest) :
	    0);
	one(b, "danerelay_deliveries_in_flight", "gauge",
	    "Delivery attempts in progress.",
	    (unsigned long long)queue_active(q));
}

/*
 * The HTTP listener
 */

struct metrics {
	int			 fd;
	struct listen_addr	 addr;
	struct evhttp		*http;
	struct queue		*q;
	struct smtpd		*sd;
};

static int
is_loopback(const struct listen_addr *la)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&la->ss;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&la->ss;

	if (la->ss.ss_family == AF_INET)
		return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	return IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
}

struct metrics *
metrics_new(const struct config *cf, char *err, size_t errlen)
{
	struct metrics *m;
	int on = 1;

	if (cf->metrics_listen == NULL) {
		snprintf(err, errlen, "metrics_listen is not set");
		return NULL;
	}
	m = xcalloc(1, sizeof(*m));
	m->fd = -1;
	if (listen_addr_parse(cf->metrics_listen, 0, &m->addr) == -1 ||
	    ((struct sockaddr_in *)&m->addr.ss)->sin_port == 0) {
		snprintf(err, errlen, "metrics_listen: bad address \"%s\" "
		    "(want address:port)", cf->metrics_listen);
		goto fail;
	}
	if (!is_loopback(&m->addr))
		log_warnx("metrics_listen %s is not a loopback address: "
		    "everyone who can reach it can read the counters",
		    m->addr.text);
	m->fd = socket(m->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (m->fd == -1) {
		snprintf(err, errlen, "metrics_listen %s: socket: %s",
		    m->addr.text, strerror(errno));
		goto fail;
	}
	(void)setsockopt(m->fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (m->addr.ss.ss_family == AF_INET6)
		(void)setsockopt(m->fd, IPPROTO_IPV6, IPV6_V6ONLY, &on,
		    sizeof(on));
	if (bind(m->fd, (struct sockaddr *)&m->addr.ss, m->addr.len) == -1 ||
	    listen(m->fd, METRICS_BACKLOG) == -1) {
		snprintf(err, errlen, "metrics_listen %s: %s", m->addr.text,
		    strerror(errno));
		goto fail;
	}
	return m;
fail:
	metrics_free(m);
	return NULL;
}

static void
reply_text(struct evhttp_request *req, int code, const char *reason,
    const char *text)
{
	struct evbuffer *b = evbuffer_new();

	if (b == NULL) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain; charset=utf-8");
	evbuffer_add_printf(b, "%s\n", text);
	evhttp_send_reply(req, code, reason, b);
	evbuffer_free(b);
}

/* GET or HEAD /metrics; the path only, no query strings. */
static void
on_metrics(struct evhttp_request *req, void *arg)
{
	struct metrics *m = arg;
	struct evbuffer *b;
	struct evkeyvalq *oh = evhttp_request_get_output_headers(req);

	if ((b = evbuffer_new()) == NULL) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	metrics_render(b, m->q, m->sd);
	evhttp_add_header(oh, "Content-Type", METRICS_CONTENT_TYPE);
	evhttp_add_header(oh, "Cache-Control", "no-store");
	/* evhttp sends only the headers for HEAD */
	evhttp_send_reply(req, HTTP_OK, "OK", b);
	evbuffer_free(b);
}

static void
on_other(struct evhttp_request *req, void *arg)
{
	reply_text(req, HTTP_NOTFOUND, "Not Found",
	    "danerelayd: only /metrics is served here");
}

int
metrics_start(struct metrics *m, struct event_base *base, struct queue *q,
    struct smtpd *sd, char *err, size_t errlen)
{
	m->q = q;
	m->sd = sd;
	if ((m->http = evhttp_new(base)) == NULL) {
		snprintf(err, errlen, "evhttp_new failed");
		return -1;
	}
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_timeout(m->http, METRICS_TIMEOUT);
	evhttp_set_max_headers_size(m->http, METRICS_MAX_HEADERS);
	evhttp_set_max_body_size(m->http, METRICS_MAX_BODY);
	if (evhttp_set_cb(m->http, "/metrics", on_metrics, m) != 0) {
		snprintf(err, errlen, "evhttp_set_cb failed");
		return -1;
	}
	evhttp_set_gencb(m->http, on_other, m);
	if (evhttp_accept_socket(m->http, m->fd) != 0) {
		snprintf(err, errlen, "metrics_listen %s: cannot accept",
		    m->addr.text);
		return -1;
	}
	m->fd = -1;	/* evhttp owns and closes it now */
	if (start_time == 0)
		start_time = time(NULL);
	log_info("metrics on http://%s/metrics", m->addr.text);
	return 0;
}

const char *
metrics_address(const struct metrics *m)
{
	return m->addr.text;
}

void
metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	if (m->http != NULL)
		evhttp_free(m->http);
	if (m->fd != -1)
		close(m->fd);
	free(m);
}
