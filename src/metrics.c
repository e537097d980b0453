/*
 * metrics.c - operational counters and their export in the Prometheus
 * text exposition format (version 0.0.4) over HTTP.
 *
 * The counters are process-wide integers bumped by the modules where
 * things happen (main.c: messages received; delivery.c: recipient
 * results and TLS failures; queue.c: expiry; resolver.c: bogus DNSSEC
 * answers; smtpd_session.c: AUTH failures; the MTA-STS cache sets its
 * size).  Gauges that describe the current state (queue size and age,
 * deliveries in flight, inbound sessions) are read at scrape time.
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

#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
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

/*
 * The counters
 */

static unsigned long long counters[M_NCOUNTERS];

/* Delivered recipients by how the session was authenticated. */
enum { AUTH_SLOT_CLEARTEXT = 4, AUTH_NSLOTS = 5 };
static unsigned long long delivered[AUTH_NSLOTS];
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
static unsigned long long tls_fail[TLS_FAIL_N];

static long long sts_cache_size;
static time_t start_time;

void
metrics_inc(enum metric_counter c)
{
	if ((unsigned)c < M_NCOUNTERS)
		counters[c]++;
}

void
metrics_add(enum metric_counter c, unsigned long long n)
{
	if ((unsigned)c < M_NCOUNTERS)
		counters[c] += n;
}

unsigned long long
metrics_get(enum metric_counter c)
{
	return (unsigned)c < M_NCOUNTERS ? counters[c] : 0;
}

void
metrics_delivery(enum dlv_status st, const struct tls_outcome *o)
{
	switch (st) {
	case DLV_SENT:
		if (o == NULL || !o->established)
			delivered[AUTH_SLOT_CLEARTEXT]++;
		else if ((unsigned)o->auth < AUTH_SLOT_CLEARTEXT)
			delivered[o->auth]++;
		else
			delivered[TLS_AUTH_NONE]++;
		break;
	case DLV_DEFER:
		counters[M_RCPT_DEFERRED]++;
		break;
	case DLV_FAIL:
		counters[M_RCPT_BOUNCED]++;
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
	tls_fail[i]++;
}

void
metrics_set_sts_cache_size(long long n)
{
	sts_cache_size = n < 0 ? 0 : n;
}

void
metrics_reset(void)
{
	memset(counters, 0, sizeof(counters));
	memset(delivered, 0, sizeof(delivered));
	memset(tls_fail, 0, sizeof(tls_fail));
	sts_cache_size = 0;
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
	    counters[M_RECEIVED]);
	one(b, "danerelay_received_bytes_total", "counter",
	    "Size of the messages accepted, in bytes.",
	    counters[M_RECEIVED_BYTES]);
	one(b, "danerelay_smtpd_auth_failures_total", "counter",
	    "Failed SMTP AUTH attempts of clients.", counters[M_AUTH_FAILED]);
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
		    "{auth=\"%s\"} %llu\n", auth_label[i], delivered[i]);
	one(b, "danerelay_recipients_deferred_total", "counter",
	    "Delivery attempts of a recipient that ended in a deferral.",
	    counters[M_RCPT_DEFERRED]);
	one(b, "danerelay_recipients_bounced_total", "counter",
	    "Recipients that failed for good (permanent error, policy, "
	    "expired); a DSN goes to the sender.", counters[M_RCPT_BOUNCED]);
	head(b, "danerelay_tls_failures_total", "counter",
	    "Outbound TLS negotiation failures, by RFC 8460 result-type.");
	for (i = 0; i < TLS_FAIL_N; i++)
		evbuffer_add_printf(b, "danerelay_tls_failures_total"
		    "{result_type=\"%s\"} %llu\n", tls_fail_label[i],
		    tls_fail[i]);
	one(b, "danerelay_dnssec_bogus_total", "counter",
	    "DNS answers that failed DNSSEC validation (never used).",
	    counters[M_DNSSEC_BOGUS]);
	one(b, "danerelay_mta_sts_cache_policies", "gauge",
	    "MTA-STS policies in the cache.",
	    (unsigned long long)sts_cache_size);

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
