/*
 * milter.c - the Sendmail milter protocol (version 6, as Postfix speaks
 * it), client side: content filters such as OpenDKIM or rspamd's milter
 * proxy worker see each inbound message and may reject it, hold it or
 * change it before the "250".
 *
 * References: Postfix's MILTER_README (stages, macros and their default
 * lists, milter_default_action, the timeouts) and libmilter's mfdef.h
 * (packet layout, SMFIC_/SMFIR_ codes, SMFIF_ actions, SMFIP_ steps).
 * A packet is a 4-octet length in network order (the command octet
 * included), one command octet and its payload; strings are
 * NUL-terminated.
 *
 * What this module owns:
 *   - the codec: milter_reply_parse() takes one reply apart and checks
 *     it (pure, the fuzz target's entry), milter_pkt() builds commands;
 *   - struct milter_conf: the milter list and timeouts of a settings
 *     snapshot (smtpd_conf.c);
 *   - struct milter_chain: the connections of one inbound session, one
 *     per milter, opened at the session's first MAIL and kept for its
 *     later messages; SMFIC_ABORT ends a transaction without a message.
 *
 * A stage (MAIL, RCPT, the message) walks the milters in their order.
 * What a milter is sent is decided by one table per stage (stage_cmds)
 * and the steps it negotiated away (SMFIP_NO*: not sent, SMFIP_NR_*:
 * sent, no reply awaited).  The macros of each step come from one table
 * (macro_tab, Postfix's default milter_*_macros).  At the end of the
 * message each milter's changes (headers, recipients, sender, body) are
 * applied to the message before the next milter sees it, so a signer
 * listed last signs the final text.
 *
 * A milter that cannot be reached, does not answer within its timeout
 * or answers nonsense gets milter_default_action: accept (go on without
 * it for the rest of the session), tempfail or reject (that answer for
 * this and every later stage of the session).  Every wait has a timer:
 * milter_connect_timeout for the connection and the option negotiation,
 * milter_command_timeout for a command, milter_content_timeout for the
 * body chunks and the end of message (wait_timeout).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "log.h"
#include "milter.h"
#include "stats.h"
#include "util.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "?"
#endif

/*
 * The codec
 */

static uint32_t
get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void
put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* The next NUL-terminated string of p[0..len-1] from *off on, or NULL. */
static const char *
get_str(const unsigned char *p, size_t len, size_t *off)
{
	const unsigned char *nul;
	const char *s;

	if (*off >= len || (nul = memchr(p + *off, '\0', len - *off)) == NULL)
		return NULL;
	s = (const char *)p + *off;
	*off = (size_t)(nul - p) + 1;
	return s;
}

static int
valid_hname(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f ||
		    *s == ':')
			return 0;
	return 1;
}

/* What a reply's payload holds, by its code. */
enum payload { P_NONE, P_OPTNEG, P_HDR, P_IHDR, P_STR, P_STR2, P_CODE,
    P_DATA, P_SYMLIST, P_BAD };

static const struct {
	char		 cmd;
	enum payload	 payload;
} reply_tab[] = {
	{ SMFIR_ACCEPT,		P_NONE },
	{ SMFIR_CONTINUE,	P_NONE },
	{ SMFIR_DISCARD,	P_NONE },
	{ SMFIR_REJECT,		P_NONE },
	{ SMFIR_TEMPFAIL,	P_NONE },
	{ SMFIR_SKIP,		P_NONE },
	{ SMFIR_PROGRESS,	P_NONE },
	{ SMFIR_SHUTDOWN,	P_NONE },
	{ SMFIR_CONN_FAIL,	P_NONE },
	{ SMFIR_OPTNEG,		P_OPTNEG },
	{ SMFIR_ADDHEADER,	P_HDR },
	{ SMFIR_INSHEADER,	P_IHDR },
	{ SMFIR_CHGHEADER,	P_IHDR },
	{ SMFIR_ADDRCPT,	P_STR },
	{ SMFIR_DELRCPT,	P_STR },
	{ SMFIR_QUARANTINE,	P_STR },
	{ SMFIR_ADDRCPT_PAR,	P_STR2 },
	{ SMFIR_CHGFROM,	P_STR2 },
	{ SMFIR_REPLYCODE,	P_CODE },
	{ SMFIR_REPLBODY,	P_DATA },
	{ SMFIR_SETSYMLIST,	P_SYMLIST },
};

int
milter_replycode_check(const char *text, int *code)
{
	const char *p = text, *eol;
	int c = -1, k;

	for (;;) {
		if (!isdigit((unsigned char)p[0]) ||
		    !isdigit((unsigned char)p[1]) ||
		    !isdigit((unsigned char)p[2]) ||
		    (p[0] != '4' && p[0] != '5'))
			return -1;
		k = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
		if (c != -1 && k != c)
			return -1;
		c = k;
		eol = strstr(p, "\r\n");
		if (p[3] == '\0' && eol == NULL)
			break;
		if (p[3] != ' ' && p[3] != '-')
			return -1;
		if (eol == NULL) {
			if (p[3] != ' ' || strpbrk(p, "\r\n") != NULL)
				return -1;
			break;
		}
		if (p[3] != '-' || memchr(p, '\r', (size_t)(eol - p)) != NULL ||
		    memchr(p, '\n', (size_t)(eol - p)) != NULL)
			return -1;
		p = eol + 2;
	}
	*code = c;
	return 0;
}

int
milter_reply_parse(const unsigned char *buf, size_t len,
    struct milter_reply *r, size_t *used, char *why, size_t whylen)
{
	const unsigned char *p;
	uint32_t plen;
	size_t i, n, off = 0;
	enum payload pl = P_BAD;

	memset(r, 0, sizeof(*r));
	if (len < 4)
		return 0;
	plen = get32(buf);
	if (plen == 0 || plen > MILTER_PKT_MAX) {
		snprintf(why, whylen, "bad packet length %lu",
		    (unsigned long)plen);
		return -1;
	}
	if (len - 4 < plen)
		return 0;
	*used = 4 + (size_t)plen;
	r->cmd = (char)buf[4];
	p = buf + 5;
	n = plen - 1;
	for (i = 0; i < sizeof(reply_tab) / sizeof(reply_tab[0]); i++)
		if (reply_tab[i].cmd == r->cmd)
			pl = reply_tab[i].payload;
	switch (pl) {
	case P_BAD:
		snprintf(why, whylen, "unknown reply code 0x%02x",
		    (unsigned)(unsigned char)r->cmd);
		return -1;
	case P_NONE:
		if (n != 0)
			goto bad;
		return 1;
	case P_OPTNEG:
		if (n < 12)
			goto bad;
		r->version = get32(p);
		r->actions = get32(p + 4);
		r->protocol = get32(p + 8);
		/* then the macro lists it wants (smfi_setsymlist): a stage
		 * (4 octets) and a NUL-terminated list, repeated */
		for (off = 12; off < n; ) {
			if (n - off < 4 || get32(p + off) >= MILTER_NSTAGES)
				goto bad;
			off += 4;
			if (get_str(p, n, &off) == NULL)
				goto bad;
		}
		if (n > 12) {
			r->syms = p + 12;
			r->symslen = n - 12;
		}
		return 1;
	case P_IHDR:
		if (n < 4)
			goto bad;
		r->index = get32(p);
		off = 4;
		/* FALLTHROUGH */
	case P_HDR:
		if ((r->name = get_str(p, n, &off)) == NULL ||
		    (r->value = get_str(p, n, &off)) == NULL || off != n ||
		    !valid_hname(r->name))
			goto bad;
		return 1;
	case P_STR:
		if ((r->addr = get_str(p, n, &off)) == NULL || off != n)
			goto bad;
		if (r->cmd != SMFIR_QUARANTINE && r->addr[0] == '\0')
			goto bad;
		return 1;
	case P_STR2:
		if ((r->addr = get_str(p, n, &off)) == NULL || r->addr[0] ==
		    '\0')
			goto bad;
		if (off < n && ((r->args = get_str(p, n, &off)) == NULL ||
		    off != n))
			goto bad;
		return 1;
	case P_CODE:
		if ((r->addr = get_str(p, n, &off)) == NULL || off != n ||
		    milter_replycode_check(r->addr, &r->code) == -1)
			goto bad;
		return 1;
	case P_DATA:
		r->data = p;
		r->len = n;
		return 1;
	case P_SYMLIST:
		if (n < 4)
			goto bad;
		r->index = get32(p);
		off = 4;
		if ((r->name = get_str(p, n, &off)) == NULL || off != n)
			goto bad;
		return 1;
	}
 bad:
	snprintf(why, whylen, "malformed reply '%c' (%zu octets)",
	    isprint((unsigned char)r->cmd) ? r->cmd : '?', n);
	return -1;
}

