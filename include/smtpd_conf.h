/*
 * smtpd_conf.h - the inbound server's reference-counted settings
 * snapshot (smtpd_conf.c); internal to the inbound server (smtpd.c,
 * smtpd_session.c).
 */
#ifndef DR_SMTPD_CONF_H
#define DR_SMTPD_CONF_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "util.h"

struct acl;
struct auth_table;
struct config;
struct dkim_table;
struct milter_conf;

struct smtpd_conf {
	int refs;
	char *hostname;
	struct acl *allow;		/* relay clients */
	struct auth_table *auth;	/* NULL: no AUTH */
	SSL_CTX *tls;			/* NULL: no STARTTLS */
	long long cert_not_after;	/* its certificate's notAfter (Unix
					 * time), 0: none or unreadable */
	unsigned long long max_size;	/* message bytes, 0 = no limit */
	int max_rcpt;
	int max_hops;			/* Received: fields, ours included */
	int max_errors;
	long long timeout;		/* idle, seconds */
	long long session_timeout;	/* total, seconds */
	int max_clients;
	int reserved;			/* of max_clients, for allow_clients */
	int count_limit;		/* per address outside allow_clients */
	int rate_limit;			/*   connections per rate_unit */
	long long rate_unit;
	int min_data_rate;		/* bytes/s before AUTH, 0 = none */
	long long unauth_timeout;	/* session time before AUTH */
	int auth_limit;			/* AUTH failures per address */
	long long auth_block;		/*   then blocked this long */
	long long auth_delay;		/* the n-th failure waits n times */
	unsigned long long minfree;	/* queue_minfree: spool bytes kept
					 * free, 0 = no check */
	char *postmaster;		/* RCPT TO:<postmaster> goes here;
					 * NULL: refused */
	struct rate sender_rate;	/* sender_rate_limit; count 0: none */
	int tls_required_header;	/* honour "TLS-Required: No" */
	struct dkim_table *dkim;	/* dkim_key_table, NULL: no signing */
	int dkim_defer;			/* a signing failure: 451 (else the
					 * message goes on unsigned) */
	struct milter_conf *milters;	/* NULL: no milters (the hot path
					 * then never looks further) */
};

struct smtpd_conf *smtpd_conf_new(const struct config *cf, char *err,
    size_t errlen);
struct anvil_limits;
/* The per-address limits of c, for anvil.c. */
void smtpd_anvil_limits(const struct smtpd_conf *c, struct anvil_limits *lim);
struct milter_conf *smtpd_milter_conf(const struct config *cf,
    const char *list, char *err, size_t errlen);
struct smtpd_conf *smtpd_conf_ref(struct smtpd_conf *c);
void smtpd_conf_unref(struct smtpd_conf *c);

#endif
