/*
 * test_config.c - unit tests for src/config.c: defaults, every value
 * type, every error with its exact "file:line: reason", listen address
 * parsing, comments, quoting and white space; config_ref()/unref().
 */

#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acl.h"
#include "config.h"
#include "util.h"
#include "t.h"

static char tmpdir[512];
static char cfpath[600];
static char err[1024];

/* Write text to the test config file (exactly, no newline added). */
static void
put(const char *text, size_t len)
{
	FILE *fp = fopen(cfpath, "w");

	if (fp == NULL) {
		perror(cfpath);
		exit(1);
	}
	fwrite(text, 1, len, fp);
	fclose(fp);
}

/* Load text; 0 ok (cf filled) or -1 (err set, cf zeroed). */
static int
load(const char *text, struct config *cf)
{
	put(text, strlen(text));
	err[0] = '\0';
	return config_load(cfpath, cf, err, sizeof(err));
}

/* Expect a failure with exactly "cfpath:line: reason". */
static void
check_err(int lineno, const char *text, const char *reason, int srcline)
{
	struct config cf;
	char want[1200];
	int r;

	r = load(text, &cf);
	if (lineno > 0)
		snprintf(want, sizeof(want), "%s:%d: %s", cfpath, lineno,
		    reason);
	else
		snprintf(want, sizeof(want), "%s: %s", cfpath, reason);
	if (r != -1 || strcmp(err, want) != 0) {
		fprintf(stderr, "  (from line %d) input: %s", srcline, text);
		if (r != -1)
			fprintf(stderr, "  loaded but should have failed\n");
	}
	CHECK(r == -1);
	CHECK_STR(err, want);
	/* a failed load leaves nothing to free */
	CHECK(cf.myhostname == NULL && cf.file == NULL && cf.nlisten == 0);
	config_free(&cf);
}
#define ERR(line, text, reason) check_err(line, text, reason, __LINE__)

static void
test_policy_levels(void)
{
	static const char *names[] = { "none", "may", "encrypt", "dane",
	    "dane-only", "verify", "secure" };
	enum policy_level l;
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		CHECK(policy_level_parse(names[i], &l) == 0);
		CHECK_STR(policy_level_name(l), names[i]);
	}
	CHECK(policy_level_parse("dane", &l) == 0 && l == POLICY_DANE);
	CHECK(policy_level_parse("dane-only", &l) == 0 &&
	    l == POLICY_DANE_ONLY);
	CHECK(policy_level_parse("none", &l) == 0 && l == POLICY_NONE);
	CHECK(policy_level_parse("DANE", &l) == -1);
	CHECK(policy_level_parse("danes", &l) == -1);
	CHECK(policy_level_parse("", &l) == -1);
	CHECK(policy_level_parse(NULL, &l) == -1);
	CHECK_STR(policy_level_name((enum policy_level)99), "unknown");
}

