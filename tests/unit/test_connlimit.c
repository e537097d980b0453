/*
 * test_connlimit.c - sites and their limits (issue #24, connlimit.c):
 * the site key, rate spacing, pause arithmetic, a domain's slot moving
 * to its site, stricter-wins, pauses and slow start, idle sessions;
 * and the throttle reply classifier (smtp_reply.c) it is fed by.
 */
#include <stdlib.h>
#include <string.h>

#include "connlimit.h"
#include "policy.h"
#include "smtp_reply.h"
#include "t.h"

static double fake_now = 1000;

static double
clock_fake(void)
{
	return fake_now;
}

static int nwake;

static void
wake(void *arg)
{
	(void)arg;
	nwake++;
}

static char *
key_of(const char *domain, const char *const *names, size_t n)
{
	struct decision dec;
	struct decision_host h[8];
	size_t i;

	memset(&dec, 0, sizeof(dec));
	memset(h, 0, sizeof(h));
	for (i = 0; i < n; i++)
		h[i].name = (char *)names[i];
	dec.hosts = h;
	dec.nhosts = n;
	return connlimit_site_key(&dec, domain);
}

static void
test_site_key(void)
{
	const char *const two[] = { "MX2.Example.NET.", "mx1.example.net",
	    "mx2.example.net" };
	const char *const one[] = { "mx.a.test" };
	char *k;

	k = key_of("a.test", two, 3);
	CHECK_STR(k, "mx1.example.net,mx2.example.net");
	free(k);
	k = key_of("a.test", one, 1);
	CHECK_STR(k, "mx.a.test");
	free(k);
	/* implicit MX / nothing routed: the domain itself */
	k = key_of("Implicit.TEST", NULL, 0);
	CHECK_STR(k, "implicit.test");
	free(k);
}

static void
test_arith(void)
{
	struct rate r = { 2, 1 }, h = { 60, 3600 }, none = { 0, 1 };

	CHECK(connlimit_rate_interval(&r) == 0.5);
	CHECK(connlimit_rate_interval(&h) == 60);
	CHECK(connlimit_rate_interval(&none) == 0);
	CHECK(connlimit_rate_interval(NULL) == 0);
	CHECK(connlimit_pause_next(0, 60) == 60);
	CHECK(connlimit_pause_next(60, 60) == 120);
	CHECK(connlimit_pause_next(1920, 60) == 3600);
	CHECK(connlimit_pause_next(3600, 60) == 3600);
	CHECK(connlimit_pause_next(0, 0) == 0);
	CHECK(connlimit_pause_next(3, 3) == 6);
}

static void
req(struct connlimit_req *rq, const char *dom, int max_dest,
    const struct rate *rate)
{
	memset(rq, 0, sizeof(*rq));
	rq->domain = dom;
	rq->max_total = 100;
	rq->max_dest = max_dest;
	rq->rate = rate;
	rq->wake = wake;
	rq->wakearg = rq;
}

/* Two domains on one site share its concurrency once learned. */
static void
test_site_share(void)
{
	struct connlimit *l = connlimit_new();
	struct connlimit_req a, b, a2;

	connlimit_set_clock(l, clock_fake);
	req(&a, "a.test", 1, NULL);
	CHECK(connlimit_take(l, &a) == CONNLIMIT_OK && a.relearn);
	req(&b, "b.test", 1, NULL);
	/* b's site unknown yet: its own entry */
	CHECK(connlimit_take(l, &b) == CONNLIMIT_OK && b.relearn);
	CHECK(connlimit_learn(l, &a, "mx.a.test", NULL) == CONNLIMIT_OK);
	/* b routed to the same site: full, given up (no attempt) */
	CHECK(connlimit_learn(l, &b, "mx.a.test", NULL) == CONNLIMIT_DEST);
	CHECK(b.slot == NULL);
	/* now known: b waits at the queue */
	req(&b, "b.test", 1, NULL);
	CHECK(connlimit_take(l, &b) == CONNLIMIT_DEST);
	req(&a2, "a.test", 1, NULL);
	CHECK(connlimit_take(l, &a2) == CONNLIMIT_DEST);
	nwake = 0;
	connlimit_release(l, a.slot);
	CHECK(nwake > 0);
	req(&b, "b.test", 1, NULL);
	CHECK(connlimit_take(l, &b) == CONNLIMIT_OK && !b.relearn);
	connlimit_release(l, b.slot);
	/* limits_by = domain: separate */
	req(&a, "a.test", 1, NULL);
	a.by_domain = 1;
	req(&b, "b.test", 1, NULL);
	b.by_domain = 1;
	CHECK(connlimit_take(l, &a) == CONNLIMIT_OK);
	CHECK(connlimit_take(l, &b) == CONNLIMIT_OK);
	connlimit_release(l, a.slot);
	connlimit_release(l, b.slot);
	connlimit_free(l);
}

