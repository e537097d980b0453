/*
 * msg_header.c - counts the Received: fields of a message's header
 * section as its text streams by (see msg_header.h).  smtpd_session.c
 * refuses a message with more than max_hops of them (RFC 5321 §6.3: "a
 * simple counting of the number of Received: headers in a message has
 * proven to be an effective, although rarely optimal, method of
 * detecting loops in mail systems").
 *
 * One state per position in a line: at its beginning, inside a field
 * name that may still be "Received", after that name (blanks, then the
 * colon), in the rest of the line, or past the header section.
 */
#include <ctype.h>
#include <string.h>

#include "msg_header.h"

enum {
	HS_BOL = 0,	/* at the beginning of a header line */
	HS_CR,		/* CR at the beginning of a line: the end? */
	HS_NAME,	/* in a field name, "received" matched so far */
	HS_AFTER,	/* after "received": blanks until the colon */
	HS_SKIP,	/* the rest of the line does not matter */
	HS_BODY,	/* past the empty line */
};

static const char received[] = "received";
#define RECEIVED_LEN	(sizeof(received) - 1)

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
	int c;

	for (i = 0; i < len && hs->state != HS_BODY; i++) {
		c = (unsigned char)buf[i];
		switch (hs->state) {
		case HS_BOL:
			if (c == '\r')
				hs->state = HS_CR;
			else if (c == '\n')
				hs->state = HS_BODY;	/* bare LF: refused
							 * anyway */
			else if (c == ' ' || c == '\t')
				hs->state = HS_SKIP;	/* continuation */
			else if (tolower(c) == received[0]) {
				hs->match = 1;
				hs->state = HS_NAME;
			} else
				hs->state = HS_SKIP;
			break;
		case HS_CR:
			hs->state = c == '\n' ? HS_BODY : HS_SKIP;
			break;
		case HS_NAME:
			if (c == '\n')
				hs->state = HS_BOL;
			else if (tolower(c) != received[hs->match])
				hs->state = HS_SKIP;
			else if (++hs->match == RECEIVED_LEN)
				hs->state = HS_AFTER;
			break;
		case HS_AFTER:
			if (c == ':') {
				hs->received++;
				hs->state = HS_SKIP;
			} else if (c == '\n')
				hs->state = HS_BOL;
			else if (c != ' ' && c != '\t')
				hs->state = HS_SKIP;
			break;
		case HS_SKIP:
			if (c == '\n')
				hs->state = HS_BOL;
			break;
		}
	}
	hs->done = hs->state == HS_BODY;
}
