/*
 * mta_sts.h - SMTP MTA Strict Transport Security (RFC 8461).
 *
 * Two layers:
 *
 * 1. Pure parsers (src/mta_sts.c), no I/O: the `_mta-sts` TXT record
 *    (§3.1), the policy body (§3.2), mx pattern matching (§4.1) and
 *    domain names to A-labels (IDNA2008 via libidn2).
 *
 * 2. The manager (src/mta_sts_mgr.c): per destination domain, the cached
 *    policy (SQLite, src/mta_sts_cache.c), the TXT lookup through
 *    danerelay's resolver, the HTTPS fetch (src/https.c) when there is
 *    no valid cached policy or the TXT id changed, background refresh
 *    before expiry, and the operator's `danerelay mta-sts` command.
 *
 * Lifetimes: a parsed struct mta_sts_policy owns its strings
 * (mta_sts_policy_clear()); an answer from mta_sts_lookup() is owned by
 * the callback's receiver (mta_sts_answer_free()).
 */
#ifndef DR_MTA_STS_H
#define DR_MTA_STS_H

#include <stddef.h>
#include <time.h>

#include "policy.h"		/* struct policy_sts */

struct event_base;
struct resolver;
struct config;
struct dns_txt;

#define MTA_STS_ID_MAX		32		/* §3.1: 1*32(ALPHA / DIGIT) */
#define MTA_STS_MAX_AGE		31557600	/* §3.2: about one year */
#define MTA_STS_MAX_BODY	65536		/* §3.3: 64 KiB */
#define MTA_STS_MAX_MX		1000		/* mx lines kept at most */
#define MTA_STS_PATH		"/.well-known/mta-sts.txt"

/* ---- pure parsers ----------------------------------------------------- */

/*
 * One TXT record (character-strings already concatenated, len bytes,
 * may hold NULs).  Returns 1 and the id (NUL-terminated) for a valid
 * STSv1 record, 0 if the record is not an STS record at all (does not
 * start with "v=STSv1" followed by *WSP ";"), -1 for an STS record that
 * is malformed (reason in err).
 */
int mta_sts_txt_parse(const char *rec, size_t len,
    char id[MTA_STS_ID_MAX + 1], char *err, size_t errlen);

/*
 * The RRset of _mta-sts.<domain> (§3.1): records that are not STS
 * records are discarded; exactly one must remain and be valid.  1 with
 * the id; 0 no STS record; -1 several STS records or a malformed one
 * (reason in err).  Both 0 and -1 mean "no policy announced".
 */
int mta_sts_txt_select(const struct dns_txt *txt, size_t n,
    char id[MTA_STS_ID_MAX + 1], char *err, size_t errlen);

enum mta_sts_mode {
	MTA_STS_MODE_NONE = 0,		/* "none": no active policy */
	MTA_STS_MODE_TESTING,
	MTA_STS_MODE_ENFORCE,
};

struct mta_sts_policy {
	enum mta_sts_mode mode;
	long long max_age;		/* seconds, 0 .. MTA_STS_MAX_AGE */
	char **mx;			/* lower case, de-duplicated, in order */
	size_t nmx;
	char **lines;			/* the body's lines without CR/LF */
	size_t nlines;
};

/*
 * Parse a policy body (§3.2).  LF and CRLF line ends; the first line
 * must be "version: STSv1"; field names and the values of version, mode,
 * max_age and mx are checked strictly (max_age 1*10DIGIT <= 31557600;
 * mx an A-label domain, "*." only as the whole leftmost label); the
 * first occurrence of version, mode and max_age counts; every other line
 * (unknown or malformed extension fields, blank lines) is ignored.
 * enforce and testing need at least one mx.  Bodies over
 * MTA_STS_MAX_BODY are refused.  0 ok (*p filled, mta_sts_policy_clear()
 * it), -1 invalid with a reason in err (*p empty).
 */
int mta_sts_policy_parse(const char *body, size_t len,
    struct mta_sts_policy *p, char *err, size_t errlen);
void mta_sts_policy_clear(struct mta_sts_policy *p);
const char *mta_sts_mode_name(enum mta_sts_mode m); /* "enforce", ... */

/* Whether s is a valid policy mx pattern ("mx.example.com",
 * "*.example.net"): A-labels (LDH), no trailing dot.  1 yes, 0 no. */
int mta_sts_mx_pattern_valid(const char *s);

/*
 * §4.1: whether MX host name host (trailing dot allowed, any case,
 * U-labels converted to A-labels) matches one of the patterns.  Invalid
 * patterns and invalid host names never match.  1 match, 0 not.
 */
int mta_sts_mx_match(const char *const *patterns, size_t n, const char *host);

/*
 * A domain name as A-labels, lower case, no trailing dot ("Bücher.example."
 * -> "xn--bcher-kva.example").  0 ok, -1 not a valid domain name.
 */
int mta_sts_domain_ascii(const char *in, char *out, size_t outlen);

/* ---- the manager ------------------------------------------------------ */

struct mta_sts;

/*
 * Opens (creates) <state_dir>/mta-sts.db and arms the background
 * refresh.  r is borrowed (the delivery engine's resolver).  NULL + err.
 */
struct mta_sts *mta_sts_new(struct event_base *base, struct resolver *r,
    const struct config *cf, char *err, size_t errlen);
