/*
 * smtp_client.h - the outbound SMTP session (RFC 5321) with STARTTLS
 * (RFC 3207), DANE (RFC 7672) / WebPKI verification, PIPELINING (RFC
 * 2920), SIZE (RFC 1870), 8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531).
 *
 * Usage (one session = one TCP connection to one MX address):
 *
 *	c = smtp_client_connect(&params, &cb, arg, err, sizeof(err));
 *	  -> cb.ready(c)             session set up (banner, EHLO, STARTTLS,
 *	                             verification, EHLO again): send a message
 *	     smtp_client_send(c, &msg)
 *	  -> cb.rcpt(c, i, reply)    once per recipient whose RCPT got a reply
 *	                             while MAIL FROM was accepted
 *	  -> cb.done(c, result)      the transaction ended (or the session
 *	                             failed at any point, also before ready)
 *	     if result->usable: smtp_client_send() again (reuse; RSET is sent
 *	     first when needed) or smtp_client_quit(c); else smtp_client_free(c)
 *
 * A recipient is delivered iff its rcpt() reply was 2xx AND done() has
 * fail == SMTP_OK.  A recipient without rcpt() call, or with a 2xx rcpt()
 * reply when done() reports a failure, takes the outcome of done()
 * (result->permanent says bounce vs. defer).
 *
 * done() also comes, with usable == 0, when an idle session dies (the
 * server closed it or sent 421): free it then.  Failure classes before
 * ready() (connect, banner, EHLO, STARTTLS, TLS) are about the host, never
 * permanent: try the next MX or later.
 *
 * smtp_client_quit() sends QUIT and releases the session by itself (no
 * more callbacks).  smtp_client_free() closes at once, without callbacks;
 * both may be called from inside a callback.  Callbacks are never called
 * from inside smtp_client_connect() or smtp_client_send().
 *
 * Security: when params.tls is SMTP_TLS_ENCRYPT, DANE or WEBPKI, no SMTP
 * command other than EHLO, STARTTLS and QUIT is ever sent in cleartext:
 * no STARTTLS offered -> SMTP_FAIL_STARTTLS_MISSING, a failed handshake or
 * verification -> SMTP_FAIL_TLS; never a fallback.  Cleartext is allowed
 * only for SMTP_TLS_NONE and SMTP_TLS_MAY (HELO fallback, too, only then).
 */
#ifndef DR_SMTP_CLIENT_H
#define DR_SMTP_CLIENT_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "smtp_reply.h"
#include "tls.h"

struct event_base;
struct tlsa_rr;

enum smtp_tls_mode {
	SMTP_TLS_NONE = 0,	/* cleartext, never STARTTLS */
	SMTP_TLS_MAY,		/* STARTTLS if offered, unauthenticated;
				 * cleartext if not offered */
	SMTP_TLS_ENCRYPT,	/* mandatory TLS, unauthenticated */
	SMTP_TLS_DANE,		/* mandatory TLS, TLSA-authenticated */
	SMTP_TLS_WEBPKI,	/* mandatory TLS, PKIX chain + names[] */
};
const char *smtp_tls_mode_name(enum smtp_tls_mode m);

struct smtp_client_params {
	struct event_base *base;
	struct sockaddr_storage addr;	/* destination address and port */
	socklen_t addrlen;
	const struct sockaddr *bind;	/* optional source address (port 0) */
	socklen_t bindlen;
	const char *bind_ip;		/* or as text ("192.0.2.25"): used
					 * when its family is addr's */
	const char *host;		/* MX name, for logs ("mx.example") */
	const char *helo;		/* our name for EHLO/HELO */
	int own_name_ok;		/* the server may greet with helo's
					 * name (bounce_relay: the local MTA on
					 * this host); else SMTP_FAIL_LOOP */
	const char *logid;		/* log prefix (queue id) or NULL */

	unsigned connect_timeout_ms;	/* TCP connect (default 30 s) */
	unsigned cmd_timeout_ms;	/* each reply to EHLO, HELO, STARTTLS,
					 * RSET, the TLS handshake, and every
					 * wait below left 0 (default 300 s) */
	/* RFC 5321 §4.5.3.2; 0: cmd_timeout_ms */
	unsigned greeting_timeout_ms;	/* the 220 banner */
	unsigned mail_timeout_ms;	/* reply to MAIL */
	unsigned rcpt_timeout_ms;	/* each reply to RCPT */
	unsigned data_init_timeout_ms;	/* reply to DATA (354) */
	unsigned data_xfer_timeout_ms;	/* each write of the body */
	unsigned data_timeout_ms;	/* reply after the final "." (default
					 * 600 s); 0 anywhere = the default */

