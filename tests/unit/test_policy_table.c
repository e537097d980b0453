/*
 * test_policy_table.c - the policy_file parser and lookup
 * (src/policy_table.c): exact and ".parent" matches, levels, match=,
 * comments, "file:line: reason" for every kind of bad line, and the
 * reference counting that keeps a table alive for routes in flight.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "policy_table.h"
#include "util.h"
#include "t.h"

static struct policy_table *
parse(const char *s, char *err, size_t errlen)
{
	return policy_table_parse(s, strlen(s), "pt", err, errlen);
}

/* Parsing fails and the message is exactly want. */
static void
bad(const char *text, const char *want)
{
	struct policy_table *t;
	char err[1024];

	err[0] = '\0';
	t = parse(text, err, sizeof(err));
	CHECK(t == NULL);
	if (strncmp(err, want, strlen(want)) != 0)
		fprintf(stderr, "  input: %s\n  error: %s\n  want:  %s...\n",
		    text, err, want);
	CHECK(strncmp(err, want, strlen(want)) == 0);
	policy_table_free(t);
}

static const char good[] =
    "# danerelay policy table\n"
    "\n"
    "example.org\t\tdane-only\n"
    "partner.example  verify  match=mx1.partner.example:mx2.partner.example\n"
    "  legacy.example may   # old server, no TLS 1.2\n"
    ".example.net encrypt\n"
    ".deep.example.net secure match=nexthop:dot-nexthop:hostname\n"
    "Mixed.Case.Example. NONE\r\n"
    "plain.example dane";		/* no final newline */

static void
test_good(void)
{
	struct policy_table *t;
	const struct policy_entry *e;
	char err[512];

	t = parse(good, err, sizeof(err));
	CHECK(t != NULL);
	if (t == NULL) {
		fprintf(stderr, "%s\n", err);
		return;
	}
	CHECK(policy_table_count(t) == 7);

	e = policy_table_lookup(t, "example.org");
	CHECK(e != NULL && e->level == POLICY_DANE_ONLY && e->line == 3);
	CHECK(e != NULL && e->nmatch == 0 && e->match == NULL);
	/* An exact entry does not cover subdomains. */
	CHECK(policy_table_lookup(t, "sub.example.org") == NULL);
	/* Case and trailing dot do not matter. */
	CHECK(policy_table_lookup(t, "EXAMPLE.ORG.") == e);

	e = policy_table_lookup(t, "partner.example");
	CHECK(e != NULL && e->level == POLICY_VERIFY && e->nmatch == 2);
	CHECK(e != NULL && strcmp(e->match[0], "mx1.partner.example") == 0);
	CHECK(e != NULL && strcmp(e->match[1], "mx2.partner.example") == 0);

	e = policy_table_lookup(t, "legacy.example");
	CHECK(e != NULL && e->level == POLICY_MAY && e->line == 5);

	/* ".example.net" covers subdomains, not example.net itself. */
	CHECK(policy_table_lookup(t, "example.net") == NULL);
	e = policy_table_lookup(t, "mx.example.net");
	CHECK(e != NULL && e->level == POLICY_ENCRYPT);
	CHECK(e != NULL && strcmp(e->domain, ".example.net") == 0);
	e = policy_table_lookup(t, "a.b.c.example.net");
	CHECK(e != NULL && e->level == POLICY_ENCRYPT);
	/* The closest parent wins. */
	e = policy_table_lookup(t, "x.deep.example.net");
	CHECK(e != NULL && e->level == POLICY_SECURE && e->nmatch == 3);
	CHECK(e != NULL && strcmp(e->match[1], "dot-nexthop") == 0);
	e = policy_table_lookup(t, "deep.example.net");
	CHECK(e != NULL && e->level == POLICY_ENCRYPT);

	e = policy_table_lookup(t, "mixed.case.example");
	CHECK(e != NULL && e->level == POLICY_NONE);
	CHECK(e != NULL && strcmp(e->domain, "mixed.case.example") == 0);
	e = policy_table_lookup(t, "plain.example");
	CHECK(e != NULL && e->level == POLICY_DANE);

	CHECK(policy_table_lookup(t, "other.example") == NULL);
	CHECK(policy_table_lookup(t, "") == NULL);
	CHECK(policy_table_lookup(t, ".") == NULL);
	CHECK(policy_table_lookup(t, ".example.net") == NULL);
	CHECK(policy_table_lookup(t, NULL) == NULL);
	CHECK(policy_table_lookup(NULL, "example.org") == NULL);
	policy_table_free(t);
}