static void
test_listen_addr(void)
{
	struct listen_addr la;
	struct sockaddr_in *sin = (struct sockaddr_in *)&la.ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&la.ss;
	char buf[INET6_ADDRSTRLEN];

	CHECK(listen_addr_parse("127.0.0.1:25", 10025, &la) == 0);
	CHECK(sin->sin_family == AF_INET && ntohs(sin->sin_port) == 25);
	CHECK(la.len == sizeof(struct sockaddr_in));
	CHECK_STR(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf)),
	    "127.0.0.1");
	CHECK_STR(la.text, "127.0.0.1:25");

	CHECK(listen_addr_parse("127.0.10.5", 10025, &la) == 0);
	CHECK(ntohs(sin->sin_port) == 10025);
	CHECK_STR(la.text, "127.0.10.5:10025");

	CHECK(listen_addr_parse("[::1]:2525", 10025, &la) == 0);
	CHECK(sin6->sin6_family == AF_INET6 && ntohs(sin6->sin6_port) == 2525);
	CHECK(la.len == sizeof(struct sockaddr_in6));
	CHECK(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
	CHECK_STR(la.text, "[::1]:2525");

	CHECK(listen_addr_parse("[::1]", 25, &la) == 0);
	CHECK(ntohs(sin6->sin6_port) == 25);
	CHECK_STR(la.text, "[::1]:25");
	CHECK(listen_addr_parse("::1", 26, &la) == 0);	/* bare IPv6 */
	CHECK(sin6->sin6_family == AF_INET6 && ntohs(sin6->sin6_port) == 26);
	CHECK(listen_addr_parse("[2001:db8::1]:65535", 25, &la) == 0);
	CHECK(ntohs(sin6->sin6_port) == 65535);
	CHECK(listen_addr_parse("0.0.0.0:1", 25, &la) == 0);
	CHECK(ntohs(sin->sin_port) == 1);

	/* bad */
	CHECK(listen_addr_parse("127.0.0.1:0", 25, &la) == -1);
	CHECK(listen_addr_parse("127.0.0.1:65536", 25, &la) == -1);
	CHECK(listen_addr_parse("127.0.0.1:-1", 25, &la) == -1);
	CHECK(listen_addr_parse("127.0.0.1:+25", 25, &la) == -1);
	CHECK(listen_addr_parse("127.0.0.1:", 25, &la) == -1);
	CHECK(listen_addr_parse("127.0.0.1:25x", 25, &la) == -1);
	CHECK(listen_addr_parse("127.0.0.1:99999999999999999999", 25, &la)
	    == -1);
	CHECK(listen_addr_parse(":25", 25, &la) == -1);
	CHECK(listen_addr_parse("", 25, &la) == -1);
	CHECK(listen_addr_parse(NULL, 25, &la) == -1);
	CHECK(listen_addr_parse("localhost:25", 25, &la) == -1);
	CHECK(listen_addr_parse("127.0.0.256:25", 25, &la) == -1);
	CHECK(listen_addr_parse("[::1", 25, &la) == -1);
	CHECK(listen_addr_parse("[::1]x", 25, &la) == -1);
	CHECK(listen_addr_parse("[::1]:", 25, &la) == -1);
	CHECK(listen_addr_parse("[127.0.0.1]:25", 25, &la) == -1);
	CHECK(listen_addr_parse("[]:25", 25, &la) == -1);
	CHECK(listen_addr_parse("::1:25x", 25, &la) == -1);
	CHECK(listen_addr_parse("127.0.0.1", 0, &la) == -1);	/* no port */
}

static void
test_defaults(void)
{
	struct config cf;
	char host[256];

	config_defaults(&cf);
	CHECK(cf.nlisten == 1);
	CHECK_STR(cf.listen[0].text, "127.0.0.1:10025");
	CHECK(cf.listen[0].ss.ss_family == AF_INET);
	gethostname(host, sizeof(host));
	host[sizeof(host) - 1] = '\0';
	CHECK_STR(cf.myhostname, host);
	CHECK_STR(cf.spool_dir, LOCALSTATEDIR "/spool/danerelay");
	CHECK_STR(cf.state_dir, LOCALSTATEDIR "/lib/danerelay");
	CHECK_STR(cf.pid_file, RUNSTATEDIR "/danerelay/danerelayd.pid");
	CHECK_STR(cf.control_socket, LOCALSTATEDIR
	    "/spool/danerelay/control.sock");
	CHECK_STR(cf.user, "danerelay");
	CHECK_STR(cf.allow_clients_text, "127.0.0.0/8 ::1");
	CHECK(cf.allow_clients != NULL);
	CHECK(cf.auth_file == NULL && cf.tls_cert_file == NULL &&
	    cf.tls_key_file == NULL);
	CHECK(cf.max_message_size == 50ULL * 1024 * 1024);
	CHECK(cf.max_recipients == 1000);
	CHECK(cf.smtpd_max_errors == 10);
	CHECK(cf.smtpd_timeout == 300);
	CHECK(cf.smtpd_session_timeout == 3600);
	CHECK(cf.smtpd_max_clients == 1000);
	CHECK(cf.default_policy == POLICY_DANE);
	CHECK(cf.policy_file == NULL && cf.dns_config == NULL);
	CHECK_STR(cf.trust_anchor_file, "/usr/share/dns/root.key");
	CHECK(cf.smtp_port == 25);
	CHECK(cf.smtp_connect_timeout == 30);
	CHECK(cf.smtp_timeout == 300);
	CHECK(cf.smtp_bind_address == NULL);
	CHECK(cf.mta_sts == 1);
	CHECK(cf.https_port == 443);
	CHECK(cf.ca_file == NULL);
	CHECK(cf.queue_lifetime == 5 * 86400);
	CHECK(cf.queue_minfree == 100ULL << 20);
	CHECK(cf.delay_warning_time == 0);
	CHECK(cf.min_backoff == 300);
	CHECK(cf.max_backoff == 3600);
	CHECK(cf.max_connections == 100);
	CHECK(cf.max_connections_per_destination == 10);
	CHECK(cf.tlsrpt == 1);
	CHECK(cf.tlsrpt_org_name == NULL && cf.tlsrpt_contact == NULL &&
	    cf.tlsrpt_from == NULL && cf.metrics_listen == NULL);
	CHECK(cf.file == NULL);
	config_free(&cf);
	CHECK(cf.myhostname == NULL && cf.nlisten == 0);
	config_free(&cf);	/* twice is harmless */
	config_free(NULL);

	/* an empty file gives the defaults */
	CHECK(load("", &cf) == 0);
	CHECK_STR(cf.file, cfpath);
	CHECK(cf.nlisten == 1 && cf.default_policy == POLICY_DANE);
	CHECK_STR(cf.spool_dir, LOCALSTATEDIR "/spool/danerelay");
	config_free(&cf);
}

