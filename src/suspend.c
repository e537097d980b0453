/*
 * suspend.c - the list of suspended destinations (suspend.h), kept in
 * spool_dir/suspended.
 *
 * The list is small (what an operator typed) and read at start and by
 * the tool; the queue keeps its own copy in memory and asks
 * suspend_has() only when the list is not empty, so a relay with nothing
 * suspended pays nothing per delivery.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "suspend.h"
#include "util.h"

#define SUSPEND_FILE	"suspended"
#define SUSPEND_MAX	10000		/* lines read from the file */

int
suspend_norm(const char *domain, char *buf, size_t len)
{
	size_t n = strlen(domain);
	const unsigned char *p;

	while (n > 0 && domain[n - 1] == '.')
		n--;
	if (n == 0 || n > 253 || n >= len)
		return -1;
	for (p = (const unsigned char *)domain; p < (const unsigned char *)
	    domain + n; p++)
		if (*p <= 0x20 || *p == 0x7f || *p == '@' || *p == '/')
			return -1;
	memcpy(buf, domain, n);
	buf[n] = '\0';
	str_lower(buf);
	return 0;
}

static int
dom_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
suspend_has(const struct suspended *s, const char *domain)
{
	char key[256], *k = key;

	if (s->n == 0 || suspend_norm(domain, key, sizeof(key)) == -1)
		return 0;
	return bsearch(&k, s->dom, s->n, sizeof(*s->dom), dom_cmp) != NULL;
}

int
suspend_set(struct suspended *s, const char *domain, int on)
{
	char key[256], *k = key, **hit;
	size_t i;

	if (suspend_norm(domain, key, sizeof(key)) == -1)
		return 0;
	hit = s->n ? bsearch(&k, s->dom, s->n, sizeof(*s->dom), dom_cmp) :
	    NULL;
	if ((hit != NULL) == (on != 0))
		return 0;
	if (on) {
		s->dom = xrealloc(s->dom, (s->n + 1) * sizeof(*s->dom));
		s->dom[s->n++] = xstrdup(key);
		qsort(s->dom, s->n, sizeof(*s->dom), dom_cmp);
		return 1;
	}
	i = (size_t)(hit - s->dom);
	free(s->dom[i]);
	memmove(&s->dom[i], &s->dom[i + 1], (s->n - i - 1) * sizeof(*s->dom));
	s->n--;
	return 1;
}

void
suspend_clear(struct suspended *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		free(s->dom[i]);
	free(s->dom);
	s->dom = NULL;
	s->n = 0;
}

int
suspend_load(const char *spool_dir, struct suspended *s, char *err,
    size_t errlen)
{
	char *path, line[512];
	size_t lineno = 0;
	FILE *f;

	memset(s, 0, sizeof(*s));
	path = xasprintf("%s/%s", spool_dir, SUSPEND_FILE);
	if ((f = fopen(path, "re")) == NULL) {
		if (errno == ENOENT) {
			free(path);
			return 0;
		}
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL &&
	    lineno++ < SUSPEND_MAX) {
		char *t = str_trim(line);

		if (*t == '\0' || *t == '#')
			continue;
		if (!suspend_set(s, t, 1) && !suspend_has(s, t)) {
			snprintf(err, errlen, "%s:%zu: not a domain name", path,
			    lineno);
			fclose(f);
			free(path);
			suspend_clear(s);
			return -1;
		}
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		fclose(f);
		free(path);
		suspend_clear(s);
		return -1;
	}
	fclose(f);
	free(path);
	return 0;
}

/* Write the list: temporary file, fsync, rename, fsync the directory. */
static int
suspend_write(const char *spool_dir, const struct suspended *s, char *err,
    size_t errlen)
{
	char *path, *tmp;
	FILE *f;
	size_t i;
	int fd, rc = -1;

	path = xasprintf("%s/%s", spool_dir, SUSPEND_FILE);
	tmp = xasprintf("%s/%s.tmp", spool_dir, SUSPEND_FILE);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
	    O_NOFOLLOW, 0600)) == -1 || (f = fdopen(fd, "w")) == NULL) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		if (fd != -1)
			close(fd);
		goto out;
	}
	fprintf(f, "# destinations suspended by the operator (danerelay "
	    "queue suspend|resume)\n");
	for (i = 0; i < s->n; i++)
		fprintf(f, "%s\n", s->dom[i]);
	if (fflush(f) == EOF || fsync(fileno(f)) == -1) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		fclose(f);
		(void)unlink(tmp);
		goto out;
	}
	if (fclose(f) == EOF || rename(tmp, path) == -1 ||
	    fsync_dir(spool_dir) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		(void)unlink(tmp);
		goto out;
	}
	rc = 0;
out:
	free(tmp);
	free(path);
	return rc;
}

int
suspend_change(const char *spool_dir, const char *domain, int on, char *err,
    size_t errlen)
{
	struct suspended s;
	char key[256];
	int changed;

	if (suspend_norm(domain, key, sizeof(key)) == -1) {
		snprintf(err, errlen, "not a domain name");
		return -1;
	}
	if (suspend_load(spool_dir, &s, err, errlen) == -1)
		return -1;
	if ((changed = suspend_set(&s, key, on)) == 1 &&
	    suspend_write(spool_dir, &s, err, errlen) == -1)
		changed = -1;
	suspend_clear(&s);
	return changed;
}
