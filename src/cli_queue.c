/*
 * cli_queue.c - `danerelay queue` (list, delete, hold, release), `flush`
 * and `status`.
 *
 * Listing reads the spool directly (spool_open_flags with
 * SPOOL_NO_RECOVER: no lock, no recovery, nothing created), so it works
 * whether the daemon runs or not; when the daemon answers on its control
 * socket, messages in a delivery attempt right now are marked '*'.
 *
 * Actions go through the daemon's control socket (control.h,
 * control_client.c), because the running daemon owns the queue: it
 * cancels an attempt in flight before deleting, and a flush only means
 * something to its scheduler.  When no daemon runs (nothing listens on
 * the socket and spool_in_use() says the spool is free), delete, hold and
 * release edit the spool directly; root first becomes the spool's owner
 * so the files it writes stay readable by the daemon.  flush and status
 * need the daemon.
 *
 * Moved out of danerelay.c unchanged (issue #15), but for the names of
 * the shared helpers (cli.h) and usage() called through struct cli.
 */
#include <sys/types.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_queue.h"
#include "control_client.h"
#include "log.h"
#include "bounce.h"
#include "spool.h"
#include "suspend.h"
#include "util.h"

static void
fmt_age(char *buf, size_t len, long long secs)
{
	if (secs < 0)
		secs = 0;
	if (secs < 60)
		snprintf(buf, len, "%llds", secs);
	else if (secs < 3600)
		snprintf(buf, len, "%lldm", secs / 60);
	else if (secs < 86400)
		snprintf(buf, len, "%lldh%02lldm", secs / 3600,
		    secs % 3600 / 60);
	else
		snprintf(buf, len, "%lldd%02lldh", secs / 86400,
		    secs % 86400 / 3600);
}

static void
fmt_time(char *buf, size_t len, time_t t)
{
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, len, "@%lld", (long long)t);
}

static void
print_message(const struct spool_env *env, int active, time_t now,
    const struct suspended *susp)
{
	const struct spool_rcpt *r;
	char t0[64], when[128], age[32], *s, *t;
	size_t i;

	fmt_time(t0, sizeof(t0), env->created);
	fmt_age(age, sizeof(age), (long long)(now - env->created));
	snprintf(when, sizeof(when), "%s (%s)", t0, age);
	s = cli_safe(env->sender);
	printf("%-16s%c %9lld  %-29s  <%s>%s%s%s\n", env->id,
	    env->hold ? '!' : active ? '*' : ' ', (long long)env->size, when, s,
	    env->hold ? " [on hold]" : "",
	    env->is_bounce ? " [bounce]" : "",
	    env->is_report ? " [tlsrpt]" : "");
	free(s);
	for (i = 0; i < env->nrcpt; i++) {
		r = &env->rcpts[i];
		s = cli_safe(r->addr);
		printf("    <%s> %s", s, rcpt_state_name(r->state));
		free(s);
		if (r->attempts > 0)
			printf(", %d attempt%s", r->attempts,
			    r->attempts == 1 ? "" : "s");
		if (r->state == RCPT_PENDING && r->next_attempt > now) {
			fmt_age(age, sizeof(age),
			    (long long)(r->next_attempt - now));
			printf(", next in %s", age);
		}
		if (r->relay != NULL) {
			s = cli_safe(r->relay);
			printf(", relay=%s", s);
			free(s);
		}
		if (r->state == RCPT_PENDING && susp->n > 0 &&
		    strrchr(r->addr, '@') != NULL &&
		    suspend_has(susp, strrchr(r->addr, '@') + 1))
			printf(", destination suspended");
		putchar('\n');
		if (r->last_error != NULL) {
			t = cli_safe(r->last_error);
			printf("        (%s)\n", t);
			free(t);
		}
	}
	putchar('\n');
}

/* Ids of the messages in a delivery attempt now, from the daemon. */
struct active_ids {
	char	(*id)[QUEUE_ID_LEN + 1];
	size_t	 n, cap;
};