void
milter_pkt(struct evbuffer *out, char cmd, const void *data, size_t len)
{
	unsigned char h[5];

	put32(h, (uint32_t)len + 1);
	h[4] = (unsigned char)cmd;
	evbuffer_add(out, h, sizeof(h));
	if (len > 0)
		evbuffer_add(out, data, len);
}

/*
 * Macros.  The names danerelay has a value for, and Postfix's default
 * milter_*_macros lists (postconf(5)), by stage.  A milter may ask for
 * other lists in its SMFIR_OPTNEG reply; a name without a value at that
 * point (no TLS, not authenticated, ...) or unknown is not sent.
 */
enum macro_src { M_J, M_DAEMON, M_DAEMON_ADDR, M_DAEMON_PORT, M_V,
    M_UNDERSCORE, M_CLIENT_ADDR, M_CLIENT_PORT, M_CLIENT_NAME, M_TLSV,
    M_CIPHER, M_BITS, M_CERT, M_I, M_AUTH_TYPE, M_AUTH_AUTHEN,
    M_AUTH_AUTHOR, M_MAIL_ADDR, M_MAIL_HOST, M_MAILER, M_RCPT_ADDR,
    M_RCPT_HOST };

static const struct {
	const char	*name;
	enum macro_src	 src;
} macro_names[] = {
	{ "i",			M_I },
	{ "j",			M_J },
	{ "v",			M_V },
	{ "_",			M_UNDERSCORE },
	{ "{auth_authen}",	M_AUTH_AUTHEN },
	{ "{auth_author}",	M_AUTH_AUTHOR },
	{ "{auth_type}",	M_AUTH_TYPE },
	{ "{cert_issuer}",	M_CERT },
	{ "{cert_subject}",	M_CERT },
	{ "{cipher}",		M_CIPHER },
	{ "{cipher_bits}",	M_BITS },
	{ "{client_addr}",	M_CLIENT_ADDR },
	{ "{client_name}",	M_CLIENT_NAME },
	{ "{client_port}",	M_CLIENT_PORT },
	{ "{client_ptr}",	M_CLIENT_NAME },
	{ "{daemon_addr}",	M_DAEMON_ADDR },
	{ "{daemon_name}",	M_DAEMON },
	{ "{daemon_port}",	M_DAEMON_PORT },
	{ "{mail_addr}",	M_MAIL_ADDR },
	{ "{mail_host}",	M_MAIL_HOST },
	{ "{mail_mailer}",	M_MAILER },
	{ "{rcpt_addr}",	M_RCPT_ADDR },
	{ "{rcpt_host}",	M_RCPT_HOST },
	{ "{rcpt_mailer}",	M_MAILER },
	{ "{tls_version}",	M_TLSV },
};

static const char *const macro_default[MILTER_NSTAGES] = {
	[MILTER_M_CONNECT] =	"j {daemon_name} {daemon_addr} v _",
	[MILTER_M_HELO] =	"{tls_version} {cipher} {cipher_bits} "
				"{cert_subject} {cert_issuer}",
	[MILTER_M_MAIL] =	"i {auth_type} {auth_authen} {auth_author} "
				"{mail_addr} {mail_host} {mail_mailer}",
	[MILTER_M_RCPT] =	"i {rcpt_addr} {rcpt_host} {rcpt_mailer}",
	[MILTER_M_DATA] =	"i",
	[MILTER_M_EOM] =	"i",
	[MILTER_M_EOH] =	"i",
};

static const char *const macro_setting[MILTER_NSTAGES] = {
	"milter_connect_macros", "milter_helo_macros", "milter_mail_macros",
	"milter_rcpt_macros", "milter_data_macros",
	"milter_end_of_data_macros", "milter_end_of_header_macros",
};

/* The next name of a list (space or comma separated) into name; 0 at
 * the end.  Longer names are cut (and then unknown). */
static int
macro_next(const char **list, char *name, size_t len)
{
	const char *p = *list;
	size_t n;

	p += strspn(p, " ,\t");
	if (*p == '\0')
		return 0;
	n = strcspn(p, " ,\t");
	snprintf(name, len, "%.*s", (int)n, p);
	*list = p + n;
	return 1;
}

static int
macro_find(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(macro_names) / sizeof(macro_names[0]); i++)
		if (strcmp(macro_names[i].name, name) == 0)
			return (int)i;
	return -1;
}

/*
 * Settings
 */

struct milter_spec {
	char			*text;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
};

struct milter_conf {
	struct milter_spec	*v;
	size_t			 n;
	struct milter_params	 p;
	char			*hostname;
	char			*macros[MILTER_NSTAGES];	/* by stage */
};

/* One entry: inet:HOST:PORT, inet:PORT@HOST, inet6:..., unix:/path. */
static int
spec_parse(const char *s, struct milter_spec *sp, char *why, size_t whylen)
{
	char host[256], *colon;
	const char *at, *port;
	struct sockaddr_in *sin = (struct sockaddr_in *)(void *)&sp->ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)&sp->ss;
	struct sockaddr_un *sun = (struct sockaddr_un *)(void *)&sp->ss;
	long pn;
	char *end;

	memset(&sp->ss, 0, sizeof(sp->ss));
	if (strncmp(s, "unix:", 5) == 0 || strncmp(s, "local:", 6) == 0) {
		s = strchr(s, ':') + 1;
		if (s[0] != '/' || strlen(s) >= sizeof(sun->sun_path)) {
			snprintf(why, whylen, "\"%s\": want an absolute socket "
			    "path", s);
			return -1;
		}
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, s, strlen(s) + 1);
		sp->sslen = sizeof(*sun);
		return 0;
	}
	if (strncmp(s, "inet:", 5) == 0)
		s += 5;
	else if (strncmp(s, "inet6:", 6) == 0)
		s += 6;
	else {
		snprintf(why, whylen, "\"%s\": want inet:HOST:PORT or "
		    "unix:/path", s);
		return -1;
	}
	if ((at = strchr(s, '@')) != NULL) {		/* PORT@HOST */
		if ((size_t)(at - s) >= 8 || strlen(at + 1) >= sizeof(host))
			goto bad;
		dr_strlcpy(host, at + 1, sizeof(host));
		port = s;
	} else {					/* HOST:PORT */
		if (strlen(s) >= sizeof(host))
			goto bad;
		dr_strlcpy(host, s, sizeof(host));
		if ((colon = strrchr(host, ':')) == NULL)
			goto bad;
		*colon = '\0';
		port = s + (colon - host) + 1;
	}
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	errno = 0;
	pn = strtol(port, &end, 10);
	if (errno != 0 || pn < 1 || pn > 65535 || (*end != '\0' &&
	    *end != '@'))
		goto bad;
	if (strcmp(host, "localhost") == 0)
		dr_strlcpy(host, "127.0.0.1", sizeof(host));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)pn);
		sp->sslen = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)pn);
		sp->sslen = sizeof(*sin6);
		return 0;
	}
 bad:
	snprintf(why, whylen, "\"%s\": want inet:ADDRESS:PORT (a numeric "
	    "address or localhost) or unix:/path", s);
	return -1;
}

/* Calls fn for each entry of a comma- or space-separated list. */
static int
list_walk(const char *list, int (*fn)(const char *, void *, char *, size_t),
    void *arg, char *why, size_t whylen)
{
	char *copy = xstrdup(list != NULL ? list : ""), *tok, *save = NULL;
	int rc = 0;

	for (tok = strtok_r(copy, ", \t", &save); tok != NULL && rc == 0;
	    tok = strtok_r(NULL, ", \t", &save))
		rc = fn(tok, arg, why, whylen);
	free(copy);
	return rc;
}

static int
check_one(const char *tok, void *arg, char *why, size_t whylen)
{
	struct milter_spec sp;

	(void)arg;
	return spec_parse(tok, &sp, why, whylen);
}

int
milter_list_check(const char *list, char *why, size_t whylen)
{
	return list_walk(list, check_one, NULL, why, whylen);
}

