/*
 * tlsrpt_record.h - SMTP TLS Reporting (RFC 8460), the recording side.
 * The clock, days and the database are tlsrpt_db.h, the report itself
 * (TXT lookup, JSON, gzip, delivery) tlsrpt_report.h, the daemon's
 * schedule tlsrpt_sched.h and the CLI cli_tlsrpt.h.
 *
 * Recording: every outbound session's TLS outcome is counted for its
 * policy domain, per UTC day, policy (type, policy strings, mx-host) and
 * failure details (result-type, sending and receiving IP, MX name,
 * reason).  tlsrpt_record() only adds to an in-memory aggregate; a timer
 * writes the aggregate to SQLite (<state_dir>/tlsrpt.db, WAL) in one
 * transaction every TLSRPT_FLUSH_SECS seconds and tlsrpt_close() writes
 * what is left, so the hot path never waits for the disk.
 *
 * The delivery engine calls the tlsrpt_note_*() helpers with what the
 * policy decided (struct decision_host) and what the session saw (struct
 * tls_outcome); they turn that into events.  Every function accepts
 * t == NULL and then does nothing: the caller passes NULL for messages
 * that are themselves reports (RFC 8460 §3: sessions delivering reports
 * are not counted) and when tlsrpt = no.
 *
 * What counts (RFC 8460 §4.3, §4.4; decided here, in one place):
 *   - a session counts once, when its TLS outcome is known: after the
 *     STARTTLS handshake (or its absence) - a connection that fails
 *     before (refused, no banner) is not a TLS session and is not
 *     counted; a reused (cached) session is not counted again for a
 *     policy domain it was counted for, but once for each other one;
 *   - tlsa / sts enforce / verify / encrypt: success when TLS was
 *     established and authenticated as required, else the client's
 *     result-type;
 *   - sts testing: success when TLS was established with a chain that
 *     verifies for the MX host name (checked, not enforced: the session
 *     is opportunistic) and the MX host matches the policy, else the
 *     result-type that enforce mode would have failed with
 *     (certificate-host-mismatch, certificate-expired, ...);
 *   - no-policy-found (opportunistic TLS): success when TLS was
 *     established; a server that offers no STARTTLS is recorded as
 *     "starttls-not-supported" (the domain asked for reports, and a
 *     stripped STARTTLS is what they are for); level "none" (cleartext
 *     written by the operator) records nothing;
 *   - a host the policy skipped with a result-type (bogus TLSA,
 *     dane-required, MX not in the MTA-STS policy, ...) counts one failed
 *     session per delivery attempt, without receiving-ip; a bogus MX
 *     RRset counts one failure for the domain (policy-type tlsa);
 *   - a result-type the policy knew before connecting (all TLSA records
 *     unusable: tlsa-invalid; MTA-STS fetch failure) replaces success
 *     for that session.
 */
#ifndef DR_TLSRPT_RECORD_H
#define DR_TLSRPT_RECORD_H

#include <stddef.h>
#include <time.h>

#include "policy.h"		/* enum policy_rpt_type, decision_host */
#include "smtp_client.h"	/* enum smtp_tls_mode */
#include "tlsrpt_db.h"		/* TLSRPT_DB_NAME, the clock */

struct event_base;
struct config;
struct tls_outcome;
struct dns_addr;

#define TLSRPT_FLUSH_SECS	5	/* aggregate -> SQLite */

struct tlsrpt;

/* One session outcome (or one failure known without a session). */
struct tlsrpt_event {
	const char *domain;		/* policy-domain (required) */
	enum policy_rpt_type type;	/* policy-type */
	const char *const *strings;	/* policy-string (TLSA RRs as text or
					 * the MTA-STS policy lines) */
	size_t nstrings;
	const char *const *mx;		/* mx-host */
	size_t nmx;
	const char *result;		/* NULL: success; else the RFC 8460
					 * result-type */
	/* failure details, each NULL or "" when unknown */
	const char *sending_ip;		/* sending-mta-ip */
	const char *receiving_mx;	/* receiving-mx-hostname */
	const char *receiving_ip;	/* receiving-ip */
	const char *reason;		/* failure-reason-code */
	time_t when;			/* 0: now */
};

/*
 * Open (creating) <state_dir>/tlsrpt.db and arm the flush timer on base.
 * NULL with the reason in err.  Copies what it needs from cf.
 */
struct tlsrpt *tlsrpt_open(const struct config *cf, struct event_base *base,
    char *err, size_t errlen);
/* Flush what is left and close (tlsrpt_sched_free() its schedule
 * first).  Accepts NULL. */
void tlsrpt_close(struct tlsrpt *t);
/* New configuration (org name, contact, from; tlsrpt = no stops recording
 * and sending until it is yes again).  state_dir keeps its old value. */
void tlsrpt_reload(struct tlsrpt *t, const struct config *cf);
/* Whether tlsrpt = yes in the current configuration (0 for NULL); that
 * configuration; the database connection (the schedule's runs use it). */
int tlsrpt_enabled(const struct tlsrpt *t);
const struct config *tlsrpt_config(const struct tlsrpt *t);
sqlite3 *tlsrpt_db_handle(struct tlsrpt *t);

/* Count one event (in memory; see above). */
void tlsrpt_record(struct tlsrpt *t, const struct tlsrpt_event *ev);
/* Write the in-memory aggregate now. 0 ok, -1 (kept for the next try). */
int tlsrpt_flush(struct tlsrpt *t);

/*
 * Delivery hooks.  note_session: a session to h at address a reached its
 * TLS outcome: fail_type == NULL when the session is ready to send (TLS
 * or cleartext as the policy allowed), else the client's RFC 8460
 * result-type (smtp_result.tlsrpt); o may be NULL; sending_ip: the
 * session's own source address (getsockname() of the connected socket,
 * smtp_client_local_ip()), the report's sending-mta-ip.  The caller
 * counts a session once per policy domain (a session reused for
 * another domain counts for that one too).  note_skip: the walk
 * passed host h without connecting (h->skip).  note_decision: the
 * decision is not "deliver": d->rpt_failure for the domain (bogus MX
 * RRset), else note_skip() for every skipped host.
 */
void tlsrpt_note_session(struct tlsrpt *t, const struct decision_host *h,
    const struct dns_addr *a, const struct tls_outcome *o,
    const char *fail_type, const char *sending_ip);
void tlsrpt_note_skip(struct tlsrpt *t, const struct decision_host *h);
void tlsrpt_note_decision(struct tlsrpt *t, const char *domain,
    const struct decision *d);

/* The TLS mode of a report session on decision d (RFC 8460 §3: SMTP_TLS_MAY,
 * none only when the operator's level is none; policy.h has the hosts). */
enum smtp_tls_mode tlsrpt_report_tls_mode(const struct decision *d);

/* The timer's flushes run on wq, completing on port's loop (the one
 * tlsrpt_open() was given); NULL, NULL: on the loop. */
struct workq;
struct workq_port;
void tlsrpt_set_workq(struct tlsrpt *t, struct workq *wq,
    struct workq_port *port);
/* The pool and port given to tlsrpt_set_workq() (NULL, NULL: none). */
void tlsrpt_get_workq(struct tlsrpt *t, struct workq **wq,
    struct workq_port **port);
/* What the timer does: start a flush on the pool (nothing if one is out,
 * or without a pool). */
void tlsrpt_flush_start(struct tlsrpt *t);

#endif
