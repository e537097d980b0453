/*
 * test_mta_sts.c - the MTA-STS parsers (src/mta_sts.c) against the
 * vectors tests/vectors/mta-sts/cases.jsonl (RFC 8461 §3.1
 * TXT records, §3.2 policies, §4.1 mx matching), plus our own cases.
 *
 * Every case with a definite verdict must match.  The "impl-defined"
 * cases (sources disagree) are checked against the choices listed in
 * impl[] below and documented in README.md ("MTA-STS"): lenient where
 * rejecting would only turn an authenticated policy into no policy.
 * The "fetch" cases are HTTP/TLS scenarios; they are run for real by
 * tests/scenario/mta_sts_fetch.t (and mta_sts.t) and only counted here.
 *
 * Vector file: $DR_SRCDIR/tests/vectors/mta-sts/cases.jsonl; missing is
 * a failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mta_sts.h"
#include "resolver.h"
#include "util.h"
#include "t.h"

/* Our verdicts for the impl-defined cases. */
static const struct {
	const char *id;
	const char *verdict;	/* "valid", "invalid", "match", "nomatch" */
	const char *mode;	/* for valid policies: expected mode */
} impl[] = {
	{ "policy-019", "valid", "enforce" },	/* blank line ignored */
	{ "policy-022", "valid", "enforce" },	/* Domain syntax allows */
	{ "policy-023", "valid", "enforce" },	/*  all-numeric labels */
	{ "policy-024", "valid", "enforce" },
	{ "policy-025", "valid", "enforce" },	/* malformed extension */
	{ "policy-026", "valid", "enforce" },	/*  lines are ignored */
	{ "policy-027", "valid", "enforce" },
	{ "policy-028", "valid", "enforce" },
	{ "policy-029", "valid", "enforce" },
	{ "policy-030", "valid", "enforce" },
	{ "policy-031", "valid", "enforce" },
	{ "policy-032", "valid", "enforce" },	/* bad extension names */
	{ "policy-033", "valid", "enforce" },	/*  are ignored */
	{ "policy-034", "valid", "enforce" },
	{ "policy-035", "valid", "enforce" },
	{ "policy-036", "valid", "enforce" },
	{ "policy-037", "valid", "enforce" },
	{ "policy-038", "valid", "enforce" },
	{ "policy-059", "valid", "enforce" },	/* first mode counts */
	{ "policy-063", "valid", "enforce" },
	{ "policy-072", "valid", "enforce" },	/* garbage line ignored */
	{ "mxmatch-178", "nomatch", NULL },	/* U-label patterns are */
	{ "mxmatch-179", "nomatch", NULL },	/*  invalid (A-labels */
	{ "mxmatch-180", "nomatch", NULL },	/*  only, §3.2) */
};

static int n_policy, n_txt, n_mx, n_fetch, n_impl;

static const char *
impl_verdict(const char *id, const char **mode)
{
	size_t i;

	for (i = 0; i < sizeof(impl) / sizeof(impl[0]); i++)
		if (strcmp(impl[i].id, id) == 0) {
			if (mode != NULL)
				*mode = impl[i].mode;
			return impl[i].verdict;
		}
	return NULL;
}

static void
fail_case(const char *id, const char *fmt, const char *a, const char *b)
{
	fprintf(stderr, "  case %s: ", id);
	fprintf(stderr, fmt, a ? a : "(null)", b ? b : "(null)");
	fprintf(stderr, "\n");
}

