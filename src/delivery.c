/*
 * delivery.c - the delivery engine: one job = the recipients of one message
 * for one destination domain.
 *
 * A job routes the domain (route.c: DNS with DNSSEC states, then the pure
 * policy decision), then walks the candidate hosts in order, and each
 * host's addresses, with an SMTP session (smtp_client.c) that enforces the
 * host's TLS requirement.  Host-level failures before the transaction
 * (connection, greeting, EHLO, missing STARTTLS, TLS handshake or
 * verification failure) move on to the next address/host; they never
 * lower the TLS requirement (RFC 7672 §2.2, RFC 8461 §5).  So does a
 * session that breaks inside the transaction before any reply code
 * about the message (connection lost, timeout before the final ".").
 * Otherwise a transaction's replies are final for this attempt, by
 * their class, also a reply in the middle of the body: 2xx delivered,
 * 4xx deferred, 5xx failed.  When no host is left the recipients are
 * deferred with the last reason.
 *
 * Every attempt logs one line per recipient, Postfix style:
 *   ID: to=<a@b>, relay=mx.b[192.0.2.1]:25, tls=TLSv1.3/..., auth=dane-ee,
 *   tlsa="3 1 1 ...", delay=0.21, status=sent (250 2.0.0 Ok)
 *
 * Config and policy table across SIGHUP (issue #13): the engine holds a
 * reference on its current config and policy table; delivery_reload()
 * takes references on the new ones and drops the old.  A job holds a
 * reference on the config it started under and uses it for its whole
 * life (route, smtp_port, EHLO name, timeouts); its route holds its own
 * on the config and the table.  So the daemon may free the old config
 * at once after a reload, whatever the jobs in flight are waiting on
 * (DNS, an MTA-STS fetch, a server).  The SMTP client copies what it
 * keeps of its params (smtp_client_connect()), so a cached session
 * depends on neither.
 */
#include <sys/mman.h>

#include <errno.h>
#include <stdarg.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/queue.h>

#include <event2/event.h>

#include <openssl/x509.h>

#include "config.h"
#include "conn_cache.h"
#include "connlimit.h"
#include "delivery.h"
#include "log.h"
#include "stats.h"
#include "mime7bit.h"
#include "mta_sts.h"
#include "policy.h"
#include "policy_table.h"
#include "source_table.h"
#include "resolver.h"
#include "route.h"
#include "smtp_client.h"
#include "smtp_reply.h"
#include "spool.h"
#include "tls.h"
#include "tls_memory.h"
#include "tlsrpt_record.h"
#include "util.h"
#include "workq.h"

struct delivery {
	struct event_base *base;
	const struct config *cf;	/* current; a reference */
	struct spool *sp;
	const struct delivery_deps *deps;	/* resolver, policy table,
						 * SSL_CTX, MTA-STS: main.c's */
	struct conn_cache *cache;	/* idle sessions (conn_cache.c) */
	int stopping;		/* shutting down */
	struct tlsrpt *rpt;	/* TLSRPT recorder, not owned (NULL: off) */
	struct workq *wq;	/* io pool for 7-bit conversions (NULL:
				 * on the loop), not owned */
	struct workq_port *port;
	const struct delivery_site_ops *site;	/* the queue's (issue #24) */
};

/* The 7-bit copy of a job's message (RFC 6152 §3). */
enum conv_state {
	CONV_NONE = 0,		/* not needed so far */
	CONV_RUNNING,		/* on the io pool */
	CONV_DONE,		/* conv_fd holds it */
	CONV_IMPOSSIBLE,	/* 8-bit headers or signed parts: 5.6.3 */
	CONV_FAILED,		/* read/write error: defer */
};
struct conv_job {
	struct dlv_job *j;
	int in_fd, out_fd;
	off_t in_size, out_size;
	int rc;
	char err[256];
};

struct dlv_job {
	struct delivery *d;
	const struct config *cf;	/* the job's own; a reference */
	const struct spool_env *env;
	char *domain;
	dlv_done_cb *cb;
	void *arg;
	double start;

	struct route *rt;
	const struct decision *dec;
	struct decision own_dec;	/* bounce_relay: no route */
	int port;		/* destination port */
	struct event *kick;
	size_t host;		/* current index in dec->hosts */
	size_t addr;		/* current index in its addrs */
	struct smtp_client *c;
	char relay[320];
	char *key;		/* connection cache key of the session */
	int reused;		/* the session came from the cache */
	int no_reuse;		/* a cached session failed: connect fresh */
	int plain_retry;	/* opportunistic TLS failed: once in clear */
	int data_fd;
	/* source_table (issue #24): the sender's source addresses and HELO
	 * name, NULL: smtp_bind_address and myhostname */
	struct source_table *st;	/* a reference while src is used */
	const struct source_entry *src;
	/* TLS memory (issue #23) on the current host */
	int mem_applies;	/* default_policy ended in "may" here */
	enum tlsmem_level mem;	/* what the host is held to (NONE: free) */
	time_t mem_seen;	/* when the domain's TLS was last seen */

	/* per recipient of the job */
	struct dlv_rcpt_result *res;
	int *final;		/* decided in this attempt */
	int *code;		/* RCPT reply code in the current session */
	char **rtext;		/* RCPT reply text in the current session */
	size_t n;
	unsigned *sendnotify;	/* their NOTIFY and ORCPT (RFC 3461) */
	const char **sendorcpt;
	const char **sendto;	/* addresses of the current transaction */
	size_t *sendidx;	/* their job indexes */
	size_t nsend;

	char *last_error;	/* why the last host did not work */
	/* smtp_max_addresses, smtp_max_sessions in this attempt */
	int naddrs_tried;
	int nsessions;		/* sessions that reached a server */
	size_t at_host, at_addr;	/* last address counted (host + 1) */

	/* 8-bit message, server without 8BITMIME: a 7-bit copy */
	enum conv_state conv;
	int conv_fd;
	off_t conv_size;
	char *conv_err;
	int conv_wait;		/* j->c is ready and waits for it */
	int dead;		/* finished: free when the conversion ends */
	long long pause;	/* the site paused after a throttle reply */
	int borrow_done;	/* the borrowed idle session dealt with */
};

static void job_next_host(struct dlv_job *j);
static void job_free(struct dlv_job *j);
static void job_send(struct dlv_job *j);
static void job_not_tried(struct dlv_job *j);

struct delivery *
delivery_new(struct event_base *base, const struct config *cf,
    struct spool *sp, const struct delivery_deps *deps)
{
	struct delivery *d = xcalloc(1, sizeof(*d));

	d->base = base;
	d->cf = config_ref(cf);
	d->sp = sp;
	d->deps = deps;
	d->cache = conn_cache_new(base);
	return d;
}

void
delivery_shutdown(struct delivery *d)
{
	conn_cache_shutdown(d->cache);
	d->stopping = 1;
}

