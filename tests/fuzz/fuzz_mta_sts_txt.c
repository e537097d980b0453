/*
 * fuzz_mta_sts_txt.c - libFuzzer target for the `_mta-sts` TXT record
 * parser (src/mta_sts.c, RFC 8461 §3.1).
 *
 * The input is split at 0xff bytes into up to 8 TXT records of one
 * RRset (heap copies of their exact size, so ASan sees an over-read) and
 * run through mta_sts_txt_parse() and mta_sts_txt_select().  Property
 * checks: an id is 1-32 letters and digits; a record said to be valid
 * starts with "v=STSv1"; select finds an id only if exactly one record
 * is an STS record and it is valid, and then the same id.  No files, no
 * network, no global state.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mta_sts.h"
#include "resolver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_id(const char *id)
{
	size_t i, n = strlen(id);

	if (n == 0 || n > MTA_STS_ID_MAX)
		abort();
	for (i = 0; i < n; i++)
		if (!((id[i] >= 'a' && id[i] <= 'z') ||
		    (id[i] >= 'A' && id[i] <= 'Z') ||
		    (id[i] >= '0' && id[i] <= '9')))
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dns_txt txt[8];
	char id[MTA_STS_ID_MAX + 1], sel[MTA_STS_ID_MAX + 1], err[256];
	size_t n = 0, start = 0, i, nsts = 0, nvalid = 0;
	int r;

	for (i = 0; i <= size && n < 8; i++) {
		if (i < size && data[i] != 0xff)
			continue;
		txt[n].len = i - start;
		txt[n].data = malloc(txt[n].len ? txt[n].len : 1);
		if (txt[n].data == NULL)
			break;
		memcpy(txt[n].data, data + start, txt[n].len);
		n++;
		start = i + 1;
	}
	for (i = 0; i < n; i++) {
		r = mta_sts_txt_parse(txt[i].data, txt[i].len, id, err,
		    sizeof(err));
		if (r == 1) {
			check_id(id);
			if (txt[i].len < 7 || memcmp(txt[i].data, "v=STSv1",
			    7) != 0)
				abort();
			nvalid++;
		} else if (r != 0 && r != -1)
			abort();
		if (r != 0)
			nsts++;
	}
	r = mta_sts_txt_select(txt, n, sel, err, sizeof(err));
	if (r == 1) {
		check_id(sel);
		if (nsts != 1 || nvalid != 1)
			abort();
	} else if (nsts == 1 && nvalid == 1)
		abort();
	for (i = 0; i < n; i++)
		free(txt[i].data);
	return 0;
}