static void
active_line(const char *line, void *arg)
{
	struct active_ids *a = arg;
	char id[QUEUE_ID_LEN + 1];

	/* "msg ID active=0|1 hold=0|1 ..." */
	if (strncmp(line, "msg ", 4) != 0 ||
	    strlen(line) < 4 + QUEUE_ID_LEN + 1 ||
	    strncmp(line + 4 + QUEUE_ID_LEN, " active=1", 9) != 0)
		return;
	memcpy(id, line + 4, QUEUE_ID_LEN);
	id[QUEUE_ID_LEN] = '\0';
	if (!queue_id_valid(id))
		return;
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 16;
		a->id = xrealloc(a->id, a->cap * sizeof(*a->id));
	}
	memcpy(a->id[a->n++], id, sizeof(id));
}

static int
id_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Best effort: no daemon, no marks, nothing printed. */
static void
active_load(struct cli *c, struct active_ids *a)
{
	struct ctl_client cc;
	const char *path;
	char msg[CONTROL_LINE_MAX + 1];

	memset(a, 0, sizeof(*a));
	if ((path = cli_control_path(c)) == NULL ||
	    ctl_connect(&cc, path, CTL_LIST_WAIT) == -1)
		return;
	if (ctl_call(&cc, "list", active_line, a, msg, sizeof(msg)) != 0)
		a->n = 0;
	ctl_close(&cc);
	if (a->n > 1)
		qsort(a->id, a->n, sizeof(*a->id), id_cmp);
}

static int
active_has(const struct active_ids *a, const char *id)
{
	return a->n > 0 &&
	    bsearch(id, a->id, a->n, sizeof(*a->id), id_cmp) != NULL;
}

int
cli_queue_list(struct cli *c, int argc, char **argv)
{
	struct spool *sp;
	struct spool_env *env;
	struct active_ids act;
	struct suspended susp;
	char **ids, err[1024];
	unsigned long long total = 0;
	size_t n, i, shown = 0;
	time_t now = time(NULL);
	int rc = EX_OK;

	if (argc > 1) {
		cli_errx("queue list takes no arguments");
		return EX_USAGE;
	}
	if ((sp = cli_spool(c)) == NULL)
		return EX_ERR;
	if (suspend_load(spool_dir(sp), &susp, err, sizeof(err)) == -1) {
		cli_errx("%s", err);
		rc = EX_ERR;
	}
	if (susp.n > 0) {
		printf("Suspended destinations (danerelay queue resume "
		    "DOMAIN):");
		for (i = 0; i < susp.n; i++)
			printf(" %s", susp.dom[i]);
		printf("\n\n");
	}
	active_load(c, &act);
	if ((ids = spool_list_ids(sp, &n)) == NULL) {
		cli_errx("%s/queue: %s", spool_dir(sp), strerror(errno));
		spool_close(sp);
		free(act.id);
		suspend_clear(&susp);
		return EX_ERR;
	}
	for (i = 0; i < n; i++) {
		if (spool_env_load(sp, ids[i], &env, err, sizeof(err)) == -1) {
			if (errno == ENOENT)
				continue;	/* delivered meanwhile */
			cli_errx("%s: %s", ids[i], err);
			rc = EX_ERR;
			continue;
		}
		if (shown++ == 0)
			printf("%-16s  %9s  %-29s  %s\n", "Queue ID", "Size",
			    "Arrival time (age)", "Sender/Recipients");
		print_message(env, active_has(&act, env->id), now, &susp);
		total += (unsigned long long)env->size;
		spool_env_free(env);
	}
	if (shown == 0)
		printf("Mail queue is empty\n");
	else
		printf("-- %llu KiB in %zu messages.\n", (total + 1023) / 1024,
		    shown);
	spool_ids_free(ids, n);
	spool_close(sp);
	free(act.id);
	suspend_clear(&susp);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		cli_errx("stdout: %s", strerror(errno));
		rc = EX_ERR;
	}
	return rc;
}

