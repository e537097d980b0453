/*
 * queue.c - the scheduler over the spool.
 *
 * Owns one in-memory record per spooled message (its envelope, loaded at
 * start or handed over by smtpd) and decides when each pending recipient
 * is tried: recipients of one message that share a domain go to the
 * delivery module as one job (one SMTP transaction, RFC 5321 §3.3),
 * within the global and per-destination concurrency limits.  Results are
 * written back to the envelope (spool_env_save_async: on the io pool,
 * never blocking the loop, at most one rewrite per message in flight and
 * the latest state written after it), so a crash forgets at most the
 * attempts whose rewrite had not finished: they are made again.  A
 * rewrite that fails is retried every SAVE_RETRY seconds until it works.
 * A deferred recipient waits min_backoff * 2^(n-1), capped at
 * max_backoff, with +-10% jitter; past queue_lifetime it fails.
 * A message whose recipients are all final is removed from the spool
 * (spool_remove_async); when that was its last delivery and no DSN is
 * owed, its envelope is not rewritten first: a crash just then at worst
 * delivers it again, which SMTP allows.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/event.h>

#include "bounce.h"
#include "config.h"
#include "delivery.h"
#include "dsn.h"
#include "local_milter.h"
#include "log.h"
#include "stats.h"
#include "queue.h"
#include "connlimit.h"
#include "policy.h"
#include "policy_table.h"
#include "spool.h"
#include "suspend.h"
#include "util.h"

/* Recipients in one SMTP transaction (Postfix: 50; RFC 5321 §4.5.3.1.8
 * requires servers to take at least 100). */
#define RCPT_PER_TXN	100
/* Seconds between tries of an envelope rewrite that failed (disk full). */
#define SAVE_RETRY	5

struct qmsg;

struct qjob {
	TAILQ_ENTRY(qjob) entry;
	struct queue *q;
	struct qmsg *m;
	struct dlv_job *job;
	char *domain;
	size_t *idx;
	size_t n;
	struct cl_slot *slot;	/* its connection slot (connlimit.h) */
	int relearn;		/* the domain's site to be learned */
	int borrowed;		/* let in for an own idle session */
};
TAILQ_HEAD(qjob_list, qjob);

struct qmsg {
	TAILQ_ENTRY(qmsg) entry;
	struct queue *q;
	struct spool_env *env;
	unsigned char *busy;	/* per recipient: in a job now */
	int njobs;
	int saving;		/* an envelope rewrite is in flight */
	int dirty;		/* the envelope changed since it started */
	int removing;		/* the removal is in flight */
	int gone;		/* out of q->msgs: freed when idle */
	int remove_after;	/* remove once the rewrite is back */
	/* non_smtpd_milters (local_milter.h): its DSN in the milters */
	struct lm_job *lmjob;
	int lm_delayed;		/* that DSN is a delay warning */
	int lm_tries;		/* milter tempfails in a row */
	time_t lm_retry;	/* after a tempfail: not before */
};
TAILQ_HEAD(qmsg_list, qmsg);

/* Another worker's queue, for the operations that span them all. */
struct qmember {
	struct queue *q;
	void (*call)(void *callarg, void (*fn)(void *), void *arg);
	void *callarg;
};

struct queue {
	struct event_base *base;
	const struct config *cf;
	struct spool *sp;
	struct delivery *dlv;
	struct qmsg_list msgs;
	struct qjob_list jobs;
	struct connlimit *limits;		/* shared by the workers' queues */
	int own_limits;
	void (*wake)(void *);		/* runs queue_kick() on our loop */
	void *wakearg;
	struct qmember *members;	/* queue_group_add() */
	size_t nmembers;
	unsigned shard, nshards;	/* which messages queue_load takes */
	size_t nmsgs;
	int active;
	int stopping;
	int in_run;
	struct event *timer;
	struct event *save_timer;	/* retries of failed rewrites */
	struct suspended susp;		/* domains not delivered to now */
	struct local_milter *lm;	/* non_smtpd_milters, or NULL */
};

static void queue_schedule(struct queue *q, double delay);
static void queue_sites(struct queue *q);
static void qmsg_save(struct queue *q, struct qmsg *m);

static char *
rcpt_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return str_lower(xstrdup(at != NULL ? at + 1 : ""));
}

static long long
backoff(const struct config *cf, int attempts)
{
	long long b = cf->min_backoff > 0 ? cf->min_backoff : 1;
	int i;

	for (i = 1; i < attempts && b < cf->max_backoff; i++)
		b *= 2;
	if (b > cf->max_backoff && cf->max_backoff > 0)
		b = cf->max_backoff;
	/* +-10% so that a burst of deferrals does not come back as a burst */
	if (b >= 10)
		b += (long long)(random() % (b / 5 + 1)) - b / 10;
	return b;
}

static void
qmsg_free(struct qmsg *m)
{
	if (m == NULL)
		return;
	spool_env_free(m->env);
	free(m->busy);
	free(m);
}

static int
qmsg_pending(const struct qmsg *m)
{
	size_t i;

	for (i = 0; i < m->env->nrcpt; i++)
		if (m->env->rcpts[i].state == RCPT_PENDING)
			return 1;
	return 0;
}

/* Free a message taken out of the queue once no disk work refers to it. */
static void
qmsg_release(struct qmsg *m)
{
	if (m->gone && !m->saving && !m->removing && m->lmjob == NULL)
		qmsg_free(m);
}