void
delivery_free(struct delivery *d)
{
	if (d == NULL)
		return;
	delivery_shutdown(d);
	/* sessions still finishing their QUIT are not waited for */
	smtp_client_free_all();
	conn_cache_free(d->cache);
	config_unref(d->cf);
	free(d);
}

void
delivery_reload(struct delivery *d, const struct config *cf)
{
	/* always the new config; jobs in flight keep theirs */
	config_ref(cf);
	config_unref(d->cf);
	d->cf = cf;
}

void
delivery_set_workq(struct delivery *d, struct workq *wq,
    struct workq_port *port)
{
	d->wq = wq;
	d->port = port;
}

void
delivery_set_sites(struct delivery *d, struct connlimit *l,
    const struct delivery_site_ops *ops)
{
	d->site = ops;
	conn_cache_set_limits(d->cache, ops != NULL ? l : NULL);
}

int
delivery_has_idle(const struct delivery *d, const struct cl_slot *s)
{
	return conn_cache_has_slot(d->cache, s);
}

/* The job's slot (NULL: none, or no sites). */
static struct cl_slot *
job_slot(const struct dlv_job *j, int *borrowed)
{
	int b = 0;
	struct cl_slot *s = j->d->site != NULL ?
	    j->d->site->slot(j->arg, &b) : NULL;

	if (borrowed != NULL)
		*borrowed = b;
	return s;
}

/* Park the session, or QUIT it (max_messages_per_connection of the
 * job's site reached, cache full ...). */
static void
job_park(struct dlv_job *j, struct smtp_client *c)
{
	struct cl_slot *s = job_slot(j, NULL);

	conn_cache_put_slot(j->d->cache, c, j->key, connlimit_max_msgs(s,
	    j->cf->max_messages_per_connection), s);
}

/* QUIT a session of the job; it counts toward the job's slot until its
 * connection is closed. */
static void
job_quit(struct dlv_job *j, struct smtp_client *c)
{
	conn_cache_quit(j->d->cache, c, job_slot(j, NULL));
}

/*
 * A reply of the server: a throttle (smtp_reply_throttle())?  Then the
 * site is paused (issue #24): this job connects nowhere else, and its
 * deferred recipients are tried when the pause ends.  Not for the
 * bounce_relay (our own next hop).
 */
static void
job_throttle_check(struct dlv_job *j, const char *stage, int code,
    const char *enh, const char *text)
{
	if (j->pause > 0 || j->d->site == NULL || j->dec == &j->own_dec ||
	    !smtp_reply_throttle(stage, code, enh, text))
		return;
	j->pause = j->d->site->throttle(j->arg, j->relay, text);
}

void
delivery_set_tlsrpt(struct delivery *d, struct tlsrpt *rpt)
{
	d->rpt = rpt;
}

/* Where this job's TLS outcomes are counted: nowhere for a TLSRPT report
 * (RFC 8460 §3: report sessions are not counted). */
static struct tlsrpt *
job_rpt(const struct dlv_job *j)
{
	return j->env->is_report ? NULL : j->d->rpt;
}

/*
 * Delivered despite the destination's TLS requirements (TLS when
 * offered, else cleartext): a TLSRPT report (RFC 8460 §3), and a message
 * with "TLS-Required: No" (RFC 8689 §5) that smtpd took from a client
 * allowed to ask, while tls_required_header still says yes.  Never a
 * REQUIRETLS message.
 */
static int
job_tls_optional(const struct dlv_job *j)
{
	if (j->env->requiretls)
		return 0;
	return j->env->is_report || (j->env->tls_required_no &&
	    j->cf->tls_required_header);
}

/*
 * RFC 8689 §4.2.1: a REQUIRETLS message goes only to a host whose TLS
 * is authenticated by DANE or by an enforced MTA-STS policy (under the
 * dane level, a PTLS_VERIFY host is MTA-STS's; a policy_file verify or
 * secure line is not enough), never to one with unusable TLSA records.
 */
static int
requiretls_host_ok(const struct decision *dec, const struct decision_host *h)
{
	if (h->skip)
		return 0;
	if (h->tls == PTLS_DANE)
		return h->ntlsa > 0;
	return h->tls == PTLS_VERIFY && dec->level == POLICY_DANE;
}

/* "<a@b>,<c@b>" for the recipients still open, bounded. */
static void
rcpt_list(struct dlv_job *j, char *buf, size_t len)
{
	size_t i, off = 0;
	int n;

	buf[0] = '\0';
	for (i = 0; i < j->n; i++) {
		if (j->final[i])
			continue;
		n = snprintf(buf + off, len - off, "%s<%s>", off ? "," : "",
		    j->env->rcpts[j->res[i].rcpt].addr);
		if (n < 0 || (size_t)n >= len - off) {
			snprintf(buf + (len > 5 ? len - 5 : 0), len > 5 ? 5 : len,
			    ",...");
			break;
		}
		off += (size_t)n;
	}
}

static const char *
status_word(enum dlv_status s)
{
	return s == DLV_SENT ? "sent" : s == DLV_FAIL ? "bounced" : "deferred";
}

/* "tls=TLSv1.3/TLS_AES_256_GCM_SHA384, auth=dane-ee, tlsa=\"3 1 1 ..\"" */
static void
tls_summary(struct dlv_job *j, char *buf, size_t len)
{
	const struct tls_outcome *o = j->c ? smtp_client_tls(j->c) : NULL;

	if (o == NULL || !o->established) {
		snprintf(buf, len, "tls=none, auth=none");
		return;
	}
	snprintf(buf, len, "tls=%s/%s, auth=%s%s%s%s", o->protocol, o->cipher,
	    tls_auth_name(o->auth), o->tlsa[0] ? ", tlsa=\"" : "", o->tlsa,
	    o->tlsa[0] ? "\"" : "");
}

/* Count one recipient's result (stats.h); was metrics_delivery(). */
void
delivery_count(enum dlv_status st, const struct tls_outcome *o)
{
	switch (st) {
	case DLV_SENT:
		if (o == NULL || !o->established)
			stats_delivered(STAT_AUTH_CLEARTEXT);
		else if ((unsigned)o->auth < STAT_AUTH_CLEARTEXT)
			stats_delivered((enum stat_auth)o->auth);
		else
			stats_delivered(STAT_AUTH_NONE);
		break;
	case DLV_DEFER:
		stats_inc(S_RCPT_DEFERRED);
		break;
	case DLV_FAIL:
		stats_inc(S_RCPT_BOUNCED);
		break;
	}
}

void
delivery_count_latency(enum dlv_status st, const struct spool_env *env)
{
	struct timespec now;
	long long us;

	if (st == DLV_DEFER || env == NULL)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	us = ((long long)now.tv_sec - (long long)env->created) * 1000000 +
	    now.tv_nsec / 1000 - env->created_usec;
	stats_observe(st == DLV_SENT ? SH_LATENCY_DELIVERED :
	    SH_LATENCY_BOUNCED, us > 0 ? (unsigned long long)us : 0);
}

/* The security level the job's current host (or, with none, the
 * domain) is held to, for danerelay_recipients_by_level_total. */
