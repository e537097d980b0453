/*
 * smtp_parse.c - pure parsers for the inbound SMTP server.
 *
 * What it owns: the syntax of what an SMTP client sends us, and nothing
 * else.  No I/O, no allocation, no global state; every function works on
 * caller buffers and reports errors as a reply code plus text with an
 * enhanced status code (RFC 3463), so smtpd_session.c only decides *when*
 * something is allowed, never *what* it looks like.
 *
 *   smtp_parse_command()  command line -> verb + argument (RFC 5321 §4.1,
 *                         §4.5.3.1.4 line limit is enforced by the reader)
 *   smtp_parse_helo()     HELO/EHLO argument (§4.1.1.1)
 *   smtp_parse_mail()     MAIL FROM:<reverse-path> [params] (§4.1.1.2,
 *                         §4.1.2 path syntax, RFC 1870 SIZE, RFC 6152
 *                         BODY, RFC 6531 SMTPUTF8, RFC 3461 RET/ENVID,
 *                         RFC 4954 §5 AUTH=)
 *   smtp_parse_rcpt()     RCPT TO:<forward-path> [params] (§4.1.1.3,
 *                         RFC 3461 NOTIFY/ORCPT)
 *   smtp_auth_plain(), smtp_auth_login()   RFC 4954, RFC 4616; base64 by
 *                         OpenSSL (EVP_DecodeBlock), never by hand
 *   smtp_data_scan()      the DATA stream: dot-unstuffing (§4.5.2), end
 *                         of data only at CRLF "." CRLF (§4.1.1.4), bare
 *                         CR / LF flagged for refusal (§2.3.8: the SMTP
 *                         smuggling fix)
 *
 * Source routes (§4.1.2 A-d-l, obsolete, §C) are accepted and dropped.
 * Quoted local parts are kept exactly as sent, so the outbound side can
 * repeat them.
 */

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "dsn.h"
#include "smtp_parse.h"
#include "util.h"

static int
perr(struct smtp_perr *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
perr(struct smtp_perr *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL) {
		err->code = code;
		va_start(ap, fmt);
		vsnprintf(err->text, sizeof(err->text), fmt, ap);
		va_end(ap);
	}
	return -1;
}

/*
 * Commands
 */

enum argspec { ARG_NONE, ARG_OPTIONAL, ARG_REQUIRED };

static const struct {
	const char *name;
	enum smtp_verb verb;
	enum argspec arg;
} verbs[] = {
	{ "HELO", CMD_HELO, ARG_REQUIRED },
	{ "EHLO", CMD_EHLO, ARG_REQUIRED },
	{ "MAIL", CMD_MAIL, ARG_REQUIRED },
	{ "RCPT", CMD_RCPT, ARG_REQUIRED },
	{ "DATA", CMD_DATA, ARG_NONE },
	{ "RSET", CMD_RSET, ARG_NONE },
	{ "NOOP", CMD_NOOP, ARG_OPTIONAL },
	{ "QUIT", CMD_QUIT, ARG_NONE },
	{ "VRFY", CMD_VRFY, ARG_OPTIONAL },
	{ "EXPN", CMD_EXPN, ARG_OPTIONAL },
	{ "HELP", CMD_HELP, ARG_OPTIONAL },
	{ "STARTTLS", CMD_STARTTLS, ARG_NONE },
	{ "AUTH", CMD_AUTH, ARG_REQUIRED },
	/* Not SMTP: a browser or proxy talking to our port (cross-protocol
	 * attacks).  The session drops the connection. */
	{ "GET", CMD_HTTP, ARG_OPTIONAL },
	{ "POST", CMD_HTTP, ARG_OPTIONAL },
	{ "HEAD", CMD_HTTP, ARG_OPTIONAL },
	{ "PUT", CMD_HTTP, ARG_OPTIONAL },
	{ "OPTIONS", CMD_HTTP, ARG_OPTIONAL },
	{ "CONNECT", CMD_HTTP, ARG_OPTIONAL },
};

