/*
 * test_dnssec_check.c - the DNSSEC self-test's offline parts: what a
 * DNSKEY answer means (secure / insecure / failing: bogus and failures
 * are never insecure), the state names, and dnssec_check_config()
 * refusing a malformed dnssec_check_name.  The self-test against signed
 * and unsigned zones is tests/scenario/dnssec_anchor.t.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dnssec_check.h"
#include "log.h"
#include "resolver.h"
#include "util.h"
#include "t.h"

static enum dnssec_state
of(enum dns_status st, enum dns_security sec)
{
	struct dns_result r;

	memset(&r, 0, sizeof(r));
	r.qtype = DNS_T_DNSKEY;
	r.status = st;
	r.security = sec;
	return dnssec_state_of(&r);
}

static void
test_state_of(void)
{
	CHECK(of(DNS_OK, DNS_SEC_SECURE) == DNSSEC_SECURE);
	CHECK(of(DNS_NODATA, DNS_SEC_SECURE) == DNSSEC_SECURE);
	CHECK(of(DNS_NXDOMAIN, DNS_SEC_SECURE) == DNSSEC_SECURE);
	CHECK(of(DNS_OK, DNS_SEC_INSECURE) == DNSSEC_INSECURE);
	CHECK(of(DNS_NODATA, DNS_SEC_INSECURE) == DNSSEC_INSECURE);
	CHECK(of(DNS_NXDOMAIN, DNS_SEC_INSECURE) == DNSSEC_INSECURE);
	/* bogus, SERVFAIL, timeout: failing, never insecure */
	CHECK(of(DNS_TEMPFAIL, DNS_SEC_BOGUS) == DNSSEC_FAILING);
	CHECK(of(DNS_TEMPFAIL, DNS_SEC_UNKNOWN) == DNSSEC_FAILING);
	CHECK(of(DNS_TEMPFAIL, DNS_SEC_INSECURE) == DNSSEC_FAILING);
	CHECK(of(DNS_TEMPFAIL, DNS_SEC_SECURE) == DNSSEC_FAILING);
	CHECK(of(DNS_OK, DNS_SEC_BOGUS) == DNSSEC_FAILING);
	CHECK(of(DNS_OK, DNS_SEC_UNKNOWN) == DNSSEC_FAILING);
	CHECK(dnssec_state_of(NULL) == DNSSEC_FAILING);

	CHECK_STR(dnssec_state_name(DNSSEC_SECURE), "secure");
	CHECK_STR(dnssec_state_name(DNSSEC_INSECURE), "insecure");
	CHECK_STR(dnssec_state_name(DNSSEC_FAILING), "failing");
	CHECK_STR(dnssec_state_name(DNSSEC_UNCHECKED), "unchecked");
	/* nothing checked yet in this process */
	CHECK(dnssec_check_state() == DNSSEC_UNCHECKED);
	CHECK(dnssec_check_time() == 0);
	CHECK(!dnssec_check_insecure());
}

static void
test_config(void)
{
	static const char *bad[] = { "", "a..b", "..", ".test" };
	static const char *good[] = { ".", "test.", "example.org",
	    "Example.ORG." };
	struct config cf;
	char err[1024];
	size_t i;

	memset(&cf, 0, sizeof(cf));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cf.dnssec_check_name = (char *)bad[i];
		err[0] = '\0';
		CHECK(dnssec_check_config(&cf, err, sizeof(err)) == -1);
		CHECK(strstr(err, "dnssec_check_name") != NULL);
	}
	/* a good name gets as far as the anchors (none here) */
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		cf.dnssec_check_name = (char *)good[i];
		err[0] = '\0';
		CHECK(dnssec_check_config(&cf, err, sizeof(err)) == -1);
		CHECK(strstr(err, "trust anchor") != NULL);
	}
}

int
main(void)
{
	log_init("test_dnssec_check", 1, 0);
	test_state_of();
	test_config();
	return t_done();
}
