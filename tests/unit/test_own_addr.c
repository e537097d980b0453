/*
 * test_own_addr.c - own_addr_match(): which MX addresses are this relay
 * (issue #12 item 3).  Specific listeners match their address and port
 * only; wildcard listeners ("0.0.0.0:25", "[::]:25") match every
 * loopback address and the addresses of this host's interfaces, on
 * their port, in their family.  No socket is bound.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ifaddrs.h>
#include <string.h>

#include "config.h"
#include "own_addr.h"
#include "t.h"

static struct config cf;

static void
listen_on(const char *const *addrs, int n)
{
	int i;

	memset(&cf, 0, sizeof(cf));
	for (i = 0; i < n; i++)
		if (listen_addr_parse(addrs[i], 25, &cf.listen[i]) == -1)
			CHECK(!"listen_addr_parse");
	cf.nlisten = n;
}

static int
match(const char *ip, int port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1)
		s4->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1)
		s6->sin6_family = AF_INET6;
	else
		return -1;
	return own_addr_match(&cf, (struct sockaddr *)&ss, port);
}

int
main(void)
{
	static const char *const specific[] = { "127.0.0.1:10025",
	    "192.0.2.25:25", "[2001:db8::25]:25" };
	static const char *const wild[] = { "0.0.0.0:25" };
	static const char *const wild6[] = { "[::]:25" };
	struct ifaddrs *ifa, *i;
	char text[INET6_ADDRSTRLEN];

	listen_on(specific, 3);
	CHECK(match("192.0.2.25", 25) == 1);
	CHECK(match("192.0.2.25", 2525) == 0);	/* another port: not us */
	CHECK(match("192.0.2.26", 25) == 0);
	CHECK(match("2001:db8::25", 25) == 1);
	CHECK(match("2001:db8::26", 25) == 0);
	CHECK(match("127.0.0.1", 10025) == 1);
	CHECK(match("127.0.0.1", 25) == 0);	/* not listening there */
	CHECK(match("127.0.0.2", 10025) == 0);

	listen_on(wild, 1);
	CHECK(match("127.0.0.1", 25) == 1);
	CHECK(match("127.3.4.5", 25) == 1);	/* all of 127/8 is local */
	CHECK(match("127.0.0.1", 26) == 0);
	CHECK(match("192.0.2.1", 25) == 0);	/* TEST-NET: not ours */
	CHECK(match("::1", 25) == 0);		/* IPv4 listener only */
	/* every IPv4 address of this host's interfaces is us */
	if (getifaddrs(&ifa) == 0) {
		for (i = ifa; i != NULL; i = i->ifa_next) {
			if (i->ifa_addr == NULL ||
			    i->ifa_addr->sa_family != AF_INET)
				continue;
			inet_ntop(AF_INET, &((struct sockaddr_in *)
			    i->ifa_addr)->sin_addr, text, sizeof(text));
			CHECK(match(text, 25) == 1);
		}
		freeifaddrs(ifa);
	}

	listen_on(wild6, 1);
	CHECK(match("::1", 25) == 1);
	CHECK(match("2001:db8::99", 25) == 0);
	CHECK(match("127.0.0.1", 25) == 0);	/* V6ONLY sockets (smtpd.c) */
	return t_done();
}
