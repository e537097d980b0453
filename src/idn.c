/*
 * idn.c - U-labels to A-labels for destination domains (issue #12 item
 * 6): "user@bücher.test" under SMTPUTF8 was accepted and then bounced
 * NXDOMAIN, because the MX lookup asked for the raw UTF-8 name.
 *
 * libidn2: IDNA2008 (RFC 5891) with the UTS #46 mapping, NFC input and
 * non-transitional processing (so "ß" stays "ß": xn--...), the choice of
 * browsers and of Postfix's smtputf8 support.  The result is checked to
 * be an LDH host name (RFC 5890 §2.3.1), lower case.  ASCII names are
 * passed through lower-cased, never judged: the A-label form of an
 * ASCII name is itself.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <idn2.h>

#include "idn.h"

#define IDN_NAME_MAX	253

int
idn_is_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s & 0x80)
			return 0;
	return 1;
}

int
idn_ldh_name(const char *s, size_t len)
{
	size_t i, lstart = 0;

	if (len == 0 || len > IDN_NAME_MAX)
		return 0;
	for (i = 0; i <= len; i++) {
		if (i == len || s[i] == '.') {
			size_t ll = i - lstart;

			if (ll == 0 || ll > 63 || s[lstart] == '-' ||
			    s[i - 1] == '-')
				return 0;
			lstart = i + 1;
			continue;
		}
		if (!isascii((unsigned char)s[i]) ||
		    !(isalnum((unsigned char)s[i]) || s[i] == '-'))
			return 0;
	}
	return 1;
}

int
idn_to_alabels(const char *in, char *out, size_t outlen, char *err,
    size_t errlen)
{
	char buf[1024], *conv = NULL;
	size_t len, i;
	int rc;

	len = strlen(in);
	if (len > 0 && in[len - 1] == '.')
		len--;
	if (len >= sizeof(buf)) {
		snprintf(err, errlen, "domain name too long");
		return -1;
	}
	memcpy(buf, in, len);
	buf[len] = '\0';
	if (idn_is_ascii(buf)) {
		if (len >= outlen) {
			snprintf(err, errlen, "domain name too long");
			return -1;
		}
		for (i = 0; i <= len; i++)
			out[i] = (char)tolower((unsigned char)buf[i]);
		return 0;
	}
	rc = idn2_to_ascii_8z(buf, &conv, IDN2_NFC_INPUT |
	    IDN2_NONTRANSITIONAL);
	if (rc != IDN2_OK || conv == NULL) {
		snprintf(err, errlen, "not a valid internationalized domain "
		    "name: %s", idn2_strerror(rc));
		idn2_free(conv);
		return -1;
	}
	len = strlen(conv);
	if (!idn_ldh_name(conv, len) || len >= outlen) {
		snprintf(err, errlen, "not a valid internationalized domain "
		    "name: \"%.80s\" is not a host name", conv);
		idn2_free(conv);
		return -1;
	}
	for (i = 0; i <= len; i++)
		out[i] = (char)tolower((unsigned char)conv[i]);
	idn2_free(conv);
	return 1;
}