static int
add_one(const char *tok, void *arg, char *why, size_t whylen)
{
	struct milter_conf *mc = arg;
	struct milter_spec sp;

	if (spec_parse(tok, &sp, why, whylen) == -1)
		return -1;
	sp.text = xstrdup(tok);
	mc->v = xrealloc(mc->v, (mc->n + 1) * sizeof(*mc->v));
	mc->v[mc->n++] = sp;
	return 0;
}

struct milter_conf *
milter_conf_new(const struct milter_params *p, char *err, size_t errlen)
{
	struct milter_conf *mc = xcalloc(1, sizeof(*mc));
	char why[300], name[64];
	const char *list;
	int st;

	mc->p = *p;
	mc->p.list = NULL;
	mc->hostname = xstrdup(p->hostname != NULL ? p->hostname :
	    "localhost");
	mc->p.hostname = mc->hostname;
	if (mc->p.protocol < 2 || mc->p.protocol > 6)
		mc->p.protocol = 6;
	for (st = 0; st < MILTER_NSTAGES; st++) {
		mc->macros[st] = xstrdup(p->macros[st] != NULL ?
		    p->macros[st] : macro_default[st]);
		mc->p.macros[st] = NULL;
		list = mc->macros[st];
		while (macro_next(&list, name, sizeof(name)))
			if (macro_find(name) == -1)
				log_warnx("%s: %s: danerelay has no such "
				    "macro: never sent", macro_setting[st],
				    name);
	}
	if (list_walk(p->list, add_one, mc, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "%s", why);
		milter_conf_free(mc);
		return NULL;
	}
	return mc;
}

void
milter_conf_free(struct milter_conf *mc)
{
	size_t i;
	int st;

	if (mc == NULL)
		return;
	for (i = 0; i < mc->n; i++)
		free(mc->v[i].text);
	free(mc->v);
	free(mc->hostname);
	for (st = 0; st < MILTER_NSTAGES; st++)
		free(mc->macros[st]);
	free(mc);
}

size_t
milter_conf_count(const struct milter_conf *mc)
{
	return mc != NULL ? mc->n : 0;
}

/*
 * The chain
 */

enum mstate { MS_NONE, MS_CONNECTING, MS_OPTNEG, MS_READY, MS_DEAD };
enum mwait { W_NONE, W_CONNECT, W_OPTNEG, W_CMD, W_BODY, W_EOM };
enum stage { ST_NONE, ST_MAIL, ST_RCPT, ST_MSG };
enum step { STEP_WAIT, STEP_NEXT, STEP_DONE };

/* One parsed header field of the message stage. */
struct mhdr {
	char		*name;
	char		*value;		/* after the colon, CRLF folds kept */
};

struct milter {
	struct milter_chain	*ch;
	const struct milter_spec *spec;
	struct bufferevent	*bev;
	struct event		*ev_timer;
	enum mstate		 st;
	enum mwait		 wait;
	char			 waitcmd;	/* the command waited for */
	uint32_t		 version, actions, proto;	/* negotiated */
	int			 connect_done, helo_done;
	int			 in_tx;		/* MAIL sent, no EOM reply */
	int			 skip_session;	/* accepted at connect/HELO */
	int			 skip_msg;	/* accepted in this message */
	int			 failed;	/* broke outside a stage */
	char			*syms[MILTER_NSTAGES];	/* macro lists it
						 * asked for, NULL: the conf's */
};

struct milter_chain {
	struct event_base	*base;
	const struct milter_conf *mc;
	struct milter		*m;
	size_t			 n;
	int			 sticky;	/* a failure: every later stage */
	struct milter_verdict	 sticky_v;	/*   gets this */
	int			 tx_discard;	/* discard asked before EOM */

	/* the running stage */
	enum stage		 stage;
	size_t			 cur;		/* milter */
	int			 step;		/* of the stage, for cur */
	struct milter_client	 cl;
	char			*arg1, *arg2;	/* sender/rcpt, args */
	char			*margs;		/* MAIL's ESMTP arguments */
	struct milter_msg	*msg;
	struct mhdr		*hdrs;		/* msg's header fields */
	size_t			 nhdr;
	size_t			 hdr_i;
	size_t			 body_off, body_pos;
	struct evbuffer		*newbody;	/* SMFIR_REPLBODY so far */
	int			 body_cr;	/*   it ended in CR */
	size_t			 nchanges;	/* of this message, all milters */
	size_t			 change_bytes;
	int			 hdr_changed;
	milter_done_cb		*cb;
	void			*cbarg;
	struct milter_verdict	 v;
	struct event		*ev_done;
};

static void chain_run(struct milter_chain *);
static void chain_finish(struct milter_chain *, enum milter_act,
    const char *);

static const char *
macro_value(struct milter_chain *ch, enum macro_src src, char *buf,
    size_t len)
{
	const struct milter_client *cl = &ch->cl;
	const char *at;

	switch (src) {
	case M_J:
		return ch->mc->hostname;
	case M_DAEMON:
		return "danerelay";
	case M_DAEMON_ADDR:
		return cl->daemon_addr;
	case M_DAEMON_PORT:
		if (cl->daemon_addr == NULL)
			return NULL;
		snprintf(buf, len, "%d", cl->daemon_port);
		return buf;
	case M_V:
		return "danerelay " PACKAGE_VERSION;
	case M_UNDERSCORE:
		/* Postfix's "name [address]"; names are not looked up
		 * (as Postfix with smtpd_peername_lookup = no) */
		snprintf(buf, len, "%s [%s]", cl->name != NULL ? cl->name :
		    "unknown", cl->addr);
		return buf;
	case M_CLIENT_ADDR:
		return cl->addr;
	case M_CLIENT_PORT:
		if (cl->ss.ss_family == AF_INET)
			snprintf(buf, len, "%u", ntohs(((const struct
			    sockaddr_in *)(const void *)&cl->ss)->sin_port));
		else if (cl->ss.ss_family == AF_INET6)
			snprintf(buf, len, "%u", ntohs(((const struct
			    sockaddr_in6 *)(const void *)&cl->ss)->sin6_port));
		else
			return NULL;
		return buf;
	case M_CLIENT_NAME:
		return cl->name != NULL ? cl->name : "unknown";
	case M_TLSV:
		return cl->tls_version;
	case M_CIPHER:
		return cl->tls_version != NULL ? cl->cipher : NULL;
	case M_BITS:
		if (cl->tls_version == NULL)
			return NULL;
		snprintf(buf, len, "%d", cl->cipher_bits);
		return buf;
	case M_CERT:
		return NULL;	/* clients are not asked for certificates */
	case M_I:
		return cl->queue_id;
	case M_AUTH_TYPE:
		return cl->auth_authen != NULL ? cl->auth_type : NULL;
	case M_AUTH_AUTHEN:
		return cl->auth_authen;
	case M_AUTH_AUTHOR:
		return cl->auth_authen != NULL ? cl->auth_author : NULL;
	case M_MAIL_ADDR:
	case M_RCPT_ADDR:
		return ch->arg1;
	case M_MAILER:
		return "smtp";
	case M_MAIL_HOST:
	case M_RCPT_HOST:
		/* the next-hop destination: the address's domain */
		at = ch->arg1 != NULL ? strrchr(ch->arg1, '@') : NULL;
		return at != NULL && at[1] != '\0' ? at + 1 : NULL;
	}
	return NULL;
}

/* The macros of cmd, as one SMFIC_MACRO packet: the milter's own list
 * for the stage if it asked for one, else milter_*_macros. */
static void
send_macros(struct milter *m, char cmd)
{
	static const char stage_cmd[MILTER_NSTAGES] = {
		[MILTER_M_CONNECT] = SMFIC_CONNECT, [MILTER_M_HELO] = SMFIC_HELO,
		[MILTER_M_MAIL] = SMFIC_MAIL, [MILTER_M_RCPT] = SMFIC_RCPT,
		[MILTER_M_DATA] = SMFIC_DATA, [MILTER_M_EOM] = SMFIC_BODYEOB,
		[MILTER_M_EOH] = SMFIC_EOH,
	};
	struct evbuffer *b, *out;
	char buf[INET6_ADDRSTRLEN * 2 + 16], name[64];
	const char *v, *list;
	int st, k;

	for (st = 0; st < MILTER_NSTAGES && stage_cmd[st] != cmd; st++)
		;
	if (st == MILTER_NSTAGES || (b = evbuffer_new()) == NULL)
		return;
	list = m->syms[st] != NULL ? m->syms[st] : m->ch->mc->macros[st];
	evbuffer_add(b, &cmd, 1);
	while (macro_next(&list, name, sizeof(name))) {
		if ((k = macro_find(name)) == -1 || (v = macro_value(m->ch,
		    macro_names[k].src, buf, sizeof(buf))) == NULL)
			continue;
		evbuffer_add(b, name, strlen(name) + 1);
		evbuffer_add(b, v, strlen(v) + 1);
	}
	out = bufferevent_get_output(m->bev);
	milter_pkt(out, SMFIC_MACRO, evbuffer_pullup(b, -1),
	    evbuffer_get_length(b));
	evbuffer_free(b);
}

