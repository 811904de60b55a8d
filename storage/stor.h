/*
 * stor.h - the node's persistent store: column families of ordered byte keys.
 *
 * One store per node, shared by every shard thread (DESIGN.md §5). Keys are
 * prefixed by user, so each shard only ever writes its own users' keys and no
 * two shards contend on a key. A shard gathers one loop turn's writes into one
 * batch and commits it before sleeping; replies that acknowledge those writes
 * are released only after the commit returns 0 (STYLE.md, the shard loop).
 *
 * Two implementations behind one small vtable (stor_int.h):
 *   rocksdb - the real one, under the node's data dir, guarded by a lock file so
 *             two processes never open the same dir;
 *   memory  - sorted arrays in RAM for unit tests and the deterministic
 *             simulator, with injectable commit failures (STYLE.md, Determinism).
 *
 * Keys compare bytewise (memcmp order, a proper prefix sorts first), the same
 * order as RocksDB's default comparator, so scans behave alike on both.
 *
 * Errors are 0 or -errno; key and value bytes passed in are always copied, so
 * callers may reuse their buffers as soon as a call returns.
 */
#ifndef PRESENCED_STOR_H
#define PRESENCED_STOR_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    STOR_CF_META,       /* schema version, node identity */
    STOR_CF_ACCOUNTS,   /* SCRAM stored/server keys, never plaintext */
    STOR_CF_ROSTERS,    /* roster items and subscription states */
    STOR_CF_PRIVACY,    /* block and privacy lists */
    STOR_CF_PRESENCE,   /* last presence per user */
    STOR_CF_OFFLINE,    /* messages held for offline users */
    STOR_CF_ROOMS,      /* persistent rooms and their history */
    STOR_CF_ARCHIVE,    /* message archive */
    STOR_CF_VCARDS,     /* vCards (XEP-0054), as the user stored them */
    STOR_CF_LINES,      /* phone lines the presence gateway watches, per user */
    STOR_CF_COUNT
} stor_cf_t;

typedef enum {
    STOR_SYNC_NONE,     /* WAL written (survives kill -9), not fsynced (may lose the
                         * last commits on power loss) */
    STOR_SYNC_BATCH,    /* every committed batch is fsynced before commit returns */
} stor_sync_t;

typedef struct stor stor_t;             /* opaque; one per node, any thread */
typedef struct stor_batch stor_batch_t; /* opaque; owned by one thread */

/* ---- names and configuration (pure; any thread) ---- */

/* "meta", "accounts", ...; the RocksDB column family name. cf must be valid. */
const char *stor_cf_name(stor_cf_t cf);

/* "none" | "batch" -> 0 and *out; anything else (or NULL) -> -EINVAL, *out untouched. */
int stor_sync_parse(const char *s, stor_sync_t *out);
const char *stor_sync_name(stor_sync_t sync);

/* ---- lifetime (main thread, before shards start / after they stop) ---- */

/*
 * Opens the node's RocksDB under dir, creating dir (one level, mode 0750) and the
 * column families on first start. Column families found on disk that this
 * version does not know (created by a newer one) are opened too and left alone.
 *
 * Before touching RocksDB it takes an exclusive flock on "<dir>/presenced.lock"
 * and writes our pid into it. The lock lives as long as the store, so a second
 * open of the same dir - from another process or this one - gets -EBUSY and err
 * says "data dir <dir> is in use by another running presenced (pid N)".
 *
 * Other failures: -errno from the file system, -EIO for RocksDB errors, with the
 * reason in err (NUL-terminated, truncated to err_len; err may be NULL). On
 * success *out is the store, owned by the caller until stor_close.
 * Blocks (disk I/O, WAL recovery).
 */
int stor_open_rocksdb(const char *dir, stor_sync_t sync, stor_t **out, char *err, size_t err_len);

/* An empty in-memory store, thread-safe like the RocksDB one; NULL on ENOMEM. */
stor_t *stor_open_mem(void);

