/*
 * dnssec_check.h - the DNSSEC self-test (issue #23): is validation really
 * in effect?  The relay looks up the DNSKEY RRset of dnssec_check_name
 * (default ".", the root) through its own validating resolver, at start
 * and then every dnssec_check_interval (default 10 minutes):
 *
 *	secure		healthy;
 *	insecure	validation is not in effect for that name (no or a
 *			wrong trust anchor, domain-insecure, ...): refused at
 *			start; at run time an error is logged and route.c
 *			defers what default_policy would send with
 *			opportunistic TLS (dnssec_check_insecure());
 *	failing		bogus, SERVFAIL, timeout (no network yet at boot):
 *			the relay keeps running, warns once per change of
 *			state and retries after DNSSEC_RETRY seconds.
 *
 * The latest result is process-wide (any worker thread may read it); the
 * periodic check runs on the loop it was started on (worker 0's).
 */
#ifndef DR_DNSSEC_CHECK_H
#define DR_DNSSEC_CHECK_H

#include <stddef.h>
#include <time.h>

struct event_base;
struct resolver;
struct config;
struct dns_result;

/* Seconds before the next try after an insecure or failing result (at
 * most dnssec_check_interval). */
#define DNSSEC_RETRY		30
/* Bound on the first, start-up check (a network that drops packets). */
#define DNSSEC_START_TIMEOUT	5

enum dnssec_state {
	DNSSEC_UNCHECKED = 0,
	DNSSEC_SECURE,
	DNSSEC_INSECURE,
	DNSSEC_FAILING,
};

/* What a DNSKEY answer says about validation (pure). */
enum dnssec_state dnssec_state_of(const struct dns_result *res);
/* "unchecked", "secure", "insecure", "failing". */
const char *dnssec_state_name(enum dnssec_state s);

/*
 * The configuration checks of start-up and SIGHUP: the trust anchors
 * (resolver_check_config()) and a well-formed dnssec_check_name.  0, or
 * -1 with the reason in err.
 */
int dnssec_check_config(const struct config *cf, char *err, size_t errlen);

/*
 * The start-up self-test, synchronous, on a resolver and event base of
 * its own (before the daemon's loops run), bounded by
 * DNSSEC_START_TIMEOUT.  Records and logs the result.  -1 with the reason
 * in err when the daemon must not start (insecure; a resolver that cannot
 * be built), else 0 (secure or failing).
 */
int dnssec_check_first(const struct config *cf, char *err, size_t errlen);

/* The periodic self-test on base with resolver r (both outlive it). */
struct dnssec_check *dnssec_check_start(struct event_base *base,
    struct resolver *r, const struct config *cf);
/* New config: the name and interval; a changed name is checked now. */
void dnssec_check_reload(struct dnssec_check *dc, const struct config *cf);
/* Cancels the timer and a query in flight.  NULL ok. */
void dnssec_check_free(struct dnssec_check *dc);

/* The latest result, its time (0: none yet) and name (any thread). */
enum dnssec_state dnssec_check_state(void);
time_t dnssec_check_time(void);
/* 1 if opportunistic deliveries under default_policy must wait. */
int dnssec_check_insecure(void);
/* The name last checked ("." ...), in buf. */
void dnssec_check_name(char *buf, size_t len);

#endif
