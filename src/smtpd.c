/*
 * smtpd.c - the inbound SMTP server: listening sockets, the client limit,
 * settings snapshots, reload and shutdown.  The protocol itself (RFC 5321,
 * RFC 3207, RFC 4954 ...) is in smtpd_session.c.
 *
 * smtpd_new() binds every `listen` address (IPv4 and IPv6, IPv6 sockets
 * are IPV6_V6ONLY so "[::]:25" and "0.0.0.0:25" can coexist) while the
 * daemon is still privileged; smtpd_start() hands them to libevent.  A
 * client beyond smtpd_max_clients gets "421 4.7.0" and is closed at once
 * (RFC 5321 §3.8: a server may refuse service with 421).  So does a
 * client outside allow_clients once only the smtpd_reserved_clients are
 * left, or when its address is over a limit of anvil.c (connections at
 * once, connection rate, blocked after AUTH failures); see accept_cb().
 *
 * Settings live in a reference-counted struct smtpd_conf (smtpd_conf.c).
 * smtpd_reload() builds a new snapshot completely before switching, so a
 * broken auth_file or certificate leaves the old settings in force.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "acl.h"
#include "anvil.h"
#include "senderlimit.h"
#include "auth.h"
#include "config.h"
#include "log.h"
#include "stats.h"
#include "smtpd.h"
#include "smtpd_conf.h"
#include "smtpd_session.h"
#include "tls.h"
#include "util.h"

#define SMTPD_BACKLOG	128

static int
listen_socket(const struct listen_addr *la, char *err, size_t errlen)
{
	int fd, on = 1;
	int family = la->ss.ss_family;

	if ((fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0)) == -1) {
		snprintf(err, errlen, "listen %s: socket: %s", la->text,
		    strerror(errno));
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1 ||
	    (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY,
	    &on, sizeof(on)) == -1)) {
		snprintf(err, errlen, "listen %s: setsockopt: %s", la->text,
		    strerror(errno));
		close(fd);
		return -1;
	}
	if (bind(fd, (const struct sockaddr *)&la->ss, la->len) == -1) {
		snprintf(err, errlen, "listen %s: bind: %s", la->text,
		    strerror(errno));
		close(fd);
		return -1;
	}
	if (listen(fd, SMTPD_BACKLOG) == -1) {
		snprintf(err, errlen, "listen %s: %s", la->text,
		    strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

struct smtpd *
smtpd_new(const struct config *cf, char *err, size_t errlen)
{
	struct smtpd *sd;
	int i, fd;

	if (cf->nlisten <= 0 || cf->nlisten > CONFIG_MAX_LISTEN) {
		snprintf(err, errlen, "no listen address");
		return NULL;
	}
	sd = xcalloc(1, sizeof(*sd));
	TAILQ_INIT(&sd->sessions);
	sd->nall = &sd->nall_own;
	sd->anvil = sd->anvil_own = anvil_new();
	sd->senders = sd->senders_own = senderlimit_new();
	if ((sd->conf = smtpd_conf_new(cf, err, errlen)) == NULL) {
		free(sd);
		return NULL;
	}
	for (i = 0; i < cf->nlisten; i++) {
		if ((fd = listen_socket(&cf->listen[i], err, errlen)) == -1) {
			smtpd_free(sd);
			return NULL;
		}
		sd->listeners[i].fd = fd;
		dr_strlcpy(sd->listeners[i].text, cf->listen[i].text,
		    sizeof(sd->listeners[i].text));
		sd->nlisteners++;
	}
	return sd;
}

struct smtpd *
smtpd_clone(struct smtpd *sd0, const struct config *cf, char *err,
    size_t errlen)
{
	struct smtpd *sd;
	int i;

	sd = xcalloc(1, sizeof(*sd));
	TAILQ_INIT(&sd->sessions);
	sd->nall = sd0->nall;
	sd->anvil = sd0->anvil;
	sd->senders = sd0->senders;
	if ((sd->conf = smtpd_conf_new(cf, err, errlen)) == NULL) {
		free(sd);
		return NULL;
	}
	for (i = 0; i < sd0->nlisteners; i++) {
		if ((sd->listeners[i].fd = fcntl(sd0->listeners[i].fd,
		    F_DUPFD_CLOEXEC, 0)) == -1) {
			snprintf(err, errlen, "%s: dup: %s",
			    sd0->listeners[i].text, strerror(errno));
			smtpd_free(sd);
			return NULL;
		}
		dr_strlcpy(sd->listeners[i].text, sd0->listeners[i].text,
		    sizeof(sd->listeners[i].text));
		sd->nlisteners++;
	}
	return sd;
}

static void
client_addr_text(const struct sockaddr *sa, char *buf, size_t len)
{
	const struct sockaddr_in6 *sin6;

	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)
		    (const void *)sa)->sin_addr, buf, (socklen_t)len);
	else if (sa->sa_family == AF_INET6) {
		sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
			inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], buf,
			    (socklen_t)len);
		else
			inet_ntop(AF_INET6, &sin6->sin6_addr, buf,
			    (socklen_t)len);
	} else
		dr_strlcpy(buf, "?", len);
}

int
smtpd_auth_blocked_clients(const struct smtpd *sd)
{
	return sd == NULL || sd->anvil == NULL ? 0 :
	    (int)anvil_blocked_clients(sd->anvil);
}

size_t
smtpd_top_senders(const struct smtpd *sd, struct senderlimit_entry *out,
    size_t n, int *limit_count, long long *limit_per)
{
	*limit_count = sd->conf->sender_rate.count;
	*limit_per = sd->conf->sender_rate.per;
	if (sd->senders == NULL || sd->conf->sender_rate.count <= 0)
		return 0;
	return senderlimit_top(sd->senders, sd->conf->sender_rate.per,
	    time(NULL), out, n);
}

long long
smtpd_cert_not_after(const struct smtpd *sd)
{
	return sd == NULL || sd->conf == NULL ? 0 : sd->conf->cert_not_after;
}

struct dkim_table *
smtpd_dkim_table(const struct smtpd *sd)
{
	return sd == NULL || sd->conf == NULL ? NULL : sd->conf->dkim;
}

/* A refused connection: one line of reply, no session. */
static void
refuse(struct smtpd *sd, evutil_socket_t fd, const char *text)
{
	char reply[256];
	int n;

	n = snprintf(reply, sizeof(reply), "421 4.7.0 %s Error: %s\r\n",
	    sd->conf->hostname, text);
	if (n > 0 && (size_t)n < sizeof(reply))
		(void)send(fd, reply, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	close(fd);
}

/*
 * Who gets in.  Clients in allow_clients (the local MTA) may use every
 * one of smtpd_max_clients; everybody else only what is left after
 * smtpd_reserved_clients, and per address at most
 * smtpd_client_connection_count_limit at once and
 * smtpd_client_connection_rate_limit per time unit (anvil.c).  So a
 * flood of connections from outside can never lock the local MTA out.
 * A per-address refusal is logged as "refused: ..., client=[ADDR]" (at
 * most once a second per address), the line contrib/fail2ban matches.
 */
/*
 * Take one of the first limit slots of *nall, in one step (workers accept
 * at the same time: a load, then an add, let two of them take the last
 * slot).  1 taken; 0 full, with *seen the count found.
 */
static int
slot_take(_Atomic int *nall, int limit, int *seen)
{
	int n = atomic_load(nall);

	while (n < limit)
		if (atomic_compare_exchange_weak(nall, &n, n + 1))
			return 1;
	*seen = n;
	return 0;
}

static void
accept_cb(struct evconnlistener *evl, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct smtpd *sd = arg;
	struct smtpd_conf *c = sd->conf;
	struct anvil_limits lim;
	struct anvil_result res;
	char addr[INET6_ADDRSTRLEN], more[48];
	int allowed, flags = 0, nall;
	double now;

	if (sd->stopping) {
		close(fd);
		return;
	}
	allowed = acl_match(c->allow, sa);
	if (!slot_take(sd->nall, allowed ? c->max_clients :
	    c->max_clients - c->reserved, &nall)) {
		/* a flood must not fill the log either: one line a
		 * second (per worker) */
		now = mono_now();
		if (now - sd->full_logged_at >= 1.0) {
			client_addr_text(sa, addr, sizeof(addr));
			more[0] = '\0';
			if (sd->full_unlogged > 0)
				snprintf(more, sizeof(more), ", %d more not "
				    "logged", sd->full_unlogged);
			log_warnx("too many clients (%d%s): refusing "
			    "connection from [%s]%s", nall, allowed ? "" :
			    ", the rest is reserved for allow_clients", addr,
			    more);
			sd->full_logged_at = now;
			sd->full_unlogged = 0;
		} else
			sd->full_unlogged++;
		if (!allowed && nall < c->max_clients)
			stats_inc(S_REFUSED_RESERVED);
		refuse(sd, fd, "too many connections, try again later");
		return;
	}
	if (allowed)
		flags |= SMTPD_SESS_ALLOWED;
	else {
		smtpd_anvil_limits(c, &lim);
		anvil_connect(sd->anvil, sa, &lim, &res);
		if (res.verdict == ANVIL_AUTH_BLOCKED) {
			stats_inc(S_REFUSED_AUTH_BLOCKED);
			if (res.log) {
				client_addr_text(sa, addr, sizeof(addr));
				log_warnx("refused: blocked after "
				    "smtpd_auth_failure_limit %d AUTH "
				    "failures (%ds left), client=[%s]",
				    lim.auth_limit, res.value, addr);
			}
			atomic_fetch_sub(sd->nall, 1);
			refuse(sd, fd, "too many failed authentications "
			    "from your address, try again later");
			return;
		}
		if (res.verdict != ANVIL_OK) {
			stats_inc(res.verdict == ANVIL_COUNT ?
			    S_REFUSED_COUNT : S_REFUSED_RATE);
			if (res.log) {
				client_addr_text(sa, addr, sizeof(addr));
				more[0] = '\0';
				if (res.suppressed > 0)
					snprintf(more, sizeof(more), ", %d "
					    "more not logged", res.suppressed);
				if (res.verdict == ANVIL_COUNT)
					log_warnx("refused: connection count "
					    "limit %d reached%s, client=[%s]",
					    lim.count, more, addr);
				else
					log_warnx("refused: connection rate "
					    "limit %d per %llds exceeded%s, "
					    "client=[%s]", lim.rate,
					    lim.rate_unit, more, addr);
			}
			atomic_fetch_sub(sd->nall, 1);
			refuse(sd, fd, "too many connections from your "
			    "address, try again later");
			return;
		}
		if (res.counted)
			flags |= SMTPD_SESS_ANVIL;
	}
	/* the session owns the slot from here (smtpd_session_new gives it
	 * back if it cannot set up) */
	(void)smtpd_session_new(sd, fd, sa, (socklen_t)salen, flags);
}

static void
accept_retry(evutil_socket_t fd, short ev, void *arg)
{
	struct smtpd_listener *l = arg;

	if (l->evl != NULL)
		evconnlistener_enable(l->evl);
}

/*
 * accept() failed (EMFILE, ENFILE, ENOBUFS ...).  The pending connection
 * keeps the socket readable, so retrying at once would spin: pause this
 * listener for a second instead.
 */
static void
accept_error_cb(struct evconnlistener *evl, void *arg)
{
	struct smtpd *sd = arg;
	struct timeval tv = { 1, 0 };
	int e = EVUTIL_SOCKET_ERROR(), i;

	log_warnx("accept: %s (pausing the listener for 1s)",
	    evutil_socket_error_to_string(e));
	for (i = 0; i < sd->nlisteners; i++) {
		if (sd->listeners[i].evl != evl)
			continue;
		if (sd->listeners[i].ev_retry == NULL)
			return;
		evconnlistener_disable(evl);
		if (!sd->stopping)
			evtimer_add(sd->listeners[i].ev_retry, &tv);
	}
}

void
smtpd_set_workq(struct smtpd *sd, struct workq *cpu, struct workq *io,
    struct workq_port *port)
{
	sd->wq_cpu = cpu;
	sd->wq_io = io;
	sd->port = port;
}

int
smtpd_start(struct smtpd *sd, struct event_base *base, struct spool *sp,
    smtpd_message_cb *cb, void *cbarg, char *err, size_t errlen)
{
	int i;

	sd->base = base;
	sd->spool = sp;
	sd->cb = cb;
	sd->cbarg = cbarg;
	for (i = 0; i < sd->nlisteners; i++) {
		/* backlog 0: the socket is already listening */
		sd->listeners[i].evl = evconnlistener_new(base, accept_cb, sd,
		    LEV_OPT_CLOSE_ON_EXEC, 0, sd->listeners[i].fd);
		if (sd->listeners[i].evl == NULL) {
			snprintf(err, errlen, "%s: cannot listen",
			    sd->listeners[i].text);
			return -1;
		}
		evconnlistener_set_error_cb(sd->listeners[i].evl,
		    accept_error_cb);
		sd->listeners[i].ev_retry = evtimer_new(base, accept_retry,
		    &sd->listeners[i]);
	}
	return 0;
}

int
smtpd_reload(struct smtpd *sd, const struct config *cf, char *err,
    size_t errlen)
{
	struct smtpd_conf *c;

	if ((c = smtpd_conf_new(cf, err, errlen)) == NULL)
		return -1;
	smtpd_conf_unref(sd->conf);
	sd->conf = c;
	log_info("smtpd: settings reloaded (auth users: %zu, STARTTLS: %s)",
	    auth_count(c->auth), c->tls != NULL ? "yes" : "no");
	return 0;
}

void
smtpd_stop(struct smtpd *sd)
{
	int i;

	if (sd == NULL || sd->stopping)
		return;
	sd->stopping = 1;
	for (i = 0; i < sd->nlisteners; i++) {
		if (sd->listeners[i].ev_retry != NULL)
			evtimer_del(sd->listeners[i].ev_retry);
		if (sd->listeners[i].evl != NULL)
			evconnlistener_disable(sd->listeners[i].evl);
	}
	smtpd_sessions_shutdown(sd);
}

int
smtpd_sessions(const struct smtpd *sd)
{
	return sd == NULL ? 0 : atomic_load(sd->nall);
}

void
smtpd_free(struct smtpd *sd)
{
	int i;

	if (sd == NULL)
		return;
	smtpd_sessions_free(sd);
	for (i = 0; i < sd->nlisteners; i++) {
		if (sd->listeners[i].ev_retry != NULL)
			event_free(sd->listeners[i].ev_retry);
		if (sd->listeners[i].evl != NULL)
			evconnlistener_free(sd->listeners[i].evl);
		if (sd->listeners[i].fd != -1)
			close(sd->listeners[i].fd);
	}
	smtpd_conf_unref(sd->conf);
	anvil_free(sd->anvil_own);
	senderlimit_free(sd->senders_own);
	free(sd);
}
