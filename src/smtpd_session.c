/*
 * smtpd_session.c - one inbound SMTP session: the state machine between
 * a client (the local MTA, an application, a remote MTA that
 * authenticates) and the spool.
 *
 * Implements, as a server:
 *   RFC 5321  SMTP: greeting, EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP,
 *             QUIT, VRFY (252), EXPN (502), HELP (214); §4.5.3.1 size
 *             limits; §4.4 the Received: trace header; §2.3.8 lines end
 *             in CRLF (bare CR / LF refused: the SMTP smuggling fix);
 *             §4.5.2 dot-stuffing (in smtp_parse.c); §4.5.3.2 timeouts;
 *             §6.3 loop detection: more than max_hops Received: fields
 *             (counted by msg_header.c) get 554 5.4.6 at the end of DATA.
 *   RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 6531 SMTPUTF8, RFC 2920
 *             PIPELINING, RFC 2034/3463 ENHANCEDSTATUSCODES,
 *   RFC 3207  STARTTLS (state reset after the handshake, nothing may be
 *             pipelined behind STARTTLS),
 *   RFC 4954  AUTH PLAIN (RFC 4616) and LOGIN, offered and accepted only
 *             over TLS; credentials checked by auth.c,
 *   RFC 3848  "with ESMTP[S][A]" in Received:.
 *
 * The shape follows OpenSMTPD's smtp_session.c: an enum of states, a
 * strstate[] table for the debug log, and one smtp_enter_state() that
 * does what entering a state means.  The libevent callbacks only feed
 * lines (or DATA bytes) in; the security rules sit in the command
 * handlers where they are easy to find:
 *   - relaying: smtp_rcpt(): the client address is in allow_clients or
 *     the session authenticated, otherwise 554 5.7.1 (never an open
 *     relay);
 *   - AUTH only over TLS: smtp_auth() answers 538 5.7.11 in the clear;
 *   - STARTTLS injection: smtp_starttls() refuses pipelined input;
 *   - smuggling: the end of data is only CRLF "." CRLF (smtp_parse.c),
 *     so "<LF>.<LF>" and what follows stay message text, and
 *     smtp_data_end() refuses any message with a bare CR or LF, and
 *     one with a NUL byte (550 5.6.0): a next hop that drops NULs would
 *     read "<CR><LF><NUL>.<CR><LF>" as the end of data;
 *   - "250" after DATA only once spool_writer_commit() returned 0.
 *
 * Bounds: a command line is at most 512 octets (AUTH lines 12288, RFC
 * 4954 §4), longer ones get "500 5.5.2" and are discarded up to their
 * end without losing sync; a DATA text line 1000 octets; input is read
 * in bounded chunks and the message streamed to the spool, never held in
 * memory; when more than OBUF_MAX of replies wait unsent (a client that
 * pipelines but does not read), input is not read until they drain.
 * Every wait has a timeout: smtpd_timeout idle, smtpd_session_timeout in
 * total.  More than smtpd_max_errors errors close the session with 421.
 *
 * Early talkers: a client that sent bytes before our greeting (seen with
 * MSG_PEEK when the connection is accepted) is not speaking SMTP as RFC
 * 5321 §4.3.1 requires: a browser made to POST to our port, a spam bot.
 * It gets "554 5.5.0" and is disconnected, as are HTTP verbs (GET, POST,
 * CONNECT ...) sent as commands.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "acl.h"
#include "anvil.h"
#include "senderlimit.h"
#include "auth.h"
#include "dkim.h"
#include "log.h"
#include "milter.h"
#include "stats.h"
#include "dsn.h"
#include "msg_header.h"
#include "smtp_parse.h"
#include "smtpd_session.h"
#include "spool.h"
#include "util.h"
#include "workq.h"

#define OBUF_MAX	(64 * 1024)	/* unsent replies before we stop reading */
#define IBUF_MAX	(128 * 1024)	/* read high-watermark */
#define DATA_CHUNK	16384		/* DATA bytes scanned per step */
#define REPLY_MAX	512		/* RFC 5321 §4.5.3.1.5 reply line */
#define RATE_PERIOD	10		/* smtpd_min_data_rate: seconds of
					 * the client's time measured */

enum smtp_state {
	S_CONNECTED = 0,	/* greeted, or TLS just started: EHLO needed */
	S_HELO,			/* EHLO/HELO done, no transaction */
	S_MAIL,			/* MAIL accepted, no recipient yet */
	S_RCPT,			/* at least one recipient accepted */
	S_DATA,			/* 354 sent: message text streams in */
	S_STARTTLS,		/* 220 sent: flush, then the TLS handshake */
	S_AUTH_PLAIN,		/* 334 sent, PLAIN response expected */
	S_AUTH_USER,		/* LOGIN: "334 Username:" sent */
	S_AUTH_PASS,		/* LOGIN: "334 Password:" sent */
	S_AUTH_CHECK,		/* crypt on the cpu pool; input not read */
	S_COMMIT,		/* end of DATA: the spool commit runs; input
				 * not read, no reply yet */
	S_MILTER,		/* the milters decide (MAIL, RCPT, the
				 * message); input not read, no reply yet */
	S_QUIT,			/* last reply queued: close once flushed */
};

static const char *const strstate[] = {
	"CONNECTED", "HELO", "MAIL", "RCPT", "DATA", "STARTTLS",
	"AUTH_PLAIN", "AUTH_USER", "AUTH_PASS", "AUTH_CHECK", "COMMIT", "MILTER",
	"QUIT",
};

#define NCMD	(CMD_HTTP + 1)

struct smtpd_session {
	TAILQ_ENTRY(smtpd_session) entry;
	struct smtpd		*sd;
	struct smtpd_conf	*conf;		/* our snapshot of the settings */
	enum smtp_state		 state;

	int			 fd;
	struct bufferevent	*bev;
	int			 bev_owns_fd;	/* TLS bufferevent closes it */
	struct event		*ev_session;	/* smtpd_session_timeout */
	struct sockaddr_storage	 ss;
	char			 addr[INET6_ADDRSTRLEN];
	int			 allowed;	/* in allow_clients */
	int			 anvil;		/* holds an anvil count */
	double			 started;	/* mono_now() at connect */

	/* smtpd_min_data_rate, outside allow_clients until AUTH */
	struct event		*ev_rate;	/* every RATE_PERIOD / 2 */
	unsigned long long	 bytes_in;	/* read from the client */
	size_t			 in_left;	/* input not yet processed */
	unsigned long long	 rate_mark;	/* bytes_in at rate_since */
	double			 rate_since;	/* start of the measurement */

	char			 helo[SMTP_HELO_MAX + 1];
	int			 esmtp;		/* EHLO, not HELO */
	int			 tls;		/* TLS established */
	char			 tls_proto[16];
	char			 tls_info[160];
	char			*auth_user;
	char			 login_user[SMTP_AUTH_USER_MAX + 1];
	const char		*auth_mech;
	struct auth_job		*auth_job;	/* crypt in flight, or NULL */
	struct event		*ev_auth;	/* a failed AUTH's delayed reply */
	int			 delayed_code;	/*   its code and text */
	char			 delayed_text[160];
	int			 dead;		/* freed when auth_job is back */
	struct smtpd_commit	*commit;	/* spool commit in flight */
	struct smtpd_mread	*mread;		/* milters: the read back of
						 * the message in flight */

	int			 errors;
	int			 discarding;	/* inside an overlong line */
	int			 paused;	/* reading off until output drains */
	int			 stopping;	/* server shutting down */
	unsigned int		 ncmd[NCMD];
	unsigned int		 ncommands;

	/* the transaction */
	struct smtp_mail	 mail;
	struct smtp_rcpt	*rcpts;
	size_t			 nrcpt;
	int			 rcpt_rejected;
	struct spool_writer	*w;
	char			 qid[QUEUE_ID_LEN + 1];
	struct smtp_data_scan	 ds;
	struct msg_header_scan	 hs;		/* Received: count */
	struct dkim_from	*df;		/* From: domain, for DKIM: made at
						 * the first DATA with a key
						 * table, then reused */
	unsigned long long	 msgsize;
	int			 too_big;
	int			 nul;		/* a NUL byte in the data */
	int			 io_error;

	/* milters (milter.c): made at the first MAIL, never without
	 * milters in the settings (a session without costs one pointer) */
	struct smtpd_milter	*mil;
	char			*hold;		/* quarantined: the reason */
};

/* A session's milter state. */
struct smtpd_milter {
	struct milter_chain	*chain;
	struct smtp_rcpt	 rcpt;		/* RCPT the milters look at */
	enum smtp_state		 prev;		/* state before S_MILTER */
	struct milter_msg	 msg;		/* the message they look at */
	char			 daemon_addr[INET6_ADDRSTRLEN];	/* our end */
	int			 daemon_port;
};

static void sockaddr_text(const struct sockaddr_storage *, char *, size_t);

static void smtp_enter_state(struct smtpd_session *, enum smtp_state);
static void smtp_process_input(struct smtpd_session *);
static void smtp_free(struct smtpd_session *);
static int smtp_check_close(struct smtpd_session *);
static void smtp_unauth_end(struct smtpd_session *);
static void smtp_check_errors(struct smtpd_session *);
static void smtp_read_cb(struct bufferevent *, void *);
static void smtp_write_cb(struct bufferevent *, void *);
static void smtp_event_cb(struct bufferevent *, short, void *);
static void smtp_commit_finish(struct smtpd_session *);

/* The line buffer: a worker's sessions run one at a time, so one per
 * worker thread is enough. */
static _Thread_local char linebuf[SMTP_AUTH_LINE_MAX + 1];

/*
 * Replies
 */

static void
smtp_reply(struct smtpd_session *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
smtp_reply(struct smtpd_session *s, int code, const char *fmt, ...)
{
	char text[REPLY_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text) - 6, fmt, ap);
	va_end(ap);
	evbuffer_add_printf(bufferevent_get_output(s->bev), "%d %s\r\n",
	    code, text);
	log_debug("smtpd %s: >>> %d %s", s->addr, code, text);
	if (code >= 500)
		s->errors++;
}

/* For logs: a client-chosen string with controls and non-ASCII as '?'. */
static const char *
safe_str(const char *in, char *out, size_t outlen)
{
	size_t i;

	for (i = 0; in[i] != '\0' && i + 1 < outlen; i++)
		out[i] = (in[i] < 0x20 || in[i] >= 0x7f) ? '?' : in[i];
	out[i] = '\0';
	return out;
}

/*
 * The state machine
 */

static void
smtp_tx_reset(struct smtpd_session *s)
{
	if (s->w != NULL) {
		spool_writer_abort(s->w);
		s->w = NULL;
	}
	memset(&s->mail, 0, sizeof(s->mail));
	free(s->rcpts);
	s->rcpts = NULL;
	s->nrcpt = 0;
	s->rcpt_rejected = 0;
	s->qid[0] = '\0';
	s->msgsize = 0;
	s->too_big = 0;
	s->nul = 0;
	s->io_error = 0;
	if (s->mil != NULL) {
		milter_abort(s->mil->chain);
		milter_msg_clear(&s->mil->msg);
	}
	free(s->hold);
	s->hold = NULL;
}

/* Our turn, not the client's: nothing to read from it meanwhile. */
static int
smtp_server_busy(enum smtp_state st)
{
	return st == S_STARTTLS || st == S_AUTH_CHECK || st == S_COMMIT ||
	    st == S_MILTER;
}

static void
smtp_enter_state(struct smtpd_session *s, enum smtp_state new)
{
	log_debug("smtpd %s: %s -> %s", s->addr, strstate[s->state],
	    strstate[new]);
	if (smtp_server_busy(s->state) && !smtp_server_busy(new)) {
		/* the data rate counts the client's time only */
		s->rate_since = mono_now();
		s->rate_mark = s->bytes_in;
	}
	s->state = new;

	switch (new) {
	case S_CONNECTED:
		/* RFC 3207 §4.2: after the handshake, forget everything
		 * the client told us in the clear, EHLO included. */
		s->helo[0] = '\0';
		s->esmtp = 0;
		smtp_tx_reset(s);
		if (s->mil != NULL)
			milter_helo_reset(s->mil->chain);
		break;
	case S_HELO:
		/* RSET, EHLO/HELO, end of DATA, end of AUTH */
		smtp_tx_reset(s);
		break;
	case S_MAIL:
	case S_RCPT:
	case S_DATA:
	case S_AUTH_PLAIN:
	case S_AUTH_USER:
	case S_AUTH_PASS:
		break;
	case S_AUTH_CHECK:
		/* No pipelined command runs before the AUTH verdict. */
		bufferevent_disable(s->bev, EV_READ);
		break;
	case S_COMMIT:
		/* Nothing the client pipelined after "." runs before the
		 * message is durable and answered. */
		bufferevent_disable(s->bev, EV_READ);
		break;
	case S_MILTER:
		/* Nor anything after a command the milters look at. */
		bufferevent_disable(s->bev, EV_READ);
		break;
	case S_STARTTLS:
		/* RFC 3207 §4: nothing the client sent after STARTTLS may
		 * be read as plaintext; the handshake starts once the 220
		 * is out (smtp_write_cb). */
		bufferevent_disable(s->bev, EV_READ);
		break;
	case S_QUIT:
		bufferevent_disable(s->bev, EV_READ);
		smtp_tx_reset(s);
		break;
	}
}

