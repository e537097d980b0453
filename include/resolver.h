/*
 * resolver.h - asynchronous DNS lookups with DNSSEC validation: one
 * libunbound context driven from the libevent loop (RFC 4033-4035 states
 * as libunbound reports them).
 *
 * resolver_new() builds the validating resolver: the trust anchor from
 * cf->trust_anchor_file (refused when there is none, see below) (a static DS/DNSKEY file such as Debian's
 * /usr/share/dns/root.key), then cf->dns_config (a libunbound config
 * file: forwarders, stub zones, extra trust anchors) if set.  No
 * resolv.conf: danerelay validates itself and forwards only when
 * dns_config says so.
 *
 * resolver_query() starts one lookup and returns a handle; the callback
 * runs exactly once from the event loop (never from within
 * resolver_query()) unless the query is cancelled first.  The handle is
 * valid until the callback starts or resolver_cancel() returns.  After
 * resolver_cancel() or resolver_free() no callback fires.  Callbacks may
 * start and cancel queries and may call resolver_free().
 *
 * The callback OWNS the result and releases it with dns_result_free().
 *
 * Answers that are OK, NXDOMAIN or NODATA and SECURE or INSECURE are
 * kept for their TTL (at most 300 s) and then served without asking
 * libunbound again (res->cached = 1, ttl counted down); bogus answers
 * and failures never are.
 *
 * Reading a result: check `status` first.  Only DNS_OK carries records.
 * `security` says how far the answer can be trusted: DNS_SEC_BOGUS means
 * validation failed (never treat it as insecure; status is then
 * DNS_TEMPFAIL and there are no records), DNS_SEC_UNKNOWN means there was
 * no usable answer at all (SERVFAIL, timeout, network, malformed data).
 * NXDOMAIN and NODATA carry SECURE (denial proven) or INSECURE.
 */
#ifndef DR_RESOLVER_H
#define DR_RESOLVER_H

#include <stddef.h>
#include <stdint.h>

#include "dns.h"		/* the result types */

struct event_base;
struct config;
struct resolver;
struct resolver_query;

/* Default overall guard per query (libunbound has its own timeouts). */
#define RESOLVER_TIMEOUT	30

typedef void resolver_cb(struct dns_result *res, void *arg);

/*
 * Trust anchors (issue #23): resolver_new() refuses, and
 * resolver_check_config() reports without building a resolver (start-up
 * and SIGHUP checks), a configuration that would validate nothing: no
 * anchor at all (no trust_anchor_file and no trust-anchor,
 * trust-anchor-file, auto-trust-anchor-file or trusted-keys-file in
 * dns_config), or an anchor file without a DS or DNSKEY record (empty,
 * truncated), or an inline trust-anchor that is not one.  0 ok, -1 with
 * a reason naming the file in err.
 */
int resolver_check_config(const struct config *cf, char *err, size_t errlen);
/* DS and DNSKEY records in a zone-file-format anchor file (ldns parser):
 * >= 0, or -1 unreadable / syntax error with the line in err. */
int resolver_anchor_count(const char *path, char *err, size_t errlen);
/* 1 if name is a presentation-form name resolver_query() accepts. */
int resolver_name_ok(const char *name);

/* NULL with a reason in err on failure. */
struct resolver *resolver_new(struct event_base *base,
    const struct config *cf, char *err, size_t errlen);
/* Cancels every outstanding query (no callbacks) and frees.  NULL ok. */
void resolver_free(struct resolver *r);
/* Overall guard per query in seconds (default RESOLVER_TIMEOUT). */
void resolver_set_timeout(struct resolver *r, int secs);

/*
 * Start a lookup of name (presentation form, trailing dot optional,
 * RFC 1035 escapes allowed) for rrtype (one of the DNS_T_* above).  NULL
 * with a reason in err if it could not be started (malformed name: empty
 * label, label over 63 or name over 255 octets; unsupported type;
 * libunbound error).
 */
struct resolver_query *resolver_query(struct resolver *r, const char *name,
    int rrtype, resolver_cb *cb, void *arg, char *err, size_t errlen);
void resolver_cancel(struct resolver_query *q);
/* Number of queries outstanding (for tests and shutdown). */
size_t resolver_pending(const struct resolver *r);
/* Queries answered from the resolver's own cache so far. */
unsigned long resolver_cache_hits(const struct resolver *r);

/*
 * Synchronous lookup for the CLI: runs the resolver's event base until the
 * answer is in.  Only for programs whose event base has nothing else to
 * do; the daemon never calls it, and it must not be called from a
 * resolver callback.  0 with *out set (caller frees), -1 with a reason in
 * err if the query could not be started.
 */
int resolver_query_sync(struct resolver *r, const char *name, int rrtype,
    struct dns_result **out, char *err, size_t errlen);

void dns_result_free(struct dns_result *res);
const char *dns_status_name(enum dns_status s);
const char *dns_security_name(enum dns_security s);
/* "MX", "TLSA", ... or NULL; and back (case-insensitive), -1 unknown. */
const char *dns_type_name(int rrtype);
int dns_type_parse(const char *s);

/*
 * Decode one rdata of res->qtype and append it to res (strict bounds:
 * every length checked).  0 ok, -1 malformed with a reason in err.  Used
 * by the resolver on libunbound's uncompressed rdata; exposed for the
 * fuzzer and unit tests.  dns_result_finish() sets null_mx after the
 * last record.
 */
int dns_result_add_rdata(struct dns_result *res, const uint8_t *rd,
    size_t len, char *err, size_t errlen);
void dns_result_finish(struct dns_result *res);
/* Wire-format name (uncompressed) to presentation form, lower case, no
 * trailing dot ("" for the root).  Returns octets consumed, -1 bad. */
int dns_name_from_wire(const uint8_t *p, size_t len, char *out,
    size_t outlen);

#endif
