/*
 * tlsrpt_report.c - SMTP TLS Reporting (RFC 8460): building and sending
 * the daily aggregate report.
 *
 * RFC 8460 sections implemented here:
 *   §3    the "_smtp._tls" TXT record: "v=TLSRPTv1" first, fields
 *         separated by *WSP ";" *WSP, rua = URIs separated by *WSP ","
 *         *WSP, unknown well-formed fields ignored; of several records
 *         only those starting with "v=TLSRPTv1" count and exactly one
 *         must be left.
 *   §4    the JSON report: organization-name, date-range (RFC 3339, UTC,
 *         the whole UTC day), contact-info, report-id, policies[] with
 *         policy {policy-type, policy-string[], policy-domain,
 *         mx-host[] (an array: erratum 6241)}, summary
 *         {total-successful-session-count, total-failure-session-count}
 *         and failure-details[] {result-type, sending-mta-ip,
 *         receiving-mx-hostname, receiving-ip, failed-session-count,
 *         failure-reason-code}; optional members are left out when
 *         unknown, never sent empty.
 *   §5.1  gzip (RFC 1952) of the JSON, filename
 *         "submitter!policy-domain!begin-timestamp!end-timestamp.json.gz".
 *   §5.3  mailto: a multipart/report; report-type="tlsrpt" message with
 *         Subject "Report Domain: D Submitter: S Report-ID: <id>",
 *         TLS-Report-Domain, TLS-Report-Submitter, a text/plain part and
 *         the application/tlsrpt+gzip part (base64 by OpenSSL's
 *         EVP_EncodeBlock), plus "TLS-Required: No" (RFC 8689): it is
 *         spooled with is_report set, so the delivery engine delivers it
 *         despite TLS failures and does not count its sessions (§3).
 *   §5.4  https: a POST of application/tlsrpt+gzip through https.c
 *         (WebPKI-verified TLS); any 2xx is success.
 *   §5.3/§5.4 retries: a failed POST is retried with backoff (10 minutes,
 *         doubling, at most 6 hours) up to TLSRPT_MAX_TRIES times;
 *         mailto reports are retried by the queue like any message.
 *
 * Every destination gets the same bytes: the gzipped report is built
 * once, when the TXT answer arrives, and stored with its report id.
 * JSON by jansson, gzip by zlib, base64 by OpenSSL, HTTP by libevent
 * (https.c): nothing hand-rolled.
 */
#include <sys/queue.h>

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <zlib.h>

#include "config.h"
#include "https.h"
#include "log.h"
#include "resolver.h"
#include "spool.h"
#include "tlsrpt_db.h"
#include "tlsrpt_report.h"
#include "util.h"

#define LOOKUPS_MAX	8	/* TXT lookups in flight */
#define POSTS_MAX	4	/* https POSTs in flight */
#define BACKOFF_MIN	600
#define BACKOFF_MAX	(6 * 3600)
#define MIME_LINE	76

/* ---- TXT record (§3) ----------------------------------------------------- */

void
tlsrpt_rua_free(struct tlsrpt_rua *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < r->n; i++)
		free(r->uri[i]);
	r->n = 0;
}

static int
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* tlsrpt-ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".") */
static int
ext_name_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > 32 || !isalnum((unsigned char)s[0]))
		return 0;
	for (i = 1; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' &&
		    s[i] != '-' && s[i] != '.')
			return 0;
	return 1;
}

/* tlsrpt-ext-value = 1*(%x21-3A / %x3C / %x3E-7E) */
static int
ext_value_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x21 || c > 0x7e || c == ';' || c == '=')
			return 0;
	}
	return 1;
}

/* A URI as RFC 3986 allows its characters (no space, no controls). */
static int
uri_chars_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n >= TLSRPT_URI_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c >= 0x7f || c == '"' || c == '<' ||
		    c == '>' || c == '\\' || c == '^' || c == '`' ||
		    c == '{' || c == '|' || c == '}' || c == ',' || c == ';')
			return 0;
	}
	return 1;
}

static int
parse_rua(const char *v, size_t n, struct tlsrpt_rua *out, char *err,
    size_t errlen)
{
	size_t i = 0, start, end;

	for (;;) {
		start = i;
		while (i < n && v[i] != ',' && !is_wsp(v[i]))
			i++;
		end = i;
		while (i < n && is_wsp(v[i]))
			i++;
		if (!uri_chars_ok(v + start, end - start)) {
			snprintf(err, errlen, "rua: malformed URI");
			return -1;
		}
		if (memchr(v + start, ':', end - start) == NULL) {
			snprintf(err, errlen, "rua: URI without a scheme");
			return -1;
		}
		if ((end - start > 7 && strncasecmp(v + start, "mailto:", 7) ==
		    0) || (end - start > 8 && strncasecmp(v + start,
		    "https://", 8) == 0)) {
			if (out->n < TLSRPT_MAX_RUA)
				out->uri[out->n++] = xstrndup(v + start,
				    end - start);
		}
		/* other schemes: ignored */
		if (i == n)
			break;
		if (v[i] != ',') {
			snprintf(err, errlen, "rua: URIs must be separated by "
			    "\",\"");
			return -1;
		}
		i++;
		while (i < n && is_wsp(v[i]))
			i++;
	}
	return 0;
}

