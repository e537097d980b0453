/*
 * dkim.c - DKIM signing (RFC 6376; Ed25519 RFC 8463) for relayed mail
 * and TLSRPT reports (RFC 8460 §3), with OpenDKIM's libopendkim doing the
 * canonicalisation and the signature: nothing of DKIM is hand-written.
 *
 * The key table (dkim_key_table), one key per line:
 *
 *	domain  selector  keyfile  algorithm  [s=SERVICES]
 *
 * algorithm "rsa-sha256" (an RSA key of at least 1024 bits; 2048 is what
 * receivers want) or "ed25519-sha256"; SERVICES "*" (default), "email",
 * "tlsrpt" or "email:tlsrpt" (the record's s= tag).  A relative keyfile
 * is relative to the table's directory.  '#' starts a comment.  Several
 * lines per domain sign the mail several times (dual signing: RSA and
 * Ed25519).  Every key file is read and checked at load (start, reload,
 * danerelayd -n): a bad line or key refuses the table with "file:line".
 *
 * Signing: relaxed/relaxed, the header fields RFC 6376 §5.4.1 recommends
 * (OpenDKIM's default list, dkim_should_signhdrs), From, To, Subject and
 * Date oversigned (an added second one breaks the signature), the whole
 * body, t= set.  The signatures are header fields put in front of the
 * message; the message itself is never changed.  dkim_sign_msg() is
 * thread-safe: the daemon calls it on its cpu pool (smtpd_session.c).
 *
 * Rotation: lines of one domain and algorithm form a group in file order.
 * Its first line is the key in use; a later line (added by "danerelay
 * dkim rotate") is pending until the daemon has seen its record in DNS
 * (dkim_key_seen(): validated answer, the same public key); then the
 * newest seen line signs and the earlier ones are old: not used, but
 * still printed by "dkim dns" until the operator removes their line after
 * the grace period.  What was seen is kept for the life of the process,
 * so a reload does not go back to the old key.
 *
 * Keys are kept as their PEM text, which libopendkim parses per
 * signature (some 50 us for RSA-2048, next to ~1.5 ms for the signature).
 */

#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <opendkim/dkim.h>

#include "dkim.h"
#include "util.h"

#define DKIM_TABLE_MAX	(1024 * 1024)	/* the table file */
#define DKIM_KEY_MAX	(64 * 1024)	/* one key file */
#define DKIM_LINE_MAX	4096
#define DKIM_HDR_MARGIN	78
#define DKIM_CHUNK	(64 * 1024)

struct dkim_key {
	char		*domain;
	char		*selector;
	char		*keyfile;
	enum dkim_alg	 alg;
	int		 services;
	int		 line;
	time_t		 created;
	char		*pem;		/* NUL-terminated; NULL with NOKEYS */
	char		*pub;		/* base64 of the record's p= */
	int		 first;		/* first of its group */
};

struct dkim_table {
	int		 refs;		/* atomic */
	char		*path;
	struct dkim_key	*keys;
	size_t		 n;
	DKIM_LIB	*lib;
};

static void *lib_malloc(void *closure, size_t n);
static void lib_free(void *closure, void *p);

/* Oversigned: a second one added in transit breaks the signature. */
static const char *const oversign[] = { "from", "to", "subject", "date",
    NULL };

int
dkim_alg_parse(const char *s, enum dkim_alg *out)
{
	if (strcasecmp(s, "rsa-sha256") == 0 || strcasecmp(s, "rsa") == 0 ||
	    strcasecmp(s, "rsa-2048") == 0)
		*out = DKIM_ALG_RSA_SHA256;
	else if (strcasecmp(s, "ed25519-sha256") == 0 ||
	    strcasecmp(s, "ed25519") == 0)
		*out = DKIM_ALG_ED25519_SHA256;
	else
		return -1;
	return 0;
}

const char *
dkim_alg_name(enum dkim_alg a)
{
	return a == DKIM_ALG_ED25519_SHA256 ? "ed25519-sha256" : "rsa-sha256";
}

const char *
dkim_key_state_name(enum dkim_key_state s)
{
	switch (s) {
	case DKIM_KEY_ACTIVE:
		return "active";
	case DKIM_KEY_PENDING:
		return "pending";
	case DKIM_KEY_OLD:
		return "old";
	}
	return "?";
}

