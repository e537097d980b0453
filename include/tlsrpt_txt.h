/*
 * tlsrpt_txt.h - the "_smtp._tls" TXT record and rua URIs (RFC 8460 §3,
 * tlsrpt_txt.c).
 */
#ifndef DR_TLSRPT_TXT_H
#define DR_TLSRPT_TXT_H

#include <stddef.h>

struct dns_txt;

#define TLSRPT_MAX_RUA		8	/* URIs used from one record */
#define TLSRPT_URI_MAX		1024
#define TLSRPT_TXT_MAX		4096	/* longer records are refused */

/* ---- _smtp._tls TXT (RFC 8460 §3) --------------------------------------- */

struct tlsrpt_rua {
	char *uri[TLSRPT_MAX_RUA];	/* "mailto:..." or "https://..." */
	size_t n;
};

/*
 * Parse one TXT record (character-strings concatenated).  0 ok with at
 * least one mailto: or https: URI in out (other schemes are ignored);
 * -1 not a valid TLSRPTv1 record, with the reason in err.  Unknown
 * fields are ignored when they are well-formed.
 */
int tlsrpt_txt_parse(const char *txt, size_t len, struct tlsrpt_rua *out,
    char *err, size_t errlen);
/* The RRset: records not starting with "v=TLSRPTv1" are discarded; if
 * not exactly one is left the domain does not take reports (-1). */
int tlsrpt_txt_select(const struct dns_txt *txt, size_t n,
    struct tlsrpt_rua *out, char *err, size_t errlen);
void tlsrpt_rua_free(struct tlsrpt_rua *r);
/* "mailto:tlsrpt%2Bx@example.org?subject=y" -> "tlsrpt+x@example.org":
 * the addr-spec, percent-decoded and checked (one '@', printable ASCII,
 * none of <>()[]\,;:" or space).  0 ok, -1 not usable. */
int tlsrpt_mailto_addr(const char *uri, char *out, size_t outlen);

/* "https://host[:port][/path][?query]" -> host, port (443), request
 * target ("/path?query", "/" if empty).  0 ok, -1 not usable (userinfo,
 * address literal, bad port, too long). */
int tlsrpt_https_uri(const char *uri, char *host, size_t hostlen, int *port,
    char *target, size_t targetlen);

#endif
