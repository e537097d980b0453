/*
 * cli_tlsrpt.c - `danerelay tlsrpt show | send`: the counters of a day
 * from <state_dir>/tlsrpt.db, and sending the reports of a day, through
 * the running daemon (a request row it polls) or, when no daemon runs,
 * directly (tlsrpt_run_start() with no queue: mailto reports wait in the
 * spool for the next start).
 *
 * Moved out of tlsrpt.c unchanged (issue #15).  With state_backend =
 * postgresql://... (issue #19) `show` reads the fleet's counters from
 * PostgreSQL (loaded into an in-memory copy, tlsrpt_pg.c), and `send`
 * needs the running daemon: it is the one that takes the sender's lock.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <sqlite3.h>

#include "cli.h"
#include "cli_tlsrpt.h"
#include "config.h"
#include "spool.h"
#include "state_pg.h"
#include "tlsrpt_db.h"
#include "tlsrpt_pg.h"
#include "tlsrpt_report.h"
#include "util.h"

#define CLI_BUSY_MS	5000
#define CLI_WAIT	300	/* seconds the CLI waits for the daemon */

/* ---- the CLI ------------------------------------------------------------- */

static void
cli_usage(void)
{
	fprintf(stderr, "usage: danerelay tlsrpt show [DOMAIN] "
	    "[--date YYYY-MM-DD]\n"
	    "       danerelay tlsrpt send [--date YYYY-MM-DD]\n");
}

/* Make s printable for the terminal (it may hold remote data). */
static void
put_safe(FILE *f, const char *s)
{
	for (; *s; s++)
		fputc(((unsigned char)*s >= 0x20 && *s != 0x7f) ||
		    *s == '\n' ? *s : '?', f);
}

static int
cli_show(sqlite3 *db, const char *day, const char *domain)
{
	sqlite3_stmt *s = NULL, *f = NULL;
	long long tot_s = 0, tot_f = 0;
	int n = 0;

	if (sqlite3_prepare_v2(db, "SELECT id, domain, type, strings, mx, "
	    "success, failure FROM policy WHERE day = ?1 AND (?2 IS NULL OR "
	    "domain = ?2) ORDER BY domain, type, mx, strings", -1, &s,
	    NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT result, sending_ip, mx, "
	    "receiving_ip, reason, count FROM failure WHERE policy = ?1 "
	    "ORDER BY count DESC, result", -1, &f, NULL) != SQLITE_OK) {
		fprintf(stderr, "danerelay: tlsrpt database: %s\n",
		    sqlite3_errmsg(db));
		sqlite3_finalize(s);
		return 1;
	}
	sqlite3_bind_text(s, 1, day, -1, SQLITE_STATIC);
	if (domain != NULL)
		sqlite3_bind_text(s, 2, domain, -1, SQLITE_STATIC);
	printf("TLSRPT counters for %s (UTC)%s%s\n", day, domain ? ", " : "",
	    domain ? domain : "");
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *mx = (const char *)sqlite3_column_text(s, 4);
		const char *str = (const char *)sqlite3_column_text(s, 3);

		n++;
		tot_s += sqlite3_column_int64(s, 5);
		tot_f += sqlite3_column_int64(s, 6);
		printf("\n");
		put_safe(stdout, (const char *)sqlite3_column_text(s, 1));
		printf(" policy=%s", sqlite3_column_text(s, 2));
		if (mx && *mx) {
			char *m = xstrdup(mx), *p;

			for (p = m; *p; p++)
				if (*p == '\n')
					*p = ',';
			printf(" mx-host=");
			put_safe(stdout, m);
			free(m);
		}
		printf(" success=%lld failure=%lld\n",
		    (long long)sqlite3_column_int64(s, 5),
		    (long long)sqlite3_column_int64(s, 6));
		if (str && *str) {
			char *c = xstrdup(str), *line, *save;

			for (line = strtok_r(c, "\n", &save); line != NULL;
			    line = strtok_r(NULL, "\n", &save)) {
				printf("    policy-string: ");
				put_safe(stdout, line);
				printf("\n");
			}
			free(c);
		}
		sqlite3_reset(f);
		sqlite3_bind_int64(f, 1, sqlite3_column_int64(s, 0));
		while (sqlite3_step(f) == SQLITE_ROW) {
			const char *v;
			int k;
			static const char *names[] = { "result-type",
			    "sending-mta-ip", "receiving-mx-hostname",
			    "receiving-ip", "failure-reason-code" };

			printf("    %lld x", (long long)sqlite3_column_int64(f,
			    5));
			for (k = 0; k < 5; k++) {
				v = (const char *)sqlite3_column_text(f, k);
				if (v == NULL || *v == '\0')
					continue;
				printf(" %s=", names[k]);
				if (k == 4)
					printf("\"");
				put_safe(stdout, v);
				if (k == 4)
					printf("\"");
			}
			printf("\n");
		}
	}
	sqlite3_finalize(s);
	sqlite3_finalize(f);
	if (n == 0)
		printf("no sessions recorded\n");
	else
		printf("\ntotal: %lld successful, %lld failed session%s\n",
		    tot_s, tot_f, tot_f == 1 ? "" : "s");
	return 0;
}