const char *
smtp_verb_name(enum smtp_verb v)
{
	size_t i;

	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (verbs[i].verb == v)
			return verbs[i].name;
	return "UNKNOWN";
}

int
smtp_parse_command(char *line, size_t len, struct smtp_cmd *cmd,
    struct smtp_perr *err)
{
	char *p, *e;
	size_t i, vlen;

	cmd->verb = CMD_UNKNOWN;
	cmd->arg = "";
	if (strlen(line) != len)
		return perr(err, 500, "5.5.2 Error: NUL character in command");
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return perr(err, 500,
			    "5.5.2 Error: control character in command");
	}
	/* trailing white space is not significant */
	e = line + len;
	while (e > line && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	if (*line == '\0')
		return perr(err, 500, "5.5.2 Error: empty command");

	for (p = line; *p != '\0' && *p != ' ' && *p != '\t'; p++)
		;
	vlen = (size_t)(p - line);
	while (*p == ' ' || *p == '\t')
		p++;
	cmd->arg = p;

	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		if (strlen(verbs[i].name) != vlen ||
		    strncasecmp(verbs[i].name, line, vlen) != 0)
			continue;
		cmd->verb = verbs[i].verb;
		if (verbs[i].arg == ARG_NONE && *p != '\0')
			return perr(err, 501, "5.5.4 Syntax: %s takes no "
			    "arguments", verbs[i].name);
		if (verbs[i].arg == ARG_REQUIRED && *p == '\0') {
			if (cmd->verb == CMD_MAIL)
				return perr(err, 501,
				    "5.5.4 Syntax: MAIL FROM:<address>");
			if (cmd->verb == CMD_RCPT)
				return perr(err, 501,
				    "5.5.4 Syntax: RCPT TO:<address>");
			return perr(err, 501, "5.5.4 Syntax: %s requires an "
			    "argument", verbs[i].name);
		}
		return 0;
	}
	return 0;
}

/*
 * Domains and address literals (RFC 5321 §4.1.2, §4.1.3; RFC 6531 §3.3
 * lets a sub-domain be a U-label under SMTPUTF8: bytes >= 0x80 are
 * accepted here and flagged in *nonascii, the caller decides).
 */

static int
is_letdig(unsigned char c)
{
	return isascii(c) && isalnum(c);
}

/* Length of a valid Domain at s (stops at the first byte that cannot
 * continue it), or 0 if there is none. */
static size_t
scan_domain(const char *s, int *nonascii)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t total = 0, label;

	for (;;) {
		label = 0;
		while (is_letdig(p[label]) || p[label] == '-' ||
		    p[label] >= 0x80) {
			if (p[label] >= 0x80)
				*nonascii = 1;
			label++;
		}
		if (label == 0 || label > 63 || p[0] == '-' ||
		    p[label - 1] == '-')
			return 0;
		total += label;
		p += label;
		if (*p != '.' || !(is_letdig(p[1]) || p[1] >= 0x80))
			break;
		p++;
		total++;
	}
	return total > SMTP_DOMAIN_MAX ? 0 : total;
}

/* "[1.2.3.4]" or "[IPv6:...]" at s; length including brackets or 0. */
static size_t
scan_addr_literal(const char *s)
{
	const char *e;
	char buf[64];
	unsigned char bin[16];
	size_t n;

	if (*s != '[' || (e = strchr(s, ']')) == NULL)
		return 0;
	n = (size_t)(e - s - 1);
	if (n == 0 || n >= sizeof(buf))
		return 0;
	memcpy(buf, s + 1, n);
	buf[n] = '\0';
	if (strncasecmp(buf, "IPv6:", 5) == 0) {
		if (inet_pton(AF_INET6, buf + 5, bin) != 1)
			return 0;
	} else if (inet_pton(AF_INET, buf, bin) != 1)
		return 0;
	return n + 2;
}

