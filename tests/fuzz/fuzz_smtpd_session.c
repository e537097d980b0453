/*
 * fuzz_smtpd_session.c - libFuzzer target for the inbound SMTP session
 * (src/smtpd_session.c): its line assembly (smtp_getline(): CRLF, bare
 * LF, NUL bytes, lines over the 512 / 12288 octet limits, discarding to
 * the end of an overlong line), the command state machine (EHLO, HELO,
 * MAIL, RCPT, DATA, RSET, NOOP, QUIT, VRFY, EXPN, HELP, STARTTLS, AUTH,
 * HTTP verbs, pipelining), the DATA scanner and the commit.
 *
 * The real session runs, unchanged: smtpd_session_new() takes one end of
 * a socketpair(AF_UNIX) (no network), the client's bytes are written to
 * the other end in chunks whose sizes come from the input, and the event
 * loop runs between chunks, so lines and the end of data arrive split
 * wherever the fuzzer likes.  Messages are committed to a throwaway
 * spool (in /dev/shm when there is one: fsync costs nothing there) and
 * removed again from the message callback; the spool goes at exit, or at
 * the next run's start when the process could not clean up.
 *
 * STARTTLS and AUTH: with bit 4 of byte 0 the server offers STARTTLS
 * (tls_server_ctx_new() on a certificate made at start-up) and AUTH
 * PLAIN/LOGIN over TLS (auth_file: user "fuzz", password "fuzzpass"
 * hashed with SHA-512-crypt at 1000 rounds, the cheapest it takes, and
 * a locked user "locked").  Once the server answers "220 2.0.0 Ready to
 * start TLS", the client does the TLS handshake and sends the rest of
 * its bytes over TLS.  With bit 5 the client is polite: a chunk ends
 * after a STARTTLS line, so it waits for the 220 as RFC 3207 wants;
 * without it, whatever follows STARTTLS in a chunk is pipelined and must
 * be refused (554) rather than read as TLS input.
 *
 * Input: byte 0 selects the session (bit 0: the client is in
 * allow_clients; bit 1: it talks before the greeting; bit 2: a postmaster
 * address is configured; bit 3: max_message_size 4096 instead of 65536;
 * bits 4 and 5: above); bytes 1-8 are the chunk sizes, used in turn
 * (n * 16 + 1 bytes; 0xff: all that is left); the rest is what the
 * client sends.  After the last chunk the client shuts down its side and
 * the session must end.
 *
 * Property checks (abort() on failure), beyond "no crash, leak or UB":
 *   - every reply line is "ddd" + ' ' or '-' + text + CRLF, at most 512
 *     octets (RFC 5321 §4.5.3.1.5), with a code from 2xx to 5xx;
 *   - no open relay: a client outside allow_clients gets a recipient
 *     accepted (250 2.1.5) only after "235" (AUTH succeeded, which only
 *     "fuzz" with its password can), and a message queued for it
 *     carries auth_user "fuzz";
 *   - AUTH is answered 235 only over TLS;
 *   - every queued message has a sender, 1..max_rcpt recipients, and its
 *     data in the spool holds no NUL, no bare CR and no bare LF (the
 *     SMTP smuggling rules) and is no larger than max_message_size plus
 *     our Received: header;
 *   - the session ends once the client has shut down its side.
 * FUZZ_VERBOSE=1 in the environment prints the replies (replaying a
 * corpus file shows how far it gets); the session's own log goes to
 * /dev/null (-close_fd_mask=2 in fuzz_smtpd_session.options).
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <crypt.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "acl.h"
#include "auth.h"
#include "envelope.h"
#include "smtpd_session.h"
#include "spool.h"
#include "tls.h"
#include "util.h"
#include "fuzz_cert.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_RCPT	5
#define RECEIVED_MAX	2048	/* smtp_data()'s header buffer */

static struct event_base *base;
static struct spool *spool;
static struct smtpd sd;
static struct smtpd_conf *confs[8];	/* [postmaster | small << 1 |
					 *  tls << 2] */
static SSL_CTX *server_ctx, *client_ctx;
static char spooldir[256];
static int cur_allowed;			/* this input's client */
static unsigned long long cur_max_size;
static int queued;
static FILE *verbose;			/* FUZZ_VERBOSE: the replies */

