/*
 * test_acl_auth.c - unit tests for src/acl.c (allow_clients parsing and
 * matching, IPv4, IPv6, IPv4-mapped IPv6) and src/auth.c (auth_file
 * loading and password checks with hashes made here by libcrypt).
 */

#include <arpa/inet.h>
#include <crypt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acl.h"
#include "auth.h"
#include "t.h"

static int
match(const struct acl *acl, const char *ip)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;

	memset(&sin, 0, sizeof(sin));
	memset(&sin6, 0, sizeof(sin6));
	if (inet_pton(AF_INET, ip, &sin.sin_addr) == 1) {
		sin.sin_family = AF_INET;
		return acl_match(acl, (struct sockaddr *)&sin);
	}
	if (inet_pton(AF_INET6, ip, &sin6.sin6_addr) == 1) {
		sin6.sin6_family = AF_INET6;
		return acl_match(acl, (struct sockaddr *)&sin6);
	}
	fprintf(stderr, "test bug: %s\n", ip);
	return -1;
}

static void
test_acl(void)
{
	struct acl *a;
	char err[256];

	a = acl_parse("127.0.0.0/8 ::1", err, sizeof(err));
	CHECK(a != NULL);
	CHECK(match(a, "127.0.0.1") == 1);
	CHECK(match(a, "127.255.255.254") == 1);
	CHECK(match(a, "128.0.0.1") == 0);
	CHECK(match(a, "::1") == 1);
	CHECK(match(a, "::2") == 0);
	CHECK(match(a, "::ffff:127.0.0.1") == 1);	/* mapped */
	CHECK(match(a, "::ffff:10.0.0.1") == 0);
	CHECK(match(a, "::127.0.0.1") == 0);		/* compatible != mapped */
	acl_free(a);

	a = acl_parse("192.0.2.7, 198.51.100.0/24,2001:db8::/32\t[2001:db8:1::1]"
	    " [fe80::]/10", err, sizeof(err));
	CHECK(a != NULL);
	CHECK(match(a, "192.0.2.7") == 1);
	CHECK(match(a, "192.0.2.8") == 0);
	CHECK(match(a, "198.51.100.255") == 1);
	CHECK(match(a, "198.51.101.0") == 0);
	CHECK(match(a, "2001:db8:ffff::1") == 1);
	CHECK(match(a, "2001:db9::1") == 0);
	CHECK(match(a, "fe80::1") == 1);
	CHECK(match(a, "febf::1") == 1);
	CHECK(match(a, "fec0::1") == 0);
	CHECK(match(a, "::ffff:192.0.2.7") == 1);
	acl_free(a);

	/* host bits below the prefix are ignored; odd prefixes work */
	a = acl_parse("10.1.2.3/9 0.0.0.0/0", err, sizeof(err));
	CHECK(a != NULL);
	CHECK(match(a, "8.8.8.8") == 1);
	CHECK(match(a, "::1") == 0);
	acl_free(a);
	a = acl_parse("10.1.2.3/9", err, sizeof(err));
	CHECK(match(a, "10.127.0.1") == 1);
	CHECK(match(a, "10.128.0.1") == 0);
	acl_free(a);

	/* an IPv4-mapped entry covers the IPv4 client */
	a = acl_parse("::ffff:10.0.0.0/104", err, sizeof(err));
	CHECK(a != NULL);
	CHECK(match(a, "10.9.8.7") == 1);
	CHECK(match(a, "::ffff:10.9.8.7") == 1);
	CHECK(match(a, "11.0.0.1") == 0);
	acl_free(a);

	/* empty list: nobody */
	a = acl_parse("", err, sizeof(err));
	CHECK(a != NULL);
	CHECK(match(a, "127.0.0.1") == 0);
	acl_free(a);
	CHECK(acl_match(NULL, NULL) == 0);

	/* garbage is refused with a reason naming it */
	CHECK(acl_parse("localhost", err, sizeof(err)) == NULL);
	CHECK(strstr(err, "localhost") != NULL);
	CHECK(acl_parse("127.0.0.0/8 10.0.0.0/33", err, sizeof(err)) == NULL);
	CHECK(strstr(err, "10.0.0.0/33") != NULL);
	CHECK(acl_parse("::1/129", err, sizeof(err)) == NULL);
	CHECK(acl_parse("10.0.0.0/", err, sizeof(err)) == NULL);
	CHECK(acl_parse("10.0.0.0/-1", err, sizeof(err)) == NULL);
	CHECK(acl_parse("10.0.0.0/8x", err, sizeof(err)) == NULL);
	CHECK(acl_parse("10.0.0.256", err, sizeof(err)) == NULL);
	CHECK(acl_parse("10.0.0", err, sizeof(err)) == NULL);
	CHECK(acl_parse("[10.0.0.1]", err, sizeof(err)) == NULL);
	CHECK(acl_parse("[::1", err, sizeof(err)) == NULL);
	CHECK(acl_parse("1.2.3.4;5.6.7.8", err, sizeof(err)) == NULL);
	CHECK(acl_parse(NULL, err, sizeof(err)) == NULL);
	acl_free(NULL);
}

