/*
 * smtp_client.c - the outbound SMTP session: one TCP connection to one
 * MX address, STARTTLS with DANE / WebPKI verification, then any number
 * of message transactions.  The delivery code (delivery.c) decides the
 * TLS mode; this file enforces it.
 *
 * Implements:
 *   RFC 5321 §3.1-3.3, §4.1.1  greeting, EHLO (HELO fallback only where
 *                     cleartext is allowed), MAIL, RCPT, DATA, RSET, QUIT
 *   RFC 5321 §4.5.2   dot-stuffing of the body (streamed from the spool)
 *   RFC 5321 §4.5.3.2 timeouts: one per wait (connect, greeting, MAIL,
 *                     each RCPT, DATA, each write of the body, the
 *                     reply to the final ".", which may take 10 minutes)
 *   RFC 3207          STARTTLS; data received after the 220 and before the
 *                     handshake is refused (injection), EHLO again after
 *   RFC 7672 §2.2     DANE: TLS mandatory, no fallback to cleartext or to
 *                     an unverified session (the checks are in tls.c/dane.c)
 *   RFC 2920          PIPELINING: MAIL, every RCPT and DATA in one group
 *   RFC 1870          SIZE; RFC 6152 BODY=8BITMIME; RFC 6531 SMTPUTF8
 *                     (needed - UTF-8 in the envelope or the header
 *                     section - but not offered: permanent failure 5.6.7)
 *   RFC 8460 §4.3     result-types of TLS failures, for TLSRPT
 *
 * Structure (OpenSMTPD smtp_client.c): one enum of states, strstate[] for
 * the logs, client_state() says what happens on entering a state (the
 * security rules live there), client_reply() says what a complete reply
 * means in each state.  libevent callbacks only split input into lines.
 * A session is owned by its caller; smtp_client_free()/smtp_client_quit()
 * may be called from callbacks (freeing is deferred until they return).
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "dane.h"
#include "dsn.h"
#include "log.h"
#include "smtp_client.h"
#include "stats.h"
#include "smtp_parse.h"
#include "smtp_reply.h"
#include "tls.h"
#include "util.h"

#define BODY_CHUNK	16384		/* bytes read from the spool at once */
#define BODY_HIWAT	65536		/* fill output up to this */
#define BODY_LOWAT	16384		/* refill when drained below this */
#define READ_HIWAT	(4 * (SMTP_REPLY_LINE_MAX + 2))
#define QUIT_TIMEOUT_MS	10000		/* at most, waiting for 221 */
#define CMD_LINE_MAX	1024		/* our command lines */

enum state {
	S_INIT,
	S_CONNECT,
	S_BANNER,
	S_EHLO,
	S_HELO,
	S_STARTTLS,
	S_HANDSHAKE,
	S_READY,
	S_RSET,
	S_MAIL,
	S_RCPT,
	S_DATA,
	S_BODY,
	S_EOM,
	S_QUIT,
	S_CLOSED,
};

static const char *strstate[] = {
	"INIT",
	"CONNECT",
	"BANNER",
	"EHLO",
	"HELO",
	"STARTTLS",
	"HANDSHAKE",
	"READY",
	"RSET",
	"MAIL",
	"RCPT",
	"DATA",
	"BODY",
	"EOM",
	"QUIT",
	"CLOSED",
};

struct smtp_client {
	LIST_ENTRY(smtp_client) live;	/* every session not yet destroyed */
	double hs_start;		/* TLS handshake began (mono_now) */
	/* parameters, copied */
	struct event_base *base;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	struct sockaddr_storage bindaddr;
	socklen_t bindlen;
	char *host;
	char *helo;
	int own_name_ok;
	char *logid;
	unsigned connect_timeout_ms, cmd_timeout_ms, data_timeout_ms;
	unsigned greeting_timeout_ms, mail_timeout_ms, rcpt_timeout_ms;
	unsigned data_init_timeout_ms, data_xfer_timeout_ms;
	enum smtp_tls_mode tls;
	SSL_CTX *ssl_ctx;
	char *sni;
	char **names;
	size_t nnames;
	int check_names;
	struct tlsa_rr *tlsa;
	size_t ntlsa;
	char *tlsa_base;
	struct smtp_client_cb cb;
	void *arg;

	char relay[300];		/* host[ip]:port */
	char local[INET6_ADDRSTRLEN];	/* our address, once connected */
	char **marks;			/* smtp_client_mark() */
	size_t nmarks;
	enum state state;
	int fd;				/* owned while no TLS bufferevent */
	struct bufferevent *bev;
	int tls_on;			/* bev is the OpenSSL one */
	struct event *timer;
	struct smtp_reply reply;
	struct smtp_ext ext;
	struct tls_outcome tlsout;
	int ready_sent;			/* ready() called */
	int nmsg;

	/* current transaction */
	char *sender;
	char **rcpts;
	char **rparams;			/* " NOTIFY=.. ORCPT=.." or "" each */
	char *mparams;			/* " RET=.. ENVID=.. REQUIRETLS" */
	size_t nrcpt;
	int data_fd;
	off_t size;
	int body_8bit, smtputf8;
	int pipelining;
	size_t rcpt_idx;		/* next RCPT reply expected */
	size_t rcpt_sent;		/* RCPT commands sent (no pipelining) */
	size_t naccepted;
	int mail_ok;
	int need_rset;			/* last transaction not finished */
	off_t data_off;
	int bol, last_cr;		/* dot-stuffing state */
	int discard;			/* 354 with no recipient: "." alone */
	struct smtp_result res;		/* failure of the transaction */

	/* teardown */
	int quitting;			/* smtp_client_quit(): free at end */
	void (*on_close)(void *, void *);	/* smtp_client_on_close() */
	void *close_a, *close_b;
	int fail_after_quit;		/* report res after QUIT exchange */
	int deferred_done;		/* report res from the timer */
	int incb;			/* inside a user callback */
	int dead;			/* free once incb drops to 0 */
};

/* Sessions alive, including those finishing a QUIT on their own: of
 * every worker's loop, so under a lock. */
static LIST_HEAD(, smtp_client) live_clients =
    LIST_HEAD_INITIALIZER(live_clients);
static pthread_mutex_t live_mtx = PTHREAD_MUTEX_INITIALIZER;

static int client_state(struct smtp_client *, enum state);
static int client_reply(struct smtp_client *, struct smtp_reply *);
static int client_read(struct smtp_client *);
static void client_destroy(struct smtp_client *);
static void client_close(struct smtp_client *);
static int session_fail(struct smtp_client *, enum smtp_fail, const char *,
    const struct smtp_reply *, const char *, ...)
    __attribute__((format(printf, 5, 6)));
static int notify_done(struct smtp_client *);
static int body_fill(struct smtp_client *);
static int quit_end(struct smtp_client *);
static void timer_arm(struct smtp_client *, unsigned);
static void bev_read_cb(struct bufferevent *, void *);
static void bev_write_cb(struct bufferevent *, void *);
static void bev_event_cb(struct bufferevent *, short, void *);
static void timer_cb(evutil_socket_t, short, void *);

const char *
smtp_tls_mode_name(enum smtp_tls_mode m)
{
	switch (m) {
	case SMTP_TLS_NONE:
		return "none";
	case SMTP_TLS_MAY:
		return "may";
	case SMTP_TLS_ENCRYPT:
		return "encrypt";
	case SMTP_TLS_DANE:
		return "dane";
	case SMTP_TLS_WEBPKI:
		return "webpki";
	}
	return "?";
}

const char *
smtp_fail_name(enum smtp_fail f)
{
	switch (f) {
	case SMTP_OK:
		return "ok";
	case SMTP_FAIL_CONN:
		return "connection";
	case SMTP_FAIL_TIMEOUT:
		return "timeout";
	case SMTP_FAIL_PROTO:
		return "protocol";
	case SMTP_FAIL_STARTTLS_MISSING:
		return "starttls-missing";
	case SMTP_FAIL_TLS:
		return "tls";
	case SMTP_FAIL_RESP:
		return "response";
	case SMTP_FAIL_IMPL:
		return "unsupported";
	case SMTP_FAIL_INTERNAL:
		return "internal";
	case SMTP_FAIL_LOOP:
		return "loop";
	}
	return "?";
}

