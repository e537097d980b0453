/*
 * test_dkim.c - dkim.c without DNS or a daemon: the key table parser (its
 * errors name file:line), key checks, the From: scanner fed in pieces,
 * the record text and its 255-octet strings, record matching, rotation
 * states, and a signature over the same text that libopendkim verifies
 * as it is signed (the scenario tests verify with python3-dkim).
 */
#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dkim.h"
#include "log.h"
#include "t.h"

static char dir[] = "/tmp/test_dkim.XXXXXX";

static char *
key(const char *name, const char *alg)
{
	char cmd[512], *path;

	path = malloc(strlen(dir) + strlen(name) + 2);
	sprintf(path, "%s/%s", dir, name);
	snprintf(cmd, sizeof(cmd), "openssl genpkey -algorithm %s %s -out %s "
	    "2>/dev/null", alg, strcmp(alg, "rsa") == 0 ?
	    "-pkeyopt rsa_keygen_bits:2048" : "", path);
	if (system(cmd) != 0) {
		fprintf(stderr, "openssl genpkey failed\n");
		exit(1);
	}
	return path;
}

static struct dkim_table *
parse(const char *text, char *err, size_t errlen)
{
	return dkim_table_parse(text, strlen(text), "/etc/k.table", 0, err,
	    errlen);
}

static void
test_parser(const char *rsa, const char *ed)
{
	struct dkim_table *t;
	struct dkim_key_info k;
	char text[2048], err[1024];

	snprintf(text, sizeof(text), "# keys\n\nExample.ORG s1 %s rsa-sha256\n"
	    "example.org e1 %s ed25519-sha256 # dual\n"
	    "example.org rpt %s rsa-sha256 s=tlsrpt\n", rsa, ed, rsa);
	t = parse(text, err, sizeof(err));
	CHECK(t != NULL);
	if (t == NULL) {
		fprintf(stderr, "%s\n", err);
		return;
	}
	CHECK(dkim_table_count(t) == 3);
	CHECK(dkim_table_key(t, 0, &k) == 0);
	CHECK_STR(k.domain, "example.org");
	CHECK_STR(k.selector, "s1");
	CHECK(k.line == 3 && k.alg == DKIM_ALG_RSA_SHA256 &&
	    k.services == DKIM_SVC_ALL && k.state == DKIM_KEY_ACTIVE);
	CHECK(dkim_table_key(t, 2, &k) == 0 && k.services == DKIM_SVC_TLSRPT);
	/* the third is a second RSA key of the domain: rotated in, pending */
	CHECK(k.state == DKIM_KEY_PENDING);
	CHECK(dkim_table_signs(t, "EXAMPLE.org", DKIM_SVC_EMAIL));
	CHECK(!dkim_table_signs(t, "example.net", DKIM_SVC_EMAIL));
	CHECK(dkim_table_key(t, 3, &k) == -1);
	dkim_table_unref(t);

	/* errors: file:line and why */
	snprintf(text, sizeof(text), "example.org s1 %s rsa-sha256\n"
	    "example.org s2 %s\n", rsa, rsa);
	CHECK(parse(text, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "/etc/k.table:2: expected") == err);
	snprintf(text, sizeof(text), "exa_mple..org s1 %s rsa-sha256\n", rsa);
	CHECK(parse(text, err, sizeof(err)) == NULL &&
	    strstr(err, ":1: bad domain") != NULL);
	snprintf(text, sizeof(text), "example.org s1 %s dsa\n", rsa);
	CHECK(parse(text, err, sizeof(err)) == NULL &&
	    strstr(err, ":1: unknown algorithm") != NULL);
	snprintf(text, sizeof(text), "example.org s1 %s ed25519-sha256\n", rsa);
	CHECK(parse(text, err, sizeof(err)) == NULL &&
	    strstr(err, ":1: key file") != NULL &&
	    strstr(err, "needs an Ed25519 key") != NULL);
	snprintf(text, sizeof(text), "example.org s1 %s rsa-sha256\n", ed);
	CHECK(parse(text, err, sizeof(err)) == NULL &&
	    strstr(err, "needs an RSA key") != NULL);
	CHECK(parse("example.org s1 /nonexistent.pem rsa-sha256\n", err,
	    sizeof(err)) == NULL && strstr(err, ":1: key file "
	    "/nonexistent.pem: No such file") != NULL);
	CHECK(parse("example.org s1 k.pem rsa-sha256\n", err,
	    sizeof(err)) == NULL && strstr(err, "/etc/k.pem") != NULL);
	snprintf(text, sizeof(text), "example.org s1 %s rsa-sha256\n"
	    "example.org S1 %s rsa-sha256\n", rsa, rsa);
	CHECK(parse(text, err, sizeof(err)) == NULL &&
	    strstr(err, ":2: example.org selector S1 already on line 1") !=
	    NULL);
	snprintf(text, sizeof(text), "example.org s1 %s rsa-sha256 s=web\n",
	    rsa);
	CHECK(parse(text, err, sizeof(err)) == NULL &&
	    strstr(err, ":1: bad services") != NULL);
	CHECK(dkim_table_parse("a b\0c d e\n", 10, "x", DKIM_PARSE_NOKEYS,
	    err, sizeof(err)) == NULL && strstr(err, "x:1: NUL") == err);
	CHECK((t = dkim_table_parse("", 0, "x", 0, err, sizeof(err))) != NULL);
	CHECK(dkim_table_count(t) == 0 && !dkim_table_signs(t, "x",
	    DKIM_SVC_EMAIL));
	dkim_table_unref(t);
}

