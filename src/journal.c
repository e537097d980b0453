/*
 * journal.c - the spool's write-ahead journal.
 *
 * A new message is made durable by a record in spool_dir/journal/log,
 * not by an fsync of its own file: the group commit (spool.c) appends
 * the records of every message of the group in one write and makes them
 * durable with one fdatasync, then renames the messages' files (written
 * to tmp/ without fsync) into queue/.  Most messages are delivered and
 * removed within seconds, so their files never need an fsync at all.
 *
 * The file, all numbers little-endian:
 *   record = header (40 bytes) + payload
 *     0  "DRJ1"
 *     4  kind    u32   0 start, 1 message, 2 gone
 *     8  gen     u64   generation: the start record's, in every record
 *    16  id      u64   queue id (16 hex digits) as a number; 0 in start
 *    24  len     u64   payload bytes (message: the whole ID.msg file)
 *    32  crc     u32   CRC-32 of bytes 0-31 and the payload
 *    36  zero    u32
 *   The start record is at offset 0; the records of its generation
 *   follow.  Replay reads them in order and stops at the first one that
 *   is short, has another generation or a bad CRC: that is where the
 *   last write ended (a record is complete or it is not there).
 *
 * "gone" is written when a message leaves the queue (delivered, deleted)
 * without an fsync: a crash that loses it at worst delivers the message
 * again, which SMTP allows (RFC 5321 §6.1).  The operator's delete makes
 * it durable; with no daemon running, the delete goes to journal/deleted
 * (one id per line, fsync'ed) instead.
 *
 * Checkpoint: once the journal would grow beyond its limit, the appender
 * waits until no group is between its append and its rename, fsyncs the
 * queue/ID.msg file of every message the journal still holds and then
 * queue/, and starts a new generation at offset 0.  The start record is
 * not synced by itself: the next group's fdatasync carries it with its
 * own records, and until then the old generation (whose live messages
 * are on disk by now) is what a replay would read.  The file is reused
 * from the start, and it grows ahead of the records by writing zeros a
 * megabyte at a time: a record then overwrites blocks that exist, and its
 * fdatasync flushes data only, without a file-system journal commit for
 * a new size or new blocks (about half the latency on ext4).  Zeros end
 * a replay like any other bad record.
 *
 * Replay (journal_open, at start with the spool lock held): every
 * message record not followed by its "gone" is compared with
 * queue/ID.msg; a missing or different file is written again from the
 * record (tmp/, fsync, rename); every such file is then fsync'ed (it may
 * be in the page cache only, after kill -9), queue/ is fsync'ed and a new
 * generation starts.
 */

#include <sys/stat.h>
#include <sys/uio.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "journal.h"
#include "log.h"
#include "util.h"

#define J_MAGIC		"DRJ1"
#define J_HDR		40
#define J_IOV		256		/* iovecs per pwritev */
#define J_CHUNK		(1024 * 1024)	/* the file grows by this much */

enum { J_START = 0, J_MSG = 1, J_GONE = 2 };

/* A set of queue ids (open addressing, linear probing; 0 is empty:
 * queue ids start with the time, never 0). */
struct idset {
	uint64_t	*v;
	size_t		 cap;	/* power of two, or 0 */
	size_t		 n;
};

struct journal {
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	int		 fd;
	int		 queuefd;
	char		*path;		/* for messages */
	uint64_t	 gen;
	off_t		 off;		/* where the next record goes */
	off_t		 alloc;		/* bytes of the file written already */
	off_t		 max;
	off_t		 retry_at;	/* after a failed checkpoint */
	int		 busy;		/* groups between append and done */
	int		 checkpointing;
	unsigned long	 checkpoints;
	struct idset	 live;		/* messages of this generation */
};

static size_t
idset_slot(const struct idset *s, uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	return (size_t)k & (s->cap - 1);
}

static void idset_add(struct idset *s, uint64_t k);

static void
idset_grow(struct idset *s)
{
	struct idset old = *s;
	size_t i;

	s->cap = old.cap ? old.cap * 2 : 64;
	s->v = xcalloc(s->cap, sizeof(uint64_t));
	s->n = 0;
	for (i = 0; i < old.cap; i++)
		if (old.v[i] != 0)
			idset_add(s, old.v[i]);
	free(old.v);
}

