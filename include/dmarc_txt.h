/*
 * dmarc_txt.h - the "_dmarc" TXT record (RFC 7489 §6.3, §6.4) and its
 * report URIs (§6.2, §7.1), for `danerelay check` (dmarc_txt.c).
 */
#ifndef DR_DMARC_TXT_H
#define DR_DMARC_TXT_H

#include <stddef.h>

struct dns_txt;

#define DMARC_MAX_URI	8	/* rua / ruf URIs kept from one record */
#define DMARC_TXT_MAX	4096	/* longer records are refused */

struct dmarc_rec {
	char	 p[16];		/* "none", "quarantine", "reject" */
	char	 sp[16];	/* "" when absent */
	char	 adkim;		/* 'r' (default) or 's' */
	char	 aspf;		/* 'r' (default) or 's' */
	int	 pct;		/* 0..100, default 100 */
	char	*rua[DMARC_MAX_URI];
	size_t	 nrua;
	char	*ruf[DMARC_MAX_URI];
	size_t	 nruf;
};

/*
 * One record (character-strings concatenated).  0 ok (*r filled,
 * dmarc_rec_clear() it), -1 not a valid DMARC1 record with the reason
 * in err (*r empty): v=DMARC1 must come first; p= is required (§6.3:
 * without it the record is only valid with a rua=, and then p=none is
 * meant: "none" is set); p, sp, adkim, aspf and pct are checked; unknown
 * tags are ignored.
 */
int dmarc_txt_parse(const char *txt, size_t len, struct dmarc_rec *r,
    char *err, size_t errlen);
/* The RRset of _dmarc.<domain>: records not starting with "v=DMARC1"
 * are discarded; exactly one must remain (§6.6.3).  1 parsed, 0 no
 * DMARC record, -1 several or a bad one (reason in err). */
int dmarc_txt_select(const struct dns_txt *txt, size_t n,
    struct dmarc_rec *r, char *err, size_t errlen);
void dmarc_rec_clear(struct dmarc_rec *r);
/* "mailto:dmarc@Example.ORG!10m" -> "example.org" (the domain that must
 * authorise reports for others, §7.1).  0 ok, -1 not a mailto: URI with
 * a plain domain. */
int dmarc_uri_domain(const char *uri, char *out, size_t outlen);

#endif