/* The From: scanner, the text cut at every position. */
static void
test_from(void)
{
	static const struct {
		const char *msg, *want;
	} c[] = {
		{ "From: a@Example.ORG\r\n\r\nbody", "example.org" },
		{ "Received: from x\r\nFROM : \"A, B\" <a@ex.org>\r\n\r\n",
		    "ex.org" },
		{ "Subject: x\r\nFrom: Name\r\n <u@folded.example>\r\n\r\n",
		    "folded.example" },
		{ "From: u@x.org (comment)\r\n\r\n", "x.org" },
		{ "From: a@one.org, b@two.org\r\n\r\n", "one.org" },
		{ "X-From: a@no.org\r\nFromage: b@no.org\r\n\r\nFrom: c@no.org"
		    "\r\n", NULL },
		{ "Subject: no from\r\n\r\nFrom: a@body.org\r\n", NULL },
		{ "From: <a@bad domain>\r\n\r\n", NULL },
		{ "From: a@b@c.org\r\n\r\n", "c.org" },
		{ "From: undisclosed\r\n\r\n", NULL },
		{ "From: a@first.org\r\nFrom: b@second.org\r\n\r\n",
		    "first.org" },
	};
	struct dkim_from f;
	char out[256];
	const char *d;
	size_t i, cut, n;
	int ok;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		n = strlen(c[i].msg);
		ok = 1;
		for (cut = 0; cut <= n; cut++) {
			dkim_from_init(&f);
			dkim_from_scan(&f, c[i].msg, cut);
			dkim_from_scan(&f, c[i].msg + cut, n - cut);
			d = dkim_from_domain(&f, out, sizeof(out));
			if (!((d == NULL && c[i].want == NULL) || (d != NULL &&
			    c[i].want != NULL && strcmp(d, c[i].want) == 0))) {
				fprintf(stderr, "case %zu cut %zu: %s\n", i, cut,
				    d ? d : "(null)");
				ok = 0;
			}
		}
		CHECK(ok);
	}
}

static void
test_records(const char *rsa, const char *ed)
{
	struct dkim_table *t;
	char text[2048], err[1024], *rec, *zone, *p, *q;
	size_t n, longest = 0, strings = 0;

	snprintf(text, sizeof(text), "example.org s1 %s rsa-sha256\n"
	    "example.org e1 %s ed25519-sha256 s=email\n", rsa, ed);
	if ((t = parse(text, err, sizeof(err))) == NULL) {
		CHECK(0);
		return;
	}
	rec = dkim_key_record(t, 0);
	CHECK(rec != NULL && strncmp(rec, "v=DKIM1; k=rsa; p=MIIB", 22) == 0);
	CHECK(dkim_record_match(t, 0, rec, strlen(rec), err, sizeof(err)));
	CHECK(!dkim_record_match(t, 1, rec, strlen(rec), err, sizeof(err)) &&
	    strstr(err, "k=rsa") != NULL);
	CHECK(!dkim_record_match(t, 0, "v=DKIM1; k=rsa; p=", 18, err,
	    sizeof(err)) && strstr(err, "revoked") != NULL);
	zone = dkim_record_zone("example.org", "s1", rec);
	CHECK(strncmp(zone, "s1._domainkey.example.org. IN TXT ( \"", 37) == 0);
	for (p = strchr(zone, '"'); p != NULL; p = strchr(q + 1, '"')) {
		q = strchr(p + 1, '"');
		n = (size_t)(q - p - 1);
		longest = n > longest ? n : longest;
		strings++;
	}
	CHECK(longest == 255 && strings == (strlen(rec) + 254) / 255);
	free(zone);
	free(rec);
	rec = dkim_key_record(t, 1);
	CHECK(rec != NULL && strncmp(rec, "v=DKIM1; k=ed25519; s=email; p=",
	    31) == 0 && strlen(rec) == 31 + 44);
	/* whitespace inside the published p= does not matter */
	if (rec != NULL) {
		char spaced[256];

		snprintf(spaced, sizeof(spaced), "v=DKIM1;k=ed25519; p = %.20s "
		    "%s", rec + 31, rec + 51);
		CHECK(dkim_record_match(t, 1, spaced, strlen(spaced), err,
		    sizeof(err)));
	}
	free(rec);
	dkim_table_unref(t);
}

