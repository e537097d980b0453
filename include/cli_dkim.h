/*
 * cli_dkim.h - `danerelay dkim keygen|dns|check|rotate` (cli_dkim.c).
 */
#ifndef DR_CLI_DKIM_H
#define DR_CLI_DKIM_H

struct cli;

/* argv[0] = "dkim".  Exit status (EX_OK, EX_ERR, EX_USAGE). */
int dkim_cli(struct cli *c, int argc, char **argv);

#endif
