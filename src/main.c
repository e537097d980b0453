/*
 * main.c - danerelayd, the daemon: start-up, privileges, signals.
 *
 *	danerelayd [-fdn] [-c file]
 *	danerelayd -h | --help | -V | --version
 *
 *	-c file	configuration (default SYSCONFDIR/danerelay.conf)
 *	-f	stay in the foreground and log to stderr
 *	-d	debug logging
 *	-n	check the configuration and everything a start loads from it
 *		(check_startup_files()), print the result and exit 0 or 1
 *	-h	usage on stdout, exit 0 (a bad option: usage on stderr, exit 1)
 *	-V	the version
 *
 * Start-up order, and why:
 *	1. load the config (errors are "file:line: reason" on stderr, exit 1)
 *	   and check its trust anchors (dnssec_check_config(); also -n and
 *	   every SIGHUP);
 *	2. when root: look up `user` (refuse to start without it);
 *	3. create spool_dir and state_dir (mode 0700, owned by `user`);
 *	4. bind the listeners (smtpd_new, metrics_new) while still
 *	   privileged, so port 25 works;
 *	5. without -f: fork; the parent waits (bounded) on a pipe until the
 *	   child reports "ready" or an error, so a failing start-up still
 *	   exits 1 with the reason on the terminal;
 *	6. write the pid file (still root: its directory is created and handed
 *	   to `user`, and the file is chowned, so it can be removed at exit
 *	   after the drop);
 *	7. drop privileges: setgroups, setresgid, setresuid, then check that
 *	   root cannot be regained;
 *	8. open the spool (recovery runs here), run the first DNSSEC
 *	   self-test (dnssec_check.h: an insecure answer refuses the start),
 *	   start the event loop.
 *
 * Signals go through libevent: SIGTERM/SIGINT stop accepting, let open
 * work drain for at most DRAIN_TIMEOUT seconds and exit 0; SIGHUP re-reads
 * the config file: a bad file is logged ("reload failed: file:line: ...")
 * and the old config stays in force.  Settings that need the privileges
 * or sockets of start-up (listen, user, spool_dir, state_dir, pid_file,
 * control_socket, metrics_listen) keep their old values until a restart,
 * with a warning.
 * SIGPIPE is ignored.  Until the handlers are installed, SIGTERM, SIGINT
 * and SIGHUP are blocked (held, not lost).
 *
 * Relative paths: the -c path is made absolute before loading, so paths
 * in the file are resolved against its directory (config.c) and SIGHUP
 * still finds it after the daemon has changed to "/".
 */

#include <sys/types.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "control.h"
#include "delivery.h"
#include "dkim.h"
#include "dkim_watch.h"
#include "dnssec_check.h"
#include "log.h"
#include "metrics_http.h"
#include "stats.h"
#include "mta_sts.h"
#include "policy_table.h"
#include "source_table.h"
#include "resolver.h"
#include "queue.h"
#include "smtpd.h"
#include "smtpd_conf.h"
#include "spool.h"
#include "tls.h"
#include "tlsrpt_record.h"
#include "tlsrpt_sched.h"
#include "util.h"
#include "tls_memory.h"
#include "workq.h"
#include "connlimit.h"
#include "loopcall.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "?"
#endif

#define DRAIN_TIMEOUT	10	/* seconds to let work finish on SIGTERM */
#define READY_TIMEOUT	120	/* seconds the parent waits for the child */
/* Threads for spool I/O: fsyncs of one group commit run in parallel, and
 * the file system joins concurrent fsyncs into one journal commit. */
#define IO_THREADS	8

/*
 * A worker: one event loop and the pipeline it owns (README,
 * "Architecture").  Worker 0 runs on the main thread and also owns the
 * signals, the control socket, the metrics listener and TLSRPT; the
 * others run on threads of their own.
 */
struct worker {
	int			 id;
	struct daemon		*d;
	pthread_t		 thread;
	int			 started;	/* thread running */
	struct event_base	*base;
	struct workq_port	*port;		/* pool completions */
	struct loopcall		*lc;		/* calls from other threads */
	struct stats_watch	*watch;		/* loop stall metric */
	struct smtpd		*sd;
	struct delivery_deps	 deps;		/* the delivery engine's parts */
	struct delivery		*dlv;
	struct queue		*q;
};

struct daemon {
	struct config		*cf;
	struct worker		 w[CONFIG_MAX_WORKERS];
	int			 nworkers;
	struct connlimit	*limits;	/* shared by the queues */
	int			 teardown;	/* threads joined */
	int			 loaded;	/* messages found at start */
	struct event_base	*base;
	struct workq		*wq_io;		/* fsync, rename, unlink */
	struct workq		*wq_cpu;	/* crypt(3) */
	struct workq_port	*port;		/* their completions on base */
	struct smtpd		*sd;		/* worker 0's */
	struct spool		*sp;
	struct delivery		*dlv;		/* DNS, policy, SMTP client */
	struct queue		*q;		/* the scheduler */
	struct control		*ctl;		/* control socket */
	struct metrics		*metrics;	/* metrics_listen, or NULL */
	struct dnssec_check	*dnssec;	/* the periodic self-test */
	struct dkim_watch	*dkimw;		/* DKIM keys pending in DNS */
	struct tlsrpt		*rpt;		/* TLSRPT, NULL: tlsrpt = no */
	struct tls_memory	*tlsmem;	/* TLS memory (issue #23) */
	struct tlsrpt_sched	*rpt_sched;	/* its report schedule */
	struct event		*ev_term, *ev_int, *ev_hup;
	struct event		*ev_drain;
	double			 drain_deadline;
	int			 stopping;

	int			 ready_fd;	/* pipe to the waiting parent */
	int			 pid_written;
	uid_t			 uid;		/* target of the drop */
	gid_t			 gid;
	int			 drop;		/* started as root */
};

static struct daemon	 dmn;

