/*
 * https_tool.c - drives src/https.c for tests/scenario/mta_sts_fetch.t.
 *
 * usage: https_tool [-a ADDR] [-p PORT] [-c CA_FILE] [-t TOTAL_MS]
 *            [-T CONNECT_MS] [-m MAX_BODY] [-y WANT_TYPE] [-2]
 *            [-P CONTENT_TYPE -f BODY_FILE] [-o OUT_FILE]
 *            [-d DNS_CONFIG -A TRUST_ANCHOR] [-x] HOST PATH
 *
 * -a connects to ADDR (numeric) instead of resolving HOST; -d/-A resolve
 * HOST with danerelay's resolver and that libunbound config.  -2 accepts
 * any 2xx (default: 200 only); -P/-f make it a POST.  -x cancels the
 * request right after starting it and checks that no callback comes.
 * Prints, one per line: fail=NAME status=N content_type=.. location=..
 * body_len=N verify_error=N peer=.. reason=..; -o writes the body.
 * Exit 0 when fail=ok, 1 otherwise, 2 usage.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "https.h"
#include "log.h"
#include "resolver.h"
#include "util.h"

static int called;
static int rc = 1;
static const char *outfile;

static void
done(const struct https_result *res, void *arg)
{
	struct event_base *base = arg;

	called++;
	printf("fail=%s\nstatus=%d\ncontent_type=%s\nlocation=%s\n"
	    "body_len=%zu\nverify_error=%ld\npeer=%s\nreason=%s\n",
	    https_fail_name(res->fail), res->status, res->content_type,
	    res->location, res->body_len, res->verify_error, res->peer,
	    res->reason);
	if (outfile != NULL) {
		FILE *f = fopen(outfile, "w");

		if (f == NULL || fwrite(res->body, 1, res->body_len, f) !=
		    res->body_len || fclose(f) != 0)
			perror(outfile);
	}
	rc = res->fail == HTTPS_OK ? 0 : 1;
	event_base_loopexit(base, NULL);
}

static void
usage(void)
{
	fprintf(stderr, "usage: https_tool [-a addr] [-p port] [-c ca_file] "
	    "[-t ms] [-T ms] [-m max] [-y type] [-2] [-P type -f file] "
	    "[-o out] [-d dns_config -A anchor] [-x] host path\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct https_params p;
	struct sockaddr_storage ss;
	struct event_base *base;
	struct resolver *res = NULL;
	struct https_req *r;
	struct config cf;
	const char *addr = NULL, *ca = NULL, *bodyfile = NULL;
	const char *dnsconf = NULL, *anchor = NULL;
	char err[512], *body = NULL;
	size_t blen = 0;
	int ch, cancel = 0;

	log_init("https_tool", 1, getenv("DR_DEBUG") != NULL);
	memset(&p, 0, sizeof(p));
	while ((ch = getopt(argc, argv, "a:p:c:t:T:m:y:2P:f:o:d:A:x")) != -1) {
		switch (ch) {
		case 'a': addr = optarg; break;
		case 'p': p.port = atoi(optarg); break;
		case 'c': ca = optarg; break;
		case 't': p.timeout_ms = (unsigned)atoi(optarg); break;
		case 'T': p.connect_timeout_ms = (unsigned)atoi(optarg); break;
		case 'm': p.max_body = (size_t)atol(optarg); break;
		case 'y': p.want_type = optarg; break;
		case '2': p.status_rule = HTTPS_STATUS_2XX; break;
		case 'P': p.method = HTTPS_POST; p.content_type = optarg; break;
		case 'f': bodyfile = optarg; break;
		case 'o': outfile = optarg; break;
		case 'd': dnsconf = optarg; break;
		case 'A': anchor = optarg; break;
		case 'x': cancel = 1; break;
		default: usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc != 2 || (addr == NULL && dnsconf == NULL))
		usage();
	if (bodyfile != NULL) {
		FILE *f = fopen(bodyfile, "r");
		char buf[4096];
		size_t n;

		if (f == NULL) {
			perror(bodyfile);
			return 2;
		}
		while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
			body = xrealloc(body, blen + n);
			memcpy(body + blen, buf, n);
			blen += n;
		}
		fclose(f);
		p.body = body;
		p.body_len = blen;
	}
	base = event_base_new();
	p.base = base;
	p.host = argv[0];
	p.path = argv[1];
	if ((p.ssl_ctx = https_ctx_new(ca, err, sizeof(err))) == NULL) {
		fprintf(stderr, "https_tool: %s\n", err);
		return 2;
	}
	memset(&ss, 0, sizeof(ss));
	if (addr != NULL) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
			s4->sin_family = AF_INET;
			p.addrlen = sizeof(*s4);
		} else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
			s6->sin6_family = AF_INET6;
			p.addrlen = sizeof(*s6);
		} else
			usage();
		p.addr = (struct sockaddr *)&ss;
	} else {
		config_defaults(&cf);
		free(cf.dns_config);
		cf.dns_config = xstrdup(dnsconf);
		if (anchor != NULL) {
			free(cf.trust_anchor_file);
			cf.trust_anchor_file = xstrdup(anchor);
		}
		if ((res = resolver_new(base, &cf, err, sizeof(err))) == NULL) {
			fprintf(stderr, "https_tool: %s\n", err);
			return 2;
		}
		p.resolver = res;
	}
	if ((r = https_request(&p, done, base, err, sizeof(err))) == NULL) {
		printf("fail=start\nreason=%s\n", err);
		return 1;
	}
	if (cancel) {
		struct timeval tv = { 1, 0 };

		https_cancel(r);
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
		printf("cancel %s\n", called ? "FAIL: callback after cancel" :
		    "ok");
		rc = called ? 1 : 0;
		goto out;
	}
	event_base_dispatch(base);
	if (!called) {
		printf("fail=nocallback\n");
		rc = 1;
	}
out:
	resolver_free(res);
	SSL_CTX_free(p.ssl_ctx);
	event_base_free(base);
	free(body);
	if (dnsconf != NULL)
		config_free(&cf);
	return rc;
}
