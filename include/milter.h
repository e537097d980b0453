/*
 * milter.h - the Sendmail milter protocol, client side (milter.c):
 * content filters (OpenDKIM, rspamd's milter proxy, ...) plugged into
 * the inbound session as Postfix's smtpd_milters are.
 *
 * Two parts:
 *   - a pure codec: milter_reply_parse() takes one reply packet apart
 *     (the fuzz target drives it), milter_pkt_*() build commands;
 *   - a chain: the milters of one inbound session, one connection each,
 *     kept for the session's messages.  Each stage runs the milters in
 *     their order on the session's event loop and reports one verdict
 *     through a callback; the message stage applies each milter's
 *     end-of-message changes before the next milter sees the message.
 */
#ifndef DR_MILTER_H
#define DR_MILTER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct evbuffer;

/* Commands (client -> milter) and replies (milter -> client). */
#define SMFIC_ABORT	'A'
#define SMFIC_BODY	'B'
#define SMFIC_CONNECT	'C'
#define SMFIC_MACRO	'D'
#define SMFIC_BODYEOB	'E'
#define SMFIC_HELO	'H'
#define SMFIC_QUIT_NC	'K'
#define SMFIC_HEADER	'L'
#define SMFIC_MAIL	'M'
#define SMFIC_EOH	'N'
#define SMFIC_OPTNEG	'O'
#define SMFIC_QUIT	'Q'
#define SMFIC_RCPT	'R'
#define SMFIC_DATA	'T'
#define SMFIC_UNKNOWN	'U'

#define SMFIR_ADDRCPT		'+'
#define SMFIR_DELRCPT		'-'
#define SMFIR_ADDRCPT_PAR	'2'
#define SMFIR_SHUTDOWN		'4'
#define SMFIR_ACCEPT		'a'
#define SMFIR_REPLBODY		'b'
#define SMFIR_CONTINUE		'c'
#define SMFIR_DISCARD		'd'
#define SMFIR_CHGFROM		'e'
#define SMFIR_CONN_FAIL		'f'
#define SMFIR_ADDHEADER		'h'
#define SMFIR_INSHEADER		'i'
#define SMFIR_SETSYMLIST	'l'
#define SMFIR_CHGHEADER		'm'
#define SMFIR_PROGRESS		'p'
#define SMFIR_QUARANTINE	'q'
#define SMFIR_REJECT		'r'
#define SMFIR_SKIP		's'
#define SMFIR_TEMPFAIL		't'
#define SMFIR_REPLYCODE		'y'
#define SMFIR_OPTNEG		'O'	/* the answer to SMFIC_OPTNEG */

/* Actions a milter may take at the end of a message (SMFIF_*). */
#define SMFIF_ADDHDRS		0x001
#define SMFIF_CHGBODY		0x002
#define SMFIF_ADDRCPT		0x004
#define SMFIF_DELRCPT		0x008
#define SMFIF_CHGHDRS		0x010
#define SMFIF_QUARANTINE	0x020
#define SMFIF_CHGFROM		0x040
#define SMFIF_ADDRCPT_PAR	0x080
#define SMFIF_SETSYMLIST	0x100
#define SMFIF_ALL		0x1ff

/* Protocol steps a milter skips or does not answer (SMFIP_*). */
#define SMFIP_NOCONNECT		0x000001
#define SMFIP_NOHELO		0x000002
#define SMFIP_NOMAIL		0x000004
#define SMFIP_NORCPT		0x000008
#define SMFIP_NOBODY		0x000010
#define SMFIP_NOHDRS		0x000020
#define SMFIP_NOEOH		0x000040
#define SMFIP_NR_HDR		0x000080
#define SMFIP_NOUNKNOWN		0x000100
#define SMFIP_NODATA		0x000200
#define SMFIP_SKIP		0x000400
#define SMFIP_RCPT_REJ		0x000800
#define SMFIP_NR_CONN		0x001000
#define SMFIP_NR_HELO		0x002000
#define SMFIP_NR_MAIL		0x004000
#define SMFIP_NR_RCPT		0x008000
#define SMFIP_NR_DATA		0x010000
#define SMFIP_NR_UNKN		0x020000
#define SMFIP_NR_EOH		0x040000
#define SMFIP_NR_BODY		0x080000
#define SMFIP_HDR_LEADSPC	0x100000
/* what we can do: every step can be left out or left unanswered */
#define SMFIP_CLIENT		0x1fffff