static void
usage(FILE *f)
{
	fprintf(f, "usage: danerelayd [-fdn] [-c file]\n"
	    "       danerelayd -h | --help | -V | --version\n"
	    "  -c file  configuration file (default %s/danerelay.conf)\n"
	    "  -f       stay in the foreground, log to stderr\n"
	    "  -d       debug logging\n"
	    "  -n       check the configuration and the files it names, "
	    "then exit\n"
	    "  -h       this help\n"
	    "  -V       print the version\n", SYSCONFDIR);
	exit(f == stdout ? 0 : 1);
}

static void pidfile_remove(struct daemon *);

/* Threads for CPU-heavy work (crypt): one per CPU, at least 2. */
static int
cpu_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 2 ? 2 : n > 64 ? 64 : (int)n;
}

/*
 * Fatal error during start-up: log it, hand it to the waiting parent (if
 * any), clean up the pid file and exit 1.
 */
static void __attribute__((noreturn, format(printf, 1, 2)))
fatal(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	ssize_t r;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_errx("%s", msg);
	if (dmn.ready_fd != -1) {
		r = write(dmn.ready_fd, msg, strlen(msg));
		(void)r;
		close(dmn.ready_fd);
		dmn.ready_fd = -1;
	}
	pidfile_remove(&dmn);
	exit(1);
}

/* "x.conf" -> "/cwd/x.conf" (no symlink resolution). */
static char *
absolute_path(const char *path)
{
	char cwd[PATH_MAX];

	if (path[0] == '/' || getcwd(cwd, sizeof(cwd)) == NULL)
		return xstrdup(path);
	while (path[0] == '.' && path[1] == '/')
		path += 2;
	return xasprintf("%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, path);
}

/*
 * Directories
 */

/* Create dir (parents 0755, dir itself `mode`); hand it to the user. */
static int
prepare_dir(const char *dir, mode_t mode, int chown_it, uid_t uid,
    gid_t gid, char *err, size_t errlen)
{
	char *parent, *slash;
	struct stat st;

	if (stat(dir, &st) == -1) {
		if (errno != ENOENT) {
			snprintf(err, errlen, "%s: %s", dir, strerror(errno));
			return -1;
		}
		parent = xstrdup(dir);
		if ((slash = strrchr(parent, '/')) != NULL && slash != parent) {
			*slash = '\0';
			if (mkdir_p(parent, 0755) == -1) {
				snprintf(err, errlen, "mkdir %s: %s", parent,
				    strerror(errno));
				free(parent);
				return -1;
			}
		}
		free(parent);
		if (mkdir(dir, mode) == -1 && errno != EEXIST) {
			snprintf(err, errlen, "mkdir %s: %s", dir,
			    strerror(errno));
			return -1;
		}
		log_info("created directory %s", dir);
		if (stat(dir, &st) == -1) {
			snprintf(err, errlen, "%s: %s", dir, strerror(errno));
			return -1;
		}
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: not a directory", dir);
		return -1;
	}
	if (chown_it && (st.st_uid != uid || st.st_gid != gid) &&
	    chown(dir, uid, gid) == -1) {
		snprintf(err, errlen, "chown %s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Pid file
 */

/* Refuse to start when the pid file names a live process. */
static void
pidfile_check(const char *path)
{
	char buf[32];
	ssize_t n;
	long pid;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	pid = strtol(buf, NULL, 10);
	if (pid > 1 && pid != (long)getpid() &&
	    (kill((pid_t)pid, 0) == 0 || errno == EPERM))
		fatal("already running as pid %ld (pid file %s)", pid, path);
}

/*
 * After the privilege drop the pid file can only be removed when its
 * directory is writable by `user`.  A directory that exists already and
 * holds nothing but the pid file (one that root made for us: an rc
 * script's, or a RuntimeDirectory= of a unit run as root) is ours and is
 * handed to `user`, like one this function creates.  A directory shared
 * with others (/run, /var/run) is never touched: the file stays behind,
 * emptied, and this says so at start.
 */
static void
pidfile_dir_own(struct daemon *d, const char *dir, const char *base)
{
	struct dirent *de;
	struct stat st;
	DIR *dp;
	int others = 0;

	if (lstat(dir, &st) == -1 || !S_ISDIR(st.st_mode))
		return;
	if (st.st_uid == d->uid && (st.st_mode & S_IWUSR))
		return;
	if ((dp = opendir(dir)) == NULL)
		return;
	while ((de = readdir(dp)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0 &&
		    strcmp(de->d_name, base) != 0)
			others = 1;
	closedir(dp);
	if (others || (st.st_mode & S_ISVTX)) {
		log_warnx("pid file %s/%s: the directory is shared and not "
		    "writable by user %s, so the pid file cannot be removed "
		    "at exit: give pid_file a directory of its own (the "
		    "default is %s/danerelay/)", dir, base, d->cf->user,
		    RUNSTATEDIR);
		return;
	}
	if (chown(dir, d->uid, d->gid) == -1 ||
	    chmod(dir, (st.st_mode & 07777) | S_IWUSR) == -1)
		log_warn("pid file directory %s: hand it to user %s", dir,
		    d->cf->user);
	else
		log_info("pid file directory %s: handed to user %s", dir,
		    d->cf->user);
}

static void
pidfile_write(struct daemon *d)
{
	const char *path = d->cf->pid_file;
	char buf[32], err[512], *dir, *slash;
	int fd, n;

	dir = xstrdup(path);
	if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
		*slash = '\0';
		if (access(dir, F_OK) == -1 && prepare_dir(dir, 0755,
		    d->drop, d->uid, d->gid, err, sizeof(err)) == -1) {
			free(dir);
			fatal("pid file: %s", err);
		}
		if (d->drop)
			pidfile_dir_own(d, dir, slash + 1);
	}
	free(dir);

	(void)unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	    0644);
	if (fd == -1)
		fatal("pid file %s: %s", path, strerror(errno));
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (write(fd, buf, (size_t)n) != n || fchmod(fd, 0644) == -1 ||
	    (d->drop && fchown(fd, d->uid, d->gid) == -1)) {
		close(fd);
		fatal("pid file %s: %s", path, strerror(errno));
	}
	close(fd);
	d->pid_written = 1;
}

static void
pidfile_remove(struct daemon *d)
{
	int fd;

	if (!d->pid_written)
		return;
	d->pid_written = 0;
	if (unlink(d->cf->pid_file) == 0)
		return;
	/* The directory is not ours: leave an empty file behind. */
	log_warn("remove pid file %s", d->cf->pid_file);
	if ((fd = open(d->cf->pid_file, O_WRONLY | O_TRUNC | O_CLOEXEC |
	    O_NOFOLLOW)) != -1)
		close(fd);
}

/*
 * Privileges
 */

static void
drop_privileges(struct daemon *d)
{
	if (!d->drop)
		return;
	if (setgroups(1, &d->gid) == -1)
		fatal("setgroups: %s", strerror(errno));
	if (setresgid(d->gid, d->gid, d->gid) == -1)
		fatal("setresgid(%ld): %s", (long)d->gid, strerror(errno));
	if (setresuid(d->uid, d->uid, d->uid) == -1)
		fatal("setresuid(%ld): %s", (long)d->uid, strerror(errno));
	/* Paranoia: root must be gone for good. */
	if (setuid(0) != -1 || seteuid(0) != -1 || getuid() == 0 ||
	    geteuid() == 0 || getgid() == 0 || getegid() == 0)
		fatal("privileges not dropped: root can be regained");
	log_debug("dropped privileges to user %s (uid %ld, gid %ld)",
	    d->cf->user, (long)d->uid, (long)d->gid);
}

/*
 * Daemonizing with a start-up report to the parent.
 */

static void __attribute__((noreturn))
parent_wait(int fd, pid_t child)
{
	char buf[1024];
	size_t len = 0;
	ssize_t n;
	struct pollfd pfd;
	double deadline = mono_now() + READY_TIMEOUT;
	int left;

	for (;;) {
		left = (int)((deadline - mono_now()) * 1000);
		if (left <= 0) {
			fprintf(stderr, "danerelayd: pid %ld still starting "
			    "after %d seconds; see the mail log\n",
			    (long)child, READY_TIMEOUT);
			exit(0);
		}
		pfd.fd = fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, left) == -1) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "danerelayd: poll: %s\n",
			    strerror(errno));
			exit(1);
		}
		n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n == -1 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0 || (len += (size_t)n) == sizeof(buf) - 1)
			break;
	}
	buf[len] = '\0';
	if (strcmp(buf, "ready") == 0)
		exit(0);
	fprintf(stderr, "danerelayd: %s\n", len ? buf :
	    "daemon exited during start-up; see the mail log");
	exit(1);
}