/* TLS is required: no cleartext transaction, no HELO, no fallback. */
static int
tls_required(const struct smtp_client *c)
{
	return c->tls == SMTP_TLS_ENCRYPT || c->tls == SMTP_TLS_DANE ||
	    c->tls == SMTP_TLS_WEBPKI;
}

static const char *
lid(const struct smtp_client *c)
{
	return c->logid ? c->logid : "smtp";
}

/* ---- output ---------------------------------------------------------- */

static int
client_cmd(struct smtp_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
client_cmd(struct smtp_client *c, const char *fmt, ...)
{
	char line[CMD_LINE_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 2) {
		log_warnx("%s: %s: command too long", lid(c), c->relay);
		return -1;
	}
	log_debug("%s: %s: >>> %s", lid(c), c->relay, line);
	memcpy(line + n, "\r\n", 2);
	if (bufferevent_write(c->bev, line, (size_t)n + 2) == -1) {
		log_warnx("%s: %s: cannot queue output", lid(c), c->relay);
		return -1;
	}
	return 0;
}

static void
timer_arm(struct smtp_client *c, unsigned ms)
{
	struct timeval tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(c->timer, &tv);
}

/* ---- results and callbacks ------------------------------------------ */

static const char *
state_stage(enum state s)
{
	switch (s) {
	case S_INIT:
	case S_CONNECT:
		return "connect";
	case S_BANNER:
		return "banner";
	case S_EHLO:
		return "EHLO";
	case S_HELO:
		return "HELO";
	case S_STARTTLS:
		return "STARTTLS";
	case S_HANDSHAKE:
		return "TLS";
	case S_READY:
		return "idle";
	case S_RSET:
		return "RSET";
	case S_MAIL:
		return "MAIL";
	case S_RCPT:
		return "RCPT";
	case S_DATA:
		return "DATA";
	case S_BODY:
		return "DATA";
	case S_EOM:
		return "end of data";
	case S_QUIT:
		return "QUIT";
	case S_CLOSED:
		break;
	}
	return "closed";
}

static void
result_set(struct smtp_client *c, enum smtp_fail fail, const char *stage,
    const struct smtp_reply *r, const char *reason)
{
	struct smtp_result *res = &c->res;

	memset(res, 0, sizeof(*res));
	res->fail = fail;
	res->stage = stage;
	res->naccepted = c->naccepted;
	if (r != NULL && r->code != 0) {
		res->code = r->code;
		dr_strlcpy(res->enh, r->enh, sizeof(res->enh));
		smtp_reply_summary(r, res->reply, sizeof(res->reply));
	} else if (reason != NULL)
		dr_strlcpy(res->reply, reason, sizeof(res->reply));
}

/* Call done(); -1 if the session was freed from inside (stop now). */
static int
notify_done(struct smtp_client *c)
{
	if (c->res.fail == SMTP_OK)
		log_debug("%s: %s: transaction ok: %s", lid(c), c->relay,
		    c->res.reply);
	else
		log_info("%s: %s: %s failure at %s: %s%s%s", lid(c), c->relay,
		    smtp_fail_name(c->res.fail), c->res.stage, c->res.reply,
		    c->res.tlsrpt ? ", tlsrpt=" : "",
		    c->res.tlsrpt ? c->res.tlsrpt : "");
	if (c->quitting || c->cb.done == NULL)
		return 0;
	c->incb++;
	c->cb.done(c, &c->res, c->arg);
	c->incb--;
	if (c->dead) {
		if (c->incb == 0)
			client_destroy(c);
		return -1;
	}
	return 0;
}

static int
notify_ready(struct smtp_client *c)
{
	if (c->quitting || c->cb.ready == NULL)
		return 0;
	c->incb++;
	c->cb.ready(c, c->arg);
	c->incb--;
	if (c->dead) {
		if (c->incb == 0)
			client_destroy(c);
		return -1;
	}
	return 0;
}

static int
notify_rcpt(struct smtp_client *c, size_t idx, const struct smtp_reply *r)
{
	if (c->quitting || c->cb.rcpt == NULL)
		return 0;
	c->incb++;
	c->cb.rcpt(c, idx, r, c->arg);
	c->incb--;
	if (c->dead) {
		if (c->incb == 0)
			client_destroy(c);
		return -1;
	}
	return 0;
}

/*
 * The session is over (connection error, timeout, protocol error, TLS
 * failure, refused greeting...).  Close and report; returns -1 (stop
 * processing: the state is CLOSED, the session may be freed).
 */
static int
session_fail(struct smtp_client *c, enum smtp_fail fail, const char *tlsrpt,
    const struct smtp_reply *r, const char *fmt, ...)
{
	char reason[512];
	va_list ap;

	reason[0] = '\0';
	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(reason, sizeof(reason), fmt, ap);
		va_end(ap);
	}
	result_set(c, fail, state_stage(c->state), r, reason);
	c->res.tlsrpt = tlsrpt;
	c->res.permanent = 0;	/* session-level: try another MX / later */
	c->res.usable = 0;
	client_close(c);
	notify_done(c);
	return -1;
}

/*
 * As session_fail(), but the connection is sane: say QUIT first and
 * report once the server answered (or the QUIT wait ended).
 */
static int
session_fail_quit(struct smtp_client *c, enum smtp_fail fail,
    const char *tlsrpt, const struct smtp_reply *r, const char *reason)
{
	result_set(c, fail, state_stage(c->state), r, reason);
	c->res.tlsrpt = tlsrpt;
	c->res.permanent = 0;
	c->res.usable = 0;
	c->fail_after_quit = 1;
	return client_state(c, S_QUIT);
}

/*
 * RFC 5321 §6.3 loop detection, as Postfix does it: the first word of
 * the greeting or of the EHLO/HELO reply is the server's name; if it is
 * ours, we are talking to ourselves (an MX or a NAT that leads back
 * here).  1 if r says so.
 */
static int
reply_names_us(const struct smtp_client *c, const struct smtp_reply *r)
{
	const char *t;
	size_t n;

	if (c->own_name_ok || r->nlines == 0 || r->lines[0] == NULL)
		return 0;
	t = r->lines[0];
	n = strcspn(t, " ");
	return n > 0 && n == strlen(c->helo) && strncasecmp(t, c->helo, n) == 0;
}

/* The server is ourselves: QUIT, then report a permanent failure. */
static int
session_loop(struct smtp_client *c, const char *what)
{
	char reason[512];

	snprintf(reason, sizeof(reason), "%s %s with my own hostname %s",
	    c->relay, what, c->helo);
	log_warnx("%s: %s", lid(c), reason);
	result_set(c, SMTP_FAIL_LOOP, state_stage(c->state), NULL, reason);
	dr_strlcpy(c->res.enh, "5.4.6", sizeof(c->res.enh));
	c->res.permanent = 1;
	c->res.usable = 0;
	c->fail_after_quit = 1;
	return client_state(c, S_QUIT);
}

/*
 * A failure found where no callback may run (inside smtp_client_send()
 * or deep in a state entry): close now, report from the event loop.
 */
static void
session_fail_later(struct smtp_client *c, enum smtp_fail fail,
    const char *reason)
{
	result_set(c, fail, state_stage(c->state), NULL, reason);
	c->res.usable = 0;
	client_close(c);
	c->deferred_done = 1;
	timer_arm(c, 0);
}

/* The transaction ended (either way); the session stays usable. */
static int
txn_end(struct smtp_client *c)
{
	c->res.usable = 1;
	c->res.naccepted = c->naccepted;
	if (c->res.fail != SMTP_OK)
		c->need_rset = 1;
	if (client_state(c, S_READY) == -1)
		return -1;
	return notify_done(c);
}

/* ---- connection teardown -------------------------------------------- */

static void
client_close(struct smtp_client *c)
{
	if (c->timer != NULL)
		evtimer_del(c->timer);
	if (c->bev != NULL) {
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		bufferevent_free(c->bev);	/* TLS one closes fd + SSL */
		c->bev = NULL;
	}
	if (c->fd != -1) {
		close(c->fd);
		c->fd = -1;
	}
	if (c->state != S_CLOSED) {
		log_debug("%s: %s: %s -> %s", lid(c), c->relay,
		    strstate[c->state], strstate[S_CLOSED]);
		c->state = S_CLOSED;
	}
}

