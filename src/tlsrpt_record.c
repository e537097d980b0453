/*
 * tlsrpt_record.c - SMTP TLS Reporting (RFC 8460): recording session
 * outcomes and the counters in SQLite.  The database and the clock are
 * tlsrpt_db.c, the report itself tlsrpt_report.c, the daemon's report
 * schedule tlsrpt_sched.c and the `danerelay tlsrpt` command
 * cli_tlsrpt.c (issue #15 split them out of this file, tlsrpt.c).
 *
 * RFC 8460 sections implemented here: §4.3 (result types: what counts as
 * a failed session, see tlsrpt_record.h for the rules), §4.4 (the aggregation
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
 * Database <state_dir>/tlsrpt.db: see tlsrpt_db.c.  With state_backend =
 * postgresql://... (several relays, issue #19) the flush adds the same
 * UPSERTs to PostgreSQL's tlsrpt_policy/tlsrpt_failure instead, on the io
 * pool like the SQLite write: every relay adds its counts, and a report
 * is built from their sums.  The recording side never writes to
 * PostgreSQL itself: a table full between two timer flushes drops what
 * does not fit.  While PostgreSQL is down the flush fails and
 * the counts stay in memory (AGG_MAX bounds them; what does not fit is
 * dropped and counted in danerelay_tlsrpt_dropped_total); the next
 * successful flush writes them.  A COMMIT whose answer was lost with the
 * connection is the one case that can count a batch twice (or never, if
 * it did not commit: the batch is retried).
 */
#include <sys/types.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include "config.h"
#include "log.h"
#include "policy.h"
#include "resolver.h"
#include "smtp_client.h"
#include "state_pg.h"
#include "stats.h"
#include "tls.h"
#include "tlsrpt_db.h"
#include "tlsrpt_record.h"
#include "workq.h"
#include "util.h"