/* The macro lists a milter asked for (the parser checked their form). */
static void
milter_symlists(struct milter *m, const unsigned char *p, size_t len)
{
	size_t off = 0, n;
	uint32_t st;

	while (off + 4 < len) {
		st = get32(p + off);
		off += 4;
		n = strlen((const char *)p + off);
		free(m->syms[st]);
		m->syms[st] = xstrdup((const char *)p + off);
		log_debug("milter %s: asks for %s = %s", m->spec->text,
		    macro_setting[st], m->syms[st]);
		off += n + 1;
	}
}

static void
syms_free(struct milter *m)
{
	int st;

	for (st = 0; st < MILTER_NSTAGES; st++) {
		free(m->syms[st]);
		m->syms[st] = NULL;
	}
}

static void
arm_timer(struct milter *m, long long secs)
{
	struct timeval tv = { (time_t)secs, 0 };

	evtimer_add(m->ev_timer, &tv);
}

static void
milter_close(struct milter *m, enum mstate st)
{
	if (m->bev != NULL)
		bufferevent_free(m->bev);
	m->bev = NULL;
	if (m->ev_timer != NULL)
		evtimer_del(m->ev_timer);
	m->st = st;
	m->wait = W_NONE;
	m->connect_done = m->helo_done = m->in_tx = 0;
	syms_free(m);
}

/* The current milter broke: milter_default_action decides. */
static void
milter_fail(struct milter *m, const char *why)
{
	struct milter_chain *ch = m->ch;
	static const char *const names[] = { "tempfail", "accept", "reject" };
	enum milter_default d = ch->mc->p.def;

	log_warnx("milter %s: %s; milter_default_action = %s", m->spec->text,
	    why, names[d]);
	stats_inc(S_MILTER_FAILURES);
	milter_close(m, MS_DEAD);
	if (ch->stage == ST_NONE || &ch->m[ch->cur] != m) {
		m->failed = 1;		/* decided at its next stage */
		return;
	}
	m->failed = 0;
	if (d == MILTER_DFLT_ACCEPT) {
		ch->cur++;
		ch->step = 0;
		chain_run(ch);
		return;
	}
	ch->sticky = 1;
	ch->sticky_v.act = d == MILTER_DFLT_REJECT ? MILTER_REJECT :
	    MILTER_TEMPFAIL;
	dr_strlcpy(ch->sticky_v.reply, d == MILTER_DFLT_REJECT ?
	    "550 5.7.1 Command rejected" :
	    "451 4.7.1 Service unavailable - try again later",
	    sizeof(ch->sticky_v.reply));
	chain_finish(ch, ch->sticky_v.act, ch->sticky_v.reply);
}

/*
 * The limit of one wait, as Postfix's: milter_connect_timeout for the
 * connection and the option negotiation, milter_content_timeout for the
 * body chunks and the end of message (a filter may scan the whole
 * message there), milter_command_timeout for the rest.
 */
static long long
wait_timeout(const struct milter_conf *mc, enum mwait w)
{
	switch (w) {
	case W_CONNECT:
	case W_OPTNEG:
		return mc->p.connect_timeout;
	case W_BODY:
	case W_EOM:
		return mc->p.content_timeout;
	default:
		return mc->p.command_timeout;
	}
}

/* Send cmd; wait for its reply unless the milter said it sends none. */
static enum step
send_cmd(struct milter *m, char cmd, const void *data, size_t len,
    uint32_t nr_flag, enum mwait w)
{
	struct milter_conf const *mc = m->ch->mc;

	milter_pkt(bufferevent_get_output(m->bev), cmd, data, len);
	if (nr_flag != 0 && (m->proto & nr_flag))
		return STEP_NEXT;
	m->wait = w;
	m->waitcmd = cmd;
	arm_timer(m, wait_timeout(mc, w));
	return STEP_WAIT;
}

static void milter_read_cb(struct bufferevent *, void *);
static void milter_event_cb(struct bufferevent *, short, void *);

static void
milter_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct milter *m = arg;
	char why[128];

	(void)fd;
	(void)what;
	snprintf(why, sizeof(why), "%s", m->wait == W_CONNECT ?
	    "connect timeout" : m->wait == W_OPTNEG ? "connect timeout "
	    "(option negotiation)" : m->wait == W_BODY || m->wait == W_EOM ?
	    "content timeout" : "command timeout");
	milter_fail(m, why);
}

