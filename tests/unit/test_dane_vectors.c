/*
 * test_dane_vectors.c - OpenSSL's 54 DANE verification vectors
 * (tests/vectors/openssl-dane/danetest.in, from openssl-3.3.0
 * test/danetest.in) run through dane.c: every TLSA line is parsed with
 * tlsa_from_text() and loaded with dane_ssl_setup_ex(), the chain is
 * verified with X509_STORE_CTX + X509_STORE_CTX_set0_dane(), and the
 * verify error and the matching depth are compared with the vector.
 *
 * Harness settings as upstream (see the vectors' README): CAfile
 * danetest.pem, base domain "example.com", mtype 2 = SHA-512 with
 * ordinal 1 and mtype 1 = SHA-256 with ordinal 2, DANE-EE name checks
 * on unless the block says nonamechecks, and every usage loaded
 * (DANE_SETUP_ANY_USAGE: the vectors include PKIX-TA/PKIX-EE cases).
 * Blocks that declare fewer TLSA records than they list are read as
 * upstream does: only the declared number, the rest is skipped as
 * non-PEM text (#43-#46).
 *
 * Separately: the SMTP path (dane_ssl_setup() without flags) drops
 * PKIX-TA/PKIX-EE (RFC 7672 §3.1.3), and the tlsa_* helpers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "dane.h"
#include "util.h"
#include "t.h"

#define BASE_DOMAIN	"example.com"
#define NVECTORS	54

struct block {
	int num;			/* 1-based, as "# N" in the file */
	int lineno;
	int ntlsa, ncert, nonamechecks, want, want_depth;
	struct tlsa_rr *rrs;
	size_t nrr;
	STACK_OF(X509) *chain;
};

static char *
find_vectors(const char *file)
{
	const char *src = getenv("DR_SRCDIR");
	char *p;
	FILE *f;

	if (src != NULL && *src != '\0') {
		p = xasprintf("%s/tests/vectors/openssl-dane/%s", src, file);
		if ((f = fopen(p, "r")) != NULL) {
			fclose(f);
			return p;
		}
		free(p);
	}
	return NULL;
}

/* Lines of the file, NUL-terminated in place. */
struct lines {
	char *buf;
	char **v;
	size_t n;
	size_t pos;
};

static int
lines_load(const char *path, struct lines *l)
{
	FILE *f;
	long sz;
	size_t cap = 0, i;
	char *p;

	memset(l, 0, sizeof(*l));
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	if (fseek(f, 0, SEEK_END) == -1 || (sz = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) == -1) {
		fclose(f);
		return -1;
	}
	l->buf = xmalloc((size_t)sz + 1);
	if (fread(l->buf, 1, (size_t)sz, f) != (size_t)sz) {
		fclose(f);
		return -1;
	}
	fclose(f);
	l->buf[sz] = '\0';
	for (p = l->buf, i = 0; ; i++) {
		if (l->n == cap) {
			cap = cap ? cap * 2 : 1024;
			l->v = xrealloc(l->v, cap * sizeof(*l->v));
		}
		l->v[l->n++] = p;
		if ((p = strchr(p, '\n')) == NULL)
			break;
		*p++ = '\0';
		if (*p == '\0')
			break;
	}
	return 0;
}

static int
skippable(const char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\r')
		s++;
	return *s == '\0' || *s == '#';
}

