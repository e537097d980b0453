/*
 * dane.h - TLSA records and their use with OpenSSL's DANE API (RFC 6698,
 * RFC 7671, RFC 7672).  No hand-written matching: records go to OpenSSL
 * with SSL_dane_tlsa_add(), OpenSSL verifies the chain.
 */
#ifndef DR_DANE_H
#define DR_DANE_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>

struct tlsa_rr {
	uint8_t usage;		/* 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE */
	uint8_t selector;	/* 0 full cert, 1 SubjectPublicKeyInfo */
	uint8_t mtype;		/* 0 full, 1 SHA-256, 2 SHA-512 */
	size_t len;
	uint8_t *data;		/* owned */
};

/* RFC 7672 §3.1.3: usable for SMTP = usage 2 or 3, selector 0/1, mtype
 * 0/1/2, and digest lengths that fit the mtype. */
int tlsa_usable(const struct tlsa_rr *rr);

/* "3 1 1 AB12..." (presentation form); caller frees. */
char *tlsa_to_text(const struct tlsa_rr *rr);
/* Parse presentation form "u s m hex"; 0 ok, -1 bad. */
int tlsa_from_text(const char *s, struct tlsa_rr *out);
void tlsa_rr_clear(struct tlsa_rr *rr);
struct tlsa_rr *tlsa_rrs_dup(const struct tlsa_rr *rrs, size_t n);
void tlsa_rrs_free(struct tlsa_rr *rrs, size_t n);

/* SSL_CTX_dane_enable() plus SHA-256/SHA-512 digests.  0 ok, -1 err. */
int dane_ctx_init(SSL_CTX *ctx, char *err, size_t errlen);

/*
 * Arm one SSL for DANE: SSL_dane_enable(ssl, base) (base = TLSA base
 * domain, also used as SNI), extra reference names for DANE-TA name
 * checks (the policy's decision_host.names: the MX name and its CNAME
 * expansion, RFC 7672 §3.2.2; not the next-hop domain), wildcards only
 * as the whole leftmost label, DANE_FLAG_NO_DANE_EE_NAMECHECKS, and the
 * usable records.  With at least one record it also sets
 * SSL_VERIFY_PEER, so a chain that matches no record fails the
 * handshake.  Returns the number of usable records added (0: all
 * unusable, caller decides), -1 on error.
 */
int dane_ssl_setup(SSL *ssl, const char *base, const char *const *names,
    size_t nnames, const struct tlsa_rr *rrs, size_t nrr, char *err,
    size_t errlen);

/* dane_ssl_setup() with flags; only tests use flags other than 0. */
#define DANE_SETUP_ANY_USAGE	 0x01	/* also PKIX-TA/PKIX-EE (vectors) */
#define DANE_SETUP_EE_NAMECHECKS 0x02	/* name checks for DANE-EE too */
int dane_ssl_setup_ex(SSL *ssl, const char *base, const char *const *names,
    size_t nnames, const struct tlsa_rr *rrs, size_t nrr, int flags,
    char *err, size_t errlen);

/* After a verified handshake: "dane-ta" or "dane-ee" and the matched
 * record as text (caller frees *rec), or NULL if not DANE-verified. */
const char *dane_authority(SSL *ssl, char **rec);

#endif