static void
idset_add(struct idset *s, uint64_t k)
{
	size_t i;

	if ((s->n + 1) * 2 > s->cap)
		idset_grow(s);
	for (i = idset_slot(s, k); s->v[i] != 0; i = (i + 1) & (s->cap - 1))
		if (s->v[i] == k)
			return;
	s->v[i] = k;
	s->n++;
}

static int
idset_has(const struct idset *s, uint64_t k)
{
	size_t i;

	if (s->cap == 0)
		return 0;
	for (i = idset_slot(s, k); s->v[i] != 0; i = (i + 1) & (s->cap - 1))
		if (s->v[i] == k)
			return 1;
	return 0;
}

/* Remove k; 1 if it was there.  Backward-shift deletion keeps every
 * probe chain unbroken without tombstones. */
static int
idset_del(struct idset *s, uint64_t k)
{
	size_t i, j, h, mask = s->cap - 1;

	if (s->cap == 0)
		return 0;
	for (i = idset_slot(s, k); s->v[i] != k; i = (i + 1) & mask)
		if (s->v[i] == 0)
			return 0;
	for (j = (i + 1) & mask; s->v[j] != 0; j = (j + 1) & mask) {
		h = idset_slot(s, s->v[j]);
		/* v[j] may move to i if its home is not in (i, j] */
		if ((j > i && (h <= i || h > j)) ||
		    (j < i && (h <= i && h > j))) {
			s->v[i] = s->v[j];
			i = j;
		}
	}
	s->v[i] = 0;
	s->n--;
	return 1;
}