static void qmsg_remove(struct queue *q, struct qmsg *m);

static void
save_done(int rc, int error, const char *why, void *arg)
{
	struct qmsg *m = arg;
	struct queue *q = m->q;
	struct timeval tv = { SAVE_RETRY, 0 };

	m->saving = 0;
	if (rc == -1 && !m->gone) {
		log_warnx("%s: cannot record delivery results: %s (trying "
		    "again in %d seconds)", m->env->id, why, SAVE_RETRY);
		m->dirty = 1;
		if (q->save_timer != NULL &&
		    !evtimer_pending(q->save_timer, NULL))
			evtimer_add(q->save_timer, &tv);
		return;
	}
	if (m->remove_after) {
		qmsg_remove(q, m);
		return;
	}
	if (m->gone) {
		qmsg_release(m);
		return;
	}
	if (m->dirty)
		qmsg_save(q, m);
}

/*
 * Write the envelope back (on the pool).  One rewrite per message at a
 * time: a change made while one runs is written when it is back, so the
 * last state always reaches the disk, and never an older one after it.
 */
static void
qmsg_save(struct queue *q, struct qmsg *m)
{
	char err[256];

	if (m->saving) {
		m->dirty = 1;
		return;
	}
	m->dirty = 0;
	m->saving = 1;
	if (spool_env_save_async(q->sp, m->env, save_done, m, err,
	    sizeof(err)) == -1) {
		m->saving = 0;
		log_warnx("%s: cannot record delivery results: %s",
		    m->env->id, err);
	}
}

static void
save_retry(evutil_socket_t fd, short ev, void *arg)
{
	struct queue *q = arg;
	struct qmsg *m;

	TAILQ_FOREACH(m, &q->msgs, entry)
		if (m->dirty && !m->saving)
			qmsg_save(q, m);
}

static void
remove_done(int rc, int error, const char *why, void *arg)
{
	struct qmsg *m = arg;

	m->removing = 0;
	if (rc == -1)
		log_warnx("%s: cannot remove from spool: %s", m->env->id, why);
	else
		log_info("%s: removed", m->env->id);
	qmsg_release(m);
}

static void
qmsg_remove(struct queue *q, struct qmsg *m)
{
	m->remove_after = 0;
	m->removing = 1;
	if (spool_remove_async(q->sp, m->env->id, remove_done, m) == -1) {
		m->removing = 0;
		log_warn("%s: cannot remove from spool", m->env->id);
		qmsg_release(m);
	}
}

/* Out of the queue and off the spool, once the rewrite in flight is
 * back. */
static void
qmsg_forget(struct queue *q, struct qmsg *m)
{
	TAILQ_REMOVE(&q->msgs, m, entry);
	q->nmsgs--;
	m->gone = 1;
	m->dirty = 0;
	if (m->saving)
		m->remove_after = 1;	/* after the rewrite in flight */
	else
		qmsg_remove(q, m);
}

/*
 * non_smtpd_milters (local_milter.c): a DSN or delay warning passes the
 * milters before it is spooled.  Meanwhile the message stays in the
 * queue as it is (m->lmjob set: not finished, warned or freed twice), so
 * a crash loses nothing: the next start makes the DSN again.  A tempfail
 * leaves it as it was and tries again after a backoff; a reject or a
 * discard counts as sent (said loudly), so the message does not come
 * back for ever.  The job keeps the milter list it started with across a
 * reload.
 */
static void
qmsg_filtered(const struct lm_outcome *o, void *arg)
{
	struct qmsg *m = arg;
	struct queue *q = m->q;
	const char *kind = m->lm_delayed ? "delay" : "non-delivery";
	long long b;

	m->lmjob = NULL;
	switch (o->res) {
	case LM_TEMPFAIL:
		b = backoff(q->cf, ++m->lm_tries);
		m->lm_retry = time(NULL) + b;
		log_warnx("%s: sender %s notification deferred by the "
		    "non_smtpd_milters (%s); trying again in %llds",
		    m->env->id, kind, o->why != NULL ? o->why : "", b);
		if (!q->stopping)
			queue_schedule(q, (double)b);
		return;
	case LM_QUEUED:
		log_info("%s: sender %s notification: %s", m->env->id, kind,
		    o->env->id);
		queue_add(q, o->env);
		break;
	case LM_REJECTED:
	case LM_DISCARDED:
		log_warnx("%s: sender %s notification NOT sent: %s by the "
		    "non_smtpd_milters (%s)", m->env->id, kind,
		    o->res == LM_REJECTED ? "rejected" : "discarded",
		    o->why != NULL ? o->why : "");
		break;
	}
	m->lm_tries = 0;
	m->lm_retry = 0;
	if (m->lm_delayed) {
		m->env->delay_warned = 1;
		qmsg_save(q, m);
	} else if (!m->gone)
		qmsg_forget(q, m);
	if (!q->stopping)
		queue_schedule(q, 0);
}

/* The DSN (delayed 0) or delay warning (1) of m to the milters; 0 on its
 * way (or deferred), -1 it cannot be built now (said). */
