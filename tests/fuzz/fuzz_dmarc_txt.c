/*
 * fuzz_dmarc_txt.c - libFuzzer target for the DMARC record parser
 * (dmarc_txt_parse(), dmarc_txt_select(), dmarc_uri_domain() in
 * src/dmarc_txt.c, RFC 7489 §6.3/§6.4): `danerelay check` reads the
 * _dmarc record of the operator's domain and the report authorisation
 * records of other domains.
 *
 * Input: the whole input as one record (an exactly sized heap copy,
 * NUL bytes included), then split at NUL bytes into up to 8 records for
 * dmarc_txt_select().  Checks: a failure has a reason and leaves the
 * record empty; a success has p= one of none, quarantine, reject, sp=
 * empty or one of them, adkim/aspf 'r' or 's', pct 0..100, at most
 * DMARC_MAX_URI URIs each without ',' or NUL; a domain from
 * dmarc_uri_domain() is lower case LDH without a trailing dot.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dmarc_txt.h"
#include "dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
policy_ok(const char *p)
{
	return strcmp(p, "none") == 0 || strcmp(p, "quarantine") == 0 ||
	    strcmp(p, "reject") == 0;
}

static void
check_uri(const char *u)
{
	char dom[256];
	size_t i, n;

	if (strchr(u, ',') != NULL || u[0] == '\0')
		abort();
	if (dmarc_uri_domain(u, dom, sizeof(dom)) != 0)
		return;
	n = strlen(dom);
	if (n == 0 || dom[n - 1] == '.')
		abort();
	for (i = 0; i < n; i++)
		if (isupper((unsigned char)dom[i]) ||
		    !(isalnum((unsigned char)dom[i]) || dom[i] == '-' ||
		    dom[i] == '.' || dom[i] == '_'))
			abort();
}

static void
check_rec(const struct dmarc_rec *r, int ok)
{
	size_t i;

	if (!ok) {
		if (r->nrua != 0 || r->nruf != 0 || r->p[0] != '\0')
			abort();
		return;
	}
	if (!policy_ok(r->p) || (r->sp[0] && !policy_ok(r->sp)) ||
	    (r->adkim != 'r' && r->adkim != 's') ||
	    (r->aspf != 'r' && r->aspf != 's') || r->pct < 0 ||
	    r->pct > 100 || r->nrua > DMARC_MAX_URI ||
	    r->nruf > DMARC_MAX_URI)
		abort();
	for (i = 0; i < r->nrua; i++)
		check_uri(r->rua[i]);
	for (i = 0; i < r->nruf; i++)
		check_uri(r->ruf[i]);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dmarc_rec r;
	struct dns_txt recs[8];
	char err[256], *copy;
	size_t nrec = 0, start = 0, i;
	int rc;

	copy = malloc(size ? size : 1);
	if (copy == NULL)
		return 0;
	if (size > 0)
		memcpy(copy, data, size);
	err[0] = '\0';
	rc = dmarc_txt_parse(copy, size, &r, err, sizeof(err));
	if (rc != 0 && err[0] == '\0')
		abort();
	check_rec(&r, rc == 0);
	dmarc_rec_clear(&r);
	free(copy);

	for (i = 0; i <= size && nrec < 8; i++) {
		if (i < size && data[i] != 0)
			continue;
		recs[nrec].len = i - start;
		recs[nrec].data = malloc(recs[nrec].len + 1);
		if (recs[nrec].data == NULL)
			break;
		memcpy(recs[nrec].data, data + start, recs[nrec].len);
		recs[nrec].data[recs[nrec].len] = '\0';
		nrec++;
		start = i + 1;
	}
	err[0] = '\0';
	rc = dmarc_txt_select(recs, nrec, &r, err, sizeof(err));
	if (rc == -1 && err[0] == '\0')
		abort();
	check_rec(&r, rc == 1);
	dmarc_rec_clear(&r);
	for (i = 0; i < nrec; i++)
		free(recs[i].data);
	return 0;
}
