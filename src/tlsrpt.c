/*
 * tlsrpt.c - SMTP TLS Reporting (RFC 8460): recording session outcomes,
 * the counters in SQLite, the daemon's report schedule and the
 * `danerelay tlsrpt` command.  The report itself is tlsrpt_report.c.
 *
 * RFC 8460 sections implemented here: §4.3 (result types: what counts as
 * a failed session, see tlsrpt.h for the rules), §4.4 (the aggregation
 * keys of a report: policy-type, policy-string, policy-domain, mx-host;
 * failure details keyed by result-type, sending-mta-ip,
 * receiving-mx-hostname, receiving-ip, failure-reason-code), §4.1 (daily
 * UTC reporting period), §3 (report sessions are not counted: the caller
 * passes NULL).
 *
 * Hot path: tlsrpt_record() adds to an in-memory hash of policies, each
 * with its failure details, and never touches the disk.  A timer flushes
 * the aggregate every TLSRPT_FLUSH_SECS seconds in one transaction
 * (UPSERTs that add to the stored counters) on the io pool (the daemon's
 * loops never wait for SQLite): the aggregate becomes a snapshot that the
 * pool writes while recording goes on; a failed flush (the database
 * busy, the disk full) merges the snapshot back for the next tick.
 * If the aggregate grows beyond AGG_MAX entries between ticks it is
 * flushed at once.  tlsrpt_close() flushes what is left; a crash loses at
 * most the last few seconds of counters, never a report.
 *
 * Database <state_dir>/tlsrpt.db (WAL, so the CLI reads while the daemon
 * writes):
 *   policy   (day, domain, type, strings, mx) -> success, failure counts;
 *            strings and mx are the policy-string / mx-host lists joined
 *            with "\n" (their elements never contain one)
 *   failure  (policy, result, sending_ip, mx, receiving_ip, reason) ->
 *            count; "" for an unknown field (UNIQUE needs non-NULL)
 *   report, dest   what was sent (tlsrpt_report.c)
 *   request  `danerelay tlsrpt send` asking the running daemon: the CLI
 *            inserts a row, the daemon (polling PRAGMA data_version every
 *            second) runs it and writes done/nerrors/output; the CLI
 *            waits for that and prints the output.  This needs nothing
 *            from the control socket and survives a daemon restart.
 * Rows older than TLSRPT_KEEP_DAYS are deleted by the hourly schedule.
 *
 * Schedule (daemon): a timer one minute after start and then hourly at a
 * random minute (2..11) past the hour runs tlsrpt_run_start(day = NULL):
 * every past day's reports not yet sent, and https retries that are due.
 * So yesterday's reports leave a few minutes after 00:00 UTC.
 */
#include <sys/types.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <sqlite3.h>

#include "config.h"
#include "log.h"
#include "policy.h"
#include "resolver.h"
#include "smtp_client.h"
#include "spool.h"
#include "tls.h"
#include "tlsrpt.h"
#include "workq.h"
#include "tlsrpt_report.h"
#include "util.h"

#define AGG_BUCKETS	256
#define AGG_MAX		4096	/* policies + failure details in memory */
#define STR_MAX		1024	/* one policy string, reason ... */
#define NSTR_MAX	64	/* policy strings kept per policy */
#define REQ_POLL_MS	1000	/* CLI requests */
#define BUSY_MS		250	/* daemon: wait for a CLI's lock at most */
#define CLI_BUSY_MS	5000
#define CLI_WAIT	300	/* seconds the CLI waits for the daemon */

/* ---- clock and days ------------------------------------------------------ */

static time_t (*clock_fn)(void);

void
tlsrpt_set_clock(time_t (*now)(void))
{
	clock_fn = now;
}

time_t
tlsrpt_now(void)
{
	return clock_fn != NULL ? clock_fn() : time(NULL);
}

void
tlsrpt_day(time_t t, char out[11])
{
	struct tm tm;

	if (t < 0 || t > (time_t)253402300799LL)	/* 9999-12-31 */
		t = 0;
	gmtime_r(&t, &tm);
	if (strftime(out, 11, "%Y-%m-%d", &tm) != 10)
		dr_strlcpy(out, "1970-01-01", 11);
}

