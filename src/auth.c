/*
 * auth.c - SMTP AUTH credential checks against auth_file (RFC 4954 server
 * side; the SASL mechanisms PLAIN, RFC 4616, and LOGIN are decoded in
 * smtp_parse.c, sequenced in smtpd_session.c).
 *
 * Owns the table of "user:hash" lines loaded from auth_file.  Hashing is
 * libcrypt's (crypt_rn(), crypt_checksalt()); nothing is hand-written.
 * Weak methods are refused at load time, so an operator learns about a
 * DES or MD5 hash when starting the daemon, not from a breach.
 *
 * auth_check() runs crypt for unknown users too (with the parameters of a
 * real entry) so response time does not tell which users exist, and
 * compares in constant time.  crypt is CPU-bound (yescrypt's default cost
 * is a few tens of milliseconds per attempt), so smtpd_session.c runs
 * auth_check() on the cpu thread pool, never on an event loop; failed
 * attempts count towards smtpd_max_errors there.  auth_check() is
 * therefore thread-safe: it only reads the table (which the caller keeps
 * alive, see struct smtpd_conf's reference count), and crypt_rn() gets
 * its own struct crypt_data per call (crypt(3) and its static buffer are
 * never used).
 */

#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "auth.h"
#include "log.h"
#include "util.h"

#define AUTH_LINE_MAX	4096

struct auth_user {
	char *name;
	char *hash;		/* crypt(3) string; "!..." / "*..." locked */
};

struct auth_table {
	struct auth_user *users;
	size_t n;
	char *dummy;		/* setting used for unknown users */
};

/* Methods we accept, by prefix.  Everything else is refused. */
static const char *const strong_prefixes[] = {
	"$y$", "$gy$", "$7$", "$2b$", "$2y$", "$6$", "$5$",
};

static int
hash_strong(const char *h)
{
	size_t i;

	for (i = 0; i < sizeof(strong_prefixes) / sizeof(strong_prefixes[0]);
	    i++)
		if (strncmp(h, strong_prefixes[i], strlen(strong_prefixes[i]))
		    == 0)
			return 1;
	return 0;
}

/* A complete hash, not just a setting ("$6$salt$"): the last field,
 * the hash itself, is at least 20 characters of crypt's base64. */
static int
hash_complete(const char *h)
{
	const char *last = strrchr(h, '$');
	size_t n;

	if (last == NULL)
		return 0;
	last++;
	n = strspn(last, "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz");
	return n >= 20 && last[n] == '\0';
}

static const char *
hash_method_name(const char *h)
{
	if (strncmp(h, "$1$", 3) == 0)
		return "MD5-crypt";
	if (strncmp(h, "$3$", 3) == 0)
		return "NTHASH";
	if (strncmp(h, "$md5", 4) == 0)
		return "Sun MD5";
	if (strncmp(h, "$sha1$", 6) == 0)
		return "SHA-1-crypt";
	if (strncmp(h, "$2a$", 4) == 0 || strncmp(h, "$2x$", 4) == 0)
		return "old bcrypt ($2a$/$2x$)";
	if (h[0] == '_')
		return "BSDi DES";
	if (h[0] != '$')
		return "DES";
	return "an unsupported method";
}

static void
table_add(struct auth_table *t, const char *name, const char *hash)
{
	t->users = xrealloc(t->users, (t->n + 1) * sizeof(*t->users));
	t->users[t->n].name = xstrdup(name);
	t->users[t->n].hash = xstrdup(hash);
	t->n++;
}