static void
daemonize(struct daemon *d)
{
	int p[2], fd;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) == -1)
		fatal("pipe: %s", strerror(errno));
	fflush(NULL);
	switch (pid = fork()) {
	case -1:
		fatal("fork: %s", strerror(errno));
	case 0:
		break;
	default: {
		sigset_t all;

		/* the parent may be interrupted while it waits */
		sigfillset(&all);
		sigprocmask(SIG_UNBLOCK, &all, NULL);
		close(p[1]);
		parent_wait(p[0], pid);
	}
	}
	close(p[0]);
	d->ready_fd = p[1];
	if (setsid() == -1)
		fatal("setsid: %s", strerror(errno));
	if (chdir("/") == -1)
		fatal("chdir /: %s", strerror(errno));
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		(void)dup2(fd, STDIN_FILENO);
		(void)dup2(fd, STDOUT_FILENO);
		(void)dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
}

static void
report_ready(struct daemon *d)
{
	ssize_t r;

	if (d->ready_fd == -1)
		return;
	r = write(d->ready_fd, "ready", 5);
	(void)r;
	close(d->ready_fd);
	d->ready_fd = -1;
}

/*
 * Inbound messages
 */

/* A durable message for another worker's queue, on that worker's loop. */
struct handoff {
	struct worker		*to;
	struct spool_env	*env;
};

static void
handoff_run(void *arg)
{
	struct handoff *h = arg;

	queue_add(h->to->q, h->env);
	spool_env_free(h->env);
	free(h);
}

/*
 * A message is durable: it goes to the queue of the worker that owns its
 * first recipient's domain (queue_owner()), so each domain's deliveries,
 * connections and DNS answers stay on one loop.
 */
static void
on_message(const struct spool_env *env, void *arg)
{
	struct worker *w = arg, *to;
	struct handoff *h;

	log_info("%s: queued, from=<%s>, nrcpt=%zu, size=%lld", env->id,
	    env->sender, env->nrcpt, (long long)env->size);
	stats_inc(S_RECEIVED);
	stats_add(S_RECEIVED_BYTES, (unsigned long long)env->size);
	to = &w->d->w[queue_owner(env, (unsigned)w->d->nworkers)];
	if (to == w || w->d->teardown) {
		queue_add(to->q, env);	/* teardown: no thread runs */
		return;
	}
	h = xcalloc(1, sizeof(*h));
	h->to = to;
	h->env = spool_env_dup(env);
	loopcall_post(to->lc, handoff_run, h);
}

/*
 * Workers: calls between loops (loopcall.h: only the main thread waits).
 */

static void
worker_kick(void *arg)
{
	struct worker *w = arg;

	queue_kick(w->q);
}

/* A connection slot was freed (any thread): run w's queue on its loop. */
static void
worker_wake(void *arg)
{
	struct worker *w = arg;

	if (!w->d->teardown)
		loopcall_post(w->lc, worker_kick, w);
}

/* fn(arg) on w's loop, later (mta_sts_proxy_new's posts). */
static void
worker_post(void *ctx, void (*fn)(void *), void *arg)
{
	struct worker *w = ctx;

	if (!w->d->teardown)	/* else dropped: its owner frees it */
		loopcall_post(w->lc, fn, arg);
}

/* queue_group_add()'s call: fn(arg) on w's loop, waiting for it. */
static void
worker_call(void *callarg, void (*fn)(void *), void *arg)
{
	struct worker *w = callarg;

	if (w->d->teardown)
		fn(arg);	/* every thread is gone: we own it all */
	else
		loopcall_run(w->lc, fn, arg);
}