static void
txn_clear(struct smtp_client *c)
{
	size_t i;

	free(c->sender);
	c->sender = NULL;
	for (i = 0; i < c->nrcpt; i++) {
		free(c->rcpts[i]);
		free(c->rparams != NULL ? c->rparams[i] : NULL);
	}
	free(c->rcpts);
	c->rcpts = NULL;
	free(c->rparams);
	c->rparams = NULL;
	free(c->mparams);
	c->mparams = NULL;
	c->nrcpt = 0;
	c->data_fd = -1;
}

static void
client_destroy(struct smtp_client *c)
{
	size_t i;

	pthread_mutex_lock(&live_mtx);
	LIST_REMOVE(c, live);
	pthread_mutex_unlock(&live_mtx);
	client_close(c);
	if (c->on_close != NULL)
		c->on_close(c->close_a, c->close_b);
	if (c->timer != NULL)
		event_free(c->timer);
	smtp_reply_clear(&c->reply);
	txn_clear(c);
	free(c->host);
	free(c->helo);
	free(c->logid);
	free(c->sni);
	for (i = 0; i < c->nnames; i++)
		free(c->names[i]);
	free(c->names);
	tlsa_rrs_free(c->tlsa, c->ntlsa);
	free(c->tlsa_base);
	for (i = 0; i < c->nmarks; i++)
		free(c->marks[i]);
	free(c->marks);
	free(c);
}

void
smtp_client_on_close(struct smtp_client *c, void (*fn)(void *, void *),
    void *a, void *b)
{
	c->on_close = fn;
	c->close_a = a;
	c->close_b = b;
}

void
smtp_client_free(struct smtp_client *c)
{
	if (c == NULL)
		return;
	if (c->incb > 0) {
		/* Inside one of our callbacks: finish when it returns. */
		c->dead = 1;
		client_close(c);
		return;
	}
	client_destroy(c);
}

void
smtp_client_quit(struct smtp_client *c)
{
	if (c == NULL)
		return;
	c->quitting = 1;
	switch (c->state) {
	case S_BANNER:
	case S_EHLO:
	case S_HELO:
	case S_STARTTLS:
	case S_READY:
	case S_RSET:
	case S_MAIL:
	case S_RCPT:
	case S_DATA:
	case S_EOM:
		/* A reply may still be due: QUIT is answered after it. */
		if (c->state != S_READY)
			log_debug("%s: %s: QUIT while in %s", lid(c),
			    c->relay, strstate[c->state]);
		client_state(c, S_QUIT);
		return;
	case S_QUIT:
		return;
	default:
		smtp_client_free(c);
		return;
	}
}

/* ---- the state machine ---------------------------------------------- */

/*
 * Enter a state: what to send and how long to wait.  Returns -1 if the
 * session was closed or freed on the way (stop, do not touch c), else 0.
 */
static int
client_state(struct smtp_client *c, enum state new)
{
	enum state old = c->state;
	char err[256];
	size_t i;

	log_debug("%s: %s: %s -> %s", lid(c), c->relay, strstate[old],
	    strstate[new]);
	c->state = new;
	evtimer_del(c->timer);

	switch (new) {
	case S_BANNER:
		timer_arm(c, c->greeting_timeout_ms);
		return 0;

	case S_EHLO:
		memset(&c->ext, 0, sizeof(c->ext));
		if (client_cmd(c, "EHLO %s", c->helo) == -1)
			goto internal;
		timer_arm(c, c->cmd_timeout_ms);
		return 0;

	case S_HELO:
		if (client_cmd(c, "HELO %s", c->helo) == -1)
			goto internal;
		timer_arm(c, c->cmd_timeout_ms);
		return 0;

	case S_STARTTLS:
		/*
		 * The downgrade rule.  Mandatory TLS (encrypt, DANE, WebPKI)
		 * and no STARTTLS in the EHLO reply: fail, say QUIT, never
		 * send a transaction in cleartext.
		 */
		if (c->tls == SMTP_TLS_NONE)
			return client_state(c, S_READY);
		if (!(c->ext.flags & SMTP_EXT_STARTTLS)) {
			if (tls_required(c))
				return session_fail_quit(c,
				    SMTP_FAIL_STARTTLS_MISSING,
				    "starttls-not-supported", NULL,
				    "TLS is required but the server does not "
				    "offer STARTTLS");
			log_info("%s: %s: STARTTLS not offered, continuing "
			    "in cleartext (level %s)", lid(c), c->relay,
			    smtp_tls_mode_name(c->tls));
			return client_state(c, S_READY);
		}
		if (client_cmd(c, "STARTTLS") == -1)
			goto internal;
		timer_arm(c, c->cmd_timeout_ms);
		return 0;

	case S_HANDSHAKE: {
		struct tls_client_params tp;
		struct bufferevent *tbev;
		SSL *ssl;

		c->hs_start = mono_now();
		memset(&tp, 0, sizeof(tp));
		switch (c->tls) {
		case SMTP_TLS_DANE:
			tp.mode = TLS_CLIENT_DANE;
			break;
		case SMTP_TLS_WEBPKI:
			tp.mode = TLS_CLIENT_WEBPKI;
			break;
		default:
			tp.mode = TLS_CLIENT_NOAUTH;
			break;
		}
		tp.sni = c->sni ? c->sni : c->host;
		/* NOAUTH checks names only when asked (MTA-STS testing) */
		if (tp.mode != TLS_CLIENT_NOAUTH || c->check_names) {
			tp.names = (const char *const *)c->names;
			tp.nnames = c->nnames;
		}
		tp.tlsa = c->tlsa;
		tp.ntlsa = c->ntlsa;
		tp.tlsa_base = c->tlsa_base;
		if ((ssl = tls_client_ssl_new(c->ssl_ctx, &tp, err,
		    sizeof(err))) == NULL)
			return session_fail(c, SMTP_FAIL_INTERNAL, NULL, NULL,
			    "cannot set up TLS: %s", err);
		/* Swap the plain bufferevent for an OpenSSL one on the fd. */
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		bufferevent_free(c->bev);
		c->bev = NULL;
		tbev = bufferevent_openssl_socket_new(c->base, c->fd, ssl,
		    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
		if (tbev == NULL) {
			SSL_free(ssl);
			return session_fail(c, SMTP_FAIL_INTERNAL, NULL, NULL,
			    "cannot create the TLS bufferevent");
		}
		c->fd = -1;		/* owned by tbev now */
		c->bev = tbev;
		c->tls_on = 1;
		bufferevent_openssl_set_allow_dirty_shutdown(tbev, 1);
		bufferevent_setcb(tbev, bev_read_cb, bev_write_cb,
		    bev_event_cb, c);
		bufferevent_setwatermark(tbev, EV_READ, 0, READ_HIWAT);
		bufferevent_enable(tbev, EV_READ | EV_WRITE);
		timer_arm(c, c->cmd_timeout_ms);
		return 0;
	}

	case S_READY:
		if (!c->ready_sent) {
			c->ready_sent = 1;
			return notify_ready(c);
		}
		return 0;

	case S_RSET:
		if (client_cmd(c, "RSET") == -1)
			goto internal;
		timer_arm(c, c->cmd_timeout_ms);
		return 0;

	case S_MAIL: {
		char params[128 + DSN_ENVID_MAX + 32];
		int n = 0;

		params[0] = '\0';
		if ((c->ext.flags & SMTP_EXT_SIZE) && c->size > 0)
			n += snprintf(params + n, sizeof(params) - n,
			    " SIZE=%lld", (long long)c->size);
		if (c->body_8bit && (c->ext.flags & SMTP_EXT_8BITMIME))
			n += snprintf(params + n, sizeof(params) - n,
			    " BODY=8BITMIME");
		if (c->smtputf8)
			n += snprintf(params + n, sizeof(params) - n,
			    " SMTPUTF8");
		if (c->mparams != NULL)
			n += snprintf(params + n, sizeof(params) - n, "%s",
			    c->mparams);
		c->pipelining = (c->ext.flags & SMTP_EXT_PIPELINING) != 0;
		c->rcpt_idx = c->rcpt_sent = 0;
		c->naccepted = 0;
		c->mail_ok = 0;
		c->discard = 0;
		memset(&c->res, 0, sizeof(c->res));
		if (client_cmd(c, "MAIL FROM:<%s>%s", c->sender, params) == -1)
			goto internal;
		if (c->pipelining) {
			/* RFC 2920 §3.1: the group ends with DATA. */
			for (i = 0; i < c->nrcpt; i++)
				if (client_cmd(c, "RCPT TO:<%s>%s",
				    c->rcpts[i], c->rparams[i]) == -1)
					goto internal;
			c->rcpt_sent = c->nrcpt;
			if (client_cmd(c, "DATA") == -1)
				goto internal;
		}
		timer_arm(c, c->mail_timeout_ms);
		return 0;
	}

	case S_RCPT:
		if (!c->pipelining) {
			if (client_cmd(c, "RCPT TO:<%s>%s",
			    c->rcpts[c->rcpt_sent],
			    c->rparams[c->rcpt_sent]) == -1)
				goto internal;
			c->rcpt_sent++;
		}
		timer_arm(c, c->rcpt_timeout_ms);
		return 0;

	case S_DATA:
		if (!c->pipelining) {
			/* Nothing accepted: no DATA, the RCPT (or MAIL)
			 * refusal ends the transaction. */
			if (c->naccepted == 0)
				return txn_end(c);
			if (client_cmd(c, "DATA") == -1)
				goto internal;
		}
		timer_arm(c, c->data_init_timeout_ms);
		return 0;

	case S_BODY:
		c->data_off = 0;
		c->bol = 1;
		c->last_cr = 0;
		bufferevent_setwatermark(c->bev, EV_WRITE, BODY_LOWAT, 0);
		timer_arm(c, c->data_xfer_timeout_ms);
		/* The write callback refills the output from the spool
		 * file as it drains; fill it now. */
		return body_fill(c);

	case S_EOM:
		bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
		timer_arm(c, c->data_timeout_ms);
		return 0;

	case S_QUIT:
		if (client_cmd(c, "QUIT") == -1)
			return quit_end(c);	/* cannot say goodbye */
		timer_arm(c, c->cmd_timeout_ms < QUIT_TIMEOUT_MS ?
		    c->cmd_timeout_ms : QUIT_TIMEOUT_MS);
		return 0;

	case S_INIT:
	case S_CONNECT:
	case S_CLOSED:
		return 0;
	}
	return 0;

 internal:
	session_fail_later(c, SMTP_FAIL_INTERNAL, "cannot queue a command");
	return -1;
}

/* End of the QUIT exchange (221, anything, EOF or timeout). */
static int
quit_end(struct smtp_client *c)
{
	client_close(c);
	if (c->fail_after_quit) {
		c->fail_after_quit = 0;
		notify_done(c);
		return -1;
	}
	if (c->quitting)
		smtp_client_free(c);
	return -1;
}

/*
 * The TLS handshake ended.  For DANE and WebPKI the verification is
 * enforced by OpenSSL (SSL_VERIFY_PEER fails the handshake); check the
 * outcome again here so that no unverified session can go on.
 */
static int
handshake_end(struct smtp_client *c, int ok, const char *errtext)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	enum tls_client_mode mode;
	const struct tls_outcome *o = &c->tlsout;
	const char *how;

	mode = c->tls == SMTP_TLS_DANE ? TLS_CLIENT_DANE :
	    c->tls == SMTP_TLS_WEBPKI ? TLS_CLIENT_WEBPKI : TLS_CLIENT_NOAUTH;
	tls_client_outcome(ssl, mode, ok, errtext, &c->tlsout);
	if (!ok)
		return session_fail(c, SMTP_FAIL_TLS, o->result_type ?
		    o->result_type : "validation-failure", NULL, "%s",
		    o->reason);
	if ((mode == TLS_CLIENT_DANE && !o->dane_unusable) ||
	    mode == TLS_CLIENT_WEBPKI) {
		if (!o->verified)
			return session_fail(c, SMTP_FAIL_TLS, o->result_type ?
			    o->result_type : "validation-failure", NULL, "%s",
			    o->reason[0] ? o->reason : "peer not verified");
		how = "Verified";
	} else
		how = o->trusted ? "Trusted" : "Untrusted";
	stats_observe(SH_TLS_HANDSHAKE,
	    (unsigned long long)((mono_now() - c->hs_start) * 1e6));
	/* The delivery log says it at info level, with the queue id. */
	log_debug("%s: %s TLS connection established to %s: %s with cipher "
	    "%s, auth=%s%s%s%s%s%s%s", lid(c), how, c->relay, o->protocol,
	    o->cipher, tls_auth_name(o->auth),
	    o->tlsa[0] ? ", tlsa=\"" : "", o->tlsa, o->tlsa[0] ? "\"" : "",
	    o->dane_unusable ? ", all TLSA records unusable" : "",
	    o->peer[0] ? ", peer CN=" : "", o->peer);
	return client_state(c, S_EHLO);
}

