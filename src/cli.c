/*
 * cli.c - what the `danerelay` commands share: the parsed global options
 * (struct cli), error messages, printing foreign strings safely, the
 * configuration, the spool and the control socket.
 *
 * Everything printed that came from outside (addresses, HELO names,
 * remote replies) goes through cli_safe() first: a hostile peer must not
 * be able to send escape sequences to the operator's terminal.
 *
 * Moved out of danerelay.c unchanged (issue #15), but for the names
 * (errx_msg, safe, parse_id, become_spool_owner got the cli_ prefix).
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "control_client.h"
#include "spool.h"
#include "util.h"

const char *progname = "danerelay";

void
cli_errx(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---------------------------------------------------------------- */
/* Printing foreign strings safely. */

/* Length of a valid UTF-8 sequence at p (not a C1 control), else 0. */
static size_t
utf8_len(const unsigned char *p)
{
	unsigned cp;
	size_t n, i;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, cp = p[0] & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 2 && cp < 0xa0) ||		/* C1 controls */
	    (n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

/* Printable copy: controls, '\\' and invalid bytes as \xNN.  Freed by the
 * caller.  NULL prints as "". */
char *
cli_safe(const char *s)
{
	const unsigned char *p;
	char *out, *o;
	size_t n;

	if (s == NULL)
		s = "";
	o = out = xmalloc(strlen(s) * 4 + 1);
	for (p = (const unsigned char *)s; *p; ) {
		if (*p >= 0x20 && *p < 0x7f && *p != '\\') {
			*o++ = (char)*p++;
		} else if (*p == '\\') {
			*o++ = '\\';
			*o++ = '\\';
			p++;
		} else if (*p >= 0x80 && (n = utf8_len(p)) > 0) {
			memcpy(o, p, n);
			o += n;
			p += n;
		} else {
			o += sprintf(o, "\\x%02X", *p);
			p++;
		}
	}
	*o = '\0';
	return out;
}

/* ---------------------------------------------------------------- */
/* Setup shared by the commands. */

int
cli_config(struct cli *c)
{
	char err[1024];

	if (c->cf_loaded)
		return 0;
	if (config_load(c->conffile ? c->conffile : DEFAULT_CONFIG, &c->cf,
	    err, sizeof(err)) == -1) {
		cli_errx("%s", err);
		return -1;
	}
	c->cf_loaded = 1;
	return 0;
}

const char *
cli_spool_dir(struct cli *c)
{
	if (c->spooldir != NULL)
		return c->spooldir;
	if (cli_config(c) == -1)
		return NULL;
	return c->cf.spool_dir;
}

/* -s alone: <spool_dir>/control.sock; else control_socket. */
const char *
cli_control_path(struct cli *c)
{
	if (c->ctlpath != NULL)
		return c->ctlpath;
	if (c->spooldir != NULL && c->conffile == NULL)
		c->ctlpath = xasprintf("%s/control.sock", c->spooldir);
	else if (cli_config(c) == 0)
		c->ctlpath = xstrdup(c->cf.control_socket);
	return c->ctlpath;
}

/* "6b00..." -> "6B00..." in id; -1 if it is no queue id. */
int
cli_parse_id(const char *arg, char id[QUEUE_ID_LEN + 1])
{
	char *p;

	if (strlen(arg) != QUEUE_ID_LEN)
		return -1;
	dr_strlcpy(id, arg, QUEUE_ID_LEN + 1);
	for (p = id; *p; p++)
		*p = (char)toupper((unsigned char)*p);
	return queue_id_valid(id) ? 0 : -1;
}

/*
 * Root editing a spool that belongs to the daemon's user becomes that
 * user first: an envelope rewritten by root would be unreadable for the
 * daemon.  0 ok (or nothing to do), -1 printed.
 */
int
cli_become_spool_owner(const char *dir)
{
	struct stat st;

	if (geteuid() != 0)
		return 0;
	if (stat(dir, &st) == -1) {
		cli_errx("%s: %s", dir, strerror(errno));
		return -1;
	}
	if (st.st_uid == 0)
		return 0;
	if (setgroups(1, &st.st_gid) == -1 ||
	    setresgid(st.st_gid, st.st_gid, st.st_gid) == -1 ||
	    setresuid(st.st_uid, st.st_uid, st.st_uid) == -1) {
		cli_errx("cannot become the owner of %s (uid %ld): %s", dir,
		    (long)st.st_uid, strerror(errno));
		return -1;
	}
	return 0;
}

struct spool *
cli_spool(struct cli *c)
{
	struct spool *sp;
	const char *dir;
	char err[1024];

	if ((dir = cli_spool_dir(c)) == NULL)
		return NULL;
	if ((sp = spool_open_flags(dir, SPOOL_NO_RECOVER, err,
	    sizeof(err))) == NULL)
		cli_errx("cannot open the spool: %s", err);
	return sp;
}

int
cli_connect(struct cli *c, struct ctl_client *cc)
{
	const char *path;

	if ((path = cli_control_path(c)) == NULL)
		return CTL_FAIL;
	if (ctl_connect(cc, path, CTL_WAIT) == 0)
		return CTL_UP;
	switch (errno) {
	case ENOENT:
	case ECONNREFUSED:
		return CTL_DOWN;
	case EACCES:
	case EPERM:
		cli_errx("%s: permission denied: only root and the daemon's "
		    "user may use the control socket", path);
		break;
	case EAGAIN:
		cli_errx("%s: the daemon is not accepting (busy); try again",
		    path);
		break;
	default:
		cli_errx("control socket %s: %s", path, strerror(errno));
	}
	return CTL_FAIL;
}

