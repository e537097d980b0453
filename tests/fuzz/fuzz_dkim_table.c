/*
 * fuzz_dkim_table.c - libFuzzer target for the dkim_key_table parser
 * (src/dkim.c, dkim_table_parse() with DKIM_PARSE_NOKEYS: no key file is
 * read), and for the From: scanner on the same bytes.
 *
 * The input is parsed as a whole table from a heap buffer of its exact
 * size (not NUL-terminated, so ASan sees any over-read).  Property
 * checks: a refused table has a "fuzz:LINE: " message; an accepted one
 * lists entries with a lower-case domain, a selector, an algorithm and
 * services, never two of the same domain and selector, and line numbers
 * that grow; each entry's domain is found again by dkim_table_signs()'s
 * lookup being harmless (no key loaded: nothing signs).  The From:
 * scanner gives the same domain however the input is cut in two, and a
 * domain it returns is lower case and short.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dkim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_from(const char *buf, size_t size)
{
	struct dkim_from f;
	char a[300], b[300];
	const char *da, *db, *p;
	size_t cut = size / 2;

	da = dkim_msg_from_domain(buf, size, a, sizeof(a));
	dkim_from_init(&f);
	dkim_from_scan(&f, buf, cut);
	dkim_from_scan(&f, buf + cut, size - cut);
	db = dkim_from_domain(&f, b, sizeof(b));
	if ((da == NULL) != (db == NULL) || (da != NULL && strcmp(da, db)))
		abort();
	if (da != NULL) {
		if (strlen(da) == 0 || strlen(da) > 253)
			abort();
		for (p = da; *p; p++)
			if (isupper((unsigned char)*p))
				abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dkim_table *t;
	struct dkim_key_info k, o;
	char err[1024], *buf;
	size_t i, j;
	int last = 0;
	const char *p;

	buf = malloc(size ? size : 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	check_from(buf, size);
	err[0] = '\0';
	t = dkim_table_parse(buf, size, "fuzz", DKIM_PARSE_NOKEYS, err,
	    sizeof(err));
	if (t == NULL) {
		if (strncmp(err, "fuzz:", 5) != 0 ||
		    !isdigit((unsigned char)err[5]))
			abort();
		free(buf);
		return 0;
	}
	for (i = 0; dkim_table_key(t, i, &k) == 0; i++) {
		if (k.domain[0] == '\0' || k.selector[0] == '\0' ||
		    k.keyfile[0] == '\0' || k.services == 0 ||
		    (k.services & ~DKIM_SVC_ALL) || k.line <= last)
			abort();
		last = k.line;
		for (p = k.domain; *p; p++)
			if (isupper((unsigned char)*p))
				abort();
		for (j = 0; j < i; j++)
			if (dkim_table_key(t, j, &o) == 0 &&
			    strcmp(o.domain, k.domain) == 0 &&
			    strcasecmp(o.selector, k.selector) == 0)
				abort();
		if (dkim_table_signs(t, k.domain, DKIM_SVC_EMAIL))
			abort();	/* no key was read */
	}
	if (i != dkim_table_count(t))
		abort();
	dkim_table_unref(t);
	free(buf);
	return 0;
}
