/*
 * mta_sts_cache.c - the MTA-STS policy cache (RFC 8461 §3.4 "Caching"),
 * one SQLite database at <state_dir>/mta-sts.db.
 *
 * Owns the sqlite3 handle (opened by state_sqlite_open()).  The daemon
 * and `danerelay mta-sts` open the same file: WAL journal (readers never block the writer), a busy
 * timeout for the rare moment both write, synchronous=NORMAL (a policy
 * lost in a power cut is simply fetched again).  Every statement is
 * prepared with bound parameters; nothing read from the network is ever
 * pasted into SQL text.
 *
 * The policy text as fetched is the authority: rows are re-parsed on
 * every read (mta_sts_policy_parse()), so a stored policy is held to
 * exactly the rules of a fresh one.  The mode and mx columns only make
 * the file readable with the sqlite3 shell.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "log.h"
#include "mta_sts_cache.h"
#include "state_sqlite.h"
#include "util.h"

#define CACHE_BUSY_MS	2000
#define CACHE_VERSION	1

struct mta_sts_cache {
	sqlite3 *db;
	char *path;
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS mta_sts_policy ("
    " domain TEXT PRIMARY KEY NOT NULL,"
    " id TEXT NOT NULL,"
    " mode TEXT NOT NULL,"
    " mx TEXT NOT NULL,"
    " max_age INTEGER NOT NULL,"
    " policy BLOB NOT NULL,"
    " fetched_at INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL,"
    " refresh_at INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS mta_sts_policy_refresh"
    " ON mta_sts_policy(refresh_at);";

static void
dberr(struct mta_sts_cache *c, char *err, size_t errlen, const char *what)
{
	snprintf(err, errlen, "%s: %s: %s", c->path, what,
	    sqlite3_errmsg(c->db));
}

static sqlite3_stmt *
prepare(struct mta_sts_cache *c, const char *sql, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) {
		dberr(c, err, errlen, "prepare");
		return NULL;
	}
	return st;
}

struct mta_sts_cache *
mta_sts_cache_open(const char *dir, char *err, size_t errlen)
{
	struct mta_sts_cache *c = xcalloc(1, sizeof(*c));

	c->path = xasprintf("%s/%s", dir, MTA_STS_DB_NAME);
	if ((c->db = state_sqlite_open(dir, MTA_STS_DB_NAME, schema,
	    CACHE_VERSION, CACHE_BUSY_MS, err, errlen)) == NULL)
		goto fail;
	return c;
fail:
	mta_sts_cache_close(c);
	return NULL;
}

void
mta_sts_cache_close(struct mta_sts_cache *c)
{
	if (c == NULL)
		return;
	if (c->db != NULL)
		sqlite3_close(c->db);
	free(c->path);
	free(c);
}

const char *
mta_sts_cache_path(const struct mta_sts_cache *c)
{
	return c->path;
}

void
mta_sts_entry_clear(struct mta_sts_entry *e)
{
	if (e == NULL)
		return;
	free(e->text);
	mta_sts_policy_clear(&e->policy);
	memset(e, 0, sizeof(*e));
}

/* Row (domain, id, policy, fetched_at, expires_at, refresh_at) -> *e.
 * 0 ok, -1 the stored text does not parse (reason in err). */
static int
row_to_entry(sqlite3_stmt *st, struct mta_sts_entry *e, char *err,
    size_t errlen)
{
	const unsigned char *d = sqlite3_column_text(st, 0);
	const unsigned char *id = sqlite3_column_text(st, 1);
	const void *text = sqlite3_column_blob(st, 2);
	int len = sqlite3_column_bytes(st, 2);

	memset(e, 0, sizeof(*e));
	dr_strlcpy(e->domain, d ? (const char *)d : "", sizeof(e->domain));
	dr_strlcpy(e->id, id ? (const char *)id : "", sizeof(e->id));
	e->text_len = len > 0 ? (size_t)len : 0;
	e->text = xmalloc(e->text_len + 1);
	if (e->text_len > 0)
		memcpy(e->text, text, e->text_len);
	e->text[e->text_len] = '\0';
	e->fetched_at = (time_t)sqlite3_column_int64(st, 3);
	e->expires_at = (time_t)sqlite3_column_int64(st, 4);
	e->refresh_at = (time_t)sqlite3_column_int64(st, 5);
	if (mta_sts_policy_parse(e->text, e->text_len, &e->policy, err,
	    errlen) == -1)
		return -1;
	return 0;
}

