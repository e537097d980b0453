/*
 * control_client.h - the client side of the control socket protocol
 * (control.h describes the protocol; control_client.c).
 */
#ifndef DR_CONTROL_CLIENT_H
#define DR_CONTROL_CLIENT_H

#include <stddef.h>

#include "control.h"		/* CONTROL_LINE_MAX */

struct ctl_client {
	int	 fd;
	int	 wait;			/* seconds for each reply line */
	size_t	 len;
	char	 buf[2 * CONTROL_LINE_MAX + 2];
};

/* Connect to the socket at path; every reply line may take wait seconds.
 * 0 connected; -1 with errno (ENOENT, ECONNREFUSED: nobody listens). */
int ctl_connect(struct ctl_client *cc, const char *path, int wait);
void ctl_close(struct ctl_client *cc);
/*
 * One request.  Lines before the final one go to fn.  0: "ok [text]",
 * 1: "error reason", -1: the exchange failed; text or reason in msg.
 */
int ctl_call(struct ctl_client *cc, const char *req,
    void (*fn)(const char *, void *), void *arg, char *msg, size_t msglen);

#endif
