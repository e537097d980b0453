/*
 * local_milter.h - mail the relay makes itself (DSNs, TLSRPT report
 * mails) through the non_smtpd_milters before it is spooled, as Postfix
 * sends its non-SMTP mail through non_smtpd_milters (local_milter.c).
 *
 * The caller builds the message and its envelope; local_milter_submit()
 * runs the milters on the caller's event loop (never blocking it),
 * applies their changes, lets the caller sign the result (DKIM must come
 * after the milters) and commits it to the spool.  One callback says
 * what became of it.  Nothing is spooled before the milters are done, so
 * a crash in the middle loses nothing the caller has not kept: the
 * caller only forgets what it owed (removes the bounced message, marks
 * the report sent) once the callback says so.
 */
#ifndef DR_LOCAL_MILTER_H
#define DR_LOCAL_MILTER_H

#include <stddef.h>

struct config;
struct event_base;
struct milter_conf;
struct spool;
struct spool_env;

/* The milters of a settings snapshot, reference-counted: a message in
 * the milters keeps the list it started with across a reload. */
struct local_milter;

/* NULL without non_smtpd_milters (err "") or when they cannot be set
 * up (err says why). */
struct local_milter *local_milter_new(const struct config *cf, char *err,
    size_t errlen);
struct local_milter *local_milter_ref(struct local_milter *lm);
void local_milter_unref(struct local_milter *lm);

/* The milters of list with cf's milter_* settings (shared with smtpd's
 * `milters`); NULL and err if bad. */
struct milter_conf *local_milter_conf(const struct config *cf,
    const char *list, char *err, size_t errlen);

enum lm_result {
	LM_QUEUED = 0,		/* committed (held, if a milter said so) */
	LM_REJECTED,		/* a milter refused it: not sent */
	LM_DISCARDED,		/* a milter dropped it (or every recipient) */
	LM_TEMPFAIL,		/* try again later: nothing was spooled */
};

struct lm_outcome {
	enum lm_result	 res;
	struct spool_env *env;	/* LM_QUEUED: the committed envelope (id
				 * set); valid during the callback only */
	const char	*why;	/* the milter's reply or the error */
};

/* Sign the filtered message: may replace *msg (malloc'ed) and *len.
 * 0 go on, -1 do not send it now (LM_TEMPFAIL). */
typedef int lm_sign_cb(char **msg, size_t *len, void *arg);
typedef void lm_done_cb(const struct lm_outcome *o, void *arg);

struct lm_job;

/*
 * Filter env's message msg (len bytes, CRLF lines; both taken) and
 * commit it to sp.  what names it in the logs ("DSN for ID", "TLSRPT
 * report").  done is called once, never before this returns.  NULL and
 * err when it cannot even start (env and msg are freed): a tempfail.
 */
struct lm_job *local_milter_submit(struct event_base *base,
    struct local_milter *lm, struct spool *sp, const char *what,
    struct spool_env *env, char *msg, size_t len, lm_sign_cb *sign,
    void *signarg, lm_done_cb *done, void *arg, char *err, size_t errlen);
/* Stop a job (done is not called); nothing is spooled. */
void local_milter_cancel(struct lm_job *job);

#endif