/* U-labels (issue #12): stored and matched in A-label form. */
static void
test_idn(void)
{
	struct policy_table *t;
	const struct policy_entry *e;
	char err[512];

	t = parse("\xc3\xa9t\xc3\xa9.example dane-only\n"
	    ".B\xc3\xbc""cher.example verify match=mx.b\xc3\xbc""cher.example\n",
	    err, sizeof(err));
	CHECK(t != NULL);
	if (t == NULL) {
		fprintf(stderr, "%s\n", err);
		return;
	}
	e = policy_table_lookup(t, "xn--t-9fab.example");
	CHECK(e != NULL && e->level == POLICY_DANE_ONLY);
	CHECK(e != NULL && strcmp(e->domain, "xn--t-9fab.example") == 0);
	/* looked up by either form */
	CHECK(policy_table_lookup(t, "\xc3\xa9t\xc3\xa9.example") == e);
	CHECK(policy_table_lookup(t, "\xc3\x89T\xc3\x89.Example.") == e);
	CHECK(policy_table_lookup(t, "\xff.example") == NULL);
	e = policy_table_lookup(t, "mx.xn--bcher-kva.example");
	CHECK(e != NULL && e->level == POLICY_VERIFY && e->nmatch == 1 &&
	    strcmp(e->match[0], "mx.xn--bcher-kva.example") == 0);
	policy_table_free(t);
}

static void
test_empty(void)
{
	struct policy_table *t;
	char err[256];

	t = parse("", err, sizeof(err));
	CHECK(t != NULL && policy_table_count(t) == 0);
	CHECK(policy_table_lookup(t, "example.org") == NULL);
	policy_table_free(t);
	t = parse("# only a comment\n\n   \n\t# another\n", err, sizeof(err));
	CHECK(t != NULL && policy_table_count(t) == 0);
	policy_table_free(t);
	policy_table_free(NULL);
	CHECK(policy_table_count(NULL) == 0);
}

static void
test_errors(void)
{
	char line[POLICY_TABLE_MAX_LINE + 64];

	bad("example.org\n", "pt:1: missing security level");
	bad("\n\nexample.org bogus\n", "pt:3: unknown security level "
	    "\"bogus\"");
	bad("example.org dane frobnicate=1\n", "pt:1: unknown option "
	    "\"frobnicate\"");
	bad("example.org dane match\n", "pt:1: option \"match\" is not "
	    "name=value");
	bad("example.org dane match=mx.example.org\n", "pt:1: match= only "
	    "applies to verify and secure, not dane");
	bad("example.org verify match=\n", "pt:1: match= needs at least one");
	bad("example.org verify match=a.example::b.example\n", "pt:1: empty "
	    "name in match=");
	bad("example.org verify match=a.example match=b.example\n", "pt:1: "
	    "match= given twice");
	bad("example.org verify match=bad_name!\n", "pt:1: invalid "
	    "character");
	bad("exa mple.org dane\n", "pt:1: unknown security level \"mple.org\"");
	bad("ex!ample.org dane\n", "pt:1: \"ex!ample.org\": invalid "
	    "character in domain name");
	bad("a..example dane\n", "pt:1: \"a..example\": empty label");
	bad("-a.example dane\n", "pt:1: \"-a.example\": label starts or ends");
	bad(". dane\n", "pt:1: \".\": empty domain name");
	bad("..example dane\n", "pt:1: \"..example\": empty label");
	bad("a.example dane\nb.example may\nA.EXAMPLE. verify\n", "pt:3: "
	    "duplicate entry for a.example (first at line 1)");
	/* U-labels are taken (as A-labels, test_idn()); invalid UTF-8 and
	 * disallowed code points are not */
	bad("\xff.example dane\n", "pt:1: \"\xff.example\": not a valid "
	    "internationalized");
	bad("a\xe2\x98\x83\xe2\x80\x8b.example dane\n", "pt:1:");

	/* 64-octet label, 254-octet name. */
	bad("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    ".example dane\n", "pt:1: \"aaaa");
	memset(line, 0, sizeof(line));
	for (size_t i = 0; i < 51; i++)
		memcpy(line + i * 5, "abcd.", 5);
	strcat(line, "example dane\n");
	bad(line, "pt:1: \"abcd.");

	/* Over-long line. */
	memset(line, 'a', POLICY_TABLE_MAX_LINE + 10);
	line[POLICY_TABLE_MAX_LINE + 10] = '\0';
	bad(line, "pt:1: line longer than");
}

static void
test_nul_byte(void)
{
	struct policy_table *t;
	char err[256];
	static const char buf[] = "a.example dane\nb.ex\0ample dane\n";

	t = policy_table_parse(buf, sizeof(buf) - 1, "pt", err, sizeof(err));
	CHECK(t == NULL);
	CHECK(strncmp(err, "pt:2: NUL byte", 14) == 0);
	policy_table_free(t);
}

