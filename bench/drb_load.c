/*
 * drb_load.c - the benchmark's SMTP client (load generator), for bench/run
 * only (not part of danerelay).
 *
 * Why not Postfix's smtp-source: it sends every message of a run to one
 * recipient pattern in one domain and does not say when each message got
 * its 250, which the latency figure needs.
 *
 *   drb_load send -c IP:PORT -n MSGS -z SIZE [-p SESSIONS] [-d DOMAINS]
 *            [-u USERS] [-r RCPTS] [-R RATE] [-T] [-t TAG] [-o TIMES]
 *       MSGS messages of SIZE bytes over SESSIONS parallel sessions (one
 *       thread each, each session reused for all its messages, MAIL/RCPT/
 *       DATA pipelined when the server offers PIPELINING, RFC 2920).
 *       Message i goes to domain d<i % DOMAINS>.test, user
 *       u<(i / DOMAINS + k) % USERS> for k < RCPTS, with Message-ID
 *       <TAG.i@load.bench.test>.  -R paces the start of message i to
 *       i/RATE seconds after the start.  -T: STARTTLS first (no
 *       verification: for measuring the sink).  TIMES gets "i t250_ns" per
 *       accepted message (unix time in ns when the 250 arrived).  Prints
 *       "sent N failed N elapsed S rate R" and exits 0 only if every
 *       message got 250.
 *
 *   drb_load idle -c IP:PORT -n N [-w SECONDS]
 *       Opens N sessions one after another, each reads the banner and
 *       does EHLO, then prints "open N ok N failed N" and waits for a line
 *       on stdin (or SECONDS), then sends NOOP on each session and prints
 *       "alive N dead N" (RFC 5321 §4.5.3.2 timeouts are minutes, so all
 *       should be alive).
 *
 *   drb_load tls -c IP:PORT -w SECONDS [-a TLSA-HEX]
 *       Full TLS handshakes (no resumption) in a loop against a TLS server
 *       for SECONDS; with -a the peer is checked as DANE-EE 3 1 1 like a
 *       relay would.  Prints "handshakes N seconds S cpu S".
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define IOBUF		65536
#define IO_TIMEOUT	120

static struct sockaddr_in server;
static SSL_CTX *cctx;
static int n_msgs, msg_size = 4096, n_sess = 1, n_dom = 50, n_users = 10;
static int n_rcpt = 1, use_tls;
static double rate;
static const char *tag = "bench";
static long long *t250;
static atomic_int next_msg, n_ok, n_failed;
static long long t_start;

struct cl {
	int fd;
	SSL *ssl;
	char in[IOBUF];
	size_t inlen, inoff;
	char line[1024];
	int pipelining;
};

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "drb_load: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

static long long
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int
cl_write(struct cl *c, const char *buf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n;

		if (c->ssl != NULL)
			n = SSL_write(c->ssl, buf + off, len - off);
		else
			n = send(c->fd, buf + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && c->ssl == NULL && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		off += n;
	}
	return 0;
}

static int
cl_line(struct cl *c)
{
	size_t len = 0;

	for (;;) {
		if (c->inoff == c->inlen) {
			ssize_t n;

			if (c->ssl != NULL)
				n = SSL_read(c->ssl, c->in, sizeof(c->in));
			else
				n = recv(c->fd, c->in, sizeof(c->in), 0);
			if (n <= 0)
				return -1;
			c->inoff = 0;
			c->inlen = n;
		}
		while (c->inoff < c->inlen) {
			char ch = c->in[c->inoff++];

			if (ch == '\n') {
				if (len > 0 && c->line[len - 1] == '\r')
					len--;
				c->line[len] = '\0';
				return 0;
			}
			if (len < sizeof(c->line) - 1)
				c->line[len++] = ch;
		}
	}
}

/* One (multi-line) reply; returns its code, -1 on I/O error. */
static int
cl_reply(struct cl *c)
{
	for (;;) {
		if (cl_line(c) == -1 || strlen(c->line) < 3)
			return -1;
		if (strcasecmp(c->line + 4, "PIPELINING") == 0)
			c->pipelining = 1;
		if (c->line[3] != '-')
			return atoi(c->line);
	}
}

