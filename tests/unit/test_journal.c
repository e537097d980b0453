/*
 * test_journal.c - the spool's journal keeps every acknowledged message
 * through a power loss, and brings back nothing that left the queue.
 *
 * A power loss is simulated: a child commits messages through the pool
 * (as danerelayd does, so they go through the journal), removes some,
 * reports on a pipe what got its "250" and what it removed, and is
 * killed (SIGKILL).  The parent then destroys every queue file that was
 * never fsync'ed itself - it deletes some, truncates some, zeroes some,
 * as a crash of the machine may leave files whose data was only in the
 * page cache - and opens the spool as a restarted daemon would:
 *   - every acknowledged message that was not removed is back, bit for
 *     bit (data and envelope);
 *   - no removed message comes back;
 *   - a message the operator deleted with the daemon stopped
 *     (journal/deleted) does not come back either;
 *   - a torn record at the end of the journal is ignored;
 *   - with a small journal limit the journal is checkpointed (the files
 *     it still holds are fsync'ed, then it starts over) while commits go
 *     on, and nothing is lost across the generations.
 * Which files were fsync'ed is seen, not assumed: this program defines
 * fsync() itself (the spool code linked into it calls this one), and the
 * child reports every file it fsync'ed; only those are spared.
 */

#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "journal.h"
#include "log.h"
#include "spool.h"
#include "util.h"
#include "workq.h"
#include "t.h"

#define NMSG	120

static char dir[2048];
static FILE *sync_out;		/* the child's report, or NULL */
/* The parent's own fsyncs (the replay), while recording. */
static char parent_synced[4 * 120][QUEUE_ID_LEN + 1];
static size_t nparent_synced;
static int record_parent;

/* Every fsync of the spool code, reported with the file's path. */
int
fsync(int fd)
{
	char p[64], path[4096];
	ssize_t n;

	if (sync_out != NULL) {
		snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
		if ((n = readlink(p, path, sizeof(path) - 1)) > 0) {
			path[n] = '\0';
			fprintf(sync_out, "synced %s\n", path);
			fflush(sync_out);
		}
	}
	if (record_parent) {
		char *b;

		snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
		if ((n = readlink(p, path, sizeof(path) - 1)) > 0) {
			path[n] = '\0';
			b = strrchr(path, '/');
			if (b != NULL && strlen(b + 1) > QUEUE_ID_LEN &&
			    nparent_synced < 4 * NMSG) {
				b[1 + QUEUE_ID_LEN] = '\0';
				dr_strlcpy(parent_synced[nparent_synced++],
				    b + 1, QUEUE_ID_LEN + 1);
			}
		}
	}
	return (int)syscall(SYS_fsync, fd);
}

static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

/* A message from its seed: a header naming the seed, then 100 bytes to
 * 300 KiB of text. */
static unsigned char *
make_message(uint64_t seed, size_t *lenp)
{
	uint64_t s = seed | 1;
	size_t len = 100 + (size_t)(rnd(&s) % (300 * 1024)), i, h;
	unsigned char *m = xmalloc(len);

	h = (size_t)snprintf((char *)m, len, "X-Seed: %016llx\r\n\r\n",
	    (unsigned long long)seed);
	for (i = h; i < len; i++)
		m[i] = (unsigned char)('a' + rnd(&s) % 26);
	*lenp = len;
	return m;
}

/* One event loop of the child (it runs two, as danerelayd with
 * workers = 2 does: their group commits overlap). */
struct child {
	struct spool	*sp;
	FILE		*out;
	uint64_t	 s;
	int		 left;		/* commits still to start */
	int		 pending;	/* callbacks still to come */
	struct workq	*wq;
	struct event_base *base;
};

struct commit {
	struct child	*c;
	struct spool_env *env;
	uint64_t	 seed;
};

static void
remove_done(int rc, int error, const char *why, void *arg)
{
	struct child *c = arg;

	(void)error;
	if (rc == -1) {
		fprintf(stderr, "child: remove: %s\n", why);
		_exit(3);
	}
	c->pending--;
}

static void commit_start(struct child *c);

