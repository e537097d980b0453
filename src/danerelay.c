/*
 * danerelay.c - the operator's command-line tool.
 *
 *   danerelay [-c file] [-s spool_dir] command [arguments]
 *
 * Commands live in one dispatch table (commands[] below); a command is a
 * function taking the parsed global options and its own argv.  Today:
 *   queue | mailq            list the queue like mailq(1)
 *   queue list               the same
 *   queue delete ID ...      remove messages
 *   queue hold ID ...        put messages on hold (not delivered)
 *   queue release ID ...     release them (tried at their next retry)
 *   flush [ID|DOMAIN]        retry now: everything, a message, a domain
 *   status                   is the daemon running, queue size
 *
 * Listing reads the spool directly (spool_open_flags with
 * SPOOL_NO_RECOVER: no lock, no recovery, nothing created), so it works
 * whether the daemon runs or not; when the daemon answers on its control
 * socket, messages in a delivery attempt right now are marked '*'.
 *
 * Actions go through the daemon's control socket (src/control.c,
 * `control_socket`, default <spool_dir>/control.sock), because the
 * running daemon owns the queue: it cancels an attempt in flight before
 * deleting, and a flush only means something to its scheduler.  When no
 * daemon runs (nothing listens on the socket and spool_in_use() says the
 * spool is free), delete, hold and release edit the spool directly; root
 * first becomes the spool's owner so the files it writes stay readable
 * by the daemon.  flush and status need the daemon.  A socket path given
 * by -s alone is <spool_dir>/control.sock; otherwise it comes from the
 * configuration.
 *
 * Everything printed that came from outside (addresses, HELO names,
 * remote replies) is made printable first: a hostile peer must not be
 * able to send escape sequences to the operator's terminal.
 *
 * Exit status: 0 ok, 1 error (message on stderr), 2 usage.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "control.h"
#include "log.h"
#include "cli_mta_sts.h"
#include "probe.h"
#include "cli_tlsrpt.h"
#include "spool.h"
#include "util.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#define DEFAULT_CONFIG	SYSCONFDIR "/danerelay.conf"

#define EX_OK		0
#define EX_ERR		1
#define EX_USAGE	2

#define CTL_WAIT	60	/* seconds for any one reply of the daemon */
#define CTL_LIST_WAIT	5	/* the same, for the '*' marks of a listing */

struct cli {
	const char	*conffile;	/* -c */
	const char	*spooldir;	/* -s, overrides the config */
	struct config	 cf;
	int		 cf_loaded;
	char		*ctlpath;	/* the daemon's control socket */
};

struct command {
	const char	*name;
	int		(*fn)(struct cli *, int, char **);
	const char	*args;
	const char	*help;
};

static int cmd_queue(struct cli *, int, char **);
static int cmd_flush(struct cli *, int, char **);
static int cmd_status(struct cli *, int, char **);
static int cmd_probe(struct cli *, int, char **);
static int cmd_tlsrpt(struct cli *, int, char **);
static int cmd_mta_sts(struct cli *, int, char **);
static int queue_list(struct cli *, int, char **);
static int queue_action(struct cli *, int, char **);

/* Top-level commands.  Add probe, mta-sts, tlsrpt ... here. */
static const struct command commands[] = {
	{ "queue", cmd_queue, "[subcommand]",
	    "list the queue, or act on it (below)" },
	{ "mailq", cmd_queue, "", "the same as \"queue\"" },
	{ "flush", cmd_flush, "[ID|DOMAIN]",
	    "retry now: all, one message, one domain" },
	{ "status", cmd_status, "", "is the daemon running; queue size" },
	{ "probe", cmd_probe, "[-n] DOMAIN",
	    "how mail to DOMAIN would go: DNS, DANE, decision, TLS test" },
	{ "mta-sts", cmd_mta_sts, "show [DOMAIN] | refresh|forget DOMAIN",
	    "MTA-STS policy cache: show, fetch now, drop" },
	{ "tlsrpt", cmd_tlsrpt, "show [DOMAIN] | send [--date D]",
	    "TLSRPT counters of a UTC day; send reports now" },
};