static void
idset_clear(struct idset *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

static uint64_t
id_num(const char *id)
{
	return strtoull(id, NULL, 16);
}

static void
id_str(uint64_t k, char buf[QUEUE_ID_LEN + 1])
{
	snprintf(buf, QUEUE_ID_LEN + 1, "%016" PRIX64, k);
}

static void
put32(unsigned char *p, uint32_t v)
{
	int i;

	for (i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void
put64(unsigned char *p, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t
get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static uint64_t
get64(const unsigned char *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* Fill a record header; the CRC covers it and the payload pieces. */
static void
rec_header(unsigned char h[J_HDR], uint32_t kind, uint64_t gen, uint64_t id,
    const void *a, size_t alen, const void *b, size_t blen)
{
	uLong crc;

	memset(h, 0, J_HDR);
	memcpy(h, J_MAGIC, 4);
	put32(h + 4, kind);
	put64(h + 8, gen);
	put64(h + 16, id);
	put64(h + 24, (uint64_t)(alen + blen));
	crc = crc32_z(0L, h, 32);
	if (alen > 0)
		crc = crc32_z(crc, a, alen);
	if (blen > 0)
		crc = crc32_z(crc, b, blen);
	put32(h + 32, (uint32_t)crc);
}

static int
pwrite_full(int fd, const void *buf, size_t len, off_t off)
{
	const unsigned char *p = buf;
	ssize_t n;

	while (len > 0) {
		if ((n = pwrite(fd, p, len, off)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/* pwritev() all of iov (which it may modify) at off. */
static int
pwritev_full(int fd, struct iovec *iov, int n, off_t off)
{
	ssize_t w;
	int k;

	while (n > 0) {
		k = n < J_IOV ? n : J_IOV;
		if ((w = pwritev(fd, iov, k, off)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		off += w;
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/* The start record of a new generation, at offset 0. */
static int
start_generation(struct journal *j, uint64_t gen)
{
	unsigned char h[J_HDR];

	rec_header(h, J_START, gen, 0, NULL, 0, NULL, 0);
	if (pwrite_full(j->fd, h, J_HDR, 0) == -1)
		return -1;
	j->gen = gen;
	j->off = J_HDR;
	idset_clear(&j->live);
	return 0;
}

/* ---------------------------------------------------------------- */
/* Replay. */

struct jrec {
	uint64_t	 id;
	off_t		 off;		/* of the payload */
	size_t		 len;
	uint32_t	 crc;		/* of the payload alone */
};

/* Read one record at off: 1 valid (kind, id, payload in *pay), 0 the
 * end of the generation, -1 I/O error. */
static int
read_record(int fd, off_t off, off_t size, uint64_t gen, uint32_t *kind,
    uint64_t *id, unsigned char **pay, size_t *len)
{
	unsigned char h[J_HDR];
	uint64_t n;
	uLong crc;

	*pay = NULL;
	if (size - off < J_HDR)
		return 0;
	if (pread_full(fd, h, J_HDR, off) == -1)
		return -1;
	n = get64(h + 24);
	if (memcmp(h, J_MAGIC, 4) != 0 || get64(h + 8) != gen ||
	    n > JOURNAL_REC_MAX || (off_t)n > size - off - J_HDR)
		return 0;
	*kind = get32(h + 4);
	*id = get64(h + 16);
	*len = (size_t)n;
	*pay = xmalloc(n > 0 ? n : 1);
	if (pread_full(fd, *pay, n, off + J_HDR) == -1) {
		free(*pay);
		*pay = NULL;
		return -1;
	}
	crc = crc32_z(0L, h, 32);
	crc = crc32_z(crc, *pay, n);
	if ((uint32_t)crc != get32(h + 32)) {
		free(*pay);
		*pay = NULL;
		return 0;
	}
	return 1;
}

/* Ids the operator deleted while no daemon ran. */
static void
read_deleted(int jdfd, struct idset *gone)
{
	char line[64];
	FILE *f;
	int fd;

	if ((fd = openat(jdfd, "deleted", O_RDONLY | O_CLOEXEC |
	    O_NOFOLLOW)) == -1)
		return;
	if ((f = fdopen(fd, "r")) == NULL) {
		close(fd);
		return;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (queue_id_valid(line))
			idset_add(gone, id_num(line));
	}
	fclose(f);
}

/* CRC of a file's content if it has exactly len bytes; -1 otherwise. */
static int64_t
file_crc(int dfd, const char *name, size_t len)
{
	unsigned char buf[65536];
	struct stat st;
	uLong crc = crc32_z(0L, Z_NULL, 0);
	ssize_t n;
	int fd;

	if ((fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1)
		return -1;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    (size_t)st.st_size != len) {
		close(fd);
		return -1;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		crc = crc32_z(crc, buf, (size_t)n);
	close(fd);
	return n == 0 ? (int64_t)(uint32_t)crc : -1;
}

static int
fsync_at(int dfd, const char *name)
{
	int fd, r;

	if ((fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1)
		return -1;
	r = fsync(fd);
	if (close(fd) == -1 && r == 0 && errno != EINTR)
		r = -1;
	return r;
}

/* Make queue/ID.msg hold exactly pay, durably. */
static int
restore(int tmpfd, int queuefd, const char *id, const unsigned char *pay,
    size_t len)
{
	char name[QUEUE_ID_LEN + 16], to[QUEUE_ID_LEN + 8];
	int fd, saved;

	snprintf(name, sizeof(name), "%s.msg.journal", id);
	snprintf(to, sizeof(to), "%s.msg", id);
	/* a replay killed half-way left this file behind: say so, as the
	 * recovery of tmp/ does for every other partial file */
	if (unlinkat(tmpfd, name, 0) == 0)
		log_info("recovery: removed partial file tmp/%s", name);
	if ((fd = openat(tmpfd, name, O_WRONLY | O_CREAT | O_EXCL |
	    O_CLOEXEC | O_NOFOLLOW, 0600)) == -1)
		return -1;
	if (pwrite_full(fd, pay, len, 0) == -1 || fsync(fd) == -1) {
		saved = errno;
		close(fd);
		unlinkat(tmpfd, name, 0);
		errno = saved;
		return -1;
	}
	if (close(fd) == -1 && errno != EINTR)
		return -1;
	return renameat(tmpfd, name, queuefd, to);
}

static int
replay(struct journal *j, int jdfd, int tmpfd, char *err, size_t errlen)
{
	struct jrec *recs = NULL;
	struct idset gone = { NULL, 0, 0 }, live = { NULL, 0, 0 };
	struct idset seen = { NULL, 0, 0 };
	struct stat st;
	unsigned char h[J_HDR], *pay;
	char id[QUEUE_ID_LEN + 1], name[QUEUE_ID_LEN + 8];
	uint64_t gen, rid;
	uint32_t kind;
	size_t n = 0, cap = 0, len, i, restored = 0, kept = 0;
	off_t off;
	int r, rc = -1;

	if (fstat(j->fd, &st) == -1) {
		snprintf(err, errlen, "%s: %s", j->path, strerror(errno));
		return -1;
	}
	/* the start record: its generation is the one to read (none, or
	 * a torn one: nothing to replay) */
	gen = 0;
	if (pread_full(j->fd, h, J_HDR, 0) == 0 &&
	    memcmp(h, J_MAGIC, 4) == 0 && get32(h + 4) == J_START) {
		r = read_record(j->fd, 0, st.st_size, get64(h + 8), &kind,
		    &rid, &pay, &len);
		if (r == -1) {
			snprintf(err, errlen, "%s: %s", j->path,
			    strerror(errno));
			return -1;
		}
		if (r == 1)
			gen = get64(h + 8);
		free(pay);
	}
	for (off = J_HDR; gen != 0; off += J_HDR + (off_t)len) {
		r = read_record(j->fd, off, st.st_size, gen, &kind, &rid, &pay,
		    &len);
		if (r == -1) {
			snprintf(err, errlen, "%s: %s", j->path,
			    strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		/* in order: a message gone and then committed again under
		 * the same id (after a restart) is live again */
		if (kind == J_GONE)
			idset_del(&live, rid);
		else if (kind == J_MSG) {
			idset_add(&live, rid);
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				recs = xrealloc(recs, cap * sizeof(*recs));
			}
			recs[n].id = rid;
			recs[n].off = off + J_HDR;
			recs[n].len = len;
			recs[n].crc = (uint32_t)crc32_z(crc32_z(0L, Z_NULL, 0),
			    pay, len);
			n++;
		}
		free(pay);
	}
	/* the operator's deletes while no daemon ran come after all that */
	read_deleted(jdfd, &gone);
	for (i = 0; i < gone.cap; i++)
		if (gone.v[i] != 0)
			idset_del(&live, gone.v[i]);
	/* the last record of each live id is its content */
	for (i = n; i-- > 0; ) {
		if (!idset_has(&live, recs[i].id) ||
		    idset_has(&seen, recs[i].id))
			continue;
		idset_add(&seen, recs[i].id);
		id_str(recs[i].id, id);
		if (!queue_id_valid(id))
			continue;
		snprintf(name, sizeof(name), "%s.msg", id);
		if (file_crc(j->queuefd, name, recs[i].len) ==
		    (int64_t)recs[i].crc) {
			/* there, maybe in the page cache only */
			if (fsync_at(j->queuefd, name) == -1) {
				snprintf(err, errlen, "fsync queue/%s: %s",
				    name, strerror(errno));
				goto out;
			}
			kept++;
			continue;
		}
		pay = xmalloc(recs[i].len > 0 ? recs[i].len : 1);
		if (pread_full(j->fd, pay, recs[i].len, recs[i].off) != 0 ||
		    restore(tmpfd, j->queuefd, id, pay, recs[i].len) == -1) {
			snprintf(err, errlen, "journal replay: %s: %s", id,
			    strerror(errno ? errno : EIO));
			free(pay);
			goto out;
		}
		free(pay);
		log_warnx("%s: recovery: queue/%s restored from the journal",
		    id, name);
		restored++;
	}
	if (fsync(j->queuefd) == -1) {
		snprintf(err, errlen, "fsync queue/: %s", strerror(errno));
		goto out;
	}
	if (n > 0)
		log_info("spool: journal replayed: %zu message(s) in it, %zu "
		    "still queued, %zu restored", n, kept + restored,
		    restored);
	/* a new generation: strictly larger, also after a torn start */
	if (gen == 0)
		gen = (uint64_t)time(NULL) << 20;
	if (start_generation(j, gen + 1) == -1 || fdatasync(j->fd) == -1) {
		snprintf(err, errlen, "%s: %s", j->path, strerror(errno));
		goto out;
	}
	/* what deleted/ said is settled now (a stale copy is harmless) */
	unlinkat(jdfd, "deleted", 0);
	rc = 0;
 out:
	free(recs);
	idset_clear(&gone);
	idset_clear(&live);
	idset_clear(&seen);
	return rc;
}

struct journal *
journal_open(int spooldirfd, int tmpfd, int queuefd, const char *spooldir,
    char *err, size_t errlen)
{
	struct journal *j;
	int jdfd;

	if (mkdirat(spooldirfd, "journal", 0700) == 0) {
		if (fsync(spooldirfd) == -1) {
			snprintf(err, errlen, "fsync %s: %s", spooldir,
			    strerror(errno));
			return NULL;
		}
	} else if (errno != EEXIST) {
		snprintf(err, errlen, "mkdir %s/journal: %s", spooldir,
		    strerror(errno));
		return NULL;
	}
	if ((jdfd = openat(spooldirfd, "journal", O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC | O_NOFOLLOW)) == -1) {
		snprintf(err, errlen, "%s/journal: %s", spooldir,
		    strerror(errno));
		return NULL;
	}
	j = xcalloc(1, sizeof(*j));
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->cv, NULL);
	j->queuefd = queuefd;
	j->max = JOURNAL_MAX;
	j->path = xasprintf("%s/journal/log", spooldir);
	if ((j->fd = openat(jdfd, "log", O_RDWR | O_CREAT | O_CLOEXEC |
	    O_NOFOLLOW, 0600)) == -1 || fsync(jdfd) == -1) {
		snprintf(err, errlen, "%s: %s", j->path, strerror(errno));
		goto fail;
	}
	if (replay(j, jdfd, tmpfd, err, errlen) == -1)
		goto fail;
	{
		struct stat st;

		j->alloc = fstat(j->fd, &st) == 0 ? st.st_size : 0;
	}
	close(jdfd);
	return j;
 fail:
	close(jdfd);
	journal_close(j);
	return NULL;
}

void
journal_close(struct journal *j)
{
	if (j == NULL)
		return;
	if (j->fd != -1)
		close(j->fd);
	idset_clear(&j->live);
	pthread_cond_destroy(&j->cv);
	pthread_mutex_destroy(&j->mu);
	free(j->path);
	free(j);
}

/* ---------------------------------------------------------------- */
/* Appending. */

/* With j->mu held: make every live message's file durable and start a
 * new generation.  On failure the journal simply goes on growing. */
static void
checkpoint_locked(struct journal *j)
{
	char id[QUEUE_ID_LEN + 1], name[QUEUE_ID_LEN + 8];
	size_t i;

	j->checkpointing = 1;
	while (j->busy > 0)
		pthread_cond_wait(&j->cv, &j->mu);
	for (i = 0; i < j->live.cap; i++) {
		if (j->live.v[i] == 0)
			continue;
		id_str(j->live.v[i], id);
		snprintf(name, sizeof(name), "%s.msg", id);
		if (fsync_at(j->queuefd, name) == -1 && errno != ENOENT)
			goto fail;
	}
	if (fsync(j->queuefd) == -1 || start_generation(j, j->gen + 1) == -1)
		goto fail;
	j->checkpoints++;
	j->retry_at = 0;
	goto out;
 fail:
	log_warn("%s: checkpoint failed, the journal goes on growing",
	    j->path);
	j->retry_at = j->off + j->max;
 out:
	j->checkpointing = 0;
	pthread_cond_broadcast(&j->cv);
}

/* With j->mu held: write zeros up to past end (a failure, such as a full
 * disk, is left to the records' own write to report). */
static void
extend_locked(struct journal *j, off_t end)
{
	static const unsigned char zero[65536];
	off_t to = (end + J_CHUNK - 1) / J_CHUNK * J_CHUNK, at;
	size_t k;

	for (at = j->alloc; at < to; at += (off_t)k) {
		k = (size_t)(to - at) < sizeof(zero) ? (size_t)(to - at) :
		    sizeof(zero);
		if (pwrite_full(j->fd, zero, k, at) == -1)
			return;
		j->alloc = at + (off_t)k;
	}
}

int
journal_append(struct journal *j, const struct journal_msg *m, size_t n)
{
	unsigned char *hdrs;
	struct iovec *iov;
	size_t i, total = 0;
	int k = 0, rc = -1, saved;

	hdrs = xcalloc(n, J_HDR);
	iov = xcalloc(3 * n, sizeof(*iov));
	for (i = 0; i < n; i++)
		total += J_HDR + m[i].datalen + m[i].textlen;
	pthread_mutex_lock(&j->mu);
	while (j->checkpointing)
		pthread_cond_wait(&j->cv, &j->mu);
	if (j->off > J_HDR && j->off + (off_t)total > j->max &&
	    j->off >= j->retry_at)
		checkpoint_locked(j);
	if (j->off + (off_t)total > j->alloc)
		extend_locked(j, j->off + (off_t)total);
	for (i = 0; i < n; i++) {
		rec_header(hdrs + i * J_HDR, J_MSG, j->gen, id_num(m[i].id),
		    m[i].data, m[i].datalen, m[i].text, m[i].textlen);
		iov[k].iov_base = hdrs + i * J_HDR;
		iov[k++].iov_len = J_HDR;
		if (m[i].datalen > 0) {
			iov[k].iov_base = (void *)m[i].data;
			iov[k++].iov_len = m[i].datalen;
		}
		if (m[i].textlen > 0) {
			iov[k].iov_base = (void *)m[i].text;
			iov[k++].iov_len = m[i].textlen;
		}
	}
	if (pwritev_full(j->fd, iov, k, j->off) == 0) {
		j->off += (off_t)total;
		for (i = 0; i < n; i++)
			idset_add(&j->live, id_num(m[i].id));
		j->busy++;
		rc = 0;
	}
	saved = errno;
	pthread_mutex_unlock(&j->mu);
	free(iov);
	free(hdrs);
	errno = saved;
	return rc;
}

int
journal_sync(struct journal *j)
{
	return fdatasync(j->fd);
}

void
journal_done(struct journal *j)
{
	pthread_mutex_lock(&j->mu);
	j->busy--;
	if (j->checkpointing)
		pthread_cond_broadcast(&j->cv);
	pthread_mutex_unlock(&j->mu);
}

int
journal_gone(struct journal *j, const char *id, int durable)
{
	unsigned char h[J_HDR];
	uint64_t k = id_num(id);
	int wrote = 0, rc = 0;

	pthread_mutex_lock(&j->mu);
	if (idset_del(&j->live, k)) {
		rec_header(h, J_GONE, j->gen, k, NULL, 0, NULL, 0);
		if (pwrite_full(j->fd, h, J_HDR, j->off) == 0) {
			j->off += J_HDR;
			wrote = 1;
		} else
			rc = -1;
	}
	pthread_mutex_unlock(&j->mu);
	if (wrote && durable && fdatasync(j->fd) == -1)
		rc = -1;
	return rc;
}

int
journal_deleted_add(int spooldirfd, const char *id)
{
	char line[QUEUE_ID_LEN + 2];
	int jdfd, fd, rc = -1, saved;

	if ((jdfd = openat(spooldirfd, "journal", O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC | O_NOFOLLOW)) == -1)
		return errno == ENOENT ? 0 : -1;
	if ((fd = openat(jdfd, "deleted", O_WRONLY | O_APPEND | O_CREAT |
	    O_CLOEXEC | O_NOFOLLOW, 0600)) != -1) {
		snprintf(line, sizeof(line), "%s\n", id);
		if (write(fd, line, strlen(line)) == (ssize_t)strlen(line) &&
		    fsync(fd) == 0 && fsync(jdfd) == 0)
			rc = 0;
		saved = errno;
		close(fd);
		errno = saved;
	}
	saved = errno;
	close(jdfd);
	errno = saved;
	return rc;
}

void
journal_set_max(struct journal *j, off_t max)
{
	pthread_mutex_lock(&j->mu);
	j->max = max;
	pthread_mutex_unlock(&j->mu);
}

unsigned long
journal_checkpoints(struct journal *j)
{
	unsigned long n;

	pthread_mutex_lock(&j->mu);
	n = j->checkpoints;
	pthread_mutex_unlock(&j->mu);
	return n;
}
