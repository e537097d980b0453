/*
 * msg_header.h - what the header section of a message says about its
 * path: the number of Received: trace fields (RFC 5321 §4.4, §6.3: a
 * message with "too many" of them is looping and must be refused).
 *
 * A streaming scanner, fed the message text (dot-stuffing already
 * removed, lines ending in CRLF) in pieces of any size; it looks only at
 * the header section, which ends at the first empty line.  A field name
 * "Received" in any case, optionally followed by blanks before the
 * colon (RFC 5322 §4.5.3 obsolete syntax), counts once; continuation
 * lines, "Received-SPF:" and anything in the body do not.  Pure: no
 * allocation, no I/O, the same result however the text is cut.
 */
#ifndef DR_MSG_HEADER_H
#define DR_MSG_HEADER_H

#include <stddef.h>

struct msg_header_scan {
	int state;		/* private */
	size_t match;		/* private: "received" matched so far */
	unsigned int received;	/* Received: fields seen */
	int done;		/* the header section ended */
};

void msg_header_scan_init(struct msg_header_scan *hs);
void msg_header_scan(struct msg_header_scan *hs, const char *buf,
    size_t len);

#endif
