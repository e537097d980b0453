/*
 * test_metrics.c - src/stats.c (counters) and src/metrics_http.c (the exposition
 * text, Prometheus text format 0.0.4) without a daemon; metrics_new()
 * refusals.
 * The HTTP listener with a real daemon is tests/scenario/metrics.t.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "config.h"
#include "delivery.h"
#include "metrics_http.h"
#include "spool.h"
#include "stats.h"
#include "tls.h"
#include "util.h"
#include "t.h"

/* The gauges callback: only the MTA-STS cache (no queue, no smtpd). */
static long long sts_policies;

static void
gauges(struct metrics_gauges *g, void *arg)
{
	g->sts_cache_policies = sts_policies;
}

/* The exposition with these gauges as a NUL-terminated string (caller
 * frees). */
static char *
render_with(metrics_gauges_fn *fn)
{
	struct evbuffer *b = evbuffer_new();
	size_t n;
	char *s;

	metrics_render(b, fn, NULL);
	n = evbuffer_get_length(b);
	s = xmalloc(n + 1);
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	evbuffer_free(b);
	return s;
}

static char *
render(void)
{
	return render_with(gauges);
}

/* 1 if the text has this exact line. */
static int
has_line(const char *text, const char *line)
{
	size_t len = strlen(line);
	const char *p = text;

	while ((p = strstr(p, line)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[len] == '\n')
			return 1;
		p++;
	}
	return 0;
}

/* A histogram's samples are name_bucket, name_sum and name_count. */
static int
sample_of(const char *name, const char *typed, const char *type)
{
	static const char *const sfx[] = { "_bucket", "_sum", "_count" };
	size_t n = strlen(typed), i;

	if (strcmp(name, typed) == 0)
		return strcmp(type, "histogram") != 0;
	if (strcmp(type, "histogram") != 0 || strncmp(name, typed, n) != 0)
		return 0;
	for (i = 0; i < 3; i++)
		if (strcmp(name + n, sfx[i]) == 0)
			return 1;
	return 0;
}

