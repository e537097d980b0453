/*
 * bounce.c - delivery status notifications.
 *
 * One DSN per message, when all its recipients are final and at least one
 * failed or was "relayed": multipart/report;
 * report-type=delivery-status (RFC 3462/6522), a human-readable part,
 * the message/delivery-status part (RFC 3464 §2.2 per-message and §2.3
 * per-recipient fields, ENVID and ORCPT decoded from xtext) and the
 * original headers as text/rfc822-headers, or with RET=FULL the whole
 * message as message/rfc822.
 *
 * NOTIFY (RFC 3461 §4.1, issue #17) picks the recipients: NEVER none,
 * FAILURE (or no NOTIFY) the failed ones, DELAY (or no NOTIFY) the
 * pending ones in a delay warning, SUCCESS the ones delivered to a next
 * hop without DSN (Action: relayed; a next hop with DSN got the NOTIFY
 * and reports itself).  A REQUIRETLS message (RFC 8689 §4.4) never comes
 * back in full; with requiretls_redact_dsn (default) the DSN carries
 * none of it and goes without REQUIRETLS, else it carries the headers
 * and goes with REQUIRETLS.  Sent from <> to the original sender, spooled
 * durably like any other message; the queue, which asked for it, adds it
 * (this module is below the queue and never calls it, issue #15).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bounce.h"
#include "config.h"
#include "dsn.h"
#include "log.h"
#include "spool.h"
#include "util.h"

#define HDR_MAX (64 * 1024)

static struct spool_env *dsn_spool(struct spool *sp,
    const struct config *cf, const struct spool_env *env, int delayed,
    char *err, size_t errlen);
static struct spool_env *dsn_build(struct spool *sp,
    const struct config *cf, const struct spool_env *env, int delayed,
    char **textp, size_t *lenp, char *err, size_t errlen);

/* Is recipient r in the DSN of this kind (RFC 3461 §4.1 NOTIFY)? */
static int
dsn_includes(const struct spool_rcpt *r, int delayed)
{
	if (delayed)
		return r->state == RCPT_PENDING &&
		    dsn_notify_wants(r->notify, DSN_NOTIFY_DELAY);
	if (r->state == RCPT_FAILED)
		return dsn_notify_wants(r->notify, DSN_NOTIFY_FAILURE);
	/* "relayed" (RFC 3464 §2.3.3): delivered to a next hop without
	 * DSN while NOTIFY asked for SUCCESS (the queue set it) */
	return r->state == RCPT_DELIVERED && r->relayed;
}

static int
dsn_owed(const struct spool_env *env, int delayed)
{
	size_t i;

	if (env->sender == NULL || env->sender[0] == '\0' || env->is_bounce ||
	    env->is_report)
		return 0;
	for (i = 0; i < env->nrcpt; i++)
		if (dsn_includes(&env->rcpts[i], delayed))
			return 1;
	return 0;
}

int
bounce_owed(const struct spool_env *env)
{
	return dsn_owed(env, 0);
}

int
bounce_delay_owed(const struct spool_env *env)
{
	return dsn_owed(env, 1);
}

static void
rfc5322_date(time_t t, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

/*
 * The remote reply inside a recorded error: "mx[ip]:25 said: 550 5.1.1
 * text (in reply to RCPT TO command)" -> "550 5.1.1 text" in buf.
 * Returns buf, or NULL when the error did not come from a server.
 */
static const char *
remote_reply(const char *err, char *buf, size_t len)
{
	const char *p, *end;

	if (err == NULL || (p = strstr(err, " said: ")) == NULL)
		return NULL;
	p += 7;
	if ((end = strstr(p, " (in reply to ")) == NULL)
		end = p + strlen(p);
	if ((size_t)(end - p) >= len)
		end = p + len - 1;
	memcpy(buf, p, (size_t)(end - p));
	buf[end - p] = '\0';
	return buf;
}

/* "550 5.1.1 user unknown" -> status "5.1.1" and 1 (an SMTP reply). */
static int
reply_status(const char *text, char status[16])
{
	const char *p = text;
	int n = 0;

	if (text == NULL)
		return 0;
	if (!(isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1]) &&
	    isdigit((unsigned char)p[2]) && (p[3] == ' ' || p[3] == '-')))
		return 0;
	p += 4;
	if ((p[0] == '4' || p[0] == '5') && p[1] == '.' &&
	    sscanf(p, "%*1d.%*3d.%*3d%n", &n) >= 0 && n > 0 && n < 15 &&
	    (p[n] == ' ' || p[n] == '\0')) {
		memcpy(status, p, (size_t)n);
		status[n] = '\0';
		status[0] = '5';
	} else
		snprintf(status, 16, "5.0.0");
	return 1;
}