int
tlsrpt_txt_parse(const char *txt, size_t len, struct tlsrpt_rua *out,
    char *err, size_t errlen)
{
	static const char ver[] = "v=TLSRPTv1";
	size_t i, fstart, fend, eq;
	int have_rua = 0;

	memset(out, 0, sizeof(*out));
	if (len > TLSRPT_TXT_MAX) {
		snprintf(err, errlen, "record too long");
		return -1;
	}
	if (memchr(txt, '\0', len) != NULL) {
		snprintf(err, errlen, "record contains a NUL byte");
		return -1;
	}
	if (len < sizeof(ver) - 1 || memcmp(txt, ver, sizeof(ver) - 1) != 0) {
		snprintf(err, errlen, "does not start with v=TLSRPTv1");
		return -1;
	}
	i = sizeof(ver) - 1;
	for (;;) {
		/* field-delim = *WSP ";" *WSP; a trailing one is allowed */
		while (i < len && is_wsp(txt[i]))
			i++;
		if (i == len)
			break;
		if (txt[i] != ';') {
			snprintf(err, errlen, "expected \";\" at offset %zu", i);
			goto fail;
		}
		i++;
		while (i < len && is_wsp(txt[i]))
			i++;
		if (i == len)
			break;
		fstart = i;
		while (i < len && txt[i] != ';')
			i++;
		fend = i;
		while (fend > fstart && is_wsp(txt[fend - 1]))
			fend--;
		for (eq = fstart; eq < fend && txt[eq] != '='; eq++)
			;
		if (eq == fend) {
			snprintf(err, errlen, "field without \"=\"");
			goto fail;
		}
		if (eq - fstart == 3 && memcmp(txt + fstart, "rua", 3) == 0) {
			if (have_rua) {
				snprintf(err, errlen, "rua given twice");
				goto fail;
			}
			have_rua = 1;
			if (parse_rua(txt + eq + 1, fend - eq - 1, out, err,
			    errlen) == -1)
				goto fail;
		} else if (!ext_name_ok(txt + fstart, eq - fstart) ||
		    !ext_value_ok(txt + eq + 1, fend - eq - 1)) {
			snprintf(err, errlen, "malformed field");
			goto fail;
		}
		/* a well-formed unknown field: ignored */
	}
	if (!have_rua) {
		snprintf(err, errlen, "no rua field");
		goto fail;
	}
	if (out->n == 0) {
		snprintf(err, errlen, "no mailto: or https: URI in rua");
		goto fail;
	}
	return 0;
fail:
	tlsrpt_rua_free(out);
	return -1;
}

int
tlsrpt_txt_select(const struct dns_txt *txt, size_t n,
    struct tlsrpt_rua *out, char *err, size_t errlen)
{
	static const char ver[] = "v=TLSRPTv1";
	const struct dns_txt *pick = NULL;
	size_t i, cand = 0;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < n; i++) {
		const char *p = txt[i].data;
		size_t l = txt[i].len, k = sizeof(ver) - 1;

		if (p == NULL || l < k || memcmp(p, ver, k) != 0)
			continue;
		/* "v=TLSRPTv1" then *WSP ";" or the end */
		while (k < l && is_wsp(p[k]))
			k++;
		if (k < l && p[k] != ';')
			continue;
		cand++;
		pick = &txt[i];
	}
	if (cand == 0) {
		snprintf(err, errlen, "no v=TLSRPTv1 record");
		return -1;
	}
	if (cand > 1) {
		snprintf(err, errlen, "%zu v=TLSRPTv1 records (exactly one "
		    "is allowed)", cand);
		return -1;
	}
	return tlsrpt_txt_parse(pick->data, pick->len, out, err, errlen);
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int
tlsrpt_mailto_addr(const char *uri, char *out, size_t outlen)
{
	const char *p;
	size_t o = 0;
	int at = 0, h, l;

	if (strncasecmp(uri, "mailto:", 7) != 0 || outlen == 0)
		return -1;
	for (p = uri + 7; *p != '\0' && *p != '?'; p++) {
		char c = *p;

		if (c == '%') {
			if ((h = hexval(p[1])) == -1 || (l = hexval(p[2])) ==
			    -1)
				return -1;
			c = (char)(h * 16 + l);
			p += 2;
		}
		if ((unsigned char)c <= 0x20 || (unsigned char)c >= 0x7f ||
		    strchr("<>()[]\\,;:\"", c) != NULL)
			return -1;
		if (c == '@')
			at++;
		if (o + 1 >= outlen)
			return -1;
		out[o++] = c;
	}
	out[o] = '\0';
	if (at != 1 || out[0] == '@' || out[o - 1] == '@' || o > 254)
		return -1;
	return 0;
}

/*
 * "https://host[:port][/path][?query][#fragment]" -> host, port and the
 * request target ("/path?query", "/" when empty; the fragment is not
 * sent).  No userinfo, no address literal (the certificate must name a
 * host).  0 ok, -1 not usable.
 */
int
tlsrpt_https_uri(const char *uri, char *host, size_t hostlen, int *port,
    char *target, size_t targetlen)
{
	const char *h = uri + 8, *e, *c, *frag;
	size_t n, i;
	long v;
	char *end;

	if (strncasecmp(uri, "https://", 8) != 0)
		return -1;
	e = h + strcspn(h, "/?#");
	if (memchr(h, '@', (size_t)(e - h)) != NULL)
		return -1;		/* no userinfo */
	if (*h == '[')
		return -1;		/* an address literal has no cert name */
	c = memchr(h, ':', (size_t)(e - h));
	n = (size_t)((c ? c : e) - h);
	if (n == 0 || n >= hostlen)
		return -1;
	for (i = 0; i < n; i++)		/* a DNS name, nothing else */
		if (!isalnum((unsigned char)h[i]) && h[i] != '-' &&
		    h[i] != '.' && h[i] != '_')
			return -1;
	memcpy(host, h, n);
	host[n] = '\0';
	*port = 443;
	if (c != NULL) {
		errno = 0;
		v = strtol(c + 1, &end, 10);
		if (end != e || errno != 0 || v < 1 || v > 65535)
			return -1;
		*port = (int)v;
	}
	frag = e + strcspn(e, "#");
	n = (size_t)(frag - e);
	if (n + 2 > targetlen)
		return -1;
	if (*e != '/')
		*target++ = '/';
	memcpy(target, e, n);
	target[n] = '\0';
	return 0;
}

/* ---- the JSON (§4) ------------------------------------------------------- */

static json_t *
split_array(const char *s)
{
	json_t *a = json_array();
	const char *p = s, *nl;

	if (s == NULL || *s == '\0')
		return a;
	for (;;) {
		nl = strchr(p, '\n');
		json_array_append_new(a, json_stringn(p, nl ? (size_t)(nl - p) :
		    strlen(p)));
		if (nl == NULL)
			break;
		p = nl + 1;
	}
	return a;
}

static void
set_str(json_t *o, const char *key, const unsigned char *v)
{
	if (v != NULL && v[0] != '\0')
		json_object_set_new(o, key, json_string((const char *)v));
}

