/*
 * test_metrics.c - src/metrics.c: counters and the exposition text
 * (Prometheus text format 0.0.4) without a daemon; metrics_new() refusals.
 * The HTTP listener with a real daemon is tests/scenario/metrics.t.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "config.h"
#include "metrics.h"
#include "tls.h"
#include "util.h"
#include "t.h"

/* The exposition as a NUL-terminated string (caller frees). */
static char *
render(void)
{
	struct evbuffer *b = evbuffer_new();
	size_t n;
	char *s;

	metrics_render(b, NULL, NULL);
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

/* Every sample line is "name[{labels}] value" after its HELP and TYPE. */
static int
well_formed(const char *text)
{
	char *copy = xstrdup(text), *line, *save = NULL;
	char typed[128] = "";
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
		if (strcmp(name, typed) != 0) {
			fprintf(stderr, "sample without its TYPE: %s\n", line);
			ok = 0;
		}
	}
	free(copy);
	return ok;
}

int
main(void)
{
	struct tls_outcome o;
	struct config cf;
	struct metrics *m;
	char err[256], *s;

	/* all zero after a reset */
	metrics_reset();
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
	metrics_inc(M_RECEIVED);
	metrics_inc(M_RECEIVED);
	metrics_add(M_RECEIVED_BYTES, 1234);
	metrics_inc(M_DNSSEC_BOGUS);
	metrics_inc(M_AUTH_FAILED);
	metrics_inc(M_NCOUNTERS);		/* out of range: ignored */
	metrics_add((enum metric_counter)-1, 5);
	CHECK(metrics_get(M_RECEIVED) == 2);
	CHECK(metrics_get(M_RECEIVED_BYTES) == 1234);
	CHECK(metrics_get(M_NCOUNTERS) == 0);

	memset(&o, 0, sizeof(o));
	o.established = 1;
	o.auth = TLS_AUTH_DANE_EE;
	metrics_delivery(DLV_SENT, &o);
	metrics_delivery(DLV_SENT, &o);
	o.auth = TLS_AUTH_DANE_TA;
	metrics_delivery(DLV_SENT, &o);
	o.auth = TLS_AUTH_WEBPKI;
	metrics_delivery(DLV_SENT, &o);
	o.auth = TLS_AUTH_NONE;
	metrics_delivery(DLV_SENT, &o);
	o.established = 0;
	metrics_delivery(DLV_SENT, &o);		/* not established: cleartext */
	metrics_delivery(DLV_SENT, NULL);	/* no session: cleartext */
	metrics_delivery(DLV_DEFER, NULL);
	metrics_delivery(DLV_FAIL, &o);
	metrics_delivery(DLV_FAIL, NULL);
	metrics_tls_failure("starttls-not-supported");
	metrics_tls_failure("certificate-expired");
	metrics_tls_failure("certificate-expired");
	metrics_tls_failure("no-such-type");
	metrics_tls_failure(NULL);
	metrics_set_sts_cache_size(42);

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

	metrics_set_sts_cache_size(-3);
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
	return t_done();
}
