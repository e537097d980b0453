/*
 * test_tls_memory.c - the TLS memory store (src/tls_memory.c, issue
 * #23): first contact remembered and read back after reopening (a
 * restart), the highest level kept, expiry tls_memory_max_age after
 * last_seen (in memory and on the next open), last_seen written again
 * only after TLSMEM_TOUCH_SECS but at close, forget (in memory and on
 * disk), listing in domain order, writes through an io pool whose jobs
 * finish on a loop, and a directory that cannot hold the file.
 */
#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "tls_memory.h"
#include "workq.h"
#include "util.h"
#include "t.h"

#define DAY	86400LL

static int
list_cb(const struct tlsmem_entry *e, void *arg)
{
	char *s = arg;

	strcat(s, e->domain);
	strcat(s, ":");
	strcat(s, tlsmem_level_name(e->level));
	strcat(s, " ");
	return 0;
}

static void
rm_db(const char *dir)
{
	static const char *const sfx[] = { "", "-wal", "-shm" };
	char path[600];
	int i;

	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s%s", dir, TLSMEM_DB_NAME,
		    sfx[i]);
		unlink(path);
	}
}

int
main(void)
{
	char dir[] = "/tmp/test_tls_memory.XXXXXX";
	char err[512], path[600], list[512];
	struct tls_memory *tm;
	struct event_base *base;
	struct workq *wq;
	struct workq_port *port;
	struct stat st;
	time_t now = time(NULL), seen = 0;
	long long age = 30 * DAY;

	CHECK(mkdtemp(dir) != NULL);
	CHECK((tm = tls_memory_open(dir, age, err, sizeof(err))) != NULL);
	snprintf(path, sizeof(path), "%s/%s", dir, TLSMEM_DB_NAME);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);

	/* first contact: nothing remembered; then a note */
	CHECK(tls_memory_get(tm, "a.test", now, age, &seen) == TLSMEM_NONE);
	tls_memory_note(tm, NULL, "a.test", TLSMEM_ENCRYPT, now - 10 * DAY);
	CHECK(tls_memory_get(tm, "a.test", now, age, &seen) ==
	    TLSMEM_ENCRYPT);
	CHECK(seen == now - 10 * DAY);
	CHECK(tls_memory_get(tm, "b.test", now, age, NULL) == TLSMEM_NONE);
	/* the level only goes up; last_seen only forward */
	tls_memory_note(tm, NULL, "a.test", TLSMEM_VERIFY, now - 9 * DAY);
	tls_memory_note(tm, NULL, "a.test", TLSMEM_ENCRYPT, now - 8 * DAY);
	tls_memory_note(tm, NULL, "a.test", TLSMEM_ENCRYPT, now - 20 * DAY);
	CHECK(tls_memory_get(tm, "a.test", now, age, &seen) ==
	    TLSMEM_VERIFY);
	CHECK(seen == now - 8 * DAY);
	/* NONE is not a note */
	tls_memory_note(tm, NULL, "c.test", TLSMEM_NONE, now);
	CHECK(tls_memory_get(tm, "c.test", now, age, NULL) == TLSMEM_NONE);
	/* expiry: max_age after last_seen, whatever max_age is now */
	CHECK(tls_memory_get(tm, "a.test", now, 8 * DAY, NULL) ==
	    TLSMEM_VERIFY);
	CHECK(tls_memory_get(tm, "a.test", now, 8 * DAY - 1, NULL) ==
	    TLSMEM_NONE);
	CHECK(tls_memory_get(tm, "a.test", now + 22 * DAY + 1, age, NULL) ==
	    TLSMEM_NONE);
	tls_memory_note(tm, NULL, "old.test", TLSMEM_ENCRYPT, now - 40 * DAY);
	CHECK(tls_memory_get(tm, "old.test", now, age, NULL) == TLSMEM_NONE);
	tls_memory_note(tm, NULL, "b.test", TLSMEM_ENCRYPT, now);
	/* a touch less than TLSMEM_TOUCH_SECS later: memory only ... */
	tls_memory_note(tm, NULL, "b.test", TLSMEM_ENCRYPT, now + 60);
	list[0] = '\0';
	CHECK(tls_memory_foreach(tm, list_cb, list) == 3);
	CHECK_STR(list, "a.test:verify b.test:encrypt old.test:encrypt ");
	tls_memory_close(tm);	/* ... and written at close */

	/* a restart: read back; old.test is past max_age and dropped */
	CHECK((tm = tls_memory_open(dir, age, err, sizeof(err))) != NULL);
	CHECK(tls_memory_get(tm, "a.test", now, age, &seen) ==
	    TLSMEM_VERIFY && seen == now - 8 * DAY);
	CHECK(tls_memory_get(tm, "b.test", now + 60, age, &seen) ==
	    TLSMEM_ENCRYPT && seen == now + 60);
	list[0] = '\0';
	CHECK(tls_memory_foreach(tm, list_cb, list) == 2);
	CHECK_STR(list, "a.test:verify b.test:encrypt ");
	/* forget: gone at once and after a restart */
	CHECK(tls_memory_forget(tm, NULL, "a.test") == 1);
	CHECK(tls_memory_forget(tm, NULL, "a.test") == 0);
	CHECK(tls_memory_get(tm, "a.test", now, age, NULL) == TLSMEM_NONE);
	CHECK(tls_memory_write_errors(tm) == 0);
	tls_memory_close(tm);
	CHECK((tm = tls_memory_open(dir, age, err, sizeof(err))) != NULL);
	CHECK(tls_memory_get(tm, "a.test", now, age, NULL) == TLSMEM_NONE);
	CHECK(tls_memory_get(tm, "b.test", now, age, NULL) ==
	    TLSMEM_ENCRYPT);

	/* through an io pool: the write is on disk when its job is done,
	 * before any close (a kill -9 keeps it) */
	CHECK((base = event_base_new()) != NULL);
	CHECK((wq = workq_new("io", 2, err, sizeof(err))) != NULL);
	CHECK((port = workq_port_new(base, err, sizeof(err))) != NULL);
	tls_memory_set_workq(tm, wq);
	tls_memory_note(tm, port, "pool.test", TLSMEM_ENCRYPT, now);
	CHECK(tls_memory_forget(tm, port, "b.test") == 1);
	while (workq_port_pending(port) > 0)
		event_base_loop(base, EVLOOP_ONCE);
	{
		struct tls_memory *tm2;

		/* a second handle (the CLI with the daemon stopped) */
		CHECK((tm2 = tls_memory_open(dir, age, err, sizeof(err))) !=
		    NULL);
		CHECK(tls_memory_get(tm2, "pool.test", now, age, NULL) ==
		    TLSMEM_ENCRYPT);
		CHECK(tls_memory_get(tm2, "b.test", now, age, NULL) ==
		    TLSMEM_NONE);
		tls_memory_close(tm2);
	}
	workq_port_free(port);
	tls_memory_set_workq(tm, NULL);
	workq_free(wq);
	event_base_free(base);
	tls_memory_close(tm);

	/* a directory we cannot use is an error naming the file */
	err[0] = '\0';
	CHECK(tls_memory_open("/nonexistent/dir", age, err, sizeof(err)) ==
	    NULL);
	CHECK(strstr(err, "/nonexistent/dir/" TLSMEM_DB_NAME) != NULL);
	CHECK_STR(tlsmem_level_name(TLSMEM_ENCRYPT), "encrypt");

	rm_db(dir);
	rmdir(dir);
	return t_done();
}
