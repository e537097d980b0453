/*
 * check.h - `danerelay check`: audit the operator's own sending setup
 * (issue #18): the relay's identity (myhostname, outbound addresses,
 * PTR, HELO SPF, DNS blocklists) and, per domain, MX, SPF, DKIM, DMARC,
 * MTA-STS, TLSRPT, DNSSEC/DANE and CAA (check.c; SPF evaluation in
 * check_spf.c).
 *
 * Every lookup goes through danerelay's validating resolver, all of a
 * step at once (asynchronously, each with the resolver's guard timeout);
 * the policy fetches and STARTTLS handshakes run in the same event loop
 * with their own timeouts.  A domain whose servers do not answer ends
 * with "fail"/"warn" lines once those timeouts have passed.
 */
#ifndef DR_CHECK_H
#define DR_CHECK_H

#include <stddef.h>

struct config;
struct dkim_table;

enum check_status {
	CHECK_OK = 0,
	CHECK_INFO,
	CHECK_WARN,
	CHECK_FAIL,
};
/* "ok", "info", "warn", "fail" */
const char *check_status_name(enum check_status s);

struct check_item {
	enum check_status status;
	char	*domain;	/* the domain, or myhostname for the relay */
	char	*check;		/* "ptr", "spf", "dkim", ... */
	char	*reason;
	char	*fix;		/* the record or setting to change, or NULL */
};

/*
 * The relay's sending identities: one (address, HELO name) per source
 * the relay sends from: each address of each source_table line with its
 * HELO name (domain: the line's sender domain, or "*"), and, unless a
 * "*" line covers every other sender, the default one (domain ""):
 * smtp_bind_address, or else the source address the kernel picks for an
 * outbound IPv4 / IPv6 connection (no packet is sent), with myhostname.
 * A table that does not parse gives the default identities only (the
 * daemon's -n names the line).
 */
struct check_identity {
	char	addr[64];
	char	helo[256];
	char	domain[256];	/* the senders it serves: "" default */
};
#define CHECK_MAX_IDENT	64
size_t check_identities(const struct config *cf, struct check_identity *out,
    size_t max);

struct check_opts {
	const struct config *cf;
	struct dkim_table *dkim;	/* NULL: no key table */
	long long dkim_max_age;		/* seconds */
	int timeout;			/* seconds per lookup, fetch, session */
	int relay;			/* also check the relay's identity */
};

struct check_report;

/* Run every check of the domains (lower case).  NULL with a reason in
 * err if the checks could not start (resolver, TLS context). */
struct check_report *check_run(const struct check_opts *o,
    const char *const *domains, size_t ndomains, char *err, size_t errlen);
size_t check_report_count(const struct check_report *r);
const struct check_item *check_report_item(const struct check_report *r,
    size_t i);
/* The worst status in the report. */
enum check_status check_report_worst(const struct check_report *r);
void check_report_free(struct check_report *r);

#endif