static void
test_load(void)
{
	struct policy_table *t;
	char path[] = "/tmp/test_policy_table.XXXXXX", err[512], want[600];
	FILE *f;
	int fd;

	CHECK((fd = mkstemp(path)) != -1);
	if (fd == -1)
		return;
	f = fdopen(fd, "w");
	fputs(good, f);
	fclose(f);
	t = policy_table_load(path, err, sizeof(err));
	CHECK(t != NULL && policy_table_count(t) == 7);
	policy_table_free(t);

	f = fopen(path, "w");
	fputs("ok.example may\n# comment\nbroken.example\n", f);
	fclose(f);
	t = policy_table_load(path, err, sizeof(err));
	CHECK(t == NULL);
	snprintf(want, sizeof(want), "%s:3: missing security level", path);
	CHECK(strncmp(err, want, strlen(want)) == 0);
	unlink(path);

	t = policy_table_load(path, err, sizeof(err));
	CHECK(t == NULL);
	snprintf(want, sizeof(want), "%s: No such file", path);
	CHECK(strncmp(err, want, strlen(want)) == 0);

	t = policy_table_load("/tmp", err, sizeof(err));
	CHECK(t == NULL && strstr(err, "not a regular file") != NULL);
	CHECK(policy_table_load(NULL, err, sizeof(err)) == NULL);
}

/*
 * References (issue #13): a route holds the table while it waits; the
 * delivery engine's reload drops its own.  The entry and its match=
 * names must stay valid until the last policy_table_free() (ASan says
 * if they do not, LSan if the last one does not free).
 */
static void
test_refs(void)
{
	struct policy_table *t, *held;
	const struct policy_entry *e;
	char err[256];

	t = parse("partner.example verify match=mx1.partner.example:"
	    "mx2.partner.example\n", err, sizeof(err));
	CHECK(t != NULL);
	if (t == NULL)
		return;
	held = policy_table_ref(t);		/* route_start() */
	CHECK(held == t);
	e = policy_table_lookup(held, "partner.example");
	CHECK(e != NULL && e->nmatch == 2);
	policy_table_free(t);			/* SIGHUP: the engine lets go */
	if (e != NULL && e->nmatch == 2) {
		CHECK_STR(e->match[0], "mx1.partner.example");
		CHECK_STR(e->match[1], "mx2.partner.example");
		CHECK(e->level == POLICY_VERIFY);
	}
	CHECK(policy_table_count(held) == 1);
	policy_table_free(held);		/* route_free(): freed */
	CHECK(policy_table_ref(NULL) == NULL);
	policy_table_free(NULL);
}

/* Site limits (issue #24): max_connections=, max_messages_per_connection=,
 * rate=; bad values refused with file:line. */
static void
test_limits(void)
{
	const struct policy_entry *e;
	struct policy_table *t;
	char err[256];

	t = parse("a.example dane max_connections=2 "
	    "max_messages_per_connection=5 rate=60/m\n"
	    "b.example may rate=2/s\n"
	    "c.example verify match=mx.c.example MAX_CONNECTIONS=1\n", err,
	    sizeof(err));
	CHECK(t != NULL);
	if (t == NULL)
		return;
	e = policy_table_lookup(t, "a.example");
	CHECK(e != NULL && e->max_connections == 2 && e->max_msgs == 5 &&
	    e->rate.count == 60 && e->rate.per == 60);
	e = policy_table_lookup(t, "b.example");
	CHECK(e != NULL && e->max_connections == 0 && e->max_msgs == 0 &&
	    e->rate.count == 2 && e->rate.per == 1);
	e = policy_table_lookup(t, "c.example");
	CHECK(e != NULL && e->max_connections == 1 && e->nmatch == 1);
	policy_table_free(t);
	bad("x.example dane max_connections=0\n", "pt:1: max_connections: "
	    "bad number");
	bad("ok.example dane\nx.example dane max_connections=two\n",
	    "pt:2: max_connections: bad number");
	bad("x.example dane max_messages_per_connection=-1\n",
	    "pt:1: max_messages_per_connection: bad number");
	bad("x.example dane max_connections=10000000\n",
	    "pt:1: max_connections: bad number");
	bad("x.example dane rate=fast\n", "pt:1: rate: bad rate");
	bad("x.example dane rate=unlimited\n", "pt:1: rate: bad rate");
	bad("x.example dane rate=5/d\n", "pt:1: rate: bad rate");
}

int
main(void)
{
	test_limits();
	test_refs();
	test_good();
	test_empty();
	test_idn();
	test_errors();
	test_nul_byte();
	test_load();
	return t_done();
}
