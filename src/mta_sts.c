/*
 * mta_sts.c - MTA-STS parsing (RFC 8461), pure functions: no I/O, no
 * clock, no global state.  Everything here reads untrusted bytes (DNS
 * TXT data, HTTPS bodies) and is covered by fuzz targets
 * (tests/fuzz/fuzz_mta_sts_txt.c, fuzz_mta_sts_policy.c) and by the
 * shared vectors (tests/unit/test_mta_sts.c).
 *
 * §3.1 TXT record, strictly per its ABNF:
 *	sts-text-record  = sts-version 1*(sts-field-delim sts-field)
 *			   [sts-field-delim]
 *	sts-field-delim  = *WSP ";" *WSP
 *	sts-version      = %s"v=STSv1"
 *	sts-id           = %s"id=" 1*32(ALPHA / DIGIT)
 *	sts-extension    = sts-ext-name "=" sts-ext-value
 *	sts-ext-name     = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
 *	sts-ext-value    = 1*(%x21-3A / %x3C / %x3E-7E)
 *   The first "id" field is the id and must be 1*32 alphanumerics; a
 *   later "id" field only has to be a valid extension.  In an RRset,
 *   records that do not start with "v=STSv1" *WSP ";" are discarded; if
 *   not exactly one remains, or it is malformed, there is no policy.
 *
 * §3.2 policy body: "key: value" lines ended by LF or CRLF.  The first
 * line must be "version: STSv1".  Known fields are checked strictly:
 *	mode     "enforce" / "testing" / "none" (case-sensitive)
 *	max_age  1*10DIGIT, at most 31557600
 *	mx       ["*."] Domain, A-labels (RFC 5321 sub-domain syntax), no
 *		 trailing dot; collected, lower-cased, de-duplicated
 * The first version, mode and max_age line counts (later ones are
 * ignored, as mailauth and mimecast do); an invalid mx line makes the
 * whole policy invalid.  Lines that are not one of the four known fields
 * - unknown extensions, malformed extension lines, blank lines - are
 * ignored (§3.2 "unknown fields MUST be ignored"; rejecting the policy
 * would only weaken it to no policy at all).  enforce and testing need
 * at least one mx.  Bodies over 64 KiB are refused (§3.3).
 *
 * §4.1 mx matching: policy_sts_mx_match() (policy.c) on A-labels; here
 * the MX host name is first normalised (trailing dot, case, U-labels to
 * A-labels with libidn2) and both sides are checked for valid syntax.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>


#include "idn.h"
#include "mta_sts.h"
#include "dns.h"
#include "util.h"

static int
is_wsp(int c)
{
	return c == ' ' || c == '\t';
}

static int
is_alnum(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- §3.1 TXT record -------------------------------------------------- */

#define STS_VERSION	"v=STSv1"
#define STS_VERSION_LEN	7

static int
ext_value_char(int c)
{
	return (c >= 0x21 && c <= 0x3a) || c == 0x3c || (c >= 0x3e && c <= 0x7e);
}

int
mta_sts_txt_parse(const char *rec, size_t len, char id[MTA_STS_ID_MAX + 1],
    char *err, size_t errlen)
{
	size_t pos, k, name, nlen, val, vlen, i, nfields = 0;
	int have_id = 0;

	id[0] = '\0';
	if (len < STS_VERSION_LEN || memcmp(rec, STS_VERSION,
	    STS_VERSION_LEN) != 0)
		return 0;
	for (k = STS_VERSION_LEN; k < len && is_wsp(rec[k]); k++)
		;
	if (k >= len || rec[k] != ';')
		return 0;	/* "v=STSv10", "v=STSv1 id=..": not ours */

	pos = STS_VERSION_LEN;
	for (;;) {
		/* a delimiter, or the end right after a field */
		if (pos == len && nfields > 0)
			break;
		for (k = pos; k < len && is_wsp(rec[k]); k++)
			;
		if (k >= len || rec[k] != ';') {
			seterr(err, errlen, "unexpected %s after field %zu",
			    k >= len ? "white space at the end" :
			    "character", nfields);
			return -1;
		}
		for (k++; k < len && is_wsp(rec[k]); k++)
			;
		if (k == len) {
			if (nfields > 0)
				break;	/* trailing delimiter */
			seterr(err, errlen, "no fields after v=STSv1");
			return -1;
		}
		/* sts-field: name "=" value */
		name = k;
		if (!is_alnum((unsigned char)rec[k])) {
			seterr(err, errlen, "bad field name at offset %zu", k);
			return -1;
		}
		for (k++; k < len && (is_alnum((unsigned char)rec[k]) ||
		    rec[k] == '_' || rec[k] == '-' || rec[k] == '.'); k++)
			;
		nlen = k - name;
		if (nlen > 32) {
			seterr(err, errlen, "field name longer than 32");
			return -1;
		}
		if (k >= len || rec[k] != '=') {
			seterr(err, errlen, "field %zu has no '='",
			    nfields + 1);
			return -1;
		}
		val = ++k;
		while (k < len && ext_value_char((unsigned char)rec[k]))
			k++;
		vlen = k - val;
		if (vlen == 0) {
			seterr(err, errlen, "field %zu has an empty or bad "
			    "value", nfields + 1);
			return -1;
		}
		if (nlen == 2 && memcmp(rec + name, "id", 2) == 0 &&
		    !have_id) {
			if (vlen > MTA_STS_ID_MAX) {
				seterr(err, errlen, "id longer than %d",
				    MTA_STS_ID_MAX);
				return -1;
			}
			for (i = 0; i < vlen; i++)
				if (!is_alnum((unsigned char)rec[val + i])) {
					seterr(err, errlen, "id must be 1-32 "
					    "letters and digits");
					return -1;
				}
			memcpy(id, rec + val, vlen);
			id[vlen] = '\0';
			have_id = 1;
		}
		nfields++;
		pos = k;
	}
	if (!have_id) {
		seterr(err, errlen, "no id field");
		return -1;
	}
	return 1;
}

