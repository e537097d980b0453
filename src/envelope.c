/*
 * envelope.c - a message's envelope: in memory (struct spool_env), and
 * its text form in the spool (format, parse, escaping).  Pure: no files;
 * spool.c reads and writes the text, fuzz_spool_env tests the parser.
 *
 * Envelope format, version 1 - text, one "key value" line each, LF ends:
 *   danerelay-envelope 1
 *   id 65A1B2C3D4E5F6A7
 *   created 1700000000          (unix time)
 *   size 1234                   (bytes of ID.msg)
 *   sender alice@example.org    ("sender" alone: the null sender <>)
 *   client-addr, client-helo, auth-user, envid, ret   (optional strings)
 *   body-8bit, smtputf8, hold, bounce, report, warned (optional, 0 or 1)
 *   requiretls, tls-required-no (optional, 0 or 1; issue #17)
 *   rcpt bob@example.net        (starts a recipient; its lines follow)
 *   rcpt-state pending          (pending | delivered | failed)
 *   rcpt-attempts 0
 *   rcpt-next 0                 (unix time of the next attempt, 0 = now)
 *   rcpt-orcpt, rcpt-relay, rcpt-error                (optional strings)
 *   rcpt-notify SUCCESS,DELAY   (optional: NOTIFY, dsn.h's canonical form)
 *   rcpt-relayed 1              (optional: a "relayed" DSN is owed)
 *   end
 * The keys of issue #17 (requiretls, tls-required-no, rcpt-notify,
 * rcpt-relayed) are optional and written only when set: every envelope
 * an older danerelay wrote is read as before (no NOTIFY, no flags), and
 * an envelope without those features stays readable by the older one.
 * In values every byte 0x00-0x20, 0x7f and '%' is written as %XX; other
 * bytes (UTF-8 addresses) are written as they are.  So nothing a client or
 * a remote server puts into an address or a reply can add a line or a
 * field.  The parser is strict: unknown or repeated keys, raw control
 * bytes, bad escapes, %00, numbers out of range, a missing "end" or
 * anything after it are errors, reported as "line N: reason".  Limits:
 * 64 KiB per decoded value (rcpt-error is cut to 4 KiB when written),
 * 100000 recipients, 32 MiB per envelope; the writer keeps to them, so
 * whatever it writes the parser reads back.
 *
 * Moved out of spool.c unchanged (issue #15); the functions keep their
 * spool_env_* names.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "dsn.h"
#include "envelope.h"
#include "log.h"
#include "util.h"

#define ENV_MAGIC	"danerelay-envelope 1"
#define ENV_MAXVALUE	(64 * 1024)		/* decoded bytes of one value */
#define ENV_MAXERROR	4096			/* rcpt-error is cut here */

const char *
rcpt_state_name(enum rcpt_state s)
{
	switch (s) {
	case RCPT_PENDING:
		return "pending";
	case RCPT_DELIVERED:
		return "delivered";
	case RCPT_FAILED:
		return "failed";
	case RCPT_DELETED:
		return "deleted";
	}
	return "unknown";
}

/* ---------------------------------------------------------------- */
/* Envelopes in memory. */

struct spool_env *
spool_env_new(void)
{
	return xcalloc(1, sizeof(struct spool_env));
}

static void
rcpt_clear(struct spool_rcpt *r)
{
	free(r->addr);
	free(r->orcpt);
	free(r->last_error);
	free(r->relay);
}

void
spool_env_free(struct spool_env *env)
{
	size_t i;

	if (env == NULL)
		return;
	for (i = 0; i < env->nrcpt; i++)
		rcpt_clear(&env->rcpts[i]);
	free(env->rcpts);
	free(env->sender);
	free(env->client_addr);
	free(env->client_helo);
	free(env->auth_user);
	free(env->envid);
	free(env->ret);
	free(env);
}

struct spool_rcpt *
spool_env_add_rcpt(struct spool_env *env, const char *addr)
{
	struct spool_rcpt *r;

	env->rcpts = xrealloc(env->rcpts,
	    (env->nrcpt + 1) * sizeof(struct spool_rcpt));
	r = &env->rcpts[env->nrcpt++];
	memset(r, 0, sizeof(*r));
	r->addr = xstrdup(addr);
	r->state = RCPT_PENDING;
	return r;
}

static int
rcpt_at(const struct spool_rcpt *r, const char *domain)
{
	const char *at = strrchr(r->addr, '@');

	return domain == NULL || (at != NULL && strcasecmp(at + 1, domain) ==
	    0);
}

