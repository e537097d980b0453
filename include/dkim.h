/*
 * dkim.h - DKIM signing (RFC 6376, Ed25519 RFC 8463) with OpenDKIM's
 * libopendkim: the key table (dkim_key_table), the signing of one message,
 * the From: domain of a message being received, and the key records to
 * publish.  See dkim.c's top comment for the rules.
 */
#ifndef DR_DKIM_H
#define DR_DKIM_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

enum dkim_alg {
	DKIM_ALG_RSA_SHA256 = 0,	/* "rsa-sha256" (key: RSA, >= 1024) */
	DKIM_ALG_ED25519_SHA256,	/* "ed25519-sha256" (RFC 8463) */
};
int dkim_alg_parse(const char *s, enum dkim_alg *out);
const char *dkim_alg_name(enum dkim_alg a);

/* Services of a key (its record's s= tag, RFC 6376 §3.6.1; "tlsrpt" is
 * RFC 8460 §3's). */
#define DKIM_SVC_EMAIL	0x01
#define DKIM_SVC_TLSRPT	0x02
#define DKIM_SVC_ALL	(DKIM_SVC_EMAIL | DKIM_SVC_TLSRPT)	/* "*" */

/* A key's place in its domain's rotation (dkim.c: "Rotation"). */
enum dkim_key_state {
	DKIM_KEY_ACTIVE = 0,	/* signs */
	DKIM_KEY_PENDING,	/* newer, signs once its record is in DNS */
	DKIM_KEY_OLD,		/* superseded: keep the record published for
				 * the grace period, then remove the line */
};
const char *dkim_key_state_name(enum dkim_key_state s);

struct dkim_table;

/* One entry, as dkim_table_key() lists it (strings owned by the table). */
struct dkim_key_info {
	const char	*domain;	/* lower case */
	const char	*selector;
	const char	*keyfile;
	enum dkim_alg	 alg;
	int		 services;	/* DKIM_SVC_* */
	int		 line;		/* in the key table */
	time_t		 created;	/* the key file's mtime */
	enum dkim_key_state state;
};

/* Load the key table at path: every line parsed, every key file read
 * and checked against its algorithm.  NULL and "path:line: why" in err on
 * the first bad line or unusable key. */
struct dkim_table *dkim_table_load(const char *path, char *err,
    size_t errlen);
/* The parser alone, on text (for tests and the fuzzer: DKIM_PARSE_NOKEYS
 * reads no key file). */
#define DKIM_PARSE_NOKEYS	0x01
struct dkim_table *dkim_table_parse(const char *text, size_t len,
    const char *path, int flags, char *err, size_t errlen);
struct dkim_table *dkim_table_ref(struct dkim_table *t);
void dkim_table_unref(struct dkim_table *t);	/* accepts NULL */
const char *dkim_table_path(const struct dkim_table *t);

/* The key table as a list (a later "danerelay check" and /metrics). */
size_t dkim_table_count(const struct dkim_table *t);
int dkim_table_key(const struct dkim_table *t, size_t i,
    struct dkim_key_info *out);

/* 1 if mail of domain for service svc gets signed (an active key). */
int dkim_table_signs(const struct dkim_table *t, const char *domain, int svc);

/*
 * Sign one message (RFC 5322 text, CRLF line ends) with every active key
 * of domain for svc: read(arg, buf, len) returns the next bytes (0 at the
 * end, -1 error).  On success *hdrs is the DKIM-Signature: fields to put
 * in front of the message ("DKIM-Signature: ...\r\n" each, folded with
 * CRLF; the caller frees) and the result is the number of signatures;
 * 0: no key (*hdrs NULL); -1 error in err.  Thread-safe.
 */
typedef ssize_t dkim_read_fn(void *arg, void *buf, size_t len);
int dkim_sign_msg(struct dkim_table *t, const char *domain, int svc,
    const char *id, dkim_read_fn *read, void *arg, char **hdrs,
    char *err, size_t errlen);
/* The same for a message in memory. */
int dkim_sign_msg_buf(struct dkim_table *t, const char *domain, int svc,
    const char *id, const char *msg, size_t len, char **hdrs, char *err,
    size_t errlen);

/*
 * Key records.  dkim_key_record(): the TXT data of entry i,
 * "v=DKIM1; k=rsa; p=..." (s= when not every service).
 * dkim_record_zone(): the same as a zone file line, split into
 * character-strings of at most 255 octets.  Both allocate.
 * dkim_record_match(): 1 if a published TXT record's data carries the
 * public key of entry i, 0 if not, and why in err.
 */
char *dkim_key_record(const struct dkim_table *t, size_t i);
char *dkim_record_zone(const char *domain, const char *selector,
    const char *record);
int dkim_record_match(const struct dkim_table *t, size_t i,
    const char *txt, size_t len, char *err, size_t errlen);
/* "SELECTOR._domainkey.DOMAIN" of entry i. */
int dkim_record_name(const struct dkim_table *t, size_t i, char *buf,
    size_t len);

/* Rotation: the daemon saw entry i's record published (validated, key
 * matches): from now on a pending key is used, also by tables loaded
 * later (a reload).  Thread-safe. */
void dkim_key_seen(const struct dkim_table *t, size_t i);

/* A new private key (PEM, PKCS#8) written to path with mode 0600 (O_EXCL:
 * never over an existing key); chown'ed to uid/gid unless uid is -1. */
int dkim_keygen(enum dkim_alg alg, const char *path, uid_t uid, gid_t gid,
    char *err, size_t errlen);

/*
 * The From: header field of a message as it streams in (dot-stuffing
 * removed, CRLF line ends), pieces of any size; only the header section
 * is looked at.  dkim_from_domain(): the domain of its (first) address,
 * lower case, or NULL when there is none or it is not a plain domain.
 */
#define DKIM_FROM_MAX	1000
struct dkim_from {
	int	 bol;		/* private: at the start of a line */
	int	 empty;		/*   the line so far is empty */
	size_t	 match;		/*   "from" matched so far, 5: colon next */
	int	 in_from;	/*   capturing the field */
	int	 found;		/*   a From: was seen */
	int	 done;		/* the header section ended */
	size_t	 len;
	char	 val[DKIM_FROM_MAX + 1];
};
void dkim_from_init(struct dkim_from *f);
void dkim_from_scan(struct dkim_from *f, const char *buf, size_t len);
const char *dkim_from_domain(const struct dkim_from *f, char *out,
    size_t outlen);
/* The same for a message in memory. */
const char *dkim_msg_from_domain(const char *msg, size_t len, char *out,
    size_t outlen);

#endif