/*
 * The stages macros go with, in libmilter's SMFIM_* order: the index of
 * struct milter_params' lists and of the lists a milter asks for in its
 * SMFIR_OPTNEG reply (smfi_setsymlist).
 */
enum milter_mstage {
	MILTER_M_CONNECT = 0, MILTER_M_HELO, MILTER_M_MAIL, MILTER_M_RCPT,
	MILTER_M_DATA, MILTER_M_EOM, MILTER_M_EOH, MILTER_NSTAGES
};

#define MILTER_PKT_MAX		(1024 * 1024 * 2)	/* one reply */
#define MILTER_CHUNK		65535			/* body per packet */
#define MILTER_CHANGES_MAX	10000	/* end-of-message changes, all milters */
#define MILTER_CHANGE_BYTES_MAX	(256 * 1024 * 1024)	/*   and their bytes */

/* One reply packet, taken apart.  Strings point into the packet (the
 * caller's buffer); they are NUL-terminated there. */
struct milter_reply {
	char		 cmd;		/* SMFIR_* */
	/* SMFIR_OPTNEG */
	uint32_t	 version, actions, protocol;
	const unsigned char *syms;	/* the macro lists asked for: stage */
	size_t		 symslen;	/*   (4 octets) and names, repeated */
	/* SMFIR_ADDHEADER, INSHEADER, CHGHEADER; SETSYMLIST (index=stage) */
	uint32_t	 index;
	const char	*name;		/* header name; SETSYMLIST: list */
	const char	*value;		/* header value */
	/* ADDRCPT, ADDRCPT_PAR, DELRCPT, CHGFROM: addr and args (NULL:
	 * none); QUARANTINE: addr = the reason; REPLYCODE: addr = text */
	const char	*addr;
	const char	*args;
	int		 code;		/* REPLYCODE: 4xx or 5xx */
	/* REPLBODY: the chunk */
	const unsigned char *data;
	size_t		 len;
};

/*
 * One packet from buf: 1 taken apart into *r with *used bytes consumed,
 * 0 more bytes needed, -1 a malformed packet (why says what).  Never
 * reads beyond buf[len - 1]; r's pointers are into buf.
 */
int milter_reply_parse(const unsigned char *buf, size_t len,
    struct milter_reply *r, size_t *used, char *why, size_t whylen);

/* A custom reply (SMFIR_REPLYCODE text) checked: every line "CODE " or
 * "CODE-" with the same 4xx/5xx CODE, lines split by CRLF. 0 ok, -1. */
int milter_replycode_check(const char *text, int *code);

/* Commands into out: cmd and its payload. */
void milter_pkt(struct evbuffer *out, char cmd, const void *data,
    size_t len);

/*
 * Settings (smtpd_conf.c keeps one per snapshot).
 */
enum milter_default {
	MILTER_DFLT_TEMPFAIL = 0,
	MILTER_DFLT_ACCEPT,
	MILTER_DFLT_REJECT,
};

struct milter_conf;

struct milter_params {
	const char	*list;		/* "inet:HOST:PORT, unix:/path, ..." */
	long long	 connect_timeout, command_timeout, content_timeout;
	int		 protocol;	/* 2..6 */
	enum milter_default def;
	const char	*hostname;	/* the j macro */
	/* milter_*_macros: names by stage, space or comma separated; NULL:
	 * Postfix's default list, "": none */
	const char	*macros[MILTER_NSTAGES];
};

