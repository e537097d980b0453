/*
 * fuzz_mta_sts_mx.c - libFuzzer target for MTA-STS mx matching and the
 * IDN conversion (src/mta_sts.c: mta_sts_mx_match(),
 * mta_sts_mx_pattern_valid(), mta_sts_domain_ascii(); RFC 8461 §4.1).
 *
 * The input is split at LF: the first line is the MX host name, the
 * others are patterns.  Each string is a heap copy of its exact length
 * (plus the NUL) so ASan sees any over-read.  Property checks:
 *   - mta_sts_domain_ascii: a result is lower case ASCII, no trailing dot,
 *     fits the buffer, and converting it again gives itself; a buffer one
 *     byte too small is refused, never overrun;
 *   - a host matches a list iff it matches one pattern of it;
 *   - an invalid pattern never matches;
 *   - an exact pattern equal to the host's A-label form matches it, and
 *     "*." + the host's parent matches the host, whatever the case and a
 *     trailing dot on the host.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mta_sts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXPAT	64

static char *
dupn(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);

	if (s == NULL)
		abort();
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

static void
check_ascii(const char *in)
{
	char out[300], again[300], *small;
	size_t len, i;

	if (mta_sts_domain_ascii(in, out, sizeof(out)) == -1)
		return;
	len = strlen(out);
	if (len == 0 || len >= sizeof(out) || out[len - 1] == '.')
		abort();
	for (i = 0; i < len; i++)
		if ((unsigned char)out[i] >= 0x80 ||
		    (out[i] >= 'A' && out[i] <= 'Z'))
			abort();
	if (mta_sts_domain_ascii(out, again, sizeof(again)) != 0 ||
	    strcmp(out, again) != 0)
		abort();
	/* exactly too small: refused, and nothing written past the end */
	small = malloc(len);
	if (small == NULL)
		abort();
	if (mta_sts_domain_ascii(in, small, len) != -1)
		abort();
	free(small);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *pat[MAXPAT], *host, ascii[300], *p;
	const char *one[1];
	size_t n = 0, start, i;
	int any = 0, m;

	for (i = 0; i < size && data[i] != '\n'; i++)
		;
	host = dupn(data, i);
	start = i + 1;
	for (i = start; i <= size && n < MAXPAT; i++)
		if (i == size || data[i] == '\n') {
			if (start <= size)
				pat[n++] = dupn(data + start, i - start);
			start = i + 1;
		}

	check_ascii(host);
	for (i = 0; i < n; i++) {
		one[0] = pat[i];
		m = mta_sts_mx_match(one, 1, host);
		if (m != 0 && m != 1)
			abort();
		if (m && !mta_sts_mx_pattern_valid(pat[i]))
			abort();
		any |= m;
	}
	if (mta_sts_mx_match((const char *const *)pat, n, host) != any)
		abort();

	/* a host always matches its own A-label form, and "*." + parent */
	if (mta_sts_domain_ascii(host, ascii, sizeof(ascii)) == 0 &&
	    mta_sts_mx_pattern_valid(ascii)) {
		one[0] = ascii;
		if (mta_sts_mx_match(one, 1, host) != 1)
			abort();
		if ((p = strchr(ascii, '.')) != NULL && strchr(p + 1, '.') &&
		    p[1] != '\0') {
			char wild[302];

			wild[0] = '*';
			strcpy(wild + 1, p);
			one[0] = wild;
			if (mta_sts_mx_pattern_valid(wild) &&
			    mta_sts_mx_match(one, 1, host) != 1)
				abort();
		}
	}

	for (i = 0; i < n; i++)
		free(pat[i]);
	free(host);
	return 0;
}
