/*
 * fuzz_smtp_reply.c - libFuzzer target for the SMTP reply parser
 * (src/smtp_reply.c): what a remote server sends is untrusted.
 *
 * The input is split into lines at LF (a CR before it is dropped, as the
 * client's line splitter does) and fed reply by reply; every complete
 * reply is summarised into a small and a large buffer and, if it is 2xx,
 * parsed as an EHLO reply.  Checked invariants: the parser never returns
 * a reply with more than SMTP_REPLY_LINES_MAX lines, the code is within
 * 200..599, an enhanced code (if any) has the reply's class, and the
 * summary is always NUL-terminated within its buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_reply(const struct smtp_reply *r)
{
	char small[8], big[1024];
	struct smtp_ext ext;

	if (r->code < 200 || r->code > 599 || r->nlines == 0 ||
	    r->nlines > SMTP_REPLY_LINES_MAX)
		abort();
	if (r->enh[0] != '\0' && r->enh[0] != '0' + r->code / 100)
		abort();
	smtp_reply_summary(r, small, sizeof(small));
	if (strlen(small) >= sizeof(small))
		abort();
	smtp_reply_summary(r, big, sizeof(big));
	if (strlen(big) >= sizeof(big))
		abort();
	if (smtp_ehlo_parse(r, &ext) == 0 && r->code / 100 != 2)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_reply r;
	const char *p = (const char *)data, *end = p + size, *nl;
	char err[256];
	size_t len;

	smtp_reply_init(&r);
	while (p < end) {
		nl = memchr(p, '\n', end - p);
		len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (len > 0 && p[len - 1] == '\r')
			len--;
		switch (smtp_reply_feed(&r, p, len, err, sizeof(err))) {
		case REPLY_DONE:
			check_reply(&r);
			smtp_reply_clear(&r);
			break;
		case REPLY_ERROR:
			if (err[0] == '\0')
				abort();
			smtp_reply_clear(&r);
			break;
		case REPLY_MORE:
			break;
		}
		p = nl ? nl + 1 : end;
	}
	smtp_reply_clear(&r);
	return 0;
}