/* "danerelay queue SUBCOMMAND". */
static const struct command queue_commands[] = {
	{ "list", queue_list, "", "list the queue (the default)" },
	{ "delete", queue_action, "ID ...", "remove messages by queue id" },
	{ "hold", queue_action, "ID ...", "put messages on hold" },
	{ "release", queue_action, "ID ...",
	    "release held messages (tried at their next retry)" },
	{ "flush", cmd_flush, "[ID|DOMAIN]", "the same as \"flush\"" },
};

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static const char *progname = "danerelay";

static void
usage(FILE *f)
{
	char sub[128];
	size_t i;

	fprintf(f, "usage: %s [-c file] [-s spool_dir] command [arguments]\n"
	    "  -c file       configuration file (default %s)\n"
	    "  -s spool_dir  use this spool directory, ignore the config\n"
	    "commands:\n", progname, DEFAULT_CONFIG);
	for (i = 0; i < NELEM(commands); i++)
		fprintf(f, "  %-6s %-22s %s\n", commands[i].name,
		    commands[i].args, commands[i].help);
	for (i = 0; i < NELEM(queue_commands); i++) {
		snprintf(sub, sizeof(sub), "%s %s", queue_commands[i].name,
		    queue_commands[i].args);
		fprintf(f, "  queue  %-22s %s\n", sub, queue_commands[i].help);
	}
}

