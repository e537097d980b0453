/*
 * fuzz_rdata.c - libFuzzer target for the resolver's rdata decoding
 * (dns_result_add_rdata, dns_name_from_wire in src/resolver.c): rdata
 * comes from the network, and even validated data can be malformed, so
 * no input may crash it or make it read past the rdata.
 *
 * Input: byte 0 picks the RR type (A, AAAA, MX, TXT, TLSA or an
 * unsupported one); the rest is a sequence of rdatas, each prefixed by a
 * 2-byte big-endian length (clipped to what is left).  Each rdata is
 * handed over in an exactly sized heap copy so ASan sees any over-read.
 * Checks: a failure always gives a reason and adds nothing; a success adds
 * exactly one record whose fields respect the rdata's bounds; names are
 * NUL-terminated, printable and fit DNS_NAME_BUF.  No files, no network,
 * no global state.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resolver.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const int types[] = { DNS_T_A, DNS_T_AAAA, DNS_T_MX, DNS_T_TXT,
    DNS_T_TLSA, 99, DNS_T_PTR, DNS_T_CAA };

static void
check_name(const char *s)
{
	size_t i, n = strnlen(s, DNS_NAME_BUF);

	if (n >= DNS_NAME_BUF)
		abort();
	for (i = 0; i < n; i++)
		if (!isprint((unsigned char)s[i]) || isupper((unsigned char)s[i]))
			abort();
	if (n > 0 && s[n - 1] == '.' && (n < 2 || s[n - 2] != '\\'))
		abort();		/* no trailing dot */
}

static void
check_last(const struct dns_result *res, size_t len)
{
	size_t i = res->n - 1;

	switch (res->qtype) {
	case DNS_T_MX:
		if (len < 3)
			abort();
		check_name(res->mx[i].host);
		break;
	case DNS_T_A:
	case DNS_T_AAAA:
		if (len != (res->qtype == DNS_T_A ? 4u : 16u) ||
		    strnlen(res->addr[i].text, sizeof(res->addr[i].text)) ==
		    sizeof(res->addr[i].text))
			abort();
		break;
	case DNS_T_TXT:
		if (res->txt[i].len >= len || res->txt[i].data[res->txt[i].len])
			abort();
		break;
	case DNS_T_TLSA:
		if (res->tlsa[i].len != len - 3)
			abort();
		break;
	case DNS_T_PTR:
		check_name(res->mx[i].host);
		break;
	case DNS_T_CAA:
		if (len < 2)
			abort();
		break;
	default:
		abort();		/* unsupported types never decode */
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dns_result *res;
	char err[256], name[DNS_NAME_BUF];
	uint8_t *rd;
	size_t off, len, before;
	int n;

	if (size < 1)
		return 0;

	/* the whole input as a wire name too */
	n = dns_name_from_wire(data + 1, size - 1, name, sizeof(name));
	if (n > 255 || (n >= 0 && (size_t)n > size - 1))
		abort();
	if (n >= 0)
		check_name(name);

	res = xcalloc(1, sizeof(*res));
	res->qtype = types[data[0] % (sizeof(types) / sizeof(types[0]))];
	for (off = 1; off + 2 <= size; off += len) {
		len = (size_t)data[off] << 8 | data[off + 1];
		off += 2;
		if (len > size - off)
			len = size - off;
		rd = xmalloc(len ? len : 1);
		memcpy(rd, data + off, len);
		before = res->n;
		err[0] = '\0';
		if (dns_result_add_rdata(res, rd, len, err, sizeof(err)) == 0) {
			if (res->n != before + 1)
				abort();
			check_last(res, len);
		} else if (res->n != before || err[0] == '\0')
			abort();
		free(rd);
	}
	dns_result_finish(res);
	if (res->null_mx && (res->n != 1 || res->mx[0].host[0] != '\0'))
		abort();
	dns_result_free(res);
	return 0;
}
