/*
 * test_anvil.c - src/anvil.c: the per-client-address limits every worker
 * shares.  Count and rate limits per address (refused attempts count
 * towards the rate, the window starts again after rate_unit), IPv4 and
 * IPv4-mapped IPv6 as one address, the refusal log throttle, AUTH failure
 * delays growing with the count and capped, the block and its end, and
 * four threads connecting and disconnecting at once (run under TSan in
 * tests/run-all): afterwards every count is back to zero.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "anvil.h"
#include "t.h"

static struct sockaddr_storage
v4(const char *a)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

	memset(&ss, 0, sizeof(ss));
	sin->sin_family = AF_INET;
	inet_pton(AF_INET, a, &sin->sin_addr);
	return ss;
}

static struct sockaddr_storage
v6(const char *a)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	sin6->sin6_family = AF_INET6;
	inet_pton(AF_INET6, a, &sin6->sin6_addr);
	return ss;
}

#define SA(ss)	((const struct sockaddr *)&(ss))

static void
test_count_rate(void)
{
	struct anvil *a = anvil_new();
	struct anvil_limits lim = { .count = 3, .rate = 5, .rate_unit = 1 };
	struct anvil_result r;
	struct sockaddr_storage x = v4("192.0.2.1"), y = v4("192.0.2.2");
	struct sockaddr_storage xm = v6("::ffff:192.0.2.1");
	int i;

	for (i = 0; i < 3; i++) {
		anvil_connect(a, i == 1 ? SA(xm) : SA(x), &lim, &r);
		CHECK(r.verdict == ANVIL_OK && r.counted);
	}
	anvil_connect(a, SA(x), &lim, &r);
	CHECK(r.verdict == ANVIL_COUNT && r.value == 4 && !r.counted);
	CHECK(r.log == 1 && r.suppressed == 0);
	anvil_connect(a, SA(xm), &lim, &r);	/* the same address */
	CHECK(r.verdict == ANVIL_COUNT && r.log == 0);
	anvil_connect(a, SA(y), &lim, &r);	/* another one */
	CHECK(r.verdict == ANVIL_OK);
	anvil_disconnect(a, SA(y));
	anvil_disconnect(a, SA(x));
	/* a free slot, but 5 attempts in this window already */
	anvil_connect(a, SA(x), &lim, &r);
	CHECK(r.verdict == ANVIL_RATE && r.value == 6);
	CHECK(anvil_clients(a) == 2);
	usleep(1100000);
	/* a new window; one line for what was not logged meanwhile */
	anvil_connect(a, SA(x), &lim, &r);
	CHECK(r.verdict == ANVIL_OK);
	anvil_connect(a, SA(x), &lim, &r);
	CHECK(r.verdict == ANVIL_COUNT && r.log == 1 && r.suppressed == 2);
	for (i = 0; i < 3; i++)
		anvil_disconnect(a, SA(x));
	anvil_disconnect(a, SA(x));		/* one too many: harmless */
	/* no limits */
	lim.count = lim.rate = 0;
	for (i = 0; i < 100; i++) {
		anvil_connect(a, SA(y), &lim, &r);
		CHECK(r.verdict == ANVIL_OK);
	}
	anvil_free(a);
}