static enum step
milter_connect(struct milter *m)
{
	struct milter_chain *ch = m->ch;
	evutil_socket_t fd;
	int one = 1;

	m->bev = bufferevent_socket_new(ch->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (m->bev == NULL) {
		milter_fail(m, "cannot make a socket");
		return STEP_WAIT;
	}
	bufferevent_setcb(m->bev, milter_read_cb, NULL, milter_event_cb, m);
	m->st = MS_CONNECTING;
	m->wait = W_CONNECT;
	arm_timer(m, ch->mc->p.connect_timeout);
	if (bufferevent_socket_connect(m->bev,
	    (struct sockaddr *)(void *)&m->spec->ss, (int)m->spec->sslen) ==
	    -1) {
		milter_fail(m, "connect failed");
		return STEP_WAIT;
	}
	/* Commands are small and each waits for its reply: none is held
	 * back by Nagle's algorithm. */
	if (m->spec->ss.ss_family != AF_UNIX && (fd =
	    bufferevent_getfd(m->bev)) != -1 && setsockopt(fd, IPPROTO_TCP,
	    TCP_NODELAY, &one, sizeof(one)) == -1)
		log_debug("milter %s: TCP_NODELAY: %s", m->spec->text,
		    strerror(errno));
	bufferevent_enable(m->bev, EV_READ | EV_WRITE);
	return STEP_WAIT;
}

/*
 * The steps protocol version ver has (Postfix's milter8.c masks): a
 * milter is offered, and sent, only those - libmilter may hang up on a
 * command its version does not know.  Version 5 was never released; it
 * gets 4's.  SMFIP_NR_HDR (libmilter's older SMFIP_NOHREPL) is in every
 * version libmilter speaks, so a milter may ask for it at any.
 */
static uint32_t
version_steps(uint32_t ver)
{
	uint32_t steps = SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOMAIL |
	    SMFIP_NORCPT | SMFIP_NOBODY | SMFIP_NOHDRS | SMFIP_NOEOH;

	if (ver >= 6)
		return SMFIP_CLIENT;
	if (ver >= 3)
		steps |= SMFIP_NOUNKNOWN;
	if (ver >= 4)
		steps |= SMFIP_NODATA;
	return steps;
}

/* Every version is offered every action, as Postfix does: the actions
 * field is as old as the protocol, and libmilter refuses an MTA that
 * lacks one its filter registered for (SMFIF_CHGFROM, say). */
static enum step
send_optneg(struct milter *m)
{
	unsigned char p[12];
	int ver = m->ch->mc->p.protocol;

	put32(p, (uint32_t)ver);
	put32(p + 4, SMFIF_ALL);
	put32(p + 8, version_steps((uint32_t)ver));
	m->st = MS_OPTNEG;
	return send_cmd(m, SMFIC_OPTNEG, p, sizeof(p), 0, W_OPTNEG);
}

static enum step
send_connect(struct milter *m)
{
	const struct milter_client *cl = &m->ch->cl;
	const struct sockaddr_in *sin;
	const struct sockaddr_in6 *sin6;
	struct evbuffer *b = evbuffer_new();
	char host[INET6_ADDRSTRLEN + 2], fam;
	uint16_t port = 0;
	enum step r;

	if (b == NULL)
		return STEP_NEXT;
	if (cl->name != NULL)
		dr_strlcpy(host, cl->name, sizeof(host));
	else
		snprintf(host, sizeof(host), "[%s]", cl->addr);
	evbuffer_add(b, host, strlen(host) + 1);
	if (cl->ss.ss_family == AF_INET) {
		sin = (const struct sockaddr_in *)(const void *)&cl->ss;
		fam = '4';
		port = sin->sin_port;
	} else if (cl->ss.ss_family == AF_INET6) {
		sin6 = (const struct sockaddr_in6 *)(const void *)&cl->ss;
		fam = strchr(cl->addr, ':') != NULL ? '6' : '4';
		port = sin6->sin6_port;
	} else
		fam = 'U';
	evbuffer_add(b, &fam, 1);
	if (fam != 'U') {
		evbuffer_add(b, &port, 2);	/* network order already */
		evbuffer_add(b, cl->addr, strlen(cl->addr) + 1);
	} else
		evbuffer_add(b, "", 1);
	send_macros(m, SMFIC_CONNECT);
	r = send_cmd(m, SMFIC_CONNECT, evbuffer_pullup(b, -1),
	    evbuffer_get_length(b), SMFIP_NR_CONN, W_CMD);
	evbuffer_free(b);
	return r;
}

/* A command with NUL-terminated strings (up to two, plus args split on
 * spaces) and its macros. */
static enum step
send_strs(struct milter *m, char cmd, const char *a, const char *args,
    uint32_t nr_flag)
{
	struct evbuffer *b = evbuffer_new();
	char *copy, *tok, *save = NULL;
	enum step r;

	if (b == NULL)
		return STEP_NEXT;
	evbuffer_add(b, a, strlen(a) + 1);
	if (args != NULL && *args != '\0') {
		copy = xstrdup(args);
		for (tok = strtok_r(copy, " ", &save); tok != NULL;
		    tok = strtok_r(NULL, " ", &save))
			evbuffer_add(b, tok, strlen(tok) + 1);
		free(copy);
	}
	send_macros(m, cmd);
	r = send_cmd(m, cmd, evbuffer_pullup(b, -1), evbuffer_get_length(b),
	    nr_flag, W_CMD);
	evbuffer_free(b);
	return r;
}

/*
 * The message stage: header fields parsed from msg->data, rebuilt after
 * a milter changed them.
 */
static void
hdrs_free(struct milter_chain *ch)
{
	size_t i;

	for (i = 0; i < ch->nhdr; i++) {
		free(ch->hdrs[i].name);
		free(ch->hdrs[i].value);
	}
	free(ch->hdrs);
	ch->hdrs = NULL;
	ch->nhdr = 0;
}

static void
hdr_insert(struct milter_chain *ch, size_t at, const char *name,
    const char *value)
{
	if (at > ch->nhdr)
		at = ch->nhdr;
	ch->hdrs = xrealloc(ch->hdrs, (ch->nhdr + 1) * sizeof(*ch->hdrs));
	memmove(ch->hdrs + at + 1, ch->hdrs + at,
	    (ch->nhdr - at) * sizeof(*ch->hdrs));
	ch->hdrs[at].name = xstrdup(name);
	ch->hdrs[at].value = xstrdup(value);
	ch->nhdr++;
}

/* msg->data into header fields and the body's offset. */
static void
hdrs_parse(struct milter_chain *ch)
{
	size_t len = evbuffer_get_length(ch->msg->data), off = 0, e;
	const char *d = (const char *)evbuffer_pullup(ch->msg->data, -1);
	const char *colon, *eol;
	char *name;

	hdrs_free(ch);
	while (off < len) {
		if (len - off >= 2 && d[off] == '\r' && d[off + 1] == '\n') {
			off += 2;		/* the empty line */
			break;
		}
		eol = memchr(d + off, '\n', len - off);
		e = eol != NULL ? (size_t)(eol - d) + 1 : len;
		if (d[off] == ' ' || d[off] == '\t') {
			if (ch->nhdr == 0)
				break;		/* not a header section */
			/* a fold: appended to the field before */
			name = ch->hdrs[ch->nhdr - 1].value;
			ch->hdrs[ch->nhdr - 1].value = xasprintf("%s%.*s",
			    name, (int)(e - off), d + off);
			free(name);
			off = e;
			continue;
		}
		colon = memchr(d + off, ':', e - off);
		if (colon == NULL)
			break;			/* body without empty line */
		name = xstrndup(d + off, (size_t)(colon - (d + off)));
		ch->hdrs = xrealloc(ch->hdrs, (ch->nhdr + 1) *
		    sizeof(*ch->hdrs));
		ch->hdrs[ch->nhdr].name = name;
		ch->hdrs[ch->nhdr].value = xstrndup(colon + 1,
		    e - (size_t)(colon + 1 - d));
		ch->nhdr++;
		off = e;
	}
	ch->body_off = off;
}

/* A value for the milter: without the CRLF at its end, folds as LF, the
 * leading space gone unless it asked for it. */
static char *
hdr_value_out(const struct milter *m, const char *v)
{
	char *out = xmalloc(strlen(v) + 1), *o = out;

	if (!(m->proto & SMFIP_HDR_LEADSPC) && *v == ' ')
		v++;
	for (; *v; v++)
		if (!(*v == '\r' && v[1] == '\n'))
			*o++ = *v;
	while (o > out && o[-1] == '\n')
		o--;
	*o = '\0';
	return out;
}

/* A milter's value into the message: " " in front unless it asked to
 * give its own leading space, LF (or CRLF) folds as CRLF, CRLF at the
 * end.  A fold always goes on with white space and an empty line is
 * dropped: a value never ends the header section or starts a field. */
static char *
hdr_value_in(const struct milter *m, const char *v)
{
	struct evbuffer *b = evbuffer_new();
	char *out;
	size_t n;

	if (!(m->proto & SMFIP_HDR_LEADSPC))
		evbuffer_add(b, " ", 1);
	for (; *v; v++) {
		if (*v == '\r')
			continue;
		if (*v != '\n') {
			evbuffer_add(b, v, 1);
			continue;
		}
		while (v[1] == '\n' || v[1] == '\r')
			v++;
		if (v[1] == '\0')
			break;
		evbuffer_add(b, "\r\n", 2);
		if (v[1] != ' ' && v[1] != '\t')
			evbuffer_add(b, "\t", 1);
	}
	evbuffer_add(b, "\r\n", 2);
	n = evbuffer_get_length(b);
	out = xmalloc(n + 1);
	evbuffer_remove(b, out, n);
	out[n] = '\0';
	evbuffer_free(b);
	return out;
}

/* Apply the headers (and a new body) to msg->data. */
static void
msg_rebuild(struct milter_chain *ch)
{
	struct evbuffer *nb = evbuffer_new();
	size_t i;

	for (i = 0; i < ch->nhdr; i++)
		evbuffer_add_printf(nb, "%s:%s", ch->hdrs[i].name,
		    ch->hdrs[i].value);
	evbuffer_add(nb, "\r\n", 2);
	if (ch->newbody != NULL) {
		if (ch->body_cr)
			evbuffer_add(ch->newbody, "\n", 1);
		ch->body_cr = 0;
		evbuffer_add_buffer(nb, ch->newbody);
		evbuffer_free(ch->newbody);
		ch->newbody = NULL;
	} else {
		evbuffer_drain(ch->msg->data, ch->body_off);
		evbuffer_add_buffer(nb, ch->msg->data);
	}
	evbuffer_free(ch->msg->data);
	ch->msg->data = nb;
	ch->msg->changed_data = 1;
	hdrs_parse(ch);
}

/* SMFIR_REPLBODY data with every line end made CRLF: a bare LF or a
 * bare CR would be refused from an SMTP client (smuggling), so it is not
 * taken from a milter either.  A CR at the end of one packet and an LF
 * at the start of the next are one line end (body_cr). */
static void
body_add(struct milter_chain *ch, const unsigned char *p, size_t n)
{
	size_t i = 0, k;

	if (ch->newbody == NULL) {
		ch->newbody = evbuffer_new();
		ch->body_cr = 0;
	}
	if (ch->body_cr && n > 0) {
		evbuffer_add(ch->newbody, "\n", 1);
		ch->body_cr = 0;
		if (p[0] == '\n')
			i = 1;
	}
	while (i < n) {
		for (k = i; k < n && p[k] != '\r' && p[k] != '\n'; k++)
			;
		evbuffer_add(ch->newbody, p + i, k - i);
		if (k == n)
			break;
		if (p[k] == '\r' && k + 1 == n) {
			evbuffer_add(ch->newbody, "\r", 1);
			ch->body_cr = 1;	/* an LF may follow */
			break;
		}
		evbuffer_add(ch->newbody, "\r\n", 2);
		i = k + (p[k] == '\r' && p[k + 1] == '\n' ? 2 : 1);
	}
}

static char *
strip_brackets(const char *a)
{
	size_t n = strlen(a);

	if (n >= 2 && a[0] == '<' && a[n - 1] == '>')
		return xstrndup(a + 1, n - 2);
	return xstrdup(a);
}

/* One end-of-message change of m; -1 a change it did not negotiate,
 * or one too many. */
static int
eom_change(struct milter *m, const struct milter_reply *r)
{
	struct milter_chain *ch = m->ch;
	struct milter_msg *msg = ch->msg;
	size_t i, k, seen;
	char *v, *a;

	/* a runaway filter cannot grow the message without end */
	ch->change_bytes += r->len + (r->value != NULL ? strlen(r->value) :
	    0) + (r->addr != NULL ? strlen(r->addr) : 0);
	if (++ch->nchanges > MILTER_CHANGES_MAX ||
	    ch->change_bytes > MILTER_CHANGE_BYTES_MAX)
		return -1;

	switch (r->cmd) {
	case SMFIR_ADDHEADER:
		if (!(m->actions & SMFIF_ADDHDRS))
			return -1;
		v = hdr_value_in(m, r->value);
		hdr_insert(ch, ch->nhdr, r->name, v);
		free(v);
		ch->hdr_changed = 1;
		return 0;
	case SMFIR_INSHEADER:
		if (!(m->actions & SMFIF_ADDHDRS))
			return -1;
		v = hdr_value_in(m, r->value);
		hdr_insert(ch, r->index, r->name, v);
		free(v);
		ch->hdr_changed = 1;
		return 0;
	case SMFIR_CHGHEADER:
		if (!(m->actions & SMFIF_CHGHDRS))
			return -1;
		ch->hdr_changed = 1;
		for (i = 0, seen = 0; i < ch->nhdr; i++) {
			if (strcasecmp(ch->hdrs[i].name, r->name) != 0 ||
			    ++seen != (r->index == 0 ? 1 : r->index))
				continue;
			if (r->value[0] == '\0') {	/* delete */
				free(ch->hdrs[i].name);
				free(ch->hdrs[i].value);
				memmove(ch->hdrs + i, ch->hdrs + i + 1,
				    (ch->nhdr - i - 1) * sizeof(*ch->hdrs));
				ch->nhdr--;
			} else {
				free(ch->hdrs[i].value);
				ch->hdrs[i].value = hdr_value_in(m, r->value);
			}
			return 0;
		}
		if (r->value[0] != '\0') {	/* not there: added */
			v = hdr_value_in(m, r->value);
			hdr_insert(ch, ch->nhdr, r->name, v);
			free(v);
		}
		return 0;
	case SMFIR_ADDRCPT:
	case SMFIR_ADDRCPT_PAR:
		if (!(m->actions & (r->cmd == SMFIR_ADDRCPT ? SMFIF_ADDRCPT :
		    SMFIF_ADDRCPT_PAR)))
			return -1;
		a = strip_brackets(r->addr);
		for (k = 0; k < msg->nrcpt; k++)
			if (strcasecmp(msg->rcpts[k].addr, a) == 0)
				break;
		if (k < msg->nrcpt) {
			free(a);
			return 0;
		}
		msg->rcpts = xrealloc(msg->rcpts, (msg->nrcpt + 1) *
		    sizeof(*msg->rcpts));
		msg->rcpts[msg->nrcpt].addr = a;
		msg->rcpts[msg->nrcpt].args = r->args != NULL ?
		    xstrdup(r->args) : NULL;
		msg->nrcpt++;
		msg->changed_rcpts = 1;
		return 0;
	case SMFIR_DELRCPT:
		if (!(m->actions & SMFIF_DELRCPT))
			return -1;
		a = strip_brackets(r->addr);
		for (k = 0; k < msg->nrcpt; k++)
			if (strcasecmp(msg->rcpts[k].addr, a) == 0) {
				free(msg->rcpts[k].addr);
				free(msg->rcpts[k].args);
				memmove(msg->rcpts + k, msg->rcpts + k + 1,
				    (msg->nrcpt - k - 1) *
				    sizeof(*msg->rcpts));
				msg->nrcpt--;
				msg->changed_rcpts = 1;
				break;
			}
		free(a);
		return 0;
	case SMFIR_CHGFROM:
		if (!(m->actions & SMFIF_CHGFROM))
			return -1;
		free(msg->sender);
		msg->sender = strip_brackets(r->addr);
		/* its ESMTP arguments: the session checks them (the last
		 * change wins, arguments and all) */
		free(msg->sender_args);
		msg->sender_args = r->args != NULL && r->args[0] != '\0' ?
		    xstrdup(r->args) : NULL;
		msg->changed_sender = 1;
		return 0;
	case SMFIR_REPLBODY:
		if (!(m->actions & SMFIF_CHGBODY))
			return -1;
		body_add(ch, r->data, r->len);
		return 0;
	case SMFIR_QUARANTINE:
		if (!(m->actions & SMFIF_QUARANTINE))
			return -1;
		free(msg->quarantine);
		msg->quarantine = xstrdup(r->addr[0] ? r->addr :
		    "quarantined by milter");
		return 0;
	}
	return -1;
}

/* What m gets next in the current stage. */
static enum step
stage_step(struct milter *m)
{
	struct milter_chain *ch = m->ch;
	const char *d;
	char *v;
	struct mhdr *h;
	size_t n;
	enum step r;

	if (m->st == MS_NONE)
		return milter_connect(m);
	if (m->st != MS_READY)
		return STEP_WAIT;
	if (!m->connect_done) {
		m->connect_done = 1;
		if (!(m->proto & SMFIP_NOCONNECT))
			return send_connect(m);
	}
	if (!m->helo_done) {
		m->helo_done = 1;
		if (!(m->proto & SMFIP_NOHELO) && ch->cl.helo != NULL) {
			send_macros(m, SMFIC_HELO);
			return send_cmd(m, SMFIC_HELO, ch->cl.helo,
			    strlen(ch->cl.helo) + 1, SMFIP_NR_HELO, W_CMD);
		}
	}
	if (m->skip_session || m->skip_msg)
		return STEP_DONE;
	switch (ch->stage) {
	case ST_NONE:
		return STEP_DONE;
	case ST_MAIL:
		if (ch->step++ > 0)
			return STEP_DONE;
		m->in_tx = 1;
		if (m->proto & SMFIP_NOMAIL)
			return STEP_DONE;
		return send_strs(m, SMFIC_MAIL, ch->arg2 != NULL ?
		    ch->arg2 : "<>", ch->margs, SMFIP_NR_MAIL);
	case ST_RCPT:
		if (ch->step++ > 0 || (m->proto & SMFIP_NORCPT))
			return STEP_DONE;
		v = xasprintf("<%s>", ch->arg1);
		r = send_strs(m, SMFIC_RCPT, v, ch->arg2, SMFIP_NR_RCPT);
		free(v);
		return r;
	case ST_MSG:
		break;
	}
	switch (ch->step) {
	case 0:				/* DATA */
		ch->step = 1;
		ch->hdr_i = 0;
		ch->body_pos = ch->body_off;
		if ((m->proto & SMFIP_NODATA) || m->version < 4)
			return STEP_NEXT;	/* no DATA before version 4 */
		send_macros(m, SMFIC_DATA);
		return send_cmd(m, SMFIC_DATA, NULL, 0, SMFIP_NR_DATA, W_CMD);
	case 1:				/* each header field */
		if ((m->proto & SMFIP_NOHDRS) || ch->hdr_i >= ch->nhdr) {
			ch->step = 2;
			return STEP_NEXT;
		}
		h = &ch->hdrs[ch->hdr_i++];
		v = hdr_value_out(m, h->value);
		n = strlen(h->name) + 1 + strlen(v) + 1;
		d = xmalloc(n);
		memcpy((char *)d, h->name, strlen(h->name) + 1);
		memcpy((char *)d + strlen(h->name) + 1, v, strlen(v) + 1);
		free(v);
		r = send_cmd(m, SMFIC_HEADER, d, n, SMFIP_NR_HDR, W_CMD);
		free((char *)d);
		return r;
	case 2:				/* end of headers */
		ch->step = 3;
		if (m->proto & SMFIP_NOEOH)
			return STEP_NEXT;
		send_macros(m, SMFIC_EOH);
		return send_cmd(m, SMFIC_EOH, NULL, 0, SMFIP_NR_EOH, W_CMD);
	case 3:				/* body chunks */
		n = evbuffer_get_length(ch->msg->data);
		if ((m->proto & SMFIP_NOBODY) || ch->body_pos >= n) {
			ch->step = 4;
			return STEP_NEXT;
		}
		if (n - ch->body_pos > MILTER_CHUNK)
			n = ch->body_pos + MILTER_CHUNK;
		d = (const char *)evbuffer_pullup(ch->msg->data, -1);
		r = send_cmd(m, SMFIC_BODY, d + ch->body_pos, n - ch->body_pos,
		    SMFIP_NR_BODY, W_BODY);
		ch->body_pos = n;
		return r;
	case 4:				/* end of message */
		ch->step = 5;
		ch->hdr_changed = 0;
		send_macros(m, SMFIC_BODYEOB);
		return send_cmd(m, SMFIC_BODYEOB, NULL, 0, 0, W_EOM);
	default:
		return STEP_DONE;
	}
}

static void
chain_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct milter_chain *ch = arg;
	milter_done_cb *cb = ch->cb;

	(void)fd;
	(void)what;
	ch->cb = NULL;
	if (cb != NULL)
		cb(&ch->v, ch->cbarg);
}

