/*
 * cli_dkim.c - `danerelay dkim keygen|dns|check|rotate` (issue #16): the
 * operator's side of DKIM signing (dkim.c).
 *
 *   keygen DOMAIN SELECTOR [--algorithm rsa-2048|ed25519]
 *	a new key in <state_dir>/dkim/DOMAIN.SELECTOR.pem (0600, owned by
 *	the daemon's user when run by root), its line appended to
 *	dkim_key_table, and the TXT record to publish (strings of at most
 *	255 octets, RFC 6376 §3.6.2.2 / RFC 1035 §3.3.14).
 *   dns [DOMAIN]
 *	the records of every key in the table (old ones included: they
 *	stay published for the grace period).
 *   check [DOMAIN]
 *	each selector's record through danerelay's validating resolver:
 *	published or not, the same public key or not, the DNSSEC state,
 *	and the key's state as the daemon sees it (a pending key whose
 *	record is published is active).  Exit 1 if a key that signs is not
 *	published correctly (a pending one may not be, yet).
 *   rotate DOMAIN [--selector NAME]
 *	a new key for every algorithm the domain signs with, under a new
 *	selector (default: the date, "sYYYYMMDD", "eYYYYMMDD" for
 *	Ed25519); the daemon changes over once the record is in DNS.
 */
#include <sys/stat.h>

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "cli.h"
#include "cli_dkim.h"
#include "config.h"
#include "dkim.h"
#include "resolver.h"
#include "util.h"

static void
dkim_usage(void)
{
	fprintf(stderr, "usage: danerelay dkim keygen DOMAIN SELECTOR "
	    "[--algorithm rsa-2048|ed25519]\n"
	    "       danerelay dkim dns [DOMAIN]\n"
	    "       danerelay dkim check [DOMAIN]\n"
	    "       danerelay dkim rotate DOMAIN [--selector NAME]\n");
}

static struct dkim_table *
load_table(struct cli *c)
{
	struct dkim_table *t;
	char err[1024];

	if (cli_config(c) == -1)
		return NULL;
	if (c->cf.dkim_key_table == NULL) {
		cli_errx("%s: dkim_key_table is not set", c->cf.file);
		return NULL;
	}
	if ((t = dkim_table_load(c->cf.dkim_key_table, err, sizeof(err))) ==
	    NULL)
		cli_errx("%s", err);
	return t;
}

/* The daemon's user: the owner of state_dir, else "user". */
static void
daemon_owner(struct cli *c, uid_t *uid, gid_t *gid)
{
	struct passwd *pw;
	struct stat st;

	*uid = (uid_t)-1;
	*gid = (gid_t)-1;
	if (geteuid() != 0)
		return;
	if (stat(c->cf.state_dir, &st) == 0 && st.st_uid != 0) {
		*uid = st.st_uid;
		*gid = st.st_gid;
	} else if ((pw = getpwnam(c->cf.user)) != NULL) {
		*uid = pw->pw_uid;
		*gid = pw->pw_gid;
	}
}

/* Print entry i's record as a zone file line, with a comment. */
static void
print_record(const struct dkim_table *t, size_t i)
{
	struct dkim_key_info k;
	char *rec, *zone;

	if (dkim_table_key(t, i, &k) == -1 ||
	    (rec = dkim_key_record(t, i)) == NULL)
		return;
	zone = dkim_record_zone(k.domain, k.selector, rec);
	printf("; %s selector %s, %s, %s%s\n", k.domain, k.selector,
	    dkim_alg_name(k.alg), dkim_key_state_name(k.state),
	    k.state == DKIM_KEY_OLD ? " (keep published for the grace "
	    "period, then remove its line from dkim_key_table)" :
	    k.state == DKIM_KEY_PENDING ? " (publish it: the daemon "
	    "signs with it once it is in DNS)" : "");
	printf("%s\n", zone);
	free(zone);
	free(rec);
}

