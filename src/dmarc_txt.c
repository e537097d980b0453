/*
 * dmarc_txt.c - parse the DMARC policy record (RFC 7489 §6.3 tag list,
 * §6.4 formal definition) and the domain of a report URI (§6.2, §7.1).
 * Pure: no I/O.  `danerelay check` shows p=, checks that external rua
 * and ruf destinations authorise the domain (§7.1) and the alignment
 * modes (adkim, aspf, §3.1).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dmarc_txt.h"
#include "dns.h"
#include "util.h"

void
dmarc_rec_clear(struct dmarc_rec *r)
{
	size_t i;

	for (i = 0; i < r->nrua; i++)
		free(r->rua[i]);
	for (i = 0; i < r->nruf; i++)
		free(r->ruf[i]);
	memset(r, 0, sizeof(*r));
}

/* Trim spaces and tabs (WSP) of [*s, *e). */
static void
trim(const char **s, const char **e)
{
	while (*s < *e && (**s == ' ' || **s == '\t'))
		(*s)++;
	while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
		(*e)--;
}

static int
is(const char *s, size_t n, const char *word)
{
	return strlen(word) == n && strncasecmp(s, word, n) == 0;
}

/* The comma-separated URIs of v into list (at most DMARC_MAX_URI). */
static int
uris(const char *v, size_t n, char **list, size_t *nlist, char *err,
    size_t errlen)
{
	const char *s = v, *e, *end = v + n, *c;

	while (s < end) {
		c = memchr(s, ',', (size_t)(end - s));
		e = c ? c : end;
		trim(&s, &e);
		if (s == e) {
			dr_strlcpy(err, "empty URI in a report list", errlen);
			return -1;
		}
		if (*nlist < DMARC_MAX_URI) {
			list[*nlist] = xmalloc((size_t)(e - s) + 1);
			memcpy(list[*nlist], s, (size_t)(e - s));
			list[*nlist][e - s] = '\0';
			(*nlist)++;
		}
		s = c ? c + 1 : end;
	}
	return 0;
}

static int
policy(const char *v, size_t n, char *out, size_t outlen)
{
	if (!is(v, n, "none") && !is(v, n, "quarantine") && !is(v, n, "reject"))
		return -1;
	memcpy(out, v, n);
	out[n] = '\0';
	str_lower(out);
	(void)outlen;
	return 0;
}