static char tmpdir[4096];

static char *
hash(const char *prefix, const char *pw)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data cd;
	char *h;

	if (crypt_gensalt_rn(prefix, 0, NULL, 0, salt, sizeof(salt)) == NULL)
		return NULL;
	memset(&cd, 0, sizeof(cd));
	h = crypt_rn(pw, salt, &cd, sizeof(cd));
	return h != NULL && h[0] != '*' ? strdup(h) : NULL;
}

static char *
write_file(const char *name, const char *text)
{
	static char path[4200];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	if ((fp = fopen(path, "w")) == NULL)
		return NULL;
	fputs(text, fp);
	fclose(fp);
	chmod(path, 0600);
	return path;
}

/* auth_check() from several threads at once (smtpd runs it on the cpu
 * pool): the right answers, and nothing for ThreadSanitizer to report. */
#define AUTH_THREADS	4
static int thread_ok[AUTH_THREADS];

static void *
auth_thread(void *arg)
{
	const struct auth_table *t = *(const struct auth_table **)arg;
	int i, ok = 1;

	for (i = 0; i < 3; i++) {
		ok &= auth_check(t, "alice", "correct horse") == 1;
		ok &= auth_check(t, "bob", "correct horse") == 0;
		ok &= auth_check(t, "mallory", "battery staple") == 0;
		ok &= auth_check(t, "bob", "battery staple") == 1;
	}
	return ok ? &thread_ok[0] : NULL;
}

static void
test_auth_threads(const struct auth_table *t)
{
	pthread_t th[AUTH_THREADS];
	void *res;
	int i;

	for (i = 0; i < AUTH_THREADS; i++)
		CHECK(pthread_create(&th[i], NULL, auth_thread, &t) == 0);
	for (i = 0; i < AUTH_THREADS; i++) {
		res = NULL;
		CHECK(pthread_join(th[i], &res) == 0);
		CHECK(res != NULL);
	}
}

