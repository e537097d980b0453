/*
 * dsn.c - the DSN parameters of the SMTP envelope (RFC 3461 §4): NOTIFY
 * flags, xtext, ENVID and ORCPT syntax (see dsn.h).  Pure functions on
 * caller buffers; what the inbound side accepts with them the envelope
 * keeps (envelope.c), the client passes on (smtp_client.c) and the DSN
 * shows decoded (bounce.c, RFC 3464 §2.2.1 and §2.3.1).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "dsn.h"

static const struct {
	const char *word;
	unsigned flag;
} notify_words[] = {
	{ "SUCCESS", DSN_NOTIFY_SUCCESS },
	{ "FAILURE", DSN_NOTIFY_FAILURE },
	{ "DELAY", DSN_NOTIFY_DELAY },
};
#define NWORDS	(sizeof(notify_words) / sizeof(notify_words[0]))

int
dsn_notify_parse(const char *v, unsigned *out)
{
	const char *p = v, *end;
	unsigned flags = 0;
	size_t n, w;

	*out = 0;
	if (strcasecmp(v, "NEVER") == 0) {
		*out = DSN_NOTIFY_NEVER;
		return 0;
	}
	for (;;) {
		end = strchr(p, ',');
		n = end != NULL ? (size_t)(end - p) : strlen(p);
		for (w = 0; w < NWORDS; w++)
			if (strlen(notify_words[w].word) == n &&
			    strncasecmp(p, notify_words[w].word, n) == 0)
				break;
		/* unknown, empty, NEVER in a list, or repeated */
		if (w == NWORDS || (flags & notify_words[w].flag))
			return -1;
		flags |= notify_words[w].flag;
		if (end == NULL)
			break;
		p = end + 1;
	}
	*out = flags;
	return 0;
}

const char *
dsn_notify_format(unsigned flags, char *buf, size_t len)
{
	size_t w, off = 0;

	buf[0] = '\0';
	if (flags & DSN_NOTIFY_NEVER) {
		snprintf(buf, len, "NEVER");
		return buf;
	}
	for (w = 0; w < NWORDS; w++) {
		if (!(flags & notify_words[w].flag))
			continue;
		off += (size_t)snprintf(buf + off, off < len ? len - off : 0,
		    "%s%s", off ? "," : "", notify_words[w].word);
		if (off >= len)
			break;
	}
	return buf;
}

int
dsn_notify_wants(unsigned flags, unsigned what)
{
	if (flags == 0)
		return what == DSN_NOTIFY_FAILURE || what == DSN_NOTIFY_DELAY;
	if (flags & DSN_NOTIFY_NEVER)
		return 0;
	return (flags & what) != 0;
}

static int
hexup(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;		/* RFC 3461 §4: upper case only */
}

/* One xtext character at s: its octet in *c and the length used, or 0. */
static size_t
xchar(const char *s, int *c)
{
	int hi, lo;

	if (s[0] == '+') {
		if ((hi = hexup((unsigned char)s[1])) == -1 ||
		    (lo = hexup((unsigned char)s[2])) == -1)
			return 0;
		*c = hi << 4 | lo;
		return 3;
	}
	if ((unsigned char)s[0] < 33 || (unsigned char)s[0] > 126 ||
	    s[0] == '=')
		return 0;
	*c = (unsigned char)s[0];
	return 1;
}

int
dsn_xtext_valid(const char *s)
{
	size_t n;
	int c;

	for (; *s != '\0'; s += n)
		if ((n = xchar(s, &c)) == 0)
			return 0;
	return 1;
}

int
dsn_xtext_decode(const char *s, char *out, size_t outlen)
{
	size_t n, o = 0;
	int c;

	if (outlen == 0)
		return -1;
	for (; *s != '\0'; s += n) {
		if ((n = xchar(s, &c)) == 0 || c < 0x20 || c > 0x7e ||
		    o + 1 >= outlen) {
			out[0] = '\0';
			return -1;
		}
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return (int)o;
}

int
dsn_xtext_encode(const char *in, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p;
	size_t o = 0;

	if (outlen == 0)
		return -1;
	for (p = (const unsigned char *)in; *p != '\0'; p++) {
		if (*p < 33 || *p > 126 || *p == '+' || *p == '=') {
			if (o + 4 > outlen)
				goto full;
			out[o++] = '+';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 0xf];
		} else {
			if (o + 2 > outlen)
				goto full;
			out[o++] = (char)*p;
		}
	}
	out[o] = '\0';
	return (int)o;
 full:
	out[0] = '\0';
	return -1;
}

int
dsn_envid_valid(const char *v)
{
	char tmp[DSN_ENVID_MAX + 1];

	return v[0] != '\0' && strlen(v) <= DSN_ENVID_MAX &&
	    dsn_xtext_decode(v, tmp, sizeof(tmp)) >= 0;
}

int
dsn_orcpt_valid(const char *v)
{
	char tmp[DSN_ORCPT_MAX + 1];
	const char *semi = strchr(v, ';'), *p;

	if (strlen(v) > DSN_ORCPT_MAX || semi == NULL || semi == v ||
	    semi[1] == '\0')
		return 0;
	for (p = v; p < semi; p++)
		if (!isascii((unsigned char)*p) ||
		    (!isalnum((unsigned char)*p) && *p != '-'))
			return 0;
	return dsn_xtext_decode(semi + 1, tmp, sizeof(tmp)) >= 0;
}