static void
errx_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
errx_msg(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---------------------------------------------------------------- */
/* Printing foreign strings safely. */

/* Length of a valid UTF-8 sequence at p (not a C1 control), else 0. */
static size_t
utf8_len(const unsigned char *p)
{
	unsigned cp;
	size_t n, i;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, cp = p[0] & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 2 && cp < 0xa0) ||		/* C1 controls */
	    (n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

/* Printable copy: controls, '\\' and invalid bytes as \xNN.  Freed by the
 * caller.  NULL prints as "". */
static char *
safe(const char *s)
{
	const unsigned char *p;
	char *out, *o;
	size_t n;

	if (s == NULL)
		s = "";
	o = out = xmalloc(strlen(s) * 4 + 1);
	for (p = (const unsigned char *)s; *p; ) {
		if (*p >= 0x20 && *p < 0x7f && *p != '\\') {
			*o++ = (char)*p++;
		} else if (*p == '\\') {
			*o++ = '\\';
			*o++ = '\\';
			p++;
		} else if (*p >= 0x80 && (n = utf8_len(p)) > 0) {
			memcpy(o, p, n);
			o += n;
			p += n;
		} else {
			o += sprintf(o, "\\x%02X", *p);
			p++;
		}
	}
	*o = '\0';
	return out;
}

/* ---------------------------------------------------------------- */
/* Setup shared by the commands. */

static int
cli_config(struct cli *c)
{
	char err[1024];

	if (c->cf_loaded)
		return 0;
	if (config_load(c->conffile ? c->conffile : DEFAULT_CONFIG, &c->cf,
	    err, sizeof(err)) == -1) {
		errx_msg("%s", err);
		return -1;
	}
	c->cf_loaded = 1;
	return 0;
}

static const char *
cli_spool_dir(struct cli *c)
{
	if (c->spooldir != NULL)
		return c->spooldir;
	if (cli_config(c) == -1)
		return NULL;
	return c->cf.spool_dir;
}

/* -s alone: <spool_dir>/control.sock; else control_socket. */
static const char *
cli_control_path(struct cli *c)
{
	if (c->ctlpath != NULL)
		return c->ctlpath;
	if (c->spooldir != NULL && c->conffile == NULL)
		c->ctlpath = xasprintf("%s/control.sock", c->spooldir);
	else if (cli_config(c) == 0)
		c->ctlpath = xstrdup(c->cf.control_socket);
	return c->ctlpath;
}

/* "6b00..." -> "6B00..." in id; -1 if it is no queue id. */
static int
parse_id(const char *arg, char id[QUEUE_ID_LEN + 1])
{
	char *p;

	if (strlen(arg) != QUEUE_ID_LEN)
		return -1;
	dr_strlcpy(id, arg, QUEUE_ID_LEN + 1);
	for (p = id; *p; p++)
		*p = (char)toupper((unsigned char)*p);
	return queue_id_valid(id) ? 0 : -1;
}

/*
 * Root editing a spool that belongs to the daemon's user becomes that
 * user first: an envelope rewritten by root would be unreadable for the
 * daemon.  0 ok (or nothing to do), -1 printed.
 */
static int
become_spool_owner(const char *dir)
{
	struct stat st;

	if (geteuid() != 0)
		return 0;
	if (stat(dir, &st) == -1) {
		errx_msg("%s: %s", dir, strerror(errno));
		return -1;
	}
	if (st.st_uid == 0)
		return 0;
	if (setgroups(1, &st.st_gid) == -1 ||
	    setresgid(st.st_gid, st.st_gid, st.st_gid) == -1 ||
	    setresuid(st.st_uid, st.st_uid, st.st_uid) == -1) {
		errx_msg("cannot become the owner of %s (uid %ld): %s", dir,
		    (long)st.st_uid, strerror(errno));
		return -1;
	}
	return 0;
}

static struct spool *
cli_spool(struct cli *c)
{
	struct spool *sp;
	const char *dir;
	char err[1024];

	if ((dir = cli_spool_dir(c)) == NULL)
		return NULL;
	if ((sp = spool_open_flags(dir, SPOOL_NO_RECOVER, err,
	    sizeof(err))) == NULL)
		errx_msg("cannot open the spool: %s", err);
	return sp;
}

/* ---------------------------------------------------------------- */
/* The daemon's control socket (protocol: src/control.c). */

struct ctl_client {
	int	 fd;
	int	 wait;			/* seconds for each reply line */
	size_t	 len;
	char	 buf[2 * CONTROL_LINE_MAX + 2];
};

/* 0 connected; -1 with errno (ENOENT, ECONNREFUSED: nobody listens). */
static int
ctl_connect(struct ctl_client *cc, const char *path, int wait)
{
	struct sockaddr_un sun;
	int fd, saved;

	memset(cc, 0, sizeof(*cc));
	cc->fd = -1;
	cc->wait = wait;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	dr_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	/* non-blocking: a wedged daemon with a full backlog gives EAGAIN
	 * instead of hanging us */
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	cc->fd = fd;
	return 0;
}

static void
ctl_close(struct ctl_client *cc)
{
	if (cc->fd != -1)
		close(cc->fd);
	cc->fd = -1;
}

/* Wait until fd is ready; 0, or -1 with errno (ETIMEDOUT). */
static int
ctl_poll(struct ctl_client *cc, short events, double deadline)
{
	struct pollfd pfd;
	int ms, r;

	for (;;) {
		ms = (int)((deadline - mono_now()) * 1000);
		if (ms <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		pfd.fd = cc->fd;
		pfd.events = events;
		pfd.revents = 0;
		if ((r = poll(&pfd, 1, ms)) > 0)
			return 0;
		if (r == -1 && errno != EINTR)
			return -1;
	}
}

static int
ctl_send(struct ctl_client *cc, const char *req)
{
	char buf[CONTROL_LINE_MAX + 2];
	double deadline = mono_now() + cc->wait;
	size_t len, off = 0;
	ssize_t n;

	if ((len = strlen(req)) > CONTROL_LINE_MAX) {
		errno = EMSGSIZE;
		return -1;
	}
	memcpy(buf, req, len);
	buf[len++] = '\n';
	while (off < len) {
		n = send(cc->fd, buf + off, len - off, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN) {
			if (ctl_poll(cc, POLLOUT, deadline) == -1)
				return -1;
			continue;
		}
		if (n == -1)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

/* The next reply line, without "\n", into line[CONTROL_LINE_MAX + 1].
 * 0 ok; -1 with errno (ETIMEDOUT, ECONNRESET: closed, EPROTO: bad). */
static int
ctl_readline(struct ctl_client *cc, char *line, double deadline)
{
	char *nl;
	size_t l;
	ssize_t n;

	for (;;) {
		if ((nl = memchr(cc->buf, '\n', cc->len)) != NULL) {
			l = (size_t)(nl - cc->buf);
			if (l > CONTROL_LINE_MAX || memchr(cc->buf, '\0', l)) {
				errno = EPROTO;
				return -1;
			}
			memcpy(line, cc->buf, l);
			line[l] = '\0';
			cc->len -= l + 1;
			memmove(cc->buf, nl + 1, cc->len);
			return 0;
		}
		if (cc->len > CONTROL_LINE_MAX) {
			errno = EPROTO;
			return -1;
		}
		n = recv(cc->fd, cc->buf + cc->len, sizeof(cc->buf) - cc->len,
		    0);
		if (n == 0) {
			errno = ECONNRESET;
			return -1;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN) {
			if (ctl_poll(cc, POLLIN, deadline) == -1)
				return -1;
			continue;
		}
		if (n == -1)
			return -1;
		cc->len += (size_t)n;
	}
}

/*
 * One request.  Lines before the final one go to fn.  0: "ok [text]",
 * 1: "error reason", -1: the exchange failed; text or reason in msg.
 */
static int
ctl_call(struct ctl_client *cc, const char *req,
    void (*fn)(const char *, void *), void *arg, char *msg, size_t msglen)
{
	char line[CONTROL_LINE_MAX + 1];
	int sent;

	sent = ctl_send(cc, req) == 0;
	for (;;) {
		/* unsent: the daemon may have said why it closed on us */
		if (ctl_readline(cc, line, mono_now() + (sent ? cc->wait :
		    1)) == -1)
			break;
		if (strcmp(line, "ok") == 0 || strncmp(line, "ok ", 3) == 0) {
			dr_strlcpy(msg, line[2] ? line + 3 : "", msglen);
			return sent ? 0 : -1;
		}
		if (strcmp(line, "error") == 0 ||
		    strncmp(line, "error ", 6) == 0) {
			dr_strlcpy(msg, line[5] ? line + 6 : "error", msglen);
			return 1;
		}
		if (fn != NULL)
			fn(line, arg);
	}
	snprintf(msg, msglen, "%s", errno == ETIMEDOUT ? "no reply from the "
	    "daemon (timed out)" : errno == ECONNRESET || errno == EPIPE ?
	    "the daemon closed the connection" : errno == EPROTO ?
	    "malformed reply from the daemon" : strerror(errno));
	return -1;
}

enum { CTL_UP, CTL_DOWN, CTL_FAIL };

/* CTL_UP: connected; CTL_DOWN: no daemon listens (the socket is missing
 * or stale); CTL_FAIL: anything else, printed. */
static int
cli_connect(struct cli *c, struct ctl_client *cc)
{
	const char *path;

	if ((path = cli_control_path(c)) == NULL)
		return CTL_FAIL;
	if (ctl_connect(cc, path, CTL_WAIT) == 0)
		return CTL_UP;
	switch (errno) {
	case ENOENT:
	case ECONNREFUSED:
		return CTL_DOWN;
	case EACCES:
	case EPERM:
		errx_msg("%s: permission denied: only root and the daemon's "
		    "user may use the control socket", path);
		break;
	case EAGAIN:
		errx_msg("%s: the daemon is not accepting (busy); try again",
		    path);
		break;
	default:
		errx_msg("control socket %s: %s", path, strerror(errno));
	}
	return CTL_FAIL;
}

/* Subcommand dispatch for a table; argv[0] names the subcommand. */
static int
dispatch(struct cli *c, const struct command *tab, size_t n, int argc,
    char **argv)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(argv[0], tab[i].name) == 0)
			return tab[i].fn(c, argc, argv);
	errx_msg("unknown command \"%s\"", argv[0]);
	usage(stderr);
	return EX_USAGE;
}

/* ---------------------------------------------------------------- */
/* queue */

static int
cmd_queue(struct cli *c, int argc, char **argv)
{
	static char *list[] = { "list", NULL };

	if (strcmp(argv[0], "mailq") == 0 && argc > 1) {
		errx_msg("mailq takes no arguments");
		usage(stderr);
		return EX_USAGE;
	}
	if (argc < 2)
		return queue_list(c, 1, list);
	return dispatch(c, queue_commands, NELEM(queue_commands), argc - 1,
	    argv + 1);
}

static void
fmt_age(char *buf, size_t len, long long secs)
{
	if (secs < 0)
		secs = 0;
	if (secs < 60)
		snprintf(buf, len, "%llds", secs);
	else if (secs < 3600)
		snprintf(buf, len, "%lldm", secs / 60);
	else if (secs < 86400)
		snprintf(buf, len, "%lldh%02lldm", secs / 3600,
		    secs % 3600 / 60);
	else
		snprintf(buf, len, "%lldd%02lldh", secs / 86400,
		    secs % 86400 / 3600);
}

static void
fmt_time(char *buf, size_t len, time_t t)
{
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, len, "@%lld", (long long)t);
}

static void
print_message(const struct spool_env *env, int active, time_t now)
{
	const struct spool_rcpt *r;
	char t0[64], when[128], age[32], *s, *t;
	size_t i;

	fmt_time(t0, sizeof(t0), env->created);
	fmt_age(age, sizeof(age), (long long)(now - env->created));
	snprintf(when, sizeof(when), "%s (%s)", t0, age);
	s = safe(env->sender);
	printf("%-16s%c %9lld  %-29s  <%s>%s%s%s\n", env->id,
	    env->hold ? '!' : active ? '*' : ' ', (long long)env->size, when, s,
	    env->hold ? " [on hold]" : "",
	    env->is_bounce ? " [bounce]" : "",
	    env->is_report ? " [tlsrpt]" : "");
	free(s);
	for (i = 0; i < env->nrcpt; i++) {
		r = &env->rcpts[i];
		s = safe(r->addr);
		printf("    <%s> %s", s, rcpt_state_name(r->state));
		free(s);
		if (r->attempts > 0)
			printf(", %d attempt%s", r->attempts,
			    r->attempts == 1 ? "" : "s");
		if (r->state == RCPT_PENDING && r->next_attempt > now) {
			fmt_age(age, sizeof(age),
			    (long long)(r->next_attempt - now));
			printf(", next in %s", age);
		}
		if (r->relay != NULL) {
			s = safe(r->relay);
			printf(", relay=%s", s);
			free(s);
		}
		putchar('\n');
		if (r->last_error != NULL) {
			t = safe(r->last_error);
			printf("        (%s)\n", t);
			free(t);
		}
	}
	putchar('\n');
}

/* Ids of the messages in a delivery attempt now, from the daemon. */
struct active_ids {
	char	(*id)[QUEUE_ID_LEN + 1];
	size_t	 n, cap;
};

static void
active_line(const char *line, void *arg)
{
	struct active_ids *a = arg;
	char id[QUEUE_ID_LEN + 1];

	/* "msg ID active=0|1 hold=0|1 ..." */
	if (strncmp(line, "msg ", 4) != 0 ||
	    strlen(line) < 4 + QUEUE_ID_LEN + 1 ||
	    strncmp(line + 4 + QUEUE_ID_LEN, " active=1", 9) != 0)
		return;
	memcpy(id, line + 4, QUEUE_ID_LEN);
	id[QUEUE_ID_LEN] = '\0';
	if (!queue_id_valid(id))
		return;
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 16;
		a->id = xrealloc(a->id, a->cap * sizeof(*a->id));
	}
	memcpy(a->id[a->n++], id, sizeof(id));
}

static int
id_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Best effort: no daemon, no marks, nothing printed. */
static void
active_load(struct cli *c, struct active_ids *a)
{
	struct ctl_client cc;
	const char *path;
	char msg[CONTROL_LINE_MAX + 1];

	memset(a, 0, sizeof(*a));
	if ((path = cli_control_path(c)) == NULL ||
	    ctl_connect(&cc, path, CTL_LIST_WAIT) == -1)
		return;
	if (ctl_call(&cc, "list", active_line, a, msg, sizeof(msg)) != 0)
		a->n = 0;
	ctl_close(&cc);
	if (a->n > 1)
		qsort(a->id, a->n, sizeof(*a->id), id_cmp);
}

static int
active_has(const struct active_ids *a, const char *id)
{
	return a->n > 0 &&
	    bsearch(id, a->id, a->n, sizeof(*a->id), id_cmp) != NULL;
}

static int
queue_list(struct cli *c, int argc, char **argv)
{
	struct spool *sp;
	struct spool_env *env;
	struct active_ids act;
	char **ids, err[1024];
	unsigned long long total = 0;
	size_t n, i, shown = 0;
	time_t now = time(NULL);
	int rc = EX_OK;

	if (argc > 1) {
		errx_msg("queue list takes no arguments");
		return EX_USAGE;
	}
	if ((sp = cli_spool(c)) == NULL)
		return EX_ERR;
	active_load(c, &act);
	if ((ids = spool_list_ids(sp, &n)) == NULL) {
		errx_msg("%s/queue: %s", spool_dir(sp), strerror(errno));
		spool_close(sp);
		free(act.id);
		return EX_ERR;
	}
	for (i = 0; i < n; i++) {
		if (spool_env_load(sp, ids[i], &env, err, sizeof(err)) == -1) {
			if (errno == ENOENT)
				continue;	/* delivered meanwhile */
			errx_msg("%s: %s", ids[i], err);
			rc = EX_ERR;
			continue;
		}
		if (shown++ == 0)
			printf("%-16s  %9s  %-29s  %s\n", "Queue ID", "Size",
			    "Arrival time (age)", "Sender/Recipients");
		print_message(env, active_has(&act, env->id), now);
		total += (unsigned long long)env->size;
		spool_env_free(env);
	}
	if (shown == 0)
		printf("Mail queue is empty\n");
	else
		printf("-- %llu KiB in %zu messages.\n", (total + 1023) / 1024,
		    shown);
	spool_ids_free(ids, n);
	spool_close(sp);
	free(act.id);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		errx_msg("stdout: %s", strerror(errno));
		rc = EX_ERR;
	}
	return rc;
}