/* What an action did, for "ID: deleted". */
static const char *
action_done(const char *verb)
{
	if (strcmp(verb, "delete") == 0)
		return "deleted";
	if (strcmp(verb, "hold") == 0)
		return "on hold";
	if (strcmp(verb, "bounce") == 0)
		return "returned to the sender";
	return "released";
}

/* Through the running daemon: one connection, one request per id. */
static int
action_daemon(struct ctl_client *cc, const char *verb,
    char (*ids)[QUEUE_ID_LEN + 1], int n)
{
	char req[64], msg[CONTROL_LINE_MAX + 1], *s;
	int i, r, rc = EX_OK;

	for (i = 0; i < n; i++) {
		snprintf(req, sizeof(req), "%s %s", verb, ids[i]);
		r = ctl_call(cc, req, NULL, NULL, msg, sizeof(msg));
		s = cli_safe(msg);
		if (r == 0)
			printf("%s: %s\n", ids[i], action_done(verb));
		else
			cli_errx("%s: %s%s", ids[i], r == -1 ?
			    "control socket: " : "", s);
		free(s);
		if (r != 0)
			rc = EX_ERR;
		if (r == -1)
			break;
	}
	return rc;
}

/* The spool of a stopped daemon, or NULL (printed). */
static struct spool *
stopped_spool(struct cli *c)
{
	struct spool *sp;
	const char *dir;

	if ((dir = cli_spool_dir(c)) == NULL ||
	    cli_become_spool_owner(dir) == -1)
		return NULL;
	if ((sp = cli_spool(c)) == NULL)
		return NULL;
	if (spool_in_use(sp)) {
		cli_errx("the daemon is running but does not answer on its "
		    "control socket %s; not changing its queue behind its "
		    "back", cli_control_path(c));
		spool_close(sp);
		return NULL;
	}
	log_init("danerelay", 0, 0);	/* changes are logged to syslog */
	return sp;
}

/*
 * The operator's end for the recipients waiting at domain (NULL: all) of
 * a stopped daemon's message: bounce (to = RCPT_FAILED; the daemon sends
 * the DSN and removes the message at its next start) or delete
 * (RCPT_DELETED; a message left with nothing to do and no DSN owed is
 * removed here).  1 changed, 0 nothing waiting there, -1 printed.
 */
static int
settle_stopped(struct spool *sp, struct spool_env *env, const char *domain,
    enum rcpt_state to)
{
	char err[1024];
	size_t others;

	if (spool_env_pending_at(env, domain, &others) == 0)
		return 0;
	if (to == RCPT_DELETED && others == 0 && !bounce_owed(env)) {
		if (spool_remove(sp, env->id) == -1) {
			cli_errx("%s: cannot remove: %s", env->id,
			    strerror(errno));
			return -1;
		}
		log_info("%s: removed by the operator (danerelay queue delete "
		    "--domain, daemon not running)", env->id);
		return 1;
	}
	(void)spool_env_settle(env, domain, to, "daemon not running");
	if (spool_env_save(sp, env, err, sizeof(err)) == -1) {
		cli_errx("%s: %s", env->id, err);
		return -1;
	}
	return 1;
}

static int
spool_bounce_stopped(struct spool *sp, const char *id)
{
	struct spool_env *env;
	char err[1024];
	int r;

	if (spool_env_load(sp, id, &env, err, sizeof(err)) == -1) {
		if (errno == ENOENT)
			cli_errx("%s: no such message in the queue", id);
		else
			cli_errx("%s: %s", id, err);
		return -1;
	}
	r = settle_stopped(sp, env, NULL, RCPT_FAILED);
	if (r == 1)
		printf("%s: returned to the sender (the DSN is sent when the "
		    "daemon starts)\n", id);
	else if (r == 0)
		printf("%s: no recipient is waiting\n", id);
	spool_env_free(env);
	return r == -1 ? -1 : 0;
}