int
tlsrpt_day_parse(const char *s, time_t *start)
{
	struct tm tm;
	char back[11];
	int i;
	time_t t;

	if (s == NULL || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return -1;
	for (i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = atoi(s) - 1900;
	tm.tm_mon = atoi(s + 5) - 1;
	tm.tm_mday = atoi(s + 8);
	if (tm.tm_year < 70 || tm.tm_mon < 0 || tm.tm_mon > 11 ||
	    tm.tm_mday < 1 || tm.tm_mday > 31)
		return -1;
	if ((t = timegm(&tm)) == (time_t)-1)
		return -1;
	tlsrpt_day(t, back);		/* 2024-02-31 is not a day */
	if (strcmp(back, s) != 0)
		return -1;
	*start = t;
	return 0;
}

/* ---- the database -------------------------------------------------------- */

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS policy ("
	" id INTEGER PRIMARY KEY,"
	" day TEXT NOT NULL, domain TEXT NOT NULL, type TEXT NOT NULL,"
	" strings TEXT NOT NULL, mx TEXT NOT NULL,"
	" success INTEGER NOT NULL DEFAULT 0,"
	" failure INTEGER NOT NULL DEFAULT 0,"
	" UNIQUE (day, domain, type, strings, mx));"
	"CREATE TABLE IF NOT EXISTS failure ("
	" policy INTEGER NOT NULL REFERENCES policy(id) ON DELETE CASCADE,"
	" result TEXT NOT NULL, sending_ip TEXT NOT NULL, mx TEXT NOT NULL,"
	" receiving_ip TEXT NOT NULL, reason TEXT NOT NULL,"
	" count INTEGER NOT NULL,"
	" UNIQUE (policy, result, sending_ip, mx, receiving_ip, reason));"
	"CREATE TABLE IF NOT EXISTS report ("
	" day TEXT NOT NULL, domain TEXT NOT NULL, state TEXT NOT NULL,"
	" report_id TEXT, gz BLOB, created INTEGER NOT NULL, note TEXT,"
	" PRIMARY KEY (day, domain));"
	"CREATE TABLE IF NOT EXISTS dest ("
	" day TEXT NOT NULL, domain TEXT NOT NULL, uri TEXT NOT NULL,"
	" state TEXT NOT NULL, tries INTEGER NOT NULL DEFAULT 0,"
	" next_try INTEGER NOT NULL DEFAULT 0, note TEXT,"
	" PRIMARY KEY (day, domain, uri));"
	"CREATE TABLE IF NOT EXISTS request ("
	" id INTEGER PRIMARY KEY, day TEXT, created INTEGER NOT NULL,"
	" done INTEGER NOT NULL DEFAULT 0, nerrors INTEGER, output TEXT);"
	"PRAGMA user_version = 1;";

static int
db_exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* Open <state_dir>/tlsrpt.db; create: make it and its schema. */
static sqlite3 *
db_open(const char *state_dir, int create, int busy_ms, char *err,
    size_t errlen)
{
	sqlite3 *db = NULL;
	char *path;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX;

	if (state_dir == NULL || *state_dir == '\0') {
		snprintf(err, errlen, "state_dir is not set");
		return NULL;
	}
	path = xasprintf("%s/%s", state_dir, TLSRPT_DB_NAME);
	if (create)
		flags |= SQLITE_OPEN_CREATE;
	if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, db ? sqlite3_errmsg(db) :
		    "cannot open");
		goto fail;
	}
	sqlite3_busy_timeout(db, busy_ms);
	sqlite3_extended_result_codes(db, 1);
	if (db_exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = "
	    "NORMAL; PRAGMA foreign_keys = ON;", err, errlen) == -1 ||
	    db_exec(db, schema, err, errlen) == -1) {
		char tmp[512];

		snprintf(tmp, sizeof(tmp), "%s: %s", path, err);
		dr_strlcpy(err, tmp, errlen);
		goto fail;
	}
	free(path);
	return db;
fail:
	free(path);
	sqlite3_close(db);
	return NULL;
}

/* ---- the in-memory aggregate --------------------------------------------- */

struct agg_fail {
	struct agg_fail *next;
	char *result, *sip, *mx, *rip, *reason;
	long long count;
};

struct agg_policy {
	struct agg_policy *next;
	char *key;
	char day[11];
	char *domain, *type, *strings, *mx;
	long long success, failure;
	struct agg_fail *fails;
};

struct tlsrpt {
	/* Every worker's deliveries record here: the counters in memory
	 * and their flush are under mtx (recursive: a full table flushes
	 * from tlsrpt_record).  Timers and reports: worker 0's loop. */
	pthread_mutex_t mtx;
	pthread_cond_t cv;		/* writing went to 0 */
	int flushing;			/* an asynchronous flush is out */
	int writing;			/* ... and uses the statements */
	struct workq *wq;		/* NULL: flush on the loop */
	struct workq_port *port;
	const struct config *cf;	/* the current one (tlsrpt_reload) */
	int enabled;
	char *state_dir;
	struct event_base *base;
	sqlite3 *db;
	sqlite3_stmt *st_policy, *st_fail;

