/*
 * smtpd.c - inbound SMTP listeners (stub; being written by engineer C).
 */
#include <stddef.h>
#include <stdio.h>

#include "smtpd.h"

struct smtpd *
smtpd_new(const struct config *cf, char *err, size_t errlen)
{
	snprintf(err, errlen, "smtpd_new: not implemented yet");
	return NULL;
}

int
smtpd_start(struct smtpd *sd, struct event_base *base, struct spool *sp,
    smtpd_message_cb *cb, void *cbarg, char *err, size_t errlen)
{
	snprintf(err, errlen, "smtpd_start: not implemented yet");
	return -1;
}

int
smtpd_reload(struct smtpd *sd, const struct config *cf, char *err,
    size_t errlen)
{
	snprintf(err, errlen, "smtpd_reload: not implemented yet");
	return -1;
}

void
smtpd_stop(struct smtpd *sd)
{
}

int
smtpd_sessions(const struct smtpd *sd)
{
	return 0;
}

void
smtpd_free(struct smtpd *sd)
{
}