int
dmarc_txt_parse(const char *txt, size_t len, struct dmarc_rec *r, char *err,
    size_t errlen)
{
	const char *s = txt, *end = txt + len, *semi, *e, *eq, *ts, *te;
	int first = 1, have_p = 0;
	char *x;
	long v;

	memset(r, 0, sizeof(*r));
	r->adkim = r->aspf = 'r';
	r->pct = 100;
	if (len > DMARC_TXT_MAX) {
		dr_strlcpy(err, "record too long", errlen);
		return -1;
	}
	if (memchr(txt, '\0', len) != NULL) {
		dr_strlcpy(err, "NUL in the record", errlen);
		return -1;
	}
	while (s < end) {
		semi = memchr(s, ';', (size_t)(end - s));
		e = semi ? semi : end;
		ts = s;
		te = e;
		trim(&ts, &te);
		s = semi ? semi + 1 : end;
		if (ts == te) {
			if (first)
				break;
			continue;	/* "p=none;" ends with a separator */
		}
		if ((eq = memchr(ts, '=', (size_t)(te - ts))) == NULL) {
			snprintf(err, errlen, "\"%.*s\" is no tag=value",
			    (int)(te - ts > 40 ? 40 : te - ts), ts);
			goto bad;
		}
		{
			const char *ns = ts, *ne = eq, *vs = eq + 1, *ve = te;

			trim(&ns, &ne);
			trim(&vs, &ve);
			if (first) {
				if (!is(ns, (size_t)(ne - ns), "v") ||
				    (size_t)(ve - vs) != 6 ||
				    strncmp(vs, "DMARC1", 6) != 0) {
					dr_strlcpy(err, "does not start with "
					    "v=DMARC1", errlen);
					goto bad;
				}
				first = 0;
				continue;
			}
			if (is(ns, (size_t)(ne - ns), "p")) {
				if (policy(vs, (size_t)(ve - vs), r->p,
				    sizeof(r->p)) == -1) {
					dr_strlcpy(err, "p= is not none, "
					    "quarantine or reject", errlen);
					goto bad;
				}
				have_p = 1;
			} else if (is(ns, (size_t)(ne - ns), "sp")) {
				if (policy(vs, (size_t)(ve - vs), r->sp,
				    sizeof(r->sp)) == -1) {
					dr_strlcpy(err, "sp= is not none, "
					    "quarantine or reject", errlen);
					goto bad;
				}
			} else if (is(ns, (size_t)(ne - ns), "adkim") ||
			    is(ns, (size_t)(ne - ns), "aspf")) {
				if (ve - vs != 1 || (tolower((unsigned char)
				    *vs) != 'r' && tolower((unsigned char)*vs)
				    != 's')) {
					snprintf(err, errlen, "%.*s= is not r "
					    "or s", (int)(ne - ns), ns);
					goto bad;
				}
				if (ne - ns == 5)
					r->adkim = (char)tolower(
					    (unsigned char)*vs);
				else
					r->aspf = (char)tolower(
					    (unsigned char)*vs);
			} else if (is(ns, (size_t)(ne - ns), "pct")) {
				char num[8];

				if (ve - vs < 1 || ve - vs > 3) {
					dr_strlcpy(err, "pct= is not 0..100",
					    errlen);
					goto bad;
				}
				memcpy(num, vs, (size_t)(ve - vs));
				num[ve - vs] = '\0';
				v = strtol(num, &x, 10);
				if (*x != '\0' || !isdigit((unsigned char)num[0])
				    || v > 100) {
					dr_strlcpy(err, "pct= is not 0..100",
					    errlen);
					goto bad;
				}
				r->pct = (int)v;
			} else if (is(ns, (size_t)(ne - ns), "rua")) {
				if (uris(vs, (size_t)(ve - vs), r->rua,
				    &r->nrua, err, errlen) == -1)
					goto bad;
			} else if (is(ns, (size_t)(ne - ns), "ruf")) {
				if (uris(vs, (size_t)(ve - vs), r->ruf,
				    &r->nruf, err, errlen) == -1)
					goto bad;
			}
		}
	}
	if (first) {
		dr_strlcpy(err, "does not start with v=DMARC1", errlen);
		goto bad;
	}
	if (!have_p) {
		if (r->nrua == 0) {
			dr_strlcpy(err, "no p= tag", errlen);
			goto bad;
		}
		dr_strlcpy(r->p, "none", sizeof(r->p));
	}
	return 0;
bad:
	dmarc_rec_clear(r);
	return -1;
}

static int
dmarc_start(const char *s, size_t len)
{
	size_t i = 0;

	if (len < 2 || tolower((unsigned char)s[0]) != 'v')
		return 0;
	for (i = 1; i < len && (s[i] == ' ' || s[i] == '\t'); i++)
		;
	if (i == len || s[i] != '=')
		return 0;
	for (i++; i < len && (s[i] == ' ' || s[i] == '\t'); i++)
		;
	return len - i >= 6 && strncmp(s + i, "DMARC1", 6) == 0 &&
	    (len - i == 6 || s[i + 6] == ';' || s[i + 6] == ' ' ||
	    s[i + 6] == '\t');
}

int
dmarc_txt_select(const struct dns_txt *txt, size_t n, struct dmarc_rec *r,
    char *err, size_t errlen)
{
	size_t i, found = 0, which = 0;

	memset(r, 0, sizeof(*r));
	for (i = 0; i < n; i++)
		if (dmarc_start(txt[i].data, txt[i].len)) {
			found++;
			which = i;
		}
	if (found == 0)
		return 0;
	if (found > 1) {
		snprintf(err, errlen, "%zu DMARC records (one is allowed)",
		    found);
		return -1;
	}
	return dmarc_txt_parse(txt[which].data, txt[which].len, r, err,
	    errlen) == 0 ? 1 : -1;
}

int
dmarc_uri_domain(const char *uri, char *out, size_t outlen)
{
	const char *at, *e;
	size_t n, i;

	if (strncasecmp(uri, "mailto:", 7) != 0)
		return -1;
	if ((at = strrchr(uri + 7, '@')) == NULL)
		return -1;
	at++;
	for (e = at; *e != '\0' && *e != '!' && *e != '?'; e++)
		;
	n = (size_t)(e - at);
	if (n == 0 || n >= outlen)
		return -1;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)at[i]) && at[i] != '-' &&
		    at[i] != '.' && at[i] != '_')
			return -1;
	memcpy(out, at, n);
	out[n] = '\0';
	str_lower(out);
	if (out[n - 1] == '.')
		out[--n] = '\0';
	/* no empty label */
	if (n == 0 || out[0] == '.' || out[n - 1] == '.' ||
	    strstr(out, "..") != NULL)
		return -1;
	return 0;
}
