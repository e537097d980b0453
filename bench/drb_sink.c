/*
 * drb_sink.c - the benchmark's receiving MTA: a fast SMTP sink with
 * STARTTLS, for bench/run only (not part of danerelay).
 *
 * Why not tests/scenario/lib/sink.py: that sink writes and fsyncs every
 * message (it is a test recorder), so it would be the bottleneck the
 * benchmark must not have.  This one keeps nothing but one
 * line per message: the arrival time, the Message-ID and the size.
 *
 * One thread per connection, blocking I/O with socket timeouts; replies
 * are buffered and written when the client's input is drained, which is
 * what RFC 2920 (PIPELINING) section 3.1 asks of a server.  It speaks
 * enough of RFC 5321 for Postfix's and danerelay's SMTP clients: EHLO/HELO,
 * STARTTLS (RFC 3207), MAIL, RCPT, DATA with dot-unstuffing (section
 * 4.5.2), RSET, NOOP, QUIT.  Every line is bounded (LINE_MAX), so a
 * client that sends garbage gets 500 and then loses its connection.
 *
 *   drb_sink -l IP:PORT [-l IP:PORT ...] -c CERT -k KEY -o ARRIVALS -s STATS
 *
 * ARRIVALS gets "<unix time ns> <message-id> <rcpts> <bytes> <tls>" per
 * message, written when the final "." has arrived (before the 250).
 * STATS is rewritten (atomically) every 100 ms: "messages N\n
 * connections N\nactive N\nmax_active N\ntls N\ntls_failed N\n".
 * Exits on SIGTERM/SIGINT after flushing ARRIVALS.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
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

#define LINE_MAX_	8192		/* command or text line */
#define IOBUF		65536
#define IO_TIMEOUT	120		/* seconds, per read/write */
#define MAX_LISTEN	16

static SSL_CTX *ctx;
static FILE *arrivals;
static pthread_mutex_t arr_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *stats_path;
static atomic_long n_msgs, n_conns, n_active, max_active, n_tls, n_tls_fail;
static volatile sig_atomic_t stopping;

