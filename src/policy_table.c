/*
 * policy_table.c - the policy_file table.  Stub: being written.
 */
#include <stdlib.h>

#include "policy_table.h"
#include "util.h"

struct policy_table *
policy_table_load(const char *path, char *err, size_t errlen)
{
	(void)path;
	dr_strlcpy(err, "policy_table: not implemented", errlen);
	return NULL;
}

struct policy_table *
policy_table_parse(const char *buf, size_t len, const char *name, char *err,
    size_t errlen)
{
	(void)buf; (void)len; (void)name;
	dr_strlcpy(err, "policy_table: not implemented", errlen);
	return NULL;
}

void
policy_table_free(struct policy_table *t)
{
	(void)t;
}

const struct policy_entry *
policy_table_lookup(const struct policy_table *t, const char *domain)
{
	(void)t; (void)domain;
	return NULL;
}

size_t
policy_table_count(const struct policy_table *t)
{
	(void)t;
	return 0;
}
