/*
 * test_metrics.c - src/stats.c (counters) and src/metrics_http.c (the exposition
 * text, Prometheus text format 0.0.4) without a daemon; metrics_new()
 * refusals.
 * The HTTP listener with a real daemon is tests/scenario/metrics.t.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "config.h"
#include "delivery.h"
#include "metrics_http.h"
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

/* The exposition as a NUL-terminated string (caller frees). */
static char *
render(void)
{
	struct evbuffer *b = evbuffer_new();
	size_t n;
	char *s;

	metrics_render(b, gauges, NULL);
	n = evbuffer_get_length(b);
	s = xmalloc(n + 1);
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	evbuffer_free(b);
	return s;
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
	return t_done();
}
