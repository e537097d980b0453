/*
 * tlsrpt_report.h - SMTP TLS Reporting (RFC 8460): the daily report.
 *
 * For one UTC day and one policy domain with recorded sessions: look up
 * "_smtp._tls.<domain>" TXT (§3), build the JSON report (§4) with
 * jansson, gzip it (§5.1, zlib, gzip format), then deliver it to every
 * rua URI: "mailto:" as a multipart/report message (§5.3) committed to
 * the spool with is_report set (delivered despite TLS failures, not
 * counted), "https:" as a POST of application/tlsrpt+gzip (§5.4).
 *
 * State in the database (tables report and dest, see tlsrpt_db.c): a (day,
 * domain) gets one report row when the TXT answer is known (with the
 * report id and the gzipped report, so every destination and every retry
 * gets the same bytes), and one dest row per URI; a dest is "sent" once
 * (mailto: committed to the queue; https: a 2xx answer), retried with
 * backoff while "pending", "failed" after TLSRPT_MAX_TRIES.  A TXT lookup
 * that fails temporarily leaves no report row, so the next run asks again.
 *
 * The pure parts are exported for tests and the fuzzer.
 */
#ifndef DR_TLSRPT_REPORT_H
#define DR_TLSRPT_REPORT_H

#include <stddef.h>
#include <time.h>

#include <jansson.h>
#include <sqlite3.h>

#include "spool.h"		/* spool_submit_cb */

struct event_base;
struct config;
struct spool;
struct dns_txt;

#define TLSRPT_MAX_RUA		8	/* URIs used from one record */
#define TLSRPT_URI_MAX		1024
#define TLSRPT_TXT_MAX		4096	/* longer records are refused */
#define TLSRPT_MAX_TRIES	8	/* https attempts before "failed" */
#define TLSRPT_HTTPS_TIMEOUT	60	/* seconds per POST */

/* ---- _smtp._tls TXT (RFC 8460 §3) --------------------------------------- */

struct tlsrpt_rua {
	char *uri[TLSRPT_MAX_RUA];	/* "mailto:..." or "https://..." */
	size_t n;
};

/*
 * Parse one TXT record (character-strings concatenated).  0 ok with at
 * least one mailto: or https: URI in out (other schemes are ignored);
 * -1 not a valid TLSRPTv1 record, with the reason in err.  Unknown
 * fields are ignored when they are well-formed.
 */
int tlsrpt_txt_parse(const char *txt, size_t len, struct tlsrpt_rua *out,
    char *err, size_t errlen);
/* The RRset: records not starting with "v=TLSRPTv1" are discarded; if
 * not exactly one is left the domain does not take reports (-1). */
int tlsrpt_txt_select(const struct dns_txt *txt, size_t n,
    struct tlsrpt_rua *out, char *err, size_t errlen);
void tlsrpt_rua_free(struct tlsrpt_rua *r);
/* "mailto:tlsrpt%2Bx@example.org?subject=y" -> "tlsrpt+x@example.org":
 * the addr-spec, percent-decoded and checked (one '@', printable ASCII,
 * none of <>()[]\,;:" or space).  0 ok, -1 not usable. */
int tlsrpt_mailto_addr(const char *uri, char *out, size_t outlen);

/* "https://host[:port][/path][?query]" -> host, port (443), request
 * target ("/path?query", "/" if empty).  0 ok, -1 not usable (userinfo,
 * address literal, bad port, too long). */
int tlsrpt_https_uri(const char *uri, char *host, size_t hostlen, int *port,
    char *target, size_t targetlen);

/* ---- the report ---------------------------------------------------------- */

struct tlsrpt_meta {
	const char *org;		/* organization-name */
	const char *contact;		/* contact-info */
	const char *submitter;		/* TLS-Report-Submitter (our name) */
	const char *report_id;		/* report-id */
	time_t start;			/* 00:00:00 UTC of the day */
};

/* The report for (day, domain) from the counters in db, RFC 8460 §4.4
 * shape.  NULL with err when there is nothing (or a database error). */
json_t *tlsrpt_report_json(sqlite3 *db, const char *day, const char *domain,
    const struct tlsrpt_meta *m, char *err, size_t errlen);
/* gzip (RFC 1952) of in.  0 ok (*out malloc'ed), -1. */
int tlsrpt_gzip(const void *in, size_t len, unsigned char **out,
    size_t *outlen);
/* The report mail (RFC 8460 §5.3), CRLF line ends; malloc'ed, *lenp. */
char *tlsrpt_mime(const struct tlsrpt_meta *m, const char *domain,
    const char *from, const char *to, const unsigned char *gz, size_t gzlen,
    size_t *lenp);
/* "submitter!domain!begin!end.json.gz" (out: at least 600 bytes). */
void tlsrpt_filename(const struct tlsrpt_meta *m, const char *domain,
    char *out, size_t outlen);
/* A fresh report id: "YYYYMMDD.<domain>.<16 hex>@<submitter>". */
char *tlsrpt_report_id(const char *day, const char *domain,
    const char *submitter);

/* ---- a run: send what is due --------------------------------------------- */

struct tlsrpt_run;
typedef void tlsrpt_run_cb(struct tlsrpt_run *run, int nerrors, void *arg);
/* Progress and result lines (one per domain/destination), no "\n". */
typedef void tlsrpt_line_cb(const char *line, void *arg);

/*
 * Start sending: day "YYYY-MM-DD" (reports of that day, also today), or
 * NULL (every day before today within TLSRPT_KEEP_DAYS with no report
 * yet, and every https destination whose retry is due).  Each mailto
 * report committed to sp goes to submit(env, submit_arg); submit may be
 * NULL (the CLI without a daemon: mailto messages wait in the spool).  cf is
 * only read during the call.  done() runs once, from the event loop,
 * with the number of errors (failed lookups, sends); the run is freed
 * after it returns.  NULL with err when it cannot start.
 */
struct tlsrpt_run *tlsrpt_run_start(struct event_base *base,
    const struct config *cf, sqlite3 *db, struct spool *sp,
    spool_submit_cb *submit, void *submit_arg, const char *day,
    tlsrpt_line_cb *line, tlsrpt_run_cb *done, void *arg, char *err,
    size_t errlen);
/* Stop now: no callbacks.  Accepts NULL. */
void tlsrpt_run_cancel(struct tlsrpt_run *run);

#endif
