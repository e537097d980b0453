/*
 * tlsrpt_sched.c - SMTP TLS Reporting (RFC 8460): the daemon's report
 * schedule and the `danerelay tlsrpt send` requests it takes.
 *
 * Schedule: a timer one minute after start and then hourly at a random
 * minute (2..11) past the hour runs tlsrpt_run_start(day = NULL): every
 * past day's reports not yet sent, and https retries that are due (§4.1:
 * daily UTC reporting period).  So yesterday's reports leave a few
 * minutes after 00:00 UTC.  The same hourly tick deletes what is older
 * than TLSRPT_KEEP_DAYS (tlsrpt_db_purge()).
 *
 * Requests: the CLI inserts a row into the request table; this module
 * polls PRAGMA data_version every second, runs the oldest open request
 * and writes done/nerrors/output back (see tlsrpt_db.c).
 *
 * Before each run the recorded counters are flushed (tlsrpt_flush()).
 * The run's mailto reports go to the queue through the spool_submit_cb
 * that main.c hands in.  Moved out of tlsrpt.c (issue #15); the code is
 * unchanged but for the struct it works on (its own instead of struct
 * tlsrpt's report fields).
 *
 * state_backend = postgresql (several relays, issue #19): a run is
 * wrapped in one PostgreSQL transaction on the io pool.  Before it
 * (claim_work): the counters are flushed, BEGIN, the sender is elected
 * with pg_try_advisory_xact_lock(STATE_PG_LOCK_TLSRPT) - a relay that
 * does not get it sends nothing and says that another relay is sending -
 * and the fleet's counters and report state are loaded into an
 * in-memory database (tlsrpt_pg.c) that the run works on as usual.
 * After it (store_work): the report and dest rows the run wrote go to
 * PostgreSQL and the same transaction commits.  A sender that dies
 * before the COMMIT loses its session; PostgreSQL rolls the transaction
 * back and releases the lock, and the next run (any relay) sends what
 * the dead one had claimed.  What remains is the window between a
 * report leaving (mail queued, POST answered) and that COMMIT: a sender
 * dying there has its reports sent again by the next one (README,
 * "Running several relays").  The run's own requests still come through
 * the local tlsrpt.db's request table (each relay's CLI talks to its own
 * daemon).
 */
#include <sys/types.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include "config.h"
#include "log.h"
#include "spool.h"
#include "state_pg.h"
#include "tlsrpt_db.h"
#include "tlsrpt_pg.h"
#include "tlsrpt_record.h"
#include "tlsrpt_report.h"
#include "tlsrpt_sched.h"
#include "util.h"
#include "workq.h"

#define REQ_POLL_MS	1000	/* CLI requests */

struct tlsrpt_sched {
	struct tlsrpt *t;		/* the counters (flushed before a run) */
	sqlite3 *db;			/* t's connection */
	struct event_base *base;
	struct spool *sp;
	spool_submit_cb *submit;	/* mailto reports to the queue */
	void *submit_arg;
	struct event *ev_sched, *ev_req;
	int sched_minute;
	struct tlsrpt_run *run;
	long long run_req;		/* request id of the run, 0: schedule */
	char *run_out;			/* its output lines */
	size_t run_outlen;
	long long data_version;

	/* state_backend = postgresql */
	char *pg_uri;
	PGconn *pg;			/* the sender's transaction */
	int pg_busy;			/* a claim or store job is out */
	int pg_ok;			/* job result: 1 ok, 0 error, -1
					 * another relay holds the lock */
	int pg_nerrors;			/* the run's, for store_done */
	sqlite3 *scratch;		/* the run's in-memory database */
	char pg_day[16];		/* "" = what is due */
	char pg_sender[256];		/* myhostname, for tlsrpt_report */
	char pg_err[1024];
};

/* ---- daemon: schedule and CLI requests ----------------------------------- */

static void
run_line(const char *line, void *arg)
{
	struct tlsrpt_sched *t = arg;
	size_t n = strlen(line);

	log_info("tlsrpt: %s", line);
	if (t->run_outlen + n + 2 > 64 * 1024)
		return;
	t->run_out = xrealloc(t->run_out, t->run_outlen + n + 2);
	memcpy(t->run_out + t->run_outlen, line, n);
	t->run_outlen += n;
	t->run_out[t->run_outlen++] = '\n';
	t->run_out[t->run_outlen] = '\0';
}

static void store_start(struct tlsrpt_sched *, int);