/* Next block, 1 ok, 0 end, -1 parse error. */
static int
next_block(struct lines *l, struct block *b, int num)
{
	const char *s;
	size_t i;
	int got;

	memset(b, 0, sizeof(*b));
	b->num = num;
	while (l->pos < l->n && skippable(l->v[l->pos]))
		l->pos++;
	if (l->pos >= l->n)
		return 0;
	b->lineno = (int)l->pos + 1;
	s = l->v[l->pos++];
	if (sscanf(s, "%d %d %d %d %d", &b->ntlsa, &b->ncert,
	    &b->nonamechecks, &b->want, &b->want_depth) != 5 ||
	    b->ntlsa < 0 || b->ntlsa > 16 || b->ncert < 1 || b->ncert > 16) {
		fprintf(stderr, "line %d: bad block header \"%s\"\n",
		    b->lineno, s);
		return -1;
	}
	b->rrs = xcalloc((size_t)b->ntlsa + 1, sizeof(*b->rrs));
	for (i = 0; i < (size_t)b->ntlsa; i++) {
		while (l->pos < l->n && skippable(l->v[l->pos]))
			l->pos++;
		if (l->pos >= l->n)
			return -1;
		/* The project's own parser. */
		if (tlsa_from_text(l->v[l->pos], &b->rrs[b->nrr]) == -1) {
			fprintf(stderr, "line %zu: tlsa_from_text failed\n",
			    l->pos + 1);
			return -1;
		}
		b->nrr++;
		l->pos++;
	}
	b->chain = sk_X509_new_null();
	for (got = 0; got < b->ncert; got++) {
		size_t start, end;
		BIO *bio;
		X509 *x;
		char *pem;
		size_t len = 0, k;

		/* Anything before BEGIN is not PEM and skipped. */
		while (l->pos < l->n && strncmp(l->v[l->pos],
		    "-----BEGIN CERTIFICATE-----", 27) != 0)
			l->pos++;
		if (l->pos >= l->n)
			return -1;
		start = l->pos;
		while (l->pos < l->n && strncmp(l->v[l->pos],
		    "-----END CERTIFICATE-----", 25) != 0)
			l->pos++;
		if (l->pos >= l->n)
			return -1;
		end = l->pos++;
		for (k = start; k <= end; k++)
			len += strlen(l->v[k]) + 1;
		pem = xmalloc(len + 1);
		pem[0] = '\0';
		for (k = start; k <= end; k++) {
			strcat(pem, l->v[k]);
			strcat(pem, "\n");
		}
		bio = BIO_new_mem_buf(pem, (int)len);
		x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
		BIO_free(bio);
		free(pem);
		if (x == NULL) {
			fprintf(stderr, "line %zu: bad certificate\n", start + 1);
			return -1;
		}
		sk_X509_push(b->chain, x);
	}
	return 1;
}

static void
block_free(struct block *b)
{
	size_t i;

	for (i = 0; i < b->nrr; i++)
		tlsa_rr_clear(&b->rrs[i]);
	free(b->rrs);
	if (b->chain != NULL)
		sk_X509_pop_free(b->chain, X509_free);
	memset(b, 0, sizeof(*b));
}

/* Verify the chain as libssl would for a server certificate. */
static int
verify_chain(SSL *ssl, STACK_OF(X509) *chain)
{
	X509_STORE_CTX *sctx;
	X509_STORE *store;
	int err;

	store = SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl));
	if ((sctx = X509_STORE_CTX_new()) == NULL)
		return -1;
	if (X509_STORE_CTX_init(sctx, store, sk_X509_value(chain, 0),
	    chain) != 1 ||
	    X509_STORE_CTX_set_ex_data(sctx,
	    SSL_get_ex_data_X509_STORE_CTX_idx(), ssl) != 1) {
		X509_STORE_CTX_free(sctx);
		return -1;
	}
	X509_STORE_CTX_set_default(sctx, "ssl_server");
	X509_VERIFY_PARAM_set1(X509_STORE_CTX_get0_param(sctx),
	    SSL_get0_param(ssl));
	X509_STORE_CTX_set0_dane(sctx, SSL_get0_dane(ssl));
	(void)X509_verify_cert(sctx);
	err = X509_STORE_CTX_get_error(sctx);
	SSL_set_verify_result(ssl, err);
	X509_STORE_CTX_free(sctx);
	return err;
}

/*
 * The depth of the matched TLSA record.  SSL_get0_dane_authority() hides
 * it unless verification succeeded; upstream's harness reads the
 * internal SSL_DANE struct instead.  With the public API: present the
 * result as OK for the call, then restore the real one.
 */