static enum stat_level
job_level(const struct dlv_job *j)
{
	const struct decision *dec = j->dec;
	const struct decision_host *h;

	if (dec->nhosts > 0) {
		h = &dec->hosts[j->host < dec->nhosts ? j->host :
		    dec->nhosts - 1];
		switch (h->tls) {
		case PTLS_DANE:
			return STAT_LEVEL_DANE;
		case PTLS_VERIFY:
			return h->rpt_type == RPT_STS ? STAT_LEVEL_MTA_STS :
			    STAT_LEVEL_VERIFY;
		case PTLS_ENCRYPT:
			return STAT_LEVEL_ENCRYPT;
		case PTLS_MAY:
			return STAT_LEVEL_MAY;
		case PTLS_NONE:
			return STAT_LEVEL_NONE;
		}
	}
	switch (dec->level) {
	case POLICY_DANE:
	case POLICY_DANE_ONLY:
		return STAT_LEVEL_DANE;
	case POLICY_VERIFY:
	case POLICY_SECURE:
		return STAT_LEVEL_VERIFY;
	case POLICY_ENCRYPT:
		return STAT_LEVEL_ENCRYPT;
	case POLICY_MAY:
		return STAT_LEVEL_MAY;
	case POLICY_NONE:
		break;
	}
	return STAT_LEVEL_NONE;
}

static void
set_result(struct dlv_job *j, size_t i, enum dlv_status st, const char *text)
{
	char tls[400];

	free(j->res[i].text);
	j->res[i].text = xstrdup(text);
	free(j->res[i].relay);
	j->res[i].relay = j->relay[0] ? xstrdup(j->relay) : NULL;
	j->res[i].status = st;
	j->res[i].no_dsn = st == DLV_SENT && j->c != NULL &&
	    !(smtp_client_ext(j->c)->flags & SMTP_EXT_DSN);
	j->final[i] = 1;
	tls_summary(j, tls, sizeof(tls));
	delivery_count(st, j->c != NULL ? smtp_client_tls(j->c) : NULL);
	delivery_count_latency(st, j->env);
	if (j->dec != NULL)
		stats_level_outcome(job_level(j), st == DLV_SENT ?
		    STAT_OUT_DELIVERED : st == DLV_DEFER ? STAT_OUT_DEFERRED :
		    STAT_OUT_BOUNCED);
	log_info("%s: to=<%s>, relay=%s, %s%s%s%s, delay=%.2f, status=%s "
	    "(%s)", j->env->id, j->env->rcpts[j->res[i].rcpt].addr,
	    j->relay[0] ? j->relay : "none", tls, job_tls_optional(j) &&
	    !j->env->is_report ? ", tls_required=no" : "",
	    j->src != NULL && j->c != NULL ? ", source=" : "",
	    j->src != NULL && j->c != NULL ? smtp_client_local_ip(j->c) : "",
	    mono_now() - j->start, status_word(st), text);
}

/* Report and free.  Results for every recipient not decided: deferred. */
static void
job_finish(struct dlv_job *j)
{
	size_t i;

	for (i = 0; i < j->n; i++)
		if (!j->final[i])
			set_result(j, i, DLV_DEFER, j->last_error ?
			    j->last_error : "delivery temporarily suspended");
	for (i = 0; i < j->n && j->pause > 0; i++)
		if (j->res[i].status == DLV_DEFER)
			j->res[i].retry_in = j->pause;
	j->cb(j, j->res, j->n, j->arg);
	job_free(j);
}

static void
job_free(struct dlv_job *j)
{
	size_t i;

	if (j->conv == CONV_RUNNING) {
		/* the pool thread still reads the message: conv_done()
		 * frees the job */
		smtp_client_free(j->c);
		j->c = NULL;
		j->dead = 1;
		return;
	}
	if (j->conv_fd != -1)
		close(j->conv_fd);
	free(j->conv_err);
	smtp_client_free(j->c);
	route_free(j->rt);
	source_table_free(j->st);
	config_unref(j->cf);
	if (j->data_fd != -1)
		close(j->data_fd);
	for (i = 0; i < j->n; i++) {
		free(j->res[i].text);
		free(j->res[i].relay);
		free(j->rtext[i]);
	}
	free(j->res);
	free(j->final);
	free(j->code);
	free(j->rtext);
	free(j->sendto);
	free(j->sendidx);
	free(j->sendnotify);
	free(j->sendorcpt);
	free(j->last_error);
	free(j->key);
	free(j->domain);
	if (j->kick != NULL)
		event_free(j->kick);
	decision_free(&j->own_dec);
	free(j);
}

static void
set_last_error(struct dlv_job *j, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
set_last_error(struct dlv_job *j, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) == -1)
		s = NULL;
	va_end(ap);
	if (s == NULL)
		return;
	free(j->last_error);
	j->last_error = s;
}

static enum smtp_tls_mode
tls_mode(enum policy_tls t)
{
	switch (t) {
	case PTLS_NONE:
		return SMTP_TLS_NONE;
	case PTLS_MAY:
		return SMTP_TLS_MAY;
	case PTLS_ENCRYPT:
		return SMTP_TLS_ENCRYPT;
	case PTLS_DANE:
		return SMTP_TLS_DANE;
	case PTLS_VERIFY:
		return SMTP_TLS_WEBPKI;
	}
	return SMTP_TLS_ENCRYPT;
}

static void
c_ready(struct smtp_client *c, void *arg)
{
	struct dlv_job *j = arg;
	const struct tls_outcome *o = smtp_client_tls(c);
	const struct decision_host *rh;

	/* The line operators grep for (Postfix: "Verified TLS connection
	 * established to ..."); once per session, not on reuse. */
	if (o->established && !j->reused)
		log_info("%s: %s TLS connection established to %s: %s with "
		    "cipher %s (auth=%s%s%s%s%s%s)", j->env->id,
		    o->verified ? "Verified" : o->trusted ? "Trusted" :
		    "Untrusted", j->relay, o->protocol, o->cipher,
		    tls_auth_name(o->auth), o->tlsa[0] ? ", tlsa=\"" : "",
		    o->tlsa, o->tlsa[0] ? "\"" : "", o->peer[0] ? ", peer CN=" :
		    "", o->peer);
	/* MTA-STS testing: say what enforce mode would have refused. */
	if (o->established && !j->reused && !o->trusted &&
	    j->dec->hosts[j->host].sts_testing)
		log_info("%s: %s: MTA-STS policy in testing mode: the "
		    "certificate would fail in enforce mode (%s); delivering "
		    "anyway", j->env->id, j->relay, o->verify_error != 0 ?
		    X509_verify_cert_error_string(o->verify_error) :
		    "no certificate");
	/*
	 * TLSRPT: once per (session, policy domain): a session reused for
	 * mail to another domain (same MX, same TLS requirement) counts
	 * for that domain too.  A cleartext retry after a failed
	 * opportunistic handshake was counted with that failure.
	 */
	rh = &j->dec->hosts[j->host];
	if (o->established && j->mem_applies)
		tls_memory_note(j->d->deps->tlsmem, j->d->port,
		    route_domain(j->rt), j->cf->tls_memory ==
		    TLS_MEMORY_VERIFY && o->trusted ? TLSMEM_VERIFY :
		    TLSMEM_ENCRYPT, time(NULL));
	if (job_rpt(j) != NULL && rh->rpt_domain != NULL &&
	    smtp_client_mark(c, rh->rpt_domain) && !j->plain_retry)
		tlsrpt_note_session(job_rpt(j), rh, &rh->addrs[j->addr], o,
		    NULL, smtp_client_local_ip(c));
	job_send(j);
}

