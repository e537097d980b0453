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
 * The parsers (tlsrpt_txt.h) and formats (tlsrpt_format.h) are included
 * here for the callers of the run, tests and the fuzzer.
 */
#ifndef DR_TLSRPT_REPORT_H
#define DR_TLSRPT_REPORT_H

#include <stddef.h>
#include <time.h>

#include <jansson.h>
#include <sqlite3.h>

#include "spool.h"		/* spool_submit_cb */
#include "tlsrpt_format.h"
#include "tlsrpt_txt.h"

struct event_base;
struct config;
struct spool;
struct dns_txt;

#define TLSRPT_MAX_TRIES	8	/* https attempts before "failed" */
#define TLSRPT_HTTPS_TIMEOUT	60	/* seconds per POST */

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
