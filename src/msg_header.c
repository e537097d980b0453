/*
 * msg_header.c - what the header section of a message says about its
 * path, as its text streams by (see msg_header.h): the number of
 * Received: fields, and whether a "TLS-Required: No" field is there.
 * smtpd_session.c refuses a message with more than max_hops Received:
 * fields (RFC 5321 §6.3: "a simple counting of the number of Received:
 * headers in a message has proven to be an effective, although rarely
 * optimal, method of detecting loops in mail systems"), and keeps the
 * TLS-Required flag in the envelope when the client may ask for it
 * (RFC 8689 §5, issue #17).
 *
 * One state per position in a line: at its beginning, inside a field
 * name that may still be one we look for, after that name (blanks, then
 * the colon), in the value of TLS-Required (kept, at most VALUE_MAX
 * octets, continuation lines included), at the start of the line after
 * such a value (a continuation, or the field ended), in the rest of the
 * line, or past the header section.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "msg_header.h"

enum {
	HS_BOL = 0,	/* at the beginning of a header line */
	HS_CR,		/* CR at the beginning of a line: the end? */
	HS_NAME,	/* in a field name, names[which] matched so far */
	HS_AFTER,	/* after the name: blanks until the colon */
	HS_VALUE,	/* in the value of TLS-Required */
	HS_VBOL,	/* the line after a TLS-Required line */
	HS_SKIP,	/* the rest of the line does not matter */
	HS_BODY,	/* past the empty line */
};

enum { F_RECEIVED = 0, F_TLSREQ, F_COUNT };
static const char *const names[F_COUNT] = { "received", "tls-required" };

/* The value of one TLS-Required field is "No" (any case, blanks around
 * it, RFC 8689 §5). */
static int
value_is_no(const struct msg_header_scan *hs)
{
	size_t b = 0, e = hs->vlen;

	if (hs->vlong)
		return 0;
	while (b < e && (hs->value[b] == ' ' || hs->value[b] == '\t' ||
	    hs->value[b] == '\r'))
		b++;
	while (e > b && (hs->value[e - 1] == ' ' || hs->value[e - 1] == '\t' ||
	    hs->value[e - 1] == '\r'))
		e--;
	return e - b == 2 && strncasecmp(hs->value + b, "no", 2) == 0;
}

static void
value_add(struct msg_header_scan *hs, int c)
{
	if (hs->vlen < sizeof(hs->value))
		hs->value[hs->vlen++] = (char)c;
	else
		hs->vlong = 1;
}

void
msg_header_scan_init(struct msg_header_scan *hs)
{
	memset(hs, 0, sizeof(*hs));
	hs->state = HS_BOL;
}

void
msg_header_scan(struct msg_header_scan *hs, const char *buf, size_t len)
{
	size_t i;
	int c, f;

	for (i = 0; i < len && hs->state != HS_BODY; i++) {
		c = (unsigned char)buf[i];
 again:
		switch (hs->state) {
		case HS_BOL:
			if (c == '\r')
				hs->state = HS_CR;
			else if (c == '\n')
				hs->state = HS_BODY;	/* bare LF: refused
							 * anyway */
			else if (c == ' ' || c == '\t')
				hs->state = HS_SKIP;	/* continuation */
			else {
				hs->state = HS_SKIP;
				for (f = 0; f < F_COUNT; f++)
					if (tolower(c) == names[f][0]) {
						hs->which = f;
						hs->match = 1;
						hs->state = HS_NAME;
						break;
					}
			}
			break;
		case HS_CR:
			hs->state = c == '\n' ? HS_BODY : HS_SKIP;
			break;
		case HS_NAME:
			if (c == '\n')
				hs->state = HS_BOL;
			else if (tolower(c) != names[hs->which][hs->match])
				hs->state = HS_SKIP;
			else if (names[hs->which][++hs->match] == '\0')
				hs->state = HS_AFTER;
			break;
		case HS_AFTER:
			if (c == ':') {
				if (hs->which == F_RECEIVED) {
					hs->received++;
					hs->state = HS_SKIP;
				} else {
					hs->vlen = 0;
					hs->vlong = 0;
					hs->state = HS_VALUE;
				}
			} else if (c == '\n')
				hs->state = HS_BOL;
			else if (c != ' ' && c != '\t')
				hs->state = HS_SKIP;
			break;
		case HS_VALUE:
			if (c == '\n') {
				hs->vpending = value_is_no(hs);
				hs->state = HS_VBOL;
			} else
				value_add(hs, c);
			break;
		case HS_VBOL:
			if (c == ' ' || c == '\t') {
				/* folded: the value goes on */
				hs->vpending = 0;
				value_add(hs, ' ');
				hs->state = HS_VALUE;
				break;
			}
			/* the field ended: count it, then this line */
			if (hs->vpending)
				hs->tls_no_seen = 1;
			hs->vpending = 0;
			hs->state = HS_BOL;
			goto again;
		case HS_SKIP:
			if (c == '\n')
				hs->state = HS_BOL;
			break;
		}
	}
	hs->done = hs->state == HS_BODY;
	/* a field that ended with the data counts too */
	hs->tls_required_no = hs->tls_no_seen || (hs->state == HS_VBOL &&
	    hs->vpending);
}
