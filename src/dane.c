/*
 * dane.c - TLSA records and OpenSSL's DANE API (RFC 6698, RFC 7671,
 * RFC 7672).  Stub: being written.
 */
#include <stdlib.h>
#include <string.h>

#include "dane.h"
#include "util.h"

int
tlsa_usable(const struct tlsa_rr *rr)
{
	(void)rr;
	return 0;
}

char *
tlsa_to_text(const struct tlsa_rr *rr)
{
	(void)rr;
	return NULL;
}

int
tlsa_from_text(const char *s, struct tlsa_rr *out)
{
	(void)s;
	(void)out;
	return -1;
}

void
tlsa_rr_clear(struct tlsa_rr *rr)
{
	if (rr == NULL)
		return;
	free(rr->data);
	memset(rr, 0, sizeof(*rr));
}

struct tlsa_rr *
tlsa_rrs_dup(const struct tlsa_rr *rrs, size_t n)
{
	(void)rrs;
	(void)n;
	return NULL;
}

void
tlsa_rrs_free(struct tlsa_rr *rrs, size_t n)
{
	size_t i;

	if (rrs == NULL)
		return;
	for (i = 0; i < n; i++)
		free(rrs[i].data);
	free(rrs);
}

int
dane_ctx_init(SSL_CTX *ctx, char *err, size_t errlen)
{
	(void)ctx;
	dr_strlcpy(err, "dane: not implemented", errlen);
	return -1;
}

int
dane_ssl_setup(SSL *ssl, const char *base, const char *const *names,
    size_t nnames, const struct tlsa_rr *rrs, size_t nrr, char *err,
    size_t errlen)
{
	(void)ssl; (void)base; (void)names; (void)nnames; (void)rrs;
	(void)nrr;
	dr_strlcpy(err, "dane: not implemented", errlen);
	return -1;
}

const char *
dane_authority(SSL *ssl, char **rec)
{
	(void)ssl;
	if (rec != NULL)
		*rec = NULL;
	return NULL;
}
