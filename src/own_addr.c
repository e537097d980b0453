/*
 * own_addr.c - this relay's own listening addresses (issue #12 item 3).
 *
 * An MX that points back at the relay made a loop of 2,360 hops in 8 s.
 * Like Postfix (smtp_addr.c: "mail for X loops back to myself"), the
 * route drops every MX host at or after the preference of a host with
 * one of our own addresses (route.c); this file says which addresses are
 * ours: those of the `listen` sockets on the port we deliver to
 * (smtp_port), and for a wildcard listener every address of this host.
 * A relay behind NAT is found by the SMTP client instead (its own name
 * in the greeting or EHLO reply, smtp_client.c).
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <ifaddrs.h>
#include <string.h>

#include "config.h"
#include "own_addr.h"

static int
is_any(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ((const struct sockaddr_in *)sa)->sin_addr.s_addr ==
		    htonl(INADDR_ANY);
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(
		    &((const struct sockaddr_in6 *)sa)->sin6_addr);
	return 0;
}

static int
port_of(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)sa)->sin_port);
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return -1;
}

/* Same family and address (ports ignored). */
static int
same_addr(const struct sockaddr *a, const struct sockaddr *b)
{
	if (a->sa_family != b->sa_family)
		return 0;
	if (a->sa_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		    ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	if (a->sa_family == AF_INET6)
		return IN6_ARE_ADDR_EQUAL(
		    &((const struct sockaddr_in6 *)a)->sin6_addr,
		    &((const struct sockaddr_in6 *)b)->sin6_addr);
	return 0;
}

/* An address of this host: loopback, or one of its interfaces. */
static int
is_local(const struct sockaddr *sa)
{
	struct ifaddrs *ifa, *i;
	int found = 0;

	if (sa->sa_family == AF_INET &&
	    (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) ==
	    127)
		return 1;
	if (sa->sa_family == AF_INET6 &&
	    IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr))
		return 1;
	if (getifaddrs(&ifa) == -1)
		return 0;
	for (i = ifa; i != NULL && !found; i = i->ifa_next)
		if (i->ifa_addr != NULL && same_addr(i->ifa_addr, sa))
			found = 1;
	freeifaddrs(ifa);
	return found;
}

int
own_addr_match(const struct config *cf, const struct sockaddr *sa, int port)
{
	int i, local = -1;

	for (i = 0; i < cf->nlisten; i++) {
		const struct sockaddr *l =
		    (const struct sockaddr *)&cf->listen[i].ss;

		if (port_of(l) != port || l->sa_family != sa->sa_family)
			continue;
		if (same_addr(l, sa))
			return 1;
		if (is_any(l)) {
			if (local == -1)
				local = is_local(sa);
			if (local)
				return 1;
		}
	}
	return 0;
}
