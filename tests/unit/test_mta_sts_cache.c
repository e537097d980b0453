/*
 * test_mta_sts_cache.c - the SQLite MTA-STS policy cache
 * (src/mta_sts_cache.c): store, read back after reopening (restart),
 * replace, refresh scheduling, delete, purge of expired rows, a row whose
 * text no longer parses is dropped, the file is 0600 and a second handle
 * (the CLI next to the daemon) sees changes at once; a file of a newer
 * schema version is refused.
 */
#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "mta_sts_cache.h"
#include "util.h"
#include "t.h"

static const char pol1[] = "version: STSv1\r\nmode: enforce\r\n"
    "mx: mx.example.test\r\nmx: *.backup.example.test\r\nmax_age: 600\r\n";
static const char pol2[] = "version: STSv1\nmode: testing\nmx: mx2.test\n"
    "max_age: 86400\n";

static void
entry(struct mta_sts_entry *e, const char *domain, const char *id,
    const char *text, time_t fetched)
{
	char err[256];

	memset(e, 0, sizeof(*e));
	dr_strlcpy(e->domain, domain, sizeof(e->domain));
	dr_strlcpy(e->id, id, sizeof(e->id));
	e->text = xstrdup(text);
	e->text_len = strlen(text);
	CHECK(mta_sts_policy_parse(e->text, e->text_len, &e->policy, err,
	    sizeof(err)) == 0);
	e->fetched_at = fetched;
	e->expires_at = fetched + e->policy.max_age;
	e->refresh_at = fetched + e->policy.max_age / 2;
}

static int
count_cb(const struct mta_sts_entry *e, void *arg)
{
	(*(int *)arg)++;
	return 0;
}

int
main(void)
{
	char dir[] = "/tmp/test_mta_sts_cache.XXXXXX";
	char err[512], path[600], *due[8];
	struct mta_sts_cache *c, *c2;
	struct mta_sts_entry e, g;
	struct stat st;
	time_t now = time(NULL);
	int n, i;

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	c = mta_sts_cache_open(dir, err, sizeof(err));
	CHECK(c != NULL);
	if (c == NULL) {
		fprintf(stderr, "%s\n", err);
		return t_done();
	}
	snprintf(path, sizeof(path), "%s/mta-sts.db", dir);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);

	CHECK(mta_sts_cache_get(c, "example.test", &g, err, sizeof(err)) == 0);
	entry(&e, "example.test", "20240101", pol1, now);
	CHECK(mta_sts_cache_put(c, &e, err, sizeof(err)) == 0);
	mta_sts_entry_clear(&e);
	entry(&e, "other.test", "a1", pol2, now - 100);
	e.refresh_at = now - 1;		/* due */
	CHECK(mta_sts_cache_put(c, &e, err, sizeof(err)) == 0);
	mta_sts_entry_clear(&e);

	/* a second handle sees it at once; so does a reopened one */
	c2 = mta_sts_cache_open(dir, err, sizeof(err));
	CHECK(c2 != NULL);
	CHECK(mta_sts_cache_get(c2, "example.test", &g, err, sizeof(err)) == 1);
	CHECK_STR(g.id, "20240101");
	CHECK(g.policy.mode == MTA_STS_MODE_ENFORCE);
	CHECK(g.policy.nmx == 2);
	CHECK(g.fetched_at == now && g.expires_at == now + 600);
	CHECK(g.text_len == strlen(pol1) && memcmp(g.text, pol1,
	    g.text_len) == 0);
	mta_sts_entry_clear(&g);
	mta_sts_cache_close(c2);
	mta_sts_cache_close(c);
	c = mta_sts_cache_open(dir, err, sizeof(err));
	CHECK(c != NULL);
	CHECK(mta_sts_cache_get(c, "other.test", &g, err, sizeof(err)) == 1);
	CHECK(g.policy.mode == MTA_STS_MODE_TESTING);
	mta_sts_entry_clear(&g);

	/* refresh scheduling */
	n = mta_sts_cache_due(c, now, due, 8, err, sizeof(err));
	CHECK(n == 1);
	if (n == 1) {
		CHECK_STR(due[0], "other.test");
		free(due[0]);
	}
	CHECK(mta_sts_cache_next_refresh(c, err, sizeof(err)) == now - 1);
	CHECK(mta_sts_cache_set_refresh(c, "other.test", now + 50, err,
	    sizeof(err)) == 0);
	CHECK(mta_sts_cache_due(c, now, due, 8, err, sizeof(err)) == 0);
	CHECK(mta_sts_cache_next_refresh(c, err, sizeof(err)) == now + 50);

	/* replace by domain */
	entry(&e, "example.test", "20240202", pol2, now);
	CHECK(mta_sts_cache_put(c, &e, err, sizeof(err)) == 0);
	mta_sts_entry_clear(&e);
	CHECK(mta_sts_cache_get(c, "example.test", &g, err, sizeof(err)) == 1);
	CHECK_STR(g.id, "20240202");
	CHECK(g.policy.mode == MTA_STS_MODE_TESTING);
	mta_sts_entry_clear(&g);
	n = 0;
	CHECK(mta_sts_cache_foreach(c, count_cb, &n, err, sizeof(err)) == 2);
	CHECK(n == 2);

	/* a row whose text does not parse is dropped on read */
	entry(&e, "broken.test", "x", pol1, now);
	free(e.text);
	e.text = xstrdup("garbage");
	e.text_len = 7;
	CHECK(mta_sts_cache_put(c, &e, err, sizeof(err)) == 0);
	mta_sts_entry_clear(&e);
	CHECK(mta_sts_cache_get(c, "broken.test", &g, err, sizeof(err)) == 0);
	CHECK(mta_sts_cache_delete(c, "broken.test", err, sizeof(err)) == 0);

	/* delete and purge */
	CHECK(mta_sts_cache_delete(c, "example.test", err, sizeof(err)) == 1);
	CHECK(mta_sts_cache_delete(c, "example.test", err, sizeof(err)) == 0);
	CHECK(mta_sts_cache_purge(c, now, err, sizeof(err)) == 0);
	CHECK(mta_sts_cache_purge(c, now + 86400, err, sizeof(err)) == 1);
	CHECK(mta_sts_cache_get(c, "other.test", &g, err, sizeof(err)) == 0);
	CHECK(mta_sts_cache_next_refresh(c, err, sizeof(err)) == 0);
	mta_sts_cache_close(c);

	/* a directory we cannot use is an error with a reason */
	err[0] = '\0';
	CHECK(mta_sts_cache_open("/nonexistent/dir", err, sizeof(err)) ==
	    NULL);
	CHECK(strstr(err, "/nonexistent/dir/mta-sts.db") != NULL);

	/* a file from a newer danerelay (its schema version) is refused */
	{
		sqlite3 *db = NULL;

		snprintf(path, sizeof(path), "%s/mta-sts.db", dir);
		CHECK(sqlite3_open(path, &db) == SQLITE_OK &&
		    sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL,
		    NULL) == SQLITE_OK);
		sqlite3_close(db);
		err[0] = '\0';
		CHECK(mta_sts_cache_open(dir, err, sizeof(err)) == NULL);
		CHECK(strstr(err, "made by a newer danerelay (schema 99)") !=
		    NULL);
	}

	for (i = 0; i < 3; i++) {
		static const char *const sfx[] = { "", "-wal", "-shm" };

		snprintf(path, sizeof(path), "%s/mta-sts.db%s", dir, sfx[i]);
		unlink(path);
	}
	rmdir(dir);
	return t_done();
}