/* No daemon: edit the spool ourselves. */
static int
action_spool(struct cli *c, const char *verb, char (*ids)[QUEUE_ID_LEN + 1],
    int n)
{
	struct spool *sp;
	struct spool_env *env;
	char err[1024];
	int i, on, rc = EX_OK;

	if ((sp = stopped_spool(c)) == NULL)
		return EX_ERR;
	for (i = 0; i < n; i++) {
		if (strcmp(verb, "delete") == 0) {
			if (spool_remove(sp, ids[i]) == -1) {
				if (errno == ENOENT)
					cli_errx("%s: no such message in the "
					    "queue", ids[i]);
				else
					cli_errx("%s: cannot remove: %s",
					    ids[i], strerror(errno));
				rc = EX_ERR;
				continue;
			}
			log_info("%s: removed by the operator (danerelay queue "
			    "delete, daemon not running)", ids[i]);
			printf("%s: deleted\n", ids[i]);
			continue;
		}
		on = strcmp(verb, "hold") == 0;
		if (strcmp(verb, "bounce") == 0) {
			if (spool_bounce_stopped(sp, ids[i]) == -1)
				rc = EX_ERR;
			continue;
		}
		if (spool_env_load(sp, ids[i], &env, err, sizeof(err)) == -1) {
			if (errno == ENOENT)
				cli_errx("%s: no such message in the queue",
				    ids[i]);
			else
				cli_errx("%s: %s", ids[i], err);
			rc = EX_ERR;
			continue;
		}
		if (env->hold != on) {
			env->hold = on;
			if (spool_env_save(sp, env, err, sizeof(err)) == -1) {
				cli_errx("%s: %s", ids[i], err);
				spool_env_free(env);
				rc = EX_ERR;
				continue;
			}
			log_info("%s: %s by the operator (danerelay queue %s, "
			    "daemon not running)", ids[i], on ? "held" :
			    "released", verb);
		}
		spool_env_free(env);
		printf("%s: %s\n", ids[i], action_done(verb));
	}
	spool_close(sp);
	return rc;
}

static void
domain_done(const char *verb, const char *domain, size_t n)
{
	printf("%zu message%s %s (recipients at %s)\n", n, n == 1 ? "" : "s",
	    strcmp(verb, "delete") == 0 ? "with recipients deleted" :
	    strcmp(verb, "bounce") == 0 ? "returned to the sender" :
	    action_done(verb), domain);
}

/* A stopped daemon's spool, by domain. */
static int
domain_spool(struct cli *c, const char *verb, const char *domain)
{
	struct spool *sp;
	struct spool_env *env;
	char **ids, err[1024];
	size_t n, i, others, done = 0;
	int rc = EX_OK, on, r;

	if ((sp = stopped_spool(c)) == NULL)
		return EX_ERR;
	if ((ids = spool_list_ids(sp, &n)) == NULL) {
		cli_errx("%s/queue: %s", spool_dir(sp), strerror(errno));
		spool_close(sp);
		return EX_ERR;
	}
	for (i = 0; i < n; i++) {
		if (spool_env_load(sp, ids[i], &env, err, sizeof(err)) == -1) {
			if (errno != ENOENT) {
				cli_errx("%s: %s", ids[i], err);
				rc = EX_ERR;
			}
			continue;
		}
		if (strcmp(verb, "delete") == 0 || strcmp(verb, "bounce") == 0) {
			r = settle_stopped(sp, env, domain, strcmp(verb,
			    "bounce") == 0 ? RCPT_FAILED : RCPT_DELETED);
			if (r == -1)
				rc = EX_ERR;
			else
				done += (size_t)r;
		} else if (spool_env_pending_at(env, domain, &others) > 0 &&
		    env->hold != (on = strcmp(verb, "hold") == 0)) {
			env->hold = on;
			if (spool_env_save(sp, env, err, sizeof(err)) == -1) {
				cli_errx("%s: %s", ids[i], err);
				rc = EX_ERR;
			} else {
				log_info("%s: %s by the operator (recipients "
				    "at %s, daemon not running)", ids[i], on ?
				    "held" : "released", domain);
				done++;
			}
		}
		spool_env_free(env);
	}
	spool_ids_free(ids, n);
	spool_close(sp);
	domain_done(verb, domain, done);
	if (strcmp(verb, "bounce") == 0 && done > 0)
		printf("(the DSNs are sent when the daemon starts)\n");
	return rc;
}