struct auth_table *
auth_load(const char *path, char *err, size_t errlen)
{
	struct auth_table *t;
	struct stat st;
	FILE *fp;
	char *line = NULL, *p, *colon, *user, *hash;
	size_t cap = 0, i;
	ssize_t len;
	int lineno = 0;

	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(fp), &st) == 0 && (st.st_mode & S_IROTH))
		log_warnx("%s: auth_file is world-readable", path);
	t = xcalloc(1, sizeof(*t));
	while ((len = getline(&line, &cap, fp)) != -1) {
		lineno++;
		if ((size_t)len > AUTH_LINE_MAX) {
			snprintf(err, errlen, "%s:%d: line too long", path,
			    lineno);
			goto fail;
		}
		if ((size_t)len != strlen(line)) {
			snprintf(err, errlen, "%s:%d: NUL byte in line", path,
			    lineno);
			goto fail;
		}
		p = str_trim(line);
		if (*p == '\0' || *p == '#')
			continue;
		if ((colon = strchr(p, ':')) == NULL) {
			snprintf(err, errlen, "%s:%d: expected user:hash",
			    path, lineno);
			goto fail;
		}
		*colon = '\0';
		user = str_trim(p);
		hash = str_trim(colon + 1);
		if (*user == '\0' || strlen(user) > 255) {
			snprintf(err, errlen, "%s:%d: bad user name", path,
			    lineno);
			goto fail;
		}
		for (p = user; *p; p++)
			if ((unsigned char)*p <= ' ' || *p == 0x7f) {
				snprintf(err, errlen, "%s:%d: user name "
				    "contains white space or control "
				    "characters", path, lineno);
				goto fail;
			}
		for (i = 0; i < t->n; i++)
			if (strcmp(t->users[i].name, user) == 0) {
				snprintf(err, errlen, "%s:%d: duplicate user "
				    "\"%s\"", path, lineno, user);
				goto fail;
			}
		if (*hash == '\0') {
			snprintf(err, errlen, "%s:%d: user \"%s\" has no "
			    "password hash", path, lineno, user);
			goto fail;
		}
		if (hash[0] == '!' || hash[0] == '*') {
			table_add(t, user, hash);	/* locked */
			continue;
		}
		if (!hash_strong(hash)) {
			snprintf(err, errlen, "%s:%d: user \"%s\": %s hashes "
			    "are too weak; use yescrypt ($y$) or SHA-512-crypt "
			    "($6$), e.g. from mkpasswd(1)", path, lineno, user,
			    hash_method_name(hash));
			goto fail;
		}
		if (!hash_complete(hash)) {
			snprintf(err, errlen, "%s:%d: user \"%s\": malformed "
			    "password hash", path, lineno, user);
			goto fail;
		}
		switch (crypt_checksalt(hash)) {
		case CRYPT_SALT_OK:
			break;
		case CRYPT_SALT_METHOD_LEGACY:
		case CRYPT_SALT_TOO_CHEAP:
			snprintf(err, errlen, "%s:%d: user \"%s\": hash method "
			    "or cost too weak", path, lineno, user);
			goto fail;
		case CRYPT_SALT_METHOD_DISABLED:
			snprintf(err, errlen, "%s:%d: user \"%s\": hash method "
			    "disabled in libcrypt", path, lineno, user);
			goto fail;
		default:
			snprintf(err, errlen, "%s:%d: user \"%s\": malformed "
			    "password hash", path, lineno, user);
			goto fail;
		}
		table_add(t, user, hash);
		if (t->dummy == NULL)
			t->dummy = xstrdup(hash);
	}
	if (ferror(fp)) {
		snprintf(err, errlen, "%s: read error: %s", path,
		    strerror(errno));
		goto fail;
	}
	free(line);
	fclose(fp);
	return t;
 fail:
	free(line);
	fclose(fp);
	auth_free(t);
	return NULL;
}

size_t
auth_count(const struct auth_table *t)
{
	return t == NULL ? 0 : t->n;
}

int
auth_check(const struct auth_table *t, const char *user, const char *pass)
{
	struct crypt_data *cd;
	const char *hash = NULL, *res;
	size_t i, hl;
	int known = 0, ok = 0, r;

	if (t == NULL || user == NULL || pass == NULL)
		return 0;
	for (i = 0; i < t->n; i++)
		if (strcmp(t->users[i].name, user) == 0) {
			hash = t->users[i].hash;
			known = 1;
			break;
		}
	if (hash == NULL || hash[0] == '!' || hash[0] == '*') {
		/* spend the same time as for a real user */
		if ((hash = t->dummy) == NULL)
			return 0;
		known = 0;
	}
	cd = xcalloc(1, sizeof(*cd));
	res = crypt_rn(pass, hash, cd, (int)sizeof(*cd));
	if (res == NULL || res[0] == '*') {
		r = -1;
		goto out;
	}
	hl = strlen(hash);
	if (strlen(res) == hl && CRYPTO_memcmp(res, hash, hl) == 0)
		ok = 1;
	r = known && ok ? 1 : 0;
 out:
	OPENSSL_cleanse(cd, sizeof(*cd));
	free(cd);
	return r;
}

void
auth_free(struct auth_table *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->n; i++) {
		free(t->users[i].name);
		OPENSSL_cleanse(t->users[i].hash, strlen(t->users[i].hash));
		free(t->users[i].hash);
	}
	free(t->users);
	free(t->dummy);
	free(t);
}
