/*
 * check_spf.h - SPF evaluation (RFC 7208) for `danerelay check` with
 * libspf2, on DNS answers that the caller fetched through danerelay's
 * validating resolver (check_spf.c).
 *
 * libspf2 asks its DNS layers for records while it evaluates; ours is a
 * zone layer (SPF_dns_zone) filled with the answers handed in, and below
 * it a layer that answers "try again" and notes the question.  So:
 *
 *	e = spf_eval_new();
 *	while (spf_eval_run(e, ip, helo, domain, &out) == SPF_EVAL_NEED)
 *		for each spf_eval_missing(e, i, &name, &type):
 *			look it up (asynchronously, all at once), then
 *			spf_eval_add(e, result)
 *
 * Each round answers more of libspf2's questions; a record asks at most
 * a few dozen (RFC 7208 §4.6.4 limits), and spf_eval_run() gives up
 * (SPF_EVAL_DONE, temperror) after SPF_EVAL_ROUNDS rounds.  No query
 * leaves through libspf2's own resolver.
 */
#ifndef DR_CHECK_SPF_H
#define DR_CHECK_SPF_H

#include <stddef.h>

struct dns_result;
struct spf_eval;

#define SPF_EVAL_ROUNDS	24

enum spf_eval_rc {
	SPF_EVAL_DONE = 0,
	SPF_EVAL_NEED,		/* answers missing: spf_eval_missing() */
	SPF_EVAL_ERROR,		/* could not evaluate at all: why */
};

struct spf_outcome {
	char	 result[16];	/* "pass", "fail", "softfail", "neutral",
				 * "none", "temperror", "permerror" */
	char	 why[256];	/* libspf2's comment / error */
};

struct spf_eval *spf_eval_new(char *err, size_t errlen);
void spf_eval_free(struct spf_eval *e);		/* NULL ok */
/* Evaluate the MAIL FROM identity postmaster@domain for a client at ip
 * (text, v4 or v6) that said HELO helo. */
enum spf_eval_rc spf_eval_run(struct spf_eval *e, const char *ip,
    const char *helo, const char *domain, struct spf_outcome *out);
/* The questions of the last run that had no answer yet. */
size_t spf_eval_nmissing(const struct spf_eval *e);
const char *spf_eval_missing(const struct spf_eval *e, size_t i, int *type);
/* An answer (as the resolver gave it: res->qname as asked). */
void spf_eval_add(struct spf_eval *e, const struct dns_result *res);

#endif
