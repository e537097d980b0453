/*
 * https.c - HTTPS client (stub, being written).
 */
#include <stdio.h>
#include <string.h>

#include "https.h"
#include "util.h"

SSL_CTX *
https_ctx_new(const char *ca_file, char *err, size_t errlen)
{
	snprintf(err, errlen, "https: not implemented yet");
	return NULL;
}

struct https_req *
https_request(const struct https_params *p, https_cb *cb, void *arg,
    char *err, size_t errlen)
{
	snprintf(err, errlen, "https: not implemented yet");
	return NULL;
}

void
https_cancel(struct https_req *r)
{
}

const char *
https_fail_name(enum https_fail f)
{
	return "internal";
}

int
https_type_is(const char *header, const char *want)
{
	return 0;
}
