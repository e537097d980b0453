/*
 * control_client.c - the client side of the daemon's control socket
 * protocol (control.h): connect (non-blocking, so a wedged daemon gives
 * EAGAIN instead of hanging the operator's tool), one request, its
 * reply lines, with a deadline for every reply line.  Used by the
 * `danerelay` commands (cli_queue.c).
 *
 * Moved out of danerelay.c unchanged (issue #15).
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "control_client.h"
#include "util.h"

/* 0 connected; -1 with errno (ENOENT, ECONNREFUSED: nobody listens). */
int
ctl_connect(struct ctl_client *cc, const char *path, int wait)
{
	struct sockaddr_un sun;
	int fd, saved;

	memset(cc, 0, sizeof(*cc));
	cc->fd = -1;
	cc->wait = wait;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	dr_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	/* non-blocking: a wedged daemon with a full backlog gives EAGAIN
	 * instead of hanging us */
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	cc->fd = fd;
	return 0;
}

void
ctl_close(struct ctl_client *cc)
{
	if (cc->fd != -1)
		close(cc->fd);
	cc->fd = -1;
}

/* Wait until fd is ready; 0, or -1 with errno (ETIMEDOUT). */
static int
ctl_poll(struct ctl_client *cc, short events, double deadline)
{
	struct pollfd pfd;
	int ms, r;

	for (;;) {
		ms = (int)((deadline - mono_now()) * 1000);
		if (ms <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		pfd.fd = cc->fd;
		pfd.events = events;
		pfd.revents = 0;
		if ((r = poll(&pfd, 1, ms)) > 0)
			return 0;
		if (r == -1 && errno != EINTR)
			return -1;
	}
}

static int
ctl_send(struct ctl_client *cc, const char *req)
{
	char buf[CONTROL_LINE_MAX + 2];
	double deadline = mono_now() + cc->wait;
	size_t len, off = 0;
	ssize_t n;

	if ((len = strlen(req)) > CONTROL_LINE_MAX) {
		errno = EMSGSIZE;
		return -1;
	}
	memcpy(buf, req, len);
	buf[len++] = '\n';
	while (off < len) {
		n = send(cc->fd, buf + off, len - off, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN) {
			if (ctl_poll(cc, POLLOUT, deadline) == -1)
				return -1;
			continue;
		}
		if (n == -1)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

/* The next reply line, without "\n", into line[CONTROL_LINE_MAX + 1].
 * 0 ok; -1 with errno (ETIMEDOUT, ECONNRESET: closed, EPROTO: bad). */
static int
ctl_readline(struct ctl_client *cc, char *line, double deadline)
{
	char *nl;
	size_t l;
	ssize_t n;

	for (;;) {
		if ((nl = memchr(cc->buf, '\n', cc->len)) != NULL) {
			l = (size_t)(nl - cc->buf);
			if (l > CONTROL_LINE_MAX || memchr(cc->buf, '\0', l)) {
				errno = EPROTO;
				return -1;
			}
			memcpy(line, cc->buf, l);
			line[l] = '\0';
			cc->len -= l + 1;
			memmove(cc->buf, nl + 1, cc->len);
			return 0;
		}
		if (cc->len > CONTROL_LINE_MAX) {
			errno = EPROTO;
			return -1;
		}
		n = recv(cc->fd, cc->buf + cc->len, sizeof(cc->buf) - cc->len,
		    0);
		if (n == 0) {
			errno = ECONNRESET;
			return -1;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN) {
			if (ctl_poll(cc, POLLIN, deadline) == -1)
				return -1;
			continue;
		}
		if (n == -1)
			return -1;
		cc->len += (size_t)n;
	}
}

/*
 * One request.  Lines before the final one go to fn.  0: "ok [text]",
 * 1: "error reason", -1: the exchange failed; text or reason in msg.
 */
int
ctl_call(struct ctl_client *cc, const char *req,
    void (*fn)(const char *, void *), void *arg, char *msg, size_t msglen)
{
	char line[CONTROL_LINE_MAX + 1];
	int sent;

	sent = ctl_send(cc, req) == 0;
	for (;;) {
		/* unsent: the daemon may have said why it closed on us */
		if (ctl_readline(cc, line, mono_now() + (sent ? cc->wait :
		    1)) == -1)
			break;
		if (strcmp(line, "ok") == 0 || strncmp(line, "ok ", 3) == 0) {
			dr_strlcpy(msg, line[2] ? line + 3 : "", msglen);
			return sent ? 0 : -1;
		}
		if (strcmp(line, "error") == 0 ||
		    strncmp(line, "error ", 6) == 0) {
			dr_strlcpy(msg, line[5] ? line + 6 : "error", msglen);
			return 1;
		}
		if (fn != NULL)
			fn(line, arg);
	}
	snprintf(msg, msglen, "%s", errno == ETIMEDOUT ? "no reply from the "
	    "daemon (timed out)" : errno == ECONNRESET || errno == EPIPE ?
	    "the daemon closed the connection" : errno == EPROTO ?
	    "malformed reply from the daemon" : strerror(errno));
	return -1;
}

