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
 * SO_PEERCRED check on every connection).  The protocol is described at
 * the top of src/control.c.
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

/* Create cf->control_socket: a stale socket (nobody listening) is
 * replaced, a live one or a non-socket is refused.  uid/gid: the daemon's
 * user (the owner of the socket when we are root, and besides root the
 * only peer allowed).  NULL with the reason in err. */
struct control *control_new(const struct config *cf, uid_t uid, gid_t gid,
    char *err, size_t errlen);
/* Accept requests for queue q. 0 ok, -1 with err. */
int control_start(struct control *ctl, struct event_base *base,
    struct queue *q, char *err, size_t errlen);
/* Close every connection and the socket; remove the socket file when it
 * is still ours and the directory lets us.  Accepts NULL. */
void control_free(struct control *ctl);

#endif
