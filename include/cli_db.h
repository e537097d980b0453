/*
 * cli_db.h - `danerelay db init|migrate|version`: the PostgreSQL schema
 * of state_backend = postgresql://... (state_pg.c).
 */
#ifndef DR_CLI_DB_H
#define DR_CLI_DB_H

struct config;

/* argv[0] = "db".  Exit status: 0 ok, 1 error, 2 usage. */
int db_cli(const struct config *cf, int argc, char **argv);

#endif