/* Our own failure text that starts with an enhanced status code, as
 * "5.6.3 cannot convert ..." (RFC 3463): that code. */
static int
enh_status(const char *text, char status[16])
{
	int n = 0;

	if (text == NULL || text[0] != '5' || text[1] != '.' ||
	    sscanf(text, "%*1d.%*3d.%*3d%n", &n) < 0 || n <= 0 || n >= 15 ||
	    text[n] != ' ')
		return 0;
	memcpy(status, text, (size_t)n);
	status[n] = '\0';
	return 1;
}

/* Keep header text 7-bit and free of lines that could end a MIME part. */
static void
put_clean(FILE *f, const char *s)
{
	for (; *s; s++)
		fputc((*s >= 0x20 && *s < 0x7f) ? *s : '?', f);
}

/*
 * put_clean() for text that may be long (server replies, error texts)
 * on a line that already holds col characters: folded at spaces before
 * FOLD_AT columns, each continuation line starting with cont (" " in a
 * header field: RFC 5322 §2.2.3 folding, undone by unfolding; an indent
 * in the text part).  A word too long for a line is cut at LINE_HARD:
 * no line ever exceeds RFC 5322 §2.1.1's 998 octets, which strict
 * receivers enforce (and a DSN from <> that is refused is lost).
 */
#define FOLD_AT		78
#define LINE_HARD	900
static void
put_folded(FILE *f, size_t col, const char *s, const char *cont)
{
	size_t clen = strlen(cont), w;

	while (*s != '\0') {
		/* the next word, with the spaces before it */
		for (w = 0; s[w] == ' '; w++)
			;
		for (; s[w] != '\0' && s[w] != ' '; w++)
			;
		if (col + w > FOLD_AT && col > clen && *s == ' ') {
			/* fold before the space: it starts the next line */
			fputs("\r\n", f);
			fputs(cont, f);
			col = clen;
			s++;
			w--;
			if (w == 0)
				continue;
		}
		while (col + w > LINE_HARD) {
			size_t part = LINE_HARD - col;
			char *chunk = xstrndup(s, part);

			put_clean(f, chunk);
			free(chunk);
			fputs("\r\n", f);
			fputs(cont, f);
			col = clen;
			s += part;
			w -= part;
		}
		{
			char *word = xstrndup(s, w);

			put_clean(f, word);
			free(word);
		}
		col += w;
		s += w;
	}
}

/* RET=FULL: the whole message (its CRLF text as spooled) onto f. */
static int
copy_data(struct spool *sp, const struct spool_env *env, FILE *f, char *err,
    size_t errlen)
{
	char buf[65536];
	off_t left = env->size;
	ssize_t r;
	int fd;

	if ((fd = spool_data_open(sp, env->id)) == -1) {
		snprintf(err, errlen, "cannot open queue file: %s",
		    strerror(errno));
		return -1;
	}
	while (left > 0 && (r = read(fd, buf, left < (off_t)sizeof(buf) ?
	    (size_t)left : sizeof(buf))) > 0) {
		fwrite(buf, 1, (size_t)r, f);
		left -= r;
	}
	close(fd);
	if (left > 0) {
		snprintf(err, errlen, "cannot read queue file %s", env->id);
		return -1;
	}
	return 0;
}

struct spool_env *
bounce_spool(struct spool *sp, const struct config *cf,
    const struct spool_env *env, char *err, size_t errlen)
{
	return dsn_spool(sp, cf, env, 0, err, errlen);
}

struct spool_env *
bounce_delay_spool(struct spool *sp, const struct config *cf,
    const struct spool_env *env, char *err, size_t errlen)
{
	return dsn_spool(sp, cf, env, 1, err, errlen);
}

