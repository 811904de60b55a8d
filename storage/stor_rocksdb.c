/*
 * stor_rocksdb.c - the store on RocksDB, through its C API.
 *
 * One DB per node with one column family per stor_cf_t (plus "default", which
 * RocksDB always has and we leave empty). Every handle is created at open and
 * only read afterwards, so gets, scans and commits from any number of shard
 * threads need no lock of ours: RocksDB's DB, column family handles and const
 * ReadOptions/WriteOptions are safe to share.
 *
 * The dir lock: RocksDB's own LOCK file refuses a second opener with an I/O
 * error that does not say who holds it. We take our own flock first so an
 * operator who starts a second node on the same dir is told which process has it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "engine/log.h"
#include "storage/stor_int.h"

/*
 * Memory bounds. Memtables: 16 MiB per CF before a flush, with all CFs together
 * capped at 64 MiB so nine mostly idle CFs cannot pin 9 x 2 x 16 MiB. WAL: a
 * CF that is rarely written (meta, rooms) keeps old WAL files alive until its
 * memtable flushes; 128 MiB of WAL forces those flushes and bounds recovery
 * time after kill -9. Block cache: 64 MiB holds the hot accounts and rosters of
 * a node's active users; the OS page cache backs the rest.
 */
#define STOR_RDB_CF_WRITE_BUFFER_BYTES ((size_t)16 << 20)
#define STOR_RDB_DB_WRITE_BUFFER_BYTES ((size_t)64 << 20)
#define STOR_RDB_MAX_WAL_BYTES ((uint64_t)128 << 20)
#define STOR_RDB_BLOCK_CACHE_BYTES ((size_t)64 << 20)
/* ~1% false positives: a get for an absent key (offline messages of a user
 * who has none) then rarely touches an SST block. */
#define STOR_RDB_BLOOM_BITS_PER_KEY 10.0
/* Flush + compaction threads; the node's cores belong to the shards. */
#define STOR_RDB_BACKGROUND_THREADS 2
/* RocksDB's own info LOG files in the data dir: 4 x 8 MiB at most. */
#define STOR_RDB_INFO_LOG_FILES 4
#define STOR_RDB_INFO_LOG_FILE_BYTES ((size_t)8 << 20)
/* Background writeback every 1 MiB so an fsync never has a large backlog. */
#define STOR_RDB_BYTES_PER_SYNC ((uint64_t)1 << 20)
/* Scan prefixes are user keys; longer ones get a heap buffer for their bound. */
#define STOR_RDB_BOUND_STACK_BYTES 256

#define STOR_RDB_LOCK_NAME "presenced.lock"

typedef struct {
    stor_t base;
    rocksdb_t *db;
    rocksdb_options_t *opts;            /* DB and every CF share one options object */
    rocksdb_writeoptions_t *wo;         /* sync per the policy chosen at open */
    rocksdb_readoptions_t *ro;          /* defaults, for point reads */
    rocksdb_column_family_handle_t *cf[STOR_CF_COUNT];
    rocksdb_column_family_handle_t **handles;   /* all opened CFs, ours and unknown ones */
    size_t nhandles;
    int lock_fd;
} stor_rdb_t;

typedef struct {
    stor_batch_t base;
    rocksdb_writebatch_t *wb;
} stor_rdb_batch_t;

static const stor_ops_t stor_rocksdb_ops;

static stor_rdb_t *stor_rdb_of(stor_t *st)
{
    ASSERT(st->ops == &stor_rocksdb_ops);
    return container_of(st, stor_rdb_t, base);
}

static stor_rdb_batch_t *stor_rdb_batch_of(stor_batch_t *b)
{
    ASSERT(b->st->ops == &stor_rocksdb_ops);
    return container_of(b, stor_rdb_batch_t, base);
}