	/* TLS */
	enum smtp_tls_mode tls;
	SSL_CTX *ssl_ctx;		/* tls_client_ctx_new(); not owned;
					 * required unless tls == NONE */
	const char *sni;		/* MAY/ENCRYPT/WEBPKI (NULL: host) */
	const char *const *names;	/* WEBPKI: names the certificate must
					 * match; DANE: extra DANE-TA names;
					 * MAY/ENCRYPT with check_names:
					 * names to check, not enforced */
	size_t nnames;
	int check_names;		/* MAY/ENCRYPT: verify the chain and
					 * names[] for the outcome only
					 * (MTA-STS testing, RFC 8461 §5) */
	const struct tlsa_rr *tlsa;	/* DANE: the TLSA RRset */
	size_t ntlsa;
	const char *tlsa_base;		/* DANE: TLSA base domain, also SNI */
};

/* A message to send.  Data: the spool file (RFC 5322, CRLF line ends,
 * not dot-stuffed); read with pread() from offset 0, streamed with
 * dot-stuffing; the fd is not owned and must stay open until done(). */
struct smtp_msg {
	const char *sender;		/* without <>, "" = null sender */
	const char *const *rcpts;	/* without <> */
	size_t nrcpt;
	int data_fd;
	off_t size;			/* bytes in data_fd (SIZE=) */
	int body_8bit;			/* BODY=8BITMIME if offered */
	int smtputf8;			/* submitted with SMTPUTF8 (RFC 6531):
					 * the parameter goes on where the
					 * server offers it; the extension is
					 * required only for UTF-8 addresses
					 * or header fields (else 5.6.7) */
	/*
	 * DSN (RFC 3461): RET and ENVID on MAIL, NOTIFY and ORCPT on each
	 * RCPT, only where the server offers DSN (smtp_client_ext() tells
	 * the caller, who owes the "relayed" DSNs otherwise).  NULL: none.
	 */
	const char *ret;		/* "FULL" or "HDRS" */
	const char *envid;		/* xtext */
	const unsigned *notify;		/* [nrcpt] DSN_NOTIFY_* (0: none) */
	const char *const *orcpt;	/* [nrcpt] "rfc822;xtext" or NULL */
	/*
	 * REQUIRETLS (RFC 8689 §4.2.1): sent only on a session whose TLS
	 * was authenticated as DANE or WebPKI (params.tls SMTP_TLS_DANE or
	 * SMTP_TLS_WEBPKI, verified) to a server that offers REQUIRETLS,
	 * with the parameter on MAIL; anywhere else the transaction fails
	 * at once (SMTP_FAIL_IMPL, permanent, 5.7.30) and nothing is sent.
	 */
	int requiretls;
};

/* Failure classes: the caller maps them to defer/bounce. */
enum smtp_fail {
	SMTP_OK = 0,
	SMTP_FAIL_CONN,		/* connect, I/O error, peer closed */
	SMTP_FAIL_TIMEOUT,	/* a wait timed out */
	SMTP_FAIL_PROTO,	/* malformed or unexpected reply */
	SMTP_FAIL_STARTTLS_MISSING, /* TLS required, STARTTLS not offered
				 * (or STARTTLS refused by the server) */
	SMTP_FAIL_TLS,		/* handshake or verification failed */
	SMTP_FAIL_RESP,		/* a 4xx/5xx reply: see code/reply */
	SMTP_FAIL_IMPL,		/* server lacks what the message needs
				 * (SMTPUTF8, SIZE too small): permanent */
	SMTP_FAIL_INTERNAL,	/* our side: out of resources, read error
				 * on the spool file */
	SMTP_FAIL_LOOP,		/* the server greeted or answered EHLO
				 * with our own name (params.helo): the
				 * mail loops back to ourselves; permanent
				 * (5.4.6) */
};
const char *smtp_fail_name(enum smtp_fail f);

struct smtp_result {
	enum smtp_fail fail;
	int permanent;		/* 1: bounce (5xx, FAIL_IMPL); else defer */
	int usable;		/* session can take another message */
	const char *stage;	/* "connect", "banner", "EHLO", "HELO",
				 * "STARTTLS", "TLS", "idle", "RSET",
				 * "MAIL", "RCPT", "DATA", "end of data",
				 * "QUIT" */
	int code;		/* server reply code, 0 if none */
	char enh[SMTP_REPLY_ENH_MAX]; /* enhanced code, server's or ours
				 * (e.g. "5.6.7"), or "" */
	char reply[512];	/* server reply summary, or our reason */
	const char *tlsrpt;	/* RFC 8460 result-type when the attempt
				 * failed at TLS negotiation (FAIL_TLS,
				 * FAIL_STARTTLS_MISSING, a timeout during
				 * the handshake), else NULL */
	size_t naccepted;	/* recipients accepted by RCPT */
};