static int
smtp_relay_allowed(struct smtpd_session *s)
{
	return acl_match(s->conf->allow, (struct sockaddr *)&s->ss) ||
	    s->auth_user != NULL;
}

/*
 * Commands
 */

static void
smtp_helo(struct smtpd_session *s, const char *arg, int esmtp)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	struct smtp_perr e;

	if (smtp_parse_helo(arg, &e) == -1) {
		smtp_reply(s, e.code, "%s", e.text);
		return;
	}
	dr_strlcpy(s->helo, arg, sizeof(s->helo));
	s->esmtp = esmtp;
	smtp_enter_state(s, S_HELO);
	if (s->mil != NULL)
		milter_helo_reset(s->mil->chain);
	if (!esmtp) {
		smtp_reply(s, 250, "%s", s->conf->hostname);
		return;
	}
	evbuffer_add_printf(out, "250-%s\r\n", s->conf->hostname);
	evbuffer_add_printf(out, "250-PIPELINING\r\n");
	evbuffer_add_printf(out, "250-SIZE %llu\r\n", s->conf->max_size);
	evbuffer_add_printf(out, "250-8BITMIME\r\n");
	evbuffer_add_printf(out, "250-SMTPUTF8\r\n");
	evbuffer_add_printf(out, "250-DSN\r\n");		/* RFC 3461 */
	if (s->tls)		/* RFC 8689 §4.1: only inside TLS */
		evbuffer_add_printf(out, "250-REQUIRETLS\r\n");
	if (s->conf->tls != NULL && !s->tls)
		evbuffer_add_printf(out, "250-STARTTLS\r\n");
	/* RFC 4954 §4, and our rule: credentials only over TLS */
	if (s->conf->auth != NULL && s->tls && s->auth_user == NULL)
		evbuffer_add_printf(out, "250-AUTH PLAIN LOGIN\r\n");
	evbuffer_add_printf(out, "250 ENHANCEDSTATUSCODES\r\n");
	log_debug("smtpd %s: >>> 250 (EHLO keywords)", s->addr);
}

/*
 * Milters (milter.c, issue #25): with `milters` set, MAIL, each RCPT and
 * the message wait in S_MILTER (input not read) for the chain's verdict;
 * the reply to the client is the milters' (their own code and text for
 * SMFIR_REPLYCODE, several lines too).  The chain is made at the
 * session's first MAIL and kept for its later messages.  At the end of
 * DATA the message is read back from the spool writer, each milter's
 * changes are applied before the next one sees it, and what they made of
 * it replaces what was written, before DKIM signing and the commit: the
 * 250 still means durable, changes included.  Without milters nothing
 * here runs: one NULL test per command.
 */

/* A reply of one or more CRLF-separated lines, each with its code. */
static void
smtp_reply_lines(struct smtpd_session *s, const char *text)
{
	evbuffer_add_printf(bufferevent_get_output(s->bev), "%s\r\n", text);
	log_debug("smtpd %s: >>> %s", s->addr, text);
	if (text[0] == '5')
		s->errors++;
}

/* 1 if milters are configured (the chain made on first use). */
static int
smtp_milters(struct smtpd_session *s)
{
	if (s->conf->milters == NULL)
		return 0;
	if (s->mil == NULL) {
		struct sockaddr_storage me;
		socklen_t melen = sizeof(me);

		s->mil = xcalloc(1, sizeof(*s->mil));
		s->mil->chain = milter_chain_new(s->sd->base,
		    s->conf->milters);
		/* {daemon_addr} and {daemon_port} */
		if (getsockname(s->fd, (struct sockaddr *)&me, &melen) == 0 &&
		    (me.ss_family == AF_INET || me.ss_family == AF_INET6)) {
			sockaddr_text(&me, s->mil->daemon_addr,
			    sizeof(s->mil->daemon_addr));
			s->mil->daemon_port = ntohs(me.ss_family == AF_INET ?
			    ((struct sockaddr_in *)(void *)&me)->sin_port :
			    ((struct sockaddr_in6 *)(void *)&me)->sin6_port);
		}
	}
	return s->mil->chain != NULL;
}

/* One ESMTP parameter more in buf (cut when full: the milters are told
 * less, never something else). */
static void
smtp_arg_add(char *buf, size_t len, const char *key, const char *val)
{
	size_t n = strlen(buf);

	if (snprintf(buf + n, len - n, "%s%s%s", n > 0 ? " " : "", key,
	    val) >= (int)(len - n))
		buf[n] = '\0';
}

/* A transaction's ESMTP parameters again, as the client sent them, for
 * the milters: MAIL's (r NULL) or r's. */
static void
smtp_milter_args(const struct smtpd_session *s, const struct smtp_rcpt *r,
    char *buf, size_t len)
{
	const struct smtp_mail *m = &s->mail;
	char v[32];

	buf[0] = '\0';
	if (r != NULL) {
		if (r->notify & DSN_NOTIFY_NEVER)
			smtp_arg_add(buf, len, "NOTIFY=", "NEVER");
		else if (r->notify != 0) {
			snprintf(v, sizeof(v), "%s%s%s",
			    r->notify & DSN_NOTIFY_SUCCESS ? ",SUCCESS" : "",
			    r->notify & DSN_NOTIFY_FAILURE ? ",FAILURE" : "",
			    r->notify & DSN_NOTIFY_DELAY ? ",DELAY" : "");
			smtp_arg_add(buf, len, "NOTIFY=", v + 1);
		}
		if (r->orcpt[0] != '\0')
			smtp_arg_add(buf, len, "ORCPT=", r->orcpt);
		return;
	}
	if (m->has_size) {
		snprintf(v, sizeof(v), "%llu", m->size);
		smtp_arg_add(buf, len, "SIZE=", v);
	}
	if (m->body != BODY_UNSPEC)
		smtp_arg_add(buf, len, "BODY=", m->body == BODY_7BIT ? "7BIT" :
		    "8BITMIME");
	if (m->smtputf8)
		smtp_arg_add(buf, len, "SMTPUTF8", "");
	if (m->ret[0] != '\0')
		smtp_arg_add(buf, len, "RET=", m->ret);
	if (m->envid[0] != '\0')
		smtp_arg_add(buf, len, "ENVID=", m->envid);
	if (m->requiretls)
		smtp_arg_add(buf, len, "REQUIRETLS", "");
}

static void
smtp_milter_client(struct smtpd_session *s, struct milter_client *cl)
{
	const SSL_CIPHER *c;
	SSL *ssl;

	memset(cl, 0, sizeof(*cl));
	cl->ss = s->ss;
	cl->addr = s->addr;
	cl->helo = s->helo[0] != '\0' ? s->helo : NULL;
	if (s->tls) {
		cl->tls_version = s->tls_proto;
		ssl = bufferevent_openssl_get_ssl(s->bev);
		c = ssl != NULL ? SSL_get_current_cipher(ssl) : NULL;
		cl->cipher = c != NULL ? SSL_CIPHER_get_name(c) : NULL;
		cl->cipher_bits = c != NULL ? SSL_CIPHER_get_bits(c, NULL) : 0;
	}
	if (s->auth_user != NULL) {
		cl->auth_type = s->auth_mech;
		cl->auth_authen = s->auth_user;
	}
	cl->auth_author = s->mail.auth[0] != '\0' ? s->mail.auth : NULL;
	cl->queue_id = s->qid[0] != '\0' ? s->qid : NULL;
	if (s->mil != NULL && s->mil->daemon_addr[0] != '\0') {
		cl->daemon_addr = s->mil->daemon_addr;
		cl->daemon_port = s->mil->daemon_port;
	}
}

/* The verdict is in and answered: read on. */
static void
smtp_milter_resume(struct smtpd_session *s)
{
	if (!smtp_server_busy(s->state) && s->state != S_QUIT) {
		bufferevent_enable(s->bev, EV_READ);
		smtp_process_input(s);
	}
	smtp_check_close(s);
}

static void
smtp_milter_mail_done(const struct milter_verdict *v, void *arg)
{
	struct smtpd_session *s = arg;

	if (s->state != S_MILTER)
		return;
	if (v->act == MILTER_REJECT || v->act == MILTER_TEMPFAIL) {
		stats_inc(S_MILTER_REJECTED);
		log_info("NOQUEUE: milter-reject: MAIL from unknown[%s]: %s; "
		    "from=<%s> helo=<%s>", s->addr, v->reply, s->mail.addr,
		    s->helo);
		spool_writer_abort(s->w);	/* no transaction */
		s->w = NULL;
		s->qid[0] = '\0';
		smtp_enter_state(s, S_HELO);
		smtp_reply_lines(s, v->reply);
	} else {
		smtp_enter_state(s, S_MAIL);
		smtp_reply(s, 250, "2.1.0 Ok");
	}
	smtp_milter_resume(s);
}

static void
smtp_milter_rcpt_done(const struct milter_verdict *v, void *arg)
{
	struct smtpd_session *s = arg;

	if (s->state != S_MILTER)
		return;
	if (v->act == MILTER_REJECT || v->act == MILTER_TEMPFAIL) {
		stats_inc(S_MILTER_REJECTED);
		log_info("NOQUEUE: milter-reject: RCPT from unknown[%s]: %s; "
		    "from=<%s> to=<%s> helo=<%s>", s->addr, v->reply,
		    s->mail.addr, s->mil->rcpt.addr, s->helo);
		if (v->act == MILTER_REJECT)
			s->rcpt_rejected = 1;
		smtp_enter_state(s, s->mil->prev);
		smtp_reply_lines(s, v->reply);
	} else {
		s->rcpts = xrealloc(s->rcpts, (s->nrcpt + 1) *
		    sizeof(*s->rcpts));
		s->rcpts[s->nrcpt++] = s->mil->rcpt;
		smtp_enter_state(s, S_RCPT);
		smtp_reply(s, 250, "2.1.5 Ok");
	}
	smtp_milter_resume(s);
}

/*
 * SMFIR_CHGFROM: the new sender and its ESMTP arguments, checked by the
 * parser of the client's MAIL, as if the client had sent "MAIL
 * FROM:<addr> ARGS".  Postfix (cleanup_chg_from) ignores the arguments;
 * here those that describe the delivery are applied:
 *   - RET= and ENVID= replace the client's (DSNs of the new sender's);
 *   - BODY=8BITMIME and SMTPUTF8 only add (a milter may have put 8-bit
 *     text or a UTF-8 address in); never taken away, the message may
 *     still need them;
 *   - REQUIRETLS only adds: the client's stays even if the milter's
 *     arguments lack it (logged), no milter weakens it;
 *   - SIZE= is the client's estimate of what it sends: ignored.
 * Arguments the parser refuses are logged with the queue id and dropped:
 * the sender change is kept without them (Postfix keeps it too).  An
 * address the parser refuses: -1 (the change cannot be applied).
 */
static int
smtp_milter_sender(struct smtpd_session *s, const struct milter_msg *m)
{
	struct smtp_mail nm;
	struct smtp_perr e;
	const char *args = m->sender_args;
	char *line;
	int rc;

	line = xasprintf("FROM:<%s>%s%s", m->sender, args != NULL ? " " :
	    "", args != NULL ? args : "");
	rc = smtp_parse_mail(line, &nm, &e);
	free(line);
	if (rc == -1 && args != NULL) {
		log_warnx("%s: milter: sender change: ignoring ESMTP "
		    "arguments \"%.100s\": %s", s->qid, args, e.text);
		args = NULL;
		line = xasprintf("FROM:<%s>%s", m->sender, s->mail.smtputf8 ?
		    " SMTPUTF8" : "");
		rc = smtp_parse_mail(line, &nm, &e);
		free(line);
	}
	if (rc == -1) {
		log_warnx("%s: milter: cannot change the sender to <%s>: %s",
		    s->qid, m->sender, e.text);
		return -1;
	}
	log_info("%s: milter: sender <%s> -> <%s>%s%s", s->qid, s->mail.addr,
	    nm.addr, args != NULL ? " with " : "", args != NULL ? args : "");
	dr_strlcpy(s->mail.addr, nm.addr, sizeof(s->mail.addr));
	if (nm.ret[0] != '\0')
		dr_strlcpy(s->mail.ret, nm.ret, sizeof(s->mail.ret));
	if (nm.envid[0] != '\0')
		dr_strlcpy(s->mail.envid, nm.envid, sizeof(s->mail.envid));
	if (nm.body == BODY_8BITMIME)
		s->mail.body = BODY_8BITMIME;
	if (nm.smtputf8)
		s->mail.smtputf8 = 1;
	if (s->mail.requiretls && !nm.requiretls && args != NULL)
		log_info("%s: milter: sender change without REQUIRETLS: "
		    "the client's REQUIRETLS kept", s->qid);
	if (nm.requiretls)
		s->mail.requiretls = 1;
	return 0;
}

