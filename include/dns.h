/*
 * dns.h - the DNS answer types: what the resolver (resolver.h) hands to
 * its callbacks and what the pure modules (policy, mta_sts) read.  Types
 * and constants only; the functions on them (dns_result_free(), the
 * rdata decoder, names of types and states) are the resolver's, in
 * resolver.h.  Split out of resolver.h (issue #15) so that the pure
 * layer does not include an engine's header.  Reading a result: see
 * resolver.h.
 */
#ifndef DR_DNS_H
#define DR_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "dane.h"		/* struct tlsa_rr */

/* RR types the resolver decodes. */
#define DNS_T_A		1
#define DNS_T_MX	15
#define DNS_T_TXT	16
#define DNS_T_AAAA	28
#define DNS_T_TLSA	52
#define DNS_T_DNSKEY	48	/* counted only (dnssec_check.c) */
#define DNS_T_PTR	12	/* names in mx[].host (danerelay check) */
#define DNS_T_CAA	257	/* counted only (danerelay check) */

/* Presentation form of any name fits (255 octets, every octet "\DDD"). */
#define DNS_NAME_BUF	1025

enum dns_status {
	DNS_OK = 0,		/* records of the asked type (n > 0) */
	DNS_NXDOMAIN,		/* the name does not exist */
	DNS_NODATA,		/* the name exists, no records of the type */
	DNS_TEMPFAIL,		/* SERVFAIL, timeout, network, bogus, malformed */
};

enum dns_security {
	DNS_SEC_UNKNOWN = 0,	/* no answer to judge (TEMPFAIL, not bogus) */
	DNS_SEC_INSECURE,	/* no DNSSEC for this name (unsigned/insecure) */
	DNS_SEC_SECURE,		/* validated (data, or proven denial) */
	DNS_SEC_BOGUS,		/* validation failed: never use */
};

struct dns_mx {
	uint16_t pref;
	char host[DNS_NAME_BUF];	/* lower case, no trailing dot;
					 * "" for the root "." */
};

struct dns_addr {
	int family;			/* AF_INET or AF_INET6 */
	char text[64];			/* "192.0.2.1", "2001:db8::1" */
	struct sockaddr_storage ss;	/* port 0 */
	socklen_t sslen;
};

struct dns_txt {
	char *data;			/* character-strings concatenated,
					 * NUL-terminated (may hold NULs) */
	size_t len;			/* authoritative length */
};

struct dns_result {
	char qname[DNS_NAME_BUF];	/* as asked */
	int qtype;
	int rcode;			/* DNS RCODE (0, 2 SERVFAIL, 3 NXDOMAIN..) */
	enum dns_status status;
	enum dns_security security;
	char reason[512];		/* for non-OK: "SERVFAIL", "timeout",
					 * the why_bogus text, "malformed MX
					 * rdata: ..."; "" for OK */
	char canonname[DNS_NAME_BUF];	/* final owner name after CNAMEs:
					 * lower case, no trailing dot */
	int cname;			/* 1 if a CNAME (or DNAME) was followed */
	uint32_t ttl;			/* seconds it may still be used */
	int cached;			/* from the resolver's cache */

	/* Records; which array is used depends on qtype. n counts them. */
	size_t n;
	struct dns_mx *mx;		/* DNS_T_MX; DNS_T_PTR: the names
					 * in host, pref 0 */
	int null_mx;			/* RFC 7505: exactly one MX, 0 "." */
	struct dns_addr *addr;		/* DNS_T_A, DNS_T_AAAA */
	struct tlsa_rr *tlsa;		/* DNS_T_TLSA */
	struct dns_txt *txt;		/* DNS_T_TXT */
};

#endif