/* Cancels every fetch and lookup (no callbacks).  NULL ok. */
void mta_sts_free(struct mta_sts *m);
/* New configuration (ca_file, https_port, mta_sts).  mta_sts_new() and
 * mta_sts_reload() take a reference on cf (config_ref()). */
void mta_sts_reload(struct mta_sts *m, const struct config *cf);
/* Policies in the owner's cache (the metrics gauge): 0 for NULL, a
 * proxy, or when the cache cannot be read (logged).  On the owner's
 * loop. */
long long mta_sts_policies(struct mta_sts *m);

/* What a lookup found. */
enum mta_sts_source {
	MTA_STS_SRC_NONE = 0,	/* no policy (none announced / none usable) */
	MTA_STS_SRC_CACHE,	/* a valid cached policy */
	MTA_STS_SRC_FETCHED,	/* fetched just now */
};

struct mta_sts_answer {
	/*
	 * For policy_input.sts: use &sts when mode != STS_MODE_NONE or
	 * sts.failure != NULL, else no policy (NULL).  Pointers inside
	 * point into this answer.
	 */
	struct policy_sts sts;
	enum mta_sts_source source;
	enum mta_sts_mode mode;		/* of the policy found (none too) */
	char id[MTA_STS_ID_MAX + 1];	/* policy id, "" if none */
	time_t fetched_at, expires_at;	/* 0 if no policy */
	char note[384];			/* why, for the log and probe */
	struct mta_sts_policy policy;	/* storage */
};

typedef void mta_sts_cb(struct mta_sts_answer *ans, void *arg);

struct mta_sts_lookup;

/*
 * The policy for domain (lower case, no trailing dot): TXT lookup, the
 * cache, and - when there is no valid cached policy or the TXT id
 * changed - a fetch that this lookup waits for (bounded; concurrent
 * lookups for one domain share one fetch).  The callback runs exactly
 * once, never from within mta_sts_lookup(), and owns the answer
 * (mta_sts_answer_free()).  NULL only if m is NULL or the name is bad.
 */
struct mta_sts_lookup *mta_sts_lookup(struct mta_sts *m, const char *domain,
    mta_sts_cb *cb, void *arg);
/* Cancel before the callback (no callback).  NULL ok. */
void mta_sts_lookup_cancel(struct mta_sts_lookup *l);

/*
 * Several workers share one manager (README "Architecture"): the owner
 * runs on one loop; each other worker gets a proxy.  A proxy's lookup is
 * posted to the owner's loop with post_owner(owner_ctx, fn, arg), runs
 * there like the owner's own (one TXT query and one fetch per domain for
 * everybody, one cache), and its answer comes back to the proxy's loop
 * with post_back(back_ctx, fn, arg); both must run fn(arg) on that loop
 * later, from any thread.  A cancelled proxy lookup's answer is dropped.
 * mta_sts_reload() of a proxy does nothing; free proxies before the
 * owner.
 */
/* Writes to the SQLite cache run on wq (a second connection), completing
 * on port's loop, the manager's; NULL, NULL: on the loop.  Reads see
 * writes not yet done. */
/*
 * The policy fetch's HTTPS request (RFC 8461 §3.3): GET
 * https://mta-sts.DOMAIN:port/.well-known/mta-sts.txt, 200 only (no
 * redirect), text/plain, at most MTA_STS_MAX_BODY octets.  Fills p's
 * rules and host (host[hostlen] holds the name p points to); the caller
 * sets base, ssl_ctx, resolver and the timeouts.  One definition, so
 * `danerelay check` fetches as delivery does.
 */
struct https_params;
void mta_sts_https_params(struct https_params *p, char *host,
    size_t hostlen, const char *domain, int port);

struct workq;
struct workq_port;
void mta_sts_set_workq(struct mta_sts *m, struct workq *wq,
    struct workq_port *port);

typedef void mta_sts_post(void *ctx, void (*fn)(void *), void *arg);
struct mta_sts *mta_sts_proxy_new(struct mta_sts *owner,
    mta_sts_post *post_owner, void *owner_ctx, mta_sts_post *post_back,
    void *back_ctx);
void mta_sts_answer_free(struct mta_sts_answer *ans);
const char *mta_sts_source_name(enum mta_sts_source s);

/* For `danerelay mta-sts refresh` (cli_mta_sts.c): stop m's background
 * refresh and look domain up, fetching even when the cached policy's id
 * is current.  As mta_sts_lookup(). */
struct mta_sts_lookup *mta_sts_refresh(struct mta_sts *m, const char *domain,
    mta_sts_cb *cb, void *arg);
/* state_backend = postgresql, for `danerelay mta-sts` (blocking): the
 * shared cache's policies (domain NULL: all; cb per entry; the count or
 * -1), a policy into it (0 / -1), a domain out of it (rows or -1). */
struct mta_sts_entry;
int mta_sts_shared_foreach(const struct config *cf, const char *domain,
    int (*cb)(const struct mta_sts_entry *e, void *arg), void *arg,
    char *err, size_t errlen);
int mta_sts_shared_put(const struct config *cf,
    const struct mta_sts_entry *e, char *err, size_t errlen);
int mta_sts_shared_forget(const struct config *cf, const char *domain,
    char *err, size_t errlen);
/* t as "2026-01-02T03:04:05Z" ("-" for 0) in buf; returns buf. */
const char *mta_sts_when(time_t t, char *buf, size_t len);


#endif