/* The stage ends with act (reply for the client); cb runs from the loop. */
static void
chain_finish(struct milter_chain *ch, enum milter_act act, const char *reply)
{
	ch->v.act = act;
	dr_strlcpy(ch->v.reply, reply != NULL ? reply : "",
	    sizeof(ch->v.reply));
	ch->stage = ST_NONE;
	hdrs_free(ch);
	if (ch->newbody != NULL) {
		evbuffer_free(ch->newbody);
		ch->newbody = NULL;
	}
	event_active(ch->ev_done, EV_TIMEOUT, 0);
}

static void
chain_run(struct milter_chain *ch)
{
	struct milter *m;
	enum step r;

	while (ch->stage != ST_NONE) {
		if (ch->cur >= ch->n) {
			chain_finish(ch, ch->tx_discard && ch->stage ==
			    ST_MSG ? MILTER_DISCARD : MILTER_CONTINUE,
			    ch->tx_discard && ch->stage == ST_MSG ?
			    "250 2.0.0 Ok: discarded by a milter" : NULL);
			return;
		}
		m = &ch->m[ch->cur];
		if (m->st == MS_DEAD) {
			if (m->failed) {
				/* broke between stages: decided now */
				m->failed = 0;
				milter_fail(m, "connection lost");
				return;
			}
			ch->cur++;
			ch->step = 0;
			continue;
		}
		if (ch->tx_discard && ch->stage != ST_MAIL) {
			ch->cur = ch->n;
			continue;
		}
		r = stage_step(m);
		if (r == STEP_WAIT)
			return;
		if (r == STEP_DONE) {
			ch->cur++;
			ch->step = 0;
		}
	}
}

