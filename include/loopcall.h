/*
 * loopcall.h - run a function on another thread's event loop.
 *
 * A worker's loop owns its sessions, queue and delivery engine; another
 * thread never touches them directly.  It asks the owning loop instead:
 * loopcall_post() queues fn(arg) to run on that loop and returns at once;
 * loopcall_run() queues it and waits until it has run.  Calls run in
 * the order they were made, on the loop, like any other event.
 *
 * Deadlock rule: only the main thread (worker 0) ever waits for another
 * loop (loopcall_run); workers only post.  A call to one's own loop runs
 * at once.
 */
#ifndef DR_LOOPCALL_H
#define DR_LOOPCALL_H

#include <stddef.h>

struct event_base;
struct loopcall;

/* The inbox of base's loop.  loopcall_bind() (from the thread that will
 * run base) says which thread that is; until then it is the creator's. */
struct loopcall *loopcall_new(struct event_base *base, char *err,
    size_t errlen);
void loopcall_bind(struct loopcall *lc);
/* Calls still queued run first.  Accepts NULL. */
void loopcall_free(struct loopcall *lc);

void loopcall_post(struct loopcall *lc, void (*fn)(void *), void *arg);
void loopcall_run(struct loopcall *lc, void (*fn)(void *), void *arg);
/* Run what is queued now, on the calling thread (shutdown, once the
 * loop's own thread is gone); the number of calls run. */
int loopcall_drain(struct loopcall *lc);

#endif