static void
worker_stop(void *arg)
{
	struct worker *w = arg;

	smtpd_stop(w->sd);
	queue_stop(w->q);
	delivery_shutdown(w->dlv);
}

static void
worker_break(void *arg)
{
	struct worker *w = arg;

	event_base_loopbreak(w->base);
}

/* Every worker's loop but the main one stops. */
static void
workers_break(struct daemon *d)
{
	int i;

	for (i = 1; i < d->nworkers; i++)
		if (d->w[i].started)
			loopcall_post(d->w[i].lc, worker_break, &d->w[i]);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	loopcall_bind(w->lc);
	spool_set_workq(w->d->sp, w->d->wq_io, w->port);
	if (event_base_dispatch(w->base) == -1)
		log_warnx("worker %d: event loop failed", w->id);
	spool_set_workq(w->d->sp, NULL, NULL);
	return NULL;
}

/*
 * The delivery engine's parts for worker w (delivery.h, struct
 * delivery_deps): its resolver, the policy table, the SSL_CTX of
 * outbound sessions and the MTA-STS manager (worker 0's; the others get
 * a proxy of it).  Built here and handed in, swapped here on reload,
 * freed here after the engine (issue #15).
 */
static void
deps_build(struct daemon *d, struct worker *w)
{
	struct delivery_deps *x = &w->deps;
	char err[1024];

	x->tlsmem = d->tlsmem;		/* one for all workers */
	if ((x->res = resolver_new(w->base, d->cf, err, sizeof(err))) == NULL)
		fatal("delivery: %s", err);
	if (d->cf->policy_file != NULL && (x->pt = policy_table_load(
	    d->cf->policy_file, err, sizeof(err))) == NULL)
		fatal("delivery: %s", err);
	if (d->cf->source_table != NULL && (x->st = source_table_load(
	    d->cf->source_table, err, sizeof(err))) == NULL)
		fatal("delivery: %s", err);
	if ((x->ssl_ctx = tls_client_ctx_new(d->cf->ca_file, err,
	    sizeof(err))) == NULL)
		fatal("delivery: %s", err);
	if (!d->cf->mta_sts)
		return;
	/* one MTA-STS manager (cache, fetches), worker 0's */
	if (w->id == 0) {
		if ((x->sts = mta_sts_new(w->base, x->res, d->cf, err,
		    sizeof(err))) == NULL)
			fatal("delivery: %s", err);
	} else if (d->w[0].deps.sts != NULL)
		x->sts = mta_sts_proxy_new(d->w[0].deps.sts, worker_post,
		    &d->w[0], worker_post, w);
}

/* New config, on w's loop: MTA-STS settings (a manager made when it was
 * off), and the policy table (the old one stays when the new one does
 * not load). */
static void
deps_reload(struct worker *w, const struct config *cf)
{
	struct delivery_deps *x = &w->deps;
	struct policy_table *pt = NULL;
	struct source_table *st = NULL;
	char err[1024];

	if (x->sts != NULL)
		mta_sts_reload(x->sts, cf);
	else if (cf->mta_sts && (x->sts = mta_sts_new(w->base, x->res, cf,
	    err, sizeof(err))) == NULL)
		log_warnx("reload: MTA-STS stays off: %s", err);
	if (cf->source_table == NULL ||
	    (st = source_table_load(cf->source_table, err, sizeof(err))) !=
	    NULL) {
		source_table_free(x->st);
		x->st = st;
	} else
		log_warnx("reload: %s (keeping the old source table)", err);
	if (cf->policy_file != NULL &&
	    (pt = policy_table_load(cf->policy_file, err, sizeof(err))) ==
	    NULL) {
		log_warnx("reload: %s (keeping the old policy table)", err);
		return;
	}
	policy_table_free(x->pt);
	x->pt = pt;
}

/* After delivery_free(); the MTA-STS manager before the resolver. */
static void
deps_free(struct worker *w)
{
	struct delivery_deps *x = &w->deps;

	mta_sts_free(x->sts);
	resolver_free(x->res);
	policy_table_free(x->pt);
	source_table_free(x->st);
	SSL_CTX_free(x->ssl_ctx);
	memset(x, 0, sizeof(*x));
}

/* Build worker i's pipeline on its own base (main thread, at start). */
static void
worker_setup(struct daemon *d, int i)
{
	struct worker *w = &d->w[i];
	char err[1024];

	w->id = i;
	w->d = d;
	if (i == 0)
		w->base = d->base;
	else if ((w->base = event_base_new()) == NULL)
		fatal("worker %d: event_base_new failed", i);
	if ((w->port = workq_port_new(w->base, err, sizeof(err))) == NULL ||
	    (w->lc = loopcall_new(w->base, err, sizeof(err))) == NULL)
		fatal("worker %d: %s", i, err);
	w->watch = stats_watch_loop(w->base);
	if (i == 0)
		w->sd = d->sd;
	else if ((w->sd = smtpd_clone(d->sd, d->cf, err, sizeof(err))) ==
	    NULL)
		fatal("worker %d: %s", i, err);
	/* The delivery engine first, so recovered messages and new ones
	 * both reach it. */
	deps_build(d, w);
	w->dlv = delivery_new(w->base, d->cf, d->sp, &w->deps);
	if (d->rpt != NULL)
		delivery_set_tlsrpt(w->dlv, d->rpt);
	delivery_set_workq(w->dlv, d->wq_io, w->port);	/* 7-bit copies */
	w->q = queue_new(w->base, d->cf, d->sp, w->dlv);
	queue_set_shared(w->q, d->limits, worker_wake, w);
	queue_set_shard(w->q, (unsigned)i, (unsigned)d->nworkers);
	d->loaded += queue_load(w->q);
	if (i > 0)
		queue_group_add(d->w[0].q, w->q, worker_call, w);
	smtpd_set_workq(w->sd, d->wq_cpu, d->wq_io, w->port);
	if (smtpd_start(w->sd, w->base, d->sp, on_message, w, err,
	    sizeof(err)) == -1)
		fatal("smtpd: %s", err);
}

