/*
 * spool.c - the durable queue on disk (stub; being implemented by B).
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "spool.h"

const char *
rcpt_state_name(enum rcpt_state s)
{
	switch (s) {
	case RCPT_PENDING:
		return "pending";
	case RCPT_DELIVERED:
		return "delivered";
	case RCPT_FAILED:
		return "failed";
	}
	return "unknown";
}

struct spool *
spool_open(const char *dir, char *err, size_t errlen)
{
	snprintf(err, errlen, "spool: not implemented");
	return NULL;
}

void spool_close(struct spool *sp) { }
const char *spool_dir(const struct spool *sp) { return NULL; }

struct spool_writer *
spool_writer_new(struct spool *sp, char *err, size_t errlen)
{
	snprintf(err, errlen, "spool: not implemented");
	return NULL;
}

const char *spool_writer_id(const struct spool_writer *w) { return NULL; }
int spool_writer_write(struct spool_writer *w, const void *buf, size_t len)
{ errno = ENOSYS; return -1; }
off_t spool_writer_size(const struct spool_writer *w) { return 0; }

int
spool_writer_commit(struct spool_writer *w, struct spool_env *env,
    char *err, size_t errlen)
{
	snprintf(err, errlen, "spool: not implemented");
	return -1;
}

void spool_writer_abort(struct spool_writer *w) { }

int
spool_env_load(struct spool *sp, const char *id, struct spool_env **out,
    char *err, size_t errlen)
{
	snprintf(err, errlen, "spool: not implemented");
	return -1;
}

int
spool_env_save(struct spool *sp, const struct spool_env *env,
    char *err, size_t errlen)
{
	snprintf(err, errlen, "spool: not implemented");
	return -1;
}

void spool_env_free(struct spool_env *env) { }
struct spool_env *spool_env_new(void) { return NULL; }
struct spool_rcpt *spool_env_add_rcpt(struct spool_env *env, const char *addr)
{ return NULL; }
int spool_data_open(struct spool *sp, const char *id) { return -1; }
int spool_remove(struct spool *sp, const char *id) { return -1; }
char **spool_list_ids(struct spool *sp, size_t *n) { *n = 0; return NULL; }
void spool_ids_free(char **ids, size_t n) { }
