/*
 * bounce.h - delivery status notifications (RFC 3464) for recipients that
 * failed permanently or expired, sent with the null sender through our own
 * queue.  Never for a message whose sender is <> (RFC 5321 §4.5.5).
 *
 * This module builds the DSN and commits it to the spool; it returns the
 * DSN's envelope and the caller (the queue) adds it to the queue, as in
 * Postfix, where abounce hands the notice to post_mail.
 */
#ifndef DR_BOUNCE_H
#define DR_BOUNCE_H

#include <stddef.h>

struct spool;
struct spool_env;
struct config;

/* 1 if a DSN is owed: the sender is not <> and a recipient FAILED whose
 * NOTIFY asks for failures, or one was "relayed" with NOTIFY=SUCCESS. */
int bounce_owed(const struct spool_env *env);
/* 1 if a delay warning would name anyone: a PENDING recipient whose
 * NOTIFY asks for delays (or has no NOTIFY). */
int bounce_delay_owed(const struct spool_env *env);
/* Build the DSN for env's FAILED recipients and commit it to the spool:
 * its envelope (the caller adds it to the queue and frees it), or NULL
 * with the reason in err. */
struct spool_env *bounce_spool(struct spool *sp, const struct config *cf,
    const struct spool_env *env, char *err, size_t errlen);

/* The same for a delay warning (RFC 3464 Action: delayed) for the pending
 * recipients. */
struct spool_env *bounce_delay_spool(struct spool *sp,
    const struct config *cf, const struct spool_env *env, char *err,
    size_t errlen);

/* The DSN (delayed 0) or delay warning (1) built but not spooled: its
 * envelope, and its text (malloc'ed, CRLF lines) in *text, for the
 * non_smtpd_milters (local_milter.h) to see before the commit; NULL with
 * err.  The caller spools it (and logs it). */
struct spool_env *bounce_build(struct spool *sp, const struct config *cf,
    const struct spool_env *env, int delayed, char **text, size_t *len,
    char *err, size_t errlen);

#endif