json_t *
tlsrpt_report_json(sqlite3 *db, const char *day, const char *domain,
    const struct tlsrpt_meta *m, char *err, size_t errlen)
{
	sqlite3_stmt *s = NULL, *f = NULL;
	json_t *root = NULL, *policies, *dr;
	char start[32], end[32];
	struct tm tm;
	time_t t;
	int n = 0, rc;

	if (sqlite3_prepare_v2(db, "SELECT id, type, strings, mx, success, "
	    "failure FROM policy WHERE day = ?1 AND domain = ?2 ORDER BY "
	    "type, mx, strings", -1, &s, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT result, sending_ip, mx, "
	    "receiving_ip, reason, count FROM failure WHERE policy = ?1 "
	    "ORDER BY result, mx, receiving_ip, sending_ip, reason", -1, &f,
	    NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
		goto fail;
	}
	t = m->start;
	gmtime_r(&t, &tm);
	strftime(start, sizeof(start), "%Y-%m-%dT%H:%M:%SZ", &tm);
	t = m->start + 86399;
	gmtime_r(&t, &tm);
	strftime(end, sizeof(end), "%Y-%m-%dT%H:%M:%SZ", &tm);

	root = json_object();
	json_object_set_new(root, "organization-name", json_string(m->org));
	dr = json_object();
	json_object_set_new(dr, "start-datetime", json_string(start));
	json_object_set_new(dr, "end-datetime", json_string(end));
	json_object_set_new(root, "date-range", dr);
	json_object_set_new(root, "contact-info", json_string(m->contact));
	json_object_set_new(root, "report-id", json_string(m->report_id));
	policies = json_array();
	json_object_set_new(root, "policies", policies);

	sqlite3_bind_text(s, 1, day, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, domain, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		json_t *pe = json_object(), *pol = json_object();
		json_t *sum = json_object(), *fd = json_array(), *a;
		const char *strs = (const char *)sqlite3_column_text(s, 2);
		const char *mx = (const char *)sqlite3_column_text(s, 3);

		json_object_set_new(pol, "policy-type", json_string(
		    (const char *)sqlite3_column_text(s, 1)));
		if (strs != NULL && *strs != '\0')
			json_object_set_new(pol, "policy-string",
			    split_array(strs));
		json_object_set_new(pol, "policy-domain", json_string(domain));
		if (mx != NULL && *mx != '\0')
			json_object_set_new(pol, "mx-host", split_array(mx));
		json_object_set_new(pe, "policy", pol);
		json_object_set_new(sum, "total-successful-session-count",
		    json_integer(sqlite3_column_int64(s, 4)));
		json_object_set_new(sum, "total-failure-session-count",
		    json_integer(sqlite3_column_int64(s, 5)));
		json_object_set_new(pe, "summary", sum);

		sqlite3_reset(f);
		sqlite3_bind_int64(f, 1, sqlite3_column_int64(s, 0));
		while (sqlite3_step(f) == SQLITE_ROW) {
			a = json_object();
			set_str(a, "result-type", sqlite3_column_text(f, 0));
			set_str(a, "sending-mta-ip", sqlite3_column_text(f,
			    1));
			set_str(a, "receiving-mx-hostname",
			    sqlite3_column_text(f, 2));
			set_str(a, "receiving-ip", sqlite3_column_text(f, 3));
			json_object_set_new(a, "failed-session-count",
			    json_integer(sqlite3_column_int64(f, 5)));
			set_str(a, "failure-reason-code", sqlite3_column_text(f,
			    4));
			json_array_append_new(fd, a);
		}
		if (json_array_size(fd) > 0)
			json_object_set_new(pe, "failure-details", fd);
		else
			json_decref(fd);
		json_array_append_new(policies, pe);
		n++;
	}
	if (rc != SQLITE_DONE) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
		goto fail;
	}
	if (n == 0) {
		snprintf(err, errlen, "no sessions recorded for %s on %s",
		    domain, day);
		goto fail;
	}
	sqlite3_finalize(s);
	sqlite3_finalize(f);
	return root;
fail:
	json_decref(root);
	sqlite3_finalize(s);
	sqlite3_finalize(f);
	return NULL;
}

/* ---- gzip (§5.1) --------------------------------------------------------- */

int
tlsrpt_gzip(const void *in, size_t len, unsigned char **out, size_t *outlen)
{
	z_stream z;
	unsigned char *buf;
	size_t cap;
	int rc;

	memset(&z, 0, sizeof(z));
	/* windowBits 15 + 16: a gzip (RFC 1952) header and trailer */
	if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
	    Z_DEFAULT_STRATEGY) != Z_OK)
		return -1;
	cap = deflateBound(&z, (uLong)len) + 32;
	buf = xmalloc(cap);
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	z.next_out = buf;
	z.avail_out = (uInt)cap;
	rc = deflate(&z, Z_FINISH);
	if (rc != Z_STREAM_END) {
		deflateEnd(&z);
		free(buf);
		return -1;
	}
	*outlen = z.total_out;
	*out = buf;
	deflateEnd(&z);
	return 0;
}

/* ---- the mail (§5.3) ----------------------------------------------------- */

void
tlsrpt_filename(const struct tlsrpt_meta *m, const char *domain, char *out,
    size_t outlen)
{
	snprintf(out, outlen, "%s!%s!%lld!%lld.json.gz", m->submitter, domain,
	    (long long)m->start, (long long)m->start + 86399);
}

char *
tlsrpt_report_id(const char *day, const char *domain, const char *submitter)
{
	unsigned char r[8];
	char hex[17], d[9];
	size_t i;

	if (getentropy(r, sizeof(r)) == -1)
		memset(r, 0, sizeof(r));
	for (i = 0; i < sizeof(r); i++)
		snprintf(hex + 2 * i, 3, "%02x", r[i]);
	/* "2024-01-09" -> "20240109" */
	snprintf(d, sizeof(d), "%.4s%.2s%.2s", day, day + 5, day + 8);
	return xasprintf("%s.%s.%s@%s", d, domain, hex, submitter);
}

