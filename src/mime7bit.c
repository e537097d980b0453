/*
 * mime7bit.c - 8-bit to 7-bit MIME conversion with GMime, for next hops
 * without 8BITMIME (RFC 6152 §3; RFC 2045 §6 transfer encodings; RFC
 * 1847 §2.1: the content of multipart/signed is never changed).  See
 * mime7bit.h.
 *
 * The message is parsed through a dos2unix filter (so text has one kind
 * of line end), every leaf part whose transfer encoding is 8bit or binary
 * is re-encoded with the best 7-bit encoding GMime finds for its content,
 * and the result is written with CRLF line ends.  Parts that were 7-bit
 * are written as they came.  Whatever is still 8-bit in the output (a
 * header field, a preamble) cannot be converted: the caller bounces.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <gmime/gmime.h>

#include "mime7bit.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void
init(void)
{
	g_mime_init();
}

/* Leaf parts with an 8-bit transfer encoding get a 7-bit one.  -1: an
 * 8-bit part inside multipart/signed (would break the signature). */
static int
convert(GMimeObject *o, int in_signed)
{
	GMimeContentEncoding enc;
	GMimeMessage *m;
	int i, n;

	if (GMIME_IS_MESSAGE_PART(o)) {
		m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
		if (m == NULL || g_mime_message_get_mime_part(m) == NULL)
			return 0;
		return convert(g_mime_message_get_mime_part(m), in_signed);
	}
	if (GMIME_IS_MULTIPART(o)) {
		n = g_mime_multipart_get_count(GMIME_MULTIPART(o));
		for (i = 0; i < n; i++)
			if (convert(g_mime_multipart_get_part(GMIME_MULTIPART(o),
			    i), in_signed || GMIME_IS_MULTIPART_SIGNED(o)) == -1)
				return -1;
		return 0;
	}
	if (!GMIME_IS_PART(o))
		return 0;
	enc = g_mime_part_get_content_encoding(GMIME_PART(o));
	if (enc != GMIME_CONTENT_ENCODING_8BIT &&
	    enc != GMIME_CONTENT_ENCODING_BINARY)
		return 0;	/* 7bit, qp, base64, uuencode, or unlabelled */
	if (in_signed)
		return -1;
	g_mime_part_set_content_encoding(GMIME_PART(o),
	    g_mime_part_get_best_content_encoding(GMIME_PART(o),
	    GMIME_ENCODING_CONSTRAINT_7BIT));
	return 0;
}

/* An unlabelled part (no Content-Transfer-Encoding: 7bit by default)
 * that holds 8-bit bytes anyway is converted as if it said 8bit. */
static void
label_8bit(GMimeObject *o)
{
	GMimeMessage *m;
	GMimeDataWrapper *w;
	GMimeStream *s;
	GByteArray *a;
	guint k;
	int i, n;

	if (GMIME_IS_MESSAGE_PART(o)) {
		m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
		if (m != NULL && g_mime_message_get_mime_part(m) != NULL)
			label_8bit(g_mime_message_get_mime_part(m));
		return;
	}
	if (GMIME_IS_MULTIPART(o)) {
		n = g_mime_multipart_get_count(GMIME_MULTIPART(o));
		for (i = 0; i < n; i++)
			label_8bit(g_mime_multipart_get_part(GMIME_MULTIPART(o),
			    i));
		return;
	}
	if (!GMIME_IS_PART(o) || g_mime_part_get_content_encoding(
	    GMIME_PART(o)) != GMIME_CONTENT_ENCODING_DEFAULT)
		return;
	if ((w = g_mime_part_get_content(GMIME_PART(o))) == NULL)
		return;
	s = g_mime_stream_mem_new();
	g_mime_data_wrapper_write_to_stream(w, s);
	a = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(s));
	for (k = 0; a != NULL && k < a->len; k++)
		if (a->data[k] & 0x80) {
			g_mime_part_set_content_encoding(GMIME_PART(o),
			    GMIME_CONTENT_ENCODING_8BIT);
			break;
		}
	g_object_unref(s);
}

