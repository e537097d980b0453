/*
 * acl.h - client address lists ("127.0.0.0/8 ::1 192.0.2.0/24"),
 * separated by white space or commas.
 */
#ifndef DR_ACL_H
#define DR_ACL_H

#include <stddef.h>
#include <sys/socket.h>

struct acl;

struct acl *acl_parse(const char *list, char *err, size_t errlen);
/* 1 if sa falls in one of the networks; IPv4-mapped IPv6 matches IPv4. */
int acl_match(const struct acl *acl, const struct sockaddr *sa);
void acl_free(struct acl *acl);

#endif
