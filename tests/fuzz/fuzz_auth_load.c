/*
 * fuzz_auth_load.c - libFuzzer target for the auth_file loader
 * (src/auth.c, auth_load()).
 *
 * The input is written to a file in a private temporary directory (made
 * once) and loaded.  Property checks: a refused file comes back as NULL
 * with a "path:line: reason" message naming our file; an accepted one
 * holds at most as many users as the input has lines, and loading the
 * same bytes again gives the same answer and the same count.  No
 * password is checked (crypt costs tens of ms: the fuzzer would do
 * nothing else); the lines' parsing, the method checks and the table
 * are what is fuzzed.  No network.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[4096];

static int
write_input(const uint8_t *data, size_t size)
{
	FILE *f;

	if (path[0] == '\0') {
		char dir[] = "/tmp/fuzz_auth_load.XXXXXX";

		if (mkdtemp(dir) == NULL)
			return -1;
		snprintf(path, sizeof(path), "%s/auth", dir);
	}
	if ((f = fopen(path, "wb")) == NULL)
		return -1;
	if (size > 0 && fwrite(data, 1, size, f) != size) {
		fclose(f);
		return -1;
	}
	return fclose(f);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct auth_table *t, *t2;
	char err[512], err2[512];
	size_t lines = 1, i, n;

	if (write_input(data, size) == -1)
		return 0;
	for (i = 0; i < size; i++)
		if (data[i] == '\n')
			lines++;
	err[0] = '\0';
	t = auth_load(path, err, sizeof(err));
	if (t == NULL) {
		if (strncmp(err, path, strlen(path)) != 0)
			abort();	/* the reason names the file */
	} else if ((n = auth_count(t)) > lines)
		abort();
	t2 = auth_load(path, err2, sizeof(err2));
	if ((t == NULL) != (t2 == NULL))
		abort();
	if (t != NULL && auth_count(t) != auth_count(t2))
		abort();
	if (t == NULL && strcmp(err, err2) != 0)
		abort();
	auth_free(t);
	auth_free(t2);
	return 0;
}