static void
test_all_values(void)
{
	struct config cf;
	char text[8192], path[700], cert[700], key[700];
	struct sockaddr_in6 *sin6;
	FILE *fp;

	/* files that the file options must find */
	snprintf(cert, sizeof(cert), "%s/cert.pem", tmpdir);
	snprintf(key, sizeof(key), "%s/key.pem", tmpdir);
	if ((fp = fopen(cert, "w")) != NULL)
		fclose(fp);
	if ((fp = fopen(key, "w")) != NULL)
		fclose(fp);
	snprintf(path, sizeof(path), "%s/policy", tmpdir);
	if ((fp = fopen(path, "w")) != NULL)
		fclose(fp);

	snprintf(text, sizeof(text),
	    "listen = 127.0.10.1:2525, [::1]:2526 127.0.10.2\n"
	    "myhostname = relay.example.org\n"
	    "spool_dir = /srv/spool\n"
	    "state_dir = /srv/state\n"
	    "pid_file = /srv/run/d.pid\n"
	    "user = mailrelay\n"
	    "allow_clients = 127.0.0.0/8, 192.0.2.0/24\n"
	    "auth_file = %s\n"
	    "tls_cert_file = %s\n"
	    "tls_key_file = key.pem\n"
	    "max_message_size = 10M\n"
	    "max_recipients = 50\n"
	    "smtpd_max_errors = 3\n"
	    "smtpd_timeout = 2m\n"
	    "smtpd_session_timeout = 2h\n"
	    "smtpd_max_clients = 7\n"
	    "default_policy = dane-only\n"
	    "policy_file = policy\n"
	    "dns_config = %s\n"
	    "trust_anchor_file = %s\n"
	    "smtp_port = 2525\n"
	    "smtp_connect_timeout = 10\n"
	    "smtp_timeout = 60s\n"
	    "smtp_bind_address = 127.0.10.9\n"
	    "mta_sts = no\n"
	    "https_port = 8443\n"
	    "ca_file = %s\n"
	    "queue_lifetime = 2w\n"
	    "delay_warning_time = 4h\n"
	    "min_backoff = 1m\n"
	    "max_backoff = 1d\n"
	    "max_connections = 20\n"
	    "max_connections_per_destination = 2\n"
	    "tlsrpt = off\n"
	    "tlsrpt_org_name = \"Example Org # 1\"\n"
	    "tlsrpt_contact = postmaster@example.org\n"
	    "tlsrpt_from = noreply@example.org\n"
	    "metrics_listen = [::1]:9125\n",
	    path, cert, cert, key, cert);
	if (load(text, &cf) != 0) {
		fprintf(stderr, "load failed: %s\n", err);
		CHECK(0);
		return;
	}
	CHECK(cf.nlisten == 3);
	CHECK_STR(cf.listen[0].text, "127.0.10.1:2525");
	CHECK_STR(cf.listen[1].text, "[::1]:2526");
	CHECK_STR(cf.listen[2].text, "127.0.10.2:10025");
	sin6 = (struct sockaddr_in6 *)&cf.listen[1].ss;
	CHECK(sin6->sin6_family == AF_INET6 && ntohs(sin6->sin6_port) == 2526);
	CHECK_STR(cf.myhostname, "relay.example.org");
	CHECK_STR(cf.spool_dir, "/srv/spool");
	CHECK_STR(cf.state_dir, "/srv/state");
	CHECK_STR(cf.pid_file, "/srv/run/d.pid");
	CHECK_STR(cf.control_socket, "/srv/spool/control.sock");
	CHECK_STR(cf.user, "mailrelay");
	CHECK_STR(cf.allow_clients_text, "127.0.0.0/8, 192.0.2.0/24");
	CHECK(cf.allow_clients != NULL);
	if (cf.allow_clients != NULL) {
		struct sockaddr_in sin;

		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		inet_pton(AF_INET, "192.0.2.77", &sin.sin_addr);
		CHECK(acl_match(cf.allow_clients,
		    (struct sockaddr *)&sin) == 1);
		inet_pton(AF_INET, "198.51.100.1", &sin.sin_addr);
		CHECK(acl_match(cf.allow_clients,
		    (struct sockaddr *)&sin) == 0);
	}
	CHECK_STR(cf.auth_file, path);
	CHECK_STR(cf.tls_cert_file, cert);
	CHECK_STR(cf.tls_key_file, key);	/* relative: config's dir */
	CHECK(cf.max_message_size == 10ULL << 20);
	CHECK(cf.max_recipients == 50);
	CHECK(cf.smtpd_max_errors == 3);
	CHECK(cf.smtpd_timeout == 120);
	CHECK(cf.smtpd_session_timeout == 7200);
	CHECK(cf.smtpd_max_clients == 7);
	CHECK(cf.default_policy == POLICY_DANE_ONLY);
	CHECK_STR(cf.policy_file, path);
	CHECK_STR(cf.dns_config, cert);
	CHECK_STR(cf.trust_anchor_file, key);
	CHECK(cf.smtp_port == 2525);
	CHECK(cf.smtp_connect_timeout == 10);
	CHECK(cf.smtp_timeout == 60);
	CHECK_STR(cf.smtp_bind_address, "127.0.10.9");
	CHECK(cf.mta_sts == 0);
	CHECK(cf.https_port == 8443);
	CHECK_STR(cf.ca_file, cert);
	CHECK(cf.queue_lifetime == 14 * 86400);
	CHECK(cf.delay_warning_time == 4 * 3600);
	CHECK(cf.min_backoff == 60);
	CHECK(cf.max_backoff == 86400);
	CHECK(cf.max_connections == 20);
	CHECK(cf.max_connections_per_destination == 2);
	CHECK(cf.tlsrpt == 0);
	CHECK_STR(cf.tlsrpt_org_name, "Example Org # 1");
	CHECK_STR(cf.tlsrpt_contact, "postmaster@example.org");
	CHECK_STR(cf.tlsrpt_from, "noreply@example.org");
	CHECK_STR(cf.metrics_listen, "[::1]:9125");
	config_free(&cf);
	CHECK(cf.spool_dir == NULL && cf.tlsrpt_org_name == NULL);

	/* other spellings of each type */
	CHECK(load("mta_sts = YES\ntlsrpt = 0\nmax_message_size = 1048576\n"
	    "queue_lifetime = 300\ndelay_warning_time = 0\n"
	    "smtp_port = 65535\nhttps_port = 1\ndefault_policy = secure\n"
	    "max_connections = 1000000\n", &cf) == 0);
	CHECK(cf.mta_sts == 1 && cf.tlsrpt == 0);
	CHECK(cf.max_message_size == 1048576);
	CHECK(cf.queue_lifetime == 300 && cf.delay_warning_time == 0);
	CHECK(cf.smtp_port == 65535 && cf.https_port == 1);
	CHECK(cf.default_policy == POLICY_SECURE);
	CHECK(cf.max_connections == 1000000);
	config_free(&cf);
	CHECK(load("queue_minfree = 0\n", &cf) == 0);
	CHECK(cf.queue_minfree == 0);		/* 0: no check */
	config_free(&cf);
	CHECK(load("queue_minfree = 1G\n", &cf) == 0);
	CHECK(cf.queue_minfree == 1ULL << 30);
	config_free(&cf);

	/* relative directories; explicit control_socket wins */
	CHECK(load("spool_dir = q\nstate_dir = ./st\npid_file = run/x.pid\n"
	    "control_socket = /tmp/c.sock\n", &cf) == 0);
	snprintf(path, sizeof(path), "%s/q", tmpdir);
	CHECK_STR(cf.spool_dir, path);
	snprintf(path, sizeof(path), "%s/./st", tmpdir);
	CHECK_STR(cf.state_dir, path);
	snprintf(path, sizeof(path), "%s/run/x.pid", tmpdir);
	CHECK_STR(cf.pid_file, path);
	CHECK_STR(cf.control_socket, "/tmp/c.sock");
	config_free(&cf);

	/* empty values unset optional settings */
	CHECK(load("trust_anchor_file =\nsmtp_bind_address = \n"
	    "tlsrpt_org_name = \"\"\nmetrics_listen =\n", &cf) == 0);
	CHECK(cf.trust_anchor_file == NULL && cf.smtp_bind_address == NULL &&
	    cf.tlsrpt_org_name == NULL && cf.metrics_listen == NULL);
	config_free(&cf);
}