static void
commit_done(int rc, int error, const char *why, void *arg)
{
	struct commit *a = arg;
	struct child *c = a->c;

	(void)error;
	if (rc == -1) {
		fprintf(stderr, "child: commit: %s\n", why);
		_exit(3);
	}
	/* "250": from here on the message must survive */
	fprintf(c->out, "ok %s %016llx\n", a->env->id,
	    (unsigned long long)a->seed);
	if (rnd(&c->s) % 4 == 0) {
		/* delivered: leaves the queue, must never come back */
		fprintf(c->out, "rm %s\n", a->env->id);
		c->pending++;
		if (spool_remove_async(c->sp, a->env->id, remove_done,
		    c) == -1)
			_exit(3);
	}
	fflush(c->out);
	spool_env_free(a->env);
	free(a);
	c->pending--;
	commit_start(c);
}

static void
commit_start(struct child *c)
{
	struct commit *a;
	struct spool_writer *w;
	unsigned char *msg;
	size_t len;
	char err[256];

	if (c->left == 0)
		return;
	c->left--;
	a = xcalloc(1, sizeof(*a));
	a->c = c;
	a->seed = rnd(&c->s);
	msg = make_message(a->seed, &len);
	if ((w = spool_writer_new(c->sp, err, sizeof(err))) == NULL ||
	    spool_writer_write(w, msg, len) == -1)
		_exit(3);
	free(msg);
	a->env = spool_env_new();
	a->env->sender = xstrdup("alice@example.org");
	spool_env_add_rcpt(a->env, "bob@example.net");
	c->pending++;
	if (spool_writer_commit_async(w, a->env, commit_done, a, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "child: commit: %s\n", err);
		_exit(3);
	}
}

static void
check_idle(evutil_socket_t fd, short what, void *arg)
{
	struct child *c = arg;

	(void)fd;
	(void)what;
	if (c->left == 0 && c->pending == 0)
		event_base_loopbreak(c->base);
}

/* Run one loop until its share of the commits is done. */
static void *
loop_run(void *arg)
{
	struct child *c = arg;
	struct workq_port *port;
	struct event *ev;
	struct timeval tv = { 0, 10000 };
	char err[256];
	int i;

	if ((c->base = event_base_new()) == NULL ||
	    (port = workq_port_new(c->base, err, sizeof(err))) == NULL)
		_exit(3);
	spool_set_workq(c->sp, c->wq, port);
	for (i = 0; i < 4; i++)
		commit_start(c);
	ev = event_new(c->base, -1, EV_PERSIST, check_idle, c);
	event_add(ev, &tv);
	event_base_dispatch(c->base);
	return NULL;
}

static void
child(int wfd, uint64_t seed, off_t jmax)
{
	struct child c[2];
	struct spool *sp;
	struct workq *wq;
	pthread_t t;
	char err[256];
	int i;

	log_init("test_journal", 1, 0);
	if ((sync_out = fdopen(wfd, "w")) == NULL ||
	    (sp = spool_open(dir, err, sizeof(err))) == NULL) {
		fprintf(stderr, "child: spool_open: %s\n", err);
		_exit(3);
	}
	if (jmax > 0)
		spool_journal_set_max(sp, jmax);
	if ((wq = workq_new("io", 8, err, sizeof(err))) == NULL)
		_exit(3);
	memset(c, 0, sizeof(c));
	for (i = 0; i < 2; i++) {
		c[i].sp = sp;
		c[i].out = sync_out;
		c[i].wq = wq;
		c[i].s = (seed + (uint64_t)i * 0x9e3779b97f4a7c15ULL) | 1;
		c[i].left = NMSG / 2;
	}
	if (pthread_create(&t, NULL, loop_run, &c[1]) != 0)
		_exit(3);
	loop_run(&c[0]);
	pthread_join(t, NULL);
	fprintf(sync_out, "checkpoints %lu\n", spool_journal_checkpoints(sp));
	fprintf(sync_out, "end\n");
	fflush(sync_out);
	/* the crash: no close, no cleanup */
	raise(SIGKILL);
	_exit(3);
}

struct msg {
	char		 id[QUEUE_ID_LEN + 1];
	uint64_t	 seed;
	int		 removed;
	int		 synced;	/* its own file was fsync'ed */
};

static struct msg msgs[NMSG];
static size_t nmsgs;
static unsigned long checkpoints;