static void stor_rdb_err(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void stor_rdb_err(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;

    if (!err || err_len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

/* ---- the dir lock ---- */

/* The pid the holder wrote, or 0 if it has not written it yet. */
static long stor_rdb_lock_owner(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *end;
    long pid = strtol(buf, &end, 10);
    return end != buf && pid > 0 ? pid : 0;
}

/*
 * flock, not fcntl: fcntl locks belong to the process, so a second open in this
 * process would silently succeed, and closing any fd on the file drops them.
 * flock belongs to the open file description, so even this process's second
 * open is refused. The file is never unlinked: a new opener could lock an
 * unlinked inode while a third locks the new file.
 */
static int stor_rdb_lock(const char *dir, int *fd_out, char *err, size_t err_len)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/" STOR_RDB_LOCK_NAME, dir) >= (int)sizeof(path)) {
        stor_rdb_err(err, err_len, "data dir %s: path too long", dir);
        return -ENAMETOOLONG;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        int rc = -errno;
        stor_rdb_err(err, err_len, "cannot open lock file %s: %s", path, strerror(-rc));
        return rc;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int rc = -errno;
        if (rc == -EWOULDBLOCK) {
            long pid = stor_rdb_lock_owner(fd);
            if (pid)
                stor_rdb_err(err, err_len,
                             "data dir %s is in use by another running presenced (pid %ld)",
                             dir, pid);
            else
                stor_rdb_err(err, err_len,
                             "data dir %s is in use by another running presenced", dir);
            rc = -EBUSY;
        } else {
            stor_rdb_err(err, err_len, "cannot lock %s: %s", path, strerror(-rc));
        }
        close(fd);
        return rc;
    }

    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    errno = 0;      /* a short pwrite sets none */
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        int rc = errno ? -errno : -EIO;
        stor_rdb_err(err, err_len, "cannot write pid to %s: %s", path, strerror(-rc));
        close(fd);
        return rc;
    }
    *fd_out = fd;
    return 0;
}

static void stor_rdb_unlock(int fd)
{
    if (fd < 0)
        return;
    /* No stale pid for the next refused opener to blame; still ours until close. */
    if (ftruncate(fd, 0) != 0)
        LOG_WARN("storage: cannot clear the lock file: %s", strerror(errno));
    close(fd);
}

/* ---- open and close ---- */

static void stor_rdb_free(stor_rdb_t *r)
{
    /* CF handles must go before the DB, options after it. */
    for (size_t i = 0; i < r->nhandles; i++)
        rocksdb_column_family_handle_destroy(r->handles[i]);
    free(r->handles);
    if (r->db)
        rocksdb_close(r->db);
    if (r->opts)
        rocksdb_options_destroy(r->opts);
    if (r->wo)
        rocksdb_writeoptions_destroy(r->wo);
    if (r->ro)
        rocksdb_readoptions_destroy(r->ro);
    stor_rdb_unlock(r->lock_fd);
    free(r);
}

static void stor_rdb_set_options(stor_rdb_t *r, stor_sync_t sync)
{
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(o, 1);
    rocksdb_options_set_create_missing_column_families(o, 1);
    rocksdb_options_increase_parallelism(o, STOR_RDB_BACKGROUND_THREADS);
    rocksdb_options_set_write_buffer_size(o, STOR_RDB_CF_WRITE_BUFFER_BYTES);
    rocksdb_options_set_db_write_buffer_size(o, STOR_RDB_DB_WRITE_BUFFER_BYTES);
    rocksdb_options_set_max_total_wal_size(o, STOR_RDB_MAX_WAL_BYTES);
    rocksdb_options_set_level_compaction_dynamic_level_bytes(o, 1);
    rocksdb_options_set_bytes_per_sync(o, STOR_RDB_BYTES_PER_SYNC);
    rocksdb_options_set_keep_log_file_num(o, STOR_RDB_INFO_LOG_FILES);
    rocksdb_options_set_max_log_file_size(o, STOR_RDB_INFO_LOG_FILE_BYTES);
    /* Cheap enough to never be the bottleneck; stor_rdb_open_db falls back to
     * none on a RocksDB built without it. */
    rocksdb_options_set_compression(o, rocksdb_lz4_compression);

    /* The options keep their own references to the cache and the filter. */
    rocksdb_block_based_table_options_t *t = rocksdb_block_based_options_create();
    rocksdb_cache_t *cache = rocksdb_cache_create_lru(STOR_RDB_BLOCK_CACHE_BYTES);
    rocksdb_block_based_options_set_block_cache(t, cache);
    rocksdb_block_based_options_set_filter_policy(
        t, rocksdb_filterpolicy_create_bloom_full(STOR_RDB_BLOOM_BITS_PER_KEY));
    rocksdb_block_based_options_set_cache_index_and_filter_blocks(t, 1);
    rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(t, 1);
    rocksdb_options_set_block_based_table_factory(o, t);
    rocksdb_block_based_options_destroy(t);
    rocksdb_cache_destroy(cache);
    r->opts = o;

    r->wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(r->wo, sync == STOR_SYNC_BATCH);
    r->ro = rocksdb_readoptions_create();
}

