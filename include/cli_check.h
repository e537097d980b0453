/*
 * cli_check.h - `danerelay check [DOMAIN...]` (cli_check.c, issue #18).
 */
#ifndef DR_CLI_CHECK_H
#define DR_CLI_CHECK_H

struct cli;

/* argv[0] = "check".  Exit status: 0 all ok (info lines included), 1
 * warnings, 2 failures; a usage or setup error also 2, with the message
 * on stderr. */
int check_cli(struct cli *c, int argc, char **argv);

#endif
