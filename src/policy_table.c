/*
 * policy_table.c - the per-destination TLS policy table (`policy_file`,
 * DESIGN.md "Delivery security semantics").
 *
 * What it owns: parsing the Postfix-style table into a sorted array of
 * struct policy_entry, and the lookup "exact domain, else the closest
 * .parent entry" (Postfix smtp_tls_policy_maps with
 * parent_domain_matches_subdomains off: "example.org" is that domain
 * only, ".example.org" every subdomain of it).
 *
 * Format, one entry per line:
 *	domain  level  [match=name[:name...]]
 * '#' at the start of a line or after white space starts a comment;
 * blank lines are ignored; every line is at most POLICY_TABLE_MAX_LINE
 * bytes.  Levels: none may encrypt dane dane-only verify secure.  match=
 * is only meaningful for verify and secure and refused elsewhere.  Every
 * error is reported as "file:line: reason", the first one wins, and a
 * table with an error is refused as a whole (never half-loaded).
 *
 * Domain names: LDH labels (underscore tolerated), 1-63 octets each, at
 * most 253 in all, no IP literals.  Internationalized names may be
 * written with U-labels: they are kept, and matched, in A-label form
 * (idn.c), the form route.c looks destinations up in.
 *
 * Lifetime: a table is reference-counted.  The loader holds the first
 * reference; policy_table_ref() adds one, policy_table_free() drops one
 * and the last frees the table.  A route (route.c) holds one from
 * route_start() to route_free(), because its policy_input borrows the
 * entry's match= names while it waits on DNS and MTA-STS, and a SIGHUP
 * replaces the delivery engine's table in the meantime.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "idn.h"
#include "policy_table.h"
#include "util.h"

#define DOMAIN_MAX	253

struct policy_table {
	struct policy_entry *e;		/* sorted by domain */
	size_t n, cap;
	int refs;			/* holders; the last one frees */
};

static void
entry_clear(struct policy_entry *e)
{
	size_t i;

	free(e->domain);
	for (i = 0; i < e->nmatch; i++)
		free(e->match[i]);
	free(e->match);
	memset(e, 0, sizeof(*e));
}

struct policy_table *
policy_table_ref(struct policy_table *t)
{
	if (t != NULL)
		__atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED);
	return t;
}

void
policy_table_free(struct policy_table *t)
{
	size_t i;

	if (t == NULL || __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	for (i = 0; i < t->n; i++)
		entry_clear(&t->e[i]);
	free(t->e);
	free(t);
}

/*
 * Validate and normalize (lower case, no trailing dot) a domain name in
 * place.  allow_dot: a leading "." (subdomain entry) is accepted.
 * Returns NULL or a reason.
 */
static const char *
domain_check(char *s, int allow_dot)
{
	char *p = s, *label;
	size_t len;

	len = strlen(s);
	if (len > 1 && s[len - 1] == '.')
		s[--len] = '\0';
	if (len == 0 || (len == 1 && s[0] == '.'))
		return "empty domain name";
	if (*p == '.') {
		if (!allow_dot)
			return "leading dot not allowed here";
		p++;
		len--;
	}
	if (len > DOMAIN_MAX)
		return "domain name too long";
	for (label = p; ; p++) {
		if (*p == '.' || *p == '\0') {
			if (p == label)
				return "empty label in domain name";
			if (p - label > 63)
				return "label longer than 63 octets";
			if (*label == '-' || p[-1] == '-')
				return "label starts or ends with '-'";
			if (*p == '\0')
				break;
			label = p + 1;
			continue;
		}
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
		else if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')
		    || *p == '-' || *p == '_'))
			return "invalid character in domain name";
	}
	return NULL;
}

static int
entry_cmp(const void *a, const void *b)
{
	const struct policy_entry *x = a, *y = b;

	return strcmp(x->domain, y->domain);
}

static int
errf(char *err, size_t errlen, const char *name, int line, const char *fmt,
    ...) __attribute__((format(printf, 5, 6)));

static int
errf(char *err, size_t errlen, const char *name, int line, const char *fmt,
    ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		snprintf(err, errlen, "%s:%d: %s", name, line, msg);
	else
		snprintf(err, errlen, "%s: %s", name, msg);
	return -1;
}

/* A name written with U-labels: its A-label form in buf (a leading "."
 * kept) and *s pointing there.  NULL or a reason. */
static const char *
idn_name(char **s, char *buf, size_t len)
{
	char err[256];
	int dot = **s == '.';

	if (idn_is_ascii(*s))
		return NULL;
	buf[0] = '.';
	if (idn_to_alabels(*s + dot, buf + dot, len - dot, err,
	    sizeof(err)) == -1)
		return "not a valid internationalized domain name";
	*s = buf;
	return NULL;
}

