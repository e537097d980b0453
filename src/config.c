/*
 * config.c - danerelay.conf: the configuration file parser.
 *
 * SYNTAX
 *	One setting per line:  name = value
 *	Blank lines and lines whose first non-blank character is '#' are
 *	ignored.  Outside quotes, a '#' at the start of the value or after
 *	white space begins a trailing comment ("listen = 127.0.0.1:25 # lo").
 *	White space around the name, the '=' and the value is ignored.
 *	A value may be written in double quotes to keep leading/trailing
 *	blanks or a " #"; inside quotes \" and \\ stand for " and \.
 *	Lines are at most CONFIG_LINE_MAX bytes; NUL bytes are refused.
 *	Every name may appear at most once.
 *
 * VALUES
 *	durations  parse_duration(): 300, 300s, 5m, 1h, 5d, 2w
 *	sizes      parse_size(): 1048576, 10k, 50M, 1G (powers of 1024)
 *	booleans   parse_bool(): yes/no, true/false, on/off, 1/0
 *	ports      1-65535
 *	levels     none may encrypt dane dane-only verify secure
 *	paths      a relative path is taken relative to the directory of the
 *	           config file (so a daemon that chdir()s to / keeps working);
 *	           optional paths may be given an empty value to unset them.
 *	listen     one or more of IPv4:port, [IPv6]:port, IPv4, IPv6 (port
 *	           10025), separated by commas or blanks; numeric only.
 *
 * API (include/config.h)
 *	config_defaults() fills a zeroed struct with built-in defaults.
 *	config_load() initialises *cf itself (it calls config_defaults(); do
 *	not call it first) and applies the file.  On error it returns -1 with
 *	"file:line: reason" (or "file: reason" for an unreadable file) in
 *	err and leaves *cf zeroed, so config_free() on it is harmless.
 *	config_free() releases every string and the ACL and zeroes *cf.
 *	config_ref()/config_unref() count the holders of a config on the
 *	heap (the daemon's, across SIGHUP); the last unref frees it.
 *
 * No RFC is implemented here; the option names are the contract in
 * DESIGN.md ("Config contract").
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acl.h"
#include "config.h"
#include "idn.h"
#include "smtp_parse.h"
#include "util.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#ifndef LOCALSTATEDIR
#define LOCALSTATEDIR "/var"
#endif
#ifndef RUNSTATEDIR
#define RUNSTATEDIR "/run"
#endif

#define CONFIG_LINE_MAX		4096
#define CONFIG_DFLT_LISTEN	"127.0.0.1:10025"
#define CONFIG_DFLT_LISTEN_PORT	10025
#define CONFIG_DFLT_ACL		"127.0.0.0/8 ::1"
#define CONFIG_INT_MAX		1000000

/*
 * Policy levels
 */

static const struct {
	enum policy_level	 level;
	const char		*name;
} policy_levels[] = {
	{ POLICY_NONE,		"none" },
	{ POLICY_MAY,		"may" },
	{ POLICY_ENCRYPT,	"encrypt" },
	{ POLICY_DANE,		"dane" },
	{ POLICY_DANE_ONLY,	"dane-only" },
	{ POLICY_VERIFY,	"verify" },
	{ POLICY_SECURE,	"secure" },
};

int
policy_level_parse(const char *s, enum policy_level *out)
{
	size_t i;

	if (s == NULL)
		return -1;
	for (i = 0; i < sizeof(policy_levels) / sizeof(policy_levels[0]); i++)
		if (strcmp(s, policy_levels[i].name) == 0) {
			*out = policy_levels[i].level;
			return 0;
		}
	return -1;
}

const char *
policy_level_name(enum policy_level l)
{
	size_t i;

	for (i = 0; i < sizeof(policy_levels) / sizeof(policy_levels[0]); i++)
		if (policy_levels[i].level == l)
			return policy_levels[i].name;
	return "unknown";
}

/*
 * Listen addresses
 */

static int
parse_port(const char *s, int *port)
{
	long v;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 1 || v > 65535)
		return -1;
	*port = (int)v;
	return 0;
}

/* Numeric address + port into a sockaddr; 0 ok, -1 with reason. */
static int
listen_addr_parse_err(const char *s, int dflt_port, struct listen_addr *out,
    char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *h, *p = NULL, *colon;
	size_t hlen;
	int port = dflt_port;
	struct sockaddr_in *sin;
	struct sockaddr_in6 *sin6;

	if (s == NULL || *s == '\0') {
		snprintf(err, errlen, "empty address");
		return -1;
	}
	if (*s == '[') {
		const char *rb = strchr(s, ']');

		if (rb == NULL) {
			snprintf(err, errlen, "missing ']' in \"%s\"", s);
			return -1;
		}
		h = s + 1;
		hlen = (size_t)(rb - h);
		if (rb[1] == ':')
			p = rb + 2;
		else if (rb[1] != '\0') {
			snprintf(err, errlen, "junk after ']' in \"%s\"", s);
			return -1;
		}
	} else if ((colon = strchr(s, ':')) != NULL &&
	    strchr(colon + 1, ':') == NULL) {
		/* exactly one colon: IPv4 (or name) with a port */
		h = s;
		hlen = (size_t)(colon - s);
		p = colon + 1;
	} else {
		/* no colon (IPv4) or several (bare IPv6): no port */
		h = s;
		hlen = strlen(s);
	}
	if (hlen == 0 || hlen >= sizeof(host)) {
		snprintf(err, errlen, "bad address \"%s\"", s);
		return -1;
	}
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (p != NULL && parse_port(p, &port) == -1) {
		snprintf(err, errlen, "bad port \"%s\" in \"%s\" (want 1-65535)",
		    p, s);
		return -1;
	}
	if (port < 1 || port > 65535) {
		snprintf(err, errlen, "no port in \"%s\"", s);
		return -1;
	}

	memset(out, 0, sizeof(*out));
	sin = (struct sockaddr_in *)&out->ss;
	sin6 = (struct sockaddr_in6 *)&out->ss;
	if (*s != '[' && inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		out->len = sizeof(*sin);
		snprintf(out->text, sizeof(out->text), "%s:%d", host, port);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		out->len = sizeof(*sin6);
		snprintf(out->text, sizeof(out->text), "[%s]:%d", host, port);
	} else {
		memset(out, 0, sizeof(*out));
		snprintf(err, errlen, "bad address \"%s\" (want a numeric "
		    "IPv4 or [IPv6] address)", s);
		return -1;
	}
	return 0;
}

