/*
 * smtpd_conf.c - the inbound server's settings snapshot: a
 * reference-counted struct smtpd_conf with myhostname, the relay ACL (a
 * private copy, parsed again from allow_clients), the AUTH table, the
 * TLS context and the limits.  smtpd.c makes one at start and at every
 * reload; each session (smtpd_session.c) holds a reference on the one it
 * started with, so a reload never changes the rules in the middle of a
 * transaction.
 *
 * Moved out of smtpd.c unchanged (issue #15), so that smtpd ->
 * smtpd_session -> smtpd_conf runs one way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "acl.h"
#include "anvil.h"
#include "auth.h"
#include "config.h"
#include "dkim.h"
#include "local_milter.h"
#include "log.h"
#include "milter.h"
#include "smtpd_conf.h"
#include "tls.h"
#include "util.h"

#define SMTPD_DFLT_ACL	"127.0.0.0/8 ::1"

/* notAfter of ctx's certificate as Unix time (the metrics' expiry
 * gauge), 0 when it cannot be read. */
static long long
cert_not_after(SSL_CTX *ctx)
{
	X509 *x = SSL_CTX_get0_certificate(ctx);
	const ASN1_TIME *t = x != NULL ? X509_get0_notAfter(x) : NULL;
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return (long long)timegm(&tm);
}

_Static_assert(sizeof(((struct config *)0)->milter_macros) /
    sizeof(char *) == MILTER_NSTAGES, "one milter_*_macros per stage");

/* The milters of list with the milter_* settings; NULL and err if bad,
 * NULL without error for an empty list.  Built as non_smtpd_milters
 * are (local_milter.c). */
struct milter_conf *
smtpd_milter_conf(const struct config *cf, const char *list, char *err,
    size_t errlen)
{
	return local_milter_conf(cf, list, err, errlen);
}

struct smtpd_conf *
smtpd_conf_new(const struct config *cf, char *err, size_t errlen)
{
	struct smtpd_conf *c;
	char why[512];
	const char *acltext;

	c = xcalloc(1, sizeof(*c));
	c->refs = 1;
	c->hostname = xstrdup(cf->myhostname != NULL && *cf->myhostname ?
	    cf->myhostname : "localhost");
	acltext = cf->allow_clients_text != NULL ? cf->allow_clients_text :
	    SMTPD_DFLT_ACL;
	if ((c->allow = acl_parse(acltext, why, sizeof(why))) == NULL) {
		snprintf(err, errlen, "allow_clients: %s", why);
		goto fail;
	}
	if (cf->auth_file != NULL && *cf->auth_file != '\0') {
		if ((c->auth = auth_load(cf->auth_file, why, sizeof(why)))
		    == NULL) {
			snprintf(err, errlen, "auth_file: %s", why);
			goto fail;
		}
		if (cf->tls_cert_file == NULL)
			log_warnx("auth_file is set but tls_cert_file is not: "
			    "AUTH is only offered after STARTTLS, so it will "
			    "never be offered");
	}
	if (cf->dkim_key_table != NULL && (c->dkim =
	    dkim_table_load(cf->dkim_key_table, err, errlen)) == NULL)
		goto fail;
	c->dkim_defer = cf->dkim_failure_defer;
	if (cf->milters != NULL && (c->milters = smtpd_milter_conf(cf,
	    cf->milters, err, errlen)) == NULL)
		goto fail;
	if ((cf->tls_cert_file == NULL || *cf->tls_cert_file == '\0') &&
	    cf->tls_key_file != NULL && *cf->tls_key_file != '\0') {
		snprintf(err, errlen, "tls_key_file is set but tls_cert_file "
		    "is not");
		goto fail;
	}
	if (cf->tls_cert_file != NULL && *cf->tls_cert_file != '\0') {
		if ((c->tls = tls_server_ctx_new(cf->tls_cert_file,
		    cf->tls_key_file != NULL ? cf->tls_key_file :
		    cf->tls_cert_file, why, sizeof(why))) == NULL) {
			snprintf(err, errlen, "%s", why);
			goto fail;
		}
		c->cert_not_after = cert_not_after(c->tls);
	}
	c->max_size = cf->max_message_size;
	c->max_rcpt = cf->max_recipients > 0 ? cf->max_recipients : 1000;
	c->max_hops = cf->max_hops > 0 ? cf->max_hops : 100;
	c->max_errors = cf->smtpd_max_errors > 0 ? cf->smtpd_max_errors : 10;
	c->timeout = cf->smtpd_timeout > 0 ? cf->smtpd_timeout : 300;
	c->session_timeout = cf->smtpd_session_timeout > 0 ?
	    cf->smtpd_session_timeout : 3600;
	c->max_clients = cf->smtpd_max_clients > 0 ? cf->smtpd_max_clients :
	    1000;
	c->reserved = cf->smtpd_reserved_clients >= 0 ?
	    cf->smtpd_reserved_clients : c->max_clients / 10;
	if (c->reserved >= c->max_clients)
		c->reserved = c->max_clients - 1;
	c->count_limit = cf->smtpd_client_connection_count_limit;
	c->rate_limit = cf->smtpd_client_connection_rate_limit;
	c->rate_unit = cf->smtpd_client_connection_rate_time_unit > 0 ?
	    cf->smtpd_client_connection_rate_time_unit : 60;
	c->min_data_rate = cf->smtpd_min_data_rate;
	c->unauth_timeout = cf->smtpd_unauth_session_timeout > 0 ?
	    cf->smtpd_unauth_session_timeout : c->session_timeout;
	c->auth_limit = cf->smtpd_auth_failure_limit;
	c->auth_block = cf->smtpd_auth_block_time > 0 ?
	    cf->smtpd_auth_block_time : 3600;
	c->auth_delay = cf->smtpd_auth_failure_delay;
	c->sender_rate = cf->sender_rate_limit;
	c->minfree = cf->queue_minfree;
	c->tls_required_header = cf->tls_required_header;
	c->postmaster = cf->postmaster != NULL ? xstrdup(cf->postmaster) :
	    NULL;
	return c;
 fail:
	smtpd_conf_unref(c);
	return NULL;
}

struct smtpd_conf *
smtpd_conf_ref(struct smtpd_conf *c)
{
	c->refs++;
	return c;
}

void
smtpd_conf_unref(struct smtpd_conf *c)
{
	if (c == NULL || --c->refs > 0)
		return;
	free(c->hostname);
	free(c->postmaster);
	acl_free(c->allow);
	auth_free(c->auth);
	SSL_CTX_free(c->tls);
	dkim_table_unref(c->dkim);
	milter_conf_free(c->milters);
	free(c);
}

void
smtpd_anvil_limits(const struct smtpd_conf *c, struct anvil_limits *lim)
{
	lim->count = c->count_limit;
	lim->rate = c->rate_limit;
	lim->rate_unit = c->rate_unit;
	lim->auth_limit = c->auth_limit;
	lim->auth_block = c->auth_block;
	lim->auth_delay = c->auth_delay;
}
