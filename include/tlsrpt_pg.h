/*
 * tlsrpt_pg.h - TLSRPT state on PostgreSQL (state_backend =
 * postgresql://..., issue #19): the fleet's counters and report
 * bookkeeping copied into an in-memory SQLite database of tlsrpt.db's
 * schema, so that the report run (tlsrpt_report.c) and `tlsrpt show`
 * work on them unchanged, and what a run decided copied back.
 * Blocking (libpq): the io pool or the CLI only.
 */
#ifndef DR_TLSRPT_PG_H
#define DR_TLSRPT_PG_H

#include <stddef.h>

#include <libpq-fe.h>
#include <sqlite3.h>

/*
 * A new in-memory database holding the counters, reports and
 * destinations of day (day != NULL) or of every day from oldest on.
 * Changes to its report and dest rows are remembered for
 * tlsrpt_pg_store().  NULL with err.
 */
sqlite3 *tlsrpt_pg_load(PGconn *pg, const char *day, const char *oldest,
    char *err, size_t errlen);
/* Write the report and dest rows changed in db since tlsrpt_pg_load()
 * (sender: this relay's name) in pg's current transaction.  0 / -1. */
int tlsrpt_pg_store(PGconn *pg, sqlite3 *db, const char *sender, char *err,
    size_t errlen);
/* Delete counters and report state older than TLSRPT_KEEP_DAYS.  0 / -1. */
int tlsrpt_pg_purge(PGconn *pg, char *err, size_t errlen);

#endif