/* Well-formed UTF-8 (RFC 3629): no overlongs, surrogates or > U+10FFFF. */
static int
utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0, k, need;
	unsigned long cp, min;

	while (i < n) {
		unsigned char c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1; cp = c & 0x1f; min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2; cp = c & 0x0f; min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3; cp = c & 0x07; min = 0x10000;
		} else
			return 0;
		if (need > n - i - 1)
			return 0;
		for (k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += need + 1;
	}
	return 1;
}

static int
is_atext(unsigned char c)
{
	return (isascii(c) && isalnum(c)) || c >= 0x80 ||
	    (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

#define PATH_NULL_OK		0x01	/* "<>" (MAIL) */
#define PATH_POSTMASTER_OK	0x02	/* "<postmaster>" (RCPT) */

/*
 * Parse a Path at *sp (RFC 5321 §4.1.2) into out (mailbox without <>,
 * source route dropped).  On success *sp points after '>'.  0 ok, -1 bad
 * syntax, -2 too long.
 */
static int
parse_path(const char **sp, int flags, char *out, size_t outsize,
    int *nonascii)
{
	const char *s = *sp, *mbox, *p;
	size_t n;

	if (*s != '<')
		return -1;
	s++;
	if (*s == '>') {
		if (!(flags & PATH_NULL_OK))
			return -1;
		out[0] = '\0';
		*sp = s + 1;
		return 0;
	}
	/* A-d-l ":" : "@one,@two:" */
	if (*s == '@') {
		for (;;) {
			int dummy = 0;
			s++;
			if ((n = scan_domain(s, &dummy)) == 0)
				return -1;
			s += n;
			if (*s == ':')
				break;
			if (s[0] != ',' || s[1] != '@')
				return -1;
			s++;
		}
		s++;
	}
	mbox = s;
	/* Local-part */
	if (*s == '"') {
		for (s++; *s != '"'; s++) {
			unsigned char c = (unsigned char)*s;
			if (c == '\\') {
				c = (unsigned char)*++s;
				if (c < 32 || c > 126)
					return -1;
			} else if (c >= 0x80)
				*nonascii = 1;
			else if (c < 32 || c > 126)
				return -1;
		}
		s++;
	} else {
		for (;;) {
			p = s;
			while (is_atext((unsigned char)*s)) {
				if ((unsigned char)*s >= 0x80)
					*nonascii = 1;
				s++;
			}
			if (s == p)
				return -1;
			if (*s != '.')
				break;
			s++;
		}
	}
	if (*s == '>') {
		/* no domain: only "<postmaster>" (§4.1.1.3) */
		if (!(flags & PATH_POSTMASTER_OK) || s - mbox != 10 ||
		    strncasecmp(mbox, "postmaster", 10) != 0)
			return -1;
	} else {
		if (*s++ != '@')
			return -1;
		if (*s == '[')
			n = scan_addr_literal(s);
		else
			n = scan_domain(s, nonascii);
		if (n == 0)
			return -1;
		s += n;
		if (*s != '>')
			return -1;
	}
	n = (size_t)(s - mbox);
	if (n >= outsize)
		return -2;
	if (*nonascii && !utf8_valid((const unsigned char *)mbox, n))
		return -1;
	memcpy(out, mbox, n);
	out[n] = '\0';
	*sp = s + 1;
	return 0;
}

/*
 * ESMTP parameters (RFC 5321 §4.1.2 Mail-parameters): keyword[=value]
 * separated by spaces.  Returns the next one in key/val (val "" if no
 * "="), advancing *sp; 1 got one, 0 end, -1 syntax error.
 */
static int
next_param(const char **sp, char *key, size_t keylen, char *val,
    size_t vallen)
{
	const char *s = *sp;
	size_t n;

	while (*s == ' ')
		s++;
	if (*s == '\0')
		return 0;
	for (n = 0; is_letdig((unsigned char)s[n]) || (n > 0 && s[n] == '-');
	    n++)
		;
	if (n == 0 || n >= keylen)
		return -1;
	memcpy(key, s, n);
	key[n] = '\0';
	s += n;
	val[0] = '\0';
	if (*s == '=') {
		s++;
		for (n = 0; s[n] > 32 && s[n] < 127 && s[n] != '='; n++)
			;
		if (n == 0 || n >= vallen)
			return -1;
		memcpy(val, s, n);
		val[n] = '\0';
		s += n;
	}
	if (*s != '\0' && *s != ' ')
		return -1;
	*sp = s;
	return 1;
}

/* RFC 3461 §4: xtext = *( xchar / hexchar ), hexchar = "+" 2HEXUPPER. */
static int
xtext_valid(const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '+') {
			if (!isxdigit((unsigned char)s[1]) ||
			    islower((unsigned char)s[1]) ||
			    !isxdigit((unsigned char)s[2]) ||
			    islower((unsigned char)s[2]))
				return 0;
			s += 2;
		} else if (*s < 33 || *s > 126 || *s == '=')
			return 0;
	}
	return 1;
}

