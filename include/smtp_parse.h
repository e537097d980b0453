/*
 * smtp_parse.h - pure parsers for the inbound SMTP server: command lines,
 * MAIL/RCPT paths and ESMTP parameters, AUTH responses, and the DATA
 * stream scanner.  No I/O, no allocation: everything works on caller
 * buffers, so the same code runs under the session and under libFuzzer.
 *
 * Errors come back as a struct smtp_perr: the reply code and the text
 * with its enhanced status code ("5.5.4 Syntax: MAIL FROM:<address>"),
 * ready for "<code> <text>".
 */
#ifndef DR_SMTP_PARSE_H
#define DR_SMTP_PARSE_H

#include <stddef.h>

/* RFC 5321 §4.5.3.1 size limits (all include the CRLF / brackets). */
#define SMTP_CMD_LINE_MAX	512	/* command line */
#define SMTP_AUTH_LINE_MAX	12288	/* AUTH lines, RFC 4954 §4 */
#define SMTP_TEXT_LINE_MAX	1000	/* DATA text line */
#define SMTP_PATH_MAX		256	/* "<" mailbox ">" */
#define SMTP_ADDR_MAX		(SMTP_PATH_MAX - 2)
#define SMTP_DOMAIN_MAX		255
#define SMTP_HELO_MAX		255
#define SMTP_XTEXT_MAX		500	/* ENVID 100, ORCPT 500 (RFC 3461) */
#define SMTP_AUTH_USER_MAX	255
#define SMTP_AUTH_PASS_MAX	1023

struct smtp_perr {
	int code;		/* 501, 555, ... */
	char text[160];		/* "5.5.4 ..." without the code */
};

enum smtp_verb {
	CMD_UNKNOWN = 0,
	CMD_HELO, CMD_EHLO, CMD_MAIL, CMD_RCPT, CMD_DATA, CMD_RSET,
	CMD_NOOP, CMD_QUIT, CMD_VRFY, CMD_EXPN, CMD_HELP, CMD_STARTTLS,
	CMD_AUTH,
	CMD_HTTP,		/* GET/POST/CONNECT...: a web or proxy client */
};
const char *smtp_verb_name(enum smtp_verb v);

struct smtp_cmd {
	enum smtp_verb verb;
	const char *arg;	/* points into the line; "" when absent */
};

/*
 * Split one command line (CRLF already removed, NUL-terminated, len =
 * strlen) into verb and argument.  Trailing white space is removed in
 * place.  NUL bytes (len != strlen), control characters and non-ASCII in
 * the verb, and arguments to commands that take none are errors (-1, err
 * set).  An unknown verb is not an error here: verb = CMD_UNKNOWN.
 */
int smtp_parse_command(char *line, size_t len, struct smtp_cmd *cmd,
    struct smtp_perr *err);

/* HELO/EHLO argument: a domain or an address literal, <= 255 octets. */
int smtp_parse_helo(const char *arg, struct smtp_perr *err);

enum smtp_body { BODY_UNSPEC = 0, BODY_7BIT, BODY_8BITMIME };

struct smtp_mail {
	char addr[SMTP_ADDR_MAX + 1];	/* without <>; "" = null sender */
	unsigned long long size;	/* SIZE=, 0 if absent */
	int has_size;
	enum smtp_body body;
	int smtputf8;
	char ret[5];			/* "FULL", "HDRS" or "" */
	char envid[SMTP_XTEXT_MAX + 1];	/* xtext as sent, or "" */
	int requiretls;			/* REQUIRETLS (RFC 8689) */
	char auth[SMTP_ADDR_MAX + 1];	/* AUTH= decoded, "" absent or <> */
};

struct smtp_rcpt {
	char addr[SMTP_ADDR_MAX + 1];	/* without <> */
	unsigned notify;		/* DSN_NOTIFY_* (dsn.h), 0: none */
	char orcpt[SMTP_XTEXT_MAX + 1];	/* "rfc822;xtext", or "" */
};

/*
 * "FROM:<path> [params]" (the MAIL argument).  RFC 5321 §4.1.2 path:
 * a source route is accepted and dropped, quoted local parts are kept as
 * written, "<>" is the null sender.  Non-ASCII is allowed in the path
 * only with the SMTPUTF8 parameter (RFC 6531) and must be UTF-8.
 */
int smtp_parse_mail(const char *arg, struct smtp_mail *out,
    struct smtp_perr *err);
/* "TO:<path> [params]".  "<postmaster>" is allowed without a domain;
 * "<>" is not.  utf8: the transaction declared SMTPUTF8. */
int smtp_parse_rcpt(const char *arg, int utf8, struct smtp_rcpt *out,
    struct smtp_perr *err);

/*
 * AUTH (RFC 4954).  Responses are base64; "=" is an empty response and
 * "*" cancels (the caller checks for "*" first).  Decoding is OpenSSL's.
 *
 * smtp_b64_decode: decode into out (NUL-terminated; *outlen = bytes).
 * 0 ok, -1 not valid base64 or too long for outsize - 1.
 */
int smtp_b64_decode(const char *in, unsigned char *out, size_t outsize,
    size_t *outlen);
/* PLAIN: [authzid] NUL authcid NUL passwd.  authzid must be empty or
 * equal to authcid.  0 ok, -1 bad (err set). */
int smtp_auth_plain(const char *b64, char *user, size_t userlen,
    char *pass, size_t passlen, struct smtp_perr *err);
/* LOGIN: one base64 line (user name or password), no NULs. */
int smtp_auth_login(const char *b64, char *out, size_t outlen,
    struct smtp_perr *err);

/*
 * DATA scanner (RFC 5321 §4.1.1.4, §4.5.2, §2.3.8).  Fed the raw bytes
 * after "354" in pieces of any size, it removes dot-stuffing, copies the
 * message to out (never more than it consumed), and stops right after
 * the end-of-data marker, returning how many input bytes it consumed so
 * the caller keeps the rest (pipelined commands).
 *
 * Lines must end in CRLF.  A bare LF or a bare CR anywhere sets
 * DATA_BARE_NL: the message must be rejected.  The end marker is only
 * CRLF "." CRLF with both line ends real CRLFs: "<LF>.<LF>",
 * "<CR><LF>.<LF>", "<LF>.<CR><LF>" (SMTP smuggling) are message text, so
 * whatever a smuggler puts after them is never read as commands; the
 * whole message is refused at the real end.  (Postfix >= 3.8.4 does the
 * same.)  A line longer than SMTP_TEXT_LINE_MAX (with CRLF) sets
 * DATA_LONG_LINE.
 */
#define DATA_BARE_NL		0x01
#define DATA_LONG_LINE		0x02

struct smtp_data_scan {
	int state;		/* private */
	int prev_bare;		/* private: previous line ended in bare LF */
	size_t linelen;		/* octets in the current line so far */
	int flags;		/* DATA_* */
	int done;		/* end marker seen */
};

void smtp_data_scan_init(struct smtp_data_scan *ds);
size_t smtp_data_scan(struct smtp_data_scan *ds, const char *in, size_t len,
    char *out, size_t *outlen);

#endif
