/*
 * smtp_send_tool.c - drives src/smtp_client.c (and the client half of
 * src/tls.c) for the scenario tests tests/scenario/smtp_client_*.t: one
 * session to one address, the same message sent N times over it.
 *
 * usage: smtp_send_tool [-d] [options] IP:PORT
 *   --tls none|may|encrypt|dane|webpki   (default may)
 *   --tlsa "3 1 1 HEX"   TLSA record (repeatable)    --base DOMAIN
 *   --name NAME          WebPKI name / DANE-TA extra name (repeatable)
 *   --host NAME          MX name for logs and default SNI (default "mx")
 *   --sni NAME           --ca-file FILE (default: system roots)
 *   --helo NAME          (default client.test)
 *   --from ADDR --to ADDR (repeatable) --data FILE  (spool format: CRLF,
 *                        not dot-stuffed; default a small built-in message)
 *   --8bit --smtputf8    --count N (messages over one session, default 1)
 *   --bind IP            --timeout MS (per command, default 5000)
 *   --connect-timeout MS --data-timeout MS
 *
 * Output, one line per event:
 *   ready tls=PROTO|none cipher=C auth=A trusted=0|1 verified=0|1
 *         dane_unusable=0|1 tlsa="..." peer="CN" ext=0xFLAGS size=N
 *   rcpt msg=N idx=I addr=<A> code=C reply="..."
 *   done msg=N status=ok|fail class=C permanent=0|1 usable=0|1 stage="S"
 *        code=C enh=E tlsrpt=T naccepted=N reply="..."
 * Exit: 0 every message accepted, 1 otherwise, 2 usage/setup error.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "dane.h"
#include "log.h"
#include "smtp_client.h"
#include "tls.h"
#include "util.h"

#define MAXN 64

static struct event_base *base;
static struct smtp_msg msg;
static int count = 1, sent, failures;
static int exit_code = 1;

static int
parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len,
    int need_port)
{
	char host[128];
	const char *colon;
	int port = 0;

	memset(ss, 0, sizeof(*ss));
	if (s[0] == '[') {
		const char *e = strchr(s, ']');

		if (e == NULL || (size_t)(e - s - 1) >= sizeof(host))
			return -1;
		memcpy(host, s + 1, e - s - 1);
		host[e - s - 1] = '\0';
		colon = e[1] == ':' ? e + 1 : NULL;
	} else if ((colon = strrchr(s, ':')) != NULL && need_port) {
		if ((size_t)(colon - s) >= sizeof(host))
			return -1;
		memcpy(host, s, colon - s);
		host[colon - s] = '\0';
	} else {
		dr_strlcpy(host, s, sizeof(host));
		colon = NULL;
	}
	if (colon != NULL)
		port = atoi(colon + 1);
	else if (need_port)
		return -1;
	if (strchr(host, ':') != NULL) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return -1;
		*len = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return -1;
		*len = sizeof(*sin);
	}
	return 0;
}

static void
send_next(struct smtp_client *c)
{
	char err[256];

	if (smtp_client_send(c, &msg, err, sizeof(err)) == -1) {
		printf("error send: %s\n", err);
		fflush(stdout);
		exit_code = 2;
		smtp_client_free(c);
		event_base_loopexit(base, NULL);
	}
}

static void
on_ready(struct smtp_client *c, void *arg)
{
	const struct tls_outcome *o = smtp_client_tls(c);
	const struct smtp_ext *x = smtp_client_ext(c);

	printf("ready tls=%s cipher=%s auth=%s trusted=%d verified=%d "
	    "dane_unusable=%d tlsa=\"%s\" peer=\"%s\" ext=0x%x size=%llu\n",
	    o->established ? o->protocol : "none",
	    o->established ? o->cipher : "none", tls_auth_name(o->auth),
	    o->trusted, o->verified, o->dane_unusable, o->tlsa, o->peer,
	    x->flags, x->size);
	fflush(stdout);
	send_next(c);
}

static void
on_rcpt(struct smtp_client *c, size_t idx, const struct smtp_reply *r,
    void *arg)
{
	char buf[512];

	printf("rcpt msg=%d idx=%zu addr=<%s> code=%d reply=\"%s\"\n",
	    sent + 1, idx, idx < msg.nrcpt ? msg.rcpts[idx] : "?", r->code,
	    smtp_reply_summary(r, buf, sizeof(buf)));
	fflush(stdout);
}

static void
on_done(struct smtp_client *c, const struct smtp_result *res, void *arg)
{
	sent++;
	printf("done msg=%d status=%s class=%s permanent=%d usable=%d "
	    "stage=\"%s\" code=%d enh=%s tlsrpt=%s naccepted=%zu reply=\"%s\"\n",
	    sent, res->fail == SMTP_OK ? "ok" : "fail",
	    smtp_fail_name(res->fail), res->permanent, res->usable,
	    res->stage ? res->stage : "-", res->code,
	    res->enh[0] ? res->enh : "-", res->tlsrpt ? res->tlsrpt : "-",
	    res->naccepted, res->reply);
	fflush(stdout);
	if (res->fail != SMTP_OK)
		failures++;
	if (res->usable && sent < count) {
		send_next(c);
		return;
	}
	if (res->usable)
		smtp_client_quit(c);
	else
		smtp_client_free(c);
	exit_code = failures ? 1 : 0;
	/* The loop ends when the QUIT exchange is over (no events left). */
}