int
mta_sts_txt_select(const struct dns_txt *txt, size_t n,
    char id[MTA_STS_ID_MAX + 1], char *err, size_t errlen)
{
	char tmp[MTA_STS_ID_MAX + 1];
	size_t i, count = 0, which = 0;

	id[0] = '\0';
	for (i = 0; i < n; i++)
		if (mta_sts_txt_parse(txt[i].data, txt[i].len, tmp, NULL,
		    0) != 0) {
			count++;
			which = i;
		}
	if (count == 0) {
		seterr(err, errlen, "no v=STSv1 record");
		return 0;
	}
	if (count > 1) {
		seterr(err, errlen, "%zu v=STSv1 records (exactly one "
		    "allowed)", count);
		return -1;
	}
	return mta_sts_txt_parse(txt[which].data, txt[which].len, id, err,
	    errlen) == 1 ? 1 : -1;
}

/* ---- names ------------------------------------------------------------ */

static int
mx_pattern_valid_len(const char *s, size_t len)
{
	if (len >= 2 && s[0] == '*' && s[1] == '.')
		return idn_ldh_name(s + 2, len - 2);
	return idn_ldh_name(s, len);
}

int
mta_sts_mx_pattern_valid(const char *s)
{
	return s != NULL && mx_pattern_valid_len(s, strlen(s));
}

int
mta_sts_domain_ascii(const char *in, char *out, size_t outlen)
{
	char err[256];

	/* IDNA2008 with UTS #46 mapping (case folding, NFC): idn.c */
	if (in == NULL || outlen == 0 ||
	    idn_to_alabels(in, out, outlen, err, sizeof(err)) == -1 ||
	    !idn_ldh_name(out, strlen(out)))
		return -1;
	return 0;
}

int
mta_sts_mx_match(const char *const *patterns, size_t n, const char *host)
{
	char a[DNS_NAME_BUF];
	size_t i;

	if (host == NULL || mta_sts_domain_ascii(host, a, sizeof(a)) == -1)
		return 0;
	for (i = 0; i < n; i++)
		if (mta_sts_mx_pattern_valid(patterns[i]) &&
		    policy_sts_mx_match(patterns[i], a))
			return 1;
	return 0;
}

/* ---- §3.2 policy body ------------------------------------------------- */

const char *
mta_sts_mode_name(enum mta_sts_mode m)
{
	switch (m) {
	case MTA_STS_MODE_NONE:
		return "none";
	case MTA_STS_MODE_TESTING:
		return "testing";
	case MTA_STS_MODE_ENFORCE:
		return "enforce";
	}
	return "?";
}

void
mta_sts_policy_clear(struct mta_sts_policy *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->nmx; i++)
		free(p->mx[i]);
	free(p->mx);
	for (i = 0; i < p->nlines; i++)
		free(p->lines[i]);
	free(p->lines);
	memset(p, 0, sizeof(*p));
}

/* value equals the literal word */
static int
val_is(const char *v, size_t vlen, const char *word)
{
	return vlen == strlen(word) && memcmp(v, word, vlen) == 0;
}

/*
 * "name:" *WSP value *WSP for one of the known names.  Returns the name
 * index (0 version, 1 mode, 2 max_age, 3 mx) with the value span, or -1
 * for any other line.
 */
static int
known_field(const char *line, size_t len, const char **v, size_t *vlen)
{
	static const char *const names[] = { "version", "mode", "max_age",
	    "mx" };
	size_t i, nl, k, e;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		nl = strlen(names[i]);
		if (len > nl && memcmp(line, names[i], nl) == 0 &&
		    line[nl] == ':')
			break;
	}
	if (i == sizeof(names) / sizeof(names[0]))
		return -1;
	for (k = nl + 1; k < len && is_wsp(line[k]); k++)
		;
	for (e = len; e > k && is_wsp(line[e - 1]); e--)
		;
	*v = line + k;
	*vlen = e - k;
	return (int)i;
}

static void
add_line(struct mta_sts_policy *p, const char *line, size_t len)
{
	p->lines = xrealloc(p->lines, (p->nlines + 1) * sizeof(*p->lines));
	p->lines[p->nlines++] = xstrndup(line, strnlen(line, len));
}