static int
match_depth(SSL *ssl, int verr)
{
	int depth;

	SSL_set_verify_result(ssl, X509_V_OK);
	depth = SSL_get0_dane_authority(ssl, NULL, NULL);
	SSL_set_verify_result(ssl, verr);
	return depth;
}

static SSL_CTX *
vector_ctx(const char *cafile)
{
	SSL_CTX *ctx;
	char err[256];

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		return NULL;
	if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (dane_ctx_init(ctx, err, sizeof(err)) == -1) {
		fprintf(stderr, "dane_ctx_init: %s\n", err);
		SSL_CTX_free(ctx);
		return NULL;
	}
	/* The vectors' digest ordinals (upstream's danetest harness). */
	if (SSL_CTX_dane_mtype_set(ctx, EVP_sha512(), 2, 1) <= 0 ||
	    SSL_CTX_dane_mtype_set(ctx, EVP_sha256(), 1, 2) <= 0) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static int
run_vectors(const char *in, const char *cafile)
{
	struct lines l;
	struct block b;
	SSL_CTX *ctx;
	SSL *ssl;
	char err[256];
	int num = 0, r, verr, depth, added, ok, nok = 0;

	if (lines_load(in, &l) == -1) {
		fprintf(stderr, "%s: %s\n", in, strerror(errno));
		CHECK(0);
		return -1;
	}
	if ((ctx = vector_ctx(cafile)) == NULL) {
		fprintf(stderr, "cannot make the vector SSL_CTX\n");
		CHECK(0);
		return -1;
	}
	while ((r = next_block(&l, &b, num + 1)) == 1) {
		num++;
		ssl = SSL_new(ctx);
		added = dane_ssl_setup_ex(ssl, BASE_DOMAIN, NULL, 0, b.rrs,
		    b.nrr, DANE_SETUP_ANY_USAGE |
		    (b.nonamechecks ? 0 : DANE_SETUP_EE_NAMECHECKS),
		    err, sizeof(err));
		if (added < 0) {
			fprintf(stderr, "vector #%d (line %d): setup: %s\n",
			    num, b.lineno, err);
			CHECK(added >= 0);
			SSL_free(ssl);
			block_free(&b);
			continue;
		}
		verr = verify_chain(ssl, b.chain);
		depth = match_depth(ssl, verr);
		ok = (verr == b.want && depth == b.want_depth);
		if (!ok)
			fprintf(stderr, "FAIL vector #%d (line %d): verify "
			    "%d (%s) depth %d, want %d depth %d\n", num,
			    b.lineno, verr,
			    X509_verify_cert_error_string(verr), depth,
			    b.want, b.want_depth);
		CHECK(ok);
		nok += ok;
		/* dane_authority() agrees with the matched record. */
		if (ok && verr == X509_V_OK && depth >= 0) {
			char *rec = NULL;
			const char *auth = dane_authority(ssl, &rec);
			uint8_t u;

			CHECK(auth != NULL && rec != NULL);
			if (SSL_get0_dane_tlsa(ssl, &u, NULL, NULL, NULL,
			    NULL) >= 0 && auth != NULL)
				CHECK_STR(auth, u == 3 ? "dane-ee" :
				    u == 2 ? "dane-ta" : u == 1 ? "pkix-ee" :
				    "pkix-ta");
			free(rec);
		}
		ERR_clear_error();
		SSL_free(ssl);
		block_free(&b);
	}
	CHECK(r == 0);
	printf("openssl-dane vectors: %d of %d blocks passed\n", nok, num);
	CHECK(num == NVECTORS);
	SSL_CTX_free(ctx);
	free(l.v);
	free(l.buf);
	return 0;
}

static const char *ee_spki_sha256 =
    "3 1 1 3111668338043DE264D0256A702248696C9484B6221A42740F920187B4C61838";

static void
test_text(void)
{
	struct tlsa_rr rr, *dup;
	char *s;

	CHECK(tlsa_from_text(ee_spki_sha256, &rr) == 0);
	CHECK(rr.usage == 3 && rr.selector == 1 && rr.mtype == 1);
	CHECK(rr.len == 32 && rr.data[0] == 0x31 && rr.data[31] == 0x38);
	s = tlsa_to_text(&rr);
	CHECK_STR(s, ee_spki_sha256);
	free(s);
	CHECK(tlsa_usable(&rr));
	dup = tlsa_rrs_dup(&rr, 1);
	CHECK(dup != NULL && dup[0].len == 32 && dup[0].data != rr.data &&
	    memcmp(dup[0].data, rr.data, 32) == 0);
	tlsa_rrs_free(dup, 1);
	tlsa_rr_clear(&rr);
	CHECK(rr.data == NULL && rr.len == 0);

	/* Lower case and white space inside the hex (zone file style). */
	CHECK(tlsa_from_text("2 0 1 0daa7642 5a1fc398c55a643d5a2485ae4cc2b64b"
	    "9515a75054722b2e83c31bbd", &rr) == 0);
	CHECK(rr.len == 32 && rr.usage == 2 && tlsa_usable(&rr));
	tlsa_rr_clear(&rr);

	/* Refused. */
	CHECK(tlsa_from_text("", &rr) == -1);
	CHECK(tlsa_from_text("3 1 1", &rr) == -1);
	CHECK(tlsa_from_text("3 1 1 ", &rr) == -1);
	CHECK(tlsa_from_text("3 1 1 ABC", &rr) == -1);		/* odd */
	CHECK(tlsa_from_text("3 1 1 ABCG", &rr) == -1);
	CHECK(tlsa_from_text("256 1 1 AB", &rr) == -1);
	CHECK(tlsa_from_text("3 1 -1 AB", &rr) == -1);
	CHECK(tlsa_from_text("3 1 1x AB", &rr) == -1);
	CHECK(tlsa_from_text("0003 1 1 AB", &rr) == -1);
	CHECK(tlsa_from_text(NULL, &rr) == -1);
}

static void
test_usable(void)
{
	struct tlsa_rr rr;
	uint8_t d32[32], d64[64], junk[20];

	memset(d32, 0xab, sizeof(d32));
	memset(d64, 0xcd, sizeof(d64));
	memset(junk, 0x30, sizeof(junk));
	memset(&rr, 0, sizeof(rr));
	rr.selector = 1;
	rr.mtype = 1;
	rr.data = d32;
	rr.len = 32;

	rr.usage = 0;
	CHECK(!tlsa_usable(&rr));	/* PKIX-TA unusable for SMTP */
	rr.usage = 1;
	CHECK(!tlsa_usable(&rr));	/* PKIX-EE unusable for SMTP */
	rr.usage = 2;
	CHECK(tlsa_usable(&rr));
	rr.usage = 3;
	CHECK(tlsa_usable(&rr));
	rr.usage = 4;
	CHECK(!tlsa_usable(&rr));
	rr.usage = 3;
	rr.selector = 2;
	CHECK(!tlsa_usable(&rr));
	rr.selector = 0;
	CHECK(tlsa_usable(&rr));
	rr.len = 31;
	CHECK(!tlsa_usable(&rr));	/* SHA-256 must be 32 bytes */
	rr.mtype = 2;
	rr.data = d64;
	rr.len = 64;
	CHECK(tlsa_usable(&rr));
	rr.len = 32;
	CHECK(!tlsa_usable(&rr));	/* SHA-512 must be 64 bytes */
	rr.mtype = 3;
	rr.len = 64;
	CHECK(!tlsa_usable(&rr));	/* unknown matching type */
	rr.mtype = 0;			/* Full: must decode */
	rr.data = junk;
	rr.len = sizeof(junk);
	CHECK(!tlsa_usable(&rr));
	rr.len = 0;
	CHECK(!tlsa_usable(&rr));
	CHECK(!tlsa_usable(NULL));

	/* Full SPKI from the vectors decodes. */
	CHECK(tlsa_from_text("3 1 0 3059301306072A8648CE3D020106082A8648CE3D03"
	    "010703420004664995F47BDE35E7B4DE48B258E9E8A07ADEBBDB863B3D06F481"
	    "A1946C83DA9F56CFF4D9389B855D2F364B1585B0C734FCFA263026964FF5A430"
	    "8B3FC879BDB8", &rr) == 0);
	CHECK(tlsa_usable(&rr));
	rr.len -= 1;			/* truncated */
	CHECK(!tlsa_usable(&rr));
	tlsa_rr_clear(&rr);
}

/* The SMTP path loads DANE-TA/DANE-EE only. */
static void
test_smtp_filter(const char *cafile)
{
	SSL_CTX *ctx;
	SSL *ssl;
	struct tlsa_rr rrs[4];
	char err[256];
	const char *names[] = { "mx.example.com", "example.com" };

	CHECK((ctx = vector_ctx(cafile)) != NULL);
	if (ctx == NULL)
		return;
	memset(rrs, 0, sizeof(rrs));
	CHECK(tlsa_from_text("1 1 1 3111668338043DE264D0256A702248696C9484B62"
	    "21A42740F920187B4C61838", &rrs[0]) == 0);
	CHECK(tlsa_from_text("0 0 1 FE7C8E01110627A782765E468D8CB4D2CC7907EAC"
	    "4BA5974CD92B540ED2AAC3C", &rrs[1]) == 0);
	CHECK(tlsa_from_text(ee_spki_sha256, &rrs[2]) == 0);
	CHECK(tlsa_from_text("2 0 1 0DAA76425A1FC398C55A643D5A2485AE4CC2B64B9"
	    "515A75054722B2E83C31BBD", &rrs[3]) == 0);

	/* PKIX only: nothing usable, no verification forced. */
	ssl = SSL_new(ctx);
	CHECK(dane_ssl_setup(ssl, "mx.example.com", names, 2, rrs, 2, err,
	    sizeof(err)) == 0);
	CHECK(SSL_get_verify_mode(ssl) == SSL_VERIFY_NONE);
	SSL_free(ssl);

	/* Mixed: the two DANE records count, verification forced, SNI. */
	ssl = SSL_new(ctx);
	CHECK(dane_ssl_setup(ssl, "mx.example.com", names, 2, rrs, 4, err,
	    sizeof(err)) == 2);
	CHECK(SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER);
	CHECK_STR(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name),
	    "mx.example.com");
	SSL_free(ssl);

	/* No base domain: refused. */
	ssl = SSL_new(ctx);
	CHECK(dane_ssl_setup(ssl, "", NULL, 0, rrs, 4, err, sizeof(err)) ==
	    -1);
	SSL_free(ssl);

	/* Not verified: no authority. */
	ssl = SSL_new(ctx);
	{
		char *rec = (char *)1;

		CHECK(dane_authority(ssl, &rec) == NULL && rec == NULL);
	}
	SSL_free(ssl);

	for (size_t i = 0; i < 4; i++)
		tlsa_rr_clear(&rrs[i]);
	SSL_CTX_free(ctx);
}

