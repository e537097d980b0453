/*
 * config.h - danerelay.conf: "name = value" lines, '#' comments.
 *
 * config_load() fills a struct config from a file on top of the built-in
 * defaults (config_defaults()).  Unknown names, bad values and a missing
 * file are refused with a "file:line: reason" message in err.  The caller
 * owns the struct and releases it with config_free().
 */
#ifndef DR_CONFIG_H
#define DR_CONFIG_H

#include <stddef.h>
#include <sys/socket.h>

#include "util.h"

struct acl;

/* Per-destination TLS security levels (DESIGN.md). */
enum policy_level {
	POLICY_NONE = 0,	/* cleartext, only when written for a domain */
	POLICY_MAY,		/* opportunistic TLS */
	POLICY_ENCRYPT,		/* mandatory TLS, unauthenticated */
	POLICY_DANE,		/* RFC 7672, then MTA-STS, else may (default) */
	POLICY_DANE_ONLY,	/* DANE or defer */
	POLICY_VERIFY,		/* mandatory TLS, WebPKI, name = MX host */
	POLICY_SECURE,		/* mandatory TLS, WebPKI, name = next-hop domain */
};
int policy_level_parse(const char *s, enum policy_level *out);
const char *policy_level_name(enum policy_level l);

/* tls_memory (issue #23; tls_memory.h): what a domain without DANE or
 * MTA-STS enforce is held to once it was seen with STARTTLS. */
enum tls_memory_mode {
	TLS_MEMORY_NO = 0,	/* remember nothing, refuse nothing */
	TLS_MEMORY_ENCRYPT,	/* STARTTLS and a handshake (default) */
	TLS_MEMORY_VERIFY,	/* also a chain verified against ca_file
				 * with the MX host's name */
};

#define CONFIG_MAX_LISTEN 16

struct listen_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	char text[80];			/* as written: "127.0.0.1:10025", "[::1]:25" */
};

#define CONFIG_MAX_WORKERS	64

struct config {
	char *file;			/* path it was loaded from */
	int refs;			/* config_ref() / config_unref() */

	struct listen_addr listen[CONFIG_MAX_LISTEN];
	int nlisten;			/* default 127.0.0.1:10025 */
	char *myhostname;		/* default gethostname() */
	char *spool_dir;		/* default LOCALSTATEDIR/spool/danerelay */
	char *state_dir;		/* default LOCALSTATEDIR/lib/danerelay */
	char *state_backend;		/* NULL: sqlite in state_dir; else a
					 * postgresql:// URI (issue #19) */
	char *pid_file;			/* default RUNSTATEDIR/danerelay/danerelayd.pid */
	char *control_socket;		/* default <spool_dir>/control.sock */
	char *user;			/* default "danerelay"; used when root */

	/* inbound */
	struct acl *allow_clients;	/* default "127.0.0.0/8 ::1" */
	char *allow_clients_text;
	char *auth_file;		/* NULL: no AUTH */
	char *tls_cert_file;		/* NULL: no STARTTLS inbound */
	char *tls_key_file;
	unsigned long long max_message_size;	/* default 50M */
	int max_recipients;		/* default 1000 */
	int max_hops;			/* Received: fields, default 100 */
	int smtpd_max_errors;		/* default 10 */
	long long smtpd_timeout;	/* idle, default 300s */
	long long smtpd_session_timeout; /* total, default 1h */
	int smtpd_max_clients;		/* default 1000 */
	int smtpd_reserved_clients;	/* of smtpd_max_clients, only for
					 * allow_clients; -1 (default): a
					 * tenth of smtpd_max_clients */
	/* per address outside allow_clients (issue #12), 0 = no limit */
	int smtpd_client_connection_count_limit;	/* default 50 */
	int smtpd_client_connection_rate_limit;	/* default 100 */
	long long smtpd_client_connection_rate_time_unit; /* default 60s */
	int smtpd_min_data_rate;	/* bytes/s before AUTH, default 10 */
	long long smtpd_unauth_session_timeout;	/* before AUTH, 60s */
	int smtpd_auth_failure_limit;	/* AUTH failures per address before
					 * it is blocked, default 10 */
	long long smtpd_auth_block_time;	/* default 1h */
	long long smtpd_auth_failure_delay;	/* n-th failure waits n
					 * times this, default 1s */
	struct rate sender_rate_limit;	/* accepted recipients per
					 * sender (senderlimit.h); default
					 * unlimited */
	char *postmaster;		/* RCPT TO:<postmaster> goes here;
					 * NULL: refused at RCPT */
	int workers;			/* event loops; 0 = auto (CPUs) */

