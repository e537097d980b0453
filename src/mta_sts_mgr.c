/*
 * mta_sts_mgr.c - the MTA-STS manager: which policy applies to a
 * destination domain right now (RFC 8461 §3.3, §3.4, §5.1).  The
 * operator's `danerelay mta-sts` command is cli_mta_sts.c.
 *
 * Owns the policy cache handle (mta_sts_cache.c), the HTTPS SSL_CTX, the
 * fetches in flight (one per domain, shared by every lookup waiting for
 * it), a small memory of recent fetch failures, and the refresh timer.
 * Borrows the event base and the resolver; holds a reference on the
 * config (config_ref(), swapped by mta_sts_reload()), so a SIGHUP that
 * drops the daemon's old config never leaves it pointing at freed memory.
 *
 * A lookup (one per delivery route that needs MTA-STS):
 *
 *	TXT	_mta-sts.<domain> through danerelay's resolver (§3.1).
 *	DECIDE	with the cached entry (valid = not past fetched + max_age):
 *		- one valid STSv1 record, cached id equal: the cached policy
 *		  (no fetch while the id is unchanged, §3.3);
 *		- one valid record, no valid cache or another id: FETCH;
 *		- no record, several, malformed, NXDOMAIN, SERVFAIL or bogus:
 *		  the cached policy if still valid (logged: "a vanished TXT
 *		  record keeps a still-valid cached policy"), else none.
 *	FETCH	https://mta-sts.<domain>[:https_port]/.well-known/mta-sts.txt
 *		(https.c: WebPKI for exactly that name, 200 only, no
 *		redirect, text/plain, <= 64 KiB, timeouts), parsed (§3.2) and
 *		stored with the TXT id.  The lookup waits for it, bounded
 *		(STS_WAIT_SECS): delivery never races a first-time fetch.  A
 *		failed fetch keeps a still-valid cached policy (§3.3 "MUST
 *		apply that cached policy"); without one the answer carries
 *		the RFC 8460 result-type (sts-webpki-invalid for a bad
 *		certificate, sts-policy-invalid for a body that does not
 *		parse, sts-policy-fetch-error otherwise) and delivery goes on
 *		as if the domain had no policy (§3.3).  The failure is
 *		remembered per (domain, id) for STS_FAIL_RETRY seconds so a
 *		busy queue does not hammer a broken server.
 *
 * Background refresh (§3.4 "SHOULD proactively refresh"): every policy
 * is refetched at fetched + min(max_age / 2, one day) while its TXT
 * record still announces one; a failed refresh is retried (at most
 * hourly, at least once a second near expiry) and the cached policy
 * stays until it expires.  A policy in mode "none" is cached like any
 * other (it replaces an older enforce policy, §8.3) and gives no
 * MTA-STS requirement.
 *
 * Several relays (state_backend = postgresql://..., issue #19): the
 * local SQLite cache stays the one lookups read (no network on the
 * delivery path), and PostgreSQL's mta_sts_policy is the fleet's copy:
 *   - every policy this relay stores is also upserted there (the newer
 *     fetched_at wins), on the io pool with the local write;
 *   - a fetch (first time, new id, refresh) first asks PostgreSQL, on
 *     the io pool (lease_work): a policy there with the announced id,
 *     still valid (for a refresh: not yet due), is taken as is - no
 *     fetch; otherwise the relay takes the domain's fetch lease
 *     (mta_sts_fetch, STS_LEASE_SECS) and fetches, or, when another
 *     relay holds the lease, asks again every STS_LEASE_POLL_MS until
 *     that relay has stored its policy or its lease has run out (a dead
 *     fetcher: this relay fetches).  So one fetch per domain and id
 *     (and per refresh) serves the fleet;
 *   - every STS_SYNC_SECS a pull (sync_work) copies the rows other
 *     relays stored since the last pull into the local cache: a policy
 *     one relay fetched (also a forced `mta-sts refresh`) is enforced
 *     by every relay within that time, and at once by a relay whose
 *     lookup sees the new id first (it asks PostgreSQL before fetching).
 * PostgreSQL unreachable: each relay fetches and caches on its own, as
 * with SQLite; delivery never waits for the database.  `force`
 * (`danerelay mta-sts refresh`) fetches without asking.
 */
#include <sys/stat.h>

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/queue.h>

#include <event2/event.h>
#include <libpq-fe.h>
#include <pthread.h>

#include "config.h"
#include "https.h"
#include "log.h"
#include "mta_sts.h"
#include "workq.h"
#include "mta_sts_cache.h"
#include "resolver.h"
#include "state_pg.h"
#include "util.h"

#define STS_FETCH_MS		30000	/* one fetch, DNS included */
#define STS_CONNECT_MS		10000	/* TCP connect, each read/write */
#define STS_WAIT_SECS		40	/* a lookup waits at most this */
#define STS_FAIL_RETRY		300	/* no refetch of a failed (domain, id) */
#define STS_FAIL_MEMO		256	/* failures remembered */
#define STS_REFRESH_MAX		86400	/* refresh at least daily */
#define STS_TIMER_MAX		3600	/* refresh timer wakes at least hourly */
#define STS_REFRESH_BATCH	32	/* refreshes started per wakeup */
#define STS_PURGE_AFTER		(30 * 86400)	/* drop long-expired rows */
#define STS_LEASE_SECS		(STS_FETCH_MS / 1000 + 5) /* fetch lease */
#define STS_LEASE_POLL_MS	300	/* another relay fetches: ask again */
#define STS_SYNC_SECS		2	/* pull the fleet's new policies */
#define STS_SYNC_MAX		256	/* rows per pull */

#define RPT_FETCH_ERROR		"sts-policy-fetch-error"
#define RPT_POLICY_INVALID	"sts-policy-invalid"
#define RPT_WEBPKI_INVALID	"sts-webpki-invalid"

struct fetch;

struct mta_sts_lookup {
	TAILQ_ENTRY(mta_sts_lookup) entry;	/* m->lookups or f->waiters */
	struct mta_sts *m;
	char domain[256];
	mta_sts_cb *cb;			/* NULL: background refresh */
	void *arg;
	int force;			/* refresh: fetch even if id unchanged */
	struct resolver_query *q;
	struct fetch *f;		/* waiting for this fetch */
	struct event *timer;		/* wait bound, then delivery */
	struct mta_sts_answer *ans;	/* the answer, once known */
	/* a proxy's lookup (mta_sts_proxy_new): */
	int remote;
	int cancelled;			/* caller gone (proxy's loop) */
};
TAILQ_HEAD(lookup_list, mta_sts_lookup);

struct fetch {
	TAILQ_ENTRY(fetch) entry;
	struct mta_sts *m;
	char domain[256];
	char id[MTA_STS_ID_MAX + 1];
	int background;			/* no lookup asked for it */
	struct https_req *req;
	struct lookup_list waiters;
	/* state_backend = postgresql: asking the fleet first */
	int force;			/* fetch, do not ask */
	int lease;			/* lease_work's answer (LEASE_*) */
	int asking;			/* lease_work is out */
	time_t ask_until;		/* then fetch anyway */
	struct event *ask_timer;
	struct mta_sts_entry shared;	/* LEASE_SHARED: the fleet's policy */
};
TAILQ_HEAD(fetch_list, fetch);

struct failmemo {
	char domain[256];
	char id[MTA_STS_ID_MAX + 1];
	time_t until;
	const char *rpt;
	char reason[200];
};