/* Create one key and append its line; the new table's index in *idx. */
static int
add_key(struct cli *c, const char *domain, const char *selector,
    enum dkim_alg alg, char *path, size_t pathlen)
{
	char dir[1024], err[1024], *line;
	uid_t uid;
	gid_t gid;
	FILE *fp;

	daemon_owner(c, &uid, &gid);
	snprintf(dir, sizeof(dir), "%s/dkim", c->cf.state_dir);
	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		cli_errx("%s: %s", dir, strerror(errno));
		return -1;
	}
	if ((int)uid != -1 && chown(dir, uid, gid) == -1) {
		cli_errx("%s: chown: %s", dir, strerror(errno));
		return -1;
	}
	snprintf(path, pathlen, "%s/%s.%s.pem", dir, domain, selector);
	if (dkim_keygen(alg, path, uid, gid, err, sizeof(err)) == -1) {
		cli_errx("%s", err);
		return -1;
	}
	if (c->cf.dkim_key_table == NULL)
		return 0;
	line = xasprintf("%s %s %s %s\n", domain, selector, path,
	    dkim_alg_name(alg));
	if ((fp = fopen(c->cf.dkim_key_table, "a")) == NULL ||
	    fputs(line, fp) == EOF || fclose(fp) == EOF) {
		cli_errx("%s: %s", c->cf.dkim_key_table, strerror(errno));
		free(line);
		return -1;
	}
	free(line);
	return 0;
}

/* Index of domain/selector in t, or -1. */
static ssize_t
find_key(const struct dkim_table *t, const char *domain, const char *sel)
{
	struct dkim_key_info k;
	size_t i;

	for (i = 0; dkim_table_key(t, i, &k) == 0; i++)
		if (strcasecmp(k.domain, domain) == 0 &&
		    strcasecmp(k.selector, sel) == 0)
			return (ssize_t)i;
	return -1;
}

static int
cmd_keygen(struct cli *c, int argc, char **argv)
{
	enum dkim_alg alg = DKIM_ALG_RSA_SHA256;
	struct dkim_table *t;
	char path[1100], dom[256];
	ssize_t i;

	if (argc == 6 && strcmp(argv[4], "--algorithm") == 0) {
		if (dkim_alg_parse(argv[5], &alg) == -1) {
			cli_errx("unknown algorithm \"%s\" (rsa-2048 or "
			    "ed25519)", argv[5]);
			return EX_USAGE;
		}
	} else if (argc != 4) {
		dkim_usage();
		return EX_USAGE;
	}
	if (cli_config(c) == -1)
		return EX_ERR;
	dr_strlcpy(dom, argv[2], sizeof(dom));
	str_lower(dom);
	if (c->cf.dkim_key_table != NULL) {
		if ((t = load_table(c)) == NULL)
			return EX_ERR;
		i = find_key(t, dom, argv[3]);
		dkim_table_unref(t);
		if (i >= 0) {
			cli_errx("%s selector %s is already in %s", dom,
			    argv[3], c->cf.dkim_key_table);
			return EX_ERR;
		}
	}
	if (add_key(c, dom, argv[3], alg, path, sizeof(path)) == -1)
		return EX_ERR;
	fprintf(stderr, "danerelay: wrote %s\n", path);
	if (c->cf.dkim_key_table == NULL) {
		/* no table: the record from a table of this key alone */
		char *text = xasprintf("%s %s %s %s\n", dom, argv[3], path,
		    dkim_alg_name(alg)), err[1024];

		printf("; add to dkim_key_table:\n; %s", text);
		t = dkim_table_parse(text, strlen(text), NULL, 0, err,
		    sizeof(err));
		free(text);
		if (t == NULL) {
			cli_errx("%s", err);
			return EX_ERR;
		}
	} else if ((t = load_table(c)) == NULL)
		return EX_ERR;
	if ((i = find_key(t, dom, argv[3])) >= 0)
		print_record(t, (size_t)i);
	dkim_table_unref(t);
	return EX_OK;
}

