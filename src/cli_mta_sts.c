/*
 * cli_mta_sts.c - `danerelay mta-sts show [DOMAIN] | refresh DOMAIN |
 * forget DOMAIN` on the shared MTA-STS cache (<state_dir>/mta-sts.db),
 * without the daemon; refresh runs a manager of its own
 * (mta_sts_refresh(): a forced lookup, no background timer).
 *
 * Moved out of mta_sts_mgr.c unchanged (issue #15), but for the two
 * lines that reached into the manager (now mta_sts_refresh()).
 *
 * state_backend = postgresql (issue #19): show reads the fleet's shared
 * cache, forget removes the policy there too, and a refreshed policy is
 * stored there (the other relays pull it within seconds).
 */
#include <sys/stat.h>

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "cli_mta_sts.h"
#include "config.h"
#include "mta_sts.h"
#include "mta_sts_cache.h"
#include "resolver.h"
#include "state_pg.h"
#include "util.h"

/*
 * Root works on the cache as the daemon's user, so every file SQLite
 * creates stays usable by the daemon.  0 ok, -1 printed.
 */
static int
cli_become_user(const struct config *cf)
{
	struct passwd *pw;
	struct stat st;

	if (geteuid() != 0)
		return 0;
	if (stat(cf->state_dir, &st) == 0) {
		if (st.st_uid == 0)
			return 0;
	} else if (errno == ENOENT && cf->user != NULL &&
	    (pw = getpwnam(cf->user)) != NULL) {
		if (mkdir_p(cf->state_dir, 0700) == -1 ||
		    chown(cf->state_dir, pw->pw_uid, pw->pw_gid) == -1) {
			fprintf(stderr, "danerelay: %s: %s\n", cf->state_dir,
			    strerror(errno));
			return -1;
		}
		st.st_uid = pw->pw_uid;
		st.st_gid = pw->pw_gid;
	} else
		return 0;
	if (setgroups(1, &st.st_gid) == -1 ||
	    setresgid(st.st_gid, st.st_gid, st.st_gid) == -1 ||
	    setresuid(st.st_uid, st.st_uid, st.st_uid) == -1) {
		fprintf(stderr, "danerelay: cannot become the owner of %s: "
		    "%s\n", cf->state_dir, strerror(errno));
		return -1;
	}
	return 0;
}

static void
cli_print_entry(const struct mta_sts_entry *e, int full)
{
	time_t now = time(NULL);
	char t1[32], t2[32], t3[32];
	size_t i;

	if (!full) {
		printf("%-30s %-7s id=%-20s %s %s\n", e->domain,
		    mta_sts_mode_name(e->policy.mode), e->id,
		    e->expires_at > now ? "expires" : "expired",
		    mta_sts_when(e->expires_at, t1, sizeof(t1)));
		return;
	}
	printf("domain:   %s\n", e->domain);
	printf("id:       %s\n", e->id);
	printf("mode:     %s\n", mta_sts_mode_name(e->policy.mode));
	printf("mx:      ");
	for (i = 0; i < e->policy.nmx; i++)
		printf(" %s", e->policy.mx[i]);
	printf("%s\n", e->policy.nmx ? "" : " -");
	printf("max_age:  %lld\n", e->policy.max_age);
	printf("fetched:  %s\n", mta_sts_when(e->fetched_at, t1, sizeof(t1)));
	printf("expires:  %s (%s)\n",
	    mta_sts_when(e->expires_at, t2, sizeof(t2)),
	    e->expires_at > now ? "valid" : "expired");
	printf("refresh:  %s\n", mta_sts_when(e->refresh_at, t3, sizeof(t3)));
	printf("policy:\n");
	for (i = 0; i < e->policy.nlines; i++) {
		const unsigned char *p = (const unsigned char *)
		    e->policy.lines[i];

		/* the text came from the network: printable only */
		printf("  ");
		for (; *p; p++)
			putchar(*p >= 0x20 && *p < 0x7f ? *p : '?');
		printf("\n");
	}
}

static int
cli_list_cb(const struct mta_sts_entry *e, void *arg)
{
	cli_print_entry(e, 0);
	(*(int *)arg)++;
	return 0;
}

static int
cli_show_cb(const struct mta_sts_entry *e, void *arg)
{
	(void)arg;
	cli_print_entry(e, 1);
	return 0;
}

struct cli_refresh {
	struct event_base *base;
	struct mta_sts_answer *ans;
};

static void
cli_refreshed(struct mta_sts_answer *ans, void *arg)
{
	struct cli_refresh *cr = arg;

	cr->ans = ans;
	event_base_loopexit(cr->base, NULL);
}

