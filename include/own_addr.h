/*
 * own_addr.h - is an address this relay's own?  (issue #12: the relay
 * never delivers to its own listening addresses.)
 *
 * own_addr_match(cf, sa, port): 1 if a connection to sa:port would reach
 * one of cf's `listen` sockets: the same address and port, or, for a
 * wildcard listener ("0.0.0.0:25", "[::]:25"), the port and an address
 * of this host (loopback, or one that getifaddrs() reports).  0 if not.
 * sa is AF_INET or AF_INET6; its own port is ignored.
 */
#ifndef DR_OWN_ADDR_H
#define DR_OWN_ADDR_H

#include <sys/socket.h>

struct config;

int own_addr_match(const struct config *cf, const struct sockaddr *sa,
    int port);

#endif