static int
cl_cmd(struct cl *c, const char *cmd)
{
	char buf[1100];
	int n = snprintf(buf, sizeof(buf), "%s\r\n", cmd);

	if (cl_write(c, buf, n) == -1)
		return -1;
	return cl_reply(c);
}

static int
cl_connect(struct cl *c)
{
	struct timeval tv = { IO_TIMEOUT, 0 };
	int one = 1;

	memset(c, 0, sizeof(*c));
	if ((c->fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return -1;
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&server, sizeof(server)) == -1) {
		close(c->fd);
		c->fd = -1;
		return -1;
	}
	return 0;
}

static void
cl_close(struct cl *c)
{
	if (c->ssl != NULL) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
}

static int
cl_hello(struct cl *c)
{
	if (cl_reply(c) != 220 || cl_cmd(c, "EHLO load.bench.test") != 250)
		return -1;
	if (!use_tls)
		return 0;
	if (cl_cmd(c, "STARTTLS") != 220)
		return -1;
	c->inoff = c->inlen = 0;
	if ((c->ssl = SSL_new(cctx)) == NULL)
		return -1;
	SSL_set_fd(c->ssl, c->fd);
	if (SSL_connect(c->ssl) != 1)
		return -1;
	c->pipelining = 0;
	return cl_cmd(c, "EHLO load.bench.test") == 250 ? 0 : -1;
}

/* The message body: headers, then 72-character lines up to SIZE bytes. */
static size_t
make_msg(char *buf, size_t cap, int i, const char *to)
{
	size_t len;
	int n;

	n = snprintf(buf, cap, "From: <load@src.bench.test>\r\nTo: <%s>\r\n"
	    "Subject: bench %s %d\r\nMessage-ID: <%s.%d@load.bench.test>\r\n"
	    "Date: Mon, 24 Nov 2025 00:00:00 +0000\r\n"
	    "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n",
	    to, tag, i, tag, i);
	len = n;
	while (len + 74 + 3 <= cap && len + 74 <= (size_t)msg_size) {
		for (int k = 0; k < 72; k++)
			buf[len + k] = "abcdefghijklmnopqrstuvwxyz0123456789"
			    [(i + k + len / 74) % 36];
		buf[len + 72] = '\r';
		buf[len + 73] = '\n';
		len += 74;
	}
	memcpy(buf + len, ".\r\n", 3);
	return len + 3;
}

static void
pace(int i)
{
	long long due, now;

	if (rate <= 0)
		return;
	due = t_start + (long long)(i / rate * 1e9);
	while ((now = now_ns()) < due) {
		struct timespec ts;
		long long d = due - now;

		ts.tv_sec = d / 1000000000LL;
		ts.tv_nsec = d % 1000000000LL;
		nanosleep(&ts, NULL);
	}
}

static void *
send_thread(void *arg)
{
	struct cl *c = calloc(1, sizeof(*c));
	size_t cap = msg_size + 8192;
	char *msg = malloc(cap), *env = malloc(64 * 1024);
	int connected = 0;

	(void)arg;
	if (c == NULL || msg == NULL || env == NULL)
		die("out of memory");
	for (;;) {
		char to[128];
		size_t elen = 0, mlen;
		int i = atomic_fetch_add(&next_msg, 1), ok = 1, code;

		if (i >= n_msgs)
			break;
		pace(i);
		if (!connected) {
			if (cl_connect(c) == -1 || cl_hello(c) == -1) {
				fprintf(stderr, "drb_load: session setup failed "
				    "(%s)\n", c->line);
				cl_close(c);
				atomic_fetch_add(&n_failed, 1);
				sleep(1);
				continue;
			}
			connected = 1;
		}
		snprintf(to, sizeof(to), "u%d@d%d.test", (i / n_dom) % n_users,
		    i % n_dom);
		elen = snprintf(env, 64 * 1024,
		    "MAIL FROM:<load@src.bench.test>\r\n");
		for (int k = 0; k < n_rcpt; k++)
			elen += snprintf(env + elen, 64 * 1024 - elen,
			    "RCPT TO:<u%d@d%d.test>\r\n",
			    (i / n_dom + k) % n_users, i % n_dom);
		elen += snprintf(env + elen, 64 * 1024 - elen, "DATA\r\n");
		mlen = make_msg(msg, cap, i, to);
		if (c->pipelining) {
			if (cl_write(c, env, elen) == -1)
				ok = 0;
			for (int k = 0; ok && k < n_rcpt + 1; k++) {
				code = cl_reply(c);
				if (code != 250 && code != 251)
					ok = 0;
			}
			if (ok && cl_reply(c) != 354)
				ok = 0;
		} else {
			char *p = env, *e;

			while (ok && (e = strstr(p, "\r\n")) != NULL) {
				int want = strncmp(p, "DATA", 4) == 0 ? 354 : 250;

				if (cl_write(c, p, e + 2 - p) == -1 ||
				    (code = cl_reply(c)) != want)
					ok = 0;
				p = e + 2;
			}
		}
		if (ok && (cl_write(c, msg, mlen) == -1 || cl_reply(c) != 250))
			ok = 0;
		if (ok) {
			t250[i] = now_ns();
			atomic_fetch_add(&n_ok, 1);
		} else {
			fprintf(stderr, "drb_load: message %d failed: %s\n", i,
			    c->line);
			atomic_fetch_add(&n_failed, 1);
			cl_close(c);
			connected = 0;
		}
	}
	if (connected) {
		cl_cmd(c, "QUIT");
		cl_close(c);
	}
	free(c);
	free(msg);
	free(env);
	return NULL;
}