size_t
spool_env_pending_at(const struct spool_env *env, const char *domain,
    size_t *others)
{
	size_t i, n = 0;

	*others = 0;
	for (i = 0; i < env->nrcpt; i++) {
		if (env->rcpts[i].state != RCPT_PENDING)
			continue;
		if (rcpt_at(&env->rcpts[i], domain))
			n++;
		else
			(*others)++;
	}
	return n;
}

size_t
spool_env_settle(struct spool_env *env, const char *domain,
    enum rcpt_state to, const char *note)
{
	size_t i, n = 0;

	for (i = 0; i < env->nrcpt; i++) {
		struct spool_rcpt *r = &env->rcpts[i];

		if (r->state != RCPT_PENDING || !rcpt_at(r, domain))
			continue;
		if (to == RCPT_FAILED) {
			free(r->last_error);
			r->last_error = xstrdup("5.0.0 returned to the sender "
			    "by the postmaster");
		}
		r->state = to;
		n++;
		log_info("%s: to=<%s>, status=%s (%s%s%s)", env->id, r->addr,
		    to == RCPT_FAILED ? "bounced" : "deleted",
		    to == RCPT_FAILED ? "returned to the sender by the "
		    "postmaster" : "removed by the operator",
		    note != NULL ? ", " : "", note != NULL ? note : "");
	}
	return n;
}

static char *
dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

struct spool_env *
spool_env_dup(const struct spool_env *env)
{
	struct spool_env *c = xmalloc(sizeof(*c));
	size_t i;

	*c = *env;
	c->sender = dup_or_null(env->sender);
	c->client_addr = dup_or_null(env->client_addr);
	c->client_helo = dup_or_null(env->client_helo);
	c->auth_user = dup_or_null(env->auth_user);
	c->envid = dup_or_null(env->envid);
	c->ret = dup_or_null(env->ret);
	c->rcpts = xcalloc(env->nrcpt ? env->nrcpt : 1, sizeof(*c->rcpts));
	for (i = 0; i < env->nrcpt; i++) {
		c->rcpts[i] = env->rcpts[i];
		c->rcpts[i].addr = dup_or_null(env->rcpts[i].addr);
		c->rcpts[i].orcpt = dup_or_null(env->rcpts[i].orcpt);
		c->rcpts[i].last_error = dup_or_null(env->rcpts[i].last_error);
		c->rcpts[i].relay = dup_or_null(env->rcpts[i].relay);
	}
	return c;
}

/* ---------------------------------------------------------------- */
/* Envelope text: writing. */

struct sbuf {
	char	*p;
	size_t	 len, cap;
};

static void
sbuf_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		while (b->len + n + 1 > b->cap)
			b->cap = b->cap ? b->cap * 2 : 1024;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
sbuf_str(struct sbuf *b, const char *s)
{
	sbuf_add(b, s, strlen(s));
}

static void
sbuf_num(struct sbuf *b, const char *key, long long v)
{
	char tmp[64];
	int n;

	n = snprintf(tmp, sizeof(tmp), "%s %lld\n", key, v);
	sbuf_add(b, tmp, (size_t)n);
}

static int
needs_escape(unsigned char c)
{
	return c <= 0x20 || c == 0x7f || c == '%';
}

/* "key value\n" with the value escaped and cut at max bytes; nothing
 * for a NULL value. */
static void
sbuf_kv_max(struct sbuf *b, const char *key, const char *v, size_t max)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p, *end;
	char esc[3];

	if (v == NULL)
		return;
	end = (const unsigned char *)v + strnlen(v, max);
	sbuf_str(b, key);
	if (*v != '\0')
		sbuf_add(b, " ", 1);
	for (p = (const unsigned char *)v; p < end; p++) {
		if (!needs_escape(*p)) {
			sbuf_add(b, (const char *)p, 1);
			continue;
		}
		esc[0] = '%';
		esc[1] = hex[*p >> 4];
		esc[2] = hex[*p & 0xf];
		sbuf_add(b, esc, 3);
	}
	sbuf_add(b, "\n", 1);
}

static void
sbuf_kv(struct sbuf *b, const char *key, const char *v)
{
	sbuf_kv_max(b, key, v, ENV_MAXVALUE);
}