struct spool_env *
bounce_build(struct spool *sp, const struct config *cf,
    const struct spool_env *env, int delayed, char **text, size_t *len,
    char *err, size_t errlen)
{
	return dsn_build(sp, cf, env, delayed, text, len, err, errlen);
}

static struct spool_env *
dsn_spool(struct spool *sp, const struct config *cf,
    const struct spool_env *env, int delayed, char *err, size_t errlen)
{
	struct spool_writer *w;
	struct spool_env *benv;
	char *text;
	size_t textlen;

	if ((benv = dsn_build(sp, cf, env, delayed, &text, &textlen, err,
	    errlen)) == NULL)
		return NULL;
	if ((w = spool_writer_new(sp, err, errlen)) == NULL) {
		free(text);
		spool_env_free(benv);
		return NULL;
	}
	if (spool_writer_write(w, text, textlen) == -1) {
		snprintf(err, errlen, "write: %s", strerror(errno));
		spool_writer_abort(w);
		free(text);
		spool_env_free(benv);
		return NULL;
	}
	free(text);
	if (spool_writer_commit(w, benv, err, errlen) == -1) {
		spool_env_free(benv);
		return NULL;
	}
	log_info("%s: sender %s notification: %s", env->id,
	    delayed ? "delay" : "non-delivery", benv->id);
	return benv;
}

/*
 * delayed == 0: a non-delivery report for the FAILED recipients;
 * delayed == 1: a delay warning (Action: delayed) for the PENDING ones.
 * The text (malloc'ed, CRLF lines) in *textp, the envelope returned.
 */