/* The client of one input. */
static SSL *cssl;			/* after STARTTLS */
static int want_tls;			/* "220 2.0.0 Ready to start TLS" */
static int authed;			/* "235" seen */

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
cleanup(void)
{
	if (spool != NULL)
		spool_close(spool);
	spool = NULL;
	if (spooldir[0] != '\0')
		nftw(spooldir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static struct auth_table *auth;

/*
 * Spools of earlier runs that ended without atexit() (a crash, a
 * finding, a kill): removed at start-up unless another run (a parallel
 * job) still holds the spool's lock or made it less than a minute ago.
 */
static void
sweep(const char *tmp)
{
	char path[300], err[256];
	struct spool *sp;
	struct stat st;
	struct dirent *de;
	DIR *d;
	int busy;

	if ((d = opendir(tmp)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, "fuzz_smtpd_session.", 19) != 0 ||
		    strchr(de->d_name + 19, '.') != NULL)
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmp, de->d_name);
		/* a minute old at least: not a parallel run starting up */
		if (stat(path, &st) == -1 || time(NULL) - st.st_mtime < 60)
			continue;
		if ((sp = spool_open_flags(path, SPOOL_NO_RECOVER, err,
		    sizeof(err))) == NULL)
			continue;
		busy = spool_in_use(sp);
		spool_close(sp);
		if (!busy)
			nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	}
	closedir(d);
}

static struct smtpd_conf *
make_conf(int postmaster, int small, int tls)
{
	struct smtpd_conf *c = xcalloc(1, sizeof(*c));
	char err[256];

	c->refs = 1;
	c->hostname = xstrdup("mx.fuzz.test");
	if ((c->allow = acl_parse("192.0.2.1/32", err, sizeof(err))) == NULL)
		abort();
	c->max_size = small ? 4096 : 65536;
	c->max_rcpt = MAX_RCPT;
	c->max_hops = 4;
	c->max_errors = 10;
	c->timeout = 300;
	c->session_timeout = 3600;
	c->max_clients = 100;
	c->reserved = 10;
	c->rate_unit = 60;
	c->unauth_timeout = 3600;
	c->auth_limit = 3;
	c->auth_block = 60;
	c->auth_delay = 1;
	c->postmaster = postmaster ? xstrdup("postmaster@example.org") : NULL;
	c->auth = auth;		/* shared: the confs live as long as we do */
	if (tls) {
		SSL_CTX_up_ref(server_ctx);
		c->tls = server_ctx;
	}
	return c;
}

/* A committed message: check it, then take it out of the spool again. */
static void
on_message(const struct spool_env *env, void *arg)
{
	char buf[8192];
	unsigned long long total = 0;
	ssize_t n, i;
	char prev = '\0';
	int fd;

	(void)arg;
	queued++;
	if (!cur_allowed && (env->auth_user == NULL ||
	    strcmp(env->auth_user, "fuzz") != 0))
		abort();		/* an open relay */
	if (env->sender == NULL || env->nrcpt == 0 || env->nrcpt > MAX_RCPT)
		abort();
	if ((fd = spool_data_open(spool, env->id)) == -1)
		abort();
	while (total < (unsigned long long)env->size &&
	    (n = read(fd, buf, sizeof(buf))) > 0) {
		if ((unsigned long long)n > env->size - total)
			n = (ssize_t)(env->size - total);
		for (i = 0; i < n; i++) {
			if (buf[i] == '\0' ||
			    (buf[i] == '\n' && prev != '\r') ||
			    (prev == '\r' && buf[i] != '\n'))
				abort();	/* smuggling material */
			prev = buf[i];
		}
		total += (unsigned long long)n;
	}
	close(fd);
	if (total != (unsigned long long)env->size || prev == '\r' ||
	    total > cur_max_size + RECEIVED_MAX)
		abort();
	if (spool_remove(spool, env->id) == -1)
		abort();
}

/* A self-signed certificate for the server (tls_server_ctx_new(), as
 * the daemon loads it) and a client context that does not check it. */