/* A domain on the command line, as the suspended list keeps it. */
static int
domain_arg(const char *arg, char *dom, size_t len)
{
	char *s;

	if (suspend_norm(arg, dom, len) == 0)
		return 0;
	s = cli_safe(arg);
	cli_errx("\"%s\" is not a domain name", s);
	free(s);
	return -1;
}

/* queue delete|hold|release|bounce --domain DOMAIN */
static int
action_domain(struct cli *c, int argc, char **argv)
{
	struct ctl_client cc;
	char dom[256], req[300], msg[CONTROL_LINE_MAX + 1], *s;
	int r, rc = EX_OK;

	if (argc != 3) {
		cli_errx("usage: queue %s --domain DOMAIN", argv[0]);
		return EX_USAGE;
	}
	if (domain_arg(argv[2], dom, sizeof(dom)) == -1)
		return EX_USAGE;
	switch (cli_connect(c, &cc)) {
	case CTL_UP:
		snprintf(req, sizeof(req), "%s-domain %s", argv[0], dom);
		r = ctl_call(&cc, req, NULL, NULL, msg, sizeof(msg));
		ctl_close(&cc);
		s = cli_safe(msg);
		if (r == 0)
			domain_done(argv[0], dom, strtoul(msg, NULL, 10));
		else {
			cli_errx("%s%s", r == -1 ? "control socket: " : "", s);
			rc = EX_ERR;
		}
		free(s);
		return rc;
	case CTL_DOWN:
		return domain_spool(c, argv[0], dom);
	default:
		return EX_ERR;
	}
}

/* queue suspend|resume DOMAIN */
int
cli_queue_suspend(struct cli *c, int argc, char **argv)
{
	struct ctl_client cc;
	char dom[256], req[300], msg[CONTROL_LINE_MAX + 1], err[1024], *s;
	const char *dir;
	int on = strcmp(argv[0], "suspend") == 0, r;

	if (argc != 2) {
		cli_errx("usage: queue %s DOMAIN", argv[0]);
		return EX_USAGE;
	}
	if (domain_arg(argv[1], dom, sizeof(dom)) == -1)
		return EX_USAGE;
	switch (cli_connect(c, &cc)) {
	case CTL_UP:
		snprintf(req, sizeof(req), "%s %s", argv[0], dom);
		r = ctl_call(&cc, req, NULL, NULL, msg, sizeof(msg));
		ctl_close(&cc);
		if (r != 0) {
			s = cli_safe(msg);
			cli_errx("%s%s", r == -1 ? "control socket: " : "", s);
			free(s);
			return EX_ERR;
		}
		r = strcmp(msg, "changed") == 0;
		break;
	case CTL_DOWN:
		if ((dir = cli_spool_dir(c)) == NULL ||
		    cli_become_spool_owner(dir) == -1)
			return EX_ERR;
		if ((r = suspend_change(dir, dom, on, err, sizeof(err))) ==
		    -1) {
			cli_errx("%s", err);
			return EX_ERR;
		}
		if (r == 1) {
			log_init("danerelay", 0, 0);
			log_info("queue: deliveries to %s %s by the operator "
			    "(daemon not running)", dom, on ? "suspended" :
			    "resumed");
		}
		break;
	default:
		return EX_ERR;
	}
	printf("%s: %s%s\n", dom, r ? "" : "already ", on ? "suspended" :
	    "resumed");
	return EX_OK;
}