/*
 * A complete reply r arrived.  Returns 0 to go on reading, -1
 * if processing must stop (closed or freed).
 */
static int
client_reply(struct smtp_client *c, struct smtp_reply *r)
{
	int class = SMTP_REPLY_CLASS(r);
	char buf[512];

	log_debug("%s: %s: <<< %s", lid(c), c->relay,
	    smtp_reply_summary(r, buf, sizeof(buf)));

	/* 421: the server is closing the channel, whatever we were doing. */
	if (r->code == 421 && c->state != S_QUIT) {
		if (c->state >= S_RSET && c->state <= S_EOM) {
			result_set(c, SMTP_FAIL_RESP, state_stage(c->state), r,
			    NULL);
			c->res.usable = 0;
			client_close(c);
			notify_done(c);
			return -1;
		}
		return session_fail(c, SMTP_FAIL_RESP, NULL, r, NULL);
	}

	switch (c->state) {
	case S_BANNER:
		if (r->code != 220)
			return session_fail_quit(c, SMTP_FAIL_RESP, NULL, r,
			    NULL);
		if (reply_names_us(c, r))
			return session_loop(c, "greeted me");
		return client_state(c, S_EHLO);

	case S_EHLO:
		if (class == 2 && reply_names_us(c, r))
			return session_loop(c, "replied to EHLO");
		if (class == 2) {
			smtp_ehlo_parse(r, &c->ext);
			return client_state(c, c->tls_on ? S_READY :
			    S_STARTTLS);
		}
		/*
		 * HELO only where cleartext is allowed and EHLO got 5xx (RFC
		 * 5321 §3.2).  With TLS required there is no STARTTLS without
		 * EHLO: that is a missing STARTTLS.
		 */
		if (class == 5 && !c->tls_on && !tls_required(c)) {
			return client_state(c, S_HELO);
		}
		if (class == 5 && !c->tls_on)
			return session_fail_quit(c, SMTP_FAIL_STARTTLS_MISSING,
			    "starttls-not-supported", r, NULL);
		return session_fail_quit(c, SMTP_FAIL_RESP, NULL, r, NULL);

	case S_HELO:
		if (class != 2)
			return session_fail_quit(c, SMTP_FAIL_RESP, NULL, r,
			    NULL);
		if (reply_names_us(c, r))
			return session_loop(c, "replied to HELO");
		memset(&c->ext, 0, sizeof(c->ext));
		if (c->tls != SMTP_TLS_NONE)
			log_info("%s: %s: EHLO refused, HELO accepted: "
			    "cleartext", lid(c), c->relay);
		return client_state(c, S_READY);

	case S_STARTTLS:
		if (r->code == 220) {
			/*
			 * Anything the server sent after "220" arrived before
			 * the handshake: plaintext injection (RFC 3207 §5,
			 * CVE-2011-0411 class).  Refuse the session.
			 */
			if (evbuffer_get_length(bufferevent_get_input(c->bev))
			    > 0)
				return session_fail(c, SMTP_FAIL_PROTO, NULL,
				    NULL, "data received after the STARTTLS "
				    "reply, before the TLS handshake");
			/* The input now belongs to TLS: stop reading. */
			if (client_state(c, S_HANDSHAKE) == -1)
				return -1;
			return -1;
		}
		if (tls_required(c))
			return session_fail_quit(c, SMTP_FAIL_STARTTLS_MISSING,
			    "starttls-not-supported", r, NULL);
		log_info("%s: %s: STARTTLS refused (%s), continuing in "
		    "cleartext", lid(c), c->relay, buf);
		return client_state(c, S_READY);

	case S_RSET:
		if (class != 2)
			return session_fail_quit(c, SMTP_FAIL_RESP, NULL, r,
			    NULL);
		c->need_rset = 0;
		return client_state(c, S_MAIL);

	case S_MAIL:
		if (class == 2)
			c->mail_ok = 1;
		else {
			result_set(c, SMTP_FAIL_RESP, "MAIL", r, NULL);
			c->res.permanent = class == 5;
			if (!c->pipelining)
				return txn_end(c);
			/* Pipelined: the RCPT and DATA replies follow. */
		}
		return client_state(c, S_RCPT);

	case S_RCPT: {
		size_t idx = c->rcpt_idx++;

		if (c->mail_ok) {
			if (class == 2)
				c->naccepted++;
			if (notify_rcpt(c, idx, r) == -1)
				return -1;
			if (c->state != S_RCPT)
				return 0;	/* quit from the callback */
			if (class != 2) {
				/* Remember the last refusal for the case
				 * where nothing is accepted. */
				result_set(c, SMTP_FAIL_RESP, "RCPT", r, NULL);
				c->res.permanent = class == 5;
			}
		}
		return client_state(c, c->rcpt_idx < c->nrcpt ? S_RCPT :
		    S_DATA);
	}

	case S_DATA:
		if (r->code == 354) {
			if (c->naccepted == 0) {
				/* RFC 2920 §3.1: nothing to send; end the
				 * (empty) data at once, ignore its reply. */
				if (c->res.fail == SMTP_OK) {
					result_set(c, SMTP_FAIL_RESP, "RCPT",
					    NULL, "no recipient accepted");
				}
				c->discard = 1;
				if (bufferevent_write(c->bev, ".\r\n", 3) == -1)
					return session_fail(c,
					    SMTP_FAIL_INTERNAL, NULL, NULL,
					    "cannot queue output");
				return client_state(c, S_EOM);
			}
			return client_state(c, S_BODY);
		}
		if (c->naccepted == 0) {
			/* The MAIL or RCPT refusal is the story. */
			if (c->res.fail == SMTP_OK) {
				result_set(c, SMTP_FAIL_RESP, "DATA", r, NULL);
				c->res.permanent = class == 5;
			}
			return txn_end(c);
		}
		result_set(c, SMTP_FAIL_RESP, "DATA", r, NULL);
		c->res.permanent = class == 5;
		return txn_end(c);

	case S_BODY:
		/*
		 * A reply while we send data: the server gave up on this
		 * message.  Its class counts (a 554 for content is final);
		 * the session does not go on, the rest of the body is
		 * still in flight.
		 */
		result_set(c, SMTP_FAIL_RESP, "DATA", r, NULL);
		c->res.permanent = class == 5;
		c->res.usable = 0;
		client_close(c);
		notify_done(c);
		return -1;

	case S_EOM:
		if (c->discard) {
			c->discard = 0;
			return txn_end(c);
		}
		if (class == 2) {
			result_set(c, SMTP_OK, "end of data", r, NULL);
			c->nmsg++;
			c->need_rset = 0;
		} else {
			result_set(c, SMTP_FAIL_RESP, "end of data", r, NULL);
			c->res.permanent = class == 5;
		}
		return txn_end(c);

	case S_QUIT:
		return quit_end(c);

	case S_READY:
		/* Unsolicited reply while idle: end the session. */
		return session_fail(c, SMTP_FAIL_PROTO, NULL, r,
		    "unexpected reply while idle");

	default:
		return session_fail(c, SMTP_FAIL_PROTO, NULL, r,
		    "unexpected reply in state %s", strstate[c->state]);
	}
}

