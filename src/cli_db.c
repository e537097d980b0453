/*
 * cli_db.c - `danerelay db`: the schema of the shared state on
 * PostgreSQL (state_backend = postgresql://..., issue #19).
 *
 *   danerelay db init      create the schema in an empty database
 *   danerelay db migrate   bring an older schema to this version
 *   danerelay db version   the database's and this build's version
 *
 * The steps themselves are state_pg.c's.  With state_backend = sqlite
 * there is nothing to do: the SQLite files make their schema when they
 * are opened.
 */
#include <stdio.h>
#include <string.h>

#include "cli_db.h"
#include "config.h"
#include "state_pg.h"

#define EX_OK		0
#define EX_ERR		1
#define EX_USAGE	2

static int
usage(void)
{
	fprintf(stderr, "usage: danerelay db init | migrate | version\n");
	return EX_USAGE;
}

int
db_cli(const struct config *cf, int argc, char **argv)
{
	char err[1024], where[512];
	int from, to, v;
	PGconn *c;

	if (argc != 2)
		return usage();
	if (!state_pg_enabled(cf)) {
		fprintf(stderr, "danerelay: state_backend is sqlite: the "
		    "databases in %s make their schema themselves\n",
		    cf->state_dir ? cf->state_dir : "state_dir");
		return EX_ERR;
	}
	state_pg_where(cf->state_backend, where, sizeof(where));
	if (strcmp(argv[1], "init") == 0 || strcmp(argv[1], "migrate") == 0) {
		if (state_pg_migrate(cf->state_backend, argv[1][0] == 'i',
		    &from, &to, err, sizeof(err)) == -1) {
			fprintf(stderr, "danerelay: %s\n", err);
			return EX_ERR;
		}
		if (from == to)
			printf("%s: schema version %d, nothing to do\n", where,
			    to);
		else
			printf("%s: schema version %d -> %d\n", where, from,
			    to);
		return EX_OK;
	}
	if (strcmp(argv[1], "version") == 0) {
		if ((c = PQconnectdb(cf->state_backend)) == NULL ||
		    PQstatus(c) != CONNECTION_OK) {
			fprintf(stderr, "danerelay: %s: %s", where,
			    c ? PQerrorMessage(c) : "out of memory\n");
			PQfinish(c);
			return EX_ERR;
		}
		v = state_pg_version(c, err, sizeof(err));
		PQfinish(c);
		if (v == -1) {
			fprintf(stderr, "danerelay: %s: %s\n", where, err);
			return EX_ERR;
		}
		printf("%s: schema version %d (this danerelay: %d)\n", where,
		    v, STATE_PG_VERSION);
		return v == STATE_PG_VERSION ? EX_OK : EX_ERR;
	}
	return usage();
}
