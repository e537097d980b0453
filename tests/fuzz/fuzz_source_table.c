/*
 * fuzz_source_table.c - libFuzzer target for the source_table parser
 * (src/source_table.c, source_table_parse(), without the local-address
 * check: no sockets).
 *
 * The input is parsed as a whole table from a heap buffer of its exact
 * size (not NUL-terminated, so ASan sees any over-read).  Property
 * checks: a refused table has a "fuzz:N:" or "fuzz:" message; in an
 * accepted one every entry has a lower-case domain (or "*"), at least one
 * address, an IPv4 one that parses as IPv4 and an IPv6 one as IPv6, a
 * HELO name with a dot, and is found again by source_table_lookup() for
 * a sender at its domain (the "*" entry for the null sender).
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "source_table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct source_table *t;
	const struct source_entry *e;
	unsigned char a[16];
	char err[1024], sender[300], *buf;
	size_t i, k;

	buf = malloc(size ? size : 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	err[0] = '\0';
	t = source_table_parse(buf, size, "fuzz", 0, err, sizeof(err));
	free(buf);
	if (t == NULL) {
		if (strncmp(err, "fuzz:", 5) != 0)
			abort();
		return 0;
	}
	for (i = 0; i < source_table_count(t); i++) {
		e = source_table_entry(t, i);
		if (e == NULL || e->helo == NULL || strchr(e->helo, '.') == NULL)
			abort();
		if (e->addr4 == NULL && e->addr6 == NULL)
			abort();
		if (e->addr4 != NULL && inet_pton(AF_INET, e->addr4, a) != 1)
			abort();
		if (e->addr6 != NULL && inet_pton(AF_INET6, e->addr6, a) != 1)
			abort();
		for (k = 0; e->domain[k] != '\0'; k++)
			if (e->domain[k] >= 'A' && e->domain[k] <= 'Z')
				abort();
		if (strcmp(e->domain, "*") == 0) {
			if (source_table_lookup(t, "") != e)
				abort();
			continue;
		}
		snprintf(sender, sizeof(sender), "u@%s", e->domain);
		if (source_table_lookup(t, sender) != e)
			abort();
	}
	source_table_free(t);
	return 0;
}
