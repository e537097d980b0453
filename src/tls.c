/*
 * tls.c - OpenSSL contexts and helpers.
 *
 * Server half (inbound STARTTLS, RFC 3207), engineer C:
 * tls_server_ctx_new() builds the one SSL_CTX the SMTP server uses: TLS
 * 1.2 minimum (RFC 8996 retired 1.0/1.1), forward-secret AEAD cipher
 * suites only for TLS 1.2 (TLS 1.3 suites are OpenSSL's defaults), no
 * compression (CRIME), no renegotiation, server cipher preference.  The
 * certificate file may hold a chain (leaf first); the key must match the
 * leaf, checked at load so a mismatch is a start-up error, not a failed
 * handshake later.  tls_errstr() renders OpenSSL's error queue.
 *
 * The client half follows at the end of the file.
 */
#include <stdio.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tls.h"

#define TLS12_SERVER_CIPHERS						\
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"	\
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"	\
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"	\
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:"		\
	"DHE-RSA-CHACHA20-POLY1305"

SSL_CTX *
tls_server_ctx_new(const char *cert_file, const char *key_file, char *err,
    size_t errlen)
{
	static const unsigned char sid_ctx[] = "danerelay-smtpd";
	SSL_CTX *ctx;
	char ebuf[256];

	if (cert_file == NULL || key_file == NULL) {
		snprintf(err, errlen, "tls_cert_file and tls_key_file must "
		    "both be set");
		return NULL;
	}
	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		snprintf(err, errlen, "SSL_CTX_new: %s",
		    tls_errstr(ebuf, sizeof(ebuf)));
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, TLS12_SERVER_CIPHERS) != 1 ||
	    SSL_CTX_set_dh_auto(ctx, 1) != 1 ||
	    SSL_CTX_set_session_id_context(ctx, sid_ctx,
	    sizeof(sid_ctx) - 1) != 1) {
		snprintf(err, errlen, "TLS server settings: %s",
		    tls_errstr(ebuf, sizeof(ebuf)));
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
	    SSL_OP_SINGLE_DH_USE | SSL_OP_SINGLE_ECDH_USE);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		snprintf(err, errlen, "tls_cert_file %s: %s", cert_file,
		    tls_errstr(ebuf, sizeof(ebuf)));
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM)
	    != 1) {
		snprintf(err, errlen, "tls_key_file %s: %s", key_file,
		    tls_errstr(ebuf, sizeof(ebuf)));
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "tls_key_file %s does not match the "
		    "certificate in %s: %s", key_file, cert_file,
		    tls_errstr(ebuf, sizeof(ebuf)));
		goto fail;
	}
	return ctx;
 fail:
	SSL_CTX_free(ctx);
	return NULL;
}

const char *
tls_errstr(char *buf, size_t len)
{
	unsigned long e;

	if (len == 0)
		return buf;
	buf[0] = '\0';
	if ((e = ERR_get_error()) != 0)
		ERR_error_string_n(e, buf, len);
	else
		snprintf(buf, len, "unknown error");
	ERR_clear_error();
	return buf;
}

/* ------------------------------------------------------------------ */
/*
 * Client side (outbound STARTTLS, engineer G): one SSL_CTX for every
 * outbound connection, one SSL per connection armed for its mode, and
 * the outcome for the delivery log and TLSRPT.
 *
 * Implements RFC 7672 §2.2 (TLS mandatory when TLSA records exist; all
 * unusable -> unauthenticated TLS), §3.1 (DANE-TA / DANE-EE through
 * OpenSSL's DANE API, see dane.c), §8.1 (SNI = TLSA base domain);
 * RFC 8461 §4.1-4.2 / RFC 6125 (WebPKI name match against subjectAltName
 * DNS-IDs only, never the subject CN; wildcard only as the whole
 * leftmost label); RFC 8460 §4.3 (result-types of failures).
 * Nothing is verified by hand: OpenSSL builds and checks the chain.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "dane.h"
#include "log.h"
#include "util.h"

/* ex_data slot marking an SSL armed for DANE with no usable record. */
static int dane_unusable_idx = -1;
static char dane_unusable_mark;

const char *
tls_auth_name(enum tls_auth a)
{
	switch (a) {
	case TLS_AUTH_DANE_TA:
		return "dane-ta";
	case TLS_AUTH_DANE_EE:
		return "dane-ee";
	case TLS_AUTH_WEBPKI:
		return "webpki";
	case TLS_AUTH_NONE:
		break;
	}
	return "none";
}

