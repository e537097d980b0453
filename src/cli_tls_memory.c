/*
 * cli_tls_memory.c - `danerelay tls-memory show [DOMAIN]` and
 * `danerelay tls-memory forget DOMAIN` (issue #23).
 *
 * With the daemon running the requests go through its control socket
 * (control.h: tls-memory-show, tls-memory-forget), so the daemon's
 * in-memory table changes at once and the daemon writes the file.  With
 * no daemon the command opens <state_dir>/tls-memory.db itself (as the
 * daemon's user when run by root, like `danerelay mta-sts`).  Either way
 * an entry counts as expired tls_memory_max_age after its last_seen,
 * from this command's configuration.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_tls_memory.h"
#include "config.h"
#include "control_client.h"
#include "mta_sts.h"		/* mta_sts_domain_ascii(), mta_sts_when() */
#include "tls_memory.h"
#include "util.h"

struct show {
	const struct config *cf;
	const char *domain;		/* NULL: every entry */
	int n;
};

static void
print_entry(const struct show *sh, const struct tlsmem_entry *e)
{
	time_t now = time(NULL), exp = e->last_seen +
	    (time_t)sh->cf->tls_memory_max_age;
	char t1[32], t2[32], t3[32];

	if (sh->domain == NULL) {
		printf("%-30s %-7s last seen %s, %s %s\n", e->domain,
		    tlsmem_level_name(e->level),
		    mta_sts_when(e->last_seen, t1, sizeof(t1)),
		    exp > now ? "expires" : "expired",
		    mta_sts_when(exp, t2, sizeof(t2)));
		return;
	}
	printf("domain:     %s\n", e->domain);
	printf("level:      %s\n", tlsmem_level_name(e->level));
	printf("first seen: %s\n", mta_sts_when(e->first_seen, t1,
	    sizeof(t1)));
	printf("last seen:  %s\n", mta_sts_when(e->last_seen, t2,
	    sizeof(t2)));
	printf("expires:    %s (%s)\n", mta_sts_when(exp, t3, sizeof(t3)),
	    exp > now ? "valid" : "expired");
}

static int
show_cb(const struct tlsmem_entry *e, void *arg)
{
	struct show *sh = arg;

	if (sh->domain != NULL && strcmp(sh->domain, e->domain) != 0)
		return 0;
	print_entry(sh, e);
	sh->n++;
	return 0;
}

/* "entry DOMAIN LEVEL FIRST LAST" from the daemon. */
static void
show_line(const char *line, void *arg)
{
	struct show *sh = arg;
	struct tlsmem_entry e;
	char dom[256], lvl[16];
	long long first, last;

	if (sscanf(line, "entry %255s %15s %lld %lld", dom, lvl, &first,
	    &last) != 4)
		return;
	memset(&e, 0, sizeof(e));
	dr_strlcpy(e.domain, dom, sizeof(e.domain));
	e.level = strcmp(lvl, "verify") == 0 ? TLSMEM_VERIFY :
	    TLSMEM_ENCRYPT;
	e.first_seen = (time_t)first;
	e.last_seen = (time_t)last;
	show_cb(&e, sh);
}

static void
show_end(const struct show *sh)
{
	if (sh->domain != NULL && sh->n == 0)
		printf("%s: nothing remembered\n", sh->domain);
	else if (sh->domain == NULL)
		printf("%d remembered %s.\n", sh->n, sh->n == 1 ? "domain" :
		    "domains");
}

static void
forgotten(const char *dom)
{
	printf("%s: TLS memory forgotten; \"danerelay flush %s\" delivers "
	    "what waits\n", dom, dom);
}

/* Through the running daemon. */
static int
via_daemon(struct ctl_client *cc, struct show *sh, int forget)
{
	char req[300], msg[CONTROL_LINE_MAX + 1], *s;
	int r;

	snprintf(req, sizeof(req), "tls-memory-%s%s%s", forget ? "forget" :
	    "show", sh->domain ? " " : "", sh->domain ? sh->domain : "");
	r = ctl_call(cc, req, forget ? NULL : show_line, sh, msg,
	    sizeof(msg));
	ctl_close(cc);
	if (r == 0) {
		if (forget)
			forgotten(sh->domain);
		else
			show_end(sh);
		return EX_OK;
	}
	s = cli_safe(msg);
	if (r == 1 && forget && strncmp(msg, "nothing remembered", 18) == 0)
		printf("%s: nothing remembered\n", sh->domain);
	else
		cli_errx("tls-memory: %s", s);
	free(s);
	return EX_ERR;
}

/* On the file, no daemon. */
static int
on_file(const struct config *cf, struct show *sh, int forget)
{
	struct tls_memory *tm;
	char err[512];
	int rc = EX_OK;

	if (access(cf->state_dir, F_OK) == -1) {
		if (forget) {
			printf("%s: nothing remembered\n", sh->domain);
			return EX_ERR;
		}
		show_end(sh);
		return EX_OK;
	}
	if (cli_become_spool_owner(cf->state_dir) == -1)
		return EX_ERR;
	/* entries far past max_age are dropped on open, as the daemon does */
	if ((tm = tls_memory_open(cf->state_dir, cf->tls_memory_max_age, err,
	    sizeof(err))) == NULL) {
		cli_errx("%s", err);
		return EX_ERR;
	}
	if (forget) {
		if (tls_memory_forget(tm, NULL, sh->domain) == 1)
			forgotten(sh->domain);
		else {
			printf("%s: nothing remembered\n", sh->domain);
			rc = EX_ERR;
		}
	} else {
		(void)tls_memory_foreach(tm, show_cb, sh);
		show_end(sh);
	}
	tls_memory_close(tm);
	return rc;
}

int
tls_memory_cli(struct cli *c, int argc, char **argv)
{
	struct ctl_client cc;
	struct show sh;
	char dom[DNS_NAME_BUF];
	const char *sub = argc > 1 ? argv[1] : NULL;
	int forget;

	if (sub == NULL || (strcmp(sub, "show") != 0 &&
	    strcmp(sub, "forget") != 0) || argc > 3 ||
	    (strcmp(sub, "forget") == 0 && argc != 3)) {
		fprintf(stderr, "usage: danerelay tls-memory show [DOMAIN]\n"
		    "       danerelay tls-memory forget DOMAIN\n");
		return EX_USAGE;
	}
	forget = strcmp(sub, "forget") == 0;
	if (cli_config(c) == -1)
		return EX_ERR;
	memset(&sh, 0, sizeof(sh));
	sh.cf = &c->cf;
	if (argc == 3) {
		if (mta_sts_domain_ascii(argv[2], dom, sizeof(dom)) == -1) {
			cli_errx("tls-memory: bad domain name");
			return EX_USAGE;
		}
		sh.domain = dom;
	}
	switch (cli_connect(c, &cc)) {
	case CTL_UP:
		return via_daemon(&cc, &sh, forget);
	case CTL_DOWN:
		return on_file(&c->cf, &sh, forget);
	default:
		return EX_ERR;
	}
}
