/*
 * mta_sts_mgr.c - MTA-STS manager (stub, being written).
 */
#include <stdio.h>
#include <stdlib.h>

#include "mta_sts.h"

struct mta_sts *
mta_sts_new(struct event_base *base, struct resolver *r,
    const struct config *cf, char *err, size_t errlen)
{
	snprintf(err, errlen, "mta-sts: not implemented yet");
	return NULL;
}

void mta_sts_free(struct mta_sts *m) { }
void mta_sts_reload(struct mta_sts *m, const struct config *cf) { }
struct mta_sts_lookup *mta_sts_lookup(struct mta_sts *m, const char *domain,
    mta_sts_cb *cb, void *arg) { return NULL; }
void mta_sts_lookup_cancel(struct mta_sts_lookup *l) { }
void
mta_sts_answer_free(struct mta_sts_answer *ans)
{
	if (ans == NULL)
		return;
	mta_sts_policy_clear(&ans->policy);
	free(ans);
}
const char *mta_sts_source_name(enum mta_sts_source s) { return "none"; }
int
mta_sts_cli(const struct config *cf, int argc, char **argv)
{
	fprintf(stderr, "danerelay: mta-sts: not implemented yet\n");
	return 1;
}
