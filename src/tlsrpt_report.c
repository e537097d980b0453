/*
 * tlsrpt_report.c - SMTP TLS Reporting (RFC 8460): building and sending
 * the daily aggregate report.
 *
 * RFC 8460 sections implemented here:
 *   §3    the "_smtp._tls" TXT record: "v=TLSRPTv1" first, fields
 *         separated by *WSP ";" *WSP, rua = URIs separated by *WSP ","
 *         *WSP, unknown well-formed fields ignored; of several records
 *         only those starting with "v=TLSRPTv1" count and exactly one
 *         must be left.
 *   §4    the JSON report: organization-name, date-range (RFC 3339, UTC,
 *         the whole UTC day), contact-info, report-id, policies[] with
 *         policy {policy-type, policy-string[], policy-domain,
 *         mx-host[] (an array: erratum 6241)}, summary
 *         {total-successful-session-count, total-failure-session-count}
 *         and failure-details[] {result-type, sending-mta-ip,
 *         receiving-mx-hostname, receiving-ip, failed-session-count,
 *         failure-reason-code}; optional members are left out when
 *         unknown, never sent empty.
 *   §5.1  gzip (RFC 1952) of the JSON, filename
 *         "submitter!policy-domain!begin-timestamp!end-timestamp.json.gz".
 *   §5.3  mailto: a multipart/report; report-type="tlsrpt" message with
 *         Subject "Report Domain: D Submitter: S Report-ID: <id>",
 *         TLS-Report-Domain, TLS-Report-Submitter, a text/plain part and
 *         the application/tlsrpt+gzip part (base64 by OpenSSL's
 *         EVP_EncodeBlock), plus "TLS-Required: No" (RFC 8689): it is
 *         spooled with is_report set, so the delivery engine delivers it
 *         despite TLS failures and does not count its sessions (§3).
 *   §5.4  https: a POST of application/tlsrpt+gzip through https.c
 *         (WebPKI-verified TLS); any 2xx is success.
 *   §5.3/§5.4 retries: a failed POST is retried with backoff (10 minutes,
 *         doubling, at most 6 hours) up to TLSRPT_MAX_TRIES times;
 *         mailto reports are retried by the queue like any message.
 *
 * Every destination gets the same bytes: the gzipped report is built
 * once, when the TXT answer arrives, and stored with its report id.
 * JSON by jansson, gzip by zlib, base64 by OpenSSL, HTTP by libevent
 * (https.c): nothing hand-rolled.
 *
 * This file is the run (lookups, storing, sending); the TXT record and
 * URI parsers are tlsrpt_txt.c, the JSON, gzip and mail formats
 * tlsrpt_format.c (issue #15 moved them out unchanged).
 */
#include <sys/queue.h>

#include <ctype.h>
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
#include <jansson.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <zlib.h>

#include "config.h"
#include "dkim.h"
#include "https.h"
#include "local_milter.h"
#include "log.h"
#include "resolver.h"
#include "spool.h"
#include "stats.h"
#include "tlsrpt_db.h"
#include "tlsrpt_format.h"
#include "tlsrpt_report.h"
#include "tlsrpt_txt.h"
#include "util.h"

#define LOOKUPS_MAX	8	/* TXT lookups in flight */
#define POSTS_MAX	4	/* https POSTs in flight */
#define BACKOFF_MIN	600
#define BACKOFF_MAX	(6 * 3600)

/* ---- a run --------------------------------------------------------------- */

struct lookup {
	TAILQ_ENTRY(lookup) entry;
	struct tlsrpt_run *run;
	char day[11];
	char *domain;
	struct resolver_query *q;
};
TAILQ_HEAD(lookup_list, lookup);

struct post {
	TAILQ_ENTRY(post) entry;
	struct tlsrpt_run *run;
	char day[11];
	char *domain;
	char *uri;
	int tries;
	struct https_req *req;
	unsigned char *gz;		/* the body while the POST runs */
	struct lm_job *lmjob;		/* mailto: in the non_smtpd_milters */
	char *rid, *addr;		/*   its report id and recipient */
};
TAILQ_HEAD(post_list, post);

enum run_phase {
	PH_LOOKUP = 0,
	PH_SEND,
	PH_DONE,
};

struct tlsrpt_run {
	struct event_base *base;
	sqlite3 *db;
	struct spool *sp;
	spool_submit_cb *submit;	/* mailto reports, or NULL */
	void *submit_arg;
	char *org, *contact, *submitter, *from;
	char *ca_file;
	struct dkim_table *dkim;	/* dkim_key_table, or NULL */
	struct local_milter *lm;	/* non_smtpd_milters, or NULL */
	int dkim_defer;			/* dkim_failure_action = defer */
	char day[11];			/* "" = everything due */
	char today[11], oldest[11];
	struct resolver *res;
	SSL_CTX *https_ctx;
	int https_ctx_failed;

