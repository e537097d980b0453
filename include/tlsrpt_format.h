/*
 * tlsrpt_format.h - the TLSRPT report's formats: JSON, gzip, file name,
 * report id, mail (RFC 8460 §4, §5.1, §5.3; tlsrpt_format.c).
 */
#ifndef DR_TLSRPT_FORMAT_H
#define DR_TLSRPT_FORMAT_H

#include <stddef.h>
#include <time.h>

#include <jansson.h>
#include <sqlite3.h>

/* ---- the report ---------------------------------------------------------- */

struct tlsrpt_meta {
	const char *org;		/* organization-name */
	const char *contact;		/* contact-info */
	const char *submitter;		/* TLS-Report-Submitter (our name) */
	const char *report_id;		/* report-id */
	time_t start;			/* 00:00:00 UTC of the day */
};

/* The report for (day, domain) from the counters in db, RFC 8460 §4.4
 * shape.  NULL with err when there is nothing (or a database error). */
json_t *tlsrpt_report_json(sqlite3 *db, const char *day, const char *domain,
    const struct tlsrpt_meta *m, char *err, size_t errlen);
/* gzip (RFC 1952) of in.  0 ok (*out malloc'ed), -1. */
int tlsrpt_gzip(const void *in, size_t len, unsigned char **out,
    size_t *outlen);
/* The report mail (RFC 8460 §5.3), CRLF line ends; malloc'ed, *lenp. */
char *tlsrpt_mime(const struct tlsrpt_meta *m, const char *domain,
    const char *from, const char *to, const unsigned char *gz, size_t gzlen,
    size_t *lenp);
/* "submitter!domain!begin!end.json.gz" (out: at least 600 bytes). */
void tlsrpt_filename(const struct tlsrpt_meta *m, const char *domain,
    char *out, size_t outlen);
/* A fresh report id: "YYYYMMDD.<domain>.<16 hex>@<submitter>". */
char *tlsrpt_report_id(const char *day, const char *domain,
    const char *submitter);

#endif
