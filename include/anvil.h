/*
 * anvil.h - per-client-address limits of the inbound server, shared by
 * every worker (named after Postfix's anvil(8), which does the same job):
 * concurrent connections and the connection rate of one address, and its
 * failed AUTH attempts.
 *
 * smtpd.c asks anvil_connect() for every connection from an address
 * outside allow_clients; a connection it let in is given back with
 * anvil_disconnect() when the session ends.  A failed AUTH of such a
 * client is reported with anvil_auth_failed(), which says how long to
 * delay the reply and whether the address is now blocked: a blocked
 * address is refused by anvil_connect() (ANVIL_AUTH_BLOCKED) and
 * anvil_auth_blocked() says so until the block ends.  The limits are
 * passed in with each call (they belong to the settings snapshot, which a SIGHUP
 * replaces); 0 means no limit.  Thread-safe: one table under a mutex.
 * Memory is bounded: an address is forgotten once it has no connection,
 * its rate window is over and it has no AUTH failure or block to
 * remember, and at most ANVIL_MAX_CLIENTS addresses
 * are tracked (beyond that new addresses are let in uncounted, and
 * smtpd_max_clients still bounds them).
 */
#ifndef DR_ANVIL_H
#define DR_ANVIL_H

#include <sys/socket.h>

#define ANVIL_MAX_CLIENTS	100000

struct anvil;

#define ANVIL_AUTH_DELAY_MAX	30.0	/* seconds */

struct anvil_limits {
	int count;		/* concurrent connections per address */
	int rate;		/* connections per rate_unit per address */
	long long rate_unit;	/* seconds */
	int auth_limit;		/* failed AUTHs before the block */
	long long auth_block;	/* seconds blocked; failures are also
				 * forgotten this long after the last one */
	long long auth_delay;	/* seconds per failure so far: the n-th
				 * failure's reply waits n * auth_delay,
				 * at most ANVIL_AUTH_DELAY_MAX */
};

enum anvil_verdict {
	ANVIL_OK = 0,
	ANVIL_COUNT,		/* count limit reached */
	ANVIL_RATE,		/* rate limit exceeded */
	ANVIL_AUTH_BLOCKED,	/* blocked after AUTH failures */
};

struct anvil_result {
	enum anvil_verdict verdict;
	int counted;		/* ANVIL_OK and counted: give it back */
	int value;		/* open connections (ANVIL_COUNT),
				 * connections in this window (ANVIL_RATE),
				 * this one included, or seconds left
				 * (ANVIL_AUTH_BLOCKED) */
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

/*
 * A failed AUTH from sa (lim: auth_*).  Returns the seconds to delay the
 * reply; *failures is the address's count with this one, *blocked 1 if
 * this failure reached auth_limit (the address is blocked from now on
 * for auth_block seconds, and the count starts again after it).
 */
double anvil_auth_failed(struct anvil *a, const struct sockaddr *sa,
    const struct anvil_limits *lim, int *failures, int *blocked);
/* Seconds sa stays blocked (0: not blocked). */
double anvil_auth_blocked(struct anvil *a, const struct sockaddr *sa);

/* Addresses tracked now (tests, metrics). */
size_t anvil_clients(struct anvil *a);
/* Addresses blocked now after AUTH failures (metrics). */
size_t anvil_blocked_clients(struct anvil *a);

#endif
