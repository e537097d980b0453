/*
 * local_milter.c - non_smtpd_milters: the milters that see the mail the
 * relay makes itself (delivery status notifications from the queue,
 * TLSRPT report mails), as Postfix runs non_smtpd_milters over mail that
 * did not come in by SMTP.
 *
 * A job is one message, one milter chain (milter.c) of its own, on the
 * caller's event loop: a fake connection from "localhost" [127.0.0.1]
 * with HELO "localhost" (what Postfix's cleanup sends for non-SMTP mail),
 * MAIL, each RCPT, then the message.  The milters' verdict:
 *   - reject (at any stage), or every recipient rejected: LM_REJECTED;
 *   - discard, or every recipient deleted: LM_DISCARDED;
 *   - tempfail (a milter's 4xx, or milter_default_action = tempfail for
 *     a milter that cannot be reached): LM_TEMPFAIL, nothing spooled;
 *   - accept/continue: their changes (sender, recipients, headers, body)
 *     applied, a quarantine puts the message on hold with the milter's
 *     reason (as smtpd does), the caller's signer runs on the final text
 *     (so a milter's header change does not break a DKIM signature),
 *     and the message is committed: LM_QUEUED.
 * The spool writer is opened first, so that the milters and the logs see
 * the queue id the message will have (the i macro); what it holds is
 * only written at the commit.  A crash before the commit leaves an empty
 * tmp/ file that spool recovery removes, and the caller, which forgets
 * nothing before the callback, makes the message again.
 *
 * Counters: danerelay_milter_{rejected,discarded,held}_total as for
 * smtpd's milters; failures to reach a milter are counted by milter.c.
 */
#include <netinet/in.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "config.h"
#include "envelope.h"
#include "local_milter.h"
#include "log.h"
#include "milter.h"
#include "spool.h"
#include "stats.h"
#include "util.h"

/* Postfix's fake client for non-SMTP mail (cleanup_milter.c). */
#define LM_CLIENT_NAME	"localhost"
#define LM_CLIENT_ADDR	"127.0.0.1"
#define LM_CLIENT_HELO	"localhost"

struct local_milter {
	int			 refs;
	struct milter_conf	*mc;
};

struct lm_job {
	struct local_milter	*lm;
	struct milter_chain	*chain;
	struct milter_client	 cl;
	struct spool		*sp;
	struct spool_writer	*w;
	char			 id[64];	/* the writer's queue id */
	char			*what;
	struct spool_env	*env;
	struct milter_msg	 msg;
	size_t			 next;		/* RCPT stage: next recipient */
	char			*last_reject;	/* a recipient's 5xx */
	lm_sign_cb		*sign;
	void			*signarg;
	lm_done_cb		*done;
	void			*arg;
};

struct milter_conf *
local_milter_conf(const struct config *cf, const char *list, char *err,
    size_t errlen)
{
	struct milter_params mp;
	struct milter_conf *mc;
	char why[400];
	int i;

	memset(&mp, 0, sizeof(mp));
	mp.list = list;
	mp.connect_timeout = cf->milter_connect_timeout;
	mp.command_timeout = cf->milter_command_timeout;
	mp.content_timeout = cf->milter_content_timeout;
	mp.protocol = cf->milter_protocol;
	mp.def = (enum milter_default)cf->milter_default_action;
	mp.hostname = cf->myhostname != NULL && *cf->myhostname ?
	    cf->myhostname : "localhost";
	for (i = 0; i < MILTER_NSTAGES; i++)
		mp.macros[i] = cf->milter_macros[i];
	if ((mc = milter_conf_new(&mp, why, sizeof(why))) == NULL) {
		snprintf(err, errlen, "milters: %s", why);
		return NULL;
	}
	return mc;
}

struct local_milter *
local_milter_new(const struct config *cf, char *err, size_t errlen)
{
	struct local_milter *lm;
	struct milter_conf *mc;

	if (errlen > 0)
		err[0] = '\0';
	if (cf->non_smtpd_milters == NULL || *cf->non_smtpd_milters == '\0')
		return NULL;
	if ((mc = local_milter_conf(cf, cf->non_smtpd_milters, err, errlen))
	    == NULL)
		return NULL;
	if (milter_conf_count(mc) == 0) {
		milter_conf_free(mc);
		return NULL;
	}
	lm = xcalloc(1, sizeof(*lm));
	lm->refs = 1;
	lm->mc = mc;
	return lm;
}

struct local_milter *
local_milter_ref(struct local_milter *lm)
{
	lm->refs++;
	return lm;
}

void
local_milter_unref(struct local_milter *lm)
{
	if (lm == NULL || --lm->refs > 0)
		return;
	milter_conf_free(lm->mc);
	free(lm);
}

static void
job_free(struct lm_job *j)
{
	milter_chain_free(j->chain);
	milter_msg_clear(&j->msg);
	spool_writer_abort(j->w);
	spool_env_free(j->env);
	local_milter_unref(j->lm);
	free(j->last_reject);
	free(j->what);
	free(j);
}

