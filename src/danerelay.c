/*
 * danerelay.c - the operator's command-line tool.
 *
 *   danerelay [-c file] [-s spool_dir] command [arguments]
 *
 * Commands live in one dispatch table (commands[] below); a command is a
 * function taking the parsed global options and its own argv.  Today:
 *   queue | mailq            list the queue like mailq(1)
 *   queue list               the same
 *   queue delete ID ...      remove messages
 *   queue hold ID ...        put messages on hold (not delivered)
 *   queue release ID ...     release them (tried at their next retry)
 *   flush [ID|DOMAIN]        retry now: everything, a message, a domain
 *   status                   is the daemon running, queue size
 *
 * This file is the dispatch: the tables, usage and main().  The queue
 * commands, flush and status are cli_queue.c (listing from the spool,
 * actions through the daemon's control socket, control_client.c, or on
 * the spool when no daemon runs); what the commands share is cli.c; the
 * mta-sts, tlsrpt, tls-memory and dkim commands are cli_mta_sts.c,
 * cli_tlsrpt.c, cli_tls_memory.c and cli_dkim.c, db is cli_db.c, check
 * is cli_check.c (check.c), probe
 * is probe.c.  A socket path given by -s alone is
 * <spool_dir>/control.sock; otherwise it comes from the configuration.
 *
 * Exit status: 0 ok, 1 error (message on stderr), 2 usage.
 */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_db.h"
#include "cli_mta_sts.h"
#include "cli_queue.h"
#include "cli_tlsrpt.h"
#include "cli_check.h"
#include "cli_dkim.h"
#include "cli_tls_memory.h"
#include "config.h"
#include "probe.h"

struct command {
	const char	*name;
	int		(*fn)(struct cli *, int, char **);
	const char	*args;
	const char	*help;
};

static int cmd_queue(struct cli *, int, char **);
static int cmd_probe(struct cli *, int, char **);
static int cmd_tlsrpt(struct cli *, int, char **);
static int cmd_mta_sts(struct cli *, int, char **);
static int cmd_db(struct cli *, int, char **);

/* Top-level commands.  Add probe, mta-sts, tlsrpt ... here. */
static const struct command commands[] = {
	{ "queue", cmd_queue, "[subcommand]",
	    "list the queue, or act on it (below)" },
	{ "mailq", cmd_queue, "", "the same as \"queue\"" },
	{ "flush", cli_flush, "[ID|DOMAIN]",
	    "retry now: all, one message, one domain" },
	{ "status", cli_status, "", "is the daemon running; queue size" },
	{ "probe", cmd_probe, "[-n] DOMAIN",
	    "how mail to DOMAIN would go: DNS, DANE, decision, TLS test" },
	{ "mta-sts", cmd_mta_sts, "show [DOMAIN] | refresh|forget DOMAIN",
	    "MTA-STS policy cache: show, fetch now, drop" },
	{ "tlsrpt", cmd_tlsrpt, "show [DOMAIN] | send [--date D]",
	    "TLSRPT counters of a UTC day; send reports now" },
	{ "tls-memory", tls_memory_cli, "show [DOMAIN] | forget DOMAIN",
	    "domains seen with STARTTLS: show, drop" },
	{ "dkim", dkim_cli, "keygen|dns|check|rotate ...",
	    "DKIM keys: create, records to publish, check DNS, rotate" },
	{ "db", cmd_db, "init | migrate | version",
	    "PostgreSQL state_backend: create, upgrade the schema" },
	{ "check", check_cli, "[--json] [DOMAIN...]",
	    "audit your own sending setup: PTR, SPF, DKIM, DMARC, ..." },
};

/* "danerelay queue SUBCOMMAND". */
static const struct command queue_commands[] = {
	{ "list", cli_queue_list, "", "list the queue (the default)" },
	{ "delete", cli_queue_action, "ID ... | --domain D",
	    "remove messages, or the recipients at domain D" },
	{ "hold", cli_queue_action, "ID ... | --domain D",
	    "put messages on hold" },
	{ "release", cli_queue_action, "ID ... | --domain D",
	    "release held messages (tried at their next retry)" },
	{ "bounce", cli_queue_action, "ID ... | --domain D",
	    "return to the sender with a DSN, and remove" },
	{ "suspend", cli_queue_suspend, "DOMAIN",
	    "deliver nothing to DOMAIN until resumed (kept across restarts)" },
	{ "resume", cli_queue_suspend, "DOMAIN",
	    "deliver to DOMAIN again, now" },
	{ "flush", cli_flush, "[ID|DOMAIN]", "the same as \"flush\"" },
};

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "?"
#endif

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static void
usage(FILE *f)
{
	char sub[128];
	size_t i;

	fprintf(f, "usage: %s [-c file] [-s spool_dir] command [arguments]\n"
	    "       %s -h | --help | -V | --version\n"
	    "  -c file       configuration file (default %s)\n"
	    "  -s spool_dir  use this spool directory, ignore the config\n"
	    "commands:\n", progname, progname, DEFAULT_CONFIG);
	for (i = 0; i < NELEM(commands); i++)
		fprintf(f, "  %-6s %-22s %s\n", commands[i].name,
		    commands[i].args, commands[i].help);
	for (i = 0; i < NELEM(queue_commands); i++) {
		snprintf(sub, sizeof(sub), "%s %s", queue_commands[i].name,
		    queue_commands[i].args);
		fprintf(f, "  queue  %-22s %s\n", sub, queue_commands[i].help);
	}
}

