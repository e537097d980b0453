/*
 * resolver.c - asynchronous DNSSEC-validating lookups (stub; being
 * written by E).
 */
#include <stdlib.h>

#include "config.h"
#include "resolver.h"
#include "util.h"

struct resolver *
resolver_new(struct event_base *base, const struct config *cf, char *err,
    size_t errlen)
{
	dr_strlcpy(err, "resolver not implemented yet", errlen);
	return NULL;
}

void resolver_free(struct resolver *r) { }
void resolver_set_timeout(struct resolver *r, int secs) { }

struct resolver_query *
resolver_query(struct resolver *r, const char *name, int rrtype,
    resolver_cb *cb, void *arg, char *err, size_t errlen)
{
	dr_strlcpy(err, "resolver not implemented yet", errlen);
	return NULL;
}

void resolver_cancel(struct resolver_query *q) { }
size_t resolver_pending(const struct resolver *r) { return 0; }

int
resolver_query_sync(struct resolver *r, const char *name, int rrtype,
    struct dns_result **out, char *err, size_t errlen)
{
	dr_strlcpy(err, "resolver not implemented yet", errlen);
	return -1;
}

void dns_result_free(struct dns_result *res) { free(res); }
const char *dns_status_name(enum dns_status s) { return "?"; }
const char *dns_security_name(enum dns_security s) { return "?"; }
const char *dns_type_name(int rrtype) { return NULL; }
int dns_type_parse(const char *s) { return -1; }

int
dns_result_add_rdata(struct dns_result *res, const uint8_t *rd, size_t len,
    char *err, size_t errlen)
{
	dr_strlcpy(err, "not implemented", errlen);
	return -1;
}

void dns_result_finish(struct dns_result *res) { }
int dns_name_from_wire(const uint8_t *p, size_t len, char *out,
    size_t outlen) { return -1; }