static int
cmd_dns(struct cli *c, int argc, char **argv)
{
	struct dkim_table *t;
	struct dkim_key_info k;
	size_t i;
	int n = 0;

	if (argc > 3) {
		dkim_usage();
		return EX_USAGE;
	}
	if ((t = load_table(c)) == NULL)
		return EX_ERR;
	for (i = 0; dkim_table_key(t, i, &k) == 0; i++)
		if (argc < 3 || strcasecmp(argv[2], k.domain) == 0) {
			print_record(t, i);
			n++;
		}
	dkim_table_unref(t);
	if (n == 0 && argc == 3) {
		cli_errx("no key for %s in the key table", argv[2]);
		return EX_ERR;
	}
	return EX_OK;
}

/* One selector's record as check found it. */
struct found {
	int		 looked;	/* of the asked domain */
	int		 failed;	/* no answer: err */
	enum dns_status	 status;
	enum dns_security sec;
	int		 match;
	char		 why[256];
};

static int
cmd_check(struct cli *c, int argc, char **argv)
{
	struct dkim_table *t;
	struct dkim_key_info k;
	struct event_base *base;
	struct resolver *r;
	struct dns_result *res;
	struct found *f;
	char name[600], err[1024];
	size_t i, j, n;
	int bad = 0;

	if (argc > 3) {
		dkim_usage();
		return EX_USAGE;
	}
	if ((t = load_table(c)) == NULL)
		return EX_ERR;
	if ((base = event_base_new()) == NULL) {
		cli_errx("event_base_new failed");
		dkim_table_unref(t);
		return EX_ERR;
	}
	if ((r = resolver_new(base, &c->cf, err, sizeof(err))) == NULL) {
		cli_errx("resolver: %s", err);
		event_base_free(base);
		dkim_table_unref(t);
		return EX_ERR;
	}
	/* Look every selector up first: a published pending key counts as
	 * seen, as in the daemon, so the states printed are the daemon's. */
	n = dkim_table_count(t);
	f = xcalloc(n + 1, sizeof(*f));
	for (i = 0; dkim_table_key(t, i, &k) == 0; i++) {
		if (argc == 3 && strcasecmp(argv[2], k.domain) != 0)
			continue;
		f[i].looked = 1;
		dkim_record_name(t, i, name, sizeof(name));
		if (resolver_query_sync(r, name, DNS_T_TXT, &res, f[i].why,
		    sizeof(f[i].why)) == -1) {
			f[i].failed = 1;
			continue;
		}
		f[i].status = res->status;
		f[i].sec = res->security;
		for (j = 0; res->status == DNS_OK && j < res->n &&
		    !f[i].match; j++)
			f[i].match = dkim_record_match(t, i, res->txt[j].data,
			    res->txt[j].len, f[i].why, sizeof(f[i].why));
		if (f[i].match && res->security != DNS_SEC_BOGUS)
			dkim_key_seen(t, i);
		dns_result_free(res);
	}
	for (i = 0; dkim_table_key(t, i, &k) == 0; i++) {
		if (!f[i].looked)
			continue;
		if (f[i].failed) {
			printf("%s %s %s %s: lookup failed: %s\n", k.domain,
			    k.selector, dkim_alg_name(k.alg),
			    dkim_key_state_name(k.state), f[i].why);
			bad += k.state != DKIM_KEY_OLD;
			continue;
		}
		printf("%s %s %s %s: %s, dnssec=%s\n", k.domain, k.selector,
		    dkim_alg_name(k.alg), dkim_key_state_name(k.state),
		    f[i].status != DNS_OK ? (f[i].sec == DNS_SEC_BOGUS ?
		    "bogus answer" : f[i].status == DNS_TEMPFAIL ?
		    "lookup failed" : "not published") : f[i].match ?
		    "published, key matches" : "published, KEY DIFFERS",
		    dns_security_name(f[i].sec));
		if (f[i].status == DNS_OK && !f[i].match && f[i].why[0])
			printf("    %s\n", f[i].why);
		if ((!f[i].match || f[i].sec == DNS_SEC_BOGUS) &&
		    k.state == DKIM_KEY_ACTIVE)
			bad++;
	}
	free(f);
	resolver_free(r);
	event_base_free(base);
	dkim_table_unref(t);
	return bad ? EX_ERR : EX_OK;
}