/*
 * The CFs to open: "default", ours in stor_cf_t order (so ours are handles
 * 1..STOR_CF_COUNT), then any others already on disk, because RocksDB refuses
 * to open a DB without all of its CFs. names[] points into listed[].
 */
static size_t stor_rdb_cf_names(const char **names, char **listed, size_t nlisted)
{
    size_t n = 0;
    names[n++] = "default";
    for (size_t cf = 0; cf < STOR_CF_COUNT; cf++)
        names[n++] = stor_cf_name((stor_cf_t)cf);
    for (size_t i = 0; i < nlisted; i++) {
        bool known = false;
        for (size_t j = 0; j < n && !known; j++)
            known = strcmp(names[j], listed[i]) == 0;
        if (!known)
            names[n++] = listed[i];
    }
    return n;
}

static int stor_rdb_open_db(stor_rdb_t *r, const char *dir, char *err, size_t err_len)
{
    char *e = NULL;
    size_t nlisted = 0;
    char **listed = rocksdb_list_column_families(r->opts, dir, &nlisted, &e);
    if (e) {
        /* A fresh dir has no CURRENT file yet; any real damage fails the open
         * below with a better message. The list is allocated even on error. */
        free(e);
        e = NULL;
        rocksdb_list_column_families_destroy(listed, nlisted);
        listed = NULL;
        nlisted = 0;
    }
    size_t cap = 1 + STOR_CF_COUNT + nlisted;
    const char **names = calloc(cap, sizeof(*names));
    const rocksdb_options_t **cfopts = calloc(cap, sizeof(*cfopts));
    r->handles = calloc(cap, sizeof(*r->handles));
    int rc = -ENOMEM;
    if (!names || !cfopts || !r->handles) {
        stor_rdb_err(err, err_len, "data dir %s: out of memory", dir);
        goto out;
    }
    size_t n = stor_rdb_cf_names(names, listed, nlisted);
    for (size_t i = 0; i < n; i++)
        cfopts[i] = r->opts;

    r->db = rocksdb_open_column_families(r->opts, dir, (int)n, names, cfopts, r->handles, &e);
    if (e && strstr(e, "not linked with the binary")) {
        LOG_WARN("storage: RocksDB lacks LZ4 (%s); storing uncompressed", e);
        free(e);
        e = NULL;
        rocksdb_options_set_compression(r->opts, rocksdb_no_compression);
        r->db = rocksdb_open_column_families(r->opts, dir, (int)n, names, cfopts, r->handles,
                                             &e);
    }
    if (e) {
        stor_rdb_err(err, err_len, "rocksdb open %s: %s", dir, e);
        free(e);
        r->db = NULL;
        rc = -EIO;
        goto out;
    }
    r->nhandles = n;
    for (size_t cf = 0; cf < STOR_CF_COUNT; cf++)
        r->cf[cf] = r->handles[1 + cf];
    rc = 0;
out:
    free(names);
    free(cfopts);
    if (listed)
        rocksdb_list_column_families_destroy(listed, nlisted);
    return rc;
}

