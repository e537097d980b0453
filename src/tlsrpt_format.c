/*
 * tlsrpt_format.c - SMTP TLS Reporting (RFC 8460): the report's formats.
 *   §4    the JSON report from the counters in the database (jansson);
 *   §5.1  gzip (RFC 1952, zlib) and the report's file name;
 *   §5.3  the report mail: multipart/report; report-type="tlsrpt" with
 *         the application/tlsrpt+gzip part (base64 by OpenSSL).
 * See tlsrpt_report.c's top for the details of each.
 *
 * Moved out of tlsrpt_report.c unchanged (issue #15).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <zlib.h>

#include "tlsrpt_db.h"
#include "tlsrpt_format.h"
#include "util.h"

#define MIME_LINE	76

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

