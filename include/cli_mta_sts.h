/*
 * cli_mta_sts.h - the `danerelay mta-sts` command (cli_mta_sts.c).
 */
#ifndef DR_CLI_MTA_STS_H
#define DR_CLI_MTA_STS_H

struct config;

/*
 * `danerelay mta-sts show [DOMAIN] | refresh DOMAIN | forget DOMAIN`.
 * argv[0] is "mta-sts".  Runs without the daemon on the shared SQLite
 * cache (<state_dir>/mta-sts.db); the daemon reads that file on every
 * lookup, so a refreshed or forgotten policy counts from its next
 * delivery on.  Returns the exit status: 0 ok, 1 error/no policy,
 * 2 usage.
 */
int mta_sts_cli(const struct config *cf, int argc, char **argv);

#endif
