/*
 * test_spool_crash.c - the spool survives kill -9 at any instant.
 *
 * Each round forks a child that opens the spool (running recovery, as a
 * restarted daemon would) and then commits messages in a loop, writing
 * "ID\n" to a pipe only after spool_writer_commit() returned 0 - the
 * moment the server would say 250.  The parent SIGKILLs it after a random
 * delay and then checks, without recovering, what a reader sees:
 *   - every id the child reported is in the queue;
 *   - every visible message (reported or not: the kill may fall between
 *     commit and the report) has an envelope that loads and data that is
 *     bit for bit what the child wrote (each message carries the seed it
 *     was generated from, so any message can be re-generated);
 *   - nothing is moved to corrupt/.
 * Finally a full spool_open() must leave tmp/ empty and keep everything.
 * Every other round the child commits through the pool instead, as
 * danerelayd does (spool_writer_commit_async with a workq: 8 messages in
 * flight, group commits of the directory fsync, envelope rewrites on the
 * pool too), and reports an id only from its completion callback: the
 * kill then falls inside file fsyncs, renames and shared directory
 * fsyncs of several messages at once.
 * DR_SPOOL_CRASH_ROUNDS overrides the number of rounds (default 150),
 * DR_SPOOL_CRASH_SEED the random seed (printed at the start of every run).
 */

#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "spool.h"
#include "util.h"
#include "workq.h"
#include "t.h"

static char base[8192];

static const char *
base_dir(void)
{
	return base;
}

/* xorshift64*: the same bytes from the same seed in child and parent. */
static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

/* Message for a seed: a header naming the seed, then random bytes. */
static unsigned char *
make_message(uint64_t seed, size_t *lenp)
{
	uint64_t s = seed | 1;
	unsigned char *buf;
	size_t body, hlen, i;
	char hdr[128];

	body = (size_t)(rnd(&s) % 300000);
	if (rnd(&s) % 4 == 0)
		body %= 100;		/* plenty of small ones too */
	hlen = (size_t)snprintf(hdr, sizeof(hdr),
	    "X-Seed: %016llx\r\n\r\n", (unsigned long long)seed);
	buf = xmalloc(hlen + body);
	memcpy(buf, hdr, hlen);
	for (i = 0; i < body; i++)
		buf[hlen + i] = (unsigned char)(rnd(&s) >> 56);
	*lenp = hlen + body;
	return buf;
}

static void
child(int wfd, uint64_t seed)
{
	struct spool *sp;
	struct spool_writer *w;
	struct spool_env *env;
	unsigned char *msg;
	size_t len, off, chunk;
	char err[256], line[64], sender[64];
	uint64_t s = seed | 1, mseed;

	log_init("test_spool_crash", 1, 0);
	log_set_debug(0);
	if ((sp = spool_open(base, err, sizeof(err))) == NULL) {
		fprintf(stderr, "child: spool_open: %s\n", err);
		_exit(3);
	}
	for (;;) {
		mseed = rnd(&s);
		msg = make_message(mseed, &len);
		if ((w = spool_writer_new(sp, err, sizeof(err))) == NULL) {
			fprintf(stderr, "child: %s\n", err);
			_exit(3);
		}
		for (off = 0; off < len; off += chunk) {
			chunk = 1 + (size_t)(rnd(&s) % 20000);
			if (chunk > len - off)
				chunk = len - off;
			if (spool_writer_write(w, msg + off, chunk) == -1)
				_exit(3);
		}
		free(msg);
		env = spool_env_new();
		snprintf(sender, sizeof(sender), "s%016llx@example.org",
		    (unsigned long long)mseed);
		env->sender = xstrdup(sender);
		spool_env_add_rcpt(env, "rcpt@example.net");
		spool_env_add_rcpt(env, "other@example.net");
		if (spool_writer_commit(w, env, err, sizeof(err)) == -1) {
			fprintf(stderr, "child: commit: %s\n", err);
			_exit(3);
		}
		/* Now, and only now, the server may say 250. */
		snprintf(line, sizeof(line), "%s\n", env->id);
		if (write(wfd, line, strlen(line)) != (ssize_t)strlen(line))
			_exit(3);
		spool_env_free(env);
		/* Sometimes also rewrite the envelope, as delivery does. */
		if (rnd(&s) % 3 == 0) {
			char **ids;
			size_t n;

			ids = spool_list_ids(sp, &n);
			if (n > 0 && spool_env_load(sp, ids[rnd(&s) % n], &env,
			    err, sizeof(err)) == 0) {
				env->rcpts[0].attempts++;
				free(env->rcpts[0].last_error);
				env->rcpts[0].last_error = xstrdup("451 4.4.1 "
				    "try again later\r\n");
				if (spool_env_save(sp, env, err, sizeof(err)) == -1)
					_exit(3);
				spool_env_free(env);
			}
			spool_ids_free(ids, n);
		}
	}
}

