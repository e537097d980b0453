/*
 * https.c - a small HTTPS client: libevent's evhttp over a
 * bufferevent_openssl socket, one request per connection.  Used for
 * MTA-STS policy fetches (RFC 8461 §3.3) and TLSRPT report uploads
 * (RFC 8460 §3); see https.h for the contract.
 *
 * States of one request:
 *
 *	RESOLVE	A and AAAA of the host through danerelay's resolver (both
 *		in parallel; skipped when the caller gives an address)
 *	FETCH	one connection per address in turn: TCP connect, TLS
 *		handshake with WebPKI verification, the HTTP exchange.
 *		Only a failed TCP connect moves on to the next address;
 *		any later failure is the answer.
 *	DONE	the result is final; the callback runs from a zero timer,
 *		after the connection is torn down outside evhttp's own
 *		callbacks.
 *
 * Security rules, all in setup_ssl() and classify()/judge():
 *  - the certificate must chain to the roots of the SSL_CTX and carry
 *    `host` as a subjectAltName dNSName (RFC 6125 via RFC 8461 §3.3): no
 *    partial-label wildcards, no fallback to the subject CN
 *    (X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | NEVER_CHECK_SUBJECT);
 *    SSL_VERIFY_PEER, so a bad certificate ends the handshake before a
 *    byte of HTTP is sent;
 *  - SNI and Host: are `host`; no redirect is followed (RFC 8461 §3.3);
 *  - evhttp enforces max_body while it reads (Content-Length, chunked
 *    and read-until-close bodies), so nothing larger is ever buffered;
 *  - every wait is bounded: connect_timeout_ms for the TCP connect and
 *    each read/write, timeout_ms for the whole request with DNS.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "https.h"
#include "log.h"
#include "resolver.h"
#include "tls.h"
#include "util.h"

#define HTTPS_MAX_HEADERS	16384
#define HTTPS_MAX_ADDRS		16

enum https_state {
	ST_RESOLVE = 0,
	ST_FETCH,
	ST_DONE,
};

static const char *const strstate[] = { "RESOLVE", "FETCH", "DONE" };

struct https_req {
	struct event_base *base;
	SSL_CTX *ctx;
	enum https_method method;
	char *host;
	int port;
	char *path;
	char *content_type;
	char *body;
	size_t body_len;
	enum https_status_rule status_rule;
	char *want_type;
	size_t max_body;
	struct timeval io_tv;
	char logid[64];

	https_cb *cb;
	void *arg;
	enum https_state state;
	struct event *timer;		/* overall timeout */
	struct event *kick;		/* deferred next step / callback */

	struct resolver_query *qa, *qaaaa;
	int pending_dns;
	char dns_err[160];
	struct dns_addr addrs[HTTPS_MAX_ADDRS];
	size_t naddrs, next;

	struct evhttp_connection *evcon;
	struct evhttp_request *hreq;	/* in flight, owned by evhttp */
	SSL *ssl;			/* owned by the bufferevent */
	int tls_answered, tls_done;	/* from the SSL info callback */
	long verify_error;		/* first failure, verify callback */
	int http_err;			/* evhttp error, -1 none */
	int retry;			/* kick: try the next address */

	struct https_result res;
	char *rbody;
};

static void https_state(struct https_req *r, enum https_state st);
static void start_attempt(struct https_req *r);

