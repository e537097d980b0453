/*
 * control.c - the daemon's UNIX control socket: how the operator's
 * `danerelay` tool asks the running daemon to flush, hold, release or
 * delete queued mail (the daemon owns the queue in memory; editing the
 * spool behind its back would race with deliveries in flight).
 *
 * control_new() creates `control_socket` while the daemon may still be
 * root: a leftover socket nobody listens on is replaced, a live one (a
 * second daemon) or anything that is not a socket is refused.  It is
 * bound under umask 0177, chmod 0600 and, when we are root, given to the
 * daemon's user, so its directory need not be writable by that user.
 * control_start() accepts on the event base once the queue exists.
 * Access: the file mode keeps other users out; in addition every
 * connection's SO_PEERCRED uid must be 0 or the daemon's uid, otherwise
 * it gets "error permission denied" and is closed.
 *
 * The protocol is described in control.h (the client side is
 * control_client.c).
 *
 * Limits: CTL_MAX_CONNS connections at a time, CTL_TIMEOUT seconds of
 * silence (or of a client not reading its reply) and the connection is
 * closed.  Every action is logged with the peer's uid and pid.
 */

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "config.h"
#include "control.h"
#include "dnssec_check.h"
#include "log.h"
#include "queue.h"
#include "senderlimit.h"
#include "smtpd.h"
#include "spool.h"
#include "suspend.h"
#include "tls_memory.h"
#include "util.h"

#define CTL_BACKLOG	16
#define CTL_MAX_CONNS	32
#define CTL_TIMEOUT	30	/* seconds idle, or with a reply unread */
#define CTL_MAX_ARGS	CONTROL_MAX_ARGS	/* command + one argument */

struct ctl_conn {
	TAILQ_ENTRY(ctl_conn)	 entry;
	struct control		*ctl;
	struct bufferevent	*bev;
	uid_t			 uid;	/* of the peer (SO_PEERCRED) */
	pid_t			 pid;
	int			 closing;	/* close once the reply is out */
	int			 eof;		/* the peer has shut down */
};
TAILQ_HEAD(ctl_conn_list, ctl_conn);

struct control {
	char			*path;
	int			 fd;
	dev_t			 dev;		/* our socket file, to remove */
	ino_t			 ino;		/* only it at the end */
	uid_t			 uid;		/* the daemon's user */
	struct event_base	*base;
	struct queue		*q;
	struct evconnlistener	*evl;
	struct ctl_conn_list	 conns;
	int			 nconns;
	struct tls_memory	*tlsmem;	/* NULL: none */
	struct workq_port	*port;		/* its writes, on base */
	char			*spool_dir;	/* its "suspended" list */
	struct smtpd		*sd;		/* "senders"; NULL: none */
};

static void conn_pump(struct ctl_conn *);

/* ---------------------------------------------------------------- */
/* Creating the socket */

/* Is somebody listening on the socket at sun?  1 yes, 0 no (stale),
 * -1 cannot tell (errno). */
static int
socket_alive(const struct sockaddr_un *sun)
{
	int fd, r, saved;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0)) == -1)
		return -1;
	r = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	saved = errno;
	close(fd);
	if (r == 0)
		return 1;
	switch (saved) {
	case EAGAIN:		/* listening, backlog full */
	case EINPROGRESS:
		return 1;
	case ECONNREFUSED:	/* nobody listening */
	case ENOENT:
		return 0;
	}
	errno = saved;
	return -1;
}

