/*
 * tls_memory.c - TLS memory for domains without DANE or MTA-STS (issue
 * #23; chasquid's "domain info" is the model): which domains were seen
 * with STARTTLS (and, with tls_memory = verify, a verified chain), kept
 * in memory for the delivery engine and in <state_dir>/tls-memory.db.
 *
 * Owns the sqlite3 handle (WAL, busy timeout, synchronous=NORMAL: a
 * committed entry survives the daemon being killed; a power cut may
 * lose the last ones, which only makes the next delivery a first
 * contact again) and the in-memory table: a hash of entries under one
 * mutex, read and noted by every worker's loop.  SQL runs under a
 * second mutex (db_mtx), taken only by write jobs on the io pool, at
 * open and at close; the loops never wait for it.
 *
 * Every statement has bound parameters; domain names come from the
 * queue (A-labels), never pasted into SQL text.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "log.h"
#include "state_sqlite.h"
#include "tls_memory.h"
#include "util.h"
#include "workq.h"

#define TM_BUSY_MS	2000
#define TM_VERSION	1
#define TM_BUCKETS	1024

struct tm_ent {
	struct tm_ent *next;
	struct tlsmem_entry e;
	time_t written_seen;		/* last_seen as on disk */
	enum tlsmem_level written_level;
};

struct tls_memory {
	char *path;
	sqlite3 *db;
	pthread_mutex_t db_mtx;		/* the sqlite3 handle */
	pthread_mutex_t mtx;		/* the table below */
	struct tm_ent *bucket[TM_BUCKETS];
	size_t n;
	struct workq *wq;
	unsigned long long write_errors;
};

