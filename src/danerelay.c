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
 * The queue commands read the spool directly (spool_open_flags with
 * SPOOL_NO_RECOVER: no lock, no recovery, nothing created), so they work
 * whether the daemon runs or not.  When the daemon grows a control
 * socket, commands that must go through it (flush, and delete of a
 * message in delivery) add a client here; listing stays a plain reader.
 *
 * Everything printed that came from outside (addresses, HELO names,
 * remote replies) is made printable first: a hostile peer must not be
 * able to send escape sequences to the operator's terminal.
 *
 * Exit status: 0 ok, 1 error (message on stderr), 2 usage.
 */

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "spool.h"
#include "util.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#define DEFAULT_CONFIG	SYSCONFDIR "/danerelay.conf"

#define EX_OK		0
#define EX_ERR		1
#define EX_USAGE	2

struct cli {
	const char	*conffile;	/* -c */
	const char	*spooldir;	/* -s, overrides the config */
	struct config	 cf;
	int		 cf_loaded;
};

struct command {
	const char	*name;
	int		(*fn)(struct cli *, int, char **);
	const char	*args;
	const char	*help;
};

static int cmd_queue(struct cli *, int, char **);
static int queue_list(struct cli *, int, char **);
static int queue_delete(struct cli *, int, char **);

/* Top-level commands.  Add probe, flush, mta-sts, tlsrpt ... here. */
static const struct command commands[] = {
	{ "queue", cmd_queue, "[subcommand]",
	    "list the queue, or act on it (below)" },
	{ "mailq", cmd_queue, "", "the same as \"queue\"" },
};

/* "danerelay queue SUBCOMMAND". */
static const struct command queue_commands[] = {
	{ "list", queue_list, "", "list the queue (the default)" },
	{ "delete", queue_delete, "ID ...", "remove messages by queue id" },
};

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static const char *progname = "danerelay";

static void
usage(FILE *f)
{
	char sub[128];
	size_t i;

	fprintf(f, "usage: %s [-c file] [-s spool_dir] command [arguments]\n"
	    "  -c file       configuration file (default %s)\n"
	    "  -s spool_dir  use this spool directory, ignore the config\n"
	    "commands:\n", progname, DEFAULT_CONFIG);
	for (i = 0; i < NELEM(commands); i++)
		fprintf(f, "  %-6s %-22s %s\n", commands[i].name,
		    commands[i].args, commands[i].help);
	for (i = 0; i < NELEM(queue_commands); i++) {
		snprintf(sub, sizeof(sub), "%s %s", queue_commands[i].name,
		    queue_commands[i].args);
		fprintf(f, "  queue  %-22s %s\n", sub, queue_commands[i].help);
	}
}