static void
test_sign(const char *rsa, const char *rsa2, const char *ed)
{
	static const char msg[] = "From: A <a@example.org>\r\nTo: b@example.net"
	    "\r\nSubject: hi\r\nDate: Sun, 6 Dec 2026 12:00:00 +0000\r\n\r\n"
	    "Hello\r\n";
	struct dkim_table *t;
	struct dkim_key_info k;
	char text[2048], err[1024], *hdrs;
	int r;

	snprintf(text, sizeof(text), "example.org s1 %s rsa-sha256\n"
	    "example.org e1 %s ed25519-sha256\nexample.org s2 %s rsa-sha256\n",
	    rsa, ed, rsa2);
	if ((t = parse(text, err, sizeof(err))) == NULL) {
		CHECK(0);
		return;
	}
	r = dkim_sign_msg_buf(t, "example.org", DKIM_SVC_EMAIL, "T", msg,
	    sizeof(msg) - 1, &hdrs, err, sizeof(err));
	CHECK(r == 2);		/* s1 and e1; s2 pending */
	CHECK(hdrs != NULL && strncmp(hdrs, "DKIM-Signature: v=1; "
	    "a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=s1;", 53) == 0);
	CHECK(hdrs != NULL && strstr(hdrs, "a=ed25519-sha256") != NULL);
	/* From, To, Subject, Date signed and oversigned (h= unfolded) */
	if (hdrs != NULL) {
		char flat[4096];
		size_t j = 0;

		for (const char *p = hdrs; *p && j + 1 < sizeof(flat); p++)
			if (*p != '\r' && *p != '\n' && *p != '\t' &&
			    *p != ' ')
				flat[j++] = *p;
		flat[j] = '\0';
		CHECK(strcasestr(flat, "h=From:To:Subject:Date:From:To:"
		    "Subject:Date;") != NULL);
	}
	/* every line ends in CRLF */
	CHECK(hdrs != NULL && strstr(hdrs, "\r\n") != NULL);
	for (const char *p = hdrs; p != NULL && (p = strchr(p, '\n')); p++)
		CHECK(p[-1] == '\r');
	free(hdrs);
	CHECK(dkim_sign_msg_buf(t, "example.net", DKIM_SVC_EMAIL, "T", msg,
	    sizeof(msg) - 1, &hdrs, err, sizeof(err)) == 0 && hdrs == NULL);

	/* rotation: s2 seen in DNS -> s2 signs, s1 is old */
	dkim_key_seen(t, 2);
	CHECK(dkim_table_key(t, 0, &k) == 0 && k.state == DKIM_KEY_OLD);
	CHECK(dkim_table_key(t, 2, &k) == 0 && k.state == DKIM_KEY_ACTIVE);
	r = dkim_sign_msg_buf(t, "example.org", DKIM_SVC_EMAIL, "T", msg,
	    sizeof(msg) - 1, &hdrs, err, sizeof(err));
	CHECK(r == 2 && strstr(hdrs, "s=s2;") != NULL &&
	    strstr(hdrs, "s=s1;") == NULL);
	free(hdrs);
	dkim_table_unref(t);
	/* what was seen outlives a reload (a new table of the same file) */
	if ((t = parse(text, err, sizeof(err))) != NULL) {
		CHECK(dkim_table_key(t, 2, &k) == 0 &&
		    k.state == DKIM_KEY_ACTIVE);
		dkim_table_unref(t);
	}
}

int
main(void)
{
	char *rsa, *rsa2, *ed, cmd[600];

	log_init("test_dkim", 1, 0);
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	rsa = key("rsa.pem", "rsa");
	rsa2 = key("rsa2.pem", "rsa");
	ed = key("ed.pem", "ed25519");
	test_parser(rsa, ed);
	test_from();
	test_records(rsa, ed);
	test_sign(rsa, rsa2, ed);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		perror("rm");
	free(rsa);
	free(rsa2);
	free(ed);
	return t_done();
}