static int
qmsg_filter(struct queue *q, struct qmsg *m, int delayed)
{
	struct spool_env *benv;
	char err[256], *text, *what;
	size_t len;

	if ((benv = bounce_build(q->sp, q->cf, m->env, delayed, &text, &len,
	    err, sizeof(err))) == NULL) {
		log_warnx("%s: cannot create %s notification: %s", m->env->id,
		    delayed ? "delay" : "delivery status", err);
		return -1;
	}
	what = xasprintf("%s notification for %s", delayed ? "delay" :
	    "non-delivery", m->env->id);
	m->lm_delayed = delayed;
	m->lmjob = local_milter_submit(q->base, q->lm, q->sp, what, benv,
	    text, len, NULL, NULL, qmsg_filtered, m, err, sizeof(err));
	free(what);
	if (m->lmjob == NULL) {
		struct lm_outcome o = { LM_TEMPFAIL, NULL, err };

		qmsg_filtered(&o, m);
	}
	return 0;
}

/* All recipients final: send the DSN we owe, then forget the message. */
static void
qmsg_finish(struct queue *q, struct qmsg *m)
{
	struct spool_env *dsn;
	char err[256];

	if (m->lmjob != NULL || m->lm_retry > time(NULL))
		return;		/* its DSN in the milters, or waiting */
	if (bounce_owed(m->env)) {
		if (q->lm != NULL) {
			(void)qmsg_filter(q, m, 0);
			return;	/* forgotten when the milters are done */
		}
		if ((dsn = bounce_spool(q->sp, q->cf, m->env, err,
		    sizeof(err))) == NULL) {
			/* Keep the message: the next start will try again. */
			log_warnx("%s: cannot create delivery status "
			    "notification: %s", m->env->id, err);
			return;
		}
		queue_add(q, dsn);
		spool_env_free(dsn);
	}
	qmsg_forget(q, m);
}

static void
qmsg_expire(struct queue *q, struct qmsg *m, time_t now)
{
	size_t i;
	int changed = 0;

	if (q->cf->queue_lifetime <= 0 ||
	    now - m->env->created < q->cf->queue_lifetime)
		return;
	for (i = 0; i < m->env->nrcpt; i++) {
		struct spool_rcpt *r = &m->env->rcpts[i];
		char *why;

		if (r->state != RCPT_PENDING || m->busy[i])
			continue;
		why = xasprintf("delivery time expired%s%s",
		    r->last_error ? ": " : "", r->last_error ? r->last_error : "");
		free(r->last_error);
		r->last_error = why;
		r->state = RCPT_FAILED;
		changed = 1;
		delivery_count(DLV_FAIL, NULL);
		delivery_count_latency(DLV_FAIL, m->env);
		log_info("%s: to=<%s>, status=expired, returned to sender (%s)",
		    m->env->id, r->addr, why);
	}
	if (changed)
		qmsg_save(q, m);
}

/* delay_warning_time: tell the sender once that the message is late. */
static void
qmsg_delay_warn(struct queue *q, struct qmsg *m, time_t now)
{
	struct spool_env *env = m->env, *dsn;
	char err[256];

	if (m->lmjob != NULL || m->lm_retry > now)
		return;		/* a DSN in the milters, or waiting */
	if (q->cf->delay_warning_time <= 0 || env->delay_warned ||
	    env->sender == NULL || env->sender[0] == '\0' || env->is_bounce ||
	    env->is_report || now - env->created < q->cf->delay_warning_time ||
	    !qmsg_pending(m))
		return;
	if (!bounce_delay_owed(env)) {
		/* NOTIFY without DELAY on every pending recipient */
		env->delay_warned = 1;
		qmsg_save(q, m);
		return;
	}
	if (q->lm != NULL) {
		(void)qmsg_filter(q, m, 1);
		return;		/* warned when the milters are done */
	}
	if ((dsn = bounce_delay_spool(q->sp, q->cf, env, err,
	    sizeof(err))) == NULL) {
		log_warnx("%s: cannot create delay notification: %s", env->id,
		    err);
		return;
	}
	queue_add(q, dsn);
	spool_env_free(dsn);
	env->delay_warned = 1;
	qmsg_save(q, m);
}

static void
job_done(struct dlv_job *job, const struct dlv_rcpt_result *res, size_t nres,
    void *arg)
{
	struct qjob *j = arg;
	struct queue *q = j->q;
	struct qmsg *m = j->m;
	time_t now = time(NULL);
	size_t i;
	int done;

	for (i = 0; i < j->n; i++)
		m->busy[j->idx[i]] = 0;
	for (i = 0; i < nres; i++) {
		struct spool_rcpt *r;

		if (res[i].rcpt >= m->env->nrcpt || res[i].not_tried)
			continue;	/* not tried: no attempt to count */
		r = &m->env->rcpts[res[i].rcpt];
		r->attempts++;
		if (res[i].text != NULL) {
			free(r->last_error);
			r->last_error = xstrdup(res[i].text);
		}
		if (res[i].relay != NULL) {
			free(r->relay);
			r->relay = xstrdup(res[i].relay);
		}
		switch (res[i].status) {
		case DLV_SENT:
			r->state = RCPT_DELIVERED;
			/* RFC 3461 §5.2.2: the next hop cannot report
			 * success, we say "relayed" */
			if (res[i].no_dsn &&
			    dsn_notify_wants(r->notify, DSN_NOTIFY_SUCCESS))
				r->relayed = 1;
			break;
		case DLV_FAIL:
			r->state = RCPT_FAILED;
			break;
		case DLV_DEFER: {
			/* a paused site: when the pause ends */
			long long b = res[i].retry_in > 0 ? res[i].retry_in :
			    backoff(q->cf, r->attempts);

			r->next_attempt = now + b;
			log_info("%s: to=<%s>, attempt %d deferred, next attempt "
			    "in %llds", m->env->id, r->addr, r->attempts, b);
			break;
		}
		}
	}
	TAILQ_REMOVE(&q->jobs, j, entry);
	m->njobs--;
	q->active--;
	connlimit_release(q->limits, j->slot);
	free(j->domain);
	free(j->idx);
	free(j);

	done = m->njobs == 0 && !qmsg_pending(m);
	/* The last results of a message that owes no DSN need no rewrite:
	 * it is removed next. */
	for (i = 0; i < nres && nres > 0; i++)
		if (!res[i].not_tried)
			break;
	if (i == nres)
		nres = 0;	/* nothing tried: nothing to write */
	if (nres > 0 && (!done || bounce_owed(m->env)))
		qmsg_save(q, m);
	if (done)
		qmsg_finish(q, m);
	if (!q->stopping)
		queue_schedule(q, 0);
}

