/*
 * test_source_table.c - the source_table parser and lookup
 * (src/source_table.c): domain, "*" and null-sender matches, one address
 * of each family, HELO names, "file:line: reason" for every kind of bad
 * line, the local-address check of source_table_load() (127.0.0.2 is
 * this host's on Linux, 192.0.2.1 is not), and the reference counting
 * that keeps an entry alive for a delivery job across a reload.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "source_table.h"
#include "util.h"
#include "t.h"

static struct source_table *
parse(const char *s, char *err, size_t errlen)
{
	return source_table_parse(s, strlen(s), "st", 0, err, errlen);
}

/* Parsing fails and the message starts with want. */
static void
bad(const char *text, const char *want)
{
	struct source_table *t;
	char err[1024];

	err[0] = '\0';
	t = parse(text, err, sizeof(err));
	CHECK(t == NULL);
	if (strncmp(err, want, strlen(want)) != 0)
		fprintf(stderr, "  input: %s\n  error: %s\n  want:  %s...\n",
		    text, err, want);
	CHECK(strncmp(err, want, strlen(want)) == 0);
	source_table_free(t);
}

static const char good[] =
    "# danerelay source table\n"
    "\n"
    "example.com\t192.0.2.25,2001:db8::25\tmail.example.com\n"
    "  Example.NET. 2001:db8::26   Out.Example.Net.  # v6 only\n"
    "b\xc3\xbc" "cher.example 192.0.2.27 mx.xn--bcher-kva.example\r\n"
    "*\t192.0.2.10 gw.example.org";		/* no final newline */

static void
test_good(void)
{
	struct source_table *t;
	const struct source_entry *e;
	char err[512];

	t = parse(good, err, sizeof(err));
	CHECK(t != NULL);
	if (t == NULL) {
		fprintf(stderr, "%s\n", err);
		return;
	}
	CHECK(source_table_count(t) == 4);
	e = source_table_lookup(t, "alice@example.com");
	CHECK(e != NULL && e->line == 3);
	if (e != NULL) {
		CHECK_STR(e->addr4, "192.0.2.25");
		CHECK_STR(e->addr6, "2001:db8::25");
		CHECK_STR(e->helo, "mail.example.com");
	}
	/* any case, the last '@', a trailing dot on the entry */
	e = source_table_lookup(t, "\"a@b\"@EXAMPLE.net");
	CHECK(e != NULL && e->line == 4);
	if (e != NULL) {
		CHECK(e->addr4 == NULL);
		CHECK_STR(e->addr6, "2001:db8::26");
		CHECK_STR(e->helo, "out.example.net");
	}
	/* U-labels in the table and in the sender, A-labels either way */
	e = source_table_lookup(t, "k@xn--bcher-kva.example");
	CHECK(e != NULL && e->line == 5);
	e = source_table_lookup(t, "k@B\xc3\xbc" "cher.example");
	CHECK(e != NULL && e->line == 5);
	/* the default: other domains, subdomains, the null sender */
	e = source_table_lookup(t, "bob@sub.example.com");
	CHECK(e != NULL && strcmp(e->domain, "*") == 0);
	e = source_table_lookup(t, "");
	CHECK(e != NULL && e->line == 6);
	e = source_table_lookup(t, "nodomain");
	CHECK(e != NULL && e->line == 6);
	CHECK(source_table_entry(t, 0) != NULL &&
	    strcmp(source_table_entry(t, 0)->domain, "*") == 0);
	CHECK(source_table_entry(t, 4) == NULL);
	source_table_free(t);

	/* without "*": other senders get no entry (smtp_bind_address) */
	t = parse("example.com 192.0.2.25 mail.example.com\n", err,
	    sizeof(err));
	CHECK(t != NULL);
	CHECK(source_table_lookup(t, "a@example.org") == NULL);
	CHECK(source_table_lookup(t, "") == NULL);
	source_table_free(t);
	t = parse("# nothing\n\n", err, sizeof(err));
	CHECK(t != NULL && source_table_count(t) == 0);
	CHECK(source_table_lookup(t, "a@example.com") == NULL);
	source_table_free(t);
}

