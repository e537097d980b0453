/*
 * msg_header.h - what the header section of a message says about its
 * path: the number of Received: trace fields (RFC 5321 §4.4, §6.3: a
 * message with "too many" of them is looping and must be refused), and
 * whether it carries "TLS-Required: No" (RFC 8689 §5: a field named
 * TLS-Required whose value, folded or not, is "No" in any case).
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
	int which;		/* private: the field name being matched */
	size_t match;		/* private: how much of it matched so far */
	char value[16];		/* private: TLS-Required value so far */
	size_t vlen;		/* private */
	int vlong;		/* private: the value was longer */
	int vpending;		/* private: a TLS-Required line said No */
	int tls_no_seen;	/* private: a whole field said No */
	unsigned int received;	/* Received: fields seen */
	int tls_required_no;	/* a "TLS-Required: No" field was seen */
	int done;		/* the header section ended */
};

void msg_header_scan_init(struct msg_header_scan *hs);
void msg_header_scan(struct msg_header_scan *hs, const char *buf,
    size_t len);

#endif
