/*
 * tlsrpt_pg.c - SMTP TLS Reporting (RFC 8460) with the counters of
 * several relays on PostgreSQL (issue #19).
 *
 * The report run (tlsrpt_report.c) and `danerelay tlsrpt show` read and
 * write a database with tlsrpt.db's schema (tlsrpt_db.c).  With a
 * PostgreSQL backend they get an in-memory SQLite database loaded from
 * PostgreSQL's tlsrpt_* tables (tlsrpt_pg_load(): the sums of every
 * relay's counters, what was sent already), and the elected sender
 * writes back the report and destination rows its run changed
 * (tlsrpt_pg_store(), in the transaction that holds the sender's
 * advisory lock: tlsrpt_sched.c).  Temporary triggers remember which
 * (day, domain) pairs changed, so a run writes back only those.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "state_pg.h"
#include "tlsrpt_db.h"
#include "tlsrpt_pg.h"
#include "util.h"

#define WHERE_DAY \
	" WHERE ($1 <> '' AND day = $1) OR ($1 = '' AND day >= $2)"

static const char dirty_sql[] =
	"CREATE TEMP TABLE dirty (day TEXT NOT NULL, domain TEXT NOT NULL,"
	" PRIMARY KEY (day, domain));"
	"CREATE TEMP TRIGGER report_ins AFTER INSERT ON report BEGIN"
	" INSERT OR IGNORE INTO dirty VALUES (new.day, new.domain); END;"
	"CREATE TEMP TRIGGER report_upd AFTER UPDATE ON report BEGIN"
	" INSERT OR IGNORE INTO dirty VALUES (new.day, new.domain); END;"
	"CREATE TEMP TRIGGER dest_ins AFTER INSERT ON dest BEGIN"
	" INSERT OR IGNORE INTO dirty VALUES (new.day, new.domain); END;"
	"CREATE TEMP TRIGGER dest_upd AFTER UPDATE ON dest BEGIN"
	" INSERT OR IGNORE INTO dirty VALUES (new.day, new.domain); END;";

/* Copy the rows of one PostgreSQL query into one SQLite INSERT: column
 * i of the result is parameter i+1; bytea columns (blob_col, -1 none)
 * are unescaped. */