struct conn {
	int fd;
	SSL *ssl;
	char in[IOBUF];
	size_t inlen, inoff;
	char out[IOBUF];
	size_t outlen;
	char line[LINE_MAX_ + 1];
	size_t linelen;
	int toolong;
};

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "drb_sink: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static int
flush_out(struct conn *c)
{
	size_t off = 0;

	while (off < c->outlen) {
		ssize_t n;

		if (c->ssl != NULL) {
			n = SSL_write(c->ssl, c->out + off, c->outlen - off);
			if (n <= 0)
				return -1;
		} else {
			n = send(c->fd, c->out + off, c->outlen - off,
			    MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return -1;
		}
		off += n;
	}
	c->outlen = 0;
	return 0;
}

static int
reply(struct conn *c, const char *s)
{
	size_t n = strlen(s);

	if (c->outlen + n + 2 > sizeof(c->out) && flush_out(c) == -1)
		return -1;
	memcpy(c->out + c->outlen, s, n);
	memcpy(c->out + c->outlen + n, "\r\n", 2);
	c->outlen += n + 2;
	return 0;
}

/* Refill the input buffer; pending replies go out first (RFC 2920). */
static int
fill(struct conn *c)
{
	ssize_t n;

	if (c->outlen > 0 && flush_out(c) == -1)
		return -1;
	for (;;) {
		if (c->ssl != NULL) {
			n = SSL_read(c->ssl, c->in, sizeof(c->in));
			if (n <= 0)
				return -1;
		} else {
			n = recv(c->fd, c->in, sizeof(c->in), 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return -1;
		}
		c->inoff = 0;
		c->inlen = n;
		return 0;
	}
}

/*
 * Next line without its CRLF into c->line (NUL-terminated, length in
 * c->linelen).  A line longer than LINE_MAX_ is cut and c->toolong set.
 * -1 on EOF/error.
 */
static int
getline_(struct conn *c)
{
	c->linelen = 0;
	c->toolong = 0;
	for (;;) {
		char *nl;
		size_t avail, take;

		if (c->inoff == c->inlen && fill(c) == -1)
			return -1;
		avail = c->inlen - c->inoff;
		nl = memchr(c->in + c->inoff, '\n', avail);
		take = nl != NULL ? (size_t)(nl - (c->in + c->inoff)) + 1 : avail;
		if (c->linelen + take > LINE_MAX_) {
			size_t room = LINE_MAX_ - c->linelen;

			memcpy(c->line + c->linelen, c->in + c->inoff, room);
			c->linelen += room;
			c->toolong = 1;
		} else {
			memcpy(c->line + c->linelen, c->in + c->inoff, take);
			c->linelen += take;
		}
		c->inoff += take;
		if (nl != NULL)
			break;
	}
	if (c->linelen > 0 && c->line[c->linelen - 1] == '\n')
		c->linelen--;
	if (c->linelen > 0 && c->line[c->linelen - 1] == '\r')
		c->linelen--;
	c->line[c->linelen] = '\0';
	return 0;
}

static long long
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The Message-ID's content between < and >, bounded, no blanks. */
static void
msgid_of(const char *line, char *out, size_t outlen)
{
	const char *p = strchr(line, '<'), *e;
	size_t n;

	if (p == NULL || (e = strchr(p, '>')) == NULL) {
		snprintf(out, outlen, "-");
		return;
	}
	p++;
	n = e - p;
	if (n == 0 || n >= outlen) {
		snprintf(out, outlen, "-");
		return;
	}
	memcpy(out, p, n);
	out[n] = '\0';
	for (char *q = out; *q; q++)
		if (*q == ' ' || *q == '\t')
			*q = '_';
}

/* DATA content up to the final "."; -1 on I/O error. */
static int
read_data(struct conn *c, int nrcpt)
{
	char msgid[256] = "-";
	long long bytes = 0, t;
	int in_headers = 1;

	for (;;) {
		if (getline_(c) == -1)
			return -1;
		if (c->linelen == 1 && c->line[0] == '.' && !c->toolong)
			break;
		bytes += c->linelen + 2;
		if (in_headers) {
			if (c->linelen == 0)
				in_headers = 0;
			else if (strncasecmp(c->line, "Message-ID:", 11) == 0)
				msgid_of(c->line + 11, msgid, sizeof(msgid));
		}
	}
	t = now_ns();
	pthread_mutex_lock(&arr_lock);
	fprintf(arrivals, "%lld %s %d %lld %d\n", t, msgid, nrcpt, bytes,
	    c->ssl != NULL);
	pthread_mutex_unlock(&arr_lock);
	atomic_fetch_add(&n_msgs, 1);
	return 0;
}

static int
do_starttls(struct conn *c)
{
	if (reply(c, "220 2.0.0 ready to start TLS") == -1 ||
	    flush_out(c) == -1)
		return -1;
	c->inoff = c->inlen = 0;	/* RFC 3207 §6: discard plaintext */
	if ((c->ssl = SSL_new(ctx)) == NULL)
		return -1;
	SSL_set_fd(c->ssl, c->fd);
	if (SSL_accept(c->ssl) != 1) {
		atomic_fetch_add(&n_tls_fail, 1);
		return -1;
	}
	atomic_fetch_add(&n_tls, 1);
	return 0;
}

static void
session(struct conn *c)
{
	int helo = 0, mail = 0, nrcpt = 0;

	if (reply(c, "220 sink.bench.test ESMTP drb_sink") == -1)
		return;
	for (;;) {
		const char *l;

		if (getline_(c) == -1)
			return;
		l = c->line;
		if (c->toolong) {
			if (reply(c, "500 5.5.2 line too long") == -1 ||
			    flush_out(c) == -1)
				return;
			return;
		}
		if (strncasecmp(l, "EHLO", 4) == 0) {
			helo = 1;
			mail = nrcpt = 0;
			if (reply(c, "250-sink.bench.test") == -1 ||
			    reply(c, "250-PIPELINING") == -1 ||
			    reply(c, "250-SIZE 209715200") == -1 ||
			    reply(c, "250-8BITMIME") == -1 ||
			    (c->ssl == NULL &&
			    reply(c, "250-STARTTLS") == -1) ||
			    reply(c, "250 ENHANCEDSTATUSCODES") == -1)
				return;
		} else if (strncasecmp(l, "HELO", 4) == 0) {
			helo = 1;
			mail = nrcpt = 0;
			if (reply(c, "250 sink.bench.test") == -1)
				return;
		} else if (strcasecmp(l, "STARTTLS") == 0) {
			if (c->ssl != NULL) {
				if (reply(c, "503 5.5.1 TLS already") == -1)
					return;
				continue;
			}
			if (do_starttls(c) == -1)
				return;
			helo = mail = nrcpt = 0;
		} else if (strncasecmp(l, "MAIL FROM:", 10) == 0) {
			if (!helo || mail) {
				if (reply(c, "503 5.5.1 bad sequence") == -1)
					return;
				continue;
			}
			mail = 1;
			nrcpt = 0;
			if (reply(c, "250 2.1.0 ok") == -1)
				return;
		} else if (strncasecmp(l, "RCPT TO:", 8) == 0) {
			if (!mail) {
				if (reply(c, "503 5.5.1 MAIL first") == -1)
					return;
				continue;
			}
			nrcpt++;
			if (reply(c, "250 2.1.5 ok") == -1)
				return;
		} else if (strcasecmp(l, "DATA") == 0) {
			if (!mail || nrcpt == 0) {
				if (reply(c, "503 5.5.1 no recipients") == -1)
					return;
				continue;
			}
			if (reply(c, "354 go ahead") == -1 ||
			    read_data(c, nrcpt) == -1 ||
			    reply(c, "250 2.0.0 ok") == -1)
				return;
			mail = nrcpt = 0;
		} else if (strcasecmp(l, "RSET") == 0) {
			mail = nrcpt = 0;
			if (reply(c, "250 2.0.0 ok") == -1)
				return;
		} else if (strcasecmp(l, "NOOP") == 0) {
			if (reply(c, "250 2.0.0 ok") == -1)
				return;
		} else if (strcasecmp(l, "QUIT") == 0) {
			reply(c, "221 2.0.0 bye");
			flush_out(c);
			return;
		} else {
			if (reply(c, "500 5.5.2 unknown command") == -1)
				return;
		}
	}
}

static void *
conn_thread(void *arg)
{
	struct conn *c = arg;
	long a;

	a = atomic_fetch_add(&n_active, 1) + 1;
	for (long m = atomic_load(&max_active); a > m &&
	    !atomic_compare_exchange_weak(&max_active, &m, a);)
		;
	session(c);
	if (c->ssl != NULL) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	close(c->fd);
	free(c);
	atomic_fetch_sub(&n_active, 1);
	return NULL;
}

static void *
accept_thread(void *arg)
{
	int lfd = (int)(long)arg;
	pthread_attr_t attr;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	for (;;) {
		struct timeval tv = { IO_TIMEOUT, 0 };
		struct conn *c;
		pthread_t t;
		int fd, one = 1;

		fd = accept(lfd, NULL, NULL);
		if (fd == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EMFILE || errno == ENFILE) {
				usleep(100000);
				continue;
			}
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		atomic_fetch_add(&n_conns, 1);
		if (pthread_create(&t, &attr, conn_thread, c) != 0) {
			close(fd);
			free(c);
		}
	}
	return NULL;
}

static void
write_stats(void)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", stats_path);
	if ((f = fopen(tmp, "w")) == NULL)
		return;
	fprintf(f, "messages %ld\nconnections %ld\nactive %ld\n"
	    "max_active %ld\ntls %ld\ntls_failed %ld\n",
	    atomic_load(&n_msgs), atomic_load(&n_conns),
	    atomic_load(&n_active), atomic_load(&max_active),
	    atomic_load(&n_tls), atomic_load(&n_tls_fail));
	fclose(f);
	rename(tmp, stats_path);
}

static void
on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static int
listen_on(const char *spec)
{
	char host[128];
	const char *colon = strrchr(spec, ':');
	struct sockaddr_in sin;
	int fd, one = 1;

	if (colon == NULL || (size_t)(colon - spec) >= sizeof(host))
		die("bad listen address %s (IP:PORT)", spec);
	memcpy(host, spec, colon - spec);
	host[colon - spec] = '\0';
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(atoi(colon + 1));
	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
		die("bad IPv4 address %s", host);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		die("socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		die("bind %s: %s", spec, strerror(errno));
	if (listen(fd, 4096) == -1)
		die("listen: %s", strerror(errno));
	return fd;
}

int
main(int argc, char **argv)
{
	const char *listens[MAX_LISTEN], *cert = NULL, *key = NULL;
	const char *out = NULL;
	struct sigaction sa;
	struct rlimit rl;
	int nl = 0, ch;

	while ((ch = getopt(argc, argv, "l:c:k:o:s:")) != -1) {
		switch (ch) {
		case 'l':
			if (nl == MAX_LISTEN)
				die("too many -l");
			listens[nl++] = optarg;
			break;
		case 'c': cert = optarg; break;
		case 'k': key = optarg; break;
		case 'o': out = optarg; break;
		case 's': stats_path = optarg; break;
		default:
			die("usage: drb_sink -l IP:PORT... -c CERT -k KEY "
			    "-o ARRIVALS -s STATS");
		}
	}
	if (nl == 0 || cert == NULL || key == NULL || out == NULL ||
	    stats_path == NULL)
		die("usage: drb_sink -l IP:PORT... -c CERT -k KEY -o ARRIVALS "
		    "-s STATS");
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL)
		die("SSL_CTX_new");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
		die("cannot load %s / %s", cert, key);
	if ((arrivals = fopen(out, "w")) == NULL)
		die("%s: %s", out, strerror(errno));
	setvbuf(arrivals, NULL, _IOFBF, 1 << 20);
	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	for (int i = 0; i < nl; i++) {
		pthread_t t;
		int fd = listen_on(listens[i]);

		if (pthread_create(&t, NULL, accept_thread, (void *)(long)fd))
			die("pthread_create");
		pthread_detach(t);
	}
	write_stats();
	while (!stopping) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };

		nanosleep(&ts, NULL);
		pthread_mutex_lock(&arr_lock);
		fflush(arrivals);
		pthread_mutex_unlock(&arr_lock);
		write_stats();
	}
	pthread_mutex_lock(&arr_lock);
	fflush(arrivals);
	pthread_mutex_unlock(&arr_lock);
	write_stats();
	_exit(0);
}
