/*
 * fuzz_control.c - libFuzzer target for the control socket's request
 * parser (src/control.c: control_read_request() and
 * control_parse_request(), which the daemon runs on every connection's
 * input before it touches the queue).
 *
 * Input: bytes 0-3 are piece sizes used in turn (n * 8 + 1 bytes; 0xff:
 * all that is left); the rest is what a client writes to the socket.  It
 * arrives in an evbuffer piece by piece, and after each piece every
 * complete request is read and parsed, as conn_pump() does, until the
 * reader says the connection must close.  The same bytes are also read
 * in one piece.
 *
 * Property checks (abort() on failure): both runs read the same requests
 * and end the same way; a request line is at most CONTROL_LINE_MAX bytes,
 * holds no NUL or LF (one CR before the LF is removed; "\r\r\n" leaves
 * one, which the parser refuses); the reader never buffers more than
 * CONTROL_LINE_MAX + 1 bytes without either a line or an error; a parsed
 * request has 1..CONTROL_MAX_ARGS words, each non-empty, printable ASCII
 * without spaces, the first one a request the table knows; every refusal
 * is an "error ..." line no longer than a reply may be.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "control.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const names[] = { "flush", "hold", "release", "delete",
    "bounce", "hold-domain", "release-domain", "delete-domain",
    "bounce-domain", "suspend", "resume", "list", "status", "senders",
    "tls-memory-show", "tls-memory-forget" };

/* A digest of what a run did, to compare the two runs. */
struct run {
	unsigned long long h;
	int closed;
};

static void
mix(struct run *run, const char *s, int v)
{
	for (; *s; s++)
		run->h = (run->h ^ (unsigned char)*s) * 1099511628211ULL;
	run->h = (run->h ^ (unsigned)v) * 1099511628211ULL;
}

static void
check_error(const char *e)
{
	if (e == NULL || strncmp(e, "error ", 6) != 0 ||
	    strlen(e) > CONTROL_LINE_MAX)
		abort();
}

static void
parse(char *line, struct run *run)
{
	char *argv[CONTROL_MAX_ARGS], err[256], copy[CONTROL_LINE_MAX + 1];
	const char *p;
	size_t len = strlen(line), i;
	int argc = -1, r;

	if (len > CONTROL_LINE_MAX || strchr(line, '\n') != NULL)
		abort();
	memcpy(copy, line, len + 1);
	err[0] = '\0';
	r = control_parse_request(line, argv, &argc, err, sizeof(err));
	if (r < 0) {
		check_error(err);
		mix(run, err, r);
		return;
	}
	if (r >= (int)(sizeof(names) / sizeof(names[0])) || argc < 1 ||
	    argc > CONTROL_MAX_ARGS || strcmp(argv[0], names[r]) != 0)
		abort();
	for (i = 0; i < (size_t)argc; i++) {
		if (argv[i][0] == '\0' || argv[i] < line ||
		    argv[i] >= line + len)
			abort();
		for (p = argv[i]; *p; p++)
			if ((unsigned char)*p <= 0x20 ||
			    (unsigned char)*p >= 0x7f)
				abort();
		/* the word is where it was in the request */
		if (strncmp(copy + (argv[i] - line), argv[i],
		    strlen(argv[i])) != 0)
			abort();
		mix(run, argv[i], r);
	}
}

/* Every complete request of in; 0 once the connection must close. */
static int
pump(struct evbuffer *in, struct run *run)
{
	const char *why;
	char *line;
	int r;

	for (;;) {
		why = NULL;
		line = NULL;
		r = control_read_request(in, &line, &why);
		if (r == 0) {
			if (evbuffer_get_length(in) > CONTROL_LINE_MAX + 1 ||
			    evbuffer_search_eol(in, NULL, NULL,
			    EVBUFFER_EOL_LF).pos != -1)
				abort();
			return 1;
		}
		if (r == -1) {
			/* the reason may depend on how much had arrived
			 * ("too long" before or after the LF): only that it
			 * closes must not */
			check_error(why);
			run->closed = 1;
			return 0;
		}
		if (r != 1 || line == NULL)
			abort();
		parse(line, run);
		free(line);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *sizes = data;
	struct evbuffer *in;
	struct run a, b;
	size_t off = 0, n, k = 0;

	if (size < 4)
		return 0;
	data += 4;
	size -= 4;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));

	in = evbuffer_new();
	evbuffer_add(in, data, size);
	(void)pump(in, &a);
	evbuffer_free(in);

	in = evbuffer_new();
	while (off < size) {
		n = sizes[k % 4] == 0xff ? size - off :
		    (size_t)sizes[k % 4] * 8 + 1;
		k++;
		if (n > size - off)
			n = size - off;
		evbuffer_add(in, data + off, n);
		off += n;
		if (!pump(in, &b))
			break;
	}
	evbuffer_free(in);
	if (a.h != b.h || a.closed != b.closed)
		abort();
	return 0;
}
