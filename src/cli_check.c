/*
 * cli_check.c - `danerelay check [--json] [--timeout SECS]
 * [--dkim-max-age DURATION] [--no-relay] [DOMAIN...]` (issue #18): the
 * operator's own sending setup audited by check.c, printed one line per
 * check,
 *
 *	STATUS  DOMAIN  CHECK  reason
 *	      fix: the record to publish or the setting to change
 *
 * or as JSON ({"checks": [{"status", "domain", "check", "reason",
 * "fix"}...], "worst": STATUS}) with the same content.  Default
 * domains: those of the DKIM key table and myhostname's domain.
 * Foreign strings (DNS data in the reasons) go through cli_safe().
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "check.h"
#include "cli.h"
#include "cli_check.h"
#include "config.h"
#include "dkim.h"
#include "log.h"
#include "util.h"

#define CHECK_EX_WARN	1
#define CHECK_EX_FAIL	2
#define MAX_DOMAINS	256

static void
check_usage(FILE *fp)
{
	fprintf(fp, "usage: danerelay check [--json] [--timeout SECONDS] "
	    "[--dkim-max-age DURATION] [--no-relay] [DOMAIN...]\n");
}

/* Add dom (lower case) unless it is there. */
static void
add_domain(char **list, size_t *n, const char *dom)
{
	char buf[256];
	size_t i, len;

	dr_strlcpy(buf, dom, sizeof(buf));
	str_lower(buf);
	len = strlen(buf);
	if (len > 0 && buf[len - 1] == '.')
		buf[len - 1] = '\0';
	if (buf[0] == '\0' || *n == MAX_DOMAINS)
		return;
	for (i = 0; i < *n; i++)
		if (strcmp(list[i], buf) == 0)
			return;
	list[(*n)++] = xstrdup(buf);
}

static void
print_text(const struct check_report *rep)
{
	const struct check_item *it;
	char *dom, *reason, *fx;
	size_t i;

	for (i = 0; (it = check_report_item(rep, i)) != NULL; i++) {
		dom = cli_safe(it->domain);
		reason = cli_safe(it->reason);
		printf("%-4s  %s  %s  %s\n", check_status_name(it->status), dom,
		    it->check, reason);
		if (it->fix != NULL) {
			fx = cli_safe(it->fix);
			printf("      fix: %s\n", fx);
			free(fx);
		}
		free(dom);
		free(reason);
	}
}

static int
print_json(const struct check_report *rep)
{
	const struct check_item *it;
	json_t *root, *arr, *o;
	char *s, *dom, *reason, *fx;
	size_t i;

	/* the strings as the text output prints them (cli_safe(): valid
	 * UTF-8, which JSON strings must be, whatever DNS data held) */
	root = json_object();
	arr = json_array();
	for (i = 0; (it = check_report_item(rep, i)) != NULL; i++) {
		dom = cli_safe(it->domain);
		reason = cli_safe(it->reason);
		fx = it->fix ? cli_safe(it->fix) : NULL;
		o = json_object();
		json_object_set_new(o, "status", json_string(
		    check_status_name(it->status)));
		json_object_set_new(o, "domain", json_string(dom));
		json_object_set_new(o, "check", json_string(it->check));
		json_object_set_new(o, "reason", json_string(reason));
		json_object_set_new(o, "fix", fx ? json_string(fx) :
		    json_null());
		json_array_append_new(arr, o);
		free(dom);
		free(reason);
		free(fx);
	}
	json_object_set_new(root, "checks", arr);
	json_object_set_new(root, "worst", json_string(
	    check_status_name(check_report_worst(rep))));
	s = json_dumps(root, JSON_INDENT(2) | JSON_ENSURE_ASCII);
	json_decref(root);
	if (s == NULL) {
		cli_errx("cannot make the JSON output");
		return -1;
	}
	printf("%s\n", s);
	free(s);
	return 0;
}

int
check_cli(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ "dkim-max-age", required_argument, NULL, 'a' },
		{ "no-relay", no_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct check_opts o;
	struct check_report *rep;
	struct dkim_key_info k;
	char *doms[MAX_DOMAINS], err[1024];
	const char *dot;
	size_t nd = 0, i;
	long long secs;
	int ch, json = 0, rc = CHECK_EX_FAIL, max_age_set = 0;
	long long max_age = 0;

	memset(&o, 0, sizeof(o));
	o.timeout = 10;
	o.relay = 1;
	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			json = 1;
			break;
		case 't':
			if (parse_duration(optarg, &secs) == -1 || secs < 1 ||
			    secs > 600) {
				cli_errx("--timeout %s: 1s to 600s", optarg);
				return EX_USAGE;
			}
			o.timeout = (int)secs;
			break;
		case 'a':
			if (parse_duration(optarg, &max_age) == -1 ||
			    max_age < 1) {
				cli_errx("--dkim-max-age %s: not a duration "
				    "(e.g. 180d)", optarg);
				return EX_USAGE;
			}
			max_age_set = 1;
			break;
		case 'R':
			o.relay = 0;
			break;
		case 'h':
			check_usage(stdout);
			return EX_OK;
		default:
			check_usage(stderr);
			return EX_USAGE;
		}
	}
	if (cli_config(c) == -1)
		return CHECK_EX_FAIL;
	/* the sessions' and fetches' info lines would repeat the report */
	log_set_quiet(1);
	o.cf = &c->cf;
	o.dkim_max_age = max_age_set ? max_age : c->cf.check_dkim_max_age;
	if (c->cf.dkim_key_table != NULL &&
	    (o.dkim = dkim_table_load(c->cf.dkim_key_table, err,
	    sizeof(err))) == NULL) {
		cli_errx("%s (the key files are read: run danerelay check as "
		    "root or as the daemon's user)", err);
		return CHECK_EX_FAIL;
	}
	for (i = (size_t)optind; i < (size_t)argc; i++)
		add_domain(doms, &nd, argv[i]);
	if (nd == 0) {
		for (i = 0; o.dkim != NULL &&
		    dkim_table_key(o.dkim, i, &k) == 0; i++)
			add_domain(doms, &nd, k.domain);
		/* myhostname's domain: without its first label when it has
		 * three or more ("mail.example.org" -> "example.org") */
		dot = strchr(c->cf.myhostname, '.');
		if (dot != NULL && strchr(dot + 1, '.') != NULL)
			add_domain(doms, &nd, dot + 1);
		else
			add_domain(doms, &nd, c->cf.myhostname);
	}
	rep = check_run(&o, (const char *const *)doms, nd, err, sizeof(err));
	if (rep == NULL)
		cli_errx("%s", err);
	else {
		if (json ? print_json(rep) == 0 : (print_text(rep), 1))
			switch (check_report_worst(rep)) {
			case CHECK_OK:
			case CHECK_INFO:
				rc = EX_OK;
				break;
			case CHECK_WARN:
				rc = CHECK_EX_WARN;
				break;
			default:
				rc = CHECK_EX_FAIL;
			}
		check_report_free(rep);
	}
	for (i = 0; i < nd; i++)
		free(doms[i]);
	dkim_table_unref(o.dkim);
	fflush(stdout);
	return rc;
}