struct cli_run {
	int done;
	int nerrors;
};

static void
cli_line(const char *line, void *arg)
{
	(void)arg;
	put_safe(stdout, line);
	printf("\n");
	fflush(stdout);
}

static void
cli_done(struct tlsrpt_run *run, int nerrors, void *arg)
{
	struct cli_run *r = arg;

	(void)run;
	r->done = 1;
	r->nerrors = nerrors;
}

/* No daemon: do it here (mailto reports wait in the spool). */
static int
cli_send_direct(const struct config *cf, sqlite3 *db, const char *day)
{
	struct event_base *base;
	struct spool *sp;
	struct tlsrpt_run *run;
	struct cli_run r = { 0, 0 };
	char err[1024];

	if ((sp = spool_open(cf->spool_dir, err, sizeof(err))) == NULL) {
		fprintf(stderr, "danerelay: spool %s: %s\n", cf->spool_dir,
		    err);
		return 1;
	}
	if ((base = event_base_new()) == NULL) {
		spool_close(sp);
		fprintf(stderr, "danerelay: event_base_new failed\n");
		return 1;
	}
	run = tlsrpt_run_start(base, cf, db, sp, NULL, NULL, day, cli_line,
	    cli_done, &r, err, sizeof(err));
	if (run == NULL) {
		fprintf(stderr, "danerelay: %s\n", err);
		r.done = 1;
		r.nerrors = 1;
	}
	while (!r.done && event_base_loop(base, EVLOOP_ONCE) == 0)
		;
	if (!r.done)
		tlsrpt_run_cancel(run);
	event_base_free(base);
	spool_close(sp);
	return r.done && r.nerrors == 0 ? 0 : 1;
}

/* The daemon runs: leave it a request and wait for the answer. */
static int
cli_send_daemon(sqlite3 *db, const char *day)
{
	sqlite3_stmt *s = NULL;
	long long id;
	double start = mono_now();
	int rc = 1;

	if (sqlite3_prepare_v2(db, "INSERT INTO request (day, created) VALUES "
	    "(?1, ?2)", -1, &s, NULL) != SQLITE_OK) {
		fprintf(stderr, "danerelay: tlsrpt database: %s\n",
		    sqlite3_errmsg(db));
		return 1;
	}
	if (day != NULL)
		sqlite3_bind_text(s, 1, day, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (long long)time(NULL));
	if (sqlite3_step(s) != SQLITE_DONE) {
		fprintf(stderr, "danerelay: tlsrpt database: %s\n",
		    sqlite3_errmsg(db));
		sqlite3_finalize(s);
		return 1;
	}
	sqlite3_finalize(s);
	id = sqlite3_last_insert_rowid(db);
	printf("asked the running daemon to send the reports of %s\n",
	    day ? day : "every day due");
	fflush(stdout);
	if (sqlite3_prepare_v2(db, "SELECT done, nerrors, output FROM request "
	    "WHERE id = ?1", -1, &s, NULL) != SQLITE_OK) {
		fprintf(stderr, "danerelay: tlsrpt database: %s\n",
		    sqlite3_errmsg(db));
		return 1;
	}
	for (;;) {
		sqlite3_reset(s);
		sqlite3_bind_int64(s, 1, id);
		if (sqlite3_step(s) != SQLITE_ROW) {
			fprintf(stderr, "danerelay: the request vanished\n");
			break;
		}
		if (sqlite3_column_int(s, 0)) {
			const char *out = (const char *)sqlite3_column_text(s,
			    2);

			if (out != NULL)
				put_safe(stdout, out);
			rc = sqlite3_column_int(s, 1) == 0 ? 0 : 1;
			break;
		}
		if (mono_now() - start > CLI_WAIT) {
			fprintf(stderr, "danerelay: no answer from the daemon "
			    "after %d seconds (the request stays; see the "
			    "mail log)\n", CLI_WAIT);
			break;
		}
		usleep(200 * 1000);
	}
	sqlite3_finalize(s);
	return rc;
}