static void
rfc5322_now(char *buf, size_t len)
{
	time_t t = tlsrpt_now();
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

char *
tlsrpt_mime(const struct tlsrpt_meta *m, const char *domain,
    const char *from, const char *to, const unsigned char *gz, size_t gzlen,
    size_t *lenp)
{
	char *buf = NULL, date[64], fname[700], boundary[96], day[11];
	unsigned char line[MIME_LINE + 8];
	size_t len = 0, off, n;
	unsigned char rnd[6];
	FILE *f;
	int i;

	if ((f = open_memstream(&buf, &len)) == NULL)
		return NULL;
	rfc5322_now(date, sizeof(date));
	tlsrpt_filename(m, domain, fname, sizeof(fname));
	if (getentropy(rnd, sizeof(rnd)) == -1)
		memset(rnd, 0, sizeof(rnd));
	n = (size_t)snprintf(boundary, sizeof(boundary), "=_tlsrpt_");
	for (i = 0; i < 6; i++)
		n += (size_t)snprintf(boundary + n, sizeof(boundary) - n,
		    "%02x", rnd[i]);

	fprintf(f, "From: <%s>\r\n", from);
	fprintf(f, "To: <%s>\r\n", to);
	fprintf(f, "Date: %s\r\n", date);
	/* folded (RFC 5322 §2.2.3): unfolds to single spaces */
	fprintf(f, "Subject: Report Domain: %s\r\n Submitter: %s\r\n "
	    "Report-ID: <%s>\r\n", domain, m->submitter, m->report_id);
	fprintf(f, "Message-ID: <%s>\r\n", m->report_id);
	fprintf(f, "TLS-Report-Domain: %s\r\n", domain);
	fprintf(f, "TLS-Report-Submitter: %s\r\n", m->submitter);
	fprintf(f, "TLS-Required: No\r\n");
	fprintf(f, "Auto-Submitted: auto-generated\r\n");
	fprintf(f, "MIME-Version: 1.0\r\n");
	fprintf(f, "Content-Type: multipart/report; report-type=\"tlsrpt\";"
	    "\r\n\tboundary=\"%s\"\r\n\r\n", boundary);
	fprintf(f, "This is a multipart message in MIME format.\r\n\r\n");

	fprintf(f, "--%s\r\n", boundary);
	fprintf(f, "Content-Type: text/plain; charset=us-ascii\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n\r\n");
	tlsrpt_day(m->start, day);
	fprintf(f, "This is an aggregate TLS report (RFC 8460) from %s\r\n"
	    "for the policy domain %s,\r\n"
	    "covering %s 00:00:00 to 23:59:59 UTC.\r\n"
	    "Report-ID: <%s>\r\n\r\n", m->org, domain, day, m->report_id);

	fprintf(f, "--%s\r\n", boundary);
	fprintf(f, "Content-Type: application/tlsrpt+gzip\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "Content-Disposition: attachment;\r\n\tfilename=\"%s\"\r\n\r\n",
	    fname);
	/* 57 input bytes -> one 76-character line */
	for (off = 0; off < gzlen; off += 57) {
		n = gzlen - off < 57 ? gzlen - off : 57;
		EVP_EncodeBlock(line, gz + off, (int)n);
		fprintf(f, "%s\r\n", line);
	}
	fprintf(f, "\r\n--%s--\r\n", boundary);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	*lenp = len;
	return buf;
}

/* ---- a run --------------------------------------------------------------- */

struct lookup {
	TAILQ_ENTRY(lookup) entry;
	struct tlsrpt_run *run;
	char day[11];
	char *domain;
	struct resolver_query *q;
};
TAILQ_HEAD(lookup_list, lookup);

struct post {
	TAILQ_ENTRY(post) entry;
	struct tlsrpt_run *run;
	char day[11];
	char *domain;
	char *uri;
	int tries;
	struct https_req *req;
	unsigned char *gz;		/* the body while the POST runs */
};
TAILQ_HEAD(post_list, post);

enum run_phase {
	PH_LOOKUP = 0,
	PH_SEND,
	PH_DONE,
};

struct tlsrpt_run {
	struct event_base *base;
	sqlite3 *db;
	struct spool *sp;
	spool_submit_cb *submit;	/* mailto reports, or NULL */
	void *submit_arg;
	char *org, *contact, *submitter, *from;
	char *ca_file;
	char day[11];			/* "" = everything due */
	char today[11], oldest[11];
	struct resolver *res;
	SSL_CTX *https_ctx;
	int https_ctx_failed;

	struct lookup_list todo, busy;	/* TXT lookups */
	struct post_list posts, posting;
	enum run_phase phase;
	int nerrors;
	struct event *ev_step;

	tlsrpt_line_cb *line;
	tlsrpt_run_cb *done;
	void *arg;
};

static void run_step(struct tlsrpt_run *run);

static void
say(struct tlsrpt_run *run, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
say(struct tlsrpt_run *run, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (run->line != NULL)
		run->line(buf, run->arg);
}

static void
step_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	run_step(arg);
}

static void
kick(struct tlsrpt_run *run)
{
	struct timeval tv = { 0, 0 };

	evtimer_add(run->ev_step, &tv);
}

static void
lookup_free(struct lookup *l)
{
	free(l->domain);
	free(l);
}

static void
post_free(struct post *p)
{
	free(p->gz);
	free(p->domain);
	free(p->uri);
	free(p);
}

static void
run_free(struct tlsrpt_run *run)
{
	struct lookup *l;
	struct post *p;

	while ((l = TAILQ_FIRST(&run->busy)) != NULL) {
		TAILQ_REMOVE(&run->busy, l, entry);
		resolver_cancel(l->q);
		lookup_free(l);
	}
	while ((l = TAILQ_FIRST(&run->todo)) != NULL) {
		TAILQ_REMOVE(&run->todo, l, entry);
		lookup_free(l);
	}
	while ((p = TAILQ_FIRST(&run->posting)) != NULL) {
		TAILQ_REMOVE(&run->posting, p, entry);
		https_cancel(p->req);
		post_free(p);
	}
	while ((p = TAILQ_FIRST(&run->posts)) != NULL) {
		TAILQ_REMOVE(&run->posts, p, entry);
		post_free(p);
	}
	resolver_free(run->res);
	SSL_CTX_free(run->https_ctx);
	if (run->ev_step != NULL)
		event_free(run->ev_step);
	free(run->org);
	free(run->contact);
	free(run->submitter);
	free(run->from);
	free(run->ca_file);
	free(run);
}

void
tlsrpt_run_cancel(struct tlsrpt_run *run)
{
	if (run != NULL)
		run_free(run);
}

/* Simple "local@domain" check for tlsrpt_from. */
static int
addr_ok(const char *a)
{
	const char *at = strchr(a, '@');
	const char *p;

	if (at == NULL || at == a || at[1] == '\0' || strchr(at + 1, '@'))
		return 0;
	for (p = a; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f ||
		    strchr("<>()[]\\,;:\"", *p) != NULL)
			return 0;
	return strlen(a) <= 254;
}

static int
db_step_done(sqlite3 *db, sqlite3_stmt *s, char *err, size_t errlen)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	if (rc == SQLITE_DONE || rc == SQLITE_ROW)
		return 0;
	snprintf(err, errlen, "%s", sqlite3_errmsg(db));
	return -1;
}