/* ---------------------------------------------------------------- */
/* Keys seen in DNS (rotation), for the whole process. */

static pthread_mutex_t seen_mtx = PTHREAD_MUTEX_INITIALIZER;
static char **seen;		/* "domain selector pub" */
static size_t nseen;

static int
key_seen(const struct dkim_key *k)
{
	char *s;
	size_t i;
	int r = 0;

	if (k->pub == NULL)
		return 0;
	s = xasprintf("%s %s %s", k->domain, k->selector, k->pub);
	pthread_mutex_lock(&seen_mtx);
	for (i = 0; i < nseen && !r; i++)
		r = strcmp(seen[i], s) == 0;
	pthread_mutex_unlock(&seen_mtx);
	free(s);
	return r;
}

void
dkim_key_seen(const struct dkim_table *t, size_t i)
{
	const struct dkim_key *k;

	if (i >= t->n || (k = &t->keys[i])->pub == NULL || key_seen(k))
		return;
	pthread_mutex_lock(&seen_mtx);
	seen = xrealloc(seen, (nseen + 1) * sizeof(*seen));
	seen[nseen++] = xasprintf("%s %s %s", k->domain, k->selector, k->pub);
	pthread_mutex_unlock(&seen_mtx);
}

/* Usable: the first of its group, or its record was seen. */
static int
key_usable(const struct dkim_key *k)
{
	return k->first || key_seen(k);
}

static enum dkim_key_state
key_state(const struct dkim_table *t, size_t i)
{
	const struct dkim_key *k = &t->keys[i], *o;
	size_t j;

	for (j = i + 1; j < t->n; j++) {
		o = &t->keys[j];
		if (strcmp(o->domain, k->domain) == 0 && o->alg == k->alg &&
		    key_usable(o))
			return DKIM_KEY_OLD;
	}
	return key_usable(k) ? DKIM_KEY_ACTIVE : DKIM_KEY_PENDING;
}

/* ---------------------------------------------------------------- */
/* The key table. */

static void
table_free(struct dkim_table *t)
{
	size_t i;

	for (i = 0; i < t->n; i++) {
		free(t->keys[i].domain);
		free(t->keys[i].selector);
		free(t->keys[i].keyfile);
		if (t->keys[i].pem != NULL) {
			OPENSSL_cleanse(t->keys[i].pem,
			    strlen(t->keys[i].pem));
			free(t->keys[i].pem);
		}
		free(t->keys[i].pub);
	}
	free(t->keys);
	free(t->path);
	if (t->lib != NULL)
		dkim_close(t->lib);
	free(t);
}

struct dkim_table *
dkim_table_ref(struct dkim_table *t)
{
	if (t != NULL)
		__atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED);
	return t;
}

void
dkim_table_unref(struct dkim_table *t)
{
	if (t != NULL && __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) ==
	    0)
		table_free(t);
}

const char *
dkim_table_path(const struct dkim_table *t)
{
	return t->path;
}

/* A domain name as the key table may hold it: LDH labels. */
static int
domain_ok(const char *d)
{
	size_t n = strlen(d), lab = 0;
	const char *p;

	if (n == 0 || n > 253 || d[0] == '.' || d[n - 1] == '.')
		return 0;
	for (p = d; *p; p++) {
		if (*p == '.') {
			if (lab == 0)
				return 0;
			lab = 0;
			continue;
		}
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
			return 0;
		if (++lab > 63)
			return 0;
	}
	return 1;
}

/* A selector: dot-separated LDH labels (RFC 6376 §3.1). */
static int
selector_ok(const char *s)
{
	return strlen(s) <= 63 && domain_ok(s);
}

static int
services_parse(const char *s, int *out)
{
	char buf[64], *p, *tok, *save = NULL;

	*out = 0;
	if (strncasecmp(s, "s=", 2) != 0 || strlen(s + 2) >= sizeof(buf))
		return -1;
	dr_strlcpy(buf, s + 2, sizeof(buf));
	for (p = buf; (tok = strtok_r(p, ":", &save)) != NULL; p = NULL) {
		if (strcmp(tok, "*") == 0)
			*out |= DKIM_SVC_ALL;
		else if (strcasecmp(tok, "email") == 0)
			*out |= DKIM_SVC_EMAIL;
		else if (strcasecmp(tok, "tlsrpt") == 0)
			*out |= DKIM_SVC_TLSRPT;
		else
			return -1;
	}
	return *out != 0 ? 0 : -1;
}