static void
run_policy(const char *id, json_t *c)
{
	json_t *in = json_object_get(c, "input");
	const char *expect = json_string_value(json_object_get(c, "expect"));
	json_t *parsed = json_object_get(c, "parsed");
	struct mta_sts_policy p;
	const char *want_mode = NULL;
	char err[256];
	int r, ok;

	n_policy++;
	if (!json_is_string(in) || expect == NULL) {
		CHECK(!"policy case has input and expect");
		return;
	}
	if (strcmp(expect, "impl-defined") == 0) {
		n_impl++;
		expect = impl_verdict(id, &want_mode);
		CHECK(expect != NULL);
		if (expect == NULL) {
			fail_case(id, "no verdict chosen%s%s", "", "");
			return;
		}
	}
	err[0] = '\0';
	r = mta_sts_policy_parse(json_string_value(in), json_string_length(in),
	    &p, err, sizeof(err));
	ok = (r == 0) == (strcmp(expect, "valid") == 0);
	CHECK(ok);
	if (!ok) {
		fail_case(id, "expected %s, parser said: %s", expect,
		    r == 0 ? "valid" : err);
		mta_sts_policy_clear(&p);
		return;
	}
	if (r == 0 && want_mode != NULL)
		CHECK_STR(mta_sts_mode_name(p.mode), want_mode);
	if (r == 0 && json_is_object(parsed)) {
		json_t *mx = json_object_get(parsed, "mx");
		size_t i;

		CHECK_STR(mta_sts_mode_name(p.mode), json_string_value(
		    json_object_get(parsed, "mode")));
		CHECK(p.max_age == json_integer_value(json_object_get(parsed,
		    "max_age")));
		CHECK(p.nmx == json_array_size(mx));
		if (p.nmx != json_array_size(mx))
			fail_case(id, "mx count differs%s%s", "", "");
		for (i = 0; i < p.nmx && i < json_array_size(mx); i++)
			CHECK_STR(p.mx[i], json_string_value(
			    json_array_get(mx, i)));
	}
	mta_sts_policy_clear(&p);
}

/* A record from the JSON: a string, or a list of character-strings. */
static char *
join_strings(json_t *v, size_t *len)
{
	char *buf = NULL;
	size_t i, n = 0, l;

	if (json_is_string(v)) {
		*len = json_string_length(v);
		buf = xmalloc(*len + 1);
		memcpy(buf, json_string_value(v), *len);
		buf[*len] = '\0';
		return buf;
	}
	buf = xstrdup("");
	for (i = 0; i < json_array_size(v); i++) {
		json_t *s = json_array_get(v, i);

		l = json_string_length(s);
		buf = xrealloc(buf, n + l + 1);
		memcpy(buf + n, json_string_value(s), l);
		n += l;
		buf[n] = '\0';
	}
	*len = n;
	return buf;
}

static void
run_txt(const char *id, json_t *c)
{
	json_t *in = json_object_get(c, "input");
	const char *expect = json_string_value(json_object_get(c, "expect"));
	int rrset = json_is_true(json_object_get(c, "rrset"));
	struct dns_txt txt[8];
	char got[MTA_STS_ID_MAX + 1], err[256];
	size_t n = 0, i;
	int r;

	n_txt++;
	if (expect == NULL) {
		CHECK(!"txt case has expect");
		return;
	}
	if (rrset) {
		for (i = 0; i < json_array_size(in) && n < 8; i++) {
			txt[n].data = join_strings(json_array_get(in, i),
			    &txt[n].len);
			n++;
		}
	} else {
		txt[0].data = join_strings(in, &txt[0].len);
		n = 1;
	}
	err[0] = '\0';
	r = mta_sts_txt_select(txt, n, got, err, sizeof(err));
	if (strcmp(expect, "none") == 0) {
		CHECK(r != 1);
		if (r == 1)
			fail_case(id, "expected no policy, got id %s%s", got,
			    "");
	} else {
		CHECK(r == 1);
		if (r == 1)
			CHECK_STR(got, expect);
		else
			fail_case(id, "expected id %s: %s", expect, err);
	}
	for (i = 0; i < n; i++)
		free(txt[i].data);
}

static void
run_mxmatch(const char *id, json_t *c)
{
	json_t *in = json_object_get(c, "input");
	json_t *pats = json_object_get(in, "patterns");
	const char *expect = json_string_value(json_object_get(c, "expect"));
	const char *host = json_string_value(json_object_get(in, "mx"));
	const char *p[16];
	size_t i, n = 0;
	int r;

	n_mx++;
	if (expect != NULL && strcmp(expect, "impl-defined") == 0) {
		n_impl++;
		expect = impl_verdict(id, NULL);
	}
	if (expect == NULL || host == NULL) {
		CHECK(!"mxmatch case has mx and a verdict");
		return;
	}
	for (i = 0; i < json_array_size(pats) && n < 16; i++)
		p[n++] = json_string_value(json_array_get(pats, i));
	r = mta_sts_mx_match(p, n, host);
	CHECK(r == (strcmp(expect, "match") == 0));
	if (r != (strcmp(expect, "match") == 0))
		fail_case(id, "%s: expected %s", host, expect);
}

