/*
 * fuzz_spf_terms.c - libFuzzer target for the SPF term splitter
 * (spf_terms_parse(), src/spf_terms.c, RFC 7208 §4.6.1): `danerelay
 * check` reads the SPF records of the operator's domain and of every
 * include: they lead to, which anybody may publish.
 *
 * Input: one record (an exactly sized heap copy, so ASan sees
 * over-reads).  Checks: a failure has a reason; a success has at most
 * SPF_TERMS_MAX terms, each with a known kind and qualifier, a
 * NUL-terminated target shorter than SPF_TARGET_MAX that holds no space
 * and no control character, and macro set exactly when the target has a
 * '%'; the record starts with "v=spf1".
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spf_terms.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spf_term t[SPF_TERMS_MAX];
	char err[256], *copy;
	size_t k, n;
	int i, nt;

	copy = malloc(size ? size : 1);
	if (copy == NULL)
		return 0;
	if (size > 0)
		memcpy(copy, data, size);
	err[0] = '\0';
	nt = spf_terms_parse(copy, size, t, SPF_TERMS_MAX, err, sizeof(err));
	if (nt < 0 && err[0] == '\0')
		abort();
	if (nt > SPF_TERMS_MAX)
		abort();
	if (nt >= 0 && !spf_is_record(copy, size))
		abort();
	for (i = 0; i < nt; i++) {
		if (t[i].kind > SPF_TERM_UNKNOWN_MOD ||
		    strchr("+-~?", t[i].qual) == NULL || t[i].qual == '\0')
			abort();
		n = strnlen(t[i].target, SPF_TARGET_MAX);
		if (n == SPF_TARGET_MAX)
			abort();
		for (k = 0; k < n; k++)
			if ((unsigned char)t[i].target[k] < 0x21 ||
			    t[i].target[k] == 0x7f)
				abort();
		if (t[i].macro != (strchr(t[i].target, '%') != NULL))
			abort();
		if (spf_kind_name(t[i].kind) == NULL)
			abort();
	}
	free(copy);
	return 0;
}
