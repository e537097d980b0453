/*
 * log.c - logging to syslog (LOG_MAIL) or to stderr in the foreground.
 *
 * Before log_init() everything goes to stderr, so config errors at start
 * are visible.  On stderr each line carries a UTC timestamp and level.
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static int log_stderr = 1;
static int log_debug_on;
static int log_quiet;		/* info dropped (a CLI's own report) */
static const char *log_ident = "danerelayd";

void
log_init(const char *ident, int to_stderr, int debug)
{
	log_ident = ident;
	log_stderr = to_stderr;
	log_debug_on = debug;
	if (!to_stderr)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_set_debug(int debug)
{
	log_debug_on = debug;
}

void
log_set_quiet(int quiet)
{
	log_quiet = quiet;
}

int
log_get_debug(void)
{
	return log_debug_on;
}

static void
vlog(int pri, const char *fmt, va_list ap, int with_errno)
{
	char msg[4096];
	int saved = errno;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (with_errno) {
		size_t n = strlen(msg);
		snprintf(msg + n, sizeof(msg) - n, ": %s", strerror(saved));
	}
	if (log_stderr) {
		struct timeval tv;
		struct tm tm;
		char ts[32];
		const char *lvl = pri == LOG_DEBUG ? "debug" :
		    pri == LOG_INFO ? "info" :
		    pri == LOG_WARNING ? "warning" : "error";

		gettimeofday(&tv, NULL);
		gmtime_r(&tv.tv_sec, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ldZ %s[%ld]: %s: %s\n", ts,
		    (long)(tv.tv_usec / 1000), log_ident, (long)getpid(),
		    lvl, msg);
	} else
		syslog(pri, "%s", msg);
	errno = saved;
}

#define LOGFN(name, pri, err)					\
void								\
name(const char *fmt, ...)					\
{								\
	va_list ap;						\
								\
	if ((pri) == LOG_DEBUG && !log_debug_on)		\
		return;						\
	if ((pri) == LOG_INFO && log_quiet && !log_debug_on)	\
		return;						\
	va_start(ap, fmt);					\
	vlog((pri), fmt, ap, (err));				\
	va_end(ap);						\
}

LOGFN(log_debug, LOG_DEBUG, 0)
LOGFN(log_info, LOG_INFO, 0)
LOGFN(log_warnx, LOG_WARNING, 0)
LOGFN(log_warn, LOG_WARNING, 1)
LOGFN(log_errx, LOG_ERR, 0)
