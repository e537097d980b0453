/*
 * queue.h - the scheduler over the spool: which recipient is due when,
 * retries with backoff, expiry, limits on concurrent deliveries.
 */
#ifndef DR_QUEUE_H
#define DR_QUEUE_H

#include <stddef.h>

struct event_base;
struct config;
struct spool;
struct spool_env;
struct delivery;

struct queue;
struct connlimit;

struct queue *queue_new(struct event_base *base, const struct config *cf,
    struct spool *sp, struct delivery *dlv);
/* Load every message of the spool and schedule it. 0 ok. */
/* Load the spool's messages (of this queue's shard); how many. */
int queue_load(struct queue *q);
/* A message just committed by smtpd (or a bounce/report we generated). */
void queue_add(struct queue *q, const struct spool_env *env);
/* Retry now: everything (id NULL), one queue id, or one domain. */
int queue_flush(struct queue *q, const char *id_or_domain);
/* Hold (on = 1) or release (on = 0) a message: a held message is not
 * delivered and does not expire.  0 ok, -1 no such message. */
int queue_hold(struct queue *q, const char *id, int on);
/* Remove a message from the queue and the spool (an attempt in flight is
 * cancelled first; its outcome is discarded).  0 ok, -1 no such message. */
int queue_delete(struct queue *q, const char *id);
/*
 * The operator's actions by recipient domain (lower case): hold or
 * release the messages with a recipient waiting there; delete or bounce
 * (DSN "returned by the postmaster", never to <>) the recipients waiting
 * there, and a message left with nothing to do goes.  -> how many
 * messages were touched.  queue_bounce(): every waiting recipient of one
 * message; -1 when there is no such message.
 */
size_t queue_hold_domain(struct queue *q, const char *domain, int on);
size_t queue_delete_domain(struct queue *q, const char *domain);
size_t queue_bounce_domain(struct queue *q, const char *domain);
int queue_bounce(struct queue *q, const char *id);
/* A destination was suspended (on = 1) or resumed in the file
 * (suspend.h): every worker's queue takes it; a resumed one is tried now. */
void queue_suspend(struct queue *q, const char *domain, int on);
/* Call fn for every message (for the control socket's listing). */
void queue_foreach(struct queue *q, void (*fn)(const struct spool_env *env,
    int active, void *arg), void *arg);
void queue_reload(struct queue *q, const struct config *cf);
/* Stop starting deliveries; those in flight go on (see queue_active()).
 * queue_free() abandons what is still in flight: those recipients keep
 * their state and are tried again after a restart. */
void queue_stop(struct queue *q);
size_t queue_active(const struct queue *q);
size_t queue_size(const struct queue *q);
void queue_free(struct queue *q);

/*
 * Several workers (README "Architecture"): each worker has a queue on its
 * own loop.  queue_set_shared() makes them count connections in one
 * shared table; wake(wakearg) must run queue_kick(q) on q's loop (it may
 * be called from another thread).  queue_set_shard(): queue_load() takes
 * the messages that queue_owner() gives to shard of nshards.  queue_group_add()
 * makes queue_flush/hold/delete/foreach/active/size on q span member too,
 * running there through call(callarg, fn, arg), which must run fn(arg) on
 * member's loop and wait for it.
 */
void queue_set_shared(struct queue *q, struct connlimit *l,
    void (*wake)(void *), void *wakearg);
void queue_set_shard(struct queue *q, unsigned shard, unsigned nshards);
/* Which of n workers owns env (its first recipient's domain's hash). */
unsigned queue_owner(const struct spool_env *env, unsigned n);
void queue_kick(struct queue *q);
void queue_group_add(struct queue *q, struct queue *member,
    void (*call)(void *callarg, void (*fn)(void *), void *arg),
    void *callarg);

#endif