/* Does a daemon hold the spool? 1 yes, 0 no, -1 cannot tell. */
static int
daemon_running(const struct config *cf)
{
	struct spool *sp;
	char err[512];
	int r;

	if ((sp = spool_open_flags(cf->spool_dir, SPOOL_NO_RECOVER, err,
	    sizeof(err))) == NULL)
		return 0;	/* no spool yet: nothing runs on it */
	r = spool_in_use(sp);
	spool_close(sp);
	return r;
}

int
tlsrpt_cli(const struct config *cf, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "date", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sub, *date = NULL, *domain = NULL;
	char today[11], err[1024], dom[256];
	time_t start;
	sqlite3 *db;
	int ch, rc;

	if (argc < 2) {
		cli_usage();
		return 2;
	}
	sub = argv[1];
	argc--;
	argv++;
	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+d:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			date = optarg;
			break;
		case 'h':
			cli_usage();
			return 0;
		default:
			cli_usage();
			return 2;
		}
	}
	argc -= optind;
	argv += optind;
	tlsrpt_day(tlsrpt_now(), today);
	if (date != NULL) {
		if (tlsrpt_day_parse(date, &start) == -1) {
			fprintf(stderr, "danerelay: --date %s: not a date "
			    "(YYYY-MM-DD)\n", date);
			return 2;
		}
		if (strcmp(date, today) > 0) {
			fprintf(stderr, "danerelay: --date %s is in the "
			    "future (today is %s UTC)\n", date, today);
			return 2;
		}
	}
	if (strcmp(sub, "show") == 0) {
		if (argc > 1) {
			cli_usage();
			return 2;
		}
		if (argc == 1) {
			if (strlen(argv[0]) >= sizeof(dom)) {
				fprintf(stderr, "danerelay: domain too long\n");
				return 2;
			}
			dr_strlcpy(dom, argv[0], sizeof(dom));
			domain = str_lower(dom);
			while (*dom && dom[strlen(dom) - 1] == '.')
				dom[strlen(dom) - 1] = '\0';
		}
	} else if (strcmp(sub, "send") == 0) {
		if (argc != 0) {
			cli_usage();
			return 2;
		}
	} else {
		cli_usage();
		return 2;
	}

	if (strcmp(sub, "show") == 0 && state_pg_enabled(cf)) {
		PGconn *pg;

		if ((pg = state_pg_connect(cf->state_backend, err,
		    sizeof(err))) == NULL) {
			fprintf(stderr, "danerelay: %s\n", err);
			return 1;
		}
		db = tlsrpt_pg_load(pg, date ? date : today, "", err,
		    sizeof(err));
		PQfinish(pg);
		if (db == NULL) {
			fprintf(stderr, "danerelay: PostgreSQL: %s\n", err);
			return 1;
		}
		rc = cli_show(db, date ? date : today, domain);
		sqlite3_close(db);
		return rc;
	}
	if (strcmp(sub, "show") == 0) {
		char *p = xasprintf("%s/%s", cf->state_dir ? cf->state_dir :
		    "", TLSRPT_DB_NAME);

		if (access(p, F_OK) == -1 && errno == ENOENT) {
			printf("no TLSRPT data yet (%s does not exist)\n", p);
			free(p);
			return 0;
		}
		free(p);
	}
	if (cli_become_spool_owner(cf->state_dir) == -1)
		return 1;
	if (strcmp(sub, "show") == 0) {
		if ((db = tlsrpt_db_open(cf->state_dir, 0, CLI_BUSY_MS, err,
		    sizeof(err))) == NULL) {
			fprintf(stderr, "danerelay: %s\n", err);
			return 1;
		}
		rc = cli_show(db, date ? date : today, domain);
		sqlite3_close(db);
		return rc;
	}

	if (!cf->tlsrpt) {
		fprintf(stderr, "danerelay: tlsrpt is switched off (tlsrpt = "
		    "no in %s)\n", cf->file ? cf->file : "the configuration");
		return 1;
	}
	if ((db = tlsrpt_db_open(cf->state_dir, 1, CLI_BUSY_MS, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "danerelay: %s\n", err);
		return 1;
	}
	switch (daemon_running(cf)) {
	case 1:
		rc = cli_send_daemon(db, date);
		break;
	default:
		if (state_pg_enabled(cf)) {
			fprintf(stderr, "danerelay: tlsrpt send: danerelayd is "
			    "not running (with state_backend = postgresql the "
			    "daemon sends, under the fleet's sender lock)\n");
			rc = 1;
			break;
		}
		rc = cli_send_direct(cf, db, date);
		break;
	}
	sqlite3_close(db);
	return rc;
}