static void
test_syntax(void)
{
	struct config cf;
	static const char crlf[] = "# dos\r\nsmtp_port = 26\r\n\r\n"
	    "myhostname = a.example\r\n";
	static const char nonl[] = "smtp_port = 27";

	/* a '#' not after a blank belongs to the value */
	ERR(2, "# c\nhttps_port=444#x\n",
	    "https_port: bad port \"444#x\" (want 1-65535)");

	/* comments, blank lines, white space everywhere */
	CHECK(load("# a comment\n"
	    "\n"
	    "   \t\n"
	    "   # indented comment\n"
	    "\tsmtp_port\t=\t2525\t# trailing comment\n"
	    "https_port=444 #x\n"
	    "myhostname =   mx.example.org   \n"
	    "tlsrpt_contact = mailto:a#b@example.org # hash inside kept\n"
	    "tlsrpt_org_name = \"  spaced # and \\\"quoted\\\" \\\\ \"  # c\n"
	    "tlsrpt_from = \"x@example.org\"\n", &cf) == 0);
	CHECK(cf.smtp_port == 2525);
	CHECK(cf.https_port == 444);
	CHECK_STR(cf.myhostname, "mx.example.org");
	CHECK_STR(cf.tlsrpt_contact, "mailto:a#b@example.org");
	CHECK_STR(cf.tlsrpt_org_name, "  spaced # and \"quoted\" \\ ");
	CHECK_STR(cf.tlsrpt_from, "x@example.org");
	config_free(&cf);

	/* CRLF line ends; no newline at the end of the file */
	put(crlf, sizeof(crlf) - 1);
	CHECK(config_load(cfpath, &cf, err, sizeof(err)) == 0);
	CHECK(cf.smtp_port == 26);
	CHECK_STR(cf.myhostname, "a.example");
	config_free(&cf);
	put(nonl, sizeof(nonl) - 1);
	CHECK(config_load(cfpath, &cf, err, sizeof(err)) == 0);
	CHECK(cf.smtp_port == 27);
	config_free(&cf);

	/* a fully qualified host name may end in a dot; labels of 63 */
	CHECK(load("myhostname = mx.example.org.\n", &cf) == 0);
	CHECK_STR(cf.myhostname, "mx.example.org.");
	config_free(&cf);
	CHECK(load("myhostname = x."
	    "a23456789012345678901234567890123456789012345678901234567890123"
	    "\n", &cf) == 0);
	config_free(&cf);

	/* the longest line allowed, exactly 4096 bytes */
	{
		char line[4200];

		memset(line, ' ', sizeof(line));
		memcpy(line, "smtp_port = 28", 14);
		line[4096] = '\n';
		line[4097] = '\0';
		CHECK(load(line, &cf) == 0);
		CHECK(cf.smtp_port == 28);
		config_free(&cf);
	}
}

