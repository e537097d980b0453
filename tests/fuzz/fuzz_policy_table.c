/*
 * fuzz_policy_table.c - libFuzzer target for the policy_file parser
 * (src/policy_table.c, policy_table_parse()).
 *
 * The input is parsed as a whole table from a heap buffer of its exact
 * size (not NUL-terminated, so ASan sees any over-read).  Property
 * checks, not just "no crash": a refused table has a "fuzz:" message and
 * a line number; an accepted table finds every entry again through
 * policy_table_lookup() (exact entries by their name, ".parent" entries
 * for a name one label below), every domain is lower case without a
 * trailing dot, and match= only appears with verify/secure.
 * No files, no network, no global state.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idn.h"
#include "policy_table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Entries are read back through the lookup only; walk by name. */
static void
check_entry(const struct policy_table *t, const struct policy_entry *e)
{
	char name[300];
	size_t len, i;

	if (e == NULL)
		abort();
	len = strlen(e->domain);
	if (len == 0 || e->domain[len - 1] == '.')
		abort();
	for (i = 0; i < len; i++)
		if (e->domain[i] >= 'A' && e->domain[i] <= 'Z')
			abort();
	if (e->nmatch > 0 && e->level != POLICY_VERIFY &&
	    e->level != POLICY_SECURE)
		abort();
	if (e->domain[0] == '.') {
		snprintf(name, sizeof(name), "x%s", e->domain);
		if (strlen(name) <= 253 && policy_table_lookup(t, name) == NULL)
			abort();
	} else if (policy_table_lookup(t, e->domain) != e)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policy_table *t;
	const struct policy_entry *e;
	char err[1024], *buf, *line, *p, *sp;
	size_t n;

	buf = malloc(size ? size : 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	err[0] = '\0';
	t = policy_table_parse(buf, size, "fuzz", err, sizeof(err));
	if (t == NULL) {
		if (strncmp(err, "fuzz:", 5) != 0)
			abort();
		free(buf);
		return 0;
	}
	n = policy_table_count(t);
	/* Every first field of a non-comment line is in the table. */
	if (memchr(buf, '\0', size) == NULL) {
		char *copy = malloc(size + 1);

		if (copy != NULL) {
			memcpy(copy, buf, size);
			copy[size] = '\0';
			for (line = strtok_r(copy, "\n", &sp); line != NULL;
			    line = strtok_r(NULL, "\n", &sp)) {
				p = line + strspn(line, " \t\r");
				if (*p == '\0' || *p == '#')
					continue;
				p[strcspn(p, " \t\r")] = '\0';
				if (*p == '.') {
					char name[300], a[300], why[256];

					/* a subdomain that can exist: at most
					 * 253 octets in A-label form (a
					 * U-label name grows when converted) */
					snprintf(name, sizeof(name), "x%s", p);
					if (strlen(name) > 253 ||
					    idn_to_alabels(name, a, sizeof(a),
					    why, sizeof(why)) == -1)
						continue;
					e = policy_table_lookup(t, name);
				} else
					e = policy_table_lookup(t, p);
				if (e == NULL)
					abort();
				check_entry(t, e);
			}
			free(copy);
		}
	}
	if (n > 0 && policy_table_lookup(t, "") != NULL)
		abort();
	policy_table_free(t);
	free(buf);
	return 0;
}
