/*
 * dsn.h - the delivery status notification parameters of the SMTP
 * envelope (RFC 3461): NOTIFY as a set of flags, xtext (§4) decoding and
 * encoding, and the syntax checks of ENVID and ORCPT.  Pure: no
 * allocation, no I/O; the inbound parser, the envelope, the outbound
 * client and the DSN writer (bounce.c) share it, libFuzzer runs it
 * (tests/fuzz/fuzz_dsn.c).
 */
#ifndef DR_DSN_H
#define DR_DSN_H

#include <stddef.h>

/* NOTIFY (RFC 3461 §4.1).  0: the parameter was not given. */
#define DSN_NOTIFY_NEVER	0x01
#define DSN_NOTIFY_SUCCESS	0x02
#define DSN_NOTIFY_FAILURE	0x04
#define DSN_NOTIFY_DELAY	0x08

#define DSN_ENVID_MAX		100	/* RFC 3461 §4.4, xtext octets */
#define DSN_ORCPT_MAX		500	/* RFC 3461 §4.2 */

/*
 * "NEVER", or a comma-separated list of SUCCESS, FAILURE and DELAY
 * (any case, each at most once, no empty items): 0 with the flags in
 * *out, -1 otherwise.
 */
int dsn_notify_parse(const char *v, unsigned *out);
/* The canonical form ("NEVER", "SUCCESS,FAILURE,DELAY"); "" for 0.
 * buf: at least 32 bytes.  Returns buf. */
const char *dsn_notify_format(unsigned flags, char *buf, size_t len);
/*
 * Does a recipient with these NOTIFY flags get a DSN of kind `what`
 * (DSN_NOTIFY_SUCCESS, _FAILURE or _DELAY)?  Without NOTIFY (0) the
 * default of RFC 3461 §4.1: failures and delays, no success.
 */
int dsn_notify_wants(unsigned flags, unsigned what);

/*
 * xtext (RFC 3461 §4): printable US-ASCII except "+" and "=", and
 * "+" followed by two upper-case hex digits for any octet.
 * dsn_xtext_valid: 1 if s is well-formed xtext.
 * dsn_xtext_decode: the decoded text in out (NUL-terminated); -1 if s
 * is not xtext, decodes to a byte outside printable US-ASCII
 * (0x20-0x7e: what RFC 3461 allows in ENVID and ORCPT), or does not fit.
 * dsn_xtext_encode: the xtext of in (NUL-terminated) in out; -1 if it
 * does not fit.
 */
int dsn_xtext_valid(const char *s);
int dsn_xtext_decode(const char *s, char *out, size_t outlen);
int dsn_xtext_encode(const char *in, char *out, size_t outlen);

/* ENVID: 1-100 octets of xtext that decodes to printable US-ASCII. */
int dsn_envid_valid(const char *v);
/* ORCPT: addr-type ";" xtext (RFC 3461 §4.2), addr-type an atom of
 * letters, digits and "-", at most 500 octets, decodable. */
int dsn_orcpt_valid(const char *v);

#endif
