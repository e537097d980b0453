/*
 * tls_memory.h - TLS memory (issue #23): per destination domain, the
 * best TLS seen there and when it was last seen, so that a later
 * delivery to a domain without DANE or MTA-STS enforce is not made
 * weaker (STARTTLS stripped, a broken handshake, with `verify` an
 * unverifiable chain).  The rules of when it applies are the delivery
 * engine's (delivery.c); this module only remembers.
 *
 * Storage: <state_dir>/tls-memory.db (SQLite, WAL), one row per domain.
 * The daemon holds every unexpired entry in memory (a mutex: every
 * worker's loop reads and notes); lookups never touch the disk.  A
 * change (a new entry, a higher level, last_seen moved on by more than
 * TLSMEM_TOUCH_SECS, a forget) is written by a job on the io pool, which
 * writes the entry as it is in memory when the job runs, so jobs
 * finishing out of order still leave the newest state on disk.  Without
 * a pool (the CLI, unit tests) writes happen at once.
 *
 * An entry lapses max_age seconds after its last_seen: tls_memory_get()
 * no longer reports it, tls_memory_open() drops it from the file.
 */
#ifndef DR_TLS_MEMORY_H
#define DR_TLS_MEMORY_H

#include <stddef.h>
#include <time.h>

#define TLSMEM_DB_NAME		"tls-memory.db"
/* last_seen is written again only when it moved on by this much (an
 * entry then lapses at most this much early after a crash). */
#define TLSMEM_TOUCH_SECS	3600

enum tlsmem_level {
	TLSMEM_NONE = 0,	/* nothing remembered */
	TLSMEM_ENCRYPT,		/* STARTTLS and a completed handshake */
	TLSMEM_VERIFY,		/* and the chain verified against ca_file
				 * with a name matching the MX host */
};
const char *tlsmem_level_name(enum tlsmem_level l);	/* "encrypt" */

struct tlsmem_entry {
	char domain[256];		/* lower case A-labels */
	enum tlsmem_level level;
	time_t first_seen;
	time_t last_seen;
};

struct tls_memory;
struct workq;
struct workq_port;

/* Open or create <dir>/tls-memory.db and load the entries seen within
 * max_age of now (older ones are deleted).  NULL + err. */
struct tls_memory *tls_memory_open(const char *dir, long long max_age,
    char *err, size_t errlen);
/* Writes what is not yet on disk and closes.  Every port that submitted
 * writes must have been freed first.  Accepts NULL. */
void tls_memory_close(struct tls_memory *tm);
const char *tls_memory_path(const struct tls_memory *tm);
/* Write through this pool from now on (NULL: at once, in the caller). */
void tls_memory_set_workq(struct tls_memory *tm, struct workq *wq);

/*
 * What is remembered for domain at now, if seen within max_age:
 * the level (TLSMEM_NONE: nothing), and *last_seen.  Any thread.
 */
enum tlsmem_level tls_memory_get(struct tls_memory *tm, const char *domain,
    time_t now, long long max_age, time_t *last_seen);
/*
 * A session to a host of domain completed its TLS handshake at now, at
 * this level.  The entry keeps the highest level seen.  Any loop
 * thread; port: that loop's (for the write job; NULL only without a
 * pool).
 */
void tls_memory_note(struct tls_memory *tm, struct workq_port *port,
    const char *domain, enum tlsmem_level level, time_t now);
/* Drop domain's entry.  1 dropped, 0 there was none. */
int tls_memory_forget(struct tls_memory *tm, struct workq_port *port,
    const char *domain);
/* Every entry in memory (expired ones too), in domain order; cb returns
 * non-zero to stop.  Count of entries visited. */
size_t tls_memory_foreach(struct tls_memory *tm,
    int (*cb)(const struct tlsmem_entry *e, void *arg), void *arg);
/* Writes that failed (the disk full, the database locked). */
unsigned long long tls_memory_write_errors(struct tls_memory *tm);

#endif
