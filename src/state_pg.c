/*
 * state_pg.c - the shared state of several relays on PostgreSQL
 * (state_backend = postgresql://..., issue #19): connecting, the schema
 * and its migrations.
 *
 * Tables (schema version STATE_PG_VERSION, in danerelay_schema):
 *   danerelay_schema  one row: the version; `danerelay db init` creates
 *                     it, `danerelay db migrate` steps it up.
 *   tlsrpt_policy, tlsrpt_failure
 *                     the TLSRPT counters of every relay, the same
 *                     columns as <state_dir>/tlsrpt.db (tlsrpt_db.c);
 *                     each relay's flush adds its counts (UPSERT).
 *   tlsrpt_report, tlsrpt_dest
 *                     what was sent, for the whole fleet; written by the
 *                     elected sender in the transaction that holds the
 *                     advisory lock STATE_PG_LOCK_TLSRPT (tlsrpt_sched.c).
 *   mta_sts_policy    the shared MTA-STS policy cache (mta_sts_cache.c's
 *                     columns), mta_sts_fetch the fetch leases: one
 *                     fetch per domain per refresh across the fleet.
 *
 * Migrations are a list of SQL steps, step i bringing version i-1 to i;
 * each runs in its own transaction with the version update, under the
 * advisory lock STATE_PG_LOCK_MIGRATE.  A daemon never migrates: it
 * refuses a database whose version is not STATE_PG_VERSION (the error
 * names the command to run).
 *
 * libpq blocks: every function here is for the io pool or the CLI.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "config.h"
#include "state_pg.h"
#include "util.h"

static const char *const steps[STATE_PG_VERSION + 1] = {
	NULL,
	/* 1: TLSRPT counters and report bookkeeping */
	"CREATE TABLE tlsrpt_policy ("
	" id BIGSERIAL PRIMARY KEY,"
	" day TEXT NOT NULL, domain TEXT NOT NULL, type TEXT NOT NULL,"
	" strings TEXT NOT NULL, mx TEXT NOT NULL,"
	" success BIGINT NOT NULL DEFAULT 0,"
	" failure BIGINT NOT NULL DEFAULT 0,"
	" UNIQUE (day, domain, type, strings, mx));"
	"CREATE TABLE tlsrpt_failure ("
	" policy BIGINT NOT NULL REFERENCES tlsrpt_policy(id)"
	"  ON DELETE CASCADE,"
	" result TEXT NOT NULL, sending_ip TEXT NOT NULL, mx TEXT NOT NULL,"
	" receiving_ip TEXT NOT NULL, reason TEXT NOT NULL,"
	" count BIGINT NOT NULL,"
	" UNIQUE (policy, result, sending_ip, mx, receiving_ip, reason));"
	"CREATE TABLE tlsrpt_report ("
	" day TEXT NOT NULL, domain TEXT NOT NULL, state TEXT NOT NULL,"
	" report_id TEXT, gz BYTEA, created BIGINT NOT NULL, note TEXT,"
	" sender TEXT, PRIMARY KEY (day, domain));"
	"CREATE TABLE tlsrpt_dest ("
	" day TEXT NOT NULL, domain TEXT NOT NULL, uri TEXT NOT NULL,"
	" state TEXT NOT NULL, tries INTEGER NOT NULL DEFAULT 0,"
	" next_try BIGINT NOT NULL DEFAULT 0, note TEXT,"
	" PRIMARY KEY (day, domain, uri));",
	/* 2: the shared MTA-STS cache and its fetch leases */
	"CREATE TABLE mta_sts_policy ("
	" domain TEXT PRIMARY KEY NOT NULL, id TEXT NOT NULL,"
	" mode TEXT NOT NULL, mx TEXT NOT NULL, max_age BIGINT NOT NULL,"
	" policy BYTEA NOT NULL, fetched_at BIGINT NOT NULL,"
	" expires_at BIGINT NOT NULL, refresh_at BIGINT NOT NULL);"
	"CREATE TABLE mta_sts_fetch ("
	" domain TEXT PRIMARY KEY NOT NULL, owner TEXT NOT NULL,"
	" until BIGINT NOT NULL);",
};