/* policy_file limits: the strictest of a site's domains. */
static void
test_stricter(void)
{
	struct connlimit *l = connlimit_new();
	struct connlimit_limits la = { 3, 50, { 0, 1 } }, lb = { 1, 0,
	    { 2, 1 } };
	struct connlimit_req a, b, c;

	connlimit_set_clock(l, clock_fake);
	req(&a, "a.test", 10, NULL);
	CHECK(connlimit_take(l, &a) == CONNLIMIT_OK);
	CHECK(connlimit_learn(l, &a, "mx.s.test", &la) == CONNLIMIT_OK);
	CHECK(connlimit_max_msgs(a.slot, 100) == 50);
	req(&b, "b.test", 10, NULL);
	CHECK(connlimit_take(l, &b) == CONNLIMIT_OK);
	/* b says 1 connection: a's job holds it, b waits */
	CHECK(connlimit_learn(l, &b, "mx.s.test", &lb) == CONNLIMIT_DEST);
	req(&c, "a.test", 10, NULL);
	CHECK(connlimit_take(l, &c) == CONNLIMIT_DEST);
	connlimit_release(l, a.slot);
	/* rate 2/s from b: one every half second, for a too */
	fake_now += 10;
	req(&c, "a.test", 10, NULL);
	CHECK(connlimit_take(l, &c) == CONNLIMIT_OK);
	CHECK(connlimit_max_msgs(c.slot, 100) == 50);
	connlimit_release(l, c.slot);
	req(&c, "a.test", 10, NULL);
	CHECK(connlimit_take(l, &c) == CONNLIMIT_LATER);
	CHECK(c.retry_at > fake_now && c.retry_at <= fake_now + 0.5);
	fake_now += 0.5;
	CHECK(connlimit_take(l, &c) == CONNLIMIT_OK);
	connlimit_release(l, c.slot);
	connlimit_free(l);
}

/* destination_rate_limit: 12 messages at 2/s take 5.5 s. */
static void
test_rate(void)
{
	struct connlimit *l = connlimit_new();
	struct rate r = { 2, 1 };
	struct connlimit_req rq;
	double start = fake_now += 100;
	int sent = 0, tries = 0;

	connlimit_set_clock(l, clock_fake);
	while (sent < 12 && tries++ < 1000) {
		req(&rq, "r.test", 0, &r);
		if (connlimit_take(l, &rq) == CONNLIMIT_OK) {
			sent++;
			connlimit_release(l, rq.slot);
		} else
			fake_now += 0.1;
	}
	CHECK(sent == 12);
	CHECK(fake_now - start >= 5.4 && fake_now - start < 5.7);
	connlimit_free(l);
}

/* A throttle pauses the site, doubles, resets; slow start after it. */
static void
test_pause(void)
{
	struct connlimit *l = connlimit_new();
	struct connlimit_req a, b, c;

	connlimit_set_clock(l, clock_fake);
	fake_now += 100;
	req(&a, "a.test", 5, NULL);
	CHECK(connlimit_take(l, &a) == CONNLIMIT_OK);
	CHECK(connlimit_learn(l, &a, "mx.p.test", NULL) == CONNLIMIT_OK);
	CHECK(connlimit_throttle(l, a.slot, 60, "mx.p.test[192.0.2.1]:25",
	    "421 4.7.0 slow down") == 60);
	/* a second session's throttle in the same pause: the same pause */
	CHECK(connlimit_throttle(l, a.slot, 60, "x", "y") == 60);
	connlimit_release(l, a.slot);
	req(&b, "b.test", 5, NULL);
	CHECK(connlimit_take(l, &b) == CONNLIMIT_OK);
	CHECK(connlimit_learn(l, &b, "mx.p.test", NULL) == CONNLIMIT_LATER);
	CHECK(b.retry_at == fake_now + 60);
	req(&a, "a.test", 5, NULL);
	CHECK(connlimit_take(l, &a) == CONNLIMIT_LATER);
	fake_now += 60;
	/* resumed, concurrency 1 */
	CHECK(connlimit_take(l, &a) == CONNLIMIT_OK);
	req(&b, "b.test", 5, NULL);
	CHECK(connlimit_take(l, &b) == CONNLIMIT_DEST);
	/* throttled again without a success: 120 s */
	CHECK(connlimit_throttle(l, a.slot, 60, "x", "y") == 120);
	connlimit_release(l, a.slot);
	fake_now += 120;
	req(&a, "a.test", 5, NULL);
	CHECK(connlimit_take(l, &a) == CONNLIMIT_OK);
	/* a success: the pause length starts again; slow start 2 */
	connlimit_success(l, a.slot, 1, 5);
	req(&b, "b.test", 5, NULL);
	CHECK(connlimit_take(l, &b) == CONNLIMIT_OK);
	req(&c, "a.test", 5, NULL);
	CHECK(connlimit_take(l, &c) == CONNLIMIT_DEST);
	connlimit_success(l, b.slot, 1, 5);
	CHECK(connlimit_take(l, &c) == CONNLIMIT_OK);
	connlimit_release(l, c.slot);
	CHECK(connlimit_throttle(l, a.slot, 60, "x", "y") == 60);
	connlimit_release(l, a.slot);
	connlimit_release(l, b.slot);
	/* base 0: pauses off */
	req(&a, "z.test", 5, NULL);
	a.by_domain = 1;
	CHECK(connlimit_take(l, &a) == CONNLIMIT_OK);
	CHECK(connlimit_throttle(l, a.slot, 0, "x", "y") == 0);
	connlimit_release(l, a.slot);
	connlimit_free(l);
}

