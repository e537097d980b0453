/*
 * spool.c - the durable queue on disk: per message one file (data and
 * envelope) and, after delivery attempts, a rewritten envelope, written
 * so that a crash at any instant neither loses a message that was
 * acknowledged nor ever shows half a message.
 *
 * RFC 5321 §4.1.1.4 and §6.1: once the server has answered 250 to the end
 * of DATA it is responsible for the message.  spool_writer_commit()
 * returning 0, or the callback of spool_writer_commit_async() with rc 0,
 * is the only point at which that reply may be sent: by then the file
 * and its directory entry are on stable storage.
 *
 * Layout under spool_dir (directories 0700, files 0600):
 *   lock       write-locked (F_OFD_SETLK) by the process owning the spool
 *   journal/   log: the write-ahead journal of new messages (journal.c);
 *              deleted: ids the operator deleted while no daemon ran
 *   tmp/       files being written: ID.msg of a new message,
 *              ID.env.<pid>.<n> for an envelope rewrite
 *   queue/     ID.msg: the data, then the envelope as committed, then a
 *              trailer line "danerelay-data <16 hex digits>\n" giving
 *              the data's size (where the envelope starts);
 *              ID.env: the current envelope, once delivery attempts have
 *              changed it (it wins over the embedded one)
 *   corrupt/   messages that failed to load at recovery
 * A message exists iff queue/ID.msg exists (or, after a power loss, its
 * record in the journal does: the next start writes the file again).
 *
 * The commit, exactly (spool_writer_commit_async; the sync variant, used
 * by tools and for generated DSNs and reports, does steps 2b and 3b):
 *   1. during DATA the message is kept in memory (beyond 1 MiB it goes
 *      on to tmp/ID.msg in the page cache as it arrives, no fsync);
 *   2. on a pool thread, the message's file in tmp/:
 *      a. a message that stayed in memory (the journaled case): write
 *         the data, the envelope and the trailer to tmp/ID.msg; no fsync;
 *      b. a bigger one (or an envelope over 4 MiB): write what is left,
 *         the envelope and the trailer, fsync(tmp/ID.msg), rename it to
 *         queue/ID.msg (no replace);
 *   3. on the loop: the message joins the group of this loop.  When no
 *      group of this loop is syncing and no other commit of this loop is
 *      still in step 2 (or the group has GROUP_MAX members, or its first
 *      has waited GROUP_WAIT), one pool job makes the whole group durable:
 *      a. journaled messages: one write of all their records (header,
 *         then the whole content of ID.msg) to journal/log, one
 *         fdatasync(journal/log), then each tmp/ID.msg is renamed to
 *         queue/ID.msg (no replace);
 *      b. the others (2b, and envelope rewrites): one fsync(queue/);
 *      Messages whose step 2 ends meanwhile form the next group;
 *   4. back on the loop every message of the group is durable: only then
 *      does the caller's callback (smtpd: "250") run.  If a step failed
 *      the message is unlinked again (and recorded as gone in the
 *      journal) and reported as failed (451).
 * So per message: a share of one journal fdatasync; the message file
 * itself is fsync'ed only if it is still queued when the journal is
 * checkpointed (journal.c) - most are delivered and unlinked before.
 * tmp/ is never fsync'ed: an entry left there by a crash is removed by
 * recovery.  A power loss may leave a queue/ID.msg that was never
 * fsync'ed empty or short: the journal's replay at start writes it again.
 *
 * Envelope rewrites (delivery results) write tmp/ID.env.<pid>.<n>, fsync
 * it, rename it over queue/ID.env and join the same directory-fsync
 * group.  The queue runs at most one rewrite per message at a time.
 * Removal of a delivered message unlinks queue/ID.msg, then queue/ID.env,
 * without a directory fsync and without rewriting the envelope first: a
 * crash just then at worst delivers the message again, which SMTP allows
 * (RFC 5321 §6.1).  The operator's delete (spool_remove) does fsync.
 * Removal also writes a "gone" record to the journal (no fsync) if the
 * message is still in it, so that a replay never brings it back; the
 * operator's delete fsyncs that record, or, with no daemon running,
 * appends the id to journal/deleted (fsync'ed).
 *
 * Recovery (spool_open) first replays the journal (journal.c: every
 * journaled message not gone is made to exist in queue/ with its exact
 * content, fsync'ed), then deletes everything in tmp/, an ID.env without
 * ID.msg (a removal cut short) and an ID.msg without trailer or ID.env
 * (data of the previous format that never got its envelope: no 250 was
 * given).  Anything else that does not load is moved to corrupt/ and
 * logged, never deleted.  A spool written by version 0.1 (ID.msg = data
 * only, ID.env beside it) loads as it is.
 *
 * queue/ is one flat directory.  ext4 and xfs index large directories, so
 * this stays fast to some 10^5 messages; a bigger queue would want hashed
 * subdirectories queue/XX/ (first two id digits are time, so use the last).
 *
 * The envelope's text format and its parser are envelope.c.
 */

#include <sys/stat.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "envelope.h"
#include "journal.h"
#include "log.h"
#include "spool.h"
#include "util.h"
#include "workq.h"

#define WBUF_MIN	(16 * 1024)		/* first buffer of a message */
#define WBUF_MAX	(1024 * 1024)		/* then to the page cache */
#define GROUP_MAX	64		/* messages per directory fsync */
#define GROUP_WAIT	0.002		/* seconds a group waits at most
					 * for commits still in progress */
/* The last line of a message file: "danerelay-data 00000000000010f2\n",
 * the size of the data, which is where the envelope starts. */
#define TRAILER_TAG	"danerelay-data "
#define TRAILER_LEN	(sizeof(TRAILER_TAG) - 1 + 16 + 1)

struct spool {
	char		*dir;
	int		 dirfd;
	int		 tmpfd;
	int		 queuefd;
	int		 lockfd;	/* -1 with SPOOL_NO_RECOVER */
	struct journal	*journal;	/* NULL with SPOOL_NO_RECOVER */
	_Atomic unsigned serial;	/* unique tmp names for rewrites */
};

/*
 * Group commit state of one event loop (one worker): the thread that runs
 * the loop is the only one that touches it, so it is thread-local.
 * spool_set_workq() sets it up for the calling thread.
 */
struct spool_loop {
	struct spool	*sp;		/* whose ops go through the pool */
	struct workq	*wq;		/* NULL: everything inline */
	struct workq_port *port;
	struct spool_op	*group;		/* waiting for the next dir fsync */
	struct spool_op	*group_tail;
	int		 ngroup;
	double		 group_since;	/* mono_now() of its first */
	int		 syncing;	/* a dir fsync is running */
	int		 inflight;	/* commits/rewrites in their file part */
};
static _Thread_local struct spool_loop tl;