static int
run_vectors(void)
{
	const char *src = getenv("DR_SRCDIR");
	char path[4096];
	char line[200000];
	FILE *f = NULL;
	size_t lineno = 0;

	if (src != NULL) {
		snprintf(path, sizeof(path),
		    "%s/tests/vectors/mta-sts/cases.jsonl", src);
		f = fopen(path, "r");
	}
	if (f == NULL) {
		fprintf(stderr, "FAIL: no %s\n", path);
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		json_error_t je;
		json_t *c;
		const char *id, *kind;

		lineno++;
		c = json_loads(line, JSON_ALLOW_NUL, &je);
		CHECK(c != NULL);
		if (c == NULL) {
			fprintf(stderr, "  %s:%zu: %s\n", path, lineno, je.text);
			continue;
		}
		id = json_string_value(json_object_get(c, "id"));
		kind = json_string_value(json_object_get(c, "kind"));
		if (id == NULL || kind == NULL)
			CHECK(!"case has id and kind");
		else if (strcmp(kind, "policy") == 0)
			run_policy(id, c);
		else if (strcmp(kind, "txt") == 0)
			run_txt(id, c);
		else if (strcmp(kind, "mxmatch") == 0)
			run_mxmatch(id, c);
		else if (strcmp(kind, "fetch") == 0)
			n_fetch++;	/* scenario/mta_sts_fetch.t */
		else
			CHECK(!"known kind");
		json_decref(c);
	}
	fclose(f);
	printf("vectors: %d policy, %d txt, %d mxmatch (%d impl-defined "
	    "with our verdicts); %d fetch cases run by "
	    "scenario/mta_sts_fetch.t\n", n_policy, n_txt, n_mx, n_impl,
	    n_fetch);
	CHECK(n_policy + n_txt + n_mx + n_fetch == 220);
	return 0;
}

/* ---- our own cases ---------------------------------------------------- */

static int
parse(const char *s, struct mta_sts_policy *p)
{
	char err[256];

	return mta_sts_policy_parse(s, strlen(s), p, err, sizeof(err));
}

static void
own_policy(void)
{
	struct mta_sts_policy p;
	char *big;
	size_t n;

	/* lines kept for TLSRPT policy-string, without CR/LF */
	CHECK(parse("version: STSv1\r\nmode: testing\r\nmx: a.example\r\n"
	    "max_age: 86400\r\n", &p) == 0);
	CHECK(p.nlines == 4);
	if (p.nlines == 4) {
		CHECK_STR(p.lines[0], "version: STSv1");
		CHECK_STR(p.lines[3], "max_age: 86400");
	}
	CHECK(p.mode == MTA_STS_MODE_TESTING);
	mta_sts_policy_clear(&p);
	CHECK(p.mx == NULL && p.nmx == 0 && p.lines == NULL);

	/* version must be the first line */
	CHECK(parse("mode: enforce\nversion: STSv1\nmx: a.example\n"
	    "max_age: 1\n", &p) == -1);
	CHECK(parse("\nversion: STSv1\nmode: none\nmax_age: 1\n", &p) == -1);
	CHECK(parse("", &p) == -1);
	/* bad mx anywhere spoils the policy; wildcard only leftmost */
	CHECK(parse("version: STSv1\nmode: enforce\nmx: a.*.example\n"
	    "max_age: 1\n", &p) == -1);
	CHECK(parse("version: STSv1\nmode: enforce\nmx: *\nmax_age: 1\n",
	    &p) == -1);
	CHECK(parse("version: STSv1\nmode: enforce\nmx: a..example\n"
	    "max_age: 1\n", &p) == -1);
	CHECK(parse("version: STSv1\nmode: enforce\nmx: a-.example\n"
	    "max_age: 1\n", &p) == -1);
	/* a 64-octet label is too long */
	CHECK(parse("version: STSv1\nmode: enforce\nmx: "
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    ".example\nmax_age: 1\n", &p) == -1);
	/* NUL inside a known value */
	{
		static const char nul[] = "version: STSv1\nmode: enforce\n"
		    "mx: a.example\nmax_age: 6\0000\n";
		char err[128];

		CHECK(mta_sts_policy_parse(nul, sizeof(nul) - 1, &p, err,
		    sizeof(err)) == -1);
	}
	/* exactly 64 KiB is fine, one byte more is not */
	n = MTA_STS_MAX_BODY;
	big = xmalloc(n + 2);
	memset(big, 'a', n + 1);
	memcpy(big, "version: STSv1\nmode: none\nmax_age: 5\nx: ",
	    strlen("version: STSv1\nmode: none\nmax_age: 5\nx: "));
	big[n - 1] = '\n';
	CHECK(mta_sts_policy_parse(big, n, &p, NULL, 0) == 0);
	mta_sts_policy_clear(&p);
	CHECK(mta_sts_policy_parse(big, n + 1, &p, NULL, 0) == -1);
	free(big);
}