/* The group-commit child: INFLIGHT commits through the pool at once. */
#define INFLIGHT 8

struct achild {
	struct spool	*sp;
	int		 wfd;
	uint64_t	 s;
};

struct acommit {
	struct achild	*c;
	struct spool_env *env;
};

static void acommit_start(struct achild *c);

static void
asave_done(int rc, int error, const char *why, void *arg)
{
	struct spool_env *env = arg;

	/* ENOENT cannot happen: nothing is ever removed here */
	if (rc == -1) {
		fprintf(stderr, "child: save: %s\n", why);
		_exit(3);
	}
	spool_env_free(env);
}

static void
acommit_done(int rc, int error, const char *why, void *arg)
{
	struct acommit *a = arg;
	struct achild *c = a->c;
	char line[64];

	if (rc == -1) {
		fprintf(stderr, "child: commit: %s\n", why);
		_exit(3);
	}
	/* Now, and only now, the server may say 250. */
	snprintf(line, sizeof(line), "%s\n", a->env->id);
	if (write(c->wfd, line, strlen(line)) != (ssize_t)strlen(line))
		_exit(3);
	/* Sometimes rewrite this envelope on the pool, as delivery does. */
	if (rnd(&c->s) % 3 == 0) {
		char err[256];

		a->env->rcpts[0].attempts++;
		a->env->rcpts[0].last_error = xstrdup("451 4.4.1 later");
		if (spool_env_save_async(c->sp, a->env, asave_done, a->env,
		    err, sizeof(err)) == -1)
			_exit(3);
	} else
		spool_env_free(a->env);
	free(a);
	acommit_start(c);
}

static void
acommit_start(struct achild *c)
{
	struct acommit *a = xcalloc(1, sizeof(*a));
	struct spool_writer *w;
	unsigned char *msg;
	size_t len, off, chunk;
	char err[256], sender[64];
	uint64_t mseed = rnd(&c->s);

	a->c = c;
	msg = make_message(mseed, &len);
	if ((w = spool_writer_new(c->sp, err, sizeof(err))) == NULL)
		_exit(3);
	for (off = 0; off < len; off += chunk) {
		chunk = 1 + (size_t)(rnd(&c->s) % 20000);
		if (chunk > len - off)
			chunk = len - off;
		if (spool_writer_write(w, msg + off, chunk) == -1)
			_exit(3);
	}
	free(msg);
	a->env = spool_env_new();
	snprintf(sender, sizeof(sender), "s%016llx@example.org",
	    (unsigned long long)mseed);
	a->env->sender = xstrdup(sender);
	spool_env_add_rcpt(a->env, "rcpt@example.net");
	spool_env_add_rcpt(a->env, "other@example.net");
	if (spool_writer_commit_async(w, a->env, acommit_done, a, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "child: commit: %s\n", err);
		_exit(3);
	}
}

static void
child_async(int wfd, uint64_t seed)
{
	struct achild c;
	struct event_base *base;
	struct workq *wq;
	struct workq_port *port;
	char err[256];
	int i;

	log_init("test_spool_crash", 1, 0);
	log_set_debug(0);
	c.wfd = wfd;
	c.s = seed | 1;
	if ((c.sp = spool_open(base_dir(), err, sizeof(err))) == NULL) {
		fprintf(stderr, "child: spool_open: %s\n", err);
		_exit(3);
	}
	if ((base = event_base_new()) == NULL ||
	    (wq = workq_new("io", 8, err, sizeof(err))) == NULL ||
	    (port = workq_port_new(base, err, sizeof(err))) == NULL)
		_exit(3);
	spool_set_workq(c.sp, wq, port);
	for (i = 0; i < INFLIGHT; i++)
		acommit_start(&c);
	event_base_dispatch(base);
	_exit(3);
}