static int
all_digits(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return 0;
	return 1;
}

int
smtp_parse_mail(const char *arg, struct smtp_mail *out,
    struct smtp_perr *err)
{
	const char *s = arg;
	char key[32], val[SMTP_XTEXT_MAX + 2];
	int nonascii = 0, r, seen_auth = 0;

	memset(out, 0, sizeof(*out));
	if (strncasecmp(s, "FROM:", 5) != 0)
		return perr(err, 501, "5.5.4 Syntax: MAIL FROM:<address>");
	s += 5;
	while (*s == ' ')
		s++;
	if (*s != '<')
		return perr(err, 501, "5.1.7 Bad sender address syntax: "
		    "missing <>");
	if ((r = parse_path(&s, PATH_NULL_OK, out->addr, sizeof(out->addr),
	    &nonascii)) == -2)
		return perr(err, 501, "5.1.7 Sender address too long");
	if (r == -1)
		return perr(err, 501, "5.1.7 Bad sender address syntax");
	if (*s != '\0' && *s != ' ')
		return perr(err, 501, "5.5.4 Syntax: MAIL FROM:<address> "
		    "[parameters]");

	while ((r = next_param(&s, key, sizeof(key), val, sizeof(val))) == 1) {
		if (strcasecmp(key, "SIZE") == 0) {
			if (out->has_size)
				goto dup;
			if (!all_digits(val) || strlen(val) > 19)
				return perr(err, 501, "5.5.4 Bad SIZE "
				    "parameter");
			out->size = strtoull(val, NULL, 10);
			out->has_size = 1;
		} else if (strcasecmp(key, "BODY") == 0) {
			if (out->body != BODY_UNSPEC)
				goto dup;
			if (strcasecmp(val, "7BIT") == 0)
				out->body = BODY_7BIT;
			else if (strcasecmp(val, "8BITMIME") == 0)
				out->body = BODY_8BITMIME;
			else
				return perr(err, 555, "5.5.4 Unsupported "
				    "BODY type");
		} else if (strcasecmp(key, "SMTPUTF8") == 0) {
			if (out->smtputf8)
				goto dup;
			if (val[0] != '\0')
				return perr(err, 501, "5.5.4 SMTPUTF8 takes "
				    "no value");
			out->smtputf8 = 1;
		} else if (strcasecmp(key, "RET") == 0) {
			if (out->ret[0] != '\0')
				goto dup;
			if (strcasecmp(val, "FULL") != 0 &&
			    strcasecmp(val, "HDRS") != 0)
				return perr(err, 501, "5.5.4 Bad RET "
				    "parameter: FULL or HDRS (RFC 3461)");
			dr_strlcpy(out->ret, val, sizeof(out->ret));
			for (char *q = out->ret; *q; q++)
				*q = (char)toupper((unsigned char)*q);
		} else if (strcasecmp(key, "ENVID") == 0) {
			if (out->envid[0] != '\0')
				goto dup;
			if (!dsn_envid_valid(val))
				return perr(err, 501, "5.5.4 Bad ENVID "
				    "parameter: 1-100 octets of xtext "
				    "(RFC 3461 section 4)");
			dr_strlcpy(out->envid, val, sizeof(out->envid));
		} else if (strcasecmp(key, "REQUIRETLS") == 0) {
			/* RFC 8689 §4.1; whether the session may use it
			 * (TLS) is the session's business */
			if (out->requiretls)
				goto dup;
			if (val[0] != '\0')
				return perr(err, 501, "5.5.4 REQUIRETLS takes "
				    "no value");
			out->requiretls = 1;
		} else if (strcasecmp(key, "AUTH") == 0) {
			/* RFC 4954 §5: never relayed (we do not pass the
			 * submitter identity on); kept for the milters'
			 * {auth_author} */
			if (seen_auth)
				goto dup;
			seen_auth = 1;
			if (strcmp(val, "<>") != 0 && (val[0] == '\0' ||
			    !xtext_valid(val)))
				return perr(err, 501, "5.5.4 Bad AUTH "
				    "parameter");
			if (strcmp(val, "<>") != 0 && dsn_xtext_decode(val,
			    out->auth, sizeof(out->auth)) == -1)
				out->auth[0] = '\0';
		} else
			return perr(err, 555, "5.5.4 Unsupported parameter "
			    "%.40s", key);
		continue;
 dup:
		return perr(err, 501, "5.5.4 Duplicate parameter %s", key);
	}
	if (r == -1)
		return perr(err, 501, "5.5.4 Bad parameter syntax");
	if (nonascii && !out->smtputf8)
		return perr(err, 553, "5.6.7 Non-ASCII sender address "
		    "requires SMTPUTF8");
	return 0;
}

