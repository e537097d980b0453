/*
 * test_idn.c - idn_to_alabels(): U-labels to A-labels (IDNA2008, UTS #46
 * mapping) for destination lookups (issue #12 item 6).
 */
#include <string.h>

#include "idn.h"
#include "t.h"

static void
conv(const char *in, int want_rc, const char *want)
{
	char out[256], err[256];
	int rc;

	out[0] = err[0] = '\0';
	rc = idn_to_alabels(in, out, sizeof(out), err, sizeof(err));
	CHECK(rc == want_rc);
	if (want != NULL)
		CHECK_STR(out, want);
	if (rc == -1)
		CHECK(err[0] != '\0');
}

int
main(void)
{
	char small[8], err[64];

	CHECK(idn_is_ascii("example.org"));
	CHECK(!idn_is_ascii("b\xc3\xbc" "cher.example"));
	/* ASCII: lower-cased, trailing dot dropped, never judged */
	conv("Example.ORG.", 0, "example.org");
	conv("[192.0.2.1]", 0, "[192.0.2.1]");
	conv("under_score.example", 0, "under_score.example");
	/* U-labels: A-labels, case folded (UTS #46), NFC */
	conv("b\xc3\xbc" "cher.example", 1, "xn--bcher-kva.example");
	conv("B\xc3\x9c" "CHER.Example.", 1, "xn--bcher-kva.example");
	conv("bu\xcc\x88" "cher.example", 1, "xn--bcher-kva.example");
	conv("mx.gr\xc3\xbcn.test", 1, "mx.xn--grn-ioa.test");
	/* non-transitional: sharp s stays */
	conv("stra\xc3\x9f" "e.example", 1, "xn--strae-oqa.example");
	/* not valid: bad UTF-8, a disallowed symbol, a label too long */
	conv("\xff.example", -1, NULL);
	conv("\xe2\x98\x83.example", -1, NULL);
	conv("b\xc3\xbc" "cheraaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaa.example", -1, NULL);
	/* too long for out */
	CHECK(idn_to_alabels("b\xc3\xbc" "cher.example", small, sizeof(small),
	    err, sizeof(err)) == -1);
	CHECK(idn_to_alabels("example.org", small, sizeof(small), err,
	    sizeof(err)) == -1);
	return t_done();
}