/* A run or request ends: its output to the request row. */
static void
req_finish(struct tlsrpt_sched *t, int nerrors)
{
	sqlite3_stmt *s = NULL;

	if (t->run_req > 0) {
		if (sqlite3_prepare_v2(t->db, "UPDATE request SET done = 1, "
		    "nerrors = ?1, output = ?2 WHERE id = ?3", -1, &s,
		    NULL) == SQLITE_OK) {
			sqlite3_bind_int(s, 1, nerrors);
			sqlite3_bind_text(s, 2, t->run_out ? t->run_out : "",
			    -1, SQLITE_STATIC);
			sqlite3_bind_int64(s, 3, t->run_req);
			if (sqlite3_step(s) != SQLITE_DONE)
				log_warnx("tlsrpt: request %lld: %s",
				    t->run_req, sqlite3_errmsg(t->db));
		}
		sqlite3_finalize(s);
	}
	t->run_req = 0;
	free(t->run_out);
	t->run_out = NULL;
	t->run_outlen = 0;
	t->data_version = -1;	/* look for the next request at the tick */
}

static void
run_done(struct tlsrpt_run *run, int nerrors, void *arg)
{
	struct tlsrpt_sched *t = arg;

	(void)run;
	t->run = NULL;
	if (t->pg_uri != NULL) {
		store_start(t, nerrors);	/* req_finish() when stored */
		return;
	}
	req_finish(t, nerrors);
}

/* ---- state_backend = postgresql: the sender's transaction ---------------- */

static void
pg_rollback(struct tlsrpt_sched *t)
{
	char e[64];

	if (t->pg != NULL && PQstatus(t->pg) == CONNECTION_OK)
		(void)state_pg_exec(t->pg, "ROLLBACK", e, sizeof(e));
}

/* io pool: flush, BEGIN, the lock, load the fleet's state. */
static void
claim_work(void *arg)
{
	struct tlsrpt_sched *t = arg;
	char oldest[11], e[512];
	PGresult *r;

	t->pg_ok = 0;
	if (tlsrpt_flush(t->t) == -1) {
		snprintf(t->pg_err, sizeof(t->pg_err), "cannot write the "
		    "counters to the database (see the log)");
		return;
	}
	if (state_pg_usable(&t->pg, t->pg_uri, e, sizeof(e)) == -1) {
		snprintf(t->pg_err, sizeof(t->pg_err), "%s", e);
		return;
	}
	if (state_pg_exec(t->pg, "BEGIN", e, sizeof(e)) == -1)
		goto fail;
	snprintf(oldest, sizeof(oldest), "%lld", STATE_PG_LOCK_TLSRPT);
	{
		const char *pv[1] = { oldest };

		if ((r = state_pg_query(t->pg, "SELECT pg_try_advisory_xact_"
		    "lock($1::bigint)", 1, pv, e, sizeof(e))) == NULL)
			goto fail;
	}
	if (strcmp(PQgetvalue(r, 0, 0), "t") != 0) {
		PQclear(r);
		pg_rollback(t);
		t->pg_ok = -1;
		return;
	}
	PQclear(r);
	if (tlsrpt_pg_purge(t->pg, e, sizeof(e)) == -1)
		goto fail;
	tlsrpt_day(tlsrpt_now() - (time_t)TLSRPT_KEEP_DAYS * 86400, oldest);
	if ((t->scratch = tlsrpt_pg_load(t->pg, t->pg_day[0] ? t->pg_day :
	    NULL, oldest, e, sizeof(e))) == NULL)
		goto fail;
	t->pg_ok = 1;
	return;
fail:
	snprintf(t->pg_err, sizeof(t->pg_err), "PostgreSQL: %s", e);
	pg_rollback(t);
}

static void
claim_done(void *arg)
{
	struct tlsrpt_sched *t = arg;
	char err[512];

	t->pg_busy = 0;
	if (t->pg_ok == 1) {
		t->run = tlsrpt_run_start(t->base, tlsrpt_config(t->t),
		    t->scratch, t->sp, t->submit, t->submit_arg,
		    t->pg_day[0] ? t->pg_day : NULL, run_line, run_done, t,
		    err, sizeof(err));
		if (t->run != NULL)
			return;
		run_line(err, t);
		store_start(t, -1);	/* rolls back */
		return;
	}
	if (t->pg_ok == -1)
		run_line("another relay is sending the reports now (it holds "
		    "the sender's lock); nothing sent here", t);
	else {
		log_warnx("tlsrpt: cannot send reports: %s", t->pg_err);
		run_line(t->pg_err, t);
	}
	req_finish(t, t->pg_ok == -1 && t->run_req == 0 ? 0 : 1);
}