/* What an action did, for "ID: deleted". */
static const char *
action_done(const char *verb)
{
	if (strcmp(verb, "delete") == 0)
		return "deleted";
	if (strcmp(verb, "hold") == 0)
		return "on hold";
	return "released";
}

/* Through the running daemon: one connection, one request per id. */
static int
action_daemon(struct ctl_client *cc, const char *verb,
    char (*ids)[QUEUE_ID_LEN + 1], int n)
{
	char req[64], msg[CONTROL_LINE_MAX + 1], *s;
	int i, r, rc = EX_OK;

	for (i = 0; i < n; i++) {
		snprintf(req, sizeof(req), "%s %s", verb, ids[i]);
		r = ctl_call(cc, req, NULL, NULL, msg, sizeof(msg));
		s = safe(msg);
		if (r == 0)
			printf("%s: %s\n", ids[i], action_done(verb));
		else
			errx_msg("%s: %s%s", ids[i], r == -1 ?
			    "control socket: " : "", s);
		free(s);
		if (r != 0)
			rc = EX_ERR;
		if (r == -1)
			break;
	}
	return rc;
}

/* No daemon: edit the spool ourselves. */
static int
action_spool(struct cli *c, const char *verb, char (*ids)[QUEUE_ID_LEN + 1],
    int n)
{
	struct spool *sp;
	struct spool_env *env;
	const char *dir;
	char err[1024];
	int i, on, rc = EX_OK;

	if ((dir = cli_spool_dir(c)) == NULL || become_spool_owner(dir) == -1)
		return EX_ERR;
	if ((sp = cli_spool(c)) == NULL)
		return EX_ERR;
	if (spool_in_use(sp)) {
		errx_msg("the daemon is running but does not answer on its "
		    "control socket %s; not changing its queue behind its "
		    "back", cli_control_path(c));
		spool_close(sp);
		return EX_ERR;
	}
	log_init("danerelay", 0, 0);	/* changes are logged to syslog */
	for (i = 0; i < n; i++) {
		if (strcmp(verb, "delete") == 0) {
			if (spool_remove(sp, ids[i]) == -1) {
				if (errno == ENOENT)
					errx_msg("%s: no such message in the "
					    "queue", ids[i]);
				else
					errx_msg("%s: cannot remove: %s",
					    ids[i], strerror(errno));
				rc = EX_ERR;
				continue;
			}
			log_info("%s: removed by the operator (danerelay queue "
			    "delete, daemon not running)", ids[i]);
			printf("%s: deleted\n", ids[i]);
			continue;
		}
		on = strcmp(verb, "hold") == 0;
		if (spool_env_load(sp, ids[i], &env, err, sizeof(err)) == -1) {
			if (errno == ENOENT)
				errx_msg("%s: no such message in the queue",
				    ids[i]);
			else
				errx_msg("%s: %s", ids[i], err);
			rc = EX_ERR;
			continue;
		}
		if (env->hold != on) {
			env->hold = on;
			if (spool_env_save(sp, env, err, sizeof(err)) == -1) {
				errx_msg("%s: %s", ids[i], err);
				spool_env_free(env);
				rc = EX_ERR;
				continue;
			}
			log_info("%s: %s by the operator (danerelay queue %s, "
			    "daemon not running)", ids[i], on ? "held" :
			    "released", verb);
		}
		spool_env_free(env);
		printf("%s: %s\n", ids[i], action_done(verb));
	}
	spool_close(sp);
	return rc;
}

