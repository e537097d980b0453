/*
 * senderlimit.h - sender_rate_limit: recipients accepted per sender in a
 * time window, over every worker's inbound sessions.
 *
 * A sender is an authenticated user ("user NAME") or, for a client
 * allowed by its address, the envelope sender's domain ("domain NAME";
 * "<>" for the null sender).  Each has one fixed window: it starts with
 * the sender's first recipient and lasts the rate's period; within it at
 * most the rate's count of recipients is accepted.  The counts live in
 * memory only (a restart forgets them) in one table under a mutex, of at
 * most SENDERLIMIT_MAX senders: when it is full, senders whose window is
 * over are dropped, else the one with the fewest recipients, so a sender
 * near its limit is never the one forgotten.  Thread-safe.
 */
#ifndef DR_SENDERLIMIT_H
#define DR_SENDERLIMIT_H

#include <stddef.h>
#include <time.h>

#include "util.h"

#define SENDERLIMIT_MAX		10000
#define SENDERLIMIT_KEY_MAX	320	/* "domain " or "user " + name */

struct senderlimit;

struct senderlimit_entry {
	char		key[SENDERLIMIT_KEY_MAX];
	int		count;		/* recipients in the window */
	time_t		start;		/* the window's start */
};

struct senderlimit *senderlimit_new(void);
void senderlimit_free(struct senderlimit *l);
/*
 * One more recipient for key under rate (count > 0) at now: 0 accepted
 * and counted, 1 refused (the window is full; e->count is the limit
 * reached, e->start + rate->per when it ends).  e may be NULL.
 */
int senderlimit_take(struct senderlimit *l, const char *key,
    const struct rate *rate, time_t now, struct senderlimit_entry *e);
/* Up to n senders with the most recipients in a window still open at
 * now (windows of per seconds), most first: how many. */
size_t senderlimit_top(struct senderlimit *l, long long per, time_t now,
    struct senderlimit_entry *out, size_t n);

#endif