/* The 7-bit conversion ran (on a pool thread). */
static void
conv_work(void *arg)
{
	struct conv_job *cj = arg;

	cj->rc = mime7bit_convert(cj->in_fd, cj->in_size, cj->out_fd,
	    &cj->out_size, cj->err, sizeof(cj->err));
}

/* Back on the loop: keep the result, go on with the waiting session. */
static void
conv_done(void *arg)
{
	struct conv_job *cj = arg;
	struct dlv_job *j = cj->j;

	close(cj->in_fd);
	if (cj->rc == 0) {
		j->conv = CONV_DONE;
		j->conv_fd = cj->out_fd;
		j->conv_size = cj->out_size;
		log_info("%s: converted to 7 bits for a server without "
		    "8BITMIME (%lld -> %lld bytes)", j->env->id,
		    (long long)j->env->size, (long long)cj->out_size);
	} else {
		j->conv = cj->rc == 1 ? CONV_IMPOSSIBLE : CONV_FAILED;
		free(j->conv_err);
		j->conv_err = cj->rc == 1 ? xasprintf("5.6.3 the server does "
		    "not support 8BITMIME and the message cannot be converted "
		    "to 7 bits: %s", cj->err) : xstrdup(cj->err);
		close(cj->out_fd);
	}
	free(cj);
	if (j->dead) {
		job_free(j);
		return;
	}
	if (j->conv_wait && j->c != NULL) {
		j->conv_wait = 0;
		if (j->d->stopping) {
			/* shutting down: no new transaction */
			set_last_error(j, "delivery stopped");
			job_quit(j, j->c);
			j->c = NULL;
			job_finish(j);
			return;
		}
		job_send(j);
	}
}

/*
 * RFC 6152 §3: an 8-bit message goes to a server without 8BITMIME only
 * as a 7-bit copy (mime7bit.c, on the io pool; made once per job).
 * 0: go on with the message (*fd, *size); 1: wait (conv_done() calls
 * job_send() again); -1: the job was finished here.
 */
static int
job_7bit(struct dlv_job *j, int *fd, off_t *size)
{
	struct conv_job *cj;
	size_t i;
	char err[256];

	switch (j->conv) {
	case CONV_NONE:
		cj = xcalloc(1, sizeof(*cj));
		cj->j = j;
		cj->in_size = j->env->size;
		cj->in_fd = dup(j->data_fd);
		cj->out_fd = memfd_create("danerelay-7bit", MFD_CLOEXEC);
		if (cj->in_fd == -1 || cj->out_fd == -1) {
			snprintf(err, sizeof(err), "cannot convert to 7 bits: "
			    "%s", strerror(errno));
			if (cj->in_fd != -1)
				close(cj->in_fd);
			if (cj->out_fd != -1)
				close(cj->out_fd);
			free(cj);
			j->conv = CONV_FAILED;
			j->conv_err = xstrdup(err);
			return job_7bit(j, fd, size);
		}
		j->conv = CONV_RUNNING;
		j->conv_wait = 1;
		if (j->d->wq != NULL) {
			workq_submit(j->d->wq, j->d->port, conv_work, conv_done,
			    cj);
			return 1;
		}
		/* no pool (probe, tests): here */
		j->conv_wait = 0;
		conv_work(cj);
		conv_done(cj);
		return job_7bit(j, fd, size);
	case CONV_RUNNING:
		j->conv_wait = 1;
		return 1;
	case CONV_DONE:
		*fd = j->conv_fd;
		*size = j->conv_size;
		return 0;
	case CONV_IMPOSSIBLE:
		/* RFC 3463 5.6.3: conversion required but not supported */
		for (i = 0; i < j->n; i++)
			if (!j->final[i])
				set_result(j, i, DLV_FAIL, j->conv_err);
		break;
	case CONV_FAILED:
		set_last_error(j, "%s", j->conv_err);
		break;
	}
	job_quit(j, j->c);
	j->c = NULL;
	job_finish(j);
	return -1;
}

/* Send the message on the ready session j->c. */
static void
job_send(struct dlv_job *j)
{
	struct smtp_client *c = j->c;
	struct smtp_msg msg;
	char err[256];
	size_t i;
	int fd = j->data_fd, body_8bit = j->env->body_8bit;
	off_t size = j->env->size;

	if (body_8bit && !(smtp_client_ext(c)->flags & SMTP_EXT_8BITMIME)) {
		if (job_7bit(j, &fd, &size) != 0)
			return;
		body_8bit = 0;
	}
	j->nsend = 0;
	for (i = 0; i < j->n; i++) {
		j->code[i] = 0;
		free(j->rtext[i]);
		j->rtext[i] = NULL;
		if (j->final[i])
			continue;
		/* an address this session cannot carry fails alone */
		if (smtp_client_rcpt_check(c,
		    j->env->rcpts[j->res[i].rcpt].addr, err, sizeof(err)) == -1) {
			set_result(j, i, DLV_FAIL, err);
			continue;
		}
		j->sendidx[j->nsend] = i;
		j->sendnotify[j->nsend] = j->env->rcpts[j->res[i].rcpt].notify;
		j->sendorcpt[j->nsend] = j->env->rcpts[j->res[i].rcpt].orcpt;
		j->sendto[j->nsend++] = j->env->rcpts[j->res[i].rcpt].addr;
	}
	memset(&msg, 0, sizeof(msg));
	msg.sender = j->env->sender;
	msg.rcpts = j->sendto;
	msg.nrcpt = j->nsend;
	msg.data_fd = fd;
	msg.size = size;
	msg.body_8bit = body_8bit;
	msg.smtputf8 = j->env->smtputf8;
	msg.ret = j->env->ret;
	msg.envid = j->env->envid;
	msg.notify = j->sendnotify;
	msg.orcpt = j->sendorcpt;
	msg.requiretls = j->env->requiretls;
	if (j->nsend == 0 || smtp_client_send(c, &msg, err, sizeof(err)) == -1) {
		set_last_error(j, "cannot send: %s", j->nsend ? err :
		    "no recipients");
		job_quit(j, c);
		j->c = NULL;
		job_finish(j);
	}
}

