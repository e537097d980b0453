/*
 * fuzz_smtp_client_read.c - libFuzzer target for the outbound client's
 * line reader (src/smtp_client.c, smtp_client_read_reply(), which the
 * client runs on its bufferevent's input): lines split at LF with or
 * without CR, multi-line replies assembled by smtp_reply_feed(), the
 * SMTP_REPLY_LINE_MAX (4096 bytes) line bound and the
 * SMTP_REPLY_LINES_MAX reply bound, in whatever pieces the server's
 * bytes arrive.
 *
 * Input: bytes 0-7 are piece sizes used in turn (n * 32 + 1 bytes; 0xff:
 * all that is left); the rest is what the server sends.  It is read
 * twice into an evbuffer: all at once, and piece by piece with the reader
 * called after each piece, as the client does on every read callback.
 * Property checks (abort() on failure): both runs give the same replies
 * (code, enhanced code, every line) and end in the same state (reading
 * on, or the same error), so how TCP splits the stream never changes what
 * the client understands; every reply has 1..SMTP_REPLY_LINES_MAX lines
 * and a code from 200 to 599; an error has a reason; the reader never
 * leaves a complete line unread when it asks for more input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "smtp_client.h"
#include "smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
	struct smtp_reply acc;
	struct smtp_reply out[64];	/* the first 64 replies, kept */
	size_t nout;
	enum smtp_read end;		/* SMTP_READ_MORE or the error */
	char err[128];
};

static void
check_reply(const struct smtp_reply *r)
{
	size_t i;

	if (r->code < 200 || r->code > 599 || r->nlines == 0 ||
	    r->nlines > SMTP_REPLY_LINES_MAX || !r->complete)
		abort();
	for (i = 0; i < r->nlines; i++)
		if (r->lines[i] == NULL ||
		    strlen(r->lines[i]) > SMTP_REPLY_LINE_MAX)
			abort();
}

/* Read what in holds; 1 go on, 0 the session would end here. */
static int
drain(struct evbuffer *in, struct run *run)
{
	struct smtp_reply r;
	enum smtp_read st;

	for (;;) {
		run->err[0] = '\0';
		st = smtp_client_read_reply(in, &run->acc, &r, run->err,
		    sizeof(run->err));
		switch (st) {
		case SMTP_READ_REPLY:
			check_reply(&r);
			if (run->nout < 64)
				run->out[run->nout++] = r;
			else
				smtp_reply_clear(&r);
			continue;
		case SMTP_READ_MORE:
			/* nothing complete was left behind */
			if (evbuffer_search_eol(in, NULL, NULL,
			    EVBUFFER_EOL_LF).pos != -1)
				abort();
			return 1;
		default:
			if (run->err[0] == '\0')
				abort();
			run->end = st;
			return 0;
		}
	}
}

static void
run_free(struct run *run)
{
	size_t i;

	smtp_reply_clear(&run->acc);
	for (i = 0; i < run->nout; i++)
		smtp_reply_clear(&run->out[i]);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct run a, b;
	const uint8_t *sizes = data;
	struct evbuffer *in;
	size_t off = 0, n, k = 0, i, j;

	if (size < 8)
		return 0;
	data += 8;
	size -= 8;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	smtp_reply_init(&a.acc);
	smtp_reply_init(&b.acc);

	in = evbuffer_new();
	evbuffer_add(in, data, size);
	(void)drain(in, &a);
	evbuffer_free(in);

	in = evbuffer_new();
	while (off < size) {
		n = sizes[k % 8] == 0xff ? size - off :
		    (size_t)sizes[k % 8] * 32 + 1;
		k++;
		if (n > size - off)
			n = size - off;
		evbuffer_add(in, data + off, n);
		off += n;
		if (!drain(in, &b))
			break;
	}
	evbuffer_free(in);

	if (a.end != b.end || a.nout != b.nout)
		abort();
	for (i = 0; i < a.nout; i++) {
		if (a.out[i].code != b.out[i].code ||
		    strcmp(a.out[i].enh, b.out[i].enh) != 0 ||
		    a.out[i].nlines != b.out[i].nlines)
			abort();
		for (j = 0; j < a.out[i].nlines; j++)
			if (strcmp(a.out[i].lines[j], b.out[i].lines[j]) != 0)
				abort();
	}
	run_free(&a);
	run_free(&b);
	return 0;
}