	struct agg_policy *agg[AGG_BUCKETS];
	size_t nagg;
	int flush_warned;
	unsigned long long dropped;	/* events lost while full and the
					 * database failing */
	struct event *ev_flush;

	/* daemon: reports */
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
};

static uint32_t
hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* Bounded, printable copy ("" for NULL). */
static char *
clean(const char *s)
{
	size_t i, n;
	char *d;

	if (s == NULL)
		return xstrdup("");
	n = strnlen(s, STR_MAX);
	d = xmalloc(n + 1);
	for (i = 0; i < n; i++)
		d[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' :
		    s[i];
	d[n] = '\0';
	return d;
}

/* Elements joined with "\n", each cleaned. */
static char *
join(const char *const *v, size_t n)
{
	char *buf = NULL, *c;
	size_t len = 0, i;
	int first = 1;
	FILE *f;

	if ((f = open_memstream(&buf, &len)) == NULL)
		return xstrdup("");
	for (i = 0; i < n && i < NSTR_MAX; i++) {
		if (v[i] == NULL)
			continue;
		c = clean(v[i]);
		fprintf(f, "%s%s", first ? "" : "\n", c);
		first = 0;
		free(c);
	}
	fclose(f);
	return buf;
}

static void
agg_fail_free(struct agg_fail *f)
{
	free(f->result);
	free(f->sip);
	free(f->mx);
	free(f->rip);
	free(f->reason);
	free(f);
}

static void
agg_free_one(struct agg_policy *p)
{
	struct agg_fail *f, *fn;

	for (f = p->fails; f != NULL; f = fn) {
		fn = f->next;
		agg_fail_free(f);
	}
	free(p->key);
	free(p->domain);
	free(p->type);
	free(p->strings);
	free(p->mx);
	free(p);
}

static void
agg_free_all(struct tlsrpt *t)
{
	struct agg_policy *p, *pn;
	size_t i;

	for (i = 0; i < AGG_BUCKETS; i++) {
		for (p = t->agg[i]; p != NULL; p = pn) {
			pn = p->next;
			agg_free_one(p);
		}
		t->agg[i] = NULL;
	}
	t->nagg = 0;
}

static int
streq(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

static void record_locked(struct tlsrpt *, const struct tlsrpt_event *);
static int flush_locked(struct tlsrpt *);

void
tlsrpt_record(struct tlsrpt *t, const struct tlsrpt_event *ev)
{
	if (t == NULL)
		return;
	pthread_mutex_lock(&t->mtx);
	record_locked(t, ev);
	pthread_mutex_unlock(&t->mtx);
}

int
tlsrpt_flush(struct tlsrpt *t)
{
	int r;

	if (t == NULL)
		return 0;
	pthread_mutex_lock(&t->mtx);
	r = flush_locked(t);
	pthread_mutex_unlock(&t->mtx);
	return r;
}

static void
record_locked(struct tlsrpt *t, const struct tlsrpt_event *ev)
{
	struct agg_policy *p;
	struct agg_fail *f;
	char day[11], *domain, *strings, *mx, *key;
	const char *type;
	uint32_t b;

	if (t == NULL || !t->enabled || ev == NULL || ev->domain == NULL ||
	    ev->domain[0] == '\0')
		return;
	/*
	 * Full: write now - unless the database is failing (the timer keeps
	 * trying); then the event is dropped rather than making every
	 * delivery wait for a broken disk or growing without bound.
	 */
	if (t->nagg >= AGG_MAX && (t->flush_warned || flush_locked(t) == -1)) {
		if (t->dropped++ == 0)
			log_warnx("tlsrpt: counters cannot be written and the "
			    "memory for them is full: dropping events");
		return;
	}
	tlsrpt_day(ev->when ? ev->when : tlsrpt_now(), day);
	domain = str_lower(clean(ev->domain));
	type = policy_rpt_type_name(ev->type);
	strings = join(ev->strings, ev->nstrings);
	mx = join(ev->mx, ev->nmx);
	key = xasprintf("%s\x1f%s\x1f%s\x1f%s\x1f%s", day, domain, type,
	    strings, mx);
	b = hash(key) % AGG_BUCKETS;
	for (p = t->agg[b]; p != NULL; p = p->next)
		if (streq(p->key, key))
			break;
	if (p == NULL) {
		p = xcalloc(1, sizeof(*p));
		p->key = key;
		memcpy(p->day, day, sizeof(p->day));
		p->domain = domain;
		p->type = xstrdup(type);
		p->strings = strings;
		p->mx = mx;
		p->next = t->agg[b];
		t->agg[b] = p;
		t->nagg++;
	} else {
		free(key);
		free(domain);
		free(strings);
		free(mx);
	}
	if (ev->result == NULL) {
		p->success++;
	} else {
		char *res = clean(ev->result), *sip = clean(ev->sending_ip);
		char *rmx = str_lower(clean(ev->receiving_mx));
		char *rip = clean(ev->receiving_ip), *why = clean(ev->reason);

		p->failure++;
		for (f = p->fails; f != NULL; f = f->next)
			if (streq(f->result, res) && streq(f->sip, sip) &&
			    streq(f->mx, rmx) && streq(f->rip, rip) &&
			    streq(f->reason, why))
				break;
		if (f == NULL) {
			f = xcalloc(1, sizeof(*f));
			f->result = res;
			f->sip = sip;
			f->mx = rmx;
			f->rip = rip;
			f->reason = why;
			f->next = p->fails;
			p->fails = f;
			t->nagg++;
		} else {
			free(res);
			free(sip);
			free(rmx);
			free(rip);
			free(why);
		}
		f->count++;
	}
}

/* Add buckets' counters to the database in one transaction (any thread;
 * the statements are used by one writer at a time: t->writing). */
static int
write_aggs(struct tlsrpt *t, struct agg_policy **buckets, char *err,
    size_t errlen)
{
	struct agg_policy *p;
	struct agg_fail *f;
	sqlite3_int64 id;
	size_t i;
	int rc;

	if (db_exec(t->db, "BEGIN IMMEDIATE", err, errlen) == -1)
		return -1;
	for (i = 0; i < AGG_BUCKETS; i++) {
		for (p = buckets[i]; p != NULL; p = p->next) {
			sqlite3_stmt *s = t->st_policy;

			sqlite3_reset(s);
			sqlite3_bind_text(s, 1, p->day, -1, SQLITE_STATIC);
			sqlite3_bind_text(s, 2, p->domain, -1, SQLITE_STATIC);
			sqlite3_bind_text(s, 3, p->type, -1, SQLITE_STATIC);
			sqlite3_bind_text(s, 4, p->strings, -1, SQLITE_STATIC);
			sqlite3_bind_text(s, 5, p->mx, -1, SQLITE_STATIC);
			sqlite3_bind_int64(s, 6, p->success);
			sqlite3_bind_int64(s, 7, p->failure);
			if ((rc = sqlite3_step(s)) != SQLITE_ROW)
				goto fail;
			id = sqlite3_column_int64(s, 0);
			sqlite3_reset(s);
			for (f = p->fails; f != NULL; f = f->next) {
				s = t->st_fail;
				sqlite3_reset(s);
				sqlite3_bind_int64(s, 1, id);
				sqlite3_bind_text(s, 2, f->result, -1,
				    SQLITE_STATIC);
				sqlite3_bind_text(s, 3, f->sip, -1,
				    SQLITE_STATIC);
				sqlite3_bind_text(s, 4, f->mx, -1,
				    SQLITE_STATIC);
				sqlite3_bind_text(s, 5, f->rip, -1,
				    SQLITE_STATIC);
				sqlite3_bind_text(s, 6, f->reason, -1,
				    SQLITE_STATIC);
				sqlite3_bind_int64(s, 7, f->count);
				rc = sqlite3_step(s);
				sqlite3_reset(s);
				if (rc != SQLITE_DONE)
					goto fail;
			}
		}
	}
	if (db_exec(t->db, "COMMIT", err, errlen) == -1)
		goto rollback;
	return 0;
fail:
	snprintf(err, errlen, "%s", sqlite3_errmsg(t->db));
	sqlite3_reset(t->st_policy);
	sqlite3_reset(t->st_fail);
rollback:
	{
		char e2[64];

		(void)db_exec(t->db, "ROLLBACK", e2, sizeof(e2));
	}
	return -1;
}

static void
flush_result(struct tlsrpt *t, int ok, const char *err)
{
	if (ok) {
		if (t->flush_warned)
			log_info("tlsrpt: counters written again (%llu events "
			    "were dropped meanwhile)", t->dropped);
		t->flush_warned = 0;
		t->dropped = 0;
		return;
	}
	if (!t->flush_warned)
		log_warnx("tlsrpt: cannot write counters (kept in memory, "
		    "retrying): %s", err);
	t->flush_warned = 1;
}

/* The counters, now, on the calling thread (mtx held). */
static int
flush_locked(struct tlsrpt *t)
{
	char err[512];

	/* an asynchronous flush uses the statements: let it finish */
	while (t->writing)
		pthread_cond_wait(&t->cv, &t->mtx);
	if (t->nagg == 0)
		return 0;
	if (write_aggs(t, t->agg, err, sizeof(err)) == -1) {
		flush_result(t, 0, err);
		return -1;
	}
	agg_free_all(t);
	flush_result(t, 1, NULL);
	return 0;
}

/*
 * The timer's flush, on the io pool: the counters so far become a
 * snapshot and recording goes on into an empty table meanwhile; a failed
 * write puts the snapshot's counts back (merged with what came since).
 */
struct tlsrpt_flush_job {
	struct tlsrpt		*t;
	struct agg_policy	*snap[AGG_BUCKETS];
	int			 ok;
	char			 err[512];
};

static void
flush_work(void *arg)
{
	struct tlsrpt_flush_job *j = arg;
	struct tlsrpt *t = j->t;

	j->ok = write_aggs(t, j->snap, j->err, sizeof(j->err)) == 0;
	pthread_mutex_lock(&t->mtx);
	t->writing = 0;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mtx);
}

/* Put one snapshot entry back into t->agg (mtx held). */
static void
agg_merge(struct tlsrpt *t, struct agg_policy *p)
{
	struct agg_policy *q;
	struct agg_fail *f, *fn, *g;
	uint32_t b = hash(p->key) % AGG_BUCKETS;

	for (q = t->agg[b]; q != NULL; q = q->next)
		if (streq(q->key, p->key))
			break;
	if (q == NULL) {
		p->next = t->agg[b];
		t->agg[b] = p;
		t->nagg++;
		for (f = p->fails; f != NULL; f = f->next)
			t->nagg++;
		return;
	}
	q->success += p->success;
	q->failure += p->failure;
	for (f = p->fails; f != NULL; f = fn) {
		fn = f->next;
		for (g = q->fails; g != NULL; g = g->next)
			if (streq(g->result, f->result) &&
			    streq(g->sip, f->sip) && streq(g->mx, f->mx) &&
			    streq(g->rip, f->rip) && streq(g->reason, f->reason))
				break;
		if (g != NULL) {
			g->count += f->count;
			agg_fail_free(f);
		} else {
			f->next = q->fails;
			q->fails = f;
			t->nagg++;
		}
	}
	p->fails = NULL;
	agg_free_one(p);
}

static void
flush_done(void *arg)
{
	struct tlsrpt_flush_job *j = arg;
	struct tlsrpt *t = j->t;
	struct agg_policy *p, *pn;
	size_t i;

	pthread_mutex_lock(&t->mtx);
	for (i = 0; i < AGG_BUCKETS; i++)
		for (p = j->snap[i]; p != NULL; p = pn) {
			pn = p->next;
			if (j->ok)
				agg_free_one(p);
			else
				agg_merge(t, p);
		}
	flush_result(t, j->ok, j->err);
	t->flushing = 0;
	pthread_mutex_unlock(&t->mtx);
	free(j);
}

void
tlsrpt_flush_start(struct tlsrpt *t)
{
	struct tlsrpt_flush_job *j;

	if (t == NULL || t->wq == NULL)
		return;
	pthread_mutex_lock(&t->mtx);
	if (t->flushing || t->nagg == 0) {
		pthread_mutex_unlock(&t->mtx);
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->t = t;
	memcpy(j->snap, t->agg, sizeof(j->snap));
	memset(t->agg, 0, sizeof(t->agg));
	t->nagg = 0;
	t->flushing = t->writing = 1;
	pthread_mutex_unlock(&t->mtx);
	workq_submit(t->wq, t->port, flush_work, flush_done, j);
}

void
tlsrpt_set_workq(struct tlsrpt *t, struct workq *wq, struct workq_port *port)
{
	if (t == NULL)
		return;
	t->wq = port != NULL ? wq : NULL;
	t->port = port;
}

static void
flush_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct tlsrpt *t = arg;

	(void)fd;
	(void)ev;
	if (t->wq != NULL)
		tlsrpt_flush_start(t);
	else
		(void)tlsrpt_flush(t);
}

/* ---- open, close --------------------------------------------------------- */

struct tlsrpt *
tlsrpt_open(const struct config *cf, struct event_base *base, char *err,
    size_t errlen)
{
	struct tlsrpt *t = xcalloc(1, sizeof(*t));
	struct timeval tv = { TLSRPT_FLUSH_SECS, 0 };
	pthread_mutexattr_t ma;

	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&t->mtx, &ma);
	pthread_mutexattr_destroy(&ma);
	pthread_cond_init(&t->cv, NULL);

	t->cf = cf;
	t->enabled = cf->tlsrpt;
	t->base = base;
	t->state_dir = xstrdup(cf->state_dir ? cf->state_dir : "");
	if ((t->db = db_open(t->state_dir, 1, BUSY_MS, err, errlen)) == NULL)
		goto fail;
	if (sqlite3_prepare_v2(t->db,
	    "INSERT INTO policy (day, domain, type, strings, mx, success, "
	    "failure) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (day, "
	    "domain, type, strings, mx) DO UPDATE SET success = success + "
	    "excluded.success, failure = failure + excluded.failure "
	    "RETURNING id", -1, &t->st_policy, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(t->db,
	    "INSERT INTO failure (policy, result, sending_ip, mx, "
	    "receiving_ip, reason, count) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
	    "ON CONFLICT (policy, result, sending_ip, mx, receiving_ip, "
	    "reason) DO UPDATE SET count = count + excluded.count", -1,
	    &t->st_fail, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "tlsrpt database: %s",
		    sqlite3_errmsg(t->db));
		goto fail;
	}
	if (base != NULL) {
		t->ev_flush = event_new(base, -1, EV_PERSIST, flush_cb, t);
		if (t->ev_flush == NULL || event_add(t->ev_flush, &tv) == -1) {
			snprintf(err, errlen, "cannot arm the tlsrpt timer");
			goto fail;
		}
	}
	return t;
fail:
	tlsrpt_close(t);
	return NULL;
}

void
tlsrpt_close(struct tlsrpt *t)
{
	if (t == NULL)
		return;
	tlsrpt_run_cancel(t->run);
	t->run = NULL;
	if (t->db != NULL && tlsrpt_flush(t) == -1)
		log_warnx("tlsrpt: counters of the last seconds are lost");
	agg_free_all(t);
	if (t->ev_flush != NULL)
		event_free(t->ev_flush);
	if (t->ev_sched != NULL)
		event_free(t->ev_sched);
	if (t->ev_req != NULL)
		event_free(t->ev_req);
	sqlite3_finalize(t->st_policy);
	sqlite3_finalize(t->st_fail);
	sqlite3_close(t->db);
	free(t->run_out);
	free(t->state_dir);
	pthread_mutex_destroy(&t->mtx);
	pthread_cond_destroy(&t->cv);
	free(t);
}

void
tlsrpt_reload(struct tlsrpt *t, const struct config *cf)
{
	if (t == NULL)
		return;
	t->cf = cf;
	if (t->enabled != cf->tlsrpt)
		log_info("tlsrpt: %s", cf->tlsrpt ? "enabled" : "disabled");
	t->enabled = cf->tlsrpt;
}

/* ---- delivery hooks ------------------------------------------------------ */

/* "mx: a.example" lines of an MTA-STS policy -> mx-host patterns. */
static size_t
sts_mx(const struct decision_host *h, const char **mx, size_t max)
{
	size_t i, n = 0;
	const char *s;

	for (i = 0; i < h->nrpt_strings && n < max; i++) {
		s = h->rpt_strings[i];
		if (strncasecmp(s, "mx", 2) != 0)
			continue;
		s += 2;
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s++ != ':')
			continue;
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s != '\0')
			mx[n++] = s;
	}
	return n;
}