/* ---- I/O callbacks ---------------------------------------------------- */

enum smtp_read
smtp_client_read_reply(struct evbuffer *in, struct smtp_reply *acc,
    struct smtp_reply *out, char *err, size_t errlen)
{
	struct evbuffer_ptr eol;
	char line[SMTP_REPLY_LINE_MAX + 1];
	size_t eol_len, len, avail;

	for (;;) {
		eol_len = 0;
		eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
		if (eol.pos == -1) {
			/* a line of SMTP_REPLY_LINE_MAX bytes may wait for
			 * the LF after its CR */
			avail = evbuffer_get_length(in);
			if (avail > SMTP_REPLY_LINE_MAX + 1 ||
			    (avail == SMTP_REPLY_LINE_MAX + 1 &&
			    evbuffer_pullup(in, -1)[avail - 1] != '\r')) {
				snprintf(err, errlen, "reply line longer than "
				    "%d bytes", SMTP_REPLY_LINE_MAX);
				return SMTP_READ_LONG;
			}
			return SMTP_READ_MORE;
		}
		if ((size_t)eol.pos > SMTP_REPLY_LINE_MAX) {
			snprintf(err, errlen, "reply line longer than %d bytes",
			    SMTP_REPLY_LINE_MAX);
			return SMTP_READ_LONG;
		}
		len = (size_t)eol.pos;
		if (evbuffer_remove(in, line, len) != (int)len) {
			snprintf(err, errlen, "cannot read input buffer");
			return SMTP_READ_INTERNAL;
		}
		evbuffer_drain(in, eol_len);

		switch (smtp_reply_feed(acc, line, len, err, errlen)) {
		case REPLY_ERROR:
			return SMTP_READ_BAD;
		case REPLY_MORE:
			continue;
		case REPLY_DONE:
			break;
		}
		*out = *acc;
		smtp_reply_init(acc);
		return SMTP_READ_REPLY;
	}
}

/* Split input into lines, feed replies.  -1 if processing stopped. */
static int
client_read(struct smtp_client *c)
{
	char err[128];
	struct smtp_reply r;
	int rc;

	while (c->bev != NULL && c->state != S_CLOSED &&
	    c->state != S_HANDSHAKE && c->state != S_CONNECT) {
		switch (smtp_client_read_reply(bufferevent_get_input(c->bev),
		    &c->reply, &r, err, sizeof(err))) {
		case SMTP_READ_MORE:
			return 0;
		case SMTP_READ_LONG:
			return session_fail(c, SMTP_FAIL_PROTO, NULL, NULL,
			    "%s", err);
		case SMTP_READ_INTERNAL:
			return session_fail(c, SMTP_FAIL_INTERNAL, NULL, NULL,
			    "%s", err);
		case SMTP_READ_BAD:
			if (c->state == S_QUIT)
				return quit_end(c);
			return session_fail(c, SMTP_FAIL_PROTO, NULL, NULL,
			    "bad reply: %s", err);
		case SMTP_READ_REPLY:
			break;
		}
		/* Hand the reply over: c may be gone when it returns. */
		rc = client_reply(c, &r);
		smtp_reply_clear(&r);
		if (rc == -1)
			return -1;
	}
	return 0;
}

static void
bev_read_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_client *c = arg;

	client_read(c);
}

/* Read the next chunk of the spool file, dot-stuffed, into the output. */
static int
body_fill(struct smtp_client *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	char in[BODY_CHUNK], stuffed[2 * BODY_CHUNK + 8];
	ssize_t n, i;
	size_t o;

	while (evbuffer_get_length(out) < BODY_HIWAT) {
		/* The spool file holds the envelope after the data: read
		 * exactly msg->size bytes. */
		n = 0;
		if (c->data_off < c->size)
			n = pread(c->data_fd, in, c->size - c->data_off <
			    (off_t)sizeof(in) ? (size_t)(c->size - c->data_off) :
			    sizeof(in), c->data_off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			return session_fail(c, SMTP_FAIL_INTERNAL, NULL, NULL,
			    "cannot read the message data: %s",
			    strerror(errno));
		}
		if (n == 0 && c->data_off < c->size)
			return session_fail(c, SMTP_FAIL_INTERNAL, NULL, NULL,
			    "message data truncated at %lld of %lld bytes",
			    (long long)c->data_off, (long long)c->size);
		if (n == 0) {
			/* End: the last line ends with CRLF, then ".". */
			o = 0;
			if (!c->bol) {
				memcpy(stuffed, "\r\n", 2);
				o = 2;
			}
			memcpy(stuffed + o, ".\r\n", 3);
			if (bufferevent_write(c->bev, stuffed, o + 3) == -1)
				return session_fail(c, SMTP_FAIL_INTERNAL,
				    NULL, NULL, "cannot queue output");
			log_debug("%s: %s: >>> (%lld bytes of data) .", lid(c),
			    c->relay, (long long)c->data_off);
			return client_state(c, S_EOM);
		}
		for (i = 0, o = 0; i < n; i++) {
			char ch = in[i];

			/* RFC 5321 §4.5.2: a line starting with "." gets
			 * another one.  Bare LF becomes CRLF. */
			if (c->bol && ch == '.')
				stuffed[o++] = '.';
			if (ch == '\n' && !c->last_cr)
				stuffed[o++] = '\r';
			stuffed[o++] = ch;
			c->bol = ch == '\n';
			c->last_cr = ch == '\r';
		}
		c->data_off += n;
		if (bufferevent_write(c->bev, stuffed, o) == -1)
			return session_fail(c, SMTP_FAIL_INTERNAL, NULL, NULL,
			    "cannot queue output");
	}
	return 0;
}