static void
c_rcpt(struct smtp_client *c, size_t idx, const struct smtp_reply *reply,
    void *arg)
{
	struct dlv_job *j = arg;
	size_t i;

	if (idx >= j->nsend)
		return;
	i = j->sendidx[idx];
	j->code[i] = reply->code;
	free(j->rtext[i]);
	{
		char sum[512];

		j->rtext[i] = xasprintf("%s said: %s (in reply to RCPT TO "
		    "command)", j->relay, smtp_reply_summary(reply, sum,
		    sizeof(sum)));
		job_throttle_check(j, "RCPT", reply->code, reply->enh, sum);
	}
}

/*
 * TLS memory (issue #23): host h of a domain whose level came from
 * default_policy and ended in opportunistic TLS (no usable DANE, no
 * MTA-STS enforce).  A domain's own policy_file line is followed as
 * written, and a TLSRPT report gets through TLS failures (RFC 8460 §3).
 * A message with an honoured "TLS-Required: No" (RFC 8689 §5) is
 * exempt as well (job_tls_optional()).
 */
static int
job_mem_applies(const struct dlv_job *j, const struct decision_host *h)
{
	return j->d->deps->tlsmem != NULL && j->rt != NULL &&
	    j->cf->tls_memory != TLS_MEMORY_NO && !job_tls_optional(j) &&
	    h->tls == PTLS_MAY &&
	    strcmp(route_level_source(j->rt), "default_policy") == 0;
}

/*
 * Hold the session to host h to what its domain was seen with: TLS
 * required (no cleartext, no retry without it), with `verify` and a
 * verified past also the chain and the MX host's name.  With `verify`
 * every session checks the chain and name, to be remembered.
 */
static void
job_mem_params(struct dlv_job *j, const struct decision_host *h,
    struct smtp_client_params *p)
{
	const char *const *mx = (const char *const *)&h->name;
	enum tlsmem_level l;

	j->mem = TLSMEM_NONE;
	if (!(j->mem_applies = job_mem_applies(j, h)))
		return;
	if (j->cf->tls_memory == TLS_MEMORY_VERIFY && !p->check_names) {
		p->names = mx;
		p->nnames = 1;
		p->check_names = 1;
	}
	l = tls_memory_get(j->d->deps->tlsmem, route_domain(j->rt),
	    time(NULL), j->cf->tls_memory_max_age, &j->mem_seen);
	if (l == TLSMEM_VERIFY && j->cf->tls_memory != TLS_MEMORY_VERIFY)
		l = TLSMEM_ENCRYPT;
	if ((j->mem = l) == TLSMEM_ENCRYPT)
		p->tls = SMTP_TLS_ENCRYPT;
	else if (l == TLSMEM_VERIFY) {
		p->tls = SMTP_TLS_WEBPKI;
		p->check_names = 0;
	}
}

/* A host refused for being weaker than remembered: say so (the line
 * operators grep for) and count it. */
