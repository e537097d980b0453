/*
 * fuzz_cert.h - certificates made at a fuzz target's start-up, for the
 * targets that run a real TLS peer in-process (fuzz_https.c,
 * fuzz_smtpd_session.c).  Static functions: include it once per target.
 * Any failure aborts (the rig is broken, not the code under test).
 */
#ifndef DR_FUZZ_CERT_H
#define DR_FUZZ_CERT_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

static EVP_PKEY *
fuzz_newkey(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	if (k == NULL)
		abort();
	return k;
}

static void
fuzz_add_ext(X509 *x, X509 *issuer, int nid, const char *value)
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
 * A certificate for cn with key, valid for ten years: a CA (ca NULL,
 * self-signed) or a server certificate signed by ca/cakey with san (e.g.
 * "DNS:mx.example", may be NULL).
 */
static X509 *
fuzz_mkcert(const char *cn, EVP_PKEY *key, X509 *ca, EVP_PKEY *cakey,
    const char *san)
{
	static long serial = 1;
	X509 *x = X509_new();
	X509_NAME *name;

	if (x == NULL)
		abort();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 3650L * 86400);
	X509_set_pubkey(x, key);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, ca ? X509_get_subject_name(ca) : name);
	if (ca == NULL) {
		fuzz_add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
		fuzz_add_ext(x, x, NID_key_usage, "critical,keyCertSign");
		fuzz_add_ext(x, x, NID_subject_key_identifier, "hash");
	} else {
		fuzz_add_ext(x, ca, NID_basic_constraints, "CA:FALSE");
		fuzz_add_ext(x, ca, NID_ext_key_usage, "serverAuth");
		if (san != NULL)
			fuzz_add_ext(x, ca, NID_subject_alt_name, san);
	}
	if (X509_sign(x, ca ? cakey : key, EVP_sha256()) == 0)
		abort();
	return x;
}

/* Write x (and key, if not NULL) as PEM to path, mode 0600. */
static void
fuzz_write_pem(const char *path, X509 *x, EVP_PKEY *key)
{
	FILE *f;
	int fd;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1 ||
	    (f = fdopen(fd, "w")) == NULL)
		abort();
	if ((x != NULL && PEM_write_X509(f, x) != 1) || (key != NULL &&
	    PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) != 1) ||
	    fclose(f) != 0)
		abort();
}

#endif
