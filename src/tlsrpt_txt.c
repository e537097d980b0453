/*
 * tlsrpt_txt.c - SMTP TLS Reporting (RFC 8460 §3): the "_smtp._tls" TXT
 * record ("v=TLSRPTv1" first, fields separated by *WSP ";" *WSP, rua =
 * URIs separated by *WSP "," *WSP, unknown well-formed fields ignored;
 * of several records only those starting with "v=TLSRPTv1" count and
 * exactly one must be left), and the rua URIs it names (mailto: and
 * https:).  Pure: no I/O; fuzz_tlsrpt_txt tests it.
 *
 * Moved out of tlsrpt_report.c unchanged (issue #15).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dns.h"
#include "tlsrpt_txt.h"
#include "util.h"

/* ---- TXT record (§3) ----------------------------------------------------- */

void
tlsrpt_rua_free(struct tlsrpt_rua *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < r->n; i++)
		free(r->uri[i]);
	r->n = 0;
}

static int
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* tlsrpt-ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".") */
static int
ext_name_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > 32 || !isalnum((unsigned char)s[0]))
		return 0;
	for (i = 1; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' &&
		    s[i] != '-' && s[i] != '.')
			return 0;
	return 1;
}

/* tlsrpt-ext-value = 1*(%x21-3A / %x3C / %x3E-7E) */
static int
ext_value_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x21 || c > 0x7e || c == ';' || c == '=')
			return 0;
	}
	return 1;
}

/* A URI as RFC 3986 allows its characters (no space, no controls). */
static int
uri_chars_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n >= TLSRPT_URI_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c >= 0x7f || c == '"' || c == '<' ||
		    c == '>' || c == '\\' || c == '^' || c == '`' ||
		    c == '{' || c == '|' || c == '}' || c == ',' || c == ';')
			return 0;
	}
	return 1;
}

static int
parse_rua(const char *v, size_t n, struct tlsrpt_rua *out, char *err,
    size_t errlen)
{
	size_t i = 0, start, end;

	for (;;) {
		start = i;
		while (i < n && v[i] != ',' && !is_wsp(v[i]))
			i++;
		end = i;
		while (i < n && is_wsp(v[i]))
			i++;
		if (!uri_chars_ok(v + start, end - start)) {
			snprintf(err, errlen, "rua: malformed URI");
			return -1;
		}
		if (memchr(v + start, ':', end - start) == NULL) {
			snprintf(err, errlen, "rua: URI without a scheme");
			return -1;
		}
		if ((end - start > 7 && strncasecmp(v + start, "mailto:", 7) ==
		    0) || (end - start > 8 && strncasecmp(v + start,
		    "https://", 8) == 0)) {
			if (out->n < TLSRPT_MAX_RUA)
				out->uri[out->n++] = xstrndup(v + start,
				    end - start);
		}
		/* other schemes: ignored */
		if (i == n)
			break;
		if (v[i] != ',') {
			snprintf(err, errlen, "rua: URIs must be separated by "
			    "\",\"");
			return -1;
		}
		i++;
		while (i < n && is_wsp(v[i]))
			i++;
	}
	return 0;
}

int
tlsrpt_txt_parse(const char *txt, size_t len, struct tlsrpt_rua *out,
    char *err, size_t errlen)
{
	static const char ver[] = "v=TLSRPTv1";
	size_t i, fstart, fend, eq;
	int have_rua = 0;

	memset(out, 0, sizeof(*out));
	if (len > TLSRPT_TXT_MAX) {
		snprintf(err, errlen, "record too long");
		return -1;
	}
	if (memchr(txt, '\0', len) != NULL) {
		snprintf(err, errlen, "record contains a NUL byte");
		return -1;
	}
	if (len < sizeof(ver) - 1 || memcmp(txt, ver, sizeof(ver) - 1) != 0) {
		snprintf(err, errlen, "does not start with v=TLSRPTv1");
		return -1;
	}
	i = sizeof(ver) - 1;
	for (;;) {
		/* field-delim = *WSP ";" *WSP; a trailing one is allowed */
		while (i < len && is_wsp(txt[i]))
			i++;
		if (i == len)
			break;
		if (txt[i] != ';') {
			snprintf(err, errlen, "expected \";\" at offset %zu", i);
			goto fail;
		}
		i++;
		while (i < len && is_wsp(txt[i]))
			i++;
		if (i == len)
			break;
		fstart = i;
		while (i < len && txt[i] != ';')
			i++;
		fend = i;
		while (fend > fstart && is_wsp(txt[fend - 1]))
			fend--;
		for (eq = fstart; eq < fend && txt[eq] != '='; eq++)
			;
		if (eq == fend) {
			snprintf(err, errlen, "field without \"=\"");
			goto fail;
		}
		if (eq - fstart == 3 && memcmp(txt + fstart, "rua", 3) == 0) {
			if (have_rua) {
				snprintf(err, errlen, "rua given twice");
				goto fail;
			}
			have_rua = 1;
			if (parse_rua(txt + eq + 1, fend - eq - 1, out, err,
			    errlen) == -1)
				goto fail;
		} else if (!ext_name_ok(txt + fstart, eq - fstart) ||
		    !ext_value_ok(txt + eq + 1, fend - eq - 1)) {
			snprintf(err, errlen, "malformed field");
			goto fail;
		}
		/* a well-formed unknown field: ignored */
	}
	if (!have_rua) {
		snprintf(err, errlen, "no rua field");
		goto fail;
	}
	if (out->n == 0) {
		snprintf(err, errlen, "no mailto: or https: URI in rua");
		goto fail;
	}
	return 0;
fail:
	tlsrpt_rua_free(out);
	return -1;
}

