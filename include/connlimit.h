/*
 * connlimit.h - connection limits shared by every worker's queue:
 * max_connections in all, and per destination (issue #24) a concurrency
 * (max_connections_per_destination), a message rate
 * (destination_rate_limit), throttle pauses and the slow start after
 * them.
 *
 * A destination is a site (limits_by = site, the default): the sorted
 * set of a domain's MX host names (connlimit_site_key()), so that every
 * domain hosted on the same MX hosts shares one set of limits; or the
 * domain itself (limits_by = domain).  The MX set is known only after a
 * domain was routed, so a domain starts on an entry of its own; the
 * delivery, once routed, calls connlimit_learn(), which remembers the
 * domain's site (for CONNLIMIT_MAP_TTL) and moves the job's slot there
 * (or gives it up: the job goes back to the queue without an attempt).
 * Later jobs of the domain take their slot on the site at once.
 *
 * Per-domain limits from policy_file (max_connections=,
 * max_messages_per_connection=, rate=) apply to the domain's site;
 * where two domains of one site disagree, the stricter value wins.
 *
 * Idle sessions in a connection cache count toward their destination's
 * concurrency (connlimit_idle_*): a job refused because of idle
 * sessions only is let through when one of them is in its own worker's
 * cache (own_idle()): it must reuse that session or close it before it
 * connects (borrowed).  Others wait until a session closes (the cache
 * closes idle sessions after a few seconds).
 *
 * connlimit_take() takes one slot or says which limit is full; a caller
 * refused by a concurrency limit is remembered with its wake-up
 * function and called (once, from the thread that frees a slot, without
 * the lock held) when any slot is released; one refused by a rate or a
 * pause (CONNLIMIT_LATER) is told when to come back.  The wake-up must
 * only post work to its own loop (loopcall_post, event_active ...).
 * Thread-safe: one mutex, taken once per take and per release; the
 * other per-message calls (idle counts, success) are atomics unless a
 * pause or slow start is under way.
 */
#ifndef DR_CONNLIMIT_H
#define DR_CONNLIMIT_H

#include "util.h"

#define CONNLIMIT_MAP_TTL	600	/* seconds a learned site is kept */
#define CONNLIMIT_PAUSE_MAX	3600	/* throttle pauses double up to */

struct connlimit;
struct cl_slot;			/* a domain's or a site's entry */
struct decision;

enum connlimit_verdict {
	CONNLIMIT_OK = 0,
	CONNLIMIT_TOTAL,	/* max_connections */
	CONNLIMIT_DEST,		/* the destination's concurrency: woken */
	CONNLIMIT_LATER,	/* paused or over its rate: at retry_at */
};

/* The limits a policy_file line gives a domain (0: not set). */
struct connlimit_limits {
	int max_connections;
	int max_msgs;
	struct rate rate;
};

struct connlimit_req {
	/* in */
	const char *domain;		/* lower case */
	int max_total;			/* max_connections, 0 none */
	int max_dest;			/* max_connections_per_destination */
	const struct rate *rate;	/* destination_rate_limit or NULL */
	int by_domain;			/* limits_by = domain */
	void (*wake)(void *);
	void *wakearg;
	/* 1 if an idle session of slot s is in the caller's cache */
	int (*own_idle)(void *arg, const struct cl_slot *s);
	void *own_arg;
	/* out */
	struct cl_slot *slot;		/* OK: the slot held (in for learn) */
	int borrowed;			/* OK through an own idle session */
	int relearn;			/* call connlimit_learn() once routed */
	double retry_at;		/* LATER: mono_now() time */
};

struct connlimit *connlimit_new(void);
void connlimit_free(struct connlimit *l);
/* For tests: the clock (default mono_now()). */
void connlimit_set_clock(struct connlimit *l, double (*now)(void));

enum connlimit_verdict connlimit_take(struct connlimit *l,
    struct connlimit_req *rq);
/* The slot of a job that ended (NULL ok). */
void connlimit_release(struct connlimit *l, struct cl_slot *s);
/*
 * The job's domain was routed to site (connlimit_site_key(); ignored
 * with by_domain), its policy_file line gave dom (NULL: none): remember
 * both and hold the job to them.  OK: rq->slot is the slot now held
 * (maybe another one).  Else the slot was given up (rq->slot NULL) and
 * the job goes back to the queue without an attempt.
 */
enum connlimit_verdict connlimit_learn(struct connlimit *l,
    struct connlimit_req *rq, const char *site,
    const struct connlimit_limits *dom);
/*
 * A throttle reply (smtp_reply_throttle()) from relay: pause the slot's
 * destination for base seconds, doubled on each repeat up to
 * CONNLIMIT_PAUSE_MAX, reset by a successful delivery; slow start after
 * it.  Logged and counted.  Returns the seconds left of the pause
 * (0: base 0, throttle pauses off).
 */
long long connlimit_throttle(struct connlimit *l, struct cl_slot *s,
    long long base, const char *relay, const char *reply);
/* A message was delivered through s (on a new session: new_conn): the
 * pause length starts again from the base, slow start grows by one. */
void connlimit_success(struct connlimit *l, struct cl_slot *s, int new_conn,
    int max_dest);
/* max_messages_per_connection for s: the stricter of global and the
 * destination's policy_file value. */
int connlimit_max_msgs(const struct cl_slot *s, int global);
/* A session of s parked in a cache / taken out for reuse / closed. */
void connlimit_idle_add(struct cl_slot *s);
void connlimit_idle_reuse(struct cl_slot *s);
void connlimit_idle_gone(struct connlimit *l, struct cl_slot *s);
/* "site" or "domain", and the key, for logs. */
const char *connlimit_slot_name(const struct cl_slot *s);
/* Forget a wake-up (its owner is going away). */
void connlimit_forget(struct connlimit *l, void *wakearg);

/* The site of a routed domain: its MX host names (the implicit MX: the
 * domain), lower case, sorted, without duplicates, joined by ','.
 * malloc'ed. */
char *connlimit_site_key(const struct decision *dec, const char *domain);
/* Seconds between messages at rate r (0: unlimited). */
double connlimit_rate_interval(const struct rate *r);
/* The next pause after one of prev seconds (0: none before). */
long long connlimit_pause_next(long long prev, long long base);

#endif