static void
job_mem_refused(struct dlv_job *j, char *why, size_t len)
{
	char when[32], *was = xstrdup(why);
	struct tm tm;

	if (gmtime_r(&j->mem_seen, &tm) == NULL ||
	    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(when, sizeof(when), "%lld", (long long)j->mem_seen);
	snprintf(why, len, "4.7.5 TLS downgrade refused: %s used STARTTLS "
	    "until %s (tls_memory = %s; %s)", route_domain(j->rt), when,
	    tlsmem_level_name(j->mem), was);
	free(was);
	stats_inc(S_TLS_DOWNGRADE_REFUSED);
}

/* The transaction (or the session) ended. */
static void
c_done(struct smtp_client *c, const struct smtp_result *r, void *arg)
{
	struct dlv_job *j = arg;
	int in_txn = r->stage != NULL && (!strcmp(r->stage, "MAIL") ||
	    !strcmp(r->stage, "RCPT") || !strcmp(r->stage, "DATA") ||
	    !strcmp(r->stage, "end of data"));
	int no_reply;
	char why[1536];
	size_t k, open_left;

	j->conv_wait = 0;	/* the session a conversion waited for ended */
	/*
	 * A cached session that turns out dead (the server timed it out,
	 * closed it) before any recipient was accepted: not the host's
	 * fault; connect to the same address afresh.
	 */
	if (j->reused && r->naccepted == 0 && r->code == 0 &&
	    (r->fail == SMTP_FAIL_CONN || r->fail == SMTP_FAIL_TIMEOUT ||
	    r->fail == SMTP_FAIL_PROTO) && r->stage != NULL &&
	    (!strcmp(r->stage, "RSET") || !strcmp(r->stage, "MAIL"))) {
		log_debug("%s: cached session to %s failed at %s (%s), "
		    "connecting again", j->env->id, j->relay, r->stage,
		    r->reply);
		smtp_client_free(c);
		j->c = NULL;
		j->reused = 0;
		j->no_reuse = 1;
		job_next_host(j);
		return;
	}
	if (r->code != 0)
		job_throttle_check(j, r->stage, r->code, r->enh, r->reply);
	if (r->tlsrpt != NULL)
		stats_tls_failure(r->tlsrpt);
	if (r->tlsrpt != NULL && !j->reused)
		tlsrpt_note_session(job_rpt(j), &j->dec->hosts[j->host],
		    &j->dec->hosts[j->host].addrs[j->addr], smtp_client_tls(c),
		    r->tlsrpt, smtp_client_local_ip(c));

	if (r->code != 0)
		snprintf(why, sizeof(why), "%s said: %s (in reply to %s)",
		    j->relay, r->reply, r->stage ? r->stage : "command");
	else
		/* our own verdict's enhanced code first, for the DSN */
		snprintf(why, sizeof(why), "%s%s%s%s%s%s: %s (%s)", r->enh,
		    r->enh[0] ? " " : "",
		    r->fail == SMTP_FAIL_TLS ? "TLS failure with " :
		    r->fail == SMTP_FAIL_STARTTLS_MISSING ?
		    "TLS is required, but was not offered by " : "",
		    j->relay, r->stage ? ", stage " : "",
		    r->stage ? r->stage : "", r->reply[0] ? r->reply : "",
		    smtp_fail_name(r->fail));

	if (j->mem != TLSMEM_NONE && (r->fail == SMTP_FAIL_STARTTLS_MISSING ||
	    r->fail == SMTP_FAIL_TLS || r->tlsrpt != NULL))
		job_mem_refused(j, why, sizeof(why));

	/* The server is ourselves: every MX would end the same way. */
	if (r->fail == SMTP_FAIL_LOOP) {
		snprintf(why, sizeof(why), "5.4.6 mail for %s loops back to "
		    "myself (%s)", j->domain, r->reply);
		for (k = 0; k < j->n; k++)
			if (!j->final[k])
				set_result(j, k, DLV_FAIL, why);
		smtp_client_free(c);
		j->c = NULL;
		job_finish(j);
		return;
	}

	/*
	 * The session broke (connection lost, timeout, garbled reply) in
	 * the transaction before the server said anything about the
	 * message: no reply code, and the final "." not yet sent, so the
	 * server cannot have taken it.  That says nothing about the
	 * message: try the next MX (RFC 5321 §5.1), as for a failure
	 * before the transaction.  RCPT verdicts already received stand.
	 * After the final "." a lost reply stays a deferral: the server
	 * may have the message, and a second MX would make a duplicate.
	 */
	no_reply = in_txn && r->code == 0 && strcmp(r->stage, "end of data") &&
	    (r->fail == SMTP_FAIL_CONN || r->fail == SMTP_FAIL_TIMEOUT ||
	    r->fail == SMTP_FAIL_PROTO);
	if (no_reply) {
		open_left = 0;
		for (k = 0; k < j->nsend; k++) {
			size_t i = j->sendidx[k];
			int code = j->code[i];

			if (code >= 500)
				set_result(j, i, DLV_FAIL, j->rtext[i]);
			else if (code >= 400)
				set_result(j, i, DLV_DEFER, j->rtext[i]);
			else
				open_left++;
		}
		if (open_left == 0) {
			smtp_client_free(c);
			j->c = NULL;
			job_finish(j);
			return;
		}
		in_txn = 0;	/* the host failed: on to the next one */
	}

	if (r->fail == SMTP_OK) {
		int sent = 0;

		for (k = 0; k < j->nsend; k++) {
			size_t i = j->sendidx[k];
			int code = j->code[i];

			if (code >= 200 && code < 300) {
				set_result(j, i, DLV_SENT, r->reply);
				sent = 1;
			} else if (code >= 500)
				set_result(j, i, DLV_FAIL, j->rtext[i]);
			else if (code >= 400)
				set_result(j, i, DLV_DEFER, j->rtext[i]);
		}
		if (sent && j->d->site != NULL)
			j->d->site->success(j->arg, !j->reused);
	} else if (in_txn || r->fail == SMTP_FAIL_IMPL) {
		/* Final for this attempt: RCPT verdicts stand, the rest
		 * share the transaction's outcome. */
		for (k = 0; k < j->nsend; k++) {
			size_t i = j->sendidx[k];
			int code = j->code[i];

			if (code >= 500)
				set_result(j, i, DLV_FAIL, j->rtext[i]);
			else if (code >= 400)
				set_result(j, i, DLV_DEFER, j->rtext[i]);
			else
				set_result(j, i, r->permanent ? DLV_FAIL :
				    DLV_DEFER, why);
		}
	}
	if (r->fail == SMTP_OK || in_txn || r->fail == SMTP_FAIL_IMPL) {
		if (r->usable)
			job_park(j, c);
		else
			smtp_client_free(c);
		j->c = NULL;
		job_finish(j);
		return;
	}

	/* The host did not work: log the attempt, try the next one. */
	{
		char tls[400], to[512];

		tls_summary(j, tls, sizeof(tls));
		rcpt_list(j, to, sizeof(to));
		log_info("%s: to=%s, relay=%s, %s, delay=%.2f, "
		    "status=host-failed (%s)", j->env->id, to, j->relay,
		    tls, mono_now() - j->start, why);
	}
	set_last_error(j, "%s", why);
	if (r->stage != NULL && strcmp(r->stage, "connect") != 0 &&
	    !j->plain_retry)
		j->nsessions++;
	if (r->usable)
		job_quit(j, c);
	else
		smtp_client_free(c);
	j->c = NULL;
	/*
	 * Opportunistic TLS whose handshake failed: this host may get mail
	 * in cleartext anyway, so try the same address once without TLS
	 * (as Postfix does).  Never for a host that requires TLS.
	 */
	if (r->fail == SMTP_FAIL_TLS && !j->plain_retry &&
	    j->mem == TLSMEM_NONE &&
	    (j->dec->hosts[j->host].tls == PTLS_MAY || job_tls_optional(j))) {
		log_info("%s: %s: TLS handshake failed under opportunistic "
		    "TLS, trying again without TLS", j->env->id, j->relay);
		j->plain_retry = 1;
		job_next_host(j);
		return;
	}
	j->plain_retry = 0;
	j->addr++;
	job_next_host(j);
}

static const struct smtp_client_cb client_cb = { c_ready, c_rcpt, c_done };

/*
 * The SMTP session parameters that enforce one decision host's TLS
 * requirement on one of its addresses (shared with `danerelay probe`).
 * The strings and records stay owned by the decision.
 */
void
delivery_client_params(const struct config *cf, struct event_base *base,
    SSL_CTX *ssl_ctx, const struct decision_host *h, const struct dns_addr *a,
    int port, const char *logid, struct smtp_client_params *p)
{
	memset(p, 0, sizeof(*p));
	p->base = base;
	memcpy(&p->addr, &a->ss, a->sslen);
	p->addrlen = a->sslen;
	if (a->family == AF_INET)
		((struct sockaddr_in *)&p->addr)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)&p->addr)->sin6_port =
		    htons((uint16_t)port);
	p->host = h->name;
	p->helo = cf->myhostname;
	p->logid = logid;
	/* smtp_bind_address: for destinations of its address family */
	p->bind_ip = cf->smtp_bind_address;
	p->connect_timeout_ms = (unsigned)(cf->smtp_connect_timeout * 1000);
	p->cmd_timeout_ms = (unsigned)(cf->smtp_timeout * 1000);
	p->greeting_timeout_ms = (unsigned)(cf->smtp_greeting_timeout * 1000);
	p->mail_timeout_ms = (unsigned)(cf->smtp_mail_timeout * 1000);
	p->rcpt_timeout_ms = (unsigned)(cf->smtp_rcpt_timeout * 1000);
	p->data_init_timeout_ms = (unsigned)(cf->smtp_data_init_timeout *
	    1000);
	p->data_xfer_timeout_ms = (unsigned)(cf->smtp_data_xfer_timeout *
	    1000);
	/* RFC 5321 §4.5.3.2.6: not smtp_timeout (a duplicate, issue #13) */
	p->data_timeout_ms = (unsigned)(cf->smtp_data_done_timeout * 1000);
	p->tls = tls_mode(h->tls);
	p->ssl_ctx = ssl_ctx;
	p->sni = h->sni;
	p->names = (const char *const *)h->names;
	p->nnames = h->nnames;
	/* MTA-STS testing: check what enforce would, report, deliver */
	p->check_names = h->sts_testing && h->nnames > 0;
	p->tlsa = h->tlsa;
	p->ntlsa = h->ntlsa;
	p->tlsa_base = h->tlsa_base;
}

/*
 * smtp_max_addresses / smtp_max_sessions (issue #12; Postfix's
 * smtp_mx_address_limit and smtp_mx_session_limit): one attempt tries at
 * most that many MX addresses and stops after that many sessions that
 * reached a server (a tarpit MX holds a delivery slot for a whole
 * greeting timeout); the recipients wait for the next attempt.  The same
 * address again (cleartext retry, a dead cached session) is not a new
 * one.  1: try no more.
 */
