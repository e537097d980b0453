/*
 * policy_table.h - the per-destination TLS policy table (`policy_file`).
 *
 * Postfix-style lines, one destination each:
 *
 *	# comment
 *	example.org		dane-only
 *	partner.example		verify	match=mx1.partner.example:mx2.partner.example
 *	.example.net		encrypt		(every subdomain of example.net)
 *	legacy.example		may
 *
 * `domain level [option ...]`.  A domain matches itself only; a leading
 * dot matches every subdomain (not the domain itself).  Lookup: the exact
 * domain first, then the closest ".parent" entry; no match: the caller
 * uses default_policy.  Levels are those of policy_level_parse().
 * Options: `match=name[:name...]` for verify/secure (Postfix keywords
 * "hostname", "nexthop", "dot-nexthop" and names, a leading dot matching
 * subdomains); `max_connections=N`, `max_messages_per_connection=N` and
 * `rate=N/s|m|h` (issue #24: limits of the destination's site, where
 * two domains of one site disagree the stricter wins; connlimit.h).
 * Errors are "file:line: reason".
 */
#ifndef DR_POLICY_TABLE_H
#define DR_POLICY_TABLE_H

#include <stddef.h>

#include "config.h"

#define POLICY_TABLE_MAX_LINE	4096		/* bytes per line */
#define POLICY_TABLE_MAX_SIZE	(16 * 1024 * 1024)	/* bytes per file */
#define POLICY_TABLE_MAX_MATCH	32		/* match= names */

struct policy_entry {
	char *domain;			/* lower case, ".parent" for subdomains */
	enum policy_level level;
	char **match;			/* match= names, NULL if none */
	size_t nmatch;
	/* limits of the destination's site (issue #24, connlimit.h);
	 * 0 = not set here */
	int max_connections;		/* max_connections=N */
	int max_msgs;			/* max_messages_per_connection=N */
	struct rate rate;		/* rate=N/s|m|h */
	int line;			/* where it was written */
};

struct policy_table;

/* NULL with "file:line: reason" (or "file: reason") in err. */
struct policy_table *policy_table_load(const char *path, char *err,
    size_t errlen);
/* Same from a buffer (need not be NUL-terminated); name is used in
 * messages.  For tests and the fuzzer. */
struct policy_table *policy_table_parse(const char *buf, size_t len,
    const char *name, char *err, size_t errlen);
/* Reference counting (OpenSSL's up_ref/free style): load/parse return a
 * table with one reference, policy_table_ref() adds one and returns t,
 * policy_table_free() drops one and frees the table with the last.
 * Entries and their strings stay valid while the holder's reference
 * lasts.  Both accept NULL; thread-safe. */
struct policy_table *policy_table_ref(struct policy_table *t);
void policy_table_free(struct policy_table *t);

/* The entry for domain (any case, trailing dot ignored, U-labels or
 * A-labels) or NULL. */
const struct policy_entry *policy_table_lookup(const struct policy_table *t,
    const char *domain);
size_t policy_table_count(const struct policy_table *t);

#endif