static const char *
reply_text(char cmd)
{
	return cmd == SMFIR_REJECT ? "550 5.7.1 Command rejected" :
	    "451 4.7.1 Service unavailable - try again later";
}

/* A milter refused: this stage ends with its answer; refused at
 * connect or HELO (session), every later stage of the session too, as
 * libmilter's "reject the connection" means. */
static void
chain_refuse(struct milter_chain *ch, int session, enum milter_act act,
    const char *reply)
{
	if (session) {
		ch->sticky = 1;
		ch->sticky_v.act = act;
		dr_strlcpy(ch->sticky_v.reply, reply,
		    sizeof(ch->sticky_v.reply));
	}
	chain_finish(ch, act, reply);
}

/* A reply that ends the stage for the whole chain, or lets m go on. */
static void
on_reply(struct milter *m, const struct milter_reply *r)
{
	struct milter_chain *ch = m->ch;
	enum mwait w = m->wait;
	int pre = ch->stage == ST_NONE || !m->helo_done ||
	    (m->waitcmd == SMFIC_CONNECT || m->waitcmd == SMFIC_HELO);
	char why[128];

	if (r->cmd == SMFIR_PROGRESS && w != W_NONE && w != W_OPTNEG) {
		arm_timer(m, wait_timeout(ch->mc, w));
		return;
	}
	if (w == W_NONE || w == W_CONNECT || ch->stage == ST_NONE) {
		snprintf(why, sizeof(why), "reply '%c' not asked for",
		    isprint((unsigned char)r->cmd) ? r->cmd : '?');
		milter_fail(m, why);
		return;
	}
	if (w == W_OPTNEG) {
		if (r->cmd != SMFIR_OPTNEG) {
			milter_fail(m, "bad option negotiation");
			return;
		}
		/* an older version is the milter's to choose (libmilter
		 * answers the lower of the two); a newer one, steps its
		 * version has not (we cannot tell whether it will answer
		 * them) or actions beyond ours are a broken negotiation */
		if (r->version < 2 ||
		    r->version > (uint32_t)ch->mc->p.protocol) {
			snprintf(why, sizeof(why), "protocol version %lu, not "
			    "2 to %d (milter_protocol)",
			    (unsigned long)r->version, ch->mc->p.protocol);
			milter_fail(m, why);
			return;
		}
		if ((r->protocol & ~(version_steps(r->version) |
		    SMFIP_NR_HDR)) != 0 || (r->actions & ~SMFIF_ALL) != 0) {
			snprintf(why, sizeof(why), "option negotiation asks "
			    "for steps 0x%lx, actions 0x%lx that protocol "
			    "version %lu has not",
			    (unsigned long)(r->protocol &
			    ~(version_steps(r->version) | SMFIP_NR_HDR)),
			    (unsigned long)(r->actions & ~SMFIF_ALL),
			    (unsigned long)r->version);
			milter_fail(m, why);
			return;
		}
		m->wait = W_NONE;
		evtimer_del(m->ev_timer);
		m->version = r->version;
		m->actions = r->actions;
		m->proto = r->protocol;
		if (r->syms != NULL && (m->actions & SMFIF_SETSYMLIST))
			milter_symlists(m, r->syms, r->symslen);
		m->st = MS_READY;
		log_debug("milter %s: version %lu, actions 0x%lx, steps 0x%lx",
		    m->spec->text, (unsigned long)r->version,
		    (unsigned long)m->actions, (unsigned long)m->proto);
		chain_run(ch);
		return;
	}
	if (w == W_EOM) {
		switch (r->cmd) {
		case SMFIR_ADDHEADER: case SMFIR_INSHEADER:
		case SMFIR_CHGHEADER: case SMFIR_ADDRCPT:
		case SMFIR_ADDRCPT_PAR: case SMFIR_DELRCPT:
		case SMFIR_CHGFROM: case SMFIR_REPLBODY:
		case SMFIR_QUARANTINE:
			if (eom_change(m, r) == -1) {
				snprintf(why, sizeof(why), "change '%c' not "
				    "negotiated, or more than %d changes or %d "
				    "MiB", r->cmd, MILTER_CHANGES_MAX,
				    MILTER_CHANGE_BYTES_MAX >> 20);
				milter_fail(m, why);
			}
			return;
		default:
			break;
		}
	}
	switch (r->cmd) {
	case SMFIR_CONTINUE:
	case SMFIR_ACCEPT:
	case SMFIR_SKIP:
		break;
	case SMFIR_REJECT:
	case SMFIR_TEMPFAIL:
	case SMFIR_REPLYCODE:
	case SMFIR_DISCARD:
		break;
	default:
		snprintf(why, sizeof(why), "reply '%c' out of place",
		    isprint((unsigned char)r->cmd) ? r->cmd : '?');
		milter_fail(m, why);
		return;
	}
	if (r->cmd == SMFIR_SKIP && w != W_BODY) {
		milter_fail(m, "SMFIR_SKIP outside the body");
		return;
	}
	m->wait = W_NONE;
	evtimer_del(m->ev_timer);
	if (w == W_EOM)
		m->in_tx = 0;
	switch (r->cmd) {
	case SMFIR_CONTINUE:
		if (w == W_EOM) {
			if (ch->hdr_changed || ch->newbody != NULL)
				msg_rebuild(ch);
			ch->cur++;
			ch->step = 0;
		}
		break;
	case SMFIR_SKIP:
		ch->step = 4;		/* on to the end of message */
		break;
	case SMFIR_ACCEPT:
		if (w == W_EOM && (ch->hdr_changed || ch->newbody != NULL))
			msg_rebuild(ch);
		if (pre)
			m->skip_session = 1;
		else
			m->skip_msg = 1;
		ch->cur++;
		ch->step = 0;
		break;
	case SMFIR_DISCARD:
		if (ch->stage == ST_MSG && w == W_EOM) {
			chain_finish(ch, MILTER_DISCARD,
			    "250 2.0.0 Ok: discarded by a milter");
			return;
		}
		/* before the message: it is dropped at its end */
		ch->tx_discard = 1;
		m->skip_msg = 1;
		ch->cur++;
		ch->step = 0;
		break;
	case SMFIR_REPLYCODE:
		chain_refuse(ch, pre, r->code >= 500 ? MILTER_REJECT :
		    MILTER_TEMPFAIL, r->addr);
		return;
	default:	/* REJECT, TEMPFAIL */
		chain_refuse(ch, pre, r->cmd == SMFIR_REJECT ? MILTER_REJECT :
		    MILTER_TEMPFAIL, reply_text(r->cmd));
		return;
	}
	chain_run(ch);
}

