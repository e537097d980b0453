/*
 * tlsrpt_db.h - SMTP TLS Reporting (RFC 8460): the clock, UTC days and
 * the shared database <state_dir>/tlsrpt.db (schema in tlsrpt_db.c).
 */
#ifndef DR_TLSRPT_DB_H
#define DR_TLSRPT_DB_H

#include <stddef.h>
#include <time.h>

#include <sqlite3.h>

#define TLSRPT_DB_NAME		"tlsrpt.db"
#define TLSRPT_KEEP_DAYS	32	/* counters and report state kept */

/* UTC day of t as "YYYY-MM-DD" (out: 11 bytes). */
void tlsrpt_day(time_t t, char out[11]);
/* Strict "YYYY-MM-DD" -> 00:00:00 UTC of that day. 0 ok, -1 bad. */
int tlsrpt_day_parse(const char *s, time_t *start);
/* The clock (tests replace it; NULL restores time()). */
void tlsrpt_set_clock(time_t (*now)(void));
time_t tlsrpt_now(void);

/* Open <state_dir>/tlsrpt.db (WAL, busy timeout busy_ms); create: make
 * it and its schema.  NULL with the reason in err. */
sqlite3 *tlsrpt_db_open(const char *state_dir, int create, int busy_ms,
    char *err, size_t errlen);
/* An empty in-memory database with that schema (state_backend =
 * postgresql: tlsrpt_pg.c loads it).  NULL with err. */
sqlite3 *tlsrpt_db_memory(char *err, size_t errlen);
/* sqlite3_exec() with the message in err.  0 / -1. */
int tlsrpt_db_exec(sqlite3 *db, const char *sql, char *err, size_t errlen);
/* Delete counters and report state older than TLSRPT_KEEP_DAYS days, and
 * CLI requests older than a week.  0 / -1 with err. */
int tlsrpt_db_purge(sqlite3 *db, char *err, size_t errlen);

#endif