struct control *
control_new(const struct config *cf, uid_t uid, gid_t gid, char *err,
    size_t errlen)
{
	struct control *ctl;
	struct sockaddr_un sun;
	struct stat st;
	const char *path = cf->control_socket;
	mode_t old;
	int fd, r, saved;

	if (path == NULL || *path == '\0') {
		snprintf(err, errlen, "control_socket is not set");
		return NULL;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "control_socket %s: path too long for a "
		    "UNIX socket (at most %zu bytes)", path,
		    sizeof(sun.sun_path) - 1);
		return NULL;
	}
	dr_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));

	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "control_socket %s: exists and "
			    "is not a socket", path);
			return NULL;
		}
		switch (socket_alive(&sun)) {
		case 1:
			snprintf(err, errlen, "control_socket %s: another "
			    "process is listening on it", path);
			return NULL;
		case -1:
			snprintf(err, errlen, "control_socket %s: %s", path,
			    strerror(errno));
			return NULL;
		}
		if (unlink(path) == -1 && errno != ENOENT) {
			snprintf(err, errlen, "remove stale control_socket %s: "
			    "%s", path, strerror(errno));
			return NULL;
		}
		log_debug("removed stale control socket %s", path);
	} else if (errno != ENOENT) {
		snprintf(err, errlen, "control_socket %s: %s", path,
		    strerror(errno));
		return NULL;
	}

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0)) == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return NULL;
	}
	old = umask(0177);	/* never a moment with a wider mode */
	r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	saved = errno;
	umask(old);
	if (r == -1) {
		snprintf(err, errlen, "bind %s: %s", path, strerror(saved));
		close(fd);
		return NULL;
	}
	if (chmod(path, 0600) == -1 ||
	    (geteuid() == 0 && uid != 0 && lchown(path, uid, gid) == -1) ||
	    listen(fd, CTL_BACKLOG) == -1 || lstat(path, &st) == -1) {
		snprintf(err, errlen, "control_socket %s: %s", path,
		    strerror(errno));
		(void)unlink(path);
		close(fd);
		return NULL;
	}

	ctl = xcalloc(1, sizeof(*ctl));
	ctl->path = xstrdup(path);
	ctl->spool_dir = xstrdup(cf->spool_dir);
	ctl->fd = fd;
	ctl->dev = st.st_dev;
	ctl->ino = st.st_ino;
	ctl->uid = uid;
	TAILQ_INIT(&ctl->conns);
	log_debug("control socket %s (uid %ld and root)", path, (long)uid);
	return ctl;
}

/* ---------------------------------------------------------------- */
/* Connections */

static void
conn_free(struct ctl_conn *c)
{
	TAILQ_REMOVE(&c->ctl->conns, c, entry);
	c->ctl->nconns--;
	bufferevent_free(c->bev);
	free(c);
}