	struct lookup_list todo, busy;	/* TXT lookups */
	struct post_list posts, posting;
	enum run_phase phase;
	int nerrors;
	struct event *ev_step;

	tlsrpt_line_cb *line;
	tlsrpt_run_cb *done;
	void *arg;
};

static void run_step(struct tlsrpt_run *run);

static void
say(struct tlsrpt_run *run, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
say(struct tlsrpt_run *run, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (run->line != NULL)
		run->line(buf, run->arg);
}

static void
step_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	run_step(arg);
}

static void
kick(struct tlsrpt_run *run)
{
	struct timeval tv = { 0, 0 };

	evtimer_add(run->ev_step, &tv);
}

static void
lookup_free(struct lookup *l)
{
	free(l->domain);
	free(l);
}

static void
post_free(struct post *p)
{
	free(p->gz);
	free(p->domain);
	free(p->uri);
	free(p->rid);
	free(p->addr);
	free(p);
}

static void
run_free(struct tlsrpt_run *run)
{
	struct lookup *l;
	struct post *p;

	while ((l = TAILQ_FIRST(&run->busy)) != NULL) {
		TAILQ_REMOVE(&run->busy, l, entry);
		resolver_cancel(l->q);
		lookup_free(l);
	}
	while ((l = TAILQ_FIRST(&run->todo)) != NULL) {
		TAILQ_REMOVE(&run->todo, l, entry);
		lookup_free(l);
	}
	while ((p = TAILQ_FIRST(&run->posting)) != NULL) {
		TAILQ_REMOVE(&run->posting, p, entry);
		if (p->lmjob != NULL)
			local_milter_cancel(p->lmjob);	/* sent next run */
		else
			https_cancel(p->req);
		post_free(p);
	}
	while ((p = TAILQ_FIRST(&run->posts)) != NULL) {
		TAILQ_REMOVE(&run->posts, p, entry);
		post_free(p);
	}
	resolver_free(run->res);
	SSL_CTX_free(run->https_ctx);
	if (run->ev_step != NULL)
		event_free(run->ev_step);
	free(run->org);
	free(run->contact);
	free(run->submitter);
	free(run->from);
	dkim_table_unref(run->dkim);
	local_milter_unref(run->lm);
	free(run->ca_file);
	free(run);
}

void
tlsrpt_run_cancel(struct tlsrpt_run *run)
{
	if (run != NULL)
		run_free(run);
}

/* Simple "local@domain" check for tlsrpt_from. */
static int
addr_ok(const char *a)
{
	const char *at = strchr(a, '@');
	const char *p;

	if (at == NULL || at == a || at[1] == '\0' || strchr(at + 1, '@'))
		return 0;
	for (p = a; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f ||
		    strchr("<>()[]\\,;:\"", *p) != NULL)
			return 0;
	return strlen(a) <= 254;
}

static int
db_step_done(sqlite3 *db, sqlite3_stmt *s, char *err, size_t errlen)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	if (rc == SQLITE_DONE || rc == SQLITE_ROW)
		return 0;
	snprintf(err, errlen, "%s", sqlite3_errmsg(db));
	return -1;
}