struct spool_writer {
	struct spool	*sp;
	char		 id[QUEUE_ID_LEN + 1];
	char		 msgname[QUEUE_ID_LEN + 8];
	int		 fd;		/* -1: not (or no longer) open */
	int		 created;	/* tmp/ID.msg exists */
	int		 error;		/* errno of the first failure */
	off_t		 size;
	unsigned char	*buf;		/* what is not yet in the file */
	size_t		 buflen, bufcap;
};

/* ---------------------------------------------------------------- */
/* Small file helpers. */

static int
write_full(int fd, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* close() that reports a deferred write error (NFS) but not EINTR. */
static int
close_checked(int fd)
{
	if (close(fd) == -1 && errno != EINTR)
		return -1;
	return 0;
}

/* Rename without replacing an existing target. */
static int
rename_noreplace(int fromfd, const char *from, int tofd, const char *to)
{
	struct stat st;

	if (renameat2(fromfd, from, tofd, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* File system without RENAME_NOREPLACE: check, then rename. */
	if (fstatat(tofd, to, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		errno = EEXIST;
		return -1;
	}
	return renameat(fromfd, from, tofd, to);
}

static int
exists_at(int dfd, const char *name)
{
	struct stat st;

	return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
	    errno != ENOENT;
}

static void
msg_name(char *buf, size_t len, const char *id)
{
	snprintf(buf, len, "%s.msg", id);
}

static void
env_name(char *buf, size_t len, const char *id)
{
	snprintf(buf, len, "%s.env", id);
}

/* ---------------------------------------------------------------- */
/* Opening and recovery. */

const char *
spool_dir(const struct spool *sp)
{
	return sp->dir;
}

void
spool_close(struct spool *sp)
{
	if (sp == NULL)
		return;
	if (sp->queuefd != -1)
		close(sp->queuefd);
	if (sp->tmpfd != -1)
		close(sp->tmpfd);
	if (sp->dirfd != -1)
		close(sp->dirfd);
	journal_close(sp->journal);
	if (sp->lockfd != -1)
		close(sp->lockfd);	/* releases the lock */
	free(sp->dir);
	free(sp);
}

static int
open_subdir(struct spool *sp, const char *name, int create, char *err,
    size_t errlen)
{
	int fd;

	if (create && mkdirat(sp->dirfd, name, 0700) == 0) {
		if (fsync(sp->dirfd) == -1) {
			snprintf(err, errlen, "fsync %s: %s", sp->dir,
			    strerror(errno));
			return -1;
		}
	} else if (create && errno != EEXIST) {
		snprintf(err, errlen, "mkdir %s/%s: %s", sp->dir, name,
		    strerror(errno));
		return -1;
	}
	if ((fd = openat(sp->dirfd, name, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC | O_NOFOLLOW)) == -1)
		snprintf(err, errlen, "%s/%s: %s", sp->dir, name,
		    strerror(errno));
	return fd;
}

/* Read a whole envelope file.  -1 with errno on I/O errors. */
static char *
read_env_file(int dfd, const char *name, size_t *lenp)
{
	struct stat st;
	char *buf;
	size_t off = 0;
	ssize_t n;
	int fd, saved;

	if ((fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1)
		return NULL;
	if (fstat(fd, &st) == -1)
		goto fail;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		goto fail;
	}
	if (st.st_size > ENV_MAXFILE) {
		errno = EFBIG;
		goto fail;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	while (off < (size_t)st.st_size) {
		n = read(fd, buf + off, (size_t)st.st_size - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			saved = errno;
			free(buf);
			errno = saved;
			goto fail;
		}
		if (n == 0)
			break;	/* shrank under us: the parser will complain */
		off += (size_t)n;
	}
	close(fd);
	buf[off] = '\0';
	*lenp = off;
	return buf;
 fail:
	saved = errno;
	close(fd);
	errno = saved;
	return NULL;
}

/*
 * The trailer of a message file: where its envelope starts (= the size of
 * the data).  1 and *offp if the file ends in a well-formed trailer, 0 if
 * not (data of the previous format, or never committed), -1 I/O error.
 */
static int
trailer_read(int fd, off_t fsize, off_t *offp)
{
	char t[TRAILER_LEN + 1], *end;
	unsigned long long v;

	if (fsize < (off_t)TRAILER_LEN)
		return 0;
	if (pread_full(fd, t, TRAILER_LEN, fsize - TRAILER_LEN) == -1)
		return -1;
	t[TRAILER_LEN] = '\0';
	if (strncmp(t, TRAILER_TAG, strlen(TRAILER_TAG)) != 0 ||
	    t[TRAILER_LEN - 1] != '\n')
		return 0;
	errno = 0;
	v = strtoull(t + strlen(TRAILER_TAG), &end, 16);
	if (errno != 0 || end != t + TRAILER_LEN - 1 ||
	    v > (unsigned long long)(fsize - TRAILER_LEN))
		return 0;
	*offp = (off_t)v;
	return 1;
}

/*
 * Load and check a message's envelope: queue/ID.env if there is one (the
 * state after delivery attempts), else the one the commit embedded in
 * queue/ID.msg.  0 ok; -1 I/O error (errno); -2 unusable (bad format,
 * wrong id, data of the wrong size); -3 data that never got an envelope
 * (never acknowledged); -4 an envelope without data (left over by a
 * removal).
 */
static int
env_load(struct spool *sp, const char *id, struct spool_env **out,
    char *err, size_t errlen)
{
	char name[QUEUE_ID_LEN + 8], ename[QUEUE_ID_LEN + 8], why[256];
	struct spool_env *env = NULL;
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	off_t off = 0;
	int fd, saved, t, rc = -2;

	*out = NULL;
	msg_name(name, sizeof(name), id);
	env_name(ename, sizeof(ename), id);
	if ((fd = openat(sp->queuefd, name, O_RDONLY | O_CLOEXEC |
	    O_NOFOLLOW)) == -1) {
		saved = errno;
		snprintf(err, errlen, "queue/%s: %s", name, strerror(saved));
		errno = saved;
		if (saved != ENOENT)
			return -1;
		return exists_at(sp->queuefd, ename) ? -4 : -2;
	}
	if (fstat(fd, &st) == -1 || (t = trailer_read(fd, st.st_size,
	    &off)) == -1) {
		saved = errno;
		snprintf(err, errlen, "queue/%s: %s", name, strerror(saved));
		close(fd);
		errno = saved;
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "queue/%s: not a regular file", name);
		goto out;
	}
	if ((buf = read_env_file(sp->queuefd, ename, &len)) == NULL) {
		if (errno != ENOENT) {
			saved = errno;
			snprintf(err, errlen, "queue/%s: %s", ename,
			    strerror(saved));
			close(fd);
			errno = saved;
			return -1;
		}
		/* No rewrite: the envelope the commit embedded. */
		if (t == 0) {
			snprintf(err, errlen, "queue/%s: data without "
			    "envelope", name);
			rc = -3;
			goto out;
		}
		len = (size_t)(st.st_size - TRAILER_LEN - off);
		if (len > ENV_MAXFILE) {
			snprintf(err, errlen, "queue/%s: envelope larger "
			    "than %d bytes", name, ENV_MAXFILE);
			goto out;
		}
		buf = xmalloc(len + 1);
		if (pread_full(fd, buf, len, off) == -1) {
			saved = errno;
			snprintf(err, errlen, "queue/%s: %s", name,
			    strerror(saved));
			free(buf);
			close(fd);
			errno = saved;
			return -1;
		}
		buf[len] = '\0';
		dr_strlcpy(ename, name, sizeof(ename));	/* for messages */
	} else if (t == 0)
		off = st.st_size;	/* data of the previous format */
	if (spool_env_parse(buf, len, &env, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "queue/%s: %s", ename, why);
		goto out;
	}
	if (strcmp(env->id, id) != 0) {
		snprintf(err, errlen, "queue/%s: envelope is for id %s",
		    ename, env->id);
		goto out;
	}
	if (env->size != off) {
		snprintf(err, errlen, "queue/%s has %lld bytes of data, the "
		    "envelope says %lld", name, (long long)off,
		    (long long)env->size);
		goto out;
	}
	*out = env;
	env = NULL;
	rc = 0;
 out:
	spool_env_free(env);
	free(buf);
	close(fd);
	return rc;
}

/* Move queue/NAME to corrupt/NAME (or NAME.N if taken). */
static int
move_corrupt(struct spool *sp, int cfd, const char *name)
{
	char to[QUEUE_ID_LEN + 32];
	int i;

	for (i = 0; i < 1000; i++) {
		if (i == 0)
			dr_strlcpy(to, name, sizeof(to));
		else
			snprintf(to, sizeof(to), "%s.%d", name, i);
		if (rename_noreplace(sp->queuefd, name, cfd, to) == 0) {
			log_warnx("%.*s: recovery: moved queue/%s to corrupt/%s",
			    QUEUE_ID_LEN, name, name, to);
			return 0;
		}
		if (errno == ENOENT)
			return 0;
		if (errno != EEXIST)
			break;
	}
	log_warn("recovery: cannot move queue/%s to corrupt/", name);
	return -1;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* All names in a directory (without . and ..), sorted; NULL on error. */
static char **
dir_names(int dfd, size_t *np)
{
	DIR *d;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0;
	int fd, saved;

	*np = 0;
	if ((fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return NULL;
	if ((d = fdopendir(fd)) == NULL) {
		saved = errno;
		close(fd);
		errno = saved;
		return NULL;
	}
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		names = xrealloc(names, (n + 1) * sizeof(char *));
		names[n++] = xstrdup(de->d_name);
		errno = 0;
	}
	if (errno != 0) {
		saved = errno;
		closedir(d);
		spool_ids_free(names, n);
		errno = saved;
		return NULL;
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(char *), name_cmp);
	else
		names = xcalloc(1, sizeof(char *));
	*np = n;
	return names;
}

/* "ID.ext" with a valid id: copies the id and returns the extension. */
static const char *
split_name(const char *name, char id[QUEUE_ID_LEN + 1])
{
	if (strlen(name) != QUEUE_ID_LEN + 4 || name[QUEUE_ID_LEN] != '.')
		return NULL;
	memcpy(id, name, QUEUE_ID_LEN);
	id[QUEUE_ID_LEN] = '\0';
	if (!queue_id_valid(id))
		return NULL;
	return name + QUEUE_ID_LEN + 1;
}

static int
recover(struct spool *sp, char *err, size_t errlen)
{
	char **names, id[QUEUE_ID_LEN + 1], last[QUEUE_ID_LEN + 1] = "";
	char why[512], other[QUEUE_ID_LEN + 8];
	struct spool_env *env;
	const char *ext;
	size_t i, n, good = 0, bad = 0;
	int cfd = -1, r, rc = -1;

	/* 1. Everything in tmp/ is a message that never got its 250 (or
	 * an envelope rewrite that never happened). */
	if ((names = dir_names(sp->tmpfd, &n)) == NULL) {
		snprintf(err, errlen, "%s/tmp: %s", sp->dir, strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (unlinkat(sp->tmpfd, names[i], 0) == -1)
			log_warn("recovery: cannot remove tmp/%s", names[i]);
		else
			log_info("recovery: removed partial file tmp/%s",
			    names[i]);
	}
	spool_ids_free(names, n);
	if (fsync(sp->tmpfd) == -1) {
		snprintf(err, errlen, "fsync %s/tmp: %s", sp->dir,
		    strerror(errno));
		return -1;
	}

	/* 2. queue/: every message must load. */
	if ((names = dir_names(sp->queuefd, &n)) == NULL) {
		snprintf(err, errlen, "%s/queue: %s", sp->dir,
		    strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++) {
		if ((ext = split_name(names[i], id)) == NULL ||
		    (strcmp(ext, "env") != 0 && strcmp(ext, "msg") != 0)) {
			log_warnx("recovery: ignoring unexpected file queue/%s",
			    names[i]);
			continue;
		}
		if (strcmp(id, last) == 0)
			continue;	/* ID.env and ID.msg: one message */
		dr_strlcpy(last, id, sizeof(last));
		r = env_load(sp, id, &env, why, sizeof(why));
		switch (r) {
		case 0:
			spool_env_free(env);
			good++;
			continue;
		case -1:
			snprintf(err, errlen, "recovery: %s", why);
			goto out;
		case -3:	/* never acknowledged (previous format) */
		case -4:	/* a removal that did not finish */
			dr_strlcpy(other, names[i], sizeof(other));
			if (unlinkat(sp->queuefd, other, 0) == -1)
				log_warn("recovery: cannot remove queue/%s",
				    other);
			else
				log_info("%s: recovery: removed %s queue/%s",
				    id, r == -3 ? "data without envelope" :
				    "envelope without data", other);
			continue;
		}
		log_warnx("%s: recovery: unusable message: %s", id, why);
		if (cfd == -1 && (cfd = open_subdir(sp, "corrupt", 1, err,
		    errlen)) == -1)
			goto out;
		env_name(other, sizeof(other), id);
		if (move_corrupt(sp, cfd, other) == -1) {
			snprintf(err, errlen, "recovery: cannot move queue/%s "
			    "to corrupt/: %s", other, strerror(errno));
			goto out;
		}
		msg_name(other, sizeof(other), id);
		if (move_corrupt(sp, cfd, other) == -1) {
			snprintf(err, errlen, "recovery: cannot move queue/%s "
			    "to corrupt/: %s", other, strerror(errno));
			goto out;
		}
		bad++;
	}
	if (fsync(sp->queuefd) == -1 || (cfd != -1 && fsync(cfd) == -1)) {
		snprintf(err, errlen, "fsync %s: %s", sp->dir, strerror(errno));
		goto out;
	}
	if (bad > 0)
		log_warnx("spool: %zu unusable message(s) moved to %s/corrupt",
		    bad, sp->dir);
	log_info("spool: %zu messages in queue", good);
	rc = 0;
 out:
	if (cfd != -1)
		close(cfd);
	spool_ids_free(names, n);
	return rc;
}

/*
 * The spool lock is an open-file-description record lock on the whole
 * "lock" file (released when the owner exits, however it exits).
 * F_OFD_SETLK: 0 taken, -1 errno.  F_OFD_GETLK: 1 held by someone else,
 * 0 free, -1 error.
 */
static int
lock_op(int fd, int cmd, short type)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = 0;
	fl.l_len = 0;
	if (fcntl(fd, cmd, &fl) == -1)
		return -1;
	if (cmd == F_OFD_GETLK)
		return fl.l_type != F_UNLCK;
	return 0;
}

/* A freshly made spool_dir must itself survive a crash. */
static int
fsync_parent(const char *dir)
{
	char *p, *slash;
	int r;

	p = xstrdup(dir);
	while ((slash = strrchr(p, '/')) != NULL && slash[1] == '\0' &&
	    slash != p)
		*slash = '\0';		/* trailing slashes */
	if ((slash = strrchr(p, '/')) == NULL)
		r = fsync_dir(".");
	else if (slash == p)
		r = fsync_dir("/");
	else {
		*slash = '\0';
		r = fsync_dir(p);
	}
	free(p);
	return r;
}

struct spool *
spool_open_flags(const char *dir, int flags, char *err, size_t errlen)
{
	struct spool *sp;
	int create = !(flags & SPOOL_NO_RECOVER);

	if (dir == NULL || *dir == '\0') {
		snprintf(err, errlen, "spool_dir is not set");
		return NULL;
	}
	if (create && mkdir_p(dir, 0700) == -1) {
		snprintf(err, errlen, "mkdir %s: %s", dir, strerror(errno));
		return NULL;
	}
	if (create && fsync_parent(dir) == -1) {
		snprintf(err, errlen, "fsync the directory holding %s: %s",
		    dir, strerror(errno));
		return NULL;
	}
	sp = xcalloc(1, sizeof(*sp));
	sp->dir = xstrdup(dir);
	sp->tmpfd = sp->queuefd = sp->lockfd = -1;
	if ((sp->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		goto fail;
	}
	if (create) {
		if ((sp->lockfd = openat(sp->dirfd, "lock", O_RDWR | O_CREAT |
		    O_CLOEXEC | O_NOFOLLOW, 0600)) == -1) {
			snprintf(err, errlen, "%s/lock: %s", dir,
			    strerror(errno));
			goto fail;
		}
		if (lock_op(sp->lockfd, F_OFD_SETLK, F_WRLCK) == -1) {
			snprintf(err, errlen, "%s: %s", dir,
			    errno == EAGAIN || errno == EACCES ? "spool is in "
			    "use by another process" : strerror(errno));
			goto fail;
		}
	}
	if ((sp->tmpfd = open_subdir(sp, "tmp", create, err, errlen)) == -1 ||
	    (sp->queuefd = open_subdir(sp, "queue", create, err, errlen)) == -1)
		goto fail;
	/* the journal first: it restores what recover() then checks */
	if (create && (sp->journal = journal_open(sp->dirfd, sp->tmpfd,
	    sp->queuefd, sp->dir, err, errlen)) == NULL)
		goto fail;
	if (create && recover(sp, err, errlen) == -1)
		goto fail;
	return sp;
 fail:
	spool_close(sp);
	return NULL;
}

int
spool_in_use(const struct spool *sp)
{
	int fd, busy = 0;

	if (sp->lockfd != -1)
		return 0;	/* we hold it ourselves */
	if ((fd = openat(sp->dirfd, "lock", O_RDONLY | O_CLOEXEC |
	    O_NOFOLLOW)) == -1)
		return 0;	/* never opened by a daemon */
	/* F_OFD_GETLK only tests: it never takes the lock, so it cannot
	 * make a starting daemon fail. */
	busy = lock_op(fd, F_OFD_GETLK, F_WRLCK);
	close(fd);
	return busy == 1;
}

struct spool *
spool_open(const char *dir, char *err, size_t errlen)
{
	return spool_open_flags(dir, 0, err, errlen);
}

/* ---------------------------------------------------------------- */
/* Writing a new message. */

struct spool_writer *
spool_writer_new(struct spool *sp, char *err, size_t errlen)
{
	struct spool_writer *w;

	(void)err;
	(void)errlen;
	w = xcalloc(1, sizeof(*w));
	w->sp = sp;
	w->fd = -1;
	/* Ids are the time and 32 random bits, so no lookup in queue/ or
	 * tmp/ here (that was three system calls on the loop per message):
	 * the commit creates tmp/ID.msg with O_EXCL and renames it without
	 * replacing, so an id that is taken fails that one commit (451, the
	 * client sends again) and never touches the other message. */
	queue_id_new(w->id);
	msg_name(w->msgname, sizeof(w->msgname), w->id);
	return w;
}

const char *
spool_writer_id(const struct spool_writer *w)
{
	return w->id;
}

off_t
spool_writer_size(const struct spool_writer *w)
{
	return w->size;
}

/* Create tmp/ID.msg (any thread). */
static int
writer_open(struct spool_writer *w)
{
	if (w->fd != -1)
		return 0;
	w->fd = openat(w->sp->tmpfd, w->msgname, O_RDWR | O_CREAT |
	    O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (w->fd == -1)
		return -1;
	w->created = 1;
	return 0;
}

/* The buffer to tmp/ID.msg (any thread). */
static int
writer_flush(struct spool_writer *w)
{
	if (w->error) {
		errno = w->error;
		return -1;
	}
	if (w->buflen > 0 && (writer_open(w) == -1 ||
	    write_full(w->fd, w->buf, w->buflen) == -1)) {
		w->error = errno;
		return -1;
	}
	w->buflen = 0;
	return 0;
}

/* Room in the buffer for len more bytes. */
static void
writer_room(struct spool_writer *w, size_t len)
{
	size_t cap;

	if (w->buflen + len <= w->bufcap)
		return;
	for (cap = w->bufcap ? w->bufcap : WBUF_MIN; cap < w->buflen + len;
	    cap *= 2)
		;
	w->buf = xrealloc(w->buf, cap);
	w->bufcap = cap;
}

int
spool_writer_write(struct spool_writer *w, const void *buf, size_t len)
{

	if (w->error) {
		errno = w->error;
		return -1;
	}
	if (w->buflen + len > WBUF_MAX) {
		/* A large message: this part to the page cache now. */
		if (writer_flush(w) == -1)
			return -1;
		if (len >= WBUF_MAX) {
			if (writer_open(w) == -1 ||
			    write_full(w->fd, buf, len) == -1) {
				w->error = errno;
				return -1;
			}
			w->size += (off_t)len;
			return 0;
		}
	}
	writer_room(w, len);
	memcpy(w->buf + w->buflen, buf, len);
	w->buflen += len;
	w->size += (off_t)len;
	return 0;
}

off_t
spool_writer_infile(const struct spool_writer *w)
{
	return w->size - (off_t)w->buflen;
}

ssize_t
spool_writer_read(struct spool_writer *w, off_t *off, void *buf, size_t len)
{
	off_t infile = w->size - (off_t)w->buflen;
	size_t boff;
	ssize_t n;

	if (*off < infile) {
		if ((off_t)len > infile - *off)
			len = (size_t)(infile - *off);
		while ((n = pread(w->fd, buf, len, *off)) == -1 &&
		    errno == EINTR)
			;
		if (n > 0)
			*off += n;
		return n == 0 ? -1 : n;		/* the file is never short */
	}
	boff = (size_t)(*off - infile);
	if (boff >= w->buflen)
		return 0;
	if (len > w->buflen - boff)
		len = w->buflen - boff;
	memcpy(buf, w->buf + boff, len);
	*off += (off_t)len;
	return (ssize_t)len;
}

/* A message already in tmp/ID.msg: a new file with buf, then the old
 * content, renamed over it (any thread). */
static int
writer_prepend_file(struct spool_writer *w, const void *buf, size_t len)
{
	char name[QUEUE_ID_LEN + 16], copy[64 * 1024];
	off_t off = 0, infile = w->size - (off_t)w->buflen;
	ssize_t n;
	int fd, saved;

	snprintf(name, sizeof(name), "%s.pre", w->msgname);
	if ((fd = openat(w->sp->tmpfd, name, O_RDWR | O_CREAT | O_EXCL |
	    O_CLOEXEC | O_NOFOLLOW, 0600)) == -1)
		return -1;
	if (write_full(fd, buf, len) == -1)
		goto fail;
	while (off < infile) {
		n = pread(w->fd, copy, (size_t)(infile - off) < sizeof(copy) ?
		    (size_t)(infile - off) : sizeof(copy), off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			goto fail;
		}
		if (write_full(fd, copy, (size_t)n) == -1)
			goto fail;
		off += n;
	}
	if (renameat(w->sp->tmpfd, name, w->sp->tmpfd, w->msgname) == -1)
		goto fail;
	close(w->fd);
	w->fd = fd;
	return 0;
fail:
	saved = errno;
	close(fd);
	unlinkat(w->sp->tmpfd, name, 0);
	errno = saved;
	return -1;
}

int
spool_writer_prepend(struct spool_writer *w, const void *buf, size_t len)
{
	if (w->error) {
		errno = w->error;
		return -1;
	}
	if (w->created) {
		if (writer_prepend_file(w, buf, len) == -1) {
			w->error = errno;
			return -1;
		}
		w->size += (off_t)len;
		return 0;
	}
	writer_room(w, len);
	memmove(w->buf + len, w->buf, w->buflen);
	memcpy(w->buf, buf, len);
	w->buflen += len;
	w->size += (off_t)len;
	return 0;
}

int
spool_writer_truncate(struct spool_writer *w)
{
	if (w->error) {
		errno = w->error;
		return -1;
	}
	if (w->created && (ftruncate(w->fd, 0) == -1 ||
	    lseek(w->fd, 0, SEEK_SET) == -1)) {
		w->error = errno;
		return -1;
	}
	w->buflen = 0;
	w->size = 0;
	return 0;
}

static void
writer_free(struct spool_writer *w)
{
	if (w->fd != -1)
		close(w->fd);
	free(w->buf);
	free(w);
}

void
spool_writer_abort(struct spool_writer *w)
{
	if (w == NULL)
		return;
	if (w->created)
		unlinkat(w->sp->tmpfd, w->msgname, 0);
	writer_free(w);
}

/* Write a file in tmp/ completely and fsync it.  -1 errno set. */
static int
write_tmp_file(int dfd, const char *name, int excl, const char *buf,
    size_t len)
{
	int fd, saved;

	if ((fd = openat(dfd, name, O_WRONLY | O_CREAT | O_CLOEXEC |
	    O_NOFOLLOW | (excl ? O_EXCL : O_TRUNC), 0600)) == -1)
		return -1;
	if (write_full(fd, buf, len) == -1 || fsync(fd) == -1) {
		saved = errno;
		close(fd);
		unlinkat(dfd, name, 0);
		errno = saved;
		return -1;
	}
	if (close_checked(fd) == -1) {
		saved = errno;
		unlinkat(dfd, name, 0);
		errno = saved;
		return -1;
	}
	return 0;
}

static int
env_check(const struct spool_env *env, char *err, size_t errlen)
{
	size_t i;

	if (env->sender == NULL) {
		snprintf(err, errlen, "envelope without sender");
		return -1;
	}
	if (env->nrcpt == 0) {
		snprintf(err, errlen, "envelope without recipients");
		return -1;
	}
	if (env->nrcpt > ENV_MAXRCPT) {
		snprintf(err, errlen, "more than %d recipients", ENV_MAXRCPT);
		return -1;
	}
	for (i = 0; i < env->nrcpt; i++)
		if (env->rcpts[i].addr == NULL ||
		    env->rcpts[i].addr[0] == '\0') {
			snprintf(err, errlen, "empty recipient address");
			return -1;
		}
	return 0;
}

/* ---------------------------------------------------------------- */
/* Operations: a commit, an envelope rewrite, a removal.  The file work
 * (op_work) may run on a pool thread and touches only the op; the
 * directory fsync is shared by every op that reached the queue since the
 * last one (group commit, see the top of this file). */

enum op_kind { OP_COMMIT, OP_SAVE, OP_REMOVE };

struct spool_op {
	struct spool_op		*next;
	struct spool		*sp;
	enum op_kind		 kind;
	char			 id[QUEUE_ID_LEN + 1];
	struct spool_writer	*w;		/* OP_COMMIT */
	char			*text;		/* envelope (+ trailer) */
	size_t			 len;
	char			 tmpname[64];	/* OP_SAVE */
	int			 durable;	/* OP_REMOVE: fsync queue/ */
	int			 journal;	/* OP_COMMIT: via the journal */
	const char		*step;		/* what failed */
	int			 error;		/* its errno, 0 = ok */
	int			 visible;	/* renamed into queue/ */
	spool_done_cb		*cb;
	void			*arg;
};

static struct spool_op *
op_new(struct spool *sp, enum op_kind kind, const char *id)
{
	struct spool_op *op = xcalloc(1, sizeof(*op));

	op->sp = sp;
	op->kind = kind;
	dr_strlcpy(op->id, id, sizeof(op->id));
	return op;
}

static void
op_free(struct spool_op *op)
{
	if (op->w != NULL)
		spool_writer_abort(op->w);
	free(op->text);
	free(op);
}

static int
op_fail(struct spool_op *op, const char *step)
{
	op->step = step;
	op->error = errno ? errno : EIO;
	return -1;
}

/* Commit, file part: data, envelope and trailer in tmp/ID.msg.  Through
 * the journal that is all (the group's journal write makes it durable,
 * then renames it).  Otherwise fsync and rename into queue/ here, and
 * the group's directory fsync follows. */
static int
commit_work(struct spool_op *op)
{
	struct spool_writer *w = op->w;
	struct spool *sp = op->sp;
	int fd;

	if (op->journal) {
		/* the buffer stays: the journal record is made from it */
		if (w->error) {
			errno = w->error;
			return op_fail(op, "write data");
		}
		if (writer_open(w) == -1)
			return op_fail(op, "create queue file");
		if (write_full(w->fd, w->buf, w->buflen) == -1 ||
		    write_full(w->fd, op->text, op->len) == -1)
			return op_fail(op, "write queue file");
		fd = w->fd;
		w->fd = -1;
		if (close_checked(fd) == -1)
			return op_fail(op, "close queue file");
		return 0;
	}
	if (writer_flush(w) == -1)
		return op_fail(op, "write data");
	if (writer_open(w) == -1)
		return op_fail(op, "create queue file");
	if (write_full(w->fd, op->text, op->len) == -1)
		return op_fail(op, "write envelope");
	if (fsync(w->fd) == -1)
		return op_fail(op, "fsync queue file");
	fd = w->fd;
	w->fd = -1;
	if (close_checked(fd) == -1)
		return op_fail(op, "close queue file");
	if (rename_noreplace(sp->tmpfd, w->msgname, sp->queuefd,
	    w->msgname) == -1)
		return op_fail(op, "rename into queue/");
	op->visible = 1;
	writer_free(w);
	op->w = NULL;
	return 0;
}

/* Envelope rewrite, file part: tmp/ID.env.N, fsync, rename over
 * queue/ID.env.  Never resurrects a removed message. */
static int
save_work(struct spool_op *op)
{
	struct spool *sp = op->sp;
	char msgname[QUEUE_ID_LEN + 8], envname[QUEUE_ID_LEN + 8];

	msg_name(msgname, sizeof(msgname), op->id);
	env_name(envname, sizeof(envname), op->id);
	if (!exists_at(sp->queuefd, msgname)) {
		errno = ENOENT;
		return op_fail(op, "not in the queue");
	}
	if (write_tmp_file(sp->tmpfd, op->tmpname, 1, op->text,
	    op->len) == -1)
		return op_fail(op, "write envelope");
	if (renameat(sp->tmpfd, op->tmpname, sp->queuefd, envname) == -1) {
		op_fail(op, "rename envelope into queue/");
		unlinkat(sp->tmpfd, op->tmpname, 0);
		return -1;
	}
	return 0;
}

/* Removal: the data (with its embedded envelope) first, so the message
 * is gone at once; then a rewritten envelope, if any. */
static int
remove_work(struct spool_op *op)
{
	struct spool *sp = op->sp;
	char name[QUEUE_ID_LEN + 8];

	msg_name(name, sizeof(name), op->id);
	/* no daemon (no journal open): its next replay must know */
	if (op->durable && sp->journal == NULL &&
	    exists_at(sp->queuefd, name) &&
	    journal_deleted_add(sp->dirfd, op->id) == -1)
		return op_fail(op, "record the delete in journal/deleted");
	if (unlinkat(sp->queuefd, name, 0) == -1)
		return op_fail(op, "unlink");
	if (sp->journal != NULL &&
	    journal_gone(sp->journal, op->id, op->durable) == -1) {
		if (op->durable)
			return op_fail(op, "record the delete in the journal");
		log_warn("%s: cannot record the removal in the journal",
		    op->id);
	}
	env_name(name, sizeof(name), op->id);
	if (unlinkat(sp->queuefd, name, 0) == -1 && errno != ENOENT)
		return op_fail(op, "unlink envelope");
	if (op->durable && fsync(sp->queuefd) == -1)
		return op_fail(op, "fsync queue/");
	return 0;
}

static void
op_work(void *arg)
{
	struct spool_op *op = arg;

	errno = 0;
	switch (op->kind) {
	case OP_COMMIT:
		commit_work(op);
		break;
	case OP_SAVE:
		save_work(op);
		break;
	case OP_REMOVE:
		remove_work(op);
		break;
	}
}

/* After a failed directory fsync: take back what became visible (the
 * client gets 451 and sends again). */
static void
op_undo(struct spool_op *op)
{
	char name[QUEUE_ID_LEN + 8];

	if (op->kind != OP_COMMIT || !op->visible)
		return;
	msg_name(name, sizeof(name), op->id);
	unlinkat(op->sp->queuefd, name, 0);
	op->visible = 0;
}

/* Report and free (loop thread). */
static void
op_finish(struct spool_op *op)
{
	char err[512];

	if (op->error) {
		snprintf(err, sizeof(err), "%s: %s", op->step,
		    strerror(op->error));
		if (op->cb != NULL)
			op->cb(-1, op->error, err, op->arg);
	} else if (op->cb != NULL)
		op->cb(0, 0, NULL, op->arg);
	op_free(op);
}

static void dirsync_start(struct spool *sp);
static void dirsync_maybe(struct spool *sp);

struct dirsync {
	struct spool	*sp;
	struct spool_op	*ops;
};

/* Journaled commits of a group: one journal write and one fdatasync for
 * all of them, then each file is renamed into queue/ (pool thread). */
static void
group_journal(struct spool *sp, struct spool_op *ops, size_t n)
{
	struct journal_msg *m = xcalloc(n, sizeof(*m));
	struct spool_op *op;
	const char *step = NULL;
	size_t i = 0;
	int error = 0;

	for (op = ops; op != NULL; op = op->next)
		if (op->journal) {
			m[i].id = op->id;
			m[i].data = op->w->buf;
			m[i].datalen = op->w->buflen;
			m[i].text = op->text;
			m[i++].textlen = op->len;
		}
	if (journal_append(sp->journal, m, n) == -1) {
		step = "write journal";
		error = errno;
	} else {
		if (journal_sync(sp->journal) == -1) {
			step = "fdatasync journal";
			error = errno;
		}
		for (op = ops; op != NULL; op = op->next) {
			if (!op->journal)
				continue;
			if (!error && rename_noreplace(sp->tmpfd,
			    op->w->msgname, sp->queuefd, op->w->msgname) == 0) {
				op->visible = 1;
				writer_free(op->w);
				op->w = NULL;
				continue;
			}
			if (!error)
				op_fail(op, "rename into queue/");
			/* a replay must not bring it back */
			journal_gone(sp->journal, op->id, 0);
		}
		journal_done(sp->journal);
	}
	free(m);
	if (error)
		for (op = ops; op != NULL; op = op->next)
			if (op->journal) {
				op->step = step;
				op->error = error;
			}
}

/* The group's durability work (pool thread): the journal for journaled
 * commits, one fsync of queue/ for the others (big messages, envelope
 * rewrites). */
static void
dirsync_work(void *arg)
{
	struct dirsync *ds = arg;
	struct spool_op *op;
	size_t nj = 0, nd = 0;
	int error;

	for (op = ds->ops; op != NULL; op = op->next) {
		if (op->journal)
			nj++;
		else
			nd++;
	}
	if (nj > 0)
		group_journal(ds->sp, ds->ops, nj);
	if (nd > 0 && fsync(ds->sp->queuefd) == -1) {
		error = errno;
		for (op = ds->ops; op != NULL; op = op->next)
			if (!op->journal) {
				op->step = "fsync queue/";
				op->error = error;
			}
	}
}

static void
dirsync_done(void *arg)
{
	struct dirsync *ds = arg;
	struct spool *sp = ds->sp;
	struct spool_op *op, *next;

	tl.syncing = 0;
	for (op = ds->ops; op != NULL; op = next) {
		next = op->next;
		if (op->error)
			op_undo(op);
		op_finish(op);
	}
	free(ds);
	dirsync_maybe(sp);
}

/* One fsync of queue/ for every op that waits for it now. */
static void
dirsync_start(struct spool *sp)
{
	struct dirsync *ds = xcalloc(1, sizeof(*ds));

	ds->sp = sp;
	ds->ops = tl.group;
	tl.group = NULL;
	tl.group_tail = NULL;
	tl.ngroup = 0;
	tl.syncing = 1;
	workq_submit(tl.wq, tl.port, dirsync_work, dirsync_done, ds);
}

/* The file part is done (loop thread): join the group, or finish. */
static void
op_done(void *arg)
{
	struct spool_op *op = arg;
	struct spool *sp = op->sp;

	if (op->kind != OP_REMOVE)
		tl.inflight--;
	if (op->error || op->kind == OP_REMOVE) {
		op_finish(op);
		dirsync_maybe(sp);
		return;
	}
	op->next = NULL;
	if (tl.group_tail != NULL)
		tl.group_tail->next = op;
	else {
		tl.group = op;
		tl.group_since = mono_now();
	}
	tl.group_tail = op;
	tl.ngroup++;
	dirsync_maybe(sp);
}

/*
 * Start the group's directory fsync when no other commit of this loop is
 * still in its file part (they would join in a moment: one fsync for all
 * of them), or the group is large, or its first member has waited
 * GROUP_WAIT already; never while one runs (the next group forms then).
 */
static void
dirsync_maybe(struct spool *sp)
{
	if (tl.syncing || tl.group == NULL)
		return;
	if (tl.inflight > 0 && tl.ngroup < GROUP_MAX &&
	    mono_now() - tl.group_since < GROUP_WAIT)
		return;
	dirsync_start(sp);
}

/* Run op now (no pool) or hand it to the pool. */
static int
op_run(struct spool_op *op, char *err, size_t errlen)
{
	struct spool *sp = op->sp;
	int rc;

	if (tl.sp == sp && tl.wq != NULL && op->cb != NULL) {
		/* a message still in memory goes through the journal */
		op->journal = op->kind == OP_COMMIT && sp->journal != NULL &&
		    !op->w->created && !op->w->error &&
		    op->w->buflen + op->len + 64 <= JOURNAL_REC_MAX;
		if (op->kind != OP_REMOVE)
			tl.inflight++;
		workq_submit(tl.wq, tl.port, op_work, op_done, op);
		return 0;
	}
	op_work(op);
	if (!op->error && op->kind != OP_REMOVE &&
	    fsync(sp->queuefd) == -1) {
		op_fail(op, "fsync queue/");
		op_undo(op);
	}
	if (op->cb != NULL) {
		/* no pool (tools, tests, shutdown): completes right here */
		op_finish(op);
		return 0;
	}
	rc = op->error ? -1 : 0;
	if (rc == -1)
		snprintf(err, errlen, "%s: %s", op->step, strerror(op->error));
	op->cb = NULL;
	op_free(op);
	return rc;
}

void
spool_set_workq(struct spool *sp, struct workq *wq, struct workq_port *port)
{
	tl.sp = sp;
	tl.wq = port != NULL ? wq : NULL;
	tl.port = port;
}

/* Check and complete the envelope, format it with the trailer. */
static struct spool_op *
commit_prepare(struct spool_writer *w, struct spool_env *env, char *err,
    size_t errlen)
{
	struct spool_op *op;
	char trailer[TRAILER_LEN + 1];
	size_t len;

	if (env_check(env, err, errlen) == -1) {
		spool_writer_abort(w);
		return NULL;
	}
	dr_strlcpy(env->id, w->id, sizeof(env->id));
	env->size = w->size;
	if (env->created == 0) {
		struct timespec now;

		clock_gettime(CLOCK_REALTIME, &now);
		env->created = now.tv_sec;
		env->created_usec = now.tv_nsec / 1000;
	}
	op = op_new(w->sp, OP_COMMIT, w->id);
	op->w = w;
	op->text = spool_env_format(env, &len);
	if (len > ENV_MAXFILE) {
		snprintf(err, errlen, "envelope larger than %d bytes",
		    ENV_MAXFILE);
		op_free(op);
		return NULL;
	}
	snprintf(trailer, sizeof(trailer), TRAILER_TAG "%016llx\n",
	    (unsigned long long)w->size);
	op->text = xrealloc(op->text, len + TRAILER_LEN + 1);
	memcpy(op->text + len, trailer, TRAILER_LEN + 1);
	op->len = len + TRAILER_LEN;
	return op;
}

int
spool_writer_commit(struct spool_writer *w, struct spool_env *env,
    char *err, size_t errlen)
{
	struct spool_op *op;
	char id[QUEUE_ID_LEN + 1];

	dr_strlcpy(id, w->id, sizeof(id));
	if ((op = commit_prepare(w, env, err, errlen)) == NULL)
		return -1;
	if (op_run(op, err, errlen) == -1) {
		log_warnx("%s: spool commit failed: %s", id, err);
		return -1;
	}
	log_debug("%s: committed to spool, size=%lld, nrcpt=%zu", id,
	    (long long)env->size, env->nrcpt);
	return 0;
}

int
spool_writer_commit_async(struct spool_writer *w, struct spool_env *env,
    spool_done_cb *cb, void *arg, char *err, size_t errlen)
{
	struct spool_op *op;

	if ((op = commit_prepare(w, env, err, errlen)) == NULL)
		return -1;
	op->cb = cb;
	op->arg = arg;
	return op_run(op, err, errlen);
}

/* ---------------------------------------------------------------- */
/* Committed messages. */

int
spool_env_load(struct spool *sp, const char *id, struct spool_env **out,
    char *err, size_t errlen)
{
	*out = NULL;
	if (id == NULL || !queue_id_valid(id)) {
		snprintf(err, errlen, "invalid queue id");
		errno = EINVAL;
		return -1;
	}
	return env_load(sp, id, out, err, errlen) == 0 ? 0 : -1;
}

static struct spool_op *
save_prepare(struct spool *sp, const struct spool_env *env, char *err,
    size_t errlen)
{
	struct spool_op *op;

	if (!queue_id_valid(env->id)) {
		snprintf(err, errlen, "invalid queue id");
		return NULL;
	}
	if (env_check(env, err, errlen) == -1)
		return NULL;
	op = op_new(sp, OP_SAVE, env->id);
	snprintf(op->tmpname, sizeof(op->tmpname), "%s.env.%ld.%u", env->id,
	    (long)getpid(), sp->serial++);
	op->text = spool_env_format(env, &op->len);
	if (op->len > ENV_MAXFILE) {
		snprintf(err, errlen, "envelope larger than %d bytes",
		    ENV_MAXFILE);
		op_free(op);
		return NULL;
	}
	return op;
}

int
spool_env_save(struct spool *sp, const struct spool_env *env,
    char *err, size_t errlen)
{
	struct spool_op *op;

	if ((op = save_prepare(sp, env, err, errlen)) == NULL)
		return -1;
	return op_run(op, err, errlen);
}

int
spool_env_save_async(struct spool *sp, const struct spool_env *env,
    spool_done_cb *cb, void *arg, char *err, size_t errlen)
{
	struct spool_op *op;

	if ((op = save_prepare(sp, env, err, errlen)) == NULL)
		return -1;
	op->cb = cb;
	op->arg = arg;
	return op_run(op, err, errlen);
}

int
spool_data_open(struct spool *sp, const char *id)
{
	char name[QUEUE_ID_LEN + 8];

	if (id == NULL || !queue_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	msg_name(name, sizeof(name), id);
	return openat(sp->queuefd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
}

int
spool_remove(struct spool *sp, const char *id)
{
	struct spool_op *op;

	if (id == NULL || !queue_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	op = op_new(sp, OP_REMOVE, id);
	op->durable = 1;
	op_work(op);
	if (op->error) {
		errno = op->error;
		op_free(op);
		return -1;
	}
	op_free(op);
	log_debug("%s: removed from spool", id);
	return 0;
}

int
spool_remove_async(struct spool *sp, const char *id, spool_done_cb *cb,
    void *arg)
{
	struct spool_op *op;
	char err[256];

	if (id == NULL || !queue_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	op = op_new(sp, OP_REMOVE, id);
	op->cb = cb;
	op->arg = arg;
	if (op_run(op, err, sizeof(err)) == -1) {
		errno = EIO;
		return -1;
	}
	return 0;
}

char **
spool_list_ids(struct spool *sp, size_t *np)
{
	char **names, **ids, id[QUEUE_ID_LEN + 1];
	const char *ext;
	size_t i, n, k = 0;

	*np = 0;
	if ((names = dir_names(sp->queuefd, &n)) == NULL)
		return NULL;
	ids = xcalloc(n + 1, sizeof(char *));
	for (i = 0; i < n; i++)
		if ((ext = split_name(names[i], id)) != NULL &&
		    strcmp(ext, "msg") == 0)
			ids[k++] = xstrdup(id);
	spool_ids_free(names, n);
	*np = k;
	return ids;	/* sorted, since names were */
}

void
spool_ids_free(char **ids, size_t n)
{
	size_t i;

	if (ids == NULL)
		return;
	for (i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

void
spool_journal_set_max(struct spool *sp, off_t max)
{
	if (sp->journal != NULL)
		journal_set_max(sp->journal, max);
}

unsigned long
spool_journal_checkpoints(struct spool *sp)
{
	return sp->journal != NULL ? journal_checkpoints(sp->journal) : 0;
}
