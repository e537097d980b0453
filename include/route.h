/*
 * route.h - from a destination domain to a security decision: the DNS
 * lookups in the order policy.h prescribes (MX, then A/AAAA of every
 * host, then TLSA only where DANE may apply), then policy_decide().
 *
 * When sts (the MTA-STS manager, mta_sts.h) is given and cf->mta_sts is
 * on, a domain at level dane whose hosts lack DANE gets its MTA-STS
 * policy as the last step (RFC 8461), waiting boundedly for a first-time
 * fetch; route_sts() tells what was found.
 *
 * The domain is looked up in its A-label form (idn.h): MX, policy
 * table, MTA-STS and TLSRPT; a name that is not a valid IDN is decided
 * at once (POLICY_FAIL, 5.1.2).  An MX host with one of our own listen
 * addresses, and every worse MX, is dropped (own_addr.h): none left is
 * a mail loop (POLICY_FAIL, 5.4.6).
 *
 * Used by the delivery engine and by `danerelay probe`.  route_start()
 * never calls back from within itself; the callback runs once, after
 * which route_decision()/route_input() are valid until route_free().
 * route_free() before the callback cancels every lookup (no callback).
 *
 * route_start() takes a reference on cf (config_ref()) and pt
 * (policy_table_ref(), pt may be NULL) and route_free() drops them, so
 * the caller may drop its own at any time (SIGHUP) while the route waits.
 */
#ifndef DR_ROUTE_H
#define DR_ROUTE_H

#include <stddef.h>

struct event_base;
struct resolver;
struct config;
struct policy_table;
struct decision;
struct policy_input;
struct policy_sts;
struct mta_sts;
struct mta_sts_answer;

struct route;
typedef void route_cb(struct route *rt, void *arg);

struct route *route_start(struct event_base *base, struct resolver *r,
    const struct config *cf, struct policy_table *pt,
    struct mta_sts *sts, const char *domain, route_cb *cb, void *arg);
const struct decision *route_decision(const struct route *rt);
const struct policy_input *route_input(const struct route *rt);
/* The domain as looked up: lower case, A-labels (idn.h). */
const char *route_domain(const struct route *rt);
/* Where the level came from: "policy_file line N" or "default_policy". */
const char *route_level_source(const struct route *rt);
/* The MTA-STS answer used (NULL: none was needed or asked for). */
const struct mta_sts_answer *route_sts(const struct route *rt);
void route_free(struct route *rt);

#endif
