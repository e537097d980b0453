/*
 * probe.c - `danerelay probe DOMAIN`, the operator's view of one route.
 *
 * Runs the same route (route.c: DNS with DNSSEC states, policy decision)
 * as the delivery engine, prints every lookup with its security state and
 * the decision for each host, then, like Postfix's posttls-finger, opens
 * an SMTP session to each candidate address with exactly the TLS
 * requirement the decision gives it and reports the handshake and the
 * verification (DANE-TA/DANE-EE with the matched record, WebPKI, or why
 * it failed).  The session ends after the TLS EHLO with QUIT: no mail.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "config.h"
#include "delivery.h"
#include "log.h"
#include "mta_sts.h"
#include "policy.h"
#include "policy_table.h"
#include "probe.h"
#include "resolver.h"
#include "route.h"
#include "smtp_client.h"
#include "tls.h"
#include "util.h"

struct probe {
	struct event_base *base;
	const struct config *cf;
	FILE *out;
	struct route *rt;
	SSL_CTX *ssl_ctx;
	int no_connect;
	size_t host, addr;
	struct smtp_client *c;
	char relay[320];
	int passed;
	int done;
};

static void probe_next(struct probe *p);

static void
print_result(FILE *out, const char *indent, const char *what,
    const struct dns_result *r)
{
	size_t i;
	char *t;

	if (r == NULL) {
		fprintf(out, "%s%s: not looked up\n", indent, what);
		return;
	}
	fprintf(out, "%s%s %s: %s, %s%s%s\n", indent, dns_type_name(r->qtype),
	    r->qname, dns_status_name(r->status),
	    dns_security_name(r->security), r->cname ? ", via CNAME to " : "",
	    r->cname ? r->canonname : "");
	if (r->reason[0])
		fprintf(out, "%s  (%s)\n", indent, r->reason);
	for (i = 0; i < r->n; i++) {
		switch (r->qtype) {
		case DNS_T_MX:
			fprintf(out, "%s  %u %s\n", indent, r->mx[i].pref,
			    r->mx[i].host[0] ? r->mx[i].host : ".");
			break;
		case DNS_T_A:
		case DNS_T_AAAA:
			fprintf(out, "%s  %s\n", indent, r->addr[i].text);
			break;
		case DNS_T_TLSA:
			t = tlsa_to_text(&r->tlsa[i]);
			fprintf(out, "%s  %s%s\n", indent, t,
			    tlsa_usable(&r->tlsa[i]) ? "" :
			    "   (unusable for SMTP, RFC 7672 3.1.3)");
			free(t);
			break;
		}
	}
}

static void
print_route(struct probe *p)
{
	const struct policy_input *in = route_input(p->rt);
	const struct decision *d = route_decision(p->rt);
	FILE *out = p->out;
	size_t i, k;

	fprintf(out, "domain %s: level %s (%s)\n", in->domain,
	    policy_level_name(in->level), route_level_source(p->rt));
	print_result(out, "", "MX", in->mx);
	for (i = 0; i < in->nhosts; i++) {
		const struct policy_host *h = &in->hosts[i];

		fprintf(out, "host %s (preference %u%s)\n", h->name, h->pref,
		    h->implicit ? ", implicit MX" : "");
		print_result(out, "  ", "A", h->a);
		print_result(out, "  ", "AAAA", h->aaaa);
		for (k = 0; k < POLICY_MAX_TLSA && h->tlsa[k] != NULL; k++)
			print_result(out, "  ", "TLSA", h->tlsa[k]);
		if (!policy_want_tlsa(in, i))
			fprintf(out, "  TLSA: not looked up (DANE does not "
			    "apply: insecure host, insecure MX or level)\n");
	}
	if (route_sts(p->rt) != NULL) {
		const struct mta_sts_answer *a = route_sts(p->rt);

		fprintf(out, "MTA-STS: %s%s%s, %s (%s)\n",
		    a->source != MTA_STS_SRC_NONE ? "mode " : "no policy",
		    a->source != MTA_STS_SRC_NONE ?
		    mta_sts_mode_name(a->mode) : "",
		    a->sts.failure ? " (failure reported)" : "",
		    mta_sts_source_name(a->source), a->note);
		for (k = 0; k < a->policy.nmx; k++)
			fprintf(out, "  mx %s\n", a->policy.mx[k]);
	}
	fprintf(out, "decision: %s%s%s%s%s\n", policy_action_name(d->action),
	    d->dsn ? " " : "", d->dsn ? d->dsn : "", d->reason ? ": " : "",
	    d->reason ? d->reason : "");
	for (i = 0; i < d->nhosts; i++) {
		const struct decision_host *h = &d->hosts[i];

		if (h->skip) {
			fprintf(out, "  %s: skipped%s: %s\n", h->name,
			    h->skip_temp ? " (temporary)" : "",
			    h->reason ? h->reason : "");
			continue;
		}
		fprintf(out, "  %s: tls=%s", h->name, policy_tls_name(h->tls));
		if (h->tlsa_base)
			fprintf(out, ", tlsa-base=%s", h->tlsa_base);
		if (h->sni)
			fprintf(out, ", sni=%s", h->sni);
		for (k = 0; k < h->nnames; k++)
			fprintf(out, "%s%s", k ? "," : ", names=", h->names[k]);
		fprintf(out, ", report=%s", policy_rpt_type_name(h->rpt_type));
		if (h->reason)
			fprintf(out, " (%s)", h->reason);
		fprintf(out, "\n");
		for (k = 0; k < h->ntlsa; k++) {
			char *t = tlsa_to_text(&h->tlsa[k]);
			fprintf(out, "    usable TLSA %s\n", t);
			free(t);
		}
	}
}

static void
c_ready(struct smtp_client *c, void *arg)
{
	struct probe *p = arg;
	const struct tls_outcome *o = smtp_client_tls(c);

	if (o->established)
		fprintf(p->out, "  %s: %s TLS connection: %s with cipher %s, "
		    "auth=%s%s%s%s, peer CN=%s\n", p->relay,
		    o->verified ? "Verified" : o->trusted ? "Trusted" :
		    "Untrusted", o->protocol, o->cipher, tls_auth_name(o->auth),
		    o->tlsa[0] ? ", tlsa=\"" : "", o->tlsa,
		    o->tlsa[0] ? "\"" : "", o->peer[0] ? o->peer : "-");
	else
		fprintf(p->out, "  %s: cleartext session (no STARTTLS "
		    "offered; allowed at this level)\n", p->relay);
	p->passed++;
	smtp_client_quit(c);
	p->c = NULL;
	p->addr++;
	probe_next(p);
}

static void
c_done(struct smtp_client *c, const struct smtp_result *r, void *arg)
{
	struct probe *p = arg;

	fprintf(p->out, "  %s: FAILED at %s: %s%s%s\n", p->relay,
	    r->stage ? r->stage : "?", r->reply, r->tlsrpt ? ", tlsrpt=" : "",
	    r->tlsrpt ? r->tlsrpt : "");
	smtp_client_free(c);
	p->c = NULL;
	p->addr++;
	probe_next(p);
}

static const struct smtp_client_cb probe_cb = { c_ready, NULL, c_done };

static void
probe_next(struct probe *p)
{
	const struct decision *d = route_decision(p->rt);
	char err[256];

	while (!p->no_connect && d->action == POLICY_DELIVER &&
	    p->host < d->nhosts) {
		const struct decision_host *h = &d->hosts[p->host];
		struct smtp_client_params cp;
		const struct dns_addr *a;

		if (h->skip || p->addr >= h->naddrs) {
			p->host++;
			p->addr = 0;
			continue;
		}
		a = &h->addrs[p->addr];
		delivery_client_params(p->cf, p->base, p->ssl_ctx, h, a,
		    p->cf->smtp_port, "probe", &cp);
		snprintf(p->relay, sizeof(p->relay), "%s[%s]:%d", h->name,
		    a->text, p->cf->smtp_port);
		if ((p->c = smtp_client_connect(&cp, &probe_cb, p, err,
		    sizeof(err))) != NULL)
			return;
		fprintf(p->out, "  %s: FAILED at connect: %s\n", p->relay, err);
		p->addr++;
	}
	p->done = 1;
	event_base_loopexit(p->base, NULL);
}

static void
routed(struct route *rt, void *arg)
{
	struct probe *p = arg;

	print_route(p);
	if (!p->no_connect && route_decision(rt)->action == POLICY_DELIVER)
		fprintf(p->out, "connections:\n");
	probe_next(p);
}

int
probe_run(const struct config *cf, const char *domain, int no_connect,
    FILE *out)
{
	struct probe p;
	struct resolver *res = NULL;
	struct policy_table *pt = NULL;
	struct mta_sts *sts = NULL;
	char err[512];
	int rc = -1;

	memset(&p, 0, sizeof(p));
	p.cf = cf;
	p.out = out;
	p.no_connect = no_connect;
	if ((p.base = event_base_new()) == NULL) {
		fprintf(stderr, "probe: event_base_new failed\n");
		return -1;
	}
	if ((res = resolver_new(p.base, cf, err, sizeof(err))) == NULL ||
	    (cf->policy_file != NULL && (pt = policy_table_load(cf->policy_file,
	    err, sizeof(err))) == NULL) ||
	    (p.ssl_ctx = tls_client_ctx_new(cf->ca_file, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "probe: %s\n", err);
		goto out;
	}
	if (cf->mta_sts && (sts = mta_sts_new(p.base, res, cf, err,
	    sizeof(err))) == NULL)
		fprintf(stderr, "probe: MTA-STS off: %s\n", err);
	p.rt = route_start(p.base, res, cf, pt, sts, domain, routed, &p);
	event_base_dispatch(p.base);
	if (!p.done) {
		fprintf(stderr, "probe: did not finish\n");
		goto out;
	}
	/* let the sessions finish their QUIT (bounded by their timeouts):
	 * without the resolver nothing else keeps the loop alive */
	mta_sts_free(sts);	/* its refresh timer would keep the loop */
	sts = NULL;
	resolver_free(res);
	res = NULL;
	event_base_dispatch(p.base);
	rc = route_decision(p.rt)->action == POLICY_DELIVER &&
	    (no_connect || p.passed > 0) ? 0 : 1;
	fprintf(out, "result: %s\n", rc == 0 ? "deliverable" :
	    "not deliverable now");
out:
	smtp_client_free(p.c);
	smtp_client_free_all();
	route_free(p.rt);
	mta_sts_free(sts);
	resolver_free(res);
	policy_table_free(pt);
	SSL_CTX_free(p.ssl_ctx);
	event_base_free(p.base);
	return rc;
}