static int
cmd_rotate(struct cli *c, int argc, char **argv)
{
	struct dkim_table *t;
	struct dkim_key_info k;
	char dom[256], sel[128], path[1100], day[16];
	const char *base = NULL;
	int algs[2] = { 0, 0 }, n = 0;
	size_t i;
	time_t now = time(NULL);
	struct tm tm;

	if (argc == 5 && strcmp(argv[3], "--selector") == 0)
		base = argv[4];
	else if (argc != 3) {
		dkim_usage();
		return EX_USAGE;
	}
	if ((t = load_table(c)) == NULL)
		return EX_ERR;
	dr_strlcpy(dom, argv[2], sizeof(dom));
	str_lower(dom);
	for (i = 0; dkim_table_key(t, i, &k) == 0; i++)
		if (strcmp(k.domain, dom) == 0)
			algs[k.alg] = 1;
	if (!algs[0] && !algs[1]) {
		cli_errx("no key for %s in %s: use dkim keygen", dom,
		    c->cf.dkim_key_table);
		dkim_table_unref(t);
		return EX_ERR;
	}
	gmtime_r(&now, &tm);
	strftime(day, sizeof(day), "%Y%m%d", &tm);
	for (i = 0; i < 2; i++) {
		if (!algs[i])
			continue;
		if (base != NULL)
			snprintf(sel, sizeof(sel), "%s%s", base,
			    algs[0] && algs[1] && i == DKIM_ALG_ED25519_SHA256 ?
			    "e" : "");
		else
			snprintf(sel, sizeof(sel), "%c%s",
			    i == DKIM_ALG_ED25519_SHA256 ? 'e' : 's', day);
		if (find_key(t, dom, sel) >= 0) {
			cli_errx("%s selector %s is already in %s", dom, sel,
			    c->cf.dkim_key_table);
			dkim_table_unref(t);
			return EX_ERR;
		}
		if (add_key(c, dom, sel, (enum dkim_alg)i, path,
		    sizeof(path)) == -1) {
			dkim_table_unref(t);
			return EX_ERR;
		}
		fprintf(stderr, "danerelay: wrote %s\n", path);
		n++;
	}
	dkim_table_unref(t);
	if ((t = load_table(c)) == NULL)
		return EX_ERR;
	printf("; publish these records; danerelayd signs with the new "
	    "selector once it\n; sees the record (reload, or within "
	    "dkim_dns_check_interval):\n");
	for (i = 0; dkim_table_key(t, i, &k) == 0; i++)
		if (strcmp(k.domain, dom) == 0)
			print_record(t, i);
	dkim_table_unref(t);
	return n > 0 ? EX_OK : EX_ERR;
}

int
dkim_cli(struct cli *c, int argc, char **argv)
{
	if (argc < 2) {
		dkim_usage();
		return EX_USAGE;
	}
	if (strcmp(argv[1], "keygen") == 0)
		return cmd_keygen(c, argc, argv);
	if (strcmp(argv[1], "dns") == 0)
		return cmd_dns(c, argc, argv);
	if (strcmp(argv[1], "check") == 0)
		return cmd_check(c, argc, argv);
	if (strcmp(argv[1], "rotate") == 0)
		return cmd_rotate(c, argc, argv);
	dkim_usage();
	return EX_USAGE;
}
