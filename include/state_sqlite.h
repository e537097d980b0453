/*
 * state_sqlite.h - opening one of the SQLite files in state_dir the way
 * the daemon and the `danerelay` command share them (the MTA-STS cache,
 * the TLS memory).
 */
#ifndef DR_STATE_SQLITE_H
#define DR_STATE_SQLITE_H

#include <stddef.h>

#include <sqlite3.h>

/*
 * Open <dir>/<name>, creating it mode 0600 (root gives a new file to the
 * owner of dir, the daemon's user), one connection per thread
 * (SQLITE_OPEN_NOMUTEX), busy timeout busy_ms, WAL with
 * synchronous=NORMAL, schema applied (CREATE ... IF NOT EXISTS), and
 * PRAGMA user_version brought to version (a newer file is refused).
 * NULL with "path: reason" in err.
 */
sqlite3 *state_sqlite_open(const char *dir, const char *name,
    const char *schema, int version, int busy_ms, char *err, size_t errlen);

#endif
