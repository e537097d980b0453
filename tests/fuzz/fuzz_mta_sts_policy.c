/*
 * fuzz_mta_sts_policy.c - libFuzzer target for the MTA-STS policy body
 * parser (src/mta_sts.c, mta_sts_policy_parse(), RFC 8461 §3.2).
 *
 * The input is the HTTPS body, in a heap buffer of its exact size (no
 * NUL at the end, so ASan sees an over-read).  Property checks: an
 * accepted policy has a mode, max_age <= 31557600, at least one mx for
 * enforce/testing, every mx a valid lower-case pattern without
 * duplicates, and the first line kept is a "version:" line; a refused one
 * comes back empty with a reason.  Parsing the same bytes twice gives the
 * same result.  No files, no network, no global state.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mta_sts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mta_sts_policy p, q;
	char err[256], err2[256];
	char *buf;
	size_t i, j;
	int r;

	buf = malloc(size ? size : 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	err[0] = '\0';
	r = mta_sts_policy_parse(buf, size, &p, err, sizeof(err));
	if (r == 0) {
		if (p.max_age < 0 || p.max_age > MTA_STS_MAX_AGE)
			abort();
		if (p.mode != MTA_STS_MODE_NONE && p.nmx == 0)
			abort();
		if (p.nlines == 0 || strncmp(p.lines[0], "version:", 8) != 0)
			abort();
		for (i = 0; i < p.nmx; i++) {
			if (!mta_sts_mx_pattern_valid(p.mx[i]))
				abort();
			for (j = 0; p.mx[i][j]; j++)
				if (p.mx[i][j] >= 'A' && p.mx[i][j] <= 'Z')
					abort();
			for (j = 0; j < i; j++)
				if (strcasecmp(p.mx[i], p.mx[j]) == 0)
					abort();
		}
	} else {
		if (r != -1 || err[0] == '\0' || p.nmx != 0 || p.nlines != 0 ||
		    p.mx != NULL || p.lines != NULL)
			abort();
	}
	if (mta_sts_policy_parse(buf, size, &q, err2, sizeof(err2)) != r)
		abort();
	if (r == 0 && (q.mode != p.mode || q.max_age != p.max_age ||
	    q.nmx != p.nmx))
		abort();
	mta_sts_policy_clear(&q);
	mta_sts_policy_clear(&p);
	free(buf);
	return 0;
}