struct mta_sts {
	struct event_base *base;
	struct resolver *res;
	const struct config *cf;	/* a reference (config_ref) */
	char *ca_file;			/* the one ssl_ctx was made with */
	SSL_CTX *ssl_ctx;
	struct mta_sts_cache *cache;
	struct event *refresh;
	struct fetch_list fetches;
	struct lookup_list lookups;	/* not (yet) waiting for a fetch */
	struct failmemo fail[STS_FAIL_MEMO];
	size_t nfail;
	/* cache writes on the io pool (mta_sts_set_workq), one batch at a
	 * time, on a connection of their own; cached() sees queued puts */
	struct workq *wq;
	struct workq_port *port;
	struct mta_sts_cache *wcache;
	struct cwrite *cw_head, *cw_tail;	/* queued */
	struct cwrite *cw_run;			/* being written */
	/* state_backend = postgresql: one connection, used by one pool job
	 * at a time (pg_mtx) */
	char *pg_uri;
	PGconn *pg;
	pthread_mutex_t pg_mtx;
	int pg_warned;
	char owner_name[320];		/* myhostname:pid, in fetch leases */
	struct event *sync_ev;
	int sync_busy;
	long long sync_seen;		/* fetched_at of the newest pulled */
	struct sync_row *sync_rows;	/* sync_work's answer */
	/* a proxy: lookups run on owner's loop (mta_sts_proxy_new) */
	struct mta_sts *owner;
	mta_sts_post *post_owner, *post_back;
	void *owner_ctx, *back_ctx;
};

static void fetch_start(struct mta_sts *m, const char *domain,
    const char *id, int background, struct mta_sts_lookup *waiter);
static int cached(struct mta_sts *m, const char *domain,
    struct mta_sts_entry *e);
static void lease_done(void *arg);
static void refresh_arm(struct mta_sts *m);

/* ---- answers ---------------------------------------------------------- */

const char *
mta_sts_source_name(enum mta_sts_source s)
{
	switch (s) {
	case MTA_STS_SRC_NONE:
		return "none";
	case MTA_STS_SRC_CACHE:
		return "cache";
	case MTA_STS_SRC_FETCHED:
		return "fetched";
	}
	return "?";
}

void
mta_sts_answer_free(struct mta_sts_answer *ans)
{
	if (ans == NULL)
		return;
	mta_sts_policy_clear(&ans->policy);
	free(ans);
}

static void
copy_policy(struct mta_sts_policy *dst, const struct mta_sts_policy *src)
{
	size_t i;

	memset(dst, 0, sizeof(*dst));
	dst->mode = src->mode;
	dst->max_age = src->max_age;
	if (src->nmx > 0) {
		dst->mx = xcalloc(src->nmx, sizeof(*dst->mx));
		for (i = 0; i < src->nmx; i++)
			dst->mx[i] = xstrdup(src->mx[i]);
		dst->nmx = src->nmx;
	}
	if (src->nlines > 0) {
		dst->lines = xcalloc(src->nlines, sizeof(*dst->lines));
		for (i = 0; i < src->nlines; i++)
			dst->lines[i] = xstrdup(src->lines[i]);
		dst->nlines = src->nlines;
	}
}

static struct mta_sts_answer *
answer_new(enum mta_sts_source src, const struct mta_sts_entry *e,
    const char *failure, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static struct mta_sts_answer *
answer_new(enum mta_sts_source src, const struct mta_sts_entry *e,
    const char *failure, const char *fmt, ...)
{
	struct mta_sts_answer *a = xcalloc(1, sizeof(*a));
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(a->note, sizeof(a->note), fmt, ap);
	va_end(ap);
	a->source = e != NULL ? src : MTA_STS_SRC_NONE;
	if (e != NULL) {
		copy_policy(&a->policy, &e->policy);
		a->mode = e->policy.mode;
		dr_strlcpy(a->id, e->id, sizeof(a->id));
		a->fetched_at = e->fetched_at;
		a->expires_at = e->expires_at;
		a->sts.mode = a->mode == MTA_STS_MODE_ENFORCE ?
		    STS_MODE_ENFORCE : a->mode == MTA_STS_MODE_TESTING ?
		    STS_MODE_TESTING : STS_MODE_NONE;
		a->sts.mx = (const char *const *)a->policy.mx;
		a->sts.nmx = a->policy.nmx;
		a->sts.lines = (const char *const *)a->policy.lines;
		a->sts.nlines = a->policy.nlines;
	} else
		a->sts.failure = failure;
	return a;
}

/* Hand the answer over from the event loop (never from within a call
 * of ours that the owner made). */
static void
lookup_answer(struct mta_sts_lookup *l, struct mta_sts_answer *a)
{
	struct timeval tv = { 0, 0 };

	if (l->ans != NULL) {
		mta_sts_answer_free(a);
		return;
	}
	l->ans = a;
	if (l->f != NULL) {
		TAILQ_REMOVE(&l->f->waiters, l, entry);
		TAILQ_INSERT_TAIL(&l->m->lookups, l, entry);
		l->f = NULL;
	}
	evtimer_add(l->timer, &tv);
}

static void
lookup_free(struct mta_sts_lookup *l)
{
	if (l->q != NULL)
		resolver_cancel(l->q);
	if (l->f != NULL)
		TAILQ_REMOVE(&l->f->waiters, l, entry);
	else
		TAILQ_REMOVE(&l->m->lookups, l, entry);
	if (l->timer != NULL)
		event_free(l->timer);
	mta_sts_answer_free(l->ans);
	free(l);
}

void
mta_sts_lookup_cancel(struct mta_sts_lookup *l)
{
	if (l != NULL && l->remote)
		l->cancelled = 1;	/* freed when the answer is back */
	else if (l != NULL)
		lookup_free(l);
}

/* ---- cache writes on the io pool -------------------------------------- */

enum cw_kind { CW_PUT, CW_REFRESH, CW_PURGE, CW_UNLEASE };

struct cwrite {
	struct cwrite		*next;
	enum cw_kind		 kind;
	struct mta_sts_entry	 e;		/* CW_PUT (owned) */
	char			 domain[256];	/* CW_REFRESH */
	time_t			 when;		/* refresh_at / purge before */
	int			 rc;
	char			 err[256];
};

static void
cwrite_free(struct cwrite *w)
{
	if (w->kind == CW_PUT)
		mta_sts_entry_clear(&w->e);
	free(w);
}

/* A deep copy of a cache entry (its policy parsed again from the text). */
static int
entry_copy(struct mta_sts_entry *to, const struct mta_sts_entry *from)
{
	char err[256];

	memset(to, 0, sizeof(*to));
	memcpy(to->domain, from->domain, sizeof(to->domain));
	memcpy(to->id, from->id, sizeof(to->id));
	to->text = xmalloc(from->text_len + 1);
	memcpy(to->text, from->text, from->text_len);
	to->text[from->text_len] = '\0';
	to->text_len = from->text_len;
	to->fetched_at = from->fetched_at;
	to->expires_at = from->expires_at;
	to->refresh_at = from->refresh_at;
	if (mta_sts_policy_parse(to->text, to->text_len, &to->policy, err,
	    sizeof(err)) == -1) {
		mta_sts_entry_clear(to);
		return -1;
	}
	return 0;
}

/* ---- the fleet's copy on PostgreSQL ----------------------------------- */

/* On a pool thread, pg_mtx held: the connection, or NULL (warned once). */
static PGconn *
pg_conn(struct mta_sts *m)
{
	char err[512];

	if (state_pg_usable(&m->pg, m->pg_uri, err, sizeof(err)) == 0) {
		if (m->pg_warned)
			log_info("mta-sts: the shared cache is reachable again");
		m->pg_warned = 0;
		return m->pg;
	}
	if (!m->pg_warned)
		log_warnx("mta-sts: shared cache: %s (fetching and caching "
		    "locally meanwhile)", err);
	m->pg_warned = 1;
	return NULL;
}

/* Upsert e into mta_sts_policy (the newer fetched_at wins).  0 / -1. */
static int
pg_put(PGconn *pg, const struct mta_sts_entry *e, char *err, size_t errlen)
{
	char mx[1024], age[24], f[24], x[24], rf[24];
	const char *pv[9] = { e->domain, e->id,
	    mta_sts_mode_name(e->policy.mode), mx, age, e->text, f, x, rf };
	int len[9] = { 0 }, fmt[9] = { 0 }, ok;
	size_t i, off;
	PGresult *r;

	for (i = 0, off = 0, mx[0] = '\0'; i < e->policy.nmx &&
	    off < sizeof(mx); i++)
		off += (size_t)snprintf(mx + off, sizeof(mx) - off, "%s%s",
		    i ? " " : "", e->policy.mx[i]);
	snprintf(age, sizeof(age), "%lld", e->policy.max_age);
	snprintf(f, sizeof(f), "%lld", (long long)e->fetched_at);
	snprintf(x, sizeof(x), "%lld", (long long)e->expires_at);
	snprintf(rf, sizeof(rf), "%lld", (long long)e->refresh_at);
	len[5] = (int)e->text_len;
	fmt[5] = 1;
	r = PQexecParams(pg, "INSERT INTO mta_sts_policy (domain, id, mode, "
	    "mx, max_age, policy, fetched_at, expires_at, refresh_at) VALUES "
	    "($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (domain) DO "
	    "UPDATE SET id = excluded.id, mode = excluded.mode, mx = "
	    "excluded.mx, max_age = excluded.max_age, policy = "
	    "excluded.policy, fetched_at = excluded.fetched_at, expires_at = "
	    "excluded.expires_at, refresh_at = excluded.refresh_at WHERE "
	    "excluded.fetched_at > mta_sts_policy.fetched_at", 9, NULL, pv,
	    len, fmt, 0);
	ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		snprintf(err, errlen, "%s", PQerrorMessage(pg));
	PQclear(r);
	return ok ? 0 : -1;
}

/* On a pool thread: the batch's puts and lease releases to PostgreSQL. */
static void
pg_write(struct mta_sts *m)
{
	struct cwrite *w;
	PGconn *pg;
	PGresult *r;
	char err[512];

	/* one batch at a time: at most this thread waits here */
	pthread_mutex_lock(&m->pg_mtx);
	if ((pg = pg_conn(m)) == NULL)
		goto out;
	for (w = m->cw_run; w != NULL; w = w->next) {
		if (w->kind == CW_PUT && pg_put(pg, &w->e, err,
		    sizeof(err)) == -1)
			log_warnx("mta-sts: %s: shared cache: %s", w->e.domain,
			    err);
		if (w->kind == CW_PUT || w->kind == CW_UNLEASE) {
			const char *pv[2] = { w->kind == CW_PUT ? w->e.domain :
			    w->domain, m->owner_name };

			r = PQexecParams(pg, "DELETE FROM mta_sts_fetch WHERE "
			    "domain = $1 AND owner = $2", 2, NULL, pv, NULL,
			    NULL, 0);
			PQclear(r);
		}
	}
out:
	pthread_mutex_unlock(&m->pg_mtx);
}

/* A row of mta_sts_policy as an entry (policy parsed).  0 / -1. */
static int
pg_row_entry(PGresult *r, int i, struct mta_sts_entry *e)
{
	unsigned char *b;
	size_t n;
	char err[256];

	memset(e, 0, sizeof(*e));
	dr_strlcpy(e->domain, PQgetvalue(r, i, 0), sizeof(e->domain));
	dr_strlcpy(e->id, PQgetvalue(r, i, 1), sizeof(e->id));
	if ((b = PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 2),
	    &n)) == NULL || n > MTA_STS_MAX_BODY) {
		PQfreemem(b);
		return -1;
	}
	e->text = xmalloc(n + 1);
	memcpy(e->text, b, n);
	e->text[n] = '\0';
	e->text_len = n;
	PQfreemem(b);
	e->fetched_at = (time_t)strtoll(PQgetvalue(r, i, 3), NULL, 10);
	e->expires_at = (time_t)strtoll(PQgetvalue(r, i, 4), NULL, 10);
	e->refresh_at = (time_t)strtoll(PQgetvalue(r, i, 5), NULL, 10);
	if (mta_sts_policy_parse(e->text, e->text_len, &e->policy, err,
	    sizeof(err)) == -1) {
		mta_sts_entry_clear(e);
		return -1;
	}
	return 0;
}

