/*
 * smtpd_session.h - internal to the inbound server (smtpd.c and
 * smtpd_session.c); nothing else includes it.  Other modules use smtpd.h.
 *
 * struct smtpd_conf (smtpd_conf.h) is a reference-counted snapshot of
 * the settings a session needs.  smtpd_reload() makes a new one;
 * sessions that are already running keep theirs until they end, so a
 * reload never changes the rules in the middle of a transaction.
 */
#ifndef DR_SMTPD_SESSION_H
#define DR_SMTPD_SESSION_H

#include <sys/queue.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "config.h"
#include "smtpd_conf.h"

struct acl;
struct anvil;
struct auth_table;
struct event;
struct evconnlistener;
struct smtpd_session;
struct spool_env;
struct workq;
struct workq_port;

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
	/* smtpd.h's smtpd_message_cb (smtpd.h is the layer above) */
	void (*cb)(const struct spool_env *env, void *arg);
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
	struct senderlimit *senders;	/* every worker's: sender_rate_limit */
	struct senderlimit *senders_own;
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
