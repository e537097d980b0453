/*
 * spf_terms.h - the terms of one SPF record (RFC 7208 §4.6.1, §5, §6),
 * split for counting: which mechanisms and modifiers query DNS (§4.6.4)
 * and where include: and redirect= lead.  Evaluation itself is
 * libspf2's (check_spf.c); this parser only lists, it never decides.
 */
#ifndef DR_SPF_TERMS_H
#define DR_SPF_TERMS_H

#include <stddef.h>

#define SPF_TERMS_MAX		64	/* terms kept from one record */
#define SPF_TARGET_MAX		256	/* a domain-spec, with its NUL */

enum spf_kind {
	SPF_TERM_ALL = 0,
	SPF_TERM_INCLUDE,
	SPF_TERM_A,
	SPF_TERM_MX,
	SPF_TERM_PTR,
	SPF_TERM_IP4,
	SPF_TERM_IP6,
	SPF_TERM_EXISTS,
	SPF_TERM_REDIRECT,	/* modifier redirect= */
	SPF_TERM_EXP,		/* modifier exp= */
	SPF_TERM_UNKNOWN_MOD,	/* any other name=value (ignored, §6) */
};

struct spf_term {
	char		 qual;		/* '+', '-', '~', '?' (mechanisms) */
	enum spf_kind	 kind;
	char		 target[SPF_TARGET_MAX];	/* domain-spec or address,
					 * without the CIDR length; "" none */
	int		 macro;		/* target holds a '%' macro */
};

/* 1 if rec is an SPF record: "v=spf1" alone or followed by a space
 * (§4.5, case-insensitive); else 0. */
int spf_is_record(const char *rec, size_t len);
/*
 * The terms of an SPF record, at most max of them into t.  The number of
 * terms (>= 0), or -1 with the reason in err: not an SPF record, an
 * unknown mechanism, a mechanism that needs a value without one, a
 * target over 255 octets, control characters, more than max terms.
 */
int spf_terms_parse(const char *rec, size_t len, struct spf_term *t,
    size_t max, char *err, size_t errlen);
/* 1 for the terms that cost a DNS lookup (include, a, mx, ptr, exists,
 * redirect: §4.6.4), else 0. */
int spf_term_dns(enum spf_kind k);
/* "include", "a", ..., "redirect" */
const char *spf_kind_name(enum spf_kind k);

#endif
