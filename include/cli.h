/*
 * cli.h - what the `danerelay` commands share (cli.c).
 */
#ifndef DR_CLI_H
#define DR_CLI_H

#include <stdio.h>

#include "config.h"
#include "util.h"		/* QUEUE_ID_LEN */

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#define DEFAULT_CONFIG	SYSCONFDIR "/danerelay.conf"

#define EX_OK		0
#define EX_ERR		1
#define EX_USAGE	2

#define CTL_WAIT	60	/* seconds for any one reply of the daemon */
#define CTL_LIST_WAIT	5	/* the same, for the '*' marks of a listing */

struct ctl_client;
struct spool;

struct cli {
	const char	*conffile;	/* -c */
	const char	*spooldir;	/* -s, overrides the config */
	struct config	 cf;
	int		 cf_loaded;
	char		*ctlpath;	/* the daemon's control socket */
	void		(*usage)(FILE *);	/* danerelay.c's */
};

extern const char *progname;

/* "danerelay: " and the message on stderr. */
void cli_errx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Printable copy: controls, '\\' and invalid bytes as \xNN.  Freed by the
 * caller.  NULL prints as "". */
char *cli_safe(const char *s);
/* The configuration (-c or the default), loaded once; -1 printed. */
int cli_config(struct cli *c);
const char *cli_spool_dir(struct cli *c);
/* -s alone: <spool_dir>/control.sock; else control_socket. */
const char *cli_control_path(struct cli *c);
/* "6b00..." -> "6B00..." in id; -1 if it is no queue id. */
int cli_parse_id(const char *arg, char id[QUEUE_ID_LEN + 1]);
/* Root working on a directory of the daemon's user (spool_dir,
 * state_dir) becomes that user first, so that what it writes stays
 * usable by the daemon.  0 ok (or nothing to do), -1 printed. */
int cli_become_spool_owner(const char *dir);
/* The spool without recovery or lock (listing, editing); NULL printed. */
struct spool *cli_spool(struct cli *c);

enum { CTL_UP, CTL_DOWN, CTL_FAIL };
/* CTL_UP: connected; CTL_DOWN: no daemon listens (the socket is missing
 * or stale); CTL_FAIL: anything else, printed. */
int cli_connect(struct cli *c, struct ctl_client *cc);

#endif