/* queue delete|hold|release ID ... */
static int
queue_action(struct cli *c, int argc, char **argv)
{
	struct ctl_client cc;
	char (*ids)[QUEUE_ID_LEN + 1], *s;
	int i, rc;

	if (argc < 2) {
		errx_msg("queue %s: which queue id?", argv[0]);
		usage(stderr);
		return EX_USAGE;
	}
	ids = xcalloc((size_t)argc - 1, sizeof(*ids));
	for (i = 1; i < argc; i++) {
		/* Ids are printed upper-case; accept them in either case. */
		if (parse_id(argv[i], ids[i - 1]) == -1) {
			s = safe(argv[i]);
			errx_msg("\"%s\" is not a queue id", s);
			free(s);
			free(ids);
			return EX_USAGE;
		}
	}
	switch (cli_connect(c, &cc)) {
	case CTL_UP:
		rc = action_daemon(&cc, argv[0], ids, argc - 1);
		ctl_close(&cc);
		break;
	case CTL_DOWN:
		rc = action_spool(c, argv[0], ids, argc - 1);
		break;
	default:
		rc = EX_ERR;
	}
	free(ids);
	return rc;
}

/* ---------------------------------------------------------------- */
/* flush, status: only with a running daemon */

static int
cmd_flush(struct cli *c, int argc, char **argv)
{
	struct ctl_client cc;
	char target[256], req[300], msg[CONTROL_LINE_MAX + 1], *s;
	const unsigned char *p;
	int r;

	if (argc > 2) {
		errx_msg("flush: at most one queue id or domain");
		usage(stderr);
		return EX_USAGE;
	}
	target[0] = '\0';
	if (argc == 2 && parse_id(argv[1], target) == -1) {
		/* a domain: printable ASCII, no space (the daemon compares
		 * it case-insensitively with the recipients' domains) */
		for (p = (const unsigned char *)argv[1]; *p; p++)
			if (*p <= 0x20 || *p >= 0x7f)
				break;
		if (*p != '\0' || argv[1][0] == '\0' ||
		    strlen(argv[1]) >= sizeof(target)) {
			s = safe(argv[1]);
			errx_msg("\"%s\" is not a queue id or domain", s);
			free(s);
			return EX_USAGE;
		}
		dr_strlcpy(target, argv[1], sizeof(target));
	}
	switch (cli_connect(c, &cc)) {
	case CTL_UP:
		break;
	case CTL_DOWN:
		errx_msg("the daemon is not running (nothing listens on %s): "
		    "nothing to flush", cli_control_path(c));
		return EX_ERR;
	default:
		return EX_ERR;
	}
	snprintf(req, sizeof(req), "flush%s%s", *target ? " " : "", target);
	r = ctl_call(&cc, req, NULL, NULL, msg, sizeof(msg));
	ctl_close(&cc);
	s = safe(msg);
	if (r == 0 && *target)
		printf("%s: scheduled for delivery now\n", target);
	else if (r == 0)
		printf("queue flushed: every deferred message is scheduled "
		    "for delivery now\n");
	else
		errx_msg("flush%s%s: %s%s", *target ? " " : "", target,
		    r == -1 ? "control socket: " : "", s);
	free(s);
	return r == 0 ? EX_OK : EX_ERR;
}