static int
job_limited(struct dlv_job *j)
{
	const struct config *cf = j->cf;
	const char *what = NULL;
	int limit = 0;

	if (j->at_host == j->host + 1 && j->at_addr == j->addr)
		return 0;
	if (cf->smtp_max_sessions > 0 &&
	    j->nsessions >= cf->smtp_max_sessions) {
		what = "smtp_max_sessions";
		limit = cf->smtp_max_sessions;
	} else if (cf->smtp_max_addresses > 0 &&
	    j->naddrs_tried >= cf->smtp_max_addresses) {
		what = "smtp_max_addresses";
		limit = cf->smtp_max_addresses;
	}
	if (what != NULL) {
		log_info("%s: %s: no more MX addresses in this attempt: %d "
		    "tried, %d sessions (%s = %d)", j->env->id, j->domain,
		    j->naddrs_tried, j->nsessions, what, limit);
		return 1;
	}
	j->at_host = j->host + 1;
	j->at_addr = j->addr;
	j->naddrs_tried++;
	return 0;
}

/* Connect to the next address of the current or a following host. */
static void
job_next_host(struct dlv_job *j)
{
	const struct decision *dec = j->dec;
	struct delivery *d = j->d;

	while (j->host < dec->nhosts) {
		const struct decision_host *h = &dec->hosts[j->host];
		struct smtp_client_params p;
		const struct dns_addr *a;
		char err[256];
		/* a TLSRPT report also goes to hosts skipped for TLS/DANE
		 * reasons (RFC 8460 §3) */
		int rpt_host = job_tls_optional(j) &&
		    tlsrpt_report_host_ok(dec, h);

		if (h->skip && !rpt_host) {
			char to[512];

			rcpt_list(j, to, sizeof(to));
			log_info("%s: to=%s, relay=%s, status=skipped (%s)",
			    j->env->id, to, h->name, h->reason ? h->reason : "");
			set_last_error(j, "%s: %s", h->name,
			    h->reason ? h->reason : "not usable");
			tlsrpt_note_skip(job_rpt(j), h);
		}
		if (j->env->requiretls && !h->skip &&
		    !requiretls_host_ok(dec, h) && dec != &j->own_dec) {
			set_last_error(j, "5.7.30 REQUIRETLS: %s is not "
			    "authenticated by DANE or an enforced MTA-STS "
			    "policy (tls=%s)", h->name, policy_tls_name(h->tls));
			log_info("%s: %s: skipped for REQUIRETLS (tls=%s)",
			    j->env->id, h->name, policy_tls_name(h->tls));
			j->host++;
			j->addr = 0;
			continue;
		}
		if ((h->skip && !rpt_host) || j->addr >= h->naddrs) {
			j->host++;
			j->addr = 0;
			continue;
		}
		a = &h->addrs[j->addr];
		if (j->src != NULL && dec != &j->own_dec &&
		    (a->family == AF_INET ? j->src->addr4 : j->src->addr6) ==
		    NULL) {
			/* never from another address than the sender's */
			log_info("%s: %s[%s]: not tried: source_table line %d "
			    "(%s) has no IPv%c address", j->env->id, h->name,
			    a->text, j->src->line, j->src->domain,
			    a->family == AF_INET ? '4' : '6');
			set_last_error(j, "%s[%s]: source_table line %d (%s) "
			    "has no IPv%c source address", h->name, a->text,
			    j->src->line, j->src->domain,
			    a->family == AF_INET ? '4' : '6');
			j->addr++;
			continue;
		}
		if (job_limited(j))
			break;
		if (j->pause > 0)
			break;	/* the site is paused: no new connection */
		delivery_client_params(j->cf, d->base, d->deps->ssl_ctx, h, a,
		    j->port, j->env->id, &p);
		if (j->src != NULL && dec != &j->own_dec) {
			p.helo = j->src->helo;
			p.bind_ip = a->family == AF_INET ? j->src->addr4 :
			    j->src->addr6;
		}
		if (job_tls_optional(j))	/* RFC 8460 §3, 8689 §5 */
			p.tls = tlsrpt_report_tls_mode(dec);
		/* bounce_relay: the local MTA may well share our name */
		p.own_name_ok = dec == &j->own_dec;
		job_mem_params(j, h, &p);
		if (j->plain_retry && (h->tls == PTLS_MAY ||
		    job_tls_optional(j)))
			p.tls = SMTP_TLS_NONE;
		snprintf(j->relay, sizeof(j->relay), "%s[%s]:%d", h->name,
		    a->text, j->port);
		free(j->key);
		j->key = conn_cache_key(&p, j->relay);
		if (!j->no_reuse && j->key != NULL &&
		    (j->c = conn_cache_get(d->cache, j->key)) != NULL) {
			log_debug("%s: reusing the session to %s (%d messages "
			    "so far)", j->env->id, j->relay,
			    smtp_client_nmsg(j->c));
			smtp_client_set_cb(j->c, &client_cb, j);
			j->reused = 1;
			c_ready(j->c, j);
			return;
		}
		j->reused = 0;
		if (!j->borrow_done) {
			int borrowed;
			struct cl_slot *slot = job_slot(j, &borrowed);

			/*
			 * Let in for an idle session of its site that it
			 * cannot use: that one is closed, and the job waits
			 * in the queue until its QUIT is done (it counts till
			 * then), never overlapping it.
			 */
			j->borrow_done = 1;
			if (borrowed) {
				conn_cache_close_slot(d->cache, slot);
				job_not_tried(j);
				return;
			}
		}
		log_debug("%s: connecting to %s, tls=%s (%s)", j->env->id,
		    j->relay, policy_tls_name(h->tls),
		    h->reason ? h->reason : "");
		j->c = smtp_client_connect(&p, &client_cb, j, err, sizeof(err));
		if (j->c != NULL)
			return;
		set_last_error(j, "connect to %s: %s", j->relay, err);
		log_info("%s: connect to %s: %s", j->env->id, j->relay, err);
		j->addr++;
	}
	job_finish(j);
}

/* Back to the queue without an attempt: the site is busy, paused or
 * over its rate (the queue knows when to try again). */
static void
job_not_tried(struct dlv_job *j)
{
	size_t i;

	log_debug("%s: %s: waiting for a slot of its site", j->env->id,
	    j->domain);
	for (i = 0; i < j->n; i++) {
		j->res[i].status = DLV_DEFER;
		j->res[i].not_tried = 1;
		free(j->res[i].text);
		j->res[i].text = xstrdup("waiting for a slot of the site");
	}
	j->cb(j, j->res, j->n, j->arg);
	job_free(j);
}