/* The milters' envelope changes into the session's transaction. */
static int
smtp_milter_envelope(struct smtpd_session *s, const struct milter_msg *m)
{
	struct smtp_rcpt *nr;
	struct smtp_perr e;
	char *line;
	size_t i, k;
	int rc;

	if (m->changed_sender && smtp_milter_sender(s, m) == -1)
		return -1;
	if (!m->changed_rcpts)
		return 0;
	nr = xcalloc(m->nrcpt > 0 ? m->nrcpt : 1, sizeof(*nr));
	for (i = 0; i < m->nrcpt; i++) {
		if (strlen(m->rcpts[i].addr) >= sizeof(nr[i].addr)) {
			free(nr);
			return -1;
		}
		for (k = 0; k < s->nrcpt; k++)
			if (strcasecmp(s->rcpts[k].addr, m->rcpts[i].addr) ==
			    0)
				break;
		if (k < s->nrcpt)
			nr[i] = s->rcpts[k];	/* its DSN settings kept */
		else {
			/* as if the client had sent it: the address and its
			 * ESMTP arguments (NOTIFY, ORCPT) checked and kept */
			line = xasprintf("TO:<%s>%s%s", m->rcpts[i].addr,
			    m->rcpts[i].args != NULL ? " " : "",
			    m->rcpts[i].args != NULL ? m->rcpts[i].args : "");
			rc = smtp_parse_rcpt(line, s->mail.smtputf8, &nr[i],
			    &e);
			free(line);
			if (rc == -1) {
				log_warnx("%s: milter: cannot add recipient "
				    "<%s>: %s", s->qid, m->rcpts[i].addr,
				    e.text);
				free(nr);
				return -1;
			}
			log_info("%s: milter: recipient <%s> added%s%s",
			    s->qid, nr[i].addr, m->rcpts[i].args != NULL ?
			    " with " : "", m->rcpts[i].args != NULL ?
			    m->rcpts[i].args : "");
		}
	}
	for (k = 0; k < s->nrcpt; k++) {
		for (i = 0; i < m->nrcpt; i++)
			if (strcasecmp(s->rcpts[k].addr, m->rcpts[i].addr) ==
			    0)
				break;
		if (i == m->nrcpt)
			log_info("%s: milter: recipient <%s> deleted", s->qid,
			    s->rcpts[k].addr);
	}
	free(s->rcpts);
	s->rcpts = nr;
	s->nrcpt = m->nrcpt;
	return 0;
}

/* What the milters made of the message replaces what was written. */
static int
smtp_milter_rewrite(struct smtpd_session *s, struct evbuffer *data)
{
	size_t len = evbuffer_get_length(data);
	const char *d = (const char *)evbuffer_pullup(data, -1);

	if (spool_writer_truncate(s->w) == -1 ||
	    spool_writer_write(s->w, d, len) == -1)
		return -1;
	if (s->df != NULL) {		/* DKIM: From: may have changed */
		dkim_from_init(s->df);
		dkim_from_scan(s->df, d, len);
	}
	return 0;
}

static void smtp_data_accept(struct smtpd_session *);

static void
smtp_milter_msg_done(const struct milter_verdict *v, void *arg)
{
	struct smtpd_session *s = arg;
	struct milter_msg *m = &s->mil->msg;

	if (s->state != S_MILTER)
		return;
	switch (v->act) {
	case MILTER_REJECT:
	case MILTER_TEMPFAIL:
		stats_inc(S_MILTER_REJECTED);
		log_info("%s: milter-reject: END-OF-MESSAGE from unknown[%s]: "
		    "%s; from=<%s> nrcpt=%zu helo=<%s>", s->qid, s->addr,
		    v->reply, s->mail.addr, s->nrcpt, s->helo);
		smtp_reply_lines(s, v->reply);
		smtp_commit_finish(s);
		break;
	case MILTER_DISCARD:
		stats_inc(S_MILTER_DISCARDED);
		log_info("%s: milter-discard: END-OF-MESSAGE from "
		    "unknown[%s]: from=<%s> nrcpt=%zu helo=<%s>", s->qid,
		    s->addr, s->mail.addr, s->nrcpt, s->helo);
		smtp_reply_lines(s, v->reply);
		smtp_commit_finish(s);
		break;
	case MILTER_CONTINUE:
		if ((m->changed_data && smtp_milter_rewrite(s, m->data) ==
		    -1) || smtp_milter_envelope(s, m) == -1) {
			log_warnx("%s: cannot apply the milters' changes",
			    s->qid);
			smtp_reply(s, 451, "4.3.0 Error: queue file write "
			    "error");
			smtp_commit_finish(s);
			break;
		}
		if (s->nrcpt == 0) {
			log_info("%s: milter: every recipient deleted: "
			    "discarded", s->qid);
			smtp_reply(s, 250, "2.0.0 Ok: discarded, no "
			    "recipients left");
			smtp_commit_finish(s);
			break;
		}
		if (m->quarantine != NULL) {
			stats_inc(S_MILTER_HELD);
			s->hold = xstrdup(m->quarantine);
			log_info("%s: milter: hold: %s", s->qid, s->hold);
		}
		milter_msg_clear(m);
		smtp_data_accept(s);
		break;
	}
	smtp_milter_resume(s);
}

/*
 * The message back for the milters.  A message over the spool writer's
 * memory buffer (1 MiB) is partly in tmp/ID.msg: that part is read on
 * the io pool - a pread of tens of MiB on the loop would stall every
 * other session - and the part still in memory here, when it is back.
 * Meanwhile the session waits in S_MILTER, reading nothing, and the
 * writer is the job's to read (nobody writes it: the session reads no
 * input).  A session that ends meanwhile is only marked dead, like one
 * with a commit in flight, and freed when the job is back; at shutdown
 * the job gets the writer and aborts it.
 */
struct smtpd_mread {
	struct smtpd_session	*s;	/* NULL: session freed (shutdown) */
	struct spool_writer	*w;
	struct evbuffer		*data;
	off_t			 off, end;	/* read so far, file part */
	int			 error;		/* errno, 0: ok */
};

/* Read w from *off up to end (-1: to its end) into data: 0, -1 errno. */
static int
smtp_milter_readback(struct spool_writer *w, off_t *off, off_t end,
    struct evbuffer *data)
{
	char buf[65536];
	size_t want;
	ssize_t n;

	for (;;) {
		want = sizeof(buf);
		if (end >= 0 && end - *off < (off_t)want)
			want = (size_t)(end - *off);
		if (want == 0)
			return 0;
		if ((n = spool_writer_read(w, off, buf, want)) <= 0)
			return n == 0 && end < 0 ? 0 : -1;
		if (evbuffer_add(data, buf, (size_t)n) == -1) {
			errno = ENOMEM;
			return -1;
		}
	}
}

/* On the io pool: the file part. */
static void
mread_work(void *arg)
{
	struct smtpd_mread *j = arg;

	if (smtp_milter_readback(j->w, &j->off, j->end, j->data) == -1)
		j->error = errno != 0 ? errno : EIO;
}

static int smtp_milter_message_go(struct smtpd_session *, struct evbuffer *,
    off_t);

static void
mread_done(void *arg)
{
	struct smtpd_mread *j = arg;
	struct smtpd_session *s = j->s;
	struct evbuffer *data;

	if (s == NULL) {		/* shutdown: the writer is ours */
		spool_writer_abort(j->w);
		goto out;
	}
	s->mread = NULL;
	if (s->dead) {
		smtp_free(s);
		goto out;
	}
	if (s->state != S_MILTER) {	/* 421 already sent */
		smtp_check_close(s);
		goto out;
	}
	if (j->error != 0) {
		log_warnx("%s: cannot read queue file back: %s", s->qid,
		    strerror(j->error));
		milter_msg_clear(&s->mil->msg);
		smtp_reply(s, 451, "4.3.0 Error: queue file read error");
	} else {
		data = j->data;
		j->data = NULL;
		if (smtp_milter_message_go(s, data, j->off) == 0)
			goto out;
	}
	smtp_commit_finish(s);
	smtp_milter_resume(s);
out:
	if (j->data != NULL)
		evbuffer_free(j->data);
	free(j);
}

/* The rest of the message from off on (in memory, or all of it without
 * a pool), then to the milters (data is the message's from here on): 0,
 * or -1 answered (451, the caller ends the transaction). */
static int
smtp_milter_message_go(struct smtpd_session *s, struct evbuffer *data,
    off_t off)
{
	struct milter_msg *m = &s->mil->msg;
	struct milter_client cl;

	if (smtp_milter_readback(s->w, &off, -1, data) == -1) {
		log_warn("%s: cannot read queue file back", s->qid);
		evbuffer_free(data);
		milter_msg_clear(m);
		smtp_reply(s, 451, "4.3.0 Error: queue file read error");
		return -1;
	}
	m->data = data;
	smtp_milter_client(s, &cl);
	milter_message(s->mil->chain, &cl, m, smtp_milter_msg_done, s);
	return 0;
}

/* The message to the milters; 0 they have it (or will: the read back
 * is on the pool), -1 answered (451). */
static int
smtp_milter_message(struct smtpd_session *s)
{
	struct milter_msg *m = &s->mil->msg;
	struct smtpd_mread *j;
	struct evbuffer *data;
	size_t i;

	milter_msg_clear(m);
	m->sender = xstrdup(s->mail.addr);
	m->rcpts = xcalloc(s->nrcpt, sizeof(*m->rcpts));
	for (i = 0; i < s->nrcpt; i++)
		m->rcpts[i].addr = xstrdup(s->rcpts[i].addr);
	m->nrcpt = s->nrcpt;
	if ((data = evbuffer_new()) == NULL) {
		log_warnx("%s: cannot read queue file back: out of memory",
		    s->qid);
		milter_msg_clear(m);
		smtp_reply(s, 451, "4.3.0 Error: queue file read error");
		return -1;
	}
	smtp_enter_state(s, S_MILTER);
	if (spool_writer_infile(s->w) > 0 && s->sd->wq_io != NULL &&
	    s->sd->port != NULL) {
		j = xcalloc(1, sizeof(*j));
		j->s = s;
		j->w = s->w;
		j->data = data;
		j->end = spool_writer_infile(s->w);
		s->mread = j;
		log_debug("%s: milter: reading %lld bytes back on the io pool",
		    s->qid, (long long)j->end);
		workq_submit(s->sd->wq_io, s->sd->port, mread_work, mread_done,
		    j);
		return 0;
	}
	/* in memory, or no pool */
	return smtp_milter_message_go(s, data, 0);
}

/*
 * Room in the spool for one more message (RFC 5321 §4.5.3.1.10, RFC 1870
 * §6.1): below queue_minfree free bytes on spool_dir's file system - or
 * below that plus the size the client announced - MAIL is refused with
 * 452 4.3.1 and the client tries later, rather than sending a whole
 * message that would then fail to commit.  f_bavail: what the daemon's
 * (unprivileged) user may use.  statvfs(3) does no disk I/O, but one
 * call per MAIL in a flood is still wasted: the result is kept for a
 * second, for every session of this smtpd.  If statvfs fails the check
 * does not refuse mail (the commit still reports a full disk, with 451).
 * 1 room (or no check), 0 not, with the free bytes in *availp.
 */
static int
smtp_spool_room(struct smtpd_session *s, unsigned long long size,
    unsigned long long *availp)
{
	struct smtpd *sd = s->sd;
	unsigned long long minfree = s->conf->minfree;
	struct statvfs vfs;
	double now;

	if (minfree == 0 || sd->spool == NULL)
		return 1;
	now = mono_now();
	if (sd->spool_avail_at == 0 || now - sd->spool_avail_at >= 1.0) {
		sd->spool_avail_at = now;
		if (statvfs(spool_dir(sd->spool), &vfs) == -1) {
			log_warn("statvfs %s", spool_dir(sd->spool));
			sd->spool_avail = ~0ULL;
		} else
			sd->spool_avail = (unsigned long long)vfs.f_bavail *
			    (unsigned long long)vfs.f_frsize;
	}
	*availp = sd->spool_avail;
	return sd->spool_avail >= minfree &&
	    sd->spool_avail - minfree >= size;
}