static int
copy_rows(PGconn *pg, sqlite3 *db, const char *pgsql, const char *const *pv,
    const char *ins, int blob_col, char *err, size_t errlen)
{
	PGresult *r;
	sqlite3_stmt *s = NULL;
	int i, j, nf, rc = -1;

	if ((r = state_pg_query(pg, pgsql, 2, pv, err, errlen)) == NULL)
		return -1;
	if (sqlite3_prepare_v2(db, ins, -1, &s, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
		goto out;
	}
	nf = PQnfields(r);
	for (i = 0; i < PQntuples(r); i++) {
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
		for (j = 0; j < nf; j++) {
			if (PQgetisnull(r, i, j))
				continue;	/* NULL */
			if (j == blob_col) {
				size_t n;
				unsigned char *b = PQunescapeBytea(
				    (const unsigned char *)PQgetvalue(r, i, j),
				    &n);

				if (b == NULL)
					continue;
				sqlite3_bind_blob(s, j + 1, b, (int)n,
				    SQLITE_TRANSIENT);
				PQfreemem(b);
			} else
				sqlite3_bind_text(s, j + 1, PQgetvalue(r, i, j),
				    -1, SQLITE_TRANSIENT);
		}
		if (sqlite3_step(s) != SQLITE_DONE) {
			snprintf(err, errlen, "%s", sqlite3_errmsg(db));
			goto out;
		}
	}
	rc = 0;
out:
	sqlite3_finalize(s);
	PQclear(r);
	return rc;
}

sqlite3 *
tlsrpt_pg_load(PGconn *pg, const char *day, const char *oldest, char *err,
    size_t errlen)
{
	const char *pv[2] = { day != NULL ? day : "", oldest };
	sqlite3 *db;

	if ((db = tlsrpt_db_memory(err, errlen)) == NULL)
		return NULL;
	if (tlsrpt_db_exec(db, "BEGIN", err, errlen) == -1 ||
	    copy_rows(pg, db, "SELECT id, day, domain, type, strings, mx, "
	    "success, failure FROM tlsrpt_policy" WHERE_DAY, pv,
	    "INSERT INTO policy (id, day, domain, type, strings, mx, success, "
	    "failure) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)", -1, err,
	    errlen) == -1 ||
	    copy_rows(pg, db, "SELECT policy, result, sending_ip, mx, "
	    "receiving_ip, reason, count FROM tlsrpt_failure WHERE policy IN "
	    "(SELECT id FROM tlsrpt_policy" WHERE_DAY ")", pv,
	    "INSERT INTO failure (policy, result, sending_ip, mx, "
	    "receiving_ip, reason, count) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	    -1, err, errlen) == -1 ||
	    copy_rows(pg, db, "SELECT day, domain, state, report_id, gz, "
	    "created, note FROM tlsrpt_report" WHERE_DAY, pv,
	    "INSERT INTO report (day, domain, state, report_id, gz, created, "
	    "note) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", 4, err,
	    errlen) == -1 ||
	    copy_rows(pg, db, "SELECT day, domain, uri, state, tries, "
	    "next_try, note FROM tlsrpt_dest" WHERE_DAY, pv,
	    "INSERT INTO dest (day, domain, uri, state, tries, next_try, "
	    "note) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", -1, err,
	    errlen) == -1 ||
	    tlsrpt_db_exec(db, "COMMIT", err, errlen) == -1 ||
	    tlsrpt_db_exec(db, dirty_sql, err, errlen) == -1) {
		sqlite3_close(db);
		return NULL;
	}
	return db;
}

static const char *
col(sqlite3_stmt *s, int i)
{
	return sqlite3_column_type(s, i) == SQLITE_NULL ? NULL :
	    (const char *)sqlite3_column_text(s, i);
}

int
tlsrpt_pg_store(PGconn *pg, sqlite3 *db, const char *sender, char *err,
    size_t errlen)
{
	sqlite3_stmt *s = NULL;
	PGresult *r;
	int rc;

	if (sqlite3_prepare_v2(db, "SELECT r.day, r.domain, r.state, "
	    "r.report_id, r.gz, r.created, r.note FROM report r JOIN dirty d "
	    "ON d.day = r.day AND d.domain = r.domain", -1, &s,
	    NULL) != SQLITE_OK)
		goto dberr;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *pv[8];
		int len[8] = { 0 }, fmt[8] = { 0 };

		pv[0] = col(s, 0);
		pv[1] = col(s, 1);
		pv[2] = col(s, 2);
		pv[3] = col(s, 3);
		pv[4] = sqlite3_column_type(s, 4) == SQLITE_BLOB ?
		    sqlite3_column_blob(s, 4) : NULL;
		len[4] = sqlite3_column_bytes(s, 4);
		fmt[4] = 1;
		pv[5] = col(s, 5);
		pv[6] = col(s, 6);
		pv[7] = sender;
		r = PQexecParams(pg, "INSERT INTO tlsrpt_report (day, domain, "
		    "state, report_id, gz, created, note, sender) VALUES ($1, "
		    "$2, $3, $4, $5, $6, $7, $8) ON CONFLICT (day, domain) DO "
		    "UPDATE SET state = excluded.state, report_id = "
		    "excluded.report_id, gz = excluded.gz, created = "
		    "excluded.created, note = excluded.note, sender = "
		    "excluded.sender", 8, NULL, pv, len, fmt, 0);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			snprintf(err, errlen, "%s", PQerrorMessage(pg));
			PQclear(r);
			goto fail;
		}
		PQclear(r);
	}
	if (rc != SQLITE_DONE)
		goto dberr;
	sqlite3_finalize(s);
	if (sqlite3_prepare_v2(db, "SELECT t.day, t.domain, t.uri, t.state, "
	    "t.tries, t.next_try, t.note FROM dest t JOIN dirty d ON d.day = "
	    "t.day AND d.domain = t.domain", -1, &s, NULL) != SQLITE_OK)
		goto dberr;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *pv[7];
		int i;

		for (i = 0; i < 7; i++)
			pv[i] = col(s, i);
		if ((r = state_pg_query(pg, "INSERT INTO tlsrpt_dest (day, "
		    "domain, uri, state, tries, next_try, note) VALUES ($1, "
		    "$2, $3, $4, $5, $6, $7) ON CONFLICT (day, domain, uri) DO "
		    "UPDATE SET state = excluded.state, tries = "
		    "excluded.tries, next_try = excluded.next_try, note = "
		    "excluded.note", 7, pv, err, errlen)) == NULL)
			goto fail;
		PQclear(r);
	}
	if (rc != SQLITE_DONE)
		goto dberr;
	sqlite3_finalize(s);
	return 0;
dberr:
	snprintf(err, errlen, "%s", sqlite3_errmsg(db));
fail:
	sqlite3_finalize(s);
	return -1;
}

int
tlsrpt_pg_purge(PGconn *pg, char *err, size_t errlen)
{
	char day[11];
	const char *pv[1] = { day };
	PGresult *r;

	tlsrpt_day(tlsrpt_now() - (time_t)TLSRPT_KEEP_DAYS * 86400, day);
	if ((r = state_pg_query(pg, "WITH p AS (DELETE FROM tlsrpt_policy "
	    "WHERE day < $1), r AS (DELETE FROM tlsrpt_report WHERE day < $1) "
	    "DELETE FROM tlsrpt_dest WHERE day < $1", 1, pv, err,
	    errlen)) == NULL)
		return -1;
	PQclear(r);
	return 0;
}
