/*
 * dkim_watch.h - the daemon's side of DKIM key rotation (dkim_watch.c):
 * pending keys of dkim_key_table are looked up in DNS until their record
 * is published, then dkim_key_seen() switches signing over to them.
 */
#ifndef DR_DKIM_WATCH_H
#define DR_DKIM_WATCH_H

struct config;
struct event_base;
struct resolver;
struct dkim_watch;

/* Look now and every dkim_dns_check_interval while a key is pending;
 * NULL when cf has no dkim_key_table. */
struct dkim_watch *dkim_watch_start(struct event_base *base,
    struct resolver *r, const struct config *cf);
/* A reload: the table and interval of cf, looked at now. */
void dkim_watch_reload(struct dkim_watch *dw, const struct config *cf);
void dkim_watch_free(struct dkim_watch *dw);	/* accepts NULL */

#endif