/* Check one visible message; 0 ok. */
static int
check_message(struct spool *sp, const char *id)
{
	struct spool_env *env;
	unsigned char *want, *got;
	unsigned long long seed;
	size_t wlen, glen = 0;
	ssize_t n;
	char err[256], sender[64];
	int fd, ok;

	if (spool_env_load(sp, id, &env, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s: visible but does not load: %s\n", id, err);
		return -1;
	}
	if (sscanf(env->sender, "s%16llx@", &seed) != 1) {
		fprintf(stderr, "%s: bad sender %s\n", id, env->sender);
		spool_env_free(env);
		return -1;
	}
	snprintf(sender, sizeof(sender), "s%016llx@example.org", seed);
	ok = strcmp(sender, env->sender) == 0 && env->nrcpt == 2;
	want = make_message((uint64_t)seed, &wlen);
	ok = ok && env->size == (off_t)wlen;
	spool_env_free(env);
	if ((fd = spool_data_open(sp, id)) == -1) {
		fprintf(stderr, "%s: no data: %s\n", id, strerror(errno));
		free(want);
		return -1;
	}
	/* the data is the first env->size bytes; the envelope follows */
	got = xmalloc(wlen + 1);
	while (glen < wlen &&
	    (n = read(fd, got + glen, wlen - glen)) > 0)
		glen += (size_t)n;
	close(fd);
	ok = ok && glen == wlen && memcmp(got, want, wlen) == 0;
	if (!ok)
		fprintf(stderr, "%s: data differs (%zu bytes, want %zu)\n", id,
		    glen, wlen);
	free(got);
	free(want);
	return ok ? 0 : -1;
}

static size_t
count_dir(const char *p)
{
	DIR *d = opendir(p);
	struct dirent *de;
	size_t n = 0;

	if (d == NULL)
		return errno == ENOENT ? 0 : (size_t)-1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static int
cmpstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char **reported, **checked;
static size_t nreported, nchecked;

static void
verify(struct spool *sp, const char *when)
{
	char **ids, p[9000];
	size_t n, i, bad = 0, missing = 0;

	ids = spool_list_ids(sp, &n);
	CHECK(ids != NULL);
	for (i = 0; i < n; i++) {
		struct spool_env *env;
		char e[256];

		/* Data never changes once committed: compare it once. */
		if (nchecked > 0 && bsearch(&ids[i], checked, nchecked,
		    sizeof(char *), cmpstr) != NULL) {
			if (spool_env_load(sp, ids[i], &env, e, sizeof(e)) == -1) {
				fprintf(stderr, "%s: %s\n", ids[i], e);
				bad++;
			}
			spool_env_free(env);
			continue;
		}
		if (check_message(sp, ids[i]) == -1)
			bad++;
		else {
			checked = xrealloc(checked,
			    (nchecked + 1) * sizeof(char *));
			checked[nchecked++] = xstrdup(ids[i]);
		}
	}
	if (nchecked > 0)
		qsort(checked, nchecked, sizeof(char *), cmpstr);
	for (i = 0; i < nreported; i++)
		if (bsearch(&reported[i], ids, n, sizeof(char *),
		    cmpstr) == NULL) {
			fprintf(stderr, "%s: acknowledged but lost (%s)\n",
			    reported[i], when);
			missing++;
		}
	CHECK(bad == 0);
	CHECK(missing == 0);
	CHECK(n >= nreported);
	snprintf(p, sizeof(p), "%s/corrupt", base);
	CHECK(count_dir(p) == 0);
	spool_ids_free(ids, n);
}

int
main(void)
{
	struct spool *sp;
	const char *tmp = getenv("DR_TMPDIR"), *r;
	static char all[65536 + 1];
	char tmpl[4096], err[256], buf[9000], *line, *nl;
	int rounds = 150, round, pfd[2], status, own = 0;
	size_t alen;
	ssize_t n;
	pid_t pid;
	uint64_t s;

	log_init("test_spool_crash", 1, 0);
	if ((r = getenv("DR_SPOOL_CRASH_ROUNDS")) != NULL && atoi(r) > 0)
		rounds = atoi(r);
	if (tmp != NULL && *tmp != '\0')
		snprintf(base, sizeof(base), "%s/crash-spool", tmp);
	else {
		dr_strlcpy(tmpl, "/tmp/test_spool_crash.XXXXXX", sizeof(tmpl));
		if (mkdtemp(tmpl) == NULL) {
			perror("mkdtemp");
			return 1;
		}
		snprintf(base, sizeof(base), "%s/crash-spool", tmpl);
		own = 1;
	}
	/* DR_SPOOL_CRASH_SEED repeats a run: the seed printed by a failed
	 * one gives the same messages and the same kill delays */
	if ((r = getenv("DR_SPOOL_CRASH_SEED")) != NULL && *r != '\0')
		s = strtoull(r, NULL, 0);
	else
		s = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	printf("seed %llu, %d rounds (DR_SPOOL_CRASH_SEED=%llu repeats "
	    "them)\n", (unsigned long long)s, rounds, (unsigned long long)s);

	if ((sp = spool_open(base, err, sizeof(err))) == NULL) {
		fprintf(stderr, "spool_open: %s\n", err);
		return 1;
	}
	spool_close(sp);
	for (round = 0; round < rounds; round++) {
		struct timespec ts;
		long delay;

		if (pipe(pfd) == -1) {
			perror("pipe");
			return 1;
		}
		fflush(stdout);
		fflush(stderr);
		if ((pid = fork()) == -1) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			close(pfd[0]);
			if (round % 2)
				child_async(pfd[1], rnd(&s) ^ (uint64_t)round);
			child(pfd[1], rnd(&s) ^ (uint64_t)round);
			_exit(0);
		}
		rnd(&s);	/* stay in step with the child's seed */
		close(pfd[1]);
		/* 0-40 ms: the child is in recovery, a write, a commit...;
		 * every tenth round 200-500 ms, so that commits are
		 * acknowledged even on a loaded machine (two CI runs on two
		 * busy cores saw none in 150 rounds of 40 ms) */
		delay = (long)(rnd(&s) % 40000);
		if (round % 10 == 9)
			delay = 200000 + delay * 7;
		ts.tv_sec = 0;
		ts.tv_nsec = delay * 1000;
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		if (waitpid(pid, &status, 0) == -1) {
			perror("waitpid");
			return 1;
		}
		if (!WIFSIGNALED(status)) {
			fprintf(stderr, "round %d: child exited with %d\n",
			    round, WEXITSTATUS(status));
			CHECK(0);
			break;
		}
		/* Collect what the child acknowledged (whole lines only:
		 * each report is one write() smaller than PIPE_BUF). */
		alen = 0;
		while ((n = read(pfd[0], all + alen, sizeof(all) - 1 - alen)) > 0)
			alen += (size_t)n;
		all[alen] = '\0';
		for (line = all; (nl = strchr(line, '\n')) != NULL;
		    line = nl + 1) {
			*nl = '\0';
			reported = xrealloc(reported,
			    (nreported + 1) * sizeof(char *));
			reported[nreported++] = xstrdup(line);
		}
		close(pfd[0]);
		if (nreported > 0)
			qsort(reported, nreported, sizeof(char *), cmpstr);

		/* What a reader sees right after the crash. */
		if ((sp = spool_open_flags(base, SPOOL_NO_RECOVER, err,
		    sizeof(err))) == NULL) {
			fprintf(stderr, "round %d: open: %s\n", round, err);
			CHECK(0);
			continue;
		}
		verify(sp, "after kill");
		spool_close(sp);
		if (t_failed > 0)
			break;
	}

	/* Recovery keeps everything and cleans the rest. */
	sp = spool_open(base, err, sizeof(err));
	CHECK(sp != NULL);
	if (sp != NULL) {
		spool_ids_free(checked, nchecked);	/* compare all again */
		checked = NULL;
		nchecked = 0;
		verify(sp, "after recovery");
		snprintf(buf, sizeof(buf), "%s/tmp", base);
		CHECK(count_dir(buf) == 0);
		spool_close(sp);
	}
	printf("%zu messages acknowledged over %d kills\n", nreported, round);
	CHECK(nreported > 0);
	if (own && t_failed == 0) {
		char *cmd = xasprintf("rm -rf '%s'", tmpl);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", tmpl);
		free(cmd);
	}
	return t_done();
}
