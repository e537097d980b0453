/*
 * util.h - small helpers shared by every module: allocation that aborts
 * on exhaustion, bounded string copies, durations and sizes as written in
 * the config, queue ids, directory fsync.
 */
#ifndef DR_UTIL_H
#define DR_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Copy with truncation; returns strlen(src) like BSD strlcpy. */
size_t dr_strlcpy(char *dst, const char *src, size_t size);

/* "300", "300s", "5m", "1h", "5d", "2w" -> seconds. 0 ok, -1 bad. */
int parse_duration(const char *s, long long *secs);
/* "1048576", "10k", "50M", "1G" (powers of 1024) -> bytes. 0 ok, -1 bad. */
int parse_size(const char *s, unsigned long long *bytes);
/* A rate: "60/m", "200/h", "5/s", "1000/d" -> *count per *per seconds;
 * "0" or "unlimited" -> *count 0 (no limit).  0 ok, -1 bad. */
struct rate {
	int count;			/* 0 = unlimited */
	long long per;			/* seconds */
};
int parse_rate(const char *s, struct rate *r);
/* "200/h" back (buf of at least 32 bytes), or "unlimited". */
const char *rate_str(const struct rate *r, char *buf, size_t len);
/* "yes"/"no" (also true/false, on/off, 1/0). 0 ok, -1 bad. */
int parse_bool(const char *s, int *out);

/* Queue ids: 16 upper-case hex characters, unique per host and time. */
#define QUEUE_ID_LEN 16
void queue_id_new(char id[QUEUE_ID_LEN + 1]);
int queue_id_valid(const char *id);

/* fsync a directory by path. 0 ok, -1 errno set. */
int fsync_dir(const char *path);
/* pread() exactly len bytes at off: 0, or -1 with errno (EIO when the
 * file ends first). */
int pread_full(int fd, void *buf, size_t len, off_t off);
/* Read a whole regular file of at most max bytes into *out (malloc'ed,
 * NUL-terminated; *lenp its length when lenp is not NULL, *mtime its
 * modification time when mtime is not NULL).  0, or -1 with "PATH:
 * reason" in err.  For the tables (policy_file, source_table, the DKIM
 * key table and keys). */
int read_file_max(const char *path, size_t max, char **out, size_t *lenp,
    time_t *mtime, char *err, size_t errlen);
/*
 * The lines of a table file in buf (len bytes, need not be
 * NUL-terminated), each at most maxline bytes: fn(line, lineno, arg, why,
 * whylen) gets each one NUL-terminated, writable and without its "\n",
 * numbered from 1, and returns 0 to go on or -1 with a reason in why.
 * 0 when every line went through; -1 with "NAME:LINE: reason" in err at
 * the first line fn refuses, that is longer than maxline or holds a NUL.
 */
int table_lines(const char *buf, size_t len, const char *name,
    size_t maxline, int (*fn)(char *, int, void *, char *, size_t),
    void *arg, char *err, size_t errlen);
/* mkdir -p with mode for created components. 0 ok, -1 errno set. */
int mkdir_p(const char *path, mode_t mode);

/* Monotonic time in seconds (double) for delays and timeouts. */
double mono_now(void);

/* Lower-case an ASCII string in place; returns s. */
char *str_lower(char *s);
/* Strip leading/trailing ASCII white space in place; returns start. */
char *str_trim(char *s);

#endif
