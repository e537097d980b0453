/*
 * state_sqlite.c - the SQLite files in state_dir: one way to open them,
 * for mta_sts_cache.c and tls_memory.c (both opened the same way, in
 * two copies, before).
 *
 * Only a file that is not there yet is opened (and closed) outside
 * SQLite: closing any descriptor of an existing database would drop the
 * POSIX locks another connection of this process holds on it (several
 * workers each open the MTA-STS cache).  The file is created 0600 by us,
 * so SQLite's -wal and -shm files are too; root (a CLI tool) gives a new
 * file to the directory's owner (the daemon's user), as SQLite itself
 * does for -wal and -shm.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "log.h"
#include "state_sqlite.h"
#include "util.h"

static int
exec(sqlite3 *db, const char *path, const char *sql, char *err,
    size_t errlen)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, msg ? msg :
		    sqlite3_errmsg(db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

sqlite3 *
state_sqlite_open(const char *dir, const char *name, const char *schema,
    int version, int busy_ms, char *err, size_t errlen)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st;
	struct stat sb;
	char *path, sql[64];
	int fd, v = 0;

	path = xasprintf("%s/%s", dir, name);
	if (access(path, F_OK) == 0)
		;
	else if ((fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) != -1) {
		if (geteuid() == 0 && stat(dir, &sb) == 0 && sb.st_uid != 0 &&
		    fchown(fd, sb.st_uid, sb.st_gid) == -1)
			log_warn("%s: chown", path);
		close(fd);
	} else if (errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, db ?
		    sqlite3_errmsg(db) : "cannot open");
		goto fail;
	}
	sqlite3_busy_timeout(db, busy_ms);
	if (exec(db, path, "PRAGMA journal_mode=WAL; PRAGMA "
	    "synchronous=NORMAL;", err, errlen) == -1 ||
	    exec(db, path, schema, err, errlen) == -1)
		goto fail;
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st,
	    NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
		goto fail;
	}
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (v > version) {
		snprintf(err, errlen, "%s: made by a newer danerelay (schema "
		    "%d)", path, v);
		goto fail;
	}
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", version);
	if (v < version && exec(db, path, sql, err, errlen) == -1)
		goto fail;
	free(path);
	return db;
fail:
	sqlite3_close(db);
	free(path);
	return NULL;
}