static void
smtp_mail(struct smtpd_session *s, const char *arg)
{
	struct smtp_perr e;
	unsigned long long avail;

	switch (s->state) {
	case S_CONNECTED:
		smtp_reply(s, 503, "5.5.1 Error: send HELO/EHLO first");
		return;
	case S_MAIL:
	case S_RCPT:
		smtp_reply(s, 503, "5.5.1 Error: nested MAIL command");
		return;
	default:
		break;
	}
	if (smtp_parse_mail(arg, &s->mail, &e) == -1) {
		memset(&s->mail, 0, sizeof(s->mail));
		smtp_reply(s, e.code, "%s", e.text);
		return;
	}
	if (s->mail.requiretls && !s->tls) {
		/* RFC 8689 §4.1: the flag would travel in cleartext */
		log_info("NOQUEUE: reject: MAIL from unknown[%s]: 530 5.7.10 "
		    "REQUIRETLS without TLS; from=<%s> helo=<%s>", s->addr,
		    s->mail.addr, s->helo);
		memset(&s->mail, 0, sizeof(s->mail));
		smtp_reply(s, 530, "5.7.10 REQUIRETLS needs an encrypted "
		    "session: send STARTTLS first");
		return;
	}
	if (s->mail.has_size && s->conf->max_size > 0 &&
	    s->mail.size > s->conf->max_size) {
		log_info("NOQUEUE: reject: MAIL from unknown[%s]: 552 message "
		    "size %llu exceeds limit %llu; from=<%s>", s->addr,
		    s->mail.size, s->conf->max_size, s->mail.addr);
		memset(&s->mail, 0, sizeof(s->mail));
		smtp_reply(s, 552, "5.3.4 Message size exceeds fixed limit");
		return;
	}
	if (!smtp_spool_room(s, s->mail.has_size ? s->mail.size : 0,
	    &avail)) {
		log_info("NOQUEUE: reject: MAIL from unknown[%s]: 452 4.3.1 "
		    "insufficient system storage (%llu bytes free, "
		    "queue_minfree %llu, SIZE %llu); from=<%s> helo=<%s>",
		    s->addr, avail, s->conf->minfree, s->mail.has_size ?
		    s->mail.size : 0ULL, s->mail.addr, s->helo);
		memset(&s->mail, 0, sizeof(s->mail));
		smtp_reply(s, 452, "4.3.1 Error: insufficient system storage");
		return;
	}
	if (smtp_milters(s)) {
		struct milter_client cl;
		char args[SMTP_XTEXT_MAX + 200];

		/* The queue id from MAIL on, for the milters' i macro (no
		 * file until DATA: nothing to clean up but memory). */
		if (s->w == NULL && (s->w = spool_writer_new(s->sd->spool,
		    args, sizeof(args))) != NULL)
			dr_strlcpy(s->qid, spool_writer_id(s->w),
			    sizeof(s->qid));
		smtp_milter_args(s, NULL, args, sizeof(args));
		smtp_enter_state(s, S_MILTER);
		smtp_milter_client(s, &cl);
		milter_mail(s->mil->chain, &cl, s->mail.addr, args,
		    smtp_milter_mail_done, s);
		return;
	}
	smtp_enter_state(s, S_MAIL);
	smtp_reply(s, 250, "2.1.0 Ok");
}

/*
 * sender_rate_limit: one more recipient for this sender, the
 * authenticated user or else (a client allowed by its address) the
 * envelope sender's domain.  Over the limit: 450 4.7.1, the NOQUEUE line
 * and, for fail2ban, a "refused: ..., client=[ADDR]" line; -> 1.
 */
static int
sender_over_limit(struct smtpd_session *s, const char *rcpt)
{
	struct senderlimit_entry e;
	char key[SENDERLIMIT_KEY_MAX], rate[32];
	const char *at, *who;

	if (s->auth_user != NULL)
		snprintf(key, sizeof(key), "user %s", s->auth_user);
	else {
		at = strrchr(s->mail.addr, '@');
		snprintf(key, sizeof(key), "domain %s", at != NULL ? at + 1 :
		    s->mail.addr[0] != '\0' ? s->mail.addr : "<>");
		str_lower(key);
	}
	if (senderlimit_take(s->sd->senders, key, &s->conf->sender_rate,
	    time(NULL), &e) == 0)
		return 0;
	stats_inc(S_SENDER_RATE_LIMITED);
	who = s->auth_user != NULL ? "user" : "sender domain";
	rate_str(&s->conf->sender_rate, rate, sizeof(rate));
	log_info("NOQUEUE: reject: RCPT from unknown[%s]: 450 4.7.1 <%s>: "
	    "sender rate limit %s reached for %s; from=<%s> to=<%s> "
	    "helo=<%s>", s->addr, rcpt, rate, key, s->mail.addr, rcpt,
	    s->helo);
	log_warnx("refused: sender rate limit %s reached, client=[%s]", rate,
	    s->addr);
	smtp_reply(s, 450, "4.7.1 <%s>: Recipient address rejected: %s has "
	    "sent to %d recipients, the limit of sender_rate_limit %s; try "
	    "again in %llds", rcpt, who, e.count, rate,
	    (long long)(e.start + s->conf->sender_rate.per - time(NULL)));
	return 1;
}

static void
smtp_rcpt(struct smtpd_session *s, const char *arg)
{
	struct smtp_rcpt r;
	struct smtp_perr e;
	size_t i;

	if (s->state != S_MAIL && s->state != S_RCPT) {
		smtp_reply(s, 503, "5.5.1 Error: need MAIL command");
		return;
	}
	if (smtp_parse_rcpt(arg, s->mail.smtputf8, &r, &e) == -1) {
		s->rcpt_rejected = 1;
		smtp_reply(s, e.code, "%s", e.text);
		return;
	}
	/* Relay control: the one rule that keeps us from being an open
	 * relay.  Every recipient is remote for us. */
	if (!smtp_relay_allowed(s)) {
		log_info("NOQUEUE: reject: RCPT from unknown[%s]: 554 5.7.1 "
		    "<%s>: Relay access denied; from=<%s> to=<%s> helo=<%s>",
		    s->addr, r.addr, s->mail.addr, r.addr, s->helo);
		s->rcpt_rejected = 1;
		smtp_reply(s, 554, "5.7.1 <%s>: Relay access denied", r.addr);
		return;
	}
	/* RFC 5321 §4.5.1: "postmaster" without a domain means us.  We
	 * deliver nothing locally: it goes to the configured address, or
	 * is refused now rather than deferred for queue_lifetime. */
	if (strcasecmp(r.addr, "postmaster") == 0) {
		if (s->conf->postmaster == NULL) {
			log_info("NOQUEUE: reject: RCPT from unknown[%s]: 550 "
			    "5.1.1 <%s>: no postmaster address configured; "
			    "from=<%s> to=<%s> helo=<%s>", s->addr, r.addr,
			    s->mail.addr, r.addr, s->helo);
			s->rcpt_rejected = 1;
			smtp_reply(s, 550, "5.1.1 <%s>: Recipient address "
			    "rejected: no postmaster mailbox here", r.addr);
			return;
		}
		if (r.orcpt[0] == '\0') {
			/* the address as written, in xtext (RFC 3461 §4) */
			memcpy(r.orcpt, "rfc822;", 7);
			if (dsn_xtext_encode(r.addr, r.orcpt + 7,
			    sizeof(r.orcpt) - 7) == -1)
				r.orcpt[0] = '\0';
		}
		log_info("smtpd %s: RCPT TO:<%s> goes to postmaster <%s>",
		    s->addr, r.addr, s->conf->postmaster);
		dr_strlcpy(r.addr, s->conf->postmaster, sizeof(r.addr));
	}
	for (i = 0; i < s->nrcpt; i++)
		if (strcmp(s->rcpts[i].addr, r.addr) == 0) {
			/* duplicate: accept once */
			smtp_reply(s, 250, "2.1.5 Ok");
			return;
		}
	if (s->nrcpt >= (size_t)s->conf->max_rcpt) {
		smtp_reply(s, 452, "4.5.3 Error: too many recipients");
		return;
	}
	if (s->conf->sender_rate.count > 0 && sender_over_limit(s, r.addr))
		return;
	if (smtp_milters(s)) {
		struct milter_client cl;

		char args[SMTP_XTEXT_MAX + 64];

		s->mil->rcpt = r;
		s->mil->prev = s->state;
		smtp_milter_args(s, &r, args, sizeof(args));
		smtp_enter_state(s, S_MILTER);
		smtp_milter_client(s, &cl);
		milter_rcpt(s->mil->chain, &cl, r.addr, args,
		    smtp_milter_rcpt_done, s);
		return;
	}
	s->rcpts = xrealloc(s->rcpts, (s->nrcpt + 1) * sizeof(*s->rcpts));
	s->rcpts[s->nrcpt++] = r;
	smtp_enter_state(s, S_RCPT);
	smtp_reply(s, 250, "2.1.5 Ok");
}

static void
rfc5322_date(char *buf, size_t len)
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed",
	    "Thu", "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr",
	    "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t now = time(NULL);
	struct tm tm;
	long off;

	localtime_r(&now, &tm);
	off = tm.tm_gmtoff / 60;
	snprintf(buf, len, "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld",
	    days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    off < 0 ? '-' : '+', labs(off) / 60, labs(off) % 60);
}

/* RFC 5321 §4.4 trace header, folded, CRLF-terminated.  Length or -1. */
static int
smtp_received(struct smtpd_session *s, char *buf, size_t len)
{
	char date[64], lit[INET6_ADDRSTRLEN + 8], proto[16];
	size_t n;
	int r;

	if (strchr(s->addr, ':') != NULL)
		snprintf(lit, sizeof(lit), "[IPv6:%s]", s->addr);
	else
		snprintf(lit, sizeof(lit), "[%s]", s->addr);
	/* RFC 3848 and RFC 6531 §3.7.3 protocol names */
	if (!s->esmtp)
		dr_strlcpy(proto, "SMTP", sizeof(proto));
	else
		snprintf(proto, sizeof(proto), "%s%s%s",
		    s->mail.smtputf8 ? "UTF8SMTP" : "ESMTP",
		    s->tls ? "S" : "", s->auth_user != NULL ? "A" : "");
	rfc5322_date(date, sizeof(date));

	r = snprintf(buf, len, "Received: from %s (%s)\r\n", s->helo, lit);
	if (r < 0 || (size_t)r >= len)
		return -1;
	n = (size_t)r;
	if (s->tls) {
		r = snprintf(buf + n, len - n, "\t(using %s)\r\n",
		    s->tls_info);
		if (r < 0 || (size_t)r >= len - n)
			return -1;
		n += (size_t)r;
	}
	r = snprintf(buf + n, len - n, "\tby %s (danerelay) with %s id %s",
	    s->conf->hostname, proto, s->qid);
	if (r < 0 || (size_t)r >= len - n)
		return -1;
	n += (size_t)r;
	if (s->nrcpt == 1)
		r = snprintf(buf + n, len - n, "\r\n\tfor <%s>; %s\r\n",
		    s->rcpts[0].addr, date);
	else
		r = snprintf(buf + n, len - n, ";\r\n\t%s\r\n", date);
	if (r < 0 || (size_t)r >= len - n)
		return -1;
	return (int)(n + (size_t)r);
}

static void
smtp_data(struct smtpd_session *s)
{
	char err[256], hdr[2048];
	int n;

	switch (s->state) {
	case S_CONNECTED:
	case S_HELO:
		smtp_reply(s, 503, "5.5.1 Error: need MAIL command");
		return;
	case S_MAIL:
		if (s->rcpt_rejected)
			smtp_reply(s, 554, "5.5.1 Error: no valid recipients");
		else
			smtp_reply(s, 503, "5.5.1 Error: need RCPT command");
		return;
	default:
		break;
	}
	if (s->w == NULL && (s->w = spool_writer_new(s->sd->spool, err,
	    sizeof(err))) == NULL) {
		log_warnx("smtpd %s: cannot create queue file: %s", s->addr,
		    err);
		smtp_reply(s, 451, "4.3.0 Error: queue file write error");
		return;
	}
	dr_strlcpy(s->qid, spool_writer_id(s->w), sizeof(s->qid));
	smtp_data_scan_init(&s->ds);
	msg_header_scan_init(&s->hs);
	if (s->conf->dkim != NULL) {
		if (s->df == NULL)
			s->df = xmalloc(sizeof(*s->df));
		dkim_from_init(s->df);
	}
	s->msgsize = 0;
	s->too_big = s->nul = s->io_error = 0;
	if ((n = smtp_received(s, hdr, sizeof(hdr))) < 0 ||
	    spool_writer_write(s->w, hdr, (size_t)n) == -1) {
		log_warn("%s: cannot write queue file", s->qid);
		smtp_tx_reset(s);
		smtp_reply(s, 451, "4.3.0 Error: queue file write error");
		return;
	}
	smtp_enter_state(s, S_DATA);
	smtp_reply(s, 354, "End data with <CR><LF>.<CR><LF>");
}

/*
 * RFC 5321 §6.3 loop detection: more than max_hops Received: fields,
 * counting the one we put on top, and the message has been here (or
 * around some other circle) too often.
 */
static int
smtp_looping(struct smtpd_session *s)
{
	return s->hs.received + 1 > (unsigned int)s->conf->max_hops;
}

