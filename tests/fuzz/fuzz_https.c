/*
 * fuzz_https.c - libFuzzer target for the HTTPS client's response
 * handling (src/https.c): the status line, the headers, Content-Length,
 * chunked transfer coding, read-until-close bodies, the max_body and
 * header size limits, and https.c's own verdict on what evhttp parsed
 * (judge(): status rule, Content-Type, redirects; classify(): why a
 * response did not complete).
 *
 * https.c hands the HTTP parsing to libevent's evhttp (doc/DESIGN.md: use
 * a library for HTTP), so there is no parser of ours to call on its own:
 * the real https_request() runs, unchanged, against a TLS server in this
 * process on 127.0.0.1 (loopback only), on the same event loop.  The
 * server's certificate chains to a CA made at start-up, which is the only
 * root the client's SSL_CTX (https_ctx_new()) trusts, so every request
 * gets past the WebPKI check and the fuzzer spends its time on the
 * response.  The server reads the request, then writes the fuzz input as
 * the response, one TLS record per chunk, one chunk per turn of the loop,
 * so evhttp's parser sees the response split at chunk boundaries; then it
 * closes with close_notify or without (a truncated body must be an
 * error, never a short success).
 *
 * Input: byte 0: bit 0 status rule 2xx (TLSRPT) instead of 200 only
 * (MTA-STS); bit 1 want_type "text/plain"; bit 2 close without
 * close_notify; bits 3-4 max_body 64 KiB (the default), 100, 4096 or
 * 65535 bytes; bytes 1-4: chunk sizes used in turn (n * 64 + 1 bytes,
 * 0xff: all that is left); the rest is the response.
 *
 * Property checks (abort() on failure): the callback runs exactly once;
 * the handshake never fails (a rig fault, not a finding); a failure has
 * a reason; a success has a status the rule accepts, the wanted media
 * type, a body no longer than max_body and than the response, and
 * NUL-terminated.  FUZZ_VERBOSE=1 in the environment prints each
 * outcome (replaying a corpus file shows what it reaches).
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "https.h"
#include "fuzz_cert.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HOST	"mta-sts.fuzz.test"

static struct event_base *base;
static SSL_CTX *client_ctx, *server_ctx;
static int lfd = -1;
static struct sockaddr_in laddr;

/* The server side of one request. */
static struct server {
	int fd;
	SSL *ssl;
	struct event *ev;
	enum { SV_ACCEPT, SV_HANDSHAKE, SV_REQUEST, SV_WRITE, SV_DONE } st;
	char req[8192];
	size_t reqlen;
	const uint8_t *resp;
	size_t resplen, off;
	const uint8_t *sizes;
	size_t k;
	int dirty;
} sv;

/* The client's side. */
static int calls;
static struct https_result got;
static char *got_body;

static void server_io(evutil_socket_t fd, short what, void *arg);

static void
server_end(void)
{
	if (sv.ev != NULL)
		event_free(sv.ev);
	sv.ev = NULL;
	if (sv.ssl != NULL) {
		if (!sv.dirty && sv.st == SV_DONE)
			SSL_shutdown(sv.ssl);		/* close_notify */
		SSL_free(sv.ssl);
	}
	sv.ssl = NULL;
	if (sv.fd != -1)
		close(sv.fd);
	sv.fd = -1;
	sv.st = SV_DONE;
}

static void
server_wait(short what)
{
	if (sv.ev != NULL)
		event_free(sv.ev);
	sv.ev = event_new(base, sv.fd, what, server_io, NULL);
	event_add(sv.ev, NULL);
}

