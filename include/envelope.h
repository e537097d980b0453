/*
 * envelope.h - a message's envelope in memory and its text form
 * (envelope.c).  spool.h includes it.
 */
#ifndef DR_ENVELOPE_H
#define DR_ENVELOPE_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "util.h"		/* QUEUE_ID_LEN */

/* Limits the parser enforces and the writer keeps to. */
#define ENV_MAXFILE	(32 * 1024 * 1024)	/* bytes of one envelope */
#define ENV_MAXRCPT	100000

enum rcpt_state {
	RCPT_PENDING = 0,	/* not yet delivered: first attempt or deferred */
	RCPT_DELIVERED,		/* 2xx from a server */
	RCPT_FAILED,		/* permanent failure, DSN owed/sent */
	RCPT_DELETED,		/* removed by the operator: no delivery, no DSN */
};
const char *rcpt_state_name(enum rcpt_state s);

struct spool_rcpt {
	char *addr;		/* without <> */
	char *orcpt;		/* DSN ORCPT param (xtext), or NULL */
	unsigned notify;	/* DSN NOTIFY, DSN_NOTIFY_* (dsn.h); 0: none */
	int relayed;		/* delivered to a next hop without DSN while
				 * NOTIFY has SUCCESS: a "relayed" DSN is owed
				 * (RFC 3461 §5.2.2) */
	enum rcpt_state state;
	int attempts;
	time_t next_attempt;	/* 0 = as soon as possible */
	char *last_error;	/* last reply or reason, or NULL */
	char *relay;		/* where it went / was last tried, or NULL */
};

struct spool_env {
	char id[QUEUE_ID_LEN + 1];
	char *sender;		/* without <>, "" for the null sender */
	time_t created;
	long created_usec;	/* its microseconds; in memory only (0 after
				 * a restart), for the latency histogram */
	off_t size;		/* bytes of data file */
	char *client_addr;	/* "127.0.0.1" */
	char *client_helo;
	char *auth_user;	/* or NULL */
	int body_8bit;		/* BODY=8BITMIME */
	int smtputf8;
	char *envid;		/* DSN ENVID (xtext) or NULL */
	char *ret;		/* DSN RET (FULL|HDRS) or NULL */
	int requiretls;		/* MAIL FROM ... REQUIRETLS (RFC 8689) */
	int tls_required_no;	/* "TLS-Required: No" from a client allowed
				 * to ask for it (RFC 8689 §5) */
	int hold;		/* on hold by the operator */
	int is_bounce;		/* generated DSN (sender "") */
	int is_report;		/* generated TLSRPT report: deliver despite TLS */
	int delay_warned;	/* a delay DSN (delay_warning_time) was sent */
	struct spool_rcpt *rcpts;
	size_t nrcpt;
};

/* A deep copy. */
struct spool_env *spool_env_dup(const struct spool_env *env);
void spool_env_free(struct spool_env *env);
struct spool_env *spool_env_new(void);
/* Appends a pending recipient; the returned pointer (and env->rcpts) is
 * valid until the next call. */
struct spool_rcpt *spool_env_add_rcpt(struct spool_env *env, const char *addr);
/* The pending recipients at domain (any case; NULL: all of them): how
 * many, and in *others how many are pending elsewhere. */
size_t spool_env_pending_at(const struct spool_env *env, const char *domain,
    size_t *others);
/* The operator's end for them: RCPT_FAILED with the error "5.0.0
 * returned to the sender by the postmaster" (a DSN is owed), or
 * RCPT_DELETED; each one logged with note (e.g. "daemon not running",
 * or NULL).  -> how many. */
size_t spool_env_settle(struct spool_env *env, const char *domain,
    enum rcpt_state to, const char *note);
/* The envelope text format (see envelope.c), used by the spool, tests and
 * fuzzing.
 * parse: 0 ok (*out allocated), -1 malformed with the reason in err.
 * format: returns a malloc'ed buffer of *lenp bytes. */
int spool_env_parse(const char *buf, size_t len, struct spool_env **out,
    char *err, size_t errlen);
char *spool_env_format(const struct spool_env *env, size_t *lenp);

#endif