/* Message bytes (unstuffed) on their way to the spool. */
static void
smtp_data_write(struct smtpd_session *s, const char *buf, size_t n)
{
	if (n == 0)
		return;
	s->msgsize += n;
	if (s->conf->max_size > 0 && s->msgsize > s->conf->max_size)
		s->too_big = 1;
	if (memchr(buf, '\0', n) != NULL)
		s->nul = 1;
	if (!s->hs.done)
		msg_header_scan(&s->hs, buf, n);
	if (s->df != NULL && !s->df->done)
		dkim_from_scan(s->df, buf, n);
	/* Once the message is doomed, stop filling the disk; we keep
	 * reading (and discarding) to the end of the data. */
	if (s->too_big || s->io_error || s->nul || smtp_looping(s) ||
	    (s->ds.flags & (DATA_BARE_NL | DATA_LONG_LINE))) {
		if (s->w != NULL) {
			spool_writer_abort(s->w);
			s->w = NULL;
		}
		return;
	}
	if (spool_writer_write(s->w, buf, n) == -1) {
		log_warn("%s: write to queue file", s->qid);
		s->io_error = 1;
		spool_writer_abort(s->w);
		s->w = NULL;
	}
}

/*
 * "TLS-Required: No" (RFC 8689 §5) lets the recipient domain's DANE or
 * MTA-STS failures pass: honoured only when tls_required_header = yes,
 * only from allow_clients or an authenticated client, and never for a
 * REQUIRETLS message.  Anyone else's header is left in the message and
 * changes nothing.
 */
static int
smtp_tls_required_no(struct smtpd_session *s)
{
	if (!s->hs.tls_required_no)
		return 0;
	if (s->conf->tls_required_header && !s->mail.requiretls &&
	    smtp_relay_allowed(s))
		return 1;
	log_info("%s: TLS-Required: No ignored (%s)", s->qid,
	    s->mail.requiretls ? "REQUIRETLS message" :
	    !s->conf->tls_required_header ? "tls_required_header = no" :
	    "client neither in allow_clients nor authenticated");
	return 0;
}

static struct spool_env *
smtp_envelope(struct smtpd_session *s)
{
	struct spool_env *env = spool_env_new();
	struct spool_rcpt *r;
	size_t i;

	env->sender = xstrdup(s->mail.addr);
	env->client_addr = xstrdup(s->addr);
	env->client_helo = xstrdup(s->helo);
	env->auth_user = s->auth_user != NULL ? xstrdup(s->auth_user) : NULL;
	env->body_8bit = s->mail.body == BODY_8BITMIME;
	env->smtputf8 = s->mail.smtputf8;
	env->envid = s->mail.envid[0] ? xstrdup(s->mail.envid) : NULL;
	env->ret = s->mail.ret[0] ? xstrdup(s->mail.ret) : NULL;
	env->requiretls = s->mail.requiretls;
	env->tls_required_no = smtp_tls_required_no(s);
	for (i = 0; i < s->nrcpt; i++) {
		r = spool_env_add_rcpt(env, s->rcpts[i].addr);
		if (s->rcpts[i].orcpt[0] != '\0')
			r->orcpt = xstrdup(s->rcpts[i].orcpt);
		r->notify = s->rcpts[i].notify;
		if (s->hold != NULL)	/* a milter's quarantine */
			r->last_error = xasprintf("held by a milter: %s",
			    s->hold);
	}
	env->hold = s->hold != NULL;
	return env;
}

static void
smtp_data_reject(struct smtpd_session *s, int code, const char *text)
{
	log_info("%s: reject: DATA from unknown[%s]: %d %s; from=<%s> "
	    "nrcpt=%zu helo=<%s>", s->qid, s->addr, code, text, s->mail.addr,
	    s->nrcpt, s->helo);
	smtp_reply(s, code, "%s", text);
}

/*
 * The commit of one message on the io pool (spool_writer_commit_async):
 * the session waits in S_COMMIT, reading nothing, until the spool says
 * the message is durable (file and directory fsync'ed, see spool.c);
 * only then does the client get its 250.  A session that ends meanwhile
 * is only marked dead (like an AUTH check): the message is still handed
 * to the queue when it is durable - the client may send it again, which
 * SMTP allows - and the session is freed then.
 */
struct smtpd_commit {
	struct smtpd		*sd;
	struct smtpd_session	*s;	/* NULL: session freed (shutdown) */
	struct spool_env	*env;
	char			 id[QUEUE_ID_LEN + 1];
	char			 addr[INET6_ADDRSTRLEN];	/* client */
	char			*logline;	/* client=..., tls=... */
};

static void
smtp_commit_finish(struct smtpd_session *s)
{
	smtp_enter_state(s, S_HELO);
	if (s->stopping) {
		smtp_reply(s, 421, "4.3.2 %s Service shutting down, closing "
		    "connection", s->conf->hostname);
		smtp_enter_state(s, S_QUIT);
	}
}

/* The message of s, for the commit: its envelope and its log line. */
static struct smtpd_commit *
smtp_commit_new(struct smtpd_session *s)
{
	struct smtpd_commit *c = xcalloc(1, sizeof(*c));

	c->sd = s->sd;
	c->s = s;
	c->env = smtp_envelope(s);
	dr_strlcpy(c->id, s->qid, sizeof(c->id));
	dr_strlcpy(c->addr, s->addr, sizeof(c->addr));
	c->logline = xasprintf("client=unknown[%s], helo=<%s>, from=<%s>, "
	    "size=%lld, nrcpt=%zu, tls=%s%s%s", s->addr, s->helo,
	    c->env->sender, (long long)spool_writer_size(s->w),
	    c->env->nrcpt, s->tls ? s->tls_proto : "none",
	    s->auth_user != NULL ? ", auth=" : "",
	    s->auth_user != NULL ? s->auth_user : "");
	return c;
}

static void
smtp_commit_free(struct smtpd_commit *c)
{
	spool_env_free(c->env);
	free(c->logline);
	free(c);
}

/* The commit's outcome: logged, handed to the queue, and answered if
 * reply (the session still waits for it); frees c. */
static void
smtp_commit_answer(struct smtpd_commit *c, int reply, int rc, int error,
    const char *why)
{
	struct smtpd_session *s = c->s;

	if (rc == 0) {
		log_info("%s: %s", c->env->id, c->logline);
		if (c->sd->cb != NULL)
			c->sd->cb(c->env, c->sd->cbarg);
	} else
		log_warnx("%s: cannot queue message from unknown[%s]: %s",
		    c->id, c->addr, why);
	if (s != NULL && reply) {
		if (rc == 0)
			/* durable now (file and directory fsync'ed) */
			smtp_reply(s, 250, "2.0.0 Ok: queued as %s",
			    c->env->id);
		else if (error == ENOSPC || error == EDQUOT)
			smtp_reply(s, 451, "4.3.1 Error: insufficient "
			    "system storage, try again later");
		else
			smtp_reply(s, 451, "4.3.0 Error: could not queue "
			    "message, try again later");
		smtp_commit_finish(s);
	}
	smtp_commit_free(c);
}

static void
smtp_commit_done(int rc, int error, const char *why, void *arg)
{
	struct smtpd_commit *c = arg;
	struct smtpd_session *s = c->s;
	int waiting = s != NULL && !s->dead && s->state == S_COMMIT;

	if (s != NULL)
		s->commit = NULL;
	smtp_commit_answer(c, waiting, rc, error, why);
	if (s == NULL)
		return;
	if (s->dead) {
		smtp_free(s);
		return;
	}
	if (waiting && s->state != S_QUIT) {
		bufferevent_enable(s->bev, EV_READ);
		smtp_process_input(s);
	}
	smtp_check_close(s);	/* or: 421 already sent */
}

/*
 * DKIM (dkim.c): a message whose From: domain has a key in
 * dkim_key_table is signed after the end of DATA and before the commit,
 * on the cpu pool (an RSA-2048 signature is ~1.5 ms: never on the loop);
 * the session waits in S_COMMIT meanwhile, like for the commit itself.
 * The signatures are put in front of the spooled message, so they are
 * stored with it: retries and restarts never sign again.  Other mail
 * costs only the From: scan of its header section.  A failure is
 * logged; with dkim_failure_action = defer the client gets 451, with
 * pass the message goes on unsigned.
 */
struct smtpd_sign {
	struct smtpd_commit	*c;
	struct smtpd_conf	*conf;		/* a reference: the key table */
	struct spool_writer	*w;
	off_t			 off;		/* read so far */
	char			 domain[256];
	int			 rc;		/* dkim_sign_msg() */
	char			 err[256];
};

static ssize_t
sign_read(void *arg, void *buf, size_t len)
{
	struct smtpd_sign *j = arg;

	return spool_writer_read(j->w, &j->off, buf, len);
}

/* On the cpu pool (or the loop when there is none). */
static void
sign_work(void *arg)
{
	struct smtpd_sign *j = arg;
	char *hdrs = NULL;

	j->rc = dkim_sign_msg(j->conf->dkim, j->domain, DKIM_SVC_EMAIL,
	    j->c->id, sign_read, j, &hdrs, j->err, sizeof(j->err));
	if (j->rc > 0 && spool_writer_prepend(j->w, hdrs, strlen(hdrs)) ==
	    -1) {
		snprintf(j->err, sizeof(j->err), "queue file: %s",
		    strerror(errno));
		j->rc = -1;
	}
	free(hdrs);
}

/* Log the outcome; -1 if the message is deferred. */
static int
sign_verdict(struct smtpd_sign *j)
{
	if (j->rc > 0)
		log_info("%s: dkim: signed, d=%s, signatures=%d", j->c->id,
		    j->domain, j->rc);
	else if (j->rc < 0 && j->conf->dkim_defer) {
		log_warnx("%s: dkim: signing for d=%s failed: %s; deferred "
		    "(dkim_failure_action = defer)", j->c->id, j->domain,
		    j->err);
		return -1;
	} else if (j->rc < 0)
		log_warnx("%s: dkim: signing for d=%s failed: %s; sent "
		    "unsigned (dkim_failure_action = pass)", j->c->id,
		    j->domain, j->err);
	return 0;
}

static void
sign_done(void *arg)
{
	struct smtpd_sign *j = arg;
	struct smtpd_commit *c = j->c;
	char err[512];

	if (sign_verdict(j) == -1) {
		spool_writer_abort(j->w);
		smtp_commit_done(-1, 0, "DKIM signing failed", c);
	} else if (spool_writer_commit_async(j->w, c->env, smtp_commit_done,
	    c, err, sizeof(err)) == -1)
		smtp_commit_done(-1, 0, err, c);
	smtpd_conf_unref(j->conf);
	free(j);
}

/* Sign the message of c first, if its From: domain has a key: 1 on the
 * pool (the commit follows from there), 0 go on with the commit (not
 * signed, or signed here for want of a pool), -1 deferred and answered. */
static int
smtp_sign_start(struct smtpd_session *s, struct smtpd_commit *c,
    struct spool_writer *w)
{
	struct smtpd_sign *j;
	char dom[256];
	int r;

	if (s->conf->dkim == NULL || s->df == NULL ||
	    dkim_from_domain(s->df, dom, sizeof(dom)) == NULL ||
	    !dkim_table_signs(s->conf->dkim, dom, DKIM_SVC_EMAIL))
		return 0;
	j = xcalloc(1, sizeof(*j));
	j->c = c;
	j->conf = smtpd_conf_ref(s->conf);
	j->w = w;
	dr_strlcpy(j->domain, dom, sizeof(j->domain));
	if (s->sd->wq_cpu != NULL && s->sd->port != NULL &&
	    s->sd->wq_io != NULL) {
		s->commit = c;
		smtp_enter_state(s, S_COMMIT);
		workq_submit(s->sd->wq_cpu, s->sd->port, sign_work, sign_done,
		    j);
		return 1;
	}
	sign_work(j);		/* no pool (tests): on the loop */
	r = sign_verdict(j);
	smtpd_conf_unref(j->conf);
	free(j);
	if (r == -1) {
		spool_writer_abort(w);
		smtp_commit_answer(c, 1, -1, 0, "DKIM signing failed");
	}
	return r;
}

/* The end-of-data marker arrived: decide, and only then reply. */
static void
smtp_data_end(struct smtpd_session *s)
{
	char text[128];
	int flags = s->ds.flags;

	if (flags & DATA_BARE_NL)
		smtp_data_reject(s, 550, "5.6.0 Error: bare <CR> or <LF> "
		    "received; lines must end in <CR><LF> (RFC 5321 section "
		    "2.3.8)");
	else if (flags & DATA_LONG_LINE)
		smtp_data_reject(s, 550, "5.5.2 Error: text line longer than "
		    "1000 octets (RFC 5321 section 4.5.3.1.6)");
	else if (s->nul)
		/* A receiver that drops NULs would see "\r\n\0.\r\n" as
		 * the end of data and what follows as a second message. */
		smtp_data_reject(s, 550, "5.6.0 Error: message contains NUL "
		    "characters");
	else if (smtp_looping(s)) {
		snprintf(text, sizeof(text), "5.4.6 Error: too many hops "
		    "(%u Received: header fields, max_hops %d): mail loop?",
		    s->hs.received + 1, s->conf->max_hops);
		smtp_data_reject(s, 554, text);
	} else if (s->too_big) {
		snprintf(text, sizeof(text), "5.3.4 Error: message too big "
		    "(limit %llu bytes)", s->conf->max_size);
		smtp_data_reject(s, 552, text);
	} else if (s->io_error || s->w == NULL) {
		smtp_reply(s, 451, "4.3.0 Error: queue file write error");
	} else if (smtp_milters(s)) {
		if (smtp_milter_message(s) == 0)
			return;
	} else {
		smtp_data_accept(s);
		return;
	}
	smtp_commit_finish(s);
}

