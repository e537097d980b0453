/*
 * tlsrpt_db.c - SMTP TLS Reporting (RFC 8460): the clock and UTC days,
 * and the database <state_dir>/tlsrpt.db that the recording side
 * (tlsrpt_record.c), the report runs (tlsrpt_report.c), the schedule
 * (tlsrpt_sched.c) and the CLI (cli_tlsrpt.c) share.
 *
 * Database (WAL, so the CLI reads while the daemon writes):
 *   policy   (day, domain, type, strings, mx) -> success, failure counts;
 *            strings and mx are the policy-string / mx-host lists joined
 *            with "\n" (their elements never contain one)
 *   failure  (policy, result, sending_ip, mx, receiving_ip, reason) ->
 *            count; "" for an unknown field (UNIQUE needs non-NULL)
 *   report, dest   what was sent (tlsrpt_report.c)
 *   request  `danerelay tlsrpt send` asking the running daemon: the CLI
 *            inserts a row, the daemon (polling PRAGMA data_version every
 *            second) runs it and writes done/nerrors/output; the CLI
 *            waits for that and prints the output.  This needs nothing
 *            from the control socket and survives a daemon restart.
 * Rows older than TLSRPT_KEEP_DAYS are deleted by the hourly schedule
 * (tlsrpt_db_purge()).
 *
 * Moved out of tlsrpt.c unchanged (issue #15); the purge's SQL was
 * purge_old() there.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "tlsrpt_db.h"
#include "util.h"

/* ---- clock and days ------------------------------------------------------ */

static time_t (*clock_fn)(void);

void
tlsrpt_set_clock(time_t (*now)(void))
{
	clock_fn = now;
}

time_t
tlsrpt_now(void)
{
	return clock_fn != NULL ? clock_fn() : time(NULL);
}

void
tlsrpt_day(time_t t, char out[11])
{
	struct tm tm;

	if (t < 0 || t > (time_t)253402300799LL)	/* 9999-12-31 */
		t = 0;
	gmtime_r(&t, &tm);
	if (strftime(out, 11, "%Y-%m-%d", &tm) != 10)
		dr_strlcpy(out, "1970-01-01", 11);
}

int
tlsrpt_day_parse(const char *s, time_t *start)
{
	struct tm tm;
	char back[11];
	int i;
	time_t t;

	if (s == NULL || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return -1;
	for (i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = atoi(s) - 1900;
	tm.tm_mon = atoi(s + 5) - 1;
	tm.tm_mday = atoi(s + 8);
	if (tm.tm_year < 70 || tm.tm_mon < 0 || tm.tm_mon > 11 ||
	    tm.tm_mday < 1 || tm.tm_mday > 31)
		return -1;
	if ((t = timegm(&tm)) == (time_t)-1)
		return -1;
	tlsrpt_day(t, back);		/* 2024-02-31 is not a day */
	if (strcmp(back, s) != 0)
		return -1;
	*start = t;
	return 0;
}

/* ---- the database -------------------------------------------------------- */

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS policy ("
	" id INTEGER PRIMARY KEY,"
	" day TEXT NOT NULL, domain TEXT NOT NULL, type TEXT NOT NULL,"
	" strings TEXT NOT NULL, mx TEXT NOT NULL,"
	" success INTEGER NOT NULL DEFAULT 0,"
	" failure INTEGER NOT NULL DEFAULT 0,"
	" UNIQUE (day, domain, type, strings, mx));"
	"CREATE TABLE IF NOT EXISTS failure ("
	" policy INTEGER NOT NULL REFERENCES policy(id) ON DELETE CASCADE,"
	" result TEXT NOT NULL, sending_ip TEXT NOT NULL, mx TEXT NOT NULL,"
	" receiving_ip TEXT NOT NULL, reason TEXT NOT NULL,"
	" count INTEGER NOT NULL,"
	" UNIQUE (policy, result, sending_ip, mx, receiving_ip, reason));"
	"CREATE TABLE IF NOT EXISTS report ("
	" day TEXT NOT NULL, domain TEXT NOT NULL, state TEXT NOT NULL,"
	" report_id TEXT, gz BLOB, created INTEGER NOT NULL, note TEXT,"
	" PRIMARY KEY (day, domain));"
	"CREATE TABLE IF NOT EXISTS dest ("
	" day TEXT NOT NULL, domain TEXT NOT NULL, uri TEXT NOT NULL,"
	" state TEXT NOT NULL, tries INTEGER NOT NULL DEFAULT 0,"
	" next_try INTEGER NOT NULL DEFAULT 0, note TEXT,"
	" PRIMARY KEY (day, domain, uri));"
	"CREATE TABLE IF NOT EXISTS request ("
	" id INTEGER PRIMARY KEY, day TEXT, created INTEGER NOT NULL,"
	" done INTEGER NOT NULL DEFAULT 0, nerrors INTEGER, output TEXT);"
	"PRAGMA user_version = 1;";

int
tlsrpt_db_exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

sqlite3 *
tlsrpt_db_open(const char *state_dir, int create, int busy_ms, char *err,
    size_t errlen)
{
	sqlite3 *db = NULL;
	char *path;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX;

	if (state_dir == NULL || *state_dir == '\0') {
		snprintf(err, errlen, "state_dir is not set");
		return NULL;
	}
	path = xasprintf("%s/%s", state_dir, TLSRPT_DB_NAME);
	if (create)
		flags |= SQLITE_OPEN_CREATE;
	if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, db ? sqlite3_errmsg(db) :
		    "cannot open");
		goto fail;
	}
	sqlite3_busy_timeout(db, busy_ms);
	sqlite3_extended_result_codes(db, 1);
	if (tlsrpt_db_exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = "
	    "NORMAL; PRAGMA foreign_keys = ON;", err, errlen) == -1 ||
	    tlsrpt_db_exec(db, schema, err, errlen) == -1) {
		char tmp[512];

		snprintf(tmp, sizeof(tmp), "%s: %s", path, err);
		dr_strlcpy(err, tmp, errlen);
		goto fail;
	}
	free(path);
	return db;
fail:
	free(path);
	sqlite3_close(db);
	return NULL;
}

sqlite3 *
tlsrpt_db_memory(char *err, size_t errlen)
{
	sqlite3 *db = NULL;

	if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "in-memory database: %s", db ?
		    sqlite3_errmsg(db) : "cannot open");
		sqlite3_close(db);
		return NULL;
	}
	if (tlsrpt_db_exec(db, "PRAGMA foreign_keys = ON;", err, errlen) == -1 ||
	    tlsrpt_db_exec(db, schema, err, errlen) == -1) {
		sqlite3_close(db);
		return NULL;
	}
	return db;
}

/* ---- keeping TLSRPT_KEEP_DAYS --------------------------------------------- */

int
tlsrpt_db_purge(sqlite3 *db, char *err, size_t errlen)
{
	char day[11], *sql;
	int rc;

	tlsrpt_day(tlsrpt_now() - (time_t)TLSRPT_KEEP_DAYS * 86400, day);
	sql = xasprintf("DELETE FROM failure WHERE policy IN (SELECT id FROM "
	    "policy WHERE day < '%s'); DELETE FROM policy WHERE day < '%s'; "
	    "DELETE FROM report WHERE day < '%s'; DELETE FROM dest WHERE "
	    "day < '%s'; DELETE FROM request WHERE created < %lld;", day,
	    day, day, day, (long long)tlsrpt_now() - 7 * 86400);
	rc = tlsrpt_db_exec(db, sql, err, errlen);
	free(sql);
	return rc;
}
