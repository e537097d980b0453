/*
 * tlsrpt_sched.h - SMTP TLS Reporting (RFC 8460): the daemon's report
 * schedule (tlsrpt_sched.c).
 */
#ifndef DR_TLSRPT_SCHED_H
#define DR_TLSRPT_SCHED_H

#include "spool.h"		/* spool_submit_cb */

struct event_base;
struct tlsrpt;
struct tlsrpt_sched;

/*
 * Daemon: send reports from now on, on base (the loop rpt was opened
 * on).  Once per UTC day, a few minutes (random) after 00:00 UTC,
 * reports for the previous days not yet sent (up to TLSRPT_KEEP_DAYS
 * back) go out; failed https deliveries are retried with backoff;
 * `danerelay tlsrpt send` requests (a row in the database, see
 * tlsrpt_cli()) are picked up within a second.  mailto reports are
 * committed to sp and handed to submit(env, submit_arg) (main.c: to the
 * queue).  NULL when rpt is NULL (tlsrpt = no).
 */
struct tlsrpt_sched *tlsrpt_sched_start(struct tlsrpt *rpt,
    struct event_base *base, struct spool *sp, spool_submit_cb *submit,
    void *submit_arg);
/* Cancel a run in flight (no callbacks) and stop; before tlsrpt_close()
 * of its rpt.  Accepts NULL. */
void tlsrpt_sched_free(struct tlsrpt_sched *s);

#endif