/* io pool: the run's report and dest rows to PostgreSQL, COMMIT (or,
 * pg_nerrors -1, ROLLBACK). */
static void
store_work(void *arg)
{
	struct tlsrpt_sched *t = arg;
	char e[512];

	t->pg_ok = 0;
	if (t->pg_nerrors == -1) {
		pg_rollback(t);
		t->pg_ok = 1;
	} else if (tlsrpt_pg_store(t->pg, t->scratch, t->pg_sender, e,
	    sizeof(e)) == -1 ||
	    state_pg_exec(t->pg, "COMMIT", e, sizeof(e)) == -1) {
		snprintf(t->pg_err, sizeof(t->pg_err), "PostgreSQL: cannot "
		    "record what was sent: %s", e);
		pg_rollback(t);
	} else
		t->pg_ok = 1;
	sqlite3_close(t->scratch);
	t->scratch = NULL;
}

static void
store_done(void *arg)
{
	struct tlsrpt_sched *t = arg;
	int nerrors = t->pg_nerrors == -1 ? 1 : t->pg_nerrors;

	t->pg_busy = 0;
	if (!t->pg_ok) {
		log_warnx("tlsrpt: %s", t->pg_err);
		run_line(t->pg_err, t);
		nerrors++;
	}
	req_finish(t, nerrors);
}

static void
store_start(struct tlsrpt_sched *t, int nerrors)
{
	struct workq *wq;
	struct workq_port *port;

	tlsrpt_get_workq(t->t, &wq, &port);
	t->pg_nerrors = nerrors;
	t->pg_busy = 1;
	if (wq == NULL) {		/* shutting down: inline */
		store_work(t);
		store_done(t);
		return;
	}
	workq_submit(wq, port, store_work, store_done, t);
}

/* Start a run (day NULL: what is due).  0 started, -1 with err. */
static int
start_run(struct tlsrpt_sched *t, const char *day, long long req, char *err,
    size_t errlen)
{
	if (t->run != NULL || t->pg_busy || t->sp == NULL) {
		snprintf(err, errlen, "busy");
		return -1;
	}
	if (t->pg_uri != NULL) {
		struct workq *wq;
		struct workq_port *port;
		time_t start;

		tlsrpt_get_workq(t->t, &wq, &port);
		if (wq == NULL) {
			snprintf(err, errlen, "no io pool");
			return -1;
		}
		if (day != NULL && tlsrpt_day_parse(day, &start) == -1) {
			snprintf(err, errlen, "%s: not a day (YYYY-MM-DD)", day);
			return -1;
		}
		dr_strlcpy(t->pg_day, day != NULL ? day : "",
		    sizeof(t->pg_day));
		dr_strlcpy(t->pg_sender, tlsrpt_config(t->t)->myhostname ?
		    tlsrpt_config(t->t)->myhostname : "localhost",
		    sizeof(t->pg_sender));
		t->run_req = req;
		t->pg_busy = 1;
		/* the flush starts first, so claim_work's waits for it */
		tlsrpt_flush_start(t->t);
		workq_submit(wq, port, claim_work, claim_done, t);
		return 0;
	}
	if (tlsrpt_flush(t->t) == -1) {
		snprintf(err, errlen, "cannot write the counters to the "
		    "database");
		return -1;
	}
	t->run_req = req;
	t->run = tlsrpt_run_start(t->base, tlsrpt_config(t->t), t->db, t->sp,
	    t->submit, t->submit_arg, day, run_line, run_done, t, err, errlen);
	if (t->run == NULL) {
		t->run_req = 0;
		return -1;
	}
	return 0;
}

static void
purge_old(struct tlsrpt_sched *t)
{
	char err[256];

	if (tlsrpt_db_purge(t->db, err, sizeof(err)) == -1)
		log_warnx("tlsrpt: removing old counters: %s", err);
}

static void
sched_arm(struct tlsrpt_sched *t, int first)
{
	struct timeval tv = { 60, 0 };
	time_t now = tlsrpt_now();
	long into;

	if (!first) {
		/* next hour, at sched_minute past */
		into = (long)(now % 3600);
		tv.tv_sec = (long)t->sched_minute * 60 - into;
		if (tv.tv_sec <= 60)
			tv.tv_sec += 3600;
	}
	evtimer_add(t->ev_sched, &tv);
}

