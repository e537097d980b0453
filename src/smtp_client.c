/*
 * smtp_client.c - outbound SMTP session (stub; being written by engineer G).
 */
#include <stdio.h>
#include <stdlib.h>

#include "smtp_client.h"

const char *
smtp_tls_mode_name(enum smtp_tls_mode m)
{
	return "?";
}

const char *
smtp_fail_name(enum smtp_fail f)
{
	return "?";
}

struct smtp_client *
smtp_client_connect(const struct smtp_client_params *p,
    const struct smtp_client_cb *cb, void *arg, char *err, size_t errlen)
{
	snprintf(err, errlen, "smtp_client: not implemented yet");
	return NULL;
}

int
smtp_client_send(struct smtp_client *c, const struct smtp_msg *msg,
    char *err, size_t errlen)
{
	snprintf(err, errlen, "smtp_client: not implemented yet");
	return -1;
}

void
smtp_client_quit(struct smtp_client *c)
{
}

void
smtp_client_free(struct smtp_client *c)
{
}

const struct tls_outcome *
smtp_client_tls(const struct smtp_client *c)
{
	return NULL;
}

const struct smtp_ext *
smtp_client_ext(const struct smtp_client *c)
{
	return NULL;
}

const char *
smtp_client_relay(const struct smtp_client *c)
{
	return "";
}

int
smtp_client_nmsg(const struct smtp_client *c)
{
	return 0;
}