/* Subcommand dispatch for a table; argv[0] names the subcommand. */
static int
dispatch(struct cli *c, const struct command *tab, size_t n, int argc,
    char **argv)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(argv[0], tab[i].name) == 0)
			return tab[i].fn(c, argc, argv);
	cli_errx("unknown command \"%s\"", argv[0]);
	usage(stderr);
	return EX_USAGE;
}

/* ---------------------------------------------------------------- */
/* queue */

static int
cmd_queue(struct cli *c, int argc, char **argv)
{
	static char *list[] = { "list", NULL };

	if (strcmp(argv[0], "mailq") == 0 && argc > 1) {
		cli_errx("mailq takes no arguments");
		usage(stderr);
		return EX_USAGE;
	}
	if (argc < 2)
		return cli_queue_list(c, 1, list);
	return dispatch(c, queue_commands, NELEM(queue_commands), argc - 1,
	    argv + 1);
}

/*
 * "danerelay probe [-n] DOMAIN": the route the delivery engine would take
 * and, without -n, a real STARTTLS handshake with each candidate address
 * (probe.c).  Runs its own resolver; needs no daemon.
 */
static int
cmd_probe(struct cli *c, int argc, char **argv)
{
	int no_connect = 0, r;

	if (argc == 3 && strcmp(argv[1], "-n") == 0) {
		no_connect = 1;
		argv++;
		argc--;
	}
	if (argc != 2 || argv[1][0] == '-' || argv[1][0] == '\0') {
		cli_errx("usage: probe [-n] DOMAIN");
		return EX_USAGE;
	}
	if (cli_config(c) == -1)
		return EX_ERR;
	r = probe_run(&c->cf, argv[1], no_connect, stdout);
	fflush(stdout);
	return r == 0 ? EX_OK : EX_ERR;
}

/* "danerelay mta-sts show|refresh|forget ...": cli_mta_sts.c does the work. */
static int
cmd_mta_sts(struct cli *c, int argc, char **argv)
{
	if (cli_config(c) == -1)
		return EX_ERR;
	return mta_sts_cli(&c->cf, argc, argv);	/* argv[0] = "mta-sts" */
}

/* "danerelay tlsrpt show|send ...": tlsrpt_report.c does the work. */
static int
cmd_tlsrpt(struct cli *c, int argc, char **argv)
{
	if (cli_config(c) == -1)
		return EX_ERR;
	return tlsrpt_cli(&c->cf, argc, argv);	/* argv[0] = "tlsrpt" */
}

/* "danerelay db init|migrate|version": cli_db.c does the work. */
static int
cmd_db(struct cli *c, int argc, char **argv)
{
	if (cli_config(c) == -1)
		return EX_ERR;
	return db_cli(&c->cf, argc, argv);	/* argv[0] = "db" */
}

/* ---------------------------------------------------------------- */

static const struct option long_opts[] = {
	{ "help",	no_argument,	NULL,	'h' },
	{ "version",	no_argument,	NULL,	'V' },
	{ NULL,		0,		NULL,	0 }
};

int
main(int argc, char *argv[])
{
	struct cli c;
	size_t i;
	int ch, rc;

	memset(&c, 0, sizeof(c));
	c.usage = usage;
	while ((ch = getopt_long(argc, argv, "+c:s:hV", long_opts, NULL)) !=
	    -1) {
		switch (ch) {
		case 'c':
			c.conffile = optarg;
			break;
		case 's':
			c.spooldir = optarg;
			break;
		case 'h':
			usage(stdout);
			return EX_OK;
		case 'V':
			printf("%s %s\n", progname, PACKAGE_VERSION);
			return EX_OK;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1) {
		usage(stderr);
		return EX_USAGE;
	}
	rc = -1;
	for (i = 0; i < NELEM(commands); i++)
		if (strcmp(argv[0], commands[i].name) == 0) {
			rc = commands[i].fn(&c, argc, argv);
			break;
		}
	if (rc == -1) {
		cli_errx("unknown command \"%s\"", argv[0]);
		usage(stderr);
		rc = EX_USAGE;
	}
	if (c.cf_loaded)
		config_free(&c.cf);
	free(c.ctlpath);
	return rc;
}