int
tlsrpt_txt_select(const struct dns_txt *txt, size_t n,
    struct tlsrpt_rua *out, char *err, size_t errlen)
{
	static const char ver[] = "v=TLSRPTv1";
	const struct dns_txt *pick = NULL;
	size_t i, cand = 0;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < n; i++) {
		const char *p = txt[i].data;
		size_t l = txt[i].len, k = sizeof(ver) - 1;

		if (p == NULL || l < k || memcmp(p, ver, k) != 0)
			continue;
		/* "v=TLSRPTv1" then *WSP ";" or the end */
		while (k < l && is_wsp(p[k]))
			k++;
		if (k < l && p[k] != ';')
			continue;
		cand++;
		pick = &txt[i];
	}
	if (cand == 0) {
		snprintf(err, errlen, "no v=TLSRPTv1 record");
		return -1;
	}
	if (cand > 1) {
		snprintf(err, errlen, "%zu v=TLSRPTv1 records (exactly one "
		    "is allowed)", cand);
		return -1;
	}
	return tlsrpt_txt_parse(pick->data, pick->len, out, err, errlen);
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int
tlsrpt_mailto_addr(const char *uri, char *out, size_t outlen)
{
	const char *p;
	size_t o = 0;
	int at = 0, h, l;

	if (strncasecmp(uri, "mailto:", 7) != 0 || outlen == 0)
		return -1;
	for (p = uri + 7; *p != '\0' && *p != '?'; p++) {
		char c = *p;

		if (c == '%') {
			if ((h = hexval(p[1])) == -1 || (l = hexval(p[2])) ==
			    -1)
				return -1;
			c = (char)(h * 16 + l);
			p += 2;
		}
		if ((unsigned char)c <= 0x20 || (unsigned char)c >= 0x7f ||
		    strchr("<>()[]\\,;:\"", c) != NULL)
			return -1;
		if (c == '@')
			at++;
		if (o + 1 >= outlen)
			return -1;
		out[o++] = c;
	}
	out[o] = '\0';
	if (at != 1 || out[0] == '@' || out[o - 1] == '@' || o > 254)
		return -1;
	return 0;
}

/*
 * "https://host[:port][/path][?query][#fragment]" -> host, port and the
 * request target ("/path?query", "/" when empty; the fragment is not
 * sent).  No userinfo, no address literal (the certificate must name a
 * host).  0 ok, -1 not usable.
 */
int
tlsrpt_https_uri(const char *uri, char *host, size_t hostlen, int *port,
    char *target, size_t targetlen)
{
	const char *h = uri + 8, *e, *c, *frag;
	size_t n, i;
	long v;
	char *end;

	if (strncasecmp(uri, "https://", 8) != 0)
		return -1;
	e = h + strcspn(h, "/?#");
	if (memchr(h, '@', (size_t)(e - h)) != NULL)
		return -1;		/* no userinfo */
	if (*h == '[')
		return -1;		/* an address literal has no cert name */
	c = memchr(h, ':', (size_t)(e - h));
	n = (size_t)((c ? c : e) - h);
	if (n == 0 || n >= hostlen)
		return -1;
	for (i = 0; i < n; i++)		/* a DNS name, nothing else */
		if (!isalnum((unsigned char)h[i]) && h[i] != '-' &&
		    h[i] != '.' && h[i] != '_')
			return -1;
	memcpy(host, h, n);
	host[n] = '\0';
	*port = 443;
	if (c != NULL) {
		errno = 0;
		v = strtol(c + 1, &end, 10);
		if (end != e || errno != 0 || v < 1 || v > 65535)
			return -1;
		*port = (int)v;
	}
	frag = e + strcspn(e, "#");
	n = (size_t)(frag - e);
	if (n + 2 > targetlen)
		return -1;
	if (*e != '/')
		*target++ = '/';
	memcpy(target, e, n);
	target[n] = '\0';
	return 0;
}