/* Run a child to its end; fills msgs.  0 ok. */
static int
run_child(uint64_t seed, off_t jmax)
{
	char line[8192], id[64], path[8192];
	unsigned long long sd;
	FILE *in;
	static char synced[4 * NMSG][QUEUE_ID_LEN + 1];
	int fds[2], status, ended = 0;
	pid_t pid;
	size_t i, k, nsynced = 0;

	nmsgs = 0;
	if (pipe(fds) == -1 || (pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		close(fds[0]);
		child(fds[1], seed, jmax);
	}
	close(fds[1]);
	in = fdopen(fds[0], "r");
	while (fgets(line, sizeof(line), in) != NULL) {
		if (sscanf(line, "ok %63s %llx", id, &sd) == 2 &&
		    nmsgs < NMSG) {
			dr_strlcpy(msgs[nmsgs].id, id, sizeof(msgs[0].id));
			msgs[nmsgs].seed = sd;
			msgs[nmsgs].synced = 0;
			msgs[nmsgs++].removed = 0;
		} else if (sscanf(line, "rm %63s", id) == 1) {
			for (i = 0; i < nmsgs; i++)
				if (strcmp(msgs[i].id, id) == 0)
					msgs[i].removed = 1;
		} else if (sscanf(line, "synced %8191s", path) == 1) {
			/* .../queue/ID.msg or .../tmp/ID.msg (a file may be
			 * fsync'ed before its "ok": keep them all) */
			char *b = strrchr(path, '/');

			if (b != NULL && strlen(b + 1) > QUEUE_ID_LEN &&
			    nsynced < sizeof(synced) / sizeof(synced[0])) {
				b[1 + QUEUE_ID_LEN] = '\0';
				dr_strlcpy(synced[nsynced++], b + 1,
				    sizeof(synced[0]));
			}
		} else if (sscanf(line, "checkpoints %lu", &checkpoints) == 1)
			;
		else if (strcmp(line, "end\n") == 0)
			ended = 1;
	}
	fclose(in);
	for (i = 0; i < nmsgs; i++)
		for (k = 0; k < nsynced; k++)
			if (strcmp(msgs[i].id, synced[k]) == 0)
				msgs[i].synced = 1;
	waitpid(pid, &status, 0);
	if (!ended || !WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
		fprintf(stderr, "child did not finish its work\n");
		return -1;
	}
	return 0;
}

/* What a power loss may leave of a file that was never fsync'ed. */
static void
destroy(const char *id, int how)
{
	char p[8192];
	struct stat st;
	int fd;

	snprintf(p, sizeof(p), "%s/queue/%s.msg", dir, id);
	switch (how % 3) {
	case 0:
		unlink(p);
		break;
	case 1:
		if (stat(p, &st) == 0)
			(void)truncate(p, st.st_size / 3);
		break;
	case 2:
		if (stat(p, &st) == 0 && (fd = open(p, O_WRONLY)) != -1) {
			char *z = xcalloc(1, (size_t)st.st_size);

			(void)pwrite(fd, z, (size_t)st.st_size, 0);
			free(z);
			close(fd);
		}
		break;
	}
}

static int
exists_msg(const char *id)
{
	char p[8192];
	struct stat st;

	snprintf(p, sizeof(p), "%s/queue/%s.msg", dir, id);
	return stat(p, &st) == 0;
}

/* The message is in the queue with its data and envelope intact. */
static int
intact(struct spool *sp, const struct msg *m)
{
	struct spool_env *env;
	unsigned char *want, *got;
	size_t wlen, glen = 0;
	ssize_t n;
	char err[256];
	int fd, ok;

	if (spool_env_load(sp, m->id, &env, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s: does not load: %s\n", m->id, err);
		return 0;
	}
	want = make_message(m->seed, &wlen);
	ok = env->size == (off_t)wlen && env->nrcpt == 1 &&
	    strcmp(env->rcpts[0].addr, "bob@example.net") == 0 &&
	    strcmp(env->sender, "alice@example.org") == 0;
	spool_env_free(env);
	got = xmalloc(wlen);
	if ((fd = spool_data_open(sp, m->id)) != -1) {
		while (glen < wlen &&
		    (n = read(fd, got + glen, wlen - glen)) > 0)
			glen += (size_t)n;
		close(fd);
	}
	ok = ok && glen == wlen && memcmp(got, want, wlen) == 0;
	if (!ok)
		fprintf(stderr, "%s: not intact\n", m->id);
	free(got);
	free(want);
	return ok;
}

static void
rm_rf(const char *p)
{
	char cmd[8400];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", p);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", p);
}

/* A power loss after NMSG commits: everything acknowledged comes back,
 * nothing removed does. */
static void
test_power_loss(uint64_t seed)
{
	struct spool *sp;
	char err[512];
	size_t i, kept = 0, back = 0, ghosts = 0;

	rm_rf(dir);
	CHECK(run_child(seed, 0) == 0);
	CHECK(nmsgs == NMSG);
	{
		/* written ahead in whole megabytes of zeros */
		struct stat st;
		char p[8192];

		snprintf(p, sizeof(p), "%s/journal/log", dir);
		CHECK(stat(p, &st) == 0 && st.st_size >= 1024 * 1024 &&
		    st.st_size % (1024 * 1024) == 0);
	}
	for (i = 0; i < nmsgs; i++)
		if (!msgs[i].removed && !msgs[i].synced)
			destroy(msgs[i].id, (int)i);
	if ((sp = spool_open(dir, err, sizeof(err))) == NULL) {
		fprintf(stderr, "spool_open: %s\n", err);
		CHECK(0);
		return;
	}
	for (i = 0; i < nmsgs; i++) {
		if (msgs[i].removed) {
			if (exists_msg(msgs[i].id))
				ghosts++;
			continue;
		}
		kept++;
		back += intact(sp, &msgs[i]);
	}
	printf("power loss: %zu acknowledged, %zu kept, %zu back intact, "
	    "%zu removed ones came back\n", nmsgs, kept, back, ghosts);
	CHECK(kept > 0 && back == kept);
	CHECK(ghosts == 0);
	spool_close(sp);

	/* the journal started over: a second restart restores nothing
	 * more, and everything is still there */
	CHECK((sp = spool_open(dir, err, sizeof(err))) != NULL);
	if (sp != NULL) {
		for (i = 0, back = 0; i < nmsgs; i++)
			if (!msgs[i].removed)
				back += intact(sp, &msgs[i]);
		CHECK(back == kept);
		spool_close(sp);
	}
}

/* The operator deletes with the daemon stopped: the replay must not
 * bring the message back. */
static void
test_offline_delete(uint64_t seed)
{
	struct spool *sp;
	char err[512];
	size_t i, victims = 0, ghosts = 0, back = 0, kept = 0;

	rm_rf(dir);
	CHECK(run_child(seed, 0) == 0);
	if ((sp = spool_open_flags(dir, SPOOL_NO_RECOVER, err,
	    sizeof(err))) == NULL) {
		CHECK(0);
		return;
	}
	for (i = 0; i < nmsgs; i++)
		if (!msgs[i].removed && i % 5 == 0) {
			CHECK(spool_remove(sp, msgs[i].id) == 0);
			msgs[i].removed = 2;
			victims++;
		}
	spool_close(sp);
	CHECK(victims > 0);
	if ((sp = spool_open(dir, err, sizeof(err))) == NULL) {
		fprintf(stderr, "spool_open: %s\n", err);
		CHECK(0);
		return;
	}
	for (i = 0; i < nmsgs; i++) {
		if (msgs[i].removed == 2 && exists_msg(msgs[i].id))
			ghosts++;
		if (!msgs[i].removed) {
			kept++;
			back += intact(sp, &msgs[i]);
		}
	}
	printf("offline delete: %zu deleted, %zu came back\n", victims,
	    ghosts);
	CHECK(ghosts == 0);
	CHECK(back == kept);
	spool_close(sp);
}

/* Garbage after the last record (a write cut short by the crash). */
static void
test_torn_tail(uint64_t seed)
{
	struct spool *sp;
	char err[512], p[8192];
	unsigned char junk[1000];
	size_t i, kept = 0, back = 0;
	int fd;

	rm_rf(dir);
	CHECK(run_child(seed, 0) == 0);
	/* after the last record (the file goes on with zeros): a record
	 * header of this generation that promises 3000 bytes, and only
	 * 1000 of them, as a write cut short leaves it */
	snprintf(p, sizeof(p), "%s/journal/log", dir);
	CHECK((fd = open(p, O_RDWR)) != -1);
	if (fd != -1) {
		unsigned char h[40];
		off_t off = 40;
		uint64_t len;

		while (pread(fd, h, 40, off) == 40 && memcmp(h, "DRJ1", 4) == 0) {
			for (len = 0, i = 0; i < 8; i++)
				len |= (uint64_t)h[24 + i] << (8 * i);
			off += 40 + (off_t)len;
		}
		CHECK(off > 40);
		CHECK(pread(fd, h, 40, 0) == 40);	/* the start record */
		memset(junk, 'j', sizeof(junk));
		memcpy(junk, "DRJ1\001\0\0\0", 8);
		memcpy(junk + 8, h + 8, 8);		/* its generation */
		/* the id of a message that is still queued: taken for
		 * real, this record would overwrite it */
		for (i = 0; i < nmsgs && msgs[i].removed; i++)
			;
		if (i < nmsgs) {
			uint64_t v = strtoull(msgs[i].id, NULL, 16);
			int b;

			for (b = 0; b < 8; b++)
				junk[16 + b] = (unsigned char)(v >> (8 * b));
		}
		memset(junk + 24, 0, 16);
		junk[25] = 3000 >> 8;			/* len 3000 */
		junk[24] = 3000 & 0xff;
		CHECK(pwrite(fd, junk, 1000, off) == 1000);
		close(fd);
	}
	for (i = 0; i < nmsgs; i++)
		if (!msgs[i].removed && !msgs[i].synced)
			destroy(msgs[i].id, 0);
	CHECK((sp = spool_open(dir, err, sizeof(err))) != NULL);
	if (sp == NULL) {
		fprintf(stderr, "spool_open: %s\n", err);
		return;
	}
	for (i = 0; i < nmsgs; i++)
		if (!msgs[i].removed) {
			kept++;
			back += intact(sp, &msgs[i]);
		}
	CHECK(back == kept);
	/* the torn record changed nothing */
	snprintf(p, sizeof(p), "%s/corrupt", dir);
	CHECK(access(p, F_OK) == -1);
	spool_close(sp);
}

/* A journal limit of 1 MiB: several checkpoints while commits go on;
 * then a power loss: everything acknowledged is there (the files of
 * earlier generations were fsync'ed by a checkpoint, the others are
 * replayed from the last generation). */
static void
test_checkpoint(uint64_t seed)
{
	struct spool *sp;
	char err[512];
	size_t i, kept = 0, back = 0, nsync = 0;

	rm_rf(dir);
	CHECK(run_child(seed, 1024 * 1024) == 0);
	for (i = 0; i < nmsgs; i++) {
		nsync += msgs[i].synced;
		if (!msgs[i].removed && !msgs[i].synced)
			destroy(msgs[i].id, (int)i);
	}
	printf("checkpoints with a 1 MiB journal: %lu; %zu files fsync'ed "
	    "by them\n", checkpoints, nsync);
	CHECK(checkpoints >= 3);
	CHECK(nsync > 0);
	CHECK((sp = spool_open(dir, err, sizeof(err))) != NULL);
	if (sp == NULL) {
		fprintf(stderr, "spool_open: %s\n", err);
		return;
	}
	for (i = 0; i < nmsgs; i++)
		if (!msgs[i].removed) {
			kept++;
			back += intact(sp, &msgs[i]);
		}
	CHECK(back == kept);
	spool_close(sp);
}

/* kill -9, a restart (the replay finds every file and fsyncs it: after
 * kill -9 they may be in the page cache only), then a power loss: the
 * journal has started over, so the files must be on disk by now. */
static void
test_replay_syncs(uint64_t seed)
{
	struct spool *sp;
	char err[512];
	size_t i, k, kept = 0, back = 0;

	rm_rf(dir);
	CHECK(run_child(seed, 0) == 0);
	nparent_synced = 0;
	record_parent = 1;
	sp = spool_open(dir, err, sizeof(err));
	record_parent = 0;
	CHECK(sp != NULL);
	if (sp == NULL)
		return;
	spool_close(sp);
	for (i = 0; i < nmsgs; i++)
		for (k = 0; k < nparent_synced; k++)
			if (strcmp(msgs[i].id, parent_synced[k]) == 0)
				msgs[i].synced = 1;
	for (i = 0; i < nmsgs; i++)
		if (!msgs[i].removed && !msgs[i].synced)
			destroy(msgs[i].id, (int)i);
	CHECK((sp = spool_open(dir, err, sizeof(err))) != NULL);
	if (sp == NULL)
		return;
	for (i = 0; i < nmsgs; i++)
		if (!msgs[i].removed) {
			kept++;
			back += intact(sp, &msgs[i]);
		}
	printf("replay then power loss: %zu kept, %zu back intact\n", kept,
	    back);
	CHECK(back == kept);
	spool_close(sp);
}

/* Read queue/ID.msg into buf; its length, or -1. */
static ssize_t
read_msg(const char *id, char *buf, size_t len)
{
	char p[8192];
	ssize_t n;
	int fd;

	snprintf(p, sizeof(p), "%s/queue/%s.msg", dir, id);
	if ((fd = open(p, O_RDONLY)) == -1)
		return -1;
	n = read(fd, buf, len);
	close(fd);
	return n;
}

/* The journal's own API: records are replayed in order.  An id that was
 * committed, gone and committed again (ids of a restarted process may
 * meet old ones) is live with its last content; one committed and gone
 * stays gone. */
static void
test_replay_order(void)
{
	struct journal *j;
	struct journal_msg m;
	char err[512], p[8192], buf[64];
	const char *again = "000000010000000A", *gone = "000000010000000B";
	int dfd, tfd, qfd, k;

	rm_rf(dir);
	for (k = 0; k < 3; k++) {
		snprintf(p, sizeof(p), "%s%s", dir, k == 0 ? "" :
		    k == 1 ? "/tmp" : "/queue");
		CHECK(mkdir(p, 0700) == 0);
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	snprintf(p, sizeof(p), "%s/tmp", dir);
	tfd = open(p, O_RDONLY | O_DIRECTORY);
	snprintf(p, sizeof(p), "%s/queue", dir);
	qfd = open(p, O_RDONLY | O_DIRECTORY);
	CHECK(dfd != -1 && tfd != -1 && qfd != -1);
	j = journal_open(dfd, tfd, qfd, dir, err, sizeof(err));
	CHECK(j != NULL);
	if (j == NULL)
		return;
	memset(&m, 0, sizeof(m));
	m.id = again;
	m.data = "first";
	m.datalen = 5;
	CHECK(journal_append(j, &m, 1) == 0);
	journal_done(j);
	CHECK(journal_gone(j, again, 0) == 0);
	m.data = "second";
	m.datalen = 6;
	CHECK(journal_append(j, &m, 1) == 0);
	journal_done(j);
	m.id = gone;
	m.data = "never";
	m.datalen = 5;
	CHECK(journal_append(j, &m, 1) == 0);
	journal_done(j);
	CHECK(journal_gone(j, gone, 0) == 0);
	CHECK(journal_sync(j) == 0);
	journal_close(j);	/* the crash: no file in queue/ at all */

	j = journal_open(dfd, tfd, qfd, dir, err, sizeof(err));
	CHECK(j != NULL);
	journal_close(j);
	memset(buf, 0, sizeof(buf));
	CHECK(read_msg(again, buf, sizeof(buf)) == 6 &&
	    strcmp(buf, "second") == 0);
	CHECK(read_msg(gone, buf, sizeof(buf)) == -1);
	close(dfd);
	close(tfd);
	close(qfd);
}

int
main(void)
{
	const char *t = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/test_journal.%d",
	    t != NULL ? t : "/tmp", (int)getpid());
	log_init("test_journal", 1, 0);
	test_power_loss(0x1234567);
	test_power_loss(0xfeedbeef);
	test_offline_delete(0xabcdef);
	test_torn_tail(0x777);
	test_checkpoint(0x4242);
	test_checkpoint(0x4343);
	test_replay_syncs(0x5151);
	test_replay_order();
	rm_rf(dir);
	return t_done();
}
