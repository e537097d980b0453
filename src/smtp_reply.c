/*
 * smtp_reply.c - parser for the replies of an SMTP server, used by the
 * outbound client (smtp_client.c).
 *
 * Implements:
 *   RFC 5321 §4.2    reply syntax: "ddd" SP text CRLF for the last line,
 *                    "ddd-" text CRLF for the others, the same code on
 *                    every line; first digit 2..5, second 0..5.
 *   RFC 5321 §4.2.1  the first digit classifies the reply.
 *   RFC 2034, 3463   enhanced status codes "class.subject.detail" at the
 *                    start of the text, class equal to the first digit.
 *   RFC 5321 §4.1.1.1 EHLO reply: greeting line, then one keyword with
 *                    optional parameters per line.
 *
 * Pure code, no I/O; untrusted input (fuzzed by tests/fuzz/fuzz_smtp_reply).
 * Bounds: SMTP_REPLY_LINE_MAX bytes per line, SMTP_REPLY_LINES_MAX lines.
 * Text is kept with control characters (and NUL) replaced by '?', so it
 * can go to logs and DSNs as is.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp_reply.h"
#include "util.h"

void
smtp_reply_init(struct smtp_reply *r)
{
	memset(r, 0, sizeof(*r));
}

void
smtp_reply_clear(struct smtp_reply *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < r->nlines; i++)
		free(r->lines[i]);
	free(r->lines);
	smtp_reply_init(r);
}

/*
 * Length of an enhanced status code "c.sss.ddd" at the start of s (n
 * bytes), followed by SP or the end; 0 if there is none.  class must be
 * the reply's first digit (RFC 3463 §2: 2, 4 or 5).
 */
