/*
 * dnssec_check.c - the DNSSEC self-test (issue #23; dnssec_check.h):
 * the DNSKEY RRset of dnssec_check_name looked up through the relay's
 * own validating resolver tells whether validation is in effect.  A trust
 * anchor that does not cover the name, or none at all, makes the answer
 * "insecure" (RFC 4035 §4.3): the daemon then never goes on as if DANE
 * worked - it refuses to start, or at run time defers what would go with
 * opportunistic TLS.  Bogus answers (RFC 4035 §5.5) and failures are not
 * insecure: the relay keeps running and retries.
 *
 * Owns: the process-wide result (atomics, read by route.c on any worker
 * thread; written only here, on the loop that runs the check) and, for
 * the periodic check, a timer and at most one query.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "config.h"
#include "dnssec_check.h"
#include "log.h"
#include "resolver.h"
#include "util.h"

struct dnssec_check {
	struct event_base *base;
	struct resolver *res;
	struct event *timer;
	struct resolver_query *q;
	char *name;
	long long interval;
};

static _Atomic int cur_state = DNSSEC_UNCHECKED;
static _Atomic long long cur_time;
static pthread_mutex_t name_mtx = PTHREAD_MUTEX_INITIALIZER;
static char cur_name[DNS_NAME_BUF] = ".";

const char *
dnssec_state_name(enum dnssec_state s)
{
	switch (s) {
	case DNSSEC_UNCHECKED:	return "unchecked";
	case DNSSEC_SECURE:	return "secure";
	case DNSSEC_INSECURE:	return "insecure";
	case DNSSEC_FAILING:	return "failing";
	}
	return "?";
}

enum dnssec_state
dnssec_state_of(const struct dns_result *res)
{
	if (res == NULL)
		return DNSSEC_FAILING;
	switch (res->status) {
	case DNS_OK:
	case DNS_NODATA:
	case DNS_NXDOMAIN:
		/* an answer: validated, or proven to need no validation */
		if (res->security == DNS_SEC_SECURE)
			return DNSSEC_SECURE;
		if (res->security == DNS_SEC_INSECURE)
			return DNSSEC_INSECURE;
		return DNSSEC_FAILING;
	case DNS_TEMPFAIL:
		break;
	}
	return DNSSEC_FAILING;		/* bogus, SERVFAIL, timeout, ... */
}

int
dnssec_check_config(const struct config *cf, char *err, size_t errlen)
{
	if (!resolver_name_ok(cf->dnssec_check_name)) {
		snprintf(err, errlen, "dnssec_check_name \"%s\" is not a "
		    "domain name", cf->dnssec_check_name);
		return -1;
	}
	return resolver_check_config(cf, err, errlen);
}

enum dnssec_state
dnssec_check_state(void)
{
	return (enum dnssec_state)atomic_load(&cur_state);
}

time_t
dnssec_check_time(void)
{
	return (time_t)atomic_load(&cur_time);
}

int
dnssec_check_insecure(void)
{
	return dnssec_check_state() == DNSSEC_INSECURE;
}

void
dnssec_check_name(char *buf, size_t len)
{
	pthread_mutex_lock(&name_mtx);
	dr_strlcpy(buf, cur_name, len);
	pthread_mutex_unlock(&name_mtx);
}

static const char *
reason_of(const struct dns_result *res)
{
	if (res->reason[0] != '\0')
		return res->reason;
	return dns_status_name(res->status);
}

/* Seconds to the next check after a result in state s. */
static long long
next_check(enum dnssec_state s, long long interval)
{
	if (s == DNSSEC_SECURE || interval < DNSSEC_RETRY)
		return interval;
	return DNSSEC_RETRY;
}

/*
 * File a result; log it when the state changes (once per change).  At
 * start an insecure result is the caller's fatal error, not logged here.
 */