int
mime7bit_convert(int in_fd, off_t size, int out_fd, off_t *out_size,
    char *err, size_t errlen)
{
	GMimeStream *raw = NULL, *sub = NULL, *filt = NULL, *out = NULL;
	GMimeFilter *d2u;
	GMimeParser *parser = NULL;
	GMimeMessage *msg = NULL;
	GMimeFormatOptions *fo = NULL;
	off_t start, end, off;
	char buf[16384];
	ssize_t n, i;
	int fd = -1, rc = -1;

	pthread_once(&init_once, init);
	if ((start = lseek(out_fd, 0, SEEK_CUR)) == -1 ||
	    (fd = dup(in_fd)) == -1) {
		snprintf(err, errlen, "8-bit conversion: %s", strerror(errno));
		return -1;
	}
	raw = g_mime_stream_fs_new(fd);		/* owns fd */
	sub = g_mime_stream_substream(raw, 0, (gint64)size);
	filt = g_mime_stream_filter_new(sub);
	d2u = g_mime_filter_dos2unix_new(FALSE);
	g_mime_stream_filter_add(GMIME_STREAM_FILTER(filt), d2u);
	g_object_unref(d2u);
	parser = g_mime_parser_new_with_stream(filt);
	msg = g_mime_parser_construct_message(parser, NULL);
	if (msg == NULL || g_mime_message_get_mime_part(msg) == NULL) {
		snprintf(err, errlen, "8-bit conversion: not a MIME message");
		goto done;
	}
	label_8bit(g_mime_message_get_mime_part(msg));
	if (convert(g_mime_message_get_mime_part(msg), 0) == -1) {
		snprintf(err, errlen, "8-bit content inside multipart/signed "
		    "cannot be re-encoded without breaking the signature");
		rc = 1;
		goto done;
	}
	if ((fd = dup(out_fd)) == -1) {
		snprintf(err, errlen, "8-bit conversion: %s", strerror(errno));
		goto done;
	}
	out = g_mime_stream_fs_new(fd);
	fo = g_mime_format_options_new();
	g_mime_format_options_set_newline_format(fo, GMIME_NEWLINE_FORMAT_DOS);
	if (g_mime_object_write_to_stream(GMIME_OBJECT(msg), fo, out) == -1 ||
	    g_mime_stream_flush(out) == -1) {
		snprintf(err, errlen, "8-bit conversion: write failed");
		goto done;
	}
	if ((end = lseek(out_fd, 0, SEEK_END)) == -1) {
		snprintf(err, errlen, "8-bit conversion: %s", strerror(errno));
		goto done;
	}
	/* Anything still 8-bit is in a header field or a preamble. */
	for (off = start; off < end; off += n) {
		n = pread(out_fd, buf, end - off < (off_t)sizeof(buf) ?
		    (size_t)(end - off) : sizeof(buf), off);
		if (n <= 0) {
			snprintf(err, errlen, "8-bit conversion: read back: %s",
			    n == 0 ? "short file" : strerror(errno));
			goto done;
		}
		for (i = 0; i < n; i++)
			if ((unsigned char)buf[i] & 0x80) {
				snprintf(err, errlen, "8-bit text in a header "
				    "field or outside the MIME parts cannot "
				    "be converted to 7 bits");
				rc = 1;
				goto done;
			}
	}
	*out_size = end - start;
	rc = 0;
 done:
	if (fo != NULL)
		g_mime_format_options_free(fo);
	if (out != NULL)
		g_object_unref(out);
	if (msg != NULL)
		g_object_unref(msg);
	if (parser != NULL)
		g_object_unref(parser);
	g_object_unref(filt);
	g_object_unref(sub);
	g_object_unref(raw);
	return rc;
}