int
listen_addr_parse(const char *s, int dflt_port, struct listen_addr *out)
{
	char err[256];

	return listen_addr_parse_err(s, dflt_port, out, err, sizeof(err));
}

/*
 * Defaults
 */

static char *
default_hostname(void)
{
	char buf[256];

	if (gethostname(buf, sizeof(buf)) == -1 || buf[0] == '\0')
		return xstrdup("localhost");
	buf[sizeof(buf) - 1] = '\0';
	return xstrdup(buf);
}

void
config_defaults(struct config *cf)
{
	char err[256];

	memset(cf, 0, sizeof(*cf));
	cf->refs = 1;
	if (listen_addr_parse(CONFIG_DFLT_LISTEN, CONFIG_DFLT_LISTEN_PORT,
	    &cf->listen[0]) == 0)
		cf->nlisten = 1;
	cf->myhostname = default_hostname();
	cf->spool_dir = xstrdup(LOCALSTATEDIR "/spool/danerelay");
	cf->state_dir = xstrdup(LOCALSTATEDIR "/lib/danerelay");
	cf->pid_file = xstrdup(RUNSTATEDIR "/danerelay/danerelayd.pid");
	cf->control_socket = xasprintf("%s/control.sock", cf->spool_dir);
	cf->user = xstrdup("danerelay");

	cf->allow_clients_text = xstrdup(CONFIG_DFLT_ACL);
	cf->allow_clients = acl_parse(CONFIG_DFLT_ACL, err, sizeof(err));
	cf->max_message_size = 50ULL << 20;
	cf->max_recipients = 1000;
	cf->max_hops = 100;
	cf->smtpd_max_errors = 10;
	cf->smtpd_timeout = 300;
	cf->smtpd_session_timeout = 3600;
	cf->smtpd_max_clients = 1000;
	cf->smtpd_reserved_clients = -1;
	cf->smtpd_client_connection_count_limit = 50;
	cf->smtpd_client_connection_rate_limit = 100;
	cf->smtpd_client_connection_rate_time_unit = 60;
	cf->smtpd_min_data_rate = 10;
	cf->smtpd_unauth_session_timeout = 60;
	cf->smtpd_auth_failure_limit = 10;
	cf->smtpd_auth_block_time = 3600;
	cf->smtpd_auth_failure_delay = 1;

	cf->default_policy = POLICY_DANE;
	cf->bounce_relay_tls = POLICY_MAY;
	cf->requiretls_redact_dsn = 1;
	cf->tls_memory = TLS_MEMORY_ENCRYPT;
	cf->tls_memory_max_age = 30 * 86400;	/* README: why a month */
	cf->trust_anchor_file = xstrdup("/usr/share/dns/root.key");
	cf->dnssec_check_name = xstrdup(".");
	cf->dnssec_check_interval = 600;
	cf->smtp_port = 25;
	cf->smtp_connect_timeout = 30;
	cf->smtp_timeout = 300;
	cf->smtp_greeting_timeout = 300;	/* RFC 5321 §4.5.3.2.1 */
	cf->smtp_mail_timeout = 300;		/* §4.5.3.2.2 */
	cf->smtp_rcpt_timeout = 300;		/* §4.5.3.2.3 */
	cf->smtp_data_init_timeout = 120;	/* §4.5.3.2.4 */
	cf->smtp_data_xfer_timeout = 180;	/* §4.5.3.2.5 */
	cf->smtp_data_done_timeout = 600;	/* §4.5.3.2.6 */
	cf->mta_sts = 1;
	cf->https_port = 443;
	cf->queue_lifetime = 5 * 86400;
	cf->delay_warning_time = 0;
	cf->min_backoff = 300;
	cf->max_backoff = 3600;
	cf->max_connections = 100;
	cf->max_connections_per_destination = 10;
	cf->max_messages_per_connection = 100;
	cf->throttle_pause = 60;
	cf->smtp_max_addresses = 5;
	cf->smtp_max_sessions = 2;
	cf->queue_minfree = 100ULL << 20;

	cf->tlsrpt = 1;
	cf->dkim_failure_defer = 1;
	cf->dkim_dns_check_interval = 600;
	cf->check_dkim_max_age = 180 * 86400;
	cf->milter_connect_timeout = 30;
	cf->milter_command_timeout = 30;
	cf->milter_content_timeout = 300;
	cf->milter_protocol = 6;
}

void
config_free(struct config *cf)
{
	size_t i;

	if (cf == NULL)
		return;
	free(cf->file);
	free(cf->myhostname);
	free(cf->spool_dir);
	free(cf->state_dir);
	free(cf->state_backend);
	free(cf->pid_file);
	free(cf->control_socket);
	free(cf->user);
	acl_free(cf->allow_clients);
	free(cf->allow_clients_text);
	free(cf->auth_file);
	free(cf->tls_cert_file);
	free(cf->tls_key_file);
	free(cf->policy_file);
	free(cf->dns_config);
	free(cf->trust_anchor_file);
	free(cf->dnssec_check_name);
	free(cf->smtp_bind_address);
	free(cf->source_table);
	free(cf->ca_file);
	free(cf->tlsrpt_org_name);
	free(cf->tlsrpt_contact);
	free(cf->tlsrpt_from);
	free(cf->check_dnsbl_zones);
	free(cf->dkim_key_table);
	free(cf->metrics_listen);
	free(cf->bounce_relay);
	free(cf->bounce_relay_tls_name);
	free(cf->postmaster);
	free(cf->milters);
	free(cf->non_smtpd_milters);
	for (i = 0; i < sizeof(cf->milter_macros) /
	    sizeof(cf->milter_macros[0]); i++)
		free(cf->milter_macros[i]);
	memset(cf, 0, sizeof(*cf));
}