/* The message is good: signed if it should be, then made durable, and
 * only then answered. */
static void
smtp_data_accept(struct smtpd_session *s)
{
	struct spool_writer *w;
	struct smtpd_commit *c;
	char err[512];
	int rc;

	c = smtp_commit_new(s);
	w = s->w;
	s->w = NULL;	/* the spool's from here on */
	if (smtp_sign_start(s, c, w) != 0)
		return;
	if (s->sd->wq_io == NULL) {
		/* no pool: on the loop (the caller reads on) */
		rc = spool_writer_commit(w, c->env, err, sizeof(err));
		smtp_commit_answer(c, 1, rc, 0, err);
		return;
	}
	s->commit = c;
	smtp_enter_state(s, S_COMMIT);
	if (spool_writer_commit_async(w, c->env, smtp_commit_done, c,
	    err, sizeof(err)) == -1) {
		s->commit = NULL;
		smtp_commit_answer(c, 1, -1, 0, err);
		bufferevent_enable(s->bev, EV_READ);
	}
}

/* DATA: scan what arrived, stream it out, stop at the end marker. */
static void
smtp_data_input(struct smtpd_session *s)
{
	static _Thread_local char in[DATA_CHUNK], out[DATA_CHUNK + 1];
	struct evbuffer *ib = bufferevent_get_input(s->bev);
	ev_ssize_t n;
	size_t used, olen;

	while (s->state == S_DATA &&
	    (n = evbuffer_copyout(ib, in, sizeof(in))) > 0) {
		used = smtp_data_scan(&s->ds, in, (size_t)n, out, &olen);
		evbuffer_drain(ib, used);
		smtp_data_write(s, out, olen);
		if (s->ds.done)
			smtp_data_end(s);
	}
}

/*
 * AUTH verification runs on the cpu pool: crypt(3) costs ~10-50 ms
 * (yescrypt), and on the loop it would stall every other session.
 * The job owns copies of the credentials and a reference to the settings
 * snapshot (the auth table), so a SIGHUP reload cannot free the table
 * under it.  While it runs the session is in S_AUTH_CHECK and reads no
 * input.  A session that ends meanwhile (client gone, timeout) is only
 * marked dead and freed by auth_done(): the job never points at freed
 * memory, and sessions waiting for crypt still count towards
 * smtpd_max_clients, which bounds the crypt jobs clients can queue.
 */
struct auth_job {
	struct smtpd_session	*s;	/* NULL: session freed (shutdown) */
	struct smtpd_conf	*conf;	/* our reference */
	char			 user[SMTP_AUTH_USER_MAX + 1];
	char			 pass[SMTP_AUTH_PASS_MAX + 1];
	int			 result;	/* auth_check() */
};

/* More than smtpd_max_errors errors: 421 and close. */
static void
smtp_check_errors(struct smtpd_session *s)
{
	if (s->errors > s->conf->max_errors && s->state != S_QUIT) {
		log_warnx("smtpd %s: too many errors (%d): disconnecting",
		    s->addr, s->errors);
		smtp_reply(s, 421, "4.7.0 %s Error: too many errors",
		    s->conf->hostname);
		smtp_enter_state(s, S_QUIT);
	}
}

/* On a pool thread: only the job's own data. */
static void
auth_work(void *arg)
{
	struct auth_job *j = arg;

	j->result = auth_check(j->conf->auth, j->user, j->pass);
	OPENSSL_cleanse(j->pass, sizeof(j->pass));
}

/* The delay of a failed AUTH is over: its reply, then the input. */
static void
smtp_auth_delay_done(evutil_socket_t fd, short ev, void *arg)
{
	struct smtpd_session *s = arg;

	if (s->state != S_AUTH_CHECK)
		return;			/* 421 already sent */
	smtp_enter_state(s, S_HELO);
	smtp_reply(s, s->delayed_code, "%s", s->delayed_text);
	smtp_check_errors(s);
	if (s->state != S_QUIT) {
		bufferevent_enable(s->bev, EV_READ);
		smtp_process_input(s);
	}
	smtp_check_close(s);
}

/*
 * A failed AUTH (issue #12 item 2): logged for fail2ban and counted per
 * client address over every worker (anvil.c).  A client outside
 * allow_clients gets its reply only after smtpd_auth_failure_delay times
 * its address's failures so far (at most ANVIL_AUTH_DELAY_MAX), reading
 * nothing meanwhile (S_AUTH_CHECK, as during crypt); the failure that
 * reaches smtpd_auth_failure_limit gets 421 instead, and the address is
 * refused for smtpd_auth_block_time.  So reconnecting does not reset the
 * cost of guessing.
 */
static void
smtp_auth_failed(struct smtpd_session *s, const char *user, int code,
    const char *text)
{
	struct anvil_limits lim;
	struct timeval tv;
	double delay = 0;
	int failures, blocked;

	/* the line fail2ban looks for */
	log_warnx("authentication failed: user=<%s>, client=[%s]", user,
	    s->addr);
	stats_inc(S_AUTH_FAILED);
	if (!s->allowed && s->sd->anvil != NULL) {
		smtpd_anvil_limits(s->conf, &lim);
		delay = anvil_auth_failed(s->sd->anvil,
		    (struct sockaddr *)&s->ss, &lim, &failures, &blocked);
		if (blocked) {
			stats_inc(S_REFUSED_AUTH_BLOCKED);
			log_warnx("refused: %d AUTH failures, blocked for "
			    "%llds (smtpd_auth_failure_limit), client=[%s]",
			    failures, lim.auth_block, s->addr);
			smtp_reply(s, 421, "4.7.0 %s Error: too many failed "
			    "authentications from your address, try again "
			    "later", s->conf->hostname);
			smtp_enter_state(s, S_QUIT);
			return;
		}
	}
	if (delay > 0 && s->ev_auth == NULL)
		s->ev_auth = evtimer_new(s->sd->base, smtp_auth_delay_done, s);
	if (delay <= 0 || s->ev_auth == NULL) {
		smtp_reply(s, code, "%s", text);
		return;
	}
	stats_inc(S_AUTH_DELAYED);
	stats_add(S_AUTH_DELAY_MS, (unsigned long long)(delay * 1000));
	log_debug("smtpd %s: AUTH failure %d of this address: reply in "
	    "%.0fs", s->addr, failures, delay);
	s->delayed_code = code;
	dr_strlcpy(s->delayed_text, text, sizeof(s->delayed_text));
	smtp_enter_state(s, S_AUTH_CHECK);
	tv.tv_sec = (time_t)delay;
	tv.tv_usec = (suseconds_t)((delay - (double)tv.tv_sec) * 1e6);
	evtimer_add(s->ev_auth, &tv);
}

/* 235, 535 or 454 for auth_check()'s r. */
static void
smtp_auth_verdict(struct smtpd_session *s, const char *user, int r)
{
	char safe[SMTP_AUTH_USER_MAX + 1];

	smtp_enter_state(s, S_HELO);
	safe_str(user, safe, sizeof(safe));
	if (r == 1) {
		s->auth_user = xstrdup(user);
		smtp_unauth_end(s);
		log_info("smtpd: client=unknown[%s], sasl_method=%s, "
		    "sasl_username=%s", s->addr, s->auth_mech, safe);
		smtp_reply(s, 235, "2.7.0 Authentication successful");
	} else if (r == 0)
		smtp_auth_failed(s, safe, 535, "5.7.8 Authentication "
		    "credentials invalid");
	else {
		log_warnx("smtpd %s: password check failed for user=<%s>: "
		    "crypt error", s->addr, safe);
		smtp_reply(s, 454, "4.7.0 Temporary authentication failure");
	}
}

/* Back on the loop: the verdict, then the input that waited. */
static void
auth_done(void *arg)
{
	struct auth_job *j = arg;
	struct smtpd_session *s = j->s;

	smtpd_conf_unref(j->conf);
	if (s == NULL)
		goto out;
	s->auth_job = NULL;
	if (s->dead) {
		smtp_free(s);
		goto out;
	}
	if (s->state != S_AUTH_CHECK) {
		/* 421 already sent (timeout, shutdown) */
		smtp_check_close(s);
		goto out;
	}
	smtp_auth_verdict(s, j->user, j->result);
	smtp_check_errors(s);
	if (s->state != S_QUIT && s->state != S_AUTH_CHECK) {
		bufferevent_enable(s->bev, EV_READ);
		smtp_process_input(s);
	}
	smtp_check_close(s);
 out:
	OPENSSL_cleanse(j, sizeof(*j));
	free(j);
}

