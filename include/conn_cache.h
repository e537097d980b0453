/*
 * conn_cache.h - idle outbound sessions kept for reuse (conn_cache.c).
 * On one event loop (the delivery engine's).
 */
#ifndef DR_CONN_CACHE_H
#define DR_CONN_CACHE_H

struct event_base;
struct smtp_client;
struct smtp_client_params;
struct conn_cache;

struct conn_cache *conn_cache_new(struct event_base *base);
/* conn_cache_shutdown(), then free.  NULL ok. */
void conn_cache_free(struct conn_cache *cc);
/* QUIT every idle session; from now on put() QUITs instead of parking. */
void conn_cache_shutdown(struct conn_cache *cc);
/* Park a usable session (its transaction ended cleanly) under key, or
 * QUIT it when the cache can't take it (key NULL, full, shutting down,
 * max_msgs messages sent on the session already). */
void conn_cache_put(struct conn_cache *cc, struct smtp_client *c,
    const char *key, int max_msgs);
/* The same, the session counting toward slot's concurrency while it is
 * idle (issue #24; slot NULL: nowhere). */
struct cl_slot;
struct connlimit;
void conn_cache_put_slot(struct conn_cache *cc, struct smtp_client *c,
    const char *key, int max_msgs, struct cl_slot *slot);
/* QUIT c, counting toward slot (NULL: nowhere) until it is closed. */
void conn_cache_quit(struct conn_cache *cc, struct smtp_client *c,
    struct cl_slot *slot);
/* Where the slots of parked sessions are counted (connlimit.h). */
void conn_cache_set_limits(struct conn_cache *cc, struct connlimit *l);
/* Is a session of slot idle here?  Close one (QUIT). */
int conn_cache_has_slot(const struct conn_cache *cc,
    const struct cl_slot *slot);
void conn_cache_close_slot(struct conn_cache *cc, const struct cl_slot *slot);
/* An idle session parked under key, taken out of the cache, or NULL. */
struct smtp_client *conn_cache_get(struct conn_cache *cc, const char *key);
/* The key: everything the TLS verification of a session depended on
 * (relay, TLS mode, HELO, SNI, TLSA base, names, TLSA records), and
 * the identity it was opened with (HELO, bind_ip: source_table), so a
 * session is never reused for another sender's identity.
 * malloc'ed, NULL on memory failure. */
char *conn_cache_key(const struct smtp_client_params *p, const char *relay);

#endif
