/*
 * test_senderlimit.c - src/senderlimit.c (sender_rate_limit) and the
 * rate syntax (util.c parse_rate): the limit is exact, a window ends
 * after the rate's period and starts afresh, senders are separate, a full
 * table drops finished windows first and then the sender with the fewest
 * recipients (never one near its limit), the top list is ordered, and
 * four threads counting at once (TSan in tests/run-all) lose nothing.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "senderlimit.h"
#include "t.h"
#include "util.h"

static void
test_parse_rate(void)
{
	struct rate r;
	char buf[32];

	CHECK(parse_rate("200/h", &r) == 0 && r.count == 200 &&
	    r.per == 3600);
	CHECK(parse_rate("60/m", &r) == 0 && r.count == 60 && r.per == 60);
	CHECK(parse_rate("5/s", &r) == 0 && r.count == 5 && r.per == 1);
	CHECK(parse_rate("1000/d", &r) == 0 && r.per == 86400);
	CHECK(parse_rate("unlimited", &r) == 0 && r.count == 0);
	CHECK(parse_rate("0", &r) == 0 && r.count == 0);
	CHECK(parse_rate("0/h", &r) == -1);
	CHECK(parse_rate("10", &r) == -1);
	CHECK(parse_rate("10/x", &r) == -1);
	CHECK(parse_rate("10/hh", &r) == -1);
	CHECK(parse_rate("/h", &r) == -1);
	CHECK(parse_rate("-1/h", &r) == -1);
	CHECK(parse_rate("99999999999/h", &r) == -1);
	CHECK(parse_rate("", &r) == -1);
	parse_rate("200/h", &r);
	CHECK_STR(rate_str(&r, buf, sizeof(buf)), "200/h");
	parse_rate("0", &r);
	CHECK_STR(rate_str(&r, buf, sizeof(buf)), "unlimited");
}

static void
test_window(void)
{
	struct senderlimit *l = senderlimit_new();
	struct rate r = { 3, 60 };
	struct senderlimit_entry e;
	int i;

	for (i = 0; i < 3; i++)
		CHECK(senderlimit_take(l, "domain a", &r, 1000 + i, &e) == 0);
	CHECK(e.count == 3 && e.start == 1000);
	CHECK(senderlimit_take(l, "domain a", &r, 1059, &e) == 1);
	CHECK(e.count == 3);			/* refusals do not count */
	CHECK(senderlimit_take(l, "domain b", &r, 1059, &e) == 0);
	CHECK(senderlimit_take(l, "user a", &r, 1059, &e) == 0);
	/* the window is over at start + per: a new one */
	CHECK(senderlimit_take(l, "domain a", &r, 1060, &e) == 0);
	CHECK(e.count == 1 && e.start == 1060);
	senderlimit_free(l);
}

static void
test_full_table(void)
{
	struct senderlimit *l = senderlimit_new();
	struct rate r = { 100, 3600 };
	struct senderlimit_entry e, top[3];
	char key[64];
	int i;

	/* one heavy sender, then enough others to fill the table */
	for (i = 0; i < 99; i++)
		senderlimit_take(l, "domain heavy", &r, 5000, NULL);
	for (i = 0; i < SENDERLIMIT_MAX + 10; i++) {
		snprintf(key, sizeof(key), "domain d%d", i);
		senderlimit_take(l, key, &r, 5000, NULL);
		if (i < 5) {
			senderlimit_take(l, key, &r, 5000, NULL);
			senderlimit_take(l, key, &r, 5000, NULL);
		}
	}
	/* the heavy sender was never the one dropped: it is at its limit */
	CHECK(senderlimit_take(l, "domain heavy", &r, 5001, &e) == 0 &&
	    e.count == 100);
	CHECK(senderlimit_take(l, "domain heavy", &r, 5001, &e) == 1);
	CHECK(senderlimit_top(l, 3600, 5001, top, 3) == 3);
	CHECK_STR(top[0].key, "domain heavy");
	CHECK(top[0].count == 100 && top[1].count == 3 && top[2].count == 3);
	/* windows that are over are dropped first, and not listed */
	CHECK(senderlimit_top(l, 3600, 5000 + 3600, top, 3) == 0);
	CHECK(senderlimit_take(l, "domain new", &r, 9000, &e) == 0);
	senderlimit_free(l);
}

#define NTHREAD	4
#define NTAKE	20000

static struct senderlimit *shared;

static void *
worker(void *arg)
{
	struct rate r = { NTHREAD * NTAKE / 2, 3600 };
	int i, refused = 0;

	(void)arg;
	for (i = 0; i < NTAKE; i++)
		refused += senderlimit_take(shared, "user busy", &r, 100, NULL);
	return (void *)(long)refused;
}

static void
test_threads(void)
{
	pthread_t t[NTHREAD];
	void *ret;
	long refused = 0;
	int i;

	shared = senderlimit_new();
	for (i = 0; i < NTHREAD; i++)
		pthread_create(&t[i], NULL, worker, NULL);
	for (i = 0; i < NTHREAD; i++) {
		pthread_join(t[i], &ret);
		refused += (long)ret;
	}
	/* exactly half accepted, whatever the interleaving */
	CHECK(refused == NTHREAD * NTAKE / 2);
	senderlimit_free(shared);
}

int
main(void)
{
	test_parse_rate();
	test_window();
	test_full_table();
	test_threads();
	return t_done();
}
