/*
 * test_dane.c - dane.c on real TLS handshakes: certificates (a CA and
 * leaves with chosen names and dates) are made at test time with the
 * OpenSSL API, a client armed with dane_ssl_setup() talks to an OpenSSL
 * server over an in-memory BIO pair, and the outcome is checked:
 *  - DANE-EE(3): no name and no expiry check (RFC 7671 §5.1);
 *  - DANE-TA(2): chain + name check against the TLSA base domain and the
 *    extra names, wildcard only as the whole leftmost label, expiry
 *    checked (RFC 7671 §5.2, RFC 7672 §3.2.3);
 *  - a chain matching no record fails the handshake (no fallback);
 *  - PKIX-TA/PKIX-EE records are not loaded (RFC 7672 §3.1.3);
 *  - SNI = TLSA base domain (RFC 7672 §8.1);
 *  - dane_authority() reports the usage and the record.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "dane.h"
#include "util.h"
#include "t.h"

struct cert {
	EVP_PKEY *key;
	X509 *x;
};

static EVP_PKEY *
newkey(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	if (k == NULL)
		abort();
	return k;
}

static void
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value)) == NULL)
		abort();
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
}

/*
 * A certificate for cn/san, signed by ca (NULL: self-signed CA).  Valid
 * from now-1h for days (negative: expired an hour ago).
 */
static struct cert
mkcert(const char *cn, const char *san, const struct cert *ca, int days)
{
	static long serial = 1;
	struct cert c;
	X509_NAME *name;

	c.key = newkey();
	c.x = X509_new();
	X509_set_version(c.x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(c.x), serial++);
	if (days >= 0) {
		X509_gmtime_adj(X509_getm_notBefore(c.x), -3600);
		X509_gmtime_adj(X509_getm_notAfter(c.x), (long)days * 86400);
	} else {
		X509_gmtime_adj(X509_getm_notBefore(c.x), -7200 * 24);
		X509_gmtime_adj(X509_getm_notAfter(c.x), -3600);
	}
	X509_set_pubkey(c.x, c.key);
	name = X509_get_subject_name(c.x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(c.x, ca ? X509_get_subject_name(ca->x) : name);
	if (ca == NULL) {
		add_ext(c.x, c.x, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(c.x, c.x, NID_key_usage, "critical,keyCertSign");
		add_ext(c.x, c.x, NID_subject_key_identifier, "hash");
	} else {
		add_ext(c.x, ca->x, NID_basic_constraints, "CA:FALSE");
		add_ext(c.x, ca->x, NID_ext_key_usage, "serverAuth");
		add_ext(c.x, ca->x, NID_authority_key_identifier,
		    "keyid:always");
		if (san != NULL)
			add_ext(c.x, ca->x, NID_subject_alt_name, san);
	}
	if (X509_sign(c.x, ca ? ca->key : c.key, EVP_sha256()) == 0)
		abort();
	return c;
}

static void
cert_free(struct cert *c)
{
	X509_free(c->x);
	EVP_PKEY_free(c->key);
}

/* "u 1 1 <sha256 of SPKI>" or "u 0 1 <sha256 of cert>". */
static struct tlsa_rr
tlsa_for(const struct cert *c, int usage, int selector)
{
	struct tlsa_rr rr;
	unsigned char *der = NULL;
	unsigned int mdlen;
	int len;

	memset(&rr, 0, sizeof(rr));
	rr.usage = (uint8_t)usage;
	rr.selector = (uint8_t)selector;
	rr.mtype = 1;
	len = selector == 1 ? i2d_PUBKEY(c->key, &der) : i2d_X509(c->x, &der);
	if (len <= 0)
		abort();
	rr.data = xmalloc(32);
	EVP_Digest(der, (size_t)len, rr.data, &mdlen, EVP_sha256(), NULL);
	rr.len = mdlen;
	OPENSSL_free(der);
	return rr;
}

static char sni_seen[256];

static int
sni_cb(SSL *s, int *al, void *arg)
{
	const char *n = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);

	dr_strlcpy(sni_seen, n ? n : "", sizeof(sni_seen));
	return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *
server_ctx(const struct cert *leaf, const struct cert *ca)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL || SSL_CTX_use_certificate(ctx, leaf->x) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, leaf->key) != 1)
		abort();
	if (ca != NULL) {
		X509_up_ref(ca->x);
		SSL_CTX_add_extra_chain_cert(ctx, ca->x);
	}
	SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
	return ctx;
}

static SSL_CTX *cctx;

/*
 * One handshake: 1 ok, 0 failed.  *verr = client verify result, *auth =
 * dane_authority() (static string or NULL), *rec its record text.
 */
