/*
 * spf_terms.c - split an SPF record into its terms (RFC 7208 §4.6.1
 * grammar: terms separated by spaces, a mechanism with an optional
 * qualifier and ":" domain-spec or "/" cidr-length, a modifier
 * name=value).  Pure: no I/O.  `danerelay check` uses it to count the
 * DNS-querying terms (§4.6.4: at most 10) and to follow include: and
 * redirect= (check_spf.c); evaluation is libspf2's.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "spf_terms.h"
#include "util.h"

static const struct {
	const char	*name;
	enum spf_kind	 kind;
	int		 value;		/* 1 needs ":value", 0 optional,
					 * -1 none allowed */
} mechs[] = {
	{ "all",	SPF_TERM_ALL,		-1 },
	{ "include",	SPF_TERM_INCLUDE,	1 },
	{ "a",		SPF_TERM_A,		0 },
	{ "mx",		SPF_TERM_MX,		0 },
	{ "ptr",	SPF_TERM_PTR,		0 },
	{ "ip4",	SPF_TERM_IP4,		1 },
	{ "ip6",	SPF_TERM_IP6,		1 },
	{ "exists",	SPF_TERM_EXISTS,	1 },
};

const char *
spf_kind_name(enum spf_kind k)
{
	size_t i;

	for (i = 0; i < sizeof(mechs) / sizeof(mechs[0]); i++)
		if (mechs[i].kind == k)
			return mechs[i].name;
	switch (k) {
	case SPF_TERM_REDIRECT:	return "redirect";
	case SPF_TERM_EXP:	return "exp";
	default:		return "modifier";
	}
}

int
spf_term_dns(enum spf_kind k)
{
	return k == SPF_TERM_INCLUDE || k == SPF_TERM_A || k == SPF_TERM_MX ||
	    k == SPF_TERM_PTR || k == SPF_TERM_EXISTS ||
	    k == SPF_TERM_REDIRECT;
}

int
spf_is_record(const char *rec, size_t len)
{
	return len >= 6 && strncasecmp(rec, "v=spf1", 6) == 0 &&
	    (len == 6 || rec[6] == ' ');
}

static int
set_target(struct spf_term *t, const char *v, size_t n, char *err,
    size_t errlen)
{
	if (n == 0) {
		snprintf(err, errlen, "%s: empty value", spf_kind_name(t->kind));
		return -1;
	}
	if (n >= SPF_TARGET_MAX) {
		snprintf(err, errlen, "%s: value over 255 octets",
		    spf_kind_name(t->kind));
		return -1;
	}
	memcpy(t->target, v, n);
	t->target[n] = '\0';
	t->macro = memchr(v, '%', n) != NULL;
	return 0;
}

/* One term of n bytes at s. */
static int
term_parse(const char *s, size_t n, struct spf_term *t, char *err,
    size_t errlen)
{
	const char *eq, *colon, *slash, *end = s + n;
	size_t nl, i;

	memset(t, 0, sizeof(*t));
	t->qual = '+';
	for (nl = 0; nl < n && (isalnum((unsigned char)s[nl]) ||
	    s[nl] == '-' || s[nl] == '_' || s[nl] == '.'); nl++)
		;
	eq = nl < n && s[nl] == '=' ? s + nl : NULL;
	if (eq != NULL && nl > 0 && isalpha((unsigned char)s[0])) {
		/* modifier: name "=" macro-string (§6) */
		if (nl == 8 && strncasecmp(s, "redirect", 8) == 0)
			t->kind = SPF_TERM_REDIRECT;
		else if (nl == 3 && strncasecmp(s, "exp", 3) == 0)
			t->kind = SPF_TERM_EXP;
		else {
			t->kind = SPF_TERM_UNKNOWN_MOD;
			return 0;
		}
		return set_target(t, eq + 1, (size_t)(end - eq - 1), err,
		    errlen);
	}
	if (n > 0 && strchr("+-~?", s[0]) != NULL) {
		t->qual = s[0];
		s++;
		n--;
	}
	if (n == 0 || n > 4096) {
		dr_strlcpy(err, "a qualifier without a mechanism", errlen);
		return -1;
	}
	colon = memchr(s, ':', n);
	slash = memchr(s, '/', n);
	for (nl = 0; nl < n && s + nl != colon && s + nl != slash; nl++)
		;
	for (i = 0; i < sizeof(mechs) / sizeof(mechs[0]); i++)
		if (strlen(mechs[i].name) == nl &&
		    strncasecmp(s, mechs[i].name, nl) == 0)
			break;
	if (i == sizeof(mechs) / sizeof(mechs[0])) {
		snprintf(err, errlen, "unknown mechanism \"%.*s\"",
		    (int)(nl > 40 ? 40 : nl), s);
		return -1;
	}
	t->kind = mechs[i].kind;
	if (nl == n) {
		if (mechs[i].value == 1) {
			snprintf(err, errlen, "%s needs a value", mechs[i].name);
			return -1;
		}
		return 0;
	}
	if (mechs[i].value == -1) {
		snprintf(err, errlen, "%s takes no value", mechs[i].name);
		return -1;
	}
	if (s[nl] == '/') {
		if (t->kind != SPF_TERM_A && t->kind != SPF_TERM_MX) {
			snprintf(err, errlen, "%s: bad value", mechs[i].name);
			return -1;
		}
		return 0;		/* a/24: the current domain */
	}
	s += nl + 1;
	n -= nl + 1;
	/* the value ends at the first '/': an ip4/ip6 prefix length or a
	 * domain-spec's dual-cidr-length */
	slash = memchr(s, '/', n);
	return set_target(t, s, slash ? (size_t)(slash - s) : n, err, errlen);
}

int
spf_terms_parse(const char *rec, size_t len, struct spf_term *t, size_t max,
    char *err, size_t errlen)
{
	size_t i, j, nt = 0;

	if (!spf_is_record(rec, len)) {
		dr_strlcpy(err, "not an SPF record (no \"v=spf1\")", errlen);
		return -1;
	}
	for (i = 0; i < len; i++)
		if ((unsigned char)rec[i] < 0x20 || rec[i] == 0x7f) {
			dr_strlcpy(err, "control character in the record",
			    errlen);
			return -1;
		}
	for (i = 6; i < len; i = j) {
		while (i < len && rec[i] == ' ')
			i++;
		if (i == len)
			break;
		for (j = i; j < len && rec[j] != ' '; j++)
			;
		if (nt == max) {
			snprintf(err, errlen, "more than %zu terms", max);
			return -1;
		}
		if (term_parse(rec + i, j - i, &t[nt], err, errlen) == -1)
			return -1;
		nt++;
	}
	return (int)nt;
}
