/*
 * workq.c - a thread pool whose completions come back to libevent loops
 * (see workq.h for the contract).
 *
 * A pool is a FIFO of jobs under one mutex and a condition variable; its
 * threads take jobs in order and run work(arg).  A finished job goes onto
 * its port's done list (the port's own mutex) and, if that list was
 * empty, one byte is written to the port's pipe.  The port's read event
 * (on its event base) drains the pipe, takes the whole list under the
 * mutex and runs each done(arg) without holding it, in finishing order.
 * So the loop side needs no libevent locking (evthread): the only thing
 * another thread touches is the pipe and the list.
 *
 * A loop stalled in a callback is measured elsewhere (metrics); here the
 * only rule is that done callbacks run on the loop like any other event.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "util.h"
#include "workq.h"

struct job {
	struct job		*next;
	struct workq_port	*port;
	workq_fn		 work;
	workq_fn		 done;
	void			*arg;
};

struct workq {
	char			*name;
	pthread_mutex_t		 mtx;
	pthread_cond_t		 cv;
	struct job		*head, *tail;
	int			 stopping;
	int			 nthreads;
	pthread_t		*threads;
};

struct workq_port {
	struct event_base	*base;
	struct event		*ev;
	int			 rfd, wfd;
	pthread_mutex_t		 mtx;
	pthread_cond_t		 cv;	/* signalled when a job finishes */
	struct job		*done_head, *done_tail;
	size_t			 pending;	/* submitted, done not yet run */
	size_t			 finished;	/* on the done list */
};

static void
port_push(struct workq_port *p, struct job *j)
{
	int wake;
	ssize_t r;

	pthread_mutex_lock(&p->mtx);
	j->next = NULL;
	wake = p->done_head == NULL;
	if (p->done_tail != NULL)
		p->done_tail->next = j;
	else
		p->done_head = j;
	p->done_tail = j;
	p->finished++;
	/* Under the lock: once it is released, workq_port_free() may see
	 * this job finished and free the port. */
	if (wake) {
		do
			r = write(p->wfd, "x", 1);
		while (r == -1 && errno == EINTR);
		/* EAGAIN: the pipe already holds a wake-up. */
	}
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mtx);
}

static void *
worker(void *arg)
{
	struct workq *wq = arg;
	struct job *j;

	for (;;) {
		pthread_mutex_lock(&wq->mtx);
		while (wq->head == NULL && !wq->stopping)
			pthread_cond_wait(&wq->cv, &wq->mtx);
		if ((j = wq->head) == NULL) {
			pthread_mutex_unlock(&wq->mtx);
			return NULL;
		}
		if ((wq->head = j->next) == NULL)
			wq->tail = NULL;
		pthread_mutex_unlock(&wq->mtx);
		j->work(j->arg);
		port_push(j->port, j);
	}
}

struct workq *
workq_new(const char *name, int nthreads, char *err, size_t errlen)
{
	struct workq *wq;
	sigset_t all, old;
	int i, e;

	if (nthreads < 1)
		nthreads = 1;
	wq = xcalloc(1, sizeof(*wq));
	wq->name = xstrdup(name);
	wq->threads = xcalloc((size_t)nthreads, sizeof(*wq->threads));
	pthread_mutex_init(&wq->mtx, NULL);
	pthread_cond_init(&wq->cv, NULL);
	/* Signals belong to the loop thread (libevent's signal events). */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (i = 0; i < nthreads; i++) {
		if ((e = pthread_create(&wq->threads[i], NULL, worker,
		    wq)) != 0) {
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			snprintf(err, errlen, "%s pool: cannot start thread: %s",
			    name, strerror(e));
			wq->nthreads = i;
			workq_free(wq);
			return NULL;
		}
		wq->nthreads = i + 1;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return wq;
}

int
workq_threads(const struct workq *wq)
{
	return wq->nthreads;
}

void
workq_free(struct workq *wq)
{
	int i;

	if (wq == NULL)
		return;
	pthread_mutex_lock(&wq->mtx);
	wq->stopping = 1;
	pthread_cond_broadcast(&wq->cv);
	pthread_mutex_unlock(&wq->mtx);
	for (i = 0; i < wq->nthreads; i++)
		pthread_join(wq->threads[i], NULL);
	pthread_mutex_destroy(&wq->mtx);
	pthread_cond_destroy(&wq->cv);
	free(wq->threads);
	free(wq->name);
	free(wq);
}

void
workq_submit(struct workq *wq, struct workq_port *port, workq_fn work,
    workq_fn done, void *arg)
{
	struct job *j = xcalloc(1, sizeof(*j));

	j->port = port;
	j->work = work;
	j->done = done;
	j->arg = arg;
	port->pending++;	/* loop thread only */
	pthread_mutex_lock(&wq->mtx);
	if (wq->tail != NULL)
		wq->tail->next = j;
	else
		wq->head = j;
	wq->tail = j;
	pthread_cond_signal(&wq->cv);
	pthread_mutex_unlock(&wq->mtx);
}

/* Run the done callbacks of every finished job (loop thread). */
static void
port_run(struct workq_port *p)
{
	struct job *list, *j;
	char buf[64];

	/* One read: a byte is written only when the list was empty, so
	 * at most a few wait here; one left over by a race just makes a
	 * spurious wake-up that finds the list empty. */
	(void)!read(p->rfd, buf, sizeof(buf));
	pthread_mutex_lock(&p->mtx);
	list = p->done_head;
	p->done_head = p->done_tail = NULL;
	for (j = list; j != NULL; j = j->next)
		p->finished--;
	pthread_mutex_unlock(&p->mtx);
	while ((j = list) != NULL) {
		list = j->next;
		p->pending--;
		if (j->done != NULL)
			j->done(j->arg);
		free(j);
	}
}

static void
port_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	port_run(arg);
}

struct workq_port *
workq_port_new(struct event_base *base, char *err, size_t errlen)
{
	struct workq_port *p;
	int fds[2];

	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) == -1) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return NULL;
	}
	p = xcalloc(1, sizeof(*p));
	p->base = base;
	p->rfd = fds[0];
	p->wfd = fds[1];
	pthread_mutex_init(&p->mtx, NULL);
	pthread_cond_init(&p->cv, NULL);
	if ((p->ev = event_new(base, p->rfd, EV_READ | EV_PERSIST, port_cb,
	    p)) == NULL || event_add(p->ev, NULL) == -1) {
		snprintf(err, errlen, "cannot add the completion event");
		workq_port_free(p);
		return NULL;
	}
	return p;
}

size_t
workq_port_pending(const struct workq_port *port)
{
	return port->pending;
}

void
workq_port_free(struct workq_port *p)
{
	if (p == NULL)
		return;
	/* Let every job finish; done callbacks may submit more. */
	while (p->pending > 0) {
		pthread_mutex_lock(&p->mtx);
		while (p->finished == 0)
			pthread_cond_wait(&p->cv, &p->mtx);
		pthread_mutex_unlock(&p->mtx);
		port_run(p);
	}
	if (p->ev != NULL)
		event_free(p->ev);
	close(p->rfd);
	close(p->wfd);
	pthread_mutex_destroy(&p->mtx);
	pthread_cond_destroy(&p->cv);
	free(p);
}