static int
handshake(SSL_CTX *sctx, const char *base, const char *const *names,
    size_t nnames, const struct tlsa_rr *rrs, size_t nrr, int *nadded,
    long *verr, const char **auth, char **rec)
{
	SSL *c, *s;
	BIO *cb, *sb;
	char err[256];
	int i, rc = 0, rs = 0, ok = 0, ec, es;

	*auth = NULL;
	*rec = NULL;
	sni_seen[0] = '\0';
	c = SSL_new(cctx);
	s = SSL_new(sctx);
	if (BIO_new_bio_pair(&cb, 0, &sb, 0) != 1)
		abort();
	SSL_set_bio(c, cb, cb);
	SSL_set_bio(s, sb, sb);
	SSL_set_connect_state(c);
	SSL_set_accept_state(s);
	*nadded = dane_ssl_setup(c, base, names, nnames, rrs, nrr, err,
	    sizeof(err));
	if (*nadded < 0) {
		fprintf(stderr, "dane_ssl_setup: %s\n", err);
		goto done;
	}
	for (i = 0; i < 200; i++) {
		if (rc != 1)
			rc = SSL_do_handshake(c);
		if (rs != 1)
			rs = SSL_do_handshake(s);
		if (rc == 1 && rs == 1) {
			ok = 1;
			break;
		}
		ec = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(c, rc);
		es = rs == 1 ? SSL_ERROR_NONE : SSL_get_error(s, rs);
		if ((ec != SSL_ERROR_NONE && ec != SSL_ERROR_WANT_READ &&
		    ec != SSL_ERROR_WANT_WRITE) || (es != SSL_ERROR_NONE &&
		    es != SSL_ERROR_WANT_READ && es != SSL_ERROR_WANT_WRITE))
			break;
	}
	*verr = SSL_get_verify_result(c);
	if (ok)
		*auth = dane_authority(c, rec);
done:
	ERR_clear_error();
	SSL_free(c);
	SSL_free(s);
	return ok;
}

static struct cert ca, other_ca;

static void
test_dane_ee(void)
{
	struct cert leaf = mkcert("whatever.invalid", "DNS:whatever.invalid",
	    &ca, -1);				/* wrong name, expired */
	struct tlsa_rr rr = tlsa_for(&leaf, 3, 1);
	SSL_CTX *s = server_ctx(&leaf, NULL);
	const char *auth;
	char *rec, *want;
	long verr;
	int n;

	CHECK(handshake(s, "mx1.example.org", NULL, 0, &rr, 1, &n, &verr,
	    &auth, &rec) == 1);
	CHECK(n == 1 && verr == X509_V_OK);
	CHECK_STR(auth, "dane-ee");
	want = tlsa_to_text(&rr);
	CHECK_STR(rec, want);
	CHECK_STR(sni_seen, "mx1.example.org");
	free(want);
	free(rec);
	tlsa_rr_clear(&rr);

	/* Same server, a record for another key: handshake fails. */
	{
		struct cert k2 = mkcert("x", "DNS:x", &ca, 10);

		rr = tlsa_for(&k2, 3, 1);
		CHECK(handshake(s, "mx1.example.org", NULL, 0, &rr, 1, &n,
		    &verr, &auth, &rec) == 0);
		CHECK(n == 1 && verr != X509_V_OK && auth == NULL);
		tlsa_rr_clear(&rr);
		cert_free(&k2);
	}
	SSL_CTX_free(s);
	cert_free(&leaf);
}

/* DANE-TA on the CA key; the leaf carries san; check against base/names. */
static int
ta_case(const char *san, int days, const char *base,
    const char *const *names, size_t nnames, long *verr)
{
	struct cert leaf = mkcert("leaf", san, &ca, days);
	struct tlsa_rr rr = tlsa_for(&ca, 2, 1);
	SSL_CTX *s = server_ctx(&leaf, &ca);
	const char *auth;
	char *rec;
	int n, ok;

	ok = handshake(s, base, names, nnames, &rr, 1, &n, verr, &auth, &rec);
	CHECK(n == 1);
	if (ok) {
		CHECK_STR(auth, "dane-ta");
		CHECK_STR(sni_seen, base);
	}
	free(rec);
	tlsa_rr_clear(&rr);
	SSL_CTX_free(s);
	cert_free(&leaf);
	return ok;
}

