/*
 * fuzz_milter.c - libFuzzer target for the milter reply parser
 * (src/milter.c): what a milter sends is untrusted, and a broken or
 * hostile filter must cost the relay nothing but that milter.
 *
 * The input is a stream of reply packets, taken apart one after the
 * other as the read callback does.  Checked invariants: a packet is never
 * read beyond its length (ASan sees the copy's end), a parsed packet is
 * at least 5 octets and within the input, its strings end inside it, a
 * custom reply has a 4xx/5xx code and passes milter_replycode_check(),
 * and a refusal always says why.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "milter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
inside(const char *s, const unsigned char *buf, size_t used)
{
	if (s == NULL)
		return;
	if ((const unsigned char *)s < buf || (const unsigned char *)s >=
	    buf + used || memchr(s, '\0', (size_t)(buf + used -
	    (const unsigned char *)s)) == NULL)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct milter_reply r;
	unsigned char *buf;
	size_t off = 0, used;
	char why[160];
	int rc, code;

	/* an exact copy: reading past the end is an ASan report */
	buf = malloc(size ? size : 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	while (off < size) {
		why[0] = '\0';
		used = 0;
		rc = milter_reply_parse(buf + off, size - off, &r, &used, why,
		    sizeof(why));
		if (rc == 0)
			break;
		if (rc == -1) {
			if (why[0] == '\0')
				abort();
			break;
		}
		if (used < 5 || used > size - off)
			abort();
		inside(r.name, buf + off, used);
		inside(r.value, buf + off, used);
		inside(r.addr, buf + off, used);
		inside(r.args, buf + off, used);
		if (r.data != NULL && (r.data < buf + off ||
		    r.data + r.len > buf + off + used))
			abort();
		if (r.cmd == SMFIR_REPLYCODE && (r.code < 400 || r.code > 599 ||
		    milter_replycode_check(r.addr, &code) != 0 ||
		    code != r.code))
			abort();
		off += used;
	}
	free(buf);
	return 0;
}
