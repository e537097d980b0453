/*
 * auth.h - SMTP AUTH credentials (auth_file).
 *
 * The file holds "user:crypt-hash" lines; '#' starts a comment line,
 * blank lines are ignored.  Only strong crypt(3) methods are accepted
 * (yescrypt "$y$", gost-yescrypt "$gy$", scrypt "$7$", bcrypt "$2b$"/"$2y$",
 * SHA-512-crypt "$6$", SHA-256-crypt "$5$"); DES, MD5 and other legacy
 * hashes are refused at load with "file:line: reason".  A hash starting
 * with '!' or '*' marks a locked account (never matches).
 */
#ifndef DR_AUTH_H
#define DR_AUTH_H

#include <stddef.h>

struct auth_table;

/* NULL + err ("file:line: reason") on any problem. */
struct auth_table *auth_load(const char *path, char *err, size_t errlen);
/* Number of users loaded. */
size_t auth_count(const struct auth_table *t);
/*
 * 1 the password matches, 0 unknown user / wrong password / locked,
 * -1 internal error (crypt failed).  Unknown users cost as much time as
 * known ones, comparison is constant time (CRYPTO_memcmp).  CPU-heavy
 * (one crypt, tens of ms): call it from a worker thread, not an event
 * loop.  Thread-safe: any number of threads may check against one table
 * at once, as long as nobody frees it meanwhile.
 */
int auth_check(const struct auth_table *t, const char *user,
    const char *pass);
void auth_free(struct auth_table *t);

#endif