/* queue delete|hold|release|bounce ID ... | --domain DOMAIN */
int
cli_queue_action(struct cli *c, int argc, char **argv)
{
	struct ctl_client cc;
	char (*ids)[QUEUE_ID_LEN + 1], *s;
	int i, rc;

	if (argc >= 2 && strcmp(argv[1], "--domain") == 0)
		return action_domain(c, argc, argv);
	if (argc < 2) {
		cli_errx("queue %s: which queue id?", argv[0]);
		c->usage(stderr);
		return EX_USAGE;
	}
	ids = xcalloc((size_t)argc - 1, sizeof(*ids));
	for (i = 1; i < argc; i++) {
		/* Ids are printed upper-case; accept them in either case. */
		if (cli_parse_id(argv[i], ids[i - 1]) == -1) {
			s = cli_safe(argv[i]);
			cli_errx("\"%s\" is not a queue id", s);
			free(s);
			free(ids);
			return EX_USAGE;
		}
	}
	switch (cli_connect(c, &cc)) {
	case CTL_UP:
		rc = action_daemon(&cc, argv[0], ids, argc - 1);
		ctl_close(&cc);
		break;
	case CTL_DOWN:
		rc = action_spool(c, argv[0], ids, argc - 1);
		break;
	default:
		rc = EX_ERR;
	}
	free(ids);
	return rc;
}

/* ---------------------------------------------------------------- */
/* flush, status: only with a running daemon */

int
cli_flush(struct cli *c, int argc, char **argv)
{
	struct ctl_client cc;
	char target[256], req[300], msg[CONTROL_LINE_MAX + 1], *s;
	const unsigned char *p;
	int r;

	if (argc > 2) {
		cli_errx("flush: at most one queue id or domain");
		c->usage(stderr);
		return EX_USAGE;
	}
	target[0] = '\0';
	if (argc == 2 && cli_parse_id(argv[1], target) == -1) {
		/* a domain: printable ASCII, no space (the daemon compares
		 * it case-insensitively with the recipients' domains) */
		for (p = (const unsigned char *)argv[1]; *p; p++)
			if (*p <= 0x20 || *p >= 0x7f)
				break;
		if (*p != '\0' || argv[1][0] == '\0' ||
		    strlen(argv[1]) >= sizeof(target)) {
			s = cli_safe(argv[1]);
			cli_errx("\"%s\" is not a queue id or domain", s);
			free(s);
			return EX_USAGE;
		}
		dr_strlcpy(target, argv[1], sizeof(target));
	}
	switch (cli_connect(c, &cc)) {
	case CTL_UP:
		break;
	case CTL_DOWN:
		cli_errx("the daemon is not running (nothing listens on %s): "
		    "nothing to flush", cli_control_path(c));
		return EX_ERR;
	default:
		return EX_ERR;
	}
	snprintf(req, sizeof(req), "flush%s%s", *target ? " " : "", target);
	r = ctl_call(&cc, req, NULL, NULL, msg, sizeof(msg));
	ctl_close(&cc);
	s = cli_safe(msg);
	if (r == 0 && *target)
		printf("%s: scheduled for delivery now\n", target);
	else if (r == 0)
		printf("queue flushed: every deferred message is scheduled "
		    "for delivery now\n");
	else
		cli_errx("flush%s%s: %s%s", *target ? " " : "", target,
		    r == -1 ? "control socket: " : "", s);
	free(s);
	return r == 0 ? EX_OK : EX_ERR;
}

/*
 * The DNSSEC line of `danerelay status` from the reply's "dnssec=STATE
 * dnssec_checked=UNIXTIME dnssec_name=NAME" (control.h), e.g.
 * "DNSSEC: secure (DNSKEY . checked 2026-12-06 14:30:05 UTC)".
 */
