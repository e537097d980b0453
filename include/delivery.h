/*
 * delivery.h - one delivery job: the recipients of one message that share
 * a destination domain, taken through DNS (MX, addresses, TLSA), the
 * security decision and SMTP attempts to the candidate hosts, ending with
 * a result per recipient.
 *
 * The queue owns the envelope; delivery_start() only reads it and the
 * indexes of the recipients it is given, and reports through done() exactly
 * once.  delivery_cancel() reports with nres == 0: nothing was decided and
 * the recipients keep their state.  After done() returns the job is freed
 * by the delivery module; done() may start new jobs.  done() is never
 * called from within delivery_start(); delivery_cancel() calls it
 * synchronously, with nres == 0.
 */
#ifndef DR_DELIVERY_H
#define DR_DELIVERY_H

#include <stddef.h>

#include <openssl/ssl.h>

struct event_base;
struct config;
struct spool;
struct spool_env;
struct resolver;
struct decision_host;
struct dns_addr;
struct smtp_client_params;

enum dlv_status {
	DLV_SENT = 0,		/* a server accepted it (2xx) */
	DLV_DEFER,		/* try again later */
	DLV_FAIL,		/* permanent: bounce */
};

struct dlv_rcpt_result {
	size_t rcpt;		/* index into env->rcpts */
	enum dlv_status status;
	char *text;		/* reply or reason (owned by the job) */
	char *relay;		/* "host[ip]:port" or NULL */
	int no_dsn;		/* DLV_SENT to a server without DSN: the
				 * NOTIFY=SUCCESS "relayed" DSN is ours */
	int not_tried;		/* DLV_DEFER without an attempt: the site
				 * was busy, paused or over its rate */
	long long retry_in;	/* DLV_DEFER: the site is paused for this
				 * many seconds: try then (0: backoff) */
};

struct delivery;
struct dlv_job;
struct tls_outcome;

/*
 * Count one recipient's result of a delivery attempt (stats.h).  For
 * DLV_SENT, o is the TLS outcome of the session that carried it (NULL or
 * not established: cleartext) and is counted by authentication type.
 */
void delivery_count(enum dlv_status st, const struct tls_outcome *o);
/*
 * A recipient of env reached its final outcome now (DLV_SENT or DLV_FAIL;
 * DLV_DEFER is ignored): the time since the inbound 250 (env->created
 * and created_usec) into the delivery latency histogram (stats.h).
 */
struct spool_env;
void delivery_count_latency(enum dlv_status st, const struct spool_env *env);

typedef void dlv_done_cb(struct dlv_job *job, const struct dlv_rcpt_result *res,
    size_t nres, void *arg);

/*
 * What the delivery engine runs on, built by the caller (main.c; issue
 * #15, like Unbound's struct module_env): the validating resolver, the
 * SSL_CTX of outbound sessions, the policy table (NULL: no policy_file)
 * and the MTA-STS manager (NULL: mta_sts = no; another worker has a
 * proxy of worker 0's, mta_sts_proxy_new).  The engine owns none of them
 * and reads the struct at each job's start, so the caller swaps a part
 * there on reload (on the engine's loop): a route in flight holds its
 * own references on the policy table and config it started with.  The
 * caller frees the parts after delivery_free(), the MTA-STS manager
 * before the resolver it uses.
 */
struct resolver;
struct policy_table;
struct source_table;
struct mta_sts;
struct tls_memory;
struct delivery_deps {
	struct resolver		*res;
	SSL_CTX			*ssl_ctx;
	struct policy_table	*pt;
	struct source_table	*st;		/* source_table; NULL: none */
	struct mta_sts		*sts;
	struct tls_memory	*tlsmem;	/* TLS memory (issue #23), shared
						 * by every worker; NULL: off */
};

/* deps must stay valid until delivery_free(). */
struct delivery *delivery_new(struct event_base *base, const struct config *cf,
    struct spool *sp, const struct delivery_deps *deps);
/* Stopping: QUIT the cached idle sessions, cache nothing more. */
void delivery_shutdown(struct delivery *d);
void delivery_free(struct delivery *d);
/* New config (limits and what jobs read from it): the delivery engine
 * uses cf from now on.  delivery_new() and delivery_reload() take their
 * own reference on cf (config_ref()), and every job and route in flight
 * holds one on the config and policy table it started with, so the
 * caller may config_unref() the old config right after a reload. */
void delivery_reload(struct delivery *d, const struct config *cf);
/* Record TLS outcomes there (tlsrpt_record.h; not owned, NULL: off).  Messages
 * with is_report are never recorded and get through TLS failures. */
struct tlsrpt;
void delivery_set_tlsrpt(struct delivery *d, struct tlsrpt *rpt);
/* The io pool for 7-bit conversions of 8-bit messages (servers without
 * 8BITMIME); without one they run on the loop. */
struct workq;
struct workq_port;
void delivery_set_workq(struct delivery *d, struct workq *wq,
    struct workq_port *port);

struct dlv_job *delivery_start(struct delivery *d, const struct spool_env *env,
    const char *domain, const size_t *rcpts, size_t nrcpts, dlv_done_cb *cb,
    void *arg);
void delivery_cancel(struct dlv_job *job);

/*
 * Sites (issue #24): the queue's connection slots (connlimit.h), seen
 * from a job.  jobarg is the arg given to delivery_start().
 *   routed()   the domain was routed (dec; pe: its policy_file line or
 *              NULL): 0 go on; -1 not now: the job ends at once with
 *              every recipient DLV_DEFER, not_tried (no attempt made);
 *   slot()     the job's slot (NULL: none) and whether it was let in
 *              through one of this engine's idle sessions (it reuses
 *              one; if it cannot, it closes one and ends not_tried, to
 *              come back once that one is closed);
 *   throttle() a throttle reply (smtp_reply_throttle()) from relay:
 *              the seconds the site is paused (0: pauses off); the job
 *              connects nowhere else and its deferred recipients get
 *              retry_in;
 *   success()  a message went out (over a new session: new_conn).
 */
struct connlimit;
struct cl_slot;
struct decision;
struct policy_entry;
struct delivery_site_ops {
	int (*routed)(void *jobarg, const char *domain,
	    const struct decision *dec, const struct policy_entry *pe);
	struct cl_slot *(*slot)(void *jobarg, int *borrowed);
	long long (*throttle)(void *jobarg, const char *relay,
	    const char *reply);
	void (*success)(void *jobarg, int new_conn);
};
/* Parked sessions count toward their slots in l (NULL ops: no sites). */
void delivery_set_sites(struct delivery *d, struct connlimit *l,
    const struct delivery_site_ops *ops);
/* Is a session of slot s idle in d's connection cache? */
int delivery_has_idle(const struct delivery *d, const struct cl_slot *s);

/* SMTP client parameters enforcing decision host h on address a. */
void delivery_client_params(const struct config *cf, struct event_base *base,
    SSL_CTX *ssl_ctx, const struct decision_host *h, const struct dns_addr *a,
    int port, const char *logid, struct smtp_client_params *p);

#endif
