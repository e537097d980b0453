/*
 * smtp_reply.h - parser for SMTP server replies (RFC 5321 §4.2, enhanced
 * status codes RFC 2034/3463) and EHLO keywords (RFC 5321 §4.1.1.1).
 *
 * Pure code: no I/O.  The caller splits the byte stream into lines (CRLF
 * removed) and feeds them one by one with smtp_reply_feed() until it
 * returns REPLY_DONE.  Everything is bounded: a line longer than
 * SMTP_REPLY_LINE_MAX or a reply with more than SMTP_REPLY_LINES_MAX
 * lines is refused with a reason.
 */
#ifndef DR_SMTP_REPLY_H
#define DR_SMTP_REPLY_H

#include <stddef.h>

#define SMTP_REPLY_LINE_MAX	4096	/* bytes per line, CRLF excluded */
#define SMTP_REPLY_LINES_MAX	100	/* lines per multi-line reply */
#define SMTP_REPLY_ENH_MAX	16	/* "5.123.123" + NUL fits */

struct smtp_reply {
	int code;			/* 200..599 (first digit 2-5) */
	char enh[SMTP_REPLY_ENH_MAX];	/* "2.1.5" or "" if none */
	char **lines;			/* text of each line after "ddd[ -]"
					 * (and after the enhanced code, if
					 * any); control characters replaced
					 * by '?'; owned */
	size_t nlines;
	int complete;			/* last line ("ddd " or "ddd") seen */
};

enum smtp_reply_status {
	REPLY_ERROR = -1,		/* malformed: err says why */
	REPLY_MORE = 0,			/* continuation line, feed more */
	REPLY_DONE = 1,			/* reply complete */
};

/* Zero a reply before the first feed. */
void smtp_reply_init(struct smtp_reply *r);
/* Free the lines; the struct is re-initialised and can be reused. */
void smtp_reply_clear(struct smtp_reply *r);

/*
 * Feed one line (without CRLF; need not be NUL-terminated; may contain
 * any bytes).  The code of every line of a reply must be the same.
 * After REPLY_DONE, call smtp_reply_clear() before the next reply.
 */
enum smtp_reply_status smtp_reply_feed(struct smtp_reply *r, const char *line,
    size_t len, char *err, size_t errlen);

/* One line for logs and DSNs: "550 5.1.1 text of first line" (further
 * lines joined with ' ', truncated to the buffer). Returns buf. */
const char *smtp_reply_summary(const struct smtp_reply *r, char *buf,
    size_t len);

/*
 * Is this reply a receiver throttling us (issue #24)?  stage is the
 * smtp_client stage ("banner", "EHLO", "HELO", "MAIL", "RCPT", ...),
 * text the reply's text (any case).  Yes for a 4xx reply that is: 421
 * at the greeting; an enhanced code 4.7.x at EHLO, HELO, MAIL or RCPT;
 * at any stage a text that says "rate" (at a word's start: "rate
 * limited", "ratelimit"), "throttl", "too many" or "try again later".
 * 1 yes, 0 no.
 */
int smtp_reply_throttle(const char *stage, int code, const char *enh,
    const char *text);

/* 2, 3, 4 or 5 (first digit), 0 if no code. */
#define SMTP_REPLY_CLASS(r)	((r)->code / 100)

/* EHLO keywords we act upon. */
#define SMTP_EXT_STARTTLS		0x0001
#define SMTP_EXT_PIPELINING		0x0002
#define SMTP_EXT_SIZE			0x0004
#define SMTP_EXT_8BITMIME		0x0008
#define SMTP_EXT_SMTPUTF8		0x0010
#define SMTP_EXT_ENHANCEDSTATUSCODES	0x0020
#define SMTP_EXT_DSN			0x0040
#define SMTP_EXT_CHUNKING		0x0080
#define SMTP_EXT_AUTH			0x0100
#define SMTP_EXT_REQUIRETLS		0x0200	/* RFC 8689 */

struct smtp_ext {
	unsigned flags;			/* SMTP_EXT_* */
	unsigned long long size;	/* SIZE argument, 0 = no limit given */
};

/*
 * Extract the extensions from a complete 250 reply to EHLO (the first
 * line is the greeting, RFC 5321 §4.1.1.1).  Keywords are matched without
 * regard to case; unknown ones are ignored.  0 ok, -1 if r is not a
 * complete 2xx reply.
 */
int smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_ext *ext);

#endif
