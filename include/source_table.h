/*
 * source_table.h - the source address and HELO name per sender domain
 * (`source_table`, issue #24): a gateway that sends for several
 * senders' domains sends each one from its own address, saying its own
 * name, so that each keeps its own reputation at the receivers.
 *
 *	# sender-domain	address[,address]		helo-name
 *	example.com	192.0.2.25,2001:db8::25		mail.example.com
 *	example.net	192.0.2.26			out.example.net
 *	*		192.0.2.10			gw.example.org
 *
 * The sender domain is that of the envelope sender (MAIL FROM), matched
 * exactly (any case, U-labels or A-labels); `*` is the default, also for
 * the null sender (bounces).  No line and no `*`: smtp_bind_address and
 * myhostname, as without a table.  Each line has one or two addresses, at
 * most one IPv4 and one IPv6: a message whose line has no address of an
 * MX address's family is not sent to that MX address (it never leaves
 * from another address).  Every address must be one of this host's
 * (source_table_load() binds a socket to it), so a typo is refused at
 * start and by `danerelayd -n`, as "file:line: reason".
 *
 * Lifetime: reference-counted like policy_table.h; a delivery job holds
 * a reference while it uses an entry.  Thread-safe once loaded.
 */
#ifndef DR_SOURCE_TABLE_H
#define DR_SOURCE_TABLE_H

#include <stddef.h>

#define SOURCE_TABLE_MAX_LINE	1024		/* bytes per line */
#define SOURCE_TABLE_MAX_SIZE	(4 * 1024 * 1024)	/* bytes per file */

struct source_entry {
	char *domain;			/* lower case, A-labels; "*" default */
	char *addr4;			/* "192.0.2.25" or NULL */
	char *addr6;			/* "2001:db8::25" or NULL */
	char *helo;			/* the EHLO/HELO name */
	int line;			/* where it was written */
};

struct source_table;

/* Read and check path (each address bound once to prove it local).
 * NULL with "file:line: reason" (or "file: reason") in err. */
struct source_table *source_table_load(const char *path, char *err,
    size_t errlen);
/* Same from a buffer (need not be NUL-terminated), name used in the
 * messages; check_local 0 skips the local-address check (tests, the
 * fuzzer). */
struct source_table *source_table_parse(const char *buf, size_t len,
    const char *name, int check_local, char *err, size_t errlen);
struct source_table *source_table_ref(struct source_table *t);
void source_table_free(struct source_table *t);

/* The entry for an envelope sender ("user@domain", or "" for the null
 * sender): its domain's line, else the `*` line, else NULL. */
const struct source_entry *source_table_lookup(const struct source_table *t,
    const char *sender);
/* Every entry, in domain order ("*" first), for `danerelay check`. */
size_t source_table_count(const struct source_table *t);
const struct source_entry *source_table_entry(const struct source_table *t,
    size_t i);

#endif