static void
own_txt(void)
{
	char id[MTA_STS_ID_MAX + 1], err[128];
	struct dns_txt t[2];

	CHECK(mta_sts_txt_parse("v=STSv1; id=abc", 15, id, err,
	    sizeof(err)) == 1);
	CHECK_STR(id, "abc");
	CHECK(mta_sts_txt_parse("v=spf1 -all", 11, id, err, sizeof(err)) == 0);
	CHECK(mta_sts_txt_parse("v=STSv1; id=a\0b", 15, id, err,
	    sizeof(err)) == -1);
	CHECK(mta_sts_txt_parse("v=STSv1; id=abc; "
	    "abcdefghijabcdefghijabcdefghijabc=1", 51, id, err,
	    sizeof(err)) == -1);	/* 33-char extension name */
	t[0].data = "v=STSv1; id=x y";
	t[0].len = strlen(t[0].data);
	t[1].data = "v=spf1 -all";
	t[1].len = strlen(t[1].data);
	CHECK(mta_sts_txt_select(t, 2, id, err, sizeof(err)) == -1);
	CHECK(mta_sts_txt_select(t + 1, 1, id, err, sizeof(err)) == 0);
	CHECK(mta_sts_txt_select(t, 0, id, err, sizeof(err)) == 0);
}

static void
own_names(void)
{
	char out[256];
	const char *pats[] = { "mail.example.com", "*.example.net" };

	CHECK(mta_sts_domain_ascii("Example.COM.", out, sizeof(out)) == 0);
	CHECK_STR(out, "example.com");
	CHECK(mta_sts_domain_ascii("B\xc3\xbc" "cher.example", out,
	    sizeof(out)) == 0);
	CHECK_STR(out, "xn--bcher-kva.example");
	CHECK(mta_sts_domain_ascii("", out, sizeof(out)) == -1);
	CHECK(mta_sts_domain_ascii(".", out, sizeof(out)) == -1);
	CHECK(mta_sts_domain_ascii("a..b", out, sizeof(out)) == -1);
	CHECK(mta_sts_domain_ascii("a_b.example", out, sizeof(out)) == -1);
	CHECK(mta_sts_domain_ascii("example.com", out, 5) == -1);
	CHECK(mta_sts_mx_match(pats, 2, "mail.example.com") == 1);
	CHECK(mta_sts_mx_match(pats, 2, "x.example.net") == 1);
	CHECK(mta_sts_mx_match(pats, 2, "example.net") == 0);
	CHECK(mta_sts_mx_match(pats, 2, "a.b.example.net") == 0);
	CHECK(mta_sts_mx_match(pats, 2, NULL) == 0);
	CHECK(mta_sts_mx_match(pats, 0, "mail.example.com") == 0);
	CHECK(mta_sts_mx_pattern_valid("*.example.net") == 1);
	CHECK(mta_sts_mx_pattern_valid("*example.net") == 0);
	CHECK(mta_sts_mx_pattern_valid("example.net.") == 0);
	CHECK(mta_sts_mx_pattern_valid(NULL) == 0);
}

int
main(void)
{
	int r = run_vectors();

	own_policy();
	own_txt();
	own_names();
	CHECK(r != -1);		/* the vectors are in the tree */
	return t_done();
}
