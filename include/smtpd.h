/*
 * smtpd.h - the inbound SMTP server (the local MTA's side).
 *
 * smtpd_new() binds every configured listen address (before privileges
 * are dropped); smtpd_start() begins accepting on the event base.  Each
 * accepted message is committed to the spool before "250" and then
 * announced through the on_message callback (the scheduler picks it up).
 */
#ifndef DR_SMTPD_H
#define DR_SMTPD_H

#include <stddef.h>

struct event_base;
struct config;
struct spool;
struct spool_env;

struct dkim_table;
struct smtpd;
struct workq;
struct workq_port;

typedef void smtpd_message_cb(const struct spool_env *env, void *arg);

struct smtpd *smtpd_new(const struct config *cf, char *err, size_t errlen);
/* Another worker's smtpd: its own settings, the same listening sockets
 * (duplicated descriptors; the kernel gives each connection to one of
 * the workers accepting) and one client count for smtpd_max_clients
 * shared with sd0.  sd0 must outlive it. */
struct smtpd *smtpd_clone(struct smtpd *sd0, const struct config *cf,
    char *err, size_t errlen);
int smtpd_start(struct smtpd *sd, struct event_base *base, struct spool *sp,
    smtpd_message_cb *cb, void *cbarg, char *err, size_t errlen);
/* The pools slow work runs on (crypt on cpu, spool commits on io) and
 * the completion port of smtpd's event base.  Before smtpd_start(). */
void smtpd_set_workq(struct smtpd *sd, struct workq *cpu, struct workq *io,
    struct workq_port *port);
/* New config after SIGHUP: limits, ACL, TLS and AUTH are re-read; listen
 * addresses stay as bound.  0 ok, -1 (old settings kept, err set). */
int smtpd_reload(struct smtpd *sd, const struct config *cf, char *err,
    size_t errlen);
/* Stop accepting; sessions in progress are closed (a message not yet
 * committed is not acknowledged, so the client keeps it).  */
void smtpd_stop(struct smtpd *sd);
/* Number of open sessions, of every worker. */
int smtpd_sessions(const struct smtpd *sd);
/* Client addresses blocked now after smtpd_auth_failure_limit failed
 * AUTH attempts, of every worker. */
int smtpd_auth_blocked_clients(const struct smtpd *sd);
struct senderlimit_entry;
/* The n senders nearest sender_rate_limit (senderlimit_top()), and the
 * limit in *limit_count per *limit_per seconds (count 0: no limit set):
 * how many. */
size_t smtpd_top_senders(const struct smtpd *sd,
    struct senderlimit_entry *out, size_t n, int *limit_count,
    long long *limit_per);
/* notAfter of the inbound STARTTLS certificate in use (Unix time), 0
 * without STARTTLS. */
long long smtpd_cert_not_after(const struct smtpd *sd);
/* The key table of the current settings (dkim_key_table), or NULL: valid
 * until the next reload; dkim_table_ref() to keep it. */
struct dkim_table *smtpd_dkim_table(const struct smtpd *sd);
void smtpd_free(struct smtpd *sd);

#endif
