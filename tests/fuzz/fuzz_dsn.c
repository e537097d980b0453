/*
 * fuzz_dsn.c - libFuzzer target for the DSN parameter parsers (src/dsn.c,
 * RFC 3461 §4; issue #17) and the MAIL/RCPT parameter parsing that uses
 * them (src/smtp_parse.c).
 *
 * The input (NUL-terminated copy, cut at the first NUL) goes through
 * every parser.  Property checks:
 * - xtext: valid iff it decodes when the decoded bytes are printable;
 *   a decoded text re-encodes to xtext that is valid and decodes back to
 *   the same text; encoding never overflows its buffer;
 * - NOTIFY: a parsed value formats to a canonical form that parses to
 *   the same flags; NEVER is never combined;
 * - ENVID/ORCPT accepted by the MAIL/RCPT parsers are exactly what
 *   dsn_envid_valid()/dsn_orcpt_valid() accept.
 * No files, no network, no global state.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsn.h"
#include "smtp_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in, dec[1100], enc[3400], back[1100], nb[40], cmd[1200];
	struct smtp_mail m;
	struct smtp_rcpt r;
	struct smtp_perr e;
	unsigned f, g;
	int n, k;

	if (size > 1000)
		return 0;
	in = malloc(size + 1);
	if (in == NULL)
		return 0;
	memcpy(in, data, size);
	in[size] = '\0';

	n = dsn_xtext_decode(in, dec, sizeof(dec));
	if (n >= 0) {
		if (!dsn_xtext_valid(in) || (size_t)n != strlen(dec))
			abort();
		k = dsn_xtext_encode(dec, enc, sizeof(enc));
		if (k < 0 || (size_t)k != strlen(enc) || !dsn_xtext_valid(enc))
			abort();
		if (dsn_xtext_decode(enc, back, sizeof(back)) != n ||
		    strcmp(back, dec) != 0)
			abort();
	}
	/* encoding a short buffer: -1 or a terminated, valid string */
	k = dsn_xtext_encode(in, enc, 1 + size % 64);
	if (k >= 0 && ((size_t)k >= 1 + size % 64 || !dsn_xtext_valid(enc)))
		abort();

	if (dsn_notify_parse(in, &f) == 0) {
		if (f == 0 || ((f & DSN_NOTIFY_NEVER) && f != DSN_NOTIFY_NEVER))
			abort();
		dsn_notify_format(f, nb, sizeof(nb));
		if (dsn_notify_parse(nb, &g) != 0 || g != f)
			abort();
	}
	(void)dsn_notify_wants(f, DSN_NOTIFY_FAILURE);

	/* the same text as ENVID and ORCPT values of MAIL and RCPT */
	if (strchr(in, ' ') == NULL && strchr(in, '=') == NULL && size > 0) {
		snprintf(cmd, sizeof(cmd), "FROM:<a@example.org> ENVID=%s", in);
		if ((smtp_parse_mail(cmd, &m, &e) == 0) != dsn_envid_valid(in))
			abort();
		snprintf(cmd, sizeof(cmd), "TO:<b@example.org> ORCPT=%s", in);
		if ((smtp_parse_rcpt(cmd, 0, &r, &e) == 0) != dsn_orcpt_valid(in))
			abort();
		snprintf(cmd, sizeof(cmd), "TO:<b@example.org> NOTIFY=%s", in);
		if ((smtp_parse_rcpt(cmd, 0, &r, &e) == 0) !=
		    (dsn_notify_parse(in, &f) == 0))
			abort();
	}
	free(in);
	return 0;
}