struct smtp_client;

struct smtp_client_cb {
	void (*ready)(struct smtp_client *c, void *arg);
	void (*rcpt)(struct smtp_client *c, size_t idx,
	    const struct smtp_reply *reply, void *arg);
	void (*done)(struct smtp_client *c, const struct smtp_result *res,
	    void *arg);
};

/* Start connecting.  NULL + err on immediate failure (bad params, socket
 * error): no callback will come. */
struct smtp_client *smtp_client_connect(const struct smtp_client_params *p,
    const struct smtp_client_cb *cb, void *arg, char *err, size_t errlen);
/* Start a transaction; only after ready() or a done() with usable.
 * 0 ok, -1 (wrong state, bad message) with err set, no callback. */
int smtp_client_send(struct smtp_client *c, const struct smtp_msg *msg,
    char *err, size_t errlen);
/*
 * May rcpt go in a transaction on this session?  0 yes; -1 no, with a
 * permanent reason ("5.1.3 ...": not an address the inbound side would
 * have taken, so it cannot be written; "5.6.7 ...": UTF-8 and the server
 * lacks SMTPUTF8).  Such a recipient fails alone: leave it out of
 * smtp_client_send(), which refuses the whole message for it.  A sender
 * that cannot be written fails the whole transaction through done()
 * (SMTP_FAIL_IMPL, 5.1.7), as a UTF-8 sender does at a server without
 * SMTPUTF8 (5.6.7).  Valid after ready().
 */
int smtp_client_rcpt_check(const struct smtp_client *c, const char *rcpt,
    char *why, size_t whylen);
/* Polite end: QUIT, wait for the reply (bounded), close, free. */
void smtp_client_quit(struct smtp_client *c);
/* Close now and free.  Accepts NULL. */
void smtp_client_free(struct smtp_client *c);

/* TLS outcome of the session (established == 0: cleartext so far). */
const struct tls_outcome *smtp_client_tls(const struct smtp_client *c);
/* Extensions of the last EHLO reply. */
const struct smtp_ext *smtp_client_ext(const struct smtp_client *c);
/* "mx.example[192.0.2.1]:25" */
const char *smtp_client_relay(const struct smtp_client *c);
/* Our own address on the connected socket (getsockname() once the TCP
 * connection is up), "192.0.2.25"; "" before that. */
const char *smtp_client_local_ip(const struct smtp_client *c);
/* A set of names the session's owners keep with it across reuse (e.g.
 * the TLSRPT policy domains it was counted for): 1 the first time name
 * is given for this session, 0 after. */
int smtp_client_mark(struct smtp_client *c, const char *name);
/* Messages sent on this session so far (for reuse limits). */
int smtp_client_nmsg(const struct smtp_client *c);
/* Give an idle session (between transactions) new callbacks and arg; a
 * session cache parks sessions this way.  An idle session whose peer
 * closes or misbehaves reports through done() with usable == 0. */
void smtp_client_set_cb(struct smtp_client *c, const struct smtp_client_cb *cb,
    void *arg);
/* Call fn(a, b) once when the session's connection is gone for good (it
 * is freed: closed, or its QUIT done): for counting open connections
 * (issue #24).  One hook per session; a later call replaces it. */
void smtp_client_on_close(struct smtp_client *c, void (*fn)(void *, void *),
    void *a, void *b);
/* At exit, once the event loop is done: close and free every session,
 * also those finishing a QUIT by themselves.  No callbacks. */
void smtp_client_free_all(void);

/*
 * The client's line reader (its bufferevent's input is `in`): lines end
 * in LF, a CR before it removed; each line is fed to acc
 * (smtp_reply_feed()) until a reply is complete.  A line may be
 * SMTP_REPLY_LINE_MAX bytes without its CRLF.  SMTP_READ_REPLY: the reply
 * is moved to *out (smtp_reply_clear() it after use; acc is empty again);
 * SMTP_READ_MORE: every complete line was used, the rest waits for more
 * input; otherwise the reason is in err and the session cannot go on.
 */
struct evbuffer;
enum smtp_read {
	SMTP_READ_MORE = 0,
	SMTP_READ_REPLY,	/* a complete reply in *out */
	SMTP_READ_LONG,		/* a line longer than SMTP_REPLY_LINE_MAX */
	SMTP_READ_BAD,		/* malformed reply (smtp_reply_feed()) */
	SMTP_READ_INTERNAL,	/* the buffer could not be read */
};
enum smtp_read smtp_client_read_reply(struct evbuffer *in,
    struct smtp_reply *acc, struct smtp_reply *out, char *err,
    size_t errlen);

#endif