static void
worker_teardown(struct worker *w)
{
	loopcall_free(w->lc);		/* runs what was still posted */
	stats_watch_free(w->watch);
	smtpd_free(w->sd);
	queue_free(w->q);
	delivery_free(w->dlv);
	deps_free(w);
	if (w->id != 0)
		event_base_free(w->base);
}

/* workers = auto: one per CPU. */
static int
workers_count(const struct config *cf)
{
	long n;

	if (cf->workers > 0)
		return cf->workers;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > CONFIG_MAX_WORKERS ? CONFIG_MAX_WORKERS :
	    (int)n;
}

/* TLSRPT mailto reports committed to the spool: to the queue
 * (spool_submit_cb; the report run is below the queue). */
static void
report_submit(const struct spool_env *env, void *arg)
{
	struct daemon *d = arg;

	queue_add(d->q, env);
}

/*
 * The gauges of the metrics listener (metrics_http.h): read at each scrape,
 * on worker 0's loop, from the parts built here.
 */

struct queue_gauges {
	struct metrics_gauges	*g;
	time_t			 oldest;
};

static void
queue_gauge(const struct spool_env *env, int active, void *arg)
{
	struct queue_gauges *qg = arg;
	size_t i;

	qg->g->queue_msgs++;
	if (env->hold)
		qg->g->queue_held++;
	for (i = 0; i < env->nrcpt; i++)
		if (env->rcpts[i].state == RCPT_PENDING)
			qg->g->queue_pending++;
	if (qg->oldest == 0 || env->created < qg->oldest)
		qg->oldest = env->created;
}

static void
metrics_gauges(struct metrics_gauges *g, void *arg)
{
	struct daemon *d = arg;
	struct queue_gauges qg = { g, 0 };
	struct statvfs vfs;
	time_t now = time(NULL);

	g->have_smtpd = 1;
	g->smtpd_sessions = (unsigned long long)smtpd_sessions(d->sd);
	g->smtpd_auth_blocked =
	    (unsigned long long)smtpd_auth_blocked_clients(d->sd);
	g->have_queue = 1;
	queue_foreach(d->q, queue_gauge, &qg);
	g->queue_oldest_age = g->queue_msgs && now > qg.oldest ?
	    (unsigned long long)(now - qg.oldest) : 0;
	g->in_flight = (unsigned long long)queue_active(d->q);
	g->sts_cache_policies = mta_sts_policies(d->w[0].deps.sts);
	g->have_dnssec = 1;
	g->dnssec_secure = dnssec_check_state() == DNSSEC_SECURE;
	/* statvfs does no disk I/O (the smtpd's queue_minfree check) */
	if (statvfs(spool_dir(d->sp), &vfs) == 0) {
		g->have_spool = 1;
		g->spool_free_bytes = (unsigned long long)vfs.f_bavail *
		    (unsigned long long)vfs.f_frsize;
		g->queue_minfree = d->cf->queue_minfree;
	}
	g->cert_not_after = smtpd_cert_not_after(d->sd);
	g->have_cert = g->cert_not_after != 0;
	g->dkim = dkim_table_ref(smtpd_dkim_table(d->sd));
}

/*
 * Signals
 */

static void
drain_check(evutil_socket_t fd, short ev, void *arg)
{
	struct daemon *d = arg;
	int busy = smtpd_sessions(d->sd);
	size_t active = queue_active(d->q);

	if ((busy == 0 && active == 0) || mono_now() >= d->drain_deadline) {
		if (busy)
			log_warnx("shutdown: %d session(s) still open after "
			    "%d seconds, closing them", busy, DRAIN_TIMEOUT);
		if (active)
			log_warnx("shutdown: %zu delivery attempt(s) still in "
			    "flight after %d seconds, abandoning them (they "
			    "stay queued)", active, DRAIN_TIMEOUT);
		workers_break(d);
		event_base_loopbreak(d->base);
	}
}

static void
shutdown_begin(struct daemon *d, const char *why)
{
	struct timeval tv = { 0, 100 * 1000 };
	int i;

	if (d->stopping) {
		log_info("%s again: exiting now", why);
		workers_break(d);
		event_base_loopbreak(d->base);
		return;
	}
	d->stopping = 1;
	log_info("%s: shutting down (drain up to %d seconds)", why,
	    DRAIN_TIMEOUT);
	for (i = 0; i < d->nworkers; i++)
		loopcall_run(d->w[i].lc, worker_stop, &d->w[i]);
	d->drain_deadline = mono_now() + DRAIN_TIMEOUT;
	d->ev_drain = event_new(d->base, -1, EV_PERSIST, drain_check, d);
	if (d->ev_drain == NULL || event_add(d->ev_drain, &tv) == -1) {
		log_warnx("shutdown: cannot arm drain timer");
		event_base_loopbreak(d->base);
	}
}

/* Keep the running value of a string setting (either may be unset). */
static void
keep_str(char **newv, char **oldv, const char *name)
{
	char *t;

	if ((*newv == NULL) != (*oldv == NULL) ||
	    (*newv != NULL && strcmp(*newv, *oldv) != 0))
		log_warnx("reload: %s changed to \"%s\": takes effect after a "
		    "restart", name, *newv != NULL ? *newv : "(unset)");
	t = *newv;
	*newv = *oldv;
	*oldv = t;
}

/* Carry over the settings that only start-up can apply. */
static void
keep_startup_settings(struct config *ncf, struct config *ocf)
{
	int i, same = ncf->nlisten == ocf->nlisten;

	for (i = 0; same && i < ncf->nlisten; i++)
		same = strcmp(ncf->listen[i].text, ocf->listen[i].text) == 0;
	if (!same) {
		log_warnx("reload: listen changed: takes effect after a "
		    "restart");
		memcpy(ncf->listen, ocf->listen, sizeof(ncf->listen));
		ncf->nlisten = ocf->nlisten;
	}
	if (ncf->workers != ocf->workers) {
		log_warnx("reload: workers changed: takes effect after a "
		    "restart");
		ncf->workers = ocf->workers;
	}
	keep_str(&ncf->user, &ocf->user, "user");
	keep_str(&ncf->spool_dir, &ocf->spool_dir, "spool_dir");
	keep_str(&ncf->state_dir, &ocf->state_dir, "state_dir");
	keep_str(&ncf->pid_file, &ocf->pid_file, "pid_file");
	keep_str(&ncf->control_socket, &ocf->control_socket,
	    "control_socket");
	keep_str(&ncf->metrics_listen, &ocf->metrics_listen, "metrics_listen");
}

