/*
 * check_spf.c - SPF evaluation (RFC 7208) with libspf2 over answers of
 * danerelay's validating resolver (see check_spf.h for the loop).
 *
 * libspf2's DNS layers: a zone layer (SPF_dns_zone_new()) that holds
 * every answer handed in with spf_eval_add(), above a "miss" layer of
 * ours that notes each question the zone cannot answer and replies
 * TRY_AGAIN (libspf2 then ends with temperror; the caller looks the
 * questions up and runs again).  Type SPF (99, RFC 7208 §3.1: not to be
 * published any more) is answered NO_DATA without a lookup.  A bogus or
 * failed answer is handed in as TRY_AGAIN: it stays a temperror, never
 * "no record".
 */
#include <sys/types.h>
#include <netinet/in.h>
#include <arpa/nameser.h>
#include <netdb.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <spf2/spf.h>
#include <spf2/spf_dns_zone.h>

#include "check_spf.h"
#include "dns.h"
#include "util.h"

#define MISS_MAX	64
#define REC_DOM		"danerelay-check"

struct miss {
	char	*name;
	int	 type;
};

struct spf_eval {
	SPF_dns_server_t	*zone;
	SPF_dns_server_t	 below;		/* the miss layer */
	SPF_server_t		*srv;
	struct miss		 miss[MISS_MAX];
	size_t			 nmiss;
	int			 rounds;
};

static void
quiet(const char *file, int line, const char *msg)
{
	(void)file;
	(void)line;
	(void)msg;
}

static SPF_dns_rr_t *
miss_lookup(SPF_dns_server_t *srv, const char *domain, ns_type type,
    int should_cache)
{
	struct spf_eval *e = srv->hook;
	size_t i;

	(void)should_cache;
	if ((int)type != DNS_T_A && (int)type != DNS_T_AAAA &&
	    (int)type != DNS_T_MX && (int)type != DNS_T_TXT &&
	    (int)type != DNS_T_PTR)
		return SPF_dns_rr_new_init(srv, domain, type, 0, NO_DATA);
	for (i = 0; i < e->nmiss; i++)
		if (e->miss[i].type == (int)type &&
		    strcasecmp(e->miss[i].name, domain) == 0)
			break;
	if (i == e->nmiss && e->nmiss < MISS_MAX) {
		e->miss[e->nmiss].name = xstrdup(domain);
		e->miss[e->nmiss].type = (int)type;
		e->nmiss++;
	}
	return SPF_dns_rr_new_init(srv, domain, type, 0, TRY_AGAIN);
}

static void
miss_clear(struct spf_eval *e)
{
	size_t i;

	for (i = 0; i < e->nmiss; i++)
		free(e->miss[i].name);
	e->nmiss = 0;
}

struct spf_eval *
spf_eval_new(char *err, size_t errlen)
{
	struct spf_eval *e = xcalloc(1, sizeof(*e));

	SPF_warning_handler = quiet;
	SPF_info_handler = quiet;
	SPF_debug_handler = quiet;
	e->below.destroy = NULL;	/* ours, freed with e */
	e->below.lookup = miss_lookup;
	e->below.name = "danerelay-miss";
	e->below.hook = e;
	if ((e->zone = SPF_dns_zone_new(&e->below, "danerelay", 0)) == NULL ||
	    (e->srv = SPF_server_new_dns(e->zone, 0)) == NULL) {
		dr_strlcpy(err, "libspf2: cannot make a server", errlen);
		spf_eval_free(e);
		return NULL;
	}
	/* the receiving host's name in libspf2's comments, cut off again
	 * in spf_eval_run() */
	SPF_server_set_rec_dom(e->srv, REC_DOM);
	return e;
}

void
spf_eval_free(struct spf_eval *e)
{
	if (e == NULL)
		return;
	/* a server made with SPF_server_new_dns() leaves its DNS layers to
	 * the caller; SPF_dns_free() stops at our miss layer (no destroy) */
	if (e->srv != NULL)
		SPF_server_free(e->srv);
	if (e->zone != NULL)
		SPF_dns_free(e->zone);
	miss_clear(e);
	free(e);
}

