/*
 * anvil.h - per-client-address limits of the inbound server, shared by
 * every worker (named after Postfix's anvil(8), which does the same job):
 * concurrent connections and the connection rate of one address.
 *
 * smtpd.c asks anvil_connect() for every connection from an address
 * outside allow_clients; a connection it let in is given back with
 * anvil_disconnect() when the session ends.  The limits are passed in
 * with each call (they belong to the settings snapshot, which a SIGHUP
 * replaces); 0 means no limit.  Thread-safe: one table under a mutex.
 * Memory is bounded: an address is forgotten once it has no connection
 * and its rate window is over, and at most ANVIL_MAX_CLIENTS addresses
 * are tracked (beyond that new addresses are let in uncounted, and
 * smtpd_max_clients still bounds them).
 */
#ifndef DR_ANVIL_H
#define DR_ANVIL_H

#include <sys/socket.h>

#define ANVIL_MAX_CLIENTS	100000

struct anvil;

struct anvil_limits {
	int count;		/* concurrent connections per address */
	int rate;		/* connections per rate_unit per address */
	long long rate_unit;	/* seconds */
};

enum anvil_verdict {
	ANVIL_OK = 0,
	ANVIL_COUNT,		/* count limit reached */
	ANVIL_RATE,		/* rate limit exceeded */
};

struct anvil_result {
	enum anvil_verdict verdict;
	int counted;		/* ANVIL_OK and counted: give it back */
	int value;		/* open connections (ANVIL_COUNT) or
				 * connections in this window (ANVIL_RATE),
				 * this one included */
	int log;		/* 1: log this refusal (at most one line per
				 * address and second) */
	int suppressed;		/* refusals not logged since the last line */
};

struct anvil *anvil_new(void);
void anvil_free(struct anvil *a);

/* A connection from sa: let in (ANVIL_OK; if res->counted, give it back
 * with anvil_disconnect()) or refused (nothing to give back). */
void anvil_connect(struct anvil *a, const struct sockaddr *sa,
    const struct anvil_limits *lim, struct anvil_result *res);
void anvil_disconnect(struct anvil *a, const struct sockaddr *sa);

/* Addresses tracked now (tests, metrics). */
size_t anvil_clients(struct anvil *a);

#endif
