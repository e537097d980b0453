/*
 * dane.c - TLSA records and their use with OpenSSL's DANE API.
 *
 * What it owns: the struct tlsa_rr helpers (presentation form, copies,
 * the SMTP usability filter) and the arming of an SSL for DANE.  No
 * matching is written here: records go to OpenSSL with
 * SSL_dane_tlsa_add() and OpenSSL verifies the peer chain against them
 * (RFC 7671 §5 semantics as implemented by libssl).
 *
 * RFCs:
 *  - RFC 6698 §2 (TLSA RDATA, presentation form), §2.1.1-2.1.3 (usage,
 *    selector, matching type).
 *  - RFC 7671 §5.1 (DANE-EE: no name or validity check), §5.2 (DANE-TA:
 *    chain and name checks), §9 (digest algorithm agility: the strongest
 *    matching type of an RRset wins; SHA-512 > SHA-256).
 *  - RFC 7672 §3.1.3 (PKIX-TA/PKIX-EE unusable for SMTP), §3.2.2/§3.2.3
 *    (reference identifiers: the TLSA base domain, plus the names the
 *    caller passes; wildcards only as the complete leftmost label),
 *    §8.1 (SNI = TLSA base domain).
 *
 * Which reference names to pass for DANE-TA is the policy's decision
 * (policy.c: the TLSA base domain, the MX host name and its CNAME
 * expansion, following Postfix; the next-hop domain is not one of them
 * unless it is the host itself).  This module adds whatever it is given.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "dane.h"
#include "util.h"

#define TLSA_MAX_DATA	65532		/* RDATA max minus u/s/m octets */

/* RFC 6698 §2.1.1-2.1.3 numbers. */
#define USAGE_PKIX_TA	0
#define USAGE_PKIX_EE	1
#define USAGE_DANE_TA	2
#define USAGE_DANE_EE	3
#define SEL_CERT	0
#define SEL_SPKI	1
#define MTYPE_FULL	0
#define MTYPE_SHA256	1
#define MTYPE_SHA512	2

static void
ossl_err(char *err, size_t errlen, const char *what)
{
	unsigned long e;
	char buf[256];

	e = ERR_peek_last_error();
	if (e != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		snprintf(err, errlen, "%s: %s", what, buf);
	} else
		snprintf(err, errlen, "%s", what);
	ERR_clear_error();
}

/*
 * Full (mtype 0) data must be a DER certificate or SubjectPublicKeyInfo
 * that OpenSSL can decode completely, else OpenSSL would refuse the
 * record anyway; deciding it here lets the policy know before connecting.
 */
static int
full_data_ok(const struct tlsa_rr *rr)
{
	const unsigned char *p = rr->data;
	X509 *x;
	EVP_PKEY *k;
	int ok = 0;

	if (rr->len > 65535)
		return 0;
	if (rr->selector == SEL_CERT) {
		if ((x = d2i_X509(NULL, &p, (long)rr->len)) != NULL) {
			ok = (p == rr->data + rr->len);
			X509_free(x);
		}
	} else {
		if ((k = d2i_PUBKEY(NULL, &p, (long)rr->len)) != NULL) {
			ok = (p == rr->data + rr->len);
			EVP_PKEY_free(k);
		}
	}
	ERR_clear_error();
	return ok;
}

/* Usage/selector/mtype known and data length right for the mtype. */
static int
tlsa_wellformed(const struct tlsa_rr *rr)
{
	if (rr == NULL || rr->data == NULL || rr->len == 0)
		return 0;
	if (rr->usage > USAGE_DANE_EE)
		return 0;
	if (rr->selector != SEL_CERT && rr->selector != SEL_SPKI)
		return 0;
	switch (rr->mtype) {
	case MTYPE_FULL:
		return full_data_ok(rr);
	case MTYPE_SHA256:
		return rr->len == 32;
	case MTYPE_SHA512:
		return rr->len == 64;
	default:
		return 0;
	}
}

int
tlsa_usable(const struct tlsa_rr *rr)
{
	if (rr == NULL)
		return 0;
	/* RFC 7672 §3.1.3: only DANE-TA(2) and DANE-EE(3) for SMTP. */
	if (rr->usage != USAGE_DANE_TA && rr->usage != USAGE_DANE_EE)
		return 0;
	return tlsa_wellformed(rr);
}