#define AGG_BUCKETS	256
#define AGG_MAX		4096	/* policies + failure details in memory */
#define STR_MAX		1024	/* one policy string, reason ... */
#define NSTR_MAX	64	/* policy strings kept per policy */
#define BUSY_MS		250	/* daemon: wait for a CLI's lock at most */

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
	char *pg_uri;			/* state_backend: the counters go
					 * there (NULL: to db) */
	PGconn *pg;			/* used by one writer at a time */

	struct agg_policy *agg[AGG_BUCKETS];
	size_t nagg;
	int flush_warned;
	unsigned long long dropped;	/* events lost while full and the
					 * database failing */
	struct event *ev_flush;
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
	 * delivery wait for a broken disk or growing without bound.  With
	 * PostgreSQL never here (a delivery would wait on the network): the
	 * event is dropped until the timer's flush empties the table.
	 */
	if (t->nagg >= AGG_MAX && (t->flush_warned || t->pg_uri != NULL ||
	    flush_locked(t) == -1)) {
		stats_inc(S_TLSRPT_DROPPED);
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

/* PostgreSQL: the same as write_aggs_sqlite(), on t->pg. */
static int
write_aggs_pg(struct tlsrpt *t, struct agg_policy **buckets, char *err,
    size_t errlen)
{
	struct agg_policy *p;
	struct agg_fail *f;
	PGresult *r;
	char succ[24], fail[24], cnt[24], id[24];
	size_t i;

	if (state_pg_usable(&t->pg, t->pg_uri, err, errlen) == -1 ||
	    state_pg_exec(t->pg, "BEGIN", err, errlen) == -1)
		return -1;
	for (i = 0; i < AGG_BUCKETS; i++) {
		for (p = buckets[i]; p != NULL; p = p->next) {
			const char *pv[7] = { p->day, p->domain, p->type,
			    p->strings, p->mx, succ, fail };

			snprintf(succ, sizeof(succ), "%lld", p->success);
			snprintf(fail, sizeof(fail), "%lld", p->failure);
			if ((r = state_pg_query(t->pg, "INSERT INTO "
			    "tlsrpt_policy (day, domain, type, strings, mx, "
			    "success, failure) VALUES ($1, $2, $3, $4, $5, "
			    "$6, $7) ON CONFLICT (day, domain, type, strings, "
			    "mx) DO UPDATE SET success = tlsrpt_policy.success "
			    "+ excluded.success, failure = tlsrpt_policy."
			    "failure + excluded.failure RETURNING id", 7, pv,
			    err, errlen)) == NULL)
				goto fail;
			dr_strlcpy(id, PQgetvalue(r, 0, 0), sizeof(id));
			PQclear(r);
			for (f = p->fails; f != NULL; f = f->next) {
				const char *fv[7] = { id, f->result, f->sip,
				    f->mx, f->rip, f->reason, cnt };

				snprintf(cnt, sizeof(cnt), "%lld", f->count);
				if ((r = state_pg_query(t->pg, "INSERT INTO "
				    "tlsrpt_failure (policy, result, "
				    "sending_ip, mx, receiving_ip, reason, "
				    "count) VALUES ($1, $2, $3, $4, $5, $6, "
				    "$7) ON CONFLICT (policy, result, "
				    "sending_ip, mx, receiving_ip, reason) DO "
				    "UPDATE SET count = tlsrpt_failure.count + "
				    "excluded.count", 7, fv, err,
				    errlen)) == NULL)
					goto fail;
				PQclear(r);
			}
		}
	}
	if (state_pg_exec(t->pg, "COMMIT", err, errlen) == 0)
		return 0;
fail:
	if (PQstatus(t->pg) == CONNECTION_OK) {
		char e2[64];

		(void)state_pg_exec(t->pg, "ROLLBACK", e2, sizeof(e2));
	}
	return -1;
}

static int write_aggs_sqlite(struct tlsrpt *, struct agg_policy **, char *,
    size_t);

/* Add buckets' counters to the database in one transaction (any thread;
 * the statements are used by one writer at a time: t->writing). */
static int
write_aggs(struct tlsrpt *t, struct agg_policy **buckets, char *err,
    size_t errlen)
{
	if (t->pg_uri != NULL)
		return write_aggs_pg(t, buckets, err, errlen);
	return write_aggs_sqlite(t, buckets, err, errlen);
}

static int
write_aggs_sqlite(struct tlsrpt *t, struct agg_policy **buckets, char *err,
    size_t errlen)
{
	struct agg_policy *p;
	struct agg_fail *f;
	sqlite3_int64 id;
	size_t i;
	int rc;

	if (tlsrpt_db_exec(t->db, "BEGIN IMMEDIATE", err, errlen) == -1)
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
	if (tlsrpt_db_exec(t->db, "COMMIT", err, errlen) == -1)
		goto rollback;
	return 0;
fail:
	snprintf(err, errlen, "%s", sqlite3_errmsg(t->db));
	sqlite3_reset(t->st_policy);
	sqlite3_reset(t->st_fail);
rollback:
	{
		char e2[64];

		(void)tlsrpt_db_exec(t->db, "ROLLBACK", e2, sizeof(e2));
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

void
tlsrpt_get_workq(struct tlsrpt *t, struct workq **wq, struct workq_port **port)
{
	*wq = t != NULL ? t->wq : NULL;
	*port = t != NULL ? t->port : NULL;
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
	if (state_pg_enabled(cf))
		t->pg_uri = xstrdup(cf->state_backend);
	if ((t->db = tlsrpt_db_open(t->state_dir, 1, BUSY_MS, err, errlen)) == NULL)
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
	if (t->db != NULL && tlsrpt_flush(t) == -1)
		log_warnx("tlsrpt: counters of the last seconds are lost");
	agg_free_all(t);
	if (t->ev_flush != NULL)
		event_free(t->ev_flush);
	sqlite3_finalize(t->st_policy);
	sqlite3_finalize(t->st_fail);
	sqlite3_close(t->db);
	PQfinish(t->pg);
	free(t->pg_uri);
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

int
tlsrpt_enabled(const struct tlsrpt *t)
{
	return t != NULL && t->enabled;
}

const struct config *
tlsrpt_config(const struct tlsrpt *t)
{
	return t->cf;
}

sqlite3 *
tlsrpt_db_handle(struct tlsrpt *t)
{
	return t->db;
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

enum smtp_tls_mode
tlsrpt_report_tls_mode(const struct decision *d)
{
	return d->level == POLICY_NONE ? SMTP_TLS_NONE : SMTP_TLS_MAY;
}
