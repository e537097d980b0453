/*
 * spool.h - the durable queue on disk.
 *
 * Layout under spool_dir: tmp/ (being written), queue/ID.msg (message
 * data, RFC 5322 with CRLF line ends, not dot-stuffed, followed by the
 * envelope as committed and a one-line trailer) and, once a delivery
 * attempt changed it, queue/ID.env (the current envelope).  A message
 * exists once queue/ID.msg exists: the commit writes it to tmp/, appends
 * it to the spool's journal (journal/log) and fdatasyncs that (one write
 * and one fdatasync for every message that got there meanwhile: group
 * commit), then renames it into queue/, so "250" after DATA means it
 * survives a crash; a message over 1 MiB is fsync'ed itself instead.  The data is the first env->size bytes
 * of queue/ID.msg: readers stop there.
 * spool_open() recovers: replays the journal (a power loss may have
 * lost files that were never fsync'ed), removes tmp/ leftovers, data without envelope
 * and envelopes without data, logging each, and moves messages that do
 * not load to corrupt/ - accepted mail is never deleted silently.
 * Error strings never start with the queue id: callers prefix it.
 *
 * The *_async functions hand the disk work to a pool (spool_set_workq)
 * and report on the loop through cb; without a pool they complete before
 * returning, cb included.  They return -1 (cb not called) only when the
 * request itself is bad.
 */
#ifndef DR_SPOOL_H
#define DR_SPOOL_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "envelope.h"	/* struct spool_env */
#include "util.h"

struct spool;
struct spool_writer;
struct workq;
struct workq_port;

/* Completion of an asynchronous operation: rc 0 done (durable), -1
 * failed with error (an errno value) and why (for logs). */
typedef void spool_done_cb(int rc, int error, const char *why, void *arg);

/* A message that a module below the queue (the TLSRPT run) committed to
 * the spool, handed on for delivery: main.c's callback adds it to the
 * queue.  env stays the caller's. */
typedef void spool_submit_cb(const struct spool_env *env, void *arg);

/* Open (creating tmp/ and queue/ if needed), take the spool lock and
 * recover.  Only one process at a time may hold a spool this way (the
 * daemon); a second spool_open() of the same directory fails. */
struct spool *spool_open(const char *dir, char *err, size_t errlen);
/* spool_open_flags(): SPOOL_NO_RECOVER opens an existing spool without
 * the lock, without creating anything and without recovery, so a tool can
 * read (list, delete) the queue of a running or stopped daemon. */
#define SPOOL_NO_RECOVER	0x01
struct spool *spool_open_flags(const char *dir, int flags, char *err,
    size_t errlen);
/* 1 if another process (a running daemon) holds the spool lock, else 0. */
int spool_in_use(const struct spool *sp);
void spool_close(struct spool *sp);
const char *spool_dir(const struct spool *sp);
/* Run the calling thread's disk work on wq, completions on port's loop,
 * which that thread runs (NULL, NULL: inline).  Each worker thread calls
 * it for itself: group commits are per loop. */
void spool_set_workq(struct spool *sp, struct workq *wq,
    struct workq_port *port);

/* Start a new message: allocates a queue id; the data is buffered in
 * memory (a message over 1 MiB goes on to tmp/ID.msg as it comes). */
struct spool_writer *spool_writer_new(struct spool *sp, char *err, size_t errlen);
const char *spool_writer_id(const struct spool_writer *w);
/* Append data (buffered). 0 ok, -1 on I/O error (errno set). */
int spool_writer_write(struct spool_writer *w, const void *buf, size_t len);
off_t spool_writer_size(const struct spool_writer *w);
/* Read the message written so far from *off on (advanced): bytes read,
 * 0 at the end, -1 error (errno).  The writer's owner only (any thread,
 * one at a time): DKIM signing reads it back before the commit. */
ssize_t spool_writer_read(struct spool_writer *w, off_t *off, void *buf,
    size_t len);
/* How much of what was written is in tmp/ID.msg (the rest is in memory):
 * reading that part is disk I/O, for the io pool. */
off_t spool_writer_infile(const struct spool_writer *w);
/* Put buf in front of what was written (header fields added at the top,
 * e.g. DKIM-Signature:).  0 ok, -1 I/O error (errno set). */
int spool_writer_prepend(struct spool_writer *w, const void *buf,
    size_t len);
/* Throw away what was written so far, to write the message again (the
 * milters changed it).  0 ok, -1 I/O error (errno set). */
int spool_writer_truncate(struct spool_writer *w);
/* Make durable with this envelope (env->id and size are filled in).
 * 0 ok and the writer is freed; -1 error, the writer is aborted. */
int spool_writer_commit(struct spool_writer *w, struct spool_env *env,
    char *err, size_t errlen);
/* The same on the pool: env->id, size and created are filled in before
 * it returns; the writer belongs to the spool from then on (also on -1).
 * cb runs once the message is durable, or failed and is gone. */
int spool_writer_commit_async(struct spool_writer *w, struct spool_env *env,
    spool_done_cb *cb, void *arg, char *err, size_t errlen);
/* Throw away a message being written. Accepts NULL. */
void spool_writer_abort(struct spool_writer *w);

/* Envelopes. */
int spool_env_load(struct spool *sp, const char *id, struct spool_env **out,
    char *err, size_t errlen);
/* Atomically rewrite queue/ID.env (tmp + fsync + rename + dir fsync). */
int spool_env_save(struct spool *sp, const struct spool_env *env,
    char *err, size_t errlen);
/* The same on the pool (env is formatted before it returns). */
int spool_env_save_async(struct spool *sp, const struct spool_env *env,
    spool_done_cb *cb, void *arg, char *err, size_t errlen);

/* Open the data file read-only; returns fd or -1.  Read env->size
 * bytes from offset 0: the envelope follows the data. */
int spool_data_open(struct spool *sp, const char *id);
/* Remove a message (data first, then a rewritten envelope) and fsync
 * queue/ (the operator's delete). 0 ok, -1 not found/err. */
int spool_remove(struct spool *sp, const char *id);
/* Remove a delivered message on the pool, without a directory fsync: a
 * crash just after it can at worst deliver the message again. */
int spool_remove_async(struct spool *sp, const char *id, spool_done_cb *cb,
    void *arg);
/* All queue ids currently committed, sorted; *n set. Caller frees with
 * spool_ids_free. */
char **spool_list_ids(struct spool *sp, size_t *n);
void spool_ids_free(char **ids, size_t n);

/* For tests: checkpoint the journal beyond max bytes instead of
 * JOURNAL_MAX; checkpoints made so far. */
void spool_journal_set_max(struct spool *sp, off_t max);
unsigned long spool_journal_checkpoints(struct spool *sp);

#endif