	/* outbound */
	enum policy_level default_policy;	/* default dane */
	char *policy_file;
	char *dns_config;		/* libunbound config file, optional */
	char *trust_anchor_file;	/* default /usr/share/dns/root.key */
	char *dnssec_check_name;	/* self-test DNSKEY name, default "." */
	long long dnssec_check_interval;	/* self-test period, default 600s */
	int smtp_port;			/* default 25 */
	long long smtp_connect_timeout;	/* default 30s */
	long long smtp_timeout;		/* EHLO, STARTTLS, TLS, RSET:
					 * default 300s */
	/* RFC 5321 §4.5.3.2 client timeouts, the RFC's values by default */
	long long smtp_greeting_timeout;	/* 220 banner, 300s */
	long long smtp_mail_timeout;		/* MAIL reply, 300s */
	long long smtp_rcpt_timeout;		/* each RCPT reply, 300s */
	long long smtp_data_init_timeout;	/* 354 to DATA, 120s */
	long long smtp_data_xfer_timeout;	/* each body write, 180s */
	long long smtp_data_done_timeout;	/* reply to ".", 600s */
	char *smtp_bind_address;	/* optional source address */
	char *source_table;		/* per sender domain: source address
					 * and HELO (source_table.h); NULL:
					 * smtp_bind_address, myhostname */
	int mta_sts;			/* default yes */
	int https_port;			/* default 443 */
	char *ca_file;			/* NULL: system default roots */
	long long queue_lifetime;	/* default 5d */
	long long delay_warning_time;	/* 0 = off (default) */
	long long min_backoff;		/* default 300s */
	long long max_backoff;		/* default 3600s */
	int max_connections;		/* global outbound, default 100 */
	int max_connections_per_destination;	/* default 10 */
	int max_messages_per_connection;	/* then QUIT; default 100 */
	/* sites (issue #24, connlimit.h): limits per site or domain */
	int limits_by_domain;		/* limits_by = domain; default site */
	struct rate destination_rate_limit;	/* messages per site;
					 * default unlimited */
	long long throttle_pause;	/* first pause after a throttle
					 * reply, default 60s; 0 = off */
	/* one delivery attempt of one destination (Postfix's
	 * smtp_mx_address_limit / smtp_mx_session_limit); 0 = no limit */
	int smtp_max_addresses;		/* MX addresses tried, default 5 */
	int smtp_max_sessions;		/* sessions that reached a server,
					 * default 2 */
	char *bounce_relay;		/* optional "addr:port": DSNs go there
					 * (e.g. back to the local MTA) */
	enum policy_level bounce_relay_tls; /* none, may (default),
					 * encrypt, verify */
	char *bounce_relay_tls_name;	/* verify: the certificate's name */
	/* RFC 8689 (issue #17) */
	int tls_required_header;	/* honour "TLS-Required: No" from
					 * allowed clients; default no */
	int requiretls_redact_dsn;	/* the DSN of a REQUIRETLS message
					 * leaves out its headers and goes
					 * without REQUIRETLS; default yes */
	unsigned long long queue_minfree; /* spool bytes kept free: MAIL gets
					 * 452 below it; default 100M, 0 off */

	/* TLSRPT */
	int tlsrpt;			/* default yes */
	char *tlsrpt_org_name;
	char *tlsrpt_contact;
	char *tlsrpt_from;

	char *metrics_listen;		/* optional "127.0.0.1:9125" */

	/* DKIM signing (issue #16; dkim.h) */
	char *dkim_key_table;		/* NULL: nothing is signed */
	int dkim_failure_defer;		/* dkim_failure_action: 1 defer
					 * (451, default), 0 pass unsigned */
	long long dkim_dns_check_interval;	/* pending keys' records
					 * looked up, default 10m */

	/* danerelay check (issue #18) */
	char *check_dnsbl_zones;	/* blocklist zones, space or comma
					 * separated; NULL: no lookups */
	long long check_dkim_max_age;	/* rotation period, default 180d */

	/* Milters (issue #25; milter.h) */
	char *milters;			/* NULL: none */
	char *non_smtpd_milters;	/* NULL: none */
	int milter_default_action;	/* enum milter_default: 0 tempfail,
					 * 1 accept, 2 reject */
	long long milter_connect_timeout;	/* default 30s */
	long long milter_command_timeout;	/* default 30s */
	long long milter_content_timeout;	/* default 300s */
	int milter_protocol;		/* 2..6, default 6 */
	/* milter_connect_macros, _helo_, _mail_, _rcpt_, _data_,
	 * _end_of_data_, _end_of_header_ (libmilter's stage order, as
	 * milter.h's enum milter_mstage): NULL Postfix's default, "" none */
	char *milter_macros[7];

	/* TLS memory (issue #23) */
	enum tls_memory_mode tls_memory;	/* default encrypt */
	long long tls_memory_max_age;	/* default 30d after TLS last seen */
};

void config_defaults(struct config *cf);
/* Initialises *cf itself (defaults, then the file): do not call
 * config_defaults() first.  0 ok; -1 with "file:line: reason" (or
 * "file: reason") in err and *cf left zeroed (config_free() harmless). */
int config_load(const char *path, struct config *cf, char *err, size_t errlen);
void config_free(struct config *cf);

/*
 * Reference counting, for a config on the heap that must outlive its
 * creator's use of it: on SIGHUP the daemon drops the old config while
 * deliveries started under it (route.c, delivery.c) still read it.
 * config_defaults() and config_load() set one reference, the creator's.
 * config_ref() adds one and returns cf; config_unref() drops one and,
 * with the last, does config_free() and free(cf).  A config that is not
 * on the heap may be lent to holders that drop their references before
 * its owner calls config_free().  Both accept NULL; thread-safe.
 */
const struct config *config_ref(const struct config *cf);
void config_unref(const struct config *cf);

/* Parse "host:port", "[v6]:port" or "host" (port dflt) into a listen_addr. */
int listen_addr_parse(const char *s, int dflt_port, struct listen_addr *out);

#endif