/* One chunk of the response per turn of the loop. */
static void
server_write(void)
{
	struct timeval now = { 0, 0 };
	size_t n;
	int r;

	if (sv.off >= sv.resplen) {
		sv.st = SV_DONE;
		server_end();
		return;
	}
	n = sv.sizes[sv.k % 4] == 0xff ? sv.resplen - sv.off :
	    (size_t)sv.sizes[sv.k % 4] * 64 + 1;
	if (n > sv.resplen - sv.off)
		n = sv.resplen - sv.off;
	r = SSL_write(sv.ssl, sv.resp + sv.off, (int)n);
	if (r <= 0) {
		switch (SSL_get_error(sv.ssl, r)) {
		case SSL_ERROR_WANT_WRITE:
			server_wait(EV_WRITE);
			return;
		case SSL_ERROR_WANT_READ:
			server_wait(EV_READ);
			return;
		default:		/* the client has gone */
			ERR_clear_error();
			sv.dirty = 1;
			server_end();
			return;
		}
	}
	sv.off += (size_t)r;
	sv.k++;
	if (sv.ev != NULL)
		event_free(sv.ev);
	sv.ev = evtimer_new(base, server_io, NULL);
	evtimer_add(sv.ev, &now);
}

static void
server_io(evutil_socket_t fd, short what, void *arg)
{
	int r;

	(void)fd;
	(void)what;
	(void)arg;
	switch (sv.st) {
	case SV_ACCEPT:
		if ((sv.fd = accept(lfd, NULL, NULL)) == -1)
			return;
		fcntl(sv.fd, F_SETFL, O_NONBLOCK);
		if ((sv.ssl = SSL_new(server_ctx)) == NULL)
			abort();
		SSL_set_fd(sv.ssl, sv.fd);
		sv.st = SV_HANDSHAKE;
		/* FALLTHROUGH */
	case SV_HANDSHAKE:
		r = SSL_accept(sv.ssl);
		if (r <= 0) {
			switch (SSL_get_error(sv.ssl, r)) {
			case SSL_ERROR_WANT_READ:
				server_wait(EV_READ);
				return;
			case SSL_ERROR_WANT_WRITE:
				server_wait(EV_WRITE);
				return;
			default:
				abort();	/* the rig is broken */
			}
		}
		sv.st = SV_REQUEST;
		/* FALLTHROUGH */
	case SV_REQUEST:
		for (;;) {
			r = SSL_read(sv.ssl, sv.req + sv.reqlen,
			    (int)(sizeof(sv.req) - 1 - sv.reqlen));
			if (r <= 0) {
				if (SSL_get_error(sv.ssl, r) ==
				    SSL_ERROR_WANT_READ) {
					server_wait(EV_READ);
					return;
				}
				abort();	/* the client never asked */
			}
			sv.reqlen += (size_t)r;
			sv.req[sv.reqlen] = '\0';
			if (strstr(sv.req, "\r\n\r\n") != NULL)
				break;
			if (sv.reqlen == sizeof(sv.req) - 1)
				abort();
		}
		if (strncmp(sv.req, "GET /.well-known/mta-sts.txt HTTP/1.1\r\n",
		    39) != 0 || strstr(sv.req, "\r\nHost: " HOST ":") ==
		    NULL)
			abort();
		sv.st = SV_WRITE;
		/* FALLTHROUGH */
	case SV_WRITE:
		server_write();
		return;
	case SV_DONE:
		return;
	}
}