const struct config *
config_ref(const struct config *cf)
{
	if (cf != NULL)
		__atomic_add_fetch(&((struct config *)cf)->refs, 1,
		    __ATOMIC_RELAXED);
	return cf;
}

void
config_unref(const struct config *cf)
{
	struct config *c = (struct config *)cf;

	if (c == NULL || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	config_free(c);
	free(c);
}

/*
 * The option table: one row per name in struct config.
 */

enum opt_type {
	T_LISTEN,	/* listen list into cf->listen[] */
	T_HOSTNAME,	/* DNS host name */
	T_STRING,	/* non-empty free text */
	T_OSTRING,	/* free text, empty = unset */
	T_USER,		/* user name */
	T_DIR,		/* path, required */
	T_PATH,		/* path, required (file need not exist yet) */
	T_FILE,		/* path to an existing file, empty = unset */
	T_ACL,		/* allow_clients */
	T_SIZE,		/* parse_size, > 0 */
	T_SIZE0,	/* parse_size, 0 allowed */
	T_COUNT,	/* integer 1..CONFIG_INT_MAX */
	T_COUNT0,	/* integer 0..CONFIG_INT_MAX */
	T_DURATION,	/* parse_duration, > 0 */
	T_DURATION0,	/* parse_duration, 0 allowed */
	T_POLICY,	/* default_policy */
	T_PORT,		/* 1-65535 */
	T_BOOL,		/* parse_bool */
	T_ADDRESS,	/* numeric IP address, empty = unset */
	T_OLISTEN,	/* one listen address kept as text, empty = unset */
	T_WORKERS,	/* "auto" (0) or 1..CONFIG_MAX_WORKERS */
	T_MAILBOX,	/* local@domain as in RCPT TO, empty = unset */
	T_HOPTLS,	/* TLS level of a fixed next hop: none, may,
			 * encrypt, verify */
	T_TLSMEM,	/* tls_memory: no, encrypt, verify */
	T_RATE,		/* parse_rate: "200/h", 0 = unlimited */
	T_DKIMFAIL,	/* dkim_failure_action: defer, pass */
	T_BACKEND,	/* state_backend: sqlite or a postgresql:// URI */
	T_MILTERS,	/* inet:HOST:PORT, unix:/path, ..., empty = none */
	T_MILTERACT,	/* milter_default_action: tempfail, accept, reject */
	T_MILTERPROTO,	/* milter_protocol: 2..6 */
	T_MACROS,	/* milter_*_macros: x or {name}, empty = none */
	T_LIMITSBY,	/* limits_by: site, domain */
};

#define OFF(f)	offsetof(struct config, f)

static const struct option {
	const char	*name;
	enum opt_type	 type;
	size_t		 off;
} options[] = {
	{ "listen",			T_LISTEN,	0 },
	{ "myhostname",			T_HOSTNAME,	OFF(myhostname) },
	{ "spool_dir",			T_DIR,		OFF(spool_dir) },
	{ "state_dir",			T_DIR,		OFF(state_dir) },
	{ "state_backend",		T_BACKEND,	OFF(state_backend) },
	{ "pid_file",			T_PATH,		OFF(pid_file) },
	{ "control_socket",		T_PATH,		OFF(control_socket) },
	{ "user",			T_USER,		OFF(user) },

	{ "allow_clients",		T_ACL,		0 },
	{ "auth_file",			T_FILE,		OFF(auth_file) },
	{ "tls_cert_file",		T_FILE,		OFF(tls_cert_file) },
	{ "tls_key_file",		T_FILE,		OFF(tls_key_file) },
	{ "max_message_size",		T_SIZE,		OFF(max_message_size) },
	{ "max_recipients",		T_COUNT,	OFF(max_recipients) },
	{ "max_hops",			T_COUNT,	OFF(max_hops) },
	{ "smtpd_max_errors",		T_COUNT,	OFF(smtpd_max_errors) },
	{ "smtpd_timeout",		T_DURATION,	OFF(smtpd_timeout) },
	{ "smtpd_session_timeout",	T_DURATION,
	    OFF(smtpd_session_timeout) },
	{ "smtpd_max_clients",		T_COUNT,	OFF(smtpd_max_clients) },
	{ "smtpd_reserved_clients",	T_COUNT0,
	    OFF(smtpd_reserved_clients) },
	{ "smtpd_client_connection_count_limit", T_COUNT0,
	    OFF(smtpd_client_connection_count_limit) },
	{ "smtpd_client_connection_rate_limit", T_COUNT0,
	    OFF(smtpd_client_connection_rate_limit) },
	{ "smtpd_client_connection_rate_time_unit", T_DURATION,
	    OFF(smtpd_client_connection_rate_time_unit) },
	{ "smtpd_min_data_rate",	T_COUNT0,	OFF(smtpd_min_data_rate) },
	{ "smtpd_unauth_session_timeout", T_DURATION,
	    OFF(smtpd_unauth_session_timeout) },
	{ "smtpd_auth_failure_limit",	T_COUNT0,
	    OFF(smtpd_auth_failure_limit) },
	{ "smtpd_auth_block_time",	T_DURATION,
	    OFF(smtpd_auth_block_time) },
	{ "smtpd_auth_failure_delay",	T_DURATION0,
	    OFF(smtpd_auth_failure_delay) },
	{ "sender_rate_limit",		T_RATE,	OFF(sender_rate_limit) },
	{ "postmaster",			T_MAILBOX,	OFF(postmaster) },
	{ "workers",			T_WORKERS,	OFF(workers) },

	{ "default_policy",		T_POLICY,	OFF(default_policy) },
	{ "policy_file",		T_FILE,		OFF(policy_file) },
	{ "dns_config",			T_FILE,		OFF(dns_config) },
	{ "trust_anchor_file",		T_FILE,		OFF(trust_anchor_file) },
	{ "dnssec_check_name",		T_STRING,	OFF(dnssec_check_name) },
	{ "dnssec_check_interval",	T_DURATION,
	    OFF(dnssec_check_interval) },
	{ "smtp_port",			T_PORT,		OFF(smtp_port) },
	{ "smtp_connect_timeout",	T_DURATION,
	    OFF(smtp_connect_timeout) },
	{ "smtp_timeout",		T_DURATION,	OFF(smtp_timeout) },
	{ "smtp_greeting_timeout",	T_DURATION,
	    OFF(smtp_greeting_timeout) },
	{ "smtp_mail_timeout",		T_DURATION,	OFF(smtp_mail_timeout) },
	{ "smtp_rcpt_timeout",		T_DURATION,	OFF(smtp_rcpt_timeout) },
	{ "smtp_data_init_timeout",	T_DURATION,
	    OFF(smtp_data_init_timeout) },
	{ "smtp_data_xfer_timeout",	T_DURATION,
	    OFF(smtp_data_xfer_timeout) },
	{ "smtp_data_done_timeout",	T_DURATION,
	    OFF(smtp_data_done_timeout) },
	{ "smtp_bind_address",		T_ADDRESS,	OFF(smtp_bind_address) },
	{ "source_table",		T_FILE,		OFF(source_table) },
	{ "mta_sts",			T_BOOL,		OFF(mta_sts) },
	{ "https_port",			T_PORT,		OFF(https_port) },
	{ "ca_file",			T_FILE,		OFF(ca_file) },
	{ "queue_lifetime",		T_DURATION,	OFF(queue_lifetime) },
	{ "queue_minfree",		T_SIZE0,	OFF(queue_minfree) },
	{ "delay_warning_time",		T_DURATION0,
	    OFF(delay_warning_time) },
	{ "min_backoff",		T_DURATION,	OFF(min_backoff) },
	{ "max_backoff",		T_DURATION,	OFF(max_backoff) },
	{ "max_connections",		T_COUNT,	OFF(max_connections) },
	{ "max_connections_per_destination", T_COUNT,
	    OFF(max_connections_per_destination) },
	{ "max_messages_per_connection", T_COUNT,
	    OFF(max_messages_per_connection) },
	{ "limits_by",			T_LIMITSBY,	OFF(limits_by_domain) },
	{ "destination_rate_limit",	T_RATE,
	    OFF(destination_rate_limit) },
	{ "throttle_pause",		T_DURATION0,	OFF(throttle_pause) },
	{ "smtp_max_addresses",		T_COUNT0,	OFF(smtp_max_addresses) },
	{ "smtp_max_sessions",		T_COUNT0,	OFF(smtp_max_sessions) },

	{ "tlsrpt",			T_BOOL,		OFF(tlsrpt) },
	{ "tlsrpt_org_name",		T_OSTRING,	OFF(tlsrpt_org_name) },
	{ "tlsrpt_contact",		T_OSTRING,	OFF(tlsrpt_contact) },
	{ "tlsrpt_from",		T_OSTRING,	OFF(tlsrpt_from) },

	{ "metrics_listen",		T_OLISTEN,	OFF(metrics_listen) },
	{ "bounce_relay",		T_OLISTEN,	OFF(bounce_relay) },
	{ "bounce_relay_tls",		T_HOPTLS,	OFF(bounce_relay_tls) },
	{ "bounce_relay_tls_name",	T_OSTRING,
	    OFF(bounce_relay_tls_name) },
	{ "tls_memory",			T_TLSMEM,	OFF(tls_memory) },
	{ "tls_required_header",	T_BOOL,	OFF(tls_required_header) },
	{ "requiretls_redact_dsn",	T_BOOL,	OFF(requiretls_redact_dsn) },
	{ "dkim_key_table",		T_FILE,		OFF(dkim_key_table) },
	{ "dkim_failure_action",	T_DKIMFAIL,
	    OFF(dkim_failure_defer) },
	{ "dkim_dns_check_interval",	T_DURATION,
	    OFF(dkim_dns_check_interval) },
	{ "tls_memory_max_age",		T_DURATION,
	    OFF(tls_memory_max_age) },
	{ "check_dnsbl_zones",		T_OSTRING,	OFF(check_dnsbl_zones) },
	{ "check_dkim_max_age",		T_DURATION,
	    OFF(check_dkim_max_age) },
	{ "milters",			T_MILTERS,	OFF(milters) },
	{ "non_smtpd_milters",		T_MILTERS,	OFF(non_smtpd_milters) },
	{ "milter_default_action",	T_MILTERACT,
	    OFF(milter_default_action) },
	{ "milter_connect_timeout",	T_DURATION,
	    OFF(milter_connect_timeout) },
	{ "milter_command_timeout",	T_DURATION,
	    OFF(milter_command_timeout) },
	{ "milter_content_timeout",	T_DURATION,
	    OFF(milter_content_timeout) },
	{ "milter_protocol",		T_MILTERPROTO,	OFF(milter_protocol) },
	{ "milter_connect_macros",	T_MACROS,	OFF(milter_macros[0]) },
	{ "milter_helo_macros",		T_MACROS,	OFF(milter_macros[1]) },
	{ "milter_mail_macros",		T_MACROS,	OFF(milter_macros[2]) },
	{ "milter_rcpt_macros",		T_MACROS,	OFF(milter_macros[3]) },
	{ "milter_data_macros",		T_MACROS,	OFF(milter_macros[4]) },
	{ "milter_end_of_data_macros",	T_MACROS,	OFF(milter_macros[5]) },
	{ "milter_end_of_header_macros", T_MACROS,	OFF(milter_macros[6]) },
};
#define NOPTIONS	(sizeof(options) / sizeof(options[0]))

#define FIELD(cf, o, type)	((type *)(void *)((char *)(cf) + (o)->off))

/* State of one config_load() run. */
struct parser {
	const char	*file;
	char		*dir;		/* directory of file, for relative paths */
	int		 lineno;
	int		 seen[NOPTIONS];	/* line where set, 0 = not set */
	char		*err;
	size_t		 errlen;
};

static int
perr(struct parser *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
perr(struct parser *p, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->lineno > 0)
		snprintf(p->err, p->errlen, "%s:%d: %s", p->file, p->lineno,
		    msg);
	else
		snprintf(p->err, p->errlen, "%s: %s", p->file, msg);
	return -1;
}

static void
set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = v != NULL ? xstrdup(v) : NULL;
}