int
smtp_parse_rcpt(const char *arg, int utf8, struct smtp_rcpt *out,
    struct smtp_perr *err)
{
	const char *s = arg;
	char key[32], val[SMTP_XTEXT_MAX + 2];
	int nonascii = 0, r;

	memset(out, 0, sizeof(*out));
	if (strncasecmp(s, "TO:", 3) != 0)
		return perr(err, 501, "5.5.4 Syntax: RCPT TO:<address>");
	s += 3;
	while (*s == ' ')
		s++;
	if (*s != '<')
		return perr(err, 501, "5.1.3 Bad recipient address syntax: "
		    "missing <>");
	if ((r = parse_path(&s, PATH_POSTMASTER_OK, out->addr,
	    sizeof(out->addr), &nonascii)) == -2)
		return perr(err, 501, "5.1.3 Recipient address too long");
	if (r == -1)
		return perr(err, 501, "5.1.3 Bad recipient address syntax");
	if (*s != '\0' && *s != ' ')
		return perr(err, 501, "5.5.4 Syntax: RCPT TO:<address> "
		    "[parameters]");
	while ((r = next_param(&s, key, sizeof(key), val, sizeof(val))) == 1) {
		if (strcasecmp(key, "NOTIFY") == 0) {
			if (out->notify != 0)
				goto dup;
			if (dsn_notify_parse(val, &out->notify) == -1)
				return perr(err, 501, "5.5.4 Bad NOTIFY "
				    "parameter: NEVER, or a list of SUCCESS, "
				    "FAILURE, DELAY (RFC 3461)");
		} else if (strcasecmp(key, "ORCPT") == 0) {
			if (out->orcpt[0] != '\0')
				goto dup;
			if (!dsn_orcpt_valid(val))
				return perr(err, 501, "5.5.4 Bad ORCPT "
				    "parameter: addr-type;xtext, at most 500 "
				    "octets (RFC 3461 section 4.2)");
			dr_strlcpy(out->orcpt, val, sizeof(out->orcpt));
		} else
			return perr(err, 555, "5.5.4 Unsupported parameter "
			    "%.40s", key);
		continue;
 dup:
		return perr(err, 501, "5.5.4 Duplicate parameter %s", key);
	}
	if (r == -1)
		return perr(err, 501, "5.5.4 Bad parameter syntax");
	if (nonascii && !utf8)
		return perr(err, 553, "5.6.7 Non-ASCII recipient address "
		    "requires SMTPUTF8");
	return 0;
}