/*
 * Syncs the WAL, closes the store and releases the dir lock; NULL is a no-op.
 * Every batch must have been destroyed and no other thread may be using st.
 * Blocks.
 */
void stor_close(stor_t *st);

/* "rocksdb" | "memory". */
const char *stor_kind(const stor_t *st);

/* ---- write batches (the owning shard thread) ---- */

/*
 * A batch belongs to the thread that created it and to st; it is reused every
 * loop turn (commit or clear keep its buffers). NULL on ENOMEM. Put and delete
 * copy their arguments, cannot fail, and abort the process on out-of-memory
 * (as RocksDB does). Operations apply in the order they were added, so a put
 * followed by a delete of the same key leaves it absent. Nothing blocks except
 * stor_batch_commit.
 */
stor_batch_t *stor_batch_create(stor_t *st);
void stor_batch_put(stor_batch_t *b, stor_cf_t cf, const void *key, size_t klen,
                    const void *val, size_t vlen);
void stor_batch_delete(stor_batch_t *b, stor_cf_t cf, const void *key, size_t klen);
size_t stor_batch_count(const stor_batch_t *b);     /* puts + deletes since last clear */
void stor_batch_clear(stor_batch_t *b);
void stor_batch_destroy(stor_batch_t *b);           /* NULL ok */

/*
 * Applies every operation in b atomically: after a crash either all of them are
 * visible or none. Durable per the store's sync policy when it returns 0, and
 * b is then cleared; an empty batch commits as a no-op. On failure nothing was
 * applied and b is kept, so the caller may retry or clear it: -EIO (RocksDB
 * write error, or a memory store failure injected by stor_mem_fail_commits),
 * -ENOMEM (memory store only). b must have been created on st. Blocks (fsync
 * under STOR_SYNC_BATCH).
 */
int stor_batch_commit(stor_t *st, stor_batch_t *b);

/* ---- reads (any thread) ---- */

/*
 * How many committed batches deleted something in cf since st was opened. A reader that
 * read this count, then found a key present, may take the key as still there for as
 * long as the count has not moved: a cache of "exists" that a delete invalidates.
 */
uint64_t stor_deletes(stor_t *st, stor_cf_t cf);

/*
 * Point read. On 0, *val is a malloc'd copy (never NULL, even for an empty
 * value) that the caller frees with free(), and *vlen is its length. -ENOENT if
 * the key is absent; -EIO or -ENOMEM otherwise, with *val untouched. May block
 * on disk.
 */
int stor_get(stor_t *st, stor_cf_t cf, const void *key, size_t klen, void **val, size_t *vlen);

/*
 * Calls fn for every key in cf that starts with prefix (plen 0: the whole cf),
 * in key order. key and val are valid only during the call. fn returns 0 to go
 * on; any other value stops the scan and is returned. Otherwise returns 0, or
 * -EIO / -ENOMEM if the scan could not complete. fn may read and commit to st:
 * RocksDB then iterates a snapshot taken at the start, the memory store resumes
 * after the last key it passed (so it sees later keys as they are now). May
 * block on disk.
 */
typedef int (*stor_scan_fn)(void *ctx, const void *key, size_t klen, const void *val,
                            size_t vlen);
int stor_scan_prefix(stor_t *st, stor_cf_t cf, const void *prefix, size_t plen,
                     stor_scan_fn fn, void *ctx);
/*
 * The same scan for records the caller keeps in memory once read (a user's
 * contact list at login): RocksDB does not put the blocks it reads for it in
 * its block cache, which would otherwise hold a second copy of every
 * connected user's records. Otherwise exactly stor_scan_prefix.
 */
int stor_scan_prefix_uncached(stor_t *st, stor_cf_t cf, const void *prefix, size_t plen,
                              stor_scan_fn fn, void *ctx);

/* ---- memory store fault injection (the simulator's thread) ---- */

/* The next n commits on st fail with -EIO, applying nothing (replaces any count
 * still pending; 0 cancels). st must be a memory store. */
void stor_mem_fail_commits(stor_t *st, unsigned n);

#endif