/* One write: the named domain's entry as it is in memory then. */
struct tm_job {
	struct tls_memory *tm;
	char domain[256];
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS tls_memory ("
    " domain TEXT PRIMARY KEY NOT NULL,"
    " level TEXT NOT NULL,"
    " first_seen INTEGER NOT NULL,"
    " last_seen INTEGER NOT NULL);";

const char *
tlsmem_level_name(enum tlsmem_level l)
{
	switch (l) {
	case TLSMEM_NONE:
		return "none";
	case TLSMEM_ENCRYPT:
		return "encrypt";
	case TLSMEM_VERIFY:
		return "verify";
	}
	return "?";
}

static enum tlsmem_level
level_parse(const char *s)
{
	if (s != NULL && strcmp(s, "verify") == 0)
		return TLSMEM_VERIFY;
	if (s != NULL && strcmp(s, "encrypt") == 0)
		return TLSMEM_ENCRYPT;
	return TLSMEM_NONE;
}

static unsigned
hash(const char *s)
{
	unsigned h = 5381;

	for (; *s; s++)
		h = h * 33 + (unsigned char)*s;
	return h % TM_BUCKETS;
}

/* Under mtx. */
static struct tm_ent *
find(struct tls_memory *tm, const char *domain)
{
	struct tm_ent *x;

	for (x = tm->bucket[hash(domain)]; x != NULL; x = x->next)
		if (strcmp(x->e.domain, domain) == 0)
			return x;
	return NULL;
}

/* Under mtx. */
static struct tm_ent *
add(struct tls_memory *tm, const char *domain)
{
	struct tm_ent *x = xcalloc(1, sizeof(*x));
	unsigned h = hash(domain);

	dr_strlcpy(x->e.domain, domain, sizeof(x->e.domain));
	x->next = tm->bucket[h];
	tm->bucket[h] = x;
	tm->n++;
	return x;
}

static int
exec(struct tls_memory *tm, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;

	if (sqlite3_exec(tm->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", tm->path, msg ? msg :
		    sqlite3_errmsg(tm->db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* Write one entry (level NONE: delete it).  Under db_mtx.  0 / -1. */
static int
db_write(struct tls_memory *tm, const struct tlsmem_entry *e, char *err,
    size_t errlen)
{
	sqlite3_stmt *st = NULL;
	const char *sql = e->level == TLSMEM_NONE ?
	    "DELETE FROM tls_memory WHERE domain = ?1" :
	    "INSERT OR REPLACE INTO tls_memory (domain, level, first_seen, "
	    "last_seen) VALUES (?1, ?2, ?3, ?4)";
	int r;

	if (sqlite3_prepare_v2(tm->db, sql, -1, &st, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", tm->path,
		    sqlite3_errmsg(tm->db));
		return -1;
	}
	sqlite3_bind_text(st, 1, e->domain, -1, SQLITE_STATIC);
	if (e->level != TLSMEM_NONE) {
		sqlite3_bind_text(st, 2, tlsmem_level_name(e->level), -1,
		    SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)e->first_seen);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)e->last_seen);
	}
	r = sqlite3_step(st);
	if (r != SQLITE_DONE)
		snprintf(err, errlen, "%s: write: %s", tm->path,
		    sqlite3_errmsg(tm->db));
	sqlite3_finalize(st);
	return r == SQLITE_DONE ? 0 : -1;
}

/* Write domain's current state (an absent entry is deleted). */
static void
write_now(struct tls_memory *tm, const char *domain)
{
	struct tlsmem_entry e;
	struct tm_ent *x;
	char err[512];

	pthread_mutex_lock(&tm->db_mtx);
	pthread_mutex_lock(&tm->mtx);
	memset(&e, 0, sizeof(e));
	dr_strlcpy(e.domain, domain, sizeof(e.domain));
	if ((x = find(tm, domain)) != NULL) {
		e = x->e;
		x->written_seen = x->e.last_seen;
		x->written_level = x->e.level;
	}
	pthread_mutex_unlock(&tm->mtx);
	if (db_write(tm, &e, err, sizeof(err)) == -1) {
		pthread_mutex_lock(&tm->mtx);
		tm->write_errors++;
		if ((x = find(tm, domain)) != NULL)
			x->written_seen = 0;	/* written again at close */
		pthread_mutex_unlock(&tm->mtx);
		log_warnx("tls-memory: %s: %s", domain, err);
	}
	pthread_mutex_unlock(&tm->db_mtx);
}

static void
job_work(void *arg)
{
	struct tm_job *j = arg;

	write_now(j->tm, j->domain);
}

static void
job_done(void *arg)
{
	free(arg);
}

static void
schedule_write(struct tls_memory *tm, struct workq_port *port,
    const char *domain)
{
	struct tm_job *j;

	if (tm->wq == NULL || port == NULL) {
		write_now(tm, domain);
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->tm = tm;
	dr_strlcpy(j->domain, domain, sizeof(j->domain));
	workq_submit(tm->wq, port, job_work, job_done, j);
}

static int
load(struct tls_memory *tm, long long max_age, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	time_t now = time(NULL);
	int r;

	if (sqlite3_prepare_v2(tm->db, "DELETE FROM tls_memory WHERE "
	    "last_seen < ?1", -1, &st, NULL) != SQLITE_OK)
		goto dberr;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)(now - max_age));
	r = sqlite3_step(st);
	sqlite3_finalize(st);
	st = NULL;
	if (r != SQLITE_DONE)
		goto dberr;
	if (sqlite3_prepare_v2(tm->db, "SELECT domain, level, first_seen, "
	    "last_seen FROM tls_memory", -1, &st, NULL) != SQLITE_OK)
		goto dberr;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		const char *d = (const char *)sqlite3_column_text(st, 0);
		enum tlsmem_level l = level_parse((const char *)
		    sqlite3_column_text(st, 1));
		struct tm_ent *x;

		if (d == NULL || *d == '\0' || strlen(d) >= sizeof(x->e.domain)
		    || l == TLSMEM_NONE || find(tm, d) != NULL)
			continue;	/* not ours: ignored */
		x = add(tm, d);
		x->e.level = x->written_level = l;
		x->e.first_seen = (time_t)sqlite3_column_int64(st, 2);
		x->e.last_seen = x->written_seen =
		    (time_t)sqlite3_column_int64(st, 3);
	}
	sqlite3_finalize(st);
	if (r != SQLITE_DONE)
		goto dberr;
	return 0;
dberr:
	snprintf(err, errlen, "%s: %s", tm->path, sqlite3_errmsg(tm->db));
	return -1;
}

struct tls_memory *
tls_memory_open(const char *dir, long long max_age, char *err,
    size_t errlen)
{
	struct tls_memory *tm = xcalloc(1, sizeof(*tm));

	pthread_mutex_init(&tm->mtx, NULL);
	pthread_mutex_init(&tm->db_mtx, NULL);
	tm->path = xasprintf("%s/%s", dir, TLSMEM_DB_NAME);
	if ((tm->db = state_sqlite_open(dir, TLSMEM_DB_NAME, schema,
	    TM_VERSION, TM_BUSY_MS, err, errlen)) == NULL)
		goto fail;
	if (load(tm, max_age, err, errlen) == -1)
		goto fail;
	return tm;
fail:
	tls_memory_close(tm);
	return NULL;
}

void
tls_memory_close(struct tls_memory *tm)
{
	struct tm_ent *x, *next;
	char err[512];
	size_t i;

	if (tm == NULL)
		return;
	if (tm->db != NULL)
		(void)exec(tm, "BEGIN", err, sizeof(err));
	for (i = 0; i < TM_BUCKETS; i++)
		for (x = tm->bucket[i]; x != NULL; x = next) {
			next = x->next;
			/* last_seen moved on less than TLSMEM_TOUCH_SECS, or
			 * a write failed: now */
			if (tm->db != NULL && (x->written_seen !=
			    x->e.last_seen || x->written_level != x->e.level) &&
			    db_write(tm, &x->e, err, sizeof(err)) == -1)
				log_warnx("tls-memory: %s", err);
			free(x);
		}
	if (tm->db != NULL) {
		(void)exec(tm, "COMMIT", err, sizeof(err));
		sqlite3_close(tm->db);
	}
	pthread_mutex_destroy(&tm->mtx);
	pthread_mutex_destroy(&tm->db_mtx);
	free(tm->path);
	free(tm);
}

const char *
tls_memory_path(const struct tls_memory *tm)
{
	return tm->path;
}

void
tls_memory_set_workq(struct tls_memory *tm, struct workq *wq)
{
	tm->wq = wq;
}

enum tlsmem_level
tls_memory_get(struct tls_memory *tm, const char *domain, time_t now,
    long long max_age, time_t *last_seen)
{
	enum tlsmem_level l = TLSMEM_NONE;
	struct tm_ent *x;

	pthread_mutex_lock(&tm->mtx);
	if ((x = find(tm, domain)) != NULL &&
	    (long long)(now - x->e.last_seen) <= max_age) {
		l = x->e.level;
		if (last_seen != NULL)
			*last_seen = x->e.last_seen;
	}
	pthread_mutex_unlock(&tm->mtx);
	return l;
}

void
tls_memory_note(struct tls_memory *tm, struct workq_port *port,
    const char *domain, enum tlsmem_level level, time_t now)
{
	struct tm_ent *x;
	int write = 0;

	if (level == TLSMEM_NONE || strlen(domain) >= sizeof(x->e.domain))
		return;
	pthread_mutex_lock(&tm->mtx);
	if ((x = find(tm, domain)) == NULL) {
		x = add(tm, domain);
		x->e.first_seen = now;
		log_info("tls-memory: %s: STARTTLS seen (%s), remembered",
		    domain, tlsmem_level_name(level));
	}
	if (level > x->e.level)
		x->e.level = level;
	if (now > x->e.last_seen)
		x->e.last_seen = now;
	write = x->e.level != x->written_level ||
	    x->e.last_seen - x->written_seen >= TLSMEM_TOUCH_SECS;
	pthread_mutex_unlock(&tm->mtx);
	if (write)
		schedule_write(tm, port, domain);
}

int
tls_memory_forget(struct tls_memory *tm, struct workq_port *port,
    const char *domain)
{
	struct tm_ent **pp, *x;
	int found = 0;

	pthread_mutex_lock(&tm->mtx);
	for (pp = &tm->bucket[hash(domain)]; (x = *pp) != NULL;
	    pp = &x->next)
		if (strcmp(x->e.domain, domain) == 0) {
			*pp = x->next;
			free(x);
			tm->n--;
			found = 1;
			break;
		}
	pthread_mutex_unlock(&tm->mtx);
	if (found)
		schedule_write(tm, port, domain);
	return found;
}

static int
cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct tlsmem_entry *)a)->domain,
	    ((const struct tlsmem_entry *)b)->domain);
}

size_t
tls_memory_foreach(struct tls_memory *tm,
    int (*cb)(const struct tlsmem_entry *e, void *arg), void *arg)
{
	struct tlsmem_entry *v;
	struct tm_ent *x;
	size_t i, n = 0;

	pthread_mutex_lock(&tm->mtx);
	v = xcalloc(tm->n + 1, sizeof(*v));
	for (i = 0; i < TM_BUCKETS; i++)
		for (x = tm->bucket[i]; x != NULL; x = x->next)
			v[n++] = x->e;
	pthread_mutex_unlock(&tm->mtx);
	qsort(v, n, sizeof(*v), cmp_entry);
	for (i = 0; i < n; i++)
		if (cb(&v[i], arg) != 0) {
			i++;
			break;
		}
	free(v);
	return i;
}

unsigned long long
tls_memory_write_errors(struct tls_memory *tm)
{
	unsigned long long n;

	pthread_mutex_lock(&tm->mtx);
	n = tm->write_errors;
	pthread_mutex_unlock(&tm->mtx);
	return n;
}