/*
 * The resolvers keep the trust anchors they were built with: the new
 * ones are only checked (a broken one refuses the reload), then the
 * running ones stay in the config, so that a resolver built later (the
 * TLSRPT sender's) uses the same anchors as the rest.
 */
static void
keep_anchor_settings(struct config *ncf, struct config *ocf)
{
	keep_str(&ncf->trust_anchor_file, &ocf->trust_anchor_file,
	    "trust_anchor_file");
	keep_str(&ncf->dns_config, &ocf->dns_config, "dns_config");
}

struct worker_reload {
	struct worker		*w;
	const struct config	*cf;
};

/* On the worker's loop: its modules take the new config (worker 0's smtpd
 * has it already: its reload is the check). */
static void
worker_reload(void *arg)
{
	struct worker_reload *wr = arg;
	struct worker *w = wr->w;
	char err[1024];

	if (w->id != 0 && smtpd_reload(w->sd, wr->cf, err, sizeof(err)) == -1)
		log_warnx("reload: worker %d: %s (keeping its old inbound "
		    "settings)", w->id, err);
	delivery_reload(w->dlv, wr->cf);
	deps_reload(w, wr->cf);
	queue_reload(w->q, wr->cf);
}

/*
 * SIGHUP.  The new config is complete and checked before anything
 * switches to it.  Then every module takes the new one; the old one is
 * dropped with config_unref(): it is freed only once the last delivery
 * job and route started under it ends (they hold references, see
 * delivery.c and route.c; issue #13: a route waiting on DNS or an
 * MTA-STS fetch read the freed config).  The queue and TLSRPT read the
 * config only synchronously and take the new pointer here.
 */
static void
reload(struct daemon *d)
{
	struct config *ncf;
	char err[1024];
	int i;

	log_info("SIGHUP: reloading %s", d->cf->file);
	ncf = xcalloc(1, sizeof(*ncf));
	if (config_load(d->cf->file, ncf, err, sizeof(err)) == -1) {
		log_warnx("reload failed: %s (keeping the old configuration)",
		    err);
		free(ncf);
		return;
	}
	keep_startup_settings(ncf, d->cf);
	if (dnssec_check_config(ncf, err, sizeof(err)) == -1) {
		log_warnx("reload failed: %s (keeping the old configuration)",
		    err);
		config_unref(ncf);
		return;
	}
	keep_anchor_settings(ncf, d->cf);
	if (ncf->policy_file != NULL) {
		struct policy_table *pt;

		/* validate before anything switches to the new config */
		if ((pt = policy_table_load(ncf->policy_file, err,
		    sizeof(err))) == NULL) {
			log_warnx("reload failed: %s (keeping the old "
			    "configuration)", err);
			config_unref(ncf);
			return;
		}
		policy_table_free(pt);
	}
	if (ncf->source_table != NULL) {
		struct source_table *st;

		if ((st = source_table_load(ncf->source_table, err,
		    sizeof(err))) == NULL) {
			log_warnx("reload failed: %s (keeping the old "
			    "configuration)", err);
			config_unref(ncf);
			return;
		}
		source_table_free(st);
	}
	if (smtpd_reload(d->sd, ncf, err, sizeof(err)) == -1) {
		log_warnx("reload failed: %s (keeping the old configuration)",
		    err);
		config_unref(ncf);
		return;
	}
	/* From here on the new configuration is taken: nothing fails.
	 * Each worker switches on its own loop. */
	{
		struct worker_reload wr = { NULL, ncf };

		for (i = 0; i < d->nworkers; i++) {
			wr.w = &d->w[i];
			loopcall_run(d->w[i].lc, worker_reload, &wr);
		}
	}
	if (d->rpt == NULL && ncf->tlsrpt)
		log_warnx("reload: tlsrpt = yes takes effect after a restart");
	tlsrpt_reload(d->rpt, ncf);
	dnssec_check_reload(d->dnssec, ncf);
	if (d->dkimw == NULL)
		d->dkimw = dkim_watch_start(d->base, d->w[0].deps.res, ncf);
	else
		dkim_watch_reload(d->dkimw, ncf);
	config_unref(d->cf);	/* freed with the last job using it */
	d->cf = ncf;
	log_info("reloaded %s", d->cf->file);
}

static void
on_signal(evutil_socket_t sig, short ev, void *arg)
{
	struct daemon *d = arg;

	switch (sig) {
	case SIGTERM:
		shutdown_begin(d, "SIGTERM");
		break;
	case SIGINT:
		shutdown_begin(d, "SIGINT");
		break;
	case SIGHUP:
		if (!d->stopping)
			reload(d);
		break;
	}
}

static struct event *
signal_add(struct daemon *d, int sig)
{
	struct event *ev;

	if ((ev = evsignal_new(d->base, sig, on_signal, d)) == NULL ||
	    evsignal_add(ev, NULL) == -1)
		fatal("cannot handle signal %d", sig);
	return ev;
}

/*
 * Every inbound session, outbound connection and spool file is a
 * descriptor: take the whole hard limit (service managers often set a
 * soft limit of 1024) and say so if even that is below smtpd_max_clients
 * + max_connections + some slack (bench/: 10,000 sessions).
 */
static void
raise_nofile(const struct config *cf)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)cf->smtpd_max_clients + cf->max_connections +
	    64;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			log_warn("setrlimit RLIMIT_NOFILE");
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want)
		log_warnx("open files limit %llu is below smtpd_max_clients + "
		    "max_connections + 64 = %llu: raise it (ulimit -n, "
		    "LimitNOFILE=)", (unsigned long long)rl.rlim_cur,
		    (unsigned long long)want);
}