void
local_milter_cancel(struct lm_job *j)
{
	if (j != NULL)
		job_free(j);
}

static void
job_end(struct lm_job *j, enum lm_result res, const char *why)
{
	struct lm_outcome o;

	memset(&o, 0, sizeof(o));
	o.res = res;
	o.why = why;
	if (res == LM_QUEUED)
		o.env = j->env;
	j->done(&o, j->arg);
	job_free(j);
}

/* A verdict that ends the job before the commit, logged as smtpd does. */
static void
job_verdict(struct lm_job *j, const char *stage,
    const struct milter_verdict *v)
{
	enum lm_result res;

	if (v->act == MILTER_DISCARD) {
		stats_inc(S_MILTER_DISCARDED);
		res = LM_DISCARDED;
	} else {
		stats_inc(S_MILTER_REJECTED);
		res = v->act == MILTER_REJECT ? LM_REJECTED : LM_TEMPFAIL;
	}
	log_warnx("%s: milter-%s: %s from %s[%s]: %s; from=<%s> nrcpt=%zu: "
	    "%s %s", j->id, res == LM_DISCARDED ? "discard" : "reject", stage,
	    LM_CLIENT_NAME, LM_CLIENT_ADDR, v->reply, j->env->sender,
	    j->env->nrcpt, j->what, res == LM_TEMPFAIL ? "deferred" :
	    "not sent");
	job_end(j, res, v->reply);
}

/* The milters' recipients replace the envelope's (kept ones keep their
 * DSN settings). */
static void
job_rcpts(struct lm_job *j)
{
	struct spool_env *old = spool_env_new();
	struct spool_rcpt *r;
	size_t i, k;

	old->rcpts = j->env->rcpts;
	old->nrcpt = j->env->nrcpt;
	j->env->rcpts = NULL;
	j->env->nrcpt = 0;
	for (i = 0; i < j->msg.nrcpt; i++) {
		r = spool_env_add_rcpt(j->env, j->msg.rcpts[i].addr);
		for (k = 0; k < old->nrcpt; k++)
			if (strcasecmp(old->rcpts[k].addr, r->addr) == 0)
				break;
		if (k < old->nrcpt) {
			r->notify = old->rcpts[k].notify;
			if (old->rcpts[k].orcpt != NULL)
				r->orcpt = xstrdup(old->rcpts[k].orcpt);
		} else
			log_info("%s: milter: recipient <%s> added", j->id,
			    r->addr);
	}
	for (k = 0; k < old->nrcpt; k++) {
		for (i = 0; i < j->env->nrcpt; i++)
			if (strcasecmp(old->rcpts[k].addr,
			    j->env->rcpts[i].addr) == 0)
				break;
		if (i == j->env->nrcpt)
			log_info("%s: milter: recipient <%s> deleted", j->id,
			    old->rcpts[k].addr);
	}
	spool_env_free(old);
}

/* Apply the changes, sign, commit. */
static void
job_commit(struct lm_job *j)
{
	struct milter_msg *m = &j->msg;
	char err[512], *text;
	size_t len, i;

	if (m->changed_sender) {
		log_info("%s: milter: sender <%s> -> <%s>", j->id,
		    j->env->sender, m->sender);
		free(j->env->sender);
		j->env->sender = xstrdup(m->sender);
	}
	if (m->changed_rcpts)
		job_rcpts(j);
	if (j->env->nrcpt == 0) {
		stats_inc(S_MILTER_DISCARDED);
		log_warnx("%s: milter: every recipient deleted: %s not sent",
		    j->id, j->what);
		job_end(j, LM_DISCARDED, "every recipient deleted");
		return;
	}
	if (m->quarantine != NULL) {
		stats_inc(S_MILTER_HELD);
		log_warnx("%s: milter: hold: %s", j->id, m->quarantine);
		j->env->hold = 1;
		for (i = 0; i < j->env->nrcpt; i++) {
			free(j->env->rcpts[i].last_error);
			j->env->rcpts[i].last_error = xasprintf("held by a "
			    "milter: %s", m->quarantine);
		}
	}
	len = evbuffer_get_length(m->data);
	text = xmalloc(len + 1);
	if (evbuffer_remove(m->data, text, len) != (int)len) {
		free(text);
		job_end(j, LM_TEMPFAIL, "cannot read the filtered message");
		return;
	}
	milter_msg_clear(m);
	if (j->sign != NULL && j->sign(&text, &len, j->signarg) == -1) {
		free(text);
		job_end(j, LM_TEMPFAIL, "signing failed");
		return;
	}
	if (spool_writer_write(j->w, text, len) == -1) {
		snprintf(err, sizeof(err), "write: %s", strerror(errno));
		goto fail;
	}
	if (spool_writer_commit(j->w, j->env, err, sizeof(err)) == -1) {
		j->w = NULL;	/* the commit aborted it */
		goto fail;
	}
	j->w = NULL;		/* committed: the writer is gone */
	free(text);
	job_end(j, LM_QUEUED, NULL);
	return;
 fail:
	free(text);
	log_warnx("%s: cannot spool the filtered %s: %s", j->id, j->what,
	    err);
	job_end(j, LM_TEMPFAIL, err);
}

