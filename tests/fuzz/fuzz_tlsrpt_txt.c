/*
 * fuzz_tlsrpt_txt.c - libFuzzer target for the TLSRPT policy record
 * parser (tlsrpt_txt_parse, tlsrpt_txt_select, tlsrpt_mailto_addr in
 * src/tlsrpt_report.c, RFC 8460 §3): the "_smtp._tls" TXT record is
 * chosen by whoever controls the destination's DNS.
 *
 * Input: the whole input is parsed as one record (an exactly sized heap
 * copy, so ASan sees over-reads; NUL bytes included); then it is split at
 * NUL bytes into up to 8 records for tlsrpt_txt_select().  Checks: a
 * failure leaves no URI; a success has 1..TLSRPT_MAX_RUA URIs, each
 * mailto: or https:, printable, without space, shorter than
 * TLSRPT_URI_MAX; an address from tlsrpt_mailto_addr() has exactly one
 * '@' with something on both sides and no character that could break an
 * SMTP command or a header; an https URI that tlsrpt_https_uri() takes
 * has a host without "/?#@[", a port in range and a target starting with
 * "/" without a fragment.  No files, no network, no global state.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "resolver.h"
#include "tlsrpt_report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_rua(const struct tlsrpt_rua *r, int rc)
{
	char addr[300];
	size_t i, k, n, at;

	if (rc != 0) {
		if (r->n != 0)
			abort();
		return;
	}
	if (r->n == 0 || r->n > TLSRPT_MAX_RUA)
		abort();
	for (i = 0; i < r->n; i++) {
		const char *u = r->uri[i];

		n = strlen(u);
		if (n >= TLSRPT_URI_MAX)
			abort();
		for (k = 0; k < n; k++)
			if ((unsigned char)u[k] <= 0x20 ||
			    (unsigned char)u[k] >= 0x7f || u[k] == ',' ||
			    u[k] == ';')
				abort();
		if (strncasecmp(u, "mailto:", 7) != 0 &&
		    strncasecmp(u, "https://", 8) != 0)
			abort();
		if (strncasecmp(u, "https://", 8) == 0) {
			char host[256], target[TLSRPT_URI_MAX + 2];
			int port;

			if (tlsrpt_https_uri(u, host, sizeof(host), &port,
			    target, sizeof(target)) == 0 && (host[0] == '\0' ||
			    strpbrk(host, "/?#@[") != NULL || port < 1 ||
			    port > 65535 || target[0] != '/' ||
			    strchr(target, '#') != NULL))
				abort();
			continue;
		}
		if (tlsrpt_mailto_addr(u, addr, sizeof(addr)) != 0)
			continue;
		n = strlen(addr);
		for (k = 0, at = 0; k < n; k++) {
			if ((unsigned char)addr[k] <= 0x20 ||
			    (unsigned char)addr[k] >= 0x7f ||
			    strchr("<>\r\n,;:\"", addr[k]) != NULL)
				abort();
			if (addr[k] == '@')
				at++;
		}
		if (at != 1 || addr[0] == '@' || addr[n - 1] == '@')
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tlsrpt_rua r;
	struct dns_txt recs[8];
	char err[256], *copy;
	size_t nrec = 0, start = 0, i;
	int rc;

	copy = malloc(size ? size : 1);
	if (copy == NULL)
		return 0;
	if (size > 0)
		memcpy(copy, data, size);
	err[0] = '\0';
	rc = tlsrpt_txt_parse(copy, size, &r, err, sizeof(err));
	if (rc != 0 && err[0] == '\0')
		abort();
	check_rua(&r, rc);
	tlsrpt_rua_free(&r);
	free(copy);

	/* records separated by NUL bytes (each NUL-terminated, as the
	 * resolver delivers them) */
	for (i = 0; i <= size && nrec < 8; i++) {
		if (i < size && data[i] != 0)
			continue;
		recs[nrec].len = i - start;
		recs[nrec].data = malloc(recs[nrec].len + 1);
		if (recs[nrec].data == NULL)
			break;
		memcpy(recs[nrec].data, data + start, recs[nrec].len);
		recs[nrec].data[recs[nrec].len] = '\0';
		nrec++;
		start = i + 1;
	}
	err[0] = '\0';
	rc = tlsrpt_txt_select(recs, nrec, &r, err, sizeof(err));
	if (rc != 0 && err[0] == '\0')
		abort();
	check_rua(&r, rc);
	tlsrpt_rua_free(&r);
	for (i = 0; i < nrec; i++)
		free(recs[i].data);
	return 0;
}