static int
cmd_send(const char *times)
{
	pthread_t *th;
	double el;

	if (n_msgs <= 0 || n_sess <= 0 || n_dom <= 0 || n_users <= 0 ||
	    n_rcpt <= 0 || n_rcpt > 1000)
		die("bad counts");
	if ((t250 = calloc(n_msgs, sizeof(*t250))) == NULL ||
	    (th = calloc(n_sess, sizeof(*th))) == NULL)
		die("out of memory");
	t_start = now_ns();
	for (int i = 0; i < n_sess; i++)
		if (pthread_create(&th[i], NULL, send_thread, NULL) != 0)
			die("pthread_create");
	for (int i = 0; i < n_sess; i++)
		pthread_join(th[i], NULL);
	el = (now_ns() - t_start) / 1e9;
	if (times != NULL) {
		FILE *f = fopen(times, "w");

		if (f == NULL)
			die("%s: %s", times, strerror(errno));
		for (int i = 0; i < n_msgs; i++)
			if (t250[i])
				fprintf(f, "%d %lld\n", i, t250[i]);
		fclose(f);
	}
	printf("sent %d failed %d elapsed %.3f rate %.1f\n",
	    atomic_load(&n_ok), atomic_load(&n_failed), el,
	    atomic_load(&n_ok) / el);
	return atomic_load(&n_ok) == n_msgs ? 0 : 1;
}

static int
cmd_idle(int n, int wait_secs)
{
	struct cl *cs;
	int ok = 0, failed = 0, alive = 0, dead = 0;
	char buf[64];
	struct pollfd pfd = { 0, POLLIN, 0 };

	if ((cs = calloc(n, sizeof(*cs))) == NULL)
		die("out of memory");
	for (int i = 0; i < n; i++) {
		struct cl *c = &cs[i];

		if (cl_connect(c) == -1 || cl_reply(c) != 220 ||
		    cl_cmd(c, "EHLO idle.bench.test") != 250) {
			if (failed < 5)
				fprintf(stderr, "drb_load: session %d: %s\n",
				    i, c->fd == -1 ? strerror(errno) :
				    c->line);
			cl_close(c);
			failed++;
			continue;
		}
		ok++;
	}
	printf("open %d ok %d failed %d\n", n, ok, failed);
	fflush(stdout);
	if (poll(&pfd, 1, wait_secs * 1000) > 0)
		(void)read(0, buf, sizeof(buf));
	for (int i = 0; i < n; i++) {
		struct cl *c = &cs[i];

		if (c->fd == -1)
			continue;
		if (cl_cmd(c, "NOOP") == 250)
			alive++;
		else
			dead++;
		cl_close(c);
	}
	printf("alive %d dead %d\n", alive, dead);
	return failed == 0 && dead == 0 ? 0 : 1;
}

