/*
 * suspend.h - the destinations the operator suspended (`danerelay queue
 * suspend DOMAIN`): nothing is delivered to them until `queue resume`.
 *
 * The list is the file spool_dir/suspended, one lower-case domain per
 * line, so that it survives restarts and the tool can change it whether
 * the daemon runs or not.  Changes are written to a temporary file,
 * fsync'ed and renamed over the old one (then the directory is fsync'ed):
 * a crash leaves the old list or the new one.
 */
#ifndef DR_SUSPEND_H
#define DR_SUSPEND_H

#include <stddef.h>

struct suspended {
	char	**dom;		/* sorted, lower case, no trailing dot */
	size_t	  n;
};

/* Read the list (no file: empty).  0, or -1 with the reason in err. */
int suspend_load(const char *spool_dir, struct suspended *s, char *err,
    size_t errlen);
void suspend_clear(struct suspended *s);
/* Add (on = 1) or remove a domain in the file: 1 changed, 0 it was so
 * already, -1 with the reason in err. */
int suspend_change(const char *spool_dir, const char *domain, int on,
    char *err, size_t errlen);
/* The same on a list in memory (no file): 1 changed, 0 not. */
int suspend_set(struct suspended *s, const char *domain, int on);
/* 1 if domain (any case, trailing dot or not) is in the list. */
int suspend_has(const struct suspended *s, const char *domain);
/* domain as kept in the list into buf (lower case, no trailing dot):
 * 0, or -1 when it is not a domain name (empty, too long, a space or a
 * control character, '@' or '/'). */
int suspend_norm(const char *domain, char *buf, size_t len);

#endif