/* An idle session of slot s in this worker's connection cache? */
static int
queue_own_idle(void *arg, const struct cl_slot *s)
{
	struct queue *q = arg;

	return q->dlv != NULL && delivery_has_idle(q->dlv, s);
}

/* A connection slot request for domain under the current config. */
static void
queue_req(struct queue *q, struct connlimit_req *rq, const char *domain)
{
	memset(rq, 0, sizeof(*rq));
	rq->domain = domain;
	rq->max_total = q->cf->max_connections;
	rq->max_dest = q->cf->max_connections_per_destination;
	rq->rate = &q->cf->destination_rate_limit;
	rq->by_domain = q->cf->limits_by_domain;
	rq->wake = q->wake;
	rq->wakearg = q->wakearg;
	rq->own_idle = queue_own_idle;
	rq->own_arg = q;
}

/*
 * Sites (issue #24, delivery.h's delivery_site_ops): a job's domain was
 * routed.  The first job of a domain (or one whose site was learned
 * CONNLIMIT_MAP_TTL ago) learns the site and the domain's policy_file
 * limits, and its slot moves there; a job the site cannot take now goes
 * back without an attempt (woken by a free slot, or at the time its
 * pause or rate says).
 */
static int
site_routed(void *arg, const char *domain, const struct decision *dec,
    const struct policy_entry *pe)
{
	struct qjob *j = arg;
	struct queue *q = j->q;
	struct connlimit_limits lim;
	struct connlimit_req rq;
	enum connlimit_verdict v;
	char *site = NULL;

	if (!j->relearn || j->slot == NULL)
		return 0;
	j->relearn = 0;
	memset(&lim, 0, sizeof(lim));
	queue_req(q, &rq, domain);
	rq.slot = j->slot;
	if (pe != NULL) {
		lim.max_connections = pe->max_connections;
		lim.max_msgs = pe->max_msgs;
		lim.rate = pe->rate;
	}
	if (!rq.by_domain)
		site = connlimit_site_key(dec, domain);
	v = connlimit_learn(q->limits, &rq, site, pe != NULL &&
	    (pe->max_connections || pe->max_msgs || pe->rate.count) ? &lim :
	    NULL);
	free(site);
	j->slot = rq.slot;
	if (v == CONNLIMIT_OK) {
		j->borrowed = rq.borrowed;
		return 0;
	}
	if (v == CONNLIMIT_LATER)
		queue_schedule(q, rq.retry_at - mono_now());
	return -1;
}

static struct cl_slot *
site_slot(void *arg, int *borrowed)
{
	struct qjob *j = arg;

	*borrowed = j->borrowed;
	return j->slot;
}

static long long
site_throttle(void *arg, const char *relay, const char *reply)
{
	struct qjob *j = arg;

	return connlimit_throttle(j->q->limits, j->slot,
	    j->q->cf->throttle_pause, relay, reply);
}

static void
site_success(void *arg, int new_conn)
{
	struct qjob *j = arg;

	connlimit_success(j->q->limits, j->slot, new_conn,
	    j->q->cf->max_connections_per_destination);
}

static const struct delivery_site_ops site_ops = {
	site_routed, site_slot, site_throttle, site_success,
};

/* The delivery engine's sessions count in our limits. */
static void
queue_sites(struct queue *q)
{
	if (q->dlv != NULL)
		delivery_set_sites(q->dlv, q->limits, &site_ops);
}