static char *
make_path(struct parser *p, const char *v)
{
	if (v[0] == '/' || p->dir == NULL)
		return xstrdup(v);
	if (strcmp(p->dir, "/") == 0)
		return xasprintf("/%s", v);
	return xasprintf("%s/%s", p->dir, v);
}

/* myhostname: an LDH host name (idn.c), a trailing dot allowed */
static int
valid_hostname(const char *s)
{
	size_t len = strlen(s);

	if (len > 253)
		return 0;
	if (len > 0 && s[len - 1] == '.')
		len--;
	return idn_ldh_name(s, len);
}

static int
valid_user(const char *s)
{
	const char *c;

	if (*s == '\0' || *s == '-' || strlen(s) > 32)
		return 0;
	for (c = s; *c; c++)
		if (!isalnum((unsigned char)*c) && *c != '_' && *c != '-' &&
		    *c != '.')
			return 0;
	return 1;
}

static int
valid_text(const char *s)
{
	for (; *s; s++)
		if (iscntrl((unsigned char)*s))
			return 0;
	return 1;
}

static int
set_listen(struct parser *p, struct config *cf, const char *name,
    const char *v)
{
	char buf[CONFIG_LINE_MAX], reason[256], *tok, *save = NULL;
	int n = 0;

	dr_strlcpy(buf, v, sizeof(buf));
	for (tok = strtok_r(buf, ", \t", &save); tok != NULL;
	    tok = strtok_r(NULL, ", \t", &save)) {
		if (n == CONFIG_MAX_LISTEN)
			return perr(p, "%s: more than %d addresses", name,
			    CONFIG_MAX_LISTEN);
		if (listen_addr_parse_err(tok, CONFIG_DFLT_LISTEN_PORT,
		    &cf->listen[n], reason, sizeof(reason)) == -1)
			return perr(p, "%s: %s", name, reason);
		n++;
	}
	if (n == 0)
		return perr(p, "%s: no address given", name);
	cf->nlisten = n;
	return 0;
}

