/*
 * tls.h - OpenSSL contexts.  Server side for inbound STARTTLS; the client
 * side (DANE / WebPKI) is added by the delivery work.
 */
#ifndef DR_TLS_H
#define DR_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>

/* TLS 1.2+ server context with certificate chain and key. NULL + err. */
SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file,
    char *err, size_t errlen);

/* Human-readable OpenSSL error queue ("error:...") into buf; clears it. */
const char *tls_errstr(char *buf, size_t len);

/*
 * Client side (outbound STARTTLS), engineer G.
 *
 * tls_client_ctx_new() makes the one client SSL_CTX of the process: TLS
 * 1.2 minimum, no compression, no renegotiation, WebPKI roots from ca_file
 * (NULL: the system default paths), DANE enabled (dane_ctx_init()).
 * tls_client_ssl_new() makes the SSL for one connection in one mode:
 *
 *   TLS_CLIENT_NOAUTH  "may"/"encrypt": no verification is enforced; the
 *                      chain is still checked against the roots so the
 *                      outcome says "trusted" or "untrusted" for logs.
 *                      With names[] (MTA-STS testing) they are checked
 *                      too, as for WEBPKI: "trusted" then also means
 *                      the name matched, verify_error says why not.
 *   TLS_CLIENT_DANE    RFC 7672: the usable TLSA records, base domain
 *                      (also the SNI) and reference names go to OpenSSL
 *                      (dane_ssl_setup()); SSL_VERIFY_PEER, so a failed
 *                      verification fails the handshake.  If no record
 *                      is usable, TLS stays mandatory but unauthenticated
 *                      (RFC 7672 §2.2; outcome.dane_unusable is set).
 *   TLS_CLIENT_WEBPKI  PKIX chain to the roots and one of names[] must
 *                      match the certificate (no partial wildcards);
 *                      SSL_VERIFY_PEER.
 *
 * tls_client_outcome() describes a finished (or failed) handshake for the
 * delivery log and TLSRPT.
 */
enum tls_client_mode {
	TLS_CLIENT_NOAUTH = 0,
	TLS_CLIENT_DANE,
	TLS_CLIENT_WEBPKI,
};

struct tlsa_rr;

struct tls_client_params {
	enum tls_client_mode mode;
	const char *sni;		/* NOAUTH/WEBPKI: SNI (NULL: none);
					 * DANE: ignored, SNI = tlsa_base */
	const char *const *names;	/* WEBPKI: names to match;
					 * NOAUTH: names to check, not
					 * enforced (MTA-STS testing);
					 * DANE: extra DANE-TA names (MX
					 * host, next-hop domain) */
	size_t nnames;
	const struct tlsa_rr *tlsa;	/* DANE only */
	size_t ntlsa;
	const char *tlsa_base;		/* DANE: TLSA base domain */
};

enum tls_auth {
	TLS_AUTH_NONE = 0,	/* not authenticated */
	TLS_AUTH_DANE_TA,
	TLS_AUTH_DANE_EE,
	TLS_AUTH_WEBPKI,
};
/* "none", "dane-ta", "dane-ee", "webpki" */
const char *tls_auth_name(enum tls_auth a);

struct tls_outcome {
	int established;	/* handshake completed */
	char protocol[16];	/* "TLSv1.3" */
	char cipher[64];	/* "TLS_AES_256_GCM_SHA384" */
	int trusted;		/* peer chain verified (any mode) */
	int verified;		/* authenticated as the mode demands */
	enum tls_auth auth;
	int dane_unusable;	/* DANE mode but no usable TLSA record */
	char tlsa[160];		/* matched TLSA record, text, maybe "..."
				 * truncated; "" if none */
	char peer[256];		/* peer certificate subject CN, or "" */
	long verify_error;	/* X509_V_* (X509_V_OK = 0) */
	char reason[256];	/* "certificate has expired", handshake
				 * error, or "" */
	const char *result_type;/* RFC 8460 §4.3 result-type on failure
				 * ("certificate-expired", ...), else NULL */
	char spki_sha256[65];	/* SHA-256 of the peer certificate's
				 * SubjectPublicKeyInfo, hex (the data of
				 * a "3 1 1" TLSA record), also when the
				 * verification failed; "" if none came */
};

SSL_CTX *tls_client_ctx_new(const char *ca_file, char *err, size_t errlen);
/* New SSL in connect state for one connection; NULL + err. */
SSL *tls_client_ssl_new(SSL_CTX *ctx, const struct tls_client_params *p,
    char *err, size_t errlen);
/*
 * Fill *out.  handshake_ok: the handshake completed; if 0, the failure is
 * classified from the verification result (or the OpenSSL error given in
 * errtext, may be NULL).  mode is the one the SSL was made for.
 */
void tls_client_outcome(SSL *ssl, enum tls_client_mode mode,
    int handshake_ok, const char *errtext, struct tls_outcome *out);
/* Map an X509_V_* error to an RFC 8460 result-type. */
const char *tls_verify_result_type(long verify_error);

#endif