/* Start jobs for the due recipients of one message; 1 if limits hit. */
static int
qmsg_run(struct queue *q, struct qmsg *m, time_t now, time_t *next)
{
	struct spool_env *env = m->env;
	size_t i, k;

	for (i = 0; i < env->nrcpt; i++) {
		struct spool_rcpt *r = &env->rcpts[i];
		enum connlimit_verdict v;
		struct connlimit_req rq;
		struct qjob *j;
		char *dom;

		if (r->state != RCPT_PENDING || m->busy[i])
			continue;
		if (r->next_attempt > now) {
			if (*next == 0 || r->next_attempt < *next)
				*next = r->next_attempt;
			continue;
		}
		dom = rcpt_domain(r->addr);
		if (q->susp.n > 0 && suspend_has(&q->susp, dom)) {
			free(dom);	/* until queue resume */
			continue;
		}
		/* a finishing job, here or in another worker, wakes us */
		queue_req(q, &rq, dom);
		v = connlimit_take(q->limits, &rq);
		if (v == CONNLIMIT_TOTAL) {
			free(dom);
			return 1;
		}
		if (v != CONNLIMIT_OK) {
			free(dom);
			if (v == CONNLIMIT_LATER)	/* paused, rate */
				queue_schedule(q, rq.retry_at - mono_now());
			continue;
		}
		j = xcalloc(1, sizeof(*j));
		j->q = q;
		j->m = m;
		j->domain = dom;
		j->slot = rq.slot;
		j->relearn = rq.relearn;
		j->borrowed = rq.borrowed;
		j->idx = xcalloc(env->nrcpt, sizeof(*j->idx));
		/* every due recipient of this message in the same domain, up
		 * to the per-transaction limit (the rest: another job) */
		for (k = i; k < env->nrcpt && j->n < RCPT_PER_TXN; k++) {
			struct spool_rcpt *rk = &env->rcpts[k];
			char *dk;

			if (rk->state != RCPT_PENDING || m->busy[k] ||
			    rk->next_attempt > now)
				continue;
			dk = rcpt_domain(rk->addr);
			if (strcmp(dk, dom) == 0) {
				j->idx[j->n++] = k;
				m->busy[k] = 1;
			}
			free(dk);
		}
		q->active++;
		m->njobs++;
		TAILQ_INSERT_TAIL(&q->jobs, j, entry);
		j->job = delivery_start(q->dlv, env, dom, j->idx, j->n,
		    job_done, j);
		if (j->job == NULL) {
			/* cannot even start: treat as a deferral of nothing */
			log_warnx("%s: cannot start delivery to %s", env->id,
			    dom);
			for (k = 0; k < j->n; k++) {
				m->busy[j->idx[k]] = 0;
				env->rcpts[j->idx[k]].next_attempt = now +
				    q->cf->min_backoff;
			}
			TAILQ_REMOVE(&q->jobs, j, entry);
			m->njobs--;
			q->active--;
			connlimit_release(q->limits, j->slot);
			free(j->domain);
			free(j->idx);
			free(j);
		}
	}
	return 0;
}

static void
queue_run(evutil_socket_t fd, short ev, void *arg)
{
	struct queue *q = arg;
	struct qmsg *m, *tmp;
	time_t now = time(NULL), next = 0;

	if (q->stopping || q->dlv == NULL)
		return;
	q->in_run = 1;
	for (m = TAILQ_FIRST(&q->msgs); m != NULL; m = tmp) {
		tmp = TAILQ_NEXT(m, entry);
		if (m->env->hold)
			continue;
		qmsg_expire(q, m, now);
		qmsg_delay_warn(q, m, now);
		if (m->lm_retry > now && m->lmjob == NULL &&
		    (next == 0 || m->lm_retry < next))
			next = m->lm_retry;	/* a milter tempfail */
		if (m->njobs == 0 && !qmsg_pending(m)) {
			qmsg_finish(q, m);
			continue;
		}
		if (qmsg_run(q, m, now, &next))
			break;	/* global limit: a finishing job reschedules */
	}
	q->in_run = 0;
	if (next != 0)
		queue_schedule(q, (double)(next - now));
	if (!TAILQ_EMPTY(&q->msgs)) {
		/* expiry and delay warnings need a look now and then */
		double tick = 3600;

		if (q->cf->queue_lifetime > 0 && q->cf->queue_lifetime < tick)
			tick = (double)q->cf->queue_lifetime;
		if (q->cf->delay_warning_time > 0 &&
		    q->cf->delay_warning_time < tick)
			tick = (double)q->cf->delay_warning_time;
		queue_schedule(q, tick);
	}
}

/* Run the queue after delay seconds, or sooner if already armed sooner. */
static void
queue_schedule(struct queue *q, double delay)
{
	struct timeval tv, now_tv, left;
	struct timeval when;

	if (delay < 0)
		delay = 0;
	tv.tv_sec = (time_t)delay;
	tv.tv_usec = (suseconds_t)((delay - (double)tv.tv_sec) * 1e6);
	if (evtimer_pending(q->timer, &when)) {
		event_base_gettimeofday_cached(q->base, &now_tv);
		timersub(&when, &now_tv, &left);
		if (timercmp(&left, &tv, <=))
			return;
	}
	evtimer_add(q->timer, &tv);
}

/* non_smtpd_milters of q->cf: later DSNs pass them (one in the milters
 * keeps the list it started with). */
static void
queue_milters(struct queue *q)
{
	char err[512];

	local_milter_unref(q->lm);
	if ((q->lm = local_milter_new(q->cf, err, sizeof(err))) == NULL &&
	    err[0] != '\0')
		log_warnx("non_smtpd_milters: %s: DSNs pass no milter", err);
}

static struct qmsg *
qmsg_find(struct queue *q, const char *id)
{
	struct qmsg *m;

	TAILQ_FOREACH(m, &q->msgs, entry)
		if (strcmp(m->env->id, id) == 0)
			return m;
	return NULL;
}