int
mta_sts_cache_get(struct mta_sts_cache *c, const char *domain,
    struct mta_sts_entry *e, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	char why[256];
	int r, rc;

	memset(e, 0, sizeof(*e));
	if ((st = prepare(c, "SELECT domain, id, policy, fetched_at, "
	    "expires_at, refresh_at FROM mta_sts_policy WHERE domain = ?1",
	    err, errlen)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, domain, -1, SQLITE_STATIC);
	r = sqlite3_step(st);
	if (r == SQLITE_DONE)
		rc = 0;
	else if (r != SQLITE_ROW) {
		dberr(c, err, errlen, "read");
		rc = -1;
	} else if (row_to_entry(st, e, why, sizeof(why)) == -1) {
		log_warnx("mta-sts: cached policy of %s does not parse any "
		    "more (%s); dropping it", domain, why);
		mta_sts_entry_clear(e);
		sqlite3_finalize(st);
		st = NULL;
		mta_sts_cache_delete(c, domain, err, errlen);
		rc = 0;
	} else
		rc = 1;
	sqlite3_finalize(st);
	return rc;
}

int
mta_sts_cache_put(struct mta_sts_cache *c, const struct mta_sts_entry *e,
    char *err, size_t errlen)
{
	sqlite3_stmt *st;
	char *mx = NULL;
	size_t i, len = 0;
	int r;

	for (i = 0; i < e->policy.nmx; i++) {
		size_t l = strlen(e->policy.mx[i]);

		mx = xrealloc(mx, len + l + 2);
		if (len > 0)
			mx[len++] = ' ';
		memcpy(mx + len, e->policy.mx[i], l);
		len += l;
	}
	if (mx == NULL)
		mx = xstrdup("");
	else
		mx[len] = '\0';
	if ((st = prepare(c, "INSERT OR REPLACE INTO mta_sts_policy (domain, "
	    "id, mode, mx, max_age, policy, fetched_at, expires_at, "
	    "refresh_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)", err,
	    errlen)) == NULL) {
		free(mx);
		return -1;
	}
	sqlite3_bind_text(st, 1, e->domain, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, e->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, mta_sts_mode_name(e->policy.mode), -1,
	    SQLITE_STATIC);
	sqlite3_bind_text(st, 4, mx, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, e->policy.max_age);
	sqlite3_bind_blob(st, 6, e->text ? e->text : "", (int)e->text_len,
	    SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)e->fetched_at);
	sqlite3_bind_int64(st, 8, (sqlite3_int64)e->expires_at);
	sqlite3_bind_int64(st, 9, (sqlite3_int64)e->refresh_at);
	r = sqlite3_step(st);
	if (r != SQLITE_DONE)
		dberr(c, err, errlen, "write");
	sqlite3_finalize(st);
	free(mx);
	return r == SQLITE_DONE ? 0 : -1;
}

int
mta_sts_cache_set_refresh(struct mta_sts_cache *c, const char *domain,
    time_t refresh_at, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int r;

	if ((st = prepare(c, "UPDATE mta_sts_policy SET refresh_at = ?1 "
	    "WHERE domain = ?2", err, errlen)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)refresh_at);
	sqlite3_bind_text(st, 2, domain, -1, SQLITE_STATIC);
	r = sqlite3_step(st);
	if (r != SQLITE_DONE)
		dberr(c, err, errlen, "write");
	sqlite3_finalize(st);
	return r == SQLITE_DONE ? 0 : -1;
}

