/*
 * mta_sts_cache.c - MTA-STS policy cache in SQLite (stub, being written).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mta_sts_cache.h"

struct mta_sts_cache *
mta_sts_cache_open(const char *dir, char *err, size_t errlen)
{
	snprintf(err, errlen, "mta-sts cache: not implemented yet");
	return NULL;
}

void mta_sts_cache_close(struct mta_sts_cache *c) { }
const char *mta_sts_cache_path(const struct mta_sts_cache *c) { return ""; }
int mta_sts_cache_get(struct mta_sts_cache *c, const char *domain,
    struct mta_sts_entry *e, char *err, size_t errlen) { return -1; }
int mta_sts_cache_put(struct mta_sts_cache *c, const struct mta_sts_entry *e,
    char *err, size_t errlen) { return -1; }
int mta_sts_cache_set_refresh(struct mta_sts_cache *c, const char *domain,
    time_t refresh_at, char *err, size_t errlen) { return -1; }
int mta_sts_cache_delete(struct mta_sts_cache *c, const char *domain,
    char *err, size_t errlen) { return -1; }
int mta_sts_cache_purge(struct mta_sts_cache *c, time_t before, char *err,
    size_t errlen) { return -1; }
int mta_sts_cache_due(struct mta_sts_cache *c, time_t now, char **out,
    size_t max, char *err, size_t errlen) { return -1; }
long long mta_sts_cache_next_refresh(struct mta_sts_cache *c, char *err,
    size_t errlen) { return -1; }
int mta_sts_cache_foreach(struct mta_sts_cache *c,
    int (*cb)(const struct mta_sts_entry *e, void *arg), void *arg,
    char *err, size_t errlen) { return -1; }
void
mta_sts_entry_clear(struct mta_sts_entry *e)
{
	if (e == NULL)
		return;
	free(e->text);
	mta_sts_policy_clear(&e->policy);
	memset(e, 0, sizeof(*e));
}
