/*
 * log.h - logging for danerelay: syslog (mail facility) or stderr.
 *
 * log_init() picks the sink once; every other call is safe before it
 * (messages then go to stderr).  Lines should be key=value where they
 * describe a message, prefixed by the queue id (Postfix style).
 */
#ifndef DR_LOG_H
#define DR_LOG_H

#include <stdarg.h>

void log_init(const char *ident, int to_stderr, int debug);
void log_set_debug(int debug);
int log_get_debug(void);
/* 1: log_info() says nothing (unless debug is on); for a command whose
 * output is its own report (`danerelay check`). */
void log_set_quiet(int quiet);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* log_warn appends ": strerror(errno)" */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_errx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