/* Event skeleton for host h: policy domain, type, strings, mx-host. */
static void
host_event(const struct decision_host *h, struct tlsrpt_event *ev,
    const char **mx, size_t max)
{
	memset(ev, 0, sizeof(*ev));
	ev->domain = h->rpt_domain;
	ev->type = h->rpt_type;
	ev->strings = (const char *const *)h->rpt_strings;
	ev->nstrings = h->nrpt_strings;
	ev->mx = mx;
	/* mx-host: the policy's mx patterns (sts), the MX host the TLSA
	 * records belong to (tlsa); none for no-policy-found (one policy
	 * entry per domain, like the big senders' reports). */
	if (h->rpt_type == RPT_STS)
		ev->nmx = sts_mx(h, mx, max);
	else if (h->rpt_type == RPT_TLSA && h->name != NULL) {
		mx[0] = h->name;
		ev->nmx = 1;
	}
	ev->receiving_mx = h->name;
}

void
tlsrpt_note_session(struct tlsrpt *t, const struct decision_host *h,
    const struct dns_addr *a, const struct tls_outcome *o,
    const char *fail_type, const char *sending_ip)
{
	struct tlsrpt_event ev;
	const char *mx[16];
	const char *result = NULL, *reason = NULL;

	if (t == NULL || !t->enabled || h == NULL || h->rpt_domain == NULL ||
	    h->tls == PTLS_NONE)
		return;
	host_event(h, &ev, mx, 16);
	if (fail_type != NULL) {
		result = fail_type;
		reason = o != NULL && o->reason[0] ? o->reason : NULL;
	} else if (h->rpt_failure != NULL) {
		result = h->rpt_failure;
	} else {
		switch (h->tls) {
		case PTLS_DANE:
		case PTLS_VERIFY:
			/* ready() only comes after a verified handshake;
			 * check anyway. */
			if (o == NULL || !o->established)
				result = "starttls-not-supported";
			else if (!o->verified)
				result = o->result_type ? o->result_type :
				    "validation-failure";
			break;
		case PTLS_ENCRYPT:
			if (o == NULL || !o->established)
				result = "starttls-not-supported";
			break;
		case PTLS_MAY:
			if (o == NULL || !o->established) {
				result = "starttls-not-supported";
				break;
			}
			if (!h->sts_testing)
				break;
			if (!o->trusted) {
				result = tls_verify_result_type(
				    o->verify_error);
				if (result == NULL)
					result = "certificate-not-trusted";
				reason = o->verify_error != 0 ?
				    "certificate chain not verified" : NULL;
			} else if (h->sts_mismatch) {
				result = "validation-failure";
				reason = "MX host not listed in the MTA-STS "
				    "policy";
			}
			break;
		case PTLS_NONE:
			return;
		}
	}
	ev.result = result;
	if (result != NULL) {
		/* the connected socket's own address: what the receiver
		 * saw, whatever route or smtp_bind_address chose it */
		ev.sending_ip = sending_ip;
		ev.receiving_ip = a != NULL ? a->text : NULL;
		ev.reason = reason;
	}
	tlsrpt_record(t, &ev);
}