int
smtp_parse_helo(const char *arg, struct smtp_perr *err)
{
	size_t n, len = strlen(arg);

	if (len == 0)
		return perr(err, 501, "5.5.4 Syntax: EHLO hostname");
	if (len > SMTP_HELO_MAX)
		return perr(err, 501, "5.5.2 Hostname too long");
	if (arg[0] == '[')
		n = scan_addr_literal(arg);
	else {
		/* Real clients send names like "MY_PC" or "localhost":
		 * accept underscores, insist on letters, digits, '-', '.'
		 * so the name is safe in the Received: header. */
		for (n = 0; arg[n] != '\0'; n++)
			if (!is_letdig((unsigned char)arg[n]) &&
			    strchr("-._", arg[n]) == NULL)
				break;
	}
	if (n != len)
		return perr(err, 501, "5.5.2 Invalid hostname in HELO/EHLO");
	return 0;
}

/*
 * AUTH: base64 by OpenSSL.  EVP_DecodeBlock() is lax about what it
 * accepts (white space) and does not account for padding, so the input
 * is checked against RFC 4648 §4 first.
 */
int
smtp_b64_decode(const char *in, unsigned char *out, size_t outsize,
    size_t *outlen)
{
	size_t len = strlen(in), i, pad = 0;
	int r;

	*outlen = 0;
	if (outsize == 0)
		return -1;
	out[0] = '\0';
	if (strcmp(in, "=") == 0)	/* RFC 4954 §4: empty response */
		return 0;
	if (len == 0 || len % 4 != 0)
		return -1;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == '=') {
			if (i < len - 2)
				return -1;
			pad++;
		} else if (pad > 0 || !(isascii(c) && (isalnum(c) ||
		    c == '+' || c == '/')))
			return -1;
	}
	if (len > 4 * (size_t)(1 << 20) || len / 4 * 3 + 1 > outsize)
		return -1;
	if ((r = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len)) < 0)
		return -1;
	if ((size_t)r < pad)
		return -1;
	*outlen = (size_t)r - pad;
	out[*outlen] = '\0';
	return 0;
}

int
smtp_auth_plain(const char *b64, char *user, size_t userlen, char *pass,
    size_t passlen, struct smtp_perr *err)
{
	unsigned char buf[SMTP_AUTH_USER_MAX * 2 + SMTP_AUTH_PASS_MAX + 8];
	const unsigned char *authzid, *authcid, *pw, *end, *nul1, *nul2;
	size_t n, zl, cl, pl;
	int r = -1;

	user[0] = pass[0] = '\0';
	if (smtp_b64_decode(b64, buf, sizeof(buf), &n) == -1) {
		perr(err, 501, "5.5.2 Cannot decode AUTH response");
		goto out;
	}
	end = buf + n;
	authzid = buf;
	if ((nul1 = memchr(buf, '\0', n)) == NULL ||
	    (nul2 = memchr(nul1 + 1, '\0', (size_t)(end - nul1 - 1))) == NULL ||
	    memchr(nul2 + 1, '\0', (size_t)(end - nul2 - 1)) != NULL) {
		perr(err, 535, "5.7.8 Authentication credentials invalid");
		goto out;
	}
	authcid = nul1 + 1;
	pw = nul2 + 1;
	zl = (size_t)(nul1 - authzid);
	cl = (size_t)(nul2 - authcid);
	pl = (size_t)(end - pw);
	if (cl == 0 || pl == 0 || cl >= userlen || pl >= passlen ||
	    cl > SMTP_AUTH_USER_MAX) {
		perr(err, 535, "5.7.8 Authentication credentials invalid");
		goto out;
	}
	if (zl != 0 && (zl != cl || memcmp(authzid, authcid, cl) != 0)) {
		perr(err, 535, "5.7.8 Authorization identity not allowed");
		goto out;
	}
	memcpy(user, authcid, cl);
	user[cl] = '\0';
	memcpy(pass, pw, pl);
	pass[pl] = '\0';
	r = 0;
 out:
	OPENSSL_cleanse(buf, sizeof(buf));
	return r;
}