int
state_pg_enabled(const struct config *cf)
{
	return cf != NULL && cf->state_backend != NULL;
}

void
state_pg_where(const char *uri, char *out, size_t len)
{
	const char *s, *at, *colon;

	/* postgresql://user:password@host/db -> postgresql://user:***@... */
	s = strstr(uri, "://");
	at = s != NULL ? strchr(s + 3, '@') : NULL;
	colon = at != NULL ? memchr(s + 3, ':', (size_t)(at - s - 3)) : NULL;
	if (colon == NULL) {
		snprintf(out, len, "%s", uri);
		return;
	}
	snprintf(out, len, "%.*s:***%s", (int)(colon - uri), uri, at);
}

static void
conn_err(PGconn *c, const char *what, char *err, size_t errlen)
{
	const char *m = c != NULL ? PQerrorMessage(c) : "out of memory";
	size_t n = strlen(m);

	while (n > 0 && (m[n - 1] == '\n' || m[n - 1] == ' '))
		n--;
	snprintf(err, errlen, "%s%s%.*s", what, *what ? ": " : "", (int)n, m);
}

static PGconn *
connect_raw(const char *uri, char *err, size_t errlen)
{
	/* the URI's own settings come last and win */
	const char *const keys[] = { "connect_timeout", "keepalives_idle",
	    "keepalives_interval", "keepalives_count", "tcp_user_timeout",
	    "application_name", "dbname", NULL };
	const char *const vals[] = { "5", "30", "10", "3", "10000",
	    "danerelay", uri, NULL };
	char where[512];
	PGconn *c;

	c = PQconnectdbParams(keys, vals, 1);
	if (c == NULL || PQstatus(c) != CONNECTION_OK) {
		state_pg_where(uri, where, sizeof(where));
		conn_err(c, where, err, errlen);
		PQfinish(c);
		return NULL;
	}
	return c;
}

int
state_pg_exec(PGconn *c, const char *sql, char *err, size_t errlen)
{
	PGresult *r = PQexec(c, sql);
	int ok = r != NULL && (PQresultStatus(r) == PGRES_COMMAND_OK ||
	    PQresultStatus(r) == PGRES_TUPLES_OK);

	if (!ok)
		conn_err(c, "", err, errlen);
	PQclear(r);
	return ok ? 0 : -1;
}

PGresult *
state_pg_query(PGconn *c, const char *sql, int n, const char *const *params,
    char *err, size_t errlen)
{
	PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);

	if (r != NULL && (PQresultStatus(r) == PGRES_COMMAND_OK ||
	    PQresultStatus(r) == PGRES_TUPLES_OK))
		return r;
	conn_err(c, "", err, errlen);
	PQclear(r);
	return NULL;
}