void
tlsrpt_note_skip(struct tlsrpt *t, const struct decision_host *h)
{
	struct tlsrpt_event ev;
	const char *mx[16];

	if (t == NULL || !t->enabled || h == NULL || h->rpt_failure == NULL ||
	    h->rpt_domain == NULL)
		return;
	host_event(h, &ev, mx, 16);
	ev.result = h->rpt_failure;
	ev.reason = h->reason;
	tlsrpt_record(t, &ev);
}

void
tlsrpt_note_decision(struct tlsrpt *t, const char *domain,
    const struct decision *d)
{
	struct tlsrpt_event ev;
	size_t i;

	if (t == NULL || !t->enabled || d == NULL || domain == NULL)
		return;
	if (d->rpt_failure == NULL) {
		/* nothing to try: every host was skipped (bogus TLSA,
		 * dane-required, ...): one failure per such host */
		for (i = 0; i < d->nhosts; i++)
			if (d->hosts[i].skip)
				tlsrpt_note_skip(t, &d->hosts[i]);
		return;
	}
	memset(&ev, 0, sizeof(ev));
	ev.domain = domain;
	ev.type = RPT_TLSA;
	ev.result = d->rpt_failure;
	ev.reason = d->reason;
	tlsrpt_record(t, &ev);
}