static size_t
enh_len(const char *s, size_t n, int class)
{
	size_t i = 0, d;
	int part;

	if (n < 5 || s[0] != '0' + class || (class != 2 && class != 4 &&
	    class != 5) || s[1] != '.')
		return 0;
	i = 2;
	for (part = 0; part < 2; part++) {
		for (d = 0; i < n && d < 4 && isdigit((unsigned char)s[i]);
		    d++)
			i++;
		if (d == 0 || d > 3)
			return 0;
		if (part == 0) {
			if (i >= n || s[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < n && s[i] != ' ')
		return 0;
	return i;
}

enum smtp_reply_status
smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len,
    char *err, size_t errlen)
{
	int code, last;
	size_t off, elen, i;
	char *text;

	if (r->complete) {
		snprintf(err, errlen, "reply already complete");
		return REPLY_ERROR;
	}
	if (len > SMTP_REPLY_LINE_MAX) {
		snprintf(err, errlen, "reply line longer than %d bytes",
		    SMTP_REPLY_LINE_MAX);
		return REPLY_ERROR;
	}
	if (r->nlines >= SMTP_REPLY_LINES_MAX) {
		snprintf(err, errlen, "reply longer than %d lines",
		    SMTP_REPLY_LINES_MAX);
		return REPLY_ERROR;
	}
	if (len < 3 || !isdigit((unsigned char)line[0]) ||
	    !isdigit((unsigned char)line[1]) ||
	    !isdigit((unsigned char)line[2])) {
		snprintf(err, errlen, "reply line does not start with a "
		    "three-digit code");
		return REPLY_ERROR;
	}
	if (line[0] < '2' || line[0] > '5' || line[1] > '5') {
		snprintf(err, errlen, "invalid reply code %.3s", line);
		return REPLY_ERROR;
	}
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (len == 3)
		last = 1;		/* "250" alone: tolerated as last line */
	else if (line[3] == ' ')
		last = 1;
	else if (line[3] == '-')
		last = 0;
	else {
		snprintf(err, errlen, "reply code %d not followed by space or "
		    "hyphen", code);
		return REPLY_ERROR;
	}
	if (r->nlines > 0 && code != r->code) {
		snprintf(err, errlen, "reply code changed from %d to %d within "
		    "a multi-line reply", r->code, code);
		return REPLY_ERROR;
	}

	off = len > 3 ? 4 : 3;
	elen = enh_len(line + off, len - off, code / 100);
	if (elen > 0) {
		if (r->nlines == 0)
			memcpy(r->enh, line + off, elen), r->enh[elen] = '\0';
		off += elen;
		if (off < len)
			off++;		/* the SP after it */
	}

	text = xmalloc(len - off + 1);
	for (i = off; i < len; i++) {
		unsigned char ch = (unsigned char)line[i];

		text[i - off] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
	}
	text[len - off] = '\0';

	r->lines = xrealloc(r->lines, (r->nlines + 1) * sizeof(*r->lines));
	r->lines[r->nlines++] = text;
	r->code = code;
	if (last) {
		r->complete = 1;
		return REPLY_DONE;
	}
	return REPLY_MORE;
}

/* The first place needle (lower case) starts in s, any case, or NULL. */
static const char *
find_nocase(const char *s, const char *needle)
{
	size_t n = strlen(needle);

	for (; *s != '\0'; s++)
		if (strncasecmp(s, needle, n) == 0)
			return s;
	return NULL;
}

int
smtp_reply_throttle(const char *stage, int code, const char *enh,
    const char *text)
{
	static const char *const says[] = { "throttl", "too many",
	    "try again later" };
	const char *p;
	size_t i;

	if (code < 400 || code > 499)
		return 0;
	if (stage == NULL)
		stage = "";
	if (code == 421 && strcmp(stage, "banner") == 0)
		return 1;
	if (enh != NULL && strncmp(enh, "4.7.", 4) == 0 &&
	    (!strcmp(stage, "EHLO") || !strcmp(stage, "HELO") ||
	    !strcmp(stage, "MAIL") || !strcmp(stage, "RCPT")))
		return 1;
	if (text == NULL)
		return 0;
	for (i = 0; i < sizeof(says) / sizeof(says[0]); i++)
		if (find_nocase(text, says[i]) != NULL)
			return 1;
	for (p = text; (p = find_nocase(p, "rate")) != NULL; p++)
		if (p == text || !isalpha((unsigned char)p[-1]))
			return 1;
	return 0;
}

const char *
smtp_reply_summary(const struct smtp_reply *r, char *buf, size_t len)
{
	size_t i, n;
	int w;

	if (len == 0)
		return buf;
	buf[0] = '\0';
	if (r->code == 0)
		return buf;
	w = snprintf(buf, len, "%d%s%s", r->code, r->enh[0] ? " " : "",
	    r->enh);
	if (w < 0 || (size_t)w >= len)
		return buf;
	n = (size_t)w;
	for (i = 0; i < r->nlines && n + 1 < len; i++) {
		if (r->lines[i][0] == '\0')
			continue;
		buf[n++] = ' ';
		buf[n] = '\0';
		n += dr_strlcpy(buf + n, r->lines[i], len - n);
		if (n >= len)
			n = len - 1;
	}
	return buf;
}

/* Keyword (case-insensitive) followed by the end or a space. */
static int
kw(const char *line, const char *word, const char **args)
{
	size_t n = strlen(word);

	if (strncasecmp(line, word, n) != 0)
		return 0;
	if (line[n] != '\0' && line[n] != ' ' && line[n] != '=')
		return 0;
	*args = line + n;
	while (**args == ' ' || **args == '=')
		(*args)++;
	return 1;
}

int
smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_ext *ext)
{
	static const struct {
		const char *word;
		unsigned flag;
	} words[] = {
		{ "STARTTLS", SMTP_EXT_STARTTLS },
		{ "PIPELINING", SMTP_EXT_PIPELINING },
		{ "SIZE", SMTP_EXT_SIZE },
		{ "8BITMIME", SMTP_EXT_8BITMIME },
		{ "SMTPUTF8", SMTP_EXT_SMTPUTF8 },
		{ "ENHANCEDSTATUSCODES", SMTP_EXT_ENHANCEDSTATUSCODES },
		{ "DSN", SMTP_EXT_DSN },
		{ "CHUNKING", SMTP_EXT_CHUNKING },
		{ "AUTH", SMTP_EXT_AUTH },
		{ "REQUIRETLS", SMTP_EXT_REQUIRETLS },
	};
	const char *args;
	size_t i, w;

	memset(ext, 0, sizeof(*ext));
	if (!r->complete || SMTP_REPLY_CLASS(r) != 2 || r->nlines == 0)
		return -1;
	/* Line 0 is the greeting "name [text]", never a keyword. */
	for (i = 1; i < r->nlines; i++) {
		for (w = 0; w < sizeof(words) / sizeof(words[0]); w++) {
			if (!kw(r->lines[i], words[w].word, &args))
				continue;
			ext->flags |= words[w].flag;
			if (words[w].flag == SMTP_EXT_SIZE) {
				unsigned long long v = 0;
				const char *p;

				for (p = args; isdigit((unsigned char)*p); p++) {
					if (v > (~0ULL - 9) / 10) {
						v = 0;	/* absurd: no limit */
						break;
					}
					v = v * 10 + (unsigned)(*p - '0');
				}
				ext->size = v;
			}
			break;
		}
	}
	return 0;
}
