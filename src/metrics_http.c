/*
 * metrics_http.c - the export of the counters (stats.c) and gauges in the
 * Prometheus text exposition format (version 0.0.4) over HTTP.
 *
 * The counters are read from stats.c at scrape time.  Gauges that
 * describe the current state (queue size and age, deliveries in flight,
 * inbound sessions, blocked clients, MTA-STS policies in the cache) come
 * from a callback that the caller hands in (main.c reads them from the
 * queue, smtpd and the MTA-STS manager): this module includes none of
 * them (issue #15: it sits above everything it reports on).
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
#include "dkim.h"
#include "log.h"
#include "metrics_http.h"
#include "stats.h"
#include "util.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "?"
#endif

#define METRICS_BACKLOG		16
#define METRICS_TIMEOUT		10	/* seconds per HTTP connection */
#define METRICS_MAX_HEADERS	8192
#define METRICS_MAX_BODY	1024
#define METRICS_CONTENT_TYPE	"text/plain; version=0.0.4; charset=utf-8"

static time_t start_time;		/* set once, before any thread */

/*
 * Rendering
 */

/* danerelay_smtpd_refused_total's reasons. */
static const struct {
	enum stat_counter counter;
	const char *label;
} refused_label[] = {
	{ S_REFUSED_RESERVED, "reserved" },
	{ S_REFUSED_COUNT, "connection_count" },
	{ S_REFUSED_RATE, "connection_rate" },
	{ S_REFUSED_SLOW, "min_data_rate" },
	{ S_REFUSED_UNAUTH_TIME, "unauth_session_time" },
	{ S_REFUSED_AUTH_BLOCKED, "auth_blocked" },
};
#define REFUSED_N	(sizeof(refused_label) / sizeof(refused_label[0]))

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

/* A counter family with one label: the values of labels[i] are v[i]. */
static void
family(struct evbuffer *b, const char *name, const char *help,
    const char *label, const char *const *labels,
    const unsigned long long *v, size_t n)
{
	size_t i;

	head(b, name, "counter", help);
	for (i = 0; i < n; i++)
		evbuffer_add_printf(b, "%s{%s=\"%s\"} %llu\n", name, label,
		    labels[i], v[i]);
}

/* Microseconds as seconds, exactly ("0.012345"). */
static void
add_seconds(struct evbuffer *b, unsigned long long us)
{
	evbuffer_add_printf(b, "%llu.%06llu", us / 1000000, us % 1000000);
}

/* The DNSSEC self-test (dnssec_check.h): 1 while the last check of
 * dnssec_check_name's DNSKEY RRset was secure, else 0. */
static void
render_dnssec(struct evbuffer *b, const struct metrics_gauges *g)
{
	if (!g->have_dnssec)
		return;
	one(b, "danerelay_dnssec_secure", "gauge",
	    "DNSSEC self-test: 1 when the DNSKEY RRset of dnssec_check_name "
	    "validated as secure at the last check, 0 when insecure or "
	    "failing.", g->dnssec_secure ? 1 : 0);
}

/* DKIM keys (issue #16): each key's age by domain and selector (bounded
 * by dkim_key_table; both are LDH names, safe as label values). */
static void
render_dkim(struct evbuffer *b, const struct metrics_gauges *g)
{
	struct dkim_key_info k;
	time_t now = time(NULL);
	size_t i;

	if (g->dkim == NULL)
		return;
	head(b, "danerelay_dkim_key_age_seconds", "gauge",
	    "Age of each DKIM key in dkim_key_table (since its key file was "
	    "written), by domain, selector and state (active, pending, old).");
	for (i = 0; dkim_table_key(g->dkim, i, &k) == 0; i++)
		evbuffer_add_printf(b, "danerelay_dkim_key_age_seconds{domain="
		    "\"%s\",selector=\"%s\",state=\"%s\"} %lld\n", k.domain,
		    k.selector, dkim_key_state_name(k.state),
		    now > k.created ? (long long)(now - k.created) : 0LL);
}

