/*
 * idn.h - internationalized domain names (IDNA2008, RFC 5890-5891, with
 * the UTS #46 mapping) for everything that looks a destination up:
 * the MX lookup, policy_file matching, MTA-STS and TLSRPT all work on
 * the A-label form ("xn--bcher-kva.example"), while addresses keep the
 * form the sender wrote (RFC 6531: "bücher.example" under SMTPUTF8).
 *
 * idn_is_ascii(s): 1 if s has no byte above 0x7f.
 *
 * idn_ldh_name(s, len): 1 if the len octets at s are a host name of
 * letters, digits and hyphens (RFC 5890 §2.3.1, RFC 5321 Domain): labels
 * of 1-63 octets that neither start nor end with a hyphen, at most 253
 * octets in all, no empty label and no trailing dot.
 *
 * idn_to_alabels(in, out, outlen, err, errlen): in (UTF-8, a trailing
 * dot allowed and dropped) in A-label form, lower case, in out.  An
 * ASCII name is only lower-cased, never judged (an address literal or an
 * odd but working name stays as it was).  A name with U-labels is
 * converted by libidn2 and must come out as a letters-digits-hyphens
 * host name of at most 253 octets.  Returns 0 (out unchanged in meaning),
 * 1 (converted: log both forms), or -1 with err set (not a valid IDN,
 * or too long for out).
 */
#ifndef DR_IDN_H
#define DR_IDN_H

#include <stddef.h>

int idn_is_ascii(const char *s);
int idn_ldh_name(const char *s, size_t len);
int idn_to_alabels(const char *in, char *out, size_t outlen, char *err,
    size_t errlen);

#endif
