/*
 * fuzz_spool_env.c - libFuzzer target for the spool envelope parser
 * (spool_env_parse in src/envelope.c): an envelope file is read back after
 * a crash, a disk error or an operator's editor, so no input may crash
 * it.  Whatever parses must also survive a round trip: format, parse
 * again, format again gives the same bytes (the escaping is lossless and
 * canonical).  No files, no network, no global state.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spool_env *env, *env2;
	char err[256], *t1, *t2;
	size_t l1, l2;

	if (spool_env_parse((const char *)data, size, &env, err,
	    sizeof(err)) == -1) {
		if (env != NULL || err[0] == '\0')
			abort();	/* failure must say why, leave nothing */
		return 0;
	}
	t1 = spool_env_format(env, &l1);
	if (spool_env_parse(t1, l1, &env2, err, sizeof(err)) == -1) {
		fprintf(stderr, "re-parse failed: %s\n", err);
		abort();
	}
	t2 = spool_env_format(env2, &l2);
	if (l1 != l2 || memcmp(t1, t2, l1) != 0)
		abort();
	if (env->nrcpt != env2->nrcpt || strcmp(env->id, env2->id) != 0 ||
	    strcmp(env->sender, env2->sender) != 0)
		abort();
	free(t1);
	free(t2);
	spool_env_free(env);
	spool_env_free(env2);
	return 0;
}
