/*
 * policy.h - the delivery security decision (DESIGN.md "Delivery security
 * semantics"; RFC 7672 DANE for SMTP, RFC 8461 MTA-STS, RFC 7505 null MX,
 * RFC 5321 §5.1 MX selection).
 *
 * A pure function: the caller (delivery orchestration) does every lookup
 * and hands the results in; policy_decide() performs no I/O, keeps no
 * state and only reads its input.  The orchestration sequence is:
 *
 *   1. MX lookup for the next-hop domain.  policy_hosts() turns the answer
 *      into the ordered host list (implicit MX = the domain itself when
 *      the domain has no MX records).  0 hosts: skip to step 4, the
 *      decision says why (null MX, NXDOMAIN, bogus/SERVFAIL MX, ...).
 *   2. A and AAAA for every host; store the results in hosts[i].a/.aaaa.
 *   3. TLSA: while policy_tlsa_next(in, i, qname, ..) returns 1, look
 *      qname up (type TLSA) and store the result in the next free slot of
 *      hosts[i].tlsa[].  It returns 0 for hosts that must not be asked
 *      (insecure host, insecure MX RRset, level other than dane/dane-only)
 *      - an insecure host never gets a TLSA query (DESIGN.md).
 *      If policy_want_sts(in): fetch/consult the MTA-STS policy into in->sts.
 *   4. policy_decide(in, &d): d.action says deliver/defer/fail, d.hosts the
 *      candidates in order with the TLS requirement of each; skipped hosts
 *      are listed too (skip != 0) with the reason and TLSRPT result-type.
 *      decision_free(&d) afterwards.
 *
 * The dns_result pointers are borrowed (never freed here).  All strings
 * in a decision are owned by it.
 */
#ifndef DR_POLICY_H
#define DR_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"		/* enum policy_level */
#include "dane.h"		/* struct tlsa_rr */
#include "dns.h"		/* struct dns_result, dns_status/security */

/* At most this many MX hosts are considered (lowest preference first). */
#define POLICY_MAX_HOSTS	16
/* TLSA candidates per host (RFC 7672 §2.2.3): CNAME-expanded, original. */
#define POLICY_MAX_TLSA		2

/* ---- input ------------------------------------------------------------ */

/* One MX host (or the next-hop domain itself for an implicit MX). */
struct policy_host {
	char *name;			/* as in the MX record: lower case, no
					 * trailing dot (owned by the array
					 * from policy_hosts()) */
	uint16_t pref;
	int implicit;			/* 1: no MX RRset, host = the domain */
	const struct dns_result *a;	/* NULL: not looked up */
	const struct dns_result *aaaa;	/* NULL: not looked up */
	/* TLSA lookups in policy_tlsa_next() order; NULL: not done. */
	const struct dns_result *tlsa[POLICY_MAX_TLSA];
};

enum sts_mode {
	STS_MODE_NONE = 0,		/* no (valid) policy */
	STS_MODE_TESTING,		/* report, deliver anyway */
	STS_MODE_ENFORCE,		/* TLS + WebPKI + mx patterns, no fallback */
};

/* A valid MTA-STS policy (fresh or cached), RFC 8461 §3.2. */
struct policy_sts {
	enum sts_mode mode;
	const char *const *mx;		/* "mail.example.com", "*.example.net" */
	size_t nmx;
	const char *const *lines;	/* the policy text, one line each, for
					 * TLSRPT policy-string */
	size_t nlines;
	/*
	 * Non-NULL when the domain announced a policy but none could be
	 * used (and no cached one exists): the RFC 8460 result-type,
	 * "sts-policy-fetch-error", "sts-policy-invalid" or
	 * "sts-webpki-invalid".  mode is then ignored (treated as NONE).
	 */
	const char *failure;
};

struct policy_input {
	const char *domain;		/* next-hop domain, lower case */
	int port;			/* destination port (smtp_port), for
					 * the TLSA owner "_port._tcp.host" */
	enum policy_level level;	/* table entry, else default_policy */
	const char *const *match;	/* table "match=" names (verify/secure),
					 * NULL: the level's default */
	size_t nmatch;
	const struct dns_result *mx;	/* MX lookup of domain (required) */
	struct policy_host *hosts;	/* from policy_hosts(), filled in */
	size_t nhosts;
	const struct policy_sts *sts;	/* NULL: none known */
};

/* ---- output ----------------------------------------------------------- */

enum policy_action {
	POLICY_DELIVER = 0,		/* try hosts[] in order */
	POLICY_DEFER,			/* temporary: try again later */
	POLICY_FAIL,			/* permanent: bounce with a DSN */
};

/* What the SMTP client must do with TLS on a connection to one host. */
enum policy_tls {
	PTLS_NONE = 0,		/* cleartext; do not even offer STARTTLS */
	PTLS_MAY,		/* STARTTLS if offered, unauthenticated;
				 * cleartext if not offered or it fails */
	PTLS_ENCRYPT,		/* mandatory TLS, unauthenticated */
	PTLS_DANE,		/* mandatory TLS, authenticated by tlsa[] */
	PTLS_VERIFY,		/* mandatory TLS, WebPKI chain + names[] */
};

/* TLSRPT policy-type (RFC 8460 §4.4). */
enum policy_rpt_type {
	RPT_NO_POLICY = 0,	/* "no-policy-found" */
	RPT_TLSA,		/* "tlsa" */
	RPT_STS,		/* "sts" */
};

struct decision_host {
	char *name;			/* MX host name (from the MX record) */
	uint16_t pref;
	int implicit;			/* implicit MX (the domain itself) */
	struct dns_addr *addrs;		/* A then AAAA */
	size_t naddrs;

