/*
 * acl.c - client address lists for relay control (allow_clients).
 *
 * A list is IPv4 and IPv6 networks in CIDR notation or bare addresses
 * ("127.0.0.0/8 ::1 [2001:db8::]/32 192.0.2.7"), separated by white space
 * or commas.  Anything else (host names, bad prefixes, stray text) is
 * refused with a message naming the offending item; host bits below the
 * prefix are ignored ("192.0.2.7/24" is 192.0.2.0/24).
 *
 * Matching treats an IPv4-mapped IPv6 client (::ffff:192.0.2.7, what a
 * dual-stack socket reports) as the IPv4 address, and an IPv4-mapped
 * entry (::ffff:10.0.0.0/104) as the IPv4 network, so a list written for
 * one family is not bypassed through the other.
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "util.h"

struct acl_net {
	int family;		/* AF_INET or AF_INET6 */
	uint8_t addr[16];	/* network bytes, masked */
	int prefix;
};

struct acl {
	struct acl_net *nets;
	size_t n;
};

static void
mask_bytes(uint8_t *a, size_t len, int prefix)
{
	size_t i;

	for (i = 0; i < len; i++) {
		int bits = prefix - (int)i * 8;
		if (bits >= 8)
			continue;
		a[i] &= bits <= 0 ? 0 : (uint8_t)(0xff << (8 - bits));
	}
}

static int
prefix_match(const uint8_t *a, const uint8_t *net, int prefix)
{
	int full = prefix / 8, rest = prefix % 8;

	if (memcmp(a, net, (size_t)full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((a[full] ^ net[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0xff, 0xff };

/* One item: "addr", "addr/len", "[v6]", "[v6]/len". 0 ok, -1 bad. */
static int
parse_item(const char *item, struct acl_net *net, char *err, size_t errlen)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash, *a, *end;
	long prefix = -1;
	size_t len;

	if ((len = strlen(item)) >= sizeof(buf)) {
		snprintf(err, errlen, "bad address \"%.60s...\": too long",
		    item);
		return -1;
	}
	memcpy(buf, item, len + 1);
	if ((slash = strchr(buf, '/')) != NULL) {
		*slash++ = '\0';
		if (*slash < '0' || *slash > '9' ||
		    (prefix = strtol(slash, &end, 10)) < 0 || *end != '\0' ||
		    end - slash > 3) {
			snprintf(err, errlen, "bad network \"%s\": prefix "
			    "length is not a number", item);
			return -1;
		}
	}
	a = buf;
	if (*a == '[') {
		len = strlen(a);
		if (len < 3 || a[len - 1] != ']') {
			snprintf(err, errlen, "bad address \"%s\"", item);
			return -1;
		}
		a[len - 1] = '\0';
		a++;
		if (strchr(a, ':') == NULL) {
			snprintf(err, errlen, "bad address \"%s\": brackets "
			    "are for IPv6", item);
			return -1;
		}
	}
	memset(net, 0, sizeof(*net));
	if (inet_pton(AF_INET, a, net->addr) == 1) {
		net->family = AF_INET;
		if (prefix == -1)
			prefix = 32;
		if (prefix > 32) {
			snprintf(err, errlen, "bad network \"%s\": IPv4 "
			    "prefix length must be 0-32", item);
			return -1;
		}
	} else if (inet_pton(AF_INET6, a, net->addr) == 1) {
		net->family = AF_INET6;
		if (prefix == -1)
			prefix = 128;
		if (prefix > 128) {
			snprintf(err, errlen, "bad network \"%s\": IPv6 "
			    "prefix length must be 0-128", item);
			return -1;
		}
		if (prefix >= 96 && memcmp(net->addr, v4mapped, 12) == 0) {
			memmove(net->addr, net->addr + 12, 4);
			memset(net->addr + 4, 0, 12);
			net->family = AF_INET;
			prefix -= 96;
		}
	} else {
		snprintf(err, errlen, "bad address \"%s\": not an IPv4 or "
		    "IPv6 address or network", item);
		return -1;
	}
	net->prefix = (int)prefix;
	mask_bytes(net->addr, net->family == AF_INET ? 4 : 16, net->prefix);
	return 0;
}

struct acl *
acl_parse(const char *list, char *err, size_t errlen)
{
	struct acl *acl;
	char *copy, *tok, *save = NULL;

	if (list == NULL) {
		snprintf(err, errlen, "no address list");
		return NULL;
	}
	acl = xcalloc(1, sizeof(*acl));
	copy = xstrdup(list);
	for (tok = strtok_r(copy, " \t\r\n,", &save); tok != NULL;
	    tok = strtok_r(NULL, " \t\r\n,", &save)) {
		struct acl_net net;

		if (parse_item(tok, &net, err, errlen) == -1) {
			free(copy);
			acl_free(acl);
			return NULL;
		}
		acl->nets = xrealloc(acl->nets, (acl->n + 1) *
		    sizeof(*acl->nets));
		acl->nets[acl->n++] = net;
	}
	free(copy);
	return acl;
}

int
acl_match(const struct acl *acl, const struct sockaddr *sa)
{
	uint8_t a[16];
	int family;
	size_t i;

	if (acl == NULL || sa == NULL)
		return 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)
		    (const void *)sa;
		memcpy(a, &sin->sin_addr, 4);
		family = AF_INET;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)
		    (const void *)sa;
		memcpy(a, &sin6->sin6_addr, 16);
		family = AF_INET6;
		if (memcmp(a, v4mapped, 12) == 0) {
			memmove(a, a + 12, 4);
			family = AF_INET;
		}
	} else
		return 0;

	for (i = 0; i < acl->n; i++)
		if (acl->nets[i].family == family &&
		    prefix_match(a, acl->nets[i].addr, acl->nets[i].prefix))
			return 1;
	return 0;
}

void
acl_free(struct acl *acl)
{
	if (acl == NULL)
		return;
	free(acl->nets);
	free(acl);
}