static void
errx_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
errx_msg(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---------------------------------------------------------------- */
/* Printing foreign strings safely. */

/* Length of a valid UTF-8 sequence at p (not a C1 control), else 0. */
static size_t
utf8_len(const unsigned char *p)
{
	unsigned cp;
	size_t n, i;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, cp = p[0] & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 2 && cp < 0xa0) ||		/* C1 controls */
	    (n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

/* Printable copy: controls, '\\' and invalid bytes as \xNN.  Freed by the
 * caller.  NULL prints as "". */
static char *
safe(const char *s)
{
	const unsigned char *p;
	char *out, *o;
	size_t n;

	if (s == NULL)
		s = "";
	o = out = xmalloc(strlen(s) * 4 + 1);
	for (p = (const unsigned char *)s; *p; ) {
		if (*p >= 0x20 && *p < 0x7f && *p != '\\') {
			*o++ = (char)*p++;
		} else if (*p == '\\') {
			*o++ = '\\';
			*o++ = '\\';
			p++;
		} else if (*p >= 0x80 && (n = utf8_len(p)) > 0) {
			memcpy(o, p, n);
			o += n;
			p += n;
		} else {
			o += sprintf(o, "\\x%02X", *p);
			p++;
		}
	}
	*o = '\0';
	return out;
}

/* ---------------------------------------------------------------- */
/* Setup shared by the commands. */

static const char *
cli_spool_dir(struct cli *c)
{
	char err[1024];

	if (c->spooldir != NULL)
		return c->spooldir;
	if (!c->cf_loaded) {
		if (config_load(c->conffile ? c->conffile : DEFAULT_CONFIG,
		    &c->cf, err, sizeof(err)) == -1) {
			errx_msg("%s", err);
			return NULL;
		}
		c->cf_loaded = 1;
	}
	return c->cf.spool_dir;
}

static struct spool *
cli_spool(struct cli *c)
{
	struct spool *sp;
	const char *dir;
	char err[1024];

	if ((dir = cli_spool_dir(c)) == NULL)
		return NULL;
	if ((sp = spool_open_flags(dir, SPOOL_NO_RECOVER, err,
	    sizeof(err))) == NULL)
		errx_msg("cannot open the spool: %s", err);
	return sp;
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
	errx_msg("unknown command \"%s\"", argv[0]);
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
		errx_msg("mailq takes no arguments");
		usage(stderr);
		return EX_USAGE;
	}
	if (argc < 2)
		return queue_list(c, 1, list);
	return dispatch(c, queue_commands, NELEM(queue_commands), argc - 1,
	    argv + 1);
}

static void
fmt_age(char *buf, size_t len, long long secs)
{
	if (secs < 0)
		secs = 0;
	if (secs < 60)
		snprintf(buf, len, "%llds", secs);
	else if (secs < 3600)
		snprintf(buf, len, "%lldm", secs / 60);
	else if (secs < 86400)
		snprintf(buf, len, "%lldh%02lldm", secs / 3600,
		    secs % 3600 / 60);
	else
		snprintf(buf, len, "%lldd%02lldh", secs / 86400,
		    secs % 86400 / 3600);
}

static void
fmt_time(char *buf, size_t len, time_t t)
{
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, len, "@%lld", (long long)t);
}

static void
print_message(const struct spool_env *env, time_t now)
{
	const struct spool_rcpt *r;
	char t0[64], when[128], age[32], *s, *t;
	size_t i;

	fmt_time(t0, sizeof(t0), env->created);
	fmt_age(age, sizeof(age), (long long)(now - env->created));
	snprintf(when, sizeof(when), "%s (%s)", t0, age);
	s = safe(env->sender);
	printf("%-16s%c %9lld  %-29s  <%s>%s%s%s\n", env->id,
	    env->hold ? '!' : ' ', (long long)env->size, when, s,
	    env->hold ? " [on hold]" : "",
	    env->is_bounce ? " [bounce]" : "",
	    env->is_report ? " [tlsrpt]" : "");
	free(s);
	for (i = 0; i < env->nrcpt; i++) {
		r = &env->rcpts[i];
		s = safe(r->addr);
		printf("    <%s> %s", s, rcpt_state_name(r->state));
		free(s);
		if (r->attempts > 0)
			printf(", %d attempt%s", r->attempts,
			    r->attempts == 1 ? "" : "s");
		if (r->state == RCPT_PENDING && r->next_attempt > now) {
			fmt_age(age, sizeof(age),
			    (long long)(r->next_attempt - now));
			printf(", next in %s", age);
		}
		if (r->relay != NULL) {
			s = safe(r->relay);
			printf(", relay=%s", s);
			free(s);
		}
		putchar('\n');
		if (r->last_error != NULL) {
			t = safe(r->last_error);
			printf("        (%s)\n", t);
			free(t);
		}
	}
	putchar('\n');
}