/* A mailbox the inbound parser would take in RCPT TO, with a domain. */
static int
valid_mailbox(const char *v)
{
	char line[SMTP_PATH_MAX + 8];
	struct smtp_rcpt r;
	struct smtp_perr e;
	int n;

	n = snprintf(line, sizeof(line), "TO:<%s>", v);
	return n > 0 && (size_t)n < sizeof(line) && strchr(v, '@') != NULL &&
	    smtp_parse_rcpt(line, 1, &r, &e) == 0 && strcmp(r.addr, v) == 0;
}

/*
 * milter_*_macros: names separated by spaces or commas, each one
 * character ("j", "_") or a braced name ("{daemon_addr}") of letters,
 * digits and '_', as the milter protocol names macros.  Whether danerelay
 * has such a macro is milter.c's business (it warns).
 */
static int
milter_macro_syntax(const char *v, char *why, size_t whylen)
{
	size_t n, k;

	for (v += strspn(v, " ,\t"); *v != '\0'; v += strspn(v, " ,\t")) {
		n = strcspn(v, " ,\t");
		if (n == 1 && (isalnum((unsigned char)*v) || *v == '_')) {
			v += n;
			continue;
		}
		for (k = 1; k + 1 < n && (isalnum((unsigned char)v[k]) ||
		    v[k] == '_'); k++)
			;
		if (n < 3 || n > 62 || v[0] != '{' || v[n - 1] != '}' ||
		    k != n - 1) {
			snprintf(why, whylen, "bad macro name \"%.*s\": want "
			    "one character (j) or {name}", (int)(n > 60 ? 60 :
			    n), v);
			return -1;
		}
		v += n;
	}
	return 0;
}

/*
 * milters: a list of inet:ADDRESS:PORT, inet:PORT@ADDRESS, inet6:...,
 * unix:/path (the form milter.c connects to; it parses again).  The
 * address is numeric or localhost: a name would need a DNS lookup at
 * every session.  0 ok, -1 with why.
 */
static int
milter_list_syntax(const char *list, char *why, size_t whylen)
{
	char *copy = xstrdup(list), *tok, *save = NULL, *host, *port, *c;
	char whole[128];
	struct in6_addr a6;
	struct in_addr a4;
	long n;
	char *end;
	int rc = 0;

	for (tok = strtok_r(copy, ", \t", &save); tok != NULL && rc == 0;
	    tok = strtok_r(NULL, ", \t", &save)) {
		dr_strlcpy(whole, tok, sizeof(whole));
		if (strncmp(tok, "unix:", 5) == 0 ||
		    strncmp(tok, "local:", 6) == 0) {
			c = strchr(tok, ':') + 1;
			if (c[0] != '/' || strlen(c) >= 100) {
				snprintf(why, whylen, "\"%s\": want an absolute "
				    "socket path", tok);
				rc = -1;
			}
			continue;
		}
		if (strncmp(tok, "inet:", 5) == 0)
			host = tok + 5;
		else if (strncmp(tok, "inet6:", 6) == 0)
			host = tok + 6;
		else {
			snprintf(why, whylen, "\"%s\": want inet:ADDRESS:PORT "
			    "or unix:/path", tok);
			rc = -1;
			continue;
		}
		if ((c = strchr(host, '@')) != NULL) {
			*c = '\0';
			port = host;
			host = c + 1;
		} else if ((c = strrchr(host, ':')) != NULL) {
			*c = '\0';
			port = c + 1;
		} else
			port = NULL;
		if (host[0] == '[' && (c = strchr(host, ']')) != NULL &&
		    c[1] == '\0') {
			*c = '\0';
			host++;
		}
		n = port != NULL ? strtol(port, &end, 10) : 0;
		if (port == NULL || *port == '\0' || *end != '\0' || n < 1 ||
		    n > 65535 || (strcmp(host, "localhost") != 0 &&
		    inet_pton(AF_INET, host, &a4) != 1 &&
		    inet_pton(AF_INET6, host, &a6) != 1)) {
			snprintf(why, whylen, "bad milter \"%.100s\": want "
			    "inet:ADDRESS:PORT (a numeric address or "
			    "localhost) or unix:/path", whole);
			rc = -1;
		}
	}
	free(copy);
	return rc;
}

