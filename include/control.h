/*
 * control.h - the daemon's UNIX control socket (`control_socket`, default
 * <spool_dir>/control.sock), used by the `danerelay` CLI for flush, hold,
 * release, delete, list and status.
 *
 * Two steps, like smtpd_new()/smtpd_start(): control_new() creates the
 * socket while the daemon may still be root (mode 0600, owned by the
 * daemon's user uid:gid, so its directory need not be writable by that
 * user); control_start() begins accepting on the event base once the
 * queue exists.  Only root and `uid` may talk to it (the file mode and a
 * SO_PEERCRED check on every connection).  The client side of the
 * protocol below is control_client.h.
 *
 * Protocol: lines ending in "\n" (a "\r" before it is ignored), at most
 * CONTROL_LINE_MAX bytes, printable ASCII separated by spaces.  Several
 * requests may share a connection; they are answered in order and one at
 * a time (the next request is read only after the previous reply has been
 * written, so a client that does not read cannot make us buffer more than
 * one reply; the largest, "list", is one short line per queued message).  Every reply ends with exactly one line "ok [text]" or
 * "error reason".
 *
 *	flush			retry every pending recipient now
 *	flush ID|DOMAIN		retry one message, or every recipient at a
 *				domain; "error ..." when nothing matched or
 *				the message is on hold
 *	hold ID			put a message on hold (not delivered, does
 *				not expire)
 *	release ID		release it; it is tried at its next retry
 *				time (flush it to try at once)
 *	delete ID		remove it from the queue and the spool; an
 *				attempt in flight is cancelled first
 *	bounce ID		return it to its sender: every recipient still
 *				waiting fails ("returned to the sender by the
 *				postmaster"; a DSN, never to <>)
 *	hold-domain DOMAIN, release-domain DOMAIN
 *				hold or release every message with a
 *				recipient waiting at DOMAIN: "ok N" messages
 *	delete-domain DOMAIN, bounce-domain DOMAIN
 *				delete or bounce the recipients waiting at
 *				DOMAIN (a message left with nothing to do
 *				goes): "ok N" messages
 *	senders			the 5 senders nearest sender_rate_limit:
 *				"sender COUNT WINDOW_START KEY" each (KEY
 *				"user NAME" or "domain NAME"), then
 *				"ok LIMIT" (the rate, e.g. 200/h, or
 *				"unlimited")
 *	suspend DOMAIN, resume DOMAIN
 *				stop delivering to DOMAIN / start again (and
 *				try its recipients now); written to
 *				spool_dir/suspended first (suspend.h):
 *				"ok changed" or "ok unchanged"
 *	list			"msg ID active=0|1 hold=0|1 rcpts=N
 *				pending=N" per message, then "ok N"
 *	status			"ok messages=N active=N dnssec=STATE
 *				dnssec_checked=UNIXTIME dnssec_name=NAME":
 *				STATE of the DNSSEC self-test (secure,
 *				insecure, failing; dnssec_check.h), 0: not
 *				yet checked
 *	tls-memory-show [DOMAIN]
 *				"entry DOMAIN LEVEL FIRST LAST" per entry
 *				of the TLS memory (tls_memory.h; times in
 *				seconds since the epoch), then "ok N"
 *	tls-memory-forget DOMAIN
 *				drop the domain's entry: "ok forgotten", or
 *				"error ..." when there was none
 *
 * The detailed listing (senders, recipients, errors) is not sent here:
 * `danerelay queue` reads it from the spool, which also works when the
 * daemon is stopped; it only asks "list" for what the spool cannot tell,
 * which messages are in a delivery attempt right now.
 */
#ifndef DR_CONTROL_H
#define DR_CONTROL_H

#include <stddef.h>
#include <sys/types.h>

struct event_base;
struct config;
struct queue;

struct control;

/* Longest request or reply line, without the "\n". */
#define CONTROL_LINE_MAX	1024
/* Words of a request: its name and one argument. */
#define CONTROL_MAX_ARGS	2

/* Create cf->control_socket: a stale socket (nobody listening) is
 * replaced, a live one or a non-socket is refused.  uid/gid: the daemon's
 * user (the owner of the socket when we are root, and besides root the
 * only peer allowed).  NULL with the reason in err. */
struct control *control_new(const struct config *cf, uid_t uid, gid_t gid,
    char *err, size_t errlen);
/* Answer tls-memory-* with tm (NULL: "error"); its writes go through
 * port (the control loop's).  Before control_start(). */
struct tls_memory;
struct workq_port;
struct smtpd;
/* The inbound server whose sender_rate_limit counts "senders" shows
 * (worker 0's, on the control socket's loop). */
void control_set_smtpd(struct control *ctl, struct smtpd *sd);
void control_set_tls_memory(struct control *ctl, struct tls_memory *tm,
    struct workq_port *port);
/* Accept requests for queue q. 0 ok, -1 with err. */
int control_start(struct control *ctl, struct event_base *base,
    struct queue *q, char *err, size_t errlen);
/* Close every connection and the socket; remove the socket file when it
 * is still ours and the directory lets us.  Accepts NULL. */
void control_free(struct control *ctl);

/*
 * The request parser, as the daemon uses it on every connection (pure
 * code; tests/fuzz/fuzz_control.c).
 *
 * control_read_request(): the next line of in, the "\n" and a "\r"
 * before it removed.  1 a NUL-terminated line in *linep (free it), 0 no
 * complete line yet, -1 a line longer than CONTROL_LINE_MAX or one with a
 * NUL byte: the reply ("error ...") in *errp, and the connection closes.
 *
 * control_parse_request(): split line (modified in place) at spaces and
 * tabs into argv[CONTROL_MAX_ARGS] (pointers into line) and check the
 * request's name and argument count.  The request's index (>= 0) with
 * *argcp, or -1 with the reply ("error ...") in err.
 */
struct evbuffer;
int control_read_request(struct evbuffer *in, char **linep,
    const char **errp);
int control_parse_request(char *line, char **argv, int *argcp, char *err,
    size_t errlen);

#endif