static const struct option long_opts[] = {
	{ "help",	no_argument,	NULL,	'h' },
	{ "version",	no_argument,	NULL,	'V' },
	{ NULL,		0,		NULL,	0 }
};

/*
 * -n: load what a start loads from the files the config names, without
 * binding or opening the spool: the policy table, the source table (each
 * address bound once: one not of this host is refused), the inbound TLS
 * certificate and key, allow_clients, auth_file and the DKIM key table
 * (smtpd_conf_new(), file:line on a bad line),
 * and the client CA file.  dns_config (libunbound reads it) and the
 * trust anchors were checked already (dnssec_check_config()).
 */
static int
check_startup_files(const struct config *cf, char *err, size_t errlen)
{
	struct policy_table *pt;
	struct source_table *st;
	struct smtpd_conf *sc;
	SSL_CTX *ctx;
	char why[768];

	if (cf->policy_file != NULL) {
		if ((pt = policy_table_load(cf->policy_file, why,
		    sizeof(why))) == NULL)
			goto fail;
		policy_table_free(pt);
	}
	if (cf->source_table != NULL) {
		if ((st = source_table_load(cf->source_table, why,
		    sizeof(why))) == NULL)
			goto fail;
		source_table_free(st);
	}
	if ((sc = smtpd_conf_new(cf, why, sizeof(why))) == NULL)
		goto fail;
	smtpd_conf_unref(sc);
	if ((ctx = tls_client_ctx_new(cf->ca_file, why, sizeof(why))) ==
	    NULL)
		goto fail;
	SSL_CTX_free(ctx);
	return 0;
fail:
	snprintf(err, errlen, "%s: %s", cf->file, why);
	return -1;
}

