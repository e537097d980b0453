/*
 * workq.h - slow work off the event loop: a pool of threads runs jobs,
 * and each job's completion comes back to the event loop it was
 * submitted from.
 *
 * An event loop never waits on a disk or on CPU-heavy work (fsync,
 * rename, unlink, crypt(3), SQLite writes, large reads).  Such work is a
 * job: work(arg) runs on one of the pool's threads, then done(arg) runs
 * on the submitting loop's thread, in that loop's callback context.  work
 * must touch only what the job owns (its arg) and thread-safe library
 * calls; done may touch everything the loop owns.
 *
 * Ownership: a pool (struct workq) is shared by every loop of the
 * process; a port (struct workq_port) belongs to one event base and is
 * the only place completions for that base are delivered (a pipe whose
 * read side is an event of that base).  Jobs are started in submission
 * order; with several threads they may finish in any order.
 *
 * workq_port_free() waits until every job submitted through the port has
 * finished and runs their done callbacks before returning (shutdown:
 * nothing is lost or left running against freed memory).
 */
#ifndef DR_WORKQ_H
#define DR_WORKQ_H

#include <stddef.h>

struct event_base;
struct workq;
struct workq_port;

typedef void (*workq_fn)(void *arg);

/* A pool of nthreads (>= 1) threads; name ("io", "cpu") is for logs. */
struct workq *workq_new(const char *name, int nthreads, char *err,
    size_t errlen);
/* Stops the threads once every queued job has run.  Every port must be
 * freed first.  Accepts NULL. */
void workq_free(struct workq *wq);
int workq_threads(const struct workq *wq);

/* The completion side for one event base. */
struct workq_port *workq_port_new(struct event_base *base, char *err,
    size_t errlen);
void workq_port_free(struct workq_port *port);

/*
 * Run work(arg) on wq, then done(arg) on port's loop (done may be NULL).
 * Never fails: memory exhaustion aborts like every xmalloc.
 */
void workq_submit(struct workq *wq, struct workq_port *port, workq_fn work,
    workq_fn done, void *arg);

/* Jobs submitted through port whose done has not yet run. */
size_t workq_port_pending(const struct workq_port *port);

#endif
