/*
 * smtpd_session.h - internal to the inbound server (smtpd.c and
 * smtpd_session.c); nothing else includes it.  Other modules use smtpd.h.
 *
 * struct smtpd_conf is a reference-counted snapshot of the settings a
 * session needs.  smtpd_reload() makes a new one; sessions that are
 * already running keep theirs until they end, so a reload never changes
 * the rules in the middle of a transaction.
 */
#ifndef DR_SMTPD_SESSION_H
#define DR_SMTPD_SESSION_H

#include <sys/queue.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "config.h"
#include "smtpd.h"

struct acl;
struct anvil;
struct auth_table;
struct event;
struct evconnlistener;
struct smtpd_session;
struct workq;
struct workq_port;

struct smtpd_conf {
	int refs;
	char *hostname;
	struct acl *allow;		/* relay clients */
	struct auth_table *auth;	/* NULL: no AUTH */
	SSL_CTX *tls;			/* NULL: no STARTTLS */
	unsigned long long max_size;	/* message bytes, 0 = no limit */
	int max_rcpt;
	int max_hops;			/* Received: fields, ours included */
	int max_errors;
	long long timeout;		/* idle, seconds */
	long long session_timeout;	/* total, seconds */
	int max_clients;
	int reserved;			/* of max_clients, for allow_clients */
	int count_limit;		/* per address outside allow_clients */
	int rate_limit;			/*   connections per rate_unit */
	long long rate_unit;
	int min_data_rate;		/* bytes/s before AUTH, 0 = none */
	long long unauth_timeout;	/* session time before AUTH */
	int auth_limit;			/* AUTH failures per address */
	long long auth_block;		/*   then blocked this long */
	long long auth_delay;		/* the n-th failure waits n times */
	unsigned long long minfree;	/* queue_minfree: spool bytes kept
					 * free, 0 = no check */
	char *postmaster;		/* RCPT TO:<postmaster> goes here;
					 * NULL: refused */
};

struct smtpd_conf *smtpd_conf_new(const struct config *cf, char *err,
    size_t errlen);
struct anvil_limits;
/* The per-address limits of c, for anvil.c. */
void smtpd_anvil_limits(const struct smtpd_conf *c, struct anvil_limits *lim);
struct smtpd_conf *smtpd_conf_ref(struct smtpd_conf *c);
void smtpd_conf_unref(struct smtpd_conf *c);

struct smtpd_listener {
	int fd;
	char text[80];
	struct evconnlistener *evl;
	struct event *ev_retry;		/* re-enable after EMFILE & co */
};

TAILQ_HEAD(smtpd_session_list, smtpd_session);

struct smtpd {
	struct smtpd_listener listeners[CONFIG_MAX_LISTEN];
	int nlisteners;
	struct smtpd_conf *conf;	/* current settings */
	struct event_base *base;
	struct spool *spool;
	struct workq *wq_cpu;		/* crypt(3) */
	struct workq *wq_io;		/* spool commits */
	struct workq_port *port;	/* completions on base */
	smtpd_message_cb *cb;
	void *cbarg;
	struct smtpd_session_list sessions;
	unsigned long long spool_avail;	/* free bytes of spool_dir's file
					 * system, read at spool_avail_at */
	double spool_avail_at;		/* mono_now(); 0: never read */
	double full_logged_at;		/* last "too many clients" line */
	int full_unlogged;		/*   refusals not logged since */
	int nsessions;			/* this worker's */
	_Atomic int *nall;		/* every worker's (smtpd_max_clients) */
	_Atomic int nall_own;
	struct anvil *anvil;		/* every worker's: per address limits */
	struct anvil *anvil_own;	/* worker 0 made it */
	int stopping;
};

/* How a session was let in (smtpd_session_new()'s flags). */
#define SMTPD_SESS_ALLOWED	0x01	/* the client is in allow_clients:
					 * none of the unauth limits */
#define SMTPD_SESS_ANVIL	0x02	/* counted by anvil_connect(): give
					 * it back when the session ends */

/* Take over an accepted socket (non-blocking), and the slot of
 * sd->nall that the caller has taken for it.  NULL if it could not be set
 * up (the fd is closed then; the slot and an anvil count are given
 * back). */
struct smtpd_session *smtpd_session_new(struct smtpd *sd, int fd,
    const struct sockaddr *sa, socklen_t salen, int flags);
/* Server stopping: an idle session gets 421 and closes; one receiving a
 * message finishes it, then gets 421. */
void smtpd_sessions_shutdown(struct smtpd *sd);
/* Immediate teardown of every session (no reply); messages in progress
 * are discarded, never acknowledged. */
void smtpd_sessions_free(struct smtpd *sd);

#endif