static void
bev_write_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_client *c = arg;

	if (c->state != S_BODY)
		return;
	/* Progress: the body timeout is per write. */
	timer_arm(c, c->data_xfer_timeout_ms);
	body_fill(c);
}

/* Our end of the connection, as the server sees it (TLSRPT's
 * sending-mta-ip): the kernel's choice, or the bind address. */
static void
local_name(struct smtp_client *c)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	evutil_socket_t fd = bufferevent_getfd(c->bev);

	c->local[0] = '\0';
	if (fd == -1 || getsockname(fd, (struct sockaddr *)&ss, &sl) == -1)
		return;
	if (ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr,
		    c->local, sizeof(c->local));
	else if (ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr,
		    c->local, sizeof(c->local));
}

static void
bev_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_client *c = arg;
	char ebuf[256];
	unsigned long e;
	int serr = EVUTIL_SOCKET_ERROR();

	if (what & BEV_EVENT_CONNECTED) {
		if (c->state == S_CONNECT) {
			local_name(c);
			log_debug("%s: %s: connected from %s", lid(c), c->relay,
			    c->local);
			if (client_state(c, S_BANNER) == -1)
				return;
			/* The banner may have been read before this event. */
			client_read(c);
		} else if (c->state == S_HANDSHAKE) {
			if (handshake_end(c, 1, NULL) == -1)
				return;
			/* Data may have arrived with the last flight. */
			client_read(c);
		}
		return;
	}
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;

	if (c->state == S_CONNECT)
		session_fail(c, SMTP_FAIL_CONN, NULL, NULL, "connect to %s: %s",
		    c->relay, evutil_socket_error_to_string(serr));
	else if (c->state == S_HANDSHAKE) {
		ebuf[0] = '\0';
		if ((e = bufferevent_get_openssl_error(bev)) != 0)
			ERR_error_string_n(e, ebuf, sizeof(ebuf));
		else if (what & BEV_EVENT_EOF)
			dr_strlcpy(ebuf, "connection closed by server",
			    sizeof(ebuf));
		else if (serr != 0)
			dr_strlcpy(ebuf, evutil_socket_error_to_string(serr),
			    sizeof(ebuf));
		while (bufferevent_get_openssl_error(bev) != 0)
			;
		handshake_end(c, 0, ebuf);
	} else {
		/* Whatever complete lines came before the end. */
		if (client_read(c) == -1)
			return;
		if (c->state == S_QUIT) {
			quit_end(c);
			return;
		}
		if (c->state == S_CLOSED)
			return;
		if (what & BEV_EVENT_EOF)
			session_fail(c, SMTP_FAIL_CONN, NULL, NULL,
			    "connection closed by server in state %s",
			    strstate[c->state]);
		else {
			ebuf[0] = '\0';
			if (c->tls_on &&
			    (e = bufferevent_get_openssl_error(bev)) != 0)
				ERR_error_string_n(e, ebuf, sizeof(ebuf));
			session_fail(c, SMTP_FAIL_CONN, NULL, NULL,
			    "I/O error in state %s: %s", strstate[c->state],
			    ebuf[0] ? ebuf :
			    evutil_socket_error_to_string(serr));
		}
	}
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_client *c = arg;

	if (c->deferred_done) {
		c->deferred_done = 0;
		notify_done(c);
		return;
	}
	switch (c->state) {
	case S_QUIT:
		quit_end(c);
		return;
	case S_HANDSHAKE:
		/* A stalled handshake is a failed TLS attempt. */
		session_fail(c, SMTP_FAIL_TIMEOUT, "validation-failure", NULL,
		    "timeout during the TLS handshake");
		return;
	case S_CONNECT:
	case S_BANNER:
	case S_EHLO:
	case S_HELO:
	case S_STARTTLS:
	case S_RSET:
	case S_MAIL:
	case S_RCPT:
	case S_DATA:
	case S_BODY:
	case S_EOM:
		session_fail(c, SMTP_FAIL_TIMEOUT, NULL, NULL,
		    "timeout in state %s", strstate[c->state]);
		return;
	default:
		return;
	}
}

/* ---- API ------------------------------------------------------------- */

static void
relay_name(struct smtp_client *c)
{
	char ip[INET6_ADDRSTRLEN];
	int port = 0;

	ip[0] = '\0';
	if (c->addr.ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&c->addr;

		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
		port = ntohs(sin->sin_port);
	} else if (c->addr.ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&c->addr;

		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
		port = ntohs(sin6->sin6_port);
	}
	snprintf(c->relay, sizeof(c->relay), "%s[%s]:%d", c->host, ip, port);
}