static void
test_errors(void)
{
	char text[6000], want[800];
	int i;

	/* the file itself */
	{
		struct config cf;
		char missing[700];

		snprintf(missing, sizeof(missing), "%s/nonexistent.conf",
		    tmpdir);
		CHECK(config_load(missing, &cf, err, sizeof(err)) == -1);
		snprintf(want, sizeof(want), "%s: No such file or directory",
		    missing);
		CHECK_STR(err, want);
		CHECK(config_load(tmpdir, &cf, err, sizeof(err)) == -1);
		snprintf(want, sizeof(want), "%s: not a regular file", tmpdir);
		CHECK_STR(err, want);
		if (geteuid() != 0) {
			put("", 0);
			chmod(cfpath, 0);
			CHECK(config_load(cfpath, &cf, err, sizeof(err)) == -1);
			snprintf(want, sizeof(want), "%s: Permission denied",
			    cfpath);
			CHECK_STR(err, want);
			chmod(cfpath, 0600);
		}
	}

	/* syntax */
	ERR(3, "# x\n\nlisen = 127.0.0.1:25\n", "unknown option \"lisen\"");
	ERR(1, "Listen = 127.0.0.1:25\n", "unknown option \"Listen\"");
	ERR(2, "smtp_port = 25\nsmtp_port\n",
	    "syntax error: expected \"=\" after \"smtp_port\"");
	ERR(1, "smtp_port 25\n",
	    "syntax error: expected \"=\" after \"smtp_port\"");
	ERR(1, "= 25\n", "syntax error: expected \"name = value\"");
	ERR(1, "smtp port = 25\n",
	    "syntax error: expected \"=\" after \"smtp\"");
	ERR(1, "\"smtp_port\" = 25\n",
	    "syntax error: expected \"name = value\"");
	ERR(4, "smtp_port = 25\n\n# c\nsmtp_port = 26\n",
	    "duplicate option \"smtp_port\" (first set on line 1)");
	ERR(1, "tlsrpt_org_name = \"abc\n",
	    "tlsrpt_org_name: missing closing quote");
	ERR(1, "tlsrpt_org_name = \"abc\\\"\n",
	    "tlsrpt_org_name: missing closing quote");
	ERR(1, "tlsrpt_org_name = \"abc\" def\n",
	    "tlsrpt_org_name: junk after closing quote");
	ERR(1, "tlsrpt_org_name = \"a\tb\"\n",
	    "tlsrpt_org_name: control character in value");
	memcpy(text, "smtp_port = 25 \0x\n", 18);
	put(text, 18);
	{
		struct config cf;

		CHECK(config_load(cfpath, &cf, err, sizeof(err)) == -1);
		snprintf(want, sizeof(want), "%s:1: NUL byte in line", cfpath);
		CHECK_STR(err, want);
	}
	memset(text, ' ', sizeof(text));
	memcpy(text, "# ok\nsmtp_port = 25", 19);
	text[5 + 4097] = '\n';
	text[5 + 4098] = '\0';
	ERR(2, text, "line too long (more than 4096 bytes)");

	/* listen */
	ERR(1, "listen = 127.0.0.1:0\n",
	    "listen: bad port \"0\" in \"127.0.0.1:0\" (want 1-65535)");
	ERR(1, "listen = 127.0.0.1:25, [::1]:65536\n",
	    "listen: bad port \"65536\" in \"[::1]:65536\" (want 1-65535)");
	ERR(1, "listen = localhost:25\n",
	    "listen: bad address \"localhost:25\" (want a numeric IPv4 or "
	    "[IPv6] address)");
	ERR(1, "listen = [::1\n", "listen: missing ']' in \"[::1\"");
	ERR(1, "listen = [::1]25\n", "listen: junk after ']' in \"[::1]25\"");
	ERR(1, "listen =\n", "listen: no address given");
	ERR(1, "listen = , ,\n", "listen: no address given");
	text[0] = '\0';
	strcat(text, "listen =");
	for (i = 0; i < CONFIG_MAX_LISTEN + 1; i++)
		snprintf(text + strlen(text), 40, " 127.0.10.%d:25", i + 1);
	strcat(text, "\n");
	snprintf(want, sizeof(want), "listen: more than %d addresses",
	    CONFIG_MAX_LISTEN);
	ERR(1, text, want);
	ERR(1, "metrics_listen = 127.0.0.1\n",
	    "metrics_listen: no port in \"127.0.0.1\"");

	/* numbers, sizes, durations, booleans, ports, levels */
	ERR(1, "smtp_port = 0\n", "smtp_port: bad port \"0\" (want 1-65535)");
	ERR(1, "https_port = 65536\n",
	    "https_port: bad port \"65536\" (want 1-65535)");
	ERR(1, "smtp_port = 25x\n", "smtp_port: bad port \"25x\" (want "
	    "1-65535)");
	ERR(1, "smtp_port =\n", "smtp_port: bad port \"\" (want 1-65535)");
	ERR(1, "smtp_port = -25\n", "smtp_port: bad port \"-25\" (want "
	    "1-65535)");
	ERR(2, "\nmax_message_size = 10X\n",
	    "max_message_size: bad size \"10X\" (want e.g. 10485760, 10240k, "
	    "50M, 1G)");
	ERR(1, "max_message_size = 0\n",
	    "max_message_size: bad size \"0\" (want e.g. 10485760, 10240k, "
	    "50M, 1G)");
	ERR(1, "max_message_size = -1\n",
	    "max_message_size: bad size \"-1\" (want e.g. 10485760, 10240k, "
	    "50M, 1G)");
	ERR(1, "queue_minfree = -1\n",
	    "queue_minfree: bad size \"-1\" (want e.g. 0, 104857600, 100M, "
	    "1G)");
	ERR(1, "queue_lifetime = 5 days\n",
	    "queue_lifetime: bad duration \"5 days\" (want e.g. 300, 300s, "
	    "5m, 1h, 5d, 2w)");
	ERR(1, "smtp_timeout = 1h#\n",
	    "smtp_timeout: bad duration \"1h#\" (want e.g. 300, 300s, 5m, "
	    "1h, 5d, 2w)");
	ERR(1, "smtpd_timeout = 0\n", "smtpd_timeout: must be greater than 0");
	ERR(1, "delay_warning_time = -1\n",
	    "delay_warning_time: bad duration \"-1\" (want e.g. 300, 300s, "
	    "5m, 1h, 5d, 2w)");
	ERR(1, "mta_sts = maybe\n",
	    "mta_sts: bad boolean \"maybe\" (want yes or no)");
	ERR(1, "tlsrpt =\n", "tlsrpt: bad boolean \"\" (want yes or no)");
	ERR(1, "max_recipients = 0\n",
	    "max_recipients: bad number \"0\" (want 1-1000000)");
	ERR(1, "max_connections = 1000001\n",
	    "max_connections: bad number \"1000001\" (want 1-1000000)");
	ERR(1, "smtpd_max_clients = 10k\n",
	    "smtpd_max_clients: bad number \"10k\" (want 1-1000000)");
	ERR(1, "smtpd_max_errors = -3\n",
	    "smtpd_max_errors: bad number \"-3\" (want 1-1000000)");
	ERR(1, "default_policy = strict\n",
	    "default_policy: bad policy level \"strict\" (want dane, "
	    "dane-only, verify, secure, encrypt or may)");
	ERR(1, "default_policy = none\n",
	    "default_policy: \"none\" (cleartext) is not allowed as the "
	    "default; write it for single domains in the policy_file");

	/* strings, names, paths */
	ERR(1, "myhostname = bad_host.example\n",
	    "myhostname: bad host name \"bad_host.example\"");
	ERR(1, "myhostname = -a.example\n",
	    "myhostname: bad host name \"-a.example\"");
	ERR(1, "myhostname = a..example\n",
	    "myhostname: bad host name \"a..example\"");
	ERR(1, "myhostname =\n", "myhostname: bad host name \"\"");
	ERR(1, "myhostname = a-.example\n",
	    "myhostname: bad host name \"a-.example\"");
	ERR(1, "myhostname = x."
	    "a234567890123456789012345678901234567890123456789012345678901234"
	    "\n", "myhostname: bad host name \"x."
	    "a234567890123456789012345678901234567890123456789012345678901234"
	    "\"");
	ERR(1, "user = root:x\n", "user: bad user name \"root:x\"");
	ERR(1, "user =\n", "user: bad user name \"\"");
	ERR(1, "spool_dir =\n", "spool_dir: missing value");
	ERR(1, "pid_file = \"\"\n", "pid_file: missing value");
	ERR(1, "smtp_bind_address = example.org\n",
	    "smtp_bind_address: bad IP address \"example.org\"");
	snprintf(text, sizeof(text), "tls_cert_file = nope.pem\n");
	snprintf(want, sizeof(want), "tls_cert_file: \"%s/nope.pem\": No such "
	    "file or directory", tmpdir);
	ERR(1, text, want);
	snprintf(text, sizeof(text), "policy_file = %s\n", tmpdir);
	snprintf(want, sizeof(want), "policy_file: \"%s\": not a regular file",
	    tmpdir);
	ERR(1, text, want);

	/* checks across options: line of the later one */
	snprintf(text, sizeof(text), "tls_cert_file = cert.pem\n\n");
	ERR(1, text, "tls_cert_file and tls_key_file must be set together");
	ERR(3, "max_backoff = 1m\n# x\nmin_backoff = 2m\n",
	    "max_backoff (60s) is less than min_backoff (120s)");
	ERR(1, "max_backoff = 1m\n",
	    "max_backoff (60s) is less than min_backoff (300s)");

	/* allow_clients goes through acl_parse */
	{
		struct config cf;

		CHECK(load("allow_clients = 10.0.0.0/33\n", &cf) == -1);
		snprintf(want, sizeof(want), "%s:1: allow_clients: ", cfpath);
		CHECK(strncmp(err, want, strlen(want)) == 0);
		config_free(&cf);
	}
}