static void
test_dane_ta(void)
{
	const char *mxname[] = { "mx.example.org" };
	const char *two[] = { "mx.example.org", "smtp.provider.example" };
	long verr;

	/* The TLSA base domain itself. */
	CHECK(ta_case("DNS:mx.example.org", 30, "mx.example.org", mxname, 1,
	    &verr) == 1);
	/* Base = CNAME-expanded name, certificate for the MX name. */
	CHECK(ta_case("DNS:mx.example.org", 30, "smtp.provider.example", two,
	    2, &verr) == 1);
	/* Neither name: refused. */
	CHECK(ta_case("DNS:www.example.org", 30, "mx.example.org", mxname, 1,
	    &verr) == 0);
	CHECK(verr == X509_V_ERR_HOSTNAME_MISMATCH);
	/* The next-hop domain is not a reference identifier by itself. */
	CHECK(ta_case("DNS:example.org", 30, "mx.example.org", mxname, 1,
	    &verr) == 0);
	/* Wildcard as the whole leftmost label. */
	CHECK(ta_case("DNS:*.example.org", 30, "mx.example.org", NULL, 0,
	    &verr) == 1);
	/* ... one label only. */
	CHECK(ta_case("DNS:*.example.org", 30, "a.mx.example.org", NULL, 0,
	    &verr) == 0);
	/* Partial wildcards are not accepted. */
	CHECK(ta_case("DNS:mx*.example.org", 30, "mx1.example.org", NULL, 0,
	    &verr) == 0);
	CHECK(ta_case("DNS:*x1.example.org", 30, "mx1.example.org", NULL, 0,
	    &verr) == 0);
	/* DANE-TA checks validity dates. */
	CHECK(ta_case("DNS:mx.example.org", -1, "mx.example.org", NULL, 0,
	    &verr) == 0);
	CHECK(verr == X509_V_ERR_CERT_HAS_EXPIRED);
	/* Case does not matter. */
	CHECK(ta_case("DNS:MX.Example.ORG", 30, "mx.example.org", NULL, 0,
	    &verr) == 1);
}

static void
test_ta_other_ca(void)
{
	/* A leaf under another CA with the right name: not trusted. */
	struct cert leaf = mkcert("leaf", "DNS:mx.example.org", &other_ca, 30);
	struct tlsa_rr rr = tlsa_for(&ca, 2, 1);
	SSL_CTX *s = server_ctx(&leaf, &other_ca);
	const char *auth;
	char *rec;
	long verr;
	int n;

	CHECK(handshake(s, "mx.example.org", NULL, 0, &rr, 1, &n, &verr,
	    &auth, &rec) == 0);
	CHECK(verr != X509_V_OK);
	tlsa_rr_clear(&rr);
	SSL_CTX_free(s);
	cert_free(&leaf);
}

static void
test_pkix_not_loaded(void)
{
	/* PKIX-EE for the exact leaf: dropped, nothing to verify against. */
	struct cert leaf = mkcert("leaf", "DNS:mx.example.org", &ca, 30);
	struct tlsa_rr rr[2];
	SSL_CTX *s = server_ctx(&leaf, &ca);
	const char *auth;
	char *rec;
	long verr;
	int n;

	rr[0] = tlsa_for(&leaf, 1, 1);
	rr[1] = tlsa_for(&ca, 0, 1);
	/* No usable record: dane_ssl_setup() leaves verification off, so
	 * the handshake completes unauthenticated (the policy turned this
	 * case into "encrypt") and nothing claims DANE authentication. */
	CHECK(handshake(s, "mx.example.org", NULL, 0, rr, 2, &n, &verr,
	    &auth, &rec) == 1);
	CHECK(n == 0);
	CHECK(auth == NULL && rec == NULL);
	tlsa_rr_clear(&rr[0]);
	tlsa_rr_clear(&rr[1]);
	SSL_CTX_free(s);
	cert_free(&leaf);
}

static void
test_mixed_first_match_wins(void)
{
	/* A wrong DANE-EE plus a right DANE-TA: the TA authenticates. */
	struct cert leaf = mkcert("leaf", "DNS:mx.example.org", &ca, 30);
	struct cert k2 = mkcert("x", "DNS:x", &ca, 10);
	struct tlsa_rr rr[2];
	SSL_CTX *s = server_ctx(&leaf, &ca);
	const char *auth;
	char *rec;
	long verr;
	int n;

	rr[0] = tlsa_for(&k2, 3, 1);
	rr[1] = tlsa_for(&ca, 2, 0);
	CHECK(handshake(s, "mx.example.org", NULL, 0, rr, 2, &n, &verr,
	    &auth, &rec) == 1);
	CHECK(n == 2);
	CHECK_STR(auth, "dane-ta");
	free(rec);
	tlsa_rr_clear(&rr[0]);
	tlsa_rr_clear(&rr[1]);
	SSL_CTX_free(s);
	cert_free(&leaf);
	cert_free(&k2);
}

int
main(void)
{
	char err[256];

	cctx = SSL_CTX_new(TLS_client_method());
	CHECK(cctx != NULL);
	CHECK(dane_ctx_init(cctx, err, sizeof(err)) == 0);
	CHECK(dane_ctx_init(NULL, err, sizeof(err)) == -1);
	ca = mkcert("Test DANE CA", NULL, NULL, 365);
	other_ca = mkcert("Other CA", NULL, NULL, 365);

	test_dane_ee();
	test_dane_ta();
	test_ta_other_ca();
	test_pkix_not_loaded();
	test_mixed_first_match_wins();

	cert_free(&ca);
	cert_free(&other_ca);
	SSL_CTX_free(cctx);
	return t_done();
}
