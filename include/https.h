/*
 * https.h - a small HTTPS client on libevent's evhttp over OpenSSL, for
 * MTA-STS policy fetches (RFC 8461 §3.3) and TLSRPT https reports
 * (RFC 8460 §3).
 *
 * One request = one connection (HTTP/1.1, "Connection: close"), one
 * callback.  The host name is resolved with danerelay's own resolver (A
 * then AAAA, never the system resolver) unless an address is given; the
 * addresses are tried in order while the TCP connect fails.  The server
 * must present a certificate that chains to the roots of the SSL_CTX
 * (https_ctx_new(): ca_file, or the system default roots) and is valid
 * for exactly `host` (subjectAltName; a wildcard only as the whole
 * leftmost label, never partial); SNI and Host: are `host`.
 *
 * Restrictions enforced here, each with its own failure class:
 *   - redirects are never followed: a 3xx is HTTPS_FAIL_STATUS;
 *   - status: exactly 200 (HTTPS_STATUS_200) or any 2xx (HTTPS_STATUS_2XX);
 *   - want_type: the Content-Type media type (parameters such as
 *     "; charset=utf-8" allowed, case-insensitive), else HTTPS_FAIL_TYPE;
 *   - max_body: checked while reading (Content-Length, chunked and
 *     read-until-close bodies alike), HTTPS_FAIL_TOO_BIG;
 *   - connect_timeout_ms bounds the TCP connect and every read/write
 *     wait; timeout_ms bounds the whole request including DNS.
 *
 * https_request() never calls back from within itself.  The callback runs
 * exactly once unless https_cancel() came first; the result and its body
 * are valid only during the callback (copy what you keep).  The handle is
 * invalid once the callback has started.
 */
#ifndef DR_HTTPS_H
#define DR_HTTPS_H

#include <stddef.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

struct event_base;
struct resolver;

#define HTTPS_DEFAULT_MAX_BODY		(64 * 1024)
#define HTTPS_DEFAULT_CONNECT_MS	10000
#define HTTPS_DEFAULT_TIMEOUT_MS	60000

enum https_method {
	HTTPS_GET = 0,
	HTTPS_POST,
};

enum https_status_rule {
	HTTPS_STATUS_200 = 0,	/* only 200 is success (MTA-STS) */
	HTTPS_STATUS_2XX,	/* any 2xx (TLSRPT report upload) */
};

struct https_params {
	struct event_base *base;
	SSL_CTX *ssl_ctx;		/* from https_ctx_new() */
	struct resolver *resolver;	/* to resolve host (unless addr) */
	enum https_method method;
	const char *host;		/* DNS name: SNI, Host:, certificate */
	int port;			/* 0: 443 */
	const char *path;		/* "/.well-known/mta-sts.txt" */
	/* Optional: connect here instead of resolving host (tests). */
	const struct sockaddr *addr;
	socklen_t addrlen;

	/* POST only: the request body and its type. */
	const char *content_type;	/* "application/tlsrpt+gzip" */
	const void *body;
	size_t body_len;

	enum https_status_rule status_rule;
	const char *want_type;		/* required media type, NULL: any */
	size_t max_body;		/* 0: HTTPS_DEFAULT_MAX_BODY */
	unsigned connect_timeout_ms;	/* 0: HTTPS_DEFAULT_CONNECT_MS */
	unsigned timeout_ms;		/* 0: HTTPS_DEFAULT_TIMEOUT_MS */
	const char *logid;		/* prefix for debug logs, may be NULL */
};

enum https_fail {
	HTTPS_OK = 0,
	HTTPS_FAIL_DNS,		/* host did not resolve (or bogus) */
	HTTPS_FAIL_CONNECT,	/* TCP connect refused or timed out */
	HTTPS_FAIL_TLS,		/* TLS handshake failed (not the cert) */
	HTTPS_FAIL_VERIFY,	/* certificate not valid for host (WebPKI) */
	HTTPS_FAIL_TIMEOUT,	/* overall or I/O timeout after connect */
	HTTPS_FAIL_HTTP,	/* malformed or truncated response */
	HTTPS_FAIL_STATUS,	/* status not accepted (3xx, 4xx, 201...) */
	HTTPS_FAIL_TYPE,	/* Content-Type not want_type (or none) */
	HTTPS_FAIL_TOO_BIG,	/* body larger than max_body */
	HTTPS_FAIL_INTERNAL,	/* out of resources, bad parameters */
};

struct https_result {
	enum https_fail fail;
	int status;			/* HTTP status, 0 if none arrived */
	char content_type[128];		/* as received, "" if none */
	char location[256];		/* Location: of a 3xx (not followed) */
	const char *body;		/* NUL-terminated copy, may hold NULs */
	size_t body_len;
	char peer[80];			/* "192.0.2.1:443" of the last attempt */
	long verify_error;		/* X509_V_* for HTTPS_FAIL_VERIFY */
	char reason[256];		/* human readable, "" for HTTPS_OK */
};

typedef void https_cb(const struct https_result *res, void *arg);

struct https_req;

/*
 * The client SSL_CTX for HTTPS: TLS 1.2 minimum, roots from ca_file
 * (NULL: the system default paths), peer verification on.  NULL + err.
 */
SSL_CTX *https_ctx_new(const char *ca_file, char *err, size_t errlen);

/* Start a request.  NULL with a reason in err if it cannot start. */
struct https_req *https_request(const struct https_params *p, https_cb *cb,
    void *arg, char *err, size_t errlen);
/* Stop a request in progress; no callback.  NULL ok. */
void https_cancel(struct https_req *r);

/* "ok", "dns", "connect", "tls", "verify", "timeout", "http", "status",
 * "content-type", "too-big", "internal" */
const char *https_fail_name(enum https_fail f);

/*
 * Whether a Content-Type header value names the media type want
 * ("text/plain; charset=utf-8" is "text/plain").  1 yes, 0 no.
 */
int https_type_is(const char *header, const char *want);

#endif