int stor_open_rocksdb(const char *dir, stor_sync_t sync, stor_t **out, char *err, size_t err_len)
{
    ASSERT(dir);
    ASSERT(out);
    ASSERT(sync == STOR_SYNC_NONE || sync == STOR_SYNC_BATCH);
    stor_rdb_err(err, err_len, "%s", "");

    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        int rc = -errno;
        stor_rdb_err(err, err_len, "cannot create data dir %s: %s", dir, strerror(-rc));
        return rc;
    }
    stor_rdb_t *r = calloc(1, sizeof(*r));
    if (!r) {
        stor_rdb_err(err, err_len, "data dir %s: out of memory", dir);
        return -ENOMEM;
    }
    stor_base_init(&r->base, &stor_rocksdb_ops);
    r->lock_fd = -1;

    int rc = stor_rdb_lock(dir, &r->lock_fd, err, err_len);
    if (rc == 0) {
        stor_rdb_set_options(r, sync);
        rc = stor_rdb_open_db(r, dir, err, err_len);
    }
    if (rc != 0) {
        stor_rdb_free(r);
        return rc;
    }
    LOG_INFO("storage: opened %s (rocksdb, sync %s, %zu column families)", dir,
             stor_sync_name(sync), r->nhandles);
    *out = &r->base;
    return 0;
}

static void stor_rdb_close(stor_t *st)
{
    stor_rdb_t *r = stor_rdb_of(st);
    char *e = NULL;

    /* Under STOR_SYNC_NONE the WAL tail is still in the page cache; a clean
     * stop should not leave it to the OS. */
    rocksdb_flush_wal(r->db, 1, &e);
    if (e) {
        LOG_ERROR("storage: syncing the WAL at close: %s", e);
        free(e);
    }
    stor_rdb_free(r);
}

/* ---- batches ---- */

static stor_batch_t *stor_rdb_batch_create(stor_t *st)
{
    stor_rdb_batch_t *rb = calloc(1, sizeof(*rb));
    if (!rb)
        return NULL;
    rb->wb = rocksdb_writebatch_create();
    stor_batch_base_init(&rb->base, st);
    return &rb->base;
}

static void stor_rdb_batch_destroy(stor_batch_t *b)
{
    stor_rdb_batch_t *rb = stor_rdb_batch_of(b);
    rocksdb_writebatch_destroy(rb->wb);
    free(rb);
}

static void stor_rdb_batch_put(stor_batch_t *b, stor_cf_t cf, const void *key, size_t klen,
                               const void *val, size_t vlen)
{
    stor_rdb_batch_t *rb = stor_rdb_batch_of(b);
    rocksdb_writebatch_put_cf(rb->wb, stor_rdb_of(b->st)->cf[cf], key, klen, val, vlen);
}

static void stor_rdb_batch_delete(stor_batch_t *b, stor_cf_t cf, const void *key, size_t klen)
{
    stor_rdb_batch_t *rb = stor_rdb_batch_of(b);
    rocksdb_writebatch_delete_cf(rb->wb, stor_rdb_of(b->st)->cf[cf], key, klen);
}

/* WriteBatch::Clear keeps the std::string's capacity: no reallocation next turn. */
static void stor_rdb_batch_clear(stor_batch_t *b)
{
    rocksdb_writebatch_clear(stor_rdb_batch_of(b)->wb);
}

static int stor_rdb_batch_commit(stor_t *st, stor_batch_t *b)
{
    stor_rdb_t *r = stor_rdb_of(st);
    stor_rdb_batch_t *rb = stor_rdb_batch_of(b);
    char *e = NULL;

    ASSERT((size_t)rocksdb_writebatch_count(rb->wb) == b->count);
    rocksdb_write(r->db, r->wo, rb->wb, &e);
    if (e) {
        LOG_RATELIMITED(LOG_LEVEL_ERROR, "storage: commit of %zu writes failed: %s", b->count, e);
        free(e);
        return -EIO;
    }
    return 0;
}

/* ---- reads ---- */