/*
 * "danerelay probe [-n] DOMAIN": the route the delivery engine would take
 * and, without -n, a real STARTTLS handshake with each candidate address
 * (probe.c).  Runs its own resolver; needs no daemon.
 */
static int
cmd_probe(struct cli *c, int argc, char **argv)
{
	int no_connect = 0, r;

	if (argc == 3 && strcmp(argv[1], "-n") == 0) {
		no_connect = 1;
		argv++;
		argc--;
	}
	if (argc != 2 || argv[1][0] == '-' || argv[1][0] == '\0') {
		errx_msg("usage: probe [-n] DOMAIN");
		return EX_USAGE;
	}
	if (cli_config(c) == -1)
		return EX_ERR;
	r = probe_run(&c->cf, argv[1], no_connect, stdout);
	fflush(stdout);
	return r == 0 ? EX_OK : EX_ERR;
}

/* "danerelay mta-sts show|refresh|forget ...": cli_mta_sts.c does the work. */
static int
cmd_mta_sts(struct cli *c, int argc, char **argv)
{
	if (cli_config(c) == -1)
		return EX_ERR;
	return mta_sts_cli(&c->cf, argc, argv);	/* argv[0] = "mta-sts" */
}

/* "danerelay tlsrpt show|send ...": tlsrpt_report.c does the work. */
static int
cmd_tlsrpt(struct cli *c, int argc, char **argv)
{
	if (cli_config(c) == -1)
		return EX_ERR;
	return tlsrpt_cli(&c->cf, argc, argv);	/* argv[0] = "tlsrpt" */
}