int
state_pg_version(PGconn *c, char *err, size_t errlen)
{
	PGresult *r;
	int v;

	r = state_pg_query(c, "SELECT to_regclass('danerelay_schema') IS NULL",
	    0, NULL, err, errlen);
	if (r == NULL)
		return -1;
	v = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	if (v)
		return 0;
	if ((r = state_pg_query(c, "SELECT max(version) FROM danerelay_schema",
	    0, NULL, err, errlen)) == NULL)
		return -1;
	v = PQgetisnull(r, 0, 0) ? 0 : atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

PGconn *
state_pg_connect(const char *uri, char *err, size_t errlen)
{
	PGconn *c;
	char where[512];
	int v;

	if ((c = connect_raw(uri, err, errlen)) == NULL)
		return NULL;
	state_pg_where(uri, where, sizeof(where));
	if ((v = state_pg_version(c, err, errlen)) == -1) {
		PQfinish(c);
		return NULL;
	}
	if (v != STATE_PG_VERSION) {
		if (v == 0)
			snprintf(err, errlen, "%s: no danerelay schema: run "
			    "`danerelay db init`", where);
		else if (v < STATE_PG_VERSION)
			snprintf(err, errlen, "%s: schema version %d, this "
			    "danerelay needs %d: run `danerelay db migrate`",
			    where, v, STATE_PG_VERSION);
		else
			snprintf(err, errlen, "%s: schema version %d is newer "
			    "than this danerelay's (%d): upgrade danerelay",
			    where, v, STATE_PG_VERSION);
		PQfinish(c);
		return NULL;
	}
	return c;
}

/* After a failed connection no new attempt for STATE_PG_RETRY seconds,
 * process-wide (every connection goes to the one server): a dead server
 * costs one connect_timeout per interval, not one per job. */
#define STATE_PG_RETRY	5
static long long down_until;

int
state_pg_usable(PGconn **c, const char *uri, char *err, size_t errlen)
{
	long long now = (long long)time(NULL), until;

	if (*c != NULL && PQstatus(*c) == CONNECTION_OK &&
	    PQtransactionStatus(*c) == PQTRANS_IDLE)
		return 0;
	PQfinish(*c);
	*c = NULL;
	until = __atomic_load_n(&down_until, __ATOMIC_RELAXED);
	if (now < until) {
		snprintf(err, errlen, "PostgreSQL unreachable; next attempt "
		    "in %lld s", until - now);
		return -1;
	}
	if ((*c = state_pg_connect(uri, err, errlen)) == NULL) {
		__atomic_store_n(&down_until, now + STATE_PG_RETRY,
		    __ATOMIC_RELAXED);
		return -1;
	}
	return 0;
}

int
state_pg_migrate(const char *uri, int init, int *from, int *to, char *err,
    size_t errlen)
{
	PGconn *c;
	char sql[128], where[512];
	int v, rc = -1;

	*from = *to = -1;
	if ((c = connect_raw(uri, err, errlen)) == NULL)
		return -1;
	state_pg_where(uri, where, sizeof(where));
	snprintf(sql, sizeof(sql), "SELECT pg_advisory_lock(%lld)",
	    STATE_PG_LOCK_MIGRATE);
	if (state_pg_exec(c, sql, err, errlen) == -1 ||
	    (v = state_pg_version(c, err, errlen)) == -1)
		goto out;
	*from = *to = v;
	if (init && v != 0) {
		snprintf(err, errlen, "%s: the danerelay schema is already "
		    "there (version %d)%s", where, v, v < STATE_PG_VERSION ?
		    ": run `danerelay db migrate`" : "");
		goto out;
	}
	if (!init && v == 0) {
		snprintf(err, errlen, "%s: no danerelay schema: run "
		    "`danerelay db init`", where);
		goto out;
	}
	if (v > STATE_PG_VERSION) {
		snprintf(err, errlen, "%s: schema version %d is newer than "
		    "this danerelay's (%d)", where, v, STATE_PG_VERSION);
		goto out;
	}
	if (v == 0 && (state_pg_exec(c, "BEGIN", err, errlen) == -1 ||
	    state_pg_exec(c, "CREATE TABLE IF NOT EXISTS danerelay_schema "
	    "(version INTEGER NOT NULL); DELETE FROM danerelay_schema; "
	    "INSERT INTO danerelay_schema VALUES (0)", err,
	    errlen) == -1 || state_pg_exec(c, "COMMIT", err, errlen) == -1))
		goto out;
	for (; v < STATE_PG_VERSION; v++) {
		snprintf(sql, sizeof(sql), "UPDATE danerelay_schema SET "
		    "version = %d", v + 1);
		if (state_pg_exec(c, "BEGIN", err, errlen) == -1 ||
		    state_pg_exec(c, steps[v + 1], err, errlen) == -1 ||
		    state_pg_exec(c, sql, err, errlen) == -1 ||
		    state_pg_exec(c, "COMMIT", err, errlen) == -1) {
			char tmp[1024];

			snprintf(tmp, sizeof(tmp), "%.300s: step to version "
			    "%d: %.600s",
			    where, v + 1, err);
			dr_strlcpy(err, tmp, errlen);
			goto out;
		}
		*to = v + 1;
	}
	rc = 0;
out:
	PQfinish(c);		/* ends the session: lock and any open
				 * transaction go with it */
	return rc;
}
