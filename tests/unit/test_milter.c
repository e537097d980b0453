/*
 * test_milter.c - the milter codec (milter.c, issue #25): reply packets
 * taken apart (milter_reply_parse), custom replies checked
 * (milter_replycode_check), milter lists (milter_list_check), commands
 * built (milter_pkt).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "milter.h"
#include "t.h"

/* A packet: cmd and payload (len octets, NULs included). */
static size_t
pkt(unsigned char *buf, char cmd, const void *payload, size_t len)
{
	uint32_t n = (uint32_t)len + 1;

	buf[0] = (unsigned char)(n >> 24);
	buf[1] = (unsigned char)(n >> 16);
	buf[2] = (unsigned char)(n >> 8);
	buf[3] = (unsigned char)n;
	buf[4] = (unsigned char)cmd;
	memcpy(buf + 5, payload, len);
	return len + 5;
}

static int
parse(const unsigned char *buf, size_t len, struct milter_reply *r,
    size_t *used)
{
	char why[128];
	int rc;

	why[0] = '\0';
	rc = milter_reply_parse(buf, len, r, used, why, sizeof(why));
	if (rc == -1)
		CHECK(why[0] != '\0');
	return rc;
}

int
main(void)
{
	unsigned char b[512];
	struct milter_reply r;
	struct evbuffer *eb;
	size_t n, used = 0;
	int code = 0;
	unsigned char h[5];

	/* a bare verdict */
	n = pkt(b, SMFIR_CONTINUE, "", 0);
	CHECK(parse(b, n, &r, &used) == 1 && r.cmd == 'c' && used == 5);
	/* incomplete: more needed, never a verdict */
	CHECK(parse(b, 3, &r, &used) == 0);
	n = pkt(b, SMFIR_ADDHEADER, "X-A\0v\0", 6);
	CHECK(parse(b, n - 1, &r, &used) == 0);
	/* two packets in a row: the first, with its length */
	n = pkt(b, SMFIR_ACCEPT, "", 0);
	n += pkt(b + n, SMFIR_REJECT, "", 0);
	CHECK(parse(b, n, &r, &used) == 1 && r.cmd == 'a' && used == 5);
	CHECK(parse(b + used, n - used, &r, &used) == 1 && r.cmd == 'r');
	/* a verdict with a payload, an unknown code, a zero or huge length */
	n = pkt(b, SMFIR_CONTINUE, "x", 1);
	CHECK(parse(b, n, &r, &used) == -1);
	n = pkt(b, 'Z', "", 0);
	CHECK(parse(b, n, &r, &used) == -1);
	memset(b, 0, 5);
	CHECK(parse(b, 5, &r, &used) == -1);
	b[0] = 0x7f;
	CHECK(parse(b, 5, &r, &used) == -1);

	/* option negotiation: version, actions, steps; macro lists after
	 * them are allowed */
	n = pkt(b, SMFIR_OPTNEG, "\0\0\0\6\0\0\1\xff\0\x1f\xff\xff"
	    "\0\0\0\1{x}\0", 20);
	CHECK(parse(b, n, &r, &used) == 1 && r.version == 6 &&
	    r.actions == 0x1ff && r.protocol == 0x1fffff);
	CHECK(r.syms != NULL && r.symslen == 8 && r.syms[3] == 1 &&
	    memcmp(r.syms + 4, "{x}", 4) == 0);
	n = pkt(b, SMFIR_OPTNEG, "\0\0\0\6\0\0\1\xff\0\x1f\xff\xff",
	    12);
	CHECK(parse(b, n, &r, &used) == 1 && r.syms == NULL);
	/* a list not NUL-terminated, a stage past SMFIM_EOH, a short
	 * stage number */
	n = pkt(b, SMFIR_OPTNEG, "\0\0\0\6\0\0\1\xff\0\x1f\xff\xff"
	    "\0\0\0\1{x}", 19);
	CHECK(parse(b, n, &r, &used) == -1);
	n = pkt(b, SMFIR_OPTNEG, "\0\0\0\6\0\0\1\xff\0\x1f\xff\xff"
	    "\0\0\0\7{x}\0", 20);
	CHECK(parse(b, n, &r, &used) == -1);
	n = pkt(b, SMFIR_OPTNEG, "\0\0\0\6\0\0\1\xff\0\x1f\xff\xff"
	    "\0\0", 14);
	CHECK(parse(b, n, &r, &used) == -1);
	n = pkt(b, SMFIR_OPTNEG, "\0\0\0\6\0\0", 6);
	CHECK(parse(b, n, &r, &used) == -1);

	/* headers */
	n = pkt(b, SMFIR_ADDHEADER, "X-Spam\0yes\0", 11);
	CHECK(parse(b, n, &r, &used) == 1);
	CHECK_STR(r.name, "X-Spam");
	CHECK_STR(r.value, "yes");
	n = pkt(b, SMFIR_ADDHEADER, "X-Spam\0yes", 10);	/* no NUL */
	CHECK(parse(b, n, &r, &used) == -1);
	n = pkt(b, SMFIR_ADDHEADER, "X-Spam\0yes\0junk", 15);
	CHECK(parse(b, n, &r, &used) == -1);
	n = pkt(b, SMFIR_ADDHEADER, "Bad:Name\0v\0", 11);
	CHECK(parse(b, n, &r, &used) == -1);
	n = pkt(b, SMFIR_ADDHEADER, "\0v\0", 3);
	CHECK(parse(b, n, &r, &used) == -1);
	n = pkt(b, SMFIR_CHGHEADER, "\0\0\0\2Subject\0\0", 13);
	CHECK(parse(b, n, &r, &used) == 1 && r.index == 2);
	CHECK_STR(r.name, "Subject");
	CHECK_STR(r.value, "");
	n = pkt(b, SMFIR_INSHEADER, "\0\0\0", 3);
	CHECK(parse(b, n, &r, &used) == -1);

	/* recipients, sender */
	n = pkt(b, SMFIR_ADDRCPT, "<a@b>\0", 6);
	CHECK(parse(b, n, &r, &used) == 1 && r.args == NULL);
	CHECK_STR(r.addr, "<a@b>");
	n = pkt(b, SMFIR_ADDRCPT_PAR, "<a@b>\0NOTIFY=NEVER\0", 19);
	CHECK(parse(b, n, &r, &used) == 1);
	CHECK_STR(r.args, "NOTIFY=NEVER");
	n = pkt(b, SMFIR_ADDRCPT_PAR, "<a@b>\0", 6);
	CHECK(parse(b, n, &r, &used) == 1 && r.args == NULL);
	n = pkt(b, SMFIR_DELRCPT, "\0", 1);
	CHECK(parse(b, n, &r, &used) == -1);
	n = pkt(b, SMFIR_CHGFROM, "<s@b>\0SIZE=1\0x", 14);
	CHECK(parse(b, n, &r, &used) == -1);
	n = pkt(b, SMFIR_QUARANTINE, "spam\0", 5);
	CHECK(parse(b, n, &r, &used) == 1);
	CHECK_STR(r.addr, "spam");

	/* body */
	n = pkt(b, SMFIR_REPLBODY, "new\r\nbody\0x", 11);
	CHECK(parse(b, n, &r, &used) == 1 && r.len == 11 &&
	    memcmp(r.data, "new\r\nbody", 9) == 0);

	/* custom replies */
	n = pkt(b, SMFIR_REPLYCODE, "550 5.7.1 no\0", 13);
	CHECK(parse(b, n, &r, &used) == 1 && r.code == 550);
	CHECK(milter_replycode_check("451-4.7.1 a\r\n451 4.7.1 b", &code) ==
	    0 && code == 451);
	CHECK(milter_replycode_check("550", &code) == 0 && code == 550);
	CHECK(milter_replycode_check("250 ok", &code) == -1);
	CHECK(milter_replycode_check("550-a\r\n551 b", &code) == -1);
	CHECK(milter_replycode_check("550 a\r\n550 b", &code) == -1);
	CHECK(milter_replycode_check("550-a\r\n", &code) == -1);
	CHECK(milter_replycode_check("550 a\nb", &code) == -1);
	CHECK(milter_replycode_check("55x a", &code) == -1);
	n = pkt(b, SMFIR_REPLYCODE, "250 ok\0", 7);
	CHECK(parse(b, n, &r, &used) == -1);

	/* lists */
	CHECK(milter_list_check("inet:127.0.0.1:8891, unix:/run/m.sock",
	    (char *)b, sizeof(b)) == 0);
	CHECK(milter_list_check("inet:8891@127.0.0.1 inet6:[::1]:11332 "
	    "inet:localhost:1", (char *)b, sizeof(b)) == 0);
	CHECK(milter_list_check("inet:mx.example:8891", (char *)b,
	    sizeof(b)) == -1);
	CHECK(milter_list_check("inet:127.0.0.1", (char *)b, sizeof(b)) ==
	    -1);
	CHECK(milter_list_check("inet:127.0.0.1:0", (char *)b, sizeof(b)) ==
	    -1);
	CHECK(milter_list_check("unix:relative", (char *)b, sizeof(b)) ==
	    -1);
	CHECK(milter_list_check("tcp:127.0.0.1:1", (char *)b, sizeof(b)) ==
	    -1);

	/* a command: length (command octet included), command, payload */
	eb = evbuffer_new();
	milter_pkt(eb, SMFIC_HELO, "x\0", 2);
	CHECK(evbuffer_get_length(eb) == 7);
	evbuffer_remove(eb, h, 5);
	CHECK(h[0] == 0 && h[1] == 0 && h[2] == 0 && h[3] == 3 &&
	    h[4] == 'H');
	evbuffer_free(eb);
	return t_done();
}
