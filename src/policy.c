/*
 * policy.c - the delivery security decision.  Stub: being written.
 */
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "util.h"

size_t
policy_hosts(const struct policy_input *in, struct policy_host **hosts)
{
	(void)in;
	*hosts = NULL;
	return 0;
}

void
policy_hosts_free(struct policy_host *hosts, size_t n)
{
	size_t i;

	if (hosts == NULL)
		return;
	for (i = 0; i < n; i++)
		free(hosts[i].name);
	free(hosts);
}

int
policy_want_tlsa(const struct policy_input *in, size_t i)
{
	(void)in; (void)i;
	return 0;
}

int
policy_tlsa_next(const struct policy_input *in, size_t i, char *qname,
    size_t qlen)
{
	(void)in; (void)i; (void)qname; (void)qlen;
	return 0;
}

int
policy_want_sts(const struct policy_input *in)
{
	(void)in;
	return 0;
}

int
policy_sts_mx_match(const char *pattern, const char *host)
{
	(void)pattern; (void)host;
	return 0;
}

void
policy_decide(const struct policy_input *in, struct decision *d)
{
	(void)in;
	memset(d, 0, sizeof(*d));
	d->action = POLICY_DEFER;
	d->reason = xstrdup("policy: not implemented");
	d->dsn = "4.3.0";
}

void
decision_free(struct decision *d)
{
	if (d == NULL)
		return;
	free(d->reason);
	memset(d, 0, sizeof(*d));
}

const char *
policy_tls_name(enum policy_tls t)
{
	(void)t;
	return "?";
}

const char *
policy_action_name(enum policy_action a)
{
	(void)a;
	return "?";
}

const char *
policy_rpt_type_name(enum policy_rpt_type t)
{
	(void)t;
	return "?";
}
