/*
 * probe.h - `danerelay probe DOMAIN`: what the relay would do and why.
 */
#ifndef DR_PROBE_H
#define DR_PROBE_H

#include <stdio.h>

struct config;

/*
 * Resolve DOMAIN as the delivery engine does, print the MX hosts with
 * their DNSSEC states, the TLSA records, the decision, and - unless
 * no_connect - the result of a real STARTTLS handshake with verification
 * against every candidate address (no mail is sent: EHLO, STARTTLS, EHLO,
 * QUIT).  Returns 0 when the decision is "deliver" and at least one host
 * passed, 1 otherwise, -1 when the probe itself could not run.
 */
int probe_run(const struct config *cf, const char *domain, int no_connect,
    FILE *out);

#endif