static void
setreason(struct https_req *r, enum https_fail f, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
setreason(struct https_req *r, enum https_fail f, const char *fmt, ...)
{
	va_list ap;

	r->res.fail = f;
	va_start(ap, fmt);
	vsnprintf(r->res.reason, sizeof(r->res.reason), fmt, ap);
	va_end(ap);
}

const char *
https_fail_name(enum https_fail f)
{
	switch (f) {
	case HTTPS_OK:
		return "ok";
	case HTTPS_FAIL_DNS:
		return "dns";
	case HTTPS_FAIL_CONNECT:
		return "connect";
	case HTTPS_FAIL_TLS:
		return "tls";
	case HTTPS_FAIL_VERIFY:
		return "verify";
	case HTTPS_FAIL_TIMEOUT:
		return "timeout";
	case HTTPS_FAIL_HTTP:
		return "http";
	case HTTPS_FAIL_STATUS:
		return "status";
	case HTTPS_FAIL_TYPE:
		return "content-type";
	case HTTPS_FAIL_TOO_BIG:
		return "too-big";
	case HTTPS_FAIL_INTERNAL:
		return "internal";
	}
	return "?";
}

int
https_type_is(const char *header, const char *want)
{
	size_t n;

	if (header == NULL || want == NULL)
		return 0;
	while (*header == ' ' || *header == '\t')
		header++;
	n = strlen(want);
	if (strncasecmp(header, want, n) != 0)
		return 0;
	header += n;
	while (*header == ' ' || *header == '\t')
		header++;
	return *header == '\0' || *header == ';';
}

SSL_CTX *
https_ctx_new(const char *ca_file, char *err, size_t errlen)
{
	SSL_CTX *ctx;
	char e[256];

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		snprintf(err, errlen, "SSL_CTX_new: %s", tls_errstr(e,
		    sizeof(e)));
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (ca_file != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
			snprintf(err, errlen, "ca_file %s: %s", ca_file,
			    tls_errstr(e, sizeof(e)));
			SSL_CTX_free(ctx);
			return NULL;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		snprintf(err, errlen, "default CA paths: %s", tls_errstr(e,
		    sizeof(e)));
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* ---- teardown --------------------------------------------------------- */

static void
drop_connection(struct https_req *r)
{
	if (r->evcon != NULL)
		evhttp_connection_free(r->evcon);	/* frees bev + SSL */
	r->evcon = NULL;
	r->hreq = NULL;
	r->ssl = NULL;
}

static void
req_free(struct https_req *r)
{
	if (r->qa != NULL)
		resolver_cancel(r->qa);
	if (r->qaaaa != NULL)
		resolver_cancel(r->qaaaa);
	drop_connection(r);
	if (r->timer != NULL)
		event_free(r->timer);
	if (r->kick != NULL)
		event_free(r->kick);
	SSL_CTX_free(r->ctx);		/* our reference */
	free(r->host);
	free(r->path);
	free(r->content_type);
	free(r->body);
	free(r->want_type);
	free(r->rbody);
	free(r);
}

void
https_cancel(struct https_req *r)
{
	if (r != NULL)
		req_free(r);
}

/* ---- the state machine ------------------------------------------------ */

static void
kick_now(struct https_req *r)
{
	struct timeval tv = { 0, 0 };

	evtimer_add(r->kick, &tv);
}

static void
https_state(struct https_req *r, enum https_state st)
{
	log_debug("%shttps %s: %s -> %s", r->logid, r->host,
	    strstate[r->state], strstate[st]);
	r->state = st;
	switch (st) {
	case ST_RESOLVE:
		break;
	case ST_FETCH:
		r->next = 0;
		start_attempt(r);
		break;
	case ST_DONE:
		/* the callback comes from the kick, outside evhttp */
		evtimer_del(r->timer);
		r->retry = 0;
		kick_now(r);
		break;
	}
}

static void
on_kick(evutil_socket_t fd, short ev, void *arg)
{
	struct https_req *r = arg;

	drop_connection(r);
	if (r->state == ST_FETCH && r->retry) {
		r->retry = 0;
		start_attempt(r);
		return;
	}
	if (r->state != ST_DONE)
		return;
	r->res.body = r->rbody != NULL ? r->rbody : "";
	if (r->res.fail == HTTPS_OK)
		log_debug("%shttps %s: %d, %zu bytes", r->logid, r->host,
		    r->res.status, r->res.body_len);
	else
		log_debug("%shttps %s: failed (%s): %s", r->logid, r->host,
		    https_fail_name(r->res.fail), r->res.reason);
	r->cb(&r->res, r->arg);
	req_free(r);
}

static void
on_timeout(evutil_socket_t fd, short ev, void *arg)
{
	struct https_req *r = arg;

	if (r->state == ST_DONE)
		return;
	setreason(r, HTTPS_FAIL_TIMEOUT, "no complete answer from %s within "
	    "the time limit", r->res.peer[0] ? r->res.peer : r->host);
	https_state(r, ST_DONE);
}

/* ---- RESOLVE ---------------------------------------------------------- */

static void
dns_answer(struct dns_result *res, void *arg)
{
	struct https_req *r = arg;
	size_t i;

	if (res->qtype == DNS_T_A)
		r->qa = NULL;
	else
		r->qaaaa = NULL;
	r->pending_dns--;
	if (res->status == DNS_OK) {
		for (i = 0; i < res->n && r->naddrs < HTTPS_MAX_ADDRS; i++)
			r->addrs[r->naddrs++] = res->addr[i];
	} else if (res->status == DNS_TEMPFAIL || r->dns_err[0] == '\0')
		snprintf(r->dns_err, sizeof(r->dns_err), "%s: %s%s%.100s",
		    dns_type_name(res->qtype), dns_status_name(res->status),
		    res->reason[0] ? ": " : "", res->reason);
	dns_result_free(res);
	if (r->pending_dns > 0 || r->state != ST_RESOLVE)
		return;
	if (r->naddrs == 0) {
		setreason(r, HTTPS_FAIL_DNS, "no address for %s (%s)",
		    r->host, r->dns_err[0] ? r->dns_err : "no records");
		https_state(r, ST_DONE);
		return;
	}
	/* IPv4 answers first (A is asked first and usually answers
	 * first); keep the order of arrival otherwise */
	https_state(r, ST_FETCH);
}

/* ---- FETCH ------------------------------------------------------------ */

/* Handshake progress, recorded as it happens (evhttp resets the socket
 * before it reports a failure). */
static void
ssl_info(const SSL *ssl, int where, int ret)
{
	struct https_req *r = SSL_get_app_data(ssl);

	BIO *rb;

	if (r == NULL)
		return;
	/* the server sent something: the TCP connection was up */
	if ((rb = SSL_get_rbio(ssl)) != NULL && BIO_number_read(rb) > 0)
		r->tls_answered = 1;
	if (where & SSL_CB_HANDSHAKE_DONE)
		r->tls_done = 1;
}

static int
ssl_verify(int ok, X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs,
	    SSL_get_ex_data_X509_STORE_CTX_idx());
	struct https_req *r = ssl ? SSL_get_app_data(ssl) : NULL;

	if (!ok && r != NULL && r->verify_error == X509_V_OK)
		r->verify_error = X509_STORE_CTX_get_error(xs);
	return ok;
}

static SSL *
setup_ssl(struct https_req *r)
{
	X509_VERIFY_PARAM *vp;
	SSL *ssl;

	if ((ssl = SSL_new(r->ctx)) == NULL)
		return NULL;
	vp = SSL_get0_param(ssl);
	X509_VERIFY_PARAM_set_hostflags(vp,
	    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS |
	    X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
	if (SSL_set1_host(ssl, r->host) != 1 ||
	    SSL_set_tlsext_host_name(ssl, r->host) != 1) {
		SSL_free(ssl);
		return NULL;
	}
	SSL_set_app_data(ssl, r);
	SSL_set_info_callback(ssl, ssl_info);
	SSL_set_verify(ssl, SSL_VERIFY_PEER, ssl_verify);
	return ssl;
}

/* Why a request ended without a usable HTTP response. */
static void
classify(struct https_req *r)
{
	char e[256];

	if (!r->tls_done) {
		if (r->verify_error != X509_V_OK) {
			r->res.verify_error = r->verify_error;
			setreason(r, HTTPS_FAIL_VERIFY, "certificate of %s "
			    "not valid for %s: %s", r->res.peer, r->host,
			    X509_verify_cert_error_string(r->verify_error));
			ERR_clear_error();
			return;
		}
		if (!r->tls_answered) {
			if (r->http_err == EVREQ_HTTP_TIMEOUT)
				setreason(r, HTTPS_FAIL_CONNECT, "connect to "
				    "%s timed out", r->res.peer);
			else
				setreason(r, HTTPS_FAIL_CONNECT, "cannot "
				    "connect to %s (or no TLS answer)",
				    r->res.peer);
			ERR_clear_error();
			return;
		}
		setreason(r, HTTPS_FAIL_TLS, "TLS handshake with %s failed: %s",
		    r->res.peer, tls_errstr(e, sizeof(e)));
		return;
	}
	ERR_clear_error();
	switch (r->http_err) {
	case EVREQ_HTTP_TIMEOUT:
		setreason(r, HTTPS_FAIL_TIMEOUT, "%s: timed out waiting for "
		    "the response", r->res.peer);
		break;
	case EVREQ_HTTP_DATA_TOO_LONG:
		setreason(r, HTTPS_FAIL_TOO_BIG, "%s: body larger than %zu "
		    "bytes (or a malformed chunk)", r->res.peer, r->max_body);
		break;
	case EVREQ_HTTP_INVALID_HEADER:
		setreason(r, HTTPS_FAIL_HTTP, "%s: malformed response "
		    "(status line or headers)", r->res.peer);
		break;
	case EVREQ_HTTP_EOF:
		setreason(r, HTTPS_FAIL_HTTP, "%s: connection closed before "
		    "the response was complete", r->res.peer);
		break;
	default:
		setreason(r, HTTPS_FAIL_HTTP, "%s: no complete response "
		    "(error %d)", r->res.peer, r->http_err);
		break;
	}
}

/* A complete response: status, type, body. */
static void
judge(struct https_req *r, struct evhttp_request *req)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	const char *ct, *loc;
	size_t len;
	int ok;

	r->res.status = evhttp_request_get_response_code(req);
	if ((ct = evhttp_find_header(h, "Content-Type")) != NULL)
		dr_strlcpy(r->res.content_type, ct,
		    sizeof(r->res.content_type));
	if ((loc = evhttp_find_header(h, "Location")) != NULL)
		dr_strlcpy(r->res.location, loc, sizeof(r->res.location));
	len = evbuffer_get_length(in);
	if (len > r->max_body) {
		setreason(r, HTTPS_FAIL_TOO_BIG, "%s: body of %zu bytes is "
		    "larger than %zu", r->res.peer, len, r->max_body);
		return;
	}
	r->rbody = xmalloc(len + 1);
	if (len > 0)
		evbuffer_copyout(in, r->rbody, len);
	r->rbody[len] = '\0';
	r->res.body_len = len;

	if (r->status_rule == HTTPS_STATUS_2XX)
		ok = r->res.status >= 200 && r->res.status < 300;
	else
		ok = r->res.status == 200;
	if (!ok) {
		if (r->res.status >= 300 && r->res.status < 400)
			setreason(r, HTTPS_FAIL_STATUS, "%s: HTTP %d redirect "
			    "to %s not followed", r->res.peer, r->res.status,
			    loc != NULL ? r->res.location : "(no Location)");
		else
			setreason(r, HTTPS_FAIL_STATUS, "%s: HTTP %d %s",
			    r->res.peer, r->res.status,
			    evhttp_request_get_response_code_line(req) ?
			    evhttp_request_get_response_code_line(req) : "");
		return;
	}
	if (r->want_type != NULL && !https_type_is(ct, r->want_type)) {
		setreason(r, HTTPS_FAIL_TYPE, "%s: Content-Type %s%s%s, not %s",
		    r->res.peer, ct ? "\"" : "", ct ? r->res.content_type :
		    "missing", ct ? "\"" : "", r->want_type);
		return;
	}
	r->res.fail = HTTPS_OK;
	r->res.reason[0] = '\0';
}

static void
on_http_error(enum evhttp_request_error err, void *arg)
{
	struct https_req *r = arg;

	r->http_err = (int)err;
}

static void
on_http_done(struct evhttp_request *req, void *arg)
{
	struct https_req *r = arg;

	r->hreq = NULL;		/* evhttp frees it after we return */
	if (r->state != ST_FETCH)
		return;
	if (req == NULL || evhttp_request_get_response_code(req) == 0) {
		/* no response: connect, TLS or protocol failure */
		classify(r);
		if (r->res.fail == HTTPS_FAIL_CONNECT &&
		    r->next < r->naddrs) {
			log_debug("%shttps %s: %s; next address", r->logid,
			    r->host, r->res.reason);
			r->retry = 1;
			kick_now(r);
			return;
		}
		https_state(r, ST_DONE);
		return;
	}
	judge(r, req);
	https_state(r, ST_DONE);
}

static void
start_attempt(struct https_req *r)
{
	struct bufferevent *bev;
	struct evkeyvalq *oh;
	const struct dns_addr *a;
	char hosthdr[300], len[32];

	drop_connection(r);
	a = &r->addrs[r->next++];
	snprintf(r->res.peer, sizeof(r->res.peer), a->family == AF_INET6 ?
	    "[%s]:%d" : "%s:%d", a->text, r->port);
	r->http_err = -1;
	r->tls_answered = r->tls_done = 0;
	r->verify_error = X509_V_OK;
	memset(&r->res.content_type, 0, sizeof(r->res.content_type));
	log_debug("%shttps %s: connecting to %s", r->logid, r->host,
	    r->res.peer);

	if ((r->ssl = setup_ssl(r)) == NULL) {
		setreason(r, HTTPS_FAIL_INTERNAL, "cannot set up TLS for %s",
		    r->host);
		goto fail;
	}
	bev = bufferevent_openssl_socket_new(r->base, -1, r->ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE |
	    BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		SSL_free(r->ssl);
		r->ssl = NULL;
		setreason(r, HTTPS_FAIL_INTERNAL, "cannot make a TLS "
		    "bufferevent");
		goto fail;
	}
	/* a close without close_notify is an error: no truncated bodies */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 0);
	r->evcon = evhttp_connection_base_bufferevent_new(r->base, NULL, bev,
	    a->text, (unsigned short)r->port);
	if (r->evcon == NULL) {
		bufferevent_free(bev);
		r->ssl = NULL;
		setreason(r, HTTPS_FAIL_INTERNAL, "cannot make an HTTP "
		    "connection");
		goto fail;
	}
	evhttp_connection_set_retries(r->evcon, 0);
	evhttp_connection_set_timeout_tv(r->evcon, &r->io_tv);
	evhttp_connection_set_max_body_size(r->evcon,
	    (ev_ssize_t)r->max_body);
	evhttp_connection_set_max_headers_size(r->evcon, HTTPS_MAX_HEADERS);

	if ((r->hreq = evhttp_request_new(on_http_done, r)) == NULL) {
		setreason(r, HTTPS_FAIL_INTERNAL, "cannot make a request");
		goto fail;
	}
	evhttp_request_set_error_cb(r->hreq, on_http_error);
	oh = evhttp_request_get_output_headers(r->hreq);
	if (r->port == 443)
		snprintf(hosthdr, sizeof(hosthdr), "%s", r->host);
	else
		snprintf(hosthdr, sizeof(hosthdr), "%s:%d", r->host, r->port);
	evhttp_add_header(oh, "Host", hosthdr);
	evhttp_add_header(oh, "User-Agent", "danerelay");
	evhttp_add_header(oh, "Connection", "close");
	evhttp_add_header(oh, "Accept", r->want_type ? r->want_type : "*/*");
	if (r->method == HTTPS_POST) {
		evhttp_add_header(oh, "Content-Type", r->content_type);
		snprintf(len, sizeof(len), "%zu", r->body_len);
		evhttp_add_header(oh, "Content-Length", len);
		evbuffer_add(evhttp_request_get_output_buffer(r->hreq),
		    r->body, r->body_len);
	}
	if (evhttp_make_request(r->evcon, r->hreq, r->method == HTTPS_POST ?
	    EVHTTP_REQ_POST : EVHTTP_REQ_GET, r->path) == -1) {
		/* libevent 2.1 unqueues the request but leaves it to us */
		evhttp_request_free(r->hreq);
		r->hreq = NULL;
		setreason(r, HTTPS_FAIL_CONNECT, "cannot connect to %s",
		    r->res.peer);
		if (r->next < r->naddrs) {
			r->retry = 1;
			kick_now(r);
			return;
		}
		goto fail;
	}
	return;
fail:
	https_state(r, ST_DONE);
}

/* ---- entry ------------------------------------------------------------ */

struct https_req *
https_request(const struct https_params *p, https_cb *cb, void *arg,
    char *err, size_t errlen)
{
	struct https_req *r;
	struct timeval tv;
	unsigned ms;
	char e[256];

	if (p == NULL || p->base == NULL || p->ssl_ctx == NULL ||
	    p->host == NULL || *p->host == '\0' || p->path == NULL ||
	    p->path[0] != '/' || cb == NULL ||
	    (p->addr == NULL && p->resolver == NULL) ||
	    (p->method == HTTPS_POST && (p->content_type == NULL ||
	    (p->body == NULL && p->body_len > 0)))) {
		snprintf(err, errlen, "https: bad request parameters");
		return NULL;
	}
	if (strpbrk(p->host, " \t\r\n/:@") != NULL || strlen(p->host) > 253 ||
	    strpbrk(p->path, " \t\r\n") != NULL) {
		snprintf(err, errlen, "https: bad host or path");
		return NULL;
	}
	if (p->addr != NULL && p->addr->sa_family != AF_INET &&
	    p->addr->sa_family != AF_INET6) {
		snprintf(err, errlen, "https: address family not supported");
		return NULL;
	}
	r = xcalloc(1, sizeof(*r));
	r->base = p->base;
	SSL_CTX_up_ref(p->ssl_ctx);	/* the caller may replace its own */
	r->ctx = p->ssl_ctx;
	r->method = p->method;
	r->host = str_lower(xstrdup(p->host));
	r->port = p->port > 0 ? p->port : 443;
	r->path = xstrdup(p->path);
	if (p->method == HTTPS_POST) {
		r->content_type = xstrdup(p->content_type);
		r->body = xmalloc(p->body_len + 1);
		if (p->body_len > 0)
			memcpy(r->body, p->body, p->body_len);
		r->body_len = p->body_len;
	}
	r->status_rule = p->status_rule;
	r->want_type = p->want_type ? xstrdup(p->want_type) : NULL;
	r->max_body = p->max_body ? p->max_body : HTTPS_DEFAULT_MAX_BODY;
	ms = p->connect_timeout_ms ? p->connect_timeout_ms :
	    HTTPS_DEFAULT_CONNECT_MS;
	r->io_tv.tv_sec = ms / 1000;
	r->io_tv.tv_usec = (ms % 1000) * 1000;
	if (p->logid != NULL)
		snprintf(r->logid, sizeof(r->logid), "%s: ", p->logid);
	r->cb = cb;
	r->arg = arg;
	r->http_err = -1;
	r->res.fail = HTTPS_FAIL_INTERNAL;
	r->timer = evtimer_new(r->base, on_timeout, r);
	r->kick = evtimer_new(r->base, on_kick, r);
	if (r->timer == NULL || r->kick == NULL) {
		snprintf(err, errlen, "https: cannot make timers");
		req_free(r);
		return NULL;
	}
	ms = p->timeout_ms ? p->timeout_ms : HTTPS_DEFAULT_TIMEOUT_MS;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(r->timer, &tv);

	if (p->addr != NULL) {
		struct dns_addr *a = &r->addrs[0];

		memset(a, 0, sizeof(*a));
		a->family = p->addr->sa_family;
		memcpy(&a->ss, p->addr, p->addrlen < sizeof(a->ss) ?
		    p->addrlen : sizeof(a->ss));
		a->sslen = p->addrlen;
		if (evutil_inet_ntop(a->family, a->family == AF_INET ?
		    (const void *)&((struct sockaddr_in *)&a->ss)->sin_addr :
		    (const void *)&((struct sockaddr_in6 *)&a->ss)->sin6_addr,
		    a->text, sizeof(a->text)) == NULL) {
			snprintf(err, errlen, "https: bad address");
			req_free(r);
			return NULL;
		}
		r->naddrs = 1;
		r->state = ST_FETCH;
		r->retry = 1;		/* start from the kick */
		kick_now(r);
		return r;
	}
	r->state = ST_RESOLVE;
	r->pending_dns = 2;
	r->qa = resolver_query(p->resolver, r->host, DNS_T_A, dns_answer, r,
	    e, sizeof(e));
	if (r->qa == NULL) {
		snprintf(err, errlen, "https: cannot resolve %s: %s", r->host,
		    e);
		req_free(r);
		return NULL;
	}
	r->qaaaa = resolver_query(p->resolver, r->host, DNS_T_AAAA,
	    dns_answer, r, e, sizeof(e));
	if (r->qaaaa == NULL)
		r->pending_dns = 1;	/* A alone will do */
	return r;
}
