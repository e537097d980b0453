/*
 * loopcall.c - function calls into another thread's event loop (see
 * loopcall.h).  An inbox is a list under a mutex and a pipe whose read
 * side is a persistent event of the target base; the poster appends and
 * writes one byte when the list was empty.  loopcall_run() waits on a
 * condition variable of its own call record.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "loopcall.h"
#include "util.h"

struct call {
	struct call	*next;
	void		(*fn)(void *);
	void		*arg;
	int		 wait;		/* loopcall_run: signal when done */
	int		 done;
	pthread_cond_t	 cv;
};

struct loopcall {
	struct event	*ev;
	int		 rfd, wfd;
	pthread_t	 owner;
	pthread_mutex_t	 mtx;
	struct call	*head, *tail;
};

static int
run_calls(struct loopcall *lc)
{
	struct call *list, *c;
	char buf[64];
	int n = 0;

	/* One read: a byte is written only when the list was empty, so
	 * at most a few wait here; one left over by a race just makes a
	 * spurious wake-up that finds the list empty. */
	(void)!read(lc->rfd, buf, sizeof(buf));
	pthread_mutex_lock(&lc->mtx);
	list = lc->head;
	lc->head = lc->tail = NULL;
	pthread_mutex_unlock(&lc->mtx);
	while ((c = list) != NULL) {
		list = c->next;
		c->fn(c->arg);
		n++;
		if (c->wait) {
			pthread_mutex_lock(&lc->mtx);
			c->done = 1;
			pthread_cond_signal(&c->cv);
			pthread_mutex_unlock(&lc->mtx);
		} else
			free(c);
	}
	return n;
}

int
loopcall_drain(struct loopcall *lc)
{
	return run_calls(lc);
}

static void
inbox_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	(void)run_calls(arg);
}

struct loopcall *
loopcall_new(struct event_base *base, char *err, size_t errlen)
{
	struct loopcall *lc;
	int fds[2];

	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) == -1) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return NULL;
	}
	lc = xcalloc(1, sizeof(*lc));
	lc->rfd = fds[0];
	lc->wfd = fds[1];
	lc->owner = pthread_self();
	pthread_mutex_init(&lc->mtx, NULL);
	if ((lc->ev = event_new(base, lc->rfd, EV_READ | EV_PERSIST, inbox_cb,
	    lc)) == NULL || event_add(lc->ev, NULL) == -1) {
		snprintf(err, errlen, "cannot add the inbox event");
		loopcall_free(lc);
		return NULL;
	}
	return lc;
}

void
loopcall_bind(struct loopcall *lc)
{
	pthread_mutex_lock(&lc->mtx);
	lc->owner = pthread_self();
	pthread_mutex_unlock(&lc->mtx);
}

void
loopcall_free(struct loopcall *lc)
{
	if (lc == NULL)
		return;
	(void)run_calls(lc);
	if (lc->ev != NULL)
		event_free(lc->ev);
	close(lc->rfd);
	close(lc->wfd);
	pthread_mutex_destroy(&lc->mtx);
	free(lc);
}

static void
enqueue(struct loopcall *lc, struct call *c)
{
	int wake;
	ssize_t r;

	pthread_mutex_lock(&lc->mtx);
	wake = lc->head == NULL;
	if (lc->tail != NULL)
		lc->tail->next = c;
	else
		lc->head = c;
	lc->tail = c;
	pthread_mutex_unlock(&lc->mtx);
	if (wake) {
		do
			r = write(lc->wfd, "x", 1);
		while (r == -1 && errno == EINTR);
	}
}

void
loopcall_post(struct loopcall *lc, void (*fn)(void *), void *arg)
{
	struct call *c = xcalloc(1, sizeof(*c));

	c->fn = fn;
	c->arg = arg;
	enqueue(lc, c);
}

void
loopcall_run(struct loopcall *lc, void (*fn)(void *), void *arg)
{
	struct call c;
	int own;

	pthread_mutex_lock(&lc->mtx);
	own = pthread_equal(pthread_self(), lc->owner);
	pthread_mutex_unlock(&lc->mtx);
	if (own) {
		fn(arg);
		return;
	}
	memset(&c, 0, sizeof(c));
	c.fn = fn;
	c.arg = arg;
	c.wait = 1;
	pthread_cond_init(&c.cv, NULL);
	enqueue(lc, &c);
	pthread_mutex_lock(&lc->mtx);
	while (!c.done)
		pthread_cond_wait(&c.cv, &lc->mtx);
	pthread_mutex_unlock(&lc->mtx);
	pthread_cond_destroy(&c.cv);
}