/*
 * config_ref()/config_unref() (issue #13): a config on the heap lives
 * until its last holder lets go; a local one is never freed by them.
 * Under ASan/LSan a premature free or a leak fails the run.
 */
static void
test_refs(void)
{
	struct config *cf = xcalloc(1, sizeof(*cf));
	const struct config *held;
	struct config local;

	CHECK(load("myhostname = mx.refs.example\n", cf) == 0);
	CHECK(cf->refs == 1);
	held = config_ref(cf);			/* a route starts */
	CHECK(held == cf && cf->refs == 2);
	config_unref(cf);			/* SIGHUP: the daemon lets go */
	CHECK(held->refs == 1);
	CHECK_STR(held->myhostname, "mx.refs.example");	/* still there */
	CHECK(held->mta_sts == 1 && held->smtp_port == 25);
	config_unref(held);			/* the route ends: freed */

	CHECK(config_ref(NULL) == NULL);
	config_unref(NULL);

	config_defaults(&local);
	CHECK(local.refs == 1);
	config_unref(config_ref(&local));	/* lent and given back */
	CHECK(local.refs == 1 && local.myhostname != NULL);
	config_free(&local);
}

/* tls_memory, tls_memory_max_age (issue #23): defaults, values, errors. */
static void
test_tls_memory(void)
{
	struct config cf;

	CHECK(load("", &cf) == 0);
	CHECK(cf.tls_memory == TLS_MEMORY_ENCRYPT);
	CHECK(cf.tls_memory_max_age == 30 * 86400);
	config_free(&cf);
	CHECK(load("tls_memory = verify\ntls_memory_max_age = 2w\n",
	    &cf) == 0);
	CHECK(cf.tls_memory == TLS_MEMORY_VERIFY);
	CHECK(cf.tls_memory_max_age == 14 * 86400);
	config_free(&cf);
	CHECK(load("tls_memory = no\n", &cf) == 0);
	CHECK(cf.tls_memory == TLS_MEMORY_NO);
	config_free(&cf);
	CHECK(load("tls_memory = encrypt\n", &cf) == 0);
	CHECK(cf.tls_memory == TLS_MEMORY_ENCRYPT);
	config_free(&cf);
	ERR(1, "tls_memory = yes\n",
	    "tls_memory: want encrypt, verify or no, not \"yes\"");
	ERR(1, "tls_memory = Encrypt\n",
	    "tls_memory: want encrypt, verify or no, not \"Encrypt\"");
	ERR(1, "tls_memory_max_age = 0\n",
	    "tls_memory_max_age: must be greater than 0");
}

