/*
 * mta_sts_cache.h - the persistent MTA-STS policy cache (RFC 8461 §3.4):
 * one SQLite database, <state_dir>/mta-sts.db (WAL, busy timeout), one
 * row per policy domain with the policy text as fetched, its id, mode,
 * mx patterns, max_age, fetch time, expiry and the next background
 * refresh time.  Shared by the daemon and `danerelay mta-sts`; every
 * lookup reads the file, so changes by either are seen at once.
 *
 * Entries read back are re-parsed from the stored text (the text is the
 * authority; the mode/mx columns are for people reading the database);
 * a row whose text no longer parses is deleted and reported as absent.
 */
#ifndef DR_MTA_STS_CACHE_H
#define DR_MTA_STS_CACHE_H

#include <stddef.h>
#include <time.h>

#include "mta_sts.h"

#define MTA_STS_DB_NAME		"mta-sts.db"

struct mta_sts_cache;

struct mta_sts_entry {
	char domain[256];		/* lower case A-labels */
	char id[MTA_STS_ID_MAX + 1];
	char *text;			/* policy body as fetched (owned) */
	size_t text_len;
	struct mta_sts_policy policy;	/* parsed from text (owned) */
	time_t fetched_at;
	time_t expires_at;		/* fetched_at + max_age */
	time_t refresh_at;		/* next background refresh */
};

/* Open or create <dir>/mta-sts.db.  NULL + err. */
struct mta_sts_cache *mta_sts_cache_open(const char *dir, char *err,
    size_t errlen);
void mta_sts_cache_close(struct mta_sts_cache *c);
const char *mta_sts_cache_path(const struct mta_sts_cache *c);

/* 1 found (*e filled, mta_sts_entry_clear() it), 0 none, -1 error. */
int mta_sts_cache_get(struct mta_sts_cache *c, const char *domain,
    struct mta_sts_entry *e, char *err, size_t errlen);
/* Insert or replace by domain.  0 ok, -1 error. */
int mta_sts_cache_put(struct mta_sts_cache *c, const struct mta_sts_entry *e,
    char *err, size_t errlen);
/* Only the refresh time of an existing row.  0 ok, -1 error. */
int mta_sts_cache_set_refresh(struct mta_sts_cache *c, const char *domain,
    time_t refresh_at, char *err, size_t errlen);
/* 1 deleted, 0 there was none, -1 error. */
int mta_sts_cache_delete(struct mta_sts_cache *c, const char *domain,
    char *err, size_t errlen);
/* Delete rows that expired before `before`.  Count or -1. */
int mta_sts_cache_purge(struct mta_sts_cache *c, time_t before, char *err,
    size_t errlen);

/*
 * Domains whose refresh_at <= now and that have not expired, at most max
 * of them, into out[] (each strdup'ed, caller frees).  Count or -1.
 */
int mta_sts_cache_due(struct mta_sts_cache *c, time_t now, char **out,
    size_t max, char *err, size_t errlen);
/* The earliest refresh_at of an unexpired row; 0 if none; -1 error. */
long long mta_sts_cache_next_refresh(struct mta_sts_cache *c, char *err,
    size_t errlen);

/* Every row in domain order: cb returns 0 to go on.  Count or -1. */
/* Rows in the cache (expired ones too, until purged).  Count or -1. */
long long mta_sts_cache_count(struct mta_sts_cache *c, char *err,
    size_t errlen);
int mta_sts_cache_foreach(struct mta_sts_cache *c,
    int (*cb)(const struct mta_sts_entry *e, void *arg), void *arg,
    char *err, size_t errlen);

void mta_sts_entry_clear(struct mta_sts_entry *e);

#endif