SSL_CTX *
tls_client_ctx_new(const char *ca_file, char *err, size_t errlen)
{
	SSL_CTX *ctx;
	char ebuf[256];

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		snprintf(err, errlen, "SSL_CTX_new: %s",
		    tls_errstr(ebuf, sizeof(ebuf)));
		return NULL;
	}
	/*
	 * TLS 1.2 minimum for every level: OpenSSL 3 refuses 1.0/1.1 at its
	 * default security level anyway, and one context keeps it simple.
	 */
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
		snprintf(err, errlen, "cannot set TLS 1.2 minimum: %s",
		    tls_errstr(ebuf, sizeof(ebuf)));
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (dane_unusable_idx == -1 &&
	    (dane_unusable_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL,
	    NULL)) == -1) {
		snprintf(err, errlen, "SSL_get_ex_new_index failed");
		goto fail;
	}
	if (ca_file != NULL && ca_file[0] != '\0') {
		if (!SSL_CTX_load_verify_locations(ctx, ca_file, NULL)) {
			snprintf(err, errlen, "cannot load CA file %s: %s",
			    ca_file, tls_errstr(ebuf, sizeof(ebuf)));
			goto fail;
		}
	} else if (!SSL_CTX_set_default_verify_paths(ctx)) {
		snprintf(err, errlen, "cannot load the system CA roots: %s",
		    tls_errstr(ebuf, sizeof(ebuf)));
		goto fail;
	}
	/* Default: no verification; each SSL sets its own mode. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (dane_ctx_init(ctx, err, errlen) == -1)
		goto fail;
	return ctx;
 fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* RFC 6066 §3: SNI carries a host name, never an address literal. */
static int
sni_ok(const char *name)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (name == NULL || name[0] == '\0')
		return 0;
	return inet_pton(AF_INET, name, &a4) != 1 &&
	    inet_pton(AF_INET6, name, &a6) != 1;
}

/*
 * The reference names OpenSSL checks with the chain (WEBPKI, and MTA-STS
 * testing under NOAUTH), and SNI.  RFC 8461 §4.2 / RFC 6125 §6.4.4:
 * DNS-IDs (subjectAltName) only; a certificate whose CN alone names the
 * host does not match (as in https.c).  Wildcards only as the whole
 * leftmost label.
 */
static int
set_names(SSL *ssl, const struct tls_client_params *p, char *err,
    size_t errlen)
{
	char ebuf[256];
	size_t i;

	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS |
	    X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
	for (i = 0; i < p->nnames; i++) {
		if ((i == 0 ? SSL_set1_host(ssl, p->names[i]) :
		    SSL_add1_host(ssl, p->names[i])) != 1) {
			snprintf(err, errlen, "bad reference name %s: %s",
			    p->names[i], tls_errstr(ebuf, sizeof(ebuf)));
			return -1;
		}
	}
	if (sni_ok(p->sni) && !SSL_set_tlsext_host_name(ssl, p->sni)) {
		snprintf(err, errlen, "bad SNI name %s: %s", p->sni,
		    tls_errstr(ebuf, sizeof(ebuf)));
		return -1;
	}
	return 0;
}

SSL *
tls_client_ssl_new(SSL_CTX *ctx, const struct tls_client_params *p,
    char *err, size_t errlen)
{
	SSL *ssl;
	int n;
	char ebuf[256];

	if ((ssl = SSL_new(ctx)) == NULL) {
		snprintf(err, errlen, "SSL_new: %s",
		    tls_errstr(ebuf, sizeof(ebuf)));
		return NULL;
	}
	SSL_set_connect_state(ssl);

	switch (p->mode) {
	case TLS_CLIENT_NOAUTH:
		SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
		/*
		 * Names given (MTA-STS testing): OpenSSL checks them with the
		 * chain, as WEBPKI would, but nothing is enforced; the
		 * outcome's trusted/verify_error say what enforce mode would
		 * have found (RFC 8461 §5, RFC 8460 certificate-host-mismatch).
		 */
		if (set_names(ssl, p, err, errlen) == -1)
			goto fail;
		break;

	case TLS_CLIENT_DANE:
		if (p->tlsa_base == NULL || p->tlsa_base[0] == '\0') {
			snprintf(err, errlen, "DANE without a TLSA base domain");
			goto fail;
		}
		/* SNI = TLSA base domain (RFC 7672 §8.1). */
		if (!SSL_set_tlsext_host_name(ssl, p->tlsa_base)) {
			snprintf(err, errlen, "bad SNI name %s: %s",
			    p->tlsa_base, tls_errstr(ebuf, sizeof(ebuf)));
			goto fail;
		}
		n = dane_ssl_setup(ssl, p->tlsa_base, p->names, p->nnames,
		    p->tlsa, p->ntlsa, err, errlen);
		if (n == -1)
			goto fail;
		if (n == 0) {
			/*
			 * RFC 7672 §2.2: every record unusable -> TLS is still
			 * mandatory, but the peer is not authenticated.
			 */
			SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
			SSL_set_ex_data(ssl, dane_unusable_idx,
			    &dane_unusable_mark);
		} else
			SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
		break;

	case TLS_CLIENT_WEBPKI:
		if (p->nnames == 0 || p->names[0] == NULL) {
			snprintf(err, errlen, "WebPKI verification without a "
			    "name to match");
			goto fail;
		}
		if (set_names(ssl, p, err, errlen) == -1)
			goto fail;
		SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
		break;

	default:
		snprintf(err, errlen, "unknown TLS client mode %d", p->mode);
		goto fail;
	}
	return ssl;
 fail:
	SSL_free(ssl);
	return NULL;
}

