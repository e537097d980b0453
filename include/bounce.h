/*
 * bounce.h - delivery status notifications (RFC 3464) for recipients that
 * failed permanently or expired, sent with the null sender through our own
 * queue.  Never for a message whose sender is <> (RFC 5321 §4.5.5).
 */
#ifndef DR_BOUNCE_H
#define DR_BOUNCE_H

#include <stddef.h>

struct spool;
struct spool_env;
struct config;
struct queue;

/* 1 if a DSN is owed: a recipient FAILED and the sender is not <>. */
int bounce_owed(const struct spool_env *env);
/* Build and spool the DSN, hand it to the queue (q may be NULL). */
int bounce_enqueue(struct spool *sp, const struct config *cf,
    const struct spool_env *env, struct queue *q, char *err, size_t errlen);

/* A delay warning (RFC 3464 Action: delayed) for the pending recipients. */
int bounce_delay_enqueue(struct spool *sp, const struct config *cf,
    const struct spool_env *env, struct queue *q, char *err, size_t errlen);

#endif
