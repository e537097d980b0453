/*
 * test_spool.c - unit tests for src/spool.c: commit/load round trips with
 * exact bytes, the envelope format and its escaping against hostile
 * strings, strict parsing, envelope rewrites, recovery at open, removal,
 * listing, id uniqueness and the spool lock.
 */

#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dsn.h"
#include "log.h"
#include "spool.h"
#include "util.h"
#include "t.h"

static char base[8192];

static char *
path(const char *fmt, const char *a, const char *b)
{
	static char buf[16384];
	char rel[4096];

	snprintf(rel, sizeof(rel), fmt, a ? a : "", b ? b : "");
	snprintf(buf, sizeof(buf), "%s/%s", base, rel);
	return buf;
}

static int
file_exists(const char *p)
{
	struct stat st;

	return lstat(p, &st) == 0;
}

static void
put_file(const char *p, const char *content, size_t len)
{
	FILE *f = fopen(p, "w");

	if (f == NULL) {
		perror(p);
		exit(1);
	}
	fwrite(content, 1, len, f);
	fclose(f);
}

static size_t
count_dir(const char *p)
{
	DIR *d = opendir(p);
	struct dirent *de;
	size_t n = 0;

	if (d == NULL)
		return (size_t)-1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* Read all of an fd. */
static unsigned char *
slurp_fd(int fd, size_t *lenp)
{
	unsigned char *buf = NULL;
	size_t len = 0, cap = 0;
	ssize_t n;

	for (;;) {
		if (len == cap) {
			cap = cap ? cap * 2 : 65536;
			buf = xrealloc(buf, cap);
		}
		if ((n = read(fd, buf + len, cap - len)) <= 0)
			break;
		len += (size_t)n;
	}
	*lenp = len;
	return buf;
}

static int
streq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static int
env_equal(const struct spool_env *a, const struct spool_env *b)
{
	size_t i;

	if (strcmp(a->id, b->id) || !streq(a->sender, b->sender) ||
	    a->created != b->created || a->size != b->size ||
	    !streq(a->client_addr, b->client_addr) ||
	    !streq(a->client_helo, b->client_helo) ||
	    !streq(a->auth_user, b->auth_user) ||
	    a->body_8bit != b->body_8bit || a->smtputf8 != b->smtputf8 ||
	    !streq(a->envid, b->envid) || !streq(a->ret, b->ret) ||
	    a->hold != b->hold || a->is_bounce != b->is_bounce ||
	    a->is_report != b->is_report || a->nrcpt != b->nrcpt)
		return 0;
	for (i = 0; i < a->nrcpt; i++) {
		const struct spool_rcpt *x = &a->rcpts[i], *y = &b->rcpts[i];

		if (!streq(x->addr, y->addr) || !streq(x->orcpt, y->orcpt) ||
		    x->state != y->state || x->attempts != y->attempts ||
		    x->next_attempt != y->next_attempt ||
		    !streq(x->last_error, y->last_error) ||
		    !streq(x->relay, y->relay))
			return 0;
	}
	return 1;
}

/* Commit a small message; returns its id in idbuf or "" on failure. */
static void
commit_simple(struct spool *sp, const char *body, char *idbuf)
{
	struct spool_writer *w;
	struct spool_env *env;
	char err[256];

	idbuf[0] = '\0';
	if ((w = spool_writer_new(sp, err, sizeof(err))) == NULL) {
		fprintf(stderr, "writer_new: %s\n", err);
		return;
	}
	spool_writer_write(w, body, strlen(body));
	env = spool_env_new();
	env->sender = xstrdup("sender@example.org");
	spool_env_add_rcpt(env, "rcpt@example.net");
	if (spool_writer_commit(w, env, err, sizeof(err)) == 0)
		dr_strlcpy(idbuf, env->id, QUEUE_ID_LEN + 1);
	else
		fprintf(stderr, "commit: %s\n", err);
	spool_env_free(env);
}

/* The hostile strings a client or a remote server might send us. */
static const char *hostile[] = {
	"",
	"plain@example.org",
	"a b",
	"line\r\nrcpt evil@example.com\r\nend",
	"\nend\n",
	"%", "%%", "%41", "%00", "100% sure%",
	"\x01\x02\x1b[31mred\x1b[0m\x7f",
	"tab\there",
	"\xff\xfe\x80 8-bit \xe2\x82\xac",
	"j\xc3\xb6rg@b\xc3\xbc" "cher.example",	/* UTF-8 */
	"danerelay-envelope 1",
	"   ",
	"trailing space ",
	"\\backslash\\",
};
#define NHOSTILE (sizeof(hostile) / sizeof(hostile[0]))

static void
test_format_escaping(void)
{
	struct spool_env *env, *back;
	char err[256], *text;
	size_t len, i, nl = 0;

	env = spool_env_new();
	queue_id_new(env->id);
	env->sender = xstrdup(hostile[3]);
	env->created = 1700000000;
	env->size = 12345;
	env->client_addr = xstrdup("::1");
	env->client_helo = xstrdup(hostile[10]);
	env->auth_user = xstrdup(hostile[12]);
	env->envid = xstrdup(hostile[8]);
	env->ret = xstrdup("HDRS");
	env->body_8bit = 1;
	env->smtputf8 = 1;
	env->hold = 1;
	env->is_bounce = 0;
	env->is_report = 1;
	for (i = 1; i < NHOSTILE; i++) {
		struct spool_rcpt *r = spool_env_add_rcpt(env, hostile[i]);

		r->orcpt = xstrdup(hostile[(i + 3) % NHOSTILE]);
		r->last_error = xstrdup(hostile[(i + 5) % NHOSTILE]);
		r->relay = xstrdup(hostile[(i + 7) % NHOSTILE]);
		r->state = (enum rcpt_state)(i % 3);
		r->attempts = (int)i * 7;
		r->next_attempt = (time_t)(1700000000 + i);
	}
	text = spool_env_format(env, &len);
	CHECK(text != NULL);
	CHECK(strlen(text) == len);
	/* One line per field: nothing injected a line break. */
	for (i = 0; i < len; i++)
		if (text[i] == '\n')
			nl++;
	/* magic id created size sender 5 strings 5 flags + 7 per rcpt + end */
	CHECK(nl == 1 + 4 + 5 + 5 + 7 * (NHOSTILE - 1) + 1);
	/* No raw control bytes other than the LFs. */
	for (i = 0; i < len; i++)
		if ((unsigned char)text[i] < 0x20 && text[i] != '\n')
			break;
	CHECK(i == len);
	CHECK(spool_env_parse(text, len, &back, err, sizeof(err)) == 0);
	if (back != NULL) {
		CHECK(env_equal(env, back));
		spool_env_free(back);
	}
	free(text);

	/* Null sender and empty strings survive; NULL stays NULL. */
	free(env->sender);
	env->sender = xstrdup("");
	free(env->envid);
	env->envid = NULL;
	free(env->client_helo);
	env->client_helo = xstrdup("");
	text = spool_env_format(env, &len);
	CHECK(strstr(text, "\nsender\n") != NULL);
	CHECK(spool_env_parse(text, len, &back, err, sizeof(err)) == 0);
	if (back != NULL) {
		CHECK_STR(back->sender, "");
		CHECK_STR(back->client_helo, "");
		CHECK(back->envid == NULL);
		CHECK(env_equal(env, back));
		spool_env_free(back);
	}
	free(text);
	spool_env_free(env);
}

/*
 * Issue #17: NOTIFY, "relayed", REQUIRETLS and TLS-Required: No survive
 * the text form; an envelope as the code before wrote it (without them)
 * still parses, to no NOTIFY and no flags; the new keys are written only
 * when set, so an envelope without them is the old format exactly.
 */
static void
test_dsn_fields(void)
{
	static const char old[] =
	    "danerelay-envelope 1\n"
	    "id 0123456789ABCDEF\n"
	    "created 1700000000\n"
	    "size 10\n"
	    "sender a@example.org\n"
	    "client-addr 127.0.0.1\n"
	    "envid E+2B1\n"
	    "ret FULL\n"
	    "body-8bit 0\nsmtputf8 0\nhold 0\nbounce 0\nreport 0\n"
	    "rcpt b@example.net\n"
	    "rcpt-state pending\n"
	    "rcpt-attempts 0\n"
	    "rcpt-next 0\n"
	    "rcpt-orcpt rfc822;b+40example.net\n"
	    "end\n";
	struct spool_env *env, *back;
	struct spool_rcpt *r;
	char err[256], *text;
	size_t len;

	CHECK(spool_env_parse(old, strlen(old), &env, err, sizeof(err)) == 0);
	if (env == NULL)
		return;
	CHECK(env->rcpts[0].notify == 0 && env->rcpts[0].relayed == 0 &&
	    env->requiretls == 0 && env->tls_required_no == 0);
	CHECK_STR(env->envid, "E+2B1");
	CHECK_STR(env->rcpts[0].orcpt, "rfc822;b+40example.net");
	text = spool_env_format(env, &len);
	CHECK(strstr(text, "notify") == NULL && strstr(text, "requiretls") ==
	    NULL && strstr(text, "tls-required") == NULL &&
	    strstr(text, "relayed") == NULL);
	free(text);

	env->requiretls = 1;
	env->tls_required_no = 1;
	env->rcpts[0].notify = DSN_NOTIFY_SUCCESS | DSN_NOTIFY_DELAY;
	env->rcpts[0].relayed = 1;
	r = spool_env_add_rcpt(env, "c@example.net");
	r->notify = DSN_NOTIFY_NEVER;
	text = spool_env_format(env, &len);
	CHECK(strstr(text, "\nrcpt-notify SUCCESS,DELAY\n") != NULL);
	CHECK(strstr(text, "\nrcpt-notify NEVER\n") != NULL);
	CHECK(spool_env_parse(text, len, &back, err, sizeof(err)) == 0);
	if (back != NULL) {
		CHECK(back->requiretls == 1 && back->tls_required_no == 1);
		CHECK(back->rcpts[0].notify ==
		    (DSN_NOTIFY_SUCCESS | DSN_NOTIFY_DELAY));
		CHECK(back->rcpts[0].relayed == 1);
		CHECK(back->rcpts[1].notify == DSN_NOTIFY_NEVER &&
		    back->rcpts[1].relayed == 0);
		spool_env_free(back);
	}
	free(text);
	spool_env_free(env);

	/* a bad NOTIFY value is refused like any bad value */
	{
		static const char bad[] = "danerelay-envelope 1\nrcpt a\n"
		    "rcpt-state pending\nrcpt-attempts 0\nrcpt-next 0\n"
		    "rcpt-notify NEVER,SUCCESS\nend\n";

		CHECK(spool_env_parse(bad, strlen(bad), &env, err,
		    sizeof(err)) == -1 && strstr(err, "NOTIFY") != NULL);
	}
}

static void
test_parse_rejects(void)
{
	static const char good[] =
	    "danerelay-envelope 1\n"
	    "id 0123456789ABCDEF\n"
	    "created 1700000000\n"
	    "size 10\n"
	    "sender a@example.org\n"
	    "rcpt b@example.net\n"
	    "rcpt-state pending\n"
	    "rcpt-attempts 0\n"
	    "rcpt-next 0\n"
	    "end\n";
	static const struct {
		const char *text;
		const char *why;	/* substring of the error */
	} bad[] = {
	    { "", "empty" },
	    { "danerelay-envelope 2\n", "version 1" },
	    { "garbage", "not terminated" },
	    { "danerelay-envelope 1\nid 0123456789ABCDEF\n", "end" },
	    { "danerelay-envelope 1\nid 0123456789abcdef\nend\n", "queue id" },
	    { "danerelay-envelope 1\nid ../../etc/pass\nend\n", "queue id" },
	    { "danerelay-envelope 1\nbogus 1\nend\n", "unknown key" },
	    { "danerelay-envelope 1\nsender a\nsender b\nend\n", "repeated" },
	    { "danerelay-envelope 1\nsender a%2\nend\n", "escape" },
	    { "danerelay-envelope 1\nsender a%G0\nend\n", "escape" },
	    { "danerelay-envelope 1\nsender a%\nend\n", "escape" },
	    { "danerelay-envelope 1\nsender a%00b\nend\n", "NUL" },
	    { "danerelay-envelope 1\nsender a\tb\nend\n", "control" },
	    { "danerelay-envelope 1\nsender a b\nend\n", "control" },
	    { "danerelay-envelope 1\nsender a\r\nend\n", "control" },
	    { "danerelay-envelope 1\ncreated -1\nend\n", "time" },
	    { "danerelay-envelope 1\ncreated +1\nend\n", "time" },
	    { "danerelay-envelope 1\ncreated 01\nend\n", "time" },
	    { "danerelay-envelope 1\ncreated 99999999999999999999\nend\n",
	      "time" },
	    { "danerelay-envelope 1\nsize 9223372036854775808\nend\n", "size" },
	    { "danerelay-envelope 1\nhold 2\nend\n", "flag" },
	    { "danerelay-envelope 1\nhold\nend\n", "flag" },
	    { "danerelay-envelope 1\nrcpt-state pending\nend\n", "before" },
	    { "danerelay-envelope 1\nrcpt a\nrcpt-state lost\nend\n", "state" },
	    { "danerelay-envelope 1\nrcpt\nend\n", "empty recipient" },
	    { "danerelay-envelope 1\nrcpt a\nrcpt-state pending\nend\n",
	      "rcpt-attempts" },
	    { "danerelay-envelope 1\nrcpt a\nrcpt-state pending\n"
	      "rcpt-attempts 1\nrcpt-next 0\nrcpt-attempts 2\nend\n",
	      "repeated" },
	    { "danerelay-envelope 1\nrcpt a\nrcpt-state pending\n"
	      "rcpt-attempts 2147483648\nrcpt-next 0\nend\n", "attempt" },
	    { "danerelay-envelope 1\nrcpt a\nrcpt-state pending\n"
	      "rcpt-attempts 1\nrcpt-next 0\nsender x\nend\n", "after the first" },
	    { "danerelay-envelope 1\nend x\n", "after \"end\"" },
	    { "danerelay-envelope 1\nend\nend\n", "after \"end\"" },
	    { "danerelay-envelope 1\nid 0123456789ABCDEF\ncreated 1\n"
	      "size 1\nend\n", "missing \"sender\"" },
	    { "danerelay-envelope 1\nid 0123456789ABCDEF\ncreated 1\n"
	      "size 1\nsender\nend\n", "no recipients" },
	};
	struct spool_env *env;
	char err[256], *buf;
	size_t i, len;

	CHECK(spool_env_parse(good, strlen(good), &env, err, sizeof(err)) == 0);
	if (env != NULL) {
		CHECK_STR(env->id, "0123456789ABCDEF");
		CHECK(env->size == 10);
		CHECK(env->nrcpt == 1);
		CHECK(env->client_addr == NULL);
		spool_env_free(env);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		env = (struct spool_env *)1;
		CHECK(spool_env_parse(bad[i].text, strlen(bad[i].text), &env,
		    err, sizeof(err)) == -1);
		CHECK(env == NULL);
		if (strstr(err, bad[i].why) == NULL) {
			fprintf(stderr, "case %zu: error \"%s\" lacks \"%s\"\n",
			    i, err, bad[i].why);
			CHECK(0);
		}
	}
	/* Every truncation of a good envelope is refused. */
	for (len = 0; len < strlen(good); len++)
		CHECK(spool_env_parse(good, len, &env, err, sizeof(err)) == -1);
	/* A NUL byte anywhere is refused. */
	buf = xstrdup(good);
	buf[30] = '\0';
	CHECK(spool_env_parse(buf, strlen(good), &env, err, sizeof(err)) == -1);
	CHECK(strstr(err, "NUL") != NULL);
	free(buf);
	/* Data after "end". */
	buf = xasprintf("%sx\n", good);
	CHECK(spool_env_parse(buf, strlen(buf), &env, err, sizeof(err)) == -1);
	free(buf);
}

static void
test_roundtrip(struct spool *sp)
{
	struct spool_writer *w;
	struct spool_env *env, *back;
	unsigned char *data, *got;
	size_t len, glen, i, off, chunk;
	char err[256], id[QUEUE_ID_LEN + 1];
	int fd;

	/* 1 MiB: NUL bytes, every 8-bit value, a 300 KB line, CRLFs. */
	len = 1 << 20;
	data = xmalloc(len);
	for (i = 0; i < len; i++)
		data[i] = (unsigned char)(i * 131 + (i >> 8));
	memset(data + 1000, 'x', 300000);
	memcpy(data + 400000, "\r\n.\r\n\0\0\0", 8);
	memset(data + 500000, 0, 1000);

	CHECK((w = spool_writer_new(sp, err, sizeof(err))) != NULL);
	if (w == NULL)
		return;
	dr_strlcpy(id, spool_writer_id(w), sizeof(id));
	CHECK(queue_id_valid(id));
	/* kept in memory until it passes 1 MiB */
	CHECK(!file_exists(path("tmp/%s.msg", id, NULL)));
	/* Write in varying chunks: 1 byte, odd sizes, bigger than the buffer. */
	for (off = 0, chunk = 1; off < len; off += chunk, chunk = chunk * 3 + 1) {
		if (chunk > len - off)
			chunk = len - off;
		CHECK(spool_writer_write(w, data + off, chunk) == 0);
	}
	CHECK(spool_writer_size(w) == (off_t)len);

	env = spool_env_new();
	env->sender = xstrdup("alice@example.org");
	env->client_addr = xstrdup("127.0.20.1");
	env->client_helo = xstrdup("client.example");
	env->auth_user = xstrdup("alice");
	env->body_8bit = 1;
	env->envid = xstrdup("ENV123");
	env->ret = xstrdup("FULL");
	spool_env_add_rcpt(env, "bob@example.net")->orcpt =
	    xstrdup("rfc822;bob@example.net");
	spool_env_add_rcpt(env, "carol@example.com");
	CHECK(spool_writer_commit(w, env, err, sizeof(err)) == 0);
	CHECK_STR(env->id, id);
	CHECK(env->size == (off_t)len);
	CHECK(env->created > 0);
	CHECK(file_exists(path("queue/%s.msg", id, NULL)));
	/* the envelope is inside ID.msg until a delivery rewrites it */
	CHECK(!file_exists(path("queue/%s.env", id, NULL)));
	CHECK(count_dir(path("tmp", NULL, NULL)) == 0);

	CHECK(spool_env_load(sp, id, &back, err, sizeof(err)) == 0);
	if (back != NULL) {
		CHECK(env_equal(env, back));
		CHECK(back->nrcpt == 2 && back->rcpts[1].state == RCPT_PENDING);
		spool_env_free(back);
	}
	CHECK((fd = spool_data_open(sp, id)) != -1);
	if (fd != -1) {
		CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
		CHECK((fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDONLY);
		got = slurp_fd(fd, &glen);
		/* the data, then the envelope and the trailer */
		CHECK(glen > len && memcmp(got, data, len) == 0);
		CHECK(glen > len && memcmp(got + len, "danerelay-envelope 1\n",
		    21) == 0);
		free(got);
		close(fd);
	}
	CHECK(spool_remove(sp, id) == 0);
	spool_env_free(env);

	/* An empty message is a message too. */
	CHECK((w = spool_writer_new(sp, err, sizeof(err))) != NULL);
	env = spool_env_new();
	env->sender = xstrdup("");
	spool_env_add_rcpt(env, "x@example.net");
	CHECK(spool_writer_commit(w, env, err, sizeof(err)) == 0);
	CHECK(env->size == 0);
	CHECK(spool_env_load(sp, env->id, &back, err, sizeof(err)) == 0);
	if (back != NULL) {
		CHECK_STR(back->sender, "");
		spool_env_free(back);
	}
	CHECK(spool_remove(sp, env->id) == 0);
	spool_env_free(env);
	free(data);
}

static void
test_abort_and_bad_commit(struct spool *sp)
{
	struct spool_writer *w;
	struct spool_env *env;
	char err[256], id[QUEUE_ID_LEN + 1];

	CHECK((w = spool_writer_new(sp, err, sizeof(err))) != NULL);
	dr_strlcpy(id, spool_writer_id(w), sizeof(id));
	CHECK(spool_writer_write(w, "abc", 3) == 0);
	spool_writer_abort(w);
	spool_writer_abort(NULL);
	CHECK(!file_exists(path("tmp/%s.msg", id, NULL)));
	CHECK(count_dir(path("tmp", NULL, NULL)) == 0);

	/* No recipients: refused, nothing left behind. */
	CHECK((w = spool_writer_new(sp, err, sizeof(err))) != NULL);
	dr_strlcpy(id, spool_writer_id(w), sizeof(id));
	CHECK(spool_writer_write(w, "abc", 3) == 0);
	env = spool_env_new();
	env->sender = xstrdup("a@b");
	err[0] = '\0';
	CHECK(spool_writer_commit(w, env, err, sizeof(err)) == -1);
	CHECK(err[0] != '\0');
	CHECK(count_dir(path("tmp", NULL, NULL)) == 0);
	CHECK(!file_exists(path("queue/%s.msg", id, NULL)));
	CHECK(!file_exists(path("queue/%s.env", id, NULL)));
	spool_env_free(env);
}

static void
test_save_states(struct spool *sp)
{
	struct spool_env *env, *back;
	char err[256], id[QUEUE_ID_LEN + 1];
	size_t i;

	commit_simple(sp, "Subject: x\r\n\r\nbody\r\n", id);
	CHECK(id[0] != '\0');
	CHECK(spool_env_load(sp, id, &env, err, sizeof(err)) == 0);
	if (env == NULL)
		return;
	spool_env_add_rcpt(env, "second@example.net");
	for (i = 0; i < NHOSTILE; i++)
		spool_env_add_rcpt(env, hostile[i][0] ? hostile[i] : "e");
	env->rcpts[0].state = RCPT_DELIVERED;
	env->rcpts[0].attempts = 1;
	env->rcpts[0].relay = xstrdup("mx.example.net[127.0.20.5]:25");
	env->rcpts[0].last_error = xstrdup("250 2.0.0 Ok: queued as 1234");
	env->rcpts[1].state = RCPT_FAILED;
	env->rcpts[1].attempts = 3;
	env->rcpts[1].last_error = xstrdup("550 5.1.1 <x>: no such user\r\n"
	    "rcpt-state delivered");
	for (i = 2; i < env->nrcpt; i++) {
		env->rcpts[i].attempts = (int)i;
		env->rcpts[i].next_attempt = 1800000000 + (time_t)i;
		env->rcpts[i].last_error = xstrdup(hostile[i % NHOSTILE]);
	}
	env->hold = 1;
	CHECK(spool_env_save(sp, env, err, sizeof(err)) == 0);
	CHECK(count_dir(path("tmp", NULL, NULL)) == 0);
	CHECK(spool_env_load(sp, id, &back, err, sizeof(err)) == 0);
	if (back != NULL) {
		CHECK(env_equal(env, back));
		CHECK(back->rcpts[0].state == RCPT_DELIVERED);
		CHECK(back->rcpts[1].state == RCPT_FAILED);
		spool_env_free(back);
	}
	/* An enormous remote reply is cut to 4 KiB, and still loads. */
	free(env->rcpts[2].last_error);
	env->rcpts[2].last_error = xmalloc(200001);
	memset(env->rcpts[2].last_error, '%', 200000);
	env->rcpts[2].last_error[200000] = '\0';
	CHECK(spool_env_save(sp, env, err, sizeof(err)) == 0);
	CHECK(spool_env_load(sp, id, &back, err, sizeof(err)) == 0);
	if (back != NULL) {
		CHECK(strlen(back->rcpts[2].last_error) == 4096);
		spool_env_free(back);
	}
	/* Saving twice is fine; saving a removed message is refused. */
	CHECK(spool_env_save(sp, env, err, sizeof(err)) == 0);
	CHECK(spool_remove(sp, id) == 0);
	CHECK(spool_env_save(sp, env, err, sizeof(err)) == -1);
	CHECK(!file_exists(path("queue/%s.env", id, NULL)));
	CHECK(!file_exists(path("queue/%s.msg", id, NULL)));
	/* An invalid id is refused. */
	dr_strlcpy(env->id, "../../../tmp/xx", sizeof(env->id));
	CHECK(spool_env_save(sp, env, err, sizeof(err)) == -1);
	spool_env_free(env);
}

static void
test_remove_and_ids(struct spool *sp)
{
	struct spool_env *env;
	char id[QUEUE_ID_LEN + 1], err[256];

	commit_simple(sp, "hello\r\n", id);
	CHECK(spool_remove(sp, id) == 0);
	CHECK(!file_exists(path("queue/%s.env", id, NULL)));
	CHECK(!file_exists(path("queue/%s.msg", id, NULL)));
	errno = 0;
	CHECK(spool_remove(sp, id) == -1 && errno == ENOENT);
	CHECK(spool_remove(sp, "../queue/x") == -1);
	CHECK(spool_remove(sp, "0123456789abcdef") == -1);
	CHECK(spool_remove(sp, "") == -1);
	CHECK(spool_data_open(sp, "../../etc/passwd") == -1);
	CHECK(spool_data_open(sp, id) == -1);
	CHECK(spool_env_load(sp, id, &env, err, sizeof(err)) == -1);
	CHECK(env == NULL);
	CHECK(spool_env_load(sp, "../lock", &env, err, sizeof(err)) == -1);
}

static int
cmpstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
test_list_and_unique(struct spool *sp)
{
	enum { N = 300 };
	char **mine, **ids, body[64];
	size_t i, n, dups = 0;

	mine = xcalloc(N, sizeof(char *));
	for (i = 0; i < N; i++) {
		mine[i] = xcalloc(1, QUEUE_ID_LEN + 1);
		snprintf(body, sizeof(body), "message %zu\r\n", i);
		commit_simple(sp, body, mine[i]);
		CHECK(mine[i][0] != '\0');
	}
	qsort(mine, N, sizeof(char *), cmpstr);
	for (i = 1; i < N; i++)
		if (strcmp(mine[i - 1], mine[i]) == 0)
			dups++;
	CHECK(dups == 0);

	ids = spool_list_ids(sp, &n);
	CHECK(ids != NULL);
	CHECK(n == N);
	for (i = 1; i < n; i++)
		CHECK(strcmp(ids[i - 1], ids[i]) < 0);
	for (i = 0; i < n && i < N; i++)
		CHECK_STR(ids[i], mine[i]);
	spool_ids_free(ids, n);

	for (i = 0; i < N; i++) {
		CHECK(spool_remove(sp, mine[i]) == 0);
		free(mine[i]);
	}
	free(mine);
	ids = spool_list_ids(sp, &n);
	CHECK(ids != NULL && n == 0);
	spool_ids_free(ids, n);
}

/* 200,000 ids in a row, most within one second: none twice.  With 32
 * random bits after the time, that many ids in one second would collide
 * with a chance of about 1 - e^-4.6 (birthday bound). */
static void
test_ids_unique(void)
{
	enum { N = 200000 };
	char (*ids)[QUEUE_ID_LEN + 1] = xcalloc(N, QUEUE_ID_LEN + 1);
	char **p = xcalloc(N, sizeof(char *));
	size_t i, dups = 0;

	for (i = 0; i < N; i++) {
		queue_id_new(ids[i]);
		p[i] = ids[i];
	}
	qsort(p, N, sizeof(char *), cmpstr);
	for (i = 1; i < N; i++)
		if (strcmp(p[i - 1], p[i]) == 0)
			dups++;
	printf("%d queue ids: %zu twice\n", N, dups);
	CHECK(dups == 0);
	for (i = 0, dups = 0; i < N; i++)
		dups += !queue_id_valid(ids[i]);
	CHECK(dups == 0);
	free(p);
	free(ids);
}

static void
test_recovery(void)
{
	struct spool *sp;
	struct spool_env *env;
	char err[256], good1[QUEUE_ID_LEN + 1], good2[QUEUE_ID_LEN + 1];
	char corrupt[QUEUE_ID_LEN + 1], badsize[QUEUE_ID_LEN + 1];
	char **ids, *text;
	const char *orphan = "00000001AAAAAAAA";
	const char *nodata = "00000002BBBBBBBB";
	size_t n, len;

	sp = spool_open(base, err, sizeof(err));
	CHECK(sp != NULL);
	if (sp == NULL)
		return;
	commit_simple(sp, "good one\r\n", good1);
	commit_simple(sp, "good two\r\n", good2);
	commit_simple(sp, "will be corrupt\r\n", corrupt);
	commit_simple(sp, "wrong size\r\n", badsize);
	/* The envelope of badsize claims a different size. */
	CHECK(spool_env_load(sp, badsize, &env, err, sizeof(err)) == 0);
	spool_close(sp);
	if (env != NULL) {
		env->size = 3;
		text = spool_env_format(env, &len);
		put_file(path("queue/%s.env", badsize, NULL), text, len);
		free(text);
		/* A well-formed envelope whose data is gone. */
		dr_strlcpy(env->id, nodata, sizeof(env->id));
		text = spool_env_format(env, &len);
		put_file(path("queue/%s.env", nodata, NULL), text, len);
		free(text);
		spool_env_free(env);
	}

	/* Crash leftovers. */
	put_file(path("tmp/%s.msg", "0000000012345678", NULL), "partial", 7);
	put_file(path("tmp/%s.env", "0000000012345678", NULL), "danerel", 7);
	put_file(path("tmp/%s.env.123.0", "0000000087654321", NULL), "x", 1);
	put_file(path("queue/%s.msg", orphan, NULL), "no envelope", 11);
	put_file(path("queue/%s.env", corrupt, NULL), "garbage\n", 8);
	put_file(path("queue/README", NULL, NULL), "not ours", 8);

	sp = spool_open(base, err, sizeof(err));
	CHECK(sp != NULL);
	if (sp == NULL)
		return;
	CHECK(count_dir(path("tmp", NULL, NULL)) == 0);
	CHECK(!file_exists(path("queue/%s.msg", orphan, NULL)));
	/* Accepted mail is never deleted: moved aside with its data. */
	CHECK(!file_exists(path("queue/%s.env", corrupt, NULL)));
	CHECK(!file_exists(path("queue/%s.msg", corrupt, NULL)));
	CHECK(file_exists(path("corrupt/%s.env", corrupt, NULL)));
	CHECK(file_exists(path("corrupt/%s.msg", corrupt, NULL)));
	CHECK(file_exists(path("corrupt/%s.env", badsize, NULL)));
	CHECK(file_exists(path("corrupt/%s.msg", badsize, NULL)));
	/* an envelope without data is what a removal leaves: deleted */
	CHECK(!file_exists(path("corrupt/%s.env", nodata, NULL)));
	CHECK(!file_exists(path("queue/%s.env", nodata, NULL)));
	/* Unknown files are left alone. */
	CHECK(file_exists(path("queue/README", NULL, NULL)));
	ids = spool_list_ids(sp, &n);
	CHECK(n == 2);
	if (n == 2) {
		CHECK_STR(ids[0], strcmp(good1, good2) < 0 ? good1 : good2);
		CHECK_STR(ids[1], strcmp(good1, good2) < 0 ? good2 : good1);
	}
	spool_ids_free(ids, n);
	CHECK(spool_env_load(sp, good1, &env, err, sizeof(err)) == 0);
	spool_env_free(env);
	CHECK(spool_remove(sp, good1) == 0);
	CHECK(spool_remove(sp, good2) == 0);
	spool_close(sp);

	/* The same name in corrupt/ again: kept both. */
	sp = spool_open(base, err, sizeof(err));
	commit_simple(sp, "again\r\n", good1);
	spool_close(sp);
	put_file(path("queue/%s.env", good1, NULL), "junk\n", 5);
	put_file(path("corrupt/%s.env", good1, NULL), "older\n", 6);
	sp = spool_open(base, err, sizeof(err));
	CHECK(sp != NULL);
	CHECK(file_exists(path("corrupt/%s.env.1", good1, NULL)));
	CHECK(file_exists(path("corrupt/%s.msg", good1, NULL)));
	spool_close(sp);
	unlink(path("queue/README", NULL, NULL));
}

static void
test_lock_and_readonly(void)
{
	struct spool *sp, *sp2, *ro;
	char err[256], id[QUEUE_ID_LEN + 1], **ids;
	size_t n;

	CHECK((sp = spool_open(base, err, sizeof(err))) != NULL);
	err[0] = '\0';
	CHECK((sp2 = spool_open(base, err, sizeof(err))) == NULL);
	CHECK(strstr(err, "in use") != NULL);
	spool_close(sp2);
	commit_simple(sp, "x\r\n", id);
	/* A leftover in tmp/ is not touched by a read-only open. */
	put_file(path("tmp/%s.msg", "0000000099999999", NULL), "p", 1);
	CHECK((ro = spool_open_flags(base, SPOOL_NO_RECOVER, err,
	    sizeof(err))) != NULL);
	CHECK(file_exists(path("tmp/%s.msg", "0000000099999999", NULL)));
	ids = spool_list_ids(ro, &n);
	CHECK(n == 1 && strcmp(ids[0], id) == 0);
	spool_ids_free(ids, n);
	CHECK(spool_remove(ro, id) == 0);
	CHECK(spool_in_use(ro) == 1);
	CHECK(spool_in_use(sp) == 0);
	spool_close(sp);
	CHECK(spool_in_use(ro) == 0);
	/* Testing the lock never takes it. */
	CHECK((sp = spool_open(base, err, sizeof(err))) != NULL);
	spool_close(sp);
	spool_close(ro);
	unlink(path("tmp/%s.msg", "0000000099999999", NULL));
	/* Read-only open never creates a spool. */
	CHECK(spool_open_flags(path("nonexistent", NULL, NULL),
	    SPOOL_NO_RECOVER, err, sizeof(err)) == NULL);
	CHECK(!file_exists(path("nonexistent", NULL, NULL)));
	CHECK(spool_open("", err, sizeof(err)) == NULL);
	CHECK(spool_open(NULL, err, sizeof(err)) == NULL);
}

int
main(void)
{
	struct spool *sp;
	struct stat st;
	const char *tmp = getenv("DR_TMPDIR");
	char tmpl[4096], err[256];
	int own = 0;

	log_init("test_spool", 1, 0);
	if (tmp != NULL && *tmp != '\0')
		snprintf(base, sizeof(base), "%s/spool", tmp);
	else {
		dr_strlcpy(tmpl, "/tmp/test_spool.XXXXXX", sizeof(tmpl));
		if (mkdtemp(tmpl) == NULL) {
			perror("mkdtemp");
			return 1;
		}
		snprintf(base, sizeof(base), "%s/spool", tmpl);
		own = 1;
	}
	test_format_escaping();
	test_parse_rejects();
	test_dsn_fields();

	/* Creates spool_dir and its subdirectories, 0700. */
	sp = spool_open(base, err, sizeof(err));
	CHECK(sp != NULL);
	if (sp == NULL) {
		fprintf(stderr, "spool_open: %s\n", err);
		return t_done();
	}
	CHECK_STR(spool_dir(sp), base);
	CHECK(stat(path("queue", NULL, NULL), &st) == 0 &&
	    (st.st_mode & 0777) == 0700);
	CHECK(stat(path("tmp", NULL, NULL), &st) == 0 &&
	    (st.st_mode & 0777) == 0700);
	test_roundtrip(sp);
	test_abort_and_bad_commit(sp);
	test_save_states(sp);
	test_remove_and_ids(sp);
	test_list_and_unique(sp);
	test_ids_unique();
	spool_close(sp);
	test_recovery();
	test_lock_and_readonly();
	if (own && t_failed == 0) {
		char *cmd = xasprintf("rm -rf '%s'", tmpl);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", tmpl);
		free(cmd);
	}
	return t_done();
}
