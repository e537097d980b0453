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

#endif