/* ---- report delivery policy (RFC 8460 §3) -------------------------------- */

int
tlsrpt_report_host_ok(const struct decision *d, const struct decision_host *h)
{
	(void)d;
	if (h->naddrs == 0)
		return 0;
	if (!h->skip)
		return 1;
	/* Skipped for a TLS/DANE/MTA-STS reason (it has a result-type),
	 * not because its addresses are unknown or bogus (naddrs == 0). */
	return h->rpt_failure != NULL;
}

int
tlsrpt_report_deliverable(const struct decision *d)
{
	size_t i;

	if (d->action == POLICY_FAIL)
		return 0;
	for (i = 0; i < d->nhosts; i++)
		if (tlsrpt_report_host_ok(d, &d->hosts[i]))
			return 1;
	return 0;
}

enum smtp_tls_mode
tlsrpt_report_tls_mode(const struct decision *d)
{
	return d->level == POLICY_NONE ? SMTP_TLS_NONE : SMTP_TLS_MAY;
}

/* ---- daemon: schedule and CLI requests ----------------------------------- */

static void
run_line(const char *line, void *arg)
{
	struct tlsrpt *t = arg;
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

static void
run_done(struct tlsrpt_run *run, int nerrors, void *arg)
{
	struct tlsrpt *t = arg;
	sqlite3_stmt *s = NULL;

	(void)run;
	t->run = NULL;
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

/* Start a run (day NULL: what is due).  0 started, -1 with err. */
static int
start_run(struct tlsrpt *t, const char *day, long long req, char *err,
    size_t errlen)
{
	if (t->run != NULL || t->sp == NULL) {
		snprintf(err, errlen, "busy");
		return -1;
	}
	if (tlsrpt_flush(t) == -1) {
		snprintf(err, errlen, "cannot write the counters to the "
		    "database");
		return -1;
	}
	t->run_req = req;
	t->run = tlsrpt_run_start(t->base, t->cf, t->db, t->sp, t->submit,
	    t->submit_arg, day, run_line, run_done, t, err, errlen);
	if (t->run == NULL) {
		t->run_req = 0;
		return -1;
	}
	return 0;
}

static void
purge_old(struct tlsrpt *t)
{
	char day[11], err[256], *sql;

	tlsrpt_day(tlsrpt_now() - (time_t)TLSRPT_KEEP_DAYS * 86400, day);
	sql = xasprintf("DELETE FROM failure WHERE policy IN (SELECT id FROM "
	    "policy WHERE day < '%s'); DELETE FROM policy WHERE day < '%s'; "
	    "DELETE FROM report WHERE day < '%s'; DELETE FROM dest WHERE "
	    "day < '%s'; DELETE FROM request WHERE created < %lld;", day,
	    day, day, day, (long long)tlsrpt_now() - 7 * 86400);
	if (db_exec(t->db, sql, err, sizeof(err)) == -1)
		log_warnx("tlsrpt: removing old counters: %s", err);
	free(sql);
}

static void
sched_arm(struct tlsrpt *t, int first)
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
	struct tlsrpt *t = arg;
	char err[512];

	(void)fd;
	(void)ev;
	sched_arm(t, 0);
	if (!t->enabled)
		return;
	purge_old(t);
	if (t->run != NULL)
		return;		/* the next hour */
	if (start_run(t, NULL, 0, err, sizeof(err)) == -1)
		log_warnx("tlsrpt: cannot send reports: %s", err);
}

/* Take the oldest open request (no run is going on). */
static void
req_check(struct tlsrpt *t)
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
	if (!t->enabled)
		snprintf(err, sizeof(err), "tlsrpt is switched off in the "
		    "daemon's configuration (tlsrpt = no)");
	else if (start_run(t, have_day ? day : NULL, id, err,
	    sizeof(err)) == 0)
		return;
	log_warnx("tlsrpt: %s", err);
	run_line(err, t);
	t->run_req = id;
	run_done(NULL, 1, t);
}