char *
spool_env_format(const struct spool_env *env, size_t *lenp)
{
	struct sbuf b = { NULL, 0, 0 };
	const struct spool_rcpt *r;
	size_t i;

	sbuf_str(&b, ENV_MAGIC "\n");
	sbuf_kv(&b, "id", env->id);
	sbuf_num(&b, "created", (long long)env->created);
	sbuf_num(&b, "size", (long long)env->size);
	sbuf_kv(&b, "sender", env->sender ? env->sender : "");
	sbuf_kv(&b, "client-addr", env->client_addr);
	sbuf_kv(&b, "client-helo", env->client_helo);
	sbuf_kv(&b, "auth-user", env->auth_user);
	sbuf_kv(&b, "envid", env->envid);
	sbuf_kv(&b, "ret", env->ret);
	sbuf_num(&b, "body-8bit", env->body_8bit != 0);
	sbuf_num(&b, "smtputf8", env->smtputf8 != 0);
	sbuf_num(&b, "hold", env->hold != 0);
	sbuf_num(&b, "bounce", env->is_bounce != 0);
	sbuf_num(&b, "report", env->is_report != 0);
	if (env->delay_warned)
		sbuf_num(&b, "warned", 1);
	if (env->requiretls)
		sbuf_num(&b, "requiretls", 1);
	if (env->tls_required_no)
		sbuf_num(&b, "tls-required-no", 1);
	for (i = 0; i < env->nrcpt; i++) {
		r = &env->rcpts[i];
		sbuf_kv(&b, "rcpt", r->addr ? r->addr : "");
		sbuf_kv(&b, "rcpt-state", rcpt_state_name(r->state));
		sbuf_num(&b, "rcpt-attempts", r->attempts);
		sbuf_num(&b, "rcpt-next", (long long)r->next_attempt);
		sbuf_kv(&b, "rcpt-orcpt", r->orcpt);
		sbuf_kv(&b, "rcpt-relay", r->relay);
		/* A remote reply can be long; what matters fits in 4K. */
		sbuf_kv_max(&b, "rcpt-error", r->last_error, ENV_MAXERROR);
		if (r->notify != 0) {
			char nb[40];

			sbuf_kv(&b, "rcpt-notify",
			    dsn_notify_format(r->notify, nb, sizeof(nb)));
		}
		if (r->relayed)
			sbuf_num(&b, "rcpt-relayed", 1);
	}
	sbuf_str(&b, "end\n");
	*lenp = b.len;
	return b.p;
}

/* ---------------------------------------------------------------- */
/* Envelope text: parsing. */

enum env_key {
	K_ID, K_CREATED, K_SIZE, K_SENDER, K_CLIENT_ADDR, K_CLIENT_HELO,
	K_AUTH_USER, K_ENVID, K_RET, K_BODY8, K_SMTPUTF8, K_HOLD, K_BOUNCE,
	K_REPORT, K_WARNED, K_REQUIRETLS, K_TLSREQNO,
	K_RCPT, K_R_STATE, K_R_ATTEMPTS, K_R_NEXT, K_R_ORCPT, K_R_RELAY,
	K_R_ERROR, K_R_NOTIFY, K_R_RELAYED,
	K_END,
	K_COUNT
};

static const char *const env_keys[K_COUNT] = {
	[K_ID] = "id", [K_CREATED] = "created", [K_SIZE] = "size",
	[K_SENDER] = "sender", [K_CLIENT_ADDR] = "client-addr",
	[K_CLIENT_HELO] = "client-helo", [K_AUTH_USER] = "auth-user",
	[K_ENVID] = "envid", [K_RET] = "ret", [K_BODY8] = "body-8bit",
	[K_SMTPUTF8] = "smtputf8", [K_HOLD] = "hold", [K_BOUNCE] = "bounce",
	[K_REPORT] = "report", [K_WARNED] = "warned",
	[K_REQUIRETLS] = "requiretls", [K_TLSREQNO] = "tls-required-no",
	[K_RCPT] = "rcpt", [K_R_STATE] = "rcpt-state",
	[K_R_ATTEMPTS] = "rcpt-attempts", [K_R_NEXT] = "rcpt-next",
	[K_R_ORCPT] = "rcpt-orcpt", [K_R_RELAY] = "rcpt-relay",
	[K_R_ERROR] = "rcpt-error", [K_R_NOTIFY] = "rcpt-notify",
	[K_R_RELAYED] = "rcpt-relayed",
	[K_END] = "end",
};

static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decode an escaped value into a new string; NULL with *why on error. */
static char *
value_decode(const char *v, size_t len, const char **why)
{
	char *out, *o;
	size_t i;
	int hi, lo;

	if (len > 3 * (size_t)ENV_MAXVALUE) {
		*why = "value too long";
		return NULL;
	}
	o = out = xmalloc(len + 1);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c == '%') {
			if (len - i < 3 || (hi = hexval((unsigned char)v[i + 1]))
			    == -1 || (lo = hexval((unsigned char)v[i + 2])) == -1) {
				*why = "bad %-escape";
				goto fail;
			}
			if (hi == 0 && lo == 0) {
				*why = "escaped NUL byte";
				goto fail;
			}
			*o++ = (char)(hi << 4 | lo);
			i += 2;
		} else if (c <= 0x20 || c == 0x7f) {
			*why = "unescaped control character or space";
			goto fail;
		} else
			*o++ = (char)c;
	}
	*o = '\0';
	if ((size_t)(o - out) > ENV_MAXVALUE) {
		*why = "value too long";
		goto fail;
	}
	return out;
 fail:
	free(out);
	return NULL;
}

