/*
 * connlimit.h - connection limits shared by every worker's queue:
 * max_connections in all, max_connections_per_destination per domain.
 *
 * connlimit_take() takes one slot for a domain or says which limit is full;
 * a refused caller is remembered with its wake-up function and called
 * (once, from the thread that frees a slot, without the lock held) when
 * any slot is released, so a worker waiting for a destination that
 * another worker is using runs its queue as soon as it can.  The wake-up
 * must only post work to its own loop (loopcall_post, event_active ...).
 * Thread-safe.
 */
#ifndef DR_CONNLIMIT_H
#define DR_CONNLIMIT_H

struct connlimit;

enum connlimit_verdict { CONNLIMIT_OK = 0, CONNLIMIT_TOTAL, CONNLIMIT_DEST };

struct connlimit *connlimit_new(void);
void connlimit_free(struct connlimit *l);

enum connlimit_verdict connlimit_take(struct connlimit *l, const char *domain,
    int max_total, int max_dest, void (*wake)(void *), void *wakearg);
void connlimit_release(struct connlimit *l, const char *domain);
/* Forget a wake-up (its owner is going away). */
void connlimit_forget(struct connlimit *l, void *wakearg);

#endif