static int
set_option(struct parser *p, struct config *cf, const struct option *o,
    const char *v)
{
	char reason[256];
	long long d;
	unsigned long long sz;
	long n;
	char *end;
	int b, port;
	enum policy_level lvl;
	struct listen_addr la;
	struct in6_addr a6;
	struct in_addr a4;
	struct stat st;
	char *path;
	struct acl *acl;

	switch (o->type) {
	case T_LISTEN:
		return set_listen(p, cf, o->name, v);
	case T_HOSTNAME:
		if (!valid_hostname(v))
			return perr(p, "%s: bad host name \"%s\"", o->name, v);
		set_str(FIELD(cf, o, char *), v);
		return 0;
	case T_STRING:
	case T_OSTRING:
		if (*v == '\0' && o->type == T_STRING)
			return perr(p, "%s: missing value", o->name);
		if (!valid_text(v))
			return perr(p, "%s: control character in value",
			    o->name);
		set_str(FIELD(cf, o, char *), *v ? v : NULL);
		return 0;
	case T_BACKEND:
		if (strcmp(v, "sqlite") == 0) {
			set_str(FIELD(cf, o, char *), NULL);
			return 0;
		}
		if ((strncmp(v, "postgresql://", 13) != 0 &&
		    strncmp(v, "postgres://", 11) != 0) || !valid_text(v))
			return perr(p, "%s: \"sqlite\" or a postgresql:// URI "
			    "expected", o->name);
		set_str(FIELD(cf, o, char *), v);
		return 0;
	case T_USER:
		if (!valid_user(v))
			return perr(p, "%s: bad user name \"%s\"", o->name, v);
		set_str(FIELD(cf, o, char *), v);
		return 0;
	case T_DIR:
	case T_PATH:
		if (*v == '\0')
			return perr(p, "%s: missing value", o->name);
		if (!valid_text(v))
			return perr(p, "%s: control character in path",
			    o->name);
		path = make_path(p, v);
		free(*FIELD(cf, o, char *));
		*FIELD(cf, o, char *) = path;
		return 0;
	case T_FILE:
		if (*v == '\0') {
			set_str(FIELD(cf, o, char *), NULL);
			return 0;
		}
		if (!valid_text(v))
			return perr(p, "%s: control character in path",
			    o->name);
		path = make_path(p, v);
		if (stat(path, &st) == -1) {
			perr(p, "%s: \"%s\": %s", o->name, path,
			    strerror(errno));
			free(path);
			return -1;
		}
		if (!S_ISREG(st.st_mode)) {
			perr(p, "%s: \"%s\": not a regular file", o->name,
			    path);
			free(path);
			return -1;
		}
		free(*FIELD(cf, o, char *));
		*FIELD(cf, o, char *) = path;
		return 0;
	case T_ACL:
		if (!valid_text(v))
			return perr(p, "%s: control character in value",
			    o->name);
		reason[0] = '\0';
		if ((acl = acl_parse(v, reason, sizeof(reason))) == NULL)
			return perr(p, "%s: %s", o->name,
			    reason[0] ? reason : "bad address list");
		acl_free(cf->allow_clients);
		cf->allow_clients = acl;
		set_str(&cf->allow_clients_text, v);
		return 0;
	case T_SIZE:
		if (parse_size(v, &sz) == -1 || sz == 0)
			return perr(p, "%s: bad size \"%s\" (want e.g. "
			    "10485760, 10240k, 50M, 1G)", o->name, v);
		*FIELD(cf, o, unsigned long long) = sz;
		return 0;
	case T_RATE:
		if (parse_rate(v, FIELD(cf, o, struct rate)) == -1)
			return perr(p, "%s: bad rate \"%s\" (want e.g. 200/h, "
			    "60/m, 5/s, 1000/d, or unlimited)", o->name, v);
		return 0;
	case T_SIZE0:
		if (parse_size(v, &sz) == -1)
			return perr(p, "%s: bad size \"%s\" (want e.g. 0, "
			    "104857600, 100M, 1G)", o->name, v);
		*FIELD(cf, o, unsigned long long) = sz;
		return 0;
	case T_COUNT:
	case T_COUNT0:
		errno = 0;
		n = isdigit((unsigned char)*v) ? strtol(v, &end, 10) : -1;
		if (n < (o->type == T_COUNT ? 1 : 0) || errno != 0 ||
		    *end != '\0' || n > CONFIG_INT_MAX)
			return perr(p, "%s: bad number \"%s\" (want %d-%d)",
			    o->name, v, o->type == T_COUNT ? 1 : 0,
			    CONFIG_INT_MAX);
		*FIELD(cf, o, int) = (int)n;
		return 0;
	case T_MAILBOX:
		if (*v != '\0' && !valid_mailbox(v))
			return perr(p, "%s: bad address \"%s\" (want "
			    "local-part@domain)", o->name, v);
		set_str(FIELD(cf, o, char *), *v ? v : NULL);
		return 0;
	case T_WORKERS:
		if (strcmp(v, "auto") == 0) {
			*FIELD(cf, o, int) = 0;
			return 0;
		}
		errno = 0;
		n = isdigit((unsigned char)*v) ? strtol(v, &end, 10) : -1;
		if (n < 1 || errno != 0 || *end != '\0' ||
		    n > CONFIG_MAX_WORKERS)
			return perr(p, "%s: want \"auto\" or a number 1-%d, not "
			    "\"%s\"", o->name, CONFIG_MAX_WORKERS, v);
		*FIELD(cf, o, int) = (int)n;
		return 0;
	case T_DURATION:
	case T_DURATION0:
		if (parse_duration(v, &d) == -1)
			return perr(p, "%s: bad duration \"%s\" (want e.g. "
			    "300, 300s, 5m, 1h, 5d, 2w)", o->name, v);
		if (d == 0 && o->type == T_DURATION)
			return perr(p, "%s: must be greater than 0", o->name);
		*FIELD(cf, o, long long) = d;
		return 0;
	case T_POLICY:
		if (policy_level_parse(v, &lvl) == -1)
			return perr(p, "%s: bad policy level \"%s\" (want "
			    "dane, dane-only, verify, secure, encrypt or may)",
			    o->name, v);
		if (lvl == POLICY_NONE)
			return perr(p, "%s: \"none\" (cleartext) is not allowed "
			    "as the default; write it for single domains in "
			    "the policy_file", o->name);
		*FIELD(cf, o, enum policy_level) = lvl;
		return 0;
	case T_HOPTLS:
		if (policy_level_parse(v, &lvl) == -1 ||
		    (lvl != POLICY_NONE && lvl != POLICY_MAY &&
		    lvl != POLICY_ENCRYPT && lvl != POLICY_VERIFY))
			return perr(p, "%s: bad TLS level \"%s\" (want none, "
			    "may, encrypt or verify)", o->name, v);
		*FIELD(cf, o, enum policy_level) = lvl;
		return 0;
	case T_TLSMEM:
		if (strcmp(v, "no") == 0)
			*FIELD(cf, o, enum tls_memory_mode) = TLS_MEMORY_NO;
		else if (strcmp(v, "encrypt") == 0)
			*FIELD(cf, o, enum tls_memory_mode) =
			    TLS_MEMORY_ENCRYPT;
		else if (strcmp(v, "verify") == 0)
			*FIELD(cf, o, enum tls_memory_mode) = TLS_MEMORY_VERIFY;
		else
			return perr(p, "%s: want encrypt, verify or no, not "
			    "\"%s\"", o->name, v);
		return 0;
	case T_MILTERS:
		if (!valid_text(v) || milter_list_syntax(v, reason,
		    sizeof(reason)) == -1)
			return perr(p, "%s: %s", o->name, !valid_text(v) ?
			    "control character in value" : reason);
		set_str(FIELD(cf, o, char *), *v ? v : NULL);
		return 0;
	case T_MACROS:
		if (milter_macro_syntax(v, reason, sizeof(reason)) == -1)
			return perr(p, "%s: %s", o->name, reason);
		set_str(FIELD(cf, o, char *), v);
		return 0;
	case T_MILTERACT:
		if (strcmp(v, "tempfail") == 0)
			*FIELD(cf, o, int) = 0;
		else if (strcmp(v, "accept") == 0)
			*FIELD(cf, o, int) = 1;
		else if (strcmp(v, "reject") == 0)
			*FIELD(cf, o, int) = 2;
		else
			return perr(p, "%s: want tempfail, accept or reject, "
			    "not \"%s\"", o->name, v);
		return 0;
	case T_MILTERPROTO:
		n = strtol(v, &end, 10);
		if (*v == '\0' || *end != '\0' || n < 2 || n > 6)
			return perr(p, "%s: want 2 to 6, not \"%s\"", o->name,
			    v);
		*FIELD(cf, o, int) = (int)n;
		return 0;
	case T_LIMITSBY:
		if (strcmp(v, "site") != 0 && strcmp(v, "domain") != 0)
			return perr(p, "%s: want site or domain, not \"%s\"",
			    o->name, v);
		*FIELD(cf, o, int) = strcmp(v, "domain") == 0;
		return 0;
	case T_DKIMFAIL:
		if (strcmp(v, "defer") != 0 && strcmp(v, "pass") != 0)
			return perr(p, "%s: want defer or pass, not \"%s\"",
			    o->name, v);
		*FIELD(cf, o, int) = strcmp(v, "defer") == 0;
		return 0;
	case T_PORT:
		if (parse_port(v, &port) == -1)
			return perr(p, "%s: bad port \"%s\" (want 1-65535)",
			    o->name, v);
		*FIELD(cf, o, int) = port;
		return 0;
	case T_BOOL:
		if (parse_bool(v, &b) == -1)
			return perr(p, "%s: bad boolean \"%s\" (want yes or "
			    "no)", o->name, v);
		*FIELD(cf, o, int) = b;
		return 0;
	case T_ADDRESS:
		if (*v != '\0' && inet_pton(AF_INET, v, &a4) != 1 &&
		    inet_pton(AF_INET6, v, &a6) != 1)
			return perr(p, "%s: bad IP address \"%s\"", o->name, v);
		set_str(FIELD(cf, o, char *), *v ? v : NULL);
		return 0;
	case T_OLISTEN:
		if (*v != '\0' && listen_addr_parse_err(v, 0, &la, reason,
		    sizeof(reason)) == -1)
			return perr(p, "%s: %s", o->name, reason);
		set_str(FIELD(cf, o, char *), *v ? la.text : NULL);
		return 0;
	}
	return perr(p, "%s: internal error: unknown option type", o->name);
}