static int
exec(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

/* Record that (day, domain) takes no reports. */
static void
store_norua(struct tlsrpt_run *run, const char *day, const char *domain,
    const char *why)
{
	sqlite3_stmt *s = NULL;
	char err[256];

	if (sqlite3_prepare_v2(run->db, "INSERT OR REPLACE INTO report (day, "
	    "domain, state, created, note) VALUES (?1, ?2, 'norua', ?3, ?4)",
	    -1, &s, NULL) != SQLITE_OK) {
		say(run, "%s %s: database: %s", day, domain,
		    sqlite3_errmsg(run->db));
		run->nerrors++;
		return;
	}
	sqlite3_bind_text(s, 1, day, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, domain, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, (long long)tlsrpt_now());
	sqlite3_bind_text(s, 4, why, -1, SQLITE_STATIC);
	if (db_step_done(run->db, s, err, sizeof(err)) == -1) {
		say(run, "%s %s: database: %s", day, domain, err);
		run->nerrors++;
	}
	sqlite3_finalize(s);
}

/* Build the report and its destinations in one transaction. */
static void
store_report(struct tlsrpt_run *run, const char *day, const char *domain,
    const struct tlsrpt_rua *rua)
{
	struct tlsrpt_meta m;
	sqlite3_stmt *s = NULL;
	json_t *js;
	char *text = NULL, *id, err[512], addr[256], host[256];
	char target[TLSRPT_URI_MAX + 2];
	unsigned char *gz = NULL;
	size_t gzlen = 0, i, ndest = 0;
	int port;

	id = tlsrpt_report_id(day, domain, run->submitter);
	memset(&m, 0, sizeof(m));
	m.org = run->org;
	m.contact = run->contact;
	m.submitter = run->submitter;
	m.report_id = id;
	if (tlsrpt_day_parse(day, &m.start) == -1) {
		say(run, "%s %s: bad day in the database", day, domain);
		run->nerrors++;
		free(id);
		return;
	}
	if ((js = tlsrpt_report_json(run->db, day, domain, &m, err,
	    sizeof(err))) == NULL) {
		say(run, "%s %s: cannot build the report: %s", day, domain,
		    err);
		run->nerrors++;
		free(id);
		return;
	}
	text = json_dumps(js, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(js);
	if (text == NULL || tlsrpt_gzip(text, strlen(text), &gz, &gzlen) ==
	    -1) {
		say(run, "%s %s: cannot serialise/compress the report", day,
		    domain);
		run->nerrors++;
		goto out;
	}
	if (exec(run->db, "BEGIN IMMEDIATE") == -1) {
		say(run, "%s %s: database: %s", day, domain,
		    sqlite3_errmsg(run->db));
		run->nerrors++;
		goto out;
	}
	if (sqlite3_prepare_v2(run->db, "INSERT OR REPLACE INTO report (day, "
	    "domain, state, report_id, gz, created) VALUES (?1, ?2, 'ready', "
	    "?3, ?4, ?5)", -1, &s, NULL) != SQLITE_OK)
		goto dberr;
	sqlite3_bind_text(s, 1, day, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, domain, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, id, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s, 4, gz, (int)gzlen, SQLITE_STATIC);
	sqlite3_bind_int64(s, 5, (long long)tlsrpt_now());
	if (db_step_done(run->db, s, err, sizeof(err)) == -1)
		goto dberr2;
	sqlite3_finalize(s);
	s = NULL;
	if (sqlite3_prepare_v2(run->db, "INSERT OR IGNORE INTO dest (day, "
	    "domain, uri, state, tries, next_try) VALUES (?1, ?2, ?3, "
	    "'pending', 0, 0)", -1, &s, NULL) != SQLITE_OK)
		goto dberr;
	for (i = 0; i < rua->n; i++) {
		const char *u = rua->uri[i];

		if (strncasecmp(u, "mailto:", 7) == 0 &&
		    tlsrpt_mailto_addr(u, addr, sizeof(addr)) == -1) {
			say(run, "%s %s: %s: not a usable mail address, "
			    "skipped", day, domain, u);
			continue;
		}
		if (strncasecmp(u, "https:", 6) == 0 &&
		    tlsrpt_https_uri(u, host, sizeof(host), &port, target,
		    sizeof(target)) == -1) {
			say(run, "%s %s: %s: not a usable https URI, skipped",
			    day, domain, u);
			continue;
		}
		sqlite3_bind_text(s, 1, day, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, domain, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 3, u, -1, SQLITE_STATIC);
		if (db_step_done(run->db, s, err, sizeof(err)) == -1)
			goto dberr2;
		ndest++;
	}
	sqlite3_finalize(s);
	s = NULL;
	if (ndest == 0) {
		(void)exec(run->db, "ROLLBACK");
		store_norua(run, day, domain, "no usable rua URI");
		say(run, "%s %s: no usable rua URI in the TLSRPT record", day,
		    domain);
		goto out;
	}
	if (exec(run->db, "COMMIT") == -1)
		goto dberr;
	say(run, "%s %s: report %s built (%zu bytes JSON, %zu gzipped), "
	    "%zu destination%s", day, domain, id, strlen(text), gzlen, ndest,
	    ndest == 1 ? "" : "s");
	goto out;
dberr:
	snprintf(err, sizeof(err), "%s", sqlite3_errmsg(run->db));
dberr2:
	sqlite3_finalize(s);
	(void)exec(run->db, "ROLLBACK");
	say(run, "%s %s: database: %s", day, domain, err);
	run->nerrors++;
out:
	free(text);
	free(gz);
	free(id);
}

static void
txt_done(struct dns_result *res, void *arg)
{
	struct lookup *l = arg;
	struct tlsrpt_run *run = l->run;
	struct tlsrpt_rua rua;
	char err[256];

	TAILQ_REMOVE(&run->busy, l, entry);
	if (res->status == DNS_OK && res->security != DNS_SEC_BOGUS) {
		if (tlsrpt_txt_select(res->txt, res->n, &rua, err,
		    sizeof(err)) == 0) {
			store_report(run, l->day, l->domain, &rua);
			tlsrpt_rua_free(&rua);
		} else {
			say(run, "%s %s: no report: _smtp._tls.%s: %s", l->day,
			    l->domain, l->domain, err);
			store_norua(run, l->day, l->domain, err);
		}
	} else if (res->status == DNS_NXDOMAIN || res->status == DNS_NODATA) {
		say(run, "%s %s: no report: the domain publishes no TLSRPT "
		    "record", l->day, l->domain);
		store_norua(run, l->day, l->domain, "no _smtp._tls TXT record");
	} else {
		say(run, "%s %s: TXT lookup of _smtp._tls.%s failed (%s%s%s); "
		    "will try again", l->day, l->domain, l->domain,
		    dns_security_name(res->security), res->reason[0] ? ": " :
		    "", res->reason);
		run->nerrors++;
	}
	dns_result_free(res);
	lookup_free(l);
	kick(run);
}

/* Load the destinations to send in this run. */
static int
load_posts(struct tlsrpt_run *run, char *err, size_t errlen)
{
	sqlite3_stmt *s = NULL;
	struct post *p;
	int rc;

	if (sqlite3_prepare_v2(run->db, "SELECT day, domain, uri, tries FROM "
	    "dest WHERE state = 'pending' AND (?1 = '' AND day >= ?2 AND "
	    "next_try <= ?3 OR day = ?1) ORDER BY day, domain, uri", -1, &s,
	    NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(run->db));
		return -1;
	}
	sqlite3_bind_text(s, 1, run->day, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, run->oldest, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, (long long)tlsrpt_now());
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		p = xcalloc(1, sizeof(*p));
		p->run = run;
		dr_strlcpy(p->day, (const char *)sqlite3_column_text(s, 0),
		    sizeof(p->day));
		p->domain = xstrdup((const char *)sqlite3_column_text(s, 1));
		p->uri = xstrdup((const char *)sqlite3_column_text(s, 2));
		p->tries = sqlite3_column_int(s, 3);
		TAILQ_INSERT_TAIL(&run->posts, p, entry);
	}
	if (rc != SQLITE_DONE)
		snprintf(err, errlen, "%s", sqlite3_errmsg(run->db));
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* state: 'sent', 'pending' (retry later) or 'failed'. */
static void
dest_update(struct tlsrpt_run *run, const struct post *p, const char *state,
    int tries, const char *note)
{
	sqlite3_stmt *s = NULL;
	long long next = 0;
	char err[256];
	int k;

	if (strcmp(state, "pending") == 0) {
		next = BACKOFF_MIN;
		for (k = 1; k < tries && next < BACKOFF_MAX; k++)
			next *= 2;
		if (next > BACKOFF_MAX)
			next = BACKOFF_MAX;
		next += (long long)tlsrpt_now();
	}
	if (sqlite3_prepare_v2(run->db, "UPDATE dest SET state = ?1, tries = "
	    "?2, next_try = ?3, note = ?4 WHERE day = ?5 AND domain = ?6 AND "
	    "uri = ?7", -1, &s, NULL) != SQLITE_OK) {
		say(run, "%s %s: database: %s", p->day, p->domain,
		    sqlite3_errmsg(run->db));
		run->nerrors++;
		return;
	}
	sqlite3_bind_text(s, 1, state, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 2, tries);
	sqlite3_bind_int64(s, 3, next);
	sqlite3_bind_text(s, 4, note, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 5, p->day, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 6, p->domain, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 7, p->uri, -1, SQLITE_STATIC);
	if (db_step_done(run->db, s, err, sizeof(err)) == -1) {
		say(run, "%s %s: database: %s", p->day, p->domain, err);
		run->nerrors++;
	}
	sqlite3_finalize(s);
}

/* The stored report of (day, domain): id and gzip bytes (malloc'ed). */
static int
load_report(struct tlsrpt_run *run, const char *day, const char *domain,
    char **id, unsigned char **gz, size_t *gzlen)
{
	sqlite3_stmt *s = NULL;
	int ok = 0;

	if (sqlite3_prepare_v2(run->db, "SELECT report_id, gz FROM report "
	    "WHERE day = ?1 AND domain = ?2 AND state = 'ready'", -1, &s,
	    NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(s, 1, day, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, domain, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) ==
	    SQLITE_TEXT && sqlite3_column_type(s, 1) == SQLITE_BLOB) {
		int n = sqlite3_column_bytes(s, 1);

		*id = xstrdup((const char *)sqlite3_column_text(s, 0));
		*gz = xmalloc((size_t)n);
		memcpy(*gz, sqlite3_column_blob(s, 1), (size_t)n);
		*gzlen = (size_t)n;
		ok = 1;
	}
	sqlite3_finalize(s);
	return ok ? 0 : -1;
}

/* mailto: commit the report mail to the spool and hand it to the queue. */
static void
send_mail(struct tlsrpt_run *run, struct post *p, const char *id,
    const unsigned char *gz, size_t gzlen)
{
	struct tlsrpt_meta m;
	struct spool_writer *w;
	struct spool_env *env;
	char addr[256], err[512], *msg, *note;
	size_t len;

	if (tlsrpt_mailto_addr(p->uri, addr, sizeof(addr)) == -1) {
		say(run, "%s %s: %s: not a usable address", p->day, p->domain,
		    p->uri);
		dest_update(run, p, "failed", p->tries + 1, "bad address");
		run->nerrors++;
		return;
	}
	memset(&m, 0, sizeof(m));
	m.org = run->org;
	m.contact = run->contact;
	m.submitter = run->submitter;
	m.report_id = id;
	(void)tlsrpt_day_parse(p->day, &m.start);
	if ((msg = tlsrpt_mime(&m, p->domain, run->from, addr, gz, gzlen,
	    &len)) == NULL) {
		say(run, "%s %s: cannot build the report mail", p->day,
		    p->domain);
		run->nerrors++;
		return;
	}
	if ((w = spool_writer_new(run->sp, err, sizeof(err))) == NULL ||
	    spool_writer_write(w, msg, len) == -1) {
		if (w != NULL)
			snprintf(err, sizeof(err), "write: %s",
			    strerror(errno));
		spool_writer_abort(w);
		free(msg);
		say(run, "%s %s: %s: cannot spool the report: %s", p->day,
		    p->domain, p->uri, err);
		run->nerrors++;
		return;
	}
	free(msg);
	env = spool_env_new();
	env->sender = xstrdup(run->from);
	env->created = time(NULL);
	env->client_addr = xstrdup("127.0.0.1");
	env->client_helo = xstrdup(run->submitter);
	env->is_report = 1;
	spool_env_add_rcpt(env, addr);
	if (spool_writer_commit(w, env, err, sizeof(err)) == -1) {
		spool_env_free(env);
		say(run, "%s %s: %s: cannot spool the report: %s", p->day,
		    p->domain, p->uri, err);
		run->nerrors++;
		return;
	}
	note = xasprintf("queued as %s", env->id);
	dest_update(run, p, "sent", p->tries + 1, note);
	free(note);
	log_info("%s: TLSRPT report %s for %s (%s) to <%s>, from=<%s>",
	    env->id, id, p->domain, p->day, addr, run->from);
	say(run, "%s %s: report to %s queued as %s%s", p->day, p->domain,
	    p->uri, env->id, run->submit ? "" : " (delivered when danerelayd "
	    "runs)");
	if (run->submit != NULL)
		run->submit(env, run->submit_arg);
	spool_env_free(env);
}

static void
post_done(const struct https_result *r, void *arg)
{
	struct post *p = arg;
	struct tlsrpt_run *run = p->run;
	char note[512];
	int tries = p->tries + 1;

	TAILQ_REMOVE(&run->posting, p, entry);
	if (r->fail == HTTPS_OK) {
		snprintf(note, sizeof(note), "HTTP %d", r->status);
		dest_update(run, p, "sent", tries, note);
		say(run, "%s %s: report posted to %s (HTTP %d)", p->day,
		    p->domain, p->uri, r->status);
	} else {
		snprintf(note, sizeof(note), "%s%s%s", https_fail_name(r->fail),
		    r->reason[0] ? ": " : "", r->reason);
		if (r->status != 0 && r->fail == HTTPS_FAIL_STATUS)
			snprintf(note, sizeof(note), "HTTP %d%s%s", r->status,
			    r->reason[0] ? ": " : "", r->reason);
		dest_update(run, p, tries >= TLSRPT_MAX_TRIES ? "failed" :
		    "pending", tries, note);
		say(run, "%s %s: POST to %s failed (%s)%s", p->day, p->domain,
		    p->uri, note, tries >= TLSRPT_MAX_TRIES ? "; giving up" :
		    "; will retry");
		run->nerrors++;
	}
	post_free(p);
	kick(run);
}

/* https: start the POST (takes gz).  0 started, -1 done (error said). */
static int
send_post(struct tlsrpt_run *run, struct post *p, unsigned char *gz,
    size_t gzlen)
{
	struct https_params hp;
	char host[256], err[512], target[TLSRPT_URI_MAX + 2];
	int port;

	free(p->gz);
	p->gz = gz;
	if (tlsrpt_https_uri(p->uri, host, sizeof(host), &port, target,
	    sizeof(target)) == -1) {
		say(run, "%s %s: %s: not a usable https URI", p->day,
		    p->domain, p->uri);
		dest_update(run, p, "failed", p->tries + 1, "bad URI");
		run->nerrors++;
		return -1;
	}
	if (run->https_ctx == NULL && !run->https_ctx_failed &&
	    (run->https_ctx = https_ctx_new(run->ca_file, err,
	    sizeof(err))) == NULL) {
		run->https_ctx_failed = 1;
		say(run, "https client: %s", err);
	}
	if (run->https_ctx == NULL) {
		dest_update(run, p, "pending", p->tries + 1, "no https client");
		run->nerrors++;
		return -1;
	}
	memset(&hp, 0, sizeof(hp));
	hp.base = run->base;
	hp.ssl_ctx = run->https_ctx;
	hp.resolver = run->res;
	hp.method = HTTPS_POST;
	hp.host = host;
	hp.port = port;
	hp.path = target;
	hp.content_type = "application/tlsrpt+gzip";
	hp.body = gz;
	hp.body_len = gzlen;
	hp.status_rule = HTTPS_STATUS_2XX;
	hp.timeout_ms = TLSRPT_HTTPS_TIMEOUT * 1000;
	hp.logid = "tlsrpt";
	if ((p->req = https_request(&hp, post_done, p, err,
	    sizeof(err))) == NULL) {
		say(run, "%s %s: POST to %s: %s; will retry", p->day,
		    p->domain, p->uri, err);
		dest_update(run, p, "pending", p->tries + 1, err);
		run->nerrors++;
		return -1;
	}
	return 0;
}

/* Send one destination; 1 if it is now in flight. */
static int
send_one(struct tlsrpt_run *run, struct post *p)
{
	unsigned char *gz = NULL;
	size_t gzlen = 0;
	char *id = NULL;
	int inflight = 0;

	if (load_report(run, p->day, p->domain, &id, &gz, &gzlen) == -1) {
		say(run, "%s %s: the stored report is missing", p->day,
		    p->domain);
		dest_update(run, p, "failed", p->tries, "report missing");
		run->nerrors++;
	} else if (strncasecmp(p->uri, "mailto:", 7) == 0)
		send_mail(run, p, id, gz, gzlen);
	else {
		inflight = send_post(run, p, gz, gzlen) == 0;
		gz = NULL;	/* p owns it */
	}
	free(id);
	free(gz);
	return inflight;
}

static void
run_step(struct tlsrpt_run *run)
{
	struct lookup *l;
	struct post *p;
	char name[DNS_NAME_BUF], err[512];
	int n;

	switch (run->phase) {
	case PH_LOOKUP:
		for (n = 0, l = TAILQ_FIRST(&run->busy); l != NULL;
		    l = TAILQ_NEXT(l, entry))
			n++;
		while (n < LOOKUPS_MAX && (l = TAILQ_FIRST(&run->todo)) !=
		    NULL) {
			TAILQ_REMOVE(&run->todo, l, entry);
			snprintf(name, sizeof(name), "_smtp._tls.%s",
			    l->domain);
			l->q = resolver_query(run->res, name, DNS_T_TXT,
			    txt_done, l, err, sizeof(err));
			if (l->q == NULL) {
				say(run, "%s %s: TXT lookup of %s: %s", l->day,
				    l->domain, name, err);
				run->nerrors++;
				lookup_free(l);
				continue;
			}
			TAILQ_INSERT_TAIL(&run->busy, l, entry);
			n++;
		}
		if (n > 0)
			return;		/* txt_done() kicks */
		run->phase = PH_SEND;
		if (load_posts(run, err, sizeof(err)) == -1) {
			say(run, "database: %s", err);
			run->nerrors++;
		}
		/* FALLTHROUGH */
	case PH_SEND:
		for (n = 0, p = TAILQ_FIRST(&run->posting); p != NULL;
		    p = TAILQ_NEXT(p, entry))
			n++;
		while (n < POSTS_MAX && (p = TAILQ_FIRST(&run->posts)) !=
		    NULL) {
			TAILQ_REMOVE(&run->posts, p, entry);
			if (send_one(run, p)) {
				TAILQ_INSERT_TAIL(&run->posting, p, entry);
				n++;
			} else
				post_free(p);
		}
		if (n > 0)
			return;		/* post_done() kicks */
		run->phase = PH_DONE;
		/* FALLTHROUGH */
	case PH_DONE:
		run->done(run, run->nerrors, run->arg);
		run_free(run);
		return;
	}
}

/* For a given day: say what was already done for it. */
static void
say_existing(struct tlsrpt_run *run)
{
	sqlite3_stmt *s = NULL;

	if (sqlite3_prepare_v2(run->db, "SELECT r.domain, r.state, r.note, "
	    "d.uri, d.state, d.note FROM report r LEFT JOIN dest d ON "
	    "d.day = r.day AND d.domain = r.domain WHERE r.day = ?1 AND "
	    "(d.state IS NULL OR d.state != 'pending') ORDER BY r.domain, "
	    "d.uri", -1, &s, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_text(s, 1, run->day, -1, SQLITE_STATIC);
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *dom = (const char *)sqlite3_column_text(s, 0);
		const char *st = (const char *)sqlite3_column_text(s, 1);
		const char *note = (const char *)sqlite3_column_text(s, 2);
		const char *uri = (const char *)sqlite3_column_text(s, 3);
		const char *dst = (const char *)sqlite3_column_text(s, 4);
		const char *dnote = (const char *)sqlite3_column_text(s, 5);

		if (strcmp(st, "norua") == 0)
			say(run, "%s %s: no report (%s)", run->day, dom,
			    note ? note : "no TLSRPT record");
		else if (uri != NULL)
			say(run, "%s %s: report to %s already %s (%s)",
			    run->day, dom, uri, dst, dnote ? dnote : "");
	}
	sqlite3_finalize(s);
}

struct tlsrpt_run *
tlsrpt_run_start(struct event_base *base, const struct config *cf,
    sqlite3 *db, struct spool *sp, spool_submit_cb *submit, void *submit_arg,
    const char *day, tlsrpt_line_cb *line, tlsrpt_run_cb *done, void *arg,
    char *err, size_t errlen)
{
	struct tlsrpt_run *run = xcalloc(1, sizeof(*run));
	sqlite3_stmt *s = NULL;
	struct lookup *l;
	time_t start, now = tlsrpt_now();
	int rc, nitems = 0;

	run->base = base;
	run->db = db;
	run->sp = sp;
	run->submit = submit;
	run->submit_arg = submit_arg;
	run->line = line;
	run->done = done;
	run->arg = arg;
	TAILQ_INIT(&run->todo);
	TAILQ_INIT(&run->busy);
	TAILQ_INIT(&run->posts);
	TAILQ_INIT(&run->posting);
	run->submitter = xstrdup(cf->myhostname ? cf->myhostname :
	    "localhost");
	run->org = xstrdup(cf->tlsrpt_org_name ? cf->tlsrpt_org_name :
	    run->submitter);
	run->contact = cf->tlsrpt_contact ? xstrdup(cf->tlsrpt_contact) :
	    xasprintf("postmaster@%s", run->submitter);
	if (cf->tlsrpt_from != NULL && addr_ok(cf->tlsrpt_from))
		run->from = xstrdup(cf->tlsrpt_from);
	else {
		if (cf->tlsrpt_from != NULL)
			log_warnx("tlsrpt: tlsrpt_from \"%s\" is not a plain "
			    "address (local@domain); using postmaster@%s",
			    cf->tlsrpt_from, run->submitter);
		run->from = xasprintf("postmaster@%s", run->submitter);
	}
	if (cf->ca_file != NULL)
		run->ca_file = xstrdup(cf->ca_file);
	tlsrpt_day(now, run->today);
	tlsrpt_day(now - (time_t)TLSRPT_KEEP_DAYS * 86400, run->oldest);
	if (day != NULL) {
		if (tlsrpt_day_parse(day, &start) == -1) {
			snprintf(err, errlen, "%s: not a day (YYYY-MM-DD)", day);
			goto fail;
		}
		dr_strlcpy(run->day, day, sizeof(run->day));
	}
	if ((run->ev_step = evtimer_new(base, step_cb, run)) == NULL) {
		snprintf(err, errlen, "cannot arm a timer");
		goto fail;
	}
	if ((run->res = resolver_new(base, cf, err, errlen)) == NULL)
		goto fail;

	/* (day, domain) pairs with counters and no report decision yet */
	if (sqlite3_prepare_v2(db, "SELECT DISTINCT day, domain FROM policy p "
	    "WHERE (?1 = '' AND day < ?2 AND day >= ?3 OR day = ?1) AND NOT "
	    "EXISTS (SELECT 1 FROM report r WHERE r.day = p.day AND r.domain "
	    "= p.domain) ORDER BY day, domain", -1, &s, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
		goto fail;
	}
	sqlite3_bind_text(s, 1, run->day, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, run->today, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, run->oldest, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		l = xcalloc(1, sizeof(*l));
		l->run = run;
		dr_strlcpy(l->day, (const char *)sqlite3_column_text(s, 0),
		    sizeof(l->day));
		l->domain = xstrdup((const char *)sqlite3_column_text(s, 1));
		TAILQ_INSERT_TAIL(&run->todo, l, entry);
		nitems++;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
		goto fail;
	}
	if (run->day[0] != '\0') {
		say_existing(run);
		if (nitems == 0) {
			sqlite3_stmt *c = NULL;
			int any = 0;

			if (sqlite3_prepare_v2(db, "SELECT 1 FROM policy WHERE "
			    "day = ?1 LIMIT 1", -1, &c, NULL) == SQLITE_OK) {
				sqlite3_bind_text(c, 1, run->day, -1,
				    SQLITE_STATIC);
				any = sqlite3_step(c) == SQLITE_ROW;
			}
			sqlite3_finalize(c);
			if (!any)
				say(run, "%s: no sessions recorded", run->day);
		}
	}
	kick(run);
	return run;
fail:
	run_free(run);
	return NULL;
}