static void
test_auth(void)
{
	struct auth_table *t;
	char *y, *six, *md5, text[2048], err[512], *path;
	struct crypt_data cd;

	y = hash("$y$", "correct horse");
	six = hash("$6$", "battery staple");
	CHECK(y != NULL && strncmp(y, "$y$", 3) == 0);
	CHECK(six != NULL && strncmp(six, "$6$", 3) == 0);
	if (y == NULL || six == NULL)
		return;

	snprintf(text, sizeof(text),
	    "# users allowed to relay\n"
	    "\n"
	    "alice:%s\n"
	    "  bob : %s  \n"
	    "carol:!%s\n", y, six, six);
	path = write_file("auth_ok", text);
	t = auth_load(path, err, sizeof(err));
	CHECK(t != NULL);
	if (t == NULL) {
		fprintf(stderr, "auth_load: %s\n", err);
		return;
	}
	CHECK(auth_count(t) == 3);
	CHECK(auth_check(t, "alice", "correct horse") == 1);
	CHECK(auth_check(t, "alice", "correct horsE") == 0);
	CHECK(auth_check(t, "alice", "") == 0);
	CHECK(auth_check(t, "bob", "battery staple") == 1);
	CHECK(auth_check(t, "bob", "correct horse") == 0);
	CHECK(auth_check(t, "Alice", "correct horse") == 0);
	CHECK(auth_check(t, "mallory", "correct horse") == 0);
	CHECK(auth_check(t, "carol", "battery staple") == 0);	/* locked */
	CHECK(auth_check(t, NULL, "x") == 0);
	CHECK(auth_check(NULL, "alice", "x") == 0);
	test_auth_threads(t);
	auth_free(t);
	auth_free(NULL);

	/* weak hashes are refused at load, with file:line */
	memset(&cd, 0, sizeof(cd));
	md5 = crypt_rn("pw", "$1$abcdefgh$", &cd, sizeof(cd));
	snprintf(text, sizeof(text), "alice:%s\nbob:%s\n", y,
	    md5 != NULL && md5[0] != '*' ? md5 : "$1$abcdefgh$xxxxxxxxxxxxxxxxxxxxxx");
	path = write_file("auth_md5", text);
	CHECK(auth_load(path, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "auth_md5:2:") != NULL);
	CHECK(strstr(err, "MD5") != NULL);

	path = write_file("auth_des", "alice:abJnggxhB/yWI\n");
	CHECK(auth_load(path, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "auth_des:1:") != NULL && strstr(err, "DES"));

	path = write_file("auth_plain", "alice:secret\n");
	CHECK(auth_load(path, err, sizeof(err)) == NULL);

	/* malformed lines */
	path = write_file("auth_nocolon", "# c\nalice\n");
	CHECK(auth_load(path, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "auth_nocolon:2:") != NULL);
	snprintf(text, sizeof(text), "alice:%s\nalice:%s\n", y, six);
	path = write_file("auth_dup", text);
	CHECK(auth_load(path, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "duplicate") != NULL);
	path = write_file("auth_empty", "alice:\n");
	CHECK(auth_load(path, err, sizeof(err)) == NULL);
	path = write_file("auth_badhash", "alice:$6$\n");
	CHECK(auth_load(path, err, sizeof(err)) == NULL);
	path = write_file("auth_setting", "alice:$6$saltsalt$\n");
	CHECK(auth_load(path, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "malformed") != NULL);
	snprintf(text, sizeof(text), ":%s\n", y);
	path = write_file("auth_nouser", text);
	CHECK(auth_load(path, err, sizeof(err)) == NULL);
	snprintf(text, sizeof(text), "al ice:%s\n", y);
	path = write_file("auth_space", text);
	CHECK(auth_load(path, err, sizeof(err)) == NULL);
	CHECK(auth_load("/nonexistent/auth", err, sizeof(err)) == NULL);
	CHECK(strstr(err, "/nonexistent/auth") != NULL);

	/* an empty file is a valid (empty) table */
	path = write_file("auth_none", "# nobody\n");
	t = auth_load(path, err, sizeof(err));
	CHECK(t != NULL && auth_count(t) == 0);
	CHECK(auth_check(t, "alice", "x") == 0);
	auth_free(t);

	free(y);
	free(six);
}

int
main(void)
{
	const char *base = getenv("DR_TMPDIR");
	int r;

	snprintf(tmpdir, sizeof(tmpdir), "%s/test_acl_auth.XXXXXX",
	    base != NULL && *base ? base : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_acl();
	test_auth();
	r = t_done();
	{
		char cmd[4200 + 16];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", tmpdir);
	}
	return r;
}