static void
job_routed(struct route *rt, void *arg)
{
	struct dlv_job *j = arg;
	const struct decision *dec = route_decision(rt);
	size_t i;

	j->dec = dec;
	if (dec->action != POLICY_DELIVER && !(job_tls_optional(j) &&
	    tlsrpt_report_deliverable(dec))) {
		char *why = xasprintf("%s%s%s", dec->dsn ? dec->dsn : "",
		    dec->dsn ? " " : "", dec->reason ? dec->reason :
		    "no route to destination");
		for (i = 0; i < j->n; i++)
			set_result(j, i, dec->action == POLICY_FAIL ?
			    DLV_FAIL : DLV_DEFER, why);
		free(why);
		tlsrpt_note_decision(job_rpt(j), route_domain(rt), dec);
		job_finish(j);
		return;
	}
	if ((j->data_fd = spool_data_open(j->d->sp, j->env->id)) == -1) {
		set_last_error(j, "cannot open queue file: %s",
		    strerror(errno));
		job_finish(j);
		return;
	}
	/* sites (issue #24): the domain's site known now; its limits */
	if (j->d->site != NULL && j->d->site->routed(j->arg, j->domain, dec,
	    policy_table_lookup(j->d->deps->pt, j->domain)) != 0) {
		job_not_tried(j);
		return;
	}
	j->host = 0;
	j->addr = 0;
	if (j->env->requiretls) {
		/* RFC 8689 §4.2.1: no host that could carry it: returned
		 * now, nobody contacted */
		for (i = 0; i < dec->nhosts; i++)
			if (requiretls_host_ok(dec, &dec->hosts[i]) ||
			    (dec->hosts[i].skip && dec->hosts[i].skip_temp))
				break;	/* (a host that may come back: defer) */
		if (i == dec->nhosts) {
			char *why = xasprintf("5.7.30 REQUIRETLS: %s has "
			    "neither DANE nor an enforced MTA-STS policy "
			    "(level %s)", route_domain(rt),
			    policy_level_name(dec->level));
			for (i = 0; i < j->n; i++)
				set_result(j, i, DLV_FAIL, why);
			free(why);
			job_finish(j);
			return;
		}
	}
	job_next_host(j);
}

/*
 * bounce_relay: delivery status notifications go to one fixed next hop
 * (typically back to the local MTA): no DNS, and the TLS level the
 * operator gave that hop (bounce_relay_tls: a DSN carries the original
 * headers).  Only "may" tries STARTTLS and falls back to cleartext
 * (also after a failed handshake); "encrypt" and "verify" (WebPKI,
 * certificate for bounce_relay_tls_name) defer instead.
 */
static int
static_decision(const struct config *cf, struct decision *dec, int *port)
{
	const char *hop = cf->bounce_relay;
	struct decision_host *h;
	struct listen_addr la;
	struct dns_addr *a;

	if (listen_addr_parse(hop, 25, &la) == -1)
		return -1;
	memset(dec, 0, sizeof(*dec));
	dec->action = POLICY_DELIVER;
	dec->level = POLICY_MAY;
	dec->hosts = xcalloc(1, sizeof(*dec->hosts));
	dec->nhosts = dec->ncandidates = 1;
	h = &dec->hosts[0];
	h->addrs = a = xcalloc(1, sizeof(*a));
	h->naddrs = 1;
	a->family = la.ss.ss_family;
	memcpy(&a->ss, &la.ss, la.len);
	a->sslen = la.len;
	if (a->family == AF_INET) {
		*port = ntohs(((struct sockaddr_in *)&la.ss)->sin_port);
		inet_ntop(AF_INET, &((struct sockaddr_in *)&la.ss)->sin_addr,
		    a->text, sizeof(a->text));
	} else {
		*port = ntohs(((struct sockaddr_in6 *)&la.ss)->sin6_port);
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&la.ss)->sin6_addr,
		    a->text, sizeof(a->text));
	}
	h->name = xstrdup("bounce_relay");
	switch (cf->bounce_relay_tls) {
	case POLICY_NONE:
		h->tls = PTLS_NONE;
		break;
	case POLICY_ENCRYPT:
		h->tls = PTLS_ENCRYPT;
		break;
	case POLICY_VERIFY:
		if (cf->bounce_relay_tls_name == NULL)
			return -1;	/* refused by config_load() */
		h->tls = PTLS_VERIFY;
		h->names = xcalloc(1, sizeof(*h->names));
		h->names[0] = xstrdup(cf->bounce_relay_tls_name);
		h->nnames = 1;
		h->sni = xstrdup(cf->bounce_relay_tls_name);
		break;
	default:
		h->tls = PTLS_MAY;
		break;
	}
	dec->level = cf->bounce_relay_tls;
	h->reason = xasprintf("bounce_relay, TLS level %s",
	    policy_level_name(cf->bounce_relay_tls));
	return 0;
}

static void
job_static_start(evutil_socket_t fd, short ev, void *arg)
{
	struct dlv_job *j = arg;

	j->dec = &j->own_dec;
	if ((j->data_fd = spool_data_open(j->d->sp, j->env->id)) == -1) {
		set_last_error(j, "cannot open queue file: %s",
		    strerror(errno));
		job_finish(j);
		return;
	}
	job_next_host(j);
}

struct dlv_job *
delivery_start(struct delivery *d, const struct spool_env *env,
    const char *domain, const size_t *rcpts, size_t n, dlv_done_cb *cb,
    void *arg)
{
	struct dlv_job *j;
	size_t i;

	if (n == 0)
		return NULL;
	j = xcalloc(1, sizeof(*j));
	j->d = d;
	j->cf = config_ref(d->cf);
	j->env = env;
	j->domain = xstrdup(domain);
	j->cb = cb;
	j->arg = arg;
	j->start = mono_now();
	j->data_fd = -1;
	j->conv_fd = -1;
	j->n = n;
	j->res = xcalloc(n, sizeof(*j->res));
	j->final = xcalloc(n, sizeof(*j->final));
	j->code = xcalloc(n, sizeof(*j->code));
	j->rtext = xcalloc(n, sizeof(*j->rtext));
	j->sendto = xcalloc(n, sizeof(*j->sendto));
	j->sendidx = xcalloc(n, sizeof(*j->sendidx));
	j->sendnotify = xcalloc(n, sizeof(*j->sendnotify));
	j->sendorcpt = xcalloc(n, sizeof(*j->sendorcpt));
	for (i = 0; i < n; i++) {
		j->res[i].rcpt = rcpts[i];
		j->res[i].status = DLV_DEFER;
	}
	j->port = j->cf->smtp_port;
	if (d->deps->st != NULL) {
		j->st = source_table_ref(d->deps->st);
		j->src = source_table_lookup(j->st, env->sender);
	}
	if (env->is_bounce && j->cf->bounce_relay != NULL &&
	    static_decision(j->cf, &j->own_dec, &j->port) == 0) {
		struct timeval tv = { 0, 0 };

		j->kick = evtimer_new(d->base, job_static_start, j);
		evtimer_add(j->kick, &tv);
		return j;
	}
	j->rt = route_start(d->base, d->deps->res, j->cf, d->deps->pt,
	    d->deps->sts, domain, job_routed, j);
	return j;
}

void
delivery_cancel(struct dlv_job *j)
{
	j->cb(j, NULL, 0, j->arg);
	job_free(j);
}
