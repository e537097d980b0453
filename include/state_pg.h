/*
 * state_pg.h - the shared state on PostgreSQL (state_backend =
 * postgresql://...): connections, the schema and its migrations.  The
 * tables are documented in state_pg.c; the modules that use them
 * (tlsrpt_record.c, tlsrpt_sched.c, mta_sts_mgr.c, the CLI) own their
 * queries.  Every call here blocks on the network: call it from the io
 * pool or from the CLI, never from an event loop.
 */
#ifndef DR_STATE_PG_H
#define DR_STATE_PG_H

#include <stddef.h>

#include <libpq-fe.h>

#define STATE_PG_VERSION	2	/* the schema this build uses */

/* Advisory lock keys (pg_advisory_*lock(bigint)). */
#define STATE_PG_LOCK_MIGRATE	0x64720001LL	/* db init / migrate */
#define STATE_PG_LOCK_TLSRPT	0x64720019LL	/* the TLSRPT sender */

struct config;

/* The configured backend is PostgreSQL. */
int state_pg_enabled(const struct config *cf);
/* uri with any password replaced by "***", for messages (out: len). */
void state_pg_where(const char *uri, char *out, size_t len);

/*
 * Connect (connect_timeout 5 s, TCP keepalives) and check the schema
 * version: a database without the schema or with another version is an
 * error naming `danerelay db init` / `danerelay db migrate`.  NULL with
 * the reason in err.
 */
PGconn *state_pg_connect(const char *uri, char *err, size_t errlen);
/* *c usable: keep it, or (re)connect.  0 / -1 with err. */
int state_pg_usable(PGconn **c, const char *uri, char *err, size_t errlen);
/* A command; 0 / -1 with err. */
int state_pg_exec(PGconn *c, const char *sql, char *err, size_t errlen);
/* A query with n text parameters; the result (PQclear it) or NULL with
 * err. */
PGresult *state_pg_query(PGconn *c, const char *sql, int n,
    const char *const *params, char *err, size_t errlen);

/* Schema version of the database: 0 none, -1 error. */
int state_pg_version(PGconn *c, char *err, size_t errlen);
/*
 * Bring the schema to STATE_PG_VERSION, one transaction per step under
 * an advisory lock (several relays migrating at once wait for each
 * other).  init: the database must not have the schema yet.  *from,
 * *to: the versions before and after.  0 / -1 with err.
 */
int state_pg_migrate(const char *uri, int init, int *from, int *to,
    char *err, size_t errlen);

#endif