struct smtp_client *
smtp_client_connect(const struct smtp_client_params *p,
    const struct smtp_client_cb *cb, void *arg, char *err, size_t errlen)
{
	struct smtp_client *c;
	size_t i;
	int fd, one = 1;

	if (p->base == NULL || p->helo == NULL || p->helo[0] == '\0' ||
	    p->addrlen == 0 || p->addrlen > sizeof(p->addr) ||
	    (p->addr.ss_family != AF_INET && p->addr.ss_family != AF_INET6)) {
		snprintf(err, errlen, "smtp_client: bad parameters");
		return NULL;
	}
	if (p->tls != SMTP_TLS_NONE && p->ssl_ctx == NULL) {
		snprintf(err, errlen, "smtp_client: TLS level %s without an "
		    "SSL context", smtp_tls_mode_name(p->tls));
		return NULL;
	}
	if (p->tls == SMTP_TLS_DANE && (p->tlsa_base == NULL ||
	    p->ntlsa == 0)) {
		snprintf(err, errlen, "smtp_client: DANE without TLSA records");
		return NULL;
	}
	if (p->tls == SMTP_TLS_WEBPKI && p->nnames == 0) {
		snprintf(err, errlen, "smtp_client: WebPKI without names");
		return NULL;
	}
	if (p->bindlen > sizeof(c->bindaddr)) {
		snprintf(err, errlen, "smtp_client: bad bind address");
		return NULL;
	}
	if (strpbrk(p->helo, " \r\n\t") != NULL) {
		snprintf(err, errlen, "smtp_client: bad HELO name");
		return NULL;
	}

	c = xcalloc(1, sizeof(*c));
	pthread_mutex_lock(&live_mtx);
	LIST_INSERT_HEAD(&live_clients, c, live);
	pthread_mutex_unlock(&live_mtx);
	c->fd = -1;
	c->data_fd = -1;
	c->base = p->base;
	memcpy(&c->addr, &p->addr, p->addrlen);
	c->addrlen = p->addrlen;
	if (p->bind != NULL && p->bindlen > 0) {
		memcpy(&c->bindaddr, p->bind, p->bindlen);
		c->bindlen = p->bindlen;
	} else if (p->bind_ip != NULL && p->bind_ip[0] != '\0') {
		struct sockaddr_in *b4 = (struct sockaddr_in *)&c->bindaddr;
		struct sockaddr_in6 *b6 = (struct sockaddr_in6 *)&c->bindaddr;

		if (c->addr.ss_family == AF_INET &&
		    inet_pton(AF_INET, p->bind_ip, &b4->sin_addr) == 1) {
			b4->sin_family = AF_INET;
			c->bindlen = sizeof(*b4);
		} else if (c->addr.ss_family == AF_INET6 &&
		    inet_pton(AF_INET6, p->bind_ip, &b6->sin6_addr) == 1) {
			b6->sin6_family = AF_INET6;
			c->bindlen = sizeof(*b6);
		}
	}
	c->host = xstrdup(p->host ? p->host : "");
	c->helo = xstrdup(p->helo);
	c->own_name_ok = p->own_name_ok;
	c->logid = p->logid ? xstrdup(p->logid) : NULL;
	c->connect_timeout_ms = p->connect_timeout_ms ?
	    p->connect_timeout_ms : 30000;
	c->cmd_timeout_ms = p->cmd_timeout_ms ? p->cmd_timeout_ms : 300000;
	c->data_timeout_ms = p->data_timeout_ms ? p->data_timeout_ms : 600000;
#define OR_CMD(v)	((v) ? (v) : c->cmd_timeout_ms)
	c->greeting_timeout_ms = OR_CMD(p->greeting_timeout_ms);
	c->mail_timeout_ms = OR_CMD(p->mail_timeout_ms);
	c->rcpt_timeout_ms = OR_CMD(p->rcpt_timeout_ms);
	c->data_init_timeout_ms = OR_CMD(p->data_init_timeout_ms);
	c->data_xfer_timeout_ms = OR_CMD(p->data_xfer_timeout_ms);
#undef OR_CMD
	c->tls = p->tls;
	c->ssl_ctx = p->ssl_ctx;
	c->sni = p->sni ? xstrdup(p->sni) : NULL;
	if (p->nnames > 0) {
		c->names = xcalloc(p->nnames, sizeof(*c->names));
		for (i = 0; i < p->nnames; i++)
			c->names[i] = xstrdup(p->names[i]);
		c->nnames = p->nnames;
	}
	c->check_names = p->check_names;
	if (p->ntlsa > 0) {
		if ((c->tlsa = tlsa_rrs_dup(p->tlsa, p->ntlsa)) == NULL) {
			snprintf(err, errlen, "smtp_client: cannot copy TLSA "
			    "records");
			goto fail;
		}
		c->ntlsa = p->ntlsa;
	}
	c->tlsa_base = p->tlsa_base ? xstrdup(p->tlsa_base) : NULL;
	if (cb != NULL)
		c->cb = *cb;
	c->arg = arg;
	smtp_reply_init(&c->reply);
	relay_name(c);

	if ((c->timer = evtimer_new(c->base, timer_cb, c)) == NULL) {
		snprintf(err, errlen, "smtp_client: cannot create timer");
		goto fail;
	}
	if ((fd = socket(c->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		goto fail;
	}
	c->fd = fd;
	/*
	 * No Nagle: the last segment of DATA (and each pipelined group of
	 * commands) must leave at once, not wait for the ACK the receiver
	 * delays (bench/: +40 ms per 100 KiB message without it).
	 */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
		log_debug("%s: TCP_NODELAY: %s", c->relay, strerror(errno));
	if (c->bindlen > 0 && bind(fd, (struct sockaddr *)&c->bindaddr,
	    c->bindlen) == -1) {
		snprintf(err, errlen, "bind to the source address: %s",
		    strerror(errno));
		goto fail;
	}
	if ((c->bev = bufferevent_socket_new(c->base, fd, 0)) == NULL) {
		snprintf(err, errlen, "smtp_client: cannot create "
		    "bufferevent");
		goto fail;
	}
	bufferevent_setcb(c->bev, bev_read_cb, bev_write_cb, bev_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, READ_HIWAT);
	c->state = S_CONNECT;
	log_debug("%s: %s: %s -> %s (tls=%s)", lid(c), c->relay,
	    strstate[S_INIT], strstate[S_CONNECT], smtp_tls_mode_name(c->tls));
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&c->addr,
	    (int)c->addrlen) == -1) {
		snprintf(err, errlen, "connect to %s: %s", c->relay,
		    strerror(errno));
		goto fail;
	}
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	timer_arm(c, c->connect_timeout_ms);
	return c;
 fail:
	client_destroy(c);
	return NULL;
}

/* Any byte above 0x7f: the address needs SMTPUTF8 (RFC 6531 §3.2). */
static int
addr_8bit(const char *a)
{
	for (; *a; a++)
		if ((unsigned char)*a & 0x80)
			return 1;
	return 0;
}

/*
 * Does the message's header section (up to the first empty line) hold a
 * byte above 0x7f?  Then it needs SMTPUTF8 (RFC 6532 headers, RFC 6531
 * §3.2); a UTF-8 body alone does not (that is 8BITMIME).  Reads the
 * spool file like body_fill() does.  -1 on a read error.
 */