static void
queue_insert(struct queue *q, struct spool_env *env)
{
	struct qmsg *m = xcalloc(1, sizeof(*m));

	m->q = q;
	m->env = env;
	m->busy = xcalloc(env->nrcpt ? env->nrcpt : 1, 1);
	TAILQ_INSERT_TAIL(&q->msgs, m, entry);
	q->nmsgs++;
}

/* The wake-up of a queue alone: every release happens on its own loop. */
static void
queue_kick_cb(void *arg)
{
	queue_schedule(arg, 0);
}

void
queue_kick(struct queue *q)
{
	if (!q->stopping)
		queue_schedule(q, 0);
}

void
queue_set_shared(struct queue *q, struct connlimit *l, void (*wake)(void *),
    void *wakearg)
{
	connlimit_forget(q->limits, q->wakearg);
	if (q->own_limits)
		connlimit_free(q->limits);
	q->limits = l;
	q->own_limits = 0;
	q->wake = wake;
	q->wakearg = wakearg;
	queue_sites(q);
}

void
queue_set_shard(struct queue *q, unsigned shard, unsigned nshards)
{
	q->shard = shard;
	q->nshards = nshards;
}

void
queue_group_add(struct queue *q, struct queue *member,
    void (*call)(void *callarg, void (*fn)(void *), void *arg),
    void *callarg)
{
	q->members = xrealloc(q->members, (q->nmembers + 1) *
	    sizeof(*q->members));
	q->members[q->nmembers].q = member;
	q->members[q->nmembers].call = call;
	q->members[q->nmembers].callarg = callarg;
	q->nmembers++;
}

/*
 * The worker that owns a message: the hash of its first recipient's
 * domain, so that one worker delivers (nearly) all mail for a domain and
 * its connections, DNS answers and MTA-STS state serve all of it.
 */
unsigned
queue_owner(const struct spool_env *env, unsigned n)
{
	const char *s = "", *at;
	unsigned h = 2166136261u;

	if (n <= 1)
		return 0;
	if (env->nrcpt > 0 && env->rcpts[0].addr != NULL)
		s = (at = strrchr(env->rcpts[0].addr, '@')) != NULL ? at + 1 :
		    env->rcpts[0].addr;
	for (; *s; s++)
		h = (h ^ (unsigned char)(*s >= 'A' && *s <= 'Z' ? *s + 32 :
		    *s)) * 16777619u;
	return h % n;
}

struct queue *
queue_new(struct event_base *base, const struct config *cf, struct spool *sp,
    struct delivery *dlv)
{
	struct queue *q = xcalloc(1, sizeof(*q));

	q->base = base;
	q->cf = cf;
	q->sp = sp;
	q->dlv = dlv;
	TAILQ_INIT(&q->msgs);
	TAILQ_INIT(&q->jobs);
	q->limits = connlimit_new();
	q->own_limits = 1;
	q->wake = queue_kick_cb;
	q->wakearg = q;
	q->timer = evtimer_new(base, queue_run, q);
	q->save_timer = evtimer_new(base, save_retry, q);
	queue_sites(q);
	queue_milters(q);
	return q;
}

int
queue_load(struct queue *q)
{
	char **ids, err[256];
	size_t n, i, loaded = 0;

	suspend_clear(&q->susp);
	if (suspend_load(q->cf->spool_dir, &q->susp, err, sizeof(err)) == -1)
		log_warnx("queue: suspended destinations: %s (none are "
		    "suspended)", err);
	else if (q->susp.n > 0 && q->shard == 0)
		log_info("queue: %zu destination%s suspended by the operator "
		    "(danerelay queue resume DOMAIN)", q->susp.n,
		    q->susp.n == 1 ? "" : "s");
	ids = spool_list_ids(q->sp, &n);
	for (i = 0; i < n; i++) {
		struct spool_env *env;

		if (qmsg_find(q, ids[i]) != NULL)
			continue;
		if (spool_env_load(q->sp, ids[i], &env, err, sizeof(err)) == -1) {
			log_warnx("%s: cannot load envelope: %s", ids[i], err);
			continue;
		}
		if (queue_owner(env, q->nshards) != q->shard) {
			spool_env_free(env);	/* another worker's */
			continue;
		}
		queue_insert(q, env);
		loaded++;
	}
	spool_ids_free(ids, n);
	if (q->nshards <= 1)
		log_info("queue: %zu messages loaded", loaded);
	queue_schedule(q, 0);
	return (int)loaded;
}

void
queue_add(struct queue *q, const struct spool_env *env)
{
	/* env is what the spool just made durable: no need to read it back
	 * from the disk. */
	queue_insert(q, spool_env_dup(env));
	queue_schedule(q, 0);
}

static int
one_flush(struct queue *q, const char *what)
{
	struct qmsg *m;
	int found = 0;
	size_t i;

	TAILQ_FOREACH(m, &q->msgs, entry) {
		int hit = what == NULL || strcmp(m->env->id, what) == 0;

		if (m->env->hold)
			continue;	/* held: only a release schedules it */

		for (i = 0; i < m->env->nrcpt; i++) {
			struct spool_rcpt *r = &m->env->rcpts[i];
			char *dom;

			if (r->state != RCPT_PENDING)
				continue;
			dom = rcpt_domain(r->addr);
			if (hit || strcasecmp(dom, what) == 0) {
				r->next_attempt = 0;
				found = 1;
			}
			free(dom);
		}
	}
	queue_schedule(q, 0);
	return found ? 0 : -1;
}