static int
queue_list(struct cli *c, int argc, char **argv)
{
	struct spool *sp;
	struct spool_env *env;
	char **ids, err[1024];
	unsigned long long total = 0;
	size_t n, i, shown = 0;
	time_t now = time(NULL);
	int rc = EX_OK;

	if (argc > 1) {
		errx_msg("queue list takes no arguments");
		return EX_USAGE;
	}
	if ((sp = cli_spool(c)) == NULL)
		return EX_ERR;
	if ((ids = spool_list_ids(sp, &n)) == NULL) {
		errx_msg("%s/queue: %s", spool_dir(sp), strerror(errno));
		spool_close(sp);
		return EX_ERR;
	}
	for (i = 0; i < n; i++) {
		if (spool_env_load(sp, ids[i], &env, err, sizeof(err)) == -1) {
			if (errno == ENOENT)
				continue;	/* delivered meanwhile */
			errx_msg("%s: %s", ids[i], err);
			rc = EX_ERR;
			continue;
		}
		if (shown++ == 0)
			printf("%-16s  %9s  %-29s  %s\n", "Queue ID", "Size",
			    "Arrival time (age)", "Sender/Recipients");
		print_message(env, now);
		total += (unsigned long long)env->size;
		spool_env_free(env);
	}
	if (shown == 0)
		printf("Mail queue is empty\n");
	else
		printf("-- %llu KiB in %zu messages.\n", (total + 1023) / 1024,
		    shown);
	spool_ids_free(ids, n);
	spool_close(sp);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		errx_msg("stdout: %s", strerror(errno));
		rc = EX_ERR;
	}
	return rc;
}

static int
queue_delete(struct cli *c, int argc, char **argv)
{
	struct spool *sp;
	char id[QUEUE_ID_LEN + 1];
	int i, rc = EX_OK, running;

	if (argc < 2) {
		errx_msg("queue delete: which queue id?");
		usage(stderr);
		return EX_USAGE;
	}
	for (i = 1; i < argc; i++) {
		/* Ids are printed upper-case; accept them in either case. */
		if (strlen(argv[i]) != QUEUE_ID_LEN) {
			errx_msg("\"%s\" is not a queue id", argv[i]);
			return EX_USAGE;
		}
		dr_strlcpy(id, argv[i], sizeof(id));
		for (char *p = id; *p; p++)
			*p = (char)toupper((unsigned char)*p);
		if (!queue_id_valid(id)) {
			errx_msg("\"%s\" is not a queue id", argv[i]);
			return EX_USAGE;
		}
	}
	if ((sp = cli_spool(c)) == NULL)
		return EX_ERR;
	running = spool_in_use(sp);
	log_init("danerelay", 0, 0);	/* deletions are logged to syslog */
	for (i = 1; i < argc; i++) {
		dr_strlcpy(id, argv[i], sizeof(id));
		for (char *p = id; *p; p++)
			*p = (char)toupper((unsigned char)*p);
		if (spool_remove(sp, id) == -1) {
			if (errno == ENOENT)
				errx_msg("%s: no such message in the queue",
				    id);
			else
				errx_msg("%s: cannot remove: %s", id,
				    strerror(errno));
			rc = EX_ERR;
			continue;
		}
		log_info("%s: removed by the operator (danerelay queue "
		    "delete)", id);
		printf("%s: deleted\n", id);
	}
	if (running && rc == EX_OK)
		fprintf(stderr, "%s: note: the daemon is running; a message "
		    "already in a delivery attempt may still be delivered\n",
		    progname);
	spool_close(sp);
	return rc;
}

/* ---------------------------------------------------------------- */

int
main(int argc, char *argv[])
{
	struct cli c;
	size_t i;
	int ch, rc;

	memset(&c, 0, sizeof(c));
	while ((ch = getopt(argc, argv, "+c:s:h")) != -1) {
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
		errx_msg("unknown command \"%s\"", argv[0]);
		usage(stderr);
		rc = EX_USAGE;
	}
	if (c.cf_loaded)
		config_free(&c.cf);
	return rc;
}
