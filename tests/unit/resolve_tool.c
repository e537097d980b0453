/*
 * resolve_tool.c - drives src/resolver.c for tests/scenario/resolver.t.
 *
 * usage: resolve_tool [-d] [-s] [-T secs] -a trust_anchor_file
 *            [-c dns_config] NAME TYPE [NAME TYPE ...]
 *        resolve_tool ... -x NAME TYPE     (cancellation checks)
 *
 * Default: all queries start at once (async) and their answers are
 * printed in argument order once all are in.  -s uses resolver_query_sync()
 * one query after the other.  Output per query:
 *
 *   answer qname=N type=T status=S security=S rcode=N cname=0|1
 *          canonname=N null_mx=0|1 n=N
 *   rr <record in presentation form>          (n lines)
 *   reason <text>                             (if any)
 *
 * -x runs the cancellation checks on the one NAME TYPE given and prints
 * "cancel ok" or "cancel FAIL: ..." lines; exit 0 only if all pass.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "log.h"
#include "resolver.h"
#include "util.h"

#define MAXQ 64

struct slot {
	const char *name;
	int type;
	struct resolver_query *q;
	struct dns_result *res;
	int calls;
};

static struct slot slots[MAXQ];
static int nslots, nanswered;

static void
print_result(const struct dns_result *res)
{
	char *t;
	size_t i;

	printf("answer qname=%s type=%s status=%s security=%s rcode=%d "
	    "cname=%d canonname=%s null_mx=%d n=%zu cached=%d ttl=%u\n",
	    res->qname, dns_type_name(res->qtype),
	    dns_status_name(res->status), dns_security_name(res->security),
	    res->rcode, res->cname, res->canonname, res->null_mx, res->n,
	    res->cached, (unsigned)res->ttl);
	for (i = 0; i < res->n; i++) {
		switch (res->qtype) {
		case DNS_T_MX:
			printf("rr %u %s\n", res->mx[i].pref,
			    res->mx[i].host[0] ? res->mx[i].host : ".");
			break;
		case DNS_T_A:
		case DNS_T_AAAA:
			printf("rr %s family=%s\n", res->addr[i].text,
			    res->addr[i].ss.ss_family == AF_INET ? "inet" :
			    res->addr[i].ss.ss_family == AF_INET6 ? "inet6" :
			    "?");
			break;
		case DNS_T_TLSA:
			t = tlsa_to_text(&res->tlsa[i]);
			printf("rr %s\n", t ? t : "(tlsa_to_text failed)");
			free(t);
			break;
		case DNS_T_TXT:
			printf("rr %zu %s\n", res->txt[i].len,
			    res->txt[i].data);
			break;
		}
	}
	if (res->reason[0])
		printf("reason %s\n", res->reason);
}

static void
slot_cb(struct dns_result *res, void *arg)
{
	struct slot *s = arg;

	s->calls++;
	s->q = NULL;
	if (s->res != NULL)
		dns_result_free(s->res);
	s->res = res;
	nanswered++;
}

static struct resolver *
make_resolver(struct event_base *base, const char *ta, const char *dnsconf,
    int timeout)
{
	struct config cf;
	struct resolver *r;
	char err[512];

	memset(&cf, 0, sizeof(cf));
	cf.trust_anchor_file = (char *)ta;
	cf.dns_config = (char *)dnsconf;
	if ((r = resolver_new(base, &cf, err, sizeof(err))) == NULL) {
		printf("resolver_new failed: %s\n", err);
		exit(1);
	}
	if (timeout > 0)
		resolver_set_timeout(r, timeout);
	return r;
}

static void
wait_for(struct event_base *base, int n, double secs)
{
	double end = mono_now() + secs;

	while (nanswered < n && mono_now() < end)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK),
		    usleep(1000);
}

/* --- cancellation checks ----------------------------------------------- */

static int fails;

#define EXPECT(c, what) do {						\
	if (c)								\
		printf("cancel ok: %s\n", what);			\
	else {								\
		printf("cancel FAIL: %s\n", what);			\
		fails++;						\
	}								\
} while (0)

static struct resolver *freed_in_cb;
static int after_free_calls;

static void
cancel_other_cb(struct dns_result *res, void *arg)
{
	struct slot *other = arg;

	slots[0].calls++;
	nanswered++;
	dns_result_free(res);
	if (other->q != NULL) {
		resolver_cancel(other->q);
		other->q = NULL;
	}
}

static void
free_in_cb(struct dns_result *res, void *arg)
{
	dns_result_free(res);
	nanswered++;
	resolver_free(freed_in_cb);	/* from inside a callback */
	freed_in_cb = NULL;
}

static void
never_cb(struct dns_result *res, void *arg)
{
	after_free_calls++;
	dns_result_free(res);
}