static struct spool_env *
dsn_build(struct spool *sp, const struct config *cf,
    const struct spool_env *env, int delayed, char **textp, size_t *lenp,
    char *err, size_t errlen)
{
	char until[64], dec[DSN_ORCPT_MAX + 1];
	size_t nfailed = 0;
	int full, redact;
	struct spool_env *benv;
	char date[64], adate[64], boundary[64], *text = NULL, status[16];
	char *hdrs;
	size_t textlen = 0, i, hlen = 0;
	FILE *f;
	int fd;
	ssize_t r;

	for (i = 0; i < env->nrcpt; i++)
		if (dsn_includes(&env->rcpts[i], delayed) &&
		    env->rcpts[i].state == RCPT_FAILED)
			nfailed++;
	/*
	 * What comes back of the message (RFC 3461 §4.3): RET=FULL the
	 * whole message with a failure, else its headers.  A REQUIRETLS
	 * message's RET=FULL is disregarded (RFC 8689 §4.4), and with
	 * requiretls_redact_dsn nothing of it comes back: the DSN goes
	 * without REQUIRETLS, so it must not carry what the sender wanted
	 * only over authenticated TLS.  Without redaction the DSN carries
	 * the headers and is itself sent with REQUIRETLS.
	 */
	redact = env->requiretls && cf->requiretls_redact_dsn;
	full = !delayed && nfailed > 0 && !env->requiretls &&
	    env->ret != NULL && strcmp(env->ret, "FULL") == 0;
	if ((f = open_memstream(&text, &textlen)) == NULL) {
		snprintf(err, errlen, "open_memstream: %s", strerror(errno));
		return NULL;
	}
	rfc5322_date(time(NULL), date, sizeof(date));
	rfc5322_date(env->created, adate, sizeof(adate));
	snprintf(boundary, sizeof(boundary), "%s/%s.DSN", env->id,
	    cf->myhostname);

	fprintf(f, "From: MAILER-DAEMON@%s (Mail Delivery System)\r\n",
	    cf->myhostname);
	fprintf(f, "To: <");
	put_clean(f, env->sender);
	fprintf(f, ">\r\nSubject: %s\r\n", delayed ?
	    "Delayed Mail (still being retried)" : nfailed > 0 ?
	    "Undelivered Mail Returned to Sender" :
	    "Successful Mail Relay Notification");
	fprintf(f, "Date: %s\r\nMessage-ID: <%s.DSN@%s>\r\n", date, env->id,
	    cf->myhostname);
	fprintf(f, "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n");
	fprintf(f, "Content-Type: multipart/report; report-type=delivery-status;"
	    "\r\n\tboundary=\"%s\"\r\n\r\n", boundary);
	fprintf(f, "This is a MIME-encapsulated message.\r\n\r\n");

	fprintf(f, "--%s\r\nContent-Description: Notification\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n\r\n", boundary);
	rfc5322_date(env->created + (time_t)cf->queue_lifetime, until,
	    sizeof(until));
	if (delayed)
		fprintf(f, "This is the mail system at host %s.\r\n\r\n"
		    "Your message could not be delivered yet to one or more "
		    "recipients.\r\nIt will be tried again until %s.\r\n"
		    "You do not need to send it again.\r\n\r\n",
		    cf->myhostname, until);
	else if (nfailed > 0)
		fprintf(f, "This is the mail system at host %s.\r\n\r\n"
		    "Your message could not be delivered to one or more "
		    "recipients.\r\n%s\r\n\r\n", cf->myhostname, redact ?
		    "It was sent with REQUIRETLS: its content is not "
		    "returned." : full ? "It is attached below." :
		    "Its headers are attached below.");
	else
		fprintf(f, "This is the mail system at host %s.\r\n\r\n"
		    "Your message was passed on to a mail system that does "
		    "not send delivery\r\nnotifications; you asked for one "
		    "(NOTIFY=SUCCESS), so here it is.\r\n%s\r\n\r\n",
		    cf->myhostname, redact ? "It was sent with REQUIRETLS: its "
		    "content is not returned." : "Its headers are attached "
		    "below.");
	for (i = 0; i < env->nrcpt; i++) {
		const struct spool_rcpt *r = &env->rcpts[i];

		if (!dsn_includes(r, delayed))
			continue;
		fprintf(f, "<");
		put_clean(f, r->addr);
		fprintf(f, ">: ");
		if (r->state == RCPT_DELIVERED) {
			fprintf(f, "relayed to ");
			put_clean(f, r->relay ? r->relay : "the next hop");
			fprintf(f, ", which does not report delivery");
		} else
			put_folded(f, strlen(r->addr) + 4, r->last_error ?
			    r->last_error : "delivery failed", "    ");
		fprintf(f, "\r\n\r\n");
	}

	fprintf(f, "--%s\r\nContent-Description: Delivery report\r\n"
	    "Content-Type: message/delivery-status\r\n\r\n", boundary);
	fprintf(f, "Reporting-MTA: dns; %s\r\nX-Danerelay-Queue-ID: %s\r\n",
	    cf->myhostname, env->id);
	/* RFC 3464 §2.2.1, §2.3.1: ENVID and ORCPT decoded from xtext */
	if (env->envid != NULL &&
	    dsn_xtext_decode(env->envid, dec, sizeof(dec)) >= 0) {
		fprintf(f, "Original-Envelope-Id: ");
		put_clean(f, dec);
		fprintf(f, "\r\n");
	}
	fprintf(f, "Arrival-Date: %s\r\n", adate);
	for (i = 0; i < env->nrcpt; i++) {
		const struct spool_rcpt *r = &env->rcpts[i];
		const char *reply;
		char rbuf[1024];
		int smtp;

		if (!dsn_includes(r, delayed))
			continue;
		reply = remote_reply(r->last_error, rbuf, sizeof(rbuf));
		smtp = reply_status(reply, status);
		if (r->last_error != NULL &&
		    strncmp(r->last_error, "delivery time expired", 21) == 0)
			snprintf(status, sizeof(status), "4.4.7");
		else if (!smtp && !enh_status(r->last_error, status))
			snprintf(status, sizeof(status), "5.0.0");
		if (delayed)
			status[0] = '4';
		if (r->state == RCPT_DELIVERED) {
			snprintf(status, sizeof(status), "2.0.0");
			smtp = 0;
		}
		fprintf(f, "\r\n");
		if (r->orcpt != NULL && strchr(r->orcpt, ';') != NULL &&
		    dsn_xtext_decode(strchr(r->orcpt, ';') + 1, dec,
		    sizeof(dec)) >= 0) {
			/* up to 500 octets (RFC 3461): one line */
			fprintf(f, "Original-Recipient: ");
			fwrite(r->orcpt, 1, (size_t)(strchr(r->orcpt, ';') -
			    r->orcpt), f);
			fprintf(f, "; ");
			put_clean(f, dec);
			fprintf(f, "\r\n");
		}
		fprintf(f, "Final-Recipient: rfc822; ");
		put_clean(f, r->addr);
		fprintf(f, "\r\nAction: %s\r\nStatus: %s\r\n",
		    delayed ? "delayed" : r->state == RCPT_DELIVERED ?
		    "relayed" : "failed", status);
		if (delayed)
			fprintf(f, "Will-Retry-Until: %s\r\n", until);
		if (r->relay != NULL) {
			char host[256];
			size_t k;

			dr_strlcpy(host, r->relay, sizeof(host));
			k = strcspn(host, "[:");
			host[k] = '\0';
			fprintf(f, "Remote-MTA: dns; ");
			put_clean(f, host);
			fprintf(f, "\r\n");
		}
		if (r->state == RCPT_DELIVERED) {
			/* the next hop's 250, for the record */
			if (r->last_error != NULL) {
				fprintf(f, "Diagnostic-Code: smtp; ");
				put_folded(f, 23, r->last_error, " ");
				fprintf(f, "\r\n");
			}
			continue;
		}
		fprintf(f, "Diagnostic-Code: %s; ", smtp ? "smtp" : "x-unix");
		put_folded(f, smtp ? 23 : 25, smtp ? reply : r->last_error ?
		    r->last_error : "delivery failed", " ");
		fprintf(f, "\r\n");
	}
	if (redact) {
		/* RFC 3462: the third part is optional */
		fprintf(f, "\r\n--%s--\r\n", boundary);
		fclose(f);
		goto spool;
	}
	if (full) {
		fprintf(f, "\r\n--%s\r\nContent-Description: Undelivered "
		    "Message\r\nContent-Type: message/rfc822\r\n%s\r\n",
		    boundary, env->body_8bit ? "Content-Transfer-Encoding: "
		    "8bit\r\n" : "");
		if (copy_data(sp, env, f, err, errlen) == -1) {
			fclose(f);
			free(text);
			return NULL;
		}
		fprintf(f, "\r\n--%s--\r\n", boundary);
		fclose(f);
		goto spool;
	}

	fprintf(f, "\r\n--%s\r\nContent-Description: Undelivered Message "
	    "Headers\r\nContent-Type: text/rfc822-headers\r\n\r\n", boundary);
	/* The original headers: everything before the first empty line. */
	hdrs = xmalloc(HDR_MAX + 1);
	if ((fd = spool_data_open(sp, env->id)) != -1) {
		/* only the data: the spool file goes on with the envelope */
		size_t max = env->size < (off_t)HDR_MAX ? (size_t)env->size :
		    HDR_MAX;

		while (hlen < max &&
		    (r = read(fd, hdrs + hlen, max - hlen)) > 0)
			hlen += (size_t)r;
		close(fd);
	}
	hdrs[hlen] = '\0';
	{
		char *end = strstr(hdrs, "\r\n\r\n");

		if (end != NULL)
			end[2] = '\0';
		else if (hlen > 0) {
			/* headers longer than we keep: cut at a line end */
			char *nl = strrchr(hdrs, '\n');
			if (nl != NULL)
				nl[1] = '\0';
		}
		fputs(hdrs, f);
	}
	free(hdrs);
	fprintf(f, "\r\n--%s--\r\n", boundary);
	fclose(f);

 spool:
	benv = spool_env_new();
	benv->sender = xstrdup("");
	benv->created = time(NULL);
	benv->client_addr = xstrdup("127.0.0.1");
	benv->client_helo = xstrdup(cf->myhostname);
	benv->is_bounce = 1;
	/* the returned content travels as the original did */
	benv->requiretls = env->requiretls && !redact;
	benv->body_8bit = full && env->body_8bit;
	benv->smtputf8 = env->smtputf8 && !redact;
	spool_env_add_rcpt(benv, env->sender);
	*textp = text;
	*lenp = textlen;
	return benv;
}