static void
reply(struct ctl_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
reply(struct ctl_conn *c, const char *fmt, ...)
{
	char line[CONTROL_LINE_MAX + 1];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	evbuffer_add_printf(bufferevent_get_output(c->bev), "%s\n", line);
}

/* Finding one message through queue_foreach. */
struct find {
	const char	*id;
	int		 found;
	int		 hold;
	int		 pending;
};

static void
find_one(const struct spool_env *env, int active, void *arg)
{
	struct find *f = arg;
	size_t i;

	(void)active;
	if (f->found || strcmp(env->id, f->id) != 0)
		return;
	f->found = 1;
	f->hold = env->hold;
	for (i = 0; i < env->nrcpt; i++)
		if (env->rcpts[i].state == RCPT_PENDING)
			f->pending = 1;
}

/* A domain or queue id as flush takes it: printable, no space. */
static int
arg_ok(const char *s)
{
	size_t n = 0;

	for (; *s; s++, n++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return 0;
	return n > 0 && n <= 255;
}

static void
req_flush(struct ctl_conn *c, int argc, char **argv)
{
	struct queue *q = c->ctl->q;
	struct find f;

	if (argc == 1) {
		(void)queue_flush(q, NULL);	/* -1: nothing pending */
		reply(c, "ok");
		return;
	}
	if (!arg_ok(argv[1])) {
		reply(c, "error not a queue id or domain");
		return;
	}
	if (queue_id_valid(argv[1])) {
		memset(&f, 0, sizeof(f));
		f.id = argv[1];
		queue_foreach(q, find_one, &f);
		if (!f.found) {
			reply(c, "error no such message in the queue");
			return;
		}
		if (f.hold) {
			reply(c, "error message is on hold: release it first");
			return;
		}
		if (!f.pending) {
			reply(c, "error message has no recipient left to "
			    "deliver");
			return;
		}
	}
	if (queue_flush(q, argv[1]) == -1) {
		reply(c, "error no recipient at %s is waiting in the queue",
		    argv[1]);
		return;
	}
	reply(c, "ok");
}

static int
id_arg(struct ctl_conn *c, const char *id)
{
	if (!queue_id_valid(id)) {
		reply(c, "error not a queue id");
		return -1;
	}
	return 0;
}

static void
req_hold(struct ctl_conn *c, int argc, char **argv)
{
	(void)argc;
	if (id_arg(c, argv[1]) == -1)
		return;
	if (queue_hold(c->ctl->q, argv[1], strcmp(argv[0], "hold") == 0) == -1)
		reply(c, "error no such message in the queue");
	else
		reply(c, "ok");
}

static void
req_delete(struct ctl_conn *c, int argc, char **argv)
{
	(void)argc;
	if (id_arg(c, argv[1]) == -1)
		return;
	if (queue_delete(c->ctl->q, argv[1]) == -1)
		reply(c, "error no such message in the queue");
	else
		reply(c, "ok");
}

/* The domain argument of a request by domain, as suspend.h keeps it. */
static int
domain_arg(struct ctl_conn *c, const char *arg, char *dom, size_t len)
{
	if (!arg_ok(arg) || suspend_norm(arg, dom, len) == -1) {
		reply(c, "error not a domain name");
		return -1;
	}
	return 0;
}

/* hold-domain|release-domain|delete-domain|bounce-domain DOMAIN:
 * "ok N", N messages touched. */
static void
req_by_domain(struct ctl_conn *c, int argc, char **argv)
{
	struct queue *q = c->ctl->q;
	char dom[256];
	size_t n;

	(void)argc;
	if (domain_arg(c, argv[1], dom, sizeof(dom)) == -1)
		return;
	if (strcmp(argv[0], "hold-domain") == 0)
		n = queue_hold_domain(q, dom, 1);
	else if (strcmp(argv[0], "release-domain") == 0)
		n = queue_hold_domain(q, dom, 0);
	else if (strcmp(argv[0], "delete-domain") == 0)
		n = queue_delete_domain(q, dom);
	else
		n = queue_bounce_domain(q, dom);
	reply(c, "ok %zu", n);
}

static void
req_bounce(struct ctl_conn *c, int argc, char **argv)
{
	(void)argc;
	if (id_arg(c, argv[1]) == -1)
		return;
	if (queue_bounce(c->ctl->q, argv[1]) == -1)
		reply(c, "error no such message in the queue");
	else
		reply(c, "ok");
}

/* suspend|resume DOMAIN: the file first (it is what a restart reads),
 * then every worker's queue.  "ok changed" or "ok unchanged". */
static void
req_suspend(struct ctl_conn *c, int argc, char **argv)
{
	char dom[256], err[512];
	int on = strcmp(argv[0], "suspend") == 0, r;

	(void)argc;
	if (domain_arg(c, argv[1], dom, sizeof(dom)) == -1)
		return;
	if ((r = suspend_change(c->ctl->spool_dir, dom, on, err,
	    sizeof(err))) == -1) {
		reply(c, "error %s", err);
		return;
	}
	queue_suspend(c->ctl->q, dom, on);
	if (r == 1)
		log_info("queue: deliveries to %s %s by the operator", dom,
		    on ? "suspended" : "resumed");
	reply(c, "ok %s", r == 1 ? "changed" : "unchanged");
}

#define TOP_SENDERS	5

static void
req_senders(struct ctl_conn *c, int argc, char **argv)
{
	struct senderlimit_entry top[TOP_SENDERS];
	struct rate r = { 0, 1 };
	char buf[32];
	size_t i, n = 0;

	(void)argc;
	(void)argv;
	if (c->ctl->sd != NULL)
		n = smtpd_top_senders(c->ctl->sd, top, TOP_SENDERS, &r.count,
		    &r.per);
	for (i = 0; i < n; i++)
		reply(c, "sender %d %lld %s", top[i].count,
		    (long long)top[i].start, top[i].key);
	reply(c, "ok %s", rate_str(&r, buf, sizeof(buf)));
}

struct list_arg {
	struct ctl_conn	*c;
	size_t		 n;
};

static void
list_one(const struct spool_env *env, int active, void *arg)
{
	struct list_arg *la = arg;
	size_t i, pending = 0;

	for (i = 0; i < env->nrcpt; i++)
		if (env->rcpts[i].state == RCPT_PENDING)
			pending++;
	reply(la->c, "msg %s active=%d hold=%d rcpts=%zu pending=%zu",
	    env->id, active ? 1 : 0, env->hold ? 1 : 0, env->nrcpt, pending);
	la->n++;
}

static void
req_list(struct ctl_conn *c, int argc, char **argv)
{
	struct list_arg la = { c, 0 };

	(void)argc;
	(void)argv;
	queue_foreach(c->ctl->q, list_one, &la);
	reply(c, "ok %zu", la.n);
}

/* " dnssec=STATE dnssec_checked=UNIXTIME dnssec_name=NAME" of status:
 * the self-test's last result (dnssec_check.h). */
static void
status_dnssec(char *buf, size_t len)
{
	char name[256];

	dnssec_check_name(name, sizeof(name));
	snprintf(buf, len, "dnssec=%s dnssec_checked=%lld dnssec_name=%s",
	    dnssec_state_name(dnssec_check_state()),
	    (long long)dnssec_check_time(), name);
}

static void
req_status(struct ctl_conn *c, int argc, char **argv)
{
	char dnssec[512];

	(void)argc;
	(void)argv;
	status_dnssec(dnssec, sizeof(dnssec));
	reply(c, "ok messages=%zu active=%zu %s", queue_size(c->ctl->q),
	    queue_active(c->ctl->q), dnssec);
}

/* "tls-memory-show [DOMAIN]": "entry DOMAIN LEVEL FIRST LAST" (times in
 * seconds since the epoch) per entry, then "ok N". */
struct tm_show {
	struct ctl_conn	*c;
	const char	*domain;	/* NULL: all */
	size_t		 n;
};

static int
tm_show_one(const struct tlsmem_entry *e, void *arg)
{
	struct tm_show *ts = arg;

	if (ts->domain != NULL && strcmp(ts->domain, e->domain) != 0)
		return 0;
	reply(ts->c, "entry %s %s %lld %lld", e->domain,
	    tlsmem_level_name(e->level), (long long)e->first_seen,
	    (long long)e->last_seen);
	ts->n++;
	return 0;
}

static void
req_tls_memory(struct ctl_conn *c, int argc, char **argv)
{
	struct tm_show ts = { c, NULL, 0 };
	char dom[256] = "";

	if (c->ctl->tlsmem == NULL) {
		reply(c, "error TLS memory is not available");
		return;
	}
	if (argc > 1) {
		if (!arg_ok(argv[1])) {
			reply(c, "error not a domain");
			return;
		}
		dr_strlcpy(dom, argv[1], sizeof(dom));
		str_lower(dom);
		ts.domain = dom;
	}
	if (strcmp(argv[0], "tls-memory-forget") == 0) {
		if (tls_memory_forget(c->ctl->tlsmem, c->ctl->port, dom) == 1)
			reply(c, "ok forgotten");
		else
			reply(c, "error nothing remembered for %s", dom);
		return;
	}
	(void)tls_memory_foreach(c->ctl->tlsmem, tm_show_one, &ts);
	reply(c, "ok %zu", ts.n);
}

static const struct request {
	const char	*name;
	int		 minargs, maxargs;	/* not counting the name */
	int		 changes;		/* logged at info level */
	void		(*fn)(struct ctl_conn *, int, char **);
	const char	*usage;			/* its arguments */
} requests[] = {
	{ "flush",	0, 1, 1, req_flush, " [ID|DOMAIN]" },
	{ "hold",	1, 1, 1, req_hold, " ID" },
	{ "release",	1, 1, 1, req_hold, " ID" },
	{ "delete",	1, 1, 1, req_delete, " ID" },
	{ "bounce",	1, 1, 1, req_bounce, " ID" },
	{ "hold-domain", 1, 1, 1, req_by_domain, " DOMAIN" },
	{ "release-domain", 1, 1, 1, req_by_domain, " DOMAIN" },
	{ "delete-domain", 1, 1, 1, req_by_domain, " DOMAIN" },
	{ "bounce-domain", 1, 1, 1, req_by_domain, " DOMAIN" },
	{ "suspend",	1, 1, 1, req_suspend, " DOMAIN" },
	{ "resume",	1, 1, 1, req_suspend, " DOMAIN" },
	{ "list",	0, 0, 0, req_list, "" },
	{ "status",	0, 0, 0, req_status, "" },
	{ "senders",	0, 0, 0, req_senders, "" },
	{ "tls-memory-show", 0, 1, 0, req_tls_memory, " [DOMAIN]" },
	{ "tls-memory-forget", 1, 1, 1, req_tls_memory, " DOMAIN" },
};

int
control_parse_request(char *line, char **argv, int *argcp, char *err,
    size_t errlen)
{
	const struct request *r = NULL;
	char *p, *save;
	int argc = 0;
	size_t i;

	for (p = line; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) {
			if (*p == '\t')
				continue;
			snprintf(err, errlen, "error request is not printable "
			    "ASCII");
			return -1;
		}
	for (p = strtok_r(line, " \t", &save); p != NULL;
	    p = strtok_r(NULL, " \t", &save)) {
		if (argc == CTL_MAX_ARGS) {
			snprintf(err, errlen, "error too many arguments");
			return -1;
		}
		argv[argc++] = p;
	}
	if (argc == 0) {
		snprintf(err, errlen, "error empty request");
		return -1;
	}
	for (i = 0; i < sizeof(requests) / sizeof(requests[0]); i++)
		if (strcmp(argv[0], requests[i].name) == 0)
			r = &requests[i];
	if (r == NULL) {
		size_t len;

		len = (size_t)snprintf(err, errlen, "error unknown request (");
		for (i = 0; i < sizeof(requests) / sizeof(requests[0]) &&
		    len < errlen; i++)
			len += (size_t)snprintf(err + len, errlen - len, "%s%s",
			    i ? ", " : "", requests[i].name);
		if (len < errlen)
			snprintf(err + len, errlen - len, ")");
		return -1;
	}
	if (argc - 1 < r->minargs || argc - 1 > r->maxargs) {
		snprintf(err, errlen, "error usage: %s%s", r->name,
		    r->usage);
		return -1;
	}
	*argcp = argc;
	return (int)(r - requests);
}

static void
conn_request(struct ctl_conn *c, char *line)
{
	const struct request *r;
	char *argv[CTL_MAX_ARGS], err[128];
	int argc, i;

	if ((i = control_parse_request(line, argv, &argc, err,
	    sizeof(err))) == -1) {
		reply(c, "%s", err);
		return;
	}
	r = &requests[i];
	if (r->changes)
		log_info("control: %s%s%s (uid %ld, pid %ld)", argv[0],
		    argc > 1 ? " " : "", argc > 1 ? argv[1] : "",
		    (long)c->uid, (long)c->pid);
	else
		log_debug("control: %s (uid %ld, pid %ld)", argv[0],
		    (long)c->uid, (long)c->pid);
	r->fn(c, argc, argv);
}

int
control_read_request(struct evbuffer *in, char **linep, const char **errp)
{
	char *line;
	size_t len;

	line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
	if (line == NULL) {
		if (evbuffer_get_length(in) > CONTROL_LINE_MAX + 1) {
			*errp = "error request too long";
			return -1;
		}
		return 0;
	}
	if (len > 0 && line[len - 1] == '\r')
		line[--len] = '\0';
	if (len > CONTROL_LINE_MAX || memchr(line, '\0', len)) {
		free(line);
		*errp = "error request too long or with a NUL byte";
		return -1;
	}
	*linep = line;
	return 1;
}

/*
 * Read and answer requests while no reply is waiting to be written; with
 * one waiting, stop reading until the write callback says it is out.
 * May free c.
 */
static void
conn_pump(struct ctl_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct evbuffer *out = bufferevent_get_output(c->bev);
	const char *why;
	char *line;
	int r;

	while (!c->closing && evbuffer_get_length(out) == 0) {
		if ((r = control_read_request(in, &line, &why)) == 0)
			break;
		if (r == -1) {
			reply(c, "%s", why);
			c->closing = 1;
			break;
		}
		conn_request(c, line);
		free(line);
	}
	if (evbuffer_get_length(out) > 0) {
		bufferevent_disable(c->bev, EV_READ);
		bufferevent_enable(c->bev, EV_WRITE);
		return;
	}
	if (c->closing || c->eof) {
		conn_free(c);
		return;
	}
	bufferevent_enable(c->bev, EV_READ);
}

static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_pump(arg);
}

/* The output buffer is empty: the reply is out. */
static void
conn_write_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_pump(arg);
}

