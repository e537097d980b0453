/*
 * cli_queue.h - `danerelay queue ...`, `flush`, `status` (cli_queue.c).
 * Each takes the parsed global options and its own argv (argv[0] is the
 * (sub)command) and returns the exit status.
 */
#ifndef DR_CLI_QUEUE_H
#define DR_CLI_QUEUE_H

struct cli;

int cli_queue_list(struct cli *c, int argc, char **argv);
/* delete, hold, release, bounce ID ... | --domain DOMAIN (argv[0] says
 * which) */
int cli_queue_action(struct cli *c, int argc, char **argv);
/* suspend, resume DOMAIN */
int cli_queue_suspend(struct cli *c, int argc, char **argv);
int cli_flush(struct cli *c, int argc, char **argv);
int cli_status(struct cli *c, int argc, char **argv);

#endif
