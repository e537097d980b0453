/*
 * cli_tls_memory.h - `danerelay tls-memory show [DOMAIN] | forget DOMAIN`
 * (cli_tls_memory.c): the TLS memory of domains without DANE or MTA-STS
 * (tls_memory.h), through the running daemon's control socket, or in
 * <state_dir>/tls-memory.db when no daemon runs.
 */
#ifndef DR_CLI_TLS_MEMORY_H
#define DR_CLI_TLS_MEMORY_H

struct cli;

/* argv[0] = "tls-memory".  Exit status (EX_OK, EX_ERR, EX_USAGE). */
int tls_memory_cli(struct cli *c, int argc, char **argv);

#endif