const char *
tls_verify_result_type(long e)
{
	switch (e) {
	case X509_V_OK:
		return NULL;
	case X509_V_ERR_CERT_HAS_EXPIRED:
		return "certificate-expired";
	case X509_V_ERR_HOSTNAME_MISMATCH:
		return "certificate-host-mismatch";
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_CERT_UNTRUSTED:
	case X509_V_ERR_CERT_REJECTED:
	case X509_V_ERR_INVALID_CA:
	case X509_V_ERR_CERT_CHAIN_TOO_LONG:
	case X509_V_ERR_PATH_LENGTH_EXCEEDED:
		return "certificate-not-trusted";
	case X509_V_ERR_DANE_NO_MATCH:
		/* No TLSA record matched the chain (RFC 8460 §4.3.1). */
		return "validation-failure";
	default:
		return "validation-failure";
	}
}

/* The "3 1 1" TLSA data of the peer's certificate: the leaf of the chain
 * it sent (kept also when its verification failed). */
static void
spki_digest(SSL *ssl, X509 *peer, char out[65])
{
	STACK_OF(X509) *chain;
	unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	int len;

	out[0] = '\0';
	if (peer == NULL && (chain = SSL_get_peer_cert_chain(ssl)) != NULL &&
	    sk_X509_num(chain) > 0)
		peer = sk_X509_value(chain, 0);
	if (peer == NULL ||
	    (len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(peer), &der)) <= 0)
		return;
	if (EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL) == 1
	    && mdlen == 32)
		for (i = 0; i < mdlen; i++)
			snprintf(out + 2 * i, 3, "%02x", md[i]);
	OPENSSL_free(der);
}

void
tls_client_outcome(SSL *ssl, enum tls_client_mode mode, int handshake_ok,
    const char *errtext, struct tls_outcome *out)
{
	X509 *peer;
	const char *auth;
	char *rec = NULL;
	size_t n;

	memset(out, 0, sizeof(*out));
	out->auth = TLS_AUTH_NONE;
	if (ssl == NULL) {
		dr_strlcpy(out->reason, errtext ? errtext : "no TLS session",
		    sizeof(out->reason));
		out->result_type = "validation-failure";
		return;
	}
	out->verify_error = SSL_get_verify_result(ssl);
	out->dane_unusable = mode == TLS_CLIENT_DANE &&
	    dane_unusable_idx != -1 &&
	    SSL_get_ex_data(ssl, dane_unusable_idx) == &dane_unusable_mark;
	if ((peer = SSL_get0_peer_certificate(ssl)) != NULL)
		X509_NAME_get_text_by_NID(X509_get_subject_name(peer),
		    NID_commonName, out->peer, sizeof(out->peer));
	spki_digest(ssl, peer, out->spki_sha256);

	if (!handshake_ok) {
		if (out->verify_error != X509_V_OK && mode != TLS_CLIENT_NOAUTH &&
		    !out->dane_unusable) {
			snprintf(out->reason, sizeof(out->reason),
			    "certificate verification failed: %s",
			    X509_verify_cert_error_string(out->verify_error));
			out->result_type =
			    tls_verify_result_type(out->verify_error);
		} else {
			snprintf(out->reason, sizeof(out->reason),
			    "TLS handshake failed: %s",
			    errtext && *errtext ? errtext : "unknown error");
			out->result_type = "validation-failure";
		}
		return;
	}

	out->established = 1;
	dr_strlcpy(out->protocol, SSL_get_version(ssl), sizeof(out->protocol));
	dr_strlcpy(out->cipher, SSL_get_cipher_name(ssl), sizeof(out->cipher));
	out->trusted = peer != NULL && out->verify_error == X509_V_OK;

	switch (mode) {
	case TLS_CLIENT_DANE:
		if (out->dane_unusable || !out->trusted)
			break;
		if ((auth = dane_authority(ssl, &rec)) == NULL)
			break;
		out->auth = strcmp(auth, "dane-ta") == 0 ? TLS_AUTH_DANE_TA :
		    TLS_AUTH_DANE_EE;
		out->verified = 1;
		if (rec != NULL) {
			n = dr_strlcpy(out->tlsa, rec, sizeof(out->tlsa));
			if (n >= sizeof(out->tlsa))
				memcpy(out->tlsa + sizeof(out->tlsa) - 3, "..",
				    3);
			free(rec);
		}
		break;
	case TLS_CLIENT_WEBPKI:
		if (out->trusted) {
			out->auth = TLS_AUTH_WEBPKI;
			out->verified = 1;
		}
		break;
	case TLS_CLIENT_NOAUTH:
		break;
	}
	if ((mode == TLS_CLIENT_DANE && !out->dane_unusable) ||
	    mode == TLS_CLIENT_WEBPKI) {
		if (!out->verified) {
			/* Handshake passed but the peer is not authenticated:
			 * the caller must not go on. */
			snprintf(out->reason, sizeof(out->reason),
			    "peer not authenticated: %s",
			    out->verify_error != X509_V_OK ?
			    X509_verify_cert_error_string(out->verify_error) :
			    "no DANE match");
			out->result_type = out->verify_error != X509_V_OK ?
			    tls_verify_result_type(out->verify_error) :
			    "validation-failure";
		}
	}
}