static int
cli_refresh(const struct config *cf, struct mta_sts_cache *c,
    const char *domain)
{
	struct cli_refresh cr;
	struct resolver *r = NULL;
	struct mta_sts *m = NULL;
	struct mta_sts_entry e;
	char err[512];
	int rc = 1;

	memset(&cr, 0, sizeof(cr));
	if ((cr.base = event_base_new()) == NULL) {
		fprintf(stderr, "danerelay: event_base_new failed\n");
		return 1;
	}
	if ((r = resolver_new(cr.base, cf, err, sizeof(err))) == NULL ||
	    (m = mta_sts_new(cr.base, r, cf, err, sizeof(err))) == NULL) {
		fprintf(stderr, "danerelay: %s\n", err);
		goto out;
	}
	if (mta_sts_refresh(m, domain, cli_refreshed, &cr) == NULL) {
		fprintf(stderr, "danerelay: bad domain name\n");
		goto out;
	}
	event_base_dispatch(cr.base);
	if (cr.ans == NULL) {
		fprintf(stderr, "danerelay: mta-sts refresh did not finish\n");
		goto out;
	}
	if (cr.ans->source == MTA_STS_SRC_FETCHED) {
		printf("%s: fetched policy id=%s, mode %s\n", domain,
		    cr.ans->id, mta_sts_mode_name(cr.ans->mode));
		rc = 0;
	} else
		printf("%s: no new policy: %s\n", domain, cr.ans->note);
	if (mta_sts_cache_get(c, domain, &e, err, sizeof(err)) == 1) {
		if (rc == 0 && state_pg_enabled(cf) &&
		    mta_sts_shared_put(cf, &e, err, sizeof(err)) == -1) {
			fprintf(stderr, "danerelay: shared cache: %s\n", err);
			rc = 1;
		}
		cli_print_entry(&e, 1);
		mta_sts_entry_clear(&e);
	}
out:
	mta_sts_answer_free(cr.ans);
	mta_sts_free(m);
	resolver_free(r);
	event_base_free(cr.base);
	return rc;
}

int
mta_sts_cli(const struct config *cf, int argc, char **argv)
{
	struct mta_sts_cache *c;
	struct mta_sts_entry e;
	char dom[DNS_NAME_BUF], err[512];
	const char *sub = argc > 1 ? argv[1] : NULL;
	int rc = 1, n = 0, r;

	if (sub == NULL || (strcmp(sub, "show") != 0 && argc != 3) ||
	    (strcmp(sub, "show") == 0 && argc > 3) ||
	    (strcmp(sub, "show") != 0 && strcmp(sub, "refresh") != 0 &&
	    strcmp(sub, "forget") != 0)) {
		fprintf(stderr, "usage: danerelay mta-sts show [DOMAIN]\n"
		    "       danerelay mta-sts refresh DOMAIN\n"
		    "       danerelay mta-sts forget DOMAIN\n");
		return 2;
	}
	if (argc == 3 && mta_sts_domain_ascii(argv[2], dom, sizeof(dom)) ==
	    -1) {
		fprintf(stderr, "danerelay: mta-sts: bad domain name\n");
		return 2;
	}
	if (state_pg_enabled(cf) && strcmp(sub, "show") == 0) {
		if (argc == 2) {
			n = mta_sts_shared_foreach(cf, NULL, cli_list_cb, &n, err,
			    sizeof(err));
			if (n >= 0)
				printf("%d MTA-STS %s in the shared cache.\n", n,
				    n == 1 ? "policy" : "policies");
		} else {
			n = mta_sts_shared_foreach(cf, dom, cli_show_cb, NULL,
			    err, sizeof(err));
			if (n == 0)
				printf("%s: no cached MTA-STS policy\n", dom);
		}
		if (n == -1)
			fprintf(stderr, "danerelay: %s\n", err);
		return n == -1 ? 1 : argc == 2 || n > 0 ? 0 : 1;
	}
	if (state_pg_enabled(cf) && strcmp(sub, "forget") == 0) {
		if ((n = mta_sts_shared_forget(cf, dom, err,
		    sizeof(err))) == -1) {
			fprintf(stderr, "danerelay: %s\n", err);
			return 1;
		}
		if (n > 0)
			printf("%s: forgotten in the shared cache\n", dom);
	}
	if (access(cf->state_dir, F_OK) == -1 && strcmp(sub, "refresh") != 0) {
		printf("no cached MTA-STS policies (%s: %s)\n", cf->state_dir,
		    strerror(errno));
		return strcmp(sub, "show") == 0 && argc == 2 ? 0 : 1;
	}
	if (cli_become_user(cf) == -1)
		return 1;
	if (mkdir_p(cf->state_dir, 0700) == -1) {
		fprintf(stderr, "danerelay: %s: %s\n", cf->state_dir,
		    strerror(errno));
		return 1;
	}
	if ((c = mta_sts_cache_open(cf->state_dir, err, sizeof(err))) ==
	    NULL) {
		fprintf(stderr, "danerelay: %s\n", err);
		return 1;
	}
	if (strcmp(sub, "show") == 0 && argc == 2) {
		if ((n = mta_sts_cache_foreach(c, cli_list_cb, &n, err,
		    sizeof(err))) == -1)
			fprintf(stderr, "danerelay: %s\n", err);
		else {
			printf("%d cached MTA-STS %s.\n", n, n == 1 ?
			    "policy" : "policies");
			rc = 0;
		}
	} else if (strcmp(sub, "show") == 0) {
		r = mta_sts_cache_get(c, dom, &e, err, sizeof(err));
		if (r == 1) {
			cli_print_entry(&e, 1);
			mta_sts_entry_clear(&e);
			rc = 0;
		} else if (r == 0)
			printf("%s: no cached MTA-STS policy\n", dom);
		else
			fprintf(stderr, "danerelay: %s\n", err);
	} else if (strcmp(sub, "forget") == 0) {
		r = mta_sts_cache_delete(c, dom, err, sizeof(err));
		if (r == 1) {
			printf("%s: cached MTA-STS policy forgotten\n", dom);
			rc = 0;
		} else if (r == 0)
			printf("%s: no cached MTA-STS policy\n", dom);
		else
			fprintf(stderr, "danerelay: %s\n", err);
	} else
		rc = cli_refresh(cf, c, dom);
	mta_sts_cache_close(c);
	return rc;
}