/* Hand user and pass (cleansed here) to the cpu pool. */
static void
smtp_auth_result(struct smtpd_session *s, const char *user, char *pass)
{
	struct auth_job *j;
	int r;

	if (s->sd->wq_cpu == NULL || s->sd->port == NULL) {
		/* no pool (smtpd_set_workq() not called): on the loop */
		r = auth_check(s->conf->auth, user, pass);
		OPENSSL_cleanse(pass, strlen(pass));
		smtp_auth_verdict(s, user, r);
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->s = s;
	j->conf = smtpd_conf_ref(s->conf);
	dr_strlcpy(j->user, user, sizeof(j->user));
	dr_strlcpy(j->pass, pass, sizeof(j->pass));
	OPENSSL_cleanse(pass, strlen(pass));
	s->auth_job = j;
	smtp_enter_state(s, S_AUTH_CHECK);
	workq_submit(s->sd->wq_cpu, s->sd->port, auth_work, auth_done, j);
}

static void
smtp_auth_plain_response(struct smtpd_session *s, const char *b64)
{
	char user[SMTP_AUTH_USER_MAX + 1], pass[SMTP_AUTH_PASS_MAX + 1];
	struct smtp_perr e;

	if (smtp_auth_plain(b64, user, sizeof(user), pass, sizeof(pass),
	    &e) == -1) {
		smtp_enter_state(s, S_HELO);
		if (e.code == 535)
			smtp_auth_failed(s, "", e.code, e.text);
		else
			smtp_reply(s, e.code, "%s", e.text);
		return;
	}
	smtp_auth_result(s, user, pass);
	OPENSSL_cleanse(pass, sizeof(pass));
}

/* A line in one of the S_AUTH_* states. */
static void
smtp_auth_response(struct smtpd_session *s, const char *line, size_t len)
{
	char pass[SMTP_AUTH_PASS_MAX + 1];
	struct smtp_perr e;

	if (strcmp(line, "*") == 0) {
		smtp_enter_state(s, S_HELO);
		smtp_reply(s, 501, "5.7.0 Authentication aborted");
		return;
	}
	if (strlen(line) != len) {
		smtp_enter_state(s, S_HELO);
		smtp_reply(s, 501, "5.5.2 Cannot decode AUTH response");
		return;
	}
	switch (s->state) {
	case S_AUTH_PLAIN:
		smtp_auth_plain_response(s, line);
		break;
	case S_AUTH_USER:
		if (smtp_auth_login(line, s->login_user, sizeof(s->login_user),
		    &e) == -1) {
			smtp_enter_state(s, S_HELO);
			smtp_reply(s, e.code, "%s", e.text);
			break;
		}
		smtp_enter_state(s, S_AUTH_PASS);
		smtp_reply(s, 334, "UGFzc3dvcmQ6");	/* "Password:" */
		break;
	case S_AUTH_PASS:
		if (smtp_auth_login(line, pass, sizeof(pass), &e) == -1) {
			smtp_enter_state(s, S_HELO);
			smtp_reply(s, e.code, "%s", e.text);
			break;
		}
		smtp_auth_result(s, s->login_user, pass);
		OPENSSL_cleanse(pass, sizeof(pass));
		break;
	default:
		break;
	}
}

static void
smtp_auth(struct smtpd_session *s, const char *arg)
{
	char mech[32], *ir;
	struct smtp_perr e;
	double left;
	size_t n;

	if (s->conf->auth == NULL) {
		smtp_reply(s, 503, "5.5.1 Error: authentication not enabled");
		return;
	}
	/* Credentials never travel in the clear (RFC 4954 §4 allows us
	 * to insist; 538 is its "encryption required" reply). */
	if (!s->tls) {
		smtp_reply(s, 538, "5.7.11 Encryption required for requested "
		    "authentication mechanism");
		return;
	}
	if (s->state == S_CONNECTED) {
		smtp_reply(s, 503, "5.5.1 Error: send EHLO first");
		return;
	}
	if (s->state != S_HELO) {
		smtp_reply(s, 503, "5.5.1 Error: MAIL transaction in "
		    "progress");
		return;
	}
	if (s->auth_user != NULL) {
		smtp_reply(s, 503, "5.5.1 Error: already authenticated");
		return;
	}
	if (!s->allowed && s->sd->anvil != NULL &&
	    (left = anvil_auth_blocked(s->sd->anvil,
	    (struct sockaddr *)&s->ss)) > 0) {
		/* blocked while this session was open */
		stats_inc(S_REFUSED_AUTH_BLOCKED);
		log_warnx("refused: AUTH while blocked after AUTH failures "
		    "(%.0fs left), client=[%s]", left, s->addr);
		smtp_reply(s, 421, "4.7.0 %s Error: too many failed "
		    "authentications from your address, try again later",
		    s->conf->hostname);
		smtp_enter_state(s, S_QUIT);
		return;
	}
	n = strcspn(arg, " ");
	if (n >= sizeof(mech)) {
		smtp_reply(s, 504, "5.5.4 Unrecognized authentication type");
		return;
	}
	memcpy(mech, arg, n);
	mech[n] = '\0';
	ir = (char *)arg + n;
	while (*ir == ' ')
		ir++;
	if (strcasecmp(mech, "PLAIN") == 0) {
		s->auth_mech = "PLAIN";
		if (*ir == '\0') {
			smtp_enter_state(s, S_AUTH_PLAIN);
			smtp_reply(s, 334, " ");
			return;
		}
		smtp_auth_plain_response(s, ir);
	} else if (strcasecmp(mech, "LOGIN") == 0) {
		s->auth_mech = "LOGIN";
		if (*ir == '\0') {
			smtp_enter_state(s, S_AUTH_USER);
			smtp_reply(s, 334, "VXNlcm5hbWU6");	/* Username: */
			return;
		}
		if (smtp_auth_login(ir, s->login_user, sizeof(s->login_user),
		    &e) == -1) {
			smtp_reply(s, e.code, "%s", e.text);
			return;
		}
		smtp_enter_state(s, S_AUTH_PASS);
		smtp_reply(s, 334, "UGFzc3dvcmQ6");		/* Password: */
	} else
		smtp_reply(s, 504, "5.5.4 Unrecognized authentication type");
}

static void
smtp_starttls(struct smtpd_session *s)
{
	if (s->conf->tls == NULL) {
		smtp_reply(s, 502, "5.5.1 Error: command not implemented");
		return;
	}
	if (s->tls) {
		smtp_reply(s, 503, "5.5.1 Error: TLS already active");
		return;
	}
	if (s->state == S_CONNECTED) {
		smtp_reply(s, 503, "5.5.1 Error: send EHLO first");
		return;
	}
	if (s->state != S_HELO) {
		smtp_reply(s, 503, "5.5.1 Error: MAIL transaction in "
		    "progress");
		return;
	}
	/* Anything pipelined behind STARTTLS would be injected into the
	 * TLS session (CVE-2011-0411 and kin): refuse, and hang up. */
	if (evbuffer_get_length(bufferevent_get_input(s->bev)) > 0) {
		log_warnx("smtpd %s: data pipelined after STARTTLS (command "
		    "injection attempt?): disconnecting", s->addr);
		smtp_reply(s, 554, "5.5.0 Error: command pipelined after "
		    "STARTTLS");
		smtp_enter_state(s, S_QUIT);
		return;
	}
	smtp_enter_state(s, S_STARTTLS);
	smtp_reply(s, 220, "2.0.0 Ready to start TLS");
}

/* The 220 for STARTTLS is out: replace the plain bufferevent. */
static void
smtp_tls_begin(struct smtpd_session *s)
{
	struct timeval tv = { s->conf->timeout, 0 };
	char ebuf[256];
	SSL *ssl;

	if ((ssl = SSL_new(s->conf->tls)) == NULL) {
		log_warnx("smtpd %s: SSL_new: %s", s->addr,
		    ERR_error_string(ERR_get_error(), ebuf));
		smtp_free(s);
		return;
	}
	bufferevent_disable(s->bev, EV_READ | EV_WRITE);
	bufferevent_free(s->bev);
	s->bev = bufferevent_openssl_socket_new(s->sd->base, s->fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL) {
		log_warnx("smtpd %s: cannot start TLS", s->addr);
		SSL_free(ssl);
		smtp_free(s);
		return;
	}
	s->bev_owns_fd = 1;
	s->in_left = 0;
	bufferevent_openssl_set_allow_dirty_shutdown(s->bev, 1);
	bufferevent_setcb(s->bev, smtp_read_cb, smtp_write_cb, smtp_event_cb,
	    s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, IBUF_MAX);
	bufferevent_set_timeouts(s->bev, &tv, &tv);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

static void
smtp_tls_established(struct smtpd_session *s)
{
	SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
	const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
	int alg = 0, bits;

	bits = SSL_CIPHER_get_bits(c, &alg);
	dr_strlcpy(s->tls_proto, SSL_get_version(ssl), sizeof(s->tls_proto));
	snprintf(s->tls_info, sizeof(s->tls_info), "%s with cipher %s "
	    "(%d/%d bits)", s->tls_proto, SSL_CIPHER_get_name(c), bits, alg);
	s->tls = 1;
	log_info("smtpd: TLS connection established from unknown[%s]: %s",
	    s->addr, s->tls_info);
	smtp_enter_state(s, S_CONNECTED);
}

static void
smtp_command(struct smtpd_session *s, struct smtp_cmd *cmd)
{
	s->ncmd[cmd->verb]++;
	s->ncommands++;

	switch (cmd->verb) {
	case CMD_HELO:
	case CMD_EHLO:
		smtp_helo(s, cmd->arg, cmd->verb == CMD_EHLO);
		break;
	case CMD_MAIL:
		smtp_mail(s, cmd->arg);
		break;
	case CMD_RCPT:
		smtp_rcpt(s, cmd->arg);
		break;
	case CMD_DATA:
		smtp_data(s);
		break;
	case CMD_RSET:
		if (s->state != S_CONNECTED)
			smtp_enter_state(s, S_HELO);
		smtp_reply(s, 250, "2.0.0 Ok");
		break;
	case CMD_NOOP:
		smtp_reply(s, 250, "2.0.0 Ok");
		break;
	case CMD_QUIT:
		smtp_reply(s, 221, "2.0.0 Bye");
		smtp_enter_state(s, S_QUIT);
		break;
	case CMD_VRFY:
		smtp_reply(s, 252, "2.0.0 Cannot VRFY user, but will accept "
		    "message and attempt delivery");
		break;
	case CMD_EXPN:
		smtp_reply(s, 502, "5.5.1 Error: EXPN not supported");
		break;
	case CMD_HELP:
		smtp_reply(s, 214, "2.0.0 Commands: EHLO HELO MAIL RCPT DATA "
		    "RSET NOOP QUIT VRFY HELP STARTTLS AUTH");
		break;
	case CMD_STARTTLS:
		smtp_starttls(s);
		break;
	case CMD_AUTH:
		smtp_auth(s, cmd->arg);
		break;
	case CMD_HTTP:
		log_warnx("smtpd %s: HTTP or proxy request sent to the SMTP "
		    "port (cross-protocol attack?): disconnecting", s->addr);
		smtp_reply(s, 554, "5.5.0 Error: this is an SMTP server");
		smtp_enter_state(s, S_QUIT);
		break;
	case CMD_UNKNOWN:
		smtp_reply(s, 500, "5.5.2 Error: command not recognized");
		break;
	}
}

static void
smtp_line(struct smtpd_session *s, char *line, size_t len)
{
	struct smtp_cmd cmd;
	struct smtp_perr e;

	if (s->state == S_AUTH_PLAIN || s->state == S_AUTH_USER ||
	    s->state == S_AUTH_PASS) {
		log_debug("smtpd %s: <<< (AUTH response)", s->addr);
		smtp_auth_response(s, line, len);
		OPENSSL_cleanse(line, len);
		return;
	}
	if (smtp_parse_command(line, len, &cmd, &e) == -1) {
		s->ncommands++;
		log_debug("smtpd %s: <<< (bad command line)", s->addr);
		smtp_reply(s, e.code, "%s", e.text);
		return;
	}
	if (cmd.verb == CMD_AUTH)
		log_debug("smtpd %s: <<< AUTH ...", s->addr);
	else
		log_debug("smtpd %s: <<< %s", s->addr, line);
	smtp_command(s, &cmd);
	if (cmd.verb == CMD_AUTH)
		OPENSSL_cleanse(line, len);
}

/* RFC 5321 §4.5.3.1.4: 512 octets; AUTH lines 12288 (RFC 4954 §4). */
static size_t
smtp_line_limit(struct smtpd_session *s, struct evbuffer *in)
{
	char head[5];

	if (s->state == S_AUTH_PLAIN || s->state == S_AUTH_USER ||
	    s->state == S_AUTH_PASS)
		return SMTP_AUTH_LINE_MAX;
	if (evbuffer_copyout(in, head, sizeof(head)) == sizeof(head) &&
	    strncasecmp(head, "AUTH ", 5) == 0)
		return SMTP_AUTH_LINE_MAX;
	return SMTP_CMD_LINE_MAX;
}

/*
 * Next command line into linebuf (CR LF or LF removed).  1 a line,
 * 0 need more input, -1 an overlong line ended (and was answered).
 */
static int
smtp_getline(struct smtpd_session *s, size_t *lenp)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct evbuffer_ptr p;
	size_t avail = evbuffer_get_length(in), limit, n;

	if (avail == 0)
		return 0;
	limit = smtp_line_limit(s, in);
	p = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
	if (p.pos == -1) {
		/* no end yet: if it is already too long, stop keeping it */
		if (s->discarding || avail >= limit) {
			evbuffer_drain(in, avail);
			s->discarding = 1;
		}
		return 0;
	}
	n = (size_t)p.pos + 1;
	if (s->discarding || n > limit) {
		evbuffer_drain(in, n);
		s->discarding = 0;
		log_info("smtpd %s: command line longer than %zu octets",
		    s->addr, limit);
		s->ncommands++;
		if (s->state == S_AUTH_PLAIN || s->state == S_AUTH_USER ||
		    s->state == S_AUTH_PASS) {
			/* The AUTH exchange ends here: the client's next
			 * line is a command, not read as an AUTH response. */
			smtp_enter_state(s, S_HELO);
			smtp_reply(s, 500, "5.5.2 Error: line too long (limit "
			    "%zu octets): authentication aborted", limit);
			return -1;
		}
		smtp_reply(s, 500, "5.5.2 Error: line too long (limit %zu "
		    "octets)", limit);
		return -1;
	}
	evbuffer_remove(in, linebuf, n);
	n--;
	if (n > 0 && linebuf[n - 1] == '\r')
		n--;
	linebuf[n] = '\0';
	*lenp = n;
	return 1;
}

/* Everything that arrived, in order, as far as the state allows. */
static void
smtp_process_lines(struct smtpd_session *s)
{
	size_t len;
	int r;

	for (;;) {
		if (s->state == S_QUIT || s->state == S_STARTTLS ||
		    s->state == S_AUTH_CHECK || s->state == S_COMMIT ||
		    s->state == S_MILTER)
			return;
		if (s->state == S_DATA) {
			smtp_data_input(s);
			if (s->state == S_DATA)
				return;
			continue;
		}
		/* A client that pipelines without reading our replies
		 * does not get to fill our memory with them. */
		if (evbuffer_get_length(bufferevent_get_output(s->bev)) >
		    OBUF_MAX) {
			s->paused = 1;
			bufferevent_disable(s->bev, EV_READ);
			return;
		}
		if ((r = smtp_getline(s, &len)) == 0)
			return;
		if (r == 1)
			smtp_line(s, linebuf, len);
		smtp_check_errors(s);
	}
}

/* The same, counting what the client sent (smtpd_min_data_rate). */
static void
smtp_process_input(struct smtpd_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t len = evbuffer_get_length(in);

	if (len > s->in_left)
		s->bytes_in += len - s->in_left;
	smtp_process_lines(s);
	s->in_left = evbuffer_get_length(bufferevent_get_input(s->bev));
}

/* Free the session if it is done and its last reply went out. */
static int
smtp_check_close(struct smtpd_session *s)
{
	if (s->state == S_QUIT &&
	    evbuffer_get_length(bufferevent_get_output(s->bev)) == 0) {
		smtp_free(s);
		return 1;
	}
	return 0;
}

/*
 * libevent callbacks
 */

static void
smtp_read_cb(struct bufferevent *bev, void *arg)
{
	struct smtpd_session *s = arg;

	smtp_process_input(s);
	smtp_check_close(s);
}

/* The output buffer drained. */
static void
smtp_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtpd_session *s = arg;

	if (smtp_check_close(s))
		return;
	if (s->state == S_STARTTLS && !s->bev_owns_fd) {
		smtp_tls_begin(s);
		return;
	}
	if (s->paused) {
		s->paused = 0;
		bufferevent_enable(s->bev, EV_READ);
		smtp_process_input(s);
		smtp_check_close(s);
	}
}