size_t
spf_eval_nmissing(const struct spf_eval *e)
{
	return e->nmiss;
}

const char *
spf_eval_missing(const struct spf_eval *e, size_t i, int *type)
{
	if (i >= e->nmiss)
		return NULL;
	*type = e->miss[i].type;
	return e->miss[i].name;
}

void
spf_eval_add(struct spf_eval *e, const struct dns_result *res)
{
	const char *name = res->qname;
	char buf[DNS_NAME_BUF];
	size_t i, n;
	int herr;

	/* the name as libspf2 asked it, without a trailing dot */
	dr_strlcpy(buf, name, sizeof(buf));
	n = strlen(buf);
	if (n > 1 && buf[n - 1] == '.')
		buf[n - 1] = '\0';
	switch (res->status) {
	case DNS_OK:
		for (i = 0; i < res->n; i++) {
			const char *data = NULL;

			switch (res->qtype) {
			case DNS_T_A:
			case DNS_T_AAAA:
				data = res->addr[i].text;
				break;
			case DNS_T_MX:
			case DNS_T_PTR:
				data = res->mx[i].host;
				break;
			case DNS_T_TXT:
				data = res->txt[i].data;
				break;
			}
			if (data != NULL)
				SPF_dns_zone_add_str(e->zone, buf,
				    (ns_type)res->qtype, NETDB_SUCCESS, data);
		}
		return;
	case DNS_NXDOMAIN:
		herr = HOST_NOT_FOUND;
		break;
	case DNS_NODATA:
		herr = NO_DATA;
		break;
	default:
		herr = TRY_AGAIN;
		break;
	}
	SPF_dns_zone_add_str(e->zone, buf, (ns_type)res->qtype, herr, NULL);
}

enum spf_eval_rc
spf_eval_run(struct spf_eval *e, const char *ip, const char *helo,
    const char *domain, struct spf_outcome *out)
{
	SPF_request_t *req;
	SPF_response_t *resp = NULL;
	const char *c;
	char from[300];
	enum spf_eval_rc rc = SPF_EVAL_DONE;

	memset(out, 0, sizeof(*out));
	miss_clear(e);
	if ((req = SPF_request_new(e->srv)) == NULL) {
		dr_strlcpy(out->why, "libspf2: out of memory", sizeof(out->why));
		return SPF_EVAL_ERROR;
	}
	if ((strchr(ip, ':') != NULL ? SPF_request_set_ipv6_str(req, ip) :
	    SPF_request_set_ipv4_str(req, ip)) != SPF_E_SUCCESS) {
		snprintf(out->why, sizeof(out->why), "bad address %s", ip);
		SPF_request_free(req);
		return SPF_EVAL_ERROR;
	}
	snprintf(from, sizeof(from), "postmaster@%s", domain);
	SPF_request_set_helo_dom(req, helo);
	if (SPF_request_set_env_from(req, from) != 0) {
		snprintf(out->why, sizeof(out->why), "bad domain %s", domain);
		SPF_request_free(req);
		return SPF_EVAL_ERROR;
	}
	SPF_request_query_mailfrom(req, &resp);
	if (e->nmiss > 0 && ++e->rounds < SPF_EVAL_ROUNDS)
		rc = SPF_EVAL_NEED;
	if (resp != NULL) {
		dr_strlcpy(out->result, SPF_strresult(
		    SPF_response_result(resp)), sizeof(out->result));
		if ((c = SPF_response_get_header_comment(resp)) == NULL ||
		    *c == '\0')
			c = SPF_response_get_smtp_comment(resp);
		if (SPF_response_errcode(resp) != SPF_E_SUCCESS)
			c = SPF_strerror(SPF_response_errcode(resp));
		if (c != NULL && strncmp(c, REC_DOM ": ",
		    sizeof(REC_DOM ": ") - 1) == 0)
			c += sizeof(REC_DOM ": ") - 1;
		dr_strlcpy(out->why, c ? c : "", sizeof(out->why));
		SPF_response_free(resp);
	} else {
		dr_strlcpy(out->result, "temperror", sizeof(out->result));
	}
	SPF_request_free(req);
	return rc;
}
