/*
 * util.c - allocation, strings, config value parsing, queue ids, fsync.
 */

#include <ctype.h>
#include <stdatomic.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static void
oom(void)
{
	log_errx("out of memory");
	abort();
}

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		oom();
	return p;
}

void *
xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);

	if (p == NULL)
		oom();
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (q == NULL)
		oom();
	return q;
}

char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		oom();
	return p;
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);

	if (p == NULL)
		oom();
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&p, fmt, ap);
	va_end(ap);
	if (r < 0)
		oom();
	return p;
}

size_t
dr_strlcpy(char *dst, const char *src, size_t size)
{
	size_t n = strlen(src);

	if (size > 0) {
		size_t c = n < size - 1 ? n : size - 1;
		memcpy(dst, src, c);
		dst[c] = '\0';
	}
	return n;
}

/* A non-negative decimal number followed by an optional unit. */
static int
parse_scaled(const char *s, unsigned long long *out, const char *units,
    const unsigned long long *mult)
{
	unsigned long long v = 0, m = 1;
	const char *p = s, *u;

	if (s == NULL || !isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		if (v > (~0ULL - 9) / 10)
			return -1;
		v = v * 10 + (unsigned)(*p - '0');
	}
	if (*p != '\0') {
		if (p[1] != '\0' && !(tolower((unsigned char)p[1]) == 'b' &&
		    p[2] == '\0' && strchr(units, 'k') != NULL))
			return -1;
		if ((u = strchr(units, tolower((unsigned char)*p))) == NULL)
			return -1;
		m = mult[u - units];
	}
	if (m != 0 && v > ~0ULL / m)
		return -1;
	*out = v * m;
	return 0;
}

int
parse_rate(const char *s, struct rate *r)
{
	static const struct { char c; long long secs; } units[] = {
		{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 },
	};
	const char *p;
	long n = 0;
	size_t i;

	if (strcmp(s, "0") == 0 || strcmp(s, "unlimited") == 0) {
		r->count = 0;
		r->per = 1;
		return 0;
	}
	for (p = s; *p >= '0' && *p <= '9'; p++) {
		n = n * 10 + (*p - '0');
		if (n > 1000000000L)
			return -1;
	}
	if (p == s || n == 0 || p[0] != '/' || p[1] == '\0' || p[2] != '\0')
		return -1;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (units[i].c == p[1]) {
			r->count = (int)n;
			r->per = units[i].secs;
			return 0;
		}
	return -1;
}

const char *
rate_str(const struct rate *r, char *buf, size_t len)
{
	char u = r->per >= 86400 ? 'd' : r->per >= 3600 ? 'h' :
	    r->per >= 60 ? 'm' : 's';

	if (r->count <= 0)
		snprintf(buf, len, "unlimited");
	else
		snprintf(buf, len, "%d/%c", r->count, u);
	return buf;
}

int
parse_duration(const char *s, long long *secs)
{
	static const unsigned long long mult[] = { 1, 60, 3600, 86400, 604800 };
	unsigned long long v;

	if (parse_scaled(s, &v, "smhdw", mult) == -1 || v > (1ULL << 40))
		return -1;
	*secs = (long long)v;
	return 0;
}

int
parse_size(const char *s, unsigned long long *bytes)
{
	static const unsigned long long mult[] = { 1024ULL, 1ULL << 20,
	    1ULL << 30 };

	return parse_scaled(s, bytes, "kmg", mult);
}

int
parse_bool(const char *s, int *out)
{
	if (!strcasecmp(s, "yes") || !strcasecmp(s, "true") ||
	    !strcasecmp(s, "on") || !strcmp(s, "1"))
		*out = 1;
	else if (!strcasecmp(s, "no") || !strcasecmp(s, "false") ||
	    !strcasecmp(s, "off") || !strcmp(s, "0"))
		*out = 0;
	else
		return -1;
	return 0;
}