/* NULL and err on a bad list; a list without milters is a conf with
 * none (milter_conf_count() 0). */
struct milter_conf *milter_conf_new(const struct milter_params *p,
    char *err, size_t errlen);
void milter_conf_free(struct milter_conf *mc);
size_t milter_conf_count(const struct milter_conf *mc);
/* 0 if each entry of list is inet:HOST:PORT, inet:PORT@HOST,
 * inet6:..., or unix:/path, else -1 with why. */
int milter_list_check(const char *list, char *why, size_t whylen);

/*
 * The chain of one inbound session.
 */
enum milter_act {
	MILTER_CONTINUE = 0,	/* go on (accepted by all, or no milters) */
	MILTER_REJECT,		/* reply (5xx) to the client */
	MILTER_TEMPFAIL,	/* reply (4xx) */
	MILTER_DISCARD,		/* 250 to the client, the message dropped */
};

struct milter_verdict {
	enum milter_act	 act;
	char		 reply[1024];	/* "CODE text" lines joined by CRLF */
};

struct milter_rcpt {
	char		*addr;		/* without <> */
	char		*args;		/* ESMTP arguments, NULL: none */
};

/* The message at the end of data, as the milters see and change it. */
struct milter_msg {
	char		*sender;	/* envelope, without <> */
	char		*sender_args;	/* SMFIR_CHGFROM's ESMTP arguments
					 * ("RET=HDRS ENVID=x"), NULL: none */
	struct milter_rcpt *rcpts;
	size_t		 nrcpt;
	struct evbuffer	*data;		/* the message, CRLF lines */
	int		 changed_sender, changed_rcpts, changed_data;
	char		*quarantine;	/* reason, NULL: not held */
};

/* The session's facts, for the connect stage and the macros. */
struct milter_client {
	struct sockaddr_storage ss;	/* the client's address */
	const char	*addr;		/* as text */
	const char	*name;		/* its host name (connect, {client_name});
					 * NULL: "[addr]", "unknown" */
	const char	*helo;
	const char	*tls_version;	/* NULL: no TLS */
	const char	*cipher;
	int		 cipher_bits;
	const char	*auth_type;	/* NULL: not authenticated */
	const char	*auth_authen;
	const char	*queue_id;	/* the i macro, NULL: none yet */
	const char	*daemon_addr;	/* our end of the connection */
	int		 daemon_port;
	const char	*auth_author;	/* MAIL's AUTH= (decoded), NULL */
};

struct milter_chain;
typedef void milter_done_cb(const struct milter_verdict *v, void *arg);

struct milter_chain *milter_chain_new(struct event_base *base,
    const struct milter_conf *mc);
void milter_chain_free(struct milter_chain *ch);

/* Stages: each runs the milters in order and calls cb once (never
 * before returning).  One stage at a time. */
void milter_mail(struct milter_chain *ch, const struct milter_client *cl,
    const char *sender, const char *args, milter_done_cb *cb, void *arg);
void milter_rcpt(struct milter_chain *ch, const struct milter_client *cl,
    const char *rcpt, const char *args, milter_done_cb *cb, void *arg);
/* The message: DATA, headers, end of headers, body, end of message;
 * the changes land in *msg. */
void milter_message(struct milter_chain *ch, const struct milter_client *cl,
    struct milter_msg *msg, milter_done_cb *cb, void *arg);
/* The transaction ends without a message (RSET, a rejection): the
 * milters that are in one get SMFIC_ABORT.  Cancels a running stage
 * (its cb is not called). */
void milter_abort(struct milter_chain *ch);
/* The client said HELO/EHLO again (or started TLS): the next MAIL sends
 * HELO first. */
void milter_helo_reset(struct milter_chain *ch);

void milter_msg_clear(struct milter_msg *m);

#endif