/*
 * A histogram's samples (one label set) from one snapshot: cumulative
 * buckets ("le" in seconds, +Inf last), _sum and _count, so that +Inf and
 * _count agree even while other threads add observations.  label is
 * "outcome=\"delivered\"" or NULL.  The HELP and TYPE lines are the
 * caller's (once per family).
 */
static void
render_hist(struct evbuffer *b, const char *name, const char *label,
    enum stat_hist h, const struct stats_snapshot *st)
{
	const struct stats_hist_snapshot *x = &st->hist[h];
	const unsigned long long *le;
	unsigned long long cum = 0;
	size_t nb = stats_hist_bounds(h, &le), i;
	const char *sep = label != NULL ? "," : "";

	if (label == NULL)
		label = "";
	for (i = 0; i < nb; i++) {
		cum += x->bucket[i];
		evbuffer_add_printf(b, "%s_bucket{%s%sle=\"", name, label, sep);
		add_seconds(b, le[i]);
		evbuffer_add_printf(b, "\"} %llu\n", cum);
	}
	cum += x->bucket[nb];
	evbuffer_add_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name,
	    label, sep, cum);
	evbuffer_add_printf(b, "%s_sum%s%s%s ", name, *label ? "{" : "",
	    label, *label ? "}" : "");
	add_seconds(b, x->sum_us);
	evbuffer_add_printf(b, "\n%s_count%s%s%s %llu\n", name,
	    *label ? "{" : "", label, *label ? "}" : "", cum);
}

/* The histograms, and the loop stall maximum. */
static void
render_histograms(struct evbuffer *b, const struct stats_snapshot *st)
{
	head(b, "danerelay_loop_stall_seconds", "histogram",
	    "How late a timer due every 5 ms ran on the event loop: the time "
	    "one callback (or loop iteration) kept the loop from reacting.");
	render_hist(b, "danerelay_loop_stall_seconds", NULL, SH_LOOP_STALL,
	    st);
	head(b, "danerelay_loop_stall_max_seconds", "gauge",
	    "The longest loop stall seen since the start.");
	evbuffer_add_printf(b, "danerelay_loop_stall_max_seconds ");
	add_seconds(b, st->stall_max_us);
	evbuffer_add_printf(b, "\n");

	head(b, "danerelay_delivery_latency_seconds", "histogram",
	    "Time from the inbound 250 to a recipient's final outcome "
	    "(delivered: the server's 2xx; bounced: permanent failure or "
	    "expiry).");
	render_hist(b, "danerelay_delivery_latency_seconds",
	    "outcome=\"delivered\"", SH_LATENCY_DELIVERED, st);
	render_hist(b, "danerelay_delivery_latency_seconds",
	    "outcome=\"bounced\"", SH_LATENCY_BOUNCED, st);

	head(b, "danerelay_tls_handshake_seconds", "histogram",
	    "Duration of successful outbound TLS handshakes (after the "
	    "STARTTLS reply, to the verified session).");
	render_hist(b, "danerelay_tls_handshake_seconds", NULL,
	    SH_TLS_HANDSHAKE, st);
}

/* Spool space and the inbound certificate (from the gauges callback). */
static void
render_health(struct evbuffer *b, const struct metrics_gauges *g)
{
	if (g->have_spool) {
		one(b, "danerelay_spool_free_bytes", "gauge",
		    "Free bytes on spool_dir's file system for the relay's "
		    "user (statvfs f_bavail).", g->spool_free_bytes);
		one(b, "danerelay_queue_minfree_bytes", "gauge",
		    "queue_minfree: below this many free spool bytes MAIL "
		    "is refused with 452.", g->queue_minfree);
	}
	if (g->have_cert) {
		head(b, "danerelay_smtpd_certificate_expiry_seconds", "gauge",
		    "notAfter of the inbound STARTTLS certificate "
		    "(tls_cert_file), seconds since the Unix epoch.");
		evbuffer_add_printf(b, "danerelay_smtpd_certificate_expiry_"
		    "seconds %lld\n", g->cert_not_after);
	}
}