static int
cmd_tls(int secs, const char *tlsa)
{
	unsigned char data[64];
	long long t0 = now_ns(), end = t0 + secs * 1000000000LL;
	long hs = 0, fails = 0;
	size_t dlen = 0;
	struct rusage ru;

	if (tlsa != NULL) {
		dlen = strlen(tlsa) / 2;
		if (dlen != 32)
			die("-a: 64 hex digits (SHA-256)");
		for (size_t i = 0; i < dlen; i++)
			if (sscanf(tlsa + 2 * i, "%2hhx", &data[i]) != 1)
				die("-a: not hex");
		if (SSL_CTX_dane_enable(cctx) <= 0)
			die("SSL_CTX_dane_enable");
	}
	while (now_ns() < end) {
		struct cl c;
		SSL *ssl;

		if (cl_connect(&c) == -1)
			die("connect: %s", strerror(errno));
		if ((ssl = SSL_new(cctx)) == NULL)
			die("SSL_new");
		/* RFC 7672 §3.1.1: no name check for DANE-EE(3) */
		if (tlsa != NULL && (SSL_dane_enable(ssl, "mx.bench.test") <= 0 ||
		    SSL_dane_tlsa_add(ssl, 3, 1, 1, data, dlen) <= 0))
			die("SSL_dane_*");
		if (tlsa != NULL)
			SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
		SSL_set_fd(ssl, c.fd);
		if (SSL_connect(ssl) == 1 && (tlsa == NULL ||
		    SSL_get_verify_result(ssl) == X509_V_OK))
			hs++;
		else if (fails++ == 0)
			fprintf(stderr, "drb_load: handshake failed: %s\n",
			    X509_verify_cert_error_string(
			    SSL_get_verify_result(ssl)));
		SSL_shutdown(ssl);
		SSL_free(ssl);
		close(c.fd);
	}
	getrusage(RUSAGE_SELF, &ru);
	printf("handshakes %ld failed %ld seconds %.3f cpu %.3f\n", hs, fails,
	    (now_ns() - t0) / 1e9, ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
	    (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
	return fails == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	const char *mode, *addr = NULL, *times = NULL, *tlsa = NULL;
	char host[64];
	const char *colon;
	struct rlimit rl;
	int ch, wait_secs = 3600;

	if (argc < 2)
		die("usage: drb_load send|idle|tls -c IP:PORT ...");
	mode = argv[1];
	optind = 2;
	while ((ch = getopt(argc, argv, "c:n:z:p:d:u:r:R:Tt:o:w:a:")) != -1) {
		switch (ch) {
		case 'c': addr = optarg; break;
		case 'n': n_msgs = atoi(optarg); break;
		case 'z': msg_size = atoi(optarg); break;
		case 'p': n_sess = atoi(optarg); break;
		case 'd': n_dom = atoi(optarg); break;
		case 'u': n_users = atoi(optarg); break;
		case 'r': n_rcpt = atoi(optarg); break;
		case 'R': rate = atof(optarg); break;
		case 'T': use_tls = 1; break;
		case 't': tag = optarg; break;
		case 'o': times = optarg; break;
		case 'w': wait_secs = atoi(optarg); break;
		case 'a': tlsa = optarg; break;
		default: die("bad option");
		}
	}
	if (addr == NULL || (colon = strrchr(addr, ':')) == NULL ||
	    (size_t)(colon - addr) >= sizeof(host))
		die("-c IP:PORT required");
	memcpy(host, addr, colon - addr);
	host[colon - addr] = '\0';
	server.sin_family = AF_INET;
	server.sin_port = htons(atoi(colon + 1));
	if (inet_pton(AF_INET, host, &server.sin_addr) != 1)
		die("bad address %s", host);
	if (msg_size < 512 || msg_size > 64 * 1024 * 1024)
		die("-z: 512 .. 64M");
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	if ((cctx = SSL_CTX_new(TLS_client_method())) == NULL)
		die("SSL_CTX_new");
	SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_OFF);
	if (strcmp(mode, "send") == 0)
		return cmd_send(times);
	if (strcmp(mode, "idle") == 0)
		return cmd_idle(n_msgs, wait_secs);
	if (strcmp(mode, "tls") == 0)
		return cmd_tls(wait_secs, tlsa);
	die("unknown mode %s", mode);
	return 2;
}