static char *
b64(const unsigned char *in, size_t len)
{
	char *out = xmalloc(4 * ((len + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	return out;
}

/* The record's p= of a private key (RFC 6376 §3.6.1: RSA
 * SubjectPublicKeyInfo; RFC 8463 §4: the raw Ed25519 key). */
static char *
pkey_pub(EVP_PKEY *pk)
{
	unsigned char raw[64], *der = NULL;
	size_t rawlen = sizeof(raw);
	int n;
	char *r;

	if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_ED25519) {
		if (EVP_PKEY_get_raw_public_key(pk, raw, &rawlen) != 1)
			return NULL;
		return b64(raw, rawlen);
	}
	if ((n = i2d_PUBKEY(pk, &der)) <= 0)
		return NULL;
	r = b64(der, (size_t)n);
	OPENSSL_free(der);
	return r;
}

/* Read k->keyfile, check it against k->alg, keep its PEM and p=. */
static int
key_load(struct dkim_key *k, char *err, size_t errlen)
{
	char why[512];
	EVP_PKEY *pk = NULL;
	BIO *bio;
	int id;

	if (read_file_max(k->keyfile, DKIM_KEY_MAX, &k->pem, NULL,
	    &k->created, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "key file %s", why);
		return -1;
	}
	if ((bio = BIO_new_mem_buf(k->pem, -1)) != NULL)
		pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (pk == NULL) {
		snprintf(err, errlen, "key file %s: not a PEM private key",
		    k->keyfile);
		return -1;
	}
	id = EVP_PKEY_get_base_id(pk);
	if (k->alg == DKIM_ALG_RSA_SHA256 && (id != EVP_PKEY_RSA ||
	    EVP_PKEY_get_bits(pk) < 1024)) {
		snprintf(err, errlen, "key file %s: rsa-sha256 needs an RSA "
		    "key of at least 1024 bits (2048 recommended)", k->keyfile);
		EVP_PKEY_free(pk);
		return -1;
	}
	if (k->alg == DKIM_ALG_ED25519_SHA256 && id != EVP_PKEY_ED25519) {
		snprintf(err, errlen, "key file %s: ed25519-sha256 needs an "
		    "Ed25519 key", k->keyfile);
		EVP_PKEY_free(pk);
		return -1;
	}
	k->pub = pkey_pub(pk);
	EVP_PKEY_free(pk);
	if (k->pub == NULL) {
		snprintf(err, errlen, "key file %s: cannot derive the public "
		    "key", k->keyfile);
		return -1;
	}
	return 0;
}

/* One line (NUL-terminated, no newline) into t; -1 with why. */
static int
parse_line(struct dkim_table *t, char *line, const char *dir, int flags,
    int lineno, char *why, size_t whylen)
{
	char *f[6], *p, *save = NULL;
	struct dkim_key k;
	size_t nf = 0, i;
	int svc = DKIM_SVC_ALL;

	if ((p = strchr(line, '#')) != NULL)
		*p = '\0';
	for (p = line; nf < 6 && (f[nf] = strtok_r(p, " \t\r", &save)) !=
	    NULL; p = NULL)
		nf++;
	if (nf == 0)
		return 0;
	if (nf < 4 || nf > 5) {
		snprintf(why, whylen, "expected \"domain selector keyfile "
		    "algorithm [s=services]\"");
		return -1;
	}
	str_lower(f[0]);
	if (!domain_ok(f[0])) {
		snprintf(why, whylen, "bad domain \"%.100s\"", f[0]);
		return -1;
	}
	if (!selector_ok(f[1])) {
		snprintf(why, whylen, "bad selector \"%.100s\"", f[1]);
		return -1;
	}
	memset(&k, 0, sizeof(k));
	if (dkim_alg_parse(f[3], &k.alg) == -1) {
		snprintf(why, whylen, "unknown algorithm \"%.100s\" (rsa-sha256 "
		    "or ed25519-sha256)", f[3]);
		return -1;
	}
	if (nf == 5 && services_parse(f[4], &svc) == -1) {
		snprintf(why, whylen, "bad services \"%.100s\" (s=*, s=email, "
		    "s=tlsrpt or s=email:tlsrpt)", f[4]);
		return -1;
	}
	for (i = 0; i < t->n; i++)
		if (strcmp(t->keys[i].domain, f[0]) == 0 &&
		    strcasecmp(t->keys[i].selector, f[1]) == 0) {
			snprintf(why, whylen, "%s selector %s already on line "
			    "%d", f[0], f[1], t->keys[i].line);
			return -1;
		}
	k.domain = xstrdup(f[0]);
	k.selector = xstrdup(f[1]);
	k.keyfile = f[2][0] == '/' || dir == NULL ? xstrdup(f[2]) :
	    xasprintf("%s/%s", dir, f[2]);
	k.services = svc;
	k.line = lineno;
	k.first = 1;
	for (i = 0; i < t->n; i++)
		if (strcmp(t->keys[i].domain, k.domain) == 0 &&
		    t->keys[i].alg == k.alg)
			k.first = 0;
	t->keys = xrealloc(t->keys, (t->n + 1) * sizeof(*t->keys));
	t->keys[t->n++] = k;		/* freed with t from here on */
	if (!(flags & DKIM_PARSE_NOKEYS) &&
	    key_load(&t->keys[t->n - 1], why, whylen) == -1)
		return -1;
	return 0;
}

/* The library handle: which header fields are signed and oversigned. */
static int
lib_new(struct dkim_table *t)
{
	const char **sign = (const char **)dkim_should_signhdrs;
	const char **over = (const char **)(uintptr_t)oversign;

	if ((t->lib = dkim_init(lib_malloc, lib_free)) == NULL)
		return -1;
	if (dkim_options(t->lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS, sign,
	    sizeof(sign)) != DKIM_STAT_OK ||
	    dkim_options(t->lib, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS,
	    over, sizeof(over)) != DKIM_STAT_OK)
		return -1;
	return 0;
}

/* table_lines() callback: one line into the table. */
struct table_parse {
	struct dkim_table *t;
	const char *dir;		/* of the table file, or NULL */
	int flags;
};

static int
add_line(char *line, int lineno, void *arg, char *why, size_t whylen)
{
	struct table_parse *tp = arg;

	return parse_line(tp->t, line, tp->dir, tp->flags, lineno, why,
	    whylen);
}

struct dkim_table *
dkim_table_parse(const char *text, size_t len, const char *path, int flags,
    char *err, size_t errlen)
{
	struct dkim_table *t = xcalloc(1, sizeof(*t));
	struct table_parse tp;
	char *dir = NULL, *slash;

	t->refs = 1;
	t->path = xstrdup(path != NULL ? path : "-");
	if (path != NULL && (slash = strrchr(path, '/')) != NULL) {
		dir = xstrdup(path);
		dir[slash - path] = '\0';
		if (dir[0] == '\0') {
			free(dir);
			dir = xstrdup("/");
		}
	}
	tp.t = t;
	tp.dir = dir;
	tp.flags = flags;
	if (table_lines(text, len, t->path, DKIM_LINE_MAX, add_line, &tp, err,
	    errlen) == -1) {
		free(dir);
		table_free(t);
		return NULL;
	}
	free(dir);
	if (!(flags & DKIM_PARSE_NOKEYS) && lib_new(t) == -1) {
		snprintf(err, errlen, "%s: cannot initialise libopendkim",
		    t->path);
		table_free(t);
		return NULL;
	}
	return t;
}

struct dkim_table *
dkim_table_load(const char *path, char *err, size_t errlen)
{
	struct dkim_table *t;
	char *text, why[512];

	if (read_file_max(path, DKIM_TABLE_MAX, &text, NULL, NULL, why,
	    sizeof(why)) == -1) {
		snprintf(err, errlen, "dkim_key_table %s", why);
		return NULL;
	}
	t = dkim_table_parse(text, strlen(text), path, 0, err, errlen);
	free(text);
	return t;
}

size_t
dkim_table_count(const struct dkim_table *t)
{
	return t != NULL ? t->n : 0;
}

int
dkim_table_key(const struct dkim_table *t, size_t i,
    struct dkim_key_info *out)
{
	const struct dkim_key *k;

	if (t == NULL || i >= t->n)
		return -1;
	k = &t->keys[i];
	out->domain = k->domain;
	out->selector = k->selector;
	out->keyfile = k->keyfile;
	out->alg = k->alg;
	out->services = k->services;
	out->line = k->line;
	out->created = k->created;
	out->state = key_state(t, i);
	return 0;
}

/* Entry i signs mail of domain for svc now. */
static int
key_signs(const struct dkim_table *t, size_t i, const char *domain, int svc)
{
	const struct dkim_key *k = &t->keys[i];

	return (k->services & svc) && strcasecmp(k->domain, domain) == 0 &&
	    k->pem != NULL && key_state(t, i) == DKIM_KEY_ACTIVE;
}

int
dkim_table_signs(const struct dkim_table *t, const char *domain, int svc)
{
	size_t i;

	if (t == NULL || domain == NULL)
		return 0;
	for (i = 0; i < t->n; i++)
		if (key_signs(t, i, domain, svc))
			return 1;
	return 0;
}

/* ---------------------------------------------------------------- */
/*
 * Memory of a signing handle.  Debian 12's libopendkim (2.11.0~beta2)
 * does not free an Ed25519 key in dkim_free(): it frees its key holder
 * (struct dkim_crypto, dkim-types.h) but not the EVP_PKEY in it nor the
 * 64-byte signature buffer it points to, some 1.2 KB per Ed25519
 * signature (fixed upstream: OpenDKIM pull request 321).  So libopendkim
 * allocates through lib_malloc()/lib_free(), which keep each handle's
 * blocks on a list of its own (the handle's memory closure), and
 * lib_free() recognises that holder as it is freed: 64 bytes whose
 * "outlen" (third word) is 64 and whose "out" (eighth word) is a block of
 * the same handle still allocated, its "pkey" (fourth word) an Ed25519
 * key; it frees the key, the BIO (sixth word) and that buffer.  Only then
 * are the words read as pointers, so a library that frees them itself
 * (out already gone) or lays the holder out otherwise is left alone.
 */
struct memlist {
	struct blk	*head;
};

struct blk {
	struct blk	*next, *prev;
	struct memlist	*owner;		/* NULL: the library's own */
	size_t		 size;
	max_align_t	 data[];
};

static struct blk *
blk_of(void *p)
{
	return (struct blk *)(void *)((char *)p - offsetof(struct blk, data));
}

static void *
lib_malloc(void *closure, size_t n)
{
	struct memlist *ml = closure;
	struct blk *b = xmalloc(sizeof(*b) + n);

	b->owner = ml;
	b->size = n;
	b->prev = NULL;
	b->next = NULL;
	if (ml != NULL) {
		b->next = ml->head;
		if (ml->head != NULL)
			ml->head->prev = b;
		ml->head = b;
	}
	return b->data;
}

static void
blk_free(struct blk *b)
{
	if (b->owner != NULL) {
		if (b->prev != NULL)
			b->prev->next = b->next;
		else
			b->owner->head = b->next;
		if (b->next != NULL)
			b->next->prev = b->prev;
	}
	free(b);
}

static int
blk_live(const struct memlist *ml, const void *p)
{
	const struct blk *b;

	for (b = ml->head; b != NULL; b = b->next)
		if ((const void *)b->data == p)
			return 1;
	return 0;
}

/* The Ed25519 key holder of libopendkim 2.11, as it is freed. */
static void
ed25519_reap(struct blk *b)
{
	void *w[8];
	EVP_PKEY *pk;

	if (b->owner == NULL || b->size != sizeof(w))
		return;
	memcpy(w, b->data, sizeof(w));
	if ((uintptr_t)w[2] != 64 || w[7] == NULL ||
	    !blk_live(b->owner, w[7]) || (pk = w[3]) == NULL ||
	    EVP_PKEY_get_base_id(pk) != EVP_PKEY_ED25519)
		return;
	EVP_PKEY_free(pk);
	BIO_free(w[5]);
	blk_free(blk_of(w[7]));
}

static void
lib_free(void *closure, void *p)
{
	(void)closure;
	if (p == NULL)
		return;
	ed25519_reap(blk_of(p));
	blk_free(blk_of(p));
}

/* ---------------------------------------------------------------- */
/* Signing. */

/* libopendkim folds with bare LF: the message wants CRLF. */
static void
append_crlf(char **out, size_t *olen, const char *name, const char *v)
{
	size_t n = strlen(name) + 2 * strlen(v) + 3, j = *olen;
	const char *p;

	*out = xrealloc(*out, *olen + n + 1);
	j += (size_t)sprintf(*out + j, "%s", name);
	for (p = v; *p; p++) {
		if (*p == '\n' && (p == v || p[-1] != '\r'))
			(*out)[j++] = '\r';
		(*out)[j++] = *p;
	}
	(*out)[j++] = '\r';
	(*out)[j++] = '\n';
	(*out)[j] = '\0';
	*olen = j;
}

int
dkim_sign_msg(struct dkim_table *t, const char *domain, int svc, const char *id,
    dkim_read_fn *read, void *arg, char **hdrs, char *err, size_t errlen)
{
	DKIM *h[16];
	struct memlist ml[16];
	size_t nh = 0, i, olen = 0, len;
	DKIM_STAT st = DKIM_STAT_OK;
	unsigned char *sig, *buf = NULL;
	ssize_t n;
	int rc = -1;

	*hdrs = NULL;
	if (t == NULL || t->lib == NULL || domain == NULL)
		return 0;
	for (i = 0; i < t->n && nh < sizeof(h) / sizeof(h[0]); i++) {
		if (!key_signs(t, i, domain, svc))
			continue;
		ml[nh].head = NULL;
		h[nh] = dkim_sign(t->lib, (const unsigned char *)id, &ml[nh],
		    (dkim_sigkey_t)t->keys[i].pem,
		    (const unsigned char *)t->keys[i].selector,
		    (const unsigned char *)t->keys[i].domain,
		    DKIM_CANON_RELAXED, DKIM_CANON_RELAXED,
		    t->keys[i].alg == DKIM_ALG_ED25519_SHA256 ?
		    DKIM_SIGN_ED25519SHA256 : DKIM_SIGN_RSASHA256, -1, &st);
		if (h[nh] == NULL) {
			snprintf(err, errlen, "selector %s: %s",
			    t->keys[i].selector, dkim_getresultstr(st));
			goto out;
		}
		nh++;
	}
	if (nh == 0)
		return 0;
	buf = xmalloc(DKIM_CHUNK);
	while ((n = read(arg, buf, DKIM_CHUNK)) > 0)
		for (i = 0; i < nh; i++)
			if ((st = dkim_chunk(h[i], buf, (size_t)n)) !=
			    DKIM_STAT_OK) {
				snprintf(err, errlen, "%s", dkim_geterror(h[i])
				    ? dkim_geterror(h[i]) :
				    dkim_getresultstr(st));
				goto out;
			}
	if (n < 0) {
		snprintf(err, errlen, "reading the message: %s",
		    strerror(errno));
		goto out;
	}
	for (i = 0; i < nh; i++) {
		if ((st = dkim_chunk(h[i], NULL, 0)) != DKIM_STAT_OK ||
		    (st = dkim_eom(h[i], NULL)) != DKIM_STAT_OK ||
		    (st = dkim_getsighdr_d(h[i], strlen(DKIM_SIGNHEADER) + 2,
		    &sig, &len)) != DKIM_STAT_OK) {
			snprintf(err, errlen, "%s", dkim_geterror(h[i]) ?
			    dkim_geterror(h[i]) : dkim_getresultstr(st));
			free(*hdrs);
			*hdrs = NULL;
			goto out;
		}
		append_crlf(hdrs, &olen, DKIM_SIGNHEADER ": ",
		    (const char *)sig);
	}
	rc = (int)nh;
out:
	for (i = 0; i < nh; i++)
		dkim_free(h[i]);
	free(buf);
	return rc;
}

struct membuf {
	const char	*p;
	size_t		 left;
};

static ssize_t
membuf_read(void *arg, void *buf, size_t len)
{
	struct membuf *m = arg;

	if (len > m->left)
		len = m->left;
	memcpy(buf, m->p, len);
	m->p += len;
	m->left -= len;
	return (ssize_t)len;
}

int
dkim_sign_msg_buf(struct dkim_table *t, const char *domain, int svc,
    const char *id, const char *msg, size_t len, char **hdrs, char *err,
    size_t errlen)
{
	struct membuf m = { msg, len };

	return dkim_sign_msg(t, domain, svc, id, membuf_read, &m, hdrs, err,
	    errlen);
}

/* ---------------------------------------------------------------- */
/* Records. */

char *
dkim_key_record(const struct dkim_table *t, size_t i)
{
	const struct dkim_key *k;
	const char *s = "";

	if (t == NULL || i >= t->n || (k = &t->keys[i])->pub == NULL)
		return NULL;
	if (k->services == DKIM_SVC_EMAIL)
		s = "s=email; ";
	else if (k->services == DKIM_SVC_TLSRPT)
		s = "s=tlsrpt; ";
	else if (k->services != DKIM_SVC_ALL)
		s = "s=email:tlsrpt; ";
	return xasprintf("v=DKIM1; k=%s; %sp=%s",
	    k->alg == DKIM_ALG_ED25519_SHA256 ? "ed25519" : "rsa", s, k->pub);
}

char *
dkim_record_zone(const char *domain, const char *selector,
    const char *record)
{
	size_t len = strlen(record), off, n, cap, j;
	char *out, *p;

	cap = strlen(domain) + strlen(selector) + len + 4 * (len / 255 + 2) +
	    64;
	out = xmalloc(cap);
	j = (size_t)snprintf(out, cap, "%s._domainkey.%s. IN TXT (",
	    selector, domain);
	for (off = 0; off < len; off += n) {
		n = len - off > 255 ? 255 : len - off;
		p = out + j;
		j += (size_t)snprintf(p, cap - j, " \"%.*s\"", (int)n,
		    record + off);
	}
	snprintf(out + j, cap - j, " )");
	return out;
}

int
dkim_record_name(const struct dkim_table *t, size_t i, char *buf, size_t len)
{
	int r;

	if (t == NULL || i >= t->n)
		return -1;
	r = snprintf(buf, len, "%s._domainkey.%s", t->keys[i].selector,
	    t->keys[i].domain);
	return r < 0 || (size_t)r >= len ? -1 : 0;
}

/* The value of tag in a tag-list (RFC 6376 §3.2), whitespace removed. */
static int
tag_value(const char *txt, size_t len, const char *tag, char *out,
    size_t outlen)
{
	size_t i = 0, tl = strlen(tag), j;

	while (i < len) {
		while (i < len && isspace((unsigned char)txt[i]))
			i++;
		if (len - i > tl && strncmp(txt + i, tag, tl) == 0) {
			j = i + tl;
			while (j < len && isspace((unsigned char)txt[j]))
				j++;
			if (j < len && txt[j] == '=') {
				size_t o = 0;

				for (j++; j < len && txt[j] != ';'; j++) {
					if (isspace((unsigned char)txt[j]))
						continue;
					if (o + 1 >= outlen)
						return -1;
					out[o++] = txt[j];
				}
				out[o] = '\0';
				return 0;
			}
		}
		while (i < len && txt[i] != ';')
			i++;
		i++;
	}
	return -1;
}

int
dkim_record_match(const struct dkim_table *t, size_t i, const char *txt,
    size_t len, char *err, size_t errlen)
{
	const struct dkim_key *k;
	char v[16], kk[16], p[2048];

	if (t == NULL || i >= t->n || (k = &t->keys[i])->pub == NULL) {
		snprintf(err, errlen, "no key");
		return 0;
	}
	if (tag_value(txt, len, "v", v, sizeof(v)) == 0 &&
	    strcmp(v, "DKIM1") != 0) {
		snprintf(err, errlen, "v=%s is not DKIM1", v);
		return 0;
	}
	if (tag_value(txt, len, "k", kk, sizeof(kk)) == -1)
		dr_strlcpy(kk, "rsa", sizeof(kk));
	if (strcmp(kk, k->alg == DKIM_ALG_ED25519_SHA256 ? "ed25519" :
	    "rsa") != 0) {
		snprintf(err, errlen, "k=%s does not fit %s", kk,
		    dkim_alg_name(k->alg));
		return 0;
	}
	if (tag_value(txt, len, "p", p, sizeof(p)) == -1) {
		snprintf(err, errlen, "no p= tag");
		return 0;
	}
	if (p[0] == '\0') {
		snprintf(err, errlen, "key revoked (empty p=)");
		return 0;
	}
	if (strcmp(p, k->pub) != 0) {
		snprintf(err, errlen, "p= is a different key");
		return 0;
	}
	return 1;
}

/* ---------------------------------------------------------------- */
/* Key generation. */

int
dkim_keygen(enum dkim_alg alg, const char *path, uid_t uid, gid_t gid,
    char *err, size_t errlen)
{
	EVP_PKEY *pk = NULL;
	BIO *bio = NULL;
	FILE *fp = NULL;
	int fd, rc = -1;

	pk = alg == DKIM_ALG_ED25519_SHA256 ?
	    EVP_PKEY_Q_keygen(NULL, NULL, "ED25519") :
	    EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	if (pk == NULL) {
		snprintf(err, errlen, "key generation failed");
		return -1;
	}
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
	    O_NOFOLLOW, 0600)) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if ((int)uid != -1 && fchown(fd, uid, gid) == -1) {
		snprintf(err, errlen, "%s: chown: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		goto out;
	}
	if ((fp = fdopen(fd, "w")) == NULL) {
		close(fd);
		unlink(path);
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (PEM_write_PrivateKey(fp, pk, NULL, NULL, 0, NULL, NULL) != 1 ||
	    fflush(fp) != 0 || fsync(fileno(fp)) != 0) {
		snprintf(err, errlen, "%s: cannot write the key", path);
		fclose(fp);
		unlink(path);
		goto out;
	}
	if (fclose(fp) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		unlink(path);
		goto out;
	}
	rc = 0;
out:
	BIO_free(bio);
	EVP_PKEY_free(pk);
	return rc;
}

/* ---------------------------------------------------------------- */
/* The From: domain of a message being received. */

void
dkim_from_init(struct dkim_from *f)
{
	memset(f, 0, sizeof(*f));
	f->bol = 1;
}

void
dkim_from_scan(struct dkim_from *f, const char *buf, size_t len)
{
	static const char name[] = "from";
	size_t i;
	char c;

	for (i = 0; i < len && !f->done; i++) {
		c = buf[i];
		if (c == '\n') {
			if (f->empty)
				f->done = 1;	/* the empty line */
			f->bol = 1;
			continue;
		}
		if (f->bol) {
			f->bol = 0;
			f->empty = 1;
			if (c == ' ' || c == '\t') {
				/* folded: the same field goes on */
				if (f->in_from && f->len < DKIM_FROM_MAX)
					f->val[f->len++] = ' ';
				f->empty = 0;
				continue;
			}
			f->in_from = 0;
			f->match = 0;
		}
		if (c != '\r')
			f->empty = 0;
		if (f->in_from) {
			if (c != '\r' && f->len < DKIM_FROM_MAX)
				f->val[f->len++] = c;
			continue;
		}
		if (f->found || f->match == SIZE_MAX)
			continue;
		if (f->match < 4 && tolower((unsigned char)c) ==
		    name[f->match])
			f->match++;
		else if (f->match == 4 && (c == ' ' || c == '\t'))
			;
		else if (f->match == 4 && c == ':') {
			f->in_from = f->found = 1;
			f->len = 0;
		} else
			f->match = SIZE_MAX;	/* another field */
	}
	f->val[f->len] = '\0';
}

const char *
dkim_from_domain(const struct dkim_from *f, char *out, size_t outlen)
{
	const char *v = f->val, *a, *e, *at = NULL, *p;
	size_t n;

	if (!f->found)
		return NULL;
	/* "Name <addr>" or a bare addr-spec (RFC 5322 §3.4) */
	if ((a = strrchr(v, '<')) != NULL) {
		a++;
		if ((e = strchr(a, '>')) == NULL)
			return NULL;
	} else {
		a = v;
		e = v + strlen(v);
		if ((p = strchr(v, ',')) != NULL)
			e = p;		/* a list: the first address */
	}
	for (p = a; p < e; p++)
		if (*p == '@')
			at = p;
	if (at == NULL)
		return NULL;
	at++;
	while (at < e && isspace((unsigned char)*at))
		at++;
	while (e > at && (isspace((unsigned char)e[-1]) || e[-1] == ')'))
		e--;
	if ((p = memchr(at, '(', (size_t)(e - at))) != NULL)
		e = p;		/* a trailing comment */
	while (e > at && isspace((unsigned char)e[-1]))
		e--;
	n = (size_t)(e - at);
	if (n == 0 || n >= outlen)
		return NULL;
	memcpy(out, at, n);
	out[n] = '\0';
	str_lower(out);
	return domain_ok(out) ? out : NULL;
}

const char *
dkim_msg_from_domain(const char *msg, size_t len, char *out, size_t outlen)
{
	struct dkim_from f;

	dkim_from_init(&f);
	dkim_from_scan(&f, msg, len);
	return dkim_from_domain(&f, out, outlen);
}