	enum policy_tls tls;
	/*
	 * PTLS_DANE: the usable records (SSL_dane_tlsa_add), the TLSA base
	 * domain (SSL_dane_enable base and SNI) and the extra reference
	 * names for DANE-TA (see policy.c: the MX host name and its CNAME
	 * expansion; never the next-hop domain unless it is the host).
	 * PTLS_VERIFY: names = the names the certificate must match
	 * (X509_VERIFY_PARAM hosts; a leading "." matches any subdomain).
	 */
	struct tlsa_rr *tlsa;
	size_t ntlsa;
	char *tlsa_base;		/* PTLS_DANE (also for unusable sets) */
	char *sni;			/* server name to send, NULL: none */
	char **names;
	size_t nnames;
	/*
	 * MTA-STS testing: deliver as PTLS_MAY but also verify against
	 * names[] (WebPKI) to report the outcome; sts_mismatch: the host
	 * does not match the policy's mx patterns (report only).
	 */
	int sts_testing;
	int sts_mismatch;

	/* Not a candidate: why, and whether that is only temporary. */
	int skip;
	int skip_temp;			/* 1: a retry may help (DNS failure) */
	const char *skip_dsn;		/* enhanced status for the skip */
	char *reason;			/* skip reason, or how TLS was chosen */

	/* TLSRPT. */
	enum policy_rpt_type rpt_type;
	char *rpt_domain;		/* policy-domain: the next-hop domain */
	char **rpt_strings;		/* policy-string: TLSA RRs or STS lines */
	size_t nrpt_strings;
	/*
	 * RFC 8460 result-type to record for this host before any
	 * connection: for skipped hosts "dnssec-invalid", "dane-required",
	 * "validation-failure" ...; for a PTLS_ENCRYPT host whose TLSA
	 * records are all unusable "tlsa-invalid"; MTA-STS failures from
	 * policy_sts.failure.  NULL: nothing to record beforehand.
	 */
	const char *rpt_failure;
};

struct decision {
	enum policy_action action;
	enum policy_level level;	/* the level that was applied */
	char *reason;			/* DEFER/FAIL: for the log and DSN */
	const char *dsn;		/* enhanced status: "5.1.10", "4.7.5"... */
	/* Domain-level TLSRPT result-type when nothing could be tried
	 * (bogus MX RRset: "dnssec-invalid"), else NULL. */
	const char *rpt_failure;
	int mx_secure;			/* MX RRset (or its denial) validated */
	struct decision_host *hosts;	/* every host considered, in order */
	size_t nhosts;
	size_t ncandidates;		/* hosts with skip == 0 */
};

/* ---- functions -------------------------------------------------------- */

/*
 * Step 1: the host list from in->mx (and in->domain), sorted by
 * preference (stable; equal preferences keep the MX answer's order, the
 * caller may shuffle them), duplicates removed, at most POLICY_MAX_HOSTS.
 * Returns the number of hosts (*hosts allocated, release with
 * policy_hosts_free()) or 0 when there is nothing to look up: the MX
 * lookup failed, was bogus, NXDOMAIN or a null MX (policy_decide() then
 * explains).
 */
size_t policy_hosts(const struct policy_input *in, struct policy_host **hosts);
void policy_hosts_free(struct policy_host *hosts, size_t n);

/* Whether host i's address RRsets are secure and DANE may apply (level
 * dane/dane-only and a secure MX RRset or secure implicit MX). */
int policy_want_tlsa(const struct policy_input *in, size_t i);

/*
 * Step 3: the next TLSA owner name to look up for host i, written to
 * qname ("_25._tcp.mx.example.org").  1: look it up and store the result
 * in hosts[i].tlsa[k] (k = number already stored); 0: no (more) lookups.
 * RFC 7672 §2.2.3: with a secure CNAME chain the expanded name first, the
 * original name only if the expanded one has no TLSA records.
 */
int policy_tlsa_next(const struct policy_input *in, size_t i, char *qname,
    size_t qlen);

/* Whether an MTA-STS policy matters for this delivery (level dane). */
int policy_want_sts(const struct policy_input *in);

/* RFC 8461 §4.1 mx pattern match: exact, or "*.example.net" matching
 * exactly one leftmost label.  Case-insensitive. 1 match, 0 not. */
int policy_sts_mx_match(const char *pattern, const char *host);

/* Step 4.  Always fills *d (never fails); see struct decision. */
void policy_decide(const struct policy_input *in, struct decision *d);
void decision_free(struct decision *d);

const char *policy_tls_name(enum policy_tls t);		/* "dane", "may", ... */
const char *policy_action_name(enum policy_action a);	/* "deliver", ... */
const char *policy_rpt_type_name(enum policy_rpt_type t); /* "tlsa", ... */

/*
 * Generated TLSRPT reports must reach the domain despite TLS failures
 * (RFC 8460 §3).  For a message with is_report set, the delivery engine
 * asks here whether host h may be tried (also a host the policy skipped
 * for a TLS or DANE reason, as long as its addresses are known) and uses
 * opportunistic TLS (tlsrpt_record.h: tlsrpt_report_tls_mode()).
 * tlsrpt_report_deliverable(): whether a decision that is not "deliver"
 * still has such a host.  (Moved here from tlsrpt.c: they only read the
 * decision.)
 */
int tlsrpt_report_host_ok(const struct decision *d,
    const struct decision_host *h);
int tlsrpt_report_deliverable(const struct decision *d);

#endif
