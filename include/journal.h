/*
 * journal.h - the spool's write-ahead journal (see journal.c): a group
 * of new messages is made durable by one write and one fdatasync of
 * spool_dir/journal/log instead of one fsync per message file.
 * Used by spool.c only.
 */
#ifndef DR_JOURNAL_H
#define DR_JOURNAL_H

#include <stddef.h>
#include <sys/types.h>

struct journal;

/* One message of a group: its queue id and the exact content of its
 * queue/ID.msg file, in two pieces (data; envelope and trailer). */
struct journal_msg {
	const char	*id;
	const void	*data;
	size_t		 datalen;
	const void	*text;
	size_t		 textlen;
};

/* Records bigger than this are not journaled: such a message file is
 * fsync'ed itself. */
#define JOURNAL_REC_MAX		(4 * 1024 * 1024)
/* The journal is checkpointed (the files of the messages it still holds
 * are fsync'ed, then it starts over) once it would grow beyond this. */
#define JOURNAL_MAX		(64 * 1024 * 1024)

/* Open spool_dir/journal/log (creating it), replay it into queue/
 * (through tmp/): every message recorded there and not recorded as gone
 * is made to exist in queue/ with exactly the recorded content, and is
 * fsync'ed; then the journal starts over.  Run before the spool's own
 * recovery, with the spool lock held.  NULL on error (err set). */
struct journal *journal_open(int spooldirfd, int tmpfd, int queuefd,
    const char *spooldir, char *err, size_t errlen);
void journal_close(struct journal *j);

/* Append records for n messages (any thread).  0: written (not yet
 * durable), and the caller must call journal_sync() and then
 * journal_done() once; -1 errno, nothing to do. */
int journal_append(struct journal *j, const struct journal_msg *m,
    size_t n);
int journal_sync(struct journal *j);
void journal_done(struct journal *j);
/* The message left the queue (delivered, deleted, or its commit failed
 * after journal_append): a replay must not bring it back.  durable:
 * fdatasync the record before returning (the operator's delete). */
int journal_gone(struct journal *j, const char *id, int durable);
/* Without a running daemon (no journal open): record in
 * spool_dir/journal/deleted that the operator deleted id, so that the
 * next replay does not bring it back.  0 ok (also: no journal at all). */
int journal_deleted_add(int spooldirfd, const char *id);

/* For tests: checkpoint beyond max bytes; how many checkpoints so far. */
void journal_set_max(struct journal *j, off_t max);
unsigned long journal_checkpoints(struct journal *j);

#endif