static void
req_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct tlsrpt *t = arg;
	sqlite3_stmt *s = NULL;
	long long v = -1;

	(void)fd;
	(void)ev;
	if (t->run != NULL)
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

void
tlsrpt_start(struct tlsrpt *t, struct spool *sp, spool_submit_cb *submit,
    void *submit_arg)
{
	struct timeval tv = { 0, REQ_POLL_MS * 1000 };
	uint32_t r;

	if (t == NULL || t->base == NULL)
		return;
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
		return;
	}
	sched_arm(t, 1);
	event_add(t->ev_req, &tv);
	t->data_version = -1;
}

/* ---- the CLI ------------------------------------------------------------- */

static void
cli_usage(void)
{
	fprintf(stderr, "usage: danerelay tlsrpt show [DOMAIN] "
	    "[--date YYYY-MM-DD]\n"
	    "       danerelay tlsrpt send [--date YYYY-MM-DD]\n");
}

/* Root works as the owner of state_dir (the daemon's user), so that
 * the files it creates stay usable by the daemon. */
static int
cli_become_owner(const char *dir)
{
	struct stat st;

	if (geteuid() != 0)
		return 0;
	if (stat(dir, &st) == -1) {
		fprintf(stderr, "danerelay: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	if (st.st_uid == 0)
		return 0;
	if (setgroups(1, &st.st_gid) == -1 ||
	    setresgid(st.st_gid, st.st_gid, st.st_gid) == -1 ||
	    setresuid(st.st_uid, st.st_uid, st.st_uid) == -1) {
		fprintf(stderr, "danerelay: cannot become the owner of %s: "
		    "%s\n", dir, strerror(errno));
		return -1;
	}
	return 0;
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
	if (cli_become_owner(cf->state_dir) == -1)
		return 1;
	if (strcmp(sub, "show") == 0) {
		if ((db = db_open(cf->state_dir, 0, CLI_BUSY_MS, err,
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
	if ((db = db_open(cf->state_dir, 1, CLI_BUSY_MS, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "danerelay: %s\n", err);
		return 1;
	}
	switch (daemon_running(cf)) {
	case 1:
		rc = cli_send_daemon(db, date);
		break;
	default:
		rc = cli_send_direct(cf, db, date);
		break;
	}
	sqlite3_close(db);
	return rc;
}