int
mta_sts_cache_delete(struct mta_sts_cache *c, const char *domain, char *err,
    size_t errlen)
{
	sqlite3_stmt *st;
	int r;

	if ((st = prepare(c, "DELETE FROM mta_sts_policy WHERE domain = ?1",
	    err, errlen)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, domain, -1, SQLITE_STATIC);
	r = sqlite3_step(st);
	if (r != SQLITE_DONE)
		dberr(c, err, errlen, "delete");
	sqlite3_finalize(st);
	if (r != SQLITE_DONE)
		return -1;
	return sqlite3_changes(c->db) > 0 ? 1 : 0;
}

int
mta_sts_cache_purge(struct mta_sts_cache *c, time_t before, char *err,
    size_t errlen)
{
	sqlite3_stmt *st;
	int r;

	if ((st = prepare(c, "DELETE FROM mta_sts_policy WHERE expires_at < "
	    "?1", err, errlen)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)before);
	r = sqlite3_step(st);
	if (r != SQLITE_DONE)
		dberr(c, err, errlen, "purge");
	sqlite3_finalize(st);
	return r == SQLITE_DONE ? sqlite3_changes(c->db) : -1;
}

int
mta_sts_cache_due(struct mta_sts_cache *c, time_t now, char **out,
    size_t max, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	size_t n = 0;
	int r;

	if ((st = prepare(c, "SELECT domain FROM mta_sts_policy WHERE "
	    "refresh_at <= ?1 AND expires_at > ?1 ORDER BY refresh_at LIMIT "
	    "?2", err, errlen)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)now);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)(max > INT_MAX ? INT_MAX :
	    max));
	while ((r = sqlite3_step(st)) == SQLITE_ROW && n < max) {
		const unsigned char *d = sqlite3_column_text(st, 0);

		out[n++] = xstrdup(d ? (const char *)d : "");
	}
	if (r != SQLITE_ROW && r != SQLITE_DONE) {
		dberr(c, err, errlen, "read");
		while (n > 0)
			free(out[--n]);
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	return (int)n;
}

long long
mta_sts_cache_next_refresh(struct mta_sts_cache *c, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	long long t = 0;
	int r;

	if ((st = prepare(c, "SELECT MIN(refresh_at) FROM mta_sts_policy "
	    "WHERE expires_at > ?1", err, errlen)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)time(NULL));
	r = sqlite3_step(st);
	if (r == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		t = sqlite3_column_int64(st, 0);
	else if (r != SQLITE_ROW && r != SQLITE_DONE) {
		dberr(c, err, errlen, "read");
		t = -1;
	}
	sqlite3_finalize(st);
	return t;
}

long long
mta_sts_cache_count(struct mta_sts_cache *c, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	long long n = -1;

	if ((st = prepare(c, "SELECT COUNT(*) FROM mta_sts_policy", err,
	    errlen)) == NULL)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	else
		dberr(c, err, errlen, "read");
	sqlite3_finalize(st);
	return n;
}

int
mta_sts_cache_foreach(struct mta_sts_cache *c,
    int (*cb)(const struct mta_sts_entry *e, void *arg), void *arg,
    char *err, size_t errlen)
{
	struct mta_sts_entry e;
	sqlite3_stmt *st;
	char why[256];
	int r, n = 0, stop = 0;

	if ((st = prepare(c, "SELECT domain, id, policy, fetched_at, "
	    "expires_at, refresh_at FROM mta_sts_policy ORDER BY domain",
	    err, errlen)) == NULL)
		return -1;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		if (row_to_entry(st, &e, why, sizeof(why)) == -1) {
			mta_sts_entry_clear(&e);
			continue;	/* get() drops it when asked */
		}
		n++;
		stop = cb(&e, arg);
		mta_sts_entry_clear(&e);
		if (stop)
			break;
	}
	if (!stop && r != SQLITE_DONE) {
		dberr(c, err, errlen, "read");
		n = -1;
	}
	sqlite3_finalize(st);
	return n;
}