static void
msg_done(const struct milter_verdict *v, void *arg)
{
	struct lm_job *j = arg;

	if (v->act != MILTER_CONTINUE) {
		job_verdict(j, "END-OF-MESSAGE", v);
		return;
	}
	job_commit(j);
}

static void
job_message(struct lm_job *j)
{
	milter_message(j->chain, &j->cl, &j->msg, msg_done, j);
}

static void rcpt_done(const struct milter_verdict *, void *);

/* The next recipient to the milters, or the message after the last. */
static void
job_rcpt_next(struct lm_job *j)
{
	struct milter_verdict v;

	if (j->next < j->env->nrcpt) {
		milter_rcpt(j->chain, &j->cl, j->env->rcpts[j->next].addr,
		    NULL, rcpt_done, j);
		return;
	}
	if (j->msg.nrcpt == 0) {
		/* every recipient refused: the message is */
		memset(&v, 0, sizeof(v));
		v.act = MILTER_REJECT;
		dr_strlcpy(v.reply, j->last_reject != NULL ? j->last_reject :
		    "550 5.7.1 Command rejected", sizeof(v.reply));
		job_verdict(j, "RCPT", &v);
		return;
	}
	job_message(j);
}

static void
rcpt_done(const struct milter_verdict *v, void *arg)
{
	struct lm_job *j = arg;
	const char *addr = j->env->rcpts[j->next].addr;
	struct milter_rcpt *r;

	j->next++;
	switch (v->act) {
	case MILTER_REJECT:
		stats_inc(S_MILTER_REJECTED);
		log_warnx("%s: milter-reject: RCPT from %s[%s]: %s; from=<%s> "
		    "to=<%s>", j->id, LM_CLIENT_NAME, LM_CLIENT_ADDR, v->reply,
		    j->env->sender, addr);
		free(j->last_reject);
		j->last_reject = xstrdup(v->reply);
		break;
	case MILTER_CONTINUE:
		j->msg.rcpts = xrealloc(j->msg.rcpts, (j->msg.nrcpt + 1) *
		    sizeof(*j->msg.rcpts));
		r = &j->msg.rcpts[j->msg.nrcpt++];
		r->addr = xstrdup(addr);
		r->args = NULL;
		break;
	default:		/* tempfail, discard: for the whole message */
		job_verdict(j, "RCPT", v);
		return;
	}
	job_rcpt_next(j);
}

static void
mail_done(const struct milter_verdict *v, void *arg)
{
	struct lm_job *j = arg;

	if (v->act != MILTER_CONTINUE) {
		job_verdict(j, "MAIL", v);
		return;
	}
	job_rcpt_next(j);
}

struct lm_job *
local_milter_submit(struct event_base *base, struct local_milter *lm,
    struct spool *sp, const char *what, struct spool_env *env, char *msg,
    size_t len, lm_sign_cb *sign, void *signarg, lm_done_cb *done,
    void *arg, char *err, size_t errlen)
{
	struct lm_job *j = xcalloc(1, sizeof(*j));
	struct sockaddr_in *sin;

	j->lm = local_milter_ref(lm);
	j->sp = sp;
	j->what = xstrdup(what);
	j->env = env;
	j->sign = sign;
	j->signarg = signarg;
	j->done = done;
	j->arg = arg;
	if ((j->w = spool_writer_new(sp, err, errlen)) == NULL ||
	    (j->chain = milter_chain_new(base, lm->mc)) == NULL ||
	    (j->msg.data = evbuffer_new()) == NULL ||
	    evbuffer_add(j->msg.data, msg, len) == -1) {
		if (j->w != NULL)
			snprintf(err, errlen, "cannot set up the milters");
		free(msg);
		job_free(j);
		return NULL;
	}
	free(msg);
	dr_strlcpy(j->id, spool_writer_id(j->w), sizeof(j->id));
	j->msg.sender = xstrdup(env->sender);
	sin = (struct sockaddr_in *)(void *)&j->cl.ss;
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	j->cl.addr = LM_CLIENT_ADDR;
	j->cl.name = LM_CLIENT_NAME;
	j->cl.helo = LM_CLIENT_HELO;
	j->cl.queue_id = j->id;
	log_info("%s: %s to the non_smtpd_milters: from=<%s> nrcpt=%zu",
	    j->id, what, env->sender, env->nrcpt);
	milter_mail(j->chain, &j->cl, env->sender, NULL, mail_done, j);
	return j;
}