static int
cancel_checks(struct event_base *base, const char *ta, const char *dnsconf,
    const char *name, int type)
{
	struct resolver *r;
	char err[256];
	int i;

	r = make_resolver(base, ta, dnsconf, 10);

	/* 1. cancel right after start: no callback, the other one answers */
	nslots = 2;
	slots[0].name = slots[1].name = name;
	slots[0].type = slots[1].type = type;
	nanswered = 0;
	for (i = 0; i < 2; i++)
		slots[i].q = resolver_query(r, name, type, slot_cb, &slots[i],
		    err, sizeof(err));
	EXPECT(slots[0].q && slots[1].q, "queries started");
	resolver_cancel(slots[0].q);
	slots[0].q = NULL;
	EXPECT(resolver_pending(r) == 1, "one pending after cancel");
	wait_for(base, 1, 15);
	/* give a stray callback for the cancelled query time to show up */
	for (i = 0; i < 200; i++) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
	}
	EXPECT(slots[0].calls == 0, "cancelled query: no callback");
	EXPECT(slots[1].calls == 1, "other query: one callback");
	EXPECT(slots[1].res && slots[1].res->status != DNS_TEMPFAIL,
	    "other query answered");
	EXPECT(resolver_pending(r) == 0, "nothing pending");

	/* 2. a callback cancels another query (pending or already done) */
	for (i = 0; i < 2; i++)
		dns_result_free(slots[i].res);
	memset(slots, 0, sizeof(slots));
	nanswered = 0;
	slots[0].q = resolver_query(r, name, type, cancel_other_cb, &slots[1],
	    err, sizeof(err));
	slots[1].q = resolver_query(r, name, type, slot_cb, &slots[1], err,
	    sizeof(err));
	wait_for(base, 1, 15);
	for (i = 0; i < 200; i++) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
	}
	EXPECT(slots[0].calls == 1, "first callback ran");
	EXPECT(slots[1].calls == 0, "query cancelled from a callback: silent");
	EXPECT(resolver_pending(r) == 0, "nothing pending after cb cancel");

	/* 3. resolver_free() with queries outstanding: no callbacks */
	for (i = 0; i < 5; i++)
		resolver_query(r, name, type, never_cb, NULL, err, sizeof(err));
	EXPECT(resolver_pending(r) == 5, "five pending");
	resolver_free(r);
	for (i = 0; i < 300; i++) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
	}
	EXPECT(after_free_calls == 0, "no callback after resolver_free");

	/* 4. resolver_free() from inside a callback, others outstanding */
	freed_in_cb = make_resolver(base, ta, dnsconf, 10);
	nanswered = 0;
	resolver_query(freed_in_cb, name, type, free_in_cb, NULL, err,
	    sizeof(err));
	for (i = 0; i < 3; i++)
		resolver_query(freed_in_cb, name, type == DNS_T_A ?
		    DNS_T_AAAA : DNS_T_A, never_cb, NULL, err, sizeof(err));
	wait_for(base, 1, 15);
	for (i = 0; i < 300; i++) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
	}
	EXPECT(nanswered == 1 && freed_in_cb == NULL,
	    "resolver_free from a callback");
	EXPECT(after_free_calls == 0, "no callback after free in callback");

	/* the guard timer is exercised by the scenario test (-T) */
	for (i = 0; i < 2; i++)
		dns_result_free(slots[i].res);
	event_base_free(base);
	return fails ? 1 : 0;
}

int
main(int argc, char *argv[])
{
	struct event_base *base;
	struct resolver *r;
	struct dns_result *res;
	const char *ta = NULL, *dnsconf = NULL;
	char err[512];
	int ch, i, sync = 0, cancel = 0, timeout = 0, debug = 0;

	while ((ch = getopt(argc, argv, "a:c:dsT:x")) != -1) {
		switch (ch) {
		case 'a': ta = optarg; break;
		case 'c': dnsconf = optarg; break;
		case 'd': debug = 1; break;
		case 's': sync = 1; break;
		case 'T': timeout = atoi(optarg); break;
		case 'x': cancel = 1; break;
		default:
			fprintf(stderr, "usage: resolve_tool [-dsx] [-T secs] "
			    "-a ta [-c dns_config] NAME TYPE ...\n");
			return 2;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 2 || argc % 2 != 0 || argc / 2 > MAXQ) {
		fprintf(stderr, "resolve_tool: NAME TYPE pairs expected\n");
		return 2;
	}
	log_init("resolve_tool", 1, debug);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if ((base = event_base_new()) == NULL)
		return 1;
	for (i = 0; i < argc / 2; i++) {
		slots[i].name = argv[2 * i];
		if ((slots[i].type = dns_type_parse(argv[2 * i + 1])) == -1) {
			fprintf(stderr, "unknown type %s\n", argv[2 * i + 1]);
			return 2;
		}
	}
	nslots = argc / 2;
	if (cancel)
		return cancel_checks(base, ta, dnsconf, slots[0].name,
		    slots[0].type);

	r = make_resolver(base, ta, dnsconf, timeout);
	if (sync) {
		for (i = 0; i < nslots; i++) {
			if (resolver_query_sync(r, slots[i].name,
			    slots[i].type, &res, err, sizeof(err)) == -1) {
				printf("error %s\n", err);
				continue;
			}
			print_result(res);
			dns_result_free(res);
		}
		resolver_free(r);
		event_base_free(base);
		return 0;
	}
	for (i = 0; i < nslots; i++) {
		slots[i].q = resolver_query(r, slots[i].name, slots[i].type,
		    slot_cb, &slots[i], err, sizeof(err));
		if (slots[i].q == NULL) {
			printf("error %s\n", err);
			nanswered++;
			slots[i].calls = -1;
		}
	}
	while (nanswered < nslots)
		if (event_base_loop(base, EVLOOP_ONCE) == -1)
			return 1;
	for (i = 0; i < nslots; i++) {
		if (slots[i].res != NULL)
			print_result(slots[i].res);
		if (slots[i].calls > 1)
			printf("error %s: %d callbacks\n", slots[i].name,
			    slots[i].calls);
		dns_result_free(slots[i].res);
	}
	if (resolver_pending(r) != 0)
		printf("error %zu queries still pending\n",
		    resolver_pending(r));
	resolver_free(r);
	event_base_free(base);
	return 0;
}