static int
one_hold(struct queue *q, const char *id, int on)
{
	struct qmsg *m = qmsg_find(q, id);

	if (m == NULL)
		return -1;
	if (m->env->hold != on) {
		m->env->hold = on;
		qmsg_save(q, m);
		log_info("%s: %s by the operator", id, on ? "held" : "released");
	}
	if (!on)
		queue_schedule(q, 0);
	return 0;
}

/* Cancel m's attempts in flight; their done() sees nres == 0, so every
 * recipient keeps its state. */
static void
qmsg_cancel(struct queue *q, struct qmsg *m)
{
	struct qjob *j, *tmp;

	for (j = TAILQ_FIRST(&q->jobs); j != NULL; j = tmp) {
		tmp = TAILQ_NEXT(j, entry);
		if (j->m == m) {
			m->njobs++;	/* keep m alive through job_done */
			delivery_cancel(j->job);
			m->njobs--;
		}
	}
}

static int
one_delete(struct queue *q, const char *id)
{
	struct qmsg *m = qmsg_find(q, id);

	if (m == NULL)
		return -1;
	qmsg_cancel(q, m);
	local_milter_cancel(m->lmjob);	/* its DSN is not sent */
	m->lmjob = NULL;
	/* the operator's delete is made durable at once (fsync) */
	if (spool_remove(q->sp, id) == -1)
		log_warn("%s: cannot remove from spool", id);
	else
		log_info("%s: removed by the operator", id);
	TAILQ_REMOVE(&q->msgs, m, entry);
	q->nmsgs--;
	m->gone = 1;
	m->dirty = 0;
	m->remove_after = 0;
	qmsg_release(m);	/* or when its rewrite in flight is back */
	return 0;
}

/* hold|release --domain: the messages with a recipient waiting there. */
static size_t
one_hold_domain(struct queue *q, const char *domain, int on)
{
	struct qmsg *m;
	size_t others, n = 0;

	TAILQ_FOREACH(m, &q->msgs, entry) {
		if (spool_env_pending_at(m->env, domain, &others) == 0 ||
		    m->env->hold == on)
			continue;
		m->env->hold = on;
		qmsg_save(q, m);
		log_info("%s: %s by the operator (recipients at %s)", m->env->id,
		    on ? "held" : "released", domain);
		n++;
	}
	if (!on && n > 0)
		queue_schedule(q, 0);
	return n;
}

/*
 * delete --domain, bounce ID and bounce --domain: the pending recipients
 * at domain (all of them for NULL) become final.  Deleted ones get no
 * DSN; bounced ones a DSN to the sender ("returned by the postmaster";
 * never to <>), sent with the others owed when the message has no
 * recipient left to deliver to.  A message left with nothing to do goes;
 * one deleted whole is removed from the spool at once, as by id.
 */
static int
qmsg_settle(struct queue *q, struct qmsg *m, const char *domain, int bounce)
{
	size_t n, others;

	if (spool_env_pending_at(m->env, domain, &others) == 0)
		return 0;
	qmsg_cancel(q, m);
	if (!bounce && others == 0 && !bounce_owed(m->env) &&
	    m->njobs == 0) {
		(void)one_delete(q, m->env->id);
		return 1;
	}
	n = spool_env_settle(m->env, domain, bounce ? RCPT_FAILED :
	    RCPT_DELETED, NULL);
	while (bounce && n-- > 0)
		delivery_count(DLV_FAIL, NULL);
	qmsg_save(q, m);	/* kept if the DSN cannot be made now */
	if (m->njobs == 0 && !qmsg_pending(m))
		qmsg_finish(q, m);
	return 1;
}

static size_t
one_settle_domain(struct queue *q, const char *domain, int bounce)
{
	struct qmsg *m, *tmp;
	size_t n = 0;

	for (m = TAILQ_FIRST(&q->msgs); m != NULL; m = tmp) {
		tmp = TAILQ_NEXT(m, entry);
		n += (size_t)qmsg_settle(q, m, domain, bounce);
	}
	return n;
}

static int
one_bounce(struct queue *q, const char *id)
{
	struct qmsg *m = qmsg_find(q, id);

	if (m == NULL)
		return -1;
	if (qmsg_settle(q, m, NULL, 1) == 0 && m->njobs == 0 &&
	    !qmsg_pending(m))
		qmsg_finish(q, m);	/* nothing was waiting: done anyway */
	return 0;
}

static void
one_suspend(struct queue *q, const char *domain, int on)
{
	if (suspend_set(&q->susp, domain, on) && !on)
		(void)one_flush(q, domain);	/* resume: go now */
}

static void
one_foreach(struct queue *q, void (*fn)(const struct spool_env *env,
    int active, void *arg), void *arg)
{
	struct qmsg *m;

	TAILQ_FOREACH(m, &q->msgs, entry)
		fn(m->env, m->njobs > 0, arg);
}

void
queue_reload(struct queue *q, const struct config *cf)
{
	q->cf = cf;
	queue_milters(q);
	queue_schedule(q, 0);
}

void
queue_stop(struct queue *q)
{
	if (!q->stopping)
		log_info("queue: stopping, %d deliveries in flight", q->active);
	q->stopping = 1;
	evtimer_del(q->timer);
}

