/*
 * fuzz_smtp_cmd.c - libFuzzer target for the inbound SMTP parsers
 * (src/smtp_parse.c): command lines, HELO arguments, MAIL/RCPT paths and
 * parameters, AUTH PLAIN/LOGIN decoding, and the DATA scanner.
 *
 * Every input line (split at LF, one trailing CR removed, NUL bytes kept)
 * goes through smtp_parse_command() and then the argument parser its verb
 * selects, and through the AUTH decoders.  The whole input also goes
 * through the DATA scanner twice: in one piece and in pieces whose sizes
 * come from the input; both runs must agree on the output, the flags and
 * where the data ended (a property check, not just "no crash").  The
 * scanner's output then goes through the Received: counter of
 * src/msg_header.c, in one piece and in pieces, and is compared with a
 * plain line-by-line count of the header section.  Buffers
 * are heap-allocated at their exact documented size so ASan sees any
 * overrun.  No files, no network, no global state.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg_header.h"
#include "smtp_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
parse_line(const char *p, size_t len, int utf8)
{
	struct smtp_cmd cmd;
	struct smtp_perr e;
	struct smtp_mail m;
	struct smtp_rcpt r;
	char *line, user[SMTP_AUTH_USER_MAX + 1], pass[SMTP_AUTH_PASS_MAX + 1];
	char out[SMTP_AUTH_PASS_MAX + 1];

	if (len > SMTP_AUTH_LINE_MAX)
		return;
	line = malloc(len + 1);
	memcpy(line, p, len);
	line[len] = '\0';

	(void)smtp_auth_login(line, out, sizeof(out), &e);
	(void)smtp_auth_plain(line, user, sizeof(user), pass, sizeof(pass),
	    &e);

	if (smtp_parse_command(line, len, &cmd, &e) == 0) {
		switch (cmd.verb) {
		case CMD_HELO:
		case CMD_EHLO:
			(void)smtp_parse_helo(cmd.arg, &e);
			break;
		case CMD_MAIL:
			if (smtp_parse_mail(cmd.arg, &m, &e) == 0 &&
			    strlen(m.addr) > SMTP_ADDR_MAX)
				abort();
			break;
		case CMD_RCPT:
			if (smtp_parse_rcpt(cmd.arg, utf8, &r, &e) == 0 &&
			    (r.addr[0] == '\0' ||
			    strlen(r.addr) > SMTP_ADDR_MAX))
				abort();
			break;
		case CMD_AUTH: {
			const char *ir = strchr(cmd.arg, ' ');
			if (ir != NULL) {
				(void)smtp_auth_plain(ir + 1, user,
				    sizeof(user), pass, sizeof(pass), &e);
				(void)smtp_auth_login(ir + 1, out,
				    sizeof(out), &e);
			}
			break;
		}
		default:
			break;
		}
	} else if (e.code < 400 || e.code > 599)
		abort();
	free(line);
}

/* Scan data in pieces; sizes from seed.  Returns output length. */
static size_t
scan(const uint8_t *data, size_t size, const uint8_t *seed, size_t nseed,
    char *out, struct smtp_data_scan *ds, size_t *consumed)
{
	size_t i = 0, o = 0, k = 0, n, used, olen;
	char *piece;

	smtp_data_scan_init(ds);
	while (i < size && !ds->done) {
		n = nseed ? (size_t)(seed[k++ % nseed] % 64) + 1 : size - i;
		if (n > size - i)
			n = size - i;
		/* exact-size output buffer: the contract is len + 1 */
		piece = malloc(n + 1);
		used = smtp_data_scan(ds, (const char *)data + i, n, piece,
		    &olen);
		if (used > n || olen > n + 1 || (used < n && !ds->done))
			abort();
		memcpy(out + o, piece, olen);
		free(piece);
		o += olen;
		i += used;
	}
	*consumed = i;
	return o;
}

/* The Received: fields of the header section, counted line by line. */
static unsigned int
count_received(const char *p, size_t n)
{
	static const char name[] = "received";
	size_t i = 0, e, k;
	unsigned int count = 0;

	while (i < n) {
		for (e = i; e < n && p[e] != '\n'; e++)
			;
		if (e == i || (e == i + 1 && p[i] == '\r' && e < n))
			break;			/* the empty line */
		if (e - i == 1 && p[i] == '\r')
			break;			/* a lone CR at the end */
		for (k = 0; k < 8 && i + k < e &&
		    (p[i + k] | 0x20) == name[k]; k++)
			;
		if (k == 8) {
			for (k = i + 8; k < e && (p[k] == ' ' ||
			    p[k] == '\t'); k++)
				;
			if (k < e && p[k] == ':')
				count++;
		}
		i = e + 1;
	}
	return count;
}

static void
check_headers(const char *out, size_t n, const uint8_t *seed, size_t nseed)
{
	struct msg_header_scan h1, h2;
	size_t i = 0, k = 0, m;

	msg_header_scan_init(&h1);
	msg_header_scan(&h1, out, n);
	msg_header_scan_init(&h2);
	while (i < n) {
		m = nseed ? (size_t)(seed[k++ % nseed] % 16) + 1 : n - i;
		if (m > n - i)
			m = n - i;
		msg_header_scan(&h2, out + i, m);
		i += m;
	}
	if (h1.received != h2.received || h1.done != h2.done ||
	    h1.tls_required_no != h2.tls_required_no ||
	    h1.received != count_received(out, n))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_data_scan d1, d2;
	size_t start = 0, i, len, o1, o2, c1, c2;
	char *out1, *out2;

	for (i = 0; i <= size; i++) {
		if (i < size && data[i] != '\n')
			continue;
		len = i - start;
		if (len > 0 && data[start + len - 1] == '\r')
			len--;
		parse_line((const char *)data + start, len, size & 1);
		start = i + 1;
	}

	out1 = malloc(size + 2);
	out2 = malloc(size + 2);
	o1 = scan(data, size, NULL, 0, out1, &d1, &c1);
	o2 = scan(data, size, data, size < 16 ? size : 16, out2, &d2, &c2);
	if (o1 != o2 || c1 != c2 || d1.done != d2.done ||
	    d1.flags != d2.flags || memcmp(out1, out2, o1) != 0)
		abort();
	/* nothing invented: the output is never longer than the input */
	if (o1 > c1)
		abort();
	check_headers(out1, o1, data, size < 16 ? size : 16);
	free(out1);
	free(out2);
	return 0;
}