static void
usage(void)
{
	fprintf(stderr, "usage: smtp_send_tool [-d] [--tls MODE] [--tlsa REC]"
	    " [--base D] [--name N] [--host H] [--sni S] [--ca-file F]\n"
	    "    [--helo H] [--from A] [--to A] [--data F] [--8bit] "
	    "[--smtputf8] [--count N]\n"
	    "    [--bind IP] [--timeout MS] [--connect-timeout MS] "
	    "[--data-timeout MS] IP:PORT\n");
	exit(2);
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "tls", required_argument, NULL, 't' },
		{ "tlsa", required_argument, NULL, 'T' },
		{ "base", required_argument, NULL, 'b' },
		{ "name", required_argument, NULL, 'n' },
		{ "host", required_argument, NULL, 'H' },
		{ "sni", required_argument, NULL, 's' },
		{ "ca-file", required_argument, NULL, 'C' },
		{ "helo", required_argument, NULL, 'e' },
		{ "from", required_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 'r' },
		{ "data", required_argument, NULL, 'D' },
		{ "8bit", no_argument, NULL, '8' },
		{ "smtputf8", no_argument, NULL, 'u' },
		{ "count", required_argument, NULL, 'c' },
		{ "bind", required_argument, NULL, 'B' },
		{ "timeout", required_argument, NULL, 'o' },
		{ "connect-timeout", required_argument, NULL, 'O' },
		{ "data-timeout", required_argument, NULL, 'E' },
		{ NULL, 0, NULL, 0 },
	};
	struct smtp_client_params p;
	struct smtp_client_cb cb = { on_ready, on_rcpt, on_done };
	struct smtp_client *c;
	struct tlsa_rr tlsa[MAXN];
	const char *names[MAXN], *rcpts[MAXN];
	struct sockaddr_storage bindss;
	const char *ca_file = NULL, *data = NULL, *mode = "may";
	char err[512], tmpl[] = "/tmp/smtp_send_tool.XXXXXX";
	size_t ntlsa = 0, nnames = 0, nrcpt = 0;
	int ch, debug = 0, fd;
	struct stat st;

	memset(&p, 0, sizeof(p));
	memset(&msg, 0, sizeof(msg));
	p.host = "mx";
	p.helo = "client.test";
	p.cmd_timeout_ms = 5000;
	p.connect_timeout_ms = 5000;
	p.data_timeout_ms = 5000;
	msg.sender = "sender@client.test";

	while ((ch = getopt_long(argc, argv, "d", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			debug = 1;
			break;
		case 't':
			mode = optarg;
			break;
		case 'T':
			if (ntlsa == MAXN || tlsa_from_text(optarg,
			    &tlsa[ntlsa]) == -1) {
				fprintf(stderr, "bad TLSA record: %s\n", optarg);
				return 2;
			}
			ntlsa++;
			break;
		case 'b':
			p.tlsa_base = optarg;
			break;
		case 'n':
			if (nnames == MAXN)
				usage();
			names[nnames++] = optarg;
			break;
		case 'H':
			p.host = optarg;
			break;
		case 's':
			p.sni = optarg;
			break;
		case 'C':
			ca_file = optarg;
			break;
		case 'e':
			p.helo = optarg;
			break;
		case 'f':
			msg.sender = optarg;
			break;
		case 'r':
			if (nrcpt == MAXN)
				usage();
			rcpts[nrcpt++] = optarg;
			break;
		case 'D':
			data = optarg;
			break;
		case '8':
			msg.body_8bit = 1;
			break;
		case 'u':
			msg.smtputf8 = 1;
			break;
		case 'c':
			count = atoi(optarg);
			break;
		case 'B':
			if (parse_addr(optarg, &bindss, &p.bindlen, 0) == -1)
				usage();
			p.bind = (struct sockaddr *)&bindss;
			break;
		case 'o':
			p.cmd_timeout_ms = (unsigned)atoi(optarg);
			break;
		case 'O':
			p.connect_timeout_ms = (unsigned)atoi(optarg);
			break;
		case 'E':
			p.data_timeout_ms = (unsigned)atoi(optarg);
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc != 1 || parse_addr(argv[0], &p.addr, &p.addrlen, 1) == -1)
		usage();
	log_init("smtp_send_tool", 1, debug);

	if (strcmp(mode, "none") == 0)
		p.tls = SMTP_TLS_NONE;
	else if (strcmp(mode, "may") == 0)
		p.tls = SMTP_TLS_MAY;
	else if (strcmp(mode, "encrypt") == 0)
		p.tls = SMTP_TLS_ENCRYPT;
	else if (strcmp(mode, "dane") == 0)
		p.tls = SMTP_TLS_DANE;
	else if (strcmp(mode, "webpki") == 0)
		p.tls = SMTP_TLS_WEBPKI;
	else
		usage();
	p.tlsa = tlsa;
	p.ntlsa = ntlsa;
	p.names = names;
	p.nnames = nnames;

	if (nrcpt == 0)
		rcpts[nrcpt++] = "rcpt@example.test";
	msg.rcpts = rcpts;
	msg.nrcpt = nrcpt;
	if (data == NULL) {
		static const char dflt[] = "Subject: test\r\n\r\nhello\r\n";

		if ((fd = mkstemp(tmpl)) == -1 ||
		    write(fd, dflt, sizeof(dflt) - 1) != sizeof(dflt) - 1) {
			perror("temp file");
			return 2;
		}
		unlink(tmpl);
	} else if ((fd = open(data, O_RDONLY)) == -1) {
		perror(data);
		return 2;
	}
	if (fstat(fd, &st) == -1) {
		perror("fstat");
		return 2;
	}
	msg.data_fd = fd;
	msg.size = st.st_size;

	if ((base = event_base_new()) == NULL)
		return 2;
	p.base = base;
	if (p.tls != SMTP_TLS_NONE &&
	    (p.ssl_ctx = tls_client_ctx_new(ca_file, err, sizeof(err))) ==
	    NULL) {
		printf("error tls: %s\n", err);
		return 2;
	}
	if ((c = smtp_client_connect(&p, &cb, NULL, err, sizeof(err))) ==
	    NULL) {
		printf("error connect: %s\n", err);
		return 2;
	}
	event_base_dispatch(base);
	if (sent == 0) {
		printf("error: no result\n");
		exit_code = 2;
	}
	SSL_CTX_free(p.ssl_ctx);
	event_base_free(base);
	while (ntlsa > 0)
		tlsa_rr_clear(&tlsa[--ntlsa]);
	close(fd);
	return exit_code;
}
