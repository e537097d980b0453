/*
 * source_table.c - the source address and HELO name per sender domain
 * (`source_table`, source_table.h).
 *
 * What it owns: parsing the table into an array sorted by domain ("*"
 * sorts first), the exact-domain-else-"*" lookup by envelope sender, and
 * the check that every address is this host's: a socket bound to it
 * (port 0, UDP: nothing is sent) is what a delivery will do, so the
 * kernel's answer at load time is the answer the delivery would get.
 * A table with an error is refused as a whole, first error wins.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "idn.h"
#include "source_table.h"
#include "util.h"

#define DOMAIN_MAX	253

struct source_table {
	struct source_entry *e;		/* sorted by domain */
	size_t n, cap;
	int refs;			/* holders; the last one frees */
	int check_local;		/* while parsing: bind each address */
};

static void
entry_clear(struct source_entry *e)
{
	free(e->domain);
	free(e->addr4);
	free(e->addr6);
	free(e->helo);
	memset(e, 0, sizeof(*e));
}

struct source_table *
source_table_ref(struct source_table *t)
{
	if (t != NULL)
		__atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED);
	return t;
}

void
source_table_free(struct source_table *t)
{
	size_t i;

	if (t == NULL || __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	for (i = 0; i < t->n; i++)
		entry_clear(&t->e[i]);
	free(t->e);
	free(t);
}

static int
entry_cmp(const void *a, const void *b)
{
	const struct source_entry *x = a, *y = b;

	return strcmp(x->domain, y->domain);
}

/*
 * A domain as written (U-labels or A-labels, any case, a trailing dot
 * allowed) in the form the table keeps and looks up: lower-case A-labels
 * in out (at least DOMAIN_MAX + 2 bytes).  0, or -1 if it is no domain.
 */
static int
domain_key(const char *in, char *out, size_t outlen)
{
	char err[256];
	size_t len;

	if (!idn_is_ascii(in)) {
		if (idn_to_alabels(in, out, outlen, err, sizeof(err)) == -1)
			return -1;
	} else if (dr_strlcpy(out, in, outlen) >= outlen)
		return -1;
	len = strlen(out);
	if (len > 0 && out[len - 1] == '.')
		out[--len] = '\0';
	if (len == 0 || len > DOMAIN_MAX || !idn_ldh_name(out, len))
		return -1;
	str_lower(out);
	return 0;
}

/* Can this host send from sa?  NULL or a reason (in why). */
static const char *
local_check(const struct sockaddr *sa, socklen_t salen, char *why,
    size_t whylen)
{
	int fd;

	if ((fd = socket(sa->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1) {
		snprintf(why, whylen, "cannot test the address: %s",
		    strerror(errno));
		return why;
	}
	if (bind(fd, sa, salen) == -1) {
		if (errno == EADDRNOTAVAIL)
			snprintf(why, whylen, "not an address of this host");
		else
			snprintf(why, whylen, "cannot bind to it: %s",
			    strerror(errno));
		close(fd);
		return why;
	}
	close(fd);
	return NULL;
}

/* One address of a line into e.  NULL or a reason (in why). */
static const char *
parse_addr(const char *a, struct source_entry *e, int check_local,
    char *why, size_t whylen)
{
	struct sockaddr_in s4;
	struct sockaddr_in6 s6;
	char r[200];

	memset(&s4, 0, sizeof(s4));
	memset(&s6, 0, sizeof(s6));
	if (inet_pton(AF_INET, a, &s4.sin_addr) == 1) {
		if (e->addr4 != NULL) {
			snprintf(why, whylen, "two IPv4 addresses (%.60s and "
			    "%.60s): give at most one of each family",
			    e->addr4, a);
			return why;
		}
		if (s4.sin_addr.s_addr == htonl(INADDR_ANY) ||
		    IN_MULTICAST(ntohl(s4.sin_addr.s_addr)) ||
		    s4.sin_addr.s_addr == htonl(INADDR_BROADCAST)) {
			snprintf(why, whylen, "%.60s is not a unicast "
			    "address", a);
			return why;
		}
		s4.sin_family = AF_INET;
		if (check_local && local_check((struct sockaddr *)&s4,
		    sizeof(s4), r, sizeof(r)) != NULL) {
			snprintf(why, whylen, "address %.60s: %s", a, r);
			return why;
		}
		e->addr4 = xstrdup(a);
		return NULL;
	}
	if (inet_pton(AF_INET6, a, &s6.sin6_addr) == 1) {
		if (e->addr6 != NULL) {
			snprintf(why, whylen, "two IPv6 addresses (%.60s and "
			    "%.60s): give at most one of each family",
			    e->addr6, a);
			return why;
		}
		if (IN6_IS_ADDR_UNSPECIFIED(&s6.sin6_addr) ||
		    IN6_IS_ADDR_MULTICAST(&s6.sin6_addr) ||
		    IN6_IS_ADDR_V4MAPPED(&s6.sin6_addr)) {
			snprintf(why, whylen, "%.60s is not a unicast "
			    "address", a);
			return why;
		}
		if (IN6_IS_ADDR_LINKLOCAL(&s6.sin6_addr)) {
			snprintf(why, whylen, "%.60s is link-local: mail "
			    "cannot leave from it", a);
			return why;
		}
		s6.sin6_family = AF_INET6;
		if (check_local && local_check((struct sockaddr *)&s6,
		    sizeof(s6), r, sizeof(r)) != NULL) {
			snprintf(why, whylen, "address %.60s: %s", a, r);
			return why;
		}
		e->addr6 = xstrdup(a);
		return NULL;
	}
	snprintf(why, whylen, "\"%.100s\" is not an IPv4 or IPv6 address", a);
	return why;
}

/*
 * One line into e: 1 blank or comment, 0 an entry, -1 an error (in why).
 */
static int
parse_line(char *line, struct source_entry *e, int check_local, char *why,
    size_t whylen)
{
	char *tok[4], *p, *a, *save = NULL, key[DOMAIN_MAX + 2];
	size_t ntok = 0, len;

	memset(e, 0, sizeof(*e));
	for (p = line; *p != '\0'; p++)
		if (*p == '#' && (p == line || p[-1] == ' ' || p[-1] == '\t')) {
			*p = '\0';
			break;
		}
	for (p = strtok_r(line, " \t\r", &save); p != NULL;
	    p = strtok_r(NULL, " \t\r", &save)) {
		if (ntok == 3) {
			snprintf(why, whylen, "more than three fields (want "
			    "sender-domain address[,address] helo-name)");
			return -1;
		}
		tok[ntok++] = p;
	}
	if (ntok == 0)
		return 1;
	if (ntok < 3) {
		snprintf(why, whylen, "%s (want sender-domain "
		    "address[,address] helo-name)", ntok == 1 ?
		    "missing the address and the HELO name" :
		    "missing the HELO name");
		return -1;
	}
	if (strcmp(tok[0], "*") == 0)
		e->domain = xstrdup("*");
	else if (domain_key(tok[0], key, sizeof(key)) == -1) {
		snprintf(why, whylen, "\"%.100s\" is not a domain name (or "
		    "* for the default)", tok[0]);
		return -1;
	} else
		e->domain = xstrdup(key);
	for (a = strtok_r(tok[1], ",", &save); a != NULL;
	    a = strtok_r(NULL, ",", &save))
		if (parse_addr(a, e, check_local, why, whylen) != NULL)
			goto bad;
	if (e->addr4 == NULL && e->addr6 == NULL) {
		snprintf(why, whylen, "no address");
		goto bad;
	}
	len = strlen(tok[2]);
	if (len > 0 && tok[2][len - 1] == '.')
		tok[2][--len] = '\0';
	if (len == 0 || len > DOMAIN_MAX || !idn_ldh_name(tok[2], len) ||
	    strchr(tok[2], '.') == NULL) {
		snprintf(why, whylen, "HELO name \"%.100s\" is not a fully "
		    "qualified host name (letters, digits, hyphens)", tok[2]);
		goto bad;
	}
	e->helo = str_lower(xstrdup(tok[2]));
	return 0;
bad:
	entry_clear(e);
	return -1;
}

/* table_lines() callback: one line into the table (arg). */
static int
add_line(char *line, int lineno, void *arg, char *why, size_t whylen)
{
	struct source_table *t = arg;
	struct source_entry e;
	int r;

	if ((r = parse_line(line, &e, t->check_local, why, whylen)) != 0)
		return r == 1 ? 0 : -1;
	e.line = lineno;
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->e = xrealloc(t->e, t->cap * sizeof(*t->e));
	}
	t->e[t->n++] = e;
	return 0;
}

struct source_table *
source_table_parse(const char *buf, size_t len, const char *name,
    int check_local, char *err, size_t errlen)
{
	struct source_table *t;
	struct source_entry *dup;
	size_t i;

	if (name == NULL)
		name = "source_table";
	if (len > SOURCE_TABLE_MAX_SIZE) {
		snprintf(err, errlen, "%s: larger than %d bytes", name,
		    SOURCE_TABLE_MAX_SIZE);
		return NULL;
	}
	t = xcalloc(1, sizeof(*t));
	t->refs = 1;
	t->check_local = check_local;
	if (table_lines(buf, len, name, SOURCE_TABLE_MAX_LINE, add_line, t,
	    err, errlen) == -1)
		goto fail;
	if (t->n > 1)
		qsort(t->e, t->n, sizeof(*t->e), entry_cmp);
	for (i = 1; i < t->n; i++) {
		if (strcmp(t->e[i - 1].domain, t->e[i].domain) != 0)
			continue;
		dup = t->e[i - 1].line > t->e[i].line ? &t->e[i - 1] : &t->e[i];
		snprintf(err, errlen, "%s:%d: a second line for %s (the first "
		    "is line %d)", name, dup->line, dup->domain,
		    dup == &t->e[i] ? t->e[i - 1].line : t->e[i].line);
		goto fail;
	}
	return t;
fail:
	source_table_free(t);
	return NULL;
}

struct source_table *
source_table_load(const char *path, char *err, size_t errlen)
{
	struct source_table *t;
	char *buf;
	size_t n;

	if (read_file_max(path, SOURCE_TABLE_MAX_SIZE, &buf, &n, NULL, err,
	    errlen) == -1)
		return NULL;
	t = source_table_parse(buf, n, path, 1, err, errlen);
	free(buf);
	return t;
}

static const struct source_entry *
find(const struct source_table *t, const char *key)
{
	struct source_entry k;

	memset(&k, 0, sizeof(k));
	k.domain = (char *)(uintptr_t)key;
	return bsearch(&k, t->e, t->n, sizeof(*t->e), entry_cmp);
}

const struct source_entry *
source_table_lookup(const struct source_table *t, const char *sender)
{
	const struct source_entry *e;
	const char *at;
	char key[DOMAIN_MAX + 2];

	if (t == NULL || t->n == 0)
		return NULL;
	if (sender != NULL && (at = strrchr(sender, '@')) != NULL &&
	    domain_key(at + 1, key, sizeof(key)) == 0 &&
	    (e = find(t, key)) != NULL)
		return e;
	return find(t, "*");
}

size_t
source_table_count(const struct source_table *t)
{
	return t != NULL ? t->n : 0;
}

const struct source_entry *
source_table_entry(const struct source_table *t, size_t i)
{
	return t != NULL && i < t->n ? &t->e[i] : NULL;
}