static void
milter_read_cb(struct bufferevent *bev, void *arg)
{
	struct milter *m = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct milter_reply r;
	unsigned char h[4];
	size_t used, need;
	char why[160];
	int rc;
#ifdef TCP_QUICKACK
	int one = 1;
#endif

#ifdef TCP_QUICKACK
	/* A milter that answers the end of message with two packets
	 * written apart (a change, then accept: OpenDKIM) has the second
	 * held back by its Nagle until we acknowledge the first, and
	 * Linux delays that ACK by 40 ms: acknowledge at once (the flag
	 * does not stick, so on every read).  bench/run with OpenDKIM:
	 * 108 -> 194 msg/s. */
	if (m->spec->ss.ss_family != AF_UNIX)
		(void)setsockopt(bufferevent_getfd(bev), IPPROTO_TCP,
		    TCP_QUICKACK, &one, sizeof(one));
#endif
	while (m->bev == bev && evbuffer_get_length(in) >= 4) {
		evbuffer_copyout(in, h, 4);
		need = 4 + (size_t)get32(h);
		if (get32(h) > MILTER_PKT_MAX || get32(h) == 0)
			need = 4;	/* the parser says what is wrong */
		else if (evbuffer_get_length(in) < need)
			return;
		rc = milter_reply_parse(evbuffer_pullup(in, (ev_ssize_t)need),
		    need, &r, &used, why, sizeof(why));
		if (rc != 1) {
			milter_fail(m, why);
			return;
		}
		on_reply(m, &r);
		if (m->bev == bev)
			evbuffer_drain(in, used);
	}
}

static void
milter_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct milter *m = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		evtimer_del(m->ev_timer);
		m->wait = W_NONE;
		send_optneg(m);
		return;
	}
	milter_fail(m, (what & BEV_EVENT_EOF) ? "connection closed" :
	    m->st == MS_CONNECTING ? "cannot connect" : "connection error");
}

struct milter_chain *
milter_chain_new(struct event_base *base, const struct milter_conf *mc)
{
	struct milter_chain *ch;
	size_t i;

	if (mc == NULL || mc->n == 0)
		return NULL;
	ch = xcalloc(1, sizeof(*ch));
	ch->base = base;
	ch->mc = mc;
	ch->n = mc->n;
	ch->m = xcalloc(ch->n, sizeof(*ch->m));
	ch->ev_done = event_new(base, -1, 0, chain_done_cb, ch);
	for (i = 0; i < ch->n; i++) {
		ch->m[i].ch = ch;
		ch->m[i].spec = &mc->v[i];
		ch->m[i].ev_timer = evtimer_new(base, milter_timer_cb,
		    &ch->m[i]);
	}
	return ch;
}

void
milter_chain_free(struct milter_chain *ch)
{
	size_t i;

	if (ch == NULL)
		return;
	for (i = 0; i < ch->n; i++) {
		if (ch->m[i].bev != NULL && ch->m[i].st == MS_READY &&
		    ch->m[i].wait == W_NONE) {
			/* a polite end; the socket is closed anyway */
			milter_pkt(bufferevent_get_output(ch->m[i].bev),
			    SMFIC_QUIT, NULL, 0);
			evbuffer_write(bufferevent_get_output(ch->m[i].bev),
			    bufferevent_getfd(ch->m[i].bev));
		}
		milter_close(&ch->m[i], MS_DEAD);
		event_free(ch->m[i].ev_timer);
	}
	hdrs_free(ch);
	if (ch->newbody != NULL)
		evbuffer_free(ch->newbody);
	free(ch->arg1);
	free(ch->arg2);
	free(ch->margs);
	event_free(ch->ev_done);
	free(ch->m);
	free(ch);
}

static void
stage_start(struct milter_chain *ch, enum stage st,
    const struct milter_client *cl, const char *a1, const char *a2,
    milter_done_cb *cb, void *arg)
{
	free(ch->arg1);
	free(ch->arg2);
	ch->arg1 = a1 != NULL ? xstrdup(a1) : NULL;
	ch->arg2 = a2 != NULL ? xstrdup(a2) : NULL;
	ch->cl = *cl;
	ch->cb = cb;
	ch->cbarg = arg;
	ch->cur = 0;
	ch->step = 0;
	memset(&ch->v, 0, sizeof(ch->v));
	if (ch->sticky) {
		ch->stage = st;
		chain_finish(ch, ch->sticky_v.act, ch->sticky_v.reply);
		return;
	}
	ch->stage = st;
	chain_run(ch);
}

void
milter_mail(struct milter_chain *ch, const struct milter_client *cl,
    const char *sender, const char *args, milter_done_cb *cb, void *arg)
{
	char *s = xasprintf("<%s>", sender);
	size_t i;

	ch->tx_discard = 0;
	for (i = 0; i < ch->n; i++)
		ch->m[i].skip_msg = 0;
	free(ch->margs);
	ch->margs = args != NULL ? xstrdup(args) : NULL;
	/* arg1 {mail_addr}, arg2 the MAIL argument */
	stage_start(ch, ST_MAIL, cl, sender, s, cb, arg);
	free(s);
}

void
milter_rcpt(struct milter_chain *ch, const struct milter_client *cl,
    const char *rcpt, const char *args, milter_done_cb *cb, void *arg)
{
	stage_start(ch, ST_RCPT, cl, rcpt, args, cb, arg);
}

void
milter_message(struct milter_chain *ch, const struct milter_client *cl,
    struct milter_msg *msg, milter_done_cb *cb, void *arg)
{
	ch->msg = msg;
	ch->nchanges = ch->change_bytes = 0;
	hdrs_parse(ch);
	stage_start(ch, ST_MSG, cl, NULL, NULL, cb, arg);
}

void
milter_abort(struct milter_chain *ch)
{
	struct milter *m;
	size_t i;

	if (ch == NULL)
		return;
	if (ch->stage != ST_NONE) {
		ch->stage = ST_NONE;
		hdrs_free(ch);
	}
	ch->cb = NULL;
	event_del(ch->ev_done);
	ch->msg = NULL;
	for (i = 0; i < ch->n; i++) {
		m = &ch->m[i];
		m->skip_msg = 0;
		if (m->wait != W_NONE && m->st != MS_DEAD) {
			/* a reply is on its way: start over next time */
			milter_close(m, MS_NONE);
			continue;
		}
		if (m->in_tx && m->bev != NULL && m->st == MS_READY)
			milter_pkt(bufferevent_get_output(m->bev),
			    SMFIC_ABORT, NULL, 0);
		m->in_tx = 0;
	}
	ch->tx_discard = 0;
}

void
milter_helo_reset(struct milter_chain *ch)
{
	size_t i;

	if (ch == NULL)
		return;
	for (i = 0; i < ch->n; i++)
		ch->m[i].helo_done = 0;
}

void
milter_msg_clear(struct milter_msg *m)
{
	size_t i;

	free(m->sender);
	free(m->sender_args);
	for (i = 0; i < m->nrcpt; i++) {
		free(m->rcpts[i].addr);
		free(m->rcpts[i].args);
	}
	free(m->rcpts);
	if (m->data != NULL)
		evbuffer_free(m->data);
	free(m->quarantine);
	memset(m, 0, sizeof(*m));
}
