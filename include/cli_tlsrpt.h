/*
 * cli_tlsrpt.h - the `danerelay tlsrpt` command (cli_tlsrpt.c).
 */
#ifndef DR_CLI_TLSRPT_H
#define DR_CLI_TLSRPT_H

struct config;

/*
 * `danerelay tlsrpt ...`:
 *   show [DOMAIN] [--date YYYY-MM-DD]   today's (UTC) counters
 *   send [--date YYYY-MM-DD]            send the reports of a day now
 *                                       (default: every past day not yet
 *                                       sent); today is allowed
 * `send` when the daemon runs (it holds the spool lock) asks it through
 * the database (a request row it polls every second) and waits for the
 * outcome; when it does not run, the CLI does the work itself: mailto
 * reports are committed to the spool (the daemon delivers them when it
 * starts), https reports are posted at once.  Sending today's report
 * (--date today) closes today: sessions after it are not reported (a
 * report is sent once).  Returns the exit status: 0 ok, 1 error, 2 usage.
 */
int tlsrpt_cli(const struct config *cf, int argc, char **argv);

#endif