static void
status_dnssec_line(const char *msg)
{
	char state[32], name[256], when[64], *s, *n;
	long long t;
	time_t tt;
	struct tm tm;
	const char *p;

	if ((p = strstr(msg, " dnssec=")) == NULL ||
	    sscanf(p, " dnssec=%31s dnssec_checked=%lld dnssec_name=%255s",
	    state, &t, name) != 3) {
		printf("DNSSEC: unknown (the daemon did not say)\n");
		return;
	}
	s = cli_safe(state);
	if (t <= 0) {
		printf("DNSSEC: %s (not checked yet)\n", s);
		free(s);
		return;
	}
	tt = (time_t)t;
	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(when, sizeof(when), "at %lld", t);
	n = cli_safe(name);
	printf("DNSSEC: %s (DNSKEY %s checked %s)\n", s, n, when);
	free(s);
	free(n);
}

/* "sender COUNT START KEY" lines of the "senders" request. */
struct senders {
	char	line[5][CONTROL_LINE_MAX + 1];
	size_t	n;
};

static void
sender_line(const char *line, void *arg)
{
	struct senders *sn = arg;

	if (sn->n < 5 && strncmp(line, "sender ", 7) == 0)
		dr_strlcpy(sn->line[sn->n++], line + 7, sizeof(sn->line[0]));
}

/* The senders nearest sender_rate_limit, when one is set. */
static void
status_senders(struct ctl_client *cc)
{
	struct senders sn;
	char msg[CONTROL_LINE_MAX + 1], key[CONTROL_LINE_MAX + 1], *s;
	char when[64];
	long long start;
	size_t i;
	int count, n;

	memset(&sn, 0, sizeof(sn));
	if (ctl_call(cc, "senders", sender_line, &sn, msg, sizeof(msg)) != 0 ||
	    strcmp(msg, "unlimited") == 0)
		return;
	s = cli_safe(msg);
	printf("Sender limit: sender_rate_limit %s; %s\n", s, sn.n == 0 ?
	    "no sender in a window now" : "nearest to it:");
	free(s);
	for (i = 0; i < sn.n; i++) {
		if (sscanf(sn.line[i], "%d %lld %n", &count, &start, &n) < 2)
			continue;
		dr_strlcpy(key, sn.line[i] + n, sizeof(key));
		s = cli_safe(key);
		fmt_time(when, sizeof(when), (time_t)start);
		printf("  %-40s %d recipients since %s\n", s, count, when);
		free(s);
	}
}

int
cli_status(struct cli *c, int argc, char **argv)
{
	struct ctl_client cc;
	char msg[CONTROL_LINE_MAX + 1], *s;
	unsigned long long nmsg, nactive;
	int r;

	if (argc > 1) {
		cli_errx("status takes no arguments");
		return EX_USAGE;
	}
	switch (cli_connect(c, &cc)) {
	case CTL_UP:
		break;
	case CTL_DOWN:
		printf("danerelayd is not running (nothing listens on %s)\n",
		    cli_control_path(c));
		return EX_ERR;
	default:
		return EX_ERR;
	}
	r = ctl_call(&cc, "status", NULL, NULL, msg, sizeof(msg));
	if (r == 0 && sscanf(msg, "messages=%llu active=%llu", &nmsg,
	    &nactive) == 2) {
		printf("danerelayd is running: %llu message%s in the queue, "
		    "%llu delivery attempt%s in progress\n", nmsg,
		    nmsg == 1 ? "" : "s", nactive, nactive == 1 ? "" : "s");
		status_dnssec_line(msg);
		status_senders(&cc);
		ctl_close(&cc);
		return EX_OK;
	}
	ctl_close(&cc);
	s = cli_safe(r == 0 ? "unexpected reply" : msg);
	cli_errx("status: %s", s);
	free(s);
	return EX_ERR;
}