/* "match=a:b:c" -> e->match.  Returns NULL or a reason. */
static const char *
parse_match(char *v, struct policy_entry *e)
{
	char *name, *next, abuf[DOMAIN_MAX + 2];
	const char *why;

	if (e->match != NULL)
		return "match= given twice";
	if (*v == '\0')
		return "match= needs at least one name";
	e->match = xcalloc(POLICY_TABLE_MAX_MATCH, sizeof(*e->match));
	for (name = v; name != NULL; name = next) {
		if ((next = strchr(name, ':')) != NULL)
			*next++ = '\0';
		if (*name == '\0')
			return "empty name in match=";
		if (e->nmatch == POLICY_TABLE_MAX_MATCH)
			return "too many names in match=";
		if ((why = idn_name(&name, abuf, sizeof(abuf))) != NULL)
			return why;
		if (strcasecmp(name, "hostname") != 0 &&
		    strcasecmp(name, "nexthop") != 0 &&
		    strcasecmp(name, "dot-nexthop") != 0 &&
		    (why = domain_check(name, 1)) != NULL)
			return why;
		e->match[e->nmatch++] = str_lower(xstrdup(name));
	}
	return NULL;
}

#define POLICY_LIMIT_MAX	1000000	/* as config.c's numbers */

/* A limit option's value: 1..POLICY_LIMIT_MAX, else 0. */
static int
parse_limit(const char *v)
{
	char *end;
	long n;

	if (!isdigit((unsigned char)*v))
		return 0;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno != 0 || *end != '\0' || n < 1 || n > POLICY_LIMIT_MAX)
		return 0;
	return (int)n;
}

/* One line (NUL-terminated, no newline).  0: entry, 1: blank, -1: err. */
static int
parse_line(char *line, struct policy_entry *e, char *why, size_t whylen)
{
	char *tok[64], *p, *eq, abuf[DOMAIN_MAX + 2];
	size_t ntok = 0, i;
	const char *r;

	memset(e, 0, sizeof(*e));
	for (p = line; *p != '\0';) {
		while (*p == ' ' || *p == '\t' || *p == '\r')
			p++;
		if (*p == '\0' || *p == '#')
			break;
		if (ntok == sizeof(tok) / sizeof(tok[0])) {
			dr_strlcpy(why, "too many fields", whylen);
			return -1;
		}
		tok[ntok++] = p;
		while (*p != '\0' && *p != ' ' && *p != '\t' && *p != '\r')
			p++;
		if (*p != '\0')
			*p++ = '\0';
	}
	if (ntok == 0)
		return 1;
	if (ntok < 2) {
		snprintf(why, whylen, "missing security level after \"%.100s\"",
		    tok[0]);
		return -1;
	}
	if ((r = idn_name(&tok[0], abuf, sizeof(abuf))) != NULL ||
	    (r = domain_check(tok[0], 1)) != NULL) {
		snprintf(why, whylen, "\"%.100s\": %s", tok[0], r);
		return -1;
	}
	str_lower(tok[1]);
	if (policy_level_parse(tok[1], &e->level) == -1) {
		snprintf(why, whylen, "unknown security level \"%.100s\" "
		    "(none, may, encrypt, dane, dane-only, verify, secure)",
		    tok[1]);
		return -1;
	}
	e->domain = xstrdup(tok[0]);
	for (i = 2; i < ntok; i++) {
		if ((eq = strchr(tok[i], '=')) == NULL) {
			snprintf(why, whylen, "option \"%.100s\" is not "
			    "name=value", tok[i]);
			goto bad;
		}
		*eq++ = '\0';
		if (strcasecmp(tok[i], "match") == 0) {
			if (e->level != POLICY_VERIFY &&
			    e->level != POLICY_SECURE) {
				snprintf(why, whylen, "match= only applies to "
				    "verify and secure, not %s",
				    policy_level_name(e->level));
				goto bad;
			}
			if ((r = parse_match(eq, e)) != NULL) {
				snprintf(why, whylen, "%s", r);
				goto bad;
			}
		} else if (strcasecmp(tok[i], "max_connections") == 0 ||
		    strcasecmp(tok[i], "max_messages_per_connection") == 0) {
			int *f = strcasecmp(tok[i], "max_connections") == 0 ?
			    &e->max_connections : &e->max_msgs;

			if ((*f = parse_limit(eq)) == 0) {
				snprintf(why, whylen, "%s: bad number "
				    "\"%.100s\" (want 1-%d)", tok[i], eq,
				    POLICY_LIMIT_MAX);
				goto bad;
			}
		} else if (strcasecmp(tok[i], "rate") == 0) {
			if (parse_rate(eq, &e->rate) == -1 ||
			    e->rate.count == 0 || e->rate.per > 3600) {
				snprintf(why, whylen, "rate: bad rate "
				    "\"%.100s\" (want e.g. 2/s, 60/m, 500/h)",
				    eq);
				goto bad;
			}
		} else {
			snprintf(why, whylen, "unknown option \"%.100s\"",
			    tok[i]);
			goto bad;
		}
	}
	return 0;
bad:
	entry_clear(e);
	return -1;
}