enum { LEASE_FETCH = 0, LEASE_SHARED, LEASE_WAIT };

/*
 * On a pool thread: the fleet's policy for f, or the fetch lease.  The
 * lease comes first: the relay that fetched stores its policy and then
 * drops its lease, so whoever gets the lease next sees that policy.
 */
static void
lease_work(void *arg)
{
	struct fetch *f = arg;
	struct mta_sts *m = f->m;
	char until[24], now_s[24];
	const char *lv[4] = { f->domain, m->owner_name, until, now_s };
	time_t now = time(NULL);
	PGconn *pg;
	PGresult *r;
	int got;

	f->lease = LEASE_FETCH;
	/* another job holds the connection (maybe waiting on a dead
	 * server): never queue pool threads behind it */
	if (pthread_mutex_trylock(&m->pg_mtx) != 0) {
		f->lease = LEASE_WAIT;	/* ask again shortly */
		return;
	}
	if ((pg = pg_conn(m)) == NULL)
		goto out;
	snprintf(until, sizeof(until), "%lld", (long long)now +
	    STS_LEASE_SECS);
	snprintf(now_s, sizeof(now_s), "%lld", (long long)now);
	r = PQexecParams(pg, "INSERT INTO mta_sts_fetch (domain, owner, "
	    "until) VALUES ($1, $2, $3) ON CONFLICT (domain) DO UPDATE SET "
	    "owner = excluded.owner, until = excluded.until WHERE "
	    "mta_sts_fetch.until < $4 OR mta_sts_fetch.owner = "
	    "excluded.owner RETURNING owner", 4, NULL, lv, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		PQclear(r);
		goto out;		/* the database fails: fetch */
	}
	got = PQntuples(r) == 1;
	PQclear(r);
	if (!got) {
		f->lease = LEASE_WAIT;	/* another relay fetches */
		goto out;
	}
	if (f->force)
		goto out;		/* ours: fetch */
	r = PQexecParams(pg, "SELECT domain, id, policy, fetched_at, "
	    "expires_at, refresh_at FROM mta_sts_policy WHERE domain = $1", 1,
	    NULL, lv, NULL, NULL, 0);
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
	    strcmp(PQgetvalue(r, 0, 1), f->id) == 0 &&
	    pg_row_entry(r, 0, &f->shared) == 0) {
		if (f->shared.expires_at > now && (!f->background ||
		    f->shared.refresh_at > now))
			f->lease = LEASE_SHARED;
		else
			mta_sts_entry_clear(&f->shared);
	}
	PQclear(r);
	if (f->lease == LEASE_SHARED) {
		/* no fetch: the lease back at once */
		r = PQexecParams(pg, "DELETE FROM mta_sts_fetch WHERE domain = "
		    "$1 AND owner = $2", 2, NULL, lv, NULL, NULL, 0);
		PQclear(r);
	}
out:
	pthread_mutex_unlock(&m->pg_mtx);
}

static void fetch_https(struct fetch *f);
static void fetch_shared(struct fetch *f);

static void
lease_retry(evutil_socket_t fd, short ev, void *arg)
{
	struct fetch *f = arg;

	(void)fd;
	(void)ev;
	f->asking = 1;
	workq_submit(f->m->wq, f->m->port, lease_work, lease_done, f);
}