/*
 * The SMTP path against the vectors' chain: the leaf (CN=example.com)
 * under "Issuer CA" under "Root CA".  DANE-TA name checks accept the
 * TLSA base domain and the extra names, nothing else; DANE-EE needs no
 * name; PKIX-EE records never authenticate.
 */
static void
test_smtp_names(const char *in, const char *cafile)
{
	struct lines l;
	struct block b;
	SSL_CTX *ctx;
	SSL *ssl;
	struct tlsa_rr ta, ee, pkix;
	char err[256];
	const char *mxnames[] = { "example.com" };
	int r, n = 0;

	if (lines_load(in, &l) == -1 || (ctx = vector_ctx(cafile)) == NULL) {
		CHECK(0);
		return;
	}
	/* Vector #11 has the 3-certificate chain. */
	while ((r = next_block(&l, &b, n + 1)) == 1 && ++n < 11)
		block_free(&b);
	CHECK(r == 1 && n == 11 && sk_X509_num(b.chain) == 3);
	if (r != 1) {
		SSL_CTX_free(ctx);
		return;
	}
	/* Issuer CA SPKI SHA-256 as DANE-TA; leaf SPKI as DANE-EE. */
	CHECK(tlsa_from_text("2 1 1 65A457617072DA3E7F1152471EB3D406526530097"
	    "D0A9AA34EB47C990A1FCDA3", &ta) == 0);
	CHECK(tlsa_from_text(ee_spki_sha256, &ee) == 0);
	CHECK(tlsa_from_text("1 1 1 3111668338043DE264D0256A702248696C9484B62"
	    "21A42740F920187B4C61838", &pkix) == 0);

	/* DANE-TA, base = the certificate's name. */
	ssl = SSL_new(ctx);
	CHECK(dane_ssl_setup(ssl, "example.com", NULL, 0, &ta, 1, err,
	    sizeof(err)) == 1);
	CHECK(verify_chain(ssl, b.chain) == X509_V_OK);
	CHECK_STR(dane_authority(ssl, NULL), "dane-ta");
	SSL_free(ssl);

	/* DANE-TA, base differs, the MX name matches: accepted. */
	ssl = SSL_new(ctx);
	CHECK(dane_ssl_setup(ssl, "mx.other.example", mxnames, 1, &ta, 1,
	    err, sizeof(err)) == 1);
	CHECK(verify_chain(ssl, b.chain) == X509_V_OK);
	SSL_free(ssl);

	/* DANE-TA, no name matches: hostname mismatch. */
	ssl = SSL_new(ctx);
	CHECK(dane_ssl_setup(ssl, "mx.other.example", NULL, 0, &ta, 1, err,
	    sizeof(err)) == 1);
	CHECK(verify_chain(ssl, b.chain) == X509_V_ERR_HOSTNAME_MISMATCH);
	CHECK(dane_authority(ssl, NULL) == NULL);
	SSL_free(ssl);

	/* DANE-EE: no name check. */
	ssl = SSL_new(ctx);
	CHECK(dane_ssl_setup(ssl, "mx.other.example", NULL, 0, &ee, 1, err,
	    sizeof(err)) == 1);
	CHECK(verify_chain(ssl, b.chain) == X509_V_OK);
	{
		char *rec = NULL;

		CHECK_STR(dane_authority(ssl, &rec), "dane-ee");
		CHECK_STR(rec, ee_spki_sha256);
		free(rec);
	}
	SSL_free(ssl);

	/* PKIX-EE for the same key is dropped on the SMTP path. */
	ssl = SSL_new(ctx);
	CHECK(dane_ssl_setup(ssl, "example.com", NULL, 0, &pkix, 1, err,
	    sizeof(err)) == 0);
	SSL_free(ssl);

	tlsa_rr_clear(&ta);
	tlsa_rr_clear(&ee);
	tlsa_rr_clear(&pkix);
	block_free(&b);
	SSL_CTX_free(ctx);
	free(l.v);
	free(l.buf);
}

int
main(void)
{
	char *in, *cafile;

	in = find_vectors("danetest.in");
	cafile = find_vectors("danetest.pem");
	if (in == NULL || cafile == NULL) {
		fprintf(stderr, "FAIL: openssl-dane vectors not found "
		    "($DR_SRCDIR/tests/vectors/openssl-dane)\n");
		return 1;
	}
	test_text();
	test_usable();
	run_vectors(in, cafile);
	test_smtp_filter(cafile);
	test_smtp_names(in, cafile);
	free(in);
	free(cafile);
	return t_done();
}
