/*
 * acl.c - client address lists (stub; being written by engineer C).
 */
#include <stddef.h>
#include <stdio.h>

#include "acl.h"

struct acl *
acl_parse(const char *list, char *err, size_t errlen)
{
	snprintf(err, errlen, "acl_parse: not implemented yet");
	return NULL;
}

int
acl_match(const struct acl *acl, const struct sockaddr *sa)
{
	return 0;
}

void
acl_free(struct acl *acl)
{
}