static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct ctl_conn *c = arg;

	(void)bev;
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR)) {
		/* answer what was sent before the shutdown, then close */
		c->eof = 1;
		conn_pump(c);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		log_debug("control: connection of uid %ld timed out",
		    (long)c->uid);
	conn_free(c);
}

static void
refuse(evutil_socket_t fd, const char *line)
{
	ssize_t r;

	/* best effort on a fresh non-blocking socket; never waits */
	r = send(fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)r;
	close(fd);
}

static void
accept_cb(struct evconnlistener *evl, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct control *ctl = arg;
	struct ctl_conn *c;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct timeval tv = { CTL_TIMEOUT, 0 };

	(void)evl;
	(void)sa;
	(void)salen;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1 ||
	    len != sizeof(cred)) {
		log_warn("control: SO_PEERCRED");
		close(fd);
		return;
	}
	if (cred.uid != 0 && cred.uid != ctl->uid) {
		log_warnx("control: refused uid %ld (pid %ld): only root and "
		    "uid %ld may use %s", (long)cred.uid, (long)cred.pid,
		    (long)ctl->uid, ctl->path);
		refuse(fd, "error permission denied\n");
		return;
	}
	if (ctl->nconns >= CTL_MAX_CONNS) {
		log_warnx("control: refused uid %ld (pid %ld): %d connections "
		    "open", (long)cred.uid, (long)cred.pid, ctl->nconns);
		refuse(fd, "error too many control connections, try again\n");
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->ctl = ctl;
	c->uid = cred.uid;
	c->pid = cred.pid;
	if ((c->bev = bufferevent_socket_new(ctl->base, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		log_warnx("control: cannot set up a connection");
		close(fd);
		free(c);
		return;
	}
	TAILQ_INSERT_TAIL(&ctl->conns, c, entry);
	ctl->nconns++;
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb,
	    c);
	/* stop reading once a line cannot be complete any more */
	bufferevent_setwatermark(c->bev, EV_READ, 0, CONTROL_LINE_MAX + 2);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void
accept_error_cb(struct evconnlistener *evl, void *arg)
{
	(void)evl;
	(void)arg;
	/* EMFILE and friends: the listener retries on the next event */
	log_warn("control: accept");
}

void
control_set_smtpd(struct control *ctl, struct smtpd *sd)
{
	ctl->sd = sd;
}

void
control_set_tls_memory(struct control *ctl, struct tls_memory *tm,
    struct workq_port *port)
{
	ctl->tlsmem = tm;
	ctl->port = port;
}

int
control_start(struct control *ctl, struct event_base *base,
    struct queue *q, char *err, size_t errlen)
{
	ctl->base = base;
	ctl->q = q;
	if ((ctl->evl = evconnlistener_new(base, accept_cb, ctl,
	    LEV_OPT_CLOSE_ON_EXEC, 0, ctl->fd)) == NULL) {
		snprintf(err, errlen, "control socket %s: cannot accept",
		    ctl->path);
		return -1;
	}
	evconnlistener_set_error_cb(ctl->evl, accept_error_cb);
	return 0;
}

void
control_free(struct control *ctl)
{
	struct ctl_conn *c;
	struct stat st;

	if (ctl == NULL)
		return;
	while ((c = TAILQ_FIRST(&ctl->conns)) != NULL)
		conn_free(c);
	if (ctl->evl != NULL)
		evconnlistener_free(ctl->evl);
	close(ctl->fd);
	/* Remove the file only if it is still the one we bound (not a
	 * newer daemon's); when we dropped privileges and its directory
	 * is not ours, it stays: the next start replaces it, and clients
	 * see "connection refused", i.e. no daemon. */
	if (lstat(ctl->path, &st) == 0 && st.st_dev == ctl->dev &&
	    st.st_ino == ctl->ino && unlink(ctl->path) == -1)
		log_debug("control socket %s left in place: %s", ctl->path,
		    strerror(errno));
	free(ctl->path);
	free(ctl->spool_dir);
	free(ctl);
}
