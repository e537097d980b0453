/*
 * fuzz_config.c - libFuzzer target for the config reader (src/config.c)
 * and the value parsers it uses (src/util.c, listen addresses, policy
 * levels).
 *
 * The input is handed to config_load() as a whole file through an
 * anonymous memory file (memfd, no file system), and, as one NUL-terminated
 * line, to each value parser.  Any outcome but a crash, leak or undefined
 * behaviour is fine: a bad config must give an error, never a crash.
 */
#include <sys/mman.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int memfd = -1;

static void
parse_values(const uint8_t *data, size_t size)
{
	struct listen_addr la;
	enum policy_level pl;
	unsigned long long bytes;
	long long secs;
	char *s;
	int b;

	s = xstrndup((const char *)data, size);
	(void)listen_addr_parse(s, 25, &la);
	(void)parse_duration(s, &secs);
	(void)parse_size(s, &bytes);
	(void)parse_bool(s, &b);
	if (policy_level_parse(s, &pl) == 0)
		(void)policy_level_name(pl);
	free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cf;
	char path[64], err[512];

	parse_values(data, size);

	if (memfd == -1 &&
	    (memfd = memfd_create("fuzz_config", MFD_CLOEXEC)) == -1)
		abort();
	if (ftruncate(memfd, 0) == -1 || pwrite(memfd, data, size, 0) !=
	    (ssize_t)size)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	if (config_load(path, &cf, err, sizeof(err)) == 0)
		config_free(&cf);
	else if (err[0] == '\0')
		abort();	/* a refusal must say why */
	return 0;
}