/* A decimal number without sign in [0, max]. */
static int
num_decode(const char *v, size_t len, long long max, long long *out)
{
	long long n = 0;
	size_t i;

	if (len == 0 || len > 19 || (len > 1 && v[0] == '0'))
		return -1;
	for (i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		if (n > (LLONG_MAX - (v[i] - '0')) / 10)
			return -1;
		n = n * 10 + (v[i] - '0');
	}
	if (n > max)
		return -1;
	*out = n;
	return 0;
}

static int
state_decode(const char *v, size_t len, enum rcpt_state *out)
{
	static const enum rcpt_state all[] = { RCPT_PENDING, RCPT_DELIVERED,
	    RCPT_FAILED, RCPT_DELETED };
	size_t i;
	const char *n;

	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		n = rcpt_state_name(all[i]);
		if (strlen(n) == len && memcmp(n, v, len) == 0) {
			*out = all[i];
			return 0;
		}
	}
	return -1;
}

#define TIME_MAX_ENV	((long long)1 << 40)	/* far beyond any real date */

int
spool_env_parse(const char *buf, size_t len, struct spool_env **out,
    char *err, size_t errlen)
{
	struct spool_env *env;
	struct spool_rcpt *r = NULL;
	const char *line, *nl, *val, *why = NULL;
	size_t llen, klen, vlen, lineno = 0;
	unsigned long seen = 0, rseen = 0;
	long long n;
	char **sp, *s;
	int k, *flag, ended = 0;

	*out = NULL;
	if (len > ENV_MAXFILE) {
		snprintf(err, errlen, "envelope larger than %d bytes",
		    ENV_MAXFILE);
		return -1;
	}
	if (memchr(buf, '\0', len) != NULL) {
		snprintf(err, errlen, "NUL byte in envelope");
		return -1;
	}
	env = spool_env_new();
	line = buf;
	while (line < buf + len) {
		lineno++;
		if ((nl = memchr(line, '\n', (size_t)(buf + len - line)))
		    == NULL) {
			why = "last line not terminated (truncated file?)";
			goto bad;
		}
		llen = (size_t)(nl - line);
		if (ended) {
			why = "data after \"end\"";
			goto bad;
		}
		if (lineno == 1) {
			if (llen != strlen(ENV_MAGIC) ||
			    memcmp(line, ENV_MAGIC, llen) != 0) {
				why = "not a danerelay version 1 envelope";
				goto bad;
			}
			line = nl + 1;
			continue;
		}
		val = memchr(line, ' ', llen);
		klen = val ? (size_t)(val - line) : llen;
		if (val != NULL) {
			val++;
			vlen = llen - klen - 1;
		} else {
			val = line + llen;
			vlen = 0;
		}
		for (k = 0; k < K_COUNT; k++)
			if (strlen(env_keys[k]) == klen &&
			    memcmp(env_keys[k], line, klen) == 0)
				break;
		if (k == K_COUNT) {
			why = "unknown key";
			goto bad;
		}
		if (k < K_RCPT) {
			if (env->nrcpt > 0) {
				why = "envelope field after the first rcpt";
				goto bad;
			}
			if (seen & (1UL << k)) {
				why = "repeated key";
				goto bad;
			}
			seen |= 1UL << k;
		} else if (k > K_RCPT && k < K_END) {
			if (r == NULL) {
				why = "rcpt-* line before any rcpt";
				goto bad;
			}
			if (rseen & (1UL << k)) {
				why = "repeated key";
				goto bad;
			}
			rseen |= 1UL << k;
		}
		if ((k == K_RCPT || k == K_END) && r != NULL &&
		    (rseen & (1UL << K_R_STATE | 1UL << K_R_ATTEMPTS |
		    1UL << K_R_NEXT)) != (1UL << K_R_STATE |
		    1UL << K_R_ATTEMPTS | 1UL << K_R_NEXT)) {
			why = "recipient without rcpt-state, rcpt-attempts "
			    "and rcpt-next";
			goto bad;
		}

		sp = NULL;
		flag = NULL;
		switch (k) {
		case K_ID:
			if (vlen != QUEUE_ID_LEN) {
				why = "bad queue id";
				goto bad;
			}
			memcpy(env->id, val, vlen);
			env->id[vlen] = '\0';
			if (!queue_id_valid(env->id)) {
				why = "bad queue id";
				goto bad;
			}
			break;
		case K_CREATED:
			if (num_decode(val, vlen, TIME_MAX_ENV, &n) == -1) {
				why = "bad time";
				goto bad;
			}
			env->created = (time_t)n;
			break;
		case K_SIZE:
			if (num_decode(val, vlen, LLONG_MAX, &n) == -1) {
				why = "bad size";
				goto bad;
			}
			env->size = (off_t)n;
			break;
		case K_SENDER:
			sp = &env->sender;
			break;
		case K_CLIENT_ADDR:
			sp = &env->client_addr;
			break;
		case K_CLIENT_HELO:
			sp = &env->client_helo;
			break;
		case K_AUTH_USER:
			sp = &env->auth_user;
			break;
		case K_ENVID:
			sp = &env->envid;
			break;
		case K_RET:
			sp = &env->ret;
			break;
		case K_BODY8:
			flag = &env->body_8bit;
			break;
		case K_SMTPUTF8:
			flag = &env->smtputf8;
			break;
		case K_HOLD:
			flag = &env->hold;
			break;
		case K_BOUNCE:
			flag = &env->is_bounce;
			break;
		case K_REPORT:
			flag = &env->is_report;
			break;
		case K_WARNED:
			flag = &env->delay_warned;
			break;
		case K_REQUIRETLS:
			flag = &env->requiretls;
			break;
		case K_TLSREQNO:
			flag = &env->tls_required_no;
			break;
		case K_RCPT:
			if (env->nrcpt >= ENV_MAXRCPT) {
				why = "too many recipients";
				goto bad;
			}
			if ((s = value_decode(val, vlen, &why)) == NULL)
				goto bad;
			if (*s == '\0') {
				free(s);
				why = "empty recipient address";
				goto bad;
			}
			r = spool_env_add_rcpt(env, "");
			free(r->addr);
			r->addr = s;
			rseen = 0;
			break;
		case K_R_STATE:
			if (state_decode(val, vlen, &r->state) == -1) {
				why = "bad recipient state";
				goto bad;
			}
			break;
		case K_R_ATTEMPTS:
			if (num_decode(val, vlen, INT_MAX, &n) == -1) {
				why = "bad attempt count";
				goto bad;
			}
			r->attempts = (int)n;
			break;
		case K_R_NEXT:
			if (num_decode(val, vlen, TIME_MAX_ENV, &n) == -1) {
				why = "bad time";
				goto bad;
			}
			r->next_attempt = (time_t)n;
			break;
		case K_R_ORCPT:
			sp = &r->orcpt;
			break;
		case K_R_RELAY:
			sp = &r->relay;
			break;
		case K_R_ERROR:
			sp = &r->last_error;
			break;
		case K_R_NOTIFY:
			if ((s = value_decode(val, vlen, &why)) == NULL)
				goto bad;
			if (dsn_notify_parse(s, &r->notify) == -1) {
				free(s);
				why = "bad NOTIFY value";
				goto bad;
			}
			free(s);
			break;
		case K_R_RELAYED:
			flag = &r->relayed;
			break;
		case K_END:
			if (vlen != 0 || val != line + llen) {
				why = "value after \"end\"";
				goto bad;
			}
			ended = 1;
			break;
		}
		if (sp != NULL) {
			if ((*sp = value_decode(val, vlen, &why)) == NULL)
				goto bad;
		} else if (flag != NULL) {
			if (vlen != 1 || (val[0] != '0' && val[0] != '1')) {
				why = "flag must be 0 or 1";
				goto bad;
			}
			*flag = val[0] == '1';
		}
		line = nl + 1;
	}
	if (lineno == 0) {
		snprintf(err, errlen, "empty envelope");
		goto fail;
	}
	if (!ended) {
		snprintf(err, errlen, "no \"end\" line (truncated file?)");
		goto fail;
	}
	for (k = K_ID; k <= K_SENDER; k++)
		if (!(seen & (1UL << k))) {
			snprintf(err, errlen, "missing \"%s\"", env_keys[k]);
			goto fail;
		}
	if (env->nrcpt == 0) {
		snprintf(err, errlen, "no recipients");
		goto fail;
	}
	*out = env;
	return 0;
 bad:
	snprintf(err, errlen, "line %zu: %s", lineno, why);
 fail:
	spool_env_free(env);
	return -1;
}