/* table_lines() callback: one line into the table (arg). */
static int
add_line(char *line, int lineno, void *arg, char *why, size_t whylen)
{
	struct policy_table *t = arg;
	struct policy_entry e;
	int r;

	if ((r = parse_line(line, &e, why, whylen)) != 0)
		return r == 1 ? 0 : -1;
	e.line = lineno;
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->e = xrealloc(t->e, t->cap * sizeof(*t->e));
	}
	t->e[t->n++] = e;
	return 0;
}

struct policy_table *
policy_table_parse(const char *buf, size_t len, const char *name, char *err,
    size_t errlen)
{
	struct policy_table *t;
	struct policy_entry *dup;
	size_t i;

	if (name == NULL)
		name = "policy_file";
	if (len > POLICY_TABLE_MAX_SIZE) {
		errf(err, errlen, name, 0, "larger than %d bytes",
		    POLICY_TABLE_MAX_SIZE);
		return NULL;
	}
	t = xcalloc(1, sizeof(*t));
	t->refs = 1;
	if (table_lines(buf, len, name, POLICY_TABLE_MAX_LINE, add_line, t,
	    err, errlen) == -1)
		goto fail;
	if (t->n > 1)
		qsort(t->e, t->n, sizeof(*t->e), entry_cmp);
	for (i = 1; i < t->n; i++) {
		if (strcmp(t->e[i - 1].domain, t->e[i].domain) != 0)
			continue;
		dup = t->e[i - 1].line > t->e[i].line ? &t->e[i - 1] : &t->e[i];
		errf(err, errlen, name, dup->line, "duplicate entry for %s "
		    "(first at line %d)", dup->domain, dup == &t->e[i] ?
		    t->e[i - 1].line : t->e[i].line);
		goto fail;
	}
	return t;
fail:
	policy_table_free(t);
	return NULL;
}

struct policy_table *
policy_table_load(const char *path, char *err, size_t errlen)
{
	struct policy_table *t;
	char *buf;
	size_t n;

	if (path == NULL) {
		dr_strlcpy(err, "policy_file: no path", errlen);
		return NULL;
	}
	if (read_file_max(path, POLICY_TABLE_MAX_SIZE, &buf, &n, NULL, err,
	    errlen) == -1)
		return NULL;
	t = policy_table_parse(buf, n, path, err, errlen);
	free(buf);
	return t;
}

static const struct policy_entry *
find(const struct policy_table *t, const char *key)
{
	struct policy_entry k;

	memset(&k, 0, sizeof(k));
	k.domain = (char *)(uintptr_t)key;
	return bsearch(&k, t->e, t->n, sizeof(*t->e), entry_cmp);
}

const struct policy_entry *
policy_table_lookup(const struct policy_table *t, const char *domain)
{
	const struct policy_entry *e;
	char key[DOMAIN_MAX + 2], abuf[DOMAIN_MAX + 2], err[256];
	size_t len;
	char *p;

	if (t == NULL || domain == NULL || t->n == 0)
		return NULL;
	/* U-labels: as the entries are kept, in A-label form */
	if (!idn_is_ascii(domain)) {
		if (idn_to_alabels(domain, abuf, sizeof(abuf), err,
		    sizeof(err)) == -1)
			return NULL;
		domain = abuf;
	}
	len = strlen(domain);
	if (len > 0 && domain[len - 1] == '.')
		len--;
	if (len == 0 || len > DOMAIN_MAX || domain[0] == '.')
		return NULL;
	memcpy(key, domain, len);
	key[len] = '\0';
	str_lower(key);
	if ((e = find(t, key)) != NULL)
		return e;
	/* Closest parent first: ".b.example.org", then ".example.org". */
	for (p = strchr(key, '.'); p != NULL; p = strchr(p + 1, '.'))
		if ((e = find(t, p)) != NULL)
			return e;
	return NULL;
}

size_t
policy_table_count(const struct policy_table *t)
{
	return t != NULL ? t->n : 0;
}