/*
 * 8 hex digits of seconds, then 8 of a counter that starts at a random
 * value and is shared by every thread: sortable by arrival, and no two
 * ids of one process are ever the same (below 2^32 ids a second).  Two
 * random halves would collide within a second with a chance of n^2/2^33
 * for n messages, once an hour or so at full speed; only a restart
 * within the same second can now meet an id again, and the spool refuses
 * to overwrite an existing one (O_EXCL, no-replace rename).
 */
void
queue_id_new(char id[QUEUE_ID_LEN + 1])
{
	static _Atomic uint32_t next;
	static _Atomic int seeded;
	uint32_t r, expect = 0;

	if (!seeded) {
		if (getrandom(&r, sizeof(r), 0) != sizeof(r))
			r = (uint32_t)random() ^ (uint32_t)getpid();
		/* the first thread here seeds it */
		(void)atomic_compare_exchange_strong(&next, &expect, r);
		seeded = 1;
	}
	r = atomic_fetch_add(&next, 1);
	snprintf(id, QUEUE_ID_LEN + 1, "%08X%08X",
	    (unsigned)(time(NULL) & 0xffffffff), (unsigned)r);
}

int
queue_id_valid(const char *id)
{
	size_t i;

	for (i = 0; i < QUEUE_ID_LEN; i++)
		if (!isxdigit((unsigned char)id[i]) ||
		    islower((unsigned char)id[i]))
			return 0;
	return id[i] == '\0';
}

int
pread_full(int fd, void *buf, size_t len, off_t off)
{
	unsigned char *p = buf;
	ssize_t n;

	while (len > 0) {
		if ((n = pread(fd, p, len, off)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = EIO;	/* shorter than the caller knew */
			return -1;
		}
		p += n;
		off += n;
		len -= (size_t)n;
	}
	return 0;
}

int
fsync_dir(const char *path)
{
	int fd, r, saved;

	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	r = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return r;
}

int
read_file_max(const char *path, size_t max, char **out, size_t *lenp,
    time_t *mtime, char *err, size_t errlen)
{
	struct stat st;
	ssize_t n = 0;
	size_t len = 0;
	char *buf;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > (off_t)max) {
		snprintf(err, errlen, "%s: not a regular file of at most %zu "
		    "bytes", path, max);
		close(fd);
		return -1;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	while (len < (size_t)st.st_size &&
	    (n = read(fd, buf + len, (size_t)st.st_size - len)) > 0)
		len += (size_t)n;
	if (n == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		free(buf);
		return -1;
	}
	close(fd);
	buf[len] = '\0';
	*out = buf;
	if (lenp != NULL)
		*lenp = len;
	if (mtime != NULL)
		*mtime = st.st_mtime;
	return 0;
}

int
table_lines(const char *buf, size_t len, const char *name, size_t maxline,
    int (*fn)(char *, int, void *, char *, size_t), void *arg, char *err,
    size_t errlen)
{
	const char *p = buf, *end = buf + len, *nl;
	char *line = xmalloc(maxline + 1), why[768];
	int lineno = 0, r = 0;
	size_t n;

	while (p < end && r == 0) {
		lineno++;
		nl = memchr(p, '\n', (size_t)(end - p));
		n = (size_t)((nl != NULL ? nl : end) - p);
		if (n > maxline) {
			snprintf(why, sizeof(why), "line longer than %zu bytes",
			    maxline);
			r = -1;
		} else if (memchr(p, '\0', n) != NULL) {
			snprintf(why, sizeof(why), "NUL byte in line");
			r = -1;
		} else {
			memcpy(line, p, n);
			line[n] = '\0';
			why[0] = '\0';
			r = fn(line, lineno, arg, why, sizeof(why));
		}
		p += n + (nl != NULL);
	}
	if (r == -1)
		snprintf(err, errlen, "%s:%d: %s", name, lineno, why);
	free(line);
	return r;
}

int
mkdir_p(const char *path, mode_t mode)
{
	char buf[4096], *p;

	if (dr_strlcpy(buf, path, sizeof(buf)) >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) == -1 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, mode) == -1 && errno != EEXIST)
		return -1;
	return 0;
}

double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

char *
str_lower(char *s)
{
	char *p;

	for (p = s; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return s;
}

char *
str_trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}
