/*
 * test_workq.c - src/workq.c: jobs run off the loop thread, every done
 * callback runs on the loop thread exactly once, the loop keeps running
 * while jobs block, two ports on two loops get their own completions,
 * and workq_port_free() waits for jobs in flight.  Also built into the
 * ThreadSanitizer run.
 */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>

#include "util.h"
#include "workq.h"
#include "t.h"

#define NJOBS 2000

static pthread_t loop_thread;

struct tjob {
	int		 n;
	int		 ran_off_loop;
	int		 done_on_loop;
	int		 done_count;
	int		*left;
	struct event_base *base;
	useconds_t	 sleep_us;
};

static void
work(void *arg)
{
	struct tjob *j = arg;

	j->ran_off_loop = !pthread_equal(pthread_self(), loop_thread);
	if (j->sleep_us)
		usleep(j->sleep_us);
	j->n *= 2;
}

static void
done(void *arg)
{
	struct tjob *j = arg;

	j->done_on_loop = pthread_equal(pthread_self(), loop_thread);
	j->done_count++;
	if (--*j->left == 0 && j->base != NULL)
		event_base_loopbreak(j->base);
}

static int ticks;

static void
tick(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	(void)arg;
	ticks++;
}

static void
test_many(struct workq *wq)
{
	struct event_base *base = event_base_new();
	struct workq_port *port;
	struct tjob *jobs = xcalloc(NJOBS, sizeof(*jobs));
	char err[256];
	int i, left = NJOBS, ok_off = 1, ok_on = 1, ok_once = 1, ok_n = 1;

	port = workq_port_new(base, err, sizeof(err));
	CHECK(port != NULL);
	for (i = 0; i < NJOBS; i++) {
		jobs[i].n = i;
		jobs[i].left = &left;
		jobs[i].base = base;
		workq_submit(wq, port, work, done, &jobs[i]);
	}
	CHECK(workq_port_pending(port) == NJOBS);
	event_base_dispatch(base);
	for (i = 0; i < NJOBS; i++) {
		ok_off &= jobs[i].ran_off_loop;
		ok_on &= jobs[i].done_on_loop;
		ok_once &= jobs[i].done_count == 1;
		ok_n &= jobs[i].n == 2 * i;
	}
	CHECK(left == 0);
	CHECK(ok_off);
	CHECK(ok_on);
	CHECK(ok_once);
	CHECK(ok_n);
	CHECK(workq_port_pending(port) == 0);
	workq_port_free(port);
	event_base_free(base);
	free(jobs);
}

/* The loop keeps serving timers while every thread sleeps in a job. */
static void
test_loop_not_blocked(struct workq *wq)
{
	struct event_base *base = event_base_new();
	struct workq_port *port;
	struct tjob jobs[4];
	struct event *ev;
	struct timeval tv = { 0, 5000 };
	char err[256];
	int i, left = 4;

	memset(jobs, 0, sizeof(jobs));
	port = workq_port_new(base, err, sizeof(err));
	ev = event_new(base, -1, EV_PERSIST, tick, NULL);
	event_add(ev, &tv);
	ticks = 0;
	for (i = 0; i < 4; i++) {
		jobs[i].left = &left;
		jobs[i].base = base;
		jobs[i].sleep_us = 200 * 1000;
		workq_submit(wq, port, work, done, &jobs[i]);
	}
	event_base_dispatch(base);
	CHECK(left == 0);
	/* 400 ms of blocked workers (2 threads), 5 ms timer: ~80 ticks */
	CHECK(ticks >= 20);
	event_free(ev);
	workq_port_free(port);
	event_base_free(base);
}

/* port_free() waits for jobs still running and runs their done. */
static void
test_free_waits(struct workq *wq)
{
	struct event_base *base = event_base_new();
	struct workq_port *port;
	struct tjob jobs[3];
	char err[256];
	int i, left = 3;

	memset(jobs, 0, sizeof(jobs));
	port = workq_port_new(base, err, sizeof(err));
	for (i = 0; i < 3; i++) {
		jobs[i].n = 1;
		jobs[i].left = &left;
		jobs[i].sleep_us = 50 * 1000;
		workq_submit(wq, port, work, done, &jobs[i]);
	}
	workq_port_free(port);	/* no dispatch at all */
	CHECK(left == 0);
	for (i = 0; i < 3; i++) {
		CHECK(jobs[i].done_count == 1);
		CHECK(jobs[i].n == 2);
	}
	event_base_free(base);
}

/* Two loops on two threads share one pool; completions stay apart. */
struct loopctx {
	struct workq	*wq;
	struct tjob	 jobs[200];
	int		 left;
	int		 ok;
};

static void
done_other(void *arg)
{
	struct tjob *j = arg;

	j->done_count++;
	if (--*j->left == 0)
		event_base_loopbreak(j->base);
}

static void *
other_loop(void *arg)
{
	struct loopctx *c = arg;
	struct event_base *base = event_base_new();
	struct workq_port *port;
	char err[256];
	int i;

	port = workq_port_new(base, err, sizeof(err));
	c->left = 200;
	for (i = 0; i < 200; i++) {
		c->jobs[i].n = i;
		c->jobs[i].left = &c->left;
		c->jobs[i].base = base;
		workq_submit(c->wq, port, work, done_other, &c->jobs[i]);
	}
	event_base_dispatch(base);
	c->ok = c->left == 0;
	for (i = 0; i < 200; i++)
		c->ok &= c->jobs[i].done_count == 1 && c->jobs[i].n == 2 * i;
	workq_port_free(port);
	event_base_free(base);
	return NULL;
}

static void
test_two_loops(struct workq *wq)
{
	struct loopctx *c = xcalloc(1, sizeof(*c));
	pthread_t t;

	c->wq = wq;
	CHECK(pthread_create(&t, NULL, other_loop, c) == 0);
	test_many(wq);
	pthread_join(t, NULL);
	CHECK(c->ok);
	free(c);
}

int
main(void)
{
	struct workq *wq;
	char err[256];

	loop_thread = pthread_self();
	wq = workq_new("test", 2, err, sizeof(err));
	CHECK(wq != NULL);
	CHECK(workq_threads(wq) == 2);
	test_many(wq);
	test_loop_not_blocked(wq);
	test_free_waits(wq);
	test_two_loops(wq);
	workq_free(wq);
	workq_free(NULL);
	return t_done();
}