void
metrics_render(struct evbuffer *b, metrics_gauges_fn *gauges, void *arg)
{
	struct metrics_gauges g;
	struct stats_snapshot st;
	size_t i, j;

	memset(&g, 0, sizeof(g));
	if (gauges != NULL)
		gauges(&g, arg);
	stats_read(&st);

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
	    st.counter[S_RECEIVED]);
	one(b, "danerelay_received_bytes_total", "counter",
	    "Size of the messages accepted, in bytes.",
	    st.counter[S_RECEIVED_BYTES]);
	one(b, "danerelay_smtpd_auth_failures_total", "counter",
	    "Failed SMTP AUTH attempts of clients.",
	    st.counter[S_AUTH_FAILED]);
	head(b, "danerelay_smtpd_refused_total", "counter",
	    "Clients outside allow_clients refused or disconnected by a "
	    "limit, by reason.");
	for (i = 0; i < REFUSED_N; i++)
		evbuffer_add_printf(b, "danerelay_smtpd_refused_total"
		    "{reason=\"%s\"} %llu\n", refused_label[i].label,
		    st.counter[refused_label[i].counter]);
	one(b, "danerelay_smtpd_auth_delayed_total", "counter",
	    "Failed SMTP AUTH replies delayed (smtpd_auth_failure_delay).",
	    st.counter[S_AUTH_DELAYED]);
	head(b, "danerelay_smtpd_auth_delay_seconds_total", "counter",
	    "Time failed SMTP AUTH replies were delayed, in all.");
	evbuffer_add_printf(b, "danerelay_smtpd_auth_delay_seconds_total ");
	add_seconds(b, st.counter[S_AUTH_DELAY_MS] * 1000);
	evbuffer_add_printf(b, "\n");
	if (g.have_smtpd) {
		one(b, "danerelay_smtpd_auth_blocked_clients", "gauge",
		    "Client addresses blocked now after too many failed SMTP "
		    "AUTH attempts (smtpd_auth_failure_limit).",
		    g.smtpd_auth_blocked);
		one(b, "danerelay_smtpd_sessions", "gauge",
		    "Inbound SMTP sessions open now.", g.smtpd_sessions);
	}

	/* outbound */
	family(b, "danerelay_recipients_delivered_total",
	    "Recipients accepted by a destination server, by how the TLS "
	    "session was authenticated (none = encrypted, not "
	    "authenticated).", "auth", stats_auth_label, st.delivered,
	    STAT_AUTH_N);
	one(b, "danerelay_recipients_deferred_total", "counter",
	    "Delivery attempts of a recipient that ended in a deferral.",
	    st.counter[S_RCPT_DEFERRED]);
	one(b, "danerelay_recipients_bounced_total", "counter",
	    "Recipients that failed for good (permanent error, policy, "
	    "expired); a DSN goes to the sender.",
	    st.counter[S_RCPT_BOUNCED]);
	family(b, "danerelay_tls_failures_total",
	    "Outbound TLS negotiation failures, by RFC 8460 result-type.",
	    "result_type", stats_tls_fail_label, st.tls_fail,
	    STATS_TLS_FAIL_N);
	one(b, "danerelay_smtpd_sender_rate_limited_total", "counter",
	    "Recipients refused (450 4.7.1) because their sender reached "
	    "sender_rate_limit.", st.counter[S_SENDER_RATE_LIMITED]);
	one(b, "danerelay_milter_failures_total", "counter",
	    "Milters that could not be reached, timed out or answered "
	    "nonsense (milter_default_action applied).",
	    st.counter[S_MILTER_FAILURES]);
	one(b, "danerelay_milter_rejected_total", "counter",
	    "Commands and messages refused by a milter (reject, tempfail, "
	    "a custom reply).", st.counter[S_MILTER_REJECTED]);
	one(b, "danerelay_milter_discarded_total", "counter",
	    "Messages a milter discarded (250, never queued).",
	    st.counter[S_MILTER_DISCARDED]);
	one(b, "danerelay_milter_held_total", "counter",
	    "Messages a milter quarantined (queued on hold).",
	    st.counter[S_MILTER_HELD]);
	one(b, "danerelay_tls_downgrade_refused_total", "counter",
	    "MX hosts refused by TLS memory: weaker TLS than the domain "
	    "was seen with (tls_memory).",
	    st.counter[S_TLS_DOWNGRADE_REFUSED]);
	one(b, "danerelay_site_throttle_pauses_total", "counter",
	    "Sites paused after a throttle reply (421 greeting, 4.7.x, "
	    "\"rate\", \"too many\" ...).", st.counter[S_SITE_PAUSES]);
	one(b, "danerelay_site_throttle_resumes_total", "counter",
	    "Throttle pauses of sites that ended.",
	    st.counter[S_SITE_RESUMES]);
	one(b, "danerelay_sites_paused", "gauge",
	    "Sites paused by a throttle reply now.",
	    st.counter[S_SITES_PAUSED]);
	one(b, "danerelay_tlsrpt_dropped_total", "counter",
	    "TLSRPT session counts dropped: memory full while the state "
	    "database could not be written.", st.counter[S_TLSRPT_DROPPED]);
	one(b, "danerelay_dnssec_bogus_total", "counter",
	    "DNS answers that failed DNSSEC validation (never used).",
	    st.counter[S_DNSSEC_BOGUS]);
	one(b, "danerelay_mta_sts_cache_policies", "gauge",
	    "MTA-STS policies in the cache.", g.sts_cache_policies < 0 ? 0 :
	    (unsigned long long)g.sts_cache_policies);

	render_dnssec(b, &g);
	render_dkim(b, &g);
	dkim_table_unref(g.dkim);

	head(b, "danerelay_recipients_by_level_total", "counter",
	    "Recipient outcomes of delivery attempts by the security level "
	    "the destination host was held to.");
	for (i = 0; i < STAT_LEVEL_N; i++)
		for (j = 0; j < STAT_OUT_N; j++)
			evbuffer_add_printf(b, "danerelay_recipients_by_level_"
			    "total{level=\"%s\",outcome=\"%s\"} %llu\n",
			    stats_level_label[i], stats_outcome_label[j],
			    st.by_level[i][j]);
	family(b, "danerelay_tlsrpt_deliveries_total",
	    "TLSRPT report deliveries to a rua destination by result (sent; "
	    "pending: failed, will be retried; failed: given up).", "result",
	    stats_rpt_label, st.tlsrpt, STATS_RPT_N);

	/* the event loop, latencies */
	render_histograms(b, &st);
	render_health(b, &g);

	/* the queue */
	if (!g.have_queue)
		return;
	one(b, "danerelay_queue_messages", "gauge",
	    "Messages in the queue.", g.queue_msgs);
	one(b, "danerelay_queue_held_messages", "gauge",
	    "Messages on hold by the operator.", g.queue_held);
	one(b, "danerelay_queue_pending_recipients", "gauge",
	    "Recipients not yet delivered or failed.", g.queue_pending);
	one(b, "danerelay_queue_oldest_message_age_seconds", "gauge",
	    "Age of the oldest message in the queue (0 when empty).",
	    g.queue_oldest_age);
	one(b, "danerelay_deliveries_in_flight", "gauge",
	    "Delivery attempts in progress.", g.in_flight);
}

/*
 * The HTTP listener
 */

struct metrics {
	int			 fd;
	struct listen_addr	 addr;
	struct evhttp		*http;
	metrics_gauges_fn	*gauges;
	void			*gauges_arg;
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
	metrics_render(b, m->gauges, m->gauges_arg);
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
metrics_start(struct metrics *m, struct event_base *base,
    metrics_gauges_fn *gauges, void *arg, char *err, size_t errlen)
{
	m->gauges = gauges;
	m->gauges_arg = arg;
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