/* state_backend (issue #19): sqlite (NULL) or a postgresql:// URI. */
static void
test_state_backend(void)
{
	struct config cf;

	CHECK(load("", &cf) == 0);
	CHECK(cf.state_backend == NULL);
	config_free(&cf);
	CHECK(load("state_backend = sqlite\n", &cf) == 0);
	CHECK(cf.state_backend == NULL);
	config_free(&cf);
	CHECK(load("state_backend = postgresql://u@db.example/dr\n",
	    &cf) == 0);
	CHECK(cf.state_backend != NULL &&
	    strcmp(cf.state_backend, "postgresql://u@db.example/dr") == 0);
	config_free(&cf);
	CHECK(load("state_backend = postgres:///dr?host=/run/pg\n", &cf) == 0);
	CHECK(cf.state_backend != NULL);
	config_free(&cf);
	ERR(1, "state_backend = mysql://db/dr\n",
	    "state_backend: \"sqlite\" or a postgresql:// URI expected");
	ERR(1, "state_backend = SQLite\n",
	    "state_backend: \"sqlite\" or a postgresql:// URI expected");
}

int
main(void)
{
	const char *base = getenv("DR_TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/test_config.XXXXXX",
	    base != NULL && *base ? base : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		perror(tmpdir);
		return 1;
	}
	snprintf(cfpath, sizeof(cfpath), "%s/danerelay.conf", tmpdir);

	test_policy_levels();
	test_listen_addr();
	test_defaults();
	test_all_values();
	test_syntax();
	test_errors();
	test_refs();
	test_tls_memory();
	test_state_backend();

	{
		char cmd[700];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", tmpdir);
	}
	return t_done();
}