static void
lease_done(void *arg)
{
	struct fetch *f = arg;
	struct timeval tv = { 0, STS_LEASE_POLL_MS * 1000 };

	f->asking = 0;
	if (f->lease == LEASE_SHARED) {
		fetch_shared(f);
		return;
	}
	if (f->lease == LEASE_WAIT && time(NULL) < f->ask_until &&
	    f->m->wq != NULL) {
		if (f->ask_timer == NULL)
			f->ask_timer = evtimer_new(f->m->base, lease_retry, f);
		if (f->ask_timer != NULL && evtimer_add(f->ask_timer,
		    &tv) == 0) {
			log_debug("mta-sts: %s: another relay is fetching the "
			    "policy; waiting for it", f->domain);
			return;
		}
	}
	fetch_https(f);
}

/* ---- pulling the fleet's new policies --------------------------------- */

struct sync_row {
	struct sync_row *next;
	struct mta_sts_entry e;
};

static void
sync_work(void *arg)
{
	struct mta_sts *m = arg;
	struct sync_row *sr;
	char since[24], lim[16];
	const char *pv[2] = { since, lim };
	PGconn *pg;
	PGresult *r;
	int i;

	/* another job holds the connection (maybe waiting on a dead
	 * server): skip, never queue pool threads behind it */
	if (pthread_mutex_trylock(&m->pg_mtx) != 0)
		return;
	if ((pg = pg_conn(m)) == NULL)
		goto out;
	/* >= : rows of the same second may arrive after a pull */
	snprintf(since, sizeof(since), "%lld", m->sync_seen);
	snprintf(lim, sizeof(lim), "%d", STS_SYNC_MAX);
	r = PQexecParams(pg, "SELECT domain, id, policy, fetched_at, "
	    "expires_at, refresh_at FROM mta_sts_policy WHERE fetched_at >= "
	    "$1 ORDER BY fetched_at LIMIT $2", 2, NULL, pv, NULL, NULL, 0);
	if (PQresultStatus(r) == PGRES_TUPLES_OK) {
		for (i = 0; i < PQntuples(r); i++) {
			sr = xcalloc(1, sizeof(*sr));
			if (pg_row_entry(r, i, &sr->e) == -1) {
				free(sr);
				continue;
			}
			if ((long long)sr->e.fetched_at > m->sync_seen)
				m->sync_seen = (long long)sr->e.fetched_at;
			sr->next = m->sync_rows;
			m->sync_rows = sr;
		}
	}
	PQclear(r);
out:
	pthread_mutex_unlock(&m->pg_mtx);
}

static void cache_put(struct mta_sts *m, const struct mta_sts_entry *e);

static void
sync_done(void *arg)
{
	struct mta_sts *m = arg;
	struct sync_row *sr, *next;
	struct mta_sts_entry old;
	char t[32];
	int have;

	for (sr = m->sync_rows; sr != NULL; sr = next) {
		next = sr->next;
		have = cached(m, sr->e.domain, &old);
		if (!have || old.fetched_at < sr->e.fetched_at) {
			if (!have || strcmp(old.id, sr->e.id) != 0)
				log_info("mta-sts: %s: policy id=%s (mode %s) "
				    "from the shared cache, until %s",
				    sr->e.domain, sr->e.id,
				    mta_sts_mode_name(sr->e.policy.mode),
				    mta_sts_when(sr->e.expires_at, t,
				    sizeof(t)));
			cache_put(m, &sr->e);
		}
		if (have)
			mta_sts_entry_clear(&old);
		mta_sts_entry_clear(&sr->e);
		free(sr);
	}
	m->sync_rows = NULL;
	m->sync_busy = 0;
}

static void
sync_tick(evutil_socket_t fd, short ev, void *arg)
{
	struct mta_sts *m = arg;

	(void)fd;
	(void)ev;
	if (m->sync_busy || m->wq == NULL)
		return;
	m->sync_busy = 1;
	workq_submit(m->wq, m->port, sync_work, sync_done, m);
}

/* On a pool thread: the batch, on the writer's own connection. */
static void
cw_work(void *arg)
{
	struct mta_sts *m = arg;
	struct mta_sts_cache *c = m->wcache != NULL ? m->wcache : m->cache;
	struct cwrite *w;

	for (w = m->cw_run; w != NULL; w = w->next) {
		switch (w->kind) {
		case CW_PUT:
			w->rc = mta_sts_cache_put(c, &w->e, w->err,
			    sizeof(w->err));
			break;
		case CW_REFRESH:
			w->rc = mta_sts_cache_set_refresh(c, w->domain,
			    w->when, w->err, sizeof(w->err));
			break;
		case CW_PURGE:
			w->rc = mta_sts_cache_purge(c, w->when, w->err,
			    sizeof(w->err));
			break;
		case CW_UNLEASE:
			w->rc = 0;
			break;
		}
	}
	if (m->pg_uri != NULL && m->wq != NULL)	/* never on the loop */
		pg_write(m);
}

static void cw_kick(struct mta_sts *m);

static void
cw_done(void *arg)
{
	struct mta_sts *m = arg;
	struct cwrite *w, *next;

	for (w = m->cw_run; w != NULL; w = next) {
		next = w->next;
		if (w->rc == -1)
			log_warnx("mta-sts: %s: cannot write the cache: %s",
			    w->kind == CW_PUT ? w->e.domain : w->kind ==
			    CW_REFRESH ? w->domain : "purge", w->err);
		else if (w->kind == CW_PURGE && w->rc > 0)
			log_info("mta-sts: dropped %d policies expired more "
			    "than %d days ago", w->rc, STS_PURGE_AFTER / 86400);
		cwrite_free(w);
	}
	m->cw_run = NULL;
	cw_kick(m);
	refresh_arm(m);
}

static void
cw_kick(struct mta_sts *m)
{
	if (m->cw_run != NULL || m->cw_head == NULL)
		return;
	m->cw_run = m->cw_head;
	m->cw_head = m->cw_tail = NULL;
	workq_submit(m->wq, m->port, cw_work, cw_done, m);
}

/* Run a write now (no pool) or queue it for the pool. */
static void
cw_add(struct mta_sts *m, struct cwrite *w)
{
	if (m->wq == NULL) {
		m->cw_run = w;
		w->next = NULL;
		cw_work(m);
		cw_done(m);
		return;
	}
	if (m->cw_tail != NULL)
		m->cw_tail->next = w;
	else
		m->cw_head = w;
	m->cw_tail = w;
	cw_kick(m);
}

static void
cache_put(struct mta_sts *m, const struct mta_sts_entry *e)
{
	struct cwrite *w = xcalloc(1, sizeof(*w));

	w->kind = CW_PUT;
	if (entry_copy(&w->e, e) == -1) {
		free(w);
		return;
	}
	cw_add(m, w);
}

static void
cache_set_refresh(struct mta_sts *m, const char *domain, time_t when)
{
	struct cwrite *w = xcalloc(1, sizeof(*w));

	w->kind = CW_REFRESH;
	dr_strlcpy(w->domain, domain, sizeof(w->domain));
	w->when = when;
	cw_add(m, w);
}

static void
cache_purge(struct mta_sts *m, time_t before)
{
	struct cwrite *w = xcalloc(1, sizeof(*w));

	w->kind = CW_PURGE;
	w->when = before;
	cw_add(m, w);
}

/* The newest put for domain not yet on disk (queued or being written). */
static const struct mta_sts_entry *
cw_pending(struct mta_sts *m, const char *domain)
{
	const struct mta_sts_entry *found = NULL;
	struct cwrite *w;

	for (w = m->cw_run; w != NULL; w = w->next)
		if (w->kind == CW_PUT && strcmp(w->e.domain, domain) == 0)
			found = &w->e;
	for (w = m->cw_head; w != NULL; w = w->next)
		if (w->kind == CW_PUT && strcmp(w->e.domain, domain) == 0)
			found = &w->e;
	return found;
}

void
mta_sts_set_workq(struct mta_sts *m, struct workq *wq,
    struct workq_port *port)
{
	char err[512];