static void
smtp_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtpd_session *s = arg;
	char ebuf[256];
	unsigned long e;

	if (what & BEV_EVENT_CONNECTED) {
		/* TLS handshake done */
		smtp_tls_established(s);
		smtp_process_input(s);
		smtp_check_close(s);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if ((what & BEV_EVENT_READING) && s->state != S_QUIT &&
		    s->state != S_STARTTLS) {
			log_info("smtpd %s: timeout after %s", s->addr,
			    strstate[s->state]);
			smtp_reply(s, 421, "4.4.2 %s Error: timeout exceeded",
			    s->conf->hostname);
			smtp_enter_state(s, S_QUIT);
			return;
		}
		log_info("smtpd %s: %s timeout in state %s", s->addr,
		    (what & BEV_EVENT_READING) ? "read" : "write",
		    strstate[s->state]);
		smtp_free(s);
		return;
	}
	if (s->state == S_STARTTLS && (what & BEV_EVENT_ERROR) &&
	    s->bev_owns_fd) {
		ebuf[0] = '\0';
		while ((e = bufferevent_get_openssl_error(bev)) != 0)
			ERR_error_string_n(e, ebuf, sizeof(ebuf));
		log_warnx("smtpd: TLS handshake failed from unknown[%s]: %s",
		    s->addr, ebuf[0] ? ebuf : strerror(errno));
	} else if (what & BEV_EVENT_ERROR)
		log_info("smtpd %s: connection error in state %s: %s",
		    s->addr, strstate[s->state], strerror(errno));
	else if (s->state != S_QUIT && s->state != S_HELO &&
	    s->state != S_CONNECTED)
		log_info("smtpd %s: lost connection in state %s", s->addr,
		    strstate[s->state]);
	smtp_free(s);
}

static void
smtp_session_timeout(evutil_socket_t fd, short ev, void *arg)
{
	struct smtpd_session *s = arg;

	if (s->state == S_QUIT)
		return;
	if (!s->allowed && s->auth_user == NULL) {
		stats_inc(S_REFUSED_UNAUTH_TIME);
		log_warnx("refused: unauthenticated session time limit %llds "
		    "exceeded in state %s, client=[%s]",
		    s->conf->unauth_timeout < s->conf->session_timeout ?
		    s->conf->unauth_timeout : s->conf->session_timeout,
		    strstate[s->state], s->addr);
	} else
		log_info("smtpd %s: session time limit (%llds) exceeded in "
		    "state %s", s->addr, s->conf->session_timeout,
		    strstate[s->state]);
	if (s->state == S_STARTTLS) {
		smtp_free(s);
		return;
	}
	smtp_reply(s, 421, "4.4.2 %s Error: session time limit exceeded",
	    s->conf->hostname);
	smtp_enter_state(s, S_QUIT);
	smtp_check_close(s);
}

/*
 * smtpd_min_data_rate: a client outside allow_clients that has not
 * authenticated must keep sending, at least that many bytes per second
 * over RATE_PERIOD seconds of its own time (the TLS handshake, crypt and
 * a commit are ours and do not count); one that idles or trickles bytes
 * to hold a connection slot gets 421 and is disconnected.  Checked every
 * RATE_PERIOD / 2 seconds.
 */
static void
smtp_rate_check(evutil_socket_t fd, short ev, void *arg)
{
	struct smtpd_session *s = arg;
	unsigned long long got, want;
	double now = mono_now(), secs = now - s->rate_since;

	if (s->auth_user != NULL || s->state == S_QUIT) {
		evtimer_del(s->ev_rate);
		return;
	}
	if (smtp_server_busy(s->state) || secs < RATE_PERIOD)
		return;
	got = s->bytes_in - s->rate_mark;
	want = (unsigned long long)((double)s->conf->min_data_rate * secs);
	s->rate_since = now;
	s->rate_mark = s->bytes_in;
	if (got >= want)
		return;
	stats_inc(S_REFUSED_SLOW);
	log_warnx("refused: data rate %llu bytes in %.0fs below "
	    "smtpd_min_data_rate %d before AUTH in state %s, client=[%s]",
	    got, secs, s->conf->min_data_rate, strstate[s->state], s->addr);
	smtp_reply(s, 421, "4.4.2 %s Error: too slow, closing connection",
	    s->conf->hostname);
	smtp_enter_state(s, S_QUIT);
	smtp_check_close(s);
}

/* Authenticated: the limits for unauthenticated clients end. */
static void
smtp_unauth_end(struct smtpd_session *s)
{
	struct timeval tv;
	double left;

	if (s->allowed)
		return;
	if (s->ev_rate != NULL)
		evtimer_del(s->ev_rate);
	if (s->ev_session != NULL &&
	    s->conf->unauth_timeout < s->conf->session_timeout) {
		left = (double)s->conf->session_timeout -
		    (mono_now() - s->started);
		tv.tv_sec = left > 1 ? (time_t)left : 1;
		tv.tv_usec = 0;
		evtimer_add(s->ev_session, &tv);
	}
}

/*
 * Life cycle
 */

static void
smtp_log_disconnect(struct smtpd_session *s)
{
	static const enum smtp_verb order[] = { CMD_EHLO, CMD_HELO,
	    CMD_STARTTLS, CMD_AUTH, CMD_MAIL, CMD_RCPT, CMD_DATA, CMD_RSET,
	    CMD_NOOP, CMD_VRFY, CMD_EXPN, CMD_HELP, CMD_QUIT, CMD_UNKNOWN,
	    CMD_HTTP };
	char buf[512], name[16];
	size_t i, n = 0, k;

	buf[0] = '\0';
	for (i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		if (s->ncmd[order[i]] == 0)
			continue;
		dr_strlcpy(name, smtp_verb_name(order[i]), sizeof(name));
		for (k = 0; name[k]; k++)
			name[k] = (char)(name[k] | 0x20);	/* lower */
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, " %s=%u",
		    order[i] == CMD_HTTP ? "http" : name, s->ncmd[order[i]]);
		if (n >= sizeof(buf))
			break;
	}
	log_info("smtpd: disconnect from unknown[%s]%s commands=%u", s->addr,
	    buf, s->ncommands);
}

static void
smtp_free(struct smtpd_session *s)
{
	struct smtpd *sd = s->sd;

	if (s->auth_job != NULL || s->commit != NULL || s->mread != NULL) {
		/* auth_done(), smtp_commit_done() or mread_done() frees it */
		s->dead = 1;
		bufferevent_disable(s->bev, EV_READ | EV_WRITE);
		if (s->ev_session != NULL)
			evtimer_del(s->ev_session);
		if (s->ev_rate != NULL)
			evtimer_del(s->ev_rate);
		return;
	}
	TAILQ_REMOVE(&sd->sessions, s, entry);
	sd->nsessions--;
	atomic_fetch_sub(sd->nall, 1);
	smtp_log_disconnect(s);
	smtp_tx_reset(s);
	if (s->anvil)
		anvil_disconnect(sd->anvil, (struct sockaddr *)&s->ss);
	if (s->ev_session != NULL)
		event_free(s->ev_session);
	if (s->ev_rate != NULL)
		event_free(s->ev_rate);
	if (s->ev_auth != NULL)
		event_free(s->ev_auth);
	if (s->bev != NULL) {
		bufferevent_disable(s->bev, EV_READ | EV_WRITE);
		bufferevent_free(s->bev);
	}
	if (!s->bev_owns_fd)
		close(s->fd);
	if (s->auth_user != NULL)
		free(s->auth_user);
	OPENSSL_cleanse(s->login_user, sizeof(s->login_user));
	if (s->mil != NULL) {
		milter_chain_free(s->mil->chain);
		milter_msg_clear(&s->mil->msg);
		free(s->mil);
	}
	smtpd_conf_unref(s->conf);
	free(s->df);
	free(s);
}

static void
sockaddr_text(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	const struct sockaddr_in6 *sin6;
	const struct sockaddr_in *sin;

	buf[0] = '\0';
	if (ss->ss_family == AF_INET) {
		sin = (const struct sockaddr_in *)(const void *)ss;
		inet_ntop(AF_INET, &sin->sin_addr, buf, (socklen_t)len);
	} else if (ss->ss_family == AF_INET6) {
		sin6 = (const struct sockaddr_in6 *)(const void *)ss;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
			inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], buf,
			    (socklen_t)len);
		else
			inet_ntop(AF_INET6, &sin6->sin6_addr, buf,
			    (socklen_t)len);
	}
	if (buf[0] == '\0')
		dr_strlcpy(buf, "unknown", len);
}

struct smtpd_session *
smtpd_session_new(struct smtpd *sd, int fd, const struct sockaddr *sa,
    socklen_t salen, int flags)
{
	struct smtpd_session *s;
	struct timeval tv;
	char peek;
	int early;

	if (evutil_make_socket_nonblocking(fd) == -1) {
		if (flags & SMTPD_SESS_ANVIL)
			anvil_disconnect(sd->anvil, sa);
		atomic_fetch_sub(sd->nall, 1);
		close(fd);
		return NULL;
	}
	s = xcalloc(1, sizeof(*s));
	s->sd = sd;
	s->fd = fd;
	s->conf = smtpd_conf_ref(sd->conf);
	s->state = S_CONNECTED;
	s->allowed = (flags & SMTPD_SESS_ALLOWED) != 0;
	s->anvil = (flags & SMTPD_SESS_ANVIL) != 0;
	s->started = s->rate_since = mono_now();
	if (salen > sizeof(s->ss))
		salen = sizeof(s->ss);
	memcpy(&s->ss, sa, salen);
	sockaddr_text(&s->ss, s->addr, sizeof(s->addr));

	/* Did it talk before we did? */
	early = recv(fd, &peek, 1, MSG_PEEK | MSG_DONTWAIT) > 0;

	if ((s->bev = bufferevent_socket_new(sd->base, fd, 0)) == NULL) {
		log_warnx("smtpd %s: cannot set up connection", s->addr);
		if (s->anvil)
			anvil_disconnect(sd->anvil, sa);
		atomic_fetch_sub(sd->nall, 1);
		smtpd_conf_unref(s->conf);
		close(fd);
		free(s);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&sd->sessions, s, entry);
	sd->nsessions++;	/* its slot of sd->nall: taken by accept_cb */
	bufferevent_setcb(s->bev, smtp_read_cb, smtp_write_cb, smtp_event_cb,
	    s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, IBUF_MAX);
	tv.tv_sec = s->conf->timeout;
	tv.tv_usec = 0;
	bufferevent_set_timeouts(s->bev, &tv, &tv);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	s->ev_session = evtimer_new(sd->base, smtp_session_timeout, s);
	tv.tv_sec = s->conf->session_timeout;
	if (!s->allowed && s->conf->unauth_timeout < tv.tv_sec)
		tv.tv_sec = s->conf->unauth_timeout;
	if (s->ev_session != NULL)
		evtimer_add(s->ev_session, &tv);
	if (!s->allowed && s->conf->min_data_rate > 0) {
		s->ev_rate = event_new(sd->base, -1, EV_PERSIST,
		    smtp_rate_check, s);
		tv.tv_sec = RATE_PERIOD / 2;
		if (s->ev_rate != NULL)
			evtimer_add(s->ev_rate, &tv);
	}

	log_info("smtpd: connect from unknown[%s]", s->addr);
	if (early) {
		log_warnx("smtpd %s: client sent data before the greeting "
		    "(RFC 5321 section 4.3.1): disconnecting", s->addr);
		smtp_reply(s, 554, "5.5.0 %s Error: data sent before the "
		    "greeting", s->conf->hostname);
		smtp_enter_state(s, S_QUIT);
		return s;
	}
	smtp_reply(s, 220, "%s ESMTP danerelay", s->conf->hostname);
	return s;
}

void
smtpd_sessions_shutdown(struct smtpd *sd)
{
	struct smtpd_session *s, *next;

	for (s = TAILQ_FIRST(&sd->sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, entry);
		s->stopping = 1;
		switch (s->state) {
		case S_DATA:	/* finish this message, then 421 */
		case S_COMMIT:
		case S_QUIT:
			break;
		case S_STARTTLS:
			smtp_free(s);
			break;
		default:
			smtp_reply(s, 421, "4.3.2 %s Service shutting down, "
			    "closing connection", s->conf->hostname);
			smtp_enter_state(s, S_QUIT);
			break;
		}
	}
}

void
smtpd_sessions_free(struct smtpd *sd)
{
	struct smtpd_session *s;

	while ((s = TAILQ_FIRST(&sd->sessions)) != NULL) {
		if (s->state == S_DATA)
			log_info("smtpd %s: shutting down: message in progress "
			    "discarded (not acknowledged)", s->addr);
		if (s->auth_job != NULL) {	/* its done will not look */
			s->auth_job->s = NULL;
			s->auth_job = NULL;
		}
		if (s->commit != NULL) {	/* still queued when durable */
			s->commit->s = NULL;
			s->commit = NULL;
		}
		if (s->mread != NULL) {		/* the read back has the writer */
			s->mread->s = NULL;
			s->mread = NULL;
			s->w = NULL;
		}
		smtp_free(s);
	}
}