/*
 * Split one line into name and value.  Returns 1 with *name and *value
 * pointing into line, 0 for a blank or comment line, -1 on error.
 */
static int
split_line(struct parser *p, char *line, char **name, char **value)
{
	char *s, *e, *v, *w;

	s = line;
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '\0' || *s == '#')
		return 0;
	for (e = s; isalnum((unsigned char)*e) || *e == '_' || *e == '-'; e++)
		;
	if (e == s)
		return perr(p, "syntax error: expected \"name = value\"");
	*name = s;
	v = e;
	while (*v == ' ' || *v == '\t')
		v++;
	if (*v != '=') {
		*e = '\0';
		return perr(p, "syntax error: expected \"=\" after \"%s\"", s);
	}
	*e = '\0';
	v++;
	while (*v == ' ' || *v == '\t')
		v++;

	if (*v == '"') {
		/* quoted: unescape in place, then only a comment may follow */
		for (w = v, s = v + 1; *s != '"'; s++) {
			if (*s == '\0')
				return perr(p, "%s: missing closing quote",
				    *name);
			if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
				s++;
			*w++ = *s;
		}
		*w = '\0';
		for (s++; *s == ' ' || *s == '\t'; s++)
			;
		if (*s != '\0' && *s != '#')
			return perr(p, "%s: junk after closing quote",
			    *name);
		*value = v;
		return 1;
	}

	/* unquoted: up to a '#' that starts the value or follows a blank */
	for (s = v; *s; s++)
		if (*s == '#' && (s == v || s[-1] == ' ' || s[-1] == '\t')) {
			*s = '\0';
			break;
		}
	e = v + strlen(v);
	while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	*value = v;
	return 1;
}