int
main(int argc, char *argv[])
{
	struct daemon *d = &dmn;
	const char *cfpath = SYSCONFDIR "/danerelay.conf";
	char err[1024], *path;
	struct passwd *pw;
	sigset_t sigs;
	int ch, foreground = 0, debug = 0, check = 0, i, n;

	d->ready_fd = -1;
	while ((ch = getopt_long(argc, argv, "c:dfnhV", long_opts, NULL)) !=
	    -1) {
		switch (ch) {
		case 'c':
			cfpath = optarg;
			break;
		case 'd':
			debug = 1;
			break;
		case 'f':
			foreground = 1;
			break;
		case 'n':
			check = 1;
			break;
		case 'h':
			usage(stdout);
			break;
		case 'V':
			printf("danerelayd %s\n", PACKAGE_VERSION);
			return 0;
		default:
			usage(stderr);
		}
	}
	if (optind != argc)
		usage(stderr);

	log_init("danerelayd", 1, debug);
	signal(SIGPIPE, SIG_IGN);
	umask(027);
	/* Hold SIGTERM/SIGINT/SIGHUP until libevent handles them, so an
	 * early signal cannot kill us half-started with a stale pid file. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigprocmask(SIG_BLOCK, &sigs, NULL);

	path = absolute_path(cfpath);
	d->cf = xcalloc(1, sizeof(*d->cf));
	if (config_load(path, d->cf, err, sizeof(err)) == -1) {
		fprintf(stderr, "danerelayd: %s\n", err);
		free(path);
		return 1;
	}
	free(path);
	if (dnssec_check_config(d->cf, err, sizeof(err)) == -1) {
		fprintf(stderr, "danerelayd: %s: %s\n", d->cf->file, err);
		return 1;
	}
	if (check) {
		if (check_startup_files(d->cf, err, sizeof(err)) == -1) {
			fprintf(stderr, "danerelayd: %s\n", err);
			return 1;
		}
		printf("%s: configuration OK\n", d->cf->file);
		config_free(d->cf);
		free(d->cf);
		return 0;
	}

	/* Who we will run as. */
	d->uid = getuid();
	d->gid = getgid();
	if (geteuid() == 0) {
		errno = 0;
		if ((pw = getpwnam(d->cf->user)) == NULL) {
			fprintf(stderr, "danerelayd: user \"%s\" does not "
			    "exist%s%s: create it (useradd --system %s) or "
			    "set \"user\" in %s\n", d->cf->user,
			    errno ? ": " : "", errno ? strerror(errno) : "",
			    d->cf->user, d->cf->file);
			return 1;
		}
		if (pw->pw_uid == 0) {
			fprintf(stderr, "danerelayd: %s: user \"%s\" is root; "
			    "set \"user\" to an unprivileged account\n",
			    d->cf->file, d->cf->user);
			return 1;
		}
		d->uid = pw->pw_uid;
		d->gid = pw->pw_gid;
		d->drop = 1;
	}

	if (prepare_dir(d->cf->spool_dir, 0700, d->drop, d->uid, d->gid, err,
	    sizeof(err)) == -1 || prepare_dir(d->cf->state_dir, 0700,
	    d->drop, d->uid, d->gid, err, sizeof(err)) == -1)
		fatal("spool/state directory: %s", err);
	pidfile_check(d->cf->pid_file);

	raise_nofile(d->cf);
	/* Bind while privileged. */
	if ((d->sd = smtpd_new(d->cf, err, sizeof(err))) == NULL)
		fatal("%s", err);
	if (d->cf->metrics_listen != NULL &&
	    (d->metrics = metrics_new(d->cf, err, sizeof(err))) == NULL)
		fatal("%s", err);

	if (!foreground) {
		daemonize(d);
		log_init("danerelayd", 0, debug);
	}
	pidfile_write(d);
	if ((d->ctl = control_new(d->cf, d->uid, d->gid, err,
	    sizeof(err))) == NULL)
		fatal("%s", err);
	drop_privileges(d);

	if ((d->sp = spool_open(d->cf->spool_dir, err, sizeof(err))) == NULL)
		fatal("spool %s: %s", d->cf->spool_dir, err);
	if ((d->base = event_base_new()) == NULL)
		fatal("event_base_new failed");
	/* before any delivery: is validation in effect? (issue #23) */
	if (dnssec_check_first(d->cf, err, sizeof(err)) == -1)
		fatal("%s", err);
	if ((d->wq_io = workq_new("io", IO_THREADS, err,
	    sizeof(err))) == NULL ||
	    (d->wq_cpu = workq_new("cpu", cpu_threads(), err,
	    sizeof(err))) == NULL)
		fatal("%s", err);
	if (d->cf->tlsrpt && (d->rpt = tlsrpt_open(d->cf, d->base, err,
	    sizeof(err))) == NULL)
		fatal("tlsrpt: %s (or set tlsrpt = no)", err);
	/* opened even with tls_memory = no: a reload may turn it on */
	if ((d->tlsmem = tls_memory_open(d->cf->state_dir,
	    d->cf->tls_memory_max_age, err, sizeof(err))) == NULL) {
		if (d->cf->tls_memory != TLS_MEMORY_NO)
			fatal("tls_memory: %s (or set tls_memory = no)", err);
		log_warnx("tls_memory: %s", err);
	} else
		tls_memory_set_workq(d->tlsmem, d->wq_io);
	d->limits = connlimit_new();
	d->nworkers = workers_count(d->cf);
	for (i = 0; i < d->nworkers; i++)
		worker_setup(d, i);
	if (d->nworkers > 1)
		log_info("queue: %d messages loaded (%d workers)", d->loaded,
		    d->nworkers);
	d->port = d->w[0].port;
	d->dnssec = dnssec_check_start(d->base, d->w[0].deps.res, d->cf);
	d->dkimw = dkim_watch_start(d->base, d->w[0].deps.res, d->cf);
	d->dlv = d->w[0].dlv;
	d->q = d->w[0].q;
	tlsrpt_set_workq(d->rpt, d->wq_io, d->port);
	mta_sts_set_workq(d->w[0].deps.sts, d->wq_io, d->port);
	d->rpt_sched = tlsrpt_sched_start(d->rpt, d->base, d->sp,
	    report_submit, d);
	control_set_tls_memory(d->ctl, d->tlsmem, d->port);
	control_set_smtpd(d->ctl, d->sd);
	if (control_start(d->ctl, d->base, d->q, err, sizeof(err)) == -1)
		fatal("%s", err);
	spool_set_workq(d->sp, d->wq_io, d->port);
	if (d->metrics != NULL && metrics_start(d->metrics, d->base,
	    metrics_gauges, d, err, sizeof(err)) == -1)
		fatal("%s", err);
	d->ev_term = signal_add(d, SIGTERM);
	d->ev_int = signal_add(d, SIGINT);
	d->ev_hup = signal_add(d, SIGHUP);
	/* The other workers' threads start with the signals blocked: only
	 * the main thread takes them. */
	for (i = 1; i < d->nworkers; i++) {
		int e;

		if ((e = pthread_create(&d->w[i].thread, NULL, worker_main,
		    &d->w[i])) != 0)
			fatal("worker %d: cannot start thread: %s", i,
			    strerror(e));
		d->w[i].started = 1;
	}
	sigprocmask(SIG_UNBLOCK, &sigs, NULL);

	for (i = 0; i < d->cf->nlisten; i++)
		log_info("listening on %s", d->cf->listen[i].text);
	log_info("danerelayd %s started: config=%s, user=%s, spool=%s, "
	    "workers=%d", PACKAGE_VERSION, d->cf->file, d->drop ?
	    d->cf->user : "(not root, unchanged)", d->cf->spool_dir,
	    d->nworkers);
	report_ready(d);

	if (event_base_dispatch(d->base) == -1)
		log_warnx("event loop failed");

	/* Tear down in reverse order, once every worker thread is gone. */
	workers_break(d);
	for (i = 1; i < d->nworkers; i++)
		if (d->w[i].started)
			pthread_join(d->w[i].thread, NULL);
	/* What the loops still had to tell each other, while everything
	 * they refer to exists; from then on nothing more is posted. */
	for (i = 0, n = 1; n > 0 && i < 100; i++) {
		int k;

		for (k = 0, n = 0; k < d->nworkers; k++)
			n += loopcall_drain(d->w[k].lc);
	}
	d->teardown = 1;
	metrics_free(d->metrics);
	/* Jobs in flight finish and their completions run while the
	 * sessions and the queues they report to still exist (worker 0's
	 * port last: the others' late completions may use it). */
	for (i = d->nworkers - 1; i >= 0; i--)
		workq_port_free(d->w[i].port);
	/* what teardown still writes (queue_free) runs inline */
	spool_set_workq(d->sp, NULL, NULL);
	tlsrpt_set_workq(d->rpt, NULL, NULL);
	mta_sts_set_workq(d->w[0].deps.sts, NULL, NULL);
	if (d->tlsmem != NULL)
		tls_memory_set_workq(d->tlsmem, NULL);
	for (i = 0; i < d->nworkers; i++)
		smtpd_set_workq(d->w[i].sd, NULL, NULL, NULL);
	control_free(d->ctl);
	dnssec_check_free(d->dnssec);	/* before worker 0's resolver */
	dkim_watch_free(d->dkimw);
	/* the clones first: they share worker 0's client count */
	for (i = d->nworkers - 1; i >= 0; i--)
		worker_teardown(&d->w[i]);
	connlimit_free(d->limits);
	tlsrpt_sched_free(d->rpt_sched);	/* cancels a run in flight */
	tlsrpt_close(d->rpt);		/* writes the last counters */
	tls_memory_close(d->tlsmem);	/* and the last last_seen times */
	if (d->ev_drain != NULL)
		event_free(d->ev_drain);
	event_free(d->ev_term);
	event_free(d->ev_int);
	event_free(d->ev_hup);
	workq_free(d->wq_io);
	workq_free(d->wq_cpu);
	spool_close(d->sp);
	event_base_free(d->base);
	pidfile_remove(d);
	log_info("exiting");
	config_free(d->cf);
	free(d->cf);
	return 0;
}