static int
add_mx(struct mta_sts_policy *p, const char *v, size_t vlen)
{
	char *mx;
	size_t i;

	for (i = 0; i < p->nmx; i++)
		if (strlen(p->mx[i]) == vlen &&
		    strncasecmp(p->mx[i], v, vlen) == 0)
			return 0;
	if (p->nmx >= MTA_STS_MAX_MX)
		return -1;
	mx = str_lower(xstrndup(v, vlen));
	p->mx = xrealloc(p->mx, (p->nmx + 1) * sizeof(*p->mx));
	p->mx[p->nmx++] = mx;
	return 0;
}

/* Printable excerpt of a value for an error message. */
static const char *
excerpt(const char *v, size_t vlen, char *buf, size_t blen)
{
	size_t i, o = 0;

	for (i = 0; i < vlen && o + 5 < blen; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			buf[o++] = (char)c;
		else
			o += (size_t)snprintf(buf + o, blen - o, "\\x%02x", c);
	}
	if (i < vlen && o + 4 < blen) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o < blen ? o : blen - 1] = '\0';
	return buf;
}

int
mta_sts_policy_parse(const char *body, size_t len, struct mta_sts_policy *p,
    char *err, size_t errlen)
{
	const char *line, *nl, *v;
	size_t pos = 0, llen, vlen, lineno = 0, i;
	int f, have_mode = 0, have_age = 0;
	char ex[80];

	memset(p, 0, sizeof(*p));
	if (len > MTA_STS_MAX_BODY) {
		seterr(err, errlen, "policy body of %zu bytes is over the "
		    "%d byte limit", len, MTA_STS_MAX_BODY);
		return -1;
	}
	while (pos < len) {
		line = body + pos;
		nl = memchr(line, '\n', len - pos);
		llen = nl ? (size_t)(nl - line) : len - pos;
		pos += llen + (nl ? 1 : 0);
		if (llen > 0 && line[llen - 1] == '\r')
			llen--;
		lineno++;
		add_line(p, line, llen);
		f = known_field(line, llen, &v, &vlen);
		if (lineno == 1 && (f != 0 || !val_is(v, vlen, "STSv1"))) {
			seterr(err, errlen, "line 1: not \"version: STSv1\": "
			    "\"%s\"", excerpt(line, llen, ex, sizeof(ex)));
			goto bad;
		}
		switch (f) {
		case 0:		/* version: only the first line counts */
			break;
		case 1:		/* mode */
			if (have_mode)
				break;
			if (val_is(v, vlen, "enforce"))
				p->mode = MTA_STS_MODE_ENFORCE;
			else if (val_is(v, vlen, "testing"))
				p->mode = MTA_STS_MODE_TESTING;
			else if (val_is(v, vlen, "none"))
				p->mode = MTA_STS_MODE_NONE;
			else {
				seterr(err, errlen, "line %zu: bad mode \"%s\"",
				    lineno, excerpt(v, vlen, ex, sizeof(ex)));
				goto bad;
			}
			have_mode = 1;
			break;
		case 2:		/* max_age */
			if (have_age)
				break;
			if (vlen == 0 || vlen > 10)
				goto bad_age;
			p->max_age = 0;
			for (i = 0; i < vlen; i++) {
				if (v[i] < '0' || v[i] > '9')
					goto bad_age;
				p->max_age = p->max_age * 10 + (v[i] - '0');
			}
			if (p->max_age > MTA_STS_MAX_AGE) {
				seterr(err, errlen, "line %zu: max_age %lld is "
				    "over %d", lineno, p->max_age,
				    MTA_STS_MAX_AGE);
				goto bad;
			}
			have_age = 1;
			break;
		case 3:		/* mx */
			if (!mx_pattern_valid_len(v, vlen)) {
				seterr(err, errlen, "line %zu: bad mx pattern "
				    "\"%s\"", lineno, excerpt(v, vlen, ex,
				    sizeof(ex)));
				goto bad;
			}
			if (add_mx(p, v, vlen) == -1) {
				seterr(err, errlen, "more than %d mx patterns",
				    MTA_STS_MAX_MX);
				goto bad;
			}
			break;
		default:	/* extension, unknown or malformed: ignored */
			break;
		}
	}
	if (lineno == 0) {
		seterr(err, errlen, "empty policy");
		goto bad;
	}
	if (!have_mode) {
		seterr(err, errlen, "no mode field");
		goto bad;
	}
	if (!have_age) {
		seterr(err, errlen, "no max_age field");
		goto bad;
	}
	if (p->mode != MTA_STS_MODE_NONE && p->nmx == 0) {
		seterr(err, errlen, "mode %s without mx", mta_sts_mode_name(
		    p->mode));
		goto bad;
	}
	return 0;
bad_age:
	seterr(err, errlen, "line %zu: max_age must be 1 to 10 digits: \"%s\"",
	    lineno, excerpt(v, vlen, ex, sizeof(ex)));
bad:
	mta_sts_policy_clear(p);
	return -1;
}