static void
test_auth(void)
{
	struct anvil *a = anvil_new();
	struct anvil_limits lim = { .auth_limit = 4, .auth_block = 1,
	    .auth_delay = 2, .rate_unit = 60 };
	struct anvil_result r;
	struct sockaddr_storage x = v4("198.51.100.7"), y = v6("2001:db8::7");
	int n, blocked;
	double d;

	CHECK(anvil_auth_blocked(a, SA(x)) == 0);
	d = anvil_auth_failed(a, SA(x), &lim, &n, &blocked);
	CHECK(d == 2 && n == 1 && !blocked);
	d = anvil_auth_failed(a, SA(x), &lim, &n, &blocked);
	CHECK(d == 4 && n == 2 && !blocked);
	d = anvil_auth_failed(a, SA(y), &lim, &n, &blocked);
	CHECK(d == 2 && n == 1);		/* its own count */
	d = anvil_auth_failed(a, SA(x), &lim, &n, &blocked);
	CHECK(d == 6 && n == 3 && !blocked);
	CHECK(anvil_blocked_clients(a) == 0);
	d = anvil_auth_failed(a, SA(x), &lim, &n, &blocked);
	CHECK(d == 0 && n == 4 && blocked);
	CHECK(anvil_auth_blocked(a, SA(x)) > 0);
	CHECK(anvil_auth_blocked(a, SA(y)) == 0);
	CHECK(anvil_blocked_clients(a) == 1);
	anvil_connect(a, SA(x), &lim, &r);
	CHECK(r.verdict == ANVIL_AUTH_BLOCKED && !r.counted && r.log);
	anvil_connect(a, SA(y), &lim, &r);
	CHECK(r.verdict == ANVIL_OK);
	anvil_disconnect(a, SA(y));
	usleep(1100000);
	CHECK(anvil_auth_blocked(a, SA(x)) == 0);
	CHECK(anvil_blocked_clients(a) == 0);
	anvil_connect(a, SA(x), &lim, &r);
	CHECK(r.verdict == ANVIL_OK);
	anvil_disconnect(a, SA(x));
	/* the count started over */
	d = anvil_auth_failed(a, SA(x), &lim, &n, &blocked);
	CHECK(d == 2 && n == 1 && !blocked);
	/* the delay is capped; no limit: never blocked */
	lim.auth_limit = 0;
	lim.auth_delay = 20;
	for (n = 0; n < 3; )
		d = anvil_auth_failed(a, SA(y), &lim, &n, &blocked);
	CHECK(d == ANVIL_AUTH_DELAY_MAX && !blocked);
	anvil_free(a);
}

#define NTHREAD	4
#define NADDR	16
#define ROUNDS	20000

static struct anvil *shared;

static void *
worker(void *arg)
{
	struct anvil_limits lim = { .count = 1000, .rate = 0,
	    .rate_unit = 60, .auth_limit = 0, .auth_block = 60 };
	struct anvil_result r;
	struct sockaddr_storage ss;
	char addr[32];
	long id = (long)arg;
	int i, n, blocked;

	for (i = 0; i < ROUNDS; i++) {
		snprintf(addr, sizeof(addr), "203.0.113.%d",
		    (int)((i + id) % NADDR));
		ss = v4(addr);
		anvil_connect(shared, SA(ss), &lim, &r);
		if (i % 7 == 0)
			(void)anvil_auth_failed(shared, SA(ss), &lim, &n,
			    &blocked);
		if (r.counted)
			anvil_disconnect(shared, SA(ss));
		else
			return (void *)1;
	}
	return NULL;
}

static void
test_threads(void)
{
	struct anvil_limits lim = { .count = 1, .rate_unit = 60 };
	struct anvil_result r;
	struct sockaddr_storage ss;
	pthread_t t[NTHREAD];
	void *ret;
	char addr[32];
	long i;
	int ok = 1;

	shared = anvil_new();
	for (i = 0; i < NTHREAD; i++)
		pthread_create(&t[i], NULL, worker, (void *)i);
	for (i = 0; i < NTHREAD; i++) {
		pthread_join(t[i], &ret);
		ok = ok && ret == NULL;
	}
	CHECK(ok);
	CHECK(anvil_clients(shared) == NADDR);
	/* every connection was given back: each address has room for one */
	for (i = 0; i < NADDR; i++) {
		snprintf(addr, sizeof(addr), "203.0.113.%ld", i);
		ss = v4(addr);
		anvil_connect(shared, SA(ss), &lim, &r);
		CHECK(r.verdict == ANVIL_OK);
	}
	anvil_free(shared);
}

int
main(void)
{
	test_count_rate();
	test_auth();
	test_threads();
	return t_done();
}