/* Every sample line is "name[{labels}] value" after its HELP and TYPE. */
static int
well_formed(const char *text)
{
	char *copy = xstrdup(text), *line, *save = NULL;
	char typed[128] = "", type[32] = "";
	int ok = 1;

	for (line = strtok_r(copy, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		char name[128];
		size_t n;

		if (strncmp(line, "# HELP ", 7) == 0)
			continue;
		if (strncmp(line, "# TYPE ", 7) == 0) {
			n = strcspn(line + 7, " ");
			if (n >= sizeof(typed))
				ok = 0;
			else {
				memcpy(typed, line + 7, n);
				typed[n] = '\0';
				snprintf(type, sizeof(type), "%s",
				    line + 7 + n + (line[7 + n] == ' '));
			}
			continue;
		}
		n = strcspn(line, "{ ");
		if (n == 0 || n >= sizeof(name)) {
			ok = 0;
			continue;
		}
		memcpy(name, line, n);
		name[n] = '\0';
		if (!sample_of(name, typed, type)) {
			fprintf(stderr, "sample without its TYPE: %s\n", line);
			ok = 0;
		}
	}
	free(copy);
	return ok;
}

/*
 * The loop stall histogram: cumulative buckets with le="1 ms".."1 s" and
 * +Inf, _sum and _count in seconds, and the max gauge.
 */
static void
test_stalls(void)
{
	char *s;

	stats_reset();
	s = render();
	CHECK(well_formed(s));
	CHECK(has_line(s, "# TYPE danerelay_loop_stall_seconds histogram"));
	CHECK(has_line(s, "danerelay_loop_stall_seconds_bucket"
	    "{le=\"0.001000\"} 0"));
	CHECK(has_line(s, "danerelay_loop_stall_seconds_bucket"
	    "{le=\"+Inf\"} 0"));
	CHECK(has_line(s, "danerelay_loop_stall_seconds_sum 0.000000"));
	CHECK(has_line(s, "danerelay_loop_stall_seconds_count 0"));
	CHECK(has_line(s, "# TYPE danerelay_loop_stall_max_seconds gauge"));
	CHECK(has_line(s, "danerelay_loop_stall_max_seconds 0.000000"));
	free(s);

	stats_loop_stall(0);		/* on time */
	stats_loop_stall(1000);		/* exactly 1 ms: le="0.001" */
	stats_loop_stall(1001);
	stats_loop_stall(45000);	/* 45 ms */
	stats_loop_stall(1000000);	/* 1 s: the last finite bucket */
	stats_loop_stall(2500000);	/* 2.5 s: +Inf only */
	stats_loop_stall(3000);
	s = render();
	CHECK(well_formed(s));
	CHECK(has_line(s, "danerelay_loop_stall_seconds_bucket"
	    "{le=\"0.001000\"} 2"));
	CHECK(has_line(s, "danerelay_loop_stall_seconds_bucket"
	    "{le=\"0.002000\"} 3"));
	CHECK(has_line(s, "danerelay_loop_stall_seconds_bucket"
	    "{le=\"0.005000\"} 4"));
	CHECK(has_line(s, "danerelay_loop_stall_seconds_bucket"
	    "{le=\"0.020000\"} 4"));
	CHECK(has_line(s, "danerelay_loop_stall_seconds_bucket"
	    "{le=\"0.050000\"} 5"));
	CHECK(has_line(s, "danerelay_loop_stall_seconds_bucket"
	    "{le=\"0.500000\"} 5"));
	CHECK(has_line(s, "danerelay_loop_stall_seconds_bucket"
	    "{le=\"1.000000\"} 6"));
	CHECK(has_line(s, "danerelay_loop_stall_seconds_bucket"
	    "{le=\"+Inf\"} 7"));
	CHECK(has_line(s, "danerelay_loop_stall_seconds_count 7"));
	/* 0 + 1000 + 1001 + 45000 + 1000000 + 2500000 + 3000 us */
	CHECK(has_line(s, "danerelay_loop_stall_seconds_sum 3.550001"));
	CHECK(has_line(s, "danerelay_loop_stall_max_seconds 2.500000"));
	/* the buckets come in order, +Inf last, then _sum and _count */
	CHECK(strstr(s, "{le=\"0.001000\"}") < strstr(s, "{le=\"1.000000\"}"));
	CHECK(strstr(s, "{le=\"1.000000\"}") < strstr(s, "{le=\"+Inf\"}"));
	CHECK(strstr(s, "{le=\"+Inf\"}") <
	    strstr(s, "danerelay_loop_stall_seconds_sum"));
	free(s);

	/* the max only grows */
	stats_loop_stall(7000);
	s = render();
	CHECK(has_line(s, "danerelay_loop_stall_max_seconds 2.500000"));
	free(s);
	stats_reset();
}

/* The watch on a real loop: a callback that holds the loop for 60 ms is
 * seen as a stall of at least about that (and under a second). */
static struct event_base *wbase;

static void
hog(evutil_socket_t fd, short what, void *arg)
{
	struct timespec t = { 0, 60 * 1000 * 1000 };

	nanosleep(&t, NULL);
}

static void
stop_loop(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(wbase);
}

static void
test_watch(void)
{
	struct stats_watch *w;
	struct timeval t1 = { 0, 20000 }, t2 = { 0, 200000 };
	struct event *e1, *e2;
	char *s, *p;
	double max;

	stats_reset();
	wbase = event_base_new();
	w = stats_watch_loop(wbase);
	CHECK(w != NULL);
	e1 = evtimer_new(wbase, hog, NULL);
	e2 = evtimer_new(wbase, stop_loop, NULL);
	evtimer_add(e1, &t1);
	evtimer_add(e2, &t2);
	event_base_dispatch(wbase);
	s = render();
#define MAXLINE "\ndanerelay_loop_stall_max_seconds "
	p = strstr(s, MAXLINE);
	CHECK(p != NULL);
	max = p != NULL ? strtod(p + strlen(MAXLINE), NULL) : 0;
	/* 60 ms minus at most one 5 ms tick; a busy machine only adds */
	CHECK(max >= 0.054 && max < 1.0);
	if (!(max >= 0.054 && max < 1.0))
		fprintf(stderr, "stall max %f\n", max);
	/* ticks ran on time before and after it (200 ms: about 30) */
	CHECK(strstr(s, "danerelay_loop_stall_seconds_bucket"
	    "{le=\"0.001000\"} 0\n") == NULL);
	free(s);
	stats_watch_free(w);
	stats_watch_free(NULL);
	event_free(e1);
	event_free(e2);
	event_base_free(wbase);
	stats_reset();
}


/*
 * The one histogram implementation, for every histogram: a value equal
 * to a bound is in that bound's bucket, one microsecond more is in the
 * next (the last finite bound's "next" is +Inf); the sum is exact.
 */
static void
test_hist_edges(void)
{
	struct stats_snapshot st;
	const unsigned long long *le;
	size_t nb, k, i;
	int h, ok;

	for (h = 0; h < SH_N; h++) {
		nb = stats_hist_bounds((enum stat_hist)h, &le);
		CHECK(nb > 0 && nb <= STATS_HIST_MAXNB && le != NULL);
		for (i = 1; i < nb; i++)
			CHECK(le[i - 1] < le[i]);	/* ascending */
		for (k = 0; k < nb; k++) {
			stats_reset();
			stats_observe((enum stat_hist)h, le[k]);
			stats_observe((enum stat_hist)h, le[k] + 1);
			stats_read(&st);
			ok = 1;
			for (i = 0; i <= nb; i++)
				if (st.hist[h].bucket[i] !=
				    (unsigned long long)(i == k || i == k + 1))
					ok = 0;
			CHECK(ok);
			if (!ok)
				fprintf(stderr, "histogram %d bound %zu (%llu "
				    "us) misplaced\n", h, k, le[k]);
			CHECK(st.hist[h].sum_us == 2 * le[k] + 1);
		}
		/* 0 is in the first bucket */
		stats_reset();
		stats_observe((enum stat_hist)h, 0);
		stats_read(&st);
		CHECK(st.hist[h].bucket[0] == 1);
	}
	/* out of range: ignored */
	stats_reset();
	stats_observe(SH_N, 5);
	stats_observe((enum stat_hist)-1, 5);
	CHECK(stats_hist_bounds(SH_N, &le) == 0 && le == NULL);
	stats_reset();
}

/*
 * The delivery latency histogram as exported: one family, two label
 * sets, the documented bounds (10 ms .. 5 days), cumulative.
 */
static void
test_latency(void)
{
	struct spool_env env;
	struct timespec now;
	char *s;

	stats_reset();
	s = render();
	CHECK(well_formed(s));
	CHECK(has_line(s, "# TYPE danerelay_delivery_latency_seconds "
	    "histogram"));
	CHECK(has_line(s, "# TYPE danerelay_tls_handshake_seconds histogram"));
	CHECK(has_line(s, "danerelay_delivery_latency_seconds_bucket"
	    "{outcome=\"delivered\",le=\"0.010000\"} 0"));
	CHECK(has_line(s, "danerelay_delivery_latency_seconds_bucket"
	    "{outcome=\"bounced\",le=\"432000.000000\"} 0"));
	CHECK(has_line(s, "danerelay_delivery_latency_seconds_count"
	    "{outcome=\"bounced\"} 0"));
	CHECK(has_line(s, "danerelay_tls_handshake_seconds_bucket"
	    "{le=\"0.001000\"} 0"));
	CHECK(has_line(s, "danerelay_tls_handshake_seconds_bucket"
	    "{le=\"10.000000\"} 0"));
	CHECK(has_line(s, "danerelay_tls_handshake_seconds_sum 0.000000"));
	free(s);

	stats_observe(SH_LATENCY_DELIVERED, 100000);	/* 0.1 s: le=0.1 */
	stats_observe(SH_LATENCY_DELIVERED, 100001);	/* le=0.25 */
	stats_observe(SH_LATENCY_DELIVERED, 3600000000ULL);	/* 1 h */
	stats_observe(SH_LATENCY_BOUNCED, 432000000001ULL);	/* +Inf */
	stats_observe(SH_TLS_HANDSHAKE, 2500);		/* 2.5 ms */
	s = render();
	CHECK(well_formed(s));
	CHECK(has_line(s, "danerelay_delivery_latency_seconds_bucket"
	    "{outcome=\"delivered\",le=\"0.050000\"} 0"));
	CHECK(has_line(s, "danerelay_delivery_latency_seconds_bucket"
	    "{outcome=\"delivered\",le=\"0.100000\"} 1"));
	CHECK(has_line(s, "danerelay_delivery_latency_seconds_bucket"
	    "{outcome=\"delivered\",le=\"0.250000\"} 2"));
	CHECK(has_line(s, "danerelay_delivery_latency_seconds_bucket"
	    "{outcome=\"delivered\",le=\"900.000000\"} 2"));
	CHECK(has_line(s, "danerelay_delivery_latency_seconds_bucket"
	    "{outcome=\"delivered\",le=\"3600.000000\"} 3"));
	CHECK(has_line(s, "danerelay_delivery_latency_seconds_bucket"
	    "{outcome=\"delivered\",le=\"+Inf\"} 3"));
	CHECK(has_line(s, "danerelay_delivery_latency_seconds_count"
	    "{outcome=\"delivered\"} 3"));
	CHECK(has_line(s, "danerelay_delivery_latency_seconds_sum"
	    "{outcome=\"delivered\"} 3600.200001"));
	CHECK(has_line(s, "danerelay_delivery_latency_seconds_bucket"
	    "{outcome=\"bounced\",le=\"432000.000000\"} 0"));
	CHECK(has_line(s, "danerelay_delivery_latency_seconds_bucket"
	    "{outcome=\"bounced\",le=\"+Inf\"} 1"));
	CHECK(has_line(s, "danerelay_tls_handshake_seconds_bucket"
	    "{le=\"0.001000\"} 0"));
	CHECK(has_line(s, "danerelay_tls_handshake_seconds_bucket"
	    "{le=\"0.002500\"} 1"));
	CHECK(has_line(s, "danerelay_tls_handshake_seconds_count 1"));
	free(s);

	/*
	 * delivery_count_latency(): since env->created + created_usec.  A
	 * message accepted 0.999999 s after a second began, one second
	 * ago: under a second (over one without the microseconds).
	 */
	stats_reset();
	memset(&env, 0, sizeof(env));
	clock_gettime(CLOCK_REALTIME, &now);
	env.created = now.tv_sec - 1;
	env.created_usec = 999999;
	delivery_count_latency(DLV_SENT, &env);
	delivery_count_latency(DLV_DEFER, &env);	/* not final */
	delivery_count_latency(DLV_SENT, NULL);
	env.created = now.tv_sec - 7;			/* 6..7 s */
	env.created_usec = 0;
	delivery_count_latency(DLV_FAIL, &env);
	env.created = now.tv_sec + 100;			/* clock stepped */
	delivery_count_latency(DLV_FAIL, &env);
	s = render();
	CHECK(has_line(s, "danerelay_delivery_latency_seconds_bucket"
	    "{outcome=\"delivered\",le=\"1.000000\"} 1"));
	CHECK(has_line(s, "danerelay_delivery_latency_seconds_count"
	    "{outcome=\"delivered\"} 1"));
	CHECK(has_line(s, "danerelay_delivery_latency_seconds_bucket"
	    "{outcome=\"bounced\",le=\"0.010000\"} 1"));	/* as 0 */
	CHECK(has_line(s, "danerelay_delivery_latency_seconds_bucket"
	    "{outcome=\"bounced\",le=\"5.000000\"} 1"));
	CHECK(has_line(s, "danerelay_delivery_latency_seconds_bucket"
	    "{outcome=\"bounced\",le=\"10.000000\"} 2"));
	free(s);
	stats_reset();
}

/* Many threads observe at once: nothing is lost (atomics, no lock). */
#define HT_THREADS	4
#define HT_N		50000

static void *
hist_thread(void *arg)
{
	size_t i;

	for (i = 0; i < HT_N; i++)
		stats_observe(SH_TLS_HANDSHAKE, i % 3 == 0 ? 1000 : 20000);
	return arg;
}

static void
test_hist_threads(void)
{
	struct stats_snapshot st;
	pthread_t t[HT_THREADS];
	size_t i;
	unsigned long long n = 0;

	stats_reset();
	for (i = 0; i < HT_THREADS; i++)
		CHECK(pthread_create(&t[i], NULL, hist_thread, NULL) == 0);
	for (i = 0; i < HT_THREADS; i++)
		pthread_join(t[i], NULL);
	stats_read(&st);
	for (i = 0; i <= STATS_HIST_MAXNB; i++)
		n += st.hist[SH_TLS_HANDSHAKE].bucket[i];
	CHECK(n == (unsigned long long)HT_THREADS * HT_N);
	/* i % 3 == 0: 16667 of 50000 per thread at 1 ms */
	CHECK(st.hist[SH_TLS_HANDSHAKE].bucket[0] == HT_THREADS * 16667ULL);
	CHECK(st.hist[SH_TLS_HANDSHAKE].sum_us == HT_THREADS *
	    (16667ULL * 1000 + 33333ULL * 20000));
	stats_reset();
}

/* Outcomes by security level, TLSRPT deliveries, the health gauges. */
static int have_health;

static void
health_gauges(struct metrics_gauges *g, void *arg)
{
	if (!have_health)
		return;
	g->have_spool = 1;
	g->spool_free_bytes = 123456789;
	g->queue_minfree = 104857600;
	g->have_cert = 1;
	g->cert_not_after = 1893456000;
}

static void
test_levels_health(void)
{
	char *s;

	stats_reset();
	stats_level_outcome(STAT_LEVEL_DANE, STAT_OUT_DELIVERED);
	stats_level_outcome(STAT_LEVEL_DANE, STAT_OUT_DELIVERED);
	stats_level_outcome(STAT_LEVEL_MTA_STS, STAT_OUT_BOUNCED);
	stats_level_outcome(STAT_LEVEL_NONE, STAT_OUT_DEFERRED);
	stats_level_outcome(STAT_LEVEL_N, STAT_OUT_DEFERRED);	/* ignored */
	stats_level_outcome(STAT_LEVEL_MAY, STAT_OUT_N);	/* ignored */
	stats_tlsrpt_delivery("sent");
	stats_tlsrpt_delivery("pending");
	stats_tlsrpt_delivery("pending");
	stats_tlsrpt_delivery("failed");
	stats_tlsrpt_delivery("other");			/* ignored */
	stats_tlsrpt_delivery(NULL);
	s = render();
	CHECK(well_formed(s));
	CHECK(has_line(s, "danerelay_recipients_by_level_total"
	    "{level=\"dane\",outcome=\"delivered\"} 2"));
	CHECK(has_line(s, "danerelay_recipients_by_level_total"
	    "{level=\"mta-sts\",outcome=\"bounced\"} 1"));
	CHECK(has_line(s, "danerelay_recipients_by_level_total"
	    "{level=\"none\",outcome=\"deferred\"} 1"));
	CHECK(has_line(s, "danerelay_recipients_by_level_total"
	    "{level=\"may\",outcome=\"deferred\"} 0"));
	CHECK(has_line(s, "danerelay_tlsrpt_deliveries_total"
	    "{result=\"sent\"} 1"));
	CHECK(has_line(s, "danerelay_tlsrpt_deliveries_total"
	    "{result=\"pending\"} 2"));
	CHECK(has_line(s, "danerelay_tlsrpt_deliveries_total"
	    "{result=\"failed\"} 1"));
	/* 6 levels x 3 outcomes, 3 results: nothing else */
	{
		const char *p = s;
		int nl = 0, nr = 0;

		while ((p = strstr(p, "\ndanerelay_recipients_by_level_total"
		    "{")) != NULL) {
			nl++;
			p++;
		}
		p = s;
		while ((p = strstr(p, "\ndanerelay_tlsrpt_deliveries_total{"))
		    != NULL) {
			nr++;
			p++;
		}
		CHECK(nl == 18);
		CHECK(nr == 3);
	}
	/* without the gauges' groups: no such lines */
	CHECK(strstr(s, "danerelay_spool_free_bytes") == NULL);
	CHECK(strstr(s, "danerelay_smtpd_certificate_expiry_seconds") == NULL);
	free(s);

	have_health = 1;
	s = render_with(health_gauges);
	CHECK(well_formed(s));
	CHECK(has_line(s, "# TYPE danerelay_spool_free_bytes gauge"));
	CHECK(has_line(s, "danerelay_spool_free_bytes 123456789"));
	CHECK(has_line(s, "danerelay_queue_minfree_bytes 104857600"));
	CHECK(has_line(s, "# TYPE danerelay_smtpd_certificate_expiry_seconds "
	    "gauge"));
	CHECK(has_line(s, "danerelay_smtpd_certificate_expiry_seconds "
	    "1893456000"));
	free(s);
	have_health = 0;
	stats_reset();
}

int
main(void)
{
	struct tls_outcome o;
	struct config cf;
	struct metrics *m;
	char err[256], *s;

	/* all zero after a reset */
	stats_reset();
	s = render();
	CHECK(well_formed(s));
	CHECK(has_line(s, "danerelay_messages_received_total 0"));
	CHECK(has_line(s, "# TYPE danerelay_messages_received_total counter"));
	CHECK(has_line(s, "danerelay_recipients_delivered_total"
	    "{auth=\"dane-ee\"} 0"));
	CHECK(has_line(s, "danerelay_tls_failures_total"
	    "{result_type=\"other\"} 0"));
	CHECK(has_line(s, "danerelay_mta_sts_cache_policies 0"));
	/* no queue, no smtpd: no gauges about them */
	CHECK(strstr(s, "danerelay_queue_messages") == NULL);
	CHECK(strstr(s, "danerelay_smtpd_sessions") == NULL);
	free(s);

	/* counting */
	stats_inc(S_RECEIVED);
	stats_inc(S_RECEIVED);
	stats_add(S_RECEIVED_BYTES, 1234);
	stats_inc(S_DNSSEC_BOGUS);
	stats_inc(S_AUTH_FAILED);
	stats_inc(S_NCOUNTERS);		/* out of range: ignored */
	stats_add((enum stat_counter)-1, 5);
	CHECK(stats_get(S_RECEIVED) == 2);
	CHECK(stats_get(S_RECEIVED_BYTES) == 1234);
	CHECK(stats_get(S_NCOUNTERS) == 0);

	memset(&o, 0, sizeof(o));
	o.established = 1;
	o.auth = TLS_AUTH_DANE_EE;
	delivery_count(DLV_SENT, &o);
	delivery_count(DLV_SENT, &o);
	o.auth = TLS_AUTH_DANE_TA;
	delivery_count(DLV_SENT, &o);
	o.auth = TLS_AUTH_WEBPKI;
	delivery_count(DLV_SENT, &o);
	o.auth = TLS_AUTH_NONE;
	delivery_count(DLV_SENT, &o);
	o.established = 0;
	delivery_count(DLV_SENT, &o);		/* not established: cleartext */
	delivery_count(DLV_SENT, NULL);	/* no session: cleartext */
	delivery_count(DLV_DEFER, NULL);
	delivery_count(DLV_FAIL, &o);
	delivery_count(DLV_FAIL, NULL);
	stats_tls_failure("starttls-not-supported");
	stats_tls_failure("certificate-expired");
	stats_tls_failure("certificate-expired");
	stats_tls_failure("no-such-type");
	stats_tls_failure(NULL);
	sts_policies = 42;

	s = render();
	CHECK(well_formed(s));
	CHECK(has_line(s, "danerelay_messages_received_total 2"));
	CHECK(has_line(s, "danerelay_received_bytes_total 1234"));
	CHECK(has_line(s, "danerelay_dnssec_bogus_total 1"));
	CHECK(has_line(s, "danerelay_smtpd_auth_failures_total 1"));
	CHECK(has_line(s, "danerelay_recipients_delivered_total"
	    "{auth=\"dane-ee\"} 2"));
	CHECK(has_line(s, "danerelay_recipients_delivered_total"
	    "{auth=\"dane-ta\"} 1"));
	CHECK(has_line(s, "danerelay_recipients_delivered_total"
	    "{auth=\"webpki\"} 1"));
	CHECK(has_line(s, "danerelay_recipients_delivered_total"
	    "{auth=\"none\"} 1"));
	CHECK(has_line(s, "danerelay_recipients_delivered_total"
	    "{auth=\"cleartext\"} 2"));
	CHECK(has_line(s, "danerelay_recipients_deferred_total 1"));
	CHECK(has_line(s, "danerelay_recipients_bounced_total 2"));
	CHECK(has_line(s, "danerelay_tls_failures_total"
	    "{result_type=\"starttls-not-supported\"} 1"));
	CHECK(has_line(s, "danerelay_tls_failures_total"
	    "{result_type=\"certificate-expired\"} 2"));
	CHECK(has_line(s, "danerelay_tls_failures_total"
	    "{result_type=\"other\"} 2"));
	CHECK(has_line(s, "danerelay_mta_sts_cache_policies 42"));
	free(s);

	sts_policies = -3;
	s = render();
	CHECK(has_line(s, "danerelay_mta_sts_cache_policies 0"));
	free(s);

	/* metrics_new() refusals (no socket is left behind) */
	memset(&cf, 0, sizeof(cf));
	err[0] = '\0';
	CHECK(metrics_new(&cf, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "not set") != NULL);
	cf.metrics_listen = "127.0.0.1";	/* no port */
	err[0] = '\0';
	CHECK(metrics_new(&cf, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "bad address") != NULL);
	cf.metrics_listen = "localhost:9125";	/* not numeric */
	CHECK(metrics_new(&cf, err, sizeof(err)) == NULL);
	/* a real bind on a free loopback port, then the same one again */
	cf.metrics_listen = "127.0.0.1:0";
	CHECK(metrics_new(&cf, err, sizeof(err)) == NULL);	/* port 0 */
	m = NULL;
	{
		const char *ip = getenv("DR_TEST_IP");
		char addr[64];
		int port;

		if (ip == NULL || *ip == '\0' || strlen(ip) > 15)
			ip = "127.0.100.1";
		for (port = 39125; port < 39225 && m == NULL; port++) {
			snprintf(addr, sizeof(addr), "%s:%d", ip, port);
			cf.metrics_listen = addr;
			m = metrics_new(&cf, err, sizeof(err));
		}
		CHECK(m != NULL);
		if (m != NULL) {
			struct metrics *m2;

			CHECK_STR(metrics_address(m), addr);
			err[0] = '\0';
			m2 = metrics_new(&cf, err, sizeof(err));
			CHECK(m2 == NULL);
			CHECK(strstr(err, "in use") != NULL);
			metrics_free(m2);
		}
		metrics_free(m);
	}
	metrics_free(NULL);
	test_stalls();
	test_watch();
	test_hist_edges();
	test_latency();
	test_hist_threads();
	test_levels_health();
	return t_done();
}