	if (m == NULL || m->owner != NULL)
		return;
	if (wq == NULL || port == NULL) {
		m->wq = NULL;
		m->port = NULL;
		return;
	}
	if (m->wcache == NULL && (m->wcache = mta_sts_cache_open(
	    m->cf->state_dir, err, sizeof(err))) == NULL) {
		log_warnx("mta-sts: cache writes stay on the loop: %s", err);
		return;
	}
	m->wq = wq;
	m->port = port;
}

/* A valid (unexpired) cache entry for domain: 1 with *e, 0 none. */
static int
cached(struct mta_sts *m, const char *domain, struct mta_sts_entry *e)
{
	const struct mta_sts_entry *p;
	char err[512];
	int r;

	if ((p = cw_pending(m, domain)) != NULL) {
		if (p->expires_at <= time(NULL) || entry_copy(e, p) == -1)
			return 0;
		return 1;
	}
	r = mta_sts_cache_get(m->cache, domain, e, err, sizeof(err));
	if (r == -1) {
		log_warnx("mta-sts: %s: cache: %s", domain, err);
		return 0;
	}
	if (r == 0)
		return 0;
	if (e->expires_at <= time(NULL)) {
		mta_sts_entry_clear(e);
		return 0;
	}
	return 1;
}

const char *
mta_sts_when(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (t == 0 || gmtime_r(&t, &tm) == NULL)
		snprintf(buf, len, "-");
	else
		strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

/* ---- the failure memo ------------------------------------------------- */

static struct failmemo *
fail_find(struct mta_sts *m, const char *domain, const char *id)
{
	time_t now = time(NULL);
	size_t i;

	for (i = 0; i < m->nfail; i++)
		if (m->fail[i].until > now &&
		    strcmp(m->fail[i].domain, domain) == 0 &&
		    strcmp(m->fail[i].id, id) == 0)
			return &m->fail[i];
	return NULL;
}

static void
fail_note(struct mta_sts *m, const char *domain, const char *id,
    const char *rpt, const char *reason)
{
	time_t now = time(NULL);
	struct failmemo *f = fail_find(m, domain, id);
	size_t i, oldest = 0;

	if (f == NULL) {
		for (i = 0; i < m->nfail; i++)
			if (m->fail[i].until <= now ||
			    m->fail[i].until < m->fail[oldest].until)
				oldest = i;
		if (m->nfail < STS_FAIL_MEMO)
			f = &m->fail[m->nfail++];
		else
			f = &m->fail[oldest];
	}
	dr_strlcpy(f->domain, domain, sizeof(f->domain));
	dr_strlcpy(f->id, id, sizeof(f->id));
	f->until = now + STS_FAIL_RETRY;
	f->rpt = rpt;
	dr_strlcpy(f->reason, reason, sizeof(f->reason));
}

static void
fail_forget(struct mta_sts *m, const char *domain)
{
	size_t i;

	for (i = 0; i < m->nfail; i++)
		if (strcmp(m->fail[i].domain, domain) == 0)
			m->fail[i].until = 0;
}

/* ---- fetching --------------------------------------------------------- */

static time_t
refresh_time(time_t fetched, long long max_age)
{
	long long half = max_age / 2;

	if (half > STS_REFRESH_MAX)
		half = STS_REFRESH_MAX;
	return fetched + (time_t)half;
}

/* After a failed refresh: again soon, never later than expiry. */
static time_t
retry_time(time_t now, time_t expires)
{
	long long d = (expires - now) / 4;

	if (d > STS_TIMER_MAX)
		d = STS_TIMER_MAX;
	if (d < 1)
		d = 1;
	return now + (time_t)d;
}

static struct fetch *
fetch_find(struct mta_sts *m, const char *domain)
{
	struct fetch *f;

	TAILQ_FOREACH(f, &m->fetches, entry)
		if (strcmp(f->domain, domain) == 0)
			return f;
	return NULL;
}

static void
fetch_free(struct fetch *f)
{
	if (f->ask_timer != NULL)
		event_free(f->ask_timer);
	mta_sts_entry_clear(&f->shared);
	https_cancel(f->req);
	TAILQ_REMOVE(&f->m->fetches, f, entry);
	free(f);
}

static const char *
rpt_for(enum https_fail fail)
{
	return fail == HTTPS_FAIL_VERIFY ? RPT_WEBPKI_INVALID :
	    RPT_FETCH_ERROR;
}

/* The fetch ended: store, then answer every waiter. */
static void
fetch_done(const struct https_result *res, void *arg)
{
	struct fetch *f = arg;
	struct mta_sts *m = f->m;
	struct mta_sts_lookup *l;
	struct mta_sts_entry e, old;
	const char *rpt = NULL;
	char reason[300], err[512], t1[32], t2[32];
	time_t now = time(NULL);
	int have_old, ok = 0;
	size_t i;

	f->req = NULL;
	memset(&e, 0, sizeof(e));
	if (res->fail != HTTPS_OK) {
		rpt = rpt_for(res->fail);
		snprintf(reason, sizeof(reason), "%s: %s",
		    https_fail_name(res->fail), res->reason);
	} else if (mta_sts_policy_parse(res->body, res->body_len, &e.policy,
	    err, sizeof(err)) == -1) {
		rpt = RPT_POLICY_INVALID;
		snprintf(reason, sizeof(reason), "invalid policy: %.250s",
		    err);
	} else
		ok = 1;

	have_old = cached(m, f->domain, &old);
	if (ok) {
		dr_strlcpy(e.domain, f->domain, sizeof(e.domain));
		dr_strlcpy(e.id, f->id, sizeof(e.id));
		e.text = xmalloc(res->body_len + 1);
		memcpy(e.text, res->body, res->body_len);
		e.text[res->body_len] = '\0';
		e.text_len = res->body_len;
		e.fetched_at = now;
		e.expires_at = now + (time_t)e.policy.max_age;
		e.refresh_at = refresh_time(now, e.policy.max_age);
		cache_put(m, &e);
		fail_forget(m, f->domain);
		{
			char mx[512] = "";
			size_t off = 0;

			for (i = 0; i < e.policy.nmx && off < sizeof(mx);
			    i++)
				off += (size_t)snprintf(mx + off,
				    sizeof(mx) - off, "%s%s", i ? " " : "",
				    e.policy.mx[i]);
			log_info("mta-sts: %s: %s policy id=%s, mode=%s, "
			    "max_age=%lld, mx=%s, expires %s", f->domain,
			    have_old && strcmp(old.id, e.id) != 0 ?
			    "new" : "fetched", e.id,
			    mta_sts_mode_name(e.policy.mode),
			    e.policy.max_age, mx[0] ? mx : "-",
			    mta_sts_when(e.expires_at, t1, sizeof(t1)));
		}
	} else {
		if (m->pg_uri != NULL) {	/* the lease: others may try */
			struct cwrite *w = xcalloc(1, sizeof(*w));

			w->kind = CW_UNLEASE;
			dr_strlcpy(w->domain, f->domain, sizeof(w->domain));
			cw_add(m, w);
		}
		fail_note(m, f->domain, f->id, rpt, reason);
		if (have_old) {
			log_warnx("mta-sts: %s: policy fetch for id=%s failed "
			    "(%s); keeping the cached policy id=%s (mode %s) "
			    "until %s", f->domain, f->id, reason, old.id,
			    mta_sts_mode_name(old.policy.mode),
			    mta_sts_when(old.expires_at, t1, sizeof(t1)));
			if (f->background)
				cache_set_refresh(m, f->domain, retry_time(now,
				    old.expires_at));
		} else
			log_warnx("mta-sts: %s: policy fetch for id=%s failed "
			    "(%s); no valid cached policy: delivering as "
			    "without MTA-STS (%s)", f->domain, f->id, reason,
			    rpt);
	}
	while ((l = TAILQ_FIRST(&f->waiters)) != NULL) {
		if (ok)
			lookup_answer(l, answer_new(MTA_STS_SRC_FETCHED, &e,
			    NULL, "policy id=%s fetched", e.id));
		else if (have_old)
			lookup_answer(l, answer_new(MTA_STS_SRC_CACHE, &old,
			    NULL, "fetch for id=%s failed (%s); cached policy "
			    "id=%s until %s", f->id, reason, old.id,
			    mta_sts_when(old.expires_at, t2, sizeof(t2))));
		else
			lookup_answer(l, answer_new(MTA_STS_SRC_NONE, NULL,
			    rpt, "policy id=%s announced, fetch failed: %s",
			    f->id, reason));
	}
	if (have_old)
		mta_sts_entry_clear(&old);
	mta_sts_entry_clear(&e);
	fetch_free(f);
	refresh_arm(m);
}

void
mta_sts_https_params(struct https_params *p, char *host, size_t hostlen,
    const char *domain, int port)
{
	snprintf(host, hostlen, "mta-sts.%s", domain);
	memset(p, 0, sizeof(*p));
	p->method = HTTPS_GET;
	p->host = host;
	p->port = port;
	p->path = MTA_STS_PATH;
	p->status_rule = HTTPS_STATUS_200;
	p->want_type = "text/plain";
	p->max_body = MTA_STS_MAX_BODY;
}

/* Start the HTTPS fetch of f. */
static void
fetch_https(struct fetch *f)
{
	struct mta_sts *m = f->m;
	struct https_params p;
	char host[300], err[512];

	mta_sts_https_params(&p, host, sizeof(host), f->domain,
	    m->cf->https_port);
	p.base = m->base;
	p.ssl_ctx = m->ssl_ctx;
	p.resolver = m->res;
	p.connect_timeout_ms = STS_CONNECT_MS;
	p.timeout_ms = STS_FETCH_MS;
	log_debug("mta-sts: %s: fetching https://%s:%d%s for id=%s%s",
	    f->domain, host, p.port, MTA_STS_PATH, f->id,
	    f->background ? " (refresh)" : "");
	f->req = https_request(&p, fetch_done, f, err, sizeof(err));
	if (f->req == NULL) {
		struct https_result r;

		/* answer through the same path, from the loop */
		memset(&r, 0, sizeof(r));
		r.fail = HTTPS_FAIL_INTERNAL;
		dr_strlcpy(r.reason, err, sizeof(r.reason));
		r.body = "";
		fetch_done(&r, f);
	}
}

/* Another relay's policy for f (f->shared): cache it, answer. */
static void
fetch_shared(struct fetch *f)
{
	struct mta_sts *m = f->m;
	struct mta_sts_lookup *l;
	char t[32];

	log_info("mta-sts: %s: policy id=%s (mode %s) from the shared cache, "
	    "fetched by another relay; until %s", f->domain, f->shared.id,
	    mta_sts_mode_name(f->shared.policy.mode),
	    mta_sts_when(f->shared.expires_at, t, sizeof(t)));
	cache_put(m, &f->shared);
	fail_forget(m, f->domain);
	while ((l = TAILQ_FIRST(&f->waiters)) != NULL)
		lookup_answer(l, answer_new(MTA_STS_SRC_CACHE, &f->shared,
		    NULL, "policy id=%s from the shared cache until %s",
		    f->shared.id, mta_sts_when(f->shared.expires_at, t,
		    sizeof(t))));
	fetch_free(f);
	refresh_arm(m);
}

static void
fetch_start(struct mta_sts *m, const char *domain, const char *id,
    int background, struct mta_sts_lookup *waiter)
{
	struct fetch *f;
	int start = 0;

	if ((f = fetch_find(m, domain)) == NULL) {
		f = xcalloc(1, sizeof(*f));
		f->m = m;
		dr_strlcpy(f->domain, domain, sizeof(f->domain));
		dr_strlcpy(f->id, id, sizeof(f->id));
		f->background = background;
		f->force = waiter != NULL && waiter->force;
		TAILQ_INIT(&f->waiters);
		TAILQ_INSERT_TAIL(&m->fetches, f, entry);
		start = 1;
	} else if (!background)
		f->background = 0;
	if (waiter != NULL) {
		TAILQ_REMOVE(&m->lookups, waiter, entry);
		TAILQ_INSERT_TAIL(&f->waiters, waiter, entry);
		waiter->f = f;
	}
	if (!start)
		return;
	if (m->pg_uri != NULL && m->wq != NULL) {
		/* the fleet first: its policy, or the fetch lease */
		f->ask_until = time(NULL) + STS_LEASE_SECS + 5;
		f->asking = 1;
		workq_submit(m->wq, m->port, lease_work, lease_done, f);
		return;
	}
	fetch_https(f);
}

/* ---- lookups ---------------------------------------------------------- */

static void
lookup_timer(evutil_socket_t fd, short ev, void *arg)
{
	struct mta_sts_lookup *l = arg;
	struct mta_sts_entry e;
	struct mta_sts_answer *a;

	if (l->ans == NULL) {
		/* waited long enough: what we have, the fetch goes on */
		if (cached(l->m, l->domain, &e)) {
			a = answer_new(MTA_STS_SRC_CACHE, &e, NULL, "no answer "
			    "within %d s; cached policy id=%s", STS_WAIT_SECS,
			    e.id);
			mta_sts_entry_clear(&e);
		} else
			a = answer_new(MTA_STS_SRC_NONE, NULL, NULL, "no "
			    "answer within %d s (TXT lookup or policy fetch "
			    "still running)", STS_WAIT_SECS);
		log_warnx("mta-sts: %s: %s", l->domain, a->note);
		l->ans = a;
		if (l->f != NULL) {
			TAILQ_REMOVE(&l->f->waiters, l, entry);
			TAILQ_INSERT_TAIL(&l->m->lookups, l, entry);
			l->f = NULL;
		}
		if (l->q != NULL) {
			resolver_cancel(l->q);
			l->q = NULL;
		}
	}
	a = l->ans;
	l->ans = NULL;
	if (l->cb != NULL) {
		mta_sts_cb *cb = l->cb;
		void *cbarg = l->arg;

		lookup_free(l);
		cb(a, cbarg);
	} else {
		mta_sts_answer_free(a);
		lookup_free(l);
	}
}

/* The TXT answer is in: decide (see the top of the file). */
static void
txt_answer(struct dns_result *res, void *arg)
{
	struct mta_sts_lookup *l = arg;
	struct mta_sts *m = l->m;
	struct mta_sts_entry e;
	struct failmemo *fm;
	char id[MTA_STS_ID_MAX + 1], why[300], t[32];
	int sel, have;

	l->q = NULL;
	if (res->status == DNS_OK)
		sel = mta_sts_txt_select(res->txt, res->n, id, why,
		    sizeof(why));
	else if (res->status == DNS_TEMPFAIL) {
		sel = -2;
		snprintf(why, sizeof(why), "TXT lookup failed: %s%s%.200s",
		    dns_security_name(res->security), res->reason[0] ?
		    ": " : "", res->reason);
	} else {
		sel = 0;
		snprintf(why, sizeof(why), "no TXT record (%s)",
		    dns_status_name(res->status));
	}
	dns_result_free(res);
	have = cached(m, l->domain, &e);

	if (sel == 1 && l->cb == NULL) {
		/* background refresh: fetch even if the id is unchanged */
		if (!have || fetch_find(m, l->domain) == NULL)
			fetch_start(m, l->domain, id, 1, NULL);
		if (have)
			mta_sts_entry_clear(&e);
		lookup_answer(l, answer_new(MTA_STS_SRC_NONE, NULL, NULL,
		    "refresh"));
		return;
	}
	if (sel == 1 && have && strcmp(e.id, id) == 0 && !l->force) {
		lookup_answer(l, answer_new(MTA_STS_SRC_CACHE, &e, NULL,
		    "cached policy id=%s until %s", e.id,
		    mta_sts_when(e.expires_at, t, sizeof(t))));
		mta_sts_entry_clear(&e);
		return;
	}
	if (sel == 1) {
		if (!l->force && (fm = fail_find(m, l->domain, id)) != NULL) {
			if (have)
				lookup_answer(l, answer_new(MTA_STS_SRC_CACHE,
				    &e, NULL, "policy id=%s failed recently "
				    "(%s); cached policy id=%s until %s", id,
				    fm->reason, e.id, mta_sts_when(e.expires_at,
				    t, sizeof(t))));
			else
				lookup_answer(l, answer_new(MTA_STS_SRC_NONE,
				    NULL, fm->rpt, "policy id=%s announced, "
				    "fetch failed recently: %s", id,
				    fm->reason));
		} else
			fetch_start(m, l->domain, id, 0, l);
		if (have)
			mta_sts_entry_clear(&e);
		return;
	}
	if (l->cb == NULL) {
		/* refresh without a record: keep it until it expires */
		if (have) {
			log_info("mta-sts: %s: not refreshing the policy "
			    "(%s); cached policy id=%s kept until %s",
			    l->domain, why, e.id, mta_sts_when(e.expires_at, t,
			    sizeof(t)));
			cache_set_refresh(m, l->domain,
			    retry_time(time(NULL), e.expires_at));
			mta_sts_entry_clear(&e);
			refresh_arm(m);
		}
		lookup_answer(l, answer_new(MTA_STS_SRC_NONE, NULL, NULL,
		    "refresh"));
		return;
	}
	if (have) {
		log_info("mta-sts: %s: %s; using the cached policy id=%s "
		    "(mode %s) until %s", l->domain, why, e.id,
		    mta_sts_mode_name(e.policy.mode),
		    mta_sts_when(e.expires_at, t, sizeof(t)));
		lookup_answer(l, answer_new(MTA_STS_SRC_CACHE, &e, NULL,
		    "%s; cached policy id=%s until %s", why, e.id,
		    mta_sts_when(e.expires_at, t, sizeof(t))));
		mta_sts_entry_clear(&e);
		return;
	}
	if (sel != 0)
		log_info("mta-sts: %s: %s; no MTA-STS policy", l->domain,
		    why);
	lookup_answer(l, answer_new(MTA_STS_SRC_NONE, NULL, NULL, "%s", why));
}

static struct mta_sts_lookup *
lookup_start(struct mta_sts *m, const char *domain, mta_sts_cb *cb,
    void *arg, int force)
{
	struct mta_sts_lookup *l;
	struct timeval tv = { STS_WAIT_SECS, 0 };
	char a[DNS_NAME_BUF], qname[DNS_NAME_BUF + 16], err[512];

	if (m == NULL || mta_sts_domain_ascii(domain, a, sizeof(a)) == -1 ||
	    strlen(a) >= sizeof(l->domain) - 9)
		return NULL;
	l = xcalloc(1, sizeof(*l));
	l->m = m;
	dr_strlcpy(l->domain, a, sizeof(l->domain));
	l->cb = cb;
	l->arg = arg;
	l->force = force;
	l->timer = evtimer_new(m->base, lookup_timer, l);
	TAILQ_INSERT_TAIL(&m->lookups, l, entry);
	evtimer_add(l->timer, &tv);
	snprintf(qname, sizeof(qname), "_mta-sts.%s", a);
	l->q = resolver_query(m->res, qname, DNS_T_TXT, txt_answer, l, err,
	    sizeof(err));
	if (l->q == NULL)
		lookup_answer(l, answer_new(MTA_STS_SRC_NONE, NULL, NULL,
		    "cannot look up %s: %s", qname, err));
	return l;
}

/* ---- proxies: the other workers' view of one manager ------------------- */

/* Back on the proxy's loop: hand the answer over, or drop it. */
static void
remote_done(void *arg)
{
	struct mta_sts_lookup *l = arg;
	struct mta_sts_answer *ans = l->ans;
	mta_sts_cb *cb = l->cb;
	void *cbarg = l->arg;
	int cancelled = l->cancelled;

	TAILQ_REMOVE(&l->m->lookups, l, entry);
	free(l);
	if (cancelled)
		mta_sts_answer_free(ans);
	else
		cb(ans, cbarg);
}

/* On the owner's loop. */
static void
remote_answer(struct mta_sts_answer *ans, void *arg)
{
	struct mta_sts_lookup *l = arg;

	l->ans = ans;
	l->m->post_back(l->m->back_ctx, remote_done, l);
}

/* On the owner's loop: the lookup itself, shared with the owner's own
 * (one TXT query and one fetch per domain, one cache). */
static void
remote_start(void *arg)
{
	struct mta_sts_lookup *l = arg;

	if (lookup_start(l->m->owner, l->domain, remote_answer, l, 0) ==
	    NULL) {
		l->ans = answer_new(MTA_STS_SRC_NONE, NULL, NULL,
		    "bad domain name");
		l->m->post_back(l->m->back_ctx, remote_done, l);
	}
}

struct mta_sts *
mta_sts_proxy_new(struct mta_sts *owner, mta_sts_post *post_owner,
    void *owner_ctx, mta_sts_post *post_back, void *back_ctx)
{
	struct mta_sts *m = xcalloc(1, sizeof(*m));

	TAILQ_INIT(&m->fetches);
	TAILQ_INIT(&m->lookups);
	m->owner = owner;
	m->post_owner = post_owner;
	m->owner_ctx = owner_ctx;
	m->post_back = post_back;
	m->back_ctx = back_ctx;
	return m;
}

struct mta_sts_lookup *
mta_sts_lookup(struct mta_sts *m, const char *domain, mta_sts_cb *cb,
    void *arg)
{
	struct mta_sts_lookup *l;
	char a[DNS_NAME_BUF];

	if (cb == NULL)
		return NULL;
	if (m == NULL || m->owner == NULL)
		return lookup_start(m, domain, cb, arg, 0);
	if (mta_sts_domain_ascii(domain, a, sizeof(a)) == -1 ||
	    strlen(a) >= sizeof(l->domain) - 9)
		return NULL;
	l = xcalloc(1, sizeof(*l));
	l->m = m;
	l->remote = 1;
	dr_strlcpy(l->domain, a, sizeof(l->domain));
	l->cb = cb;
	l->arg = arg;
	TAILQ_INSERT_TAIL(&m->lookups, l, entry);
	m->post_owner(m->owner_ctx, remote_start, l);
	return l;
}

/* ---- background refresh ----------------------------------------------- */

static void
refresh_tick(evutil_socket_t fd, short ev, void *arg)
{
	struct mta_sts *m = arg;
	char *due[STS_REFRESH_BATCH], err[512];
	time_t now = time(NULL);
	int n, i;

	cache_purge(m, now - STS_PURGE_AFTER);
	n = mta_sts_cache_due(m->cache, now, due, STS_REFRESH_BATCH, err,
	    sizeof(err));
	if (n == -1)
		log_warnx("mta-sts: refresh: %s", err);
	for (i = 0; i < n; i++) {
		/* not due again until this refresh has had its chance */
		cache_set_refresh(m, due[i], now + STS_FETCH_MS / 1000 +
		    STS_WAIT_SECS);
		if (fetch_find(m, due[i]) == NULL) {
			log_debug("mta-sts: %s: refreshing the policy", due[i]);
			lookup_start(m, due[i], NULL, NULL, 1);
		}
		free(due[i]);
	}
	refresh_arm(m);
}

static void
refresh_arm(struct mta_sts *m)
{
	struct timeval tv = { STS_TIMER_MAX, 0 };
	long long next;
	time_t now = time(NULL);
	char err[512];

	if (m->refresh == NULL)
		return;
	next = mta_sts_cache_next_refresh(m->cache, err, sizeof(err));
	if (next > 0) {
		long long d = next - now;

		if (d < 1)
			d = 1;
		if (d < STS_TIMER_MAX)
			tv.tv_sec = (time_t)d;
	}
	evtimer_add(m->refresh, &tv);
}

/* ---- the manager ------------------------------------------------------ */

struct mta_sts *
mta_sts_new(struct event_base *base, struct resolver *r,
    const struct config *cf, char *err, size_t errlen)
{
	struct mta_sts *m = xcalloc(1, sizeof(*m));

	m->base = base;
	m->res = r;
	m->cf = config_ref(cf);
	pthread_mutex_init(&m->pg_mtx, NULL);
	TAILQ_INIT(&m->fetches);
	TAILQ_INIT(&m->lookups);
	if ((m->cache = mta_sts_cache_open(cf->state_dir, err, errlen)) ==
	    NULL)
		goto fail;
	if ((m->ssl_ctx = https_ctx_new(cf->ca_file, err, errlen)) == NULL)
		goto fail;
	m->ca_file = cf->ca_file ? xstrdup(cf->ca_file) : NULL;
	if ((m->refresh = evtimer_new(base, refresh_tick, m)) == NULL) {
		snprintf(err, errlen, "mta-sts: cannot make a timer");
		goto fail;
	}
	if (state_pg_enabled(cf)) {
		struct timeval tv = { STS_SYNC_SECS, 0 };

		m->pg_uri = xstrdup(cf->state_backend);
		snprintf(m->owner_name, sizeof(m->owner_name), "%s:%ld",
		    cf->myhostname ? cf->myhostname : "localhost",
		    (long)getpid());
		if ((m->sync_ev = event_new(base, -1, EV_PERSIST, sync_tick,
		    m)) == NULL || event_add(m->sync_ev, &tv) == -1) {
			snprintf(err, errlen, "mta-sts: cannot make a timer");
			goto fail;
		}
	}
	refresh_arm(m);
	return m;
fail:
	mta_sts_free(m);
	return NULL;
}

void
mta_sts_free(struct mta_sts *m)
{
	struct mta_sts_lookup *l;
	struct fetch *f;

	if (m == NULL)
		return;
	if (m->owner != NULL) {
		/* a proxy, freed before its owner: the owner's lookups for
		 * these are freed with it, without a callback */
		while ((l = TAILQ_FIRST(&m->lookups)) != NULL) {
			TAILQ_REMOVE(&m->lookups, l, entry);
			mta_sts_answer_free(l->ans);
			free(l);
		}
		free(m);
		return;
	}
	while ((f = TAILQ_FIRST(&m->fetches)) != NULL) {
		while ((l = TAILQ_FIRST(&f->waiters)) != NULL)
			lookup_free(l);
		fetch_free(f);
	}
	while ((l = TAILQ_FIRST(&m->lookups)) != NULL)
		lookup_free(l);
	if (m->refresh != NULL)
		event_free(m->refresh);
	m->refresh = NULL;
	/* writes still queued (the pool's loop is gone): now */
	m->wq = NULL;
	if (m->cw_run != NULL) {
		cw_work(m);
		cw_done(m);
	}
	while (m->cw_head != NULL) {
		struct cwrite *w = m->cw_head;

		m->cw_head = w->next;
		cw_add(m, w);
	}
	m->cw_tail = NULL;
	if (m->sync_ev != NULL)
		event_free(m->sync_ev);
	if (m->pg_uri != NULL) {
		struct sync_row *sr;

		while ((sr = m->sync_rows) != NULL) {
			m->sync_rows = sr->next;
			mta_sts_entry_clear(&sr->e);
			free(sr);
		}
		PQfinish(m->pg);
		free(m->pg_uri);
	}
	pthread_mutex_destroy(&m->pg_mtx);
	mta_sts_cache_close(m->wcache);
	mta_sts_cache_close(m->cache);
	SSL_CTX_free(m->ssl_ctx);
	free(m->ca_file);
	config_unref(m->cf);
	free(m);
}

long long
mta_sts_policies(struct mta_sts *m)
{
	char err[512];
	long long n;

	if (m == NULL || m->owner != NULL || m->cache == NULL)
		return 0;
	if ((n = mta_sts_cache_count(m->cache, err, sizeof(err))) == -1) {
		log_warnx("mta-sts: cannot count the cached policies: %s",
		    err);
		return 0;
	}
	return n;
}

void
mta_sts_reload(struct mta_sts *m, const struct config *cf)
{
	SSL_CTX *ctx;
	char err[512];

	if (m == NULL || m->owner != NULL)	/* a proxy: the owner's */
		return;
	config_ref(cf);
	config_unref(m->cf);
	m->cf = cf;
	if ((m->ca_file == NULL) == (cf->ca_file == NULL) &&
	    (m->ca_file == NULL || strcmp(m->ca_file, cf->ca_file) == 0))
		return;
	if ((ctx = https_ctx_new(cf->ca_file, err, sizeof(err))) == NULL) {
		log_warnx("mta-sts: keeping the old CA roots: %s", err);
		return;
	}
	/* fetches in flight hold their own reference to the old one */
	SSL_CTX_free(m->ssl_ctx);
	m->ssl_ctx = ctx;
	free(m->ca_file);
	m->ca_file = cf->ca_file ? xstrdup(cf->ca_file) : NULL;
}

/* ---- for the CLI ------------------------------------------------------ */

struct mta_sts_lookup *
mta_sts_refresh(struct mta_sts *m, const char *domain, mta_sts_cb *cb,
    void *arg)
{
	if (m->refresh != NULL) {
		event_free(m->refresh);		/* no background work here */
		m->refresh = NULL;
	}
	return lookup_start(m, domain, cb, arg, 1);
}

/* ---- the shared cache for `danerelay mta-sts` ------------------------- */

int
mta_sts_shared_foreach(const struct config *cf, const char *domain,
    int (*cb)(const struct mta_sts_entry *e, void *arg), void *arg,
    char *err, size_t errlen)
{
	const char *pv[1] = { domain != NULL ? domain : "" };
	struct mta_sts_entry e;
	PGconn *pg;
	PGresult *r;
	int i, n = 0;

	if ((pg = state_pg_connect(cf->state_backend, err, errlen)) == NULL)
		return -1;
	if ((r = state_pg_query(pg, "SELECT domain, id, policy, fetched_at, "
	    "expires_at, refresh_at FROM mta_sts_policy WHERE $1 = '' OR "
	    "domain = $1 ORDER BY domain", 1, pv, err, errlen)) == NULL) {
		PQfinish(pg);
		return -1;
	}
	for (i = 0; i < PQntuples(r); i++) {
		if (pg_row_entry(r, i, &e) == -1)
			continue;
		n++;
		(void)cb(&e, arg);
		mta_sts_entry_clear(&e);
	}
	PQclear(r);
	PQfinish(pg);
	return n;
}

int
mta_sts_shared_put(const struct config *cf, const struct mta_sts_entry *e,
    char *err, size_t errlen)
{
	PGconn *pg;
	int rc;

	if ((pg = state_pg_connect(cf->state_backend, err, errlen)) == NULL)
		return -1;
	rc = pg_put(pg, e, err, errlen);
	PQfinish(pg);
	return rc;
}

int
mta_sts_shared_forget(const struct config *cf, const char *domain,
    char *err, size_t errlen)
{
	const char *pv[1] = { domain };
	PGconn *pg;
	PGresult *r;
	int n;

	if ((pg = state_pg_connect(cf->state_backend, err, errlen)) == NULL)
		return -1;
	r = state_pg_query(pg, "DELETE FROM mta_sts_policy WHERE domain = $1",
	    1, pv, err, errlen);
	n = r != NULL ? atoi(PQcmdTuples(r)) : -1;
	PQclear(r);
	PQfinish(pg);
	return n;
}