static int own;

static int
own_idle(void *arg, const struct cl_slot *s)
{
	(void)arg;
	(void)s;
	return own;
}

/* Idle sessions count toward concurrency; an own one lets a job in. */
static void
test_idle(void)
{
	struct connlimit *l = connlimit_new();
	struct connlimit_req a, b;
	struct cl_slot *s;

	connlimit_set_clock(l, clock_fake);
	req(&a, "i.test", 1, NULL);
	CHECK(connlimit_take(l, &a) == CONNLIMIT_OK);
	s = a.slot;
	connlimit_idle_add(s);		/* parked */
	connlimit_release(l, a.slot);
	req(&b, "i.test", 1, NULL);
	b.own_idle = own_idle;
	own = 0;
	CHECK(connlimit_take(l, &b) == CONNLIMIT_DEST);
	own = 1;
	CHECK(connlimit_take(l, &b) == CONNLIMIT_OK && b.borrowed);
	connlimit_idle_reuse(s);	/* the job took it */
	connlimit_idle_add(s);		/* and parked it again */
	connlimit_release(l, b.slot);
	nwake = 0;
	req(&b, "i.test", 1, NULL);
	CHECK(connlimit_take(l, &b) == CONNLIMIT_DEST);
	connlimit_idle_gone(l, s);	/* closed: a slot is free */
	CHECK(nwake > 0);
	CHECK(connlimit_take(l, &b) == CONNLIMIT_OK && !b.borrowed);
	connlimit_release(l, b.slot);
	connlimit_free(l);
}

static void
test_classifier(void)
{
	CHECK(smtp_reply_throttle("banner", 421, "4.7.0",
	    "421 4.7.0 [TSS04] Messages deferred"));
	CHECK(smtp_reply_throttle("banner", 421, "", "421 busy"));
	CHECK(!smtp_reply_throttle("EHLO", 421, "", "421 shutting down"));
	CHECK(smtp_reply_throttle("RCPT", 451, "4.7.500",
	    "451 4.7.500 Server busy. (S843)"));
	CHECK(smtp_reply_throttle("MAIL", 450, "4.7.1", "450 4.7.1 wait"));
	CHECK(smtp_reply_throttle("EHLO", 454, "4.7.0", "454 4.7.0 x"));
	CHECK(!smtp_reply_throttle("DATA", 451, "4.7.1", "451 4.7.1 x"));
	CHECK(!smtp_reply_throttle("RCPT", 550, "5.7.1", "550 5.7.1 too many"));
	CHECK(smtp_reply_throttle("DATA", 452, "4.5.3",
	    "452 4.5.3 Too many recipients"));
	CHECK(smtp_reply_throttle("end of data", 451, "4.3.0",
	    "451 4.3.0 Please try again later"));
	CHECK(smtp_reply_throttle("MAIL", 450, "", "450 Rate limited"));
	CHECK(smtp_reply_throttle("MAIL", 450, "", "450 ratelimit exceeded"));
	CHECK(smtp_reply_throttle("RCPT", 450, "4.2.1",
	    "450 4.2.1 You are being THROTTLED"));
	CHECK(!smtp_reply_throttle("RCPT", 450, "4.2.0",
	    "450 4.2.0 generate separate accurate"));
	CHECK(!smtp_reply_throttle("RCPT", 451, "4.3.0", "451 4.3.0 greylisted"));
	CHECK(!smtp_reply_throttle("RCPT", 250, "2.1.5", "250 rate ok"));
	CHECK(!smtp_reply_throttle(NULL, 451, NULL, NULL));
}

int
main(void)
{
	test_site_key();
	test_arith();
	test_site_share();
	test_stricter();
	test_rate();
	test_pause();
	test_idle();
	test_classifier();
	return t_done();
}
