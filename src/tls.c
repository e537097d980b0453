/*
 * tls.c - OpenSSL contexts (stub; server half being written by engineer C,
 * client functions are appended at the end by engineer G).
 */
#include <stdio.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tls.h"

SSL_CTX *
tls_server_ctx_new(const char *cert_file, const char *key_file, char *err,
    size_t errlen)
{
	snprintf(err, errlen, "tls_server_ctx_new: not implemented yet");
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
	ERR_clear_error();
	return buf;
}

/* ------------------------------------------------------------------ */
/* Client side (outbound STARTTLS): engineer G.  Stubs, being written. */

const char *
tls_auth_name(enum tls_auth a)
{
	return "none";
}

SSL_CTX *
tls_client_ctx_new(const char *ca_file, char *err, size_t errlen)
{
	snprintf(err, errlen, "tls_client_ctx_new: not implemented yet");
	return NULL;
}

SSL *
tls_client_ssl_new(SSL_CTX *ctx, const struct tls_client_params *p,
    char *err, size_t errlen)
{
	snprintf(err, errlen, "tls_client_ssl_new: not implemented yet");
	return NULL;
}

void
tls_client_outcome(SSL *ssl, enum tls_client_mode mode, int handshake_ok,
    const char *errtext, struct tls_outcome *out)
{
}

const char *
tls_verify_result_type(long verify_error)
{
	return "validation-failure";
}