static void
test_errors(void)
{
	bad("example.com\n", "st:1: missing the address and the HELO name");
	bad("\nexample.com 192.0.2.1\n", "st:2: missing the HELO name");
	bad("example.com 192.0.2.1 h.example x\n", "st:1: more than three");
	bad("exa mple.com\n", "st:1: missing the HELO name");
	bad("-bad-.example 192.0.2.1 h.example\n",
	    "st:1: \"-bad-.example\" is not a domain name");
	bad("a.example 192.0.2.300 h.example\n",
	    "st:1: \"192.0.2.300\" is not an IPv4 or IPv6 address");
	bad("a.example 192.0.2.1,192.0.2.2 h.example\n",
	    "st:1: two IPv4 addresses (192.0.2.1 and 192.0.2.2)");
	bad("a.example ::1,2001:db8::1 h.example\n",
	    "st:1: two IPv6 addresses");
	bad("a.example 0.0.0.0 h.example\n", "st:1: 0.0.0.0 is not a unicast");
	bad("a.example 224.0.0.1 h.example\n",
	    "st:1: 224.0.0.1 is not a unicast");
	bad("a.example :: h.example\n", "st:1: :: is not a unicast");
	bad("a.example fe80::1 h.example\n", "st:1: fe80::1 is link-local");
	bad("a.example , h.example\n", "st:1: no address");
	bad("a.example 192.0.2.1 localhost\n",
	    "st:1: HELO name \"localhost\" is not a fully qualified");
	bad("a.example 192.0.2.1 h_x.example\n",
	    "st:1: HELO name \"h_x.example\" is not");
	bad("a.example 192.0.2.1 h.example\n"
	    "b.example 192.0.2.1 h.example\n"
	    "A.EXAMPLE. 192.0.2.2 h.example\n",
	    "st:3: a second line for a.example (the first is line 1)");
	bad("* 192.0.2.1 h.example\n* 192.0.2.2 h.example\n",
	    "st:2: a second line for *");
}

static void
test_nul_and_long(void)
{
	char buf[2100];
	struct source_table *t;
	char err[256];

	t = source_table_parse("a.example 192.0.2.1\0 h.example\n", 31, "st",
	    0, err, sizeof(err));
	CHECK(t == NULL && strcmp(err, "st:1: NUL byte in line") == 0);
	memset(buf, 'a', sizeof(buf) - 1);
	buf[sizeof(buf) - 1] = '\0';
	t = parse(buf, err, sizeof(err));
	CHECK(t == NULL && strstr(err, "st:1: line longer than") == err);
}

/* source_table_load(): the file, and addresses of this host only. */
static void
test_load(void)
{
	char dir[] = "/tmp/test_source_table.XXXXXX", path[128], err[512];
	struct source_table *t;
	FILE *f;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/st", dir);
	f = fopen(path, "w");
	CHECK(f != NULL);
	if (f == NULL)
		return;
	fprintf(f, "# loopback is this host's, all of 127/8 on Linux\n"
	    "a.example 127.0.0.2 h.a.example\n"
	    "b.example 192.0.2.1 h.b.example\n");
	fclose(f);
	t = source_table_load(path, err, sizeof(err));
	CHECK(t == NULL);
	{
		char want[256];

		snprintf(want, sizeof(want), "%s:3: address 192.0.2.1: not "
		    "an address of this host", path);
		CHECK_STR(err, want);
	}
	f = fopen(path, "w");
	if (f != NULL) {
		fprintf(f, "a.example 127.0.0.2 h.a.example\n");
		fclose(f);
	}
	t = source_table_load(path, err, sizeof(err));
	CHECK(t != NULL && source_table_count(t) == 1);
	source_table_free(t);
	unlink(path);
	t = source_table_load(path, err, sizeof(err));
	CHECK(t == NULL && strstr(err, "No such file") != NULL);
	rmdir(dir);
}

/* A job's reference keeps its entry alive after the engine lets go. */
static void
test_refs(void)
{
	struct source_table *t, *held;
	const struct source_entry *e;
	char err[256];

	t = parse("a.example 192.0.2.1 h.example\n", err, sizeof(err));
	CHECK(t != NULL);
	if (t == NULL)
		return;
	held = source_table_ref(t);
	e = source_table_lookup(held, "x@a.example");
	source_table_free(t);
	CHECK(e != NULL && strcmp(e->helo, "h.example") == 0);
	source_table_free(held);
	CHECK(source_table_ref(NULL) == NULL);
	source_table_free(NULL);
	CHECK(source_table_lookup(NULL, "x@a.example") == NULL);
}

int
main(void)
{
	test_good();
	test_errors();
	test_nul_and_long();
	test_load();
	test_refs();
	return t_done();
}