static int
exec(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

/* Record that (day, domain) takes no reports. */
static void
store_norua(struct tlsrpt_run *run, const char *day, const char *domain,
    const char *why)
{
	sqlite3_stmt *s = NULL;
	char err[256];

	if (sqlite3_prepare_v2(run->db, "INSERT OR REPLACE INTO report (day, "
	    "domain, state, created, note) VALUES (?1, ?2, 'norua', ?3, ?4)",
	    -1, &s, NULL) != SQLITE_OK) {
		say(run, "%s %s: database: %s", day, domain,
		    sqlite3_errmsg(run->db));
		run->nerrors++;
		return;
	}
	sqlite3_bind_text(s, 1, day, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, domain, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, (long long)tlsrpt_now());
	sqlite3_bind_text(s, 4, why, -1, SQLITE_STATIC);
	if (db_step_done(run->db, s, err, sizeof(err)) == -1) {
		say(run, "%s %s: database: %s", day, domain, err);
		run->nerrors++;
	}
	sqlite3_finalize(s);
}

/* Build the report and its destinations in one transaction. */
static void
store_report(struct tlsrpt_run *run, const char *day, const char *domain,
    const struct tlsrpt_rua *rua)
{
	struct tlsrpt_meta m;
	sqlite3_stmt *s = NULL;
	json_t *js;
	char *text = NULL, *id, err[512], addr[256], host[256];
	char target[TLSRPT_URI_MAX + 2];
	unsigned char *gz = NULL;
	size_t gzlen = 0, i, ndest = 0;
	int port;

	id = tlsrpt_report_id(day, domain, run->submitter);
	memset(&m, 0, sizeof(m));
	m.org = run->org;
	m.contact = run->contact;
	m.submitter = run->submitter;
	m.report_id = id;
	if (tlsrpt_day_parse(day, &m.start) == -1) {
		say(run, "%s %s: bad day in the database", day, domain);
		run->nerrors++;
		free(id);
		return;
	}
	if ((js = tlsrpt_report_json(run->db, day, domain, &m, err,
	    sizeof(err))) == NULL) {
		say(run, "%s %s: cannot build the report: %s", day, domain,
		    err);
		run->nerrors++;
		free(id);
		return;
	}
	text = json_dumps(js, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(js);
	if (text == NULL || tlsrpt_gzip(text, strlen(text), &gz, &gzlen) ==
	    -1) {
		say(run, "%s %s: cannot serialise/compress the report", day,
		    domain);
		run->nerrors++;
		goto out;
	}
	if (exec(run->db, "BEGIN IMMEDIATE") == -1) {
		say(run, "%s %s: database: %s", day, domain,
		    sqlite3_errmsg(run->db));
		run->nerrors++;
		goto out;
	}
	if (sqlite3_prepare_v2(run->db, "INSERT OR REPLACE INTO report (day, "
	    "domain, state, report_id, gz, created) VALUES (?1, ?2, 'ready', "
	    "?3, ?4, ?5)", -1, &s, NULL) != SQLITE_OK)
		goto dberr;
	sqlite3_bind_text(s, 1, day, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, domain, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, id, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s, 4, gz, (int)gzlen, SQLITE_STATIC);
	sqlite3_bind_int64(s, 5, (long long)tlsrpt_now());
	if (db_step_done(run->db, s, err, sizeof(err)) == -1)
		goto dberr2;
	sqlite3_finalize(s);
	s = NULL;
	if (sqlite3_prepare_v2(run->db, "INSERT OR IGNORE INTO dest (day, "
	    "domain, uri, state, tries, next_try) VALUES (?1, ?2, ?3, "
	    "'pending', 0, 0)", -1, &s, NULL) != SQLITE_OK)
		goto dberr;
	for (i = 0; i < rua->n; i++) {
		const char *u = rua->uri[i];

		if (strncasecmp(u, "mailto:", 7) == 0 &&
		    tlsrpt_mailto_addr(u, addr, sizeof(addr)) == -1) {
			say(run, "%s %s: %s: not a usable mail address, "
			    "skipped", day, domain, u);
			continue;
		}
		if (strncasecmp(u, "https:", 6) == 0 &&
		    tlsrpt_https_uri(u, host, sizeof(host), &port, target,
		    sizeof(target)) == -1) {
			say(run, "%s %s: %s: not a usable https URI, skipped",
			    day, domain, u);
			continue;
		}
		sqlite3_bind_text(s, 1, day, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, domain, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 3, u, -1, SQLITE_STATIC);
		if (db_step_done(run->db, s, err, sizeof(err)) == -1)
			goto dberr2;
		ndest++;
	}
	sqlite3_finalize(s);
	s = NULL;
	if (ndest == 0) {
		(void)exec(run->db, "ROLLBACK");
		store_norua(run, day, domain, "no usable rua URI");
		say(run, "%s %s: no usable rua URI in the TLSRPT record", day,
		    domain);
		goto out;
	}
	if (exec(run->db, "COMMIT") == -1)
		goto dberr;
	say(run, "%s %s: report %s built (%zu bytes JSON, %zu gzipped), "
	    "%zu destination%s", day, domain, id, strlen(text), gzlen, ndest,
	    ndest == 1 ? "" : "s");
	goto out;
dberr:
	snprintf(err, sizeof(err), "%s", sqlite3_errmsg(run->db));
dberr2:
	sqlite3_finalize(s);
	(void)exec(run->db, "ROLLBACK");
	say(run, "%s %s: database: %s", day, domain, err);
	run->nerrors++;
out:
	free(text);
	free(gz);
	free(id);
}

static void
txt_done(struct dns_result *res, void *arg)
{
	struct lookup *l = arg;
	struct tlsrpt_run *run = l->run;
	struct tlsrpt_rua rua;
	char err[256];

	TAILQ_REMOVE(&run->busy, l, entry);
	if (res->status == DNS_OK && res->security != DNS_SEC_BOGUS) {
		if (tlsrpt_txt_select(res->txt, res->n, &rua, err,
		    sizeof(err)) == 0) {
			store_report(run, l->day, l->domain, &rua);
			tlsrpt_rua_free(&rua);
		} else {
			say(run, "%s %s: no report: _smtp._tls.%s: %s", l->day,
			    l->domain, l->domain, err);
			store_norua(run, l->day, l->domain, err);
		}
	} else if (res->status == DNS_NXDOMAIN || res->status == DNS_NODATA) {
		say(run, "%s %s: no report: the domain publishes no TLSRPT "
		    "record", l->day, l->domain);
		store_norua(run, l->day, l->domain, "no _smtp._tls TXT record");
	} else {
		say(run, "%s %s: TXT lookup of _smtp._tls.%s failed (%s%s%s); "
		    "will try again", l->day, l->domain, l->domain,
		    dns_security_name(res->security), res->reason[0] ? ": " :
		    "", res->reason);
		run->nerrors++;
	}
	dns_result_free(res);
	lookup_free(l);
	kick(run);
}

/* Load the destinations to send in this run. */
static int
load_posts(struct tlsrpt_run *run, char *err, size_t errlen)
{
	sqlite3_stmt *s = NULL;
	struct post *p;
	int rc;

	if (sqlite3_prepare_v2(run->db, "SELECT day, domain, uri, tries FROM "
	    "dest WHERE state = 'pending' AND (?1 = '' AND day >= ?2 AND "
	    "next_try <= ?3 OR day = ?1) ORDER BY day, domain, uri", -1, &s,
	    NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(run->db));
		return -1;
	}
	sqlite3_bind_text(s, 1, run->day, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, run->oldest, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, (long long)tlsrpt_now());
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		p = xcalloc(1, sizeof(*p));
		p->run = run;
		dr_strlcpy(p->day, (const char *)sqlite3_column_text(s, 0),
		    sizeof(p->day));
		p->domain = xstrdup((const char *)sqlite3_column_text(s, 1));
		p->uri = xstrdup((const char *)sqlite3_column_text(s, 2));
		p->tries = sqlite3_column_int(s, 3);
		TAILQ_INSERT_TAIL(&run->posts, p, entry);
	}
	if (rc != SQLITE_DONE)
		snprintf(err, errlen, "%s", sqlite3_errmsg(run->db));
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* state: 'sent', 'pending' (retry later) or 'failed'. */
static void
dest_update(struct tlsrpt_run *run, const struct post *p, const char *state,
    int tries, const char *note)
{
	sqlite3_stmt *s = NULL;
	long long next = 0;
	char err[256];
	int k;

	stats_tlsrpt_delivery(state);	/* danerelay_tlsrpt_deliveries_total */
	if (strcmp(state, "pending") == 0) {
		next = BACKOFF_MIN;
		for (k = 1; k < tries && next < BACKOFF_MAX; k++)
			next *= 2;
		if (next > BACKOFF_MAX)
			next = BACKOFF_MAX;
		next += (long long)tlsrpt_now();
	}
	if (sqlite3_prepare_v2(run->db, "UPDATE dest SET state = ?1, tries = "
	    "?2, next_try = ?3, note = ?4 WHERE day = ?5 AND domain = ?6 AND "
	    "uri = ?7", -1, &s, NULL) != SQLITE_OK) {
		say(run, "%s %s: database: %s", p->day, p->domain,
		    sqlite3_errmsg(run->db));
		run->nerrors++;
		return;
	}
	sqlite3_bind_text(s, 1, state, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 2, tries);
	sqlite3_bind_int64(s, 3, next);
	sqlite3_bind_text(s, 4, note, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 5, p->day, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 6, p->domain, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 7, p->uri, -1, SQLITE_STATIC);
	if (db_step_done(run->db, s, err, sizeof(err)) == -1) {
		say(run, "%s %s: database: %s", p->day, p->domain, err);
		run->nerrors++;
	}
	sqlite3_finalize(s);
}

/* The stored report of (day, domain): id and gzip bytes (malloc'ed). */
static int
load_report(struct tlsrpt_run *run, const char *day, const char *domain,
    char **id, unsigned char **gz, size_t *gzlen)
{
	sqlite3_stmt *s = NULL;
	int ok = 0;

	if (sqlite3_prepare_v2(run->db, "SELECT report_id, gz FROM report "
	    "WHERE day = ?1 AND domain = ?2 AND state = 'ready'", -1, &s,
	    NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(s, 1, day, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, domain, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) ==
	    SQLITE_TEXT && sqlite3_column_type(s, 1) == SQLITE_BLOB) {
		int n = sqlite3_column_bytes(s, 1);

		*id = xstrdup((const char *)sqlite3_column_text(s, 0));
		*gz = xmalloc((size_t)n);
		memcpy(*gz, sqlite3_column_blob(s, 1), (size_t)n);
		*gzlen = (size_t)n;
		ok = 1;
	}
	sqlite3_finalize(s);
	return ok ? 0 : -1;
}

/*
 * RFC 8460 §3: a report mail is DKIM-signed by the reporting domain (the
 * domain of tlsrpt_from) with a key whose record allows "tlsrpt" (s=tlsrpt
 * or s=*).  Signed here, on the loop: a report run mails a few reports a
 * day and already commits each on the loop.  -1: failed and
 * dkim_failure_action = defer (said, *msg untouched).
 */
static int
report_sign(struct tlsrpt_run *run, const struct post *p, char **msg,
    size_t *len)
{
	const char *dom = strrchr(run->from, '@');
	char err[512], *hdrs = NULL, *signd;
	size_t hl;
	int r;

	if (run->dkim == NULL || dom == NULL ||
	    !dkim_table_signs(run->dkim, dom + 1, DKIM_SVC_TLSRPT))
		return 0;
	r = dkim_sign_msg_buf(run->dkim, dom + 1, DKIM_SVC_TLSRPT, "tlsrpt",
	    *msg, *len, &hdrs, err, sizeof(err));
	if (r < 0) {
		log_warnx("tlsrpt: dkim: signing the report for %s (d=%s) "
		    "failed: %s; %s", p->domain, dom + 1, err, run->dkim_defer ?
		    "deferred (dkim_failure_action = defer)" :
		    "sent unsigned (dkim_failure_action = pass)");
		if (run->dkim_defer) {
			say(run, "%s %s: DKIM signing failed: %s", p->day,
			    p->domain, err);
			return -1;
		}
		return 0;
	}
	if (r == 0)
		return 0;
	hl = strlen(hdrs);
	signd = xmalloc(hl + *len);
	memcpy(signd, hdrs, hl);
	memcpy(signd + hl, *msg, *len);
	free(hdrs);
	free(*msg);
	*msg = signd;
	*len += hl;
	log_info("tlsrpt: dkim: report for %s signed, d=%s, signatures=%d",
	    p->domain, dom + 1, r);
	return 0;
}

/* The report mail is durable as env: the destination is done. */
static void
mail_queued(struct tlsrpt_run *run, struct post *p, const char *id,
    const char *addr, const struct spool_env *env)
{
	char *note;

	note = xasprintf("queued as %s", env->id);
	dest_update(run, p, "sent", p->tries + 1, note);
	free(note);
	log_info("%s: TLSRPT report %s for %s (%s) to <%s>, from=<%s>",
	    env->id, id, p->domain, p->day, addr, env->sender);
	say(run, "%s %s: report to %s queued as %s%s", p->day, p->domain,
	    p->uri, env->id, run->submit ? "" : " (delivered when danerelayd "
	    "runs)");
	if (run->submit != NULL)
		run->submit(env, run->submit_arg);
}

static int
mail_sign(char **msg, size_t *len, void *arg)
{
	struct post *p = arg;

	return report_sign(p->run, p, msg, len);
}

/*
 * non_smtpd_milters (local_milter.c): the report mail passes them before
 * it is signed and spooled.  The destination is marked sent only once
 * the mail is durable; a tempfail leaves it pending for the next run (an
 * error of this one), a reject or discard marks it failed, said loudly.
 */
static void
mail_filtered(const struct lm_outcome *o, void *arg)
{
	struct post *p = arg;
	struct tlsrpt_run *run = p->run;
	char *note;

	p->lmjob = NULL;
	TAILQ_REMOVE(&run->posting, p, entry);
	switch (o->res) {
	case LM_QUEUED:
		mail_queued(run, p, p->rid, p->addr, o->env);
		break;
	case LM_TEMPFAIL:
		say(run, "%s %s: report to %s deferred by the "
		    "non_smtpd_milters (%s); will retry", p->day, p->domain,
		    p->uri, o->why != NULL ? o->why : "");
		run->nerrors++;
		break;
	case LM_REJECTED:
	case LM_DISCARDED:
		note = xasprintf("%s by a milter: %s", o->res == LM_REJECTED ?
		    "rejected" : "discarded", o->why != NULL ? o->why : "");
		log_warnx("tlsrpt: report %s for %s (%s) to <%s> NOT sent: %s",
		    p->rid, p->domain, p->day, p->addr, note);
		say(run, "%s %s: report to %s not sent: %s", p->day, p->domain,
		    p->uri, note);
		dest_update(run, p, "failed", p->tries + 1, note);
		free(note);
		run->nerrors++;
		break;
	}
	post_free(p);
	kick(run);
}

/* mailto: commit the report mail to the spool and hand it to the queue;
 * 1 if it is in the milters now (mail_filtered() ends it). */
static int
send_mail(struct tlsrpt_run *run, struct post *p, const char *id,
    const unsigned char *gz, size_t gzlen)
{
	struct tlsrpt_meta m;
	struct spool_writer *w;
	struct spool_env *env;
	char addr[256], err[512], *msg;
	size_t len;

	if (tlsrpt_mailto_addr(p->uri, addr, sizeof(addr)) == -1) {
		say(run, "%s %s: %s: not a usable address", p->day, p->domain,
		    p->uri);
		dest_update(run, p, "failed", p->tries + 1, "bad address");
		run->nerrors++;
		return 0;
	}
	memset(&m, 0, sizeof(m));
	m.org = run->org;
	m.contact = run->contact;
	m.submitter = run->submitter;
	m.report_id = id;
	(void)tlsrpt_day_parse(p->day, &m.start);
	if ((msg = tlsrpt_mime(&m, p->domain, run->from, addr, gz, gzlen,
	    &len)) == NULL) {
		say(run, "%s %s: cannot build the report mail", p->day,
		    p->domain);
		run->nerrors++;
		return 0;
	}
	env = spool_env_new();
	env->sender = xstrdup(run->from);
	env->created = time(NULL);
	env->client_addr = xstrdup("127.0.0.1");
	env->client_helo = xstrdup(run->submitter);
	env->is_report = 1;
	spool_env_add_rcpt(env, addr);
	if (run->lm != NULL) {
		/* signed after the milters, so that their changes do not
		 * break the signature */
		p->rid = xstrdup(id);
		p->addr = xstrdup(addr);
		if ((p->lmjob = local_milter_submit(run->base, run->lm,
		    run->sp, "TLSRPT report", env, msg, len, mail_sign, p,
		    mail_filtered, p, err, sizeof(err))) != NULL)
			return 1;
		say(run, "%s %s: %s: cannot spool the report: %s", p->day,
		    p->domain, p->uri, err);
		run->nerrors++;
		return 0;
	}
	if (report_sign(run, p, &msg, &len) == -1) {
		free(msg);
		spool_env_free(env);
		run->nerrors++;
		return 0;	/* dkim_failure_action = defer: next run */
	}
	if ((w = spool_writer_new(run->sp, err, sizeof(err))) == NULL ||
	    spool_writer_write(w, msg, len) == -1) {
		if (w != NULL)
			snprintf(err, sizeof(err), "write: %s",
			    strerror(errno));
		spool_writer_abort(w);
		free(msg);
		spool_env_free(env);
		say(run, "%s %s: %s: cannot spool the report: %s", p->day,
		    p->domain, p->uri, err);
		run->nerrors++;
		return 0;
	}
	free(msg);
	if (spool_writer_commit(w, env, err, sizeof(err)) == -1) {
		spool_env_free(env);
		say(run, "%s %s: %s: cannot spool the report: %s", p->day,
		    p->domain, p->uri, err);
		run->nerrors++;
		return 0;
	}
	mail_queued(run, p, id, addr, env);
	spool_env_free(env);
	return 0;
}

static void
post_done(const struct https_result *r, void *arg)
{
	struct post *p = arg;
	struct tlsrpt_run *run = p->run;
	char note[512];
	int tries = p->tries + 1;

	TAILQ_REMOVE(&run->posting, p, entry);
	if (r->fail == HTTPS_OK) {
		snprintf(note, sizeof(note), "HTTP %d", r->status);
		dest_update(run, p, "sent", tries, note);
		say(run, "%s %s: report posted to %s (HTTP %d)", p->day,
		    p->domain, p->uri, r->status);
	} else {
		snprintf(note, sizeof(note), "%s%s%s", https_fail_name(r->fail),
		    r->reason[0] ? ": " : "", r->reason);
		if (r->status != 0 && r->fail == HTTPS_FAIL_STATUS)
			snprintf(note, sizeof(note), "HTTP %d%s%s", r->status,
			    r->reason[0] ? ": " : "", r->reason);
		dest_update(run, p, tries >= TLSRPT_MAX_TRIES ? "failed" :
		    "pending", tries, note);
		say(run, "%s %s: POST to %s failed (%s)%s", p->day, p->domain,
		    p->uri, note, tries >= TLSRPT_MAX_TRIES ? "; giving up" :
		    "; will retry");
		run->nerrors++;
	}
	post_free(p);
	kick(run);
}

/* https: start the POST (takes gz).  0 started, -1 done (error said). */
static int
send_post(struct tlsrpt_run *run, struct post *p, unsigned char *gz,
    size_t gzlen)
{
	struct https_params hp;
	char host[256], err[512], target[TLSRPT_URI_MAX + 2];
	int port;

	free(p->gz);
	p->gz = gz;
	if (tlsrpt_https_uri(p->uri, host, sizeof(host), &port, target,
	    sizeof(target)) == -1) {
		say(run, "%s %s: %s: not a usable https URI", p->day,
		    p->domain, p->uri);
		dest_update(run, p, "failed", p->tries + 1, "bad URI");
		run->nerrors++;
		return -1;
	}
	if (run->https_ctx == NULL && !run->https_ctx_failed &&
	    (run->https_ctx = https_ctx_new(run->ca_file, err,
	    sizeof(err))) == NULL) {
		run->https_ctx_failed = 1;
		say(run, "https client: %s", err);
	}
	if (run->https_ctx == NULL) {
		dest_update(run, p, "pending", p->tries + 1, "no https client");
		run->nerrors++;
		return -1;
	}
	memset(&hp, 0, sizeof(hp));
	hp.base = run->base;
	hp.ssl_ctx = run->https_ctx;
	hp.resolver = run->res;
	hp.method = HTTPS_POST;
	hp.host = host;
	hp.port = port;
	hp.path = target;
	hp.content_type = "application/tlsrpt+gzip";
	hp.body = gz;
	hp.body_len = gzlen;
	hp.status_rule = HTTPS_STATUS_2XX;
	hp.timeout_ms = TLSRPT_HTTPS_TIMEOUT * 1000;
	hp.logid = "tlsrpt";
	if ((p->req = https_request(&hp, post_done, p, err,
	    sizeof(err))) == NULL) {
		say(run, "%s %s: POST to %s: %s; will retry", p->day,
		    p->domain, p->uri, err);
		dest_update(run, p, "pending", p->tries + 1, err);
		run->nerrors++;
		return -1;
	}
	return 0;
}

/* Send one destination; 1 if it is now in flight. */
static int
send_one(struct tlsrpt_run *run, struct post *p)
{
	unsigned char *gz = NULL;
	size_t gzlen = 0;
	char *id = NULL;
	int inflight = 0;

	if (load_report(run, p->day, p->domain, &id, &gz, &gzlen) == -1) {
		say(run, "%s %s: the stored report is missing", p->day,
		    p->domain);
		dest_update(run, p, "failed", p->tries, "report missing");
		run->nerrors++;
	} else if (strncasecmp(p->uri, "mailto:", 7) == 0)
		inflight = send_mail(run, p, id, gz, gzlen);
	else {
		inflight = send_post(run, p, gz, gzlen) == 0;
		gz = NULL;	/* p owns it */
	}
	free(id);
	free(gz);
	return inflight;
}

static void
run_step(struct tlsrpt_run *run)
{
	struct lookup *l;
	struct post *p;
	char name[DNS_NAME_BUF], err[512];
	int n;

	switch (run->phase) {
	case PH_LOOKUP:
		for (n = 0, l = TAILQ_FIRST(&run->busy); l != NULL;
		    l = TAILQ_NEXT(l, entry))
			n++;
		while (n < LOOKUPS_MAX && (l = TAILQ_FIRST(&run->todo)) !=
		    NULL) {
			TAILQ_REMOVE(&run->todo, l, entry);
			snprintf(name, sizeof(name), "_smtp._tls.%s",
			    l->domain);
			l->q = resolver_query(run->res, name, DNS_T_TXT,
			    txt_done, l, err, sizeof(err));
			if (l->q == NULL) {
				say(run, "%s %s: TXT lookup of %s: %s", l->day,
				    l->domain, name, err);
				run->nerrors++;
				lookup_free(l);
				continue;
			}
			TAILQ_INSERT_TAIL(&run->busy, l, entry);
			n++;
		}
		if (n > 0)
			return;		/* txt_done() kicks */
		run->phase = PH_SEND;
		if (load_posts(run, err, sizeof(err)) == -1) {
			say(run, "database: %s", err);
			run->nerrors++;
		}
		/* FALLTHROUGH */
	case PH_SEND:
		for (n = 0, p = TAILQ_FIRST(&run->posting); p != NULL;
		    p = TAILQ_NEXT(p, entry))
			n++;
		while (n < POSTS_MAX && (p = TAILQ_FIRST(&run->posts)) !=
		    NULL) {
			TAILQ_REMOVE(&run->posts, p, entry);
			if (send_one(run, p)) {
				TAILQ_INSERT_TAIL(&run->posting, p, entry);
				n++;
			} else
				post_free(p);
		}
		if (n > 0)
			return;		/* post_done() kicks */
		run->phase = PH_DONE;
		/* FALLTHROUGH */
	case PH_DONE:
		run->done(run, run->nerrors, run->arg);
		run_free(run);
		return;
	}
}

/* For a given day: say what was already done for it. */
static void
say_existing(struct tlsrpt_run *run)
{
	sqlite3_stmt *s = NULL;

	if (sqlite3_prepare_v2(run->db, "SELECT r.domain, r.state, r.note, "
	    "d.uri, d.state, d.note FROM report r LEFT JOIN dest d ON "
	    "d.day = r.day AND d.domain = r.domain WHERE r.day = ?1 AND "
	    "(d.state IS NULL OR d.state != 'pending') ORDER BY r.domain, "
	    "d.uri", -1, &s, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_text(s, 1, run->day, -1, SQLITE_STATIC);
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *dom = (const char *)sqlite3_column_text(s, 0);
		const char *st = (const char *)sqlite3_column_text(s, 1);
		const char *note = (const char *)sqlite3_column_text(s, 2);
		const char *uri = (const char *)sqlite3_column_text(s, 3);
		const char *dst = (const char *)sqlite3_column_text(s, 4);
		const char *dnote = (const char *)sqlite3_column_text(s, 5);

		if (strcmp(st, "norua") == 0)
			say(run, "%s %s: no report (%s)", run->day, dom,
			    note ? note : "no TLSRPT record");
		else if (uri != NULL)
			say(run, "%s %s: report to %s already %s (%s)",
			    run->day, dom, uri, dst, dnote ? dnote : "");
	}
	sqlite3_finalize(s);
}

struct tlsrpt_run *
tlsrpt_run_start(struct event_base *base, const struct config *cf,
    sqlite3 *db, struct spool *sp, spool_submit_cb *submit, void *submit_arg,
    const char *day, tlsrpt_line_cb *line, tlsrpt_run_cb *done, void *arg,
    char *err, size_t errlen)
{
	struct tlsrpt_run *run = xcalloc(1, sizeof(*run));
	sqlite3_stmt *s = NULL;
	struct lookup *l;
	time_t start, now = tlsrpt_now();
	int rc, nitems = 0;

	run->base = base;
	run->db = db;
	run->sp = sp;
	run->submit = submit;
	run->submit_arg = submit_arg;
	run->line = line;
	run->done = done;
	run->arg = arg;
	TAILQ_INIT(&run->todo);
	TAILQ_INIT(&run->busy);
	TAILQ_INIT(&run->posts);
	TAILQ_INIT(&run->posting);
	run->submitter = xstrdup(cf->myhostname ? cf->myhostname :
	    "localhost");
	run->org = xstrdup(cf->tlsrpt_org_name ? cf->tlsrpt_org_name :
	    run->submitter);
	run->contact = cf->tlsrpt_contact ? xstrdup(cf->tlsrpt_contact) :
	    xasprintf("postmaster@%s", run->submitter);
	if (cf->tlsrpt_from != NULL && addr_ok(cf->tlsrpt_from))
		run->from = xstrdup(cf->tlsrpt_from);
	else {
		if (cf->tlsrpt_from != NULL)
			log_warnx("tlsrpt: tlsrpt_from \"%s\" is not a plain "
			    "address (local@domain); using postmaster@%s",
			    cf->tlsrpt_from, run->submitter);
		run->from = xasprintf("postmaster@%s", run->submitter);
	}
	if (cf->ca_file != NULL)
		run->ca_file = xstrdup(cf->ca_file);
	if (cf->dkim_key_table != NULL && (run->dkim = dkim_table_load(
	    cf->dkim_key_table, err, errlen)) == NULL)
		goto fail;
	run->dkim_defer = cf->dkim_failure_defer;
	if ((run->lm = local_milter_new(cf, err, errlen)) == NULL &&
	    err[0] != '\0')
		goto fail;
	tlsrpt_day(now, run->today);
	tlsrpt_day(now - (time_t)TLSRPT_KEEP_DAYS * 86400, run->oldest);
	if (day != NULL) {
		if (tlsrpt_day_parse(day, &start) == -1) {
			snprintf(err, errlen, "%s: not a day (YYYY-MM-DD)", day);
			goto fail;
		}
		dr_strlcpy(run->day, day, sizeof(run->day));
	}
	if ((run->ev_step = evtimer_new(base, step_cb, run)) == NULL) {
		snprintf(err, errlen, "cannot arm a timer");
		goto fail;
	}
	if ((run->res = resolver_new(base, cf, err, errlen)) == NULL)
		goto fail;

	/* (day, domain) pairs with counters and no report decision yet */
	if (sqlite3_prepare_v2(db, "SELECT DISTINCT day, domain FROM policy p "
	    "WHERE (?1 = '' AND day < ?2 AND day >= ?3 OR day = ?1) AND NOT "
	    "EXISTS (SELECT 1 FROM report r WHERE r.day = p.day AND r.domain "
	    "= p.domain) ORDER BY day, domain", -1, &s, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
		goto fail;
	}
	sqlite3_bind_text(s, 1, run->day, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, run->today, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, run->oldest, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		l = xcalloc(1, sizeof(*l));
		l->run = run;
		dr_strlcpy(l->day, (const char *)sqlite3_column_text(s, 0),
		    sizeof(l->day));
		l->domain = xstrdup((const char *)sqlite3_column_text(s, 1));
		TAILQ_INSERT_TAIL(&run->todo, l, entry);
		nitems++;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
		goto fail;
	}
	if (run->day[0] != '\0') {
		say_existing(run);
		if (nitems == 0) {
			sqlite3_stmt *c = NULL;
			int any = 0;

			if (sqlite3_prepare_v2(db, "SELECT 1 FROM policy WHERE "
			    "day = ?1 LIMIT 1", -1, &c, NULL) == SQLITE_OK) {
				sqlite3_bind_text(c, 1, run->day, -1,
				    SQLITE_STATIC);
				any = sqlite3_step(c) == SQLITE_ROW;
			}
			sqlite3_finalize(c);
			if (!any)
				say(run, "%s: no sessions recorded", run->day);
		}
	}
	kick(run);
	return run;
fail:
	run_free(run);
	return NULL;
}