static enum dnssec_state
record(const char *name, const struct dns_result *res, const char *why,
    long long interval, int at_start)
{
	enum dnssec_state s = res != NULL ? dnssec_state_of(res) :
	    DNSSEC_FAILING;
	enum dnssec_state old = dnssec_check_state();

	if (res != NULL)
		why = reason_of(res);
	pthread_mutex_lock(&name_mtx);
	dr_strlcpy(cur_name, name, sizeof(cur_name));
	pthread_mutex_unlock(&name_mtx);
	atomic_store(&cur_time, (long long)time(NULL));
	atomic_store(&cur_state, (int)s);
	if (s == old) {
		log_debug("DNSSEC self-test: DNSKEY %s %s (%s)", name,
		    dnssec_state_name(s), why);
		return s;
	}
	switch (s) {
	case DNSSEC_SECURE:
		log_info("DNSSEC self-test: DNSKEY %s is secure: validation "
		    "in effect%s", name, old == DNSSEC_UNCHECKED ? "" :
		    " again");
		break;
	case DNSSEC_INSECURE:
		if (at_start)
			break;
		log_errx("DNSSEC self-test: DNSKEY %s is insecure: DNSSEC "
		    "validation is not in effect for it (trust_anchor_file, "
		    "dns_config, dnssec_check_name); deliveries that "
		    "default_policy would make with opportunistic TLS are "
		    "deferred", name);
		break;
	case DNSSEC_FAILING:
		log_warnx("DNSSEC self-test: DNSKEY %s failed (%s): "
		    "validation cannot be confirmed; retrying every %lld "
		    "seconds", name, why, next_check(s, interval));
		break;
	case DNSSEC_UNCHECKED:
		break;
	}
	return s;
}

int
dnssec_check_first(const struct config *cf, char *err, size_t errlen)
{
	struct event_base *base;
	struct resolver *r;
	struct dns_result *res = NULL;
	enum dnssec_state s;
	int rc = 0;

	if ((base = event_base_new()) == NULL) {
		dr_strlcpy(err, "DNSSEC self-test: event_base_new failed",
		    errlen);
		return -1;
	}
	if ((r = resolver_new(base, cf, err, errlen)) == NULL) {
		event_base_free(base);
		return -1;
	}
	resolver_set_timeout(r, DNSSEC_START_TIMEOUT);
	if (resolver_query_sync(r, cf->dnssec_check_name, DNS_T_DNSKEY, &res,
	    err, errlen) == -1) {
		resolver_free(r);
		event_base_free(base);
		return -1;
	}
	s = record(cf->dnssec_check_name, res, NULL,
	    cf->dnssec_check_interval, 1);
	if (s == DNSSEC_INSECURE) {
		snprintf(err, errlen, "DNSSEC self-test: the DNSKEY RRset of "
		    "dnssec_check_name %s is insecure: DNSSEC validation is "
		    "not in effect for it; check trust_anchor_file and "
		    "dns_config (see README, \"Trust anchor\")",
		    cf->dnssec_check_name);
		rc = -1;
	}
	dns_result_free(res);
	resolver_free(r);
	event_base_free(base);
	return rc;
}

static void check_now(evutil_socket_t, short, void *);

static void
schedule(struct dnssec_check *dc, long long secs)
{
	struct timeval tv = { (time_t)secs, 0 };

	evtimer_add(dc->timer, &tv);
}

static void
answer(struct dns_result *res, void *arg)
{
	struct dnssec_check *dc = arg;
	enum dnssec_state s;

	dc->q = NULL;
	s = record(dc->name, res, NULL, dc->interval, 0);
	dns_result_free(res);
	schedule(dc, next_check(s, dc->interval));
}

static void
check_now(evutil_socket_t fd, short ev, void *arg)
{
	struct dnssec_check *dc = arg;
	char err[256];

	(void)fd;
	(void)ev;
	if (dc->q != NULL)
		return;
	if ((dc->q = resolver_query(dc->res, dc->name, DNS_T_DNSKEY, answer,
	    dc, err, sizeof(err))) == NULL) {
		schedule(dc, next_check(record(dc->name, NULL, err,
		    dc->interval, 0), dc->interval));
	}
}

struct dnssec_check *
dnssec_check_start(struct event_base *base, struct resolver *r,
    const struct config *cf)
{
	struct dnssec_check *dc = xcalloc(1, sizeof(*dc));
	enum dnssec_state s = dnssec_check_state();

	dc->base = base;
	dc->res = r;
	dc->name = xstrdup(cf->dnssec_check_name);
	dc->interval = cf->dnssec_check_interval;
	dc->timer = evtimer_new(base, check_now, dc);
	schedule(dc, next_check(s, dc->interval));
	return dc;
}

void
dnssec_check_reload(struct dnssec_check *dc, const struct config *cf)
{
	if (dc == NULL)
		return;
	dc->interval = cf->dnssec_check_interval;
	if (strcmp(dc->name, cf->dnssec_check_name) == 0)
		return;
	free(dc->name);
	dc->name = xstrdup(cf->dnssec_check_name);
	if (dc->q != NULL) {
		resolver_cancel(dc->q);
		dc->q = NULL;
	}
	schedule(dc, 0);
}

void
dnssec_check_free(struct dnssec_check *dc)
{
	if (dc == NULL)
		return;
	if (dc->q != NULL)
		resolver_cancel(dc->q);
	if (dc->timer != NULL)
		event_free(dc->timer);
	free(dc->name);
	free(dc);
}