static int
header_8bit(int fd, off_t size)
{
	char buf[BODY_CHUNK];
	off_t off = 0;
	ssize_t n, i;
	int nl = 1;		/* at the start of a line */

	while (off < size) {
		n = pread(fd, buf, size - off < (off_t)sizeof(buf) ?
		    (size_t)(size - off) : sizeof(buf), off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		for (i = 0; i < n; i++) {
			unsigned char ch = (unsigned char)buf[i];

			if (ch & 0x80)
				return 1;
			if (ch == '\n') {
				if (nl)
					return 0;	/* empty line: body */
				nl = 1;
			} else if (ch != '\r')
				nl = 0;
		}
		off += n;
	}
	return 0;
}

/*
 * An address we may put between <>: exactly what the inbound side takes
 * in MAIL FROM (sender) or RCPT TO (recipient), with its own parser, so
 * the two sides cannot disagree (issue #12: '"a>b"@dom' is a valid RFC
 * 5321 quoted local part; '<' and '>' are only refused outside quotes).
 * Nothing with a control byte, an unquoted '<' or '>' or a missing
 * quote passes, so no address can end the path or the command line.
 */
static int
addr_ok(const char *a, int sender)
{
	char line[SMTP_PATH_MAX + 32];
	struct smtp_perr e;
	int n;

	if (a == NULL)
		return 0;
	if (sender) {
		struct smtp_mail m;

		n = snprintf(line, sizeof(line), "FROM:<%s>%s", a,
		    addr_8bit(a) ? " SMTPUTF8" : "");
		return n > 0 && (size_t)n < sizeof(line) &&
		    smtp_parse_mail(line, &m, &e) == 0 &&
		    strcmp(m.addr, a) == 0;
	} else {
		struct smtp_rcpt r;

		n = snprintf(line, sizeof(line), "TO:<%s>", a);
		return n > 0 && (size_t)n < sizeof(line) && a[0] != '\0' &&
		    smtp_parse_rcpt(line, 1, &r, &e) == 0 &&
		    strcmp(r.addr, a) == 0;
	}
}

/* Address a for a reason text: bounded, control bytes as "?". */
static const char *
addr_shown(const char *a, char *buf, size_t len)
{
	size_t i;

	dr_strlcpy(buf, a ? a : "", len);
	for (i = 0; buf[i] != '\0'; i++)
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
			buf[i] = '?';
	return buf;
}

int
smtp_client_rcpt_check(const struct smtp_client *c, const char *rcpt,
    char *why, size_t whylen)
{
	char shown[SMTP_PATH_MAX];

	if (!addr_ok(rcpt, 0)) {
		snprintf(why, whylen, "5.1.3 bad recipient address syntax: "
		    "<%s> cannot be written in RCPT TO",
		    addr_shown(rcpt, shown, sizeof(shown)));
		return -1;
	}
	/* RFC 6531 §3.2: a UTF-8 address only to a server with SMTPUTF8;
	 * its ASCII co-recipients may still go */
	if (addr_8bit(rcpt) && !(c->ext.flags & SMTP_EXT_SMTPUTF8)) {
		snprintf(why, whylen, "5.6.7 SMTPUTF8 is required for <%s> "
		    "but not supported by %s", rcpt, c->relay);
		return -1;
	}
	return 0;
}

/* RFC 8689 §4.2.1: authenticated TLS (DANE or WebPKI, as the policy
 * demanded) to a server that offers REQUIRETLS. */
static int
requiretls_ok(const struct smtp_client *c)
{
	return (c->tls == SMTP_TLS_DANE || c->tls == SMTP_TLS_WEBPKI) &&
	    c->tlsout.established && c->tlsout.verified &&
	    !c->tlsout.dane_unusable && (c->ext.flags & SMTP_EXT_REQUIRETLS);
}

/* The DSN parameters of MAIL (RFC 3461 §4.3, §4.4) where the server
 * offers DSN, and REQUIRETLS (checked by the caller). */
static char *
dsn_mail_params(const struct smtp_client *c, const struct smtp_msg *m)
{
	int dsn = (c->ext.flags & SMTP_EXT_DSN) != 0;

	return xasprintf("%s%s%s%s%s", dsn && m->ret ? " RET=" : "",
	    dsn && m->ret ? m->ret : "", dsn && m->envid ? " ENVID=" : "",
	    dsn && m->envid ? m->envid : "", m->requiretls ? " REQUIRETLS" :
	    "");
}

/* NOTIFY and ORCPT of recipient i (RFC 3461 §4.1, §4.2). */
static char *
dsn_rcpt_params(const struct smtp_client *c, const struct smtp_msg *m,
    size_t i)
{
	char nb[40];
	unsigned notify = m->notify != NULL ? m->notify[i] : 0;
	const char *orcpt = m->orcpt != NULL ? m->orcpt[i] : NULL;

	if (!(c->ext.flags & SMTP_EXT_DSN))
		return xstrdup("");
	return xasprintf("%s%s%s%s", notify ? " NOTIFY=" : "",
	    notify ? dsn_notify_format(notify, nb, sizeof(nb)) : "",
	    orcpt ? " ORCPT=" : "", orcpt ? orcpt : "");
}

int
smtp_client_send(struct smtp_client *c, const struct smtp_msg *m,
    char *err, size_t errlen)
{
	size_t i;
	int need_utf8, h8;

	if (c->state != S_READY || c->deferred_done || c->quitting) {
		snprintf(err, errlen, "smtp_client: session not ready (%s)",
		    strstate[c->state]);
		return -1;
	}
	if (m->nrcpt == 0 || m->data_fd < 0 || m->sender == NULL) {
		snprintf(err, errlen, "smtp_client: bad message");
		return -1;
	}
	for (i = 0; i < m->nrcpt; i++)
		if (!addr_ok(m->rcpts[i], 0)) {
			snprintf(err, errlen, "smtp_client: bad recipient");
			return -1;
		}

	txn_clear(c);
	c->sender = xstrdup(m->sender);
	c->rcpts = xcalloc(m->nrcpt, sizeof(*c->rcpts));
	c->rparams = xcalloc(m->nrcpt, sizeof(*c->rparams));
	for (i = 0; i < m->nrcpt; i++) {
		c->rcpts[i] = xstrdup(m->rcpts[i]);
		c->rparams[i] = dsn_rcpt_params(c, m, i);
	}
	c->nrcpt = m->nrcpt;
	c->mparams = dsn_mail_params(c, m);
	c->data_fd = m->data_fd;
	c->size = m->size;
	c->body_8bit = m->body_8bit;
	/*
	 * SMTPUTF8 is needed for UTF-8 in the envelope or in the header
	 * section; a message merely flagged SMTPUTF8 by its submitter with
	 * ASCII addresses and headers goes to a server without the
	 * extension as it is, without the parameter (RFC 6531 §3.2).
	 */
	need_utf8 = addr_8bit(m->sender);
	for (i = 0; i < m->nrcpt; i++)
		need_utf8 |= addr_8bit(m->rcpts[i]);
	if (!need_utf8 && m->smtputf8 && !(c->ext.flags & SMTP_EXT_SMTPUTF8)) {
		if ((h8 = header_8bit(m->data_fd, m->size)) == -1) {
			snprintf(err, errlen, "smtp_client: cannot read the "
			    "message header: %s", strerror(errno));
			return -1;
		}
		need_utf8 = h8;
	}
	c->smtputf8 = need_utf8 || (m->smtputf8 &&
	    (c->ext.flags & SMTP_EXT_SMTPUTF8));
	c->naccepted = 0;

	/* What the message needs and the server lacks: permanent. */
	memset(&c->res, 0, sizeof(c->res));
	if (!addr_ok(m->sender, 1)) {
		/* it will never become writable: no point in deferring
		 * every recipient until the queue lifetime ends */
		char why[SMTP_PATH_MAX + 64], shown[SMTP_PATH_MAX];

		snprintf(why, sizeof(why), "bad sender address syntax: <%s> "
		    "cannot be written in MAIL FROM",
		    addr_shown(m->sender, shown, sizeof(shown)));
		result_set(c, SMTP_FAIL_IMPL, "MAIL", NULL, why);
		dr_strlcpy(c->res.enh, "5.1.7", sizeof(c->res.enh));
	} else if (need_utf8 && !(c->ext.flags & SMTP_EXT_SMTPUTF8)) {
		result_set(c, SMTP_FAIL_IMPL, "MAIL", NULL,
		    "SMTPUTF8 is required but not supported by the server");
		dr_strlcpy(c->res.enh, "5.6.7", sizeof(c->res.enh));
	} else if (m->requiretls && !requiretls_ok(c)) {
		/* RFC 8689 §4.2.1; the reason says which condition failed */
		result_set(c, SMTP_FAIL_IMPL, "MAIL", NULL,
		    !(c->tls == SMTP_TLS_DANE || c->tls == SMTP_TLS_WEBPKI) ?
		    "REQUIRETLS: the destination has neither DANE nor an "
		    "enforced MTA-STS policy" : !(c->ext.flags &
		    SMTP_EXT_REQUIRETLS) ? "REQUIRETLS: the server does not "
		    "offer REQUIRETLS" : "REQUIRETLS: the TLS session is not "
		    "authenticated");
		dr_strlcpy(c->res.enh, "5.7.30", sizeof(c->res.enh));
	} else if ((c->ext.flags & SMTP_EXT_SIZE) && c->ext.size > 0 &&
	    (unsigned long long)c->size > c->ext.size) {
		result_set(c, SMTP_FAIL_IMPL, "MAIL", NULL,
		    "message size exceeds the server's fixed maximum");
		dr_strlcpy(c->res.enh, "5.3.4", sizeof(c->res.enh));
	}
	if (c->res.fail != SMTP_OK) {
		/* Report from the event loop, never from inside send(). */
		c->res.permanent = 1;
		c->res.usable = 1;
		c->deferred_done = 1;
		timer_arm(c, 0);
		return 0;
	}
	if (c->body_8bit && !(c->ext.flags & SMTP_EXT_8BITMIME))
		log_info("%s: %s: 8-bit body, server lacks 8BITMIME: sending "
		    "as is", lid(c), c->relay);
	/* Only output here: a failure is reported later by the timer. */
	(void)client_state(c, c->need_rset ? S_RSET : S_MAIL);
	return 0;
}

const struct tls_outcome *
smtp_client_tls(const struct smtp_client *c)
{
	return &c->tlsout;
}

const struct smtp_ext *
smtp_client_ext(const struct smtp_client *c)
{
	return &c->ext;
}

const char *
smtp_client_relay(const struct smtp_client *c)
{
	return c->relay;
}

int
smtp_client_nmsg(const struct smtp_client *c)
{
	return c->nmsg;
}

const char *
smtp_client_local_ip(const struct smtp_client *c)
{
	return c->local;
}

int
smtp_client_mark(struct smtp_client *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->nmarks; i++)
		if (strcmp(c->marks[i], name) == 0)
			return 0;
	c->marks = xrealloc(c->marks, (c->nmarks + 1) * sizeof(*c->marks));
	c->marks[c->nmarks++] = xstrdup(name);
	return 1;
}

/*
 * Hand an idle session to another owner (connection reuse): from now on
 * the callbacks go to cb/arg.  Only between transactions.
 */
void
smtp_client_set_cb(struct smtp_client *c, const struct smtp_client_cb *cb,
    void *arg)
{
	if (cb != NULL)
		c->cb = *cb;
	else
		memset(&c->cb, 0, sizeof(c->cb));
	c->arg = arg;
}

/*
 * At exit: close every session still alive, including those that were
 * handed to smtp_client_quit() and wait for the server's reply.  No
 * callbacks.  Only when the event loop will not run again.
 */
void
smtp_client_free_all(void)
{
	struct smtp_client *c;

	for (;;) {
		pthread_mutex_lock(&live_mtx);
		c = LIST_FIRST(&live_clients);
		pthread_mutex_unlock(&live_mtx);
		if (c == NULL)
			break;
		client_destroy(c);
	}
}