char *
tlsa_to_text(const struct tlsa_rr *rr)
{
	static const char hex[] = "0123456789ABCDEF";
	char *s, *p;
	size_t i;

	if (rr == NULL || (rr->len > 0 && rr->data == NULL) ||
	    rr->len > TLSA_MAX_DATA)
		return NULL;
	s = xmalloc(16 + 2 * rr->len);
	p = s + snprintf(s, 16, "%u %u %u", rr->usage, rr->selector,
	    rr->mtype);
	if (rr->len > 0)
		*p++ = ' ';
	for (i = 0; i < rr->len; i++) {
		*p++ = hex[rr->data[i] >> 4];
		*p++ = hex[rr->data[i] & 0xf];
	}
	*p = '\0';
	return s;
}

static int
parse_u8(const char **sp, uint8_t *out)
{
	const char *s = *sp;
	unsigned v = 0;
	int n = 0;

	while (*s == ' ' || *s == '\t')
		s++;
	while (*s >= '0' && *s <= '9') {
		v = v * 10 + (unsigned)(*s - '0');
		if (v > 255 || ++n > 3)
			return -1;
		s++;
	}
	if (n == 0 || (*s != ' ' && *s != '\t'))
		return -1;
	*out = (uint8_t)v;
	*sp = s;
	return 0;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower((unsigned char)c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * "usage selector mtype hex": decimal fields, then the association data
 * in hex, which may be split by white space as in zone files (RFC 6698
 * §2.2).  Nothing else is accepted.
 */
int
tlsa_from_text(const char *s, struct tlsa_rr *out)
{
	struct tlsa_rr rr;
	size_t ndigits = 0, cap;
	int hi = -1, v;

	if (s == NULL || out == NULL)
		return -1;
	memset(&rr, 0, sizeof(rr));
	if (parse_u8(&s, &rr.usage) == -1 || parse_u8(&s, &rr.selector) == -1
	    || parse_u8(&s, &rr.mtype) == -1)
		return -1;
	cap = strlen(s) / 2 + 1;
	if (cap > TLSA_MAX_DATA + 1)
		cap = TLSA_MAX_DATA + 1;
	rr.data = xmalloc(cap);
	for (; *s != '\0'; s++) {
		if (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
			continue;
		if ((v = hexval((unsigned char)*s)) == -1)
			goto bad;
		ndigits++;
		if (hi == -1) {
			hi = v;
			continue;
		}
		if (rr.len >= TLSA_MAX_DATA)
			goto bad;
		rr.data[rr.len++] = (uint8_t)(hi << 4 | v);
		hi = -1;
	}
	if (hi != -1 || ndigits == 0)
		goto bad;
	*out = rr;
	return 0;
bad:
	free(rr.data);
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
	struct tlsa_rr *c;
	size_t i;

	if (rrs == NULL || n == 0)
		return NULL;
	c = xcalloc(n, sizeof(*c));
	for (i = 0; i < n; i++) {
		c[i] = rrs[i];
		c[i].data = NULL;
		if (rrs[i].len > 0 && rrs[i].data != NULL) {
			c[i].data = xmalloc(rrs[i].len);
			memcpy(c[i].data, rrs[i].data, rrs[i].len);
		} else
			c[i].len = 0;
	}
	return c;
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
	if (ctx == NULL) {
		dr_strlcpy(err, "dane: no SSL_CTX", errlen);
		return -1;
	}
	if (SSL_CTX_dane_enable(ctx) <= 0) {
		ossl_err(err, errlen, "SSL_CTX_dane_enable");
		return -1;
	}
	/*
	 * Matching types 1 and 2 (RFC 6698 §2.1.3) with SHA-512 the
	 * stronger for digest agility (RFC 7671 §9).  These are OpenSSL's
	 * defaults too; being explicit keeps them from changing under us.
	 */
	if (SSL_CTX_dane_mtype_set(ctx, EVP_sha256(), MTYPE_SHA256, 1) <= 0 ||
	    SSL_CTX_dane_mtype_set(ctx, EVP_sha512(), MTYPE_SHA512, 2) <= 0) {
		ossl_err(err, errlen, "SSL_CTX_dane_mtype_set");
		return -1;
	}
	SSL_CTX_dane_set_flags(ctx, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
	return 0;
}

int
dane_ssl_setup_ex(SSL *ssl, const char *base, const char *const *names,
    size_t nnames, const struct tlsa_rr *rrs, size_t nrr, int flags,
    char *err, size_t errlen)
{
	size_t i;
	int n = 0, r;

	if (ssl == NULL || base == NULL || *base == '\0') {
		dr_strlcpy(err, "dane: no TLSA base domain", errlen);
		return -1;
	}
	/* SNI = TLSA base domain (RFC 7672 §8.1). */
	if (SSL_set_tlsext_host_name(ssl, base) != 1) {
		ossl_err(err, errlen, "SSL_set_tlsext_host_name");
		return -1;
	}
	/* Also makes base the first reference identifier. */
	if (SSL_dane_enable(ssl, base) <= 0) {
		ossl_err(err, errlen, "SSL_dane_enable");
		return -1;
	}
	/*
	 * Wildcards only as the whole leftmost label ("*.example.org"), not
	 * "mx*.example.org" (RFC 7672 §3.2.3, RFC 6125 §6.4.3).
	 */
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	for (i = 0; i < nnames; i++) {
		if (names[i] == NULL || *names[i] == '\0' ||
		    strcasecmp(names[i], base) == 0)
			continue;
		if (SSL_add1_host(ssl, names[i]) != 1) {
			ossl_err(err, errlen, "SSL_add1_host");
			return -1;
		}
	}
	/* DANE-EE(3): no name check (RFC 7671 §5.1, RFC 7672 §3.1.1). */
	if (flags & DANE_SETUP_EE_NAMECHECKS)
		SSL_dane_clear_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
	else
		SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);

	for (i = 0; i < nrr; i++) {
		if (!(flags & DANE_SETUP_ANY_USAGE) && !tlsa_usable(&rrs[i]))
			continue;
		if (rrs[i].data == NULL || rrs[i].len == 0)
			continue;
		r = SSL_dane_tlsa_add(ssl, rrs[i].usage, rrs[i].selector,
		    rrs[i].mtype, rrs[i].data, rrs[i].len);
		if (r > 0)
			n++;
		else if (r < 0) {
			ossl_err(err, errlen, "SSL_dane_tlsa_add");
			return -1;
		}
		/* r == 0: unusable for OpenSSL, skipped like any other. */
		ERR_clear_error();
	}
	/*
	 * With usable records the handshake must fail when the chain does
	 * not match them (no fallback).  With none the caller decides
	 * (RFC 7672 §2.2: mandatory TLS, unauthenticated).
	 */
	if (n > 0)
		SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
	return n;
}

int
dane_ssl_setup(SSL *ssl, const char *base, const char *const *names,
    size_t nnames, const struct tlsa_rr *rrs, size_t nrr, char *err,
    size_t errlen)
{
	return dane_ssl_setup_ex(ssl, base, names, nnames, rrs, nrr, 0, err,
	    errlen);
}

const char *
dane_authority(SSL *ssl, char **rec)
{
	struct tlsa_rr rr;
	uint8_t usage, selector, mtype;
	unsigned const char *data;
	size_t dlen;

	if (rec != NULL)
		*rec = NULL;
	if (ssl == NULL || SSL_get_verify_result(ssl) != X509_V_OK)
		return NULL;
	if (SSL_get0_dane_authority(ssl, NULL, NULL) < 0)
		return NULL;
	if (SSL_get0_dane_tlsa(ssl, &usage, &selector, &mtype, &data,
	    &dlen) < 0)
		return NULL;
	if (rec != NULL) {
		memset(&rr, 0, sizeof(rr));
		rr.usage = usage;
		rr.selector = selector;
		rr.mtype = mtype;
		rr.data = (uint8_t *)(uintptr_t)data;
		rr.len = dlen;
		*rec = tlsa_to_text(&rr);
	}
	switch (usage) {
	case USAGE_DANE_TA:
		return "dane-ta";
	case USAGE_DANE_EE:
		return "dane-ee";
	case USAGE_PKIX_TA:
		return "pkix-ta";
	case USAGE_PKIX_EE:
		return "pkix-ee";
	default:
		return NULL;
	}
}
