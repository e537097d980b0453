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
/* An idle session parked under key, taken out of the cache, or NULL. */
struct smtp_client *conn_cache_get(struct conn_cache *cc, const char *key);
/* The key: everything the TLS verification of a session depended on
 * (relay, TLS mode, HELO, SNI, TLSA base, names, TLSA records), and
 * the identity it was opened with (HELO, bind_ip: source_table), so a
 * session is never reused for another sender's identity.
 * malloc'ed, NULL on memory failure. */
char *conn_cache_key(const struct smtp_client_params *p, const char *relay);

#endif