/* Attempts still in flight are abandoned: their recipients keep their
 * state and next-attempt time, so a restart tries them again. */
static void
queue_cancel_all(struct queue *q)
{
	struct qjob *j;

	/* delivery_cancel calls job_done synchronously, which unlinks j */
	while ((j = TAILQ_FIRST(&q->jobs)) != NULL)
		delivery_cancel(j->job);
}

/*
 * Operations of the control socket and the metrics: on this queue and on
 * every member's (each on its own loop, through the member's call, which
 * waits for it).
 */
struct gop {
	int		 op;
	const char	*what;
	int		 on;
	int		 found;
	size_t		 n;
	void		(*fn)(const struct spool_env *, int, void *);
	void		*fnarg;
	struct queue	*q;	/* the member it runs on */
};

enum { G_FLUSH, G_HOLD, G_DELETE, G_FOREACH, G_ACTIVE, G_SIZE,
    G_HOLD_DOM, G_SETTLE_DOM, G_BOUNCE, G_SUSPEND };

static void
gop_run(void *arg)
{
	struct gop *g = arg;
	struct queue *q = g->q;

	switch (g->op) {
	case G_FLUSH:
		if (one_flush(q, g->what) == 0)
			g->found = 1;
		break;
	case G_HOLD:
		if (one_hold(q, g->what, g->on) == 0)
			g->found = 1;
		break;
	case G_DELETE:
		if (one_delete(q, g->what) == 0)
			g->found = 1;
		break;
	case G_FOREACH:
		one_foreach(q, g->fn, g->fnarg);
		break;
	case G_ACTIVE:
		g->n += (size_t)q->active;
		break;
	case G_SIZE:
		g->n += q->nmsgs;
		break;
	case G_HOLD_DOM:
		g->n += one_hold_domain(q, g->what, g->on);
		break;
	case G_SETTLE_DOM:
		g->n += one_settle_domain(q, g->what, g->on);
		break;
	case G_BOUNCE:
		if (one_bounce(q, g->what) == 0)
			g->found = 1;
		break;
	case G_SUSPEND:
		one_suspend(q, g->what, g->on);
		break;
	}
}

static void
group_each(struct queue *q, struct gop *g)
{
	size_t i;

	g->q = q;
	gop_run(g);
	for (i = 0; i < q->nmembers; i++) {
		g->q = q->members[i].q;
		q->members[i].call(q->members[i].callarg, gop_run, g);
	}
}

int
queue_flush(struct queue *q, const char *what)
{
	struct gop g = { .op = G_FLUSH, .what = what };

	group_each(q, &g);
	return g.found ? 0 : -1;
}

int
queue_hold(struct queue *q, const char *id, int on)
{
	struct gop g = { .op = G_HOLD, .what = id, .on = on };

	group_each(q, &g);
	return g.found ? 0 : -1;
}

int
queue_delete(struct queue *q, const char *id)
{
	struct gop g = { .op = G_DELETE, .what = id };

	group_each(q, &g);
	return g.found ? 0 : -1;
}

size_t
queue_hold_domain(struct queue *q, const char *domain, int on)
{
	struct gop g = { .op = G_HOLD_DOM, .what = domain, .on = on };

	group_each(q, &g);
	return g.n;
}

size_t
queue_delete_domain(struct queue *q, const char *domain)
{
	struct gop g = { .op = G_SETTLE_DOM, .what = domain, .on = 0 };

	group_each(q, &g);
	return g.n;
}

size_t
queue_bounce_domain(struct queue *q, const char *domain)
{
	struct gop g = { .op = G_SETTLE_DOM, .what = domain, .on = 1 };

	group_each(q, &g);
	return g.n;
}

int
queue_bounce(struct queue *q, const char *id)
{
	struct gop g = { .op = G_BOUNCE, .what = id };

	group_each(q, &g);
	return g.found ? 0 : -1;
}

void
queue_suspend(struct queue *q, const char *domain, int on)
{
	struct gop g = { .op = G_SUSPEND, .what = domain, .on = on };

	group_each(q, &g);
}

void
queue_foreach(struct queue *q, void (*fn)(const struct spool_env *env,
    int active, void *arg), void *arg)
{
	struct gop g = { .op = G_FOREACH, .fn = fn, .fnarg = arg };

	group_each(q, &g);
}

size_t
queue_active(const struct queue *q)
{
	struct gop g = { .op = G_ACTIVE };

	group_each((struct queue *)q, &g);
	return g.n;
}

size_t
queue_size(const struct queue *q)
{
	struct gop g = { .op = G_SIZE };

	group_each((struct queue *)q, &g);
	return g.n;
}

void
queue_free(struct queue *q)
{
	struct qmsg *m;

	if (q == NULL)
		return;
	queue_stop(q);
	queue_cancel_all(q);
	while ((m = TAILQ_FIRST(&q->msgs)) != NULL) {
		TAILQ_REMOVE(&q->msgs, m, entry);
		local_milter_cancel(m->lmjob);	/* made again next start */
		qmsg_free(m);
	}
	local_milter_unref(q->lm);
	event_free(q->timer);
	event_free(q->save_timer);
	connlimit_forget(q->limits, q->wakearg);
	if (q->own_limits)
		connlimit_free(q->limits);
	suspend_clear(&q->susp);
	free(q->members);
	free(q);
}