static void
make_tls(char *err, size_t errlen)
{
	char cert[300], key[300];
	EVP_PKEY *k;
	X509 *x;

	k = fuzz_newkey();
	x = fuzz_mkcert("mx.fuzz.test", k, NULL, NULL, NULL);
	snprintf(cert, sizeof(cert), "%s.crt", spooldir);
	snprintf(key, sizeof(key), "%s.key", spooldir);
	fuzz_write_pem(cert, x, NULL);
	fuzz_write_pem(key, NULL, k);
	if ((server_ctx = tls_server_ctx_new(cert, key, err, errlen)) == NULL)
		abort();
	unlink(cert);
	unlink(key);
	X509_free(x);
	EVP_PKEY_free(k);
	if ((client_ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		abort();
	SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_mode(client_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	static struct crypt_data cd;
	char err[512], path[300];
	const char *hash;
	FILE *f;
	int fd, i;

	(void)argc;
	(void)argv;
	/* The session logs every connection to stderr: the .options file
	 * has -close_fd_mask=2, so libFuzzer and the sanitizers report on a
	 * copy of fd 2 and the log goes to /dev/null.  This runs before
	 * that, so FUZZ_VERBOSE gets the real stderr. */
	if (getenv("FUZZ_VERBOSE") != NULL)
		verbose = fdopen(dup(2), "w");
	signal(SIGPIPE, SIG_IGN);		/* as the daemon does */
	sweep(tmp);
	snprintf(spooldir, sizeof(spooldir), "%s/fuzz_smtpd_session.XXXXXX",
	    tmp);
	if (mkdtemp(spooldir) == NULL ||
	    (spool = spool_open(spooldir, err, sizeof(err))) == NULL ||
	    (base = event_base_new()) == NULL)
		abort();
	atexit(cleanup);
	/* AUTH: the cheapest hash auth_load() takes (SHA-512-crypt at
	 * 1000 rounds: well under a millisecond a check) */
	if ((hash = crypt_rn("fuzzpass", "$6$rounds=1000$fuzzsalt$", &cd,
	    (int)sizeof(cd))) == NULL || hash[0] == '*')
		abort();
	snprintf(path, sizeof(path), "%s.auth", spooldir);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1 ||
	    (f = fdopen(fd, "w")) == NULL ||
	    fprintf(f, "fuzz:%s\nlocked:!%s\n", hash, hash) < 0 ||
	    fclose(f) != 0 ||
	    (auth = auth_load(path, err, sizeof(err))) == NULL)
		abort();
	unlink(path);
	make_tls(err, sizeof(err));
	for (i = 0; i < 8; i++)
		confs[i] = make_conf(i & 1, i & 2, i & 4);
	TAILQ_INIT(&sd.sessions);
	sd.base = base;
	sd.spool = spool;
	sd.nall = &sd.nall_own;
	sd.cb = on_message;
	return 0;
}

/* The client's socket, in the clear or over TLS: bytes, 0 at the end,
 * -1 nothing now. */
static ssize_t
cread(int fd, char *buf, size_t len)
{
	int r;

	if (cssl == NULL)
		return read(fd, buf, len);
	r = SSL_read(cssl, buf, (int)len);
	if (r > 0)
		return r;
	r = SSL_get_error(cssl, r);
	ERR_clear_error();
	return r == SSL_ERROR_WANT_READ || r == SSL_ERROR_WANT_WRITE ? -1 : 0;
}

static ssize_t
cwrite(int fd, const uint8_t *buf, size_t len)
{
	int r;

	if (cssl == NULL)
		return write(fd, buf, len);
	r = SSL_write(cssl, buf, (int)len);
	if (r > 0)
		return r;
	r = SSL_get_error(cssl, r);
	ERR_clear_error();
	errno = r == SSL_ERROR_WANT_READ || r == SSL_ERROR_WANT_WRITE ?
	    EAGAIN : EPIPE;
	return -1;
}

/* What the session wrote back: well-formed replies only. */
static size_t
check_replies(char *buf, size_t *have, int fd)
{
	static const char ready[] = "220 2.0.0 Ready to start TLS\r\n";
	size_t start, i, len, drained = 0;
	ssize_t n;

	for (;;) {
		n = cread(fd, buf + *have, 65536 - *have);
		if (n <= 0)
			break;
		if (verbose != NULL)
			fwrite(buf + *have, 1, (size_t)n, verbose);
		*have += (size_t)n;
		drained += (size_t)n;
		start = 0;
		for (i = 0; i < *have; i++) {
			if (buf[i] != '\n')
				continue;
			len = i + 1 - start;
			if (len < 6 || len > 512 || buf[i - 1] != '\r' ||
			    buf[start] < '2' || buf[start] > '5' ||
			    buf[start + 1] < '0' || buf[start + 1] > '9' ||
			    buf[start + 2] < '0' || buf[start + 2] > '9' ||
			    (buf[start + 3] != ' ' && buf[start + 3] != '-'))
				abort();
			if (memchr(buf + start, '\0', len) != NULL)
				abort();
			if (memcmp(buf + start, "235 ", 4) == 0) {
				if (cssl == NULL)
					abort();	/* AUTH in the clear */
				authed = 1;
			}
			if (!cur_allowed && !authed && len >= 9 &&
			    memcmp(buf + start, "250 2.1.5", 9) == 0)
				abort();	/* relaying for a stranger */
			if (len == sizeof(ready) - 1 &&
			    memcmp(buf + start, ready, len) == 0) {
				if (cssl != NULL || i + 1 != *have)
					abort();	/* TLS twice, or
							 * more after 220 */
				want_tls = 1;
			}
			start = i + 1;
		}
		memmove(buf, buf + start, *have - start);
		*have -= start;
		if (*have >= 512)
			abort();		/* a reply line without end */
		if (want_tls)
			break;			/* the rest is TLS */
	}
	return drained;
}

/* The 220 for STARTTLS came: the handshake, as the client. */
static void
start_tls(int fd)
{
	int i, r;

	want_tls = 0;
	if ((cssl = SSL_new(client_ctx)) == NULL)
		abort();
	SSL_set_fd(cssl, fd);
	SSL_set_connect_state(cssl);
	for (i = 0; i < 256; i++) {
		if ((r = SSL_do_handshake(cssl)) == 1)
			return;
		r = SSL_get_error(cssl, r);
		ERR_clear_error();
		if (r != SSL_ERROR_WANT_READ && r != SSL_ERROR_WANT_WRITE)
			break;
		event_base_loop(base, EVLOOP_NONBLOCK);
		if (sd.nsessions == 0)
			break;
	}
	/* Failed: plaintext the client pipelined behind STARTTLS reached
	 * the server's handshake (the server read the STARTTLS line before
	 * the rest had arrived, so it could not refuse it).  The session
	 * ends; our writes fail from now on. */
}

/* Run the loop until it has nothing more to do for now. */
static void
pump(int fd, char *obuf, size_t *ohave)
{
	int i;

	for (i = 0; i < 64; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		if (check_replies(obuf, ohave, fd) == 0 && i > 0)
			break;
		if (want_tls && sd.nsessions > 0)
			start_tls(fd);
	}
}

/* A polite client waits for the answer to STARTTLS: n bytes from off,
 * cut after the first line that is a STARTTLS command. */
static size_t
polite(const uint8_t *data, size_t off, size_t n)
{
	size_t i;

	for (i = off; i < off + n; i++) {
		if ((i > 0 && data[i - 1] != '\n') || off + n - i < 9 ||
		    strncasecmp((const char *)data + i, "STARTTLS", 8) != 0)
			continue;
		for (i += 8; i < off + n; i++)
			if (data[i] == '\n')
				return i + 1 - off;
		break;
	}
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char obuf[65536];
	struct sockaddr_in sin;
	const uint8_t *sizes;
	size_t ohave = 0, off, n, k = 0, tries;
	ssize_t w;
	int sv[2], flags, early, nice;

	if (size < 9)
		return 0;
	flags = data[0];
	sizes = data + 1;
	data += 9;
	size -= 9;
	cur_allowed = flags & 1;
	early = (flags & 2) != 0;
	nice = (flags & 32) != 0;
	sd.conf = confs[((flags >> 2) & 1) | (((flags >> 3) & 1) << 1) |
	    (((flags >> 4) & 1) << 2)];
	cur_max_size = sd.conf->max_size;
	authed = want_tls = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		return 0;
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(40000);
	inet_pton(AF_INET, cur_allowed ? "192.0.2.1" : "198.51.100.7",
	    &sin.sin_addr);

	off = 0;
	if (early && size > 0) {
		n = sizes[0] == 0xff ? size : (size_t)sizes[0] * 16 + 1;
		if (n > size)
			n = size;
		if ((w = write(sv[1], data, n)) > 0)
			off = (size_t)w;
		k = 1;
	}
	sd.nall_own++;				/* accept_cb's slot */
	if (smtpd_session_new(&sd, sv[0], (struct sockaddr *)&sin,
	    sizeof(sin), cur_allowed ? SMTPD_SESS_ALLOWED : 0) == NULL)
		abort();
	pump(sv[1], obuf, &ohave);

	while (off < size && sd.nsessions > 0) {
		n = sizes[k % 8] == 0xff ? size - off :
		    (size_t)sizes[k % 8] * 16 + 1;
		k++;
		if (n > size - off)
			n = size - off;
		if (nice)
			n = polite(data, off, n);
		for (tries = 0; n > 0 && tries < 64; tries++) {
			w = cwrite(sv[1], data + off, n);
			if (w > 0) {
				off += (size_t)w;
				n -= (size_t)w;
			} else if (w == -1 && errno != EAGAIN)
				break;
			pump(sv[1], obuf, &ohave);
			if (sd.nsessions == 0)
				break;
		}
		if (n > 0 && sd.nsessions > 0 && tries == 64)
			break;		/* the session reads no more */
	}
	/* The client is done: the session must end. */
	if (cssl != NULL) {
		SSL_shutdown(cssl);		/* close_notify */
		ERR_clear_error();
	}
	shutdown(sv[1], SHUT_WR);
	for (tries = 0; tries < 16 && sd.nsessions > 0; tries++)
		pump(sv[1], obuf, &ohave);
	if (sd.nsessions > 0)
		abort();
	if (cssl != NULL)
		SSL_free(cssl);
	cssl = NULL;
	close(sv[1]);
	if (verbose != NULL)
		fprintf(verbose, "-- %d queued so far\n", queued),
		    fflush(verbose);
	return 0;
}
