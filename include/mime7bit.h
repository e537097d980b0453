/*
 * mime7bit.h - 8-bit to 7-bit MIME conversion for a next hop without
 * 8BITMIME (RFC 6152 §3: an 8-bit message must not be sent to a server
 * that does not offer it).  The MIME work is GMime's; nothing here
 * parses MIME by hand.
 *
 * mime7bit_convert() reads the message (RFC 5322, size bytes from
 * offset 0 of in_fd: the spool file holds the envelope after the data)
 * and writes a 7-bit version to out_fd (from its current offset): every
 * leaf part whose body is not 7-bit gets quoted-printable or base64,
 * whichever GMime finds best for it, and its Content-Transfer-Encoding
 * says so; embedded messages (message/rfc822) are converted too.
 * Returns
 *   0  converted; *out_size bytes written, all 7-bit, CRLF line ends;
 *   1  cannot be converted (8-bit bytes in a header field, a preamble,
 *      or inside multipart/signed whose signature re-encoding would
 *      break): the caller bounces with 5.6.3 (RFC 3463);
 *  -1  error (read, write, not a message at all), err says which: the
 *      caller defers.
 * Thread-safe (runs on a pool thread); g_mime_init() is done once.
 */
#ifndef DR_MIME7BIT_H
#define DR_MIME7BIT_H

#include <stddef.h>
#include <sys/types.h>

int mime7bit_convert(int in_fd, off_t size, int out_fd, off_t *out_size,
    char *err, size_t errlen);

#endif