static void
on_result(const struct https_result *res, void *arg)
{
	(void)arg;
	calls++;
	got = *res;
	got_body = malloc(res->body_len + 1);
	memcpy(got_body, res->body, res->body_len + 1);
	event_base_loopbreak(base);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	EVP_PKEY *cakey, *key;
	X509 *ca, *leaf;
	socklen_t len = sizeof(laddr);
	char err[512], cafile[64];
	int fd;

	(void)argc;
	(void)argv;
	signal(SIGPIPE, SIG_IGN);
	cakey = fuzz_newkey();
	key = fuzz_newkey();
	ca = fuzz_mkcert("fuzz CA", cakey, NULL, NULL, NULL);
	leaf = fuzz_mkcert(HOST, key, ca, cakey, "DNS:" HOST);
	snprintf(cafile, sizeof(cafile), "/tmp/fuzz_https.XXXXXX");
	if ((fd = mkstemp(cafile)) == -1)
		abort();
	close(fd);
	fuzz_write_pem(cafile, ca, NULL);
	if ((client_ctx = https_ctx_new(cafile, err, sizeof(err))) == NULL)
		abort();
	unlink(cafile);		/* loaded: the context keeps the roots */
	if ((server_ctx = SSL_CTX_new(TLS_server_method())) == NULL ||
	    SSL_CTX_use_certificate(server_ctx, leaf) != 1 ||
	    SSL_CTX_use_PrivateKey(server_ctx, key) != 1)
		abort();
	X509_free(ca);
	X509_free(leaf);
	EVP_PKEY_free(cakey);
	EVP_PKEY_free(key);

	memset(&laddr, 0, sizeof(laddr));
	laddr.sin_family = AF_INET;
	laddr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) == -1 ||
	    bind(lfd, (struct sockaddr *)&laddr, sizeof(laddr)) == -1 ||
	    listen(lfd, 16) == -1 ||
	    getsockname(lfd, (struct sockaddr *)&laddr, &len) == -1)
		abort();
	fcntl(lfd, F_SETFL, O_NONBLOCK);
	if ((base = event_base_new()) == NULL)
		abort();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t bodies[] = { 0, 100, 4096, 65535 };
	struct https_params p;
	struct https_req *r;
	struct event *lev;
	size_t max_body;
	char err[256];
	int flags;

	if (size < 5)
		return 0;
	flags = data[0];
	memset(&sv, 0, sizeof(sv));
	sv.fd = -1;
	sv.st = SV_ACCEPT;
	sv.sizes = data + 1;
	sv.resp = data + 5;
	sv.resplen = size - 5;
	sv.dirty = (flags & 4) != 0;

	memset(&p, 0, sizeof(p));
	p.base = base;
	p.ssl_ctx = client_ctx;
	p.method = HTTPS_GET;
	p.host = HOST;
	p.port = ntohs(laddr.sin_port);
	p.path = "/.well-known/mta-sts.txt";
	p.addr = (struct sockaddr *)&laddr;
	p.addrlen = sizeof(laddr);
	p.status_rule = (flags & 1) ? HTTPS_STATUS_2XX : HTTPS_STATUS_200;
	p.want_type = (flags & 2) ? "text/plain" : NULL;
	p.max_body = bodies[(flags >> 3) & 3];
	max_body = p.max_body ? p.max_body : HTTPS_DEFAULT_MAX_BODY;
	p.connect_timeout_ms = 5000;
	p.timeout_ms = 8000;

	calls = 0;
	got_body = NULL;
	lev = event_new(base, lfd, EV_READ, server_io, NULL);
	event_add(lev, NULL);
	if ((r = https_request(&p, on_result, NULL, err, sizeof(err))) ==
	    NULL)
		abort();
	event_base_dispatch(base);
	event_free(lev);
	server_end();
	/* anything left of the connection (evhttp frees it after the
	 * callback) */
	event_base_loop(base, EVLOOP_NONBLOCK);

	if (calls != 1)
		abort();
	if (getenv("FUZZ_VERBOSE") != NULL)
		fprintf(stderr, "fuzz_https: %s %d type \"%s\" body %zu: %s\n",
		    https_fail_name(got.fail), got.status, got.content_type,
		    got.body_len, got.reason);
	switch (got.fail) {
	case HTTPS_FAIL_DNS:
	case HTTPS_FAIL_CONNECT:
	case HTTPS_FAIL_TLS:
	case HTTPS_FAIL_VERIFY:
	case HTTPS_FAIL_INTERNAL:
		abort();		/* the rig, not the response */
	case HTTPS_OK:
		if (got.reason[0] != '\0' || got.body_len > max_body ||
		    got.body_len > sv.resplen || got_body[got.body_len] != '\0')
			abort();
		if ((flags & 1) ? got.status < 200 || got.status > 299 :
		    got.status != 200)
			abort();
		if ((flags & 2) && strlen(got.content_type) + 1 <
		    sizeof(got.content_type) &&
		    !https_type_is(got.content_type, "text/plain"))
			abort();
		break;
	default:
		if (got.reason[0] == '\0')
			abort();
		break;
	}
	free(got_body);
	return 0;
}