static const struct option *
find_option(const char *name, size_t *idx)
{
	size_t i;

	for (i = 0; i < NOPTIONS; i++)
		if (strcmp(options[i].name, name) == 0) {
			*idx = i;
			return &options[i];
		}
	return NULL;
}

static size_t
option_index(const char *name)
{
	size_t i = 0;

	find_option(name, &i);
	return i;
}

/* Checks that involve more than one option, after the whole file. */
static int
check_config(struct parser *p, struct config *cf)
{
	int lc = p->seen[option_index("tls_cert_file")];
	int lk = p->seen[option_index("tls_key_file")];
	int lmin = p->seen[option_index("min_backoff")];
	int lmax = p->seen[option_index("max_backoff")];

	if ((cf->tls_cert_file == NULL) != (cf->tls_key_file == NULL)) {
		p->lineno = lc > lk ? lc : lk;
		return perr(p, "tls_cert_file and tls_key_file must be set "
		    "together");
	}
	if (cf->smtpd_reserved_clients >= cf->smtpd_max_clients) {
		p->lineno = p->seen[option_index("smtpd_reserved_clients")];
		return perr(p, "smtpd_reserved_clients (%d) must be less than "
		    "smtpd_max_clients (%d)", cf->smtpd_reserved_clients,
		    cf->smtpd_max_clients);
	}
	if (cf->max_backoff < cf->min_backoff) {
		p->lineno = lmin > lmax ? lmin : lmax;
		return perr(p, "max_backoff (%llds) is less than min_backoff "
		    "(%llds)", cf->max_backoff, cf->min_backoff);
	}
	if (cf->bounce_relay_tls == POLICY_VERIFY &&
	    cf->bounce_relay_tls_name == NULL) {
		p->lineno = p->seen[option_index("bounce_relay_tls")];
		return perr(p, "bounce_relay_tls = verify needs "
		    "bounce_relay_tls_name (the name the certificate must "
		    "have)");
	}
	if (!p->seen[option_index("control_socket")]) {
		free(cf->control_socket);
		cf->control_socket = xasprintf("%s/control.sock",
		    cf->spool_dir);
	}
	return 0;
}

/*
 * Read one line (without its "\n" or "\r\n") into buf, byte by byte so
 * NUL bytes are seen.  1 line, 0 end of file, -1 error (reported).
 */
static int
read_line(struct parser *p, FILE *fp, char *buf, size_t size)
{
	size_t len = 0;
	int c, nul = 0;

	for (;;) {
		if ((c = getc(fp)) == EOF) {
			if (ferror(fp)) {
				p->lineno++;
				return perr(p, "read error: %s",
				    strerror(errno ? errno : EIO));
			}
			if (len == 0)
				return 0;
			break;
		}
		if (c == '\n')
			break;
		if (c == '\0')
			nul = 1;
		if (len == size - 1) {
			/* allow a final '\r' beyond the limit (CRLF) */
			if (c == '\r' && (c = getc(fp)) == '\n')
				break;
			p->lineno++;
			return perr(p, "line too long (more than %zu bytes)",
			    size - 1);
		}
		buf[len++] = (char)c;
	}
	buf[len] = '\0';
	p->lineno++;
	if (len > 0 && buf[len - 1] == '\r')
		buf[--len] = '\0';
	if (nul)
		return perr(p, "NUL byte in line");
	return 1;
}

static int
parse_file(struct parser *p, FILE *fp, struct config *cf)
{
	char line[CONFIG_LINE_MAX + 1], *name = NULL, *value = NULL;
	const struct option *o;
	size_t idx;
	int r;

	while ((r = read_line(p, fp, line, sizeof(line))) == 1) {
		if ((r = split_line(p, line, &name, &value)) <= 0) {
			if (r == -1)
				return -1;
			continue;
		}
		if ((o = find_option(name, &idx)) == NULL)
			return perr(p, "unknown option \"%s\"", name);
		if (p->seen[idx])
			return perr(p, "duplicate option \"%s\" (first set "
			    "on line %d)", name, p->seen[idx]);
		p->seen[idx] = p->lineno;
		if (set_option(p, cf, o, value) == -1)
			return -1;
	}
	if (r == -1)
		return -1;
	p->lineno = 0;
	return check_config(p, cf);
}

int
config_load(const char *path, struct config *cf, char *err, size_t errlen)
{
	struct parser p;
	struct stat st;
	FILE *fp;
	char *slash;
	int r;

	memset(cf, 0, sizeof(*cf));
	memset(&p, 0, sizeof(p));
	p.file = path;
	p.err = err;
	p.errlen = errlen;

	if ((fp = fopen(path, "re")) == NULL)
		return perr(&p, "%s", strerror(errno));
	if (fstat(fileno(fp), &st) == -1 || !S_ISREG(st.st_mode)) {
		fclose(fp);
		return perr(&p, "not a regular file");
	}
	if ((slash = strrchr(path, '/')) != NULL)
		p.dir = slash == path ? xstrdup("/") :
		    xstrndup(path, (size_t)(slash - path));

	config_defaults(cf);
	cf->file = xstrdup(path);
	r = parse_file(&p, fp, cf);
	fclose(fp);
	free(p.dir);
	if (r == -1)
		config_free(cf);
	return r;
}