static int
cmd_status(struct cli *c, int argc, char **argv)
{
	struct ctl_client cc;
	char msg[CONTROL_LINE_MAX + 1], *s;
	unsigned long long nmsg, nactive;
	int r;

	if (argc > 1) {
		errx_msg("status takes no arguments");
		return EX_USAGE;
	}
	switch (cli_connect(c, &cc)) {
	case CTL_UP:
		break;
	case CTL_DOWN:
		printf("danerelayd is not running (nothing listens on %s)\n",
		    cli_control_path(c));
		return EX_ERR;
	default:
		return EX_ERR;
	}
	r = ctl_call(&cc, "status", NULL, NULL, msg, sizeof(msg));
	ctl_close(&cc);
	if (r == 0 && sscanf(msg, "messages=%llu active=%llu", &nmsg,
	    &nactive) == 2) {
		printf("danerelayd is running: %llu message%s in the queue, "
		    "%llu delivery attempt%s in progress\n", nmsg,
		    nmsg == 1 ? "" : "s", nactive, nactive == 1 ? "" : "s");
		return EX_OK;
	}
	s = safe(r == 0 ? "unexpected reply" : msg);
	errx_msg("status: %s", s);
	free(s);
	return EX_ERR;
}

/* ---------------------------------------------------------------- */

int
main(int argc, char *argv[])
{
	struct cli c;
	size_t i;
	int ch, rc;

	memset(&c, 0, sizeof(c));
	while ((ch = getopt(argc, argv, "+c:s:h")) != -1) {
		switch (ch) {
		case 'c':
			c.conffile = optarg;
			break;
		case 's':
			c.spooldir = optarg;
			break;
		case 'h':
			usage(stdout);
			return EX_OK;
		default:
			usage(stderr);
			return EX_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1) {
		usage(stderr);
		return EX_USAGE;
	}
	rc = -1;
	for (i = 0; i < NELEM(commands); i++)
		if (strcmp(argv[0], commands[i].name) == 0) {
			rc = commands[i].fn(&c, argc, argv);
			break;
		}
	if (rc == -1) {
		errx_msg("unknown command \"%s\"", argv[0]);
		usage(stderr);
		rc = EX_USAGE;
	}
	if (c.cf_loaded)
		config_free(&c.cf);
	free(c.ctlpath);
	return rc;
}