static void
sched_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct tlsrpt_sched *t = arg;
	char err[512];

	(void)fd;
	(void)ev;
	sched_arm(t, 0);
	if (!tlsrpt_enabled(t->t))
		return;
	purge_old(t);
	if (t->run != NULL || t->pg_busy)
		return;		/* the next hour */
	if (start_run(t, NULL, 0, err, sizeof(err)) == -1)
		log_warnx("tlsrpt: cannot send reports: %s", err);
}

/* Take the oldest open request (no run is going on). */
static void
req_check(struct tlsrpt_sched *t)
{
	sqlite3_stmt *s = NULL;
	long long id = 0;
	char day[16] = "", err[512];
	int have_day = 0;

	if (sqlite3_prepare_v2(t->db, "SELECT id, day FROM request WHERE "
	    "done = 0 ORDER BY id LIMIT 1", -1, &s, NULL) != SQLITE_OK)
		return;
	if (sqlite3_step(s) == SQLITE_ROW) {
		id = sqlite3_column_int64(s, 0);
		if (sqlite3_column_type(s, 1) == SQLITE_TEXT) {
			dr_strlcpy(day, (const char *)sqlite3_column_text(s, 1),
			    sizeof(day));
			have_day = 1;
		}
	}
	sqlite3_finalize(s);
	if (id == 0)
		return;
	log_info("tlsrpt: sending reports on request (%s)", have_day ? day :
	    "every day due");
	if (!tlsrpt_enabled(t->t))
		snprintf(err, sizeof(err), "tlsrpt is switched off in the "
		    "daemon's configuration (tlsrpt = no)");
	else if (start_run(t, have_day ? day : NULL, id, err,
	    sizeof(err)) == 0)
		return;
	log_warnx("tlsrpt: %s", err);
	run_line(err, t);
	t->run_req = id;
	req_finish(t, 1);
}

static void
req_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct tlsrpt_sched *t = arg;
	sqlite3_stmt *s = NULL;
	long long v = -1;

	(void)fd;
	(void)ev;
	if (t->run != NULL || t->pg_busy)
		return;		/* requests wait for the run to end */
	/* PRAGMA data_version changes when another connection commits. */
	if (sqlite3_prepare_v2(t->db, "PRAGMA data_version", -1, &s, NULL) ==
	    SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	if (v != -1 && v == t->data_version)
		return;
	t->data_version = v;
	req_check(t);
}

struct tlsrpt_sched *
tlsrpt_sched_start(struct tlsrpt *rpt, struct event_base *base,
    struct spool *sp, spool_submit_cb *submit, void *submit_arg)
{
	struct timeval tv = { 0, REQ_POLL_MS * 1000 };
	struct tlsrpt_sched *t;
	uint32_t r;

	if (rpt == NULL || base == NULL)
		return NULL;
	t = xcalloc(1, sizeof(*t));
	t->t = rpt;
	t->db = tlsrpt_db_handle(rpt);
	if (state_pg_enabled(tlsrpt_config(rpt)))
		t->pg_uri = xstrdup(tlsrpt_config(rpt)->state_backend);
	t->base = base;
	t->sp = sp;
	t->submit = submit;
	t->submit_arg = submit_arg;
	if (getentropy(&r, sizeof(r)) == -1)
		r = (uint32_t)getpid();
	t->sched_minute = 2 + (int)(r % 10);
	t->ev_sched = evtimer_new(t->base, sched_cb, t);
	t->ev_req = event_new(t->base, -1, EV_PERSIST, req_cb, t);
	if (t->ev_sched == NULL || t->ev_req == NULL) {
		log_warnx("tlsrpt: cannot arm timers: no reports will be "
		    "sent");
		return t;
	}
	sched_arm(t, 1);
	event_add(t->ev_req, &tv);
	t->data_version = -1;
	return t;
}

void
tlsrpt_sched_free(struct tlsrpt_sched *t)
{
	if (t == NULL)
		return;
	tlsrpt_run_cancel(t->run);
	if (t->ev_sched != NULL)
		event_free(t->ev_sched);
	if (t->ev_req != NULL)
		event_free(t->ev_req);
	free(t->run_out);
	sqlite3_close(t->scratch);
	PQfinish(t->pg);		/* an open transaction rolls back */
	free(t->pg_uri);
	free(t);
}