static int stor_rdb_get(stor_t *st, stor_cf_t cf, const void *key, size_t klen, void **val,
                        size_t *vlen)
{
    stor_rdb_t *r = stor_rdb_of(st);
    char *e = NULL;

    /* Pinned, then copied: rocksdb_get_cf's malloc(0) for an empty value would be
     * ambiguous with "absent" on a libc that returns NULL for it. */
    rocksdb_pinnableslice_t *ps = rocksdb_get_pinned_cf(r->db, r->ro, r->cf[cf], key, klen, &e);
    if (e) {
        LOG_RATELIMITED(LOG_LEVEL_ERROR, "storage: get from %s failed: %s", stor_cf_name(cf), e);
        free(e);
        return -EIO;
    }
    if (!ps)
        return -ENOENT;
    size_t n;
    const char *v = rocksdb_pinnableslice_value(ps, &n);
    void *copy = malloc(n + 1);
    if (copy) {
        if (n)
            memcpy(copy, v, n);
        *val = copy;
        *vlen = n;
    }
    rocksdb_pinnableslice_destroy(ps);
    return copy ? 0 : -ENOMEM;
}

/*
 * The smallest key above every key that starts with prefix: the prefix with
 * trailing 0xff bytes dropped and the last byte left incremented. 0 when there
 * is none (empty or all 0xff), and the scan then relies on its prefix check.
 */
static size_t stor_rdb_prefix_end(const uint8_t *prefix, size_t plen, uint8_t *bound)
{
    while (plen > 0 && prefix[plen - 1] == 0xff)
        plen--;
    if (plen == 0)
        return 0;
    memcpy(bound, prefix, plen);
    bound[plen - 1]++;
    return plen;
}

/*
 * The upper bound stops the iterator at the end of the prefix inside RocksDB,
 * so it never steps over the next user's keys or tombstones. RocksDB keeps a
 * pointer to the bound, not a copy: it must outlive the iterator.
 */
static int stor_rdb_scan(stor_t *st, stor_cf_t cf, const void *prefix, size_t plen,
                         stor_scan_fn fn, void *ctx, bool fill_cache)
{
    stor_rdb_t *r = stor_rdb_of(st);
    uint8_t stack[STOR_RDB_BOUND_STACK_BYTES];
    uint8_t *bound = plen <= sizeof(stack) ? stack : malloc(plen);
    if (!bound)
        return -ENOMEM;

    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    size_t blen = plen ? stor_rdb_prefix_end(prefix, plen, bound) : 0;
    if (blen)
        rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)bound, blen);
    rocksdb_readoptions_set_fill_cache(ro, fill_cache);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(r->db, ro, r->cf[cf]);

    int rc = 0;
    for (rocksdb_iter_seek(it, prefix, plen); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (klen < plen || (plen && memcmp(k, prefix, plen) != 0))
            break;
        const char *v = rocksdb_iter_value(it, &vlen);
        rc = fn(ctx, k, klen, v, vlen);
        if (rc != 0)
            break;
    }
    if (rc == 0) {
        char *e = NULL;
        rocksdb_iter_get_error(it, &e);
        if (e) {
            LOG_RATELIMITED(LOG_LEVEL_ERROR, "storage: scan of %s failed: %s",
                            stor_cf_name(cf), e);
            free(e);
            rc = -EIO;
        }
    }
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    if (bound != stack)
        free(bound);
    return rc;
}

static int stor_rdb_scan_prefix(stor_t *st, stor_cf_t cf, const void *prefix, size_t plen,
                                stor_scan_fn fn, void *ctx)
{
    return stor_rdb_scan(st, cf, prefix, plen, fn, ctx, true);
}

static int stor_rdb_scan_prefix_uncached(stor_t *st, stor_cf_t cf, const void *prefix,
                                         size_t plen, stor_scan_fn fn, void *ctx)
{
    return stor_rdb_scan(st, cf, prefix, plen, fn, ctx, false);
}

static const stor_ops_t stor_rocksdb_ops = {
    .kind = "rocksdb",
    .close = stor_rdb_close,
    .batch_create = stor_rdb_batch_create,
    .batch_destroy = stor_rdb_batch_destroy,
    .batch_put = stor_rdb_batch_put,
    .batch_delete = stor_rdb_batch_delete,
    .batch_clear = stor_rdb_batch_clear,
    .batch_commit = stor_rdb_batch_commit,
    .get = stor_rdb_get,
    .scan_prefix = stor_rdb_scan_prefix,
    .scan_prefix_uncached = stor_rdb_scan_prefix_uncached,
};