int
smtp_auth_login(const char *b64, char *out, size_t outlen,
    struct smtp_perr *err)
{
	unsigned char buf[SMTP_AUTH_PASS_MAX + 8];
	size_t n;
	int r = -1;

	out[0] = '\0';
	if (smtp_b64_decode(b64, buf, sizeof(buf), &n) == -1)
		perr(err, 501, "5.5.2 Cannot decode AUTH response");
	else if (n == 0 || n >= outlen || memchr(buf, '\0', n) != NULL)
		perr(err, 535, "5.7.8 Authentication credentials invalid");
	else {
		memcpy(out, buf, n + 1);
		r = 0;
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	return r;
}

/*
 * DATA scanner.  States, per input octet:
 *   BOL    at the beginning of a line
 *   DOT    a "." at the beginning of a line (stuffed, or the end marker)
 *   DOTCR  "." CR at the beginning of a line
 *   MID    inside a line
 *   CR     a CR inside a line (must be followed by LF)
 * A CR is held back until we know whether LF follows, so the output can
 * be one octet longer than the input of one call: out needs len + 1.
 */
enum { DS_BOL = 0, DS_DOT, DS_DOTCR, DS_MID, DS_CR };

void
smtp_data_scan_init(struct smtp_data_scan *ds)
{
	memset(ds, 0, sizeof(*ds));
	ds->state = DS_BOL;
}

size_t
smtp_data_scan(struct smtp_data_scan *ds, const char *in, size_t len,
    char *out, size_t *outlen)
{
	size_t i, o = 0;
	char c;

	for (i = 0; i < len && !ds->done; i++) {
		c = in[i];
		if (++ds->linelen > SMTP_TEXT_LINE_MAX)
			ds->flags |= DATA_LONG_LINE;
 again:
		switch (ds->state) {
		case DS_BOL:
			if (c == '.') {
				ds->state = DS_DOT;
				break;
			}
			ds->state = DS_MID;
			goto again;
		case DS_DOT:
			if (c == '\r') {
				ds->state = DS_DOTCR;
				break;
			}
			/* §4.5.2: drop the leading dot of a stuffed line.
			 * "." <LF> is not an end marker, just a bare LF. */
			ds->state = DS_MID;
			goto again;
		case DS_DOTCR:
			if (c == '\n') {
				if (!ds->prev_bare) {
					ds->done = 1;	/* CRLF "." CRLF */
					break;
				}
				/* <LF> "." CRLF: text of a doomed message */
				out[o++] = '\r';
				out[o++] = '\n';
				ds->prev_bare = 0;
				ds->linelen = 0;
				ds->state = DS_BOL;
				break;
			}
			ds->flags |= DATA_BARE_NL;
			out[o++] = '\r';
			ds->state = DS_MID;
			goto again;
		case DS_MID:
			if (c == '\r') {
				ds->state = DS_CR;
				break;
			}
			out[o++] = c;
			if (c == '\n') {
				ds->flags |= DATA_BARE_NL;
				ds->prev_bare = 1;
				ds->linelen = 0;
				ds->state = DS_BOL;
			}
			break;
		case DS_CR:
			if (c == '\n') {
				out[o++] = '\r';
				out[o++] = '\n';
				ds->prev_bare = 0;
				ds->linelen = 0;
				ds->state = DS_BOL;
				break;
			}
			ds->flags |= DATA_BARE_NL;
			out[o++] = '\r';
			ds->state = DS_MID;
			goto again;
		}
	}
	*outlen = o;
	return i;
}
